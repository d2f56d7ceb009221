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

// ---- review: holes found by a hostile reading -------------------------------------------------

/// A log of ten 5-record batches, epochs 1 (offsets 0..25) then 3 (offsets 25..50), flushed.
/// Returns the segment path and each batch's (position, bytes).
fn two_epoch_log(dir: &Path) -> (PathBuf, Vec<(u64, bytes::Bytes)>) {
    let (mut log, _) = ReplicatedLog::open(dir, LogConfig::default()).unwrap();
    let mut placed = Vec::new();
    let mut position = 0;
    for i in 0..10 {
        let epoch = if i < 5 { 1 } else { 3 };
        let b = batch(i * 5, epoch, 5, 20, i as u8);
        log.append(b.clone(), OffsetPolicy::Validate).unwrap();
        placed.push((position, b.clone()));
        position += b.len() as u64;
    }
    log.flush().unwrap();
    (log.segment_files()[0].clone(), placed)
}

/// One bit of the leader-epoch-checkpoint rots ('3' -> '2' in "3 25"): the file still parses.
/// The epoch-3 batches that follow must not pass for the tail of a truncation the node had
/// begun (they do not follow the checkpoint's last epoch): recovery keeps them or refuses,
/// never silently cuts durable records.
#[test]
fn a_rotted_checkpoint_epoch_does_not_cut_durable_records() {
    let dir = tempfile::tempdir().unwrap();
    let (_, placed) = two_epoch_log(dir.path());
    let all: Vec<u8> = placed.iter().flat_map(|(_, b)| b.to_vec()).collect();
    let checkpoint = dir.path().join("leader-epoch-checkpoint");
    let text = std::fs::read_to_string(&checkpoint).unwrap();
    assert_eq!(text, "0\n2\n1 0\n3 25\n");
    let mut bytes = text.into_bytes();
    let at = bytes.len() - 5; // the '3' of "3 25"
    bytes[at] ^= 0b1; // '3' (0x33) -> '2' (0x32)
    std::fs::write(&checkpoint, &bytes).unwrap();
    let before = dir_bytes(dir.path());

    match ReplicatedLog::open(dir.path(), LogConfig::default()) {
        Ok((log, report)) => {
            assert_eq!(
                (log.log_end_offset(), read_all(&log) == all),
                (Offset(50), true),
                "recovery cut durable records after a checkpoint bit flip: {report:?}"
            );
        }
        Err(StorageError::Damaged(_)) => {
            assert!(dir_bytes(dir.path()) == before, "a refusal changed files");
        }
        Err(e) => panic!("{e}"),
    }
}

/// The sign bit of the last batch's base offset rots (outside the CRC). The batch is whole and
/// its CRC holds, so it cannot be a torn write: recovery refuses it rather than cutting it.
#[test]
fn a_rotted_base_offset_sign_bit_in_the_last_batch_is_refused_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, placed) = two_epoch_log(dir.path());
    let (position, _) = *placed.last().unwrap();
    let mut data = std::fs::read(&segment).unwrap();
    data[position as usize] ^= 0x80;
    std::fs::write(&segment, &data).unwrap();
    check_refused(
        dir.path(),
        &segment,
        position,
        "sign bit of the last base offset",
    );
}

/// The epoch of the last batch rots downwards (3 -> 1, outside the CRC): recovery refuses, and
/// the repair point covers that whole, checksummed batch (offsets up to 50), so the repaired
/// node, whose log then ends at 45, does not vote before it has those offsets again.
#[test]
fn repair_of_a_rejected_last_batch_records_the_end_it_shows() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, placed) = two_epoch_log(dir.path());
    let (position, _) = *placed.last().unwrap();
    let mut data = std::fs::read(&segment).unwrap();
    data[position as usize + 15] ^= 0b10; // epoch 3 -> 1
    std::fs::write(&segment, &data).unwrap();
    check_refused(
        dir.path(),
        &segment,
        position,
        "epoch of the last batch rotted down",
    );

    let fs = kraft::storage::real_fs();
    let report = kraft::storage::repair_partition_in(&fs, dir.path(), 1).unwrap();
    let (log, _) = ReplicatedLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), Offset(45));
    assert_eq!(
        report.repair_point,
        Some(OffsetAndEpoch {
            offset: Offset(50),
            epoch: Epoch(3)
        }),
        "the repair point must cover the whole batch the segment shows: {report:?}"
    );
}

