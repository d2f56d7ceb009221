//! The Kafka face's request parsing and answers, without a node: every request kraft serves,
//! at every version it advertises, passes the bounds walk and decodes to what was encoded; a
//! cut-short or hostile body is refused, never decoded (and never aborts the process); every
//! answer encodes at every version; produced batches are validated as Kafka's leader does.

mod common;

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use common::kafka::{sample, sample_batch};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use kraft::kafka::request::{RequestError, SUPPORTED, parse};
use kraft::kafka::{
    Endpoint, KafkaRequest, Parsed, QuorumView, cluster, fetch, offsets, produce, quorum, voters,
};
use kraft::types::{Epoch, NodeId, Offset};

/// Every advertised (api, version) kraft decodes.
fn decoded_versions() -> Vec<(ApiKey, i16)> {
    SUPPORTED
        .iter()
        .flat_map(|&(api, min, max)| (min..=max).map(move |v| (api, v)))
        .filter(|&(api, v)| !(api == ApiKey::Produce && v < 3))
        .collect()
}

#[test]
fn every_served_request_at_every_version_parses() {
    for (api, v) in decoded_versions() {
        match parse(sample(api, v)) {
            Ok(Parsed::Request { meta, .. }) => {
                assert_eq!(
                    (meta.api_key, meta.version, meta.correlation_id),
                    (api, v, 7)
                );
                assert_eq!(meta.client_id.as_deref(), Some("kraft-test"));
            }
            other => panic!("{api:?} v{v}: {other:?}"),
        }
    }
}

#[test]
fn every_cut_short_request_is_refused() {
    for (api, v) in decoded_versions() {
        let whole = sample(api, v);
        for len in 8..whole.len() {
            assert!(
                parse(whole.slice(..len)).is_err(),
                "{api:?} v{v} cut to {len} of {} bytes was accepted",
                whole.len()
            );
        }
    }
}

