//! `kraft storage`: `random-uuid`, `format` and `info`, as Kafka's `kafka-storage.sh` behaves
//! (docs/protocol.md §17), and kraft's own `repair` (docs/durability.md §6).
//!
//! `format` checks every directory before it writes any, so a refusal leaves nothing half
//! formatted; each `meta.properties` is written atomically.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand};

use super::initial_controllers::{self, InitialController};
use super::{CliError, ConfigArgs, EXIT_PROBLEM};
use crate::config::NodeConfig;
use crate::record::VotersRecord;
use crate::storage::{self, MetaProperties};
use crate::uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Print a random id for --cluster-id.
    RandomUuid,
    /// Write meta.properties into every log directory of a node.
    Format(FormatArgs),
    /// Show what is in a node's log directories and what is wrong with them.
    Info(InfoArgs),
    /// Move damaged log and snapshot files aside so that a stopped node can start again and
    /// catch up from the quorum (it votes again only once its log is back where it was).
    Repair(RepairArgs),
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("dynamic_quorum").multiple(false).args(["standalone", "initial_controllers", "no_initial_controllers"])))]
pub struct FormatArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The cluster id (e.g. from `kraft storage random-uuid`).
    #[arg(short = 't', long = "cluster-id")]
    cluster_id: String,
    /// Skip directories that are already formatted instead of failing.
    #[arg(short = 'g', long = "ignore-formatted")]
    ignore_formatted: bool,
    /// Bootstrap a dynamic quorum (kraft.version 1) with this node as its only voter.
    #[arg(short = 's', long)]
    standalone: bool,
    /// Bootstrap a dynamic quorum with these voters: id@host:port:directoryId,... (the same
    /// list on every voter; this node's directory id is taken from its entry).
    #[arg(short = 'I', long, value_name = "ID@HOST:PORT:DIRECTORY_ID,...")]
    initial_controllers: Option<String>,
    /// Format a node that will join an existing dynamic quorum (kraft.version 1, no voters).
    #[arg(short = 'N', long)]
    no_initial_controllers: bool,
}

/// How the quorum of a formatted node learns its voters.
#[derive(Debug, Clone, PartialEq, Eq)]
enum QuorumBootstrap {
    /// `controller.quorum.voters` (kraft.version 0): nothing written beyond meta.properties.
    Static,
    /// `--standalone`: this node alone, with a fresh directory id.
    Standalone,
    /// `--initial-controllers`: this list, this node among them.
    InitialControllers(Vec<InitialController>),
    /// `--no-initial-controllers`: kraft.version 1, voters learnt by joining.
    Joining,
}

impl FormatArgs {
    fn bootstrap(&self) -> Result<QuorumBootstrap, CliError> {
        if self.standalone {
            return Ok(QuorumBootstrap::Standalone);
        }
        if self.no_initial_controllers {
            return Ok(QuorumBootstrap::Joining);
        }
        match &self.initial_controllers {
            None => Ok(QuorumBootstrap::Static),
            Some(text) => initial_controllers::parse(text)
                .map(QuorumBootstrap::InitialControllers)
                .map_err(|e| CliError::usage(format!("--initial-controllers: {e}"))),
        }
    }
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

pub fn run(cmd: &StorageCommand) -> Result<(), CliError> {
    match cmd {
        StorageCommand::RandomUuid => {
            println!("{}", Uuid::random());
            Ok(())
        }
        StorageCommand::Format(args) => format(args),
        StorageCommand::Info(args) => info(args),
        StorageCommand::Repair(args) => repair(args),
    }
}

fn check_cluster_id(id: &str) -> Result<(), CliError> {
    if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(CliError::usage(format!(
            "--cluster-id '{id}' is not a cluster id: expected a non-empty id without spaces, e.g. from `kraft storage random-uuid`"
        )));
    }
    Ok(())
}

