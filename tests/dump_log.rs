//! `kraft dump-log` against files built here deterministically (fixed timestamps, offsets and
//! epochs): its stdout must be, byte for byte, what Kafka's kafka-dump-log.sh prints for the
//! same files (lines in the format of Kafka's DumpLogSegments), and its failures one clear line.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bytes::Bytes;
use kraft::record::{
    BatchBuilder, BatchKind, ControlRecord, KRaftVersionRecord, LeaderChangeMessage, RecordHeader,
    VoterEndpoint, VoterRecord, VotersRecord,
};
use kraft::storage::{SnapshotFileWriter, write_bootstrap_checkpoint};
use kraft::types::{Epoch, Offset, OffsetAndEpoch};
use kraft::uuid::Uuid;

/// 2023-11-14T22:13:20Z: every record's timestamp derives from it.
const T0: i64 = 1_700_000_000_000;
const SEGMENT: &str = "00000000000000000000.log";

fn dump(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kraft"))
        .arg("dump-log")
        .args(args)
        .output()
        .expect("run kraft dump-log")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("utf-8 stderr")
}

fn leader_change(base: i64, epoch: i32) -> Bytes {
    let mut b = BatchBuilder::new(BatchKind::Control, Offset(base), Epoch(epoch));
    let record = ControlRecord::LeaderChange(LeaderChangeMessage {
        version: 0,
        leader_id: 1,
        voters: vec![1, 2, 3],
        granting_voters: vec![1, 2],
    });
    b.append_control(T0, &record).unwrap();
    b.build().unwrap()
}

fn data_batch(base: i64, epoch: i32) -> Bytes {
    let mut b = BatchBuilder::new(BatchKind::Data, Offset(base), Epoch(epoch));
    let header = RecordHeader {
        key: "h1".into(),
        value: Some(Bytes::from_static(b"x")),
    };
    b.append(T0 + 1, Some(b"k1"), Some(b"hello"), &[header])
        .unwrap();
    b.append(T0 + 2, None, Some(b"world"), &[]).unwrap();
    b.build().unwrap()
}

fn voters() -> VotersRecord {
    VotersRecord {
        version: 0,
        voters: vec![VoterRecord {
            voter_id: 1,
            voter_directory_id: Uuid([7; 16]),
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

fn kraft_version_and_voters(base: i64, epoch: i32) -> Bytes {
    let mut b = BatchBuilder::new(BatchKind::Control, Offset(base), Epoch(epoch));
    let version = ControlRecord::KRaftVersion(KRaftVersionRecord {
        version: 0,
        kraft_version: 1,
    });
    b.append_control(T0 + 3, &version).unwrap();
    b.append_control(T0 + 3, &ControlRecord::Voters(voters()))
        .unwrap();
    b.build().unwrap()
}

/// A data batch whose records section is gzip-compressed (stored blocks, so the bytes do not
/// depend on the compressor's heuristics), as a Kafka client could send it.
fn gzip_batch(base: i64, epoch: i32) -> Bytes {
    let mut b = BatchBuilder::new(BatchKind::Data, Offset(base), Epoch(epoch));
    b.append(T0 + 4, Some(b"gk"), Some(b"zipped"), &[]).unwrap();
    b.append(T0 + 5, None, None, &[]).unwrap();
    let plain = b.build().unwrap();
    let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::none());
    gz.write_all(&plain[61..]).unwrap();
    let body = gz.finish().unwrap();
    let mut batch = plain[..61].to_vec();
    batch.extend_from_slice(&body);
    let length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    batch[21..23].copy_from_slice(&1i16.to_be_bytes()); // attributes: gzip
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(batch)
}

/// The segment every test starts from: a LeaderChange, a data batch, the kraft.version and
/// voters control batch, a gzip batch.
fn segment_bytes() -> Vec<u8> {
    [
        leader_change(0, 1),
        data_batch(1, 1),
        kraft_version_and_voters(3, 1),
        gzip_batch(5, 1),
    ]
    .concat()
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Runs `kraft dump-log` in `dir`, so the file names it prints are the relative ones given.
fn dump_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kraft"))
        .current_dir(dir)
        .arg("dump-log")
        .args(args)
        .output()
        .expect("run kraft dump-log")
}

fn snapshot_files(dir: &Path) -> (String, String) {
    let bootstrap = write_bootstrap_checkpoint(dir, voters(), T0).unwrap();
    let id = OffsetAndEpoch {
        offset: Offset(7),
        epoch: Epoch(1),
    };
    let mut w = SnapshotFileWriter::create(dir, id, T0 + 6).unwrap();
    w.append([
        Bytes::from_static(b"state-a"),
        Bytes::from_static(b"state-b"),
    ])
    .unwrap();
    let data = w.finish().unwrap();
    let name = |p: PathBuf| p.file_name().unwrap().to_str().unwrap().to_string();
    (name(bootstrap), name(data))
}

/// A transactional producer's batch (producer id 42, epoch 3, sequences from `i32::MAX`, so they
/// wrap) with LogAppendTime, then its COMMIT marker: fields kraft's own leader never writes.
fn producer_segment(base: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchKind::Data, Offset(base), Epoch(2));
    b.append(T0 + 10, Some(b"a"), Some(b"1"), &[]).unwrap();
    b.append(T0 + 11, Some(b"b"), Some(b"2"), &[]).unwrap();
    let mut data = b.build().unwrap().to_vec();
    data[21..23].copy_from_slice(&(0x08i16 | 0x10).to_be_bytes()); // LogAppendTime, transactional
    data[35..43].copy_from_slice(&(T0 + 20).to_be_bytes()); // maxTimestamp: the append time
    data[43..51].copy_from_slice(&42i64.to_be_bytes());
    data[51..53].copy_from_slice(&3i16.to_be_bytes());
    data[53..57].copy_from_slice(&i32::MAX.to_be_bytes());
    reseal(&mut data);
    // The marker follows a gap in the offsets, as a transaction's markers can.
    let mut m = BatchBuilder::new(BatchKind::Control, Offset(base + 5), Epoch(2));
    let commit = ControlRecord::Unknown {
        record_type: 1,
        value: Bytes::from_static(&[0, 0, 0, 0, 0, 5]),
    };
    m.append_control(T0 + 21, &commit).unwrap();
    let mut marker = m.build().unwrap().to_vec();
    marker[21..23].copy_from_slice(&(0x20i16 | 0x10).to_be_bytes());
    marker[43..51].copy_from_slice(&42i64.to_be_bytes());
    marker[51..53].copy_from_slice(&3i16.to_be_bytes());
    reseal(&mut marker);
    [data, marker].concat()
}

fn reseal(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Asserts a run's exit code, stdout and stderr, showing the actual text on a mismatch.
#[track_caller]
fn check(out: &Output, code: i32, expected_stdout: &str, expected_stderr: &str) {
    let (actual_out, actual_err) = (stdout(out), stderr(out));
    assert!(
        out.status.code() == Some(code)
            && actual_out == expected_stdout
            && actual_err == expected_stderr,
        "exit {:?} (expected {code})\n--- stdout:\n{actual_out}--- stderr:\n{actual_err}---",
        out.status.code()
    );
}

#[test]
fn a_segment_prints_one_line_per_batch() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), SEGMENT, &segment_bytes());
    let out = dump_in(dir.path(), &["--files", SEGMENT]);
    check(
        &out,
        0,
        r#"Dumping 00000000000000000000.log
Log starting offset: 0
baseOffset: 0 lastOffset: 0 count: 1 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000000 size: 106 magic: 2 compresscodec: none crc: 389393195 isvalid: true
baseOffset: 1 lastOffset: 2 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 106 CreateTime: 1700000000002 size: 92 magic: 2 compresscodec: none crc: 783116327 isvalid: true
baseOffset: 3 lastOffset: 4 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 198 CreateTime: 1700000000003 size: 144 magic: 2 compresscodec: none crc: 1608372821 isvalid: true
baseOffset: 5 lastOffset: 6 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 342 CreateTime: 1700000000005 size: 106 magic: 2 compresscodec: gzip crc: 3030020597 isvalid: true
"#,
        "",
    );
}

