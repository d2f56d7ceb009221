//! One log segment: a `%020d.log` file of consecutive record batches starting at its base
//! offset, and its sparse `%020d.index`.
//!
//! Owns byte positions inside the segment: appending whole batches, locating the batch that
//! holds an offset, reading whole batches, truncating at a batch boundary, and the recovery scan
//! that keeps exactly the valid prefix of the file. It never decides which batches are
//! acceptable in the log as a whole (contiguity and epochs are the log's job, passed in as a
//! check), and never touches a file except through the [`Fs`] it was built with.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

use super::error::{IoContext, StorageError};
use super::fs::{FileHandle, Fs, HandleReader, OpenMode};
use super::fsutil;
use super::index::OffsetIndex;
use crate::record::{
    BatchHeader, LOG_OVERHEAD, MAX_BATCH_BYTES, RECORD_BATCH_OVERHEAD, RecordBatch, RecordError,
    next_batch_size,
};
use crate::types::{Epoch, Offset, OffsetAndEpoch};

/// Read buffer of the recovery scan: large enough that a scan is a few big sequential reads.
const RECOVERY_READ_BUFFER_BYTES: usize = 1024 * 1024;
/// Most bytes one read returns (beyond a single larger batch): one read fills one fetch response,
/// and Kafka's largest default fetch size is about 55 MiB, so this bounds the buffer a careless
/// `max_bytes` could make us allocate.
pub(crate) const MAX_READ_BYTES: usize = 64 * 1024 * 1024;
/// Largest offset a segment holds relative to its base: Kafka's index stores it as an int32.
const MAX_RELATIVE_OFFSET: i64 = i32::MAX as i64;
/// Window of the search for valid batches past damage: it reads the rest of a damaged file in
/// pieces of this size, so a damaged 1 GiB segment is not read into memory at once.
const SALVAGE_WINDOW_BYTES: usize = 1024 * 1024;

pub(crate) fn log_file_name(base: Offset) -> String {
    format!("{:020}.log", base.0)
}

pub(crate) fn index_file_name(base: Offset) -> String {
    format!("{:020}.index", base.0)
}

/// What kind of bytes stopped a recovery scan: it decides whether recovery may cut there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopKind {
    /// Not a whole valid batch (short, bad length or magic, CRC mismatch): a torn write or rot,
    /// which no check can tell apart.
    Unreadable,
    /// A whole, checksummed batch the log cannot hold there (wrong offset, epoch out of order).
    Rejected,
    /// A whole, checksummed batch whose epoch the leader epoch checkpoint contradicts: one of
    /// the two rotted (the epoch field lies outside the CRC, the checkpoint has none).
    Disagrees,
    /// A batch of an epoch the leader epoch checkpoint already forgot: a truncation the node
    /// had durably begun (the checkpoint is cut first) and a crash interrupted.
    ForgottenEpoch,
}

/// Why the recovery scan stopped before the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanStop {
    pub position: u64,
    pub kind: StopKind,
    pub reason: String,
    /// The stopped batch's size, when its length field was plausible.
    pub size: Option<u64>,
    /// For a whole, checksummed batch refused for its place in the log: the offset after it,
    /// counted from the end of the valid prefix (its own base offset lies outside the CRC).
    pub whole_end: Option<Offset>,
}

/// A check of one batch's place in the log, run by the scan: `Err` stops it there.
/// It is given the batch's header and its byte position in the file.
pub(crate) type BatchCheck<'a> =
    &'a mut dyn FnMut(&BatchHeader, u64) -> Result<(), (StopKind, String)>;

/// What a read-only scan of one segment file found.
#[derive(Debug, Clone)]
pub(crate) struct SegmentScan {
    pub path: PathBuf,
    pub file_len: u64,
    pub next_offset: Offset,
    /// Epoch of the last valid batch of the prefix.
    pub last_epoch: Option<Epoch>,
    pub stop: Option<ScanStop>,
    /// The end (epoch of the batch, offset after it) of the furthest valid batch found past the
    /// stop, if any: proof that the damage is not a torn end of the file.
    pub beyond: Option<OffsetAndEpoch>,
}

/// What recovering one segment found.
#[derive(Debug)]
pub(crate) struct ScanOutcome {
    pub stop: Option<ScanStop>,
    pub index_rebuilt: bool,
}

