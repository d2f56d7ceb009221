//! A leader's bookkeeping: where each voter's log ends (its last fetch offset), the high
//! watermark those imply, which voters fetched since the last check-quorum, what it knows of the
//! observers that fetch with an id (for DescribeQuorum only: they never count towards the high
//! watermark or check-quorum), and fetches parked until data or a high-watermark change arrives.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use super::io::VoterChangeId;
use super::io::{InboundId, ProposalId};
use super::message::FetchRequest;
use crate::types::{Epoch, NodeId, Offset};
use crate::uuid::Uuid;

/// What the leader knows of one replica that fetches from it (a voter or an observer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplicaProgress {
    /// The voter's durable log end offset, as its last fetch told.
    pub end_offset: Option<Offset>,
    pub last_fetch: Option<Duration>,
    /// The latest time the voter was known to hold everything the leader had (Kafka's
    /// lastCaughtUpTimestamp): a fetch at the leader's log end is caught up now, and one at
    /// the log end of the previous fetch was caught up when that fetch came.
    pub last_caught_up: Option<Duration>,
    /// The leader's log end offset when the voter last fetched.
    pub leader_end_at_last_fetch: Option<Offset>,
    /// The directory id its last fetch named.
    pub directory_id: Option<Uuid>,
}

impl ReplicaProgress {
    /// Records a fetch at `fetch_offset`, at `now`, while the leader's log ends at `leader_end`.
    pub fn fetched(&mut self, fetch_offset: Offset, leader_end: Offset, now: Duration) {
        let caught_up_since = if fetch_offset >= leader_end {
            Some(now)
        } else if self
            .leader_end_at_last_fetch
            .is_some_and(|end| fetch_offset >= end)
        {
            self.last_fetch
        } else {
            None
        };
        if let Some(at) = caught_up_since {
            self.last_caught_up = Some(self.last_caught_up.map_or(at, |t| t.max(at)));
        }
        self.end_offset = Some(fetch_offset);
        self.leader_end_at_last_fetch = Some(leader_end);
        self.last_fetch = Some(now);
    }
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

/// Most observers the leader remembers. An observer's id is whatever its fetch claims (over
/// PLAINTEXT nothing binds it), so the map is bounded: a full map forgets the observer that
/// fetched least recently.
pub const MAX_TRACKED_OBSERVERS: usize = 256;

/// An observer that has not fetched for this long is forgotten, as Kafka's leader forgets it
/// (its observer session timeout, 5 minutes).
pub const OBSERVER_SESSION_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderState {
    /// The offset of this epoch's LeaderChange record: the high watermark must pass it.
    pub epoch_start_offset: Offset,
    pub progress: BTreeMap<NodeId, ReplicaProgress>,
    /// Observers that fetched with an id, by that id; reported, never counted.
    pub observers: BTreeMap<NodeId, ReplicaProgress>,
    /// Voters (other than the leader) that fetched since the check-quorum timer was last reset.
    pub fetched_since_check: BTreeSet<NodeId>,
    pub check_quorum_deadline: Duration,
    pub begin_quorum_deadline: Duration,
    pub parked: Vec<ParkedFetch>,
    /// Proposals appended in this epoch and not yet committed, in offset order.
    pub pending: VecDeque<PendingProposal>,
    /// The operator's voter change waiting for its Voters record to commit, if any.
    pub voter_change: Option<PendingVoterChange>,
}

/// Who asked for a voter change, to be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeAsker {
    /// An operator, through the node's API or the Kafka face.
    Operator(VoterChangeId),
    /// A replica changing its own entry over the peer protocol.
    Peer(InboundId),
}

/// A voter change this leader appended, answered once its Voters record commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingVoterChange {
    pub asker: ChangeAsker,
    /// The offset of the Voters record that made the change.
    pub offset: Offset,
    pub deadline: Duration,
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
                .map(|v| (*v, ReplicaProgress::default()))
                .collect(),
            observers: BTreeMap::new(),
            fetched_since_check: BTreeSet::new(),
            check_quorum_deadline: now + check_quorum,
            begin_quorum_deadline: now,
            parked: Vec::new(),
            pending: VecDeque::new(),
            voter_change: None,
        }
    }

    /// The voters changed to `voters`: a removed voter's progress is kept as an observer's, an
    /// added one starts from what it did as an observer.
    pub fn set_voters(&mut self, voters: &BTreeSet<NodeId>) {
        let removed: Vec<NodeId> = self
            .progress
            .keys()
            .filter(|id| !voters.contains(id))
            .copied()
            .collect();
        for id in removed {
            if let Some(p) = self.progress.remove(&id) {
                self.observers.insert(id, p);
            }
        }
        for id in voters {
            if !self.progress.contains_key(id) {
                let p = self.observers.remove(id).unwrap_or_default();
                self.progress.insert(*id, p);
            }
        }
        self.fetched_since_check.retain(|id| voters.contains(id));
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

    /// Records an observer's fetch, making room by forgetting the least recently fetching one.
    pub fn observer_fetched(
        &mut self,
        id: NodeId,
        directory_id: Option<Uuid>,
        fetch_offset: Offset,
        leader_end: Offset,
        now: Duration,
    ) {
        if !self.observers.contains_key(&id) && self.observers.len() >= MAX_TRACKED_OBSERVERS {
            let stalest = self
                .observers
                .iter()
                .min_by_key(|(_, p)| p.last_fetch)
                .map(|(id, _)| *id);
            if let Some(stalest) = stalest {
                self.observers.remove(&stalest);
            }
        }
        let observer = self.observers.entry(id).or_default();
        if observer.directory_id != directory_id {
            // Another incarnation of the id (a replaced disk): what the old one did is not its.
            *observer = ReplicaProgress {
                directory_id,
                ..ReplicaProgress::default()
            };
        }
        observer.fetched(fetch_offset, leader_end, now);
    }

    /// Forgets observers that have not fetched within the session timeout.
    pub fn expire_observers(&mut self, now: Duration) {
        self.observers.retain(|_, p| {
            p.last_fetch
                .is_some_and(|t| now.saturating_sub(t) < OBSERVER_SESSION_TIMEOUT)
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_voter_is_caught_up_at_the_leaders_end_or_at_the_end_of_its_previous_fetch() {
        let mut p = ReplicaProgress::default();
        // Behind the leader's end (10) on its first fetch: not known to be caught up.
        p.fetched(Offset(5), Offset(10), ms(100));
        assert_eq!((p.last_fetch, p.last_caught_up), (Some(ms(100)), None));
        // Now at the end the leader had at its last fetch: caught up as of that fetch.
        p.fetched(Offset(10), Offset(12), ms(200));
        assert_eq!(
            (p.last_fetch, p.last_caught_up),
            (Some(ms(200)), Some(ms(100)))
        );
        // At the leader's end: caught up now.
        p.fetched(Offset(12), Offset(12), ms(300));
        assert_eq!(p.last_caught_up, Some(ms(300)));
        // Falling behind never moves it back.
        p.fetched(Offset(11), Offset(20), ms(400));
        assert_eq!(
            (p.end_offset, p.last_caught_up),
            (Some(Offset(11)), Some(ms(300)))
        );
    }
}
