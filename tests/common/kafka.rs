//! A small Kafka-protocol client for the tests, built on the kafka-protocol crate's request
//! encoders and response decoders: one request at a time over a tokio TCP stream.

#![allow(dead_code)]

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AddRaftVoterRequest, ApiKey, ApiVersionsRequest, DescribeClusterRequest, DescribeQuorumRequest,
    FetchRequest, FindCoordinatorRequest, InitProducerIdRequest, ListOffsetsRequest,
    MetadataRequest, ProduceRequest, RemoveRaftVoterRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const TOPIC: &str = "__raft_performance_test";

pub fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

/// A request frame without its size prefix: header, then body.
pub fn frame<T: Encodable>(api: ApiKey, version: i16, correlation_id: i32, body: &T) -> Bytes {
    let mut header = RequestHeader::default();
    header.request_api_key = api as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str("kraft-test"));
    let mut out = BytesMut::new();
    header
        .encode(&mut out, api.request_header_version(version))
        .unwrap();
    body.encode(&mut out, version).unwrap();
    out.freeze()
}

pub fn metadata(version: i16, names: &[&str]) -> MetadataRequest {
    let mut r = MetadataRequest::default();
    r.topics = Some(
        names
            .iter()
            .map(|n| {
                let mut t = MetadataRequestTopic::default();
                t.name = Some(TopicName(StrBytes::from_string(n.to_string())));
                t
            })
            .collect(),
    );
    if version >= 4 {
        r.allow_auto_topic_creation = false;
    }
    r
}

pub fn produce(_version: i16, acks: i16, records: Bytes) -> ProduceRequest {
    let mut p = PartitionProduceData::default();
    p.index = 0;
    p.records = Some(records);
    let mut t = TopicProduceData::default();
    t.name = topic();
    t.partition_data = vec![p];
    let mut r = ProduceRequest::default();
    r.acks = acks;
    r.timeout_ms = 10_000;
    r.topic_data = vec![t];
    r
}

pub fn fetch(version: i16, offset: i64, max_wait_ms: i32) -> FetchRequest {
    let mut p = FetchPartition::default();
    p.partition = 0;
    p.fetch_offset = offset;
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    if version >= 13 {
        t.topic_id = kraft::kafka::TOPIC_ID;
    } else {
        t.topic = topic();
    }
    t.partitions = vec![p];
    let mut r = FetchRequest::default();
    if version <= 14 {
        r.replica_id = (-1).into();
    }
    r.max_wait_ms = max_wait_ms;
    r.min_bytes = 1;
    r.max_bytes = 1 << 20;
    r.topics = vec![t];
    r
}

pub fn list_offsets(timestamp: i64) -> ListOffsetsRequest {
    let mut p = ListOffsetsPartition::default();
    p.partition_index = 0;
    p.timestamp = timestamp;
    let mut t = ListOffsetsTopic::default();
    t.name = topic();
    t.partitions = vec![p];
    let mut r = ListOffsetsRequest::default();
    r.replica_id = (-1).into();
    r.topics = vec![t];
    r
}

/// A request of each kind kraft serves, encoded at `version` (header and body).
pub fn sample(api: ApiKey, version: i16) -> Bytes {
    let c = 7;
    match api {
        ApiKey::ApiVersions => {
            let mut r = ApiVersionsRequest::default();
            if version >= 3 {
                r.client_software_name = StrBytes::from_static_str("kraft-test");
                r.client_software_version = StrBytes::from_static_str("1.0");
            }
            frame(api, version, c, &r)
        }
        ApiKey::Metadata => frame(api, version, c, &metadata(version, &[TOPIC, "other"])),
        ApiKey::Produce => frame(api, version, c, &produce(version, -1, sample_batch())),
        ApiKey::Fetch => frame(api, version, c, &fetch(version, 0, 0)),
        ApiKey::ListOffsets => frame(api, version, c, &list_offsets(-1)),
        ApiKey::InitProducerId => {
            let mut r = InitProducerIdRequest::default();
            r.transaction_timeout_ms = 1000;
            frame(api, version, c, &r)
        }
        ApiKey::DescribeCluster => frame(api, version, c, &DescribeClusterRequest::default()),
        ApiKey::DescribeQuorum => {
            use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
            let mut p = PartitionData::default();
            p.partition_index = 0;
            let mut t = TopicData::default();
            t.topic_name = TopicName(StrBytes::from_static_str("__cluster_metadata"));
            t.partitions = vec![p];
            let mut r = DescribeQuorumRequest::default();
            r.topics = vec![t];
            frame(api, version, c, &r)
        }
        ApiKey::FindCoordinator => {
            let mut r = FindCoordinatorRequest::default();
            if version <= 3 {
                r.key = StrBytes::from_static_str("group");
            } else {
                r.coordinator_keys = vec![StrBytes::from_static_str("group")];
            }
            frame(api, version, c, &r)
        }
        ApiKey::AddRaftVoter => add_raft_voter_frame(version, c, &add_raft_voter(None, 4, 9)),
        ApiKey::RemoveRaftVoter => frame(api, version, c, &remove_raft_voter(None, 2, 9)),
        ApiKey::UpdateRaftVoter => {
            use kafka_protocol::messages::update_raft_voter_request::Listener;
            let mut l = Listener::default();
            l.name = StrBytes::from_static_str("CONTROLLER");
            l.host = StrBytes::from_static_str("localhost");
            l.port = 9093;
            let mut r = kafka_protocol::messages::UpdateRaftVoterRequest::default();
            r.cluster_id = None;
            r.voter_id = 2;
            r.voter_directory_id = uuid::Uuid::from_bytes([9; 16]);
            r.listeners = vec![l];
            r.k_raft_version_feature.max_supported_version = 1;
            frame(api, version, c, &r)
        }
        other => panic!("no sample for {other:?}"),
    }
}

