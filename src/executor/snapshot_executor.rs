//! The node's state machine and its snapshot files, as the core's actions and the high
//! watermark use them.
//!
//! Owns applying committed batches in order (and the committed voter-set history a snapshot's
//! KRaftVersion and Voters records come from), when a snapshot is due, writing one, serving
//! FetchSnapshot chunks of any snapshot still on disk, writing fetched chunks, and installing a
//! fetched snapshot (verify, rename into place, load). Time comes in as an argument, so the
//! simulation drives it as production does. It must never write the log, and never retry an IO
//! error: the caller stops the node.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

use crate::raft::{ErrorCode, FetchSnapshotResponse, VoterSetHistory, control_records};
use crate::record::{BatchIter, ControlRecord, RecordBatch};
use crate::state_machine::{StateMachine, StateMachineFactory};
use crate::storage::{
    BOOTSTRAP_SNAPSHOT_ID, Fs, SnapshotFile, SnapshotFileWriter, StorageError,
    delete_snapshots_before_in, list_snapshots_in, promote_fetched_in, remove_fetch_in,
    remove_other_fetches_in, remove_snapshot_leftovers_in, verify_fetched_in,
    write_partial_chunk_in,
};
use crate::types::{Epoch, Offset, OffsetAndEpoch};

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

/// Why a fetched snapshot was not installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The disk failed (an fsync among the possibilities): the node must stop, since fetching
    /// again could "verify" bytes that only the page cache holds.
    #[error("{0}")]
    Disk(StorageError),
    /// The fetched bytes are not a valid snapshot: they are deleted and fetched again.
    #[error("{0}")]
    Invalid(StorageError),
}

/// A fetched snapshot, installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Its size in bytes.
    pub size: u64,
    /// Its KRaftVersion and Voters records (none in a kraft.version 0 snapshot): the voter set
    /// in force at its end, for `Input::SnapshotInstalled`.
    pub control: Vec<ControlRecord>,
}

pub struct SnapshotExecutor {
    fs: Fs,
    dir: PathBuf,
    policy: SnapshotPolicy,
    state: Box<dyn StateMachine>,
    factory: StateMachineFactory,
    /// Epoch of the last batch applied (the epoch a snapshot of this state is named with).
    last_epoch: Epoch,
    /// Largest record timestamp applied: a snapshot's "last contained log timestamp". Using it
    /// (not the clock) makes every node's snapshot at the same offset byte-identical, so a
    /// transfer can resume from another leader's copy.
    last_timestamp: i64,
    bytes_since_snapshot: u64,
    last_snapshot: Option<OffsetAndEpoch>,
    last_snapshot_at: Duration,
    /// The kraft.version levels and voter sets of the applied (committed) state: what a
    /// snapshot of it holds after its header. Fed from the snapshot loaded and the control
    /// batches applied since.
    voters: VoterSetHistory,
}

impl SnapshotExecutor {
    /// Removes leftovers of interrupted snapshot writes and loads the latest snapshot (the log
    /// after it is applied by the caller, from [`SnapshotExecutor::applied_offset`]). A latest
    /// snapshot that cannot be loaded is an error: the node must not start from less.
    pub fn open(
        fs: &Fs,
        dir: &Path,
        policy: SnapshotPolicy,
        factory: StateMachineFactory,
        now: Duration,
    ) -> Result<Self, StorageError> {
        for path in remove_snapshot_leftovers_in(fs, dir)? {
            tracing::info!(path = %path.display(), "removed an interrupted snapshot file");
        }
        let mut executor = SnapshotExecutor {
            fs: fs.clone(),
            dir: dir.to_path_buf(),
            policy,
            state: factory.make(),
            factory,
            last_epoch: Epoch(0),
            last_timestamp: 0,
            bytes_since_snapshot: 0,
            last_snapshot: None,
            last_snapshot_at: now,
            voters: VoterSetHistory::default(),
        };
        // The bootstrap checkpoint of a dynamic quorum (end offset 0) holds no state, only the
        // first voter set (which the log executor reads): the state machine starts empty, as
        // Kafka's listeners never see that snapshot.
        let latest = list_snapshots_in(fs, dir)?.last().copied();
        match latest {
            Some(BOOTSTRAP_SNAPSHOT_ID) => {
                let file = SnapshotFile::open_in(fs, dir, BOOTSTRAP_SNAPSHOT_ID)?;
                executor.voters = snapshot_voters(&file)?.0;
            }
            Some(id) => {
                executor.adopt(&SnapshotFile::open_in(fs, dir, id)?, now)?;
                tracing::info!(end_offset = %id.offset, epoch = %id.epoch, "loaded snapshot");
            }
            None => {}
        }
        Ok(executor)
    }

