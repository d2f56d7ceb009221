//! The durable log: append/read/truncate/flush/reopen behaviour, and a model-based property test.

mod common;

use bytes::Bytes;
use common::{batch, read_all};
use kraft::record::BatchIter;
use kraft::storage::{LogConfig, OffsetPolicy, ReplicatedLog, StorageError};
use kraft::types::{Epoch, Offset, OffsetAndEpoch};
use proptest::prelude::*;

fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
    }
}

fn open(dir: &std::path::Path, config: LogConfig) -> ReplicatedLog {
    let (log, report) = ReplicatedLog::open(dir, config).unwrap();
    assert!(report.truncations.is_empty(), "{report:?}");
    log
}

#[test]
fn new_log_is_empty_and_laid_out_like_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("__raft_performance_test-0");
    let log = open(&part, LogConfig::default());
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (Offset(0), Offset(0))
    );
    assert_eq!(log.last_fetched_epoch(), Epoch(0));
    assert!(part.join("00000000000000000000.log").is_file());
    assert!(part.join("00000000000000000000.index").is_file());
    assert!(log.read(Offset(0), 1000).unwrap().is_empty());
}

#[test]
fn assign_renumbers_and_validate_requires_contiguity() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let info = log
        .append(batch(99, 1, 3, 10, 0), OffsetPolicy::Assign)
        .unwrap();
    assert_eq!(
        (info.first_offset, info.last_offset, info.batches),
        (Offset(0), Offset(2), 1)
    );
    let stored = log.read(Offset(0), 1 << 20).unwrap();
    assert_eq!(
        BatchIter::new(stored)
            .next()
            .unwrap()
            .unwrap()
            .base_offset(),
        Offset(0)
    );

    let err = log
        .append(batch(7, 1, 1, 10, 0), OffsetPolicy::Validate)
        .unwrap_err();
    assert!(matches!(
        err,
        StorageError::NonContiguous {
            expected: Offset(3),
            got: Offset(7)
        }
    ));
    log.append(batch(3, 1, 2, 10, 0), OffsetPolicy::Validate)
        .unwrap();
    assert_eq!(log.log_end_offset(), Offset(5));
}

#[test]
fn invalid_appends_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    log.append(batch(0, 5, 1, 10, 0), OffsetPolicy::Assign)
        .unwrap();
    let mut two = batch(1, 5, 1, 10, 0).to_vec();
    let mut corrupt = batch(2, 5, 1, 10, 0).to_vec();
    corrupt[40] ^= 1;
    two.extend_from_slice(&corrupt);
    let err = log
        .append(Bytes::from(two), OffsetPolicy::Validate)
        .unwrap_err();
    assert!(
        matches!(err, StorageError::InvalidBatch { index: 1, .. }),
        "{err}"
    );

    let partial = batch(1, 5, 1, 10, 0).slice(..30);
    assert!(matches!(
        log.append(partial, OffsetPolicy::Validate),
        Err(StorageError::PartialBatch(30))
    ));
    let older = log
        .append(batch(1, 4, 1, 10, 0), OffsetPolicy::Validate)
        .unwrap_err();
    assert!(matches!(
        older,
        StorageError::EpochRegression {
            latest: Epoch(5),
            got: Epoch(4)
        }
    ));
    let negative = log
        .append(batch(1, -1, 1, 10, 0), OffsetPolicy::Validate)
        .unwrap_err();
    assert!(matches!(negative, StorageError::NegativeEpoch(Epoch(-1))));
    assert_eq!(log.log_end_offset(), Offset(1));
    log.flush().unwrap();
    drop(log);
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(log.log_end_offset(), Offset(1));
}

#[test]
fn rolls_segments_and_reads_across_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small());
    let mut expected = Vec::new();
    for i in 0..40 {
        let b = batch(i * 2, 1 + (i as i32) / 10, 2, 50, i as u8);
        expected.extend_from_slice(&b);
        log.append(b, OffsetPolicy::Validate).unwrap();
    }
    assert!(log.segment_files().len() > 5, "{:?}", log.segment_files());
    assert_eq!(read_all(&log), expected);
    // A read never spans segments and never splits a batch; an oversized first batch is whole.
    let one = log.read(Offset(5), 10).unwrap();
    let batches: Vec<_> = BatchIter::new(one).map(|b| b.unwrap()).collect();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].base_offset(), Offset(4));
    assert_eq!(log.read(Offset(80), 10).unwrap().len(), 0);
    assert!(log.read(Offset(81), 10).is_err());
    log.flush().unwrap();
    drop(log);
    let log = open(dir.path(), small());
    assert_eq!(read_all(&log), expected);
    assert_eq!(log.log_end_offset(), Offset(80));
}