#[derive(Debug)]
pub(crate) struct Segment {
    fs: Fs,
    base_offset: Offset,
    next_offset: Offset,
    log_path: PathBuf,
    file: Box<dyn FileHandle>,
    index: OffsetIndex,
    size: u64,
    index_interval_bytes: u64,
    bytes_since_index: u64,
    dirty: bool,
    /// Bytes known to be on disk: the size at the last successful fsync.
    durable_size: u64,
}

impl Segment {
    /// Creates an empty segment (replacing any file of that name).
    pub(crate) fn create(
        fs: &Fs,
        dir: &Path,
        base: Offset,
        index_interval_bytes: u64,
    ) -> Result<Segment, StorageError> {
        let log_path = dir.join(log_file_name(base));
        let file = fs.open(&log_path, OpenMode::Truncate).at(&log_path)?;
        let (index, _) = OffsetIndex::open_with(&**fs, &dir.join(index_file_name(base)), &[])?;
        Ok(Segment {
            fs: fs.clone(),
            base_offset: base,
            next_offset: base,
            log_path,
            file,
            index,
            size: 0,
            index_interval_bytes,
            bytes_since_index: 0,
            dirty: true,
            durable_size: 0,
        })
    }

    /// Opens an existing segment and scans it from the start. Every batch must be complete and
    /// valid (length, magic, CRC-32C) and pass `accept`; at the first that does not, the file is
    /// truncated there and the scan stops. The index is rebuilt if it disagrees. Whatever is kept
    /// is fsynced before this returns.
    pub(crate) fn recover(
        fs: &Fs,
        dir: &Path,
        base: Offset,
        index_interval_bytes: u64,
        accept: BatchCheck<'_>,
    ) -> Result<(Segment, ScanOutcome), StorageError> {
        let log_path = dir.join(log_file_name(base));
        let file = fs.open(&log_path, OpenMode::ReadWrite).at(&log_path)?;
        let file_len = file.len().at(&log_path)?;
        let mut scan = Scan::new(base);
        let stop = scan.run(
            &*file,
            &log_path,
            file_len,
            base,
            index_interval_bytes,
            accept,
        )?;
        if stop.is_some() {
            file.set_len(scan.valid).at(&log_path)?;
        }
        // After a process crash the kept bytes may exist only in the page cache, and the log
        // reports everything recovery keeps as flushed: it must reach the disk first.
        file.sync_all().at(&log_path)?;
        let (index, index_rebuilt) =
            OffsetIndex::open_with(&**fs, &dir.join(index_file_name(base)), &scan.entries)?;
        let segment = Segment {
            fs: fs.clone(),
            base_offset: base,
            next_offset: scan.next_offset,
            log_path,
            file,
            index,
            size: scan.valid,
            index_interval_bytes,
            bytes_since_index: scan.bytes_since_index,
            dirty: false,
            durable_size: scan.valid,
        };
        Ok((
            segment,
            ScanOutcome {
                stop,
                index_rebuilt,
            },
        ))
    }

    /// Scans an existing segment without changing anything: its valid prefix, where and why the
    /// scan stopped, and whether valid batches lie past the stop.
    pub(crate) fn scan(
        fs: &Fs,
        dir: &Path,
        base: Offset,
        accept: BatchCheck<'_>,
    ) -> Result<SegmentScan, StorageError> {
        let path = dir.join(log_file_name(base));
        let file = fs.open(&path, OpenMode::Read).at(&path)?;
        let file_len = file.len().at(&path)?;
        let mut scan = Scan::new(base);
        let stop = scan.run(&*file, &path, file_len, base, u64::MAX, accept)?;
        let beyond = match &stop {
            None => None,
            // After a whole batch (its length is proven by its CRC) the search starts at its
            // end. Any other length field may have rotted, even into one that seems to run past
            // the end of the file, so the search goes byte by byte from the stop.
            Some(s) => {
                let (from, first) = match s.whole_end {
                    Some(end) => (s.position + s.size.unwrap_or(1), end),
                    None => (s.position + 1, scan.next_offset),
                };
                salvage(&*file, &path, (s.position, from), file_len, first)?
            }
        };
        Ok(SegmentScan {
            path,
            file_len,
            next_offset: scan.next_offset,
            last_epoch: scan.last_epoch,
            stop,
            beyond,
        })
    }

    pub(crate) fn next_offset(&self) -> Offset {
        self.next_offset
    }

