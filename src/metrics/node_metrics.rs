//! One node's metrics: the values the actors record and every reader (the Prometheus endpoint,
//! `NodeHandle::metrics`) reads.
//!
//! Owns the storage of each metric (atomics for gauges and counters; a small lock per windowed
//! sensor, taken once per batch, never per record) and the [`MetricsSnapshot`] every reader gets.
//! It must never decide anything about the protocol nor block: the actors call its `record_*`
//! methods with what they saw; the raft core knows nothing of it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use super::labels::{BatchRejection, CurrentState, FrameRejection};
use super::snapshot::{MetricsSnapshot, RaftMetrics, RaftState};
use super::window::{IdleRatio, Windowed};

/// fsync buckets: 50 µs doubling 16 times up to ~1.6 s, from a fast NVMe flush to a disk in
/// trouble (an fsync slower than that lands in `+Inf`, which is itself the signal).
const FSYNC_BUCKET_START_SECONDS: f64 = 50e-6;
const FSYNC_BUCKETS: u16 = 16;
/// Snapshot write durations: 1 ms doubling 16 times up to ~33 s.
const SNAPSHOT_SECONDS_START: f64 = 1e-3;
const SNAPSHOT_SECONDS_BUCKETS: u16 = 16;
/// Snapshot sizes: 1 KiB quadrupling 12 times up to 4 GiB.
const SNAPSHOT_BYTES_START: f64 = 1024.0;
const SNAPSHOT_BYTES_BUCKETS: u16 = 12;

/// Kafka's raft gauges as last set by the driver.
#[derive(Debug)]
struct RaftGauges {
    state: AtomicI64,
    leader: AtomicI64,
    vote: AtomicI64,
    epoch: AtomicI64,
    high_watermark: AtomicI64,
    log_end_offset: AtomicI64,
    log_end_epoch: AtomicI64,
}

/// A node's metrics. Shared (`Arc`) by its actors, its handle and its metrics endpoint, and kept
/// across node restarts (counters do not go back to zero).
#[derive(Debug)]
pub struct NodeMetrics {
    origin: Instant,
    raft: RaftGauges,
    commit_latency: Mutex<Windowed>,
    election_latency: Mutex<Windowed>,
    append_records: Mutex<Windowed>,
    fetch_records: Mutex<Windowed>,
    poll_idle: Mutex<IdleRatio>,
    appended_records: AtomicU64,
    appended_bytes: AtomicU64,
    pub(super) fsync_seconds: Histogram,
    pub(super) snapshot_seconds: Histogram,
    pub(super) snapshot_bytes: Histogram,
    /// The histograms' counts and sums for the snapshot (the crate reads them back only in
    /// its tests).
    fsyncs: AtomicU64,
    fsync_nanos: AtomicU64,
    snapshots: AtomicU64,
    snapshot_bytes_total: AtomicU64,
    rejected_frames: [AtomicU64; FrameRejection::ALL.len()],
    rejected_batches: [AtomicU64; BatchRejection::ALL.len()],
    connections_open: AtomicI64,
    connections_accepted: AtomicU64,
    connections_refused: AtomicU64,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics {
            origin: Instant::now(),
            raft: RaftGauges {
                state: AtomicI64::new(CurrentState::Unattached.code()),
                leader: AtomicI64::new(-1),
                vote: AtomicI64::new(-1),
                epoch: AtomicI64::new(0),
                high_watermark: AtomicI64::new(-1),
                log_end_offset: AtomicI64::new(0),
                log_end_epoch: AtomicI64::new(0),
            },
            commit_latency: Default::default(),
            election_latency: Default::default(),
            append_records: Default::default(),
            fetch_records: Default::default(),
            poll_idle: Default::default(),
            appended_records: AtomicU64::new(0),
            appended_bytes: AtomicU64::new(0),
            fsync_seconds: Histogram::new(exponential_buckets(
                FSYNC_BUCKET_START_SECONDS,
                2.0,
                FSYNC_BUCKETS,
            )),
            snapshot_seconds: Histogram::new(exponential_buckets(
                SNAPSHOT_SECONDS_START,
                2.0,
                SNAPSHOT_SECONDS_BUCKETS,
            )),
            snapshot_bytes: Histogram::new(exponential_buckets(
                SNAPSHOT_BYTES_START,
                4.0,
                SNAPSHOT_BYTES_BUCKETS,
            )),
            fsyncs: AtomicU64::new(0),
            fsync_nanos: AtomicU64::new(0),
            snapshots: AtomicU64::new(0),
            snapshot_bytes_total: AtomicU64::new(0),
            rejected_frames: Default::default(),
            rejected_batches: Default::default(),
            connections_open: AtomicI64::new(0),
            connections_accepted: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
        }
    }
}

