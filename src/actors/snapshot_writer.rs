//! The snapshot writer: owns the node's state machine (the server's `WorkloadState`, or the
//! application's own through `NodeOptions::state_machine`), applies every
//! committed batch to it in order, and writes snapshots of it: after
//! `metadata.log.max.record.bytes.between.snapshots` bytes of committed batches, after
//! `metadata.log.max.snapshot.interval.ms` if anything was committed, and on request.
//!
//! Runs on its own Arbiter, so writing a large snapshot never stalls the driver's timers or the
//! log store's fsyncs. It reads the log only through the log store and only below the high
//! watermark, so a snapshot never ends past the high watermark. It must never write the log.
//! Supervised: a restart (or a start) removes leftovers of interrupted snapshot writes, loads
//! the latest snapshot and replays the committed log after it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::log_store::LogStore;
use super::messages::{Close, ReadLog, SendResponse, SnapshotEvent};
use super::supervision::*;
use crate::raft::{ErrorCode, FetchSnapshotResponse, Response};
use crate::record::BatchIter;
use crate::state_machine::{StateMachine, StateMachineFactory};
use crate::storage::{
    SnapshotFile, SnapshotFileWriter, StorageError, complete_partial, delete_snapshots_before,
    list_snapshots, remove_snapshot_leftovers, write_partial_chunk,
};
use crate::types::{Epoch, Offset, OffsetAndEpoch};

/// Bytes of committed log read per step of catching up: bounds the memory a catch-up uses.
const CATCH_UP_READ_BYTES: u32 = 1 << 20;
/// How often the time-based snapshot trigger is checked.
const INTERVAL_CHECK: Duration = Duration::from_secs(1);
/// Pause before reading again after the log store could not serve a read.
const READ_RETRY: Duration = Duration::from_millis(100);

/// When snapshots are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// After this many bytes of committed batches since the last snapshot.
    pub max_bytes: u64,
    /// After this long since the last snapshot, if anything was committed; `None`: never.
    pub interval: Option<Duration>,
    /// Log cleaning: while the log plus snapshots exceed this, the log start moves to the next
    /// snapshot (`metadata.max.retention.bytes`; `None`: no bound).
    pub retention_bytes: Option<u64>,
    /// ... or while the older snapshot is older than this (`metadata.max.retention.ms`).
    pub retention: Option<Duration>,
}

