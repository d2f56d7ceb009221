//! The log store actor: the node's durable log and `quorum-state`, doing blocking file IO on its
//! own Arbiter so that it never stalls the driver's timers.
//!
//! Owns `storage::ReplicatedLog` and `storage::QuorumStateFile`. It executes requests strictly in
//! mailbox order and reports each completion to the driver. It must never decide what to write:
//! the driver (the protocol core) does. After an IO failure it reports `IoDone::Failed` and
//! refuses further work, because the state on disk is unknown until recovery.

use std::path::PathBuf;

use actix::prelude::*;
use bytes::Bytes;

use super::messages::*;
use crate::raft::{EpochStart, PersistedElection};
use crate::storage::{
    ElectionState, LogConfig, OffsetPolicy, QuorumStateFile, ReplicatedLog, StorageError,
};

pub struct LogStore {
    partition_dir: PathBuf,
    config: LogConfig,
    log: Option<ReplicatedLog>,
    state: QuorumStateFile,
    driver: Option<Recipient<IoDone>>,
    failed: bool,
}

impl LogStore {
    pub fn new(partition_dir: PathBuf, config: LogConfig) -> Self {
        let state = QuorumStateFile::new(&partition_dir);
        LogStore {
            partition_dir,
            config,
            log: None,
            state,
            driver: None,
            failed: false,
        }
    }

    fn report(&self, done: IoDone) {
        if let Some(driver) = &self.driver {
            driver.do_send(done);
        }
    }

    /// Runs one write; an error is reported once and stops all further writes.
    fn write(
        &mut self,
        op: impl FnOnce(&mut ReplicatedLog, &QuorumStateFile) -> Result<Option<IoDone>, StorageError>,
    ) {
        if self.failed {
            return;
        }
        let Some(log) = self.log.as_mut() else {
            self.failed = true;
            self.report(IoDone::Failed("the log is not open".into()));
            return;
        };
        match op(log, &self.state) {
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

    fn handle(&mut self, _: Recover, _: &mut Context<Self>) -> Self::Result {
        let (log, _report) = ReplicatedLog::open(&self.partition_dir, self.config)?;
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
        };
        self.log = Some(log);
        self.failed = false;
        Ok(recovered)
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
    fn handle(&mut self, msg: Persist, _: &mut Context<Self>) {
        self.write(|_, state| {
            state
                .write(&to_storage(msg.0))
                .map(|()| Some(IoDone::ElectionPersisted))
        });
    }
}

impl Handler<AppendBatches> for LogStore {
    type Result = ();
    fn handle(&mut self, msg: AppendBatches, _: &mut Context<Self>) {
        self.write(|log, _| log.append(msg.0, OffsetPolicy::Validate).map(|_| None));
    }
}

impl Handler<TruncateTo> for LogStore {
    type Result = ();
    fn handle(&mut self, msg: TruncateTo, _: &mut Context<Self>) {
        self.write(|log, _| log.truncate_to(msg.0).map(|_| None));
    }
}

impl Handler<FlushLog> for LogStore {
    type Result = ();
    fn handle(&mut self, _: FlushLog, _: &mut Context<Self>) {
        self.write(|log, _| {
            log.flush()
                .map(|()| Some(IoDone::Flushed(log.log_end_offset())))
        });
    }
}

impl Handler<ReadLog> for LogStore {
    type Result = Result<Bytes, StorageError>;
    fn handle(&mut self, msg: ReadLog, _: &mut Context<Self>) -> Self::Result {
        match self.log.as_ref() {
            Some(log) if !self.failed => log.read(msg.from, msg.max_bytes as usize),
            _ => Err(StorageError::Failed("the log store failed".into())),
        }
    }
}

impl Handler<ReadForFetch> for LogStore {
    type Result = ();

    fn handle(&mut self, msg: ReadForFetch, _: &mut Context<Self>) {
        let mut response = msg.response;
        match self
            .log
            .as_ref()
            .filter(|_| !self.failed)
            .map(|log| log.read(msg.from, msg.max_bytes as usize))
        {
            Some(Ok(records)) => response.records = records,
            // The fetcher simply asks again; the protocol core sees an empty answer.
            Some(Err(e)) => tracing::debug!(error = %e, "fetch read failed"),
            None => {}
        }
        msg.deliver.do_send(SendResponse {
            correlation_id: msg.correlation_id,
            response: crate::raft::Response::Fetch(response),
        });
    }
}