    /// Whether a batch ending at `last_offset` can be indexed relative to this segment's base
    /// (Kafka's index holds 32-bit signed relative offsets).
    pub(crate) fn can_index(&self, last_offset: Offset) -> bool {
        last_offset.0 - self.base_offset.0 <= MAX_RELATIVE_OFFSET
    }

    /// Base offset of the batch holding `offset`, if the segment has one.
    pub(crate) fn batch_start(&self, offset: Offset) -> Result<Option<Offset>, StorageError> {
        Ok(self.locate(offset)?.map(|(_, header)| header.base_offset()))
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub(crate) fn index_path(&self) -> &Path {
        self.index.path()
    }

    /// Writes one validated batch at the end of the segment (not yet fsynced).
    pub(crate) fn append(
        &mut self,
        batch: &[u8],
        header: &BatchHeader,
    ) -> Result<(), StorageError> {
        self.file
            .write_all_at(batch, self.size)
            .at(&self.log_path)?;
        if self.bytes_since_index > self.index_interval_bytes {
            let relative = (header.last_offset().0 - self.base_offset.0) as u32;
            self.index.append(relative, self.size as u32)?;
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += batch.len() as u64;
        self.size += batch.len() as u64;
        self.next_offset = header.next_offset();
        self.dirty = true;
        Ok(())
    }

    /// Position and header of the first batch whose last offset is >= `offset`.
    fn locate(&self, offset: Offset) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let relative = (offset.0 - self.base_offset.0).max(0) as u32;
        let mut position = u64::from(self.index.lookup(relative));
        let mut buf = [0u8; RECORD_BATCH_OVERHEAD];
        while position < self.size {
            self.file
                .read_exact_at(&mut buf, position)
                .at(&self.log_path)?;
            let header = BatchHeader::parse(&buf).map_err(|e| self.corrupt(position, e))?;
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
            position += header.size_in_bytes() as u64;
        }
        Ok(None)
    }

    fn corrupt(&self, position: u64, reason: impl std::fmt::Display) -> StorageError {
        StorageError::corrupt(&self.log_path, format!("at byte {position}: {reason}"))
    }

    /// Whole batches starting with the one holding `from`, up to `max_bytes` (capped at
    /// [`MAX_READ_BYTES`]) but always at least one batch, so a reader can make progress past a
    /// batch larger than its limit.
    pub(crate) fn read(&self, from: Offset, max_bytes: usize) -> Result<Bytes, StorageError> {
        let Some((position, first)) = self.locate(from)? else {
            return Ok(Bytes::new());
        };
        let available = (self.size - position) as usize;
        if first.size_in_bytes() > available {
            // A length damaged at rest: never trust it for an allocation.
            return Err(self.corrupt(
                position,
                format!(
                    "batch of {} bytes where {available} remain",
                    first.size_in_bytes()
                ),
            ));
        }
        let want = first
            .size_in_bytes()
            .max(max_bytes.min(available).min(MAX_READ_BYTES));
        let mut buf = BytesMut::zeroed(want);
        self.file
            .read_exact_at(&mut buf, position)
            .at(&self.log_path)?;
        let mut end = 0;
        while let Ok(Some(size)) = next_batch_size(&buf[end..]) {
            end += size;
        }
        buf.truncate(end);
        Ok(buf.freeze())
    }

    /// Removes the batch holding `offset` and everything after it, durably. Returns the new next
    /// offset (the base offset of the removed batch).
    pub(crate) fn truncate_to(&mut self, offset: Offset) -> Result<Offset, StorageError> {
        let Some((position, header)) = self.locate(offset)? else {
            return Ok(self.next_offset);
        };
        self.file.set_len(position).at(&self.log_path)?;
        self.size = position;
        self.sync(|f| f.sync_all())?;
        self.index.truncate_to_position(position as u32)?;
        self.next_offset = header.base_offset();
        self.bytes_since_index = position - u64::from(self.index.last_position().unwrap_or(0));
        Ok(self.next_offset)
    }

    /// Makes every write so far durable.
    pub(crate) fn flush(&mut self) -> Result<(), StorageError> {
        if self.dirty {
            self.sync(|f| f.sync_data())?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Runs one fsync. When it fails, Linux has already marked the unwritten pages clean: they
    /// stay readable in the page cache but will never reach the disk, and a later fsync
    /// "succeeds" without them. So the file is cut back to what is known to be durable (best
    /// effort: the log fails either way), lest a reopen recover those bytes and call them
    /// flushed.
    fn sync(
        &mut self,
        fsync: impl FnOnce(&dyn FileHandle) -> std::io::Result<()>,
    ) -> Result<(), StorageError> {
        if let Err(e) = fsync(&*self.file) {
            let _ = self.file.set_len(self.durable_size.min(self.size));
            return Err(StorageError::io(&self.log_path, e));
        }
        self.durable_size = self.size;
        Ok(())
    }

    /// Removes the segment's files (the caller fsyncs the directory).
    pub(crate) fn delete(self) -> Result<(), StorageError> {
        let index_path = self.index.path().to_path_buf();
        drop(self.file);
        self.fs.remove_file(&self.log_path).at(&self.log_path)?;
        fsutil::remove_if_exists(&*self.fs, &index_path).map(|_| ())
    }
}

/// State of a recovery scan over one segment file.
struct Scan {
    next_offset: Offset,
    valid: u64,
    last_epoch: Option<Epoch>,
    entries: Vec<(u32, u32)>,
    bytes_since_index: u64,
}

impl Scan {
    fn new(base: Offset) -> Self {
        Scan {
            next_offset: base,
            valid: 0,
            last_epoch: None,
            entries: Vec::new(),
            bytes_since_index: 0,
        }
    }

    fn run(
        &mut self,
        file: &dyn FileHandle,
        path: &Path,
        file_len: u64,
        base: Offset,
        index_interval_bytes: u64,
        accept: BatchCheck<'_>,
    ) -> Result<Option<ScanStop>, StorageError> {
        let mut reader =
            BufReader::with_capacity(RECOVERY_READ_BUFFER_BYTES, HandleReader::new(file, 0));
        let mut batch = Vec::new();
        while self.valid < file_len {
            let position = self.valid;
            let next_offset = self.next_offset;
            // `size`: the batch's length field, when plausible. `whole`: the batch is whole and
            // checksummed (so no torn write), with this many offsets.
            let stop = |kind: StopKind, reason: String, size: Option<u64>, whole: Option<i64>| {
                Ok(Some(ScanStop {
                    position,
                    kind,
                    reason,
                    size,
                    whole_end: whole.map(|count| next_offset.plus(count)),
                }))
            };
            let remaining = file_len - self.valid;
            if remaining < LOG_OVERHEAD as u64 {
                return stop(
                    StopKind::Unreadable,
                    format!("torn batch: {remaining} bytes left, a header needs {LOG_OVERHEAD}"),
                    None,
                    None,
                );
            }
            batch.resize(LOG_OVERHEAD, 0);
            reader.read_exact(&mut batch).at(path)?;
            let size = match next_batch_size(&batch) {
                Err(e) => return stop(StopKind::Unreadable, e.to_string(), None, None),
                Ok(_) => {
                    LOG_OVERHEAD
                        + i32::from_be_bytes([batch[8], batch[9], batch[10], batch[11]]) as usize
                }
            };
            let known = Some(size as u64);
            if remaining < size as u64 {
                let reason = format!("torn batch: {remaining} of {size} bytes present");
                return stop(StopKind::Unreadable, reason, known, None);
            }
            batch.resize(size, 0);
            reader.read_exact(&mut batch[LOG_OVERHEAD..]).at(path)?;
            let header = match RecordBatch::validate(&batch) {
                Ok(h) => h,
                Err(e) => {
                    // Past the CRC check the batch is whole: what failed is its content.
                    let whole = !matches!(
                        e,
                        RecordError::Short { .. }
                            | RecordError::BadLength { .. }
                            | RecordError::BadMagic(_)
                            | RecordError::CrcMismatch { .. }
                    );
                    let count = whole
                        .then(|| BatchHeader::parse(&batch).ok())
                        .flatten()
                        .map(|h| i64::from(h.last_offset_delta) + 1);
                    let kind = match count {
                        Some(_) => StopKind::Rejected,
                        None => StopKind::Unreadable,
                    };
                    return stop(kind, e.to_string(), known, count);
                }
            };
            let count = Some(header.last_offset().0 - header.base_offset().0 + 1);
            if header.base_offset() != self.next_offset {
                return stop(
                    StopKind::Rejected,
                    format!(
                        "batch base offset {} where {} was expected",
                        header.base_offset, self.next_offset
                    ),
                    known,
                    count,
                );
            }
            if header.last_offset().0 - base.0 > MAX_RELATIVE_OFFSET {
                return stop(
                    StopKind::Rejected,
                    format!(
                        "batch ending at offset {} is beyond the index range of a segment based at {base}",
                        header.last_offset()
                    ),
                    known,
                    count,
                );
            }
            if let Err((kind, reason)) = accept(&header, position) {
                return stop(kind, reason, known, count);
            }
            if self.bytes_since_index > index_interval_bytes {
                let relative = (header.last_offset().0 - base.0) as u32;
                self.entries.push((relative, self.valid as u32));
                self.bytes_since_index = 0;
            }
            self.bytes_since_index += size as u64;
            self.valid += size as u64;
            self.next_offset = header.next_offset();
            self.last_epoch = Some(header.epoch());
        }
        Ok(None)
    }
}

/// The furthest (by offset) valid batch at or after byte `from` whose offsets lie past `next_offset`: a
/// byte-by-byte search for a plausible header (magic 2, a length that fits, a base offset past
/// the valid prefix) confirmed by the batch's CRC-32C. Chains through consecutive valid
/// batches so that a long intact run costs one check per batch.
fn salvage(
    file: &dyn FileHandle,
    path: &Path,
    (stop, from): (u64, u64),
    file_len: u64,
    next_offset: Offset,
) -> Result<Option<OffsetAndEpoch>, StorageError> {
    let mut best: Option<OffsetAndEpoch> = None;
    let mut window = Window::default();
    let mut pos = from;
    while pos + RECORD_BATCH_OVERHEAD as u64 <= file_len {
        let header = window.bytes(file, path, pos, RECORD_BATCH_OVERHEAD, file_len)?;
        // A record takes more than a byte, so offsets cannot run ahead of the bytes between:
        // a batch claiming more is not this log's (bytes in a value, say), and must not put a
        // repair point out of reach.
        let max_base = next_offset.0.saturating_add((pos - stop) as i64);
        let Some(size) = plausible_batch(header, (next_offset, Offset(max_base)), file_len - pos)
        else {
            pos += 1;
            continue;
        };
        let mut bytes = vec![0; size];
        file.read_exact_at(&mut bytes, pos).at(path)?;
        match RecordBatch::validate(&bytes) {
            Ok(h) => {
                let end = OffsetAndEpoch {
                    offset: h.next_offset(),
                    epoch: h.epoch(),
                };
                best = Some(best.map_or(end, |b| b.max(end)));
                pos += size as u64;
            }
            Err(_) => pos += 1,
        }
    }
    Ok(best)
}

/// The size of the batch `header` starts, if its fixed fields are plausible for a batch of
/// this log that fits in the `remaining` bytes.
fn plausible_batch(
    header: &[u8],
    (next_offset, max_base): (Offset, Offset),
    remaining: u64,
) -> Option<usize> {
    let base = i64::from_be_bytes(header[..8].try_into().ok()?);
    let length = i32::from_be_bytes(header[8..12].try_into().ok()?);
    let size = usize::try_from(length)
        .ok()?
        .checked_add(LOG_OVERHEAD)
        .filter(|s| (RECORD_BATCH_OVERHEAD..=MAX_BATCH_BYTES).contains(s))?;
    let magic = header[16] as i8;
    let in_range = base >= next_offset.0 && base <= max_base.0;
    (magic == crate::record::MAGIC_V2 && in_range && size as u64 <= remaining).then_some(size)
}

/// A sliding read-ahead buffer over a file for the byte-by-byte salvage search.
#[derive(Default)]
struct Window {
    start: u64,
    data: Vec<u8>,
}

impl Window {
    /// `len` bytes at `pos` (the caller made sure they lie inside the file).
    fn bytes(
        &mut self,
        file: &dyn FileHandle,
        path: &Path,
        pos: u64,
        len: usize,
        file_len: u64,
    ) -> Result<&[u8], StorageError> {
        let end = self.start + self.data.len() as u64;
        if pos < self.start || pos + len as u64 > end {
            let want = (file_len - pos).min(SALVAGE_WINDOW_BYTES.max(len) as u64) as usize;
            self.data.resize(want, 0);
            file.read_exact_at(&mut self.data, pos).at(path)?;
            self.start = pos;
        }
        let at = (pos - self.start) as usize;
        Ok(&self.data[at..at + len])
    }
}
