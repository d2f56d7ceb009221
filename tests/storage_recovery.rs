//! Crash recovery: files cut at random byte positions and random bit flips in segments must
//! leave exactly the valid prefix of the log; damaged indexes and epoch checkpoints are rebuilt;
//! damaged state files are errors, never silent resets.

mod common;

use std::path::{Path, PathBuf};

use common::{Rng, batch, read_all, test_seed};
use kraft::storage::{
    ElectionState, LogConfig, MetaProperties, OffsetPolicy, QuorumStateFile, ReplicatedLog,
    StorageError,
};
use kraft::types::{Epoch, NodeId, Offset};

const CONFIG: LogConfig = LogConfig {
    segment_bytes: 2048,
    index_interval_bytes: 256,
};

/// Where one batch landed on disk.
struct Placed {
    base: i64,
    file: PathBuf,
    position: u64,
    bytes: bytes::Bytes,
}

/// Writes a random log, flushes it, and returns where every batch is.
fn build_log(dir: &Path, rng: &mut Rng) -> Vec<Placed> {
    let (mut log, _) = ReplicatedLog::open(dir, CONFIG).unwrap();
    let mut placed: Vec<Placed> = Vec::new();
    let mut epoch = 1;
    for i in 0..(20 + rng.below(40)) {
        epoch += i32::from(rng.below(8) == 0);
        let base = log.log_end_offset().0;
        let b = batch(
            base,
            epoch,
            1 + rng.below(4) as usize,
            rng.below(300) as usize,
            i as u8,
        );
        log.append(b.clone(), OffsetPolicy::Validate).unwrap();
        let file = log.segment_files().last().unwrap().clone();
        let position = match placed.last() {
            Some(p) if p.file == file => p.position + p.bytes.len() as u64,
            _ => 0,
        };
        placed.push(Placed {
            base,
            file,
            position,
            bytes: b,
        });
    }
    log.flush().unwrap();
    placed
}

/// Index in `placed` of the first batch a damage at (`file`, `position`) reaches, if any.
fn first_damaged(placed: &[Placed], file: &Path, position: u64, cut: bool) -> Option<usize> {
    placed.iter().position(|p| {
        let end = p.position + p.bytes.len() as u64;
        p.file == file
            && if cut {
                end > position
            } else {
                p.position <= position && position < end
            }
    })
}

/// Recovers `dir` and checks it holds exactly `placed[..keep]`. `repaired` says whether the
/// damage left something recovery must cut or delete (a partial batch, or later segments); a cut
/// exactly at a batch boundary of the last segment leaves a valid, shorter log.
fn check_recovered(
    dir: &Path,
    placed: &[Placed],
    keep: usize,
    repaired: bool,
    seed: u64,
    what: &str,
) {
    let (mut log, report) = ReplicatedLog::open(dir, CONFIG).unwrap();
    let expected: Vec<u8> = placed[..keep]
        .iter()
        .flat_map(|p| p.bytes.to_vec())
        .collect();
    let expected_leo = placed
        .get(keep)
        .map_or_else(|| log.log_end_offset().0, |p| p.base);
    let ctx = format!("seed {seed} ({what}): report {report:?}");
    assert_eq!(log.log_end_offset(), Offset(expected_leo), "{ctx}");
    assert_eq!(read_all(&log), expected, "{ctx}");
    if repaired {
        assert!(
            !report.truncations.is_empty() || !report.deleted_files.is_empty(),
            "{ctx}"
        );
    }
    // The recovered log is consistent: it takes new appends and reopens without further repair.
    let next_epoch = log.last_fetched_epoch().0 + 1;
    log.append(
        batch(expected_leo, next_epoch, 1, 10, 0),
        OffsetPolicy::Validate,
    )
    .unwrap();
    log.flush().unwrap();
    drop(log);
    let (log, report) = ReplicatedLog::open(dir, CONFIG).unwrap();
    assert_eq!(report.truncations, vec![], "{ctx}");
    assert_eq!(report.rebuilt_epoch_checkpoint, None, "{ctx}");
    assert_eq!(log.log_end_offset(), Offset(expected_leo + 1), "{ctx}");
}