impl Default for SnapshotPolicy {
    /// Kafka's defaults: a snapshot per 20 MiB or hour; retention 100 MiB and 7 days.
    fn default() -> Self {
        SnapshotPolicy {
            max_bytes: 20 << 20,
            interval: Some(Duration::from_secs(3600)),
            retention_bytes: Some(100 << 20),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

pub struct SnapshotWriter {
    dir: PathBuf,
    policy: SnapshotPolicy,
    log_store: Addr<LogStore>,
    state: Box<dyn StateMachine>,
    factory: StateMachineFactory,
    /// Epoch of the last batch applied (the epoch a snapshot of this state is named with).
    last_epoch: Epoch,
    /// Largest record timestamp applied: a snapshot's "last contained log timestamp". Using it
    /// (not the clock) makes every node's snapshot at the same offset byte-identical, so a
    /// transfer can resume from another leader's copy.
    last_timestamp: i64,
    high_watermark: Offset,
    reading: bool,
    bytes_since_snapshot: u64,
    last_snapshot: Option<OffsetAndEpoch>,
    last_snapshot_at: Instant,
    /// Told about written and installed snapshots (the driver).
    listener: Option<Recipient<SnapshotEvent>>,
    closed: bool,
    budget: RestartBudget,
    node: Option<Recipient<SupervisionEvent>>,
}

impl SnapshotWriter {
    pub fn new(
        dir: PathBuf,
        policy: SnapshotPolicy,
        factory: StateMachineFactory,
        log_store: Addr<LogStore>,
        node: Option<Recipient<SupervisionEvent>>,
    ) -> Self {
        SnapshotWriter {
            dir,
            policy,
            log_store,
            state: factory.make(),
            factory,
            last_epoch: Epoch(0),
            last_timestamp: 0,
            high_watermark: Offset(0),
            reading: false,
            bytes_since_snapshot: 0,
            last_snapshot: None,
            last_snapshot_at: Instant::now(),
            listener: None,
            closed: false,
            budget: RestartBudget::default(),
            node,
        }
    }

    /// Rebuilds the state from disk: the latest snapshot, then (by catching up) the log.
    fn load(&mut self) -> Result<(), StorageError> {
        for path in remove_snapshot_leftovers(&self.dir)? {
            tracing::info!(path = %path.display(), "removed an interrupted snapshot file");
        }
        self.state = self.factory.make();
        self.last_epoch = Epoch(0);
        self.last_timestamp = 0;
        self.last_snapshot = None;
        self.bytes_since_snapshot = 0;
        self.last_snapshot_at = Instant::now();
        if let Some(id) = list_snapshots(&self.dir)?.last().copied() {
            self.adopt(&SnapshotFile::open(&self.dir, id)?)?;
            tracing::info!(end_offset = %id.offset, epoch = %id.epoch, "loaded snapshot");
        }
        Ok(())
    }

    /// Makes the state the one in `file` (a local snapshot at start, or one fetched from the
    /// leader); on error the state is left as it was.
    fn adopt(&mut self, file: &SnapshotFile) -> Result<(), StorageError> {
        let mut state = self.factory.make();
        state.load_snapshot(file)?;
        self.last_timestamp = file.last_contained_timestamp()?;
        self.state = state;
        self.last_epoch = file.id.epoch;
        self.last_snapshot = Some(file.id);
        self.last_snapshot_at = Instant::now();
        self.bytes_since_snapshot = 0;
        Ok(())
    }

    /// Reads and applies committed batches until the state reaches the high watermark.
    fn catch_up(&mut self, ctx: &mut Context<Self>) {
        if self.reading || self.closed || self.state.applied_offset() >= self.high_watermark {
            return;
        }
        self.reading = true;
        let read = ReadLog {
            from: self.state.applied_offset(),
            max_bytes: CATCH_UP_READ_BYTES,
        };
        self.log_store
            .send(read)
            .into_actor(self)
            .map(|result, act, ctx| {
                act.reading = false;
                match result {
                    Ok(Ok(bytes)) if !bytes.is_empty() => {
                        let before = act.state.applied_offset();
                        act.apply(bytes);
                        act.maybe_snapshot();
                        if act.state.applied_offset() > before {
                            act.catch_up(ctx);
                        } else {
                            // Nothing applicable there (yet): never spin on the same bytes.
                            ctx.run_later(READ_RETRY, |act, ctx| act.catch_up(ctx));
                        }
                    }
                    _ => {
                        ctx.run_later(READ_RETRY, |act, ctx| act.catch_up(ctx));
                    }
                }
            })
            .spawn(ctx);
    }

    fn apply(&mut self, bytes: bytes::Bytes) {
        for batch in BatchIter::new(bytes) {
            let Ok(batch) = batch else { break };
            if batch.base_offset() != self.state.applied_offset()
                || batch.next_offset() > self.high_watermark
            {
                break;
            }
            if let Err(e) = self.state.apply(&batch) {
                tracing::error!(error = %e, offset = %batch.base_offset(), "cannot apply a committed batch");
                break;
            }
            self.last_epoch = batch.epoch();
            self.last_timestamp = self.last_timestamp.max(batch.header().max_timestamp);
            self.bytes_since_snapshot += batch.size_in_bytes() as u64;
        }
    }

    fn maybe_snapshot(&mut self) {
        let due_by_size = self.bytes_since_snapshot >= self.policy.max_bytes;
        let due_by_time = self
            .policy
            .interval
            .is_some_and(|i| self.last_snapshot_at.elapsed() >= i && self.bytes_since_snapshot > 0);
        if (due_by_size || due_by_time)
            && let Err(e) = self.write_snapshot()
        {
            tracing::error!(error = %e, "cannot write a snapshot");
        }
    }

    /// Writes a snapshot of the current state, unless the latest already ends here.
    fn write_snapshot(&mut self) -> Result<Option<OffsetAndEpoch>, StorageError> {
        let id = OffsetAndEpoch {
            offset: self.state.applied_offset(),
            epoch: self.last_epoch,
        };
        if self.last_snapshot == Some(id) || id.offset == Offset(0) {
            return Ok(None);
        }
        let started = Instant::now();
        let mut writer = SnapshotFileWriter::create(&self.dir, id, self.last_timestamp)?;
        self.state.write_snapshot(&mut writer)?;
        let path = writer.finish()?;
        let size = SnapshotFile::open_path(&path, id).map_or(0, |f| f.size);
        tracing::info!(end_offset = %id.offset, epoch = %id.epoch, bytes = size, elapsed_ms = started.elapsed().as_millis() as u64, "wrote snapshot");
        self.last_snapshot = Some(id);
        self.last_snapshot_at = Instant::now();
        self.bytes_since_snapshot = 0;
        if let Some(listener) = &self.listener {
            listener.do_send(SnapshotEvent::Written(id));
        }
        Ok(Some(id))
    }
}

impl Actor for SnapshotWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.closed {
            return;
        }
        if let Err(e) = self.load() {
            tracing::error!(error = %e, "cannot load the latest snapshot; starting from an empty state");
            self.state = self.factory.make();
        }
        ctx.run_interval(INTERVAL_CHECK, |act, _| act.maybe_snapshot());
        self.catch_up(ctx);
    }
}

impl Supervised for SnapshotWriter {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        self.reading = false;
        if !self.closed {
            on_restart(ctx, ActorKind::SnapshotWriter, &mut self.budget, &self.node);
        }
    }
}