/// Whether each directory is formatted; fails on a directory whose state cannot be read.
fn formatted_dirs(config: &NodeConfig) -> Result<Vec<(PathBuf, bool)>, CliError> {
    config
        .all_log_dirs()
        .into_iter()
        .map(|dir| {
            let formatted =
                MetaProperties::exists(&dir).map_err(|e| CliError::usage(e.to_string()))?;
            Ok((dir, formatted))
        })
        .collect()
}

/// One directory `format` will write.
struct Plan {
    dir: PathBuf,
    meta: MetaProperties,
    kind: &'static str,
    /// The bootstrap snapshot, for the metadata dir of a dynamic quorum.
    checkpoint: Option<Checkpoint>,
}

/// The bootstrap checkpoint of a dynamic (kraft.version 1) quorum's metadata directory.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Checkpoint {
    /// The initial voters (`--standalone`, `--initial-controllers`).
    Voters(VotersRecord),
    /// No voters: the node will join (`--no-initial-controllers`).
    Joining,
}

fn format(args: &FormatArgs) -> Result<(), CliError> {
    let config = args.config.load()?;
    check_cluster_id(&args.cluster_id)?;
    let bootstrap = args.bootstrap()?;
    check_bootstrap_mode(&config, &bootstrap)?;
    let dirs = formatted_dirs(&config)?;
    if let Some((dir, _)) = dirs
        .iter()
        .find(|(_, f)| *f)
        .filter(|_| !args.ignore_formatted)
    {
        return Err(CliError::usage(format!(
            "log directory {} is already formatted: use --ignore-formatted to skip it and format the others",
            dir.display()
        )));
    }
    // Every check runs before the first write, so a refusal leaves nothing half formatted.
    let plans = dirs
        .into_iter()
        .filter(|(_, formatted)| !formatted)
        .map(|(dir, _)| plan(&config, dir, &args.cluster_id, &bootstrap))
        .collect::<Result<Vec<Plan>, CliError>>()?;
    if plans.is_empty() {
        println!("All of the log directories are already formatted.");
        return Ok(());
    }
    for plan in plans {
        write_plan(&config, plan)?;
    }
    Ok(())
}

/// A controller needs a voter set: static (`controller.quorum.voters`) or bootstrapped here,
/// never both; a node that bootstraps one must be a controller and one of its voters.
fn check_bootstrap_mode(config: &NodeConfig, bootstrap: &QuorumBootstrap) -> Result<(), CliError> {
    let is_controller = config.process_roles.iter().any(|r| r == "controller");
    let file = config.source.display();
    let flag = match bootstrap {
        QuorumBootstrap::Static if is_controller && config.voters.is_empty() => {
            return Err(CliError::usage(format!(
                "{file}: controller.quorum.voters is not set on this controller, so one of \
                 --standalone, --initial-controllers or --no-initial-controllers is needed"
            )));
        }
        QuorumBootstrap::Static => return Ok(()),
        QuorumBootstrap::Standalone => "--standalone",
        QuorumBootstrap::InitialControllers(_) => "--initial-controllers",
        QuorumBootstrap::Joining => "--no-initial-controllers",
    };
    if !config.voters.is_empty() {
        return Err(CliError::usage(format!(
            "{file}: {flag} formats a dynamic quorum and cannot be used with controller.quorum.voters: \
             remove controller.quorum.voters and set controller.quorum.bootstrap.servers instead"
        )));
    }
    if !is_controller && *bootstrap != QuorumBootstrap::Joining {
        return Err(CliError::usage(format!(
            "{file}: {flag} makes this node a voter, but process.roles has no 'controller'"
        )));
    }
    match bootstrap {
        QuorumBootstrap::InitialControllers(list)
            if !list.iter().any(|c| c.node_id == config.node_id.0) =>
        {
            Err(CliError::usage(format!(
                "--initial-controllers does not list this node (node.id {} in {file})",
                config.node_id
            )))
        }
        _ => Ok(()),
    }
}

