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
pub use crate::executor::SnapshotPolicy;
use crate::executor::{InstallError, SnapshotExecutor};
use crate::raft::{FetchSnapshotResponse, Response};
use crate::state_machine::{StateMachine, StateMachineFactory};
use crate::storage::Fs;
use crate::types::{Offset, OffsetAndEpoch};

/// Bytes of committed log read per step of catching up: bounds the memory a catch-up uses.
const CATCH_UP_READ_BYTES: u32 = 1 << 20;
/// How often the time-based snapshot trigger is checked.
const INTERVAL_CHECK: Duration = Duration::from_secs(1);
/// Pause before reading again after the log store could not serve a read.
const READ_RETRY: Duration = Duration::from_millis(100);

pub struct SnapshotWriter {
    fs: Fs,
    dir: PathBuf,
    policy: SnapshotPolicy,
    factory: StateMachineFactory,
    log_store: Addr<LogStore>,
    /// The state machine and snapshot files; `None` until loaded, and after a fatal error.
    exec: Option<SnapshotExecutor>,
    /// The clock the snapshot interval is measured on.
    origin: Instant,
    high_watermark: Offset,
    reading: bool,
    /// Told about written and installed snapshots (the driver).
    listener: Option<Recipient<SnapshotEvent>>,
    closed: bool,
    budget: RestartBudget,
    node: Option<Recipient<SupervisionEvent>>,
    /// Where each snapshot's size and write time are recorded.
    metrics: std::sync::Arc<crate::metrics::NodeMetrics>,
}

impl SnapshotWriter {
    pub fn new(
        fs: Fs,
        dir: PathBuf,
        policy: SnapshotPolicy,
        factory: StateMachineFactory,
        log_store: Addr<LogStore>,
        node: Option<Recipient<SupervisionEvent>>,
    ) -> Self {
        SnapshotWriter {
            fs,
            dir,
            policy,
            factory,
            log_store,
            exec: None,
            origin: Instant::now(),
            high_watermark: Offset(0),
            reading: false,
            listener: None,
            closed: false,
            budget: RestartBudget::default(),
            node,
            metrics: Default::default(),
        }
    }

    /// Records into `metrics` (the node's) instead of a private set.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::NodeMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Reads and applies committed batches until the state reaches the high watermark.
    fn catch_up(&mut self, ctx: &mut Context<Self>) {
        let Some(exec) = self.exec.as_ref().filter(|_| !self.closed) else {
            return;
        };
        if self.reading || exec.applied_offset() >= self.high_watermark {
            return;
        }
        self.reading = true;
        let read = ReadLog {
            from: exec.applied_offset(),
            max_bytes: CATCH_UP_READ_BYTES,
        };
        self.log_store
            .send(read)
            .into_actor(self)
            .map(|result, act, ctx| {
                act.reading = false;
                let hw = act.high_watermark;
                let applied = match (result, act.exec.as_mut()) {
                    (Ok(Ok(bytes)), Some(exec)) if !bytes.is_empty() => exec.apply(bytes, hw),
                    _ => 0,
                };
                act.maybe_snapshot();
                if applied > 0 {
                    act.catch_up(ctx);
                } else {
                    // Nothing applicable there (yet): never spin on the same bytes.
                    ctx.run_later(READ_RETRY, |act, ctx| act.catch_up(ctx));
                }
            })
            .spawn(ctx);
    }

    fn maybe_snapshot(&mut self) {
        let now = self.now();
        if self.exec.as_ref().is_some_and(|e| e.due(now))
            && let Err(e) = self.write_snapshot()
        {
            self.fatal(format!("cannot write a snapshot: {e}"));
        }
    }

    /// Writes a snapshot of the current state, unless the latest already ends here, and tells
    /// the driver.
    fn write_snapshot(&mut self) -> Result<Option<OffsetAndEpoch>, String> {
        let now = self.now();
        let exec = self
            .exec
            .as_mut()
            .filter(|_| !self.closed)
            .ok_or("the snapshot writer stopped")?;
        let started = Instant::now();
        let written = exec.write_snapshot(now).map_err(|e| e.to_string())?;
        if let Some(id) = written {
            let path = self.dir.join(crate::storage::snapshot_file_name(id));
            // The size is for statistics only: a failed stat records 0 rather than failing.
            let size = self.fs.file_len(&path).unwrap_or(0);
            self.metrics.record_snapshot(size, started.elapsed());
        }
        if let (Some(id), Some(listener)) = (written, &self.listener) {
            listener.do_send(SnapshotEvent::Written(id));
        }
        Ok(written)
    }

    /// Stops the node: a failed snapshot write may have hit an fsync error, after which the page
    /// cache may hold bytes the disk never got, so retrying could "succeed" on lost data; and
    /// a snapshot that cannot be loaded must not be served or counted by log cleaning.
    fn fatal(&mut self, reason: String) {
        tracing::error!(%reason, "the snapshot writer cannot continue");
        self.closed = true;
        self.exec = None;
        if let Some(node) = &self.node {
            node.do_send(SupervisionEvent::Fatal {
                actor: ActorKind::SnapshotWriter,
                reason,
            });
        }
        // Stays idle (`closed`) rather than stopping: its supervisor would only restart it.
    }
}

impl Actor for SnapshotWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.closed {
            return;
        }
        // A start or a restart: leftovers of interrupted writes go, the latest snapshot is
        // loaded, and catching up replays the log after it.
        self.exec = None;
        let now = self.now();
        match SnapshotExecutor::open(&self.fs, &self.dir, self.policy, self.factory.clone(), now) {
            Ok(exec) => self.exec = Some(exec),
            Err(e) => {
                self.fatal(format!("cannot load the latest snapshot: {e}"));
                return;
            }
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
        if self.closed {
            return Err("the snapshot writer stopped".into());
        }
        self.write_snapshot().map_err(|e| {
            let reason = format!("cannot write a snapshot: {e}");
            self.fatal(reason.clone());
            reason
        })
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
        match &self.exec {
            Some(exec) => (msg.0)(exec.state()),
            // Not loaded (or stopped): an empty state, never a partial one.
            None => (msg.0)(self.factory.make().as_ref()),
        }
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
        let Some(exec) = &self.exec else { return };
        let response = exec.read_chunk(msg.response, msg.max_bytes);
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
        let Some(exec) = self.exec.as_mut() else {
            return;
        };
        if let Err(e) = exec.write_chunk(msg.id, msg.position, &msg.bytes) {
            self.fatal(format!("cannot write a fetched snapshot chunk: {e}"));
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
        let now = self.now();
        let Some(exec) = self.exec.as_mut() else {
            return;
        };
        let event = match exec.install(id, now) {
            Ok(installed) => {
                self.high_watermark = self.high_watermark.max(id.offset);
                SnapshotEvent::Installed(Ok((id, installed.control)))
            }
            Err(InstallError::Disk(e)) => {
                self.fatal(format!("cannot install the fetched snapshot: {e}"));
                return;
            }
            // The driver warns, naming the peer the bytes came from.
            Err(InstallError::Invalid(e)) => SnapshotEvent::Installed(Err(e.to_string())),
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
        let Some(exec) = &self.exec else { return };
        match exec.forget_before(msg.0) {
            Ok(deleted) if !deleted.is_empty() => {
                tracing::info!(before = %msg.0, count = deleted.len(), "deleted old snapshots");
            }
            Ok(_) => {}
            // Deleting ends with a directory fsync: its failure is the disk's, like any other.
            Err(e) => self.fatal(format!("cannot delete old snapshots: {e}")),
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
