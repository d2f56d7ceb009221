//! The Kafka face of running nodes, in process, through a raw Kafka-protocol client: produce
//! commits and is read back, a follower redirects, a long poll wakes on commit, acks=0 gets no
//! answer, hostile frames close only their own connection, and every client batch becomes part
//! of every voter's log.

mod common;

use std::time::Duration;

use common::cluster::{start_cluster, wait_for_commit_everywhere, wait_for_leader};
use common::kafka::{Client, fetch, list_offsets, metadata, produce, sample_batch};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchResponse, ListOffsetsResponse,
    MetadataResponse, ProduceResponse,
};
use kraft::record::BatchIter;
use kraft::types::Offset;

async fn produce_one(client: &mut Client, version: i16) -> ProduceResponse {
    client
        .call(
            ApiKey::Produce,
            version,
            &produce(version, -1, sample_batch()),
        )
        .await
}

#[actix_rt::test]
async fn a_produced_batch_commits_on_every_voter_and_is_read_back_as_sent() {
    let cluster = start_cluster("kafka-produce", 3).await;
    let leader = wait_for_leader(&cluster, None).await;
    let mut client = Client::connect(&cluster.addresses[leader].1).await;

    let versions: ApiVersionsResponse = client
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(versions.error_code, 0);
    assert!(
        versions
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Produce as i16)
    );

    let meta: MetadataResponse = client
        .call(
            ApiKey::Metadata,
            12,
            &metadata(12, &[common::kafka::TOPIC, "nope"]),
        )
        .await;
    assert_eq!(meta.brokers.len(), 3);
    let partition = &meta.topics[0].partitions[0];
    assert_eq!(partition.leader_id.0, leader as i32 + 1);
    assert_eq!(partition.replica_nodes.len(), 3);
    assert_eq!(
        meta.topics[1].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );

    let produced = produce_one(&mut client, 9).await;
    let p = &produced.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "{:?}", p.error_message);
    let base = p.base_offset;
    assert!(base >= 1);
    wait_for_commit_everywhere(&cluster, Offset(base + 2)).await;

    let fetched: FetchResponse = client.call(ApiKey::Fetch, 12, &fetch(12, base, 0)).await;
    let data = &fetched.responses[0].partitions[0];
    assert_eq!(data.error_code, 0);
    assert!(data.high_watermark >= base + 3);
    let records = data.records.clone().unwrap();
    let batch = BatchIter::new(records).next().unwrap().unwrap();
    assert_eq!(batch.base_offset(), Offset(base));
    let values: Vec<_> = batch
        .decode_records()
        .unwrap()
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(values, [&b"one"[..], b"two", b"three"]);
    // What the client sent is what every voter holds (the CRC-covered bytes), at that offset.
    let sent = sample_batch();
    assert_eq!(batch.as_bytes()[21..], sent[21..]);

    let latest: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 5, &list_offsets(-1)).await;
    assert!(latest.topics[0].partitions[0].offset >= base + 3);
}

#[actix_rt::test]
async fn a_follower_refuses_produce_and_names_the_leader() {
    let cluster = start_cluster("kafka-follower", 3).await;
    let leader = wait_for_leader(&cluster, None).await;
    let follower = (leader + 1) % 3;
    let mut client = Client::connect(&cluster.addresses[follower].1).await;
    let produced = produce_one(&mut client, 10).await;
    let p = &produced.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ResponseError::NotLeaderOrFollower.code());
    assert_eq!(p.current_leader.leader_id.0, leader as i32 + 1);
    // A consumer without client metadata (Fetch before v11) reads only from the leader.
    let fetched: FetchResponse = client.call(ApiKey::Fetch, 10, &fetch(10, 0, 0)).await;
    assert_eq!(
        fetched.responses[0].partitions[0].error_code,
        ResponseError::NotLeaderOrFollower.code()
    );
}

