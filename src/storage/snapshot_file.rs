//! Snapshot checkpoint files in Kafka's format (docs/protocol.md §16): record batches v2
//! whose offsets start at 0 inside the file, a control batch opening with a SnapshotHeader
//! first, and a control batch holding the SnapshotFooter last.
//!
//! Owns writing (streamed through `<name>.checkpoint.part`, fsynced, atomically renamed, the
//! directory fsynced), reading and validating, chunked reads for FetchSnapshot, listing, and
//! removing the leftovers of interrupted writes. It must never leave a file named
//! `.checkpoint` that a reader would reject, never hold a whole snapshot in memory, and never
//! touch the disk except through the [`Fs`] it is handed (the functions without `_in` use the
//! real one).

use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::error::{IoContext, StorageError};
use super::fs::{FileHandle, Fs, HandleReader, OpenMode, real_fs};
use super::fsutil;
use super::snapshot::snapshot_file_name;
use crate::record::{
    BatchBuilder, BatchIter, BatchKind, ControlRecord, MAX_BATCH_BYTES, SnapshotFooterRecord,
    SnapshotHeaderRecord,
};
use crate::types::{Epoch, Offset, OffsetAndEpoch};

/// Suffix of a snapshot being written; never read as a snapshot.
pub const PARTIAL_SUFFIX: &str = ".checkpoint.part";
/// Suffix of a snapshot being fetched from the leader: kept across restarts, so that a
/// transfer resumes where it stopped (install verifies every byte anyway).
pub const FETCH_SUFFIX: &str = ".checkpoint.fetch";
/// Suffix of a finished snapshot.
pub const CHECKPOINT_SUFFIX: &str = ".checkpoint";
/// Suffix Kafka gives snapshots marked for deletion; removed at start-up.
pub const DELETED_SUFFIX: &str = ".checkpoint.deleted";
/// Bytes of record values gathered into one data batch of a snapshot: large enough to amortise
/// batch overhead, far below the batch limit, so a writer holds at most this much in memory.
pub const SNAPSHOT_BATCH_BYTES: usize = 256 << 10;
/// Bytes the validating reader asks for at a time: a few large sequential reads per batch at
/// most, and never more than one batch could need.
const READ_CHUNK_BYTES: usize = if MAX_BATCH_BYTES < (1 << 20) {
    MAX_BATCH_BYTES
} else {
    1 << 20
};

/// Writes one snapshot, streaming batches to `<name>.checkpoint.part`. Dropped without
/// [`SnapshotFileWriter::finish`], it deletes the partial file.
pub struct SnapshotFileWriter {
    fs: Fs,
    id: OffsetAndEpoch,
    dir: PathBuf,
    part: PathBuf,
    file: Option<Box<dyn FileHandle>>,
    written: u64,
    next_offset: Offset,
    timestamp_ms: i64,
    pending: Vec<Bytes>,
    pending_bytes: usize,
}

impl SnapshotFileWriter {
    /// Starts snapshot `id` (its end offset and epoch) in `dir` with its header batch.
    pub fn create(
        dir: &Path,
        id: OffsetAndEpoch,
        last_contained_timestamp_ms: i64,
    ) -> Result<Self, StorageError> {
        Self::create_in(&real_fs(), dir, id, last_contained_timestamp_ms)
    }

    /// [`SnapshotFileWriter::create`] on `fs`.
    pub fn create_in(
        fs: &Fs,
        dir: &Path,
        id: OffsetAndEpoch,
        last_contained_timestamp_ms: i64,
    ) -> Result<Self, StorageError> {
        Self::create_with_control_in(fs, dir, id, last_contained_timestamp_ms, &[])
    }