/// Locks a sensor; a panic while holding one cannot leave its samples half-written in a way
/// that matters (the worst is one odd sample), so a poisoned lock is used as is.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl NodeMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Milliseconds since these metrics were made: the sensors' monotonic clock.
    pub fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// The raft gauges after a step of the core.
    pub fn set_raft_state(&self, s: RaftState) {
        let g = &self.raft;
        g.state.store(s.state.code(), Relaxed);
        g.leader.store(s.leader, Relaxed);
        g.vote.store(s.vote, Relaxed);
        g.epoch.store(s.epoch, Relaxed);
        g.high_watermark.store(s.high_watermark, Relaxed);
        g.log_end_offset.store(s.log_end_offset, Relaxed);
        g.log_end_epoch.store(s.log_end_epoch, Relaxed);
    }

    /// A batch appended to the log: `records` data records (0 for control batches) and
    /// `bytes`, as leader (`append-records-rate`) or as follower (`fetch-records-rate`).
    pub fn record_appended(&self, records: u64, bytes: u64, as_leader: bool, now_ms: u64) {
        self.appended_records.fetch_add(records, Relaxed);
        self.appended_bytes.fetch_add(bytes, Relaxed);
        if records > 0 {
            let sensor = if as_leader {
                &self.append_records
            } else {
                &self.fetch_records
            };
            lock(sensor).record(records as f64, now_ms);
        }
    }

    /// One leader batch committed, `per_record_ms` being its commit time divided by its
    /// record count (Kafka's definition of `commit-latency`).
    pub fn record_commit_latency(&self, per_record_ms: f64, now_ms: u64) {
        lock(&self.commit_latency).record(per_record_ms, now_ms);
    }

    /// An election ended (leader or follower) `ms` after it began.
    pub fn record_election_latency(&self, ms: f64, now_ms: u64) {
        lock(&self.election_latency).record(ms, now_ms);
    }

    /// The driver worked for `busy` (handling one message), ending now.
    pub fn record_busy(&self, busy: Duration, now_ms: u64) {
        lock(&self.poll_idle).record_busy(busy.as_secs_f64() * 1000.0, now_ms);
    }

    pub fn record_fsync(&self, took: Duration) {
        self.fsync_seconds.observe(took.as_secs_f64());
        self.fsyncs.fetch_add(1, Relaxed);
        self.fsync_nanos.fetch_add(took.as_nanos() as u64, Relaxed);
    }

    pub fn record_snapshot(&self, bytes: u64, took: Duration) {
        self.snapshot_bytes.observe(bytes as f64);
        self.snapshot_seconds.observe(took.as_secs_f64());
        self.snapshots.fetch_add(1, Relaxed);
        self.snapshot_bytes_total.fetch_add(bytes, Relaxed);
    }

    pub fn record_rejected_frame(&self, reason: FrameRejection) {
        self.rejected_frames[reason as usize].fetch_add(1, Relaxed);
    }

    pub fn record_rejected_batch(&self, reason: BatchRejection) {
        self.rejected_batches[reason as usize].fetch_add(1, Relaxed);
    }

    pub fn connection_opened(&self) {
        self.connections_accepted.fetch_add(1, Relaxed);
        self.connections_open.fetch_add(1, Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Relaxed);
    }

    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Relaxed);
    }

    /// Every value now, computed as Kafka would at this instant.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let now = self.now_ms();
        let g = &self.raft;
        let (commit_avg, commit_max) = {
            let mut w = lock(&self.commit_latency);
            (w.avg(now), w.max(now))
        };
        let (election_avg, election_max) = {
            let mut w = lock(&self.election_latency);
            (w.avg(now), w.max(now))
        };
        MetricsSnapshot {
            raft: RaftMetrics {
                current_state: CurrentState::from_code(g.state.load(Relaxed)),
                current_leader: g.leader.load(Relaxed),
                current_vote: g.vote.load(Relaxed),
                current_epoch: g.epoch.load(Relaxed),
                high_watermark: g.high_watermark.load(Relaxed),
                log_end_offset: g.log_end_offset.load(Relaxed),
                log_end_epoch: g.log_end_epoch.load(Relaxed),
                // kraft dials every voter's configured address: none is ever unknown (Kafka
                // reports 0 today as well).
                number_unknown_voter_connections: 0,
                commit_latency_avg: commit_avg,
                commit_latency_max: commit_max,
                election_latency_avg: election_avg,
                election_latency_max: election_max,
                append_records_rate: lock(&self.append_records).rate_per_second(now),
                fetch_records_rate: lock(&self.fetch_records).rate_per_second(now),
                poll_idle_ratio_avg: lock(&self.poll_idle).idle_ratio(now),
            },
            appended_records: self.appended_records.load(Relaxed),
            appended_bytes: self.appended_bytes.load(Relaxed),
            fsyncs: self.fsyncs.load(Relaxed),
            fsync_seconds_sum: self.fsync_nanos.load(Relaxed) as f64 / 1e9,
            snapshots_written: self.snapshots.load(Relaxed),
            snapshot_bytes_sum: self.snapshot_bytes_total.load(Relaxed),
            rejected_frames: FrameRejection::ALL
                .map(|r| (r, self.rejected_frames[r as usize].load(Relaxed))),
            rejected_batches: BatchRejection::ALL
                .map(|r| (r, self.rejected_batches[r as usize].load(Relaxed))),
            connections_open: self.connections_open.load(Relaxed),
            connections_accepted: self.connections_accepted.load(Relaxed),
            connections_refused: self.connections_refused.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_codes_round_trip() {
        for s in CurrentState::ALL {
            assert_eq!(CurrentState::from_code(s.code()), s);
        }
    }

    #[test]
    fn leader_and_follower_appends_feed_different_rates() {
        let m = NodeMetrics::new();
        m.record_appended(300, 1000, true, 0);
        m.record_appended(0, 80, true, 0); // a control batch: bytes only
        let s = m.snapshot();
        assert_eq!((s.appended_records, s.appended_bytes), (300, 1080));
        assert!(s.raft.append_records_rate > 0.0);
        assert_eq!(s.raft.fetch_records_rate, 0.0);
    }

    #[test]
    fn rejections_count_by_reason() {
        let m = NodeMetrics::new();
        m.record_rejected_frame(FrameRejection::PeerPipelined);
        m.record_rejected_frame(FrameRejection::PeerPipelined);
        m.record_rejected_batch(BatchRejection::FetchedRecords);
        let s = m.snapshot();
        assert!(
            s.rejected_frames
                .contains(&(FrameRejection::PeerPipelined, 2))
        );
        assert!(
            s.rejected_batches
                .contains(&(BatchRejection::FetchedRecords, 1))
        );
        assert_eq!(s.rejected_frames.iter().map(|(_, n)| n).sum::<u64>(), 2);
    }
}
