//! The read-only examination of a partition directory that decides what recovery may do.
//!
//! Owns the recovery policy: which damage recovery repairs on its own (a torn end of the last
//! segment, a truncation the node had durably begun, derived files) and which it must refuse
//! (everything else), and what `kraft storage repair` needs to know (the damaged files, and
//! the furthest log end the files still show). It must never write, rename or delete anything:
//! a refusal leaves every file exactly as it was.

use std::fmt;
use std::path::{Path, PathBuf};

use super::epoch_cache::{CheckpointLoad, EpochEntry, LeaderEpochCache};
use super::error::{IoContext, StorageError};
use super::fs::{FileSystem, Fs};
use super::segment::{Segment, SegmentScan, StopKind, log_file_name};
use super::snapshot::snapshot_file_name;
use super::snapshot_file::{SnapshotFile, list_snapshots_in};
use crate::record::BatchHeader;
use crate::types::{Offset, OffsetAndEpoch};

/// Damage recovery refuses to repair on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub file: PathBuf,
    pub position: u64,
    pub finding: String,
    /// Another file that may be the damaged one instead (the leader epoch checkpoint, when it
    /// and a batch disagree): repair sets it aside first.
    pub also_suspect: Option<PathBuf>,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: damaged at byte {}: {}",
            self.file.display(),
            self.position,
            self.finding
        )?;
        if let Some(other) = &self.also_suspect {
            write!(f, " (or {} is damaged)", other.display())?;
        }
        write!(
            f,
            "; nothing was changed (`kraft storage repair` moves the damage aside)"
        )
    }
}

/// What the segments of a partition directory hold, read without changing anything.
#[derive(Debug, Clone)]
pub struct LogInspection {
    pub(crate) bases: Vec<Offset>,
    pub(crate) orphan_indexes: Vec<PathBuf>,
    pub(crate) segments: Vec<SegmentScan>,
    /// The first damage found, in log order.
    pub damage: Option<Damage>,
    /// Where a truncation the node had durably begun starts (the base of the segment holding
    /// the first batch of a forgotten epoch): recovery completes it.
    pub(crate) truncation_in: Option<Offset>,
    /// The furthest log end (offset after a batch, and that batch's epoch) any valid batch in
    /// the segment files shows, damaged regions included: what the node had written before.
    pub furthest: Option<OffsetAndEpoch>,
}

impl LogInspection {
    /// Scans every segment of `dir` in order, checking each batch's offsets and epochs.
    pub fn run_in(fs: &Fs, dir: &Path) -> Result<LogInspection, StorageError> {
        let (bases, orphan_indexes) = segment_bases(&**fs, dir)?;
        let (checkpoint, load) = LeaderEpochCache::load_in(fs, dir)?;
        let trusted = (load == CheckpointLoad::Loaded).then_some(&checkpoint);
        let mut inspection = LogInspection {
            bases: bases.clone(),
            orphan_indexes,
            segments: Vec::new(),
            damage: None,
            truncation_in: None,
            furthest: None,
        };
        let mut seen = Vec::new();
        let mut forgotten: Option<Forgotten> = None;
        let mut expected = bases.first().copied().unwrap_or(Offset(0));
        for (i, &base) in bases.iter().enumerate() {
            let checking = inspection.damage.is_none();
            let scan = if checking {
                let mut accept = |h: &BatchHeader, position: u64| {
                    check_in_order(h, &mut seen, trusted, &mut forgotten, (base, position))
                };
                Segment::scan(fs, dir, base, &mut accept)?
            } else {
                // Past the first damage only the furthest end matters.
                Segment::scan(fs, dir, base, &mut |_, _| Ok(()))?
            };
            inspection.note_furthest(&scan);
            if checking {
                let last = i + 1 == bases.len();
                let checkpoint_path = checkpoint.path();
                let damage = judge(&scan, base, expected, last, checkpoint_path);
                inspection.damage = damage.map(|d| match &forgotten {
                    Some(f) => f.blame(dir, d),
                    None => d,
                });
            }
            expected = scan.next_offset;
            inspection.segments.push(scan);
        }
        if inspection.damage.is_none() {
            inspection.truncation_in = forgotten.map(|f| f.segment);
        }
        Ok(inspection)
    }

    fn note_furthest(&mut self, scan: &SegmentScan) {
        let prefix = scan.last_epoch.map(|epoch| OffsetAndEpoch {
            offset: scan.next_offset,
            epoch,
        });
        let whole = scan
            .stop
            .as_ref()
            .and_then(|s| s.whole_end)
            .map(|offset| OffsetAndEpoch {
                offset,
                epoch: scan.last_epoch.unwrap_or(crate::types::Epoch(0)),
            });
        for end in [prefix, whole, scan.beyond].into_iter().flatten() {
            self.furthest = Some(self.furthest.map_or(end, |f| furthest_end(f, end)));
        }
    }