#[test]
fn deep_iteration_prints_records_and_decodes_control_records() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), SEGMENT, &segment_bytes());
    let out = dump_in(dir.path(), &["--files", SEGMENT, "--deep-iteration"]);
    check(
        &out,
        0,
        r#"Dumping 00000000000000000000.log
Log starting offset: 0
baseOffset: 0 lastOffset: 0 count: 1 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000000 size: 106 magic: 2 compresscodec: none crc: 389393195 isvalid: true
| offset: 0 CreateTime: 1700000000000 keySize: 4 valueSize: 34 sequence: -1 headerKeys: [] LeaderChange: {"version":0,"leaderId":1,"voters":[{"voterId":1},{"voterId":2},{"voterId":3}],"grantingVoters":[{"voterId":1},{"voterId":2}]}
baseOffset: 1 lastOffset: 2 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 106 CreateTime: 1700000000002 size: 92 magic: 2 compresscodec: none crc: 783116327 isvalid: true
| offset: 1 CreateTime: 1700000000001 keySize: 2 valueSize: 5 sequence: -1 headerKeys: [h1]
| offset: 2 CreateTime: 1700000000002 keySize: -1 valueSize: 5 sequence: -1 headerKeys: []
baseOffset: 3 lastOffset: 4 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 198 CreateTime: 1700000000003 size: 144 magic: 2 compresscodec: none crc: 1608372821 isvalid: true
| offset: 3 CreateTime: 1700000000003 keySize: 4 valueSize: 5 sequence: -1 headerKeys: [] KRaftVersion {"version":0,"kRaftVersion":1}
| offset: 4 CreateTime: 1700000000003 keySize: 4 valueSize: 55 sequence: -1 headerKeys: [] KRaftVoters {"version":0,"voters":[{"voterId":1,"voterDirectoryId":"BwcHBwcHBwcHBwcHBwcHBw","endpoints":[{"name":"CONTROLLER","host":"localhost","port":9093}],"kRaftVersionFeature":{"minSupportedVersion":0,"maxSupportedVersion":1}}]}
baseOffset: 5 lastOffset: 6 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 342 CreateTime: 1700000000005 size: 106 magic: 2 compresscodec: gzip crc: 3030020597 isvalid: true
| offset: 5 CreateTime: 1700000000004 keySize: 2 valueSize: 6 sequence: -1 headerKeys: []
| offset: 6 CreateTime: 1700000000005 keySize: -1 valueSize: -1 sequence: -1 headerKeys: []
"#,
        "",
    );
}

