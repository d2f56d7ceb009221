//! The sparse offset index beside each segment (`%020d.index`): 8-byte entries of
//! (offset relative to the segment base: u32, byte position in the `.log`: u32), big-endian, one
//! entry for roughly every `index_interval_bytes` of log, mapping a batch's last offset to where
//! the batch starts.
//!
//! The index is a cache: recovery rebuilds it from the log it indexes, so it is never fsynced
//! and never trusted over the log. It must never hold the file's bytes anywhere but in its
//! entry list and the file it reaches through the [`FileSystem`] seam.

use std::path::{Path, PathBuf};

use super::error::{IoContext, StorageError};
use super::fs::{FileHandle, FileSystem, OpenMode};
use super::fsutil;

/// Bytes per index entry.
const ENTRY_BYTES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    relative_offset: u32,
    position: u32,
}

/// One segment's sparse index, mirrored in memory.
#[derive(Debug)]
pub struct OffsetIndex {
    path: PathBuf,
    file: Box<dyn FileHandle>,
    entries: Vec<Entry>,
}

impl OffsetIndex {
    /// Opens (creating if needed) the index at `path` holding exactly `entries`, rewriting the
    /// file if its contents differ. Returns whether it had to be rewritten.
    pub(crate) fn open_with(
        fs: &dyn FileSystem,
        path: &Path,
        entries: &[(u32, u32)],
    ) -> Result<(OffsetIndex, bool), StorageError> {
        let entries: Vec<Entry> = entries
            .iter()
            .map(|&(relative_offset, position)| Entry {
                relative_offset,
                position,
            })
            .collect();
        let wanted = encode(&entries);
        let existing = match fs.read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(StorageError::io(path, e)),
        };
        let rewritten = existing.as_deref() != Some(&wanted[..]);
        if rewritten {
            fsutil::write_atomically_in(fs, path, &wanted)?;
        }
        let file = fs.open(path, OpenMode::ReadWrite).at(path)?;
        Ok((
            OffsetIndex {
                path: path.to_path_buf(),
                file,
                entries,
            },
            rewritten,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds an entry; entries must increase in both offset and position.
    pub(crate) fn append(
        &mut self,
        relative_offset: u32,
        position: u32,
    ) -> Result<(), StorageError> {
        let entry = Entry {
            relative_offset,
            position,
        };
        let at = (self.entries.len() * ENTRY_BYTES) as u64;
        self.file
            .write_all_at(&encode(&[entry]), at)
            .at(&self.path)?;
        self.entries.push(entry);
        Ok(())
    }

    /// The position of the last indexed batch whose last offset is <= `relative_offset`
    /// (0, the segment start, when there is none): a safe place to start scanning for it.
    pub(crate) fn lookup(&self, relative_offset: u32) -> u32 {
        let i = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        i.checked_sub(1).map_or(0, |i| self.entries[i].position)
    }

    /// Drops entries for batches at or after byte `position`.
    pub(crate) fn truncate_to_position(&mut self, position: u32) -> Result<(), StorageError> {
        let keep = self.entries.partition_point(|e| e.position < position);
        self.entries.truncate(keep);
        self.file
            .set_len((keep * ENTRY_BYTES) as u64)
            .at(&self.path)
    }

    /// Position of the last entry, if any.
    pub(crate) fn last_position(&self) -> Option<u32> {
        self.entries.last().map(|e| e.position)
    }
}

fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_BYTES);
    for e in entries {
        out.extend_from_slice(&e.relative_offset.to_be_bytes());
        out.extend_from_slice(&e.position.to_be_bytes());
    }
    out
}