/// A follower that installed a snapshot at 100 and then appended: both its snapshot and its
/// (first and only) segment rot. Repair copies the segment aside and cuts it, moves the
/// snapshot aside, then finds the log start uncovered and moves the cut segment aside too: the
/// whole copy from the first round must survive that second move of a file of the same name.
#[test]
fn repair_keeps_a_whole_copy_of_a_segment_it_cut_and_later_moved() {
    let dir = tempfile::tempdir().unwrap();
    let id = OffsetAndEpoch {
        offset: Offset(100),
        epoch: Epoch(2),
    };
    let mut w = kraft::storage::SnapshotFileWriter::create(dir.path(), id, 0).unwrap();
    w.append([bytes::Bytes::from_static(b"state")]).unwrap();
    let snapshot = w.finish().unwrap();
    let (mut log, _) = ReplicatedLog::open(dir.path(), LogConfig::default()).unwrap();
    log.reset_to(id).unwrap();
    for i in 0..10 {
        log.append(
            batch(100 + i * 5, 2, 5, 20, i as u8),
            OffsetPolicy::Validate,
        )
        .unwrap();
    }
    log.flush().unwrap();
    let segment = log.segment_files()[0].clone();
    drop(log);
    ReplicatedLog::open(dir.path(), LogConfig::default()).unwrap();
    // Rot in the middle of the segment, and in the snapshot.
    let mut data = std::fs::read(&segment).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 1;
    std::fs::write(&segment, &data).unwrap();
    let mut snap = std::fs::read(&snapshot).unwrap();
    let last = snap.len() - 3;
    snap[last] ^= 1;
    std::fs::write(&snapshot, &snap).unwrap();

    let fs = kraft::storage::real_fs();
    let report = kraft::storage::repair_partition_in(&fs, dir.path(), 1).unwrap();
    let aside = dir.path().join("damaged-1");
    let kept = [segment.clone(), aside.join(segment.file_name().unwrap())]
        .iter()
        .any(|p| std::fs::read(p).ok() == Some(data.clone()));
    assert!(
        kept,
        "the rotted segment (whole, as it was) is nowhere on disk any more: {report:?}"
    );
}

/// A `repair-point` that cannot be read is refused before recovery writes anything: the torn
/// tail, the stale `*.tmp` and the orphan index are all still there afterwards.
#[test]
fn an_unreadable_repair_point_is_refused_before_any_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, _) = two_epoch_log(dir.path());
    // A torn append at the end, leftovers of an interrupted write, an orphan index.
    let mut data = std::fs::read(&segment).unwrap();
    data.extend_from_slice(&[0xab; 30]);
    std::fs::write(&segment, &data).unwrap();
    std::fs::write(dir.path().join("quorum-state.tmp"), b"half").unwrap();
    std::fs::write(dir.path().join("00000000000000000777.index"), b"orphan").unwrap();
    std::fs::write(dir.path().join("repair-point"), b"{\"version\":0,\"endOff").unwrap();
    let before = dir_bytes(dir.path());

    let fs = kraft::storage::real_fs();
    let result = kraft::executor::LogExecutor::open(&fs, dir.path(), LogConfig::default());
    assert!(
        result.is_err(),
        "an unreadable repair-point must stop the node"
    );
    let after = dir_bytes(dir.path());
    let changed: std::collections::BTreeSet<_> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .collect();
    assert!(changed.is_empty(), "refused, but changed {changed:?}");
}

