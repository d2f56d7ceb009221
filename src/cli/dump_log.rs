//! `kraft dump-log`: Kafka's `kafka-dump-log.sh` (DumpLogSegments) for kraft's segment
//! (`.log`), snapshot (`.checkpoint`) and offset index (`.index`) files, printing Kafka's lines
//! (see `dump_log_format`) so that the output of the two tools can be compared.
//!
//! Owns walking a file the way Kafka's file reader does (a batch is read only once its declared
//! size is known to be inside the file; a partial batch at the end is reported as invalid
//! trailing bytes) and which problems stop the dump. It must never write to the files it reads,
//! never allocate for a length before checking it against the bytes present, and never panic on
//! a file's contents: a dump Kafka would abort with an exception ends with one error line naming
//! the file and the position, and exit status 1.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use clap::Args;

use super::dump_log_format::{self as fmt, RecordStyle};
use super::{CliError, EXIT_PROBLEM};
use crate::record::{InspectedBatch, LOG_OVERHEAD, LegacyEntry, MAGIC_V2, RECORD_BATCH_OVERHEAD};

/// Bytes Kafka's file reader needs before it looks at a batch: offset, size, epoch and magic.
const HEADER_SIZE_UP_TO_MAGIC: u64 = 17;
/// Kafka's smallest legal size field (the legacy v0 record overhead); below it a file is corrupt.
const MIN_SIZE_FIELD: i64 = 14;
/// Kafka's default `--max-message-size`: how far past an index entry's position the batch it
/// points at is looked for.
const DEFAULT_MAX_MESSAGE_SIZE: i32 = 5 * 1024 * 1024;
/// Bytes per offset index entry: relative offset (4) and position (4).
const INDEX_ENTRY_BYTES: u64 = 8;
/// The name Kafka gives the binary bootstrap snapshot.
const BOOTSTRAP_CHECKPOINT: &str = "bootstrap.checkpoint";
/// Width of the end offset and of the epoch in a snapshot file name.
const SNAPSHOT_OFFSET_WIDTH: usize = 20;
const SNAPSHOT_EPOCH_WIDTH: usize = 10;

/// `kraft dump-log` arguments, named as Kafka's tool names them.
#[derive(Debug, Clone, Args)]
pub struct DumpLogArgs {
    /// REQUIRED: the comma separated list of segment, snapshot and index files to dump.
    #[arg(long, value_name = "FILE1,FILE2,...")]
    files: String,
    /// Print every record, not only every batch. Implied by --print-data-log.
    #[arg(long)]
    deep_iteration: bool,
    /// Print data records' keys and values (as UTF-8). Implied by --cluster-metadata-decoder.
    #[arg(long = "print-data-log", visible_alias = "print-data")]
    print_data_log: bool,
    /// Read record values as Kafka cluster metadata records.
    #[arg(long)]
    cluster_metadata_decoder: bool,
    /// Print only records' keys and values, not their offsets, sizes and control contents.
    #[arg(long)]
    skip_record_metadata: bool,
    /// Read at most this many bytes of each segment or snapshot.
    #[arg(long, value_name = "SIZE", default_value_t = i32::MAX, value_parser = clap::value_parser!(i32).range(0..))]
    max_bytes: i32,
    /// Largest batch an index entry may point at (index files only).
    #[arg(long, value_name = "SIZE", default_value_t = DEFAULT_MAX_MESSAGE_SIZE, value_parser = clap::value_parser!(i32).range(0..))]
    max_message_size: i32,
    /// For index files, check the entries against the log without printing them.
    #[arg(long)]
    verify_index_only: bool,
}

impl DumpLogArgs {
    fn print_contents(&self) -> bool {
        self.print_data_log || self.cluster_metadata_decoder
    }

    fn deep(&self) -> bool {
        self.deep_iteration || self.print_contents()
    }

    fn style(&self) -> RecordStyle {
        RecordStyle {
            skip_metadata: self.skip_record_metadata,
            print_contents: self.print_contents(),
            metadata_decoder: self.cluster_metadata_decoder,
        }
    }

    /// The file list split as Java's `String.split(",")` does (trailing empty names dropped).
    fn file_list(&self) -> Vec<&str> {
        let mut files: Vec<&str> = self.files.split(',').collect();
        while files.last() == Some(&"") {
            files.pop();
        }
        files
    }
}