    /// [`SnapshotFileWriter::create_in`] whose header batch also holds `control` right after
    /// the SnapshotHeader (a dynamic quorum's KRaftVersion and Voters records, as Kafka's
    /// snapshots hold them). With none, the file is the same as `create_in`'s.
    pub fn create_with_control_in(
        fs: &Fs,
        dir: &Path,
        id: OffsetAndEpoch,
        last_contained_timestamp_ms: i64,
        control: &[ControlRecord],
    ) -> Result<Self, StorageError> {
        let part = partial_path(dir, id);
        let file = fs.open(&part, OpenMode::Truncate).at(&part)?;
        let mut writer = SnapshotFileWriter {
            fs: fs.clone(),
            id,
            dir: dir.to_path_buf(),
            part,
            file: Some(file),
            written: 0,
            next_offset: Offset(0),
            timestamp_ms: last_contained_timestamp_ms,
            pending: Vec::new(),
            pending_bytes: 0,
        };
        let header = ControlRecord::SnapshotHeader(SnapshotHeaderRecord {
            version: 0,
            last_contained_log_timestamp: last_contained_timestamp_ms,
        });
        let mut records = vec![header];
        records.extend(control.iter().cloned());
        writer.write_control(&records)?;
        Ok(writer)
    }

    /// Adds record values; they are written in batches of about [`SNAPSHOT_BATCH_BYTES`].
    pub fn append(&mut self, values: impl IntoIterator<Item = Bytes>) -> Result<(), StorageError> {
        for value in values {
            self.pending_bytes += value.len();
            self.pending.push(value);
            if self.pending_bytes >= SNAPSHOT_BATCH_BYTES {
                self.write_pending()?;
            }
        }
        Ok(())
    }

    /// Writes the footer, fsyncs, renames the file into place and fsyncs the directory.
    pub fn finish(mut self) -> Result<PathBuf, StorageError> {
        self.write_pending()?;
        self.write_control(&[ControlRecord::SnapshotFooter(SnapshotFooterRecord {
            version: 0,
        })])?;
        let file = self.file.take().expect("open until finished");
        file.sync_all().at(&self.part)?;
        drop(file);
        let path = self.dir.join(snapshot_file_name(self.id));
        self.fs.rename(&self.part, &path).at(&path)?;
        fsutil::fsync_dir_in(&*self.fs, &self.dir)?;
        Ok(path)
    }

    fn write_pending(&mut self) -> Result<(), StorageError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut batch = BatchBuilder::new(BatchKind::Data, self.next_offset, self.id.epoch);
        for value in self.pending.drain(..) {
            batch
                .append(self.timestamp_ms, None, Some(&value), &[])
                .map_err(|e| StorageError::corrupt(&self.part, e.to_string()))?;
        }
        self.pending_bytes = 0;
        self.write_batch(batch)
    }

    /// Writes `records` as one control batch.
    fn write_control(&mut self, records: &[ControlRecord]) -> Result<(), StorageError> {
        let mut batch = BatchBuilder::new(BatchKind::Control, self.next_offset, self.id.epoch);
        for record in records {
            batch
                .append_control(self.timestamp_ms, record)
                .map_err(|e| StorageError::corrupt(&self.part, e.to_string()))?;
        }
        self.write_batch(batch)
    }

    fn write_batch(&mut self, batch: BatchBuilder) -> Result<(), StorageError> {
        let bytes = batch
            .build()
            .map_err(|e| StorageError::corrupt(&self.part, e.to_string()))?;
        let header = crate::record::BatchHeader::parse(&bytes)
            .map_err(|e| StorageError::corrupt(&self.part, e.to_string()))?;
        self.next_offset = header.next_offset();
        let file = self.file.as_ref().expect("open until finished");
        file.write_all_at(&bytes, self.written).at(&self.part)?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

impl Drop for SnapshotFileWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = self.fs.remove_file(&self.part);
        }
    }
}

/// A finished snapshot file, read in chunks (for FetchSnapshot) or batch by batch.
pub struct SnapshotFile {
    pub id: OffsetAndEpoch,
    pub path: PathBuf,
    pub size: u64,
    fs: Fs,
}

impl SnapshotFile {
    pub fn open(dir: &Path, id: OffsetAndEpoch) -> Result<Self, StorageError> {
        Self::open_in(&real_fs(), dir, id)
    }

