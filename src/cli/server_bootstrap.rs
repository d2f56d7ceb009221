//! `kraft server` on a metadata directory formatted for a dynamic quorum (kraft.version 1,
//! `kraft storage format --standalone`, `--initial-controllers` or `--no-initial-controllers`):
//! the voters live in the log, starting with the bootstrap checkpoint's, instead of
//! `controller.quorum.voters`, and `controller.quorum.bootstrap.servers` finds the leader.
//!
//! Owns only that start-up step: checking the checkpoint, putting a copy of it where the node's
//! log recovery reads it (the log's own partition directory, as in Kafka's layout), and telling
//! the operator whether the node starts as a voter or an observer. It must never rewrite the
//! formatted checkpoint, and never turn the checkpoint's voters into a static voter list: a
//! replica whose directory id differs from the voter's (a wiped or replaced disk) runs as an
//! observer until it is added as a voter again, the KIP-853 protection against lost disks.

use super::CliError;
use crate::config::NodeConfig;
use crate::raft::{ReplicaKey, VoterSet, VoterSetHistory};
use crate::storage::{self, MetaProperties};
use crate::types::Offset;

/// The kraft.version of a quorum whose voters live in the log and snapshots.
const DYNAMIC_KRAFT_VERSION: i16 = 1;

/// How this node starts in a dynamic quorum, by the bootstrap checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// One of the checkpoint's voters: its id and directory id.
    Voter,
    /// Not one of them: it fetches as an observer, finding the leader through the bootstrap
    /// servers, until an operator adds it.
    Observer,
}

/// The dynamic quorum of `config`'s metadata directory, if it was formatted for one: its
/// bootstrap checkpoint is checked and copied into the node's log partition `log_partition`.
/// `None`: a static quorum (no checkpoint), nothing done.
pub fn dynamic_quorum(
    config: &NodeConfig,
    meta: &MetaProperties,
    log_partition: &std::path::Path,
) -> Result<Option<Membership>, CliError> {
    let partition = storage::partition_dir(&config.metadata_log_dir, storage::METADATA_TOPIC);
    let Some(records) = storage::read_bootstrap_checkpoint(&partition)
        .map_err(|e| CliError::usage(e.to_string()))?
    else {
        return Ok(None);
    };
    let dir = config.metadata_log_dir.display().to_string();
    if !config.voters.is_empty() {
        return Err(CliError::usage(format!(
            "{}: controller.quorum.voters is set, but {dir} was formatted for a dynamic quorum \
             (kraft.version 1, voters in its bootstrap checkpoint): remove controller.quorum.voters",
            config.source.display()
        )));
    }
    let mut history = VoterSetHistory::new(None);
    history
        .load_snapshot(storage::BOOTSTRAP_SNAPSHOT_ID.offset, &records)
        .map_err(|e| CliError::usage(format!("{dir}: bootstrap checkpoint: {e}")))?;
    if history.kraft_version() != DYNAMIC_KRAFT_VERSION {
        return Err(CliError::usage(format!(
            "{dir}: the bootstrap checkpoint sets kraft.version {}, not {DYNAMIC_KRAFT_VERSION}",
            history.kraft_version()
        )));
    }
    // The checkpoint ends at offset 0: its records sit just before the log.
    let membership = match history.at_or_before(Offset(0)) {
        Some(voters) => membership(config, meta, voters),
        None => joining(config, &dir)?,
    };
    storage::copy_bootstrap_checkpoint(&partition, log_partition)
        .map_err(|e| CliError::usage(format!("cannot copy the bootstrap checkpoint: {e}")))?;
    Ok(Some(membership))
}

/// A node formatted to join (`--no-initial-controllers`) knows no voter: it needs bootstrap
/// servers to find the leader.
fn joining(config: &NodeConfig, dir: &str) -> Result<Membership, CliError> {
    if config.bootstrap_servers.is_empty() {
        return Err(CliError::usage(format!(
            "{dir} was formatted to join a dynamic quorum (--no-initial-controllers): set \
             controller.quorum.bootstrap.servers in {} so that it can find the leader",
            config.source.display()
        )));
    }
    tracing::info!(
        "formatted to join a dynamic quorum: starting as an observer that finds the leader through controller.quorum.bootstrap.servers"
    );
    Ok(Membership::Observer)
}

/// Whether this replica is one of the checkpoint's voters: the same id and directory id. A
/// node with a voter's id but another directory id (a replaced disk) is not that voter: it is
/// told so plainly and runs as an observer.
fn membership(config: &NodeConfig, meta: &MetaProperties, voters: &VoterSet) -> Membership {
    let me = ReplicaKey {
        id: config.node_id,
        directory_id: meta.directory_id,
    };
    if voters.is_voter(me) {
        tracing::info!(
            voters = %voters,
            "a dynamic quorum (kraft.version 1): the voters come from the log, starting with the bootstrap checkpoint's"
        );
        return Membership::Voter;
    }
    match voters.get(config.node_id) {
        Some(voter) => tracing::warn!(
            node_id = %config.node_id,
            voter_directory_id = %voter.key.directory_id.map_or("none".to_string(), |d| d.to_string()),
            directory_id = %meta.directory_id.map_or("none".to_string(), |d| d.to_string()),
            "this directory is not the one voter {} was formatted with (a replaced or wiped disk?): running as an observer until it is added as a voter again",
            config.node_id
        ),
        None => tracing::info!(
            voters = %voters,
            "not a voter of the bootstrap checkpoint: running as an observer"
        ),
    }
    Membership::Observer
}