/// Everything below this offset is committed (sent by the driver as the high watermark moves).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct CommittedTo(pub Offset);

impl Handler<CommittedTo> for SnapshotWriter {
    type Result = ();
    fn handle(&mut self, msg: CommittedTo, ctx: &mut Context<Self>) {
        self.high_watermark = self.high_watermark.max(msg.0);
        self.catch_up(ctx);
    }
}

/// Writes a snapshot of everything applied so far; `None` when the latest snapshot already
/// ends there (or nothing is committed yet).
#[derive(Message)]
#[rtype(result = "Result<Option<OffsetAndEpoch>, String>")]
pub struct TakeSnapshot;

impl Handler<TakeSnapshot> for SnapshotWriter {
    type Result = Result<Option<OffsetAndEpoch>, String>;
    fn handle(&mut self, _: TakeSnapshot, _: &mut Context<Self>) -> Self::Result {
        self.write_snapshot().map_err(|e| e.to_string())
    }
}

/// A read-only look at the state machine, run on the snapshot writer's thread.
pub type StateQuery = Box<dyn FnOnce(&dyn StateMachine) + Send>;

/// Runs a read-only query on the state machine as applied so far.
pub struct QueryState(pub StateQuery);

impl Message for QueryState {
    type Result = ();
}

impl Handler<QueryState> for SnapshotWriter {
    type Result = ();
    fn handle(&mut self, msg: QueryState, _: &mut Context<Self>) {
        (msg.0)(self.state.as_ref());
    }
}

/// Where to report written and installed snapshots.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetSnapshotListener(pub Recipient<SnapshotEvent>);

impl Handler<SetSnapshotListener> for SnapshotWriter {
    type Result = ();
    fn handle(&mut self, msg: SetSnapshotListener, _: &mut Context<Self>) {
        self.listener = Some(msg.0);
    }
}

/// Fills a FetchSnapshot answer from the snapshot file and sends it to its connection.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReadSnapshotChunk {
    pub response: FetchSnapshotResponse,
    pub max_bytes: u32,
    pub correlation_id: u64,
    pub deliver: Recipient<SendResponse>,
}