    /// [`SnapshotFile::open`] on `fs`.
    pub fn open_in(fs: &Fs, dir: &Path, id: OffsetAndEpoch) -> Result<Self, StorageError> {
        Self::open_path_in(fs, &dir.join(snapshot_file_name(id)), id)
    }

    /// A snapshot file under any name (e.g. a fetched one still `.part`).
    pub fn open_path(path: &Path, id: OffsetAndEpoch) -> Result<Self, StorageError> {
        Self::open_path_in(&real_fs(), path, id)
    }

    /// [`SnapshotFile::open_path`] on `fs`.
    pub fn open_path_in(fs: &Fs, path: &Path, id: OffsetAndEpoch) -> Result<Self, StorageError> {
        let size = fs.file_len(path).at(path)?;
        Ok(SnapshotFile {
            fs: fs.clone(),
            id,
            path: path.to_path_buf(),
            size,
        })
    }

    /// The SnapshotHeader's "last contained log timestamp" (its batch's timestamp).
    pub fn last_contained_timestamp(&self) -> Result<i64, StorageError> {
        let head = self.read_chunk(0, crate::record::RECORD_BATCH_OVERHEAD)?;
        crate::record::BatchHeader::parse(&head)
            .map(|h| h.max_timestamp)
            .map_err(|e| StorageError::corrupt(&self.path, e.to_string()))
    }

    /// The control records the snapshot opens with: those of its control batches before its
    /// first data batch (SnapshotHeader, then a dynamic quorum's KRaftVersion and Voters), the
    /// SnapshotFooter too when no data batch comes first. Reads only those batches, so a large
    /// snapshot costs a few small reads; each batch's CRC is checked.
    pub fn leading_control_records(&self) -> Result<Vec<ControlRecord>, StorageError> {
        let corrupt = |reason: String| StorageError::corrupt(&self.path, reason);
        let mut records = Vec::new();
        let mut position = 0;
        while position < self.size {
            let head = self.read_chunk(position, crate::record::LOG_OVERHEAD)?;
            if head.len() < crate::record::LOG_OVERHEAD {
                return Err(corrupt(format!("a cut batch at byte {position}")));
            }
            // The length field is checked (against the batch size bounds) before it is used.
            crate::record::next_batch_size(&head).map_err(|e| corrupt(e.to_string()))?;
            let length = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
            let size = crate::record::LOG_OVERHEAD + length as usize;
            let bytes = self.read_chunk(position, size)?;
            let batch = BatchIter::new(bytes)
                .next()
                .ok_or_else(|| corrupt(format!("a cut batch at byte {position}")))?
                .map_err(|e| corrupt(e.to_string()))?;
            if !batch.is_control() {
                break;
            }
            for record in batch.decode_records().map_err(|e| corrupt(e.to_string()))? {
                let (Some(key), Some(value)) = (&record.key, &record.value) else {
                    return Err(corrupt("a control record without key or value".into()));
                };
                records
                    .push(ControlRecord::decode(key, value).map_err(|e| corrupt(e.to_string()))?);
            }
            position += size as u64;
        }
        Ok(records)
    }

    /// Up to `max_bytes` from byte `position` (FetchSnapshot's unit; not batch-aligned).
    pub fn read_chunk(&self, position: u64, max_bytes: usize) -> Result<Bytes, StorageError> {
        if position > self.size {
            return Err(StorageError::corrupt(
                &self.path,
                format!("position {position} is past the end ({})", self.size),
            ));
        }
        let len = (self.size - position).min(max_bytes as u64) as usize;
        let file = self.fs.open(&self.path, OpenMode::Read).at(&self.path)?;
        let mut out = vec![0; len];
        file.read_exact_at(&mut out, position).at(&self.path)?;
        Ok(Bytes::from(out))
    }

