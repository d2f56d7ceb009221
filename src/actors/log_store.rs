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
use crate::raft::{EpochStart, PersistedElection};
use crate::storage::{
    ElectionState, LogConfig, OffsetPolicy, QuorumStateFile, ReplicatedLog, SnapshotFile,
    StorageError, delete_snapshots_before, fetched_so_far, list_snapshots,
};
use crate::types::Offset;

pub struct LogStore {
    partition_dir: PathBuf,
    config: LogConfig,
    log: Option<ReplicatedLog>,
    state: QuorumStateFile,
    driver: Option<Recipient<IoDone>>,
    failed: bool,
    /// Restarted since the driver last rebuilt: writes are dropped until `Rebuild`.
    discarding: bool,
    /// Closed by the node: nothing more is read or written.
    closed: bool,
    restarted: bool,
    budget: RestartBudget,
    node: Option<Recipient<SupervisionEvent>>,
}

impl LogStore {
    pub fn new(
        partition_dir: PathBuf,
        config: LogConfig,
        node: Option<Recipient<SupervisionEvent>>,
    ) -> Self {
        let state = QuorumStateFile::new(&partition_dir);
        LogStore {
            partition_dir,
            config,
            log: None,
            state,
            driver: None,
            failed: false,
            discarding: false,
            closed: false,
            restarted: false,
            budget: RestartBudget::default(),
            node,
        }
    }

    /// Opens the log and reads the election state. Opening fsyncs whatever the previous owner
    /// left in the page cache, so the core never counts bytes that are not durable.
    fn recover(&mut self) -> Result<Recovered, StorageError> {
        self.log = None;
        let (log, _report) = ReplicatedLog::open(&self.partition_dir, self.config)?;
        // Snapshots the log start already moved past are not needed (the newest is kept).
        for path in delete_snapshots_before(&self.partition_dir, log.log_start_offset())? {
            tracing::info!(path = %path.display(), "deleted a snapshot below the log start");
        }
        let election = self.state.read()?.map(|s| PersistedElection {
            epoch: s.epoch,
            leader_id: s.leader_id,
            voted_id: s.voted_id,
        });
        let recovered = Recovered {
            log_start_offset: log.log_start_offset(),
            log_end_offset: log.log_end_offset(),
            epochs: log
                .epoch_entries()
                .iter()
                .map(|e| EpochStart {
                    epoch: e.epoch,
                    start_offset: e.start_offset,
                })
                .collect(),
            election,
            latest_snapshot: list_snapshots(&self.partition_dir)?.last().copied(),
            fetched_so_far: fetched_so_far(&self.partition_dir)?,
        };
        self.log = Some(log);
        self.failed = false;
        self.discarding = false;
        Ok(recovered)
    }