#[test]
fn print_data_adds_keys_and_payloads_of_data_records() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), SEGMENT, &segment_bytes());
    let out = dump_in(dir.path(), &["--files", SEGMENT, "--print-data"]);
    check(
        &out,
        0,
        r#"Dumping 00000000000000000000.log
Log starting offset: 0
baseOffset: 0 lastOffset: 0 count: 1 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000000 size: 106 magic: 2 compresscodec: none crc: 389393195 isvalid: true
| offset: 0 CreateTime: 1700000000000 keySize: 4 valueSize: 34 sequence: -1 headerKeys: [] LeaderChange: {"version":0,"leaderId":1,"voters":[{"voterId":1},{"voterId":2},{"voterId":3}],"grantingVoters":[{"voterId":1},{"voterId":2}]}
baseOffset: 1 lastOffset: 2 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 106 CreateTime: 1700000000002 size: 92 magic: 2 compresscodec: none crc: 783116327 isvalid: true
| offset: 1 CreateTime: 1700000000001 keySize: 2 valueSize: 5 sequence: -1 headerKeys: [h1] key: k1 payload: hello
| offset: 2 CreateTime: 1700000000002 keySize: -1 valueSize: 5 sequence: -1 headerKeys: [] payload: world
baseOffset: 3 lastOffset: 4 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 198 CreateTime: 1700000000003 size: 144 magic: 2 compresscodec: none crc: 1608372821 isvalid: true
| offset: 3 CreateTime: 1700000000003 keySize: 4 valueSize: 5 sequence: -1 headerKeys: [] KRaftVersion {"version":0,"kRaftVersion":1}
| offset: 4 CreateTime: 1700000000003 keySize: 4 valueSize: 55 sequence: -1 headerKeys: [] KRaftVoters {"version":0,"voters":[{"voterId":1,"voterDirectoryId":"BwcHBwcHBwcHBwcHBwcHBw","endpoints":[{"name":"CONTROLLER","host":"localhost","port":9093}],"kRaftVersionFeature":{"minSupportedVersion":0,"maxSupportedVersion":1}}]}
baseOffset: 5 lastOffset: 6 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 342 CreateTime: 1700000000005 size: 106 magic: 2 compresscodec: gzip crc: 3030020597 isvalid: true
| offset: 5 CreateTime: 1700000000004 keySize: 2 valueSize: 6 sequence: -1 headerKeys: [] key: gk payload: zipped
| offset: 6 CreateTime: 1700000000005 keySize: -1 valueSize: -1 sequence: -1 headerKeys: []
"#,
        "",
    );
    // Kafka's own flag name is accepted too, with the same output.
    let kafka = dump_in(dir.path(), &["--files", SEGMENT, "--print-data-log"]);
    assert_eq!(kafka.stdout, out.stdout);
}

#[test]
fn skip_record_metadata_leaves_only_keys_and_payloads() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), SEGMENT, &segment_bytes());
    let out = dump_in(
        dir.path(),
        &[
            "--files",
            SEGMENT,
            "--print-data-log",
            "--skip-record-metadata",
        ],
    );
    check(
        &out,
        0,
        r#"Dumping 00000000000000000000.log
Log starting offset: 0
baseOffset: 0 lastOffset: 0 count: 1 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000000 size: 106 magic: 2 compresscodec: none crc: 389393195 isvalid: true

baseOffset: 1 lastOffset: 2 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 106 CreateTime: 1700000000002 size: 92 magic: 2 compresscodec: none crc: 783116327 isvalid: true
| key: k1 payload: hello
| payload: world
baseOffset: 3 lastOffset: 4 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 198 CreateTime: 1700000000003 size: 144 magic: 2 compresscodec: none crc: 1608372821 isvalid: true


baseOffset: 5 lastOffset: 6 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 342 CreateTime: 1700000000005 size: 106 magic: 2 compresscodec: gzip crc: 3030020597 isvalid: true
| key: gk payload: zipped

"#,
        "",
    );
}

