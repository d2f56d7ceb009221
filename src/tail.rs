//! Following a quorum's committed log without a node id, as a consumer follows a topic: the
//! seed's id-less Raft client (KAFKA-12161).
//!
//! A [`Tail`] runs a whole kraft node with no node id: the same protocol core, driver and peer
//! connections as a server, so it finds the leader, follows leader changes and truncates on
//! divergence exactly as an observer does. Its fetches carry no replica id, so the leader keeps
//! no state for it (it never appears among DescribeQuorum's observers). Its log lives on an
//! in-memory disk ([`SimFs`]) that it snapshots only where the reader has got to (cleaning then
//! frees what was read), unless the reader falls further behind than [`TailLimits`] allows: so
//! nothing is written to the real disk and memory stays bounded. It never listens, never votes
//! and never appends.
//!
//! This module owns the follow loop: which committed records come next, and where a gap (a
//! stretch only a snapshot holds) is. It must never print (the `kraft tail` command formats)
//! and never hand out a record above the high watermark.

use std::time::Duration;

use bytes::Bytes;

use crate::actors::messages::NodeEvent;
use crate::node::{NodeError, NodeHandle, NodeOptions, NodeState, SnapshotPolicy};
use crate::raft::RoleKind;
use crate::record::{BatchIter, RecordError};
use crate::state_machine::OffsetOnlyState;
use crate::storage::{LogConfig, SimFs};
use crate::types::{Epoch, NodeId, Offset};

/// Most bytes one read of the tail's own log returns: a batch's worth, as a fetch returns.
const READ_BYTES: u32 = 1024 * 1024;
/// How long a wait for the next commit lasts before the tail looks again (a missed event, a
/// node that stopped): a check, not a poll for data.
const RECHECK: Duration = Duration::from_secs(1);
/// How long the tail follows no leader before it warns (once per such stretch): an unreachable
/// or stopped quorum would otherwise leave it silent for good.
const LEADERLESS_WARNING: Duration = Duration::from_secs(10);
/// Segment size of the in-memory log: small, so cleaning frees memory in small steps.
const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// The in-memory log is cleaned down to its latest snapshot once log and snapshots pass this.
const RETAINED_BYTES: u64 = 32 * 1024 * 1024;

/// When the tail snapshots its in-memory log, which is what lets cleaning free memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailLimits {
    /// Once the reader has caught up, a snapshot at most every this many appended bytes: the
    /// snapshot ends where the reader is, so cleaning never removes a record it has not read.
    pub snapshot_bytes: u64,
    /// A reader further behind than this (bytes the in-memory disk holds) gets a snapshot
    /// anyway: cleaning then skips what it had not read, reported as a gap. What a reader slower
    /// than the quorum costs in memory, at most (about twice over: the in-memory disk keeps a
    /// written and a synced copy of what it holds).
    pub max_lag_bytes: u64,
}

