//! `kraft server`: run a node from a .properties file, as Kafka's standalone test server does.
//! The file is given with `--config` or, as the older seed README does, as its positional argument.
//!
//! On first start an empty metadata log dir is formatted (cluster id from `cluster.id`, else
//! Kafka's zero id; directory id from `--replica-directory-id`, else random); later starts check
//! the dir belongs to this node. The node listens on its controller listener, dials the other
//! voters, and while it leads writes the `--throughput`/`--record-size` workload. SIGINT or
//! SIGTERM hands leadership over and exits 0; a node that fails for good (its disk failed, or
//! its actors keep failing after node restarts) exits 1. It must never modify a dir of another node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::Args;

use super::server_bootstrap::Membership;
use super::{CliError, load_config};
use crate::config::NodeConfig;
use crate::node::{NodeHandle, NodeOptions, SnapshotPolicy, Throughput};
use crate::raft::{ListenerAddress, RaftConfig};
use crate::storage::{self, LogConfig, MetaProperties};
use crate::uuid::Uuid;

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The node's .properties file, given as the older seed README does (exactly one of this and
    /// --config).
    #[arg(value_name = "CONFIG_FILE")]
    config_file: Option<PathBuf>,
    /// The node's .properties file.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set a property, over the file and KRAFT_* environment variables (repeatable).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// This node's metadata directory id (used when formatting, checked afterwards).
    #[arg(long, value_name = "ID")]
    replica_directory_id: Option<String>,
    /// Records per second the leader's workload writes; -1 writes as fast as the quorum commits;
    /// 0 runs no workload (Kafka clients own the log).
    #[arg(long, default_value_t = 5000, allow_negative_numbers = true)]
    throughput: i64,
    /// Write one record at a time, each waiting for the previous one's commit (for benchmarks).
    #[arg(long, hide = true)]
    one_at_a_time: bool,
    /// Bytes per workload record.
    #[arg(long, default_value_t = 256)]
    record_size: u32,
}

/// The config file: positional (the older seed README's `test-raft-server-start.sh F`) or
/// `--config F` (the newer one's), never both, so that no file is silently ignored.
fn config_path(args: &ServerArgs) -> Result<&Path, CliError> {
    match (&args.config_file, &args.config) {
        (Some(path), None) | (None, Some(path)) => Ok(path),
        (Some(positional), Some(flag)) => Err(CliError::usage(format!(
            "server: the config file is given twice ('{}' and --config '{}'): give exactly one",
            positional.display(),
            flag.display()
        ))),
        (None, None) => Err(CliError::usage(
            "server: no config file: give it as an argument or with --config FILE",
        )),
    }
}