#[test]
fn snapshots_print_their_id_and_header_footer_records() {
    let dir = tempfile::tempdir().unwrap();
    let (bootstrap, data) = snapshot_files(dir.path());
    std::fs::copy(
        dir.path().join(&bootstrap),
        dir.path().join("bootstrap.checkpoint"),
    )
    .unwrap();
    let files = format!("{bootstrap},{data},bootstrap.checkpoint");
    let out = dump_in(dir.path(), &["--files", &files, "--print-data-log"]);
    check(
        &out,
        0,
        r#"Dumping 00000000000000000000-0000000000.checkpoint
Snapshot end offset: 0, epoch: 0
baseOffset: 0 lastOffset: 2 count: 3 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 0 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000000 size: 166 magic: 2 compresscodec: none crc: 441252939 isvalid: true
| offset: 0 CreateTime: 1700000000000 keySize: 4 valueSize: 11 sequence: -1 headerKeys: [] SnapshotHeader {"version":0,"lastContainedLogTimestamp":1700000000000}
| offset: 1 CreateTime: 1700000000000 keySize: 4 valueSize: 5 sequence: -1 headerKeys: [] KRaftVersion {"version":0,"kRaftVersion":1}
| offset: 2 CreateTime: 1700000000000 keySize: 4 valueSize: 55 sequence: -1 headerKeys: [] KRaftVoters {"version":0,"voters":[{"voterId":1,"voterDirectoryId":"BwcHBwcHBwcHBwcHBwcHBw","endpoints":[{"name":"CONTROLLER","host":"localhost","port":9093}],"kRaftVersionFeature":{"minSupportedVersion":0,"maxSupportedVersion":1}}]}
baseOffset: 3 lastOffset: 3 count: 1 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 0 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 166 CreateTime: 1700000000000 size: 75 magic: 2 compresscodec: none crc: 2405828838 isvalid: true
| offset: 3 CreateTime: 1700000000000 keySize: 4 valueSize: 3 sequence: -1 headerKeys: [] SnapshotFooter {"version":0}
Dumping 00000000000000000007-0000000001.checkpoint
Snapshot end offset: 7, epoch: 1
baseOffset: 0 lastOffset: 0 count: 1 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000006 size: 83 magic: 2 compresscodec: none crc: 378675406 isvalid: true
| offset: 0 CreateTime: 1700000000006 keySize: 4 valueSize: 11 sequence: -1 headerKeys: [] SnapshotHeader {"version":0,"lastContainedLogTimestamp":1700000000006}
baseOffset: 1 lastOffset: 2 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 83 CreateTime: 1700000000006 size: 89 magic: 2 compresscodec: none crc: 2403229769 isvalid: true
| offset: 1 CreateTime: 1700000000006 keySize: -1 valueSize: 7 sequence: -1 headerKeys: [] payload: state-a
| offset: 2 CreateTime: 1700000000006 keySize: -1 valueSize: 7 sequence: -1 headerKeys: [] payload: state-b
baseOffset: 3 lastOffset: 3 count: 1 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 172 CreateTime: 1700000000006 size: 75 magic: 2 compresscodec: none crc: 3428598726 isvalid: true
| offset: 3 CreateTime: 1700000000006 keySize: 4 valueSize: 3 sequence: -1 headerKeys: [] SnapshotFooter {"version":0}
Dumping bootstrap.checkpoint
KRaft bootstrap snapshot
baseOffset: 0 lastOffset: 2 count: 3 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 0 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000000 size: 166 magic: 2 compresscodec: none crc: 441252939 isvalid: true
| offset: 0 CreateTime: 1700000000000 keySize: 4 valueSize: 11 sequence: -1 headerKeys: [] SnapshotHeader {"version":0,"lastContainedLogTimestamp":1700000000000}
| offset: 1 CreateTime: 1700000000000 keySize: 4 valueSize: 5 sequence: -1 headerKeys: [] KRaftVersion {"version":0,"kRaftVersion":1}
| offset: 2 CreateTime: 1700000000000 keySize: 4 valueSize: 55 sequence: -1 headerKeys: [] KRaftVoters {"version":0,"voters":[{"voterId":1,"voterDirectoryId":"BwcHBwcHBwcHBwcHBwcHBw","endpoints":[{"name":"CONTROLLER","host":"localhost","port":9093}],"kRaftVersionFeature":{"minSupportedVersion":0,"maxSupportedVersion":1}}]}
baseOffset: 3 lastOffset: 3 count: 1 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 0 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 166 CreateTime: 1700000000000 size: 75 magic: 2 compresscodec: none crc: 2405828838 isvalid: true
| offset: 3 CreateTime: 1700000000000 keySize: 4 valueSize: 3 sequence: -1 headerKeys: [] SnapshotFooter {"version":0}
"#,
        "",
    );
}

#[test]
fn producer_fields_transactions_and_log_append_time_print_as_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let name = "00000000000000000100.log";
    write_file(dir.path(), name, &producer_segment(100));
    let out = dump_in(dir.path(), &["--files", name, "--print-data-log"]);
    let abs = std::path::absolute(dir.path().join(name)).unwrap();
    let expected_err = format!(
        "Non-consecutive offsets in {}\n  -1 is followed by 100\n  101 is followed by 105\n",
        abs.display()
    );
    check(
        &out,
        0,
        r#"Dumping 00000000000000000100.log
Log starting offset: 100
baseOffset: 100 lastOffset: 101 count: 2 baseSequence: 2147483647 lastSequence: 0 producerId: 42 producerEpoch: 3 partitionLeaderEpoch: 2 isTransactional: true isControl: false deleteHorizonMs: OptionalLong.empty position: 0 LogAppendTime: 1700000000020 size: 79 magic: 2 compresscodec: none crc: 2142542691 isvalid: true
| offset: 100 LogAppendTime: 1700000000020 keySize: 1 valueSize: 1 sequence: 2147483647 headerKeys: [] key: a payload: 1
| offset: 101 LogAppendTime: 1700000000020 keySize: 1 valueSize: 1 sequence: 0 headerKeys: [] key: b payload: 2
baseOffset: 105 lastOffset: 105 count: 1 baseSequence: -1 lastSequence: -1 producerId: 42 producerEpoch: 3 partitionLeaderEpoch: 2 isTransactional: true isControl: true deleteHorizonMs: OptionalLong.empty position: 79 CreateTime: 1700000000021 size: 78 magic: 2 compresscodec: none crc: 3710081185 isvalid: true
| offset: 105 CreateTime: 1700000000021 keySize: 4 valueSize: 6 sequence: -1 headerKeys: [] endTxnMarker: COMMIT coordinatorEpoch: 5
"#,
        &expected_err,
    );
}

