//! The leader epoch cache and its `leader-epoch-checkpoint` file (docs/protocol.md §16): for
//! each epoch that has records in the log, the offset of its first record. It answers
//! `end_offset_for_epoch`, which the leader uses to find where a follower's log diverges.
//!
//! The log persists this file *before* it writes the first batch of a new epoch, so at recovery
//! every batch's epoch can be checked against it: the batch header's epoch field is not covered
//! by the CRC, and this is what catches a corrupted one. It must never write the file except
//! atomically, through the [`Fs`] it was loaded with.

use std::path::{Path, PathBuf};

use super::error::{IoContext, StorageError};
use super::fs::{Fs, real_fs};
use super::fsutil;
use crate::types::{Epoch, Offset, OffsetAndEpoch};

/// An epoch and the offset of its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: Epoch,
    pub start_offset: Offset,
}

/// Largest checkpoint file read: one line per election, so 16 MiB is far beyond any real log.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Epoch → start offset, with strictly increasing epochs and start offsets.
#[derive(Debug, Clone)]
pub struct LeaderEpochCache {
    fs: Fs,
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

/// How loading the checkpoint went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointLoad {
    Loaded,
    Missing,
    Corrupt(String),
}

impl LeaderEpochCache {
    pub const FILE_NAME: &'static str = "leader-epoch-checkpoint";

    /// Loads the checkpoint in `dir` on the real file system.
    pub fn load(dir: &Path) -> Result<(LeaderEpochCache, CheckpointLoad), StorageError> {
        Self::load_in(&real_fs(), dir)
    }

