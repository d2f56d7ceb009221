//! Snapshot files (`%020d-%010d.checkpoint`, docs/protocol.md §16): naming, and the bootstrap
//! checkpoint `kraft storage format` writes for a dynamic quorum (header, kraft.version, the
//! voters unless the node will join later, footer).
//!
//! Owns the file name and the header/footer framing. Written atomically; it never writes a
//! checkpoint that a reader would reject (the first batch is a control batch starting with a
//! SnapshotHeader, the last ends with a SnapshotFooter), and never touches the disk except
//! through the [`Fs`] it is handed.

use std::path::{Path, PathBuf};

use bytes::BytesMut;

use super::error::{IoContext, StorageError};
use super::fs::{Fs, real_fs};
use super::fsutil;
use super::snapshot_file::SnapshotFile;
use crate::record::{
    BatchBuilder, BatchIter, BatchKind, ControlRecord, KRaftVersionRecord, RecordError,
    SnapshotFooterRecord, SnapshotHeaderRecord, VotersRecord,
};
use crate::types::{Epoch, Offset, OffsetAndEpoch};

/// The checkpoint file name of snapshot `id`: end offset (20 digits) - epoch (10 digits).
pub fn snapshot_file_name(id: OffsetAndEpoch) -> String {
    format!("{:020}-{:010}.checkpoint", id.offset.0, id.epoch.0)
}

/// The id of the bootstrap snapshot: end offset 0, epoch 0.
pub const BOOTSTRAP_SNAPSHOT_ID: OffsetAndEpoch = OffsetAndEpoch {
    offset: Offset(0),
    epoch: Epoch(0),
};

/// The largest bootstrap checkpoint read: its voter set, even of thousands of voters, is far
/// smaller, and a bigger file is not one `kraft storage format` wrote.
const MAX_BOOTSTRAP_CHECKPOINT_BYTES: u64 = 1 << 20;

/// The control records of the bootstrap checkpoint in `partition_dir` (header and footer
/// included), or None if there is none. The file's framing is checked as every snapshot's is.
pub fn read_bootstrap_checkpoint(
    partition_dir: &Path,
) -> Result<Option<Vec<ControlRecord>>, StorageError> {
    read_bootstrap_checkpoint_in(&real_fs(), partition_dir)
}

/// [`read_bootstrap_checkpoint`] on `fs`.
pub fn read_bootstrap_checkpoint_in(
    fs: &Fs,
    partition_dir: &Path,
) -> Result<Option<Vec<ControlRecord>>, StorageError> {
    let path = partition_dir.join(snapshot_file_name(BOOTSTRAP_SNAPSHOT_ID));
    if !fs.exists(&path).at(&path)? {
        return Ok(None);
    }
    let file = SnapshotFile::open_path_in(fs, &path, BOOTSTRAP_SNAPSHOT_ID)?;
    if file.size > MAX_BOOTSTRAP_CHECKPOINT_BYTES {
        return Err(StorageError::corrupt(
            &path,
            format!(
                "{} bytes, more than a bootstrap checkpoint holds ({MAX_BOOTSTRAP_CHECKPOINT_BYTES})",
                file.size
            ),
        ));
    }
    file.for_each_value(|_| {})?;
    let corrupt = |e: RecordError| StorageError::corrupt(&path, e.to_string());
    let mut records = Vec::new();
    for batch in BatchIter::new(bytes::Bytes::from(fs.read(&path).at(&path)?)) {
        let batch = batch.map_err(corrupt)?;
        if !batch.is_control() {
            continue;
        }
        for record in batch.decode_records().map_err(corrupt)? {
            let (Some(key), Some(value)) = (&record.key, &record.value) else {
                return Err(StorageError::corrupt(
                    &path,
                    "a control record without key or value",
                ));
            };
            records.push(ControlRecord::decode(key, value).map_err(corrupt)?);
        }
    }
    Ok(Some(records))
}