#[test]
fn a_flipped_byte_makes_the_batch_invalid_and_its_records_still_print() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = segment_bytes();
    // The 'h' of "hello", the first record value of the batch at position 106.
    let at = 106 + bytes[106..].windows(5).position(|w| w == b"hello").unwrap();
    bytes[at] ^= 0x20;
    write_file(dir.path(), SEGMENT, &bytes);
    let out = dump_in(dir.path(), &["--files", SEGMENT, "--print-data-log"]);
    check(
        &out,
        0,
        r#"Dumping 00000000000000000000.log
Log starting offset: 0
baseOffset: 0 lastOffset: 0 count: 1 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000000 size: 106 magic: 2 compresscodec: none crc: 389393195 isvalid: true
| offset: 0 CreateTime: 1700000000000 keySize: 4 valueSize: 34 sequence: -1 headerKeys: [] LeaderChange: {"version":0,"leaderId":1,"voters":[{"voterId":1},{"voterId":2},{"voterId":3}],"grantingVoters":[{"voterId":1},{"voterId":2}]}
baseOffset: 1 lastOffset: 2 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 106 CreateTime: 1700000000002 size: 92 magic: 2 compresscodec: none crc: 783116327 isvalid: false
| offset: 1 CreateTime: 1700000000001 keySize: 2 valueSize: 5 sequence: -1 headerKeys: [h1] key: k1 payload: Hello
| offset: 2 CreateTime: 1700000000002 keySize: -1 valueSize: 5 sequence: -1 headerKeys: [] payload: world
baseOffset: 3 lastOffset: 4 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 198 CreateTime: 1700000000003 size: 144 magic: 2 compresscodec: none crc: 1608372821 isvalid: true
| offset: 3 CreateTime: 1700000000003 keySize: 4 valueSize: 5 sequence: -1 headerKeys: [] KRaftVersion {"version":0,"kRaftVersion":1}
| offset: 4 CreateTime: 1700000000003 keySize: 4 valueSize: 55 sequence: -1 headerKeys: [] KRaftVoters {"version":0,"voters":[{"voterId":1,"voterDirectoryId":"BwcHBwcHBwcHBwcHBwcHBw","endpoints":[{"name":"CONTROLLER","host":"localhost","port":9093}],"kRaftVersionFeature":{"minSupportedVersion":0,"maxSupportedVersion":1}}]}
baseOffset: 5 lastOffset: 6 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 342 CreateTime: 1700000000005 size: 106 magic: 2 compresscodec: gzip crc: 3030020597 isvalid: true
| offset: 5 CreateTime: 1700000000004 keySize: 2 valueSize: 6 sequence: -1 headerKeys: [] key: gk payload: zipped
| offset: 6 CreateTime: 1700000000005 keySize: -1 valueSize: -1 sequence: -1 headerKeys: []
"#,
        "",
    );
}

#[test]
fn trailing_garbage_is_reported_as_invalid_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = segment_bytes();
    bytes.extend_from_slice(&[0xab; 5]);
    write_file(dir.path(), SEGMENT, &bytes);
    let out = dump_in(dir.path(), &["--files", SEGMENT]);
    check(
        &out,
        0,
        r#"Dumping 00000000000000000000.log
Log starting offset: 0
baseOffset: 0 lastOffset: 0 count: 1 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000000 size: 106 magic: 2 compresscodec: none crc: 389393195 isvalid: true
baseOffset: 1 lastOffset: 2 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 106 CreateTime: 1700000000002 size: 92 magic: 2 compresscodec: none crc: 783116327 isvalid: true
baseOffset: 3 lastOffset: 4 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 198 CreateTime: 1700000000003 size: 144 magic: 2 compresscodec: none crc: 1608372821 isvalid: true
baseOffset: 5 lastOffset: 6 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 342 CreateTime: 1700000000005 size: 106 magic: 2 compresscodec: gzip crc: 3030020597 isvalid: true
Found 5 invalid bytes at the end of 00000000000000000000.log
"#,
        "",
    );
}

#[test]
fn a_truncated_last_batch_is_reported_as_invalid_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = segment_bytes();
    bytes.truncate(bytes.len() - 10);
    write_file(dir.path(), SEGMENT, &bytes);
    let out = dump_in(dir.path(), &["--files", SEGMENT, "--deep-iteration"]);
    check(
        &out,
        0,
        r#"Dumping 00000000000000000000.log
Log starting offset: 0
baseOffset: 0 lastOffset: 0 count: 1 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000000 size: 106 magic: 2 compresscodec: none crc: 389393195 isvalid: true
| offset: 0 CreateTime: 1700000000000 keySize: 4 valueSize: 34 sequence: -1 headerKeys: [] LeaderChange: {"version":0,"leaderId":1,"voters":[{"voterId":1},{"voterId":2},{"voterId":3}],"grantingVoters":[{"voterId":1},{"voterId":2}]}
baseOffset: 1 lastOffset: 2 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 106 CreateTime: 1700000000002 size: 92 magic: 2 compresscodec: none crc: 783116327 isvalid: true
| offset: 1 CreateTime: 1700000000001 keySize: 2 valueSize: 5 sequence: -1 headerKeys: [h1]
| offset: 2 CreateTime: 1700000000002 keySize: -1 valueSize: 5 sequence: -1 headerKeys: []
baseOffset: 3 lastOffset: 4 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 198 CreateTime: 1700000000003 size: 144 magic: 2 compresscodec: none crc: 1608372821 isvalid: true
| offset: 3 CreateTime: 1700000000003 keySize: 4 valueSize: 5 sequence: -1 headerKeys: [] KRaftVersion {"version":0,"kRaftVersion":1}
| offset: 4 CreateTime: 1700000000003 keySize: 4 valueSize: 55 sequence: -1 headerKeys: [] KRaftVoters {"version":0,"voters":[{"voterId":1,"voterDirectoryId":"BwcHBwcHBwcHBwcHBwcHBw","endpoints":[{"name":"CONTROLLER","host":"localhost","port":9093}],"kRaftVersionFeature":{"minSupportedVersion":0,"maxSupportedVersion":1}}]}
Found 96 invalid bytes at the end of 00000000000000000000.log
"#,
        "",
    );
}

#[test]
fn an_impossible_size_field_stops_the_dump_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = segment_bytes();
    // The size field of the batch at position 198.
    bytes[198 + 8..198 + 12].copy_from_slice(&3i32.to_be_bytes());
    write_file(dir.path(), SEGMENT, &bytes);
    let out = dump_in(dir.path(), &["--files", SEGMENT]);
    check(
        &out,
        1,
        r#"Dumping 00000000000000000000.log
Log starting offset: 0
baseOffset: 0 lastOffset: 0 count: 1 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000000 size: 106 magic: 2 compresscodec: none crc: 389393195 isvalid: true
baseOffset: 1 lastOffset: 2 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 106 CreateTime: 1700000000002 size: 92 magic: 2 compresscodec: none crc: 783116327 isvalid: true
"#,
        r#"kraft: dump-log: 00000000000000000000.log: corrupt at position 198: Found record size 3 smaller than minimum record overhead (14)
"#,
    );
}