    /// Reads and checks the whole file batch by batch, handing each data record's value to
    /// `visit`: CRCs, offsets contiguous from 0, every batch in the snapshot's epoch, a
    /// SnapshotHeader first and a SnapshotFooter last. Memory stays bounded by one read buffer plus one batch.
    pub fn for_each_value(&self, mut visit: impl FnMut(Bytes)) -> Result<(), StorageError> {
        let corrupt = |reason: String| StorageError::corrupt(&self.path, reason);
        let handle = self.fs.open(&self.path, OpenMode::Read).at(&self.path)?;
        let mut file = HandleReader::new(&*handle, 0);
        let mut buffer = bytes::BytesMut::new();
        let mut next = Offset(0);
        let mut saw_footer = false;
        loop {
            let size = match crate::record::next_batch_size(&buffer) {
                Ok(Some(size)) => size,
                Ok(None) => {
                    let mut chunk = vec![0; READ_CHUNK_BYTES];
                    let n = file.read(&mut chunk).at(&self.path)?;
                    if n == 0 {
                        break;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    continue;
                }
                Err(e) => return Err(corrupt(e.to_string())),
            };
            let bytes = buffer.split_to(size).freeze();
            let batch = BatchIter::new(bytes)
                .next()
                .ok_or_else(|| corrupt("an empty batch".into()))?
                .map_err(|e| corrupt(e.to_string()))?;
            if saw_footer {
                return Err(corrupt("a batch after the SnapshotFooter".into()));
            }
            if batch.base_offset() != next {
                return Err(corrupt(format!(
                    "batch at offset {} where {next} was expected",
                    batch.base_offset()
                )));
            }
            // Every batch of a snapshot carries the snapshot's epoch (Kafka's writer and ours),
            // and this header field is the one neither the CRC nor the framing covers.
            if batch.epoch() != self.id.epoch {
                return Err(corrupt(format!(
                    "batch at offset {} has epoch {}, not the snapshot's {}",
                    batch.base_offset(),
                    batch.epoch(),
                    self.id.epoch
                )));
            }
            next = batch.next_offset();
            saw_footer = check_batch(&batch, &mut visit).map_err(corrupt)?;
        }
        if !buffer.is_empty() {
            return Err(corrupt(format!("{} trailing bytes", buffer.len())));
        }
        if next == Offset(0) || !saw_footer {
            return Err(corrupt("no SnapshotHeader or no SnapshotFooter".into()));
        }
        Ok(())
    }
}

/// Checks one batch's place in the snapshot; returns whether it holds the footer.
fn check_batch(
    batch: &crate::record::RecordBatch,
    visit: &mut impl FnMut(Bytes),
) -> Result<bool, String> {
    let records = batch.decode_records().map_err(|e| e.to_string())?;
    if !batch.is_control() {
        if batch.base_offset() == Offset(0) {
            return Err("the first batch is not the SnapshotHeader".into());
        }
        records.into_iter().filter_map(|r| r.value).for_each(visit);
        return Ok(false);
    }
    let mut footer = false;
    for (i, record) in records.iter().enumerate() {
        let (Some(key), Some(value)) = (&record.key, &record.value) else {
            return Err("a control record without key or value".into());
        };
        let control = ControlRecord::decode(key, value).map_err(|e| e.to_string())?;
        let first = batch.base_offset() == Offset(0) && i == 0;
        match control {
            ControlRecord::SnapshotHeader(_) if first => {}
            _ if first => return Err("the first record is not a SnapshotHeader".into()),
            ControlRecord::SnapshotFooter(_) => footer = true,
            _ => {}
        }
    }
    Ok(footer)
}

/// The ids of the finished snapshots in `dir`, oldest first.
pub fn list_snapshots(dir: &Path) -> Result<Vec<OffsetAndEpoch>, StorageError> {
    list_snapshots_in(&real_fs(), dir)
}

/// [`list_snapshots`] on `fs`.
pub fn list_snapshots_in(fs: &Fs, dir: &Path) -> Result<Vec<OffsetAndEpoch>, StorageError> {
    let mut ids = Vec::new();
    for name in fs.read_dir(dir).at(dir)? {
        if let Some(id) = name.to_str().and_then(parse_snapshot_name) {
            ids.push(id);
        }
    }
    ids.sort();
    Ok(ids)
}

/// `%020d-%010d.checkpoint` back to its id.
pub fn parse_snapshot_name(name: &str) -> Option<OffsetAndEpoch> {
    let stem = name.strip_suffix(CHECKPOINT_SUFFIX)?;
    let (offset, epoch) = stem.split_once('-')?;
    if offset.len() != 20 || epoch.len() != 10 {
        return None;
    }
    Some(OffsetAndEpoch {
        offset: Offset(offset.parse().ok()?),
        epoch: Epoch(epoch.parse().ok()?),
    })
}

/// Deletes what interrupted snapshot writes and deletions left (`.checkpoint.part`,
/// `.checkpoint.deleted`); returns the paths removed.
pub fn remove_snapshot_leftovers(dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
    remove_snapshot_leftovers_in(&real_fs(), dir)
}

/// [`remove_snapshot_leftovers`] on `fs`.
pub fn remove_snapshot_leftovers_in(fs: &Fs, dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
    let mut removed = Vec::new();
    for name in fs.read_dir(dir).at(dir)? {
        let path = dir.join(name);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(PARTIAL_SUFFIX) || name.ends_with(DELETED_SUFFIX) {
            fs.remove_file(&path).at(&path)?;
            removed.push(path);
        }
    }
    if !removed.is_empty() {
        fsutil::fsync_dir_in(&**fs, dir)?;
    }
    Ok(removed)
}

/// Where snapshot `id` is written before it is complete.
pub fn partial_path(dir: &Path, id: OffsetAndEpoch) -> PathBuf {
    dir.join(format!(
        "{}{PARTIAL_SUFFIX}",
        snapshot_file_name(id).trim_end_matches(CHECKPOINT_SUFFIX)
    ))
}

/// Where snapshot `id` is fetched into before it is installed.
pub fn fetch_path(dir: &Path, id: OffsetAndEpoch) -> PathBuf {
    dir.join(format!(
        "{}{FETCH_SUFFIX}",
        snapshot_file_name(id).trim_end_matches(CHECKPOINT_SUFFIX)
    ))
}

/// The snapshot being fetched, if any (the newest), and how many bytes of it arrived.
pub fn fetched_so_far(dir: &Path) -> Result<Option<(OffsetAndEpoch, u64)>, StorageError> {
    fetched_so_far_in(&real_fs(), dir)
}

/// [`fetched_so_far`] on `fs`.
pub fn fetched_so_far_in(
    fs: &Fs,
    dir: &Path,
) -> Result<Option<(OffsetAndEpoch, u64)>, StorageError> {
    let mut best = None;
    for name in fs.read_dir(dir).at(dir)? {
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(FETCH_SUFFIX)) else {
            continue;
        };
        let id = parse_snapshot_name(&format!("{stem}{CHECKPOINT_SUFFIX}"));
        let path = dir.join(&name);
        let size = fs.file_len(&path).at(&path)?;
        if let Some(id) = id.filter(|id| best.is_none_or(|(b, _)| *id > b)) {
            best = Some((id, size));
        }
    }
    Ok(best)
}

