//! The snapshot executor over a simulated disk: a fetched snapshot is installed only once the
//! state machine has loaded it, and serving answers by position.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use kraft::executor::{InstallError, SnapshotExecutor, SnapshotPolicy};
use kraft::raft::{ErrorCode, FetchSnapshotResponse};
use kraft::record::{BatchBuilder, BatchKind, RecordBatch, RecordError};
use kraft::state_machine::{StateMachine, StateMachineFactory, WorkloadState};
use kraft::storage::{SimFs, SnapshotFile, SnapshotFileWriter, StorageError, list_snapshots_in};
use kraft::types::{Epoch, Offset, OffsetAndEpoch};

const T0: Duration = Duration::from_secs(1);

fn policy() -> SnapshotPolicy {
    SnapshotPolicy {
        max_bytes: u64::MAX,
        interval: None,
        retention_bytes: None,
        retention: None,
    }
}

/// A snapshot executor in `dir` (created) on `disk`.
fn open_in(disk: &SimFs, dir: &Path, factory: StateMachineFactory) -> SnapshotExecutor {
    disk.fs().create_dir_all(dir).unwrap();
    SnapshotExecutor::open(&disk.fs(), dir, policy(), factory, T0).unwrap()
}

/// A state machine that refuses every snapshot it is asked to load.
struct Refusing;

impl StateMachine for Refusing {
    fn apply(&mut self, _: &RecordBatch) -> Result<(), RecordError> {
        Ok(())
    }
    fn applied_offset(&self) -> Offset {
        Offset(0)
    }
    fn write_snapshot(&self, _: &mut SnapshotFileWriter) -> Result<(), StorageError> {
        Ok(())
    }
    fn load_snapshot(&mut self, s: &SnapshotFile) -> Result<(), StorageError> {
        Err(StorageError::corrupt(
            &s.path,
            "not a state this application knows",
        ))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A leader-side executor holding one snapshot of a few committed batches.
fn leader_with_snapshot(disk: &SimFs) -> (SnapshotExecutor, OffsetAndEpoch) {
    let dir = Path::new("/leader/p-0");
    let mut leader = open_in(disk, dir, StateMachineFactory::default());
    let mut log = Vec::new();
    for base in 0..5 {
        let mut b = BatchBuilder::new(BatchKind::Data, Offset(base), Epoch(1));
        b.append(1_700_000_000_000, None, Some(&[base as u8; 40]), &[])
            .unwrap();
        log.extend_from_slice(&b.build().unwrap());
    }
    assert_eq!(leader.apply(Bytes::from(log), Offset(5)), 5);
    let id = leader.write_snapshot(T0).unwrap().unwrap();
    (leader, id)
}

/// Copies snapshot `id` from `leader` into `follower` chunk by chunk, as FetchSnapshot does.
fn transfer(leader: &SnapshotExecutor, follower: &mut SnapshotExecutor, id: OffsetAndEpoch) {
    let mut position = 0;
    loop {
        let request = FetchSnapshotResponse {
            error: ErrorCode::None,
            leader_id: None,
            leader_epoch: Epoch(1),
            snapshot_id: id,
            size: 0,
            position,
            bytes: Bytes::new(),
        };
        let answer = leader.read_chunk(request, 100);
        if position >= answer.size {
            assert_eq!(answer.error, ErrorCode::PositionOutOfRange);
            return;
        }
        assert_eq!(answer.error, ErrorCode::None);
        follower.write_chunk(id, position, &answer.bytes).unwrap();
        position += answer.bytes.len() as u64;
    }
}

#[test]
fn a_snapshot_the_state_machine_rejects_is_never_put_in_place() {
    let disk = SimFs::new();
    let (leader, id) = leader_with_snapshot(&disk);
    let dir = Path::new("/follower/p-0");
    let refusing = StateMachineFactory::new(|| Box::new(Refusing));
    let mut follower = open_in(&disk, dir, refusing);
    transfer(&leader, &mut follower, id);
    assert!(matches!(
        follower.install(id, T0),
        Err(InstallError::Invalid(_))
    ));
    // Not in place: the node neither serves it nor fails to start on it.
    assert!(list_snapshots_in(&disk.fs(), dir).unwrap().is_empty());
}

#[test]
fn a_verified_snapshot_is_loaded_then_put_in_place() {
    let disk = SimFs::new();
    let (leader, id) = leader_with_snapshot(&disk);
    let dir = Path::new("/follower/p-0");
    let mut follower = open_in(&disk, dir, StateMachineFactory::default());
    transfer(&leader, &mut follower, id);
    follower.install(id, T0).unwrap();
    assert_eq!(list_snapshots_in(&disk.fs(), dir).unwrap(), vec![id]);
    let state = follower
        .state()
        .as_any()
        .downcast_ref::<WorkloadState>()
        .unwrap();
    let original = leader
        .state()
        .as_any()
        .downcast_ref::<WorkloadState>()
        .unwrap();
    assert_eq!(state, original);
    assert_eq!(follower.applied_offset(), Offset(5));
}