#[test]
fn cutting_any_segment_keeps_exactly_the_complete_batches_before_the_cut() {
    let base_seed = test_seed();
    for i in 0..150 {
        let seed = base_seed.wrapping_add(i);
        let mut rng = Rng::new(seed);
        let dir = tempfile::tempdir().unwrap();
        let placed = build_log(dir.path(), &mut rng);
        let files: Vec<&PathBuf> = placed.iter().map(|p| &p.file).collect();
        let file = files[rng.below(files.len() as u64) as usize].clone();
        let len = std::fs::metadata(&file).unwrap().len();
        let cut = rng.below(len + 1);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let keep = first_damaged(&placed, &file, cut, true).unwrap_or(placed.len());
        let repaired = placed.get(keep).is_some_and(|p| p.position < cut)
            || placed[keep..].iter().any(|p| p.file != file);
        check_recovered(
            dir.path(),
            &placed,
            keep,
            repaired,
            seed,
            &format!("cut {} at {cut}", file.display()),
        );
    }
}

#[test]
fn a_bit_flip_anywhere_in_a_segment_keeps_exactly_the_batches_before_it() {
    let base_seed = test_seed();
    for i in 0..300 {
        let seed = base_seed.wrapping_add(i);
        let mut rng = Rng::new(seed);
        let dir = tempfile::tempdir().unwrap();
        let placed = build_log(dir.path(), &mut rng);
        let victim = &placed[rng.below(placed.len() as u64) as usize];
        let position = victim.position + rng.below(victim.bytes.len() as u64);
        let bit = rng.below(8) as u8;
        let mut data = std::fs::read(&victim.file).unwrap();
        data[position as usize] ^= 1 << bit;
        std::fs::write(&victim.file, &data).unwrap();
        let keep = first_damaged(&placed, &victim.file, position, false).unwrap();
        let what = format!(
            "flip bit {bit} of byte {position} in {}",
            victim.file.display()
        );
        // A flipped bit always lands inside a batch, which recovery must cut away.
        check_recovered(dir.path(), &placed, keep, true, seed, &what);
    }
}

#[test]
fn missing_or_damaged_indexes_and_checkpoints_are_rebuilt_without_losing_data() {
    let seed = test_seed();
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let placed = build_log(dir.path(), &mut rng);
    let all: Vec<u8> = placed.iter().flat_map(|p| p.bytes.to_vec()).collect();
    let first_index = placed[0].file.with_extension("index");
    let last_index = placed.last().unwrap().file.with_extension("index");
    std::fs::remove_file(&first_index).unwrap();
    std::fs::write(&last_index, b"garbage!").unwrap();
    std::fs::write(
        dir.path().join("leader-epoch-checkpoint"),
        b"0\n7\nnot numbers\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("99999999999999999999.index"), b"orphan").unwrap();
    std::fs::write(dir.path().join("quorum-state.tmp"), b"half written").unwrap();

    let (log, report) = ReplicatedLog::open(dir.path(), CONFIG).unwrap();
    assert!(report.truncations.is_empty(), "seed {seed}: {report:?}");
    assert!(
        report.rebuilt_indexes.contains(&first_index),
        "seed {seed}: {report:?}"
    );
    assert!(
        report.rebuilt_indexes.contains(&last_index),
        "seed {seed}: {report:?}"
    );
    assert!(
        report
            .rebuilt_epoch_checkpoint
            .as_deref()
            .unwrap()
            .starts_with("corrupt")
    );
    assert_eq!(
        report.removed_temp_files,
        vec![dir.path().join("quorum-state.tmp")]
    );
    assert_eq!(read_all(&log), all, "seed {seed}");
    let last = placed.last().unwrap();
    assert_eq!(
        log.last_fetched_epoch(),
        kraft::record::RecordBatch::decode(last.bytes.clone())
            .unwrap()
            .epoch()
    );
    drop(log);
    let (_, report) = ReplicatedLog::open(dir.path(), CONFIG).unwrap();
    assert_eq!(
        report,
        Default::default(),
        "seed {seed}: a second open finds nothing to repair"
    );
}

#[test]
fn a_segment_after_a_gap_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let placed = build_log(dir.path(), &mut Rng::new(7));
    let files: Vec<PathBuf> = {
        let mut f: Vec<PathBuf> = placed.iter().map(|p| p.file.clone()).collect();
        f.dedup();
        f
    };
    assert!(files.len() >= 3, "the log spans several segments");
    std::fs::remove_file(&files[1]).unwrap();
    let keep = placed.iter().position(|p| p.file == files[1]).unwrap();
    let (log, report) = ReplicatedLog::open(dir.path(), CONFIG).unwrap();
    assert_eq!(log.log_end_offset(), Offset(placed[keep].base));
    assert!(report.deleted_files.contains(&files[2]));
    assert!(!files[2].exists());
}