#[test]
fn truncation_removes_whole_batches_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small());
    for i in 0..30 {
        log.append(
            batch(i * 3, 1 + (i as i32) / 10, 3, 40, 0),
            OffsetPolicy::Validate,
        )
        .unwrap();
    }
    assert_eq!(log.last_fetched_epoch(), Epoch(3));
    let files_before = log.segment_files().len();
    // Offset 31 is inside the batch 30..=32, the first of epoch 2: that whole batch goes, and
    // epoch 2 with it.
    assert_eq!(log.truncate_to(Offset(31)).unwrap(), Offset(30));
    assert_eq!(log.log_end_offset(), Offset(30));
    assert_eq!(log.last_fetched_epoch(), Epoch(1));
    assert!(log.segment_files().len() < files_before);
    assert!(log.segment_files().iter().all(|p| p.exists()));
    assert_eq!(
        log.end_offset_for_epoch(Epoch(1)),
        OffsetAndEpoch {
            offset: Offset(30),
            epoch: Epoch(1)
        }
    );
    // Appending a new epoch after the truncation point works and survives a reopen.
    log.append(batch(30, 7, 1, 40, 0), OffsetPolicy::Validate)
        .unwrap();
    log.flush().unwrap();
    drop(log);
    let log = open(dir.path(), small());
    assert_eq!(log.log_end_offset(), Offset(31));
    let epochs: Vec<_> = log
        .epoch_entries()
        .iter()
        .map(|e| (e.epoch.0, e.start_offset.0))
        .collect();
    assert_eq!(epochs, vec![(1, 0), (7, 30)]);
    assert_eq!(
        log.end_offset_for_epoch(Epoch(3)),
        OffsetAndEpoch {
            offset: Offset(30),
            epoch: Epoch(1)
        }
    );
    assert_eq!(
        log.end_offset_for_epoch(Epoch(9)),
        OffsetAndEpoch {
            offset: Offset(31),
            epoch: Epoch(7)
        }
    );
}

#[test]
fn truncate_below_log_start_is_refused_and_to_zero_empties() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small());
    for i in 0..20 {
        log.append(batch(i, 1, 1, 100, 0), OffsetPolicy::Validate)
            .unwrap();
    }
    assert!(log.truncate_to(Offset(-1)).is_err());
    assert_eq!(log.truncate_to(Offset(0)).unwrap(), Offset(0));
    assert_eq!(log.segment_files().len(), 1);
    assert_eq!(log.last_fetched_epoch(), Epoch(0));
    assert!(log.read(Offset(0), 100).unwrap().is_empty());
}

#[test]
fn flush_tracks_the_durable_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small());
    log.append(batch(0, 1, 2, 10, 0), OffsetPolicy::Validate)
        .unwrap();
    assert_eq!(log.flushed_offset(), Offset(0));
    log.flush().unwrap();
    assert_eq!(log.flushed_offset(), Offset(2));
    log.truncate_to(Offset(1)).unwrap();
    assert_eq!(log.flushed_offset(), Offset(0));
}

// ---- model-based property test ---------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: usize,
        size: usize,
        new_epoch: bool,
        assign: bool,
    },
    Truncate {
        at: prop::sample::Index,
    },
    Flush,
    Reopen,
    Read {
        at: prop::sample::Index,
        max_bytes: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..5, 0usize..120, prop::bool::weighted(0.2), any::<bool>())
            .prop_map(|(records, size, new_epoch, assign)| Op::Append { records, size, new_epoch, assign }),
        1 => any::<prop::sample::Index>().prop_map(|at| Op::Truncate { at }),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        2 => (any::<prop::sample::Index>(), 0usize..600).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
    ]
}

struct ModelBatch {
    base: i64,
    next: i64,
    epoch: i32,
    bytes: Bytes,
}