    /// The log, if reads may be served from it.
    fn readable(&self) -> Option<&ReplicatedLog> {
        self.log.as_ref().filter(|_| !self.failed && !self.closed)
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
        op: impl FnOnce(&mut ReplicatedLog, &QuorumStateFile) -> Result<Option<IoDone>, StorageError>,
    ) {
        if self.failed || self.discarding || self.closed {
            return;
        }
        let Some(log) = self.log.as_mut() else {
            self.failed = true;
            self.report(IoDone::Failed("the log is not open".into()));
            return;
        };
        let state = &self.state;
        let Some(outcome) = guarded(ctx, ActorKind::LogStore, || op(log, state)) else {
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
        self.log = None;
        self.restarted = true;
        on_restart(ctx, ActorKind::LogStore, &mut self.budget, &self.node);
    }
}

fn to_storage(e: PersistedElection) -> ElectionState {
    ElectionState {
        epoch: e.epoch,
        leader_id: e.leader_id,
        voted_id: e.voted_id,
        voted_directory_id: None,
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
        self.log = None;
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
        self.write(ctx, |_, state| {
            state
                .write(&to_storage(msg.0))
                .map(|()| Some(IoDone::ElectionPersisted))
        });
    }
}

impl Handler<AppendBatches> for LogStore {
    type Result = ();
    fn handle(&mut self, msg: AppendBatches, ctx: &mut Context<Self>) {
        self.write(ctx, |log, _| {
            log.append(msg.0, OffsetPolicy::Validate).map(|_| None)
        });
    }
}

impl Handler<TruncateTo> for LogStore {
    type Result = ();
    fn handle(&mut self, msg: TruncateTo, ctx: &mut Context<Self>) {
        self.write(ctx, |log, _| log.truncate_to(msg.0).map(|_| None));
    }
}

impl Handler<FlushLog> for LogStore {
    type Result = ();
    fn handle(&mut self, msg: FlushLog, ctx: &mut Context<Self>) {
        self.write(ctx, |log, _| {
            log.flush().map(|()| {
                Some(IoDone::Flushed {
                    offset: log.log_end_offset(),
                    seq: msg.seq,
                })
            })
        });
    }
}

impl Handler<CleanLog> for LogStore {
    type Result = ();
    fn handle(&mut self, msg: CleanLog, ctx: &mut Context<Self>) {
        let dir = self.partition_dir.clone();
        self.write(ctx, |log, _| {
            let Some(target) = cleaning_target(log, &dir, msg)? else {
                return Ok(None);
            };
            let deleted = log.delete_segments_below(target)?;
            if !deleted.is_empty() {
                tracing::info!(log_start_offset = %log.log_start_offset(), snapshot = %target, files = deleted.len(), "cleaned the log");
            }
            Ok(Some(IoDone::LogStartAdvanced {
                start: log.log_start_offset(),
                snapshots_before: target,
            }))
        });
    }
}

/// The snapshot end offset retention lets the log start move to (kraft-protocol.md §7.7):
/// walking snapshots oldest first, each is dropped while the log plus snapshots exceed the size
/// bound or it is older than the age bound; the newest is always kept.
fn cleaning_target(
    log: &ReplicatedLog,
    dir: &std::path::Path,
    policy: CleanLog,
) -> Result<Option<Offset>, StorageError> {
    let snapshots = list_snapshots(dir)?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    // A snapshot's age is that of its last contained record, as Kafka measures it.
    let sized: Vec<(Offset, u64, Option<std::time::Duration>)> = snapshots
        .iter()
        .map(|id| {
            let file = SnapshotFile::open(dir, *id).ok();
            let age = file
                .as_ref()
                .and_then(|f| f.last_contained_timestamp().ok())
                .map(
                    |ts| std::time::Duration::from_millis(now_ms.saturating_sub(ts).max(0) as u64),
                );
            (id.offset, file.map_or(0, |f| f.size), age)
        })
        .collect();
    let mut total = log.size_bytes() + sized.iter().map(|s| s.1).sum::<u64>();
    let mut target = None;
    for pair in sized.windows(2) {
        let (older, next) = (pair[0], pair[1]);
        let too_big = policy.max_bytes.is_some_and(|max| total > max);
        let too_old = policy
            .max_age
            .is_some_and(|max| older.2.is_some_and(|age| age > max));
        if !(too_big || too_old) {
            break;
        }
        total = total.saturating_sub(older.1 + log.bytes_below(next.0));
        target = Some(next.0);
    }
    Ok(target.filter(|t| *t > log.log_start_offset()))
}

impl Handler<ResetLog> for LogStore {
    type Result = ();
    fn handle(&mut self, msg: ResetLog, ctx: &mut Context<Self>) {
        self.write(ctx, |log, _| {
            let deleted = log.reset_to(msg.0)?;
            tracing::info!(log_start_offset = %msg.0.offset, epoch = %msg.0.epoch, deleted_files = deleted.len(), "replaced the log with an installed snapshot");
            Ok(Some(IoDone::LogReset(msg.0)))
        });
    }
}

impl Handler<ReadLog> for LogStore {
    type Result = Result<Bytes, StorageError>;
    fn handle(&mut self, msg: ReadLog, ctx: &mut Context<Self>) -> Self::Result {
        let Some(log) = self.readable() else {
            return Err(StorageError::Failed("the log store failed".into()));
        };
        let read = guarded(ctx, ActorKind::LogStore, || {
            log.read(msg.from, msg.max_bytes as usize)
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
        if let Some(log) = self.readable() {
            match guarded(ctx, ActorKind::LogStore, || {
                log.read(msg.from, msg.max_bytes as usize)
            }) {
                Some(Ok(records)) => response.records = records,
                // Cleaning moved the log start past the fetch offset meanwhile: the fetcher
                // asks again and is sent the snapshot.
                Some(Err(e @ StorageError::OffsetOutOfRange { .. })) => {
                    tracing::debug!(error = %e, "fetch read out of range")
                }
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
