//! What the replication driver records: Kafka's raft metrics, derived from the core's state
//! after each step and from the actions the driver executes.
//!
//! Owns the driver-side bookkeeping Kafka's metrics need and the core does not keep: when the
//! current election began, and when each of the leader's uncommitted batches was appended (for
//! `commit-latency`). Used by the driver actor only (no locks of its own); it must never change
//! what the driver does, and reads the core only through its public accessors.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::{BatchRejection, CurrentState, NodeMetrics, RaftState};
use crate::raft::{ProposeError, Replica, RoleKind};
use crate::types::{Epoch, Offset};

/// Leader batches remembered until they commit, for `commit-latency`. One per append; beyond
/// this (a leader far ahead of its quorum) further batches go unmeasured rather than growing
/// memory. Equal to the driver's cap on appends waiting for their outcome.
const MAX_TRACKED_BATCHES: usize = crate::actors::driver::MAX_PENDING_APPENDS;

/// A leader batch waiting to commit.
#[derive(Debug, Clone, Copy)]
struct Uncommitted {
    /// The offset after the batch: committed once the high watermark reaches it.
    next_offset: Offset,
    appended_ms: u64,
    records: u64,
}

/// The driver's recorder of Kafka's raft metrics.
#[derive(Debug)]
pub struct RaftRecorder {
    metrics: Arc<NodeMetrics>,
    /// Role and epoch after the previous step.
    last: Option<(RoleKind, Epoch)>,
    election_started_ms: Option<u64>,
    uncommitted: VecDeque<Uncommitted>,
}

impl RaftRecorder {
    pub fn new(metrics: Arc<NodeMetrics>) -> Self {
        RaftRecorder {
            metrics,
            last: None,
            election_started_ms: None,
            uncommitted: VecDeque::new(),
        }
    }

    /// After a step (or a rebuild) of the core: the gauges, and an election's start or end.
    pub fn observe(&mut self, replica: &Replica) {
        let now = self.metrics.now_ms();
        self.role_is(replica.role(), replica.epoch(), now);
        self.metrics.set_raft_state(raft_state(replica));
    }

    /// The core's role and epoch at `now_ms`: an election's start or end.
    fn role_is(&mut self, role: RoleKind, epoch: Epoch, now_ms: u64) {
        if self.last == Some((role, epoch)) {
            return;
        }
        match role {
            RoleKind::Prospective => self.election_started_ms = Some(now_ms),
            // Kafka restarts the clock at every new candidacy (each epoch's); one that follows a
            // won pre-vote continues the election the pre-vote began.
            RoleKind::Candidate => {
                let after_pre_vote = matches!(self.last, Some((RoleKind::Prospective, _)));
                if !after_pre_vote || self.election_started_ms.is_none() {
                    self.election_started_ms = Some(now_ms);
                }
            }
            RoleKind::Leader | RoleKind::Follower => {
                if let Some(start) = self.election_started_ms.take() {
                    let took = now_ms.saturating_sub(start) as f64;
                    self.metrics.record_election_latency(took, now_ms);
                }
            }
            RoleKind::Unattached | RoleKind::Resigned => {}
        }
        if role != RoleKind::Leader {
            // What the old leader appended commits (or not) under another leader.
            self.uncommitted.clear();
        }
        self.last = Some((role, epoch));
    }

    /// Batches the driver is about to append to the log, as `leader` or as follower.
    pub fn appended(&mut self, batches: &Bytes, leader: bool) -> (u64, u64) {
        let now = self.metrics.now_ms();
        let (mut total_records, mut rest) = (0, &batches[..]);
        while let Ok(Some(size)) = crate::record::next_batch_size(rest) {
            if let Ok(header) = crate::record::BatchHeader::parse(&rest[..size]) {
                let records = if header.is_control() {
                    0
                } else {
                    (header.last_offset().0 - header.base_offset().0 + 1) as u64
                };
                total_records += records;
                self.metrics
                    .record_appended(records, size as u64, leader, now);
                if leader && records > 0 && self.uncommitted.len() < MAX_TRACKED_BATCHES {
                    self.uncommitted.push_back(Uncommitted {
                        next_offset: Offset(header.last_offset().0 + 1),
                        appended_ms: now,
                        records,
                    });
                }
            }
            rest = &rest[size..];
        }
        (total_records, batches.len() as u64)
    }

    /// The high watermark advanced to `hw`: the leader's batches below it committed.
    pub fn committed(&mut self, hw: Offset) {
        let now = self.metrics.now_ms();
        while let Some(batch) = self.uncommitted.front().copied() {
            if batch.next_offset > hw {
                break;
            }
            self.uncommitted.pop_front();
            let elapsed = now.saturating_sub(batch.appended_ms) as f64;
            self.metrics
                .record_commit_latency(elapsed / batch.records as f64, now);
        }
    }

    /// A follower refused what it fetched from the leader.
    pub fn rejected_batch(&self, reason: BatchRejection) {
        self.metrics.record_rejected_batch(reason);
    }

    /// The core refused a proposal; a redirect (not the leader) is not a refused batch.
    pub fn refused_proposal(&self, refusal: &ProposeError) {
        let reason = match refusal {
            ProposeError::NotLeader { .. } => return,
            ProposeError::TooLarge => BatchRejection::ProposedTooLarge,
            ProposeError::InvalidBatch => BatchRejection::ProposedInvalidBatch,
            ProposeError::OutOfOrderSequence => BatchRejection::ProposedOutOfOrderSequence,
            ProposeError::InvalidProducerEpoch => BatchRejection::ProposedInvalidProducerEpoch,
        };
        self.metrics.record_rejected_batch(reason);
    }

