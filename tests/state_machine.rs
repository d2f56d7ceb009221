//! The server's state machine: replaying the log and loading a snapshot then replaying the
//! rest agree exactly; a snapshot of another kind of state, or of another offset, is refused.

mod common;

use kraft::record::{BatchIter, RecordBatch};
use kraft::state_machine::{StateMachine, WorkloadState};
use kraft::storage::{SnapshotFile, SnapshotFileWriter};
use kraft::types::{Epoch, Offset, OffsetAndEpoch};

/// Consecutive data batches of random record values, from offset 0.
fn batches(seed: u64, count: usize) -> Vec<RecordBatch> {
    let mut rng = common::Rng::new(seed);
    let mut out = Vec::new();
    let mut base = 0i64;
    for _ in 0..count {
        let records = 1 + (rng.next_u64() % 20) as usize;
        let size = 1 + (rng.next_u64() % 300) as usize;
        let bytes = common::batch(base, 1, records, size, rng.next_u64() as u8);
        base += records as i64;
        out.extend(BatchIter::new(bytes).map(Result::unwrap));
    }
    out
}

fn replay(batches: &[RecordBatch]) -> WorkloadState {
    let mut state = WorkloadState::default();
    for b in batches {
        state.apply(b).unwrap();
    }
    state
}

#[test]
fn a_snapshot_plus_the_rest_of_the_log_equals_a_full_replay() {
    let seed = common::test_seed();
    eprintln!("seed {seed} (KRAFT_TEST_SEED={seed} replays it)");
    let all = batches(seed, 200);
    let full = replay(&all);
    assert_eq!(full.applied, all.last().unwrap().next_offset());
    assert_eq!(
        full.records,
        all.iter()
            .map(|b| b.decode_records().unwrap().len() as u64)
            .sum::<u64>()
    );

    let cut = (seed % 199) as usize + 1;
    let before = replay(&all[..cut]);
    let dir = tempfile::tempdir().unwrap();
    let id = OffsetAndEpoch {
        offset: before.applied_offset(),
        epoch: Epoch(1),
    };
    let mut writer = SnapshotFileWriter::create(dir.path(), id, 0).unwrap();
    before.write_snapshot(&mut writer).unwrap();
    writer.finish().unwrap();

    let mut restored = WorkloadState::default();
    restored
        .load_snapshot(&SnapshotFile::open(dir.path(), id).unwrap())
        .unwrap();
    assert_eq!(restored, before, "seed {seed}");
    for b in &all[cut..] {
        restored.apply(b).unwrap();
    }
    assert_eq!(
        restored, full,
        "seed {seed}: snapshot + replay differs from a full replay"
    );
}

#[test]
fn the_checksum_depends_on_order_and_content() {
    let mut a = WorkloadState::default();
    let mut b = WorkloadState::default();
    a.apply_value(b"one");
    a.apply_value(b"two");
    b.apply_value(b"two");
    b.apply_value(b"one");
    assert_eq!((a.records, a.bytes), (b.records, b.bytes));
    assert_ne!(a.checksum, b.checksum);
}

#[test]
fn a_foreign_or_misplaced_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let id = OffsetAndEpoch {
        offset: Offset(10),
        epoch: Epoch(1),
    };
    // Not a workload state: arbitrary values.
    let mut writer = SnapshotFileWriter::create(dir.path(), id, 0).unwrap();
    writer
        .append([bytes::Bytes::from_static(b"something else")])
        .unwrap();
    writer.finish().unwrap();
    let mut state = WorkloadState::default();
    assert!(
        state
            .load_snapshot(&SnapshotFile::open(dir.path(), id).unwrap())
            .is_err()
    );
    // A workload state applied through offset 5 stored under an id ending at 10.
    let other = OffsetAndEpoch {
        offset: Offset(10),
        epoch: Epoch(2),
    };
    let five = WorkloadState {
        applied: Offset(5),
        ..WorkloadState::default()
    };
    let mut writer = SnapshotFileWriter::create(dir.path(), other, 0).unwrap();
    five.write_snapshot(&mut writer).unwrap();
    writer.finish().unwrap();
    assert!(
        state
            .load_snapshot(&SnapshotFile::open(dir.path(), other).unwrap())
            .is_err()
    );
    assert_eq!(
        state,
        WorkloadState::default(),
        "a refused load changes nothing"
    );
}