fn model_end_offset_for(model: &[ModelBatch], leo: i64, epoch: i32) -> (i64, i32) {
    let latest = model.last().map_or(0, |b| b.epoch);
    if model.is_empty() || epoch > latest {
        return (leo, latest);
    }
    if epoch == latest {
        return (leo, epoch);
    }
    let higher = model.iter().find(|b| b.epoch > epoch).unwrap().base;
    let floor = model
        .iter()
        .rev()
        .find(|b| b.epoch <= epoch)
        .map_or(epoch, |b| b.epoch);
    (higher, floor)
}

fn check_read(log: &ReplicatedLog, model: &[ModelBatch], from: i64, max_bytes: usize) {
    let got = log.read(Offset(from), max_bytes).unwrap();
    let start = model.iter().position(|b| b.next > from);
    let Some(start) = start else {
        assert!(got.is_empty());
        return;
    };
    let mut expected = Vec::new();
    let mut count = 0;
    for b in &model[start..] {
        if expected.len() >= got.len() {
            break;
        }
        expected.extend_from_slice(&b.bytes);
        count += 1;
    }
    assert_eq!(
        &got[..],
        &expected[..],
        "read({from}, {max_bytes}) is not a whole-batch prefix"
    );
    assert!(count >= 1);
    assert!(
        count == 1 || got.len() <= max_bytes,
        "read({from}, {max_bytes}) returned {}",
        got.len()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn log_behaves_like_a_vector_of_batches(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes: 700, index_interval_bytes: 100 };
        let mut log = open(dir.path(), config);
        let mut model: Vec<ModelBatch> = Vec::new();
        let mut epoch = 1;
        let mut tag = 0u8;
        for op in ops {
            let leo = model.last().map_or(0, |b| b.next);
            match op {
                Op::Append { records, size, new_epoch, assign } => {
                    epoch += i32::from(new_epoch);
                    tag = tag.wrapping_add(1);
                    let stored = batch(leo, epoch, records, size, tag);
                    let given = if assign { batch(12345, epoch, records, size, tag) } else { stored.clone() };
                    let policy = if assign { OffsetPolicy::Assign } else { OffsetPolicy::Validate };
                    let info = log.append(given, policy).unwrap();
                    prop_assert_eq!(info.first_offset, Offset(leo));
                    model.push(ModelBatch { base: leo, next: leo + records as i64, epoch, bytes: stored });
                }
                Op::Truncate { at } => {
                    let to = at.index(leo as usize + 1) as i64;
                    let new_leo = log.truncate_to(Offset(to)).unwrap();
                    model.retain(|b| b.next <= to);
                    prop_assert_eq!(new_leo, Offset(model.last().map_or(0, |b| b.next)));
                }
                Op::Flush => {
                    log.flush().unwrap();
                    prop_assert_eq!(log.flushed_offset(), Offset(leo));
                }
                Op::Reopen => {
                    log.flush().unwrap();
                    drop(log);
                    log = open(dir.path(), config);
                }
                Op::Read { at, max_bytes } => {
                    check_read(&log, &model, at.index(leo as usize + 1) as i64, max_bytes);
                }
            }
            let leo = model.last().map_or(0, |b| b.next);
            prop_assert_eq!(log.log_end_offset(), Offset(leo));
            prop_assert_eq!(log.last_fetched_epoch(), Epoch(model.last().map_or(0, |b| b.epoch)));
            for e in 0..=epoch + 1 {
                let (offset, ep) = model_end_offset_for(&model, leo, e);
                prop_assert_eq!(log.end_offset_for_epoch(Epoch(e)), OffsetAndEpoch { offset: Offset(offset), epoch: Epoch(ep) });
            }
        }
        let all: Vec<u8> = model.iter().flat_map(|b| b.bytes.to_vec()).collect();
        prop_assert_eq!(read_all(&log), all);
    }
}

