//! The `kraft` command line: argument parsing and dispatch to the server and the operator tools.
//!
//! Owns exit codes and how errors reach the operator: one line on stderr, exit code 2 for a user
//! mistake (bad arguments, configuration or directory state), 1 for a problem found by a tool
//! (`storage info`). It must never print a backtrace for a user mistake.

mod bench;
mod bench_processes;
mod dump_log;
mod dump_log_format;
mod initial_controllers;
mod kafka_client;
mod producer_perf;
mod quorum;
pub mod quorum_client;
pub mod quorum_dashboard;
pub mod quorum_format;
pub mod quorum_info;
pub mod quorum_voters;
mod quorum_watch;
mod server;
mod server_bootstrap;
mod storage;
mod tail;
mod verifiable_producer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::config::{LoadedConfig, NodeConfig};
use crate::telemetry::{self, LogFormat};

/// A failed command: what to tell the operator and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub message: String,
    pub exit_code: i32,
}

/// Exit code for user mistakes: bad arguments, configuration, or directory state.
pub const EXIT_USAGE: i32 = 2;
/// Exit code for a problem a tool found (not a mistake in how it was called).
pub const EXIT_PROBLEM: i32 = 1;

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            exit_code: EXIT_USAGE,
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "kraft",
    version,
    about = "KRaft (Kafka Raft) in Rust: a node and its operator tools"
)]
pub struct Cli {
    /// Log line format on stderr (filter with RUST_LOG).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node from a .properties file.
    Server(server::ServerArgs),
    /// Format and inspect log directories.
    #[command(subcommand)]
    Storage(storage::StorageCommand),
    /// Start a fresh quorum in a temporary directory and measure its throughput and latency.
    Bench(bench::BenchArgs),
    /// Kafka's VerifiableProducer: produce 0, 1, 2, ... through a Kafka client, printing a JSON
    /// line for every acknowledged or failed send.
    VerifiableProducer(verifiable_producer::VerifiableProducerArgs),
    /// Kafka's producer performance test: produce records through a Kafka client and print
    /// throughput and latency.
    ProducerPerfTest(producer_perf::ProducerPerfArgs),
    /// Kafka's kafka-metadata-quorum: describe the quorum (--status, --replication), add or
    /// remove a controller, or watch it.
    Quorum(quorum::QuorumArgs),
    /// Follow the quorum's committed log with no node id, printing each record as it commits.
    Tail(tail::TailArgs),
    /// Kafka's kafka-dump-log: print the batches and records of segment, snapshot and index files.
    DumpLog(dump_log::DumpLogArgs),
}

/// `--config F` and `--override key=value`, shared by every command that reads a config.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// The node's .properties file.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,
    /// Set a property, over the file and KRAFT_* environment variables (repeatable).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

impl ConfigArgs {
    /// Loads the configuration with the process environment, logging its warnings.
    pub fn load(&self) -> Result<NodeConfig, CliError> {
        load_config(&self.config, &self.overrides)
    }
}

/// Loads `path` layered with the process environment and `overrides`, logging each warning once.
pub fn load_config(path: &Path, overrides: &[String]) -> Result<NodeConfig, CliError> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let LoadedConfig { config, warnings } =
        NodeConfig::load(path, &env, overrides).map_err(|e| CliError::usage(e.to_string()))?;
    for warning in warnings {
        tracing::warn!(key = %warning.key, "{warning}");
    }
    Ok(config)
}

/// Parses the arguments, runs the command and returns the process exit code.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    match cli.command {
        Command::Tail(_) => telemetry::init_with_default(cli.log_format, "warn"),
        _ => telemetry::init(cli.log_format),
    }
    telemetry::install_panic_hook();
    let result = match cli.command {
        Command::Server(args) => server::run(&args),
        Command::Storage(cmd) => storage::run(&cmd),
        Command::Bench(args) => bench::run(&args),
        Command::VerifiableProducer(args) => verifiable_producer::run(&args),
        Command::ProducerPerfTest(args) => producer_perf::run(&args),
        Command::Quorum(args) => quorum::run(&args),
        Command::Tail(args) => tail::run(&args),
        Command::DumpLog(args) => dump_log::run(&args),
    };
    match result {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("kraft: {}", err.message);
            err.exit_code
        }
    }
}

/// Help and version go to stdout as clap writes them; any other argument error is one line.
fn usage_error(err: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = err.print();
        return 0;
    }
    // clap's message runs until its "Usage:" section, over several lines; join them into one.
    let text = err.render().to_string();
    let message: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("Usage:"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let message = message.join(" ");
    eprintln!(
        "kraft: {} (see kraft --help)",
        message.trim_start_matches("error: ")
    );
    EXIT_USAGE
}
