//! The replicated log of one partition: an ordered set of segments, the leader epoch cache, and
//! the log end / flushed offsets.
//!
//! Owns the log's invariants: offsets are contiguous from the log start offset; batch epochs
//! never decrease; the epoch checkpoint is durable before the first batch of a new epoch is
//! written; a flush makes every append before it durable. Recovery on open cuts only a torn
//! tail of the last segment (or completes a truncation it had begun) and refuses any other
//! damage before writing anything. It must never be shared between threads without a single owner
//! (the log store actor) and never hide an IO failure: after one, every call fails until the log
//! is reopened and recovered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::epoch_cache::{CheckpointLoad, EpochEntry, LeaderEpochCache};
use super::error::{IoContext, StorageError};
use super::fs::{Fs, real_fs};
use super::fsutil;
use super::inspect::{LogInspection, check_epoch};
use super::segment::{Segment, index_file_name, log_file_name};
use crate::record::{BatchHeader, BatchIter, RecordBatch};
use crate::types::{Epoch, Offset, OffsetAndEpoch};

/// Sizing of the log's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment when the next batch would take the active one past this size.
    pub segment_bytes: u64,
    /// Bytes of log between sparse index entries (Kafka's `index.interval.bytes`).
    pub index_interval_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            index_interval_bytes: 4096,
        }
    }
}

/// How an append treats the batches' base offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetPolicy {
    /// The leader's path: batches are renumbered to start at the log end offset.
    Assign,
    /// The follower's path: batches must already start at the log end offset.
    Validate,
}

/// Offsets an append wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: Offset,
    pub last_offset: Offset,
    pub batches: usize,
    pub bytes: usize,
}

/// A file cut short by recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    pub file: PathBuf,
    pub position: u64,
    pub reason: String,
}

/// Everything recovery changed on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub truncations: Vec<Truncation>,
    pub deleted_files: Vec<PathBuf>,
    pub rebuilt_indexes: Vec<PathBuf>,
    /// Why the epoch checkpoint was rewritten, if it was.
    pub rebuilt_epoch_checkpoint: Option<String>,
    pub removed_temp_files: Vec<PathBuf>,
}

/// The durable, segmented log. See the module docs for its invariants.
#[derive(Debug)]
pub struct ReplicatedLog {
    fs: Fs,
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<Offset, Segment>,
    epochs: LeaderEpochCache,
    log_end_offset: Offset,
    flushed_offset: Offset,
    dir_dirty: bool,
    failure: Option<String>,
}

impl ReplicatedLog {
    /// Opens the log in `dir` on the real file system (creating it if needed), recovering
    /// whatever a crash left.
    pub fn open(
        dir: &Path,
        config: LogConfig,
    ) -> Result<(ReplicatedLog, RecoveryReport), StorageError> {
        Self::open_in(&real_fs(), dir, config)
    }

    /// Opens the log in `dir` on `fs` (creating it if needed), recovering whatever a crash left.
    /// Damage other than a torn tail is refused before anything is written (see
    /// [`LogInspection`]).
    pub fn open_in(
        fs: &Fs,
        dir: &Path,
        config: LogConfig,
    ) -> Result<(ReplicatedLog, RecoveryReport), StorageError> {
        fsutil::create_dir_durably_in(&**fs, dir)?;
        let inspection = LogInspection::run_in(fs, dir)?;
        Self::open_inspected_in(fs, dir, config, &inspection)
    }

