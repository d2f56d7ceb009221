//! Snapshot checkpoint files: a streamed write round-trips through the reader and through
//! kafka-python, an unfinished write leaves nothing that looks like a snapshot, start-up
//! leftovers are removed, chunked reads reassemble the file, and damage is refused cleanly.

mod common;

use bytes::Bytes;
use kraft::storage::{
    SnapshotFile, SnapshotFileWriter, list_snapshots, parse_snapshot_name,
    remove_snapshot_leftovers, snapshot_file_name,
};
use kraft::types::{Epoch, Offset, OffsetAndEpoch};

fn id(offset: i64, epoch: i32) -> OffsetAndEpoch {
    OffsetAndEpoch {
        offset: Offset(offset),
        epoch: Epoch(epoch),
    }
}

fn values(n: usize) -> Vec<Bytes> {
    (0..n)
        .map(|i| Bytes::from(format!("state-{i:06}-{}", "x".repeat(i % 300))))
        .collect()
}

fn write(dir: &std::path::Path, at: OffsetAndEpoch, vals: &[Bytes]) -> std::path::PathBuf {
    let mut w = SnapshotFileWriter::create(dir, at, 1_700_000_000_000).unwrap();
    w.append(vals.iter().cloned()).unwrap();
    w.finish().unwrap()
}

fn read_values(dir: &std::path::Path, at: OffsetAndEpoch) -> Result<Vec<Bytes>, String> {
    let file = SnapshotFile::open(dir, at).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    file.for_each_value(|v| out.push(v))
        .map_err(|e| e.to_string())?;
    Ok(out)
}

#[test]
fn a_streamed_snapshot_reads_back_value_for_value() {
    let dir = tempfile::tempdir().unwrap();
    // About 1.7 MB of values: several data batches between the header and the footer.
    let vals = values(10_000);
    let path = write(dir.path(), id(12_345, 7), &vals);
    assert_eq!(
        path.file_name().unwrap().to_str().unwrap(),
        "00000000000000012345-0000000007.checkpoint"
    );
    assert_eq!(list_snapshots(dir.path()).unwrap(), vec![id(12_345, 7)]);
    assert_eq!(read_values(dir.path(), id(12_345, 7)).unwrap(), vals);
    // An empty state is a valid snapshot too.
    write(dir.path(), id(20_000, 8), &[]);
    assert_eq!(
        read_values(dir.path(), id(20_000, 8)).unwrap(),
        Vec::<Bytes>::new()
    );
    assert_eq!(
        list_snapshots(dir.path()).unwrap(),
        vec![id(12_345, 7), id(20_000, 8)]
    );
}

#[test]
fn kafka_python_reads_a_snapshot_kraft_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let vals = values(3_000);
    let path = write(dir.path(), id(500, 3), &vals);
    let batches = common::run_python("read", &path);
    assert!(batches.len() >= 3, "header, data, footer");
    let first = &batches[0];
    assert_eq!(first["is_control"], true);
    assert_eq!(first["base_offset"], 0);
    assert_eq!(first["records"][0]["control"][1], 3, "SnapshotHeader");
    let last = batches.last().unwrap();
    assert_eq!(last["is_control"], true);
    assert_eq!(last["records"][0]["control"][1], 4, "SnapshotFooter");
    let read: Vec<String> = batches
        .iter()
        .filter(|b| b["is_control"] == false)
        .flat_map(|b| b["records"].as_array().unwrap().clone())
        .map(|r| r["value"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = vals
        .iter()
        .map(|v| v.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    assert_eq!(read, expected);
    // Offsets run on from 0 without gaps.
    let mut next = 0;
    for b in &batches {
        assert_eq!(b["base_offset"], next);
        next += b["last_offset_delta"].as_i64().unwrap() + 1;
    }
}

#[test]
fn an_unfinished_write_leaves_no_snapshot_and_leftovers_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut w = SnapshotFileWriter::create(dir.path(), id(10, 1), 0).unwrap();
        w.append(values(5_000)).unwrap();
        // Dropped without finish: as if the writer failed midway.
    }
    assert!(list_snapshots(dir.path()).unwrap().is_empty());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // A crash leaves a .part (and Kafka leaves .deleted files): start-up removes both, and
    // keeps the finished snapshot.
    let kept = write(dir.path(), id(10, 1), &values(10));
    std::fs::write(
        dir.path()
            .join("00000000000000000020-0000000001.checkpoint.part"),
        b"torn",
    )
    .unwrap();
    std::fs::write(
        dir.path()
            .join("00000000000000000005-0000000001.checkpoint.deleted"),
        b"old",
    )
    .unwrap();
    assert_eq!(remove_snapshot_leftovers(dir.path()).unwrap().len(), 2);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(left, vec![kept]);
    assert_eq!(list_snapshots(dir.path()).unwrap(), vec![id(10, 1)]);
}

#[test]
fn chunks_by_position_reassemble_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), id(99, 2), &values(2_000));
    let whole = std::fs::read(&path).unwrap();
    let file = SnapshotFile::open(dir.path(), id(99, 2)).unwrap();
    assert_eq!(file.size, whole.len() as u64);
    let mut joined = Vec::new();
    while (joined.len() as u64) < file.size {
        joined.extend_from_slice(&file.read_chunk(joined.len() as u64, 65_536).unwrap());
    }
    assert_eq!(joined, whole);
    assert!(file.read_chunk(file.size, 10).unwrap().is_empty());
    assert!(file.read_chunk(file.size + 1, 10).is_err(), "past the end");
}