/// What the metadata directory gets beyond meta.properties, and its directory id.
fn metadata_bootstrap(
    config: &NodeConfig,
    bootstrap: &QuorumBootstrap,
) -> Result<(Uuid, Option<Checkpoint>), CliError> {
    let listener = &config.controller_listener().name;
    Ok(match bootstrap {
        QuorumBootstrap::Static => (Uuid::random(), None),
        QuorumBootstrap::Joining => (Uuid::random(), Some(Checkpoint::Joining)),
        QuorumBootstrap::Standalone => {
            let directory_id = Uuid::random();
            let voters = standalone_voters(config, directory_id)?;
            (directory_id, Some(Checkpoint::Voters(voters)))
        }
        QuorumBootstrap::InitialControllers(list) => {
            let own = list
                .iter()
                .find(|c| c.node_id == config.node_id.0)
                .expect("checked by check_bootstrap_mode");
            let voters = initial_controllers::voters_record(list, listener);
            (own.directory_id, Some(Checkpoint::Voters(voters)))
        }
    })
}

fn plan(
    config: &NodeConfig,
    dir: PathBuf,
    cluster_id: &str,
    bootstrap: &QuorumBootstrap,
) -> Result<Plan, CliError> {
    let is_metadata = dir == config.metadata_log_dir;
    let (directory_id, checkpoint) = match is_metadata {
        true => metadata_bootstrap(config, bootstrap)?,
        false => (Uuid::random(), None),
    };
    // Kafka's names for the kinds of directory; a joining node's metadata directory is a plain one
    // to Kafka's format, as it holds no voters.
    let kind = match (is_metadata, &checkpoint) {
        (true, Some(Checkpoint::Voters(_))) => "dynamic metadata voter directory",
        (true, _) => "metadata directory",
        (false, _) => "data directory",
    };
    let meta = MetaProperties {
        cluster_id: cluster_id.to_string(),
        node_id: config.node_id,
        directory_id: Some(directory_id),
    };
    Ok(Plan {
        dir,
        meta,
        kind,
        checkpoint,
    })
}

fn write_plan(config: &NodeConfig, plan: Plan) -> Result<(), CliError> {
    let dir = &plan.dir;
    let fail =
        |e: storage::StorageError| CliError::usage(format!("cannot format {}: {e}", dir.display()));
    // meta.properties is what marks a directory formatted, so it is written last.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    let partition = storage::partition_dir(dir, storage::METADATA_TOPIC);
    match plan.checkpoint {
        Some(Checkpoint::Voters(voters)) => {
            storage::write_bootstrap_checkpoint(&partition, voters, now_ms).map_err(fail)?;
        }
        Some(Checkpoint::Joining) => {
            storage::write_joining_checkpoint(&partition, now_ms).map_err(fail)?;
        }
        None => {}
    }
    plan.meta.write(dir).map_err(fail)?;
    println!(
        "Formatting {} {} with cluster.id {}, node.id {}, directory.id {}.",
        plan.kind,
        dir.display(),
        plan.meta.cluster_id,
        config.node_id,
        plan.meta.directory_id.expect("planned with one")
    );
    Ok(())
}

fn standalone_voters(config: &NodeConfig, directory_id: Uuid) -> Result<VotersRecord, CliError> {
    let listener = config.controller_listener();
    if listener.endpoint.host.is_empty() || listener.endpoint.host == "0.0.0.0" {
        return Err(CliError::usage(format!(
            "{}: --standalone needs a host in the {} listener that other nodes can reach, not '{}'",
            config.source.display(),
            listener.name,
            listener.endpoint.host
        )));
    }
    let this_node = InitialController {
        node_id: config.node_id.0,
        host: listener.endpoint.host.clone(),
        port: listener.endpoint.port,
        directory_id,
    };
    Ok(initial_controllers::voters_record(
        &[this_node],
        &listener.name,
    ))
}