    /// The driver handled one message, starting at `started`.
    pub fn busy_since(&self, started: Instant) {
        self.metrics
            .record_busy(started.elapsed(), self.metrics.now_ms());
    }
}

/// Kafka's gauges from the core's state.
fn raft_state(replica: &Replica) -> RaftState {
    let local = replica.config().local_id;
    let is_voter = replica.is_voter();
    let role = replica.role();
    let state = match role {
        RoleKind::Leader => CurrentState::Leader,
        RoleKind::Candidate => CurrentState::Candidate,
        RoleKind::Prospective => CurrentState::Prospective,
        RoleKind::Follower if is_voter => CurrentState::Follower,
        RoleKind::Follower => CurrentState::Observer,
        RoleKind::Unattached if replica.voted_id().is_some() => CurrentState::Voted,
        RoleKind::Unattached | RoleKind::Resigned => CurrentState::Unattached,
    };
    // Kafka reports its own id while it leads or stands, the vote while unattached, else none.
    let vote = match role {
        RoleKind::Leader | RoleKind::Candidate | RoleKind::Prospective => local.map(|n| n.0),
        RoleKind::Unattached => replica.voted_id().map(|n| n.0),
        RoleKind::Follower | RoleKind::Resigned => None,
    };
    let log = replica.log();
    RaftState {
        state,
        leader: replica.leader_id().map_or(-1, |n| i64::from(n.0)),
        vote: vote.map_or(-1, i64::from),
        epoch: i64::from(replica.epoch().0),
        high_watermark: replica.high_watermark().map_or(-1, |o| o.0),
        log_end_offset: log.log_end_offset().0,
        log_end_epoch: i64::from(log.last_fetched_epoch().0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchBuilder, BatchKind};

    fn batch(base: i64, records: usize) -> Bytes {
        let mut b = BatchBuilder::new(BatchKind::Data, Offset(base), Epoch(1));
        for _ in 0..records {
            b.append(0, None, Some(b"v"), &[]).unwrap();
        }
        b.build().unwrap()
    }

    #[test]
    fn commit_latency_is_measured_per_leader_batch_once_the_high_watermark_passes_it() {
        let metrics = Arc::new(NodeMetrics::new());
        let mut recorder = RaftRecorder::new(metrics.clone());
        let mut both = batch(0, 4).to_vec();
        both.extend_from_slice(&batch(4, 2));
        assert_eq!(
            recorder.appended(&Bytes::from(both.clone()), true),
            (6, both.len() as u64)
        );
        // The high watermark inside the first batch commits nothing.
        recorder.committed(Offset(3));
        assert!(metrics.snapshot().raft.commit_latency_avg.is_nan());
        recorder.committed(Offset(4));
        recorder.committed(Offset(6));
        let m = metrics.snapshot();
        // Two batches measured (per record, so within the elapsed milliseconds).
        assert!(m.raft.commit_latency_max >= 0.0 && m.raft.commit_latency_max < 1_000.0);
        assert!(m.raft.append_records_rate > 0.0 && m.raft.fetch_records_rate == 0.0);
        assert!(recorder.uncommitted.is_empty());
    }

    #[test]
    fn election_latency_runs_from_the_pre_vote_or_the_latest_candidacy_to_the_outcome() {
        let metrics = Arc::new(NodeMetrics::new());
        let mut r = RaftRecorder::new(metrics.clone());
        let latencies = |m: &NodeMetrics| {
            let s = m.snapshot().raft;
            (s.election_latency_avg, s.election_latency_max)
        };
        // A follower from the start measured nothing.
        r.role_is(RoleKind::Unattached, Epoch(0), 0);
        r.role_is(RoleKind::Follower, Epoch(1), 10);
        assert!(latencies(&metrics).0.is_nan());
        // Pre-vote at 100, candidacy at 150 (same election), leader at 400: 300 ms.
        r.role_is(RoleKind::Prospective, Epoch(1), 100);
        r.role_is(RoleKind::Candidate, Epoch(2), 150);
        r.role_is(RoleKind::Leader, Epoch(2), 400);
        assert_eq!(latencies(&metrics), (300.0, 300.0));
        // A lost candidacy is followed by a new one (new epoch): the clock restarts there.
        r.role_is(RoleKind::Unattached, Epoch(3), 500);
        r.role_is(RoleKind::Prospective, Epoch(3), 600);
        r.role_is(RoleKind::Candidate, Epoch(4), 650);
        r.role_is(RoleKind::Candidate, Epoch(5), 1_000);
        r.role_is(RoleKind::Follower, Epoch(5), 1_100);
        assert_eq!(latencies(&metrics), (200.0, 300.0));
        // The same role and epoch again is no new election.
        r.role_is(RoleKind::Follower, Epoch(5), 2_000);
        assert_eq!(latencies(&metrics), (200.0, 300.0));
    }

    #[test]
    fn a_followers_appends_feed_the_fetch_rate_and_no_commit_latency() {
        let metrics = Arc::new(NodeMetrics::new());
        let mut recorder = RaftRecorder::new(metrics.clone());
        recorder.appended(&batch(0, 3), false);
        recorder.committed(Offset(3));
        let m = metrics.snapshot();
        assert!(m.raft.commit_latency_avg.is_nan());
        assert!(m.raft.fetch_records_rate > 0.0 && m.raft.append_records_rate == 0.0);
        assert_eq!(m.appended_records, 3);
    }
}