    /// The log start offset recovery would keep: the first segment's base.
    pub fn log_start_offset(&self) -> Offset {
        self.bases.first().copied().unwrap_or(Offset(0))
    }

    /// The inspection as a result: `Err` naming the first damage.
    pub fn refuse_damage(&self) -> Result<(), StorageError> {
        match &self.damage {
            Some(damage) => Err(StorageError::Damaged(damage.clone())),
            None => Ok(()),
        }
    }

    /// Adds the snapshot checks: a log that starts above 0 needs a snapshot covering the
    /// offsets below it, and the newest snapshot (the one the state machine loads) must read
    /// back whole.
    pub fn check_snapshots_in(&mut self, fs: &Fs, dir: &Path) -> Result<(), StorageError> {
        if self.damage.is_some() {
            return Ok(());
        }
        let snapshots = list_snapshots_in(fs, dir)?;
        let start = self.log_start_offset();
        if start > Offset(0) && snapshots.last().is_none_or(|s| s.offset < start) {
            self.damage = Some(Damage {
                file: self.segments[0].path.clone(),
                position: 0,
                finding: format!(
                    "the log starts at offset {start} but no snapshot covers the offsets below it (a lost first segment?)"
                ),
                also_suspect: None,
            });
            return Ok(());
        }
        if let Some(&newest) = snapshots.last() {
            self.damage = damaged_snapshot(fs, dir, newest)?;
        }
        Ok(())
    }
}

/// The later of two log ends by offset. Not Raft's order (epoch first): an epoch lies outside
/// the CRC, and one rotted upwards must not push a repair point out of reach; within one log,
/// offsets and epochs grow together anyway.
pub(crate) fn furthest_end(a: OffsetAndEpoch, b: OffsetAndEpoch) -> OffsetAndEpoch {
    a.max(b)
}

/// The newest snapshot's damage, if it does not read back as whole valid batches.
fn damaged_snapshot(
    fs: &Fs,
    dir: &Path,
    id: OffsetAndEpoch,
) -> Result<Option<Damage>, StorageError> {
    let path = dir.join(snapshot_file_name(id));
    let result = SnapshotFile::open_in(fs, dir, id).and_then(|f| f.for_each_value(|_| {}));
    match result {
        Ok(_) => Ok(None),
        Err(StorageError::Corrupt { reason, .. }) => Ok(Some(Damage {
            file: path,
            position: 0,
            finding: format!(
                "the newest snapshot, which the log depends on, is unreadable: {reason}"
            ),
            also_suspect: None,
        })),
        Err(e) => Err(e),
    }
}

/// The damage one segment's scan shows, if recovery must refuse it. A torn end of the last
/// segment (unreadable bytes with no valid batch after them) is not: it cannot have been
/// acknowledged, and recovery cuts it.
fn judge(
    scan: &SegmentScan,
    base: Offset,
    expected: Offset,
    last: bool,
    checkpoint: &Path,
) -> Option<Damage> {
    let refuse = |position, finding: String| {
        Some(Damage {
            file: scan.path.clone(),
            position,
            finding,
            also_suspect: None,
        })
    };
    if base != expected {
        return refuse(
            0,
            format!(
                "the segment starts at offset {base} but the log before it ends at {expected} (a missing segment)"
            ),
        );
    }
    if scan.file_len == 0 && !last {
        return refuse(
            0,
            "the segment is empty but later segments follow it".to_string(),
        );
    }
    let stop = scan.stop.as_ref()?;
    match (stop.kind, scan.beyond) {
        (StopKind::Unreadable, None) if last => None,
        (StopKind::Disagrees, _) => Some(Damage {
            file: scan.path.clone(),
            position: stop.position,
            finding: stop.reason.clone(),
            also_suspect: Some(checkpoint.to_path_buf()),
        }),
        (StopKind::Unreadable, Some(beyond)) => refuse(
            stop.position,
            format!(
                "{}, with valid batches after it up to offset {} (epoch {})",
                stop.reason, beyond.offset, beyond.epoch
            ),
        ),
        _ => refuse(
            stop.position,
            format!("{} (before the end of the log)", stop.reason),
        ),
    }
}