#[test]
fn cleaning_deletes_whole_flushed_segments_below_an_offset_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small());
    // Epoch 1 then epoch 2, ten records per batch of 100-byte values: many 1 KiB segments.
    let mut base = 0;
    for (epoch, batches) in [(1, 20), (2, 20)] {
        for _ in 0..batches {
            log.append(
                batch(base, epoch, 10, 100, epoch as u8),
                OffsetPolicy::Validate,
            )
            .unwrap();
            base += 10;
        }
    }
    let files_before = log.segment_files().len();
    // Nothing unflushed is ever deleted.
    assert!(log.delete_segments_below(Offset(250)).unwrap().is_empty());
    log.flush().unwrap();
    let deleted = log.delete_segments_below(Offset(250)).unwrap();
    assert!(!deleted.is_empty());
    assert!(deleted.iter().all(|p| !p.exists()));
    let start = log.log_start_offset();
    assert!(start <= Offset(250) && start > Offset(0), "{start}");
    assert_eq!(log.segment_files().len() + deleted.len() / 2, files_before);
    assert!(matches!(
        log.read(Offset(0), 100),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // The epoch in force at the new start is kept, starting there.
    assert_eq!(log.epoch_entries()[0].epoch, Epoch(2));
    assert_eq!(log.epoch_entries()[0].start_offset, start);
    let tail = read_all(&log);
    drop(log);

    let (mut log, report) = ReplicatedLog::open(dir.path(), small()).unwrap();
    assert!(report.truncations.is_empty(), "{report:?}");
    assert_eq!(report.rebuilt_epoch_checkpoint, None, "{report:?}");
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(read_all(&log), tail);
    // Appends continue, and the active segment is never deleted.
    log.append(batch(400, 2, 1, 10, 9), OffsetPolicy::Validate)
        .unwrap();
    log.flush().unwrap();
    log.delete_segments_below(Offset(10_000)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(401));
    assert!(log.read(log.log_start_offset(), 1 << 20).is_ok());
}

/// A crash during cleaning, after the segments went but before the epoch checkpoint was
/// rewritten: recovery rebuilds the checkpoint and keeps every remaining record.
#[test]
fn a_crash_between_cleaning_and_its_checkpoint_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small());
    for i in 0..30 {
        let epoch = if i < 15 { 1 } else { 2 };
        log.append(
            batch(i * 10, epoch, 10, 100, i as u8),
            OffsetPolicy::Validate,
        )
        .unwrap();
    }
    log.flush().unwrap();
    let checkpoint = dir.path().join("leader-epoch-checkpoint");
    let before = std::fs::read(&checkpoint).unwrap();
    assert!(!log.delete_segments_below(Offset(200)).unwrap().is_empty());
    let start = log.log_start_offset();
    let tail = read_all(&log);
    drop(log);
    std::fs::write(&checkpoint, before).unwrap();

    let (log, report) = ReplicatedLog::open(dir.path(), small()).unwrap();
    assert!(report.truncations.is_empty(), "{report:?}");
    assert!(report.rebuilt_epoch_checkpoint.is_some(), "{report:?}");
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(log.log_end_offset(), Offset(300));
    assert_eq!(read_all(&log), tail);
}

/// A snapshot install that ends exactly where a new epoch begins: the next batch (the new
/// leader's LeaderChange) starts its epoch at the snapshot's end offset. The epoch checkpoint
/// must attribute it to the new epoch, or the next open rejects the batch and cuts the log.
#[test]
fn an_epoch_starting_at_an_installed_snapshots_end_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small());
    log.append(batch(0, 1, 3, 10, 0), OffsetPolicy::Validate)
        .unwrap();
    log.flush().unwrap();
    let snapshot = OffsetAndEpoch {
        offset: Offset(10),
        epoch: Epoch(3),
    };
    log.reset_to(snapshot).unwrap();
    log.append(batch(10, 5, 1, 10, 1), OffsetPolicy::Validate)
        .unwrap();
    log.append(batch(11, 5, 2, 10, 2), OffsetPolicy::Validate)
        .unwrap();
    log.flush().unwrap();
    assert_eq!(log.end_offset_for_epoch(Epoch(3)).offset, Offset(10));
    drop(log);
    let (log, report) = ReplicatedLog::open(dir.path(), small()).unwrap();
    assert!(report.truncations.is_empty(), "{report:?}");
    assert!(report.deleted_files.is_empty(), "{report:?}");
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (Offset(10), Offset(13))
    );
    assert_eq!(log.last_fetched_epoch(), Epoch(5));
}