#[test]
fn a_huge_size_field_is_never_allocated_and_reads_as_trailing_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = segment_bytes();
    bytes[198 + 8..198 + 12].copy_from_slice(&i32::MAX.to_be_bytes());
    write_file(dir.path(), SEGMENT, &bytes);
    let out = dump_in(dir.path(), &["--files", SEGMENT]);
    check(
        &out,
        0,
        r#"Dumping 00000000000000000000.log
Log starting offset: 0
baseOffset: 0 lastOffset: 0 count: 1 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000000 size: 106 magic: 2 compresscodec: none crc: 389393195 isvalid: true
baseOffset: 1 lastOffset: 2 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 106 CreateTime: 1700000000002 size: 92 magic: 2 compresscodec: none crc: 783116327 isvalid: true
Found 250 invalid bytes at the end of 00000000000000000000.log
"#,
        "",
    );
}

#[test]
fn a_malformed_record_stops_the_dump_with_its_batch_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = segment_bytes();
    // The records count of the batch at position 106 claims a third record.
    bytes[106 + 57..106 + 61].copy_from_slice(&3i32.to_be_bytes());
    write_file(dir.path(), SEGMENT, &bytes);
    let out = dump_in(dir.path(), &["--files", SEGMENT, "--deep-iteration"]);
    check(
        &out,
        1,
        r#"Dumping 00000000000000000000.log
Log starting offset: 0
baseOffset: 0 lastOffset: 0 count: 1 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000000 size: 106 magic: 2 compresscodec: none crc: 389393195 isvalid: true
| offset: 0 CreateTime: 1700000000000 keySize: 4 valueSize: 34 sequence: -1 headerKeys: [] LeaderChange: {"version":0,"leaderId":1,"voters":[{"voterId":1},{"voterId":2},{"voterId":3}],"grantingVoters":[{"voterId":1},{"voterId":2}]}
baseOffset: 1 lastOffset: 2 count: 3 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 106 CreateTime: 1700000000002 size: 92 magic: 2 compresscodec: none crc: 783116327 isvalid: false
| offset: 1 CreateTime: 1700000000001 keySize: 2 valueSize: 5 sequence: -1 headerKeys: [h1]
| offset: 2 CreateTime: 1700000000002 keySize: -1 valueSize: 5 sequence: -1 headerKeys: []
"#,
        r#"kraft: dump-log: 00000000000000000000.log: corrupt at position 106: malformed record 2: bad length varint
"#,
    );
}

#[test]
fn several_files_are_dumped_in_order_and_unknown_ones_ignored() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), SEGMENT, &segment_bytes());
    write_file(
        dir.path(),
        "00000000000000000100.log",
        &producer_segment(100),
    );
    write_file(dir.path(), "notes.txt", b"hello");
    let files = format!("{SEGMENT},notes.txt,00000000000000000100.log");
    let out = dump_in(dir.path(), &["--files", &files]);
    check(
        &out,
        0,
        r#"Dumping 00000000000000000000.log
Log starting offset: 0
baseOffset: 0 lastOffset: 0 count: 1 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000000 size: 106 magic: 2 compresscodec: none crc: 389393195 isvalid: true
baseOffset: 1 lastOffset: 2 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 106 CreateTime: 1700000000002 size: 92 magic: 2 compresscodec: none crc: 783116327 isvalid: true
baseOffset: 3 lastOffset: 4 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 198 CreateTime: 1700000000003 size: 144 magic: 2 compresscodec: none crc: 1608372821 isvalid: true
baseOffset: 5 lastOffset: 6 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 342 CreateTime: 1700000000005 size: 106 magic: 2 compresscodec: gzip crc: 3030020597 isvalid: true
Dumping notes.txt
Dumping 00000000000000000100.log
Log starting offset: 100
baseOffset: 100 lastOffset: 101 count: 2 baseSequence: 2147483647 lastSequence: 0 producerId: 42 producerEpoch: 3 partitionLeaderEpoch: 2 isTransactional: true isControl: false deleteHorizonMs: OptionalLong.empty position: 0 LogAppendTime: 1700000000020 size: 79 magic: 2 compresscodec: none crc: 2142542691 isvalid: true
baseOffset: 105 lastOffset: 105 count: 1 baseSequence: -1 lastSequence: -1 producerId: 42 producerEpoch: 3 partitionLeaderEpoch: 2 isTransactional: true isControl: true deleteHorizonMs: OptionalLong.empty position: 79 CreateTime: 1700000000021 size: 78 magic: 2 compresscodec: none crc: 3710081185 isvalid: true
"#,
        "Ignoring unknown file notes.txt\n",
    );
}

