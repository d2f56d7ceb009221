//! The log store actor: the node's durable log and `quorum-state`, doing blocking file IO on its
//! own Arbiter so that it never stalls the driver's timers.
//!
//! Owns `storage::ReplicatedLog` and `storage::QuorumStateFile`. It executes requests strictly in
//! mailbox order and reports each completion to the driver. It must never decide what to write:
//! the driver (the protocol core) does. After an IO failure it reports `IoDone::Failed` and
//! refuses further work, because the state on disk is unknown until recovery.
//!
//! Supervised: a panic in a handler restarts it on the same address. The write that panicked is
//! lost, so after a restart it reopens the log from disk, tells the driver (`IoDone::Restarted`)
//! and discards every write until the driver asks to `Rebuild`: the driver then rebuilds the
//! protocol core from what is on disk, which is exactly what a process restart would do.

use std::path::PathBuf;

use actix::prelude::*;
use bytes::Bytes;

use super::messages::*;
use super::supervision::*;
use crate::executor::LogExecutor;
use crate::storage::{Fs, LogConfig, StorageError};

pub struct LogStore {
    fs: Fs,
    partition_dir: PathBuf,
    config: LogConfig,
    /// The static voter set `quorum-state` lists (every quorum kraft runs today is static).
    voters: Vec<crate::types::NodeId>,
    exec: Option<LogExecutor>,
    driver: Option<Recipient<IoDone>>,
    failed: bool,
    /// Restarted since the driver last rebuilt: writes are dropped until `Rebuild`.
    discarding: bool,
    /// Closed by the node: nothing more is read or written.
    closed: bool,
    restarted: bool,
    budget: RestartBudget,
    node: Option<Recipient<SupervisionEvent>>,
    /// Where each flush's fsync time is recorded.
    metrics: std::sync::Arc<crate::metrics::NodeMetrics>,
}

impl LogStore {
    pub fn new(
        fs: Fs,
        partition_dir: PathBuf,
        config: LogConfig,
        voters: Vec<crate::types::NodeId>,
        node: Option<Recipient<SupervisionEvent>>,
    ) -> Self {
        LogStore {
            fs,
            partition_dir,
            config,
            voters,
            exec: None,
            driver: None,
            failed: false,
            discarding: false,
            closed: false,
            restarted: false,
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

    /// Opens the log and reads the election state. Opening fsyncs whatever the previous owner
    /// left in the page cache, so the core never counts bytes that are not durable.
    fn recover(&mut self) -> Result<Recovered, StorageError> {
        self.exec = None;
        let (exec, recovered) = LogExecutor::open(&self.fs, &self.partition_dir, self.config)?;
        self.exec = Some(exec.with_static_voters(self.voters.iter().copied()));
        self.failed = false;
        self.discarding = false;
        Ok(recovered)
    }

    /// The log, if reads may be served from it.
    fn readable(&self) -> Option<&LogExecutor> {
        self.exec.as_ref().filter(|_| !self.failed && !self.closed)
    }

    fn report(&self, done: IoDone) {
        if let Some(driver) = &self.driver {
            driver.do_send(done);
        }
    }

    /// A read failed. Anything but a read outside the log (a race with cleaning or
    /// truncation, which the reader retries) means the disk cannot serve the log: the node
    /// stops rather than lead or follow on it.
    fn read_failed(&mut self, error: &StorageError) {
        // `Failed` repeats an earlier failure (or a panic, which restarts this actor).
        let not_the_disk = matches!(
            error,
            StorageError::OffsetOutOfRange { .. } | StorageError::Failed(_)
        );
        if not_the_disk || self.failed {
            return;
        }
        tracing::error!(error = %error, "cannot read the log; the node must stop");
        self.failed = true;
        self.report(IoDone::Failed(format!("cannot read the log: {error}")));
    }

    /// Runs one write; an error is reported once and stops all further writes. A panic restarts
    /// the actor (see the module doc).
    fn write(
        &mut self,
        ctx: &mut Context<Self>,
        op: impl FnOnce(&mut LogExecutor) -> Result<Option<IoDone>, StorageError>,
    ) {
        if self.failed || self.discarding || self.closed {
            return;
        }
        let Some(exec) = self.exec.as_mut() else {
            self.failed = true;
            self.report(IoDone::Failed("the log is not open".into()));
            return;
        };
        let Some(outcome) = guarded(ctx, ActorKind::LogStore, || op(exec)) else {
            return;
        };
        match outcome {
            Ok(Some(done)) => self.report(done),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "log store failed; the node must restart from disk");
                self.failed = true;
                self.report(IoDone::Failed(e.to_string()));
            }
        }
    }
}

impl Actor for LogStore {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        if !self.restarted || self.closed {
            return;
        }
        // Serve reads again at once; writes wait for the driver's rebuild.
        if let Err(e) = self.recover() {
            tracing::error!(error = %e, "log store cannot reopen the log after a restart");
            self.failed = true;
        }
        self.discarding = true;
        self.report(IoDone::Restarted);
    }
}

impl Supervised for LogStore {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        self.exec = None;
        self.restarted = true;
        on_restart(ctx, ActorKind::LogStore, &mut self.budget, &self.node);
    }
}

impl Handler<Recover> for LogStore {
    type Result = Result<Recovered, StorageError>;

