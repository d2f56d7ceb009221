//! Crash recovery: a torn end of the last segment is cut back to exactly the valid prefix; any
//! other damage (cuts and bit flips before the end, missing or empty middle segments) is refused
//! naming the file and byte position, with every file left as it was; damaged indexes and epoch
//! checkpoints are rebuilt; damaged state files are errors, never silent resets.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{Rng, batch, read_all, test_seed};
use kraft::storage::{
    ElectionState, LogConfig, MetaProperties, OffsetPolicy, QuorumStateFile, ReplicatedLog,
    StorageError,
};
use kraft::types::{Epoch, NodeId, Offset, OffsetAndEpoch};

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

/// Every file under `dir` with its bytes.
fn dir_bytes(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect()
}

/// Opening `dir` is refused with damage named at (`file`, `position`), and changes nothing.
fn check_refused(dir: &Path, file: &Path, position: u64, ctx: &str) {
    let before = dir_bytes(dir);
    match ReplicatedLog::open(dir, CONFIG) {
        Err(StorageError::Damaged(damage)) => {
            assert_eq!(damage.file, file, "{ctx}: {damage}");
            assert_eq!(damage.position, position, "{ctx}: {damage}");
            let line = damage.to_string();
            assert!(
                line.contains(&file.display().to_string()) && !line.contains('\n'),
                "{ctx}: {line}"
            );
        }
        other => panic!("{ctx}: expected damage to be refused, got {other:?}"),
    }
    assert!(dir_bytes(dir) == before, "{ctx}: recovery changed a file");
}

fn last_segment(placed: &[Placed]) -> &Path {
    &placed.last().unwrap().file
}

#[test]
fn a_cut_last_segment_loses_only_its_torn_tail_and_a_cut_earlier_one_is_refused() {
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
        let what = format!("seed {seed}: cut {} at {cut}", file.display());
        let keep = first_damaged(&placed, &file, cut, true).unwrap_or(placed.len());
        if file == last_segment(&placed) || keep == placed.len() {
            let repaired = placed.get(keep).is_some_and(|p| p.position < cut);
            check_recovered(dir.path(), &placed, keep, repaired, seed, &what);
        } else if cut == 0 {
            check_refused(dir.path(), &file, 0, &what);
        } else if placed[keep].position < cut {
            // A torn batch in a segment that others follow.
            check_refused(dir.path(), &file, placed[keep].position, &what);
        } else {
            // Cut at a batch boundary: the next segment no longer continues the log.
            let next = placed[keep..].iter().find(|p| p.file != file).unwrap();
            check_refused(dir.path(), &next.file, 0, &what);
        }
    }
}

#[test]
fn a_bit_flip_is_refused_unless_it_is_in_the_last_batch_of_the_log() {
    let base_seed = test_seed();
    for i in 0..300 {
        let seed = base_seed.wrapping_add(i);
        let mut rng = Rng::new(seed);
        let dir = tempfile::tempdir().unwrap();
        let placed = build_log(dir.path(), &mut rng);
        let index = rng.below(placed.len() as u64) as usize;
        let victim = &placed[index];
        let within = rng.below(victim.bytes.len() as u64);
        let position = victim.position + within;
        let bit = rng.below(8) as u8;
        let mut data = std::fs::read(&victim.file).unwrap();
        data[position as usize] ^= 1 << bit;
        std::fs::write(&victim.file, &data).unwrap();
        let what = format!(
            "seed {seed}: flip bit {bit} of byte {position} in {}",
            victim.file.display()
        );
        // The base offset and the epoch lie outside the CRC. A batch whose offset rotted is
        // whole and checksummed, so it cannot be a torn write, even at the end; a last batch
        // whose epoch rose looks exactly like the end of an interrupted truncation.
        let epoch_at =
            |bytes: &[u8], at: usize| i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        let raised = epoch_at(&data, victim.position as usize + 12) > epoch_at(&victim.bytes, 12);
        let torn_tail = index + 1 == placed.len()
            && match within {
                0..8 => false,
                12..16 => raised,
                _ => true,
            };
        if torn_tail {
            check_recovered(dir.path(), &placed, index, true, seed, &what);
        } else {
            check_refused(dir.path(), &victim.file, victim.position, &what);
        }
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
fn a_missing_middle_segment_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let placed = build_log(dir.path(), &mut Rng::new(7));
    let files: Vec<PathBuf> = {
        let mut f: Vec<PathBuf> = placed.iter().map(|p| p.file.clone()).collect();
        f.dedup();
        f
    };
    assert!(files.len() >= 3, "the log spans several segments");
    std::fs::remove_file(&files[1]).unwrap();
    check_refused(dir.path(), &files[2], 0, "missing middle segment");
}

#[test]
fn an_empty_middle_segment_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let placed = build_log(dir.path(), &mut Rng::new(8));
    let mut files: Vec<PathBuf> = placed.iter().map(|p| p.file.clone()).collect();
    files.dedup();
    assert!(files.len() >= 3, "the log spans several segments");
    std::fs::write(&files[1], b"").unwrap();
    check_refused(dir.path(), &files[1], 0, "empty middle segment");
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

/// `storage repair` of refused damage: recovery then opens the log holding exactly the batches
/// before the damage; nothing is lost from disk (every original file is in place, cut to a
/// prefix, or kept whole aside); the repair point is the end the files showed.
#[test]
fn repair_sets_damage_aside_keeps_the_valid_prefix_and_records_the_old_end() {
    let base_seed = test_seed();
    let fs = kraft::storage::real_fs();
    for i in 0..100 {
        let seed = base_seed.wrapping_add(i);
        let mut rng = Rng::new(seed);
        let dir = tempfile::tempdir().unwrap();
        let placed = build_log(dir.path(), &mut rng);
        // Any batch but the last (whose damage is a torn tail, or has nothing after it).
        let index = rng.below(placed.len() as u64 - 1) as usize;
        let victim = &placed[index];
        let position = victim.position + rng.below(victim.bytes.len() as u64);
        let mut data = std::fs::read(&victim.file).unwrap();
        data[position as usize] ^= 1 << rng.below(8);
        std::fs::write(&victim.file, &data).unwrap();
        let before = dir_bytes(dir.path());
        let what = format!("seed {seed}: byte {position} of {}", victim.file.display());

        let report = kraft::storage::repair_partition_in(&fs, dir.path(), 1).unwrap();
        assert!(!report.found.is_empty(), "{what}");
        let last =
            kraft::record::RecordBatch::decode(placed.last().unwrap().bytes.clone()).unwrap();
        assert_eq!(
            report.repair_point,
            Some(OffsetAndEpoch {
                offset: last.next_offset(),
                epoch: last.epoch()
            }),
            "{what}"
        );
        let aside = dir.path().join("damaged-1");
        for (file, bytes) in &before {
            let kept_aside = std::fs::read(aside.join(file.file_name().unwrap())).ok();
            let in_place = std::fs::read(file).ok();
            let whole = kept_aside.as_ref() == Some(bytes) || in_place.as_ref() == Some(bytes);
            assert!(whole, "{what}: {} was not kept whole", file.display());
            if let (Some(now), None) = (&in_place, &kept_aside) {
                assert_eq!(now, bytes, "{what}: {} changed", file.display());
            }
        }
        let (log, _) = ReplicatedLog::open(dir.path(), CONFIG).unwrap();
        let expected: Vec<u8> = placed[..index]
            .iter()
            .flat_map(|p| p.bytes.to_vec())
            .collect();
        assert_eq!(read_all(&log), expected, "{what}");
    }
}
