//! The log and the election state of one node, as the core's actions use them.
//!
//! Owns `storage::ReplicatedLog` and `storage::QuorumStateFile`: recovery at start (with the
//! voter-set history of a dynamic quorum, from the newest snapshot and the log), each log
//! action, reads for Fetch answers, the log reset of a snapshot install and retention cleaning.
//! Every IO error is returned, never retried or hidden: after one, the caller stops the node,
//! because the state on disk is unknown until recovery.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

use super::recovered::Recovered;
use crate::raft::{
    EpochStart, FetchResponse, PersistedElection, ProducerStates, VoterSetHistory, control_records,
};
use crate::record::{BatchIter, RecordBatch};
use crate::storage::{
    ElectionState, Fs, LogConfig, LogInspection, OffsetPolicy, QuorumStateFile, RepairPointFile,
    ReplicatedLog, SnapshotFile, StorageError, fetched_so_far_in, list_snapshots_in,
};
use crate::types::{Offset, OffsetAndEpoch};

/// Log cleaning by Kafka's metadata retention rules: with at least two snapshots, the log start
/// moves to the next snapshot while the log and snapshots exceed `max_bytes` or the older
/// snapshot is older than `max_age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionPolicy {
    pub max_bytes: Option<u64>,
    pub max_age: Option<Duration>,
}

/// What cleaning did: the new log start, and the offset below which snapshots are no longer
/// needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cleaned {
    pub log_start_offset: Offset,
    pub snapshots_before: Offset,
}

/// Bytes read at a time when rebuilding producer state and the voter history at start-up.
const PRODUCER_SCAN_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug)]
pub struct LogExecutor {
    fs: Fs,
    dir: PathBuf,
    log: ReplicatedLog,
    state: QuorumStateFile,
    /// The static voter set `quorum-state` lists (`data_version` 0); empty: a dynamic quorum.
    static_voters: Vec<crate::types::NodeId>,
}

impl LogExecutor {
    /// Opens and recovers the log in `dir` and reads the election state. The log and the
    /// snapshots are inspected first: damage recovery must not repair on its own (anything but
    /// a torn tail, see `storage::LogInspection`) is refused before any file changes.
    pub fn open(fs: &Fs, dir: &Path, config: LogConfig) -> Result<(Self, Recovered), StorageError> {
        crate::storage::fsutil::create_dir_durably_in(&**fs, dir)?;
        let mut inspection = LogInspection::run_in(fs, dir)?;
        inspection.check_snapshots_in(fs, dir)?;
        inspection.refuse_damage()?;
        // The state files too are read before recovery writes anything: one that cannot be
        // read stops the node with every file as it was.
        QuorumStateFile::new_in(fs, dir).read()?;
        RepairPointFile::new_in(fs, dir).read()?;
        let (log, _report) = ReplicatedLog::open_inspected_in(fs, dir, config, &inspection)?;
        let executor = LogExecutor {
            fs: fs.clone(),
            dir: dir.to_path_buf(),
            log,
            state: QuorumStateFile::new_in(fs, dir),
            static_voters: Vec::new(),
        };
        let recovered = executor.recovered()?;
        Ok((executor, recovered))
    }

    /// What the core starts from: the log, the election state and the snapshots on disk.
    fn recovered(&self) -> Result<Recovered, StorageError> {
        let election = self.state.read()?.map(|s| PersistedElection {
            epoch: s.epoch,
            leader_id: s.leader_id,
            voted_id: s.voted_id,
        });
        let epochs = self
            .log
            .epoch_entries()
            .iter()
            .map(|e| EpochStart {
                epoch: e.epoch,
                start_offset: e.start_offset,
            })
            .collect();
        let latest_snapshot = list_snapshots_in(&self.fs, &self.dir)?.last().copied();
        let mut voters = self.snapshot_voters(latest_snapshot)?;
        let producers = self.scan_log(latest_snapshot.map(|s| s.offset), &mut voters)?;
        Ok(Recovered {
            log_start_offset: self.log.log_start_offset(),
            log_end_offset: self.log.log_end_offset(),
            epochs,
            election,
            latest_snapshot,
            fetched_so_far: fetched_so_far_in(&self.fs, &self.dir)?,
            repair_point: RepairPointFile::new_in(&self.fs, &self.dir).read()?,
            producers,
            voter_history: voters,
        })
    }

