//! `kraft server`: start a node from a .properties file.
//!
//! Today this validates the configuration and the flags, checks the metadata log dir's identity
//! and, when the dir is formatted, opens (recovering if needed) the node's log and election
//! state, then stops: the replication driver that runs the quorum is the next piece of work. It
//! must never modify a directory that belongs to another node or is not formatted.

use clap::Args;

use super::{CliError, ConfigArgs};
use crate::config::NodeConfig;
use crate::storage::{self, LogConfig, MetaProperties, QuorumStateFile, ReplicatedLog};
use crate::uuid::Uuid;

#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// This node's metadata directory id (checked against meta.properties when formatted).
    #[arg(long, value_name = "ID")]
    replica_directory_id: Option<String>,
    /// Records per second the leader's workload writes.
    #[arg(long, default_value_t = 5000)]
    throughput: u32,
    /// Bytes per workload record.
    #[arg(long, default_value_t = 256)]
    record_size: u32,
}

pub fn run(args: &ServerArgs) -> Result<(), CliError> {
    let config = args.config.load()?;
    let directory_id = match &args.replica_directory_id {
        None => None,
        Some(text) => Some(
            text.parse::<Uuid>()
                .map_err(|e| CliError::usage(format!("--replica-directory-id: {e}")))?,
        ),
    };
    if args.throughput == 0 || args.record_size == 0 {
        return Err(CliError::usage(
            "--throughput and --record-size must be at least 1",
        ));
    }
    if check_identity(&config, directory_id)? {
        open_storage(&config)?;
    } else {
        tracing::info!(
            dir = %config.metadata_log_dir.display(),
            "the metadata log dir is not formatted; nothing was opened or created"
        );
    }
    Err(CliError {
        message:
            "configuration and storage are valid, but the replication driver is not built yet, \
                  so the node stops here"
                .into(),
        exit_code: 1,
    })
}

/// Refuses a metadata dir formatted for another node or another directory id. Returns whether
/// the dir is formatted at all.
fn check_identity(config: &NodeConfig, directory_id: Option<Uuid>) -> Result<bool, CliError> {
    let dir = &config.metadata_log_dir;
    let Some(meta) = MetaProperties::read(dir).map_err(|e| CliError::usage(e.to_string()))? else {
        return Ok(false);
    };
    if meta.node_id != config.node_id {
        return Err(CliError::usage(format!(
            "{}: node.id {} does not match node.id {} in {}",
            MetaProperties::path(dir).display(),
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
            MetaProperties::path(dir).display()
        )));
    }
    Ok(true)
}

fn open_storage(config: &NodeConfig) -> Result<(), CliError> {
    let partition =
        storage::partition_dir(&config.metadata_log_dir, storage::PERFORMANCE_TEST_TOPIC);
    let log_config = LogConfig {
        segment_bytes: config.metadata_log.segment_bytes,
        ..LogConfig::default()
    };
    let fail = |e: storage::StorageError| CliError::usage(e.to_string());
    let (log, _report) = ReplicatedLog::open(&partition, log_config).map_err(fail)?;
    let election = QuorumStateFile::new(&partition).read().map_err(fail)?;
    tracing::info!(
        node_id = %config.node_id,
        voter = config.is_voter(),
        log_dir = %partition.display(),
        log_start_offset = %log.log_start_offset(),
        log_end_offset = %log.log_end_offset(),
        epoch = %election.map_or(0, |e| e.epoch.0),
        "opened the log"
    );
    Ok(())
}
