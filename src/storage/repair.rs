//! `kraft storage repair` on one partition directory: the operator's explicit choice to give up
//! damaged records so that the node can start and catch up from the quorum.
//!
//! Owns moving damage aside and recording the repair point. It must never delete a file: a
//! damaged segment is copied aside before it is cut to its valid prefix, everything after it is
//! moved aside whole, and the repair point is durable before anything is moved, so a crash part
//! way leaves a directory that a second run finishes.

use std::path::{Path, PathBuf};

use super::error::{IoContext, StorageError};
use super::fs::{Fs, OpenMode};
use super::fsutil;
use super::inspect::{Damage, LogInspection, furthest_end};
use super::repair_point_file::RepairPointFile;
use super::snapshot_file::list_snapshots_in;
use crate::types::OffsetAndEpoch;

/// Rounds of inspect-then-move before giving up: each round moves at least one file aside or
/// cuts one, and a partition holds a log, its snapshots, and the damage between them.
const MAX_REPAIR_ROUNDS: usize = 64;
/// Copy buffer for a damaged segment set aside (segments can be a gigabyte).
const COPY_CHUNK_BYTES: usize = 1024 * 1024;

/// What a repair did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// The damage found, one entry per round.
    pub found: Vec<Damage>,
    /// Where damaged files went (inside the partition directory).
    pub aside_dir: Option<PathBuf>,
    /// Files moved aside whole.
    pub moved: Vec<PathBuf>,
    /// Files copied aside and then cut to this many bytes, their valid prefix.
    pub cut: Vec<(PathBuf, u64)>,
    /// The log end the replica had before the damage, which it must get back to before it
    /// votes or stands again.
    pub repair_point: Option<OffsetAndEpoch>,
}

/// Repairs the partition directory `dir`; `now_ms` names the directory damage is moved to.
pub fn repair_partition_in(fs: &Fs, dir: &Path, now_ms: u64) -> Result<RepairReport, StorageError> {
    let mut report = RepairReport::default();
    for _ in 0..MAX_REPAIR_ROUNDS {
        let mut inspection = LogInspection::run_in(fs, dir)?;
        inspection.check_snapshots_in(fs, dir)?;
        let Some(damage) = inspection.damage.clone() else {
            return Ok(report);
        };
        let aside = report
            .aside_dir
            .get_or_insert_with(|| dir.join(format!("damaged-{now_ms}")))
            .clone();
        fs.create_dir_all(&aside).at(&aside)?;
        fsutil::fsync_dir_in(&**fs, dir)?;
        record_repair_point(fs, dir, inspection.furthest, &mut report)?;
        set_aside(fs, &aside, &inspection, &damage, &mut report)?;
        fsutil::fsync_dir_in(&**fs, &aside)?;
        fsutil::fsync_dir_in(&**fs, dir)?;
        report.found.push(damage);
    }
    Err(StorageError::corrupt(
        dir,
        format!("still damaged after {MAX_REPAIR_ROUNDS} rounds of repair"),
    ))
}

/// Makes the repair point the furthest (by offset) of: what it already was, the furthest valid batch the
/// segments show, and the newest snapshot. Durable before anything moves.
fn record_repair_point(
    fs: &Fs,
    dir: &Path,
    furthest: Option<OffsetAndEpoch>,
    report: &mut RepairReport,
) -> Result<(), StorageError> {
    let file = RepairPointFile::new_in(fs, dir);
    let existing = file.read()?;
    let newest_snapshot = list_snapshots_in(fs, dir)?.last().copied();
    let point = [existing, furthest, newest_snapshot]
        .into_iter()
        .flatten()
        .reduce(furthest_end);
    if let Some(point) = point.filter(|p| Some(*p) != existing) {
        file.write(point)?;
    }
    report.repair_point = point;
    Ok(())
}

/// Sets `damage` aside: a suspect checkpoint whole (besides the cut); a damaged snapshot whole; a damaged segment copied and cut to its valid
/// prefix (or moved whole when nothing before the damage is valid), and every later segment
/// moved whole with its index.
fn set_aside(
    fs: &Fs,
    aside: &Path,
    inspection: &LogInspection,
    damage: &Damage,
    report: &mut RepairReport,
) -> Result<(), StorageError> {
    if let Some(suspect) = &damage.also_suspect {
        // A batch and the checkpoint disagree, and either may have rotted (the batch's epoch
        // lies outside its CRC). The log is cut at that batch as for any damage, and the
        // checkpoint goes aside too: recovery rebuilds it from the batches before the cut,
        // which it had vouched for.
        move_aside(fs, suspect, aside, report)?;
    }
    let Some(at) = inspection
        .segments
        .iter()
        .position(|s| s.path == damage.file)
    else {
        return move_aside(fs, &damage.file, aside, report);
    };
    let later = &inspection.segments[at + 1..];
    // Newest first: a crash part way leaves the log a shorter prefix, never one with a gap.
    for segment in later.iter().rev() {
        move_aside(fs, &segment.path, aside, report)?;
        let index = segment.path.with_extension("index");
        if fs.exists(&index).at(&index)? {
            move_aside(fs, &index, aside, report)?;
        }
    }
    if damage.position == 0 {
        return move_aside(fs, &damage.file, aside, report);
    }
    copy_aside(fs, &damage.file, aside)?;
    let file = fs
        .open(&damage.file, OpenMode::ReadWrite)
        .at(&damage.file)?;
    file.set_len(damage.position).at(&damage.file)?;
    file.sync_all().at(&damage.file)?;
    report.cut.push((damage.file.clone(), damage.position));
    Ok(())
}

/// Where `path` goes in `aside`: its own name, or with `.1`, `.2`… appended when an earlier
/// round already set a file of that name aside (a segment first copied, then moved).
fn aside_path(fs: &Fs, path: &Path, aside: &Path) -> Result<PathBuf, StorageError> {
    let name = path.file_name().unwrap_or_default();
    let mut to = aside.join(name);
    let mut n = 0;
    while fs.exists(&to).at(&to)? {
        n += 1;
        let mut numbered = name.to_os_string();
        numbered.push(format!(".{n}"));
        to = aside.join(numbered);
    }
    Ok(to)
}

fn move_aside(
    fs: &Fs,
    path: &Path,
    aside: &Path,
    report: &mut RepairReport,
) -> Result<(), StorageError> {
    let to = aside_path(fs, path, aside)?;
    fs.rename(path, &to).at(path)?;
    report.moved.push(path.to_path_buf());
    Ok(())
}

/// A durable copy of `path` in `aside`, written before the original is cut.
fn copy_aside(fs: &Fs, path: &Path, aside: &Path) -> Result<(), StorageError> {
    let to = aside_path(fs, path, aside)?;
    let from = fs.open(path, OpenMode::Read).at(path)?;
    let len = from.len().at(path)?;
    let copy = fs.open(&to, OpenMode::Truncate).at(&to)?;
    let mut buf = vec![0; COPY_CHUNK_BYTES];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(COPY_CHUNK_BYTES as u64) as usize;
        from.read_exact_at(&mut buf[..n], done).at(path)?;
        copy.write_all_at(&buf[..n], done).at(&to)?;
        done += n as u64;
    }
    copy.sync_all().at(&to)?;
    // The copy's directory entry must be durable before the original is cut.
    fsutil::fsync_dir_in(&**fs, aside)
}