/// A power loss where writeback of the *unflushed* end of the last segment reached the disk
/// out of order (a drive's volatile cache reorders writes): a page in the middle of the
/// never-fsynced region reads as zeros, later pages arrived. Valid batches after damage are
/// what rot before the tail looks like too, so recovery refuses (a false alarm here, and a
/// documented limitation: telling the two apart would need the durable point on disk); repair
/// cuts at the hole and keeps every flushed batch.
#[test]
fn out_of_order_writeback_of_an_unflushed_tail_is_refused_and_repair_keeps_the_flushed_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = ReplicatedLog::open(dir.path(), LogConfig::default()).unwrap();
    for i in 0..3 {
        log.append(batch(i * 5, 1, 5, 200, i as u8), OffsetPolicy::Validate)
            .unwrap();
    }
    log.flush().unwrap();
    let flushed = log.flushed_offset();
    let segment = log.segment_files()[0].clone();
    let flushed_bytes = std::fs::metadata(&segment).unwrap().len();
    assert!(flushed_bytes < 4096);
    for i in 3..16 {
        log.append(batch(i * 5, 1, 5, 200, i as u8), OffsetPolicy::Validate)
            .unwrap();
    }
    drop(log); // never flushed: nothing past `flushed` was acknowledged
    let mut data = std::fs::read(&segment).unwrap();
    assert!(data.len() > 3 * 4096);
    data[4096..8192].fill(0); // that page never reached the platter; the next ones did
    std::fs::write(&segment, &data).unwrap();

    assert!(matches!(
        ReplicatedLog::open(dir.path(), LogConfig::default()),
        Err(StorageError::Damaged(_))
    ));
    let fs = kraft::storage::real_fs();
    let report = kraft::storage::repair_partition_in(&fs, dir.path(), 1).unwrap();
    assert_eq!(report.repair_point.map(|p| p.offset), Some(Offset(80)));
    let (log, _) = ReplicatedLog::open(dir.path(), LogConfig::default()).unwrap();
    assert!(log.log_end_offset() >= flushed);
}

/// A record's value is opaque bytes (`NodeHandle::append` takes any `Vec<Bytes>`); one may hold
/// an encoded batch. When a crash tears the last, unacknowledged batch that carries it, the
/// search for valid batches past the damage must not take the one inside the value for the log
/// going on: the torn tail is cut and the node starts.
#[test]
fn a_torn_last_batch_whose_value_holds_a_batch_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = ReplicatedLog::open(dir.path(), LogConfig::default()).unwrap();
    log.append(batch(0, 1, 5, 20, 0), OffsetPolicy::Validate)
        .unwrap();
    log.flush().unwrap();
    let flushed_len = std::fs::metadata(&log.segment_files()[0]).unwrap().len();
    // The value: a batch some client stores, followed by more of its data.
    let mut value = batch(1000, 1, 1, 10, 7).to_vec();
    value.extend_from_slice(&[0x55; 500]);
    let mut b =
        kraft::record::BatchBuilder::new(kraft::record::BatchKind::Data, Offset(5), Epoch(1));
    b.append(1_700_000_000_000, None, Some(&value), &[])
        .unwrap();
    log.append(b.build().unwrap(), OffsetPolicy::Validate)
        .unwrap();
    drop(log); // not flushed, not acknowledged
    let segment = dir.path().join("00000000000000000000.log");
    let len = std::fs::metadata(&segment).unwrap().len();
    // The crash tore the last 200 bytes of the append off.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 200)
        .unwrap();
    match ReplicatedLog::open(dir.path(), LogConfig::default()) {
        Ok((log, _)) => {
            assert_eq!(log.log_end_offset(), Offset(5));
            assert_eq!(std::fs::metadata(&segment).unwrap().len(), flushed_len);
        }
        Err(e) => panic!("an ordinary torn append stops the node: {e}"),
    }
}

