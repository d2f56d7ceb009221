//! `kraft quorum`: Kafka's `kafka-metadata-quorum.sh` for a kraft quorum. `describe --status`
//! and `describe --replication [--human-readable]` print Kafka's formats; `add-controller` and
//! `remove-controller` change a dynamic quorum's voters (`quorum_voters`); `watch` is a live
//! terminal dashboard (plain lines when stdout is not a terminal).
//!
//! Owns the arguments, Kafka's argument checks and messages, and the exit codes: 2 for a usage
//! or configuration mistake, 1 when the quorum cannot be described. It never formats output
//! itself (`quorum_format`) and never speaks the protocol itself (`quorum_client`).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{ArgGroup, Args, Subcommand};

use super::quorum_client::{AdminClient, ENDPOINT_TYPE_BROKER, ENDPOINT_TYPE_CONTROLLER};
use super::{CliError, EXIT_PROBLEM, quorum_format, quorum_voters, quorum_watch};
use crate::config::ClientProperties;
use crate::config::endpoints::parse_bootstrap_servers;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("bootstrap").required(true).args(["bootstrap_server", "bootstrap_controller"])))]
pub struct QuorumArgs {
    /// A comma-separated list of host:port pairs of the quorum's nodes (as Kafka's brokers).
    #[arg(long, value_name = "HOST:PORT[,...]")]
    bootstrap_server: Option<String>,
    /// A comma-separated list of host:port pairs of the quorum's nodes (as Kafka's controllers).
    #[arg(long, value_name = "HOST:PORT[,...]")]
    bootstrap_controller: Option<String>,
    /// Kafka client properties: security.protocol=SSL and PEM ssl.* stores, request.timeout.ms,
    /// socket.connection.setup.timeout.ms. For add-controller: the new controller's server
    /// properties (read for its identity and endpoints, and as client properties).
    #[arg(long, value_name = "FILE")]
    command_config: Option<PathBuf>,
    #[command(subcommand)]
    command: QuorumCommand,
}

#[derive(Debug, Subcommand)]
enum QuorumCommand {
    /// Describe the metadata quorum info.
    Describe(DescribeArgs),
    /// A live dashboard of the quorum, refreshed every second (plain lines when piped).
    Watch(WatchArgs),
    /// Add a controller to the KRaft controller cluster (--command-config: its server properties).
    AddController(AddControllerArgs),
    /// Remove a controller from the KRaft controller cluster.
    RemoveController(RemoveControllerArgs),
}

#[derive(Debug, Args)]
struct AddControllerArgs {
    /// True if we should print what would be done, but not do it.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
struct RemoveControllerArgs {
    /// The id of the controller to remove.
    #[arg(short = 'i', long, allow_negative_numbers = true)]
    controller_id: i32,
    /// The directory ID of the controller to remove.
    #[arg(short = 'd', long, allow_hyphen_values = true)]
    controller_directory_id: String,
    /// True if we should print what would be done, but not do it.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
struct DescribeArgs {
    /// A short summary of the quorum status.
    #[arg(long)]
    status: bool,
    /// Detailed information about the status of replication.
    #[arg(long)]
    replication: bool,
    /// Human-readable times (with --replication).
    #[arg(long)]
    human_readable: bool,
}

/// Shortest refresh interval: DescribeQuorum is cheap, but a tighter loop only redraws noise.
const MIN_INTERVAL_MS: u64 = 100;
/// Longest refresh interval: an hour; anything slower is a cron job, not a watch.
const MAX_INTERVAL_MS: u64 = 3_600_000;

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Milliseconds between refreshes.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(MIN_INTERVAL_MS..=MAX_INTERVAL_MS))]
    pub interval_ms: u64,
    /// Stop after this many refreshes (default: until q or Ctrl-C).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

pub fn run(args: &QuorumArgs) -> Result<(), CliError> {
    // Kafka's checks come before it connects anywhere.
    if let QuorumCommand::Describe(d) = &args.command {
        check_describe(d)?;
    }
    let client = client(args)?;
    match &args.command {
        QuorumCommand::Describe(d) => describe(&client, d),
        QuorumCommand::Watch(w) => quorum_watch::run(&client, w),
        QuorumCommand::AddController(a) => {
            quorum_voters::add_controller(&client, args.command_config.as_deref(), a.dry_run)
        }
        QuorumCommand::RemoveController(r) => quorum_voters::remove_controller(
            &client,
            r.controller_id,
            &r.controller_directory_id,
            r.dry_run,
        ),
    }
}

fn check_describe(d: &DescribeArgs) -> Result<(), CliError> {
    let message = match (d.status, d.replication) {
        (true, true) => {
            "Only one of --status or --replication should be specified with describe sub-command"
        }
        (true, false) if d.human_readable => {
            "The option --human-readable is only supported along with --replication"
        }
        (false, false) => {
            "One of --status or --replication must be specified with describe sub-command"
        }
        _ => return Ok(()),
    };
    Err(CliError::usage(message))
}

fn client(args: &QuorumArgs) -> Result<AdminClient, CliError> {
    let (flag, list, endpoint_type) = match (&args.bootstrap_controller, &args.bootstrap_server) {
        (Some(list), _) => ("--bootstrap-controller", list, ENDPOINT_TYPE_CONTROLLER),
        (None, Some(list)) => ("--bootstrap-server", list, ENDPOINT_TYPE_BROKER),
        (None, None) => unreachable!("clap requires one of the two"),
    };
    let props = client_properties(args.command_config.as_deref())?;
    admin_client(flag, list, endpoint_type, &props)
}

/// `--command-config`: Kafka client properties (defaults when not given).
pub fn client_properties(path: Option<&std::path::Path>) -> Result<ClientProperties, CliError> {
    match path {
        None => Ok(ClientProperties::default()),
        Some(path) if !path.exists() => Err(CliError::usage(format!(
            "Properties file {} does not exists!",
            path.display()
        ))),
        Some(path) => ClientProperties::load(path).map_err(|e| CliError::usage(e.to_string())),
    }
}

/// An admin client for the bootstrap `list` given with `flag`.
pub fn admin_client(
    flag: &str,
    list: &str,
    endpoint_type: i8,
    props: &ClientProperties,
) -> Result<AdminClient, CliError> {
    let tls = match &props.tls {
        None => None,
        Some(settings) => Some(
            crate::security::client_config(settings).map_err(|e| CliError::usage(e.to_string()))?,
        ),
    };
    let bootstrap =
        parse_bootstrap_servers(list).map_err(|e| CliError::usage(format!("{flag}: {e}")))?;
    if bootstrap.is_empty() {
        return Err(CliError::usage(format!("{flag}: no host:port given")));
    }
    Ok(AdminClient::new(bootstrap, endpoint_type, tls, props))
}

fn describe(client: &AdminClient, d: &DescribeArgs) -> Result<(), CliError> {
    let description = client.describe().map_err(problem)?;
    let text = match d.status {
        true => quorum_format::status(&description.cluster_id, &description.quorum),
        false => quorum_format::replication(&description.quorum, d.human_readable, now_ms()),
    }
    .map_err(problem)?;
    print!("{text}");
    Ok(())
}

/// Milliseconds since the Unix epoch, as Kafka's timestamps are.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64
}

/// A failure to describe the quorum (not a usage mistake).
pub fn problem(e: impl std::fmt::Display) -> CliError {
    CliError {
        message: e.to_string(),
        exit_code: EXIT_PROBLEM,
    }
}