    /// The voter history as the newest snapshot leaves it: its KRaftVersion and Voters records
    /// at its last contained offset. The bootstrap checkpoint of a dynamic quorum is a snapshot
    /// ending at offset 0, so a log without a newer one starts from it. Empty (static voters,
    /// kraft.version 0) when no snapshot holds such records.
    fn snapshot_voters(
        &self,
        latest: Option<OffsetAndEpoch>,
    ) -> Result<VoterSetHistory, StorageError> {
        let mut history = VoterSetHistory::default();
        let Some(id) = latest else {
            return Ok(history);
        };
        let file = SnapshotFile::open_in(&self.fs, &self.dir, id)?;
        let records = file.leading_control_records()?;
        history
            .load_snapshot(id.offset, &records)
            .map_err(|e| StorageError::corrupt(&file.path, e.to_string()))?;
        Ok(history)
    }

    /// One pass over the log at start-up. Idempotent producers' recent batches, from every
    /// batch header (everything is taken as committed: only each producer's newest few batches
    /// are kept); and the KRaftVersion and Voters records of the control batches at or after
    /// `snapshot_end` (those below it are in the snapshot already) applied to `voters`. Data
    /// batches are not decoded.
    fn scan_log(
        &self,
        snapshot_end: Option<Offset>,
        voters: &mut VoterSetHistory,
    ) -> Result<ProducerStates, StorageError> {
        let mut states = ProducerStates::default();
        let end = self.log.log_end_offset();
        let from = snapshot_end.unwrap_or(Offset(0));
        let mut next = self.log.log_start_offset();
        while next < end {
            let chunk = self.log.read(next, PRODUCER_SCAN_BYTES)?;
            let before = next;
            for batch in BatchIter::new(chunk).map_while(Result::ok) {
                states.record(batch.header(), end);
                if batch.is_control() && batch.next_offset() > from {
                    self.apply_control(&batch, from, voters)?;
                }
                next = batch.next_offset();
            }
            if next == before {
                break;
            }
        }
        Ok(states)
    }

    /// Applies a control batch's records at or after `from` to `voters`. A record that cannot
    /// be decoded or that the history refuses is damage in the segment holding it.
    fn apply_control(
        &self,
        batch: &RecordBatch,
        from: Offset,
        voters: &mut VoterSetHistory,
    ) -> Result<(), StorageError> {
        let damaged = |reason: String| {
            StorageError::corrupt(&self.segment_holding(batch.base_offset()), reason)
        };
        for (offset, record) in control_records(batch).map_err(damaged)? {
            if offset >= from {
                voters
                    .apply(offset, &record)
                    .map_err(|e| damaged(format!("the voter history: {e}")))?;
            }
        }
        Ok(())
    }