/// The same search sets the repair point: when the batch carrying such a value (here a batch
/// of epoch i32::MAX at offset 100) is itself the damaged one, the batch in its value must not
/// become "the end the node had", which no real log would ever reach.
#[test]
fn a_batch_inside_a_record_value_does_not_become_the_repair_point() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = ReplicatedLog::open(dir.path(), LogConfig::default()).unwrap();
    for i in 0..4 {
        log.append(batch(i * 5, 1, 5, 20, i as u8), OffsetPolicy::Validate)
            .unwrap();
    }
    let value = batch(100, i32::MAX, 1, 10, 7).to_vec();
    let mut b =
        kraft::record::BatchBuilder::new(kraft::record::BatchKind::Data, Offset(20), Epoch(1));
    b.append(1_700_000_000_000, None, Some(&value), &[])
        .unwrap();
    log.append(b.build().unwrap(), OffsetPolicy::Validate)
        .unwrap();
    log.append(batch(21, 1, 5, 20, 9), OffsetPolicy::Validate)
        .unwrap();
    log.flush().unwrap();
    let segment = log.segment_files()[0].clone();
    drop(log);
    // Rot in the header of the batch carrying the value (its attributes, under the CRC).
    let mut data = std::fs::read(&segment).unwrap();
    data[4 * 196 + 22] ^= 1;
    std::fs::write(&segment, &data).unwrap();

    let fs = kraft::storage::real_fs();
    let report = kraft::storage::repair_partition_in(&fs, dir.path(), 1).unwrap();
    assert_eq!(
        report.repair_point,
        Some(OffsetAndEpoch {
            offset: Offset(26),
            epoch: Epoch(1)
        }),
        "{report:?}"
    );
}

/// One rotted digit of an epoch's start offset in the checkpoint ("3 25" -> "3 27") still
/// parses, and then a checkpoint and intact batches disagree. Either could be the rotted one
/// (a batch's epoch lies outside its CRC), so recovery refuses, naming both. Repair treats the
/// batch as damaged (the quorum has it) and sets the checkpoint aside as well; recovery then
/// rebuilds the checkpoint from the batches before the cut, which it had vouched for.
#[test]
fn a_checkpoint_that_disagrees_with_intact_batches_is_refused_and_repair_cuts_there() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, placed) = two_epoch_log(dir.path());
    let checkpoint = dir.path().join("leader-epoch-checkpoint");
    let mut bytes = std::fs::read(&checkpoint).unwrap();
    let at = bytes.len() - 2; // the '5' of "3 25"
    bytes[at] ^= 0b10; // '5' -> '7'
    std::fs::write(&checkpoint, &bytes).unwrap();
    assert_eq!(bytes, b"0\n2\n1 0\n3 27\n");
    let before = dir_bytes(dir.path());
    match ReplicatedLog::open(dir.path(), LogConfig::default()) {
        Err(StorageError::Damaged(d)) => {
            assert_eq!((&d.file, d.position), (&segment, placed[5].0));
            assert_eq!(d.also_suspect, Some(checkpoint.clone()));
            assert!(
                d.to_string().contains("leader-epoch-checkpoint is damaged"),
                "{d}"
            );
        }
        other => panic!("expected a refusal: {other:?}"),
    }
    assert!(dir_bytes(dir.path()) == before);
    let fs = kraft::storage::real_fs();
    let report = kraft::storage::repair_partition_in(&fs, dir.path(), 1).unwrap();
    assert_eq!(report.moved, vec![checkpoint.clone()], "{report:?}");
    assert_eq!(report.cut, vec![(segment, placed[5].0)], "{report:?}");
    assert_eq!(report.repair_point.map(|p| p.offset), Some(Offset(50)));
    let first_five: Vec<u8> = placed[..5].iter().flat_map(|(_, b)| b.to_vec()).collect();
    let (log, _) = ReplicatedLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(read_all(&log), first_five);
    assert_eq!(std::fs::read_to_string(&checkpoint).unwrap(), "0\n1\n1 0\n");
}
