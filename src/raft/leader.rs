//! A leader's bookkeeping: where each voter's log ends (its last fetch offset), the high
//! watermark those imply, which voters fetched since the last check-quorum, and fetches parked
//! until data or a high-watermark change arrives.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use super::io::{InboundId, ProposalId};
use super::message::FetchRequest;
use crate::types::{Epoch, NodeId, Offset};

/// What the leader knows of one voter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VoterProgress {
    /// The voter's durable log end offset, as its last fetch told.
    pub end_offset: Option<Offset>,
    pub last_fetch: Option<Duration>,
}

/// A fetch with nothing to return yet, answered when data arrives, the high watermark moves, or
/// its wait expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedFetch {
    pub from: InboundId,
    pub request: FetchRequest,
    pub deadline: Duration,
}

/// Most fetches parked at once: one per fetching replica is normal, so this only bounds a
/// misbehaving client that sends many.
pub const MAX_PARKED_FETCHES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderState {
    /// The offset of this epoch's LeaderChange record: the high watermark must pass it.
    pub epoch_start_offset: Offset,
    pub progress: BTreeMap<NodeId, VoterProgress>,
    /// Voters (other than the leader) that fetched since the check-quorum timer was last reset.
    pub fetched_since_check: BTreeSet<NodeId>,
    pub check_quorum_deadline: Duration,
    pub begin_quorum_deadline: Duration,
    pub parked: Vec<ParkedFetch>,
    /// Proposals appended in this epoch and not yet committed, in offset order.
    pub pending: VecDeque<PendingProposal>,
}

/// A proposal appended by this leader, waiting for the high watermark to pass it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingProposal {
    pub id: ProposalId,
    /// The epoch it was appended in.
    pub epoch: Epoch,
    pub first: Offset,
    pub last: Offset,
}

impl LeaderState {
    pub fn new(
        voters: &BTreeSet<NodeId>,
        epoch_start_offset: Offset,
        now: Duration,
        check_quorum: Duration,
    ) -> Self {
        LeaderState {
            epoch_start_offset,
            progress: voters
                .iter()
                .map(|v| (*v, VoterProgress::default()))
                .collect(),
            fetched_since_check: BTreeSet::new(),
            check_quorum_deadline: now + check_quorum,
            begin_quorum_deadline: now,
            parked: Vec::new(),
            pending: VecDeque::new(),
        }
    }

    /// The offset a majority of voters hold (the leader's own entry included), if it passes the
    /// start of this epoch; `None` otherwise.
    pub fn majority_offset(&self) -> Option<Offset> {
        let mut ends: Vec<Offset> = self
            .progress
            .values()
            .map(|p| p.end_offset.unwrap_or(Offset(-1)))
            .collect();
        ends.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = ends[ends.len() / 2];
        (candidate > self.epoch_start_offset).then_some(candidate)
    }

    /// Removes and returns the pending proposals wholly below `high_watermark`.
    pub fn take_committed(&mut self, high_watermark: Offset) -> Vec<PendingProposal> {
        let done = self.pending.partition_point(|p| p.last < high_watermark);
        self.pending.drain(..done).collect()
    }

    /// Voters other than `local`, most caught up first (ties by id): the preferred successors.
    pub fn successors(&self, local: NodeId) -> Vec<NodeId> {
        let mut others: Vec<(NodeId, Offset)> = self
            .progress
            .iter()
            .filter(|(id, _)| **id != local)
            .map(|(id, p)| (*id, p.end_offset.unwrap_or(Offset(-1))))
            .collect();
        others.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        others.into_iter().map(|(id, _)| id).collect()
    }
}