/// `storage repair`: each partition directory of the metadata log dir, inspected and, where
/// damaged, repaired (see `storage::repair_partition_in`).
fn repair(args: &RepairArgs) -> Result<(), CliError> {
    let config = args.config.load()?;
    let dir = &config.metadata_log_dir;
    if !MetaProperties::exists(dir).map_err(|e| CliError::usage(e.to_string()))? {
        return Err(CliError::usage(format!(
            "{}: not formatted (no meta.properties): nothing to repair",
            dir.display()
        )));
    }
    let fs = storage::real_fs();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    for topic in [storage::PERFORMANCE_TEST_TOPIC, storage::METADATA_TOPIC] {
        let partition = storage::partition_dir(dir, topic);
        if !partition.is_dir() {
            continue;
        }
        let report =
            storage::repair_partition_in(&fs, &partition, now_ms).map_err(|e| CliError {
                message: format!("cannot repair {}: {e}", partition.display()),
                exit_code: EXIT_PROBLEM,
            })?;
        print_repair(&partition, &report);
    }
    Ok(())
}

fn print_repair(partition: &std::path::Path, report: &storage::RepairReport) {
    if report.found.is_empty() {
        println!("{}: no damage found, nothing changed.", partition.display());
        return;
    }
    for damage in &report.found {
        println!(
            "Found: {} at byte {}: {}",
            damage.file.display(),
            damage.position,
            damage.finding
        );
    }
    let aside = report.aside_dir.as_deref().unwrap_or(partition);
    for (file, len) in &report.cut {
        println!(
            "Copied {} to {} and cut it to its valid {len} bytes.",
            file.display(),
            aside.display()
        );
    }
    for file in &report.moved {
        println!("Moved {} to {}.", file.display(), aside.display());
    }
    if let Some(point) = report.repair_point {
        println!(
            "Repair point: end offset {} in epoch {}. Until its log is back there the node fetches from the leader and neither votes nor stands for election (unless it is the only voter).",
            point.offset, point.epoch
        );
    }
}

fn info(args: &InfoArgs) -> Result<(), CliError> {
    let config = args.config.load()?;
    let mut problems = Vec::new();
    let mut found = Vec::new();
    for dir in config.all_log_dirs() {
        if !dir.is_dir() {
            problems.push(format!("{} does not exist.", dir.display()));
            continue;
        }
        match MetaProperties::read(&dir) {
            Ok(None) => problems.push(format!("{} is not formatted.", dir.display())),
            Err(e) => problems.push(format!("{e}.")),
            Ok(Some(meta)) => {
                if meta.node_id != config.node_id {
                    problems.push(format!(
                        "{}: node.id {} in meta.properties does not match node.id {} in {}.",
                        dir.display(),
                        meta.node_id,
                        config.node_id,
                        config.source.display()
                    ));
                }
                found.push((dir, meta));
            }
        }
    }
    let mut cluster_ids: Vec<&str> = found.iter().map(|(_, m)| m.cluster_id.as_str()).collect();
    cluster_ids.dedup();
    if cluster_ids.len() > 1 {
        problems.push(format!(
            "found more than one cluster.id across directories: {}.",
            cluster_ids.join(", ")
        ));
    }
    print_info(&config, &found, &problems);
    match problems.len() {
        0 => Ok(()),
        n => Err(CliError {
            message: format!("found {n} problem(s)"),
            exit_code: EXIT_PROBLEM,
        }),
    }
}

fn print_info(config: &NodeConfig, found: &[(PathBuf, MetaProperties)], problems: &[String]) {
    let dirs = config.all_log_dirs();
    println!(
        "Found log {}:",
        if dirs.len() == 1 {
            "directory"
        } else {
            "directories"
        }
    );
    for dir in &dirs {
        println!("  {}", dir.display());
    }
    for (dir, meta) in found {
        let directory_id = meta
            .directory_id
            .map_or(String::new(), |d| format!("directory.id={d}, "));
        println!(
            "\nFound metadata in {}: {{cluster.id={}, {directory_id}node.id={}, version=1}}",
            dir.display(),
            meta.cluster_id,
            meta.node_id
        );
    }
    if !problems.is_empty() {
        println!(
            "\nFound {}:",
            if problems.len() == 1 {
                "problem"
            } else {
                "problems"
            }
        );
        for p in problems {
            println!("  {p}");
        }
    }
}