    /// [`ReplicatedLog::open_in`] after the caller inspected `dir` (and perhaps checked more,
    /// such as the snapshots). Refuses the inspection's damage.
    pub fn open_inspected_in(
        fs: &Fs,
        dir: &Path,
        config: LogConfig,
        inspection: &LogInspection,
    ) -> Result<(ReplicatedLog, RecoveryReport), StorageError> {
        inspection.refuse_damage()?;
        let mut report = RecoveryReport {
            removed_temp_files: fsutil::remove_stale_tmp_files_in(&**fs, dir)?,
            ..RecoveryReport::default()
        };
        for path in &inspection.orphan_indexes {
            fs.remove_file(path).at(path)?;
            report.deleted_files.push(path.clone());
        }
        let bases = &inspection.bases;
        let (epochs, load) = LeaderEpochCache::load_in(fs, dir)?;
        let mut log = ReplicatedLog {
            fs: fs.clone(),
            dir: dir.to_path_buf(),
            config,
            segments: BTreeMap::new(),
            epochs,
            log_end_offset: Offset(0),
            flushed_offset: Offset(0),
            dir_dirty: false,
            failure: None,
        };
        if let Some(segment) = inspection.truncation_in {
            // Completing a truncation the node began: the segments after the one it cuts go
            // first, durably, for the same reason `truncate_to` orders it so.
            let after: Vec<Offset> = bases.iter().copied().filter(|b| *b > segment).collect();
            log.delete_segment_files(
                &after,
                "completing a truncation the node had begun",
                &mut report,
            )?;
            fsutil::fsync_dir_in(&**fs, dir)?;
        }
        let bases: Vec<Offset> = match inspection.truncation_in {
            Some(segment) => bases.iter().copied().filter(|b| *b <= segment).collect(),
            None => bases.clone(),
        };
        let rebuilt = log.recover_segments(&bases, load == CheckpointLoad::Loaded, &mut report)?;
        log.finish_epoch_recovery(rebuilt, load, &mut report)?;
        if log.segments.is_empty() {
            let start = bases.first().copied().unwrap_or(Offset(0));
            log.segments.insert(
                start,
                Segment::create(fs, dir, start, config.index_interval_bytes)?,
            );
            log.log_end_offset = start;
            log.dir_dirty = true;
        }
        // Segments rolled but never flushed before a process crash have directory entries only
        // in the page cache, and deleted files may still be durable: make the directory match
        // what recovery kept before any of it counts as flushed.
        log.segments.values_mut().try_for_each(Segment::flush)?;
        fsutil::fsync_dir_in(&**fs, dir)?;
        log.dir_dirty = false;
        log.flushed_offset = log.log_end_offset;
        report_warnings(&report);
        Ok((log, report))
    }

    /// Scans the segments in order, keeping the valid prefix. Returns the epoch entries the
    /// batches themselves imply.
    fn recover_segments(
        &mut self,
        bases: &[Offset],
        trust_checkpoint: bool,
        report: &mut RecoveryReport,
    ) -> Result<Vec<EpochEntry>, StorageError> {
        let checkpoint = self.epochs.clone();
        let mut seen: Vec<EpochEntry> = Vec::new();
        let mut expected = bases.first().copied().unwrap_or(Offset(0));
        for (i, &base) in bases.iter().enumerate() {
            if base != expected {
                // The inspection refuses gaps; finding one here means the directory changed
                // under us, and recovery must not guess.
                return Err(StorageError::corrupt(
                    &self.dir.join(log_file_name(base)),
                    format!("segment starts at {base}, the log before it ends at {expected}"),
                ));
            }
            let mut accept = |h: &BatchHeader, _: u64| {
                check_epoch(h, &mut seen, trust_checkpoint.then_some(&checkpoint))
            };
            let (segment, outcome) = Segment::recover(
                &self.fs,
                &self.dir,
                base,
                self.config.index_interval_bytes,
                &mut accept,
            )?;
            if outcome.index_rebuilt {
                report
                    .rebuilt_indexes
                    .push(segment.index_path().to_path_buf());
            }
            expected = segment.next_offset();
            let stopped = outcome.stop.is_some();
            if let Some(stop) = outcome.stop {
                report.truncations.push(Truncation {
                    file: segment.log_path().to_path_buf(),
                    position: stop.position,
                    reason: stop.reason,
                });
            }
            self.segments.insert(base, segment);
            if stopped {
                self.delete_segment_files(
                    &bases[i + 1..],
                    "completing a truncation the node had begun",
                    report,
                )?;
                break;
            }
        }
        self.log_end_offset = expected;
        Ok(seen)
    }

    fn delete_segment_files(
        &mut self,
        bases: &[Offset],
        reason: &str,
        report: &mut RecoveryReport,
    ) -> Result<(), StorageError> {
        for &base in bases {
            for name in [log_file_name(base), index_file_name(base)] {
                let path = self.dir.join(name);
                if fsutil::remove_if_exists(&*self.fs, &path)? {
                    tracing::warn!(file = %path.display(), reason, "deleted segment file during recovery");
                    report.deleted_files.push(path);
                }
            }
        }
        Ok(())
    }