#[test]
fn every_cut_and_bit_flip_is_refused_without_panicking() {
    let seed = common::test_seed();
    eprintln!("seed {seed} (KRAFT_TEST_SEED={seed} replays it)");
    let mut rng = common::Rng::new(seed);
    let source = tempfile::tempdir().unwrap();
    let path = write(source.path(), id(7, 1), &values(400));
    let whole = std::fs::read(&path).unwrap();
    let name = snapshot_file_name(id(7, 1));
    // Every byte counts, the partition leader epoch (bytes 12..16 of each batch, outside the
    // CRC) included: it must be the snapshot's.
    for round in 0..200 {
        let dir = tempfile::tempdir().unwrap();
        let mut damaged = whole.clone();
        if round % 2 == 0 {
            let cut = (rng.next_u64() % whole.len() as u64) as usize;
            damaged.truncate(cut);
        } else {
            let at = (rng.next_u64() % whole.len() as u64) as usize;
            damaged[at] ^= 1 << (rng.next_u64() % 8);
        }
        std::fs::write(dir.path().join(&name), &damaged).unwrap();
        let result = read_values(dir.path(), id(7, 1));
        assert!(
            result.is_err(),
            "seed {seed} round {round}: damage not detected"
        );
    }
    // The epoch bytes are few among many, so each is also flipped on purpose.
    let mut at = 0;
    while let Ok(Some(size)) = kraft::record::next_batch_size(&whole[at..]) {
        for byte in at + 12..at + 16 {
            let dir = tempfile::tempdir().unwrap();
            let mut damaged = whole.clone();
            damaged[byte] ^= 1 << (rng.next_u64() % 8);
            std::fs::write(dir.path().join(&name), &damaged).unwrap();
            let result = read_values(dir.path(), id(7, 1));
            assert!(
                result.is_err(),
                "seed {seed}: a flip in the epoch at byte {byte} not detected"
            );
        }
        at += size;
    }
    assert!(at > 0, "the snapshot has batches");
}

#[test]
fn snapshot_names_parse_back_and_others_are_ignored() {
    assert_eq!(
        parse_snapshot_name("00000000000000012345-0000000007.checkpoint"),
        Some(id(12_345, 7))
    );
    for other in [
        "00000000000000012345-0000000007.checkpoint.part",
        "00000000000000000000.log",
        "12345-7.checkpoint",
        "leader-epoch-checkpoint",
    ] {
        assert_eq!(parse_snapshot_name(other), None, "{other}");
    }
}

#[test]
fn a_fetch_in_progress_is_found_after_a_restart_and_others_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(kraft::storage::fetched_so_far(dir.path()).unwrap(), None);
    kraft::storage::write_partial_chunk(dir.path(), id(50, 2), 0, b"0123456789").unwrap();
    kraft::storage::write_partial_chunk(dir.path(), id(50, 2), 10, b"abc").unwrap();
    assert_eq!(
        kraft::storage::fetched_so_far(dir.path()).unwrap(),
        Some((id(50, 2), 13))
    );
    // Start-up cleanup of torn local writes keeps a fetch in progress.
    remove_snapshot_leftovers(dir.path()).unwrap();
    assert_eq!(
        kraft::storage::fetched_so_far(dir.path()).unwrap(),
        Some((id(50, 2), 13))
    );
    // A transfer of another snapshot drops it.
    kraft::storage::remove_other_fetches(dir.path(), id(70, 3)).unwrap();
    assert_eq!(kraft::storage::fetched_so_far(dir.path()).unwrap(), None);
}

/// A dynamic quorum's snapshot holds its KRaftVersion and Voters records in the header batch,
/// right after the SnapshotHeader, and the data reads back the same; a static quorum's holds
/// the SnapshotHeader alone there, as before.
#[test]
fn voter_records_follow_the_header_and_none_change_nothing() {
    use kraft::record::{
        ControlRecord, KRaftVersionRecord, SnapshotHeaderRecord, VoterEndpoint, VoterRecord,
        VotersRecord,
    };
    let dir = tempfile::tempdir().unwrap();
    let fs = kraft::storage::real_fs();
    let control = vec![
        ControlRecord::KRaftVersion(KRaftVersionRecord {
            version: 0,
            kraft_version: 1,
        }),
        ControlRecord::Voters(VotersRecord {
            version: 0,
            voters: vec![VoterRecord {
                voter_id: 3,
                voter_directory_id: kraft::uuid::Uuid([3; 16]),
                endpoints: vec![VoterEndpoint {
                    name: "CONTROLLER".into(),
                    host: "localhost".into(),
                    port: 9093,
                }],
                min_supported_kraft_version: 0,
                max_supported_kraft_version: 1,
            }],
        }),
    ];
    let at = id(500, 4);
    let vals = values(50);
    let mut w = SnapshotFileWriter::create_with_control_in(
        &fs,
        dir.path(),
        at,
        1_700_000_000_000,
        &control,
    )
    .unwrap();
    w.append(vals.iter().cloned()).unwrap();
    w.finish().unwrap();
    let head = SnapshotFile::open(dir.path(), at)
        .unwrap()
        .leading_control_records()
        .unwrap();
    let mut expected = vec![ControlRecord::SnapshotHeader(SnapshotHeaderRecord {
        version: 0,
        last_contained_log_timestamp: 1_700_000_000_000,
    })];
    expected.extend(control);
    assert_eq!(head, expected);
    assert_eq!(read_values(dir.path(), at).unwrap(), vals);

    // A static quorum's snapshot: the header batch holds the SnapshotHeader alone.
    let plain = tempfile::tempdir().unwrap();
    write(plain.path(), at, &vals);
    let head = SnapshotFile::open(plain.path(), at)
        .unwrap()
        .leading_control_records()
        .unwrap();
    assert_eq!(head, expected[..1]);
}