#[test]
fn corrupt_quorum_state_is_an_error_not_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let file = QuorumStateFile::new(dir.path());
    assert_eq!(file.read().unwrap(), None);
    let state = ElectionState {
        epoch: Epoch(4),
        leader_id: Some(NodeId(2)),
        voted_id: Some(NodeId(2)),
        voted_directory_id: None,
    };
    file.write(&state).unwrap();
    assert_eq!(file.read().unwrap(), Some(state));
    let text = std::fs::read_to_string(file.path()).unwrap();
    assert!(
        !text.contains('\n'),
        "one line, no trailing newline: {text:?}"
    );
    assert!(!dir.path().join("quorum-state.tmp").exists());

    for garbage in [&b"{\"leaderId\":2,"[..], b"\x00\x00\x00", b""] {
        std::fs::write(file.path(), garbage).unwrap();
        let err = file.read().unwrap_err();
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("quorum-state"), "{err}");
    }
}

#[test]
fn corrupt_meta_properties_is_an_error_not_unformatted() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(MetaProperties::read(dir.path()).unwrap(), None);
    let meta = MetaProperties {
        cluster_id: "MkU3OEVBNTcwNTJENDM2Qk".into(),
        node_id: NodeId(1),
        directory_id: Some("b8tRS7h4TJ2Vt43Dp85v2A".parse().unwrap()),
    };
    meta.write(dir.path()).unwrap();
    assert_eq!(MetaProperties::read(dir.path()).unwrap(), Some(meta));
    std::fs::write(dir.path().join("meta.properties"), "version=1\nnode.id=1\n").unwrap();
    let err = MetaProperties::read(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains("meta.properties") && err.to_string().contains("cluster.id"),
        "{err}"
    );
}

/// Size of the only segment file of a log in `dir`.
fn segment_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("00000000000000000000.log"))
        .unwrap()
        .len()
}

#[test]
fn an_epoch_lost_in_a_crash_does_not_truncate_later_flushed_data() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = ReplicatedLog::open(dir.path(), CONFIG).unwrap();
    log.append(batch(0, 4, 10, 10, 0), OffsetPolicy::Validate)
        .unwrap();
    log.flush().unwrap();
    let flushed = segment_len(dir.path());
    // Epoch 5 begins (its checkpoint entry is durable first), then a crash loses its batch.
    log.append(batch(10, 5, 1, 10, 0), OffsetPolicy::Validate)
        .unwrap();
    drop(log);
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("00000000000000000000.log"))
        .unwrap()
        .set_len(flushed)
        .unwrap();
    let (mut log, report) = ReplicatedLog::open(dir.path(), CONFIG).unwrap();
    assert_eq!(log.log_end_offset(), Offset(10));
    assert!(report.rebuilt_epoch_checkpoint.is_some(), "{report:?}");
    // A new leader of epoch 4's lineage sends offsets 10..20, which are flushed.
    log.append(batch(10, 4, 10, 10, 1), OffsetPolicy::Validate)
        .unwrap();
    log.flush().unwrap();
    drop(log);
    let (log, report) = ReplicatedLog::open(dir.path(), CONFIG).unwrap();
    assert_eq!(
        report.truncations,
        vec![],
        "flushed data must survive a clean restart"
    );
    assert_eq!(log.log_end_offset(), Offset(20));
}