/// Copies the bootstrap checkpoint of `from_partition` (checked as
/// [`read_bootstrap_checkpoint`] checks it) into `to_partition`, unless that holds a snapshot
/// already (the checkpoint itself, or a newer snapshot that holds the voters in its place after
/// log cleaning deleted the checkpoint): a node whose log lives in another partition than the
/// one `kraft storage format` wrote it to starts from it there. Returns whether it copied.
pub fn copy_bootstrap_checkpoint(
    from_partition: &Path,
    to_partition: &Path,
) -> Result<bool, StorageError> {
    let fs = real_fs();
    let name = snapshot_file_name(BOOTSTRAP_SNAPSHOT_ID);
    let (from, to) = (from_partition.join(&name), to_partition.join(&name));
    let has_snapshot = fs.exists(to_partition).at(to_partition)?
        && !super::snapshot_file::list_snapshots_in(&fs, to_partition)?.is_empty();
    if has_snapshot || read_bootstrap_checkpoint_in(&fs, from_partition)?.is_none() {
        return Ok(false);
    }
    let bytes = fs.read(&from).at(&from)?;
    fsutil::create_dir_durably_in(&*fs, to_partition)?;
    fsutil::write_atomically_in(&*fs, &to, &bytes)?;
    Ok(true)
}

/// Writes the bootstrap checkpoint of a dynamic (kraft.version 1) quorum into `partition_dir`
/// and returns its path.
pub fn write_bootstrap_checkpoint(
    partition_dir: &Path,
    voters: VotersRecord,
    timestamp_ms: i64,
) -> Result<PathBuf, StorageError> {
    write_bootstrap_checkpoint_in(&real_fs(), partition_dir, voters, timestamp_ms)
}

/// [`write_bootstrap_checkpoint`] on `fs`.
pub fn write_bootstrap_checkpoint_in(
    fs: &Fs,
    partition_dir: &Path,
    voters: VotersRecord,
    timestamp_ms: i64,
) -> Result<PathBuf, StorageError> {
    write_checkpoint_in(fs, partition_dir, Some(voters), timestamp_ms)
}

/// Writes the bootstrap checkpoint of a node formatted to join a dynamic quorum later
/// (`format --no-initial-controllers`): kraft.version 1 and no voter set, so the node starts
/// as an observer and learns the voters from the leader. Returns its path.
pub fn write_joining_checkpoint(
    partition_dir: &Path,
    timestamp_ms: i64,
) -> Result<PathBuf, StorageError> {
    write_joining_checkpoint_in(&real_fs(), partition_dir, timestamp_ms)
}

/// [`write_joining_checkpoint`] on `fs`.
pub fn write_joining_checkpoint_in(
    fs: &Fs,
    partition_dir: &Path,
    timestamp_ms: i64,
) -> Result<PathBuf, StorageError> {
    write_checkpoint_in(fs, partition_dir, None, timestamp_ms)
}

fn write_checkpoint_in(
    fs: &Fs,
    partition_dir: &Path,
    voters: Option<VotersRecord>,
    timestamp_ms: i64,
) -> Result<PathBuf, StorageError> {
    let bytes = bootstrap_checkpoint_bytes(voters, timestamp_ms).map_err(|e| {
        StorageError::corrupt(
            partition_dir,
            format!("cannot build the bootstrap snapshot: {e}"),
        )
    })?;
    fsutil::create_dir_durably_in(&**fs, partition_dir)?;
    let path = partition_dir.join(snapshot_file_name(BOOTSTRAP_SNAPSHOT_ID));
    fsutil::write_atomically_in(&**fs, &path, &bytes)?;
    Ok(path)
}