    fn handle(&mut self, _: Recover, ctx: &mut Context<Self>) -> Self::Result {
        guarded(ctx, ActorKind::LogStore, || self.recover())
            .unwrap_or_else(|| Err(StorageError::Failed("the log store panicked".into())))
    }
}

impl Handler<Rebuild> for LogStore {
    type Result = ();

    fn handle(&mut self, _: Rebuild, ctx: &mut Context<Self>) {
        if self.closed {
            return;
        }
        if let Some(result) = guarded(ctx, ActorKind::LogStore, || self.recover()) {
            let outcome = result.map_err(|e| e.to_string());
            self.report(IoDone::Recovered(Box::new(outcome)));
        }
    }
}

impl Handler<CloseLog> for LogStore {
    type Result = ();

    fn handle(&mut self, _: CloseLog, _: &mut Context<Self>) {
        self.closed = true;
        self.exec = None;
    }
}

impl Handler<SetDriver> for LogStore {
    type Result = ();
    fn handle(&mut self, msg: SetDriver, _: &mut Context<Self>) {
        self.driver = Some(msg.0);
    }
}

impl Handler<Persist> for LogStore {
    type Result = ();
    fn handle(&mut self, msg: Persist, ctx: &mut Context<Self>) {
        self.write(ctx, |exec| {
            exec.persist_election_voting_for(msg.0, msg.1)
                .map(|()| Some(IoDone::ElectionPersisted))
        });
    }
}

impl Handler<AppendBatches> for LogStore {
    type Result = ();
    fn handle(&mut self, msg: AppendBatches, ctx: &mut Context<Self>) {
        self.write(ctx, |exec| exec.append(msg.0).map(|()| None));
    }
}

impl Handler<TruncateTo> for LogStore {
    type Result = ();
    fn handle(&mut self, msg: TruncateTo, ctx: &mut Context<Self>) {
        self.write(ctx, |exec| exec.truncate(msg.0).map(|()| None));
    }
}

impl Handler<ClearRepairPoint> for LogStore {
    type Result = ();
    fn handle(&mut self, _: ClearRepairPoint, ctx: &mut Context<Self>) {
        self.write(ctx, |exec| exec.clear_repair_point().map(|()| None));
    }
}

impl Handler<FlushLog> for LogStore {
    type Result = ();
    fn handle(&mut self, msg: FlushLog, ctx: &mut Context<Self>) {
        let metrics = self.metrics.clone();
        self.write(ctx, |exec| {
            let started = std::time::Instant::now();
            let flushed = exec.flush();
            metrics.record_fsync(started.elapsed());
            flushed.map(|offset| {
                Some(IoDone::Flushed {
                    offset,
                    seq: msg.seq,
                })
            })
        });
    }
}

impl Handler<CleanLog> for LogStore {
    type Result = ();
    fn handle(&mut self, msg: CleanLog, ctx: &mut Context<Self>) {
        let policy = msg.0;
        let now_ms = super::ReplicationDriver::wall_clock_now().as_millis() as i64;
        self.write(ctx, |exec| {
            Ok(exec
                .clean(policy, now_ms)?
                .map(|c| IoDone::LogStartAdvanced {
                    start: c.log_start_offset,
                    snapshots_before: c.snapshots_before,
                }))
        });
    }
}

impl Handler<ResetLog> for LogStore {
    type Result = ();
    fn handle(&mut self, msg: ResetLog, ctx: &mut Context<Self>) {
        self.write(ctx, |exec| {
            let deleted = exec.reset_to(msg.0)?;
            tracing::info!(log_start_offset = %msg.0.offset, epoch = %msg.0.epoch, deleted_files = deleted.len(), "replaced the log with an installed snapshot");
            Ok(Some(IoDone::LogReset(msg.0)))
        });
    }
}

impl Handler<ReadLog> for LogStore {
    type Result = Result<Bytes, StorageError>;
    fn handle(&mut self, msg: ReadLog, ctx: &mut Context<Self>) -> Self::Result {
        let Some(exec) = self.readable() else {
            return Err(StorageError::Failed("the log store failed".into()));
        };
        let read = guarded(ctx, ActorKind::LogStore, || {
            exec.read(msg.from, msg.max_bytes)
        })
        .unwrap_or_else(|| Err(StorageError::Failed("the log store panicked".into())));
        if let Err(e) = &read {
            self.read_failed(e);
        }
        read
    }
}

impl Handler<ReadForFetch> for LogStore {
    type Result = ();

    fn handle(&mut self, msg: ReadForFetch, ctx: &mut Context<Self>) {
        let mut response = msg.response;
        if let Some(exec) = self.readable() {
            match guarded(ctx, ActorKind::LogStore, || {
                exec.fill_fetch(&mut response, msg.from, msg.max_bytes)
            }) {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    // Answering with no records would let a leader whose disk fails keep
                    // leading while its followers starve.
                    self.read_failed(&e);
                    return;
                }
                None => return,
            }
        }
        msg.deliver.do_send(SendResponse {
            correlation_id: msg.correlation_id,
            response: crate::raft::Response::Fetch(response),
        });
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<InjectFault> for LogStore {
    type Result = ();
    fn handle(&mut self, msg: InjectFault, ctx: &mut Context<Self>) {
        apply_fault(ctx, ActorKind::LogStore, msg.0);
    }
}