/// The inspection's check of a batch's epoch. A batch of an epoch the checkpoint forgot starts
/// what an interrupted truncation was removing; it is accepted only if it really is the end of
/// the log, every batch after it keeping epochs in order: the epoch field lies outside the CRC,
/// and a rotted epoch followed by older ones is damage, not a truncation.
fn check_in_order(
    header: &BatchHeader,
    seen: &mut Vec<EpochEntry>,
    checkpoint: Option<&LeaderEpochCache>,
    forgotten: &mut Option<Forgotten>,
    (segment, position): (Offset, u64),
) -> Result<(), (StopKind, String)> {
    if forgotten.is_some() {
        return check_epoch(header, seen, None);
    }
    match check_epoch(header, seen, checkpoint) {
        Err((StopKind::ForgottenEpoch, reason)) => {
            *forgotten = Some(Forgotten {
                segment,
                position,
                reason,
            });
            check_epoch(header, seen, None)
        }
        other => other,
    }
}

/// The first batch of an epoch the checkpoint forgot.
#[derive(Debug, Clone)]
struct Forgotten {
    segment: Offset,
    position: u64,
    reason: String,
}

impl Forgotten {
    /// Damage after a forgotten epoch puts the blame on that batch: its epoch (outside the
    /// CRC) most likely rotted.
    fn blame(&self, dir: &Path, later: Damage) -> Damage {
        Damage {
            file: dir.join(log_file_name(self.segment)),
            position: self.position,
            finding: format!(
                "{}, and the log after it does not continue it ({}: byte {}: {})",
                self.reason,
                later.file.display(),
                later.position,
                later.finding
            ),
            also_suspect: None,
        }
    }
}

/// The recovery check of one batch's epoch: never negative, never decreasing, and (when the
/// checkpoint was readable) the epoch the checkpoint assigns to both its first and last offset.
pub(crate) fn check_epoch(
    header: &BatchHeader,
    seen: &mut Vec<EpochEntry>,
    checkpoint: Option<&LeaderEpochCache>,
) -> Result<(), (StopKind, String)> {
    let epoch = header.epoch();
    if epoch.0 < 0 {
        return Err((
            StopKind::Rejected,
            format!(
                "batch at offset {} has negative epoch {epoch}",
                header.base_offset
            ),
        ));
    }
    if let Some(last) = seen.last().filter(|l| epoch < l.epoch) {
        return Err((
            StopKind::Rejected,
            format!(
                "batch at offset {} has epoch {epoch} below the previous batch's {}",
                header.base_offset, last.epoch
            ),
        ));
    }
    if let Some(cache) = checkpoint {
        let expected = cache.epoch_for_offset(header.base_offset());
        if expected != Some(epoch) || cache.epoch_for_offset(header.last_offset()) != Some(epoch) {
            // A truncation cuts the checkpoint first: batches of an epoch newer than any it
            // still lists, right after batches of the last epoch it lists, are what that
            // truncation was removing. Anything else is a disagreement: one of the two rotted.
            let latest = cache.latest().map(|l| l.epoch);
            let continues = seen.last().map(|l| l.epoch) == latest;
            let kind = if continues && latest.is_none_or(|l| epoch > l) {
                StopKind::ForgottenEpoch
            } else {
                StopKind::Disagrees
            };
            return Err((
                kind,
                format!(
                    "batch at offset {} has epoch {epoch}, the leader epoch checkpoint says {}",
                    header.base_offset,
                    expected.map_or("none".to_string(), |e| e.to_string())
                ),
            ));
        }
    }
    if seen.last().is_none_or(|l| epoch > l.epoch) {
        seen.push(EpochEntry {
            epoch,
            start_offset: header.base_offset(),
        });
    }
    Ok(())
}

/// Base offsets of the `%020d.log` files in `dir`, and index files that have no log.
fn segment_bases(
    fs: &dyn FileSystem,
    dir: &Path,
) -> Result<(Vec<Offset>, Vec<PathBuf>), StorageError> {
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    for name in fs.read_dir(dir).at(dir)? {
        let path = dir.join(name);
        let (Some(stem), Some(ext)) = (path.file_stem().and_then(|s| s.to_str()), path.extension())
        else {
            continue;
        };
        let Some(base) = stem.parse::<i64>().ok().filter(|_| stem.len() == 20) else {
            continue;
        };
        match ext.to_str() {
            Some("log") => logs.push(Offset(base)),
            Some("index") => indexes.push((Offset(base), path)),
            _ => {}
        }
    }
    logs.sort();
    let orphans = indexes
        .into_iter()
        .filter(|(base, _)| logs.binary_search(base).is_err())
        .map(|(_, path)| path)
        .collect();
    Ok((logs, orphans))
}