impl Default for TailLimits {
    fn default() -> Self {
        TailLimits {
            snapshot_bytes: 16 * 1024 * 1024,
            max_lag_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The quorum to follow.
#[derive(Debug, Clone)]
pub struct TailTarget {
    pub cluster_id: String,
    /// Each voter's id and `host:port`.
    pub voters: Vec<(NodeId, String)>,
    /// PLAINTEXT, or TLS with the client's certificate and the CA it trusts.
    pub security: crate::config::ListenerSecurity,
}

/// One committed data record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailRecord {
    pub offset: Offset,
    /// The epoch of the leader that appended it.
    pub epoch: Epoch,
    /// Its timestamp (CreateTime), in ms since the Unix epoch.
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// What the tail hands out next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailStep {
    /// Committed records, in offset order, each once.
    Records(Vec<TailRecord>),
    /// Offsets `from..to` are held only in a snapshot (the leader cleaned its log, or the tail
    /// fell that far behind): their records are not available; the tail goes on at `to`.
    Gap { from: Offset, to: Offset },
}

#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("cannot start the tail's node: {0}")]
    Start(#[from] NodeError),
    #[error("the tail's node stopped: {0:?}")]
    Stopped(NodeState),
    #[error("a committed batch at offset {offset} does not decode: {source}")]
    Corrupt { offset: Offset, source: RecordError },
}

/// A running id-less observer and the offset of the next record to hand out.
pub struct Tail {
    node: NodeHandle,
    events: Option<tokio::sync::broadcast::Receiver<NodeEvent>>,
    next: Offset,
    /// Since when no leader has been known, and whether that stretch was warned of.
    leaderless: Option<(std::time::Instant, bool)>,
    /// The in-memory disk under the node, whose size decides a forced snapshot.
    disk: SimFs,
    limits: TailLimits,
    /// The node's appended bytes at the last snapshot the tail asked for.
    appended_at_snapshot: u64,
}

impl Tail {
    /// Starts following `target`, handing out records from `start` on (`Offset(0)`: the whole
    /// log). Must run inside an actix system.
    pub async fn start(target: TailTarget, start: Offset) -> Result<Tail, TailError> {
        Tail::start_with(target, start, TailLimits::default()).await
    }

    /// [`Tail::start`] with other snapshot limits.
    pub async fn start_with(
        target: TailTarget,
        start: Offset,
        limits: TailLimits,
    ) -> Result<Tail, TailError> {
        let disk = SimFs::new();
        let node = NodeHandle::start(options(target, &disk)).await?;
        let events = node.subscribe().await;
        Ok(Tail {
            node,
            events,
            next: start,
            leaderless: None,
            disk,
            limits,
            appended_at_snapshot: 0,
        })
    }

    /// The offset of the next record [`Tail::next`] hands out.
    pub fn position(&self) -> Offset {
        self.next
    }

    /// The node underneath, for describing or stopping it.
    pub fn node(&self) -> &NodeHandle {
        &self.node
    }

    /// Waits for the next committed records (or a gap) and returns them.
    pub async fn next(&mut self) -> Result<TailStep, TailError> {
        loop {
            let Some(status) = self.node.describe().await else {
                return Err(TailError::Stopped(self.node.state()));
            };
            // Unattached after a fetch timeout, it may still name the leader it lost.
            self.note_leader(status.role == RoleKind::Follower && status.leader_id.is_some());
            // Too far behind: snapshot anyway (once per `snapshot_bytes` appended, so that the
            // cleaning it starts can catch up before the next).
            let since = status
                .appended_bytes
                .saturating_sub(self.appended_at_snapshot);
            if self.disk.used_bytes() > self.limits.max_lag_bytes
                && since >= self.limits.snapshot_bytes
            {
                self.snapshot(status.appended_bytes).await?;
                self.await_cleaning(status.log_start_offset).await;
                continue;
            }
            if self.next < status.log_start_offset {
                let gap = TailStep::Gap {
                    from: self.next,
                    to: status.log_start_offset,
                };
                self.next = status.log_start_offset;
                return Ok(gap);
            }
            let committed = status.high_watermark.unwrap_or(Offset(0));
            if self.next < committed {
                let records = self.read(committed).await?;
                if !records.is_empty() {
                    return Ok(TailStep::Records(records));
                }
                continue;
            }
            // Caught up: a snapshot now ends where the reader is.
            if status.appended_bytes >= self.appended_at_snapshot + self.limits.snapshot_bytes {
                self.snapshot(status.appended_bytes).await?;
            }
            self.wait_for_commit().await?;
        }
    }

    /// Waits (at most [`RECHECK`]) for the cleaning a forced snapshot starts to move the log
    /// start past `from`, so that the gap is reported before any more is read.
    async fn await_cleaning(&self, from: Offset) {
        let deadline = std::time::Instant::now() + RECHECK;
        while std::time::Instant::now() < deadline {
            match self.node.describe().await {
                Some(s) if s.log_start_offset == from => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                _ => return,
            }
        }
    }

    /// Snapshots the in-memory log (cleaning follows, down to this snapshot).
    async fn snapshot(&mut self, appended_bytes: u64) -> Result<(), TailError> {
        self.appended_at_snapshot = appended_bytes;
        match self.node.take_snapshot().await {
            Ok(_) => Ok(()),
            Err(_) if !gone(&self.node.state()) => Ok(()),
            Err(_) => Err(TailError::Stopped(self.node.state())),
        }
    }

    /// Stops the node underneath.
    pub async fn stop(&self) {
        self.node.shutdown().await;
    }

    /// Decodes the committed batches from `self.next` (below `committed`), keeping data records
    /// at or after it, and moves past them.
    async fn read(&mut self, committed: Offset) -> Result<Vec<TailRecord>, TailError> {
        let bytes = match self.node.read_committed(self.next, READ_BYTES).await {
            Ok(bytes) => bytes,
            // Cleaned away between the describe and the read, or the node is rebuilding its
            // actors: the caller looks again.
            Err(_) if !gone(&self.node.state()) => return Ok(Vec::new()),
            Err(_) => return Err(TailError::Stopped(self.node.state())),
        };
        let mut records = Vec::new();
        for batch in BatchIter::new(bytes) {
            let batch = batch.map_err(|source| self.corrupt(source))?;
            if batch.next_offset() > committed {
                break;
            }
            if !batch.is_control() {
                let header = *batch.header();
                // Kraft refuses LogAppendTime batches from clients, but a log may hold them.
                let log_append_time = header.is_log_append_time();
                let decoded = batch.decode_records().map_err(|e| self.corrupt(e))?;
                for r in decoded {
                    let offset = Offset(header.base_offset().0 + i64::from(r.offset_delta));
                    if offset >= self.next {
                        records.push(TailRecord {
                            offset,
                            epoch: batch.epoch(),
                            timestamp: if log_append_time {
                                header.max_timestamp
                            } else {
                                header.base_timestamp + r.timestamp_delta
                            },
                            key: r.key,
                            value: r.value,
                        });
                    }
                }
            }
            self.next = self.next.max(batch.next_offset());
        }
        Ok(records)
    }

    /// Warns once a stretch without following a leader has lasted [`LEADERLESS_WARNING`].
    fn note_leader(&mut self, following: bool) {
        let now = std::time::Instant::now();
        match (following, &mut self.leaderless) {
            (true, _) => self.leaderless = None,
            (false, None) => self.leaderless = Some((now, false)),
            (false, Some((since, warned))) => {
                if !*warned && now.duration_since(*since) >= LEADERLESS_WARNING {
                    *warned = true;
                    tracing::warn!(
                        "no leader for {} s: the voters are unreachable or have not elected one; \
                         still trying",
                        LEADERLESS_WARNING.as_secs()
                    );
                }
            }
        }
    }

    fn corrupt(&self, source: RecordError) -> TailError {
        TailError::Corrupt {
            offset: self.next,
            source,
        }
    }

    /// Returns once something may have committed, or after [`RECHECK`].
    async fn wait_for_commit(&mut self) -> Result<(), TailError> {
        let Some(events) = self.events.as_mut() else {
            return Err(TailError::Stopped(self.node.state()));
        };
        match tokio::time::timeout(RECHECK, events.recv()).await {
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                // The node rebuilt its actors, or stopped: subscribe again, or report the stop.
                self.events = self.node.subscribe().await;
                match self.node.state() {
                    state if gone(&state) => Err(TailError::Stopped(state)),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}

/// Whether the node has stopped for good (rather than starting or rebuilding its actors).
fn gone(state: &NodeState) -> bool {
    matches!(
        state,
        NodeState::Stopping | NodeState::Stopped | NodeState::Failed(_)
    )
}

/// A node with no id and no listener on the in-memory `disk`, which snapshots only when the
/// tail asks.
fn options(target: TailTarget, disk: &SimFs) -> NodeOptions {
    let voters = target.voters.iter().map(|(id, _)| *id).collect();
    NodeOptions {
        cluster_id: target.cluster_id,
        node_id: None,
        voters,
        voter_addresses: target.voters,
        listener: None,
        partition_dir: std::path::PathBuf::from("/tail/__raft_performance_test-0"),
        log: LogConfig {
            segment_bytes: SEGMENT_BYTES,
            ..LogConfig::default()
        },
        raft: None,
        snapshots: SnapshotPolicy {
            max_bytes: u64::MAX,
            interval: None,
            retention_bytes: Some(RETAINED_BYTES),
            retention: None,
        },
        state_machine: crate::state_machine::StateMachineFactory::new(|| {
            Box::new(OffsetOnlyState::default())
        }),
        fs: Some(disk.fs()),
        connections: Default::default(),
        security: target.security,
        rack: None,
        directory_id: None,
        listener_name: None,
        bootstrap_servers: vec![],
    }
}