    /// Makes the state the one in `file`; on error the state is left as it was. Returns the
    /// snapshot's KRaftVersion and Voters records.
    fn adopt(
        &mut self,
        file: &SnapshotFile,
        now: Duration,
    ) -> Result<Vec<ControlRecord>, StorageError> {
        let (voters, control) = snapshot_voters(file)?;
        let mut state = self.factory.make();
        state.load_snapshot(file)?;
        self.last_timestamp = file.last_contained_timestamp()?;
        self.state = state;
        self.voters = voters;
        self.last_epoch = file.id.epoch;
        self.last_snapshot = Some(file.id);
        self.last_snapshot_at = now;
        self.bytes_since_snapshot = 0;
        Ok(control)
    }

    pub fn state(&self) -> &dyn StateMachine {
        self.state.as_ref()
    }

    pub fn applied_offset(&self) -> Offset {
        self.state.applied_offset()
    }

    /// Applies the whole batches of `bytes` that continue the state and end at or below
    /// `high_watermark`; stops at the first that does not. Returns how many were applied.
    pub fn apply(&mut self, bytes: Bytes, high_watermark: Offset) -> usize {
        let mut applied = 0;
        for batch in BatchIter::new(bytes) {
            let Ok(batch) = batch else { break };
            if batch.base_offset() != self.state.applied_offset()
                || batch.next_offset() > high_watermark
            {
                break;
            }
            if let Err(e) = self.apply_control(&batch) {
                tracing::error!(error = %e, offset = %batch.base_offset(), "cannot apply a committed control batch");
                break;
            }
            if let Err(e) = self.state.apply(&batch) {
                tracing::error!(error = %e, offset = %batch.base_offset(), "cannot apply a committed batch");
                break;
            }
            self.last_epoch = batch.epoch();
            self.last_timestamp = self.last_timestamp.max(batch.header().max_timestamp);
            self.bytes_since_snapshot += batch.size_in_bytes() as u64;
            applied += 1;
        }
        applied
    }

    /// Records a committed control batch's KRaftVersion and Voters records. The replica checked
    /// them before appending; one that does not fit the history stops applying (never a
    /// snapshot with a wrong voter set).
    fn apply_control(&mut self, batch: &RecordBatch) -> Result<(), String> {
        if !batch.is_control() {
            return Ok(());
        }
        let mut voters = self.voters.clone();
        for (offset, record) in control_records(batch)? {
            voters
                .apply(offset, &record)
                .map_err(|e| format!("the voter history: {e}"))?;
        }
        self.voters = voters;
        Ok(())
    }

    /// The records a snapshot ending at `end` holds after its header: the kraft.version and
    /// voter set in force at its last record, none for kraft.version 0 (whose snapshots stay
    /// as they were before dynamic quorums).
    fn snapshot_control(&self, end: Offset) -> Vec<ControlRecord> {
        let last = Offset(end.0 - 1);
        if self.voters.kraft_version_at(last) == 0 {
            return Vec::new();
        }
        self.voters.snapshot_records(last)
    }

    /// Whether the policy asks for a snapshot at time `now`.
    pub fn due(&self, now: Duration) -> bool {
        let by_size = self.bytes_since_snapshot >= self.policy.max_bytes;
        let by_time = self.policy.interval.is_some_and(|i| {
            now.saturating_sub(self.last_snapshot_at) >= i && self.bytes_since_snapshot > 0
        });
        by_size || by_time
    }