/// Writes a fetched chunk at byte `position` of snapshot `id`'s partial file, dropping anything
/// after it (a resent chunk replaces what an earlier attempt wrote).
pub fn write_partial_chunk(
    dir: &Path,
    id: OffsetAndEpoch,
    position: u64,
    bytes: &[u8],
) -> Result<(), StorageError> {
    write_partial_chunk_in(&real_fs(), dir, id, position, bytes)
}

/// [`write_partial_chunk`] on `fs`.
pub fn write_partial_chunk_in(
    fs: &Fs,
    dir: &Path,
    id: OffsetAndEpoch,
    position: u64,
    bytes: &[u8],
) -> Result<(), StorageError> {
    let path = fetch_path(dir, id);
    let file = fs.open(&path, OpenMode::Create).at(&path)?;
    file.set_len(position).at(&path)?;
    file.write_all_at(bytes, position).at(&path)
}

/// Makes a fetched snapshot durable, verifies it completely, and renames it into place.
pub fn complete_partial(dir: &Path, id: OffsetAndEpoch) -> Result<SnapshotFile, StorageError> {
    complete_partial_in(&real_fs(), dir, id)
}

/// [`complete_partial`] on `fs`.
pub fn complete_partial_in(
    fs: &Fs,
    dir: &Path,
    id: OffsetAndEpoch,
) -> Result<SnapshotFile, StorageError> {
    verify_fetched_in(fs, dir, id)?;
    promote_fetched_in(fs, dir, id)
}

