//! `kraft server` on a metadata directory formatted for a dynamic quorum (kraft.version 1,
//! `kraft storage format --standalone` or `--initial-controllers`): the voters come from the
//! bootstrap checkpoint instead of `controller.quorum.voters`.
//!
//! Owns only that start-up step: reading the checkpoint through the voter-set history and
//! handing the voters' ids and controller endpoints to the node as a fixed voter set. It must
//! never write anything, and never let a replica whose directory id differs from the voter's
//! (a wiped or replaced disk) run as that voter. Voter changes (AddRaftVoter, RemoveRaftVoter,
//! UpdateRaftVoter) and joining (`--no-initial-controllers`) are not supported yet, so a node
//! that would need them is refused with one line.

use std::collections::BTreeMap;

use super::CliError;
use crate::config::{Endpoint, NodeConfig, VoterSet as ConfiguredVoters};
use crate::raft::{ReplicaKey, VoterSet, VoterSetHistory};
use crate::storage::{self, MetaProperties};
use crate::types::Offset;

/// The kraft.version of a quorum whose voters live in the log and snapshots.
const DYNAMIC_KRAFT_VERSION: i16 = 1;

/// `config` with its voters taken from the bootstrap checkpoint of its metadata directory, if
/// it has one; unchanged otherwise (a static quorum).
pub fn with_bootstrap_voters(
    mut config: NodeConfig,
    meta: &MetaProperties,
) -> Result<NodeConfig, CliError> {
    let partition = storage::partition_dir(&config.metadata_log_dir, storage::METADATA_TOPIC);
    let Some(records) = storage::read_bootstrap_checkpoint(&partition)
        .map_err(|e| CliError::usage(e.to_string()))?
    else {
        return Ok(config);
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
    let voters = bootstrap_voters(&history, &dir)?;
    check_identity(&config, meta, voters, &dir)?;
    config.voters = configured(&config, voters, &dir)?;
    tracing::info!(
        voters = %voters,
        "a dynamic quorum (kraft.version 1): the voters come from the bootstrap checkpoint"
    );
    Ok(config)
}

/// The voter set a kraft.version 1 checkpoint holds.
fn bootstrap_voters<'a>(history: &'a VoterSetHistory, dir: &str) -> Result<&'a VoterSet, CliError> {
    if history.kraft_version() != DYNAMIC_KRAFT_VERSION {
        return Err(CliError::usage(format!(
            "{dir}: the bootstrap checkpoint sets kraft.version {}, not {DYNAMIC_KRAFT_VERSION}",
            history.kraft_version()
        )));
    }
    // The checkpoint ends at offset 0: its records sit just before the log.
    history.at_or_before(Offset(0)).ok_or_else(|| {
        CliError::usage(format!(
            "{dir} was formatted to join a dynamic quorum (--no-initial-controllers), which kraft \
             cannot do yet (no AddRaftVoter): format it with --standalone or --initial-controllers"
        ))
    })
}

/// A node listed as a voter must be that voter's replica: the same metadata directory id.
fn check_identity(
    config: &NodeConfig,
    meta: &MetaProperties,
    voters: &VoterSet,
    dir: &str,
) -> Result<(), CliError> {
    let Some(voter) = voters.get(config.node_id) else {
        return Ok(());
    };
    let me = ReplicaKey {
        id: config.node_id,
        directory_id: meta.directory_id,
    };
    if voters.is_voter(me) {
        return Ok(());
    }
    let mine = meta
        .directory_id
        .map_or("none".to_string(), |d| d.to_string());
    Err(CliError::usage(format!(
        "{dir}: voter {} of the bootstrap checkpoint has directory id {}, but this directory's is \
         {mine}: a replaced disk is not that voter (and kraft cannot yet run it as an observer)",
        config.node_id,
        voter
            .key
            .directory_id
            .map_or("none".to_string(), |d| d.to_string())
    )))
}

/// The voters as the node dials them: each one's endpoint on this node's controller listener.
fn configured(
    config: &NodeConfig,
    voters: &VoterSet,
    dir: &str,
) -> Result<ConfiguredVoters, CliError> {
    let listener = &config.controller_listener().name;
    let mut map = BTreeMap::new();
    for voter in voters.voters() {
        let address = voter.endpoints.get(listener).ok_or_else(|| {
            CliError::usage(format!(
                "{dir}: voter {} of the bootstrap checkpoint has no endpoint on listener {listener}",
                voter.key.id
            ))
        })?;
        let endpoint = Endpoint {
            host: address.host.clone(),
            port: address.port,
        };
        map.insert(voter.key.id, endpoint);
    }
    Ok(ConfiguredVoters(map))
}
