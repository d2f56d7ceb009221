//! Recovery rebuilds a dynamic quorum's voter-set history from disk: the bootstrap checkpoint
//! or the newest snapshot, then the log's control batches after it (those the snapshot covers
//! are not applied twice); a voter change in the log that breaks the one-change-at-a-time rule
//! stops the start, naming the segment file.

use bytes::Bytes;
use kraft::executor::LogExecutor;
use kraft::raft::VoterSet;
use kraft::record::{
    BatchBuilder, BatchKind, ControlRecord, KRaftVersionRecord, VoterEndpoint, VoterRecord,
    VotersRecord,
};
use kraft::storage::{
    LogConfig, OffsetPolicy, ReplicatedLog, SnapshotFileWriter, StorageError, real_fs,
};
use kraft::types::{Epoch, Offset, OffsetAndEpoch};
use kraft::uuid::Uuid;

fn voters(ids: &[i32]) -> VotersRecord {
    VotersRecord {
        version: 0,
        voters: ids
            .iter()
            .map(|&id| VoterRecord {
                voter_id: id,
                voter_directory_id: Uuid([id as u8; 16]),
                endpoints: vec![VoterEndpoint {
                    name: "CONTROLLER".into(),
                    host: "localhost".into(),
                    port: 9000 + id as u16,
                }],
                min_supported_kraft_version: 0,
                max_supported_kraft_version: 1,
            })
            .collect(),
    }
}

fn set(ids: &[i32]) -> VoterSet {
    VoterSet::from_record(&voters(ids)).unwrap()
}

fn kraft_version() -> ControlRecord {
    ControlRecord::KRaftVersion(KRaftVersionRecord {
        version: 0,
        kraft_version: 1,
    })
}

fn control(base: i64, records: &[ControlRecord]) -> Bytes {
    let mut batch = BatchBuilder::new(BatchKind::Control, Offset(base), Epoch(1));
    for record in records {
        batch.append_control(0, record).unwrap();
    }
    batch.build().unwrap()
}

fn data(base: i64) -> Bytes {
    let mut batch = BatchBuilder::new(BatchKind::Data, Offset(base), Epoch(1));
    batch.append(0, None, Some(b"v"), &[]).unwrap();
    batch.build().unwrap()
}

/// A log of: KRaftVersion(1) + Voters{1} at 0-1, a data record at 2, Voters `change` at 3.
fn write_log(dir: &std::path::Path, change: &[i32]) {
    let (mut log, _) = ReplicatedLog::open(dir, LogConfig::default()).unwrap();
    for batch in [
        control(0, &[kraft_version(), ControlRecord::Voters(voters(&[1]))]),
        data(2),
        control(3, &[ControlRecord::Voters(voters(change))]),
    ] {
        log.append(batch, OffsetPolicy::Validate).unwrap();
    }
    log.flush().unwrap();
}

fn snapshot(dir: &std::path::Path, end: i64, records: &[ControlRecord]) {
    let id = OffsetAndEpoch {
        offset: Offset(end),
        epoch: Epoch(1),
    };
    let writer =
        SnapshotFileWriter::create_with_control_in(&real_fs(), dir, id, 0, records).unwrap();
    writer.finish().unwrap();
}

#[test]
fn the_history_comes_from_the_checkpoint_then_the_log() {
    let dir = tempfile::tempdir().unwrap();
    kraft::storage::write_bootstrap_checkpoint(dir.path(), voters(&[1]), 0).unwrap();
    write_log(dir.path(), &[1, 2]);
    let (_, recovered) = LogExecutor::open(&real_fs(), dir.path(), LogConfig::default()).unwrap();
    let history = &recovered.voter_history;
    assert_eq!(history.kraft_version(), 1);
    assert_eq!(history.at_or_before(Offset(-1)), Some(&set(&[1])));
    assert_eq!(history.at_or_before(Offset(2)), Some(&set(&[1])));
    assert_eq!(history.latest_entry(), Some((Offset(3), &set(&[1, 2]))));
}

#[test]
fn a_snapshot_replaces_what_it_covers_and_the_log_after_it_applies() {
    // A snapshot ending at 3 (its records at offset 2): the change at 3 comes from the log.
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), &[1, 2]);
    snapshot(
        dir.path(),
        3,
        &[kraft_version(), ControlRecord::Voters(voters(&[1]))],
    );
    let (_, recovered) = LogExecutor::open(&real_fs(), dir.path(), LogConfig::default()).unwrap();
    let history = &recovered.voter_history;
    assert_eq!(history.at_or_before(Offset(0)), None, "below the snapshot");
    assert_eq!(history.at_or_before(Offset(2)), Some(&set(&[1])));
    assert_eq!(history.latest_entry(), Some((Offset(3), &set(&[1, 2]))));

    // A snapshot ending at 4 covers the change: the log's records below 4 are not applied
    // again (they would come after its entry at offset 3 and be refused).
    snapshot(
        dir.path(),
        4,
        &[kraft_version(), ControlRecord::Voters(voters(&[1, 2]))],
    );
    let (_, recovered) = LogExecutor::open(&real_fs(), dir.path(), LogConfig::default()).unwrap();
    assert_eq!(
        recovered.voter_history.latest_entry(),
        Some((Offset(3), &set(&[1, 2])))
    );
    assert_eq!(recovered.voter_history.kraft_version(), 1);
}

#[test]
fn a_log_changing_two_voters_at_once_stops_the_start_naming_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), &[3, 4]);
    let error = LogExecutor::open(&real_fs(), dir.path(), LogConfig::default()).unwrap_err();
    let segment = dir.path().join("00000000000000000000.log");
    assert!(
        matches!(&error, StorageError::Corrupt { path, .. } if *path == segment),
        "{error}"
    );
    assert!(
        error.to_string().contains("changes more than one voter"),
        "{error}"
    );
}

#[test]
fn a_static_quorum_has_no_history() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = ReplicatedLog::open(dir.path(), LogConfig::default()).unwrap();
    log.append(data(0), OffsetPolicy::Validate).unwrap();
    log.flush().unwrap();
    drop(log);
    snapshot(dir.path(), 1, &[]);
    let (_, recovered) = LogExecutor::open(&real_fs(), dir.path(), LogConfig::default()).unwrap();
    assert_eq!(recovered.voter_history, Default::default());
}