impl Handler<ReadSnapshotChunk> for SnapshotWriter {
    type Result = ();
    fn handle(&mut self, msg: ReadSnapshotChunk, _: &mut Context<Self>) {
        let mut response = msg.response;
        match SnapshotFile::open(&self.dir, response.snapshot_id) {
            Err(_) => response.error = ErrorCode::SnapshotNotFound,
            Ok(file) if response.position > file.size => {
                response.error = ErrorCode::PositionOutOfRange;
                response.size = file.size;
            }
            Ok(file) => match file.read_chunk(response.position, msg.max_bytes as usize) {
                Ok(bytes) => {
                    if response.position == 0 {
                        tracing::info!(end_offset = %file.id.offset, epoch = %file.id.epoch, bytes = file.size, "sending a snapshot to a follower");
                    }
                    response.size = file.size;
                    response.bytes = bytes;
                }
                Err(_) => response.error = ErrorCode::SnapshotNotFound,
            },
        }
        msg.deliver.do_send(SendResponse {
            correlation_id: msg.correlation_id,
            response: Response::FetchSnapshot(response),
        });
    }
}

/// A chunk of a snapshot being fetched, to write at its byte position.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WriteSnapshotChunk {
    pub id: OffsetAndEpoch,
    pub position: u64,
    pub bytes: bytes::Bytes,
}

impl Handler<WriteSnapshotChunk> for SnapshotWriter {
    type Result = ();
    fn handle(&mut self, msg: WriteSnapshotChunk, _: &mut Context<Self>) {
        if msg.position == 0
            && let Err(e) = crate::storage::remove_other_fetches(&self.dir, msg.id)
        {
            tracing::warn!(error = %e, "cannot remove an abandoned snapshot fetch");
        }
        if let Err(e) = write_partial_chunk(&self.dir, msg.id, msg.position, &msg.bytes) {
            // The install that follows finds the file incomplete and reports it.
            tracing::error!(error = %e, "cannot write a fetched snapshot chunk");
        }
    }
}

/// A fetched snapshot is complete: verify it, put it in place and load it as the state.
#[derive(Message)]
#[rtype(result = "()")]
pub struct InstallSnapshot(pub OffsetAndEpoch);

impl Handler<InstallSnapshot> for SnapshotWriter {
    type Result = ();
    fn handle(&mut self, msg: InstallSnapshot, _: &mut Context<Self>) {
        let id = msg.0;
        let outcome = complete_partial(&self.dir, id).and_then(|file| {
            self.adopt(&file)?;
            Ok(file.size)
        });
        let event = match outcome {
            Ok(size) => {
                self.high_watermark = self.high_watermark.max(id.offset);
                tracing::info!(end_offset = %id.offset, epoch = %id.epoch, bytes = size, "installed a snapshot fetched from the leader");
                SnapshotEvent::Installed(Ok(id))
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot install the fetched snapshot");
                let _ = crate::storage::remove_fetch(&self.dir, id);
                SnapshotEvent::Installed(Err(e.to_string()))
            }
        };
        if let Some(listener) = &self.listener {
            listener.do_send(event);
        }
    }
}

/// Log cleaning moved past these snapshots: delete those ending before the offset (never the
/// newest).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ForgetSnapshotsBefore(pub Offset);

impl Handler<ForgetSnapshotsBefore> for SnapshotWriter {
    type Result = ();
    fn handle(&mut self, msg: ForgetSnapshotsBefore, _: &mut Context<Self>) {
        match delete_snapshots_before(&self.dir, msg.0) {
            Ok(deleted) if !deleted.is_empty() => {
                tracing::info!(before = %msg.0, count = deleted.len(), "deleted old snapshots");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot delete old snapshots"),
        }
    }
}

impl Handler<Close> for SnapshotWriter {
    type Result = ();
    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) {
        self.closed = true;
        ctx.stop();
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<InjectFault> for SnapshotWriter {
    type Result = ();
    fn handle(&mut self, msg: InjectFault, ctx: &mut Context<Self>) {
        apply_fault(ctx, ActorKind::SnapshotWriter, msg.0);
    }
}