/// Why a dump stopped.
#[derive(Debug, thiserror::Error)]
enum DumpError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("cannot write the output: {0}")]
    Output(io::Error),
    #[error("{file}: {reason}")]
    BadName { file: String, reason: String },
    #[error("{file}: corrupt at position {position}: {reason}")]
    Corrupt {
        file: String,
        position: u64,
        reason: String,
    },
}

/// What a walk over the files collects for the reports printed after the last file.
#[derive(Default)]
struct Reports {
    /// Per segment or snapshot (absolute path), each offset followed by a non-consecutive one.
    non_consecutive: Vec<(String, BTreeMap<i64, i64>)>,
    /// Per index (absolute path), index entry offset and the last offset of the batch found.
    index_mismatches: Vec<(String, BTreeMap<i64, i64>)>,
}

pub fn run(args: &DumpLogArgs) -> Result<(), CliError> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut reports = Reports::default();
    let result = dump_all(args, &mut out, &mut reports);
    let flushed = out.flush();
    match result.and_then(|()| flushed.map_err(DumpError::Output)) {
        Ok(()) => {
            print_reports(&reports);
            Ok(())
        }
        // The reader went away (`| head`): it has what it wanted, and nobody reads the rest.
        Err(DumpError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError {
            message: format!("dump-log: {e}"),
            exit_code: EXIT_PROBLEM,
        }),
    }
}

fn dump_all(
    args: &DumpLogArgs,
    out: &mut impl Write,
    reports: &mut Reports,
) -> Result<(), DumpError> {
    for name in args.file_list() {
        writeln!(out, "Dumping {name}").map_err(DumpError::Output)?;
        let path = Path::new(name);
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let suffix = file_name.rfind('.').map(|i| &file_name[i..]);
        match suffix {
            Some(".log") | Some(".checkpoint") => dump_log(args, path, &file_name, out, reports)?,
            Some(".index") => dump_index(args, path, &file_name, out, reports)?,
            Some(".timeindex") | Some(".snapshot") | Some(".txnindex") => {
                warn(
                    out,
                    &format!("Ignoring unsupported file {name}: kraft writes no such files"),
                )?;
            }
            _ => warn(out, &format!("Ignoring unknown file {name}"))?,
        }
    }
    Ok(())
}

/// A line on stderr, after what stdout holds so far (so a terminal shows them in order).
fn warn(out: &mut impl Write, line: &str) -> Result<(), DumpError> {
    out.flush().map_err(DumpError::Output)?;
    eprintln!("{line}");
    Ok(())
}

fn print_reports(reports: &Reports) {
    for (file, mismatches) in &reports.index_mismatches {
        eprintln!("Mismatches in :{file}");
        // Kafka lists them by index offset, largest first.
        for (index_offset, log_offset) in mismatches.iter().rev() {
            eprintln!("  Index offset: {index_offset}, log offset: {log_offset}");
        }
    }
    for (file, pairs) in &reports.non_consecutive {
        eprintln!("Non-consecutive offsets in {file}");
        for (first, second) in pairs {
            eprintln!("  {first} is followed by {second}");
        }
    }
}

fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| PathBuf::from(path))
        .display()
        .to_string()
}

/// The header line of a segment or snapshot, from its name as Kafka parses it.
fn file_header(file_name: &str) -> Result<String, DumpError> {
    let bad = |reason: &str| DumpError::BadName {
        file: file_name.to_string(),
        reason: reason.to_string(),
    };
    if file_name.ends_with(".log") {
        let base = file_name.split('.').next().unwrap_or_default();
        let start: i64 = base
            .parse()
            .map_err(|_| bad("the name does not start with the segment's base offset"))?;
        return Ok(format!("Log starting offset: {start}"));
    }
    if file_name == BOOTSTRAP_CHECKPOINT {
        return Ok("KRaft bootstrap snapshot".to_string());
    }
    let digits = |from: usize, width: usize| -> Option<&str> {
        std::str::from_utf8(file_name.as_bytes().get(from..from + width)?).ok()
    };
    let offset: Option<i64> = digits(0, SNAPSHOT_OFFSET_WIDTH).and_then(|s| s.parse().ok());
    let epoch: Option<i32> =
        digits(SNAPSHOT_OFFSET_WIDTH + 1, SNAPSHOT_EPOCH_WIDTH).and_then(|s| s.parse().ok());
    match (offset, epoch) {
        (Some(offset), Some(epoch)) => Ok(format!("Snapshot end offset: {offset}, epoch: {epoch}")),
        _ => Err(bad(
            "a snapshot is named <end offset, 20 digits>-<epoch, 10 digits>.checkpoint",
        )),
    }
}