    /// The segment file that holds `offset` (named by its base offset), or the partition
    /// directory when none can be told.
    fn segment_holding(&self, offset: Offset) -> PathBuf {
        let base_of = |path: &PathBuf| {
            path.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<i64>().ok())
        };
        self.log
            .segment_files()
            .into_iter()
            .rfind(|p| base_of(p).is_some_and(|base| base <= offset.0))
            .unwrap_or_else(|| self.dir.clone())
    }

    pub fn log(&self) -> &ReplicatedLog {
        &self.log
    }

    /// A static voter set (kraft.version 0): `quorum-state` is written as Kafka writes it for
    /// one, `data_version` 0 listing the voters.
    pub fn with_static_voters(
        mut self,
        voters: impl IntoIterator<Item = crate::types::NodeId>,
    ) -> Self {
        self.static_voters = voters.into_iter().collect();
        self
    }

    /// `Action::PersistElection`: durable before it returns.
    pub fn persist_election(&mut self, e: PersistedElection) -> Result<(), StorageError> {
        self.persist_election_voting_for(e, None)
    }

    /// [`LogExecutor::persist_election`] naming the directory id of the voter voted for (a
    /// dynamic quorum's `quorum-state` records it as `votedDirectoryId`, as Kafka's does).
    pub fn persist_election_voting_for(
        &mut self,
        e: PersistedElection,
        voted_directory_id: Option<crate::uuid::Uuid>,
    ) -> Result<(), StorageError> {
        let state = ElectionState {
            epoch: e.epoch,
            leader_id: e.leader_id,
            voted_id: e.voted_id,
            voted_directory_id: voted_directory_id.filter(|_| e.voted_id.is_some()),
        };
        if self.static_voters.is_empty() {
            self.state.write(&state)
        } else {
            self.state.write_static(&state, &self.static_voters)
        }
    }

    /// `Action::RepairPointReached`: durably forgets the repair point.
    pub fn clear_repair_point(&mut self) -> Result<(), StorageError> {
        RepairPointFile::new_in(&self.fs, &self.dir).clear()
    }

    /// `Action::Append`: batches the core already validated, at the log end.
    pub fn append(&mut self, batches: Bytes) -> Result<(), StorageError> {
        self.log.append(batches, OffsetPolicy::Validate).map(|_| ())
    }

    /// `Action::Truncate`.
    pub fn truncate(&mut self, offset: Offset) -> Result<(), StorageError> {
        self.log.truncate_to(offset).map(|_| ())
    }

    /// `Action::Flush`: returns the log end offset it made durable.
    pub fn flush(&mut self) -> Result<Offset, StorageError> {
        self.log.flush()?;
        Ok(self.log.log_end_offset())
    }

    /// Whole batches from `from` (at most `max_bytes`, at least one batch).
    pub fn read(&self, from: Offset, max_bytes: u32) -> Result<Bytes, StorageError> {
        self.log.read(from, max_bytes as usize)
    }

    /// `Action::RespondFetch`: fills the answer's records. A fetch offset cleaning or
    /// truncation moved out of the log meanwhile gets no records (the fetcher asks again and
    /// is redirected); any other error is the disk's and is returned.
    pub fn fill_fetch(
        &self,
        response: &mut FetchResponse,
        from: Offset,
        max_bytes: u32,
    ) -> Result<(), StorageError> {
        match self.read(from, max_bytes) {
            Ok(records) => {
                response.records = records;
                Ok(())
            }
            Err(StorageError::OffsetOutOfRange { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Installing a fetched snapshot: the log becomes empty, starting at its end.
    pub fn reset_to(&mut self, id: OffsetAndEpoch) -> Result<Vec<PathBuf>, StorageError> {
        self.log.reset_to(id)
    }

    /// Log cleaning after a new snapshot, by `policy` at wall-clock time `now_ms`. `None` when
    /// nothing moved.
    pub fn clean(
        &mut self,
        policy: RetentionPolicy,
        now_ms: i64,
    ) -> Result<Option<Cleaned>, StorageError> {
        let Some(target) = self.cleaning_target(policy, now_ms)? else {
            return Ok(None);
        };
        let deleted = self.log.delete_segments_below(target)?;
        if !deleted.is_empty() {
            tracing::info!(log_start_offset = %self.log.log_start_offset(), snapshot = %target, files = deleted.len(), "cleaned the log");
        }
        Ok(Some(Cleaned {
            log_start_offset: self.log.log_start_offset(),
            snapshots_before: target,
        }))
    }

    /// The snapshot end offset retention lets the log start move to: walking snapshots oldest
    /// first, each is dropped while the log plus snapshots exceed the size bound or it is older
    /// than the age bound; the newest is always kept. A snapshot's age is that of its last
    /// contained record, as Kafka measures it. Only snapshots that open count.
    fn cleaning_target(
        &self,
        policy: RetentionPolicy,
        now_ms: i64,
    ) -> Result<Option<Offset>, StorageError> {
        let mut sized: Vec<(Offset, u64, Option<Duration>)> = Vec::new();
        for id in list_snapshots_in(&self.fs, &self.dir)? {
            // One the snapshot writer deleted since the listing (it deletes old ones after a
            // cleaning) is skipped; any other failure to read one is the disk's.
            let read = SnapshotFile::open_in(&self.fs, &self.dir, id)
                .and_then(|file| Ok((file.last_contained_timestamp()?, file)));
            let (timestamp, file) = match read {
                Err(StorageError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    continue;
                }
                other => other?,
            };
            let age = Duration::from_millis(now_ms.saturating_sub(timestamp).max(0) as u64);
            sized.push((id.offset, file.size, Some(age)));
        }
        let log = &self.log;
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
}
