//! `repair-point`: the log end a replica had before `kraft storage repair` moved damaged records
//! aside, as one line of JSON in the partition directory. While it exists the replica neither
//! votes nor stands (see `raft::LogView::with_repair_point`). Written atomically; a file that
//! exists but cannot be read is an error, never ignored, because ignoring it would let a
//! replica vote on a log missing records it had acknowledged. It must never be written except
//! atomically, through the [`Fs`] it was built with, and is kraft's own (Kafka has no such file).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::StorageError;
use super::fs::Fs;
use super::fsutil;
use crate::types::{Epoch, Offset, OffsetAndEpoch};

/// Largest file accepted: the record is under 100 bytes.
const MAX_FILE_BYTES: u64 = 4096;

#[derive(Serialize, Deserialize)]
struct Json {
    version: i16,
    #[serde(rename = "endOffset")]
    end_offset: i64,
    epoch: i32,
}

#[derive(Debug, Clone)]
pub struct RepairPointFile {
    fs: Fs,
    path: PathBuf,
}

impl RepairPointFile {
    pub const FILE_NAME: &'static str = "repair-point";

    pub fn new_in(fs: &Fs, dir: &Path) -> Self {
        RepairPointFile {
            fs: fs.clone(),
            path: dir.join(Self::FILE_NAME),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn read(&self) -> Result<Option<OffsetAndEpoch>, StorageError> {
        let Some(bytes) = fsutil::read_small_file(&*self.fs, &self.path, MAX_FILE_BYTES)? else {
            return Ok(None);
        };
        let json: Json = serde_json::from_slice(&bytes)
            .map_err(|e| StorageError::corrupt(&self.path, e.to_string()))?;
        if json.version != 0 || json.end_offset < 0 || json.epoch < 0 {
            return Err(StorageError::corrupt(
                &self.path,
                "unknown version or negative offset or epoch",
            ));
        }
        Ok(Some(OffsetAndEpoch {
            offset: Offset(json.end_offset),
            epoch: Epoch(json.epoch),
        }))
    }

    /// Durably records `point`.
    pub fn write(&self, point: OffsetAndEpoch) -> Result<(), StorageError> {
        let json = Json {
            version: 0,
            end_offset: point.offset.0,
            epoch: point.epoch.0,
        };
        let mut line = serde_json::to_vec(&json).expect("plain fields serialize");
        line.push(b'\n');
        fsutil::write_atomically_in(&*self.fs, &self.path, &line)
    }

    /// Durably forgets the point (the log got back to it).
    pub fn clear(&self) -> Result<(), StorageError> {
        if fsutil::remove_if_exists(&*self.fs, &self.path)? {
            fsutil::fsync_dir_in(&*self.fs, fsutil::parent(&self.path))?;
        }
        Ok(())
    }
}