/// AddRaftVoter for voter `id` with directory id bytes `dir` (0: none), listening on
/// CONTROLLER://localhost:9093.
pub fn add_raft_voter(cluster_id: Option<&str>, id: i32, dir: u8) -> AddRaftVoterRequest {
    let mut l = kafka_protocol::messages::add_raft_voter_request::Listener::default();
    l.name = StrBytes::from_static_str("CONTROLLER");
    l.host = StrBytes::from_static_str("localhost");
    l.port = 9093;
    let mut r = AddRaftVoterRequest::default();
    r.cluster_id = cluster_id.map(|c| StrBytes::from_string(c.to_string()));
    r.timeout_ms = 5000;
    r.voter_id = id;
    r.voter_directory_id = uuid::Uuid::from_bytes([dir; 16]);
    r.listeners = vec![l];
    r
}

/// AddRaftVoter framed at `version`: v1 (which the crate cannot encode) is v0's body with
/// AckWhenCommitted = true before the tag buffer.
pub fn add_raft_voter_frame(version: i16, correlation_id: i32, r: &AddRaftVoterRequest) -> Bytes {
    let v0 = frame(ApiKey::AddRaftVoter, 0, correlation_id, r);
    if version == 0 {
        return v0;
    }
    let mut bytes = v0.to_vec();
    bytes[2..4].copy_from_slice(&version.to_be_bytes());
    let tags = bytes.pop().unwrap();
    bytes.extend([1, tags]);
    Bytes::from(bytes)
}

pub fn remove_raft_voter(cluster_id: Option<&str>, id: i32, dir: u8) -> RemoveRaftVoterRequest {
    let mut r = RemoveRaftVoterRequest::default();
    r.cluster_id = cluster_id.map(|c| StrBytes::from_string(c.to_string()));
    r.voter_id = id;
    r.voter_directory_id = uuid::Uuid::from_bytes([dir; 16]);
    r
}

/// One uncompressed batch of three records, as a client would send it (base offset 0).
pub fn sample_batch() -> Bytes {
    let mut b = kraft::record::BatchBuilder::new(
        kraft::record::BatchKind::Data,
        kraft::types::Offset(0),
        kraft::types::Epoch(0),
    );
    for v in [&b"one"[..], b"two", b"three"] {
        b.append(1_700_000_000_000, None, Some(v), &[]).unwrap();
    }
    b.build().unwrap()
}

/// A connection to a node's listener, speaking Kafka.
pub struct Client {
    stream: TcpStream,
    next: i32,
}

impl Client {
    pub async fn connect(address: &str) -> Client {
        Client {
            stream: TcpStream::connect(address).await.unwrap(),
            next: 1,
        }
    }

    /// Writes one frame (size prefix added).
    pub async fn send_raw(&mut self, frame: &[u8]) -> std::io::Result<()> {
        let mut out = BytesMut::with_capacity(4 + frame.len());
        out.put_u32(frame.len() as u32);
        out.put_slice(frame);
        self.stream.write_all(&out).await
    }

    /// Reads one response frame (without its size prefix); `None` if the node closed the
    /// connection, or sent nothing within `wait`.
    pub async fn receive_raw(&mut self, wait: Duration) -> Option<Bytes> {
        let read = async {
            let size = self.stream.read_u32().await.ok()?;
            let mut body = vec![0u8; size as usize];
            self.stream.read_exact(&mut body).await.ok()?;
            Some(Bytes::from(body))
        };
        tokio::time::timeout(wait, read).await.ok().flatten()
    }

    /// Whether the node closed the connection (within `wait`).
    pub async fn closed(&mut self, wait: Duration) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(wait, self.stream.read(&mut byte)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    /// Sends a request and decodes its response, checking the correlation id.
    pub async fn call<Req: Encodable, Resp: Decodable + HeaderVersion>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> Resp {
        let correlation = self.next;
        self.next += 1;
        self.send_raw(&frame(api, version, correlation, request))
            .await
            .unwrap();
        let mut bytes = self
            .receive_raw(Duration::from_secs(30))
            .await
            .expect("a response");
        let header = kafka_protocol::messages::ResponseHeader::decode(
            &mut bytes,
            Resp::header_version(version),
        )
        .unwrap();
        assert_eq!(header.correlation_id, correlation);
        let response = Resp::decode(&mut bytes, version).unwrap();
        assert_eq!(bytes.remaining(), 0, "{api:?} v{version}: bytes left over");
        response
    }
}