pub fn run(args: &ServerArgs) -> Result<(), CliError> {
    let config = load_config(config_path(args)?, &args.overrides)?;
    check_security(&config)?;
    let directory_id = match &args.replica_directory_id {
        None => None,
        Some(text) => Some(
            text.parse::<Uuid>()
                .map_err(|e| CliError::usage(format!("--replica-directory-id: {e}")))?,
        ),
    };
    let throughput = if args.one_at_a_time {
        Some(Throughput::Sequential)
    } else if args.throughput == 0 {
        None
    } else {
        Some(parse_throughput(args.throughput).map_err(|_| {
            CliError::usage(format!(
                "--throughput {}: must be -1 (unthrottled), 0 (no workload) or between 1 and 1000000000",
                args.throughput
            ))
        })?)
    };
    check_record_size(args.record_size)?;
    let meta = ensure_formatted(&config, directory_id)?;
    let log_partition =
        storage::partition_dir(&config.metadata_log_dir, storage::PERFORMANCE_TEST_TOPIC);
    let dynamic = super::server_bootstrap::dynamic_quorum(&config, &meta, &log_partition)?;
    let listener = bind_controller_listener(&config)?;
    let metrics_listener = bind_metrics_listener(&config)?;
    let options = node_options(&config, &meta, listener, dynamic.is_some());
    let member = match dynamic {
        None if config.is_voter() => "voter",
        None => "observer",
        Some(Membership::Voter) => "voter",
        Some(Membership::Observer) => "observer",
    };
    let system = actix_rt::System::new();
    system.block_on(async move {
        let node = NodeHandle::start(options)
            .await
            .map_err(|e| CliError::usage(e.to_string()))?;
        if let Some(throughput) = throughput {
            node.start_workload(throughput, args.record_size);
        }
        // Kept until the process exits; dropping it would stop the endpoint.
        let _metrics_endpoint = match metrics_listener {
            Some(socket) => {
                let endpoint = node.serve_metrics(socket).map_err(|e| {
                    CliError::usage(format!("{}: {e}", crate::config::keys::METRICS_LISTENER))
                })?;
                tracing::info!(
                    address = %endpoint.local_addr(),
                    path = crate::metrics::http::METRICS_PATH,
                    "metrics endpoint listening"
                );
                Some(endpoint)
            }
            None => None,
        };
        warn_if_plaintext(&config);
        tracing::info!(
            node_id = %config.node_id,
            listener = %config.controller_listener().endpoint,
            voters = ?config.voters.ids().collect::<Vec<_>>(),
            member,
            "kraft node started"
        );
        tokio::select! {
            () = wait_for_signal() => {}
            state = node.stopped() => {
                // The node gave up (e.g. its disk failed): exit non-zero so a supervisor notices.
                return Err(CliError {
                    message: format!("the node stopped: {state:?}"),
                    exit_code: super::EXIT_PROBLEM,
                });
            }
        }
        tracing::info!("shutting down");
        node.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// The largest workload record: one must fit in a batch with room for its framing.
const MAX_RECORD_SIZE: usize = 1 << 20;

/// `--record-size`: at least one byte, at most [`MAX_RECORD_SIZE`].
pub fn check_record_size(size: u32) -> Result<(), CliError> {
    if size == 0 || size as usize > MAX_RECORD_SIZE {
        return Err(CliError::usage(format!(
            "--record-size {size}: must be between 1 and {MAX_RECORD_SIZE}"
        )));
    }
    Ok(())
}

/// `--throughput`: records per second (at least 1), or -1 for as fast as the quorum commits
/// (0, no workload, is the caller's to handle).
pub fn parse_throughput(value: i64) -> Result<Throughput, CliError> {
    match value {
        -1 => Ok(Throughput::Unlimited),
        1..=1_000_000_000 => Ok(Throughput::PerSecond(value as u32)),
        _ => Err(CliError::usage(format!(
            "--throughput {value}: must be -1 (unthrottled) or between 1 and 1000000000"
        ))),
    }
}

/// Formats an empty metadata dir; refuses one formatted for another node or directory id.
fn ensure_formatted(
    config: &NodeConfig,
    directory_id: Option<Uuid>,
) -> Result<MetaProperties, CliError> {
    let dir = &config.metadata_log_dir;
    let path = MetaProperties::path(dir);
    let existing = MetaProperties::read(dir).map_err(|e| CliError::usage(e.to_string()))?;
    let Some(meta) = existing else {
        let meta = MetaProperties {
            cluster_id: config
                .cluster_id
                .clone()
                .unwrap_or_else(|| Uuid::ZERO.to_string()),
            node_id: config.node_id,
            directory_id: Some(directory_id.unwrap_or_else(Uuid::random)),
        };
        meta.write(dir)
            .map_err(|e| CliError::usage(format!("cannot format {}: {e}", dir.display())))?;
        tracing::info!(dir = %dir.display(), cluster_id = %meta.cluster_id, "formatted the metadata log dir");
        return Ok(meta);
    };
    if meta.node_id != config.node_id {
        return Err(CliError::usage(format!(
            "{}: node.id {} does not match node.id {} in {}",
            path.display(),
            meta.node_id,
            config.node_id,
            config.source.display()
        )));
    }
    if let (Some(flag), Some(stored)) = (directory_id, meta.directory_id)
        && flag != stored
    {
        return Err(CliError::usage(format!(
            "{}: directory.id {stored} does not match --replica-directory-id {flag}",
            path.display()
        )));
    }
    if let Some(wanted) = config
        .cluster_id
        .as_ref()
        .filter(|c| **c != meta.cluster_id)
    {
        return Err(CliError::usage(format!(
            "{}: cluster.id {} does not match cluster.id {wanted} in {}",
            path.display(),
            meta.cluster_id,
            config.source.display()
        )));
    }
    Ok(meta)
}

fn bind_controller_listener(config: &NodeConfig) -> Result<std::net::TcpListener, CliError> {
    let listener = config.controller_listener();
    let host = if listener.endpoint.host.is_empty() {
        "0.0.0.0"
    } else {
        &listener.endpoint.host
    };
    let address = format!("{host}:{}", listener.endpoint.port);
    std::net::TcpListener::bind(&address).map_err(|e| {
        CliError::usage(format!(
            "{}: cannot listen on {address} (listener {}): {e}",
            config.source.display(),
            listener.name
        ))
    })
}

/// Binds `metrics.listener`, if set, before the node starts (so a taken port is a usage error).
fn bind_metrics_listener(config: &NodeConfig) -> Result<Option<std::net::TcpListener>, CliError> {
    let Some(endpoint) = &config.metrics_listener else {
        return Ok(None);
    };
    let address = endpoint.to_string();
    std::net::TcpListener::bind(&address)
        .map(Some)
        .map_err(|e| {
            CliError::usage(format!(
                "{}: cannot listen on {address} ({}): {e}",
                config.source.display(),
                crate::config::keys::METRICS_LISTENER
            ))
        })
}

/// The node's options. A dynamic quorum's node has no static voters: the bootstrap servers
/// find the leader, and the voters come from its log.
fn node_options(
    config: &NodeConfig,
    meta: &MetaProperties,
    listener: std::net::TcpListener,
    dynamic: bool,
) -> NodeOptions {
    let voters: BTreeSet<_> = config.voters.ids().collect();
    let mut raft = RaftConfig::new(
        &meta.cluster_id,
        Some(config.node_id),
        voters.iter().copied(),
    );
    raft.election_timeout = config.quorum.election_timeout;
    raft.fetch_timeout = config.quorum.fetch_timeout;
    raft.election_backoff_max = config.quorum.election_backoff_max;
    raft.request_timeout = config.quorum.request_timeout;
    raft.retry_backoff = config.quorum.retry_backoff;
    raft.append_linger = config.quorum.append_linger;
    if dynamic {
        raft.local_endpoints = local_endpoints(config);
        raft.auto_join = config.auto_join;
    }
    NodeOptions {
        cluster_id: meta.cluster_id.clone(),
        node_id: Some(config.node_id),
        voters,
        voter_addresses: config
            .voters
            .0
            .iter()
            .map(|(id, endpoint)| (*id, endpoint.to_string()))
            .collect(),
        listener: Some(listener),
        partition_dir: storage::partition_dir(
            &config.metadata_log_dir,
            storage::PERFORMANCE_TEST_TOPIC,
        ),
        log: LogConfig {
            segment_bytes: config.metadata_log.segment_bytes,
            ..LogConfig::default()
        },
        raft: Some(raft),
        state_machine: Default::default(),
        fs: None,
        connections: config.connections,
        security: config.security.clone(),
        rack: config.rack.clone(),
        directory_id: meta.directory_id,
        listener_name: Some(config.controller_listener().name.clone()),
        bootstrap_servers: if dynamic {
            config
                .bootstrap_servers
                .iter()
                .map(ToString::to_string)
                .collect()
        } else {
            Vec::new()
        },
        snapshots: SnapshotPolicy {
            max_bytes: config.metadata_log.max_record_bytes_between_snapshots,
            interval: config.metadata_log.max_snapshot_interval,
            retention_bytes: config.metadata_log.max_retention_bytes,
            retention: config.metadata_log.max_retention,
        },
    }
}

/// This node's voter entry endpoints, by listener name, read from its properties file by the
/// rule `kraft quorum add-controller` applies to the same file (`advertised.listeners`, else
/// `listeners`, for each of `controller.listener.names`), so that the entry an operator adds
/// is the one the node keeps. A wildcard host names no address a peer could dial and is left
/// out (a node without any endpoint then neither auto-joins nor updates its entry).
fn local_endpoints(config: &NodeConfig) -> BTreeMap<String, ListenerAddress> {
    let read = super::quorum_voters::read_properties(&config.source)
        .and_then(|props| super::quorum_voters::controller_endpoints(&props));
    let endpoints: Vec<(String, ListenerAddress)> = match read {
        Ok(endpoints) => endpoints
            .into_iter()
            .map(|(name, e)| {
                let at = ListenerAddress {
                    host: e.host,
                    port: e.port,
                };
                (name, at)
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e.message, "cannot read this node's controller endpoints; it will not join or update its voter entry by itself");
            Vec::new()
        }
    };
    endpoints
        .into_iter()
        .filter(|(_, at)| !matches!(at.host.as_str(), "0.0.0.0" | "::" | "[::]"))
        .collect()
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM.
pub(super) async fn wait_for_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; stop with Ctrl-C");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// Checks the quorum listener's TLS files before anything is written: a bad key, certificate or
/// trust store is one line naming the key and file (exit 2).
fn check_security(config: &NodeConfig) -> Result<(), CliError> {
    match &config.security {
        crate::config::ListenerSecurity::Plaintext => Ok(()),
        crate::config::ListenerSecurity::Ssl(settings) => crate::security::PeerTls::load(settings)
            .map(|_| ())
            .map_err(|e| CliError::usage(format!("{}: {e}", config.source.display()))),
    }
}

/// Once the node runs: one warning that PLAINTEXT peers are not authenticated.
fn warn_if_plaintext(config: &NodeConfig) {
    if config.security == crate::config::ListenerSecurity::Plaintext {
        tracing::warn!(
            listener = %config.controller_listener().name,
            "the quorum listener is PLAINTEXT: peers are not authenticated and traffic is not encrypted (set listener.security.protocol.map to SSL; see the README's Security section)"
        );
    }
}