fn bootstrap_checkpoint_bytes(
    voters: Option<VotersRecord>,
    timestamp_ms: i64,
) -> Result<BytesMut, RecordError> {
    let epoch = BOOTSTRAP_SNAPSHOT_ID.epoch;
    let mut header = BatchBuilder::new(BatchKind::Control, Offset(0), epoch);
    let mut records = vec![
        ControlRecord::SnapshotHeader(SnapshotHeaderRecord {
            version: 0,
            last_contained_log_timestamp: timestamp_ms,
        }),
        ControlRecord::KRaftVersion(KRaftVersionRecord {
            version: 0,
            kraft_version: 1,
        }),
    ];
    records.extend(voters.map(ControlRecord::Voters));
    for record in &records {
        header.append_control(timestamp_ms, record)?;
    }
    let mut footer = BatchBuilder::new(BatchKind::Control, Offset(records.len() as i64), epoch);
    footer.append_control(
        timestamp_ms,
        &ControlRecord::SnapshotFooter(SnapshotFooterRecord { version: 0 }),
    )?;
    let mut out = BytesMut::new();
    out.extend_from_slice(&header.build()?);
    out.extend_from_slice(&footer.build()?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{VoterEndpoint, VoterRecord};
    use crate::uuid::Uuid;

    fn voters() -> VotersRecord {
        VotersRecord {
            version: 0,
            voters: vec![VoterRecord {
                voter_id: 1,
                voter_directory_id: Uuid::random(),
                endpoints: vec![VoterEndpoint {
                    name: "CONTROLLER".into(),
                    host: "localhost".into(),
                    port: 9093,
                }],
                min_supported_kraft_version: 0,
                max_supported_kraft_version: 1,
            }],
        }
    }

    #[test]
    fn a_bootstrap_checkpoint_reads_back_record_for_record() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_bootstrap_checkpoint(dir.path()).unwrap(), None);
        let voters = voters();
        write_bootstrap_checkpoint(dir.path(), voters.clone(), 42).unwrap();
        let records = read_bootstrap_checkpoint(dir.path()).unwrap().unwrap();
        assert_eq!(
            records,
            [
                ControlRecord::SnapshotHeader(SnapshotHeaderRecord {
                    version: 0,
                    last_contained_log_timestamp: 42
                }),
                ControlRecord::KRaftVersion(KRaftVersionRecord {
                    version: 0,
                    kraft_version: 1
                }),
                ControlRecord::Voters(voters),
                ControlRecord::SnapshotFooter(SnapshotFooterRecord { version: 0 }),
            ]
        );
        let joining = tempfile::tempdir().unwrap();
        write_joining_checkpoint(joining.path(), 7).unwrap();
        let records = read_bootstrap_checkpoint(joining.path()).unwrap().unwrap();
        assert_eq!(records.len(), 3);
        assert!(
            !records
                .iter()
                .any(|r| matches!(r, ControlRecord::Voters(_)))
        );
    }

    #[test]
    fn the_checkpoint_is_copied_once_into_a_partition_without_snapshots() {
        let (formatted, log) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let to = log.path().join("p-0");
        assert!(!copy_bootstrap_checkpoint(formatted.path(), &to).unwrap());
        write_bootstrap_checkpoint(formatted.path(), voters(), 5).unwrap();
        assert!(copy_bootstrap_checkpoint(formatted.path(), &to).unwrap());
        assert_eq!(
            read_bootstrap_checkpoint(&to).unwrap(),
            read_bootstrap_checkpoint(formatted.path()).unwrap()
        );
        assert!(!copy_bootstrap_checkpoint(formatted.path(), &to).unwrap());
        // Cleaning deleted the checkpoint, a newer snapshot holds the voters: no copy.
        let name = snapshot_file_name(BOOTSTRAP_SNAPSHOT_ID);
        std::fs::rename(
            to.join(&name),
            to.join("00000000000000000100-0000000002.checkpoint"),
        )
        .unwrap();
        assert!(!copy_bootstrap_checkpoint(formatted.path(), &to).unwrap());
        assert!(!to.join(name).exists());
    }

    #[test]
    fn an_oversized_or_cut_checkpoint_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_bootstrap_checkpoint(dir.path(), voters(), 1).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let err = read_bootstrap_checkpoint(dir.path()).unwrap_err();
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
        let mut big = bytes.clone();
        big.resize(MAX_BOOTSTRAP_CHECKPOINT_BYTES as usize + 1, 0);
        std::fs::write(&path, &big).unwrap();
        let err = read_bootstrap_checkpoint(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains("more than a bootstrap checkpoint holds"),
            "{err}"
        );
    }
}
