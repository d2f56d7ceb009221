//! What a reader of a node's metrics gets: every value at one instant.
//!
//! Owns the plain-data types `NodeHandle::metrics` returns and the endpoint renders, and the
//! raft gauges' values as the driver hands them over. It must never compute or record a value
//! (`super::NodeMetrics` does).

use super::labels::{BatchRejection, CurrentState, FrameRejection};

/// The values of Kafka's raft gauges, as the driver sets them after every step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftState {
    pub state: CurrentState,
    /// -1: unknown.
    pub leader: i64,
    /// -1: none.
    pub vote: i64,
    pub epoch: i64,
    /// -1: unknown.
    pub high_watermark: i64,
    pub log_end_offset: i64,
    pub log_end_epoch: i64,
}

/// Kafka's `raft-metrics` group, under Kafka's names (times in ms, rates per second, NaN for an
/// avg or max with nothing recorded in the window).
#[derive(Debug, Clone, PartialEq)]
pub struct RaftMetrics {
    pub current_state: CurrentState,
    pub current_leader: i64,
    pub current_vote: i64,
    pub current_epoch: i64,
    pub high_watermark: i64,
    pub log_end_offset: i64,
    pub log_end_epoch: i64,
    pub number_unknown_voter_connections: i64,
    pub commit_latency_avg: f64,
    pub commit_latency_max: f64,
    pub election_latency_avg: f64,
    pub election_latency_max: f64,
    pub append_records_rate: f64,
    pub fetch_records_rate: f64,
    pub poll_idle_ratio_avg: f64,
}

/// Every metric of a node at one instant (the endpoint renders exactly these, plus the
/// histograms' buckets).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    pub raft: RaftMetrics,
    /// Data records and bytes (control batches included) appended to the log.
    pub appended_records: u64,
    pub appended_bytes: u64,
    pub fsyncs: u64,
    pub fsync_seconds_sum: f64,
    pub snapshots_written: u64,
    pub snapshot_bytes_sum: u64,
    pub rejected_frames: [(FrameRejection, u64); FrameRejection::ALL.len()],
    pub rejected_batches: [(BatchRejection, u64); BatchRejection::ALL.len()],
    pub connections_open: i64,
    pub connections_accepted: u64,
    pub connections_refused: u64,
}
