//! What recovery found on disk, and the protocol core started from it. It never reads the disk
//! itself: the log executor fills it in.

use std::time::Duration;

use crate::raft::{
    Action, EpochStart, LogView, PersistedElection, ProducerStates, RaftConfig, Replica,
    VoterSetHistory,
};
use crate::types::{Offset, OffsetAndEpoch};

/// What the log store found on disk at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
    pub epochs: Vec<EpochStart>,
    pub election: Option<PersistedElection>,
    /// The newest snapshot in the partition directory.
    pub latest_snapshot: Option<OffsetAndEpoch>,
    /// A snapshot partly fetched from a leader, and how many bytes of it arrived.
    pub fetched_so_far: Option<(OffsetAndEpoch, u64)>,
    /// The log end the node had before `kraft storage repair` moved damage aside.
    pub repair_point: Option<OffsetAndEpoch>,
    /// Idempotent producers' recent batches, as the log's batch headers tell.
    pub producers: ProducerStates,
    /// The voter sets and kraft.version levels of a dynamic quorum: the newest snapshot's (or
    /// the bootstrap checkpoint's) KRaftVersion and Voters records, then those of the log's
    /// control batches after it. Empty for a static quorum (kraft.version 0).
    pub voter_history: VoterSetHistory,
}

impl Recovered {
    /// The core's picture of the recovered log (all of it durable: recovery fsynced it).
    pub fn log_view(&self) -> LogView {
        LogView::new(
            self.log_start_offset,
            self.log_end_offset,
            self.epochs.clone(),
        )
        .with_snapshot(self.latest_snapshot)
        .with_fetched_so_far(self.fetched_so_far)
        .with_repair_point(self.repair_point)
        .with_producers(self.producers.clone())
        .with_voter_history(self.voter_history.clone())
    }

    /// A fresh protocol core from this state, as at process start.
    pub fn start_replica(
        &self,
        config: RaftConfig,
        now: Duration,
        seed: u64,
    ) -> (Replica, Vec<Action>) {
        Replica::start(config, self.election, self.log_view(), now, seed)
    }
}