#[actix_rt::test]
async fn a_long_poll_fetch_is_answered_when_a_batch_commits() {
    let cluster = start_cluster("kafka-long-poll", 1).await;
    let leader = wait_for_leader(&cluster, None).await;
    let address = cluster.addresses[leader].1.clone();
    let mut reader = Client::connect(&address).await;
    let latest: ListOffsetsResponse = reader.call(ApiKey::ListOffsets, 5, &list_offsets(-1)).await;
    let end = latest.topics[0].partitions[0].offset;
    // The poll may wait 20 s; a produce on another connection must end it long before.
    let poll = actix_rt::spawn(async move {
        let started = std::time::Instant::now();
        let r: FetchResponse = reader
            .call(ApiKey::Fetch, 12, &fetch(12, end, 20_000))
            .await;
        (r, started.elapsed())
    });
    let mut writer = Client::connect(&address).await;
    let produced = produce_one(&mut writer, 9).await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    let (fetched, waited) = poll.await.unwrap();
    let records = fetched.responses[0].partitions[0].records.clone().unwrap();
    assert!(!records.is_empty(), "the poll ended without the records");
    assert!(
        waited < Duration::from_secs(20),
        "the poll ran to its deadline"
    );
}

#[actix_rt::test]
async fn acks_zero_gets_no_answer_but_is_appended() {
    let cluster = start_cluster("kafka-acks0", 1).await;
    let leader = wait_for_leader(&cluster, None).await;
    let mut client = Client::connect(&cluster.addresses[leader].1).await;
    let request = common::kafka::frame(ApiKey::Produce, 7, 41, &produce(7, 0, sample_batch()));
    client.send_raw(&request).await.unwrap();
    // The next answer on the connection is for the next request: acks=0 got none.
    let versions: ApiVersionsResponse = client
        .call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
        .await;
    assert_eq!(versions.error_code, 0);
    let node = cluster.nodes[leader].as_ref().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let values = common::cluster::committed_values(node).await;
        if values.iter().any(|v| &v[..] == b"three") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never committed");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn hostile_frames_close_their_connection_and_the_node_keeps_serving() {
    let cluster = start_cluster("kafka-hostile", 1).await;
    let leader = wait_for_leader(&cluster, None).await;
    let address = cluster.addresses[leader].1.clone();
    let metadata_bomb: &[u8] = &[
        0, 3, 0, 4, 0, 0, 0, 1, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0,
    ];
    let mut unknown = common::kafka::sample(ApiKey::Metadata, 4).to_vec();
    unknown[0..2].copy_from_slice(&999i16.to_be_bytes());
    let hostile: Vec<Vec<u8>> = vec![metadata_bomb.to_vec(), unknown, vec![0, 1, 2]];
    for frame in &hostile {
        let mut client = Client::connect(&address).await;
        client.send_raw(frame).await.unwrap();
        assert!(
            client.closed(Duration::from_secs(5)).await,
            "{frame:?} was not refused"
        );
    }
    // A size prefix announcing a gigabyte is refused from its first bytes.
    let mut client = Client::connect(&address).await;
    use tokio::io::AsyncWriteExt;
    let mut huge = Vec::new();
    huge.extend_from_slice(&(1u32 << 30).to_be_bytes());
    huge.extend_from_slice(&3i16.to_be_bytes());
    huge.extend_from_slice(&[0; 6]);
    let mut raw = tokio::net::TcpStream::connect(&address).await.unwrap();
    raw.write_all(&huge).await.unwrap();
    let mut byte = [0u8; 1];
    use tokio::io::AsyncReadExt;
    let read = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a 1 GiB frame was not refused"
    );
    // The node still answers and commits.
    let produced = produce_one(&mut client, 9).await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
}

/// `sample_batch()` as idempotent producer `pid` sends it, from sequence `sequence`.
fn from_producer(pid: i64, sequence: i32) -> bytes::Bytes {
    let mut b = sample_batch().to_vec();
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&0i16.to_be_bytes());
    b[53..57].copy_from_slice(&sequence.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    bytes::Bytes::from(b)
}