#[test]
fn a_count_larger_than_the_request_is_refused_before_decoding() {
    // Metadata v4 claiming i32::MAX topics in 22 bytes: the decoder alone would try to reserve
    // about 154 GB and abort the process.
    let mut frame = BytesMut::new();
    frame.extend_from_slice(&3i16.to_be_bytes());
    frame.extend_from_slice(&4i16.to_be_bytes());
    frame.extend_from_slice(&1i32.to_be_bytes());
    frame.extend_from_slice(&0i16.to_be_bytes()); // empty client id
    frame.extend_from_slice(&i32::MAX.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    match parse(frame.freeze()) {
        Err(RequestError::Bounds { api, error, .. }) => {
            assert_eq!(api, ApiKey::Metadata);
            assert_eq!(error.what, "an element count larger than the bytes left");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn hostile_counts_in_every_array_are_refused() {
    // Overwrite every 4-byte window of each non-flexible sample with i32::MAX, and every byte
    // of each flexible one with a varint's continuation: nothing may decode into an allocation
    // the bytes do not back (the test process would abort).
    for (api, v) in decoded_versions() {
        let whole = sample(api, v);
        for at in 8..whole.len().saturating_sub(4) {
            let mut bytes = whole.to_vec();
            bytes[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
            let _ = parse(Bytes::from(bytes));
            let mut bytes = whole.to_vec();
            bytes[at..at + 4].copy_from_slice(&[0xff, 0xff, 0xff, 0x0f]);
            let _ = parse(Bytes::from(bytes));
        }
    }
}

#[test]
fn an_api_versions_request_newer_than_kraft_gets_the_version_zero_answer() {
    let frame = common::kafka::frame(
        ApiKey::ApiVersions,
        4,
        9,
        &kafka_protocol::messages::ApiVersionsRequest::default(),
    );
    let mut bytes = frame.to_vec();
    bytes[2..4].copy_from_slice(&5i16.to_be_bytes());
    assert_eq!(
        parse(Bytes::from(bytes)),
        Ok(Parsed::ApiVersionsTooNew { correlation_id: 9 })
    );
    let answer = cluster::api_versions_too_new();
    assert_eq!(answer.error_code, ResponseError::UnsupportedVersion.code());
    assert_eq!(answer.api_keys.len(), 1);
    assert_eq!(
        (
            answer.api_keys[0].min_version,
            answer.api_keys[0].max_version
        ),
        (0, 4)
    );
}

#[test]
fn unknown_apis_unserved_apis_and_old_produce_are_refused_by_name() {
    let mut unknown = sample(ApiKey::Metadata, 4).to_vec();
    unknown[0..2].copy_from_slice(&999i16.to_be_bytes());
    assert!(matches!(
        parse(Bytes::from(unknown)),
        Err(RequestError::UnknownApi {
            api_key: 999,
            correlation_id: 7
        })
    ));
    let mut vote = sample(ApiKey::Metadata, 4).to_vec();
    vote[0..2].copy_from_slice(&(ApiKey::Vote as i16).to_be_bytes());
    assert!(matches!(
        parse(Bytes::from(vote)),
        Err(RequestError::UnsupportedVersion {
            api: ApiKey::Vote,
            ..
        })
    ));
    let mut old = sample(ApiKey::Produce, 3).to_vec();
    old[2..4].copy_from_slice(&2i16.to_be_bytes());
    assert!(matches!(
        parse(Bytes::from(old)),
        Err(RequestError::UnsupportedVersion {
            api: ApiKey::Produce,
            version: 2,
            ..
        })
    ));
}

fn view(is_leader: bool) -> QuorumView {
    QuorumView {
        cluster_id: "c1".into(),
        local_id: Some(NodeId(1)),
        endpoints: (1..=3)
            .map(|i| Endpoint::parse(NodeId(i), &format!("127.0.0.1:{}", 9090 + i)).unwrap())
            .collect(),
        listener_name: Some("CONTROLLER".into()),
        leader_id: Some(NodeId(if is_leader { 1 } else { 2 })),
        epoch: Epoch(5),
        is_leader,
        high_watermark: Some(Offset(40)),
        log_start_offset: Offset(10),
        log_end_offset: Offset(42),
        voter_progress: BTreeMap::from([(NodeId(2), Some(Offset(42))), (NodeId(3), None)]),
        racks: BTreeMap::from([
            (NodeId(1), "r1".to_string()),
            (NodeId(2), "r2".to_string()),
            (NodeId(3), "r3".to_string()),
        ]),
        voter_times: BTreeMap::from([(NodeId(2), (Some(1_000), Some(900)))]),
        observers: BTreeMap::new(),
        voter_set: Default::default(),
        now_ms: 1_100,
        directory_ids: BTreeMap::from([(NodeId(2), uuid::Uuid::from_u64_pair(2, 2))]),
    }
}

fn encodes<T: Encodable + HeaderVersion>(api: ApiKey, v: i16, body: &T) {
    if let Err(e) = kraft::kafka::response::encode(1, v, body) {
        panic!("{api:?} v{v}: {e}");
    }
}

#[test]
fn every_answer_encodes_at_every_version() {
    for leader in [true, false] {
        let view = view(leader);
        for (api, v) in decoded_versions() {
            let Ok(Parsed::Request { request, .. }) = parse(sample(api, v)) else {
                panic!("{api:?} v{v}");
            };
            match *request {
                KafkaRequest::ApiVersions(_) => encodes(api, v, &cluster::api_versions()),
                KafkaRequest::Metadata(r) => encodes(api, v, &cluster::metadata(&r, v, &view)),
                KafkaRequest::DescribeCluster(r) => {
                    encodes(api, v, &cluster::describe_cluster(&r, v, &view))
                }
                KafkaRequest::FindCoordinator(r) => {
                    encodes(api, v, &cluster::find_coordinator(&r, v))
                }
                KafkaRequest::DescribeQuorum(r) => {
                    encodes(api, v, &quorum::describe_quorum(&r, v, &view))
                }
                KafkaRequest::ListOffsets(r) => {
                    let found = BTreeMap::from([(offsets::MAX_TIMESTAMP, Some((12, 99)))]);
                    encodes(api, v, &offsets::list_offsets(&r, v, &view, &found))
                }
                KafkaRequest::Fetch(r) => {
                    let preferred = Some(NodeId(2));
                    encodes(
                        api,
                        v,
                        &fetch::answer(&r, v, &view, sample_batch(), preferred),
                    )
                }
                KafkaRequest::Produce(r) => {
                    for outcome in [Ok(Offset(40)), Err(not_leader())] {
                        encodes(api, v, &produce::answer(&r, v, &view, outcome));
                    }
                }
                KafkaRequest::InitProducerId(_) => {}
                // AddRaftVoter v1's answer is v0's (the crate encodes only v0).
                KafkaRequest::AddRaftVoter(r) => {
                    let result = voters::check_add(&r.request, &view).map(drop);
                    encodes(api, 0, &voters::add_answer(result));
                }
                KafkaRequest::RemoveRaftVoter(r) => {
                    let result = voters::check_remove(&r, &view).map(drop);
                    encodes(api, v, &voters::remove_answer(result));
                }
                KafkaRequest::UpdateRaftVoter(r) => encodes(
                    api,
                    v,
                    &voters::update_answer(voters::check_update(&r, &view).map(drop), &view),
                ),
            }
        }
    }
    encodes(ApiKey::ApiVersions, 0, &cluster::api_versions_too_new());
}

fn not_leader() -> produce::Refusal {
    produce::Refusal {
        error: ResponseError::NotLeaderOrFollower,
        message: "not the leader".into(),
    }
}

fn produce_request(records: Bytes, version: i16) -> kafka_protocol::messages::ProduceRequest {
    common::kafka::produce(version, -1, records)
}

fn refusal(records: Bytes, version: i16, view: &QuorumView) -> ResponseError {
    let request = produce_request(records, version);
    produce::check(&request, version, view)
        .expect("names the log")
        .expect_err("refused")
        .error
}

#[test]
fn a_valid_batch_is_accepted_as_sent() {
    let batch = sample_batch();
    let request = produce_request(batch.clone(), 9);
    assert_eq!(produce::check(&request, 9, &view(true)), Some(Ok(batch)));
}

#[test]
fn produced_batches_are_validated_as_kafka_validates_them() {
    let leader = view(true);
    let batch = sample_batch();
    // A flipped bit inside the CRC-covered part.
    let mut flipped = batch.to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert_eq!(
        refusal(flipped.into(), 9, &leader),
        ResponseError::CorruptMessage
    );
    // Cut short.
    assert_eq!(
        refusal(batch.slice(..batch.len() - 3), 9, &leader),
        ResponseError::CorruptMessage
    );
    // Two batches where Produce v3+ allows exactly one.
    let two: Vec<u8> = [batch.clone(), batch.clone()].concat();
    assert_eq!(
        refusal(two.into(), 9, &leader),
        ResponseError::InvalidRecord
    );
    // A control batch.
    let control = common::leader_change_batch();
    assert_eq!(refusal(control, 9, &leader), ResponseError::InvalidRecord);
    // An unknown compression codec (attributes 5), with its CRC made valid again.
    let mut codec = batch.to_vec();
    codec[22] = 5;
    let crc = crc32c::crc32c(&codec[21..]);
    codec[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        refusal(codec.into(), 9, &leader),
        ResponseError::UnsupportedCompressionType
    );
    // Not the leader.
    assert_eq!(
        refusal(batch.clone(), 9, &view(false)),
        ResponseError::NotLeaderOrFollower
    );
    // acks other than 0, 1, -1.
    let mut request = produce_request(batch, 9);
    request.acks = 2;
    assert_eq!(
        produce::check(&request, 9, &leader)
            .unwrap()
            .unwrap_err()
            .error,
        ResponseError::InvalidRequiredAcks
    );
}

#[test]
fn list_offsets_answers_earliest_latest_and_timestamps_within_the_high_watermark() {
    let leader = view(true);
    let answer = |ts: i64, v: i16, found: Option<(i64, i64)>| {
        let request = common::kafka::list_offsets(ts);
        let found = BTreeMap::from([(ts, found)]);
        let r = offsets::list_offsets(&request, v, &leader, &found);
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp)
    };
    assert_eq!(answer(offsets::EARLIEST, 5, None), (0, 10, -1));
    assert_eq!(answer(offsets::LATEST, 5, None), (0, 40, -1));
    assert_eq!(answer(1000, 5, Some((20, 1001))), (0, 20, 1001));
    // Found at or past the high watermark: not yet readable, so "none" without an error.
    assert_eq!(answer(1000, 5, Some((40, 1001))), (0, -1, -1));
    assert_eq!(answer(1000, 5, None), (0, -1, -1));
    // MAX_TIMESTAMP needs v7.
    assert_eq!(
        answer(offsets::MAX_TIMESTAMP, 6, None).0,
        ResponseError::UnsupportedVersion.code()
    );
    let follower = offsets::list_offsets(
        &common::kafka::list_offsets(offsets::LATEST),
        5,
        &view(false),
        &BTreeMap::new(),
    );
    assert_eq!(
        follower.topics[0].partitions[0].error_code,
        ResponseError::NotLeaderOrFollower.code()
    );
}

#[test]
fn fetch_reads_only_committed_records_from_the_leader() {
    let leader = view(true);
    let plan = |offset: i64, v: i16, view: &QuorumView| {
        fetch::plan(&common::kafka::fetch(v, offset, 500), v, view)
    };
    assert_eq!(
        plan(12, 12, &leader),
        fetch::Plan::Read {
            from: Offset(12),
            max_bytes: 1 << 20,
            end: Offset(40)
        }
    );
    // Between the high watermark and the log end: nothing yet (a long poll waits).
    assert_eq!(plan(41, 12, &leader), fetch::Plan::NothingYet);
    // Outside the log, or a follower asked without client metadata (before v11): answered at
    // once, with the error.
    for (offset, v, view) in [
        (5, 12, view(true)),
        (43, 12, view(true)),
        (12, 10, view(false)),
    ] {
        assert_eq!(plan(offset, v, &view), fetch::Plan::Answer);
    }
    // With client metadata a follower serves up to its own high watermark.
    assert!(matches!(
        plan(12, 11, &view(false)),
        fetch::Plan::Read { .. }
    ));
    let errors = |offset: i64, view: &QuorumView| {
        let request = common::kafka::fetch(10, offset, 0);
        fetch::answer(&request, 10, view, Bytes::new(), None).responses[0].partitions[0].error_code
    };
    assert_eq!(errors(5, &leader), ResponseError::OffsetOutOfRange.code());
    assert_eq!(
        errors(12, &view(false)),
        ResponseError::NotLeaderOrFollower.code()
    );
    let mut fenced = common::kafka::fetch(12, 12, 0);
    fenced.topics[0].partitions[0].current_leader_epoch = 4;
    assert_eq!(
        fetch::answer(&fenced, 12, &leader, Bytes::new(), None).responses[0].partitions[0]
            .error_code,
        ResponseError::FencedLeaderEpoch.code()
    );
    // By topic id from v13.
    assert!(matches!(plan(12, 13, &leader), fetch::Plan::Read { .. }));
}

#[test]
fn the_leader_points_a_consumer_at_a_caught_up_node_in_its_rack() {
    let leader = view(true);
    let plan = |rack: &str, offset: i64, v: i16| {
        let mut request = common::kafka::fetch(v, offset, 0);
        request.rack_id = StrBytes::from_string(rack.to_string());
        fetch::plan(&request, v, &leader)
    };
    assert_eq!(plan("r2", 12, 11), fetch::Plan::Redirect(NodeId(2)));
    // The leader's own rack, a rack whose node has not fetched, no rack: the leader serves.
    for rack in ["r1", "r3", ""] {
        assert!(
            matches!(plan(rack, 12, 11), fetch::Plan::Read { .. }),
            "{rack}"
        );
    }
    // A node that has not reached the fetch offset is not named.
    let mut behind = view(true);
    behind.voter_progress.insert(NodeId(2), Some(Offset(20)));
    let mut request = common::kafka::fetch(12, 25, 0);
    request.rack_id = StrBytes::from_static_str("r2");
    assert!(matches!(
        fetch::plan(&request, 12, &behind),
        fetch::Plan::Read { .. }
    ));
    let mut request = common::kafka::fetch(12, 12, 0);
    request.rack_id = StrBytes::from_static_str("r2");
    let answer = fetch::answer(&request, 12, &leader, Bytes::new(), Some(NodeId(2)));
    let p = &answer.responses[0].partitions[0];
    assert_eq!((p.error_code, p.preferred_read_replica.0), (0, 2));
}

/// Zigzag varint, as record fields are written.
fn varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// One record: timestamp delta, offset delta, value, and `headers` empty headers.
fn record(timestamp_delta: i64, offset_delta: i64, value: &[u8], headers: usize) -> Vec<u8> {
    let mut body = vec![0u8];
    varint(&mut body, timestamp_delta);
    varint(&mut body, offset_delta);
    varint(&mut body, -1);
    varint(&mut body, value.len() as i64);
    body.extend_from_slice(value);
    varint(&mut body, headers as i64);
    for _ in 0..headers {
        varint(&mut body, 0);
        varint(&mut body, -1);
    }
    let mut out = Vec::new();
    varint(&mut out, body.len() as i64);
    out.extend(body);
    out
}

/// A batch around `records` with the given header fields, its CRC valid.
fn raw_batch(records: &[Vec<u8>], last_offset_delta: i32, attributes: i16, max_ts: i64) -> Bytes {
    let body: Vec<u8> = records.concat();
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + body.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&last_offset_delta.to_be_bytes());
    b.extend_from_slice(&1_000i64.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&(records.len() as i32).to_be_bytes());
    b.extend_from_slice(&body);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

#[test]
fn a_batch_must_hold_one_offset_per_record_each_in_its_place() {
    let leader = view(true);
    let good = raw_batch(&[record(0, 0, b"a", 0), record(5, 1, b"b", 0)], 1, 0, 1_005);
    let request = produce_request(good.clone(), 9);
    assert_eq!(produce::check(&request, 9, &leader), Some(Ok(good)));
    // One record claiming two billion offsets: it would move the log end by 2^31.
    let jumbo = raw_batch(&[record(0, 0, b"a", 0)], i32::MAX - 1, 0, 1_000);
    assert_eq!(
        refusal(jumbo.clone(), 9, &leader),
        ResponseError::InvalidRecord
    );
    assert!(
        kraft::record::restamp(&jumbo, Offset(5), Epoch(1)).is_err(),
        "the core refuses it too"
    );
    // A record at offset delta 1000 in a one-record batch: consumers would see offset base+1000.
    let forged = raw_batch(&[record(0, 1000, b"a", 0)], 0, 0, 1_000);
    assert_eq!(refusal(forged, 9, &leader), ResponseError::InvalidRecord);
    // A header max timestamp that is not the records' largest.
    let lying = raw_batch(&[record(0, 0, b"a", 0), record(5, 1, b"b", 0)], 1, 0, 9_999);
    assert_eq!(refusal(lying, 9, &leader), ResponseError::InvalidRecord);
    // Log-append time, transactional and delete-horizon bits are not a client's to set.
    for bit in [0x08, 0x10, 0x40] {
        let batch = raw_batch(&[record(0, 0, b"a", 0)], 0, bit, 1_000);
        assert_eq!(
            refusal(batch.clone(), 9, &leader),
            ResponseError::InvalidRecord,
            "{bit:#x}"
        );
        assert!(
            kraft::record::restamp(&batch, Offset(5), Epoch(1)).is_err(),
            "{bit:#x}"
        );
    }
    // A record with more headers than any real one carries.
    let headers = raw_batch(&[record(0, 0, b"a", 5_000)], 0, 0, 1_000);
    assert_eq!(refusal(headers, 9, &leader), ResponseError::InvalidRecord);
}

#[test]
fn a_partition_named_many_times_gets_the_records_once() {
    let leader = view(true);
    let mut request = common::kafka::fetch(12, 12, 0);
    let partition = request.topics[0].partitions[0].clone();
    request.topics[0].partitions = vec![partition; 1000];
    let answer = fetch::answer(&request, 12, &leader, sample_batch(), None);
    let with_records = answer.responses[0]
        .partitions
        .iter()
        .filter(|p| p.records.as_ref().is_some_and(|r| !r.is_empty()))
        .count();
    assert_eq!(with_records, 1);
}

#[test]
fn a_list_offsets_request_costs_at_most_one_scan() {
    use kafka_protocol::messages::list_offsets_request::ListOffsetsTopic;
    let mut request = common::kafka::list_offsets(1_000);
    let partition = request.topics[0].partitions[0].clone();
    request.topics[0].partitions = (0..500)
        .map(|i| {
            let mut p = partition.clone();
            p.timestamp = 1_000 + i;
            p
        })
        .collect();
    let mut other = ListOffsetsTopic::default();
    other.name = kafka_protocol::messages::TopicName(StrBytes::from_static_str("unknown"));
    other.partitions = request.topics[0].partitions.clone();
    request.topics.push(other);
    assert_eq!(offsets::searches(&request, 5), vec![1_000]);
    let mut unknown_only = request.clone();
    unknown_only.topics.remove(0);
    assert_eq!(offsets::searches(&unknown_only, 5), Vec::<i64>::new());
}

#[test]
fn producers_whose_batches_were_cleaned_away_are_forgotten() {
    use kraft::raft::{ProducerStates, SequenceCheck};
    let header = |pid: i64, base: i64, seq: i32| {
        let mut b = sample_batch().to_vec();
        b[..8].copy_from_slice(&base.to_be_bytes());
        b[43..51].copy_from_slice(&pid.to_be_bytes());
        b[51..53].copy_from_slice(&0i16.to_be_bytes());
        b[53..57].copy_from_slice(&seq.to_be_bytes());
        kraft::record::BatchHeader::parse(&b).unwrap()
    };
    let mut states = ProducerStates::default();
    states.record(&header(1, 0, 0), Offset(0));
    states.record(&header(2, 3, 0), Offset(0));
    states.forget_before(Offset(3));
    assert_eq!(states.len(), 1);
    // Producer 1 is unknown again (any sequence); producer 2 still expects 3.
    assert_eq!(states.check(&header(1, 0, 7)), SequenceCheck::Append);
    assert_eq!(states.check(&header(2, 0, 7)), SequenceCheck::OutOfOrder);
}

/// DescribeQuorum v2 from the leader lists each voter's endpoint on the quorum listener and
/// each observer that fetched with an id; older versions and non-leaders list no endpoints.
#[test]
fn describe_quorum_reports_voter_endpoints_and_observers() {
    use kraft::kafka::ReplicaReport;
    let Ok(Parsed::Request { request, .. }) = parse(sample(ApiKey::DescribeQuorum, 2)) else {
        panic!("the sample parses");
    };
    let KafkaRequest::DescribeQuorum(r) = *request else {
        panic!("a DescribeQuorum request");
    };
    let mut leader = view(true);
    let observer = ReplicaReport {
        log_end_offset: Some(Offset(38)),
        last_fetch_ms: Some(1_050),
        last_caught_up_ms: Some(1_000),
    };
    leader.observers.insert(NodeId(7), observer);
    let answer = quorum::describe_quorum(&r, 2, &leader);
    let nodes: Vec<(i32, String, String, u16)> = answer
        .nodes
        .iter()
        .flat_map(|n| {
            n.listeners.iter().map(move |l| {
                let (name, host) = (l.name.to_string(), l.host.to_string());
                (n.node_id.0, name, host, l.port)
            })
        })
        .collect();
    let expected: Vec<(i32, String, String, u16)> = (1..=3)
        .map(|i| (i, "CONTROLLER".into(), "127.0.0.1".into(), 9090 + i as u16))
        .collect();
    assert_eq!(nodes, expected);
    let p = &answer.topics[0].partitions[0];
    let observers: Vec<(i32, i64, i64, i64)> = p
        .observers
        .iter()
        .map(|o| {
            let (end, fetched) = (o.log_end_offset, o.last_fetch_timestamp);
            (o.replica_id.0, end, fetched, o.last_caught_up_timestamp)
        })
        .collect();
    assert_eq!(observers, vec![(7, 38, 1_050, 1_000)]);
    assert!(p.current_voters.iter().all(|v| v.replica_id.0 != 7));

    assert!(quorum::describe_quorum(&r, 1, &leader).nodes.is_empty());
    assert!(
        quorum::describe_quorum(&r, 2, &view(false))
            .nodes
            .is_empty()
    );
    let mut unnamed = view(true);
    unnamed.listener_name = None;
    assert!(quorum::describe_quorum(&r, 2, &unnamed).nodes.is_empty());
}