    /// Writes a snapshot of the current state, unless the latest already ends here.
    pub fn write_snapshot(
        &mut self,
        now: Duration,
    ) -> Result<Option<OffsetAndEpoch>, StorageError> {
        let id = OffsetAndEpoch {
            offset: self.state.applied_offset(),
            epoch: self.last_epoch,
        };
        if self.last_snapshot == Some(id) || id.offset == Offset(0) {
            return Ok(None);
        }
        let control = self.snapshot_control(id.offset);
        let mut writer = SnapshotFileWriter::create_with_control_in(
            &self.fs,
            &self.dir,
            id,
            self.last_timestamp,
            &control,
        )?;
        self.state.write_snapshot(&mut writer)?;
        writer.finish()?;
        // What the snapshot holds no longer needs its history (the set in force is kept).
        self.voters.forget_before(id.offset);
        tracing::info!(end_offset = %id.offset, epoch = %id.epoch, "wrote snapshot");
        self.last_snapshot = Some(id);
        self.last_snapshot_at = now;
        self.bytes_since_snapshot = 0;
        Ok(Some(id))
    }

    /// `Action::RespondFetchSnapshot`: fills the answer from any snapshot still on disk.
    pub fn read_chunk(
        &self,
        mut response: FetchSnapshotResponse,
        max_bytes: u32,
    ) -> FetchSnapshotResponse {
        match SnapshotFile::open_in(&self.fs, &self.dir, response.snapshot_id) {
            Err(_) => response.error = ErrorCode::SnapshotNotFound,
            // Kafka's bound: a position at the end is out of range too (nothing is left to
            // send, and a follower that has every byte installs instead of asking).
            Ok(file) if response.position >= file.size => {
                response.error = ErrorCode::PositionOutOfRange;
                response.size = file.size;
            }
            Ok(file) => match file.read_chunk(response.position, max_bytes as usize) {
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
        response
    }

    /// `Action::WriteSnapshotChunk`: a chunk of a fetched snapshot at its byte position. The
    /// first chunk of a transfer drops fetches of other snapshots.
    pub fn write_chunk(
        &mut self,
        id: OffsetAndEpoch,
        position: u64,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        if position == 0 {
            remove_other_fetches_in(&self.fs, &self.dir, id)?;
        }
        write_partial_chunk_in(&self.fs, &self.dir, id, position, bytes)
    }

    /// `Action::InstallSnapshot`: makes the fetched file durable, verifies every byte, loads
    /// it as the state, and only then renames it into place (a snapshot the state machine
    /// rejects never becomes one the node would serve or start from). Returns its size and
    /// voter records.
    pub fn install(
        &mut self,
        id: OffsetAndEpoch,
        now: Duration,
    ) -> Result<Installed, InstallError> {
        let loaded = verify_fetched_in(&self.fs, &self.dir, id).and_then(|file| {
            let control = self.adopt(&file, now)?;
            Ok(Installed {
                size: file.size,
                control,
            })
        });
        let installed = match loaded {
            Ok(installed) => installed,
            Err(e @ StorageError::Io { .. }) => return Err(InstallError::Disk(e)),
            Err(e) => {
                let _ = remove_fetch_in(&self.fs, &self.dir, id);
                return Err(InstallError::Invalid(e));
            }
        };
        promote_fetched_in(&self.fs, &self.dir, id).map_err(InstallError::Disk)?;
        tracing::info!(end_offset = %id.offset, epoch = %id.epoch, bytes = installed.size, "installed a snapshot fetched from the leader");
        Ok(installed)
    }

    /// Log cleaning moved past these snapshots: deletes those ending before `offset` (never
    /// the newest).
    pub fn forget_before(&self, offset: Offset) -> Result<Vec<PathBuf>, StorageError> {
        delete_snapshots_before_in(&self.fs, &self.dir, offset)
    }
}

/// The voter history a snapshot leaves (its KRaftVersion and Voters records at its last
/// contained offset), and those records. Records the history refuses make the file corrupt.
fn snapshot_voters(
    file: &SnapshotFile,
) -> Result<(VoterSetHistory, Vec<ControlRecord>), StorageError> {
    let control: Vec<ControlRecord> = file
        .leading_control_records()?
        .into_iter()
        .filter(|r| matches!(r, ControlRecord::KRaftVersion(_) | ControlRecord::Voters(_)))
        .collect();
    let mut voters = VoterSetHistory::default();
    voters
        .load_snapshot(file.id.offset, &control)
        .map_err(|e| StorageError::corrupt(&file.path, e.to_string()))?;
    Ok((voters, control))
}