#[test]
fn a_crash_inside_truncate_leaves_a_log_recovery_makes_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = ReplicatedLog::open(dir.path(), CONFIG).unwrap();
    log.append(batch(0, 4, 10, 10, 0), OffsetPolicy::Validate)
        .unwrap();
    log.append(batch(10, 5, 3, 10, 0), OffsetPolicy::Validate)
        .unwrap();
    log.flush().unwrap();
    drop(log);
    // truncate_to(10) persists the checkpoint first; a crash then leaves the old batches.
    std::fs::write(dir.path().join("leader-epoch-checkpoint"), "0\n1\n4 0\n").unwrap();
    let (mut log, report) = ReplicatedLog::open(dir.path(), CONFIG).unwrap();
    assert_eq!(log.log_end_offset(), Offset(10), "{report:?}");
    log.append(batch(10, 6, 2, 10, 0), OffsetPolicy::Validate)
        .unwrap();
    log.flush().unwrap();
    drop(log);
    let (log, report) = ReplicatedLog::open(dir.path(), CONFIG).unwrap();
    assert_eq!(report.truncations, vec![]);
    assert_eq!(log.log_end_offset(), Offset(12));
}

/// A one-record batch whose offsets span `i32::MAX + 1` (legal: compaction leaves gaps).
fn sparse_batch(base: i64) -> bytes::Bytes {
    let mut bytes = batch(base, 1, 1, 10, 0).to_vec();
    bytes[23..27].copy_from_slice(&i32::MAX.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    bytes::Bytes::from(bytes)
}

#[test]
fn segments_roll_before_offsets_leave_the_index_range() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = ReplicatedLog::open(dir.path(), LogConfig::default()).unwrap();
    let step = i64::from(i32::MAX) + 1;
    for i in 0..3 {
        log.append(sparse_batch(i * step), OffsetPolicy::Validate)
            .unwrap();
    }
    assert_eq!(
        log.segment_files().len(),
        3,
        "each sparse batch needs its own segment"
    );
    let read = log.read(Offset(step + 5), 1 << 20).unwrap();
    assert_eq!(
        kraft::record::RecordBatch::decode(read)
            .unwrap()
            .base_offset(),
        Offset(step)
    );
    log.flush().unwrap();
    drop(log);
    let (mut log, report) = ReplicatedLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(report.truncations, vec![]);
    assert_eq!(log.log_end_offset(), Offset(3 * step));
    assert_eq!(log.truncate_to(Offset(step + 1)).unwrap(), Offset(step));
}

#[test]
fn batches_with_impossible_offsets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = ReplicatedLog::open(dir.path(), CONFIG).unwrap();
    for base in [-1, i64::MAX - 5] {
        let mut b = batch(0, 1, 10, 10, 0).to_vec();
        b[..8].copy_from_slice(&base.to_be_bytes());
        let err = kraft::record::RecordBatch::decode(bytes::Bytes::from(b.clone())).unwrap_err();
        assert!(
            matches!(err, kraft::record::RecordError::BadOffset { .. }),
            "{err}"
        );
        assert!(
            log.append(bytes::Bytes::from(b), OffsetPolicy::Assign)
                .is_err()
        );
    }
}