    /// Makes the epoch checkpoint equal to what the recovered batches imply.
    fn finish_epoch_recovery(
        &mut self,
        rebuilt: Vec<EpochEntry>,
        load: CheckpointLoad,
        report: &mut RecoveryReport,
    ) -> Result<(), StorageError> {
        // Epochs past the recovered end were persisted ahead of batches a crash lost; if they
        // stayed on disk, a later open would reject the batches written in their place.
        let trimmed = self.epochs.truncate_from_end(self.log_end_offset);
        let reason = match load {
            CheckpointLoad::Missing if rebuilt.is_empty() => None,
            CheckpointLoad::Missing => Some("missing".to_string()),
            CheckpointLoad::Corrupt(reason) => Some(format!("corrupt: {reason}")),
            CheckpointLoad::Loaded if self.epochs.entries() != rebuilt.as_slice() => {
                Some("disagreed with the log".to_string())
            }
            CheckpointLoad::Loaded if trimmed => Some(format!(
                "held epochs starting at or after the log end offset {}",
                self.log_end_offset
            )),
            CheckpointLoad::Loaded => None,
        };
        if let Some(reason) = reason {
            self.epochs.replace(rebuilt);
            self.epochs.persist()?;
            report.rebuilt_epoch_checkpoint = Some(reason);
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_start_offset(&self) -> Offset {
        *self
            .segments
            .keys()
            .next()
            .expect("a log always has a segment")
    }

    pub fn log_end_offset(&self) -> Offset {
        self.log_end_offset
    }

    /// Every offset below this is durable.
    pub fn flushed_offset(&self) -> Offset {
        self.flushed_offset
    }

    /// The epoch of the last batch in the log (0 for an empty log).
    pub fn last_fetched_epoch(&self) -> Epoch {
        self.epochs.latest().map_or(Epoch(0), |e| e.epoch)
    }

    pub fn epoch_entries(&self) -> &[EpochEntry] {
        self.epochs.entries()
    }

    /// Where `epoch` ends in this log, as a leader answers a diverging follower.
    pub fn end_offset_for_epoch(&self, epoch: Epoch) -> OffsetAndEpoch {
        self.epochs
            .end_offset_for(epoch, self.log_end_offset)
            .unwrap_or(OffsetAndEpoch {
                offset: self.log_end_offset,
                epoch: self.last_fetched_epoch(),
            })
    }

    /// Paths of the segment files, oldest first.
    pub fn segment_files(&self) -> Vec<PathBuf> {
        self.segments
            .values()
            .map(|s| s.log_path().to_path_buf())
            .collect()
    }

    fn check_usable(&self) -> Result<(), StorageError> {
        match &self.failure {
            Some(reason) => Err(StorageError::Failed(reason.clone())),
            None => Ok(()),
        }
    }

    /// Remembers an IO failure: the on-disk state is unknown until the log is reopened.
    fn fail<T>(&mut self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if let Err(StorageError::Io { .. }) = &result {
            self.failure = result.as_ref().err().map(ToString::to_string);
        }
        result
    }

    /// Appends whole batches. Every batch is validated (length, magic, CRC-32C, record count,
    /// epoch >= 0 and not below the log's latest, and with [`OffsetPolicy::Validate`] a base offset
    /// continuing the log) before anything is written, so a bad batch writes nothing. The data is
    /// durable only after [`ReplicatedLog::flush`].
    pub fn append(
        &mut self,
        batches: Bytes,
        policy: OffsetPolicy,
    ) -> Result<AppendInfo, StorageError> {
        self.check_usable()?;
        let validated = self.validate_append(batches, policy)?;
        let result = self.write_batches(validated);
        self.fail(result)
    }

    fn validate_append(
        &self,
        batches: Bytes,
        policy: OffsetPolicy,
    ) -> Result<Vec<RecordBatch>, StorageError> {
        let mut iter = BatchIter::new(batches);
        let mut out = Vec::new();
        let mut next = self.log_end_offset;
        let mut latest = self.epochs.latest().map(|e| e.epoch);
        for (index, batch) in iter.by_ref().enumerate() {
            let batch = batch.map_err(|source| StorageError::InvalidBatch { index, source })?;
            if batch.epoch().0 < 0 {
                return Err(StorageError::NegativeEpoch(batch.epoch()));
            }
            if let Some(l) = latest.filter(|l| batch.epoch() < *l) {
                return Err(StorageError::EpochRegression {
                    latest: l,
                    got: batch.epoch(),
                });
            }
            if policy == OffsetPolicy::Validate && batch.base_offset() != next {
                return Err(StorageError::NonContiguous {
                    expected: next,
                    got: batch.base_offset(),
                });
            }
            latest = Some(batch.epoch());
            next = next.plus(batch.last_offset().0 - batch.base_offset().0 + 1);
            out.push(batch);
        }
        match iter.trailing_bytes() {
            0 => Ok(out),
            n => Err(StorageError::PartialBatch(n)),
        }
    }

    fn write_batches(&mut self, batches: Vec<RecordBatch>) -> Result<AppendInfo, StorageError> {
        let first_offset = self.log_end_offset;
        let mut bytes = 0;
        let count = batches.len();
        for batch in batches {
            let batch = renumber(batch, self.log_end_offset);
            self.maybe_roll(&batch)?;
            if self.epochs.assign(batch.epoch(), batch.base_offset()) {
                self.epochs.persist()?;
            }
            let active = self
                .segments
                .values_mut()
                .next_back()
                .expect("a log always has a segment");
            active.append(batch.as_bytes(), batch.header())?;
            self.log_end_offset = batch.next_offset();
            bytes += batch.size_in_bytes();
        }
        Ok(AppendInfo {
            first_offset,
            last_offset: Offset(self.log_end_offset.0 - 1),
            batches: count,
            bytes,
        })
    }

    /// Starts a new segment when `batch` would take the active one past its size, or past the
    /// offsets its index can express relative to its base.
    fn maybe_roll(&mut self, batch: &RecordBatch) -> Result<(), StorageError> {
        let active = self
            .segments
            .values_mut()
            .next_back()
            .expect("a log always has a segment");
        let fits_size = active.size() + batch.size_in_bytes() as u64 <= self.config.segment_bytes;
        if active.size() == 0 || (fits_size && active.can_index(batch.last_offset())) {
            return Ok(());
        }
        active.flush()?;
        let base = self.log_end_offset;
        let segment = Segment::create(&self.fs, &self.dir, base, self.config.index_interval_bytes)?;
        self.segments.insert(base, segment);
        self.dir_dirty = true;
        Ok(())
    }

    /// Makes every append so far durable (segment data, then new directory entries).
    pub fn flush(&mut self) -> Result<(), StorageError> {
        self.check_usable()?;
        let result = self.flush_inner();
        self.fail(result)
    }

    fn flush_inner(&mut self) -> Result<(), StorageError> {
        for segment in self.segments.values_mut() {
            segment.flush()?;
        }
        if self.dir_dirty {
            fsutil::fsync_dir_in(&*self.fs, &self.dir)?;
            self.dir_dirty = false;
        }
        self.flushed_offset = self.log_end_offset;
        Ok(())
    }

    /// Whole batches from the one holding `from`, up to `max_bytes` (at least one batch), from a
    /// single segment. Empty at the log end offset.
    pub fn read(&self, from: Offset, max_bytes: usize) -> Result<Bytes, StorageError> {
        self.check_usable()?;
        if from < self.log_start_offset() || from > self.log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset: from,
                start: self.log_start_offset(),
                end: self.log_end_offset,
            });
        }
        match self.segments.range(..=from).next_back() {
            Some((_, segment)) => segment.read(from, max_bytes),
            None => Ok(Bytes::new()),
        }
    }

    /// Bytes of the log's segment files.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }

    /// Bytes of the whole segments that lie below `offset` (what cleaning to it would free).
    pub fn bytes_below(&self, offset: Offset) -> u64 {
        self.segments
            .values()
            .zip(self.segments.keys().skip(1))
            .take_while(|(_, next)| **next <= offset)
            .map(|(segment, _)| segment.size())
            .sum()
    }

    /// Replaces the whole log with an empty one starting at `id.offset` in epoch `id.epoch`:
    /// what installing a fetched snapshot ending there does. Returns the deleted files.
    pub fn reset_to(&mut self, id: OffsetAndEpoch) -> Result<Vec<PathBuf>, StorageError> {
        self.check_usable()?;
        let result = self.reset_inner(id);
        self.fail(result)
    }

    fn reset_inner(&mut self, id: OffsetAndEpoch) -> Result<Vec<PathBuf>, StorageError> {
        // Newest first: a crash part-way leaves a prefix of the old log, a log recovery takes
        // as it is (the installed snapshot already covers what follows it). The new segment
        // comes only after the last old one is gone, so no crash leaves an offset gap.
        let mut deleted = Vec::new();
        while let Some((_, segment)) = self.segments.pop_last() {
            deleted.push(segment.log_path().to_path_buf());
            segment.delete()?;
        }
        let fresh = Segment::create(
            &self.fs,
            &self.dir,
            id.offset,
            self.config.index_interval_bytes,
        )?;
        self.segments.insert(id.offset, fresh);
        fsutil::fsync_dir_in(&*self.fs, &self.dir)?;
        self.epochs.replace(vec![EpochEntry {
            epoch: id.epoch,
            start_offset: id.offset,
        }]);
        self.epochs.persist()?;
        self.log_end_offset = id.offset;
        self.flushed_offset = id.offset;
        Ok(deleted)
    }

    /// Log cleaning: deletes every whole segment that lies below `offset` (a snapshot's end),
    /// never the active one, and moves the log start offset to the first remaining segment.
    /// The epoch checkpoint keeps the epoch in force at the new start. Returns the deleted files.
    pub fn delete_segments_below(&mut self, offset: Offset) -> Result<Vec<PathBuf>, StorageError> {
        self.check_usable()?;
        let result = self.delete_prefix(offset);
        self.fail(result)
    }

    fn delete_prefix(&mut self, offset: Offset) -> Result<Vec<PathBuf>, StorageError> {
        let doomed: Vec<Offset> = self
            .segments
            .keys()
            .zip(self.segments.keys().skip(1))
            .take_while(|(_, next)| **next <= offset.min(self.flushed_offset))
            .map(|(base, _)| *base)
            .collect();
        if doomed.is_empty() {
            return Ok(Vec::new());
        }
        let new_start = *self
            .segments
            .keys()
            .nth(doomed.len())
            .expect("the active segment stays");
        // Segments first, checkpoint last: a crash in between leaves a checkpoint with epochs
        // below the log start, which recovery rebuilds from the batches. The other order would
        // leave surviving old segments that the checkpoint disowns, and recovery would cut the
        // whole log at them.
        let mut deleted = Vec::new();
        for base in doomed {
            let segment = self.segments.remove(&base).expect("listed above");
            deleted.push(segment.log_path().to_path_buf());
            deleted.push(segment.index_path().to_path_buf());
            segment.delete()?;
        }
        fsutil::fsync_dir_in(&*self.fs, &self.dir)?;
        if self.epochs.truncate_from_start(new_start) {
            self.epochs.persist()?;
        }
        Ok(deleted)
    }

    /// Removes the batch holding `offset` and everything after it, durably, and forgets epochs
    /// that started there. Returns the new log end offset (the removed batch's base offset, which
    /// is `offset` when it is a batch boundary).
    pub fn truncate_to(&mut self, offset: Offset) -> Result<Offset, StorageError> {
        self.check_usable()?;
        if offset >= self.log_end_offset {
            return Ok(self.log_end_offset);
        }
        if offset < self.log_start_offset() {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset(),
                end: self.log_end_offset,
            });
        }
        let result = self.truncate_inner(offset);
        self.fail(result)
    }

    fn truncate_inner(&mut self, offset: Offset) -> Result<Offset, StorageError> {
        let (_, active) = self
            .segments
            .range(..=offset)
            .next_back()
            .expect("offset >= log start");
        let new_end = active.batch_start(offset)?.unwrap_or(self.log_end_offset);
        // The checkpoint goes first: after a crash here, recovery removes every batch of a
        // forgotten epoch, and a stale entry never outlives the batches it described.
        if self.epochs.truncate_from_end(new_end) {
            self.epochs.persist()?;
        }
        // Later segments go first, newest first, and durably, before the kept one is cut: a
        // crash at any point leaves a contiguous log (never a cut segment followed by ones a
        // power loss brought back), which recovery accepts or finishes truncating.
        let later: Vec<Offset> = self
            .segments
            .range(offset.plus(1)..)
            .map(|(b, _)| *b)
            .collect();
        for base in later.iter().rev() {
            self.segments.remove(base).expect("listed above").delete()?;
        }
        if !later.is_empty() {
            fsutil::fsync_dir_in(&*self.fs, &self.dir)?;
        }
        let (_, active) = self
            .segments
            .range_mut(..=offset)
            .next_back()
            .expect("offset >= log start");
        self.log_end_offset = active.truncate_to(offset)?;
        self.flushed_offset = self.flushed_offset.min(self.log_end_offset);
        Ok(self.log_end_offset)
    }
}

/// A batch with its base offset rewritten to `base` (the field is outside the CRC).
fn renumber(batch: RecordBatch, base: Offset) -> RecordBatch {
    if batch.base_offset() == base {
        return batch;
    }
    let mut bytes = batch.as_bytes().to_vec();
    bytes[..8].copy_from_slice(&base.0.to_be_bytes());
    RecordBatch::decode(Bytes::from(bytes)).expect("only the base offset changed")
}

fn report_warnings(report: &RecoveryReport) {
    for t in &report.truncations {
        tracing::warn!(file = %t.file.display(), position = t.position, reason = %t.reason,
            "truncated a torn or corrupt log tail during recovery");
    }
    for path in &report.rebuilt_indexes {
        tracing::warn!(file = %path.display(), "rebuilt a missing or inconsistent offset index");
    }
    if let Some(reason) = &report.rebuilt_epoch_checkpoint {
        tracing::warn!(reason = %reason, "rebuilt the leader epoch checkpoint from the log");
    }
}