#[test]
fn the_cluster_metadata_decoder_reports_what_it_cannot_decode() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = BatchBuilder::new(BatchKind::Data, Offset(7), Epoch(1));
    // Frame version 1, type 3 (Kafka's TopicRecord), version 0: well framed.
    b.append(T0, None, Some(&[1, 3, 0, 0]), &[]).unwrap();
    b.append(T0, None, Some(&[0]), &[]).unwrap();
    b.append(T0, None, Some(&[]), &[]).unwrap();
    let mut bytes = segment_bytes();
    bytes.extend_from_slice(&b.build().unwrap());
    write_file(dir.path(), SEGMENT, &bytes);
    let out = dump_in(
        dir.path(),
        &["--files", SEGMENT, "--cluster-metadata-decoder"],
    );
    check(
        &out,
        0,
        r#"Dumping 00000000000000000000.log
Log starting offset: 0
baseOffset: 0 lastOffset: 0 count: 1 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000000 size: 106 magic: 2 compresscodec: none crc: 389393195 isvalid: true
| offset: 0 CreateTime: 1700000000000 keySize: 4 valueSize: 34 sequence: -1 headerKeys: [] LeaderChange: {"version":0,"leaderId":1,"voters":[{"voterId":1},{"voterId":2},{"voterId":3}],"grantingVoters":[{"voterId":1},{"voterId":2}]}
baseOffset: 1 lastOffset: 2 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 106 CreateTime: 1700000000002 size: 92 magic: 2 compresscodec: none crc: 783116327 isvalid: true
| offset: 1 CreateTime: 1700000000001 keySize: 2 valueSize: 5 sequence: -1 headerKeys: [h1] payload: Error at 1, skipping. Could not deserialize metadata record due to unknown frame version 104(only frame version 1 is supported)
| offset: 2 CreateTime: 1700000000002 keySize: -1 valueSize: 5 sequence: -1 headerKeys: [] payload: Error at 2, skipping. Could not deserialize metadata record due to unknown frame version 119(only frame version 1 is supported)
baseOffset: 3 lastOffset: 4 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 198 CreateTime: 1700000000003 size: 144 magic: 2 compresscodec: none crc: 1608372821 isvalid: true
| offset: 3 CreateTime: 1700000000003 keySize: 4 valueSize: 5 sequence: -1 headerKeys: [] KRaftVersion {"version":0,"kRaftVersion":1}
| offset: 4 CreateTime: 1700000000003 keySize: 4 valueSize: 55 sequence: -1 headerKeys: [] KRaftVoters {"version":0,"voters":[{"voterId":1,"voterDirectoryId":"BwcHBwcHBwcHBwcHBwcHBw","endpoints":[{"name":"CONTROLLER","host":"localhost","port":9093}],"kRaftVersionFeature":{"minSupportedVersion":0,"maxSupportedVersion":1}}]}
baseOffset: 5 lastOffset: 6 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 342 CreateTime: 1700000000005 size: 106 magic: 2 compresscodec: gzip crc: 3030020597 isvalid: true
| offset: 5 CreateTime: 1700000000004 keySize: 2 valueSize: 6 sequence: -1 headerKeys: [] payload: Error at 5, skipping. Could not deserialize metadata record due to unknown frame version 122(only frame version 1 is supported)
| offset: 6 CreateTime: 1700000000005 keySize: -1 valueSize: -1 sequence: -1 headerKeys: [] payload: Error at 6, skipping. Error while reading frame version
baseOffset: 7 lastOffset: 9 count: 3 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 448 CreateTime: 1700000000000 size: 87 magic: 2 compresscodec: none crc: 4237158273 isvalid: true
| offset: 7 CreateTime: 1700000000000 keySize: -1 valueSize: 4 sequence: -1 headerKeys: [] payload: Error at 7, skipping. kraft does not decode cluster metadata records (type 3, version 0)
| offset: 8 CreateTime: 1700000000000 keySize: -1 valueSize: 1 sequence: -1 headerKeys: [] payload: Error at 8, skipping. Could not deserialize metadata record with frame version 0. Note that upgrades from the preview release of KRaft in 2.8 to newer versions are not supported.
| offset: 9 CreateTime: 1700000000000 keySize: -1 valueSize: 0 sequence: -1 headerKeys: [] payload: Error at 9, skipping. Error while reading frame version
"#,
        "",
    );
}

#[test]
fn an_index_is_checked_against_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), SEGMENT, &segment_bytes());
    // Entries (relative offset, position): two right, one naming offset 5 for the batch
    // ending at 6, then the zero entry of a preallocated file.
    let entries: [(u32, u32); 4] = [(2, 106), (4, 198), (5, 342), (0, 0)];
    let index: Vec<u8> = entries
        .iter()
        .flat_map(|(o, p)| [o.to_be_bytes(), p.to_be_bytes()].concat())
        .collect();
    let name = "00000000000000000000.index";
    write_file(dir.path(), name, &index);
    let out = dump_in(dir.path(), &["--files", name]);
    let abs = std::path::absolute(dir.path().join(name)).unwrap();
    let expected_err = format!(
        "Mismatches in :{}\n  Index offset: 5, log offset: 6\n",
        abs.display()
    );
    check(
        &out,
        0,
        r#"Dumping 00000000000000000000.index
offset: 2 position: 106
offset: 4 position: 198
offset: 5 position: 342
"#,
        &expected_err,
    );
}

#[test]
fn a_missing_file_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dump_in(dir.path(), &["--files", "00000000000000000042.log"]);
    check(
        &out,
        1,
        r#"Dumping 00000000000000000042.log
Log starting offset: 42
"#,
        r#"kraft: dump-log: cannot read 00000000000000000042.log: No such file or directory (os error 2)
"#,
    );
}