/// A file read at chosen positions, never past the end it had when opened.
struct Source {
    path: String,
    file: File,
    len: u64,
}

impl Source {
    fn open(path: &Path) -> Result<Source, DumpError> {
        let io_err = |source| DumpError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        Ok(Source {
            path: path.display().to_string(),
            file,
            len,
        })
    }

    /// `n` bytes at `position`; the caller has checked that they lie inside the file.
    fn read_at(&mut self, position: u64, n: usize) -> Result<Vec<u8>, DumpError> {
        debug_assert!(position + n as u64 <= self.len);
        let mut buf = vec![0; n];
        self.file
            .seek(SeekFrom::Start(position))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(|source| DumpError::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(buf)
    }
}

/// Where the next batch is, as Kafka's file reader finds it.
enum Next {
    /// A whole batch of this many bytes is in the file.
    Batch(usize),
    /// A whole legacy (magic 0 or 1) entry of this many bytes is in the file.
    Legacy(usize),
    /// The file (or the `--max-bytes` window) ends inside the next batch, or before one.
    End,
}

/// Kafka's rules for the batch at `position` in the first `end` bytes: fewer than 17 bytes left
/// or a batch running past the end end the walk; a size field below 14 is corruption; magic 0
/// and 1 are legacy entries, anything above is read as record batch v2.
fn next_batch(source: &mut Source, position: u64, end: u64) -> Result<Next, DumpError> {
    if position + HEADER_SIZE_UP_TO_MAGIC >= end {
        return Ok(Next::End);
    }
    let head = source.read_at(position, HEADER_SIZE_UP_TO_MAGIC as usize)?;
    let size = i64::from(i32::from_be_bytes([head[8], head[9], head[10], head[11]]));
    let corrupt = |reason: String| DumpError::Corrupt {
        file: source.path.clone(),
        position,
        reason,
    };
    if size < MIN_SIZE_FIELD {
        return Err(corrupt(format!(
            "Found record size {size} smaller than minimum record overhead ({MIN_SIZE_FIELD})"
        )));
    }
    let total = LOG_OVERHEAD as u64 + size as u64;
    if position + total > end {
        return Ok(Next::End);
    }
    if (head[16] as i8) < MAGIC_V2 {
        return Ok(Next::Legacy(total as usize));
    }
    if total < RECORD_BATCH_OVERHEAD as u64 {
        return Err(corrupt(format!(
            "batch of {total} bytes, shorter than the {RECORD_BATCH_OVERHEAD}-byte batch header"
        )));
    }
    Ok(Next::Batch(total as usize))
}

fn dump_log(
    args: &DumpLogArgs,
    path: &Path,
    file_name: &str,
    out: &mut impl Write,
    reports: &mut Reports,
) -> Result<(), DumpError> {
    let header = file_header(file_name)?;
    writeln!(out, "{header}").map_err(DumpError::Output)?;
    let mut source = Source::open(path)?;
    let end = source.len.min(args.max_bytes as u64);
    let mut walk = Walk {
        position: 0,
        last_offset: -1,
        non_consecutive: BTreeMap::new(),
    };
    loop {
        let size = match next_batch(&mut source, walk.position, end)? {
            Next::End => break,
            Next::Legacy(size) => {
                let bytes = source.read_at(walk.position, size)?;
                dump_legacy(args, &source.path, &bytes, walk.position, out)?;
                size
            }
            Next::Batch(size) => {
                let bytes = Bytes::from(source.read_at(walk.position, size)?);
                dump_batch(args, &source.path, bytes, &mut walk, out)?;
                size
            }
        };
        walk.position += size as u64;
    }
    if !walk.non_consecutive.is_empty() {
        reports
            .non_consecutive
            .push((absolute(path), walk.non_consecutive));
    }
    let trailing = end - walk.position;
    if trailing > 0 && args.max_bytes == i32::MAX {
        writeln!(
            out,
            "Found {trailing} invalid bytes at the end of {file_name}"
        )
        .map_err(DumpError::Output)?;
    }
    Ok(())
}

/// Where a dump is in one file.
struct Walk {
    position: u64,
    /// The previous record's offset; -1 before the first, as in Kafka's tool.
    last_offset: i64,
    /// Each offset followed by a non-consecutive one.
    non_consecutive: BTreeMap<i64, i64>,
}

fn corrupt_at(file: &str, position: u64, reason: impl ToString) -> DumpError {
    DumpError::Corrupt {
        file: file.to_string(),
        position,
        reason: reason.to_string(),
    }
}

/// A legacy entry's line; its records are not decoded, so a deep dump stops there.
fn dump_legacy(
    args: &DumpLogArgs,
    file: &str,
    bytes: &[u8],
    position: u64,
    out: &mut impl Write,
) -> Result<(), DumpError> {
    let entry = LegacyEntry::parse(bytes).map_err(|e| corrupt_at(file, position, e))?;
    let line = fmt::legacy_line(&entry, position).map_err(|e| corrupt_at(file, position, e))?;
    writeln!(out, "{line}").map_err(DumpError::Output)?;
    if args.deep() {
        return Err(corrupt_at(
            file,
            position,
            format!(
                "a legacy entry (magic {}): kraft does not decode the records of message \
                 formats 0 and 1",
                entry.magic
            ),
        ));
    }
    Ok(())
}

/// A v2 batch's line and, in a deep dump, its records' lines.
fn dump_batch(
    args: &DumpLogArgs,
    file: &str,
    bytes: Bytes,
    walk: &mut Walk,
    out: &mut impl Write,
) -> Result<(), DumpError> {
    let position = walk.position;
    let corrupt = |reason: String| corrupt_at(file, position, reason);
    let batch = InspectedBatch::new(bytes).map_err(|e| corrupt(e.to_string()))?;
    let line = fmt::batch_line(&batch, position).map_err(|e| corrupt(e.to_string()))?;
    writeln!(out, "{line}").map_err(DumpError::Output)?;
    if !args.deep() {
        return Ok(());
    }
    for record in batch.records() {
        let record = record.map_err(|e| corrupt(e.to_string()))?;
        let offset = fmt::record_offset(&batch, &record);
        // As Kafka's latest tool: every record must follow the previous one's offset, starting
        // from -1, so a file starting past offset 0 reports "-1 is followed by" its first.
        if offset != walk.last_offset.wrapping_add(1) {
            walk.non_consecutive.insert(walk.last_offset, offset);
        }
        walk.last_offset = offset;
        let line =
            fmt::record_line(&batch, &record, args.style()).map_err(|e| corrupt(e.to_string()))?;
        writeln!(out, "{line}").map_err(DumpError::Output)?;
    }
    Ok(())
}

/// Kafka's index dump: each entry's absolute offset and position, checked against the last
/// offset of the batch found at that position in the segment beside it.
fn dump_index(
    args: &DumpLogArgs,
    path: &Path,
    file_name: &str,
    out: &mut impl Write,
    reports: &mut Reports,
) -> Result<(), DumpError> {
    let base_name = file_name.split('.').next().unwrap_or_default();
    let base: i64 = base_name.parse().map_err(|_| DumpError::BadName {
        file: file_name.to_string(),
        reason: "the name does not start with the segment's base offset".to_string(),
    })?;
    let log_path = path.with_file_name(format!("{base_name}.log"));
    let mut log = Source::open(&log_path)?;
    let mut index = Source::open(path)?;
    let entries = index.len / INDEX_ENTRY_BYTES;
    if entries == 0 {
        return writeln!(out, "{} is empty.", path.display()).map_err(DumpError::Output);
    }
    let mut mismatches = BTreeMap::new();
    for i in 0..entries {
        let entry = index.read_at(i * INDEX_ENTRY_BYTES, INDEX_ENTRY_BYTES as usize)?;
        // Kafka reads the relative offset as a signed int.
        let relative = i64::from(i32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]));
        let position = u64::from(u32::from_be_bytes([entry[4], entry[5], entry[6], entry[7]]));
        let offset = base.wrapping_add(relative);
        // A preallocated index that was not trimmed ends in zero entries; Kafka stops there.
        if offset == base && i > 0 {
            break;
        }
        let window_end = log
            .len
            .min(position.saturating_add(args.max_message_size as u64));
        let found = match next_batch(&mut log, position, window_end)? {
            Next::Legacy(_) => {
                let head = log.read_at(position, 8)?;
                i64::from_be_bytes(head.try_into().unwrap_or_default())
            }
            Next::Batch(_) => {
                let header = log.read_at(position, RECORD_BATCH_OVERHEAD)?;
                let header =
                    crate::record::BatchHeader::parse(&header).map_err(|e| DumpError::Corrupt {
                        file: log.path.clone(),
                        position,
                        reason: e.to_string(),
                    })?;
                header.last_offset().0
            }
            Next::End => {
                return Err(DumpError::Corrupt {
                    file: index.path.clone(),
                    position: i * INDEX_ENTRY_BYTES,
                    reason: format!("entry points at position {position}, where no batch is"),
                });
            }
        };
        if found != offset {
            mismatches.insert(offset, found);
        }
        if !args.verify_index_only {
            writeln!(out, "offset: {offset} position: {position}").map_err(DumpError::Output)?;
        }
    }
    if !mismatches.is_empty() {
        reports.index_mismatches.push((absolute(path), mismatches));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::record::{BatchBuilder, BatchKind, ControlRecord, LeaderChangeMessage};
    use crate::types::{Epoch, Offset};

    fn args(files: &str, deep: bool) -> DumpLogArgs {
        DumpLogArgs {
            files: files.to_string(),
            deep_iteration: deep,
            print_data_log: deep,
            cluster_metadata_decoder: false,
            skip_record_metadata: false,
            max_bytes: i32::MAX,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            verify_index_only: false,
        }
    }

    fn segment() -> Vec<u8> {
        let mut control = BatchBuilder::new(BatchKind::Control, Offset(0), Epoch(1));
        let leader_change = ControlRecord::LeaderChange(LeaderChangeMessage {
            version: 0,
            leader_id: 1,
            voters: vec![1, 2],
            granting_voters: vec![1],
        });
        control.append_control(5, &leader_change).unwrap();
        let mut data = BatchBuilder::new(BatchKind::Data, Offset(1), Epoch(1));
        data.append(6, Some(b"k"), Some(b"value"), &[]).unwrap();
        data.append(7, None, Some(b"other"), &[]).unwrap();
        let mut data = data.build().unwrap().to_vec();
        // A producer's sequence near the wrap, so flips exercise the sequence arithmetic.
        data[53..57].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
        let crc = crc32c::crc32c(&data[crate::record::ATTRIBUTES_OFFSET..]);
        data[crate::record::CRC_OFFSET..crate::record::ATTRIBUTES_OFFSET]
            .copy_from_slice(&crc.to_be_bytes());
        [control.build().unwrap().to_vec(), data].concat()
    }

    /// Dumps `bytes` as a segment, shallow and deep; returns whether each run succeeded.
    fn dump_bytes(dir: &Path, bytes: &[u8]) -> [bool; 2] {
        let path = dir.join("00000000000000000000.log");
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(bytes))
            .unwrap();
        let files = path.to_str().unwrap();
        [false, true].map(|deep| {
            let mut out = Vec::new();
            dump_all(&args(files, deep), &mut out, &mut Reports::default()).is_ok()
        })
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_dumps_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let good = segment();
        assert_eq!(dump_bytes(dir.path(), &good), [true, true]);
        for at in 0..good.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bytes = good.clone();
                bytes[at] ^= flip;
                dump_bytes(dir.path(), &bytes);
            }
        }
        for len in 0..good.len() {
            // A cut file only loses batches: never an error.
            assert_eq!(dump_bytes(dir.path(), &good[..len]), [true, true], "{len}");
        }
    }

    #[test]
    fn the_file_list_splits_as_java_does() {
        assert_eq!(
            args("a.log,,b.log,,", false).file_list(),
            ["a.log", "", "b.log"]
        );
    }

    #[test]
    fn snapshot_and_segment_names_give_kafka_header_lines() {
        assert_eq!(
            file_header("00000000000000000042.log").unwrap(),
            "Log starting offset: 42"
        );
        assert_eq!(
            file_header("00000000000000000100-0000000007.checkpoint").unwrap(),
            "Snapshot end offset: 100, epoch: 7"
        );
        assert_eq!(
            file_header("bootstrap.checkpoint").unwrap(),
            "KRaft bootstrap snapshot"
        );
        assert!(file_header("x.log").is_err());
        assert!(file_header("1-2.checkpoint").is_err());
    }
}