/// Makes a fetched snapshot durable and verifies it completely, leaving it where it was
/// fetched: a state machine can load it before it is put in place.
pub fn verify_fetched_in(
    fs: &Fs,
    dir: &Path,
    id: OffsetAndEpoch,
) -> Result<SnapshotFile, StorageError> {
    let part = fetch_path(dir, id);
    fs.open(&part, OpenMode::Read)
        .at(&part)?
        .sync_all()
        .at(&part)?;
    let file = SnapshotFile::open_path_in(fs, &part, id)?;
    file.for_each_value(|_| {})?;
    Ok(file)
}

/// Renames a verified fetched snapshot into place, durably.
pub fn promote_fetched_in(
    fs: &Fs,
    dir: &Path,
    id: OffsetAndEpoch,
) -> Result<SnapshotFile, StorageError> {
    let part = fetch_path(dir, id);
    let path = dir.join(snapshot_file_name(id));
    fs.rename(&part, &path).at(&path)?;
    fsutil::fsync_dir_in(&**fs, dir)?;
    SnapshotFile::open_in(fs, dir, id)
}

/// Deletes the snapshots that end before `offset`, never the newest; returns their paths.
pub fn delete_snapshots_before(dir: &Path, offset: Offset) -> Result<Vec<PathBuf>, StorageError> {
    delete_snapshots_before_in(&real_fs(), dir, offset)
}

/// [`delete_snapshots_before`] on `fs`.
pub fn delete_snapshots_before_in(
    fs: &Fs,
    dir: &Path,
    offset: Offset,
) -> Result<Vec<PathBuf>, StorageError> {
    let ids = list_snapshots_in(fs, dir)?;
    let newest = ids.last().copied();
    let mut deleted = Vec::new();
    for id in ids
        .into_iter()
        .filter(|id| id.offset < offset && Some(*id) != newest)
    {
        let path = dir.join(snapshot_file_name(id));
        match fs.remove_file(&path) {
            Ok(()) => deleted.push(path),
            // Gone already: another deletion of the same old snapshot got there first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io(&path, e)),
        }
    }
    if !deleted.is_empty() {
        fsutil::fsync_dir_in(&**fs, dir)?;
    }
    Ok(deleted)
}

/// Deletes snapshots being fetched other than `keep` (a transfer of another snapshot began).
pub fn remove_other_fetches(dir: &Path, keep: OffsetAndEpoch) -> Result<(), StorageError> {
    remove_other_fetches_in(&real_fs(), dir, keep)
}

/// [`remove_other_fetches`] on `fs`.
pub fn remove_other_fetches_in(
    fs: &Fs,
    dir: &Path,
    keep: OffsetAndEpoch,
) -> Result<(), StorageError> {
    let keep = fetch_path(dir, keep);
    for name in fs.read_dir(dir).at(dir)? {
        let path = dir.join(name);
        let fetching = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(FETCH_SUFFIX));
        if fetching && path != keep {
            fs.remove_file(&path).at(&path)?;
        }
    }
    Ok(())
}

/// Deletes the partial file of snapshot `id`'s fetch, if there is one (a failed install).
pub fn remove_fetch(dir: &Path, id: OffsetAndEpoch) -> Result<(), StorageError> {
    remove_fetch_in(&real_fs(), dir, id)
}

/// [`remove_fetch`] on `fs`.
pub fn remove_fetch_in(fs: &Fs, dir: &Path, id: OffsetAndEpoch) -> Result<(), StorageError> {
    fsutil::remove_if_exists(&**fs, &fetch_path(dir, id)).map(|_| ())
}