async fn produce_batch(client: &mut Client, batch: bytes::Bytes) -> (i16, i64) {
    let response: ProduceResponse = client
        .call(ApiKey::Produce, 9, &produce(9, -1, batch))
        .await;
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// A producer whose answer was lost retries its batch: to the same leader, to the next leader
/// after the first is killed, and to a leader restarted from its disk. Each retry is answered
/// with the original offset and nothing is appended twice.
#[actix_rt::test]
async fn a_retried_batch_is_answered_with_its_original_offset_across_leaders_and_restarts() {
    let mut cluster = start_cluster("kafka-idempotent", 3).await;
    let first = wait_for_leader(&cluster, None).await;
    let mut client = Client::connect(&cluster.addresses[first].1).await;
    let (error, original) = produce_batch(&mut client, from_producer(4242, 0)).await;
    assert_eq!(error, 0);
    wait_for_commit_everywhere(&cluster, Offset(original + 2)).await;
    assert_eq!(
        produce_batch(&mut client, from_producer(4242, 0)).await,
        (0, original),
        "a retry to the same leader"
    );
    // The leader dies; its successor learned the producer's batch by replication.
    cluster.nodes[first].take().unwrap().kill().await;
    let second = wait_for_leader(&cluster, Some(first)).await;
    let mut client = Client::connect(&cluster.addresses[second].1).await;
    assert_eq!(
        produce_batch(&mut client, from_producer(4242, 0)).await,
        (0, original),
        "a retry to the next leader"
    );
    // The next sequence goes on; a gap is refused.
    let (error, next) = produce_batch(&mut client, from_producer(4242, 3)).await;
    assert_eq!(error, 0);
    assert_eq!(
        produce_batch(&mut client, from_producer(4242, 9)).await.0,
        ResponseError::OutOfOrderSequenceNumber.code()
    );
    // Every node restarts from its disk: the state comes back from the log.
    cluster.start(first).await;
    for i in 0..3 {
        if let Some(node) = cluster.nodes[i].take() {
            node.kill().await;
        }
    }
    for i in 0..3 {
        cluster.start(i).await;
    }
    let third = wait_for_leader(&cluster, None).await;
    let mut client = Client::connect(&cluster.addresses[third].1).await;
    assert_eq!(
        produce_batch(&mut client, from_producer(4242, 3)).await,
        (0, next)
    );
    assert_eq!(
        produce_batch(&mut client, from_producer(4242, 0)).await,
        (0, original)
    );
    let node = cluster.nodes[third].as_ref().unwrap();
    let values = common::cluster::committed_values(node).await;
    let ones = values.iter().filter(|v| &v[..] == b"one").count();
    assert_eq!(ones, 2, "two batches were produced, each once");
}

/// A consumer in another node's rack is pointed at that node by the leader (KIP-392) and reads
/// the committed records there; Metadata shows every node's rack.
#[actix_rt::test]
async fn a_consumer_in_a_followers_rack_reads_from_that_follower() {
    let cluster = common::cluster::start_cluster_in_racks("kafka-racks", &["r1", "r2", "r3"]).await;
    let leader = wait_for_leader(&cluster, None).await;
    let follower = (leader + 1) % 3;
    let rack = format!("r{}", follower + 1);
    let mut client = Client::connect(&cluster.addresses[leader].1).await;
    let (error, base) = produce_batch(&mut client, sample_batch()).await;
    assert_eq!(error, 0);
    wait_for_commit_everywhere(&cluster, Offset(base + 2)).await;
    let meta: MetadataResponse = client
        .call(ApiKey::Metadata, 12, &metadata(12, &[common::kafka::TOPIC]))
        .await;
    let racks: Vec<_> = meta
        .brokers
        .iter()
        .map(|b| (b.node_id.0, b.rack.as_ref().map(|r| r.as_str().to_owned())))
        .collect();
    assert_eq!(
        racks,
        (1..=3)
            .map(|i| (i, Some(format!("r{i}"))))
            .collect::<Vec<_>>()
    );
    // The follower's announced rack reaches the leader with its first fetch; poll for it.
    let mut request = fetch(12, base, 0);
    request.rack_id = kafka_protocol::protocol::StrBytes::from_string(rack);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let preferred = loop {
        let r: FetchResponse = client.call(ApiKey::Fetch, 12, &request).await;
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        if p.preferred_read_replica.0 != -1 {
            assert!(p.records.as_ref().is_none_or(|r| r.is_empty()));
            break p.preferred_read_replica.0;
        }
        assert!(std::time::Instant::now() < deadline, "never redirected");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(preferred, follower as i32 + 1);
    let mut at_follower = Client::connect(&cluster.addresses[follower].1).await;
    let r: FetchResponse = at_follower.call(ApiKey::Fetch, 12, &request).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.error_code, p.preferred_read_replica.0), (0, -1));
    let batch = BatchIter::new(p.records.clone().unwrap())
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(batch.base_offset(), Offset(base));
    // Without client metadata (before v11) a follower still refuses.
    let old: FetchResponse = at_follower
        .call(ApiKey::Fetch, 10, &fetch(10, base, 0))
        .await;
    assert_eq!(
        old.responses[0].partitions[0].error_code,
        ResponseError::NotLeaderOrFollower.code()
    );
}