    /// Loads the checkpoint in `dir` on `fs`. A missing or unreadable file gives an empty cache
    /// and says so; the log then rebuilds it from its batches.
    pub fn load_in(
        fs: &Fs,
        dir: &Path,
    ) -> Result<(LeaderEpochCache, CheckpointLoad), StorageError> {
        let path = dir.join(Self::FILE_NAME);
        let mut cache = LeaderEpochCache {
            fs: fs.clone(),
            path,
            entries: Vec::new(),
        };
        let Some(len) = fsutil::len_if_exists(&**fs, &cache.path)? else {
            return Ok((cache, CheckpointLoad::Missing));
        };
        if len > MAX_FILE_BYTES {
            return Ok((
                cache,
                CheckpointLoad::Corrupt(format!("{len} bytes is too large")),
            ));
        }
        let bytes = fs.read(&cache.path).at(&cache.path)?;
        match parse(&bytes) {
            Ok(entries) => {
                cache.entries = entries;
                Ok((cache, CheckpointLoad::Loaded))
            }
            Err(reason) => Ok((cache, CheckpointLoad::Corrupt(reason))),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The epoch of the record at `offset`, per the cache.
    pub fn epoch_for_offset(&self, offset: Offset) -> Option<Epoch> {
        let i = self.entries.partition_point(|e| e.start_offset <= offset);
        i.checked_sub(1).map(|i| self.entries[i].epoch)
    }

    /// Records that `epoch` starts at `start_offset`. Returns whether the cache changed; an epoch
    /// not above the latest is ignored (the log checks monotonicity before calling). A newer
    /// epoch replaces entries starting at or after its start: after a snapshot install the
    /// cache holds the snapshot's epoch at the log start, and the first batch there, of a
    /// newer epoch, owns that offset (as Kafka's assign does).
    pub fn assign(&mut self, epoch: Epoch, start_offset: Offset) -> bool {
        if self.latest().is_some_and(|l| l.epoch >= epoch) {
            return false;
        }
        let keep = self
            .entries
            .partition_point(|e| e.start_offset < start_offset);
        self.entries.truncate(keep);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Forgets epochs that ended before `start_offset` (log cleaning); the epoch in force at
    /// `start_offset` is kept and now starts there.
    pub fn truncate_from_start(&mut self, start_offset: Offset) -> bool {
        let in_force = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        if in_force == 0 {
            return false;
        }
        let before = self.entries.clone();
        self.entries.drain(..in_force - 1);
        self.entries[0].start_offset = start_offset;
        self.entries != before
    }

    /// Forgets epochs that start at or after `end_offset` (after a log truncation).
    pub fn truncate_from_end(&mut self, end_offset: Offset) -> bool {
        let keep = self
            .entries
            .partition_point(|e| e.start_offset < end_offset);
        let changed = keep != self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    pub(crate) fn replace(&mut self, entries: Vec<EpochEntry>) {
        self.entries = entries;
    }

    /// The end offset of `epoch` in a log ending at `log_end_offset`: the largest epoch <= `epoch`
    /// and the start offset of the next epoch (or the log end offset for the latest epoch).
    /// `None` when the cache cannot answer (no epochs, or `epoch` above the latest).
    pub fn end_offset_for(&self, epoch: Epoch, log_end_offset: Offset) -> Option<OffsetAndEpoch> {
        let latest = self.latest()?;
        if latest.epoch == epoch {
            return Some(OffsetAndEpoch {
                offset: log_end_offset,
                epoch,
            });
        }
        let higher = self.entries.iter().find(|e| e.epoch > epoch)?;
        let floor = self.entries.iter().rev().find(|e| e.epoch <= epoch);
        Some(OffsetAndEpoch {
            offset: higher.start_offset,
            epoch: floor.map_or(epoch, |f| f.epoch),
        })
    }

    /// Writes the checkpoint atomically and durably.
    pub fn persist(&self) -> Result<(), StorageError> {
        fsutil::write_atomically_in(&*self.fs, &self.path, to_text(&self.entries).as_bytes())
    }
}

/// Kafka's checkpoint text: version 0, the entry count, then `epoch offset` lines.
fn to_text(entries: &[EpochEntry]) -> String {
    let mut text = format!("0\n{}\n", entries.len());
    for e in entries {
        text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
    }
    text
}

fn parse(bytes: &[u8]) -> Result<Vec<EpochEntry>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let mut lines = text.lines();
    if lines.next() != Some("0") {
        return Err("first line is not version 0".into());
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or("second line is not an entry count")?;
    let mut entries: Vec<EpochEntry> = Vec::new();
    for (i, line) in lines.enumerate() {
        let mut parts = line.split(' ');
        let (Some(epoch), Some(offset), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("entry {i} '{line}' is not 'epoch offset'"));
        };
        let epoch = epoch
            .parse::<i32>()
            .map_err(|_| format!("entry {i}: bad epoch '{epoch}'"))?;
        let offset = offset
            .parse::<i64>()
            .map_err(|_| format!("entry {i}: bad offset '{offset}'"))?;
        let entry = EpochEntry {
            epoch: Epoch(epoch),
            start_offset: Offset(offset),
        };
        if epoch < 0 || offset < 0 {
            return Err(format!("entry {i} '{line}' is negative"));
        }
        if entries
            .last()
            .is_some_and(|l| l.epoch >= entry.epoch || l.start_offset >= entry.start_offset)
        {
            return Err(format!("entry {i} '{line}' does not increase"));
        }
        entries.push(entry);
    }
    if entries.len() != count {
        return Err(format!("declares {count} entries, holds {}", entries.len()));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache {
            fs: real_fs(),
            path: PathBuf::new(),
            entries: entries
                .iter()
                .map(|&(e, o)| EpochEntry {
                    epoch: Epoch(e),
                    start_offset: Offset(o),
                })
                .collect(),
        }
    }

    fn oe(offset: i64, epoch: i32) -> Option<OffsetAndEpoch> {
        Some(OffsetAndEpoch {
            offset: Offset(offset),
            epoch: Epoch(epoch),
        })
    }

    #[test]
    fn end_offset_for_epoch_follows_kafka() {
        let c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert_eq!(c.end_offset_for(Epoch(5), Offset(25)), oe(25, 5));
        assert_eq!(c.end_offset_for(Epoch(3), Offset(25)), oe(20, 3));
        assert_eq!(c.end_offset_for(Epoch(4), Offset(25)), oe(20, 3));
        assert_eq!(c.end_offset_for(Epoch(2), Offset(25)), oe(10, 1));
        assert_eq!(c.end_offset_for(Epoch(0), Offset(25)), oe(0, 0));
        assert_eq!(c.end_offset_for(Epoch(6), Offset(25)), None);
        assert_eq!(cache(&[]).end_offset_for(Epoch(1), Offset(0)), None);
    }

    #[test]
    fn epoch_for_offset_and_truncation() {
        let mut c = cache(&[(1, 0), (3, 10)]);
        assert_eq!(c.epoch_for_offset(Offset(9)), Some(Epoch(1)));
        assert_eq!(c.epoch_for_offset(Offset(10)), Some(Epoch(3)));
        assert!(c.truncate_from_end(Offset(10)));
        assert_eq!(c.entries().len(), 1);
        assert!(!c.assign(Epoch(1), Offset(12)));
        assert!(c.assign(Epoch(4), Offset(12)));
        // A newer epoch at the start of the latest replaces it (after a snapshot install).
        assert!(c.assign(Epoch(6), Offset(12)));
        assert_eq!(c.entries().len(), 2);
        assert_eq!(c.epoch_for_offset(Offset(12)), Some(Epoch(6)));
    }

    #[test]
    fn text_round_trip_and_rejections() {
        let c = cache(&[(1, 0), (3, 10)]);
        assert_eq!(to_text(c.entries()), "0\n2\n1 0\n3 10\n");
        assert_eq!(parse(to_text(c.entries()).as_bytes()).unwrap(), c.entries());
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n1 0\n",
            "0\n2\n3 0\n1 10\n",
            "0\n1\n1\n",
            "0\n1\n1 x\n",
            "0\nx\n",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