#[test]
fn files_are_required() {
    let out = dump(&["--deep-iteration"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--files"), "{err}");
}

#[test]
fn a_damaged_magic_byte_shows_the_entry_as_kafka_reads_a_legacy_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = segment_bytes();
    // The magic byte of the gzip batch at position 342: 2 becomes 1.
    bytes[342 + 16] = 1;
    write_file(dir.path(), SEGMENT, &bytes);
    let out = dump_in(dir.path(), &["--files", SEGMENT]);
    check(
        &out,
        0,
        r#"Dumping 00000000000000000000.log
Log starting offset: 0
baseOffset: 0 lastOffset: 0 count: 1 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000000 size: 106 magic: 2 compresscodec: none crc: 389393195 isvalid: true
baseOffset: 1 lastOffset: 2 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 106 CreateTime: 1700000000002 size: 92 magic: 2 compresscodec: none crc: 783116327 isvalid: true
baseOffset: 3 lastOffset: 4 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 198 CreateTime: 1700000000003 size: 144 magic: 2 compresscodec: none crc: 1608372821 isvalid: true
offset: 5 position: 342 CreateTime: -7317798539134763008 size: 106 magic: 1 compresscodec: zstd crc: 1 isvalid: false
"#,
        "",
    );
    let deep = dump_in(dir.path(), &["--files", SEGMENT, "--deep-iteration"]);
    assert_eq!(deep.status.code(), Some(1));
    assert_eq!(stderr(&deep).lines().count(), 1, "{}", stderr(&deep));
}

/// Segments and their indexes as kraft's durable log writes them (rolled small, an index entry
/// per batch): the index entries agree with the segments, and a later segment's first offset
/// shows as Kafka's "-1 is followed by" report.
#[test]
fn segments_and_indexes_written_by_the_log_dump_as_kafka_reads_them() {
    use kraft::storage::{LogConfig, OffsetPolicy, ReplicatedLog};
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 250,
        index_interval_bytes: 1,
    };
    {
        let (mut log, _) = ReplicatedLog::open(dir.path(), config).unwrap();
        for batch in [leader_change(0, 1), data_batch(1, 1), data_batch(3, 1)] {
            log.append(batch, OffsetPolicy::Validate).unwrap();
        }
        log.flush().unwrap();
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log") || n.ends_with(".index"))
        .collect();
    names.sort();
    let files = names.join(",");
    let out = dump_in(dir.path(), &["--files", &files, "--deep-iteration"]);
    let abs = std::path::absolute(dir.path().join("00000000000000000003.log")).unwrap();
    let expected_err = format!(
        "Non-consecutive offsets in {}\n  -1 is followed by 3\n",
        abs.display()
    );
    check(
        &out,
        0,
        r#"Dumping 00000000000000000000.index
offset: 2 position: 106
Dumping 00000000000000000000.log
Log starting offset: 0
baseOffset: 0 lastOffset: 0 count: 1 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000000 size: 106 magic: 2 compresscodec: none crc: 389393195 isvalid: true
| offset: 0 CreateTime: 1700000000000 keySize: 4 valueSize: 34 sequence: -1 headerKeys: [] LeaderChange: {"version":0,"leaderId":1,"voters":[{"voterId":1},{"voterId":2},{"voterId":3}],"grantingVoters":[{"voterId":1},{"voterId":2}]}
baseOffset: 1 lastOffset: 2 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 106 CreateTime: 1700000000002 size: 92 magic: 2 compresscodec: none crc: 783116327 isvalid: true
| offset: 1 CreateTime: 1700000000001 keySize: 2 valueSize: 5 sequence: -1 headerKeys: [h1]
| offset: 2 CreateTime: 1700000000002 keySize: -1 valueSize: 5 sequence: -1 headerKeys: []
Dumping 00000000000000000003.index
00000000000000000003.index is empty.
Dumping 00000000000000000003.log
Log starting offset: 3
baseOffset: 3 lastOffset: 4 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000002 size: 92 magic: 2 compresscodec: none crc: 783116327 isvalid: true
| offset: 3 CreateTime: 1700000000001 keySize: 2 valueSize: 5 sequence: -1 headerKeys: [h1]
| offset: 4 CreateTime: 1700000000002 keySize: -1 valueSize: 5 sequence: -1 headerKeys: []
"#,
        &expected_err,
    );
}

#[test]
fn kafkas_script_name_runs_the_same_dump() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), SEGMENT, &segment_bytes());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bin/kafka-dump-log.sh");
    let out = Command::new(script)
        .current_dir(dir.path())
        .env("KRAFT_BINARY", env!("CARGO_BIN_EXE_kraft"))
        .args(["--files", SEGMENT, "--deep-iteration"])
        .output()
        .unwrap();
    let direct = dump_in(dir.path(), &["--files", SEGMENT, "--deep-iteration"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), stdout(&direct));
}

#[test]
fn a_batch_shorter_than_its_header_stops_the_dump_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = segment_bytes();
    bytes[106 + 8..106 + 12].copy_from_slice(&20i32.to_be_bytes());
    write_file(dir.path(), SEGMENT, &bytes);
    let out = dump_in(dir.path(), &["--files", SEGMENT]);
    check(
        &out,
        1,
        r#"Dumping 00000000000000000000.log
Log starting offset: 0
baseOffset: 0 lastOffset: 0 count: 1 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000000 size: 106 magic: 2 compresscodec: none crc: 389393195 isvalid: true
"#,
        r#"kraft: dump-log: 00000000000000000000.log: corrupt at position 106: batch of 32 bytes, shorter than the 61-byte batch header
"#,
    );
}

#[test]
fn max_bytes_reads_only_the_batches_inside_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), SEGMENT, &segment_bytes());
    // Up to the middle of the third batch: two batches, and no invalid-bytes line.
    let out = dump_in(dir.path(), &["--files", SEGMENT, "--max-bytes", "250"]);
    check(
        &out,
        0,
        r#"Dumping 00000000000000000000.log
Log starting offset: 0
baseOffset: 0 lastOffset: 0 count: 1 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: true deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000000 size: 106 magic: 2 compresscodec: none crc: 389393195 isvalid: true
baseOffset: 1 lastOffset: 2 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 1 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 106 CreateTime: 1700000000002 size: 92 magic: 2 compresscodec: none crc: 783116327 isvalid: true
"#,
        "",
    );
}