/// DescribeQuorum tells what `describe()` tells: leader, epoch, high watermark, and each
/// voter's log end offset; a follower names the leader with NOT_LEADER_OR_FOLLOWER.
#[actix_rt::test]
async fn describe_quorum_agrees_with_describe() {
    use kafka_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse};
    let cluster = start_cluster("kafka-describe", 3).await;
    let leader = wait_for_leader(&cluster, None).await;
    let mut client = Client::connect(&cluster.addresses[leader].1).await;
    let (error, base) = produce_batch(&mut client, sample_batch()).await;
    assert_eq!(error, 0);
    wait_for_commit_everywhere(&cluster, Offset(base + 2)).await;
    let request = || {
        let sample = common::kafka::sample(ApiKey::DescribeQuorum, 2);
        match kraft::kafka::request::parse(sample).unwrap() {
            kraft::kafka::Parsed::Request { request, .. } => match *request {
                kraft::kafka::KafkaRequest::DescribeQuorum(r) => r,
                _ => unreachable!(),
            },
            _ => unreachable!(),
        }
    };
    let request: DescribeQuorumRequest = request();
    // Every voter has fetched past the batch once it committed everywhere; ask until the
    // leader's view of their progress is that too.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer: DescribeQuorumResponse = client.call(ApiKey::DescribeQuorum, 2, &request).await;
        let status = cluster.nodes[leader]
            .as_ref()
            .unwrap()
            .describe()
            .await
            .unwrap();
        let p = &answer.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        assert_eq!(p.leader_id.0, status.leader_id.unwrap().0);
        assert_eq!(p.leader_epoch, status.epoch.0);
        let voters: Vec<(i32, i64)> = p
            .current_voters
            .iter()
            .map(|v| (v.replica_id.0, v.log_end_offset))
            .collect();
        let expected: Vec<(i32, i64)> = status
            .voters
            .iter()
            .map(|(id, end)| {
                let end = if Some(*id) == status.node_id {
                    Some(status.log_end_offset)
                } else {
                    *end
                };
                (id.0, end.map_or(-1, |o| o.0))
            })
            .collect();
        let settled = p.high_watermark == status.high_watermark.unwrap().0
            && voters == expected
            && voters
                .iter()
                .all(|(_, end)| *end == status.log_end_offset.0);
        if settled {
            // Every voter's directory id, as it announced it (the leader's its own).
            for v in p.current_voters.iter() {
                let expected = uuid::Uuid::from_bytes([v.replica_id.0 as u8; 16]);
                assert_eq!(v.replica_directory_id, expected, "{v:?}");
            }
            // Every follower has fetched, and was caught up, within the test's life.
            for v in p.current_voters.iter() {
                assert!(v.last_fetch_timestamp > 1_700_000_000_000, "{v:?}");
                assert!(v.last_caught_up_timestamp > 1_700_000_000_000, "{v:?}");
                assert!(
                    v.last_caught_up_timestamp <= v.last_fetch_timestamp,
                    "{v:?}"
                );
            }
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{voters:?} vs {expected:?}"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let follower = (leader + 1) % 3;
    let mut at_follower = Client::connect(&cluster.addresses[follower].1).await;
    let answer: DescribeQuorumResponse =
        at_follower.call(ApiKey::DescribeQuorum, 2, &request).await;
    let p = &answer.topics[0].partitions[0];
    assert_eq!(p.error_code, ResponseError::NotLeaderOrFollower.code());
    assert_eq!(p.leader_id.0, leader as i32 + 1);
}
