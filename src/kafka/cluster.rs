//! Answers about the cluster itself: ApiVersions, Metadata, DescribeCluster and
//! FindCoordinator. Pure functions of the request, its version and a [`QuorumView`].

use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, DescribeClusterRequest, DescribeClusterResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::request::{SUPPORTED, supported_range};
use super::{METADATA_TOPIC, PARTITION, PERFORMANCE_TOPIC, QuorumView, TOPIC_ID, is_quorum_topic};

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// `-1` for no node, as Kafka writes it.
fn broker(id: Option<crate::types::NodeId>) -> BrokerId {
    BrokerId(id.map_or(-1, |n| n.0))
}

/// Every api kraft serves, with its version range.
pub fn api_versions() -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.api_keys = SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            let mut v = ApiVersion::default();
            v.api_key = key as i16;
            v.min_version = min;
            v.max_version = max;
            v
        })
        .collect();
    response
}

/// The answer to an ApiVersions request newer than kraft knows (sent in version 0): the error
/// and ApiVersions' own range, so the client retries at a version both speak.
pub fn api_versions_too_new() -> ApiVersionsResponse {
    let (min, max) = supported_range(ApiKey::ApiVersions).expect("advertised");
    let mut v = ApiVersion::default();
    v.api_key = ApiKey::ApiVersions as i16;
    v.min_version = min;
    v.max_version = max;
    let mut response = ApiVersionsResponse::default();
    response.error_code = ResponseError::UnsupportedVersion.code();
    response.api_keys = vec![v];
    response
}

/// Metadata: every voter as a broker, the log as one partition led by the leader, every voter
/// a replica and in sync (a voter that lags still votes; Kafka's controllers list the same).
pub fn metadata(request: &MetadataRequest, version: i16, view: &QuorumView) -> MetadataResponse {
    let mut response = MetadataResponse::default();
    response.brokers = view
        .endpoints
        .iter()
        .map(|e| {
            let mut b = MetadataResponseBroker::default();
            b.node_id = BrokerId(e.node_id.0);
            b.host = text(&e.host);
            b.port = i32::from(e.port);
            if version >= 1 {
                b.rack = view.racks.get(&e.node_id).map(|r| text(r));
            }
            b
        })
        .collect();
    if version >= 2 {
        response.cluster_id = Some(text(&view.cluster_id));
    }
    if version >= 1 {
        response.controller_id = broker(view.leader_endpoint().map(|e| e.node_id));
    }
    // Version 0 lists all topics with an empty list; later ones with null.
    let all = match &request.topics {
        None => true,
        Some(topics) => version == 0 && topics.is_empty(),
    };
    let names: Vec<Option<String>> = match &request.topics {
        Some(topics) if !all => topics
            .iter()
            .map(|t| t.name.as_ref().map(|n| n.0.as_str().to_owned()))
            .collect(),
        _ => vec![Some(PERFORMANCE_TOPIC.to_owned())],
    };
    response.topics = names
        .into_iter()
        .map(|name| metadata_topic(name, version, view))
        .collect();
    response
}

fn metadata_topic(name: Option<String>, version: i16, view: &QuorumView) -> MetadataResponseTopic {
    let mut topic = MetadataResponseTopic::default();
    topic.name = name.as_deref().map(|n| TopicName(text(n)));
    if !name.as_deref().is_some_and(is_quorum_topic) {
        topic.error_code = ResponseError::UnknownTopicOrPartition.code();
        return topic;
    }
    if version >= 10 {
        topic.topic_id = TOPIC_ID;
    }
    topic.is_internal = name.as_deref() == Some(METADATA_TOPIC);
    let mut partition = MetadataResponsePartition::default();
    partition.partition_index = PARTITION;
    let leader = view.leader_endpoint().map(|e| e.node_id);
    partition.leader_id = broker(leader);
    if leader.is_none() {
        partition.error_code = ResponseError::LeaderNotAvailable.code();
    }
    if version >= 7 {
        partition.leader_epoch = view.epoch.0;
    }
    partition.replica_nodes = view.voter_ids().map(|n| BrokerId(n.0)).collect();
    partition.isr_nodes = partition.replica_nodes.clone();
    topic.partitions = vec![partition];
    topic
}

/// DescribeCluster: the voters, the leader as the "controller", and the endpoint type echoed so
/// that both Kafka's admin client (which asks for controllers) and others accept the answer.
pub fn describe_cluster(
    request: &DescribeClusterRequest,
    version: i16,
    view: &QuorumView,
) -> DescribeClusterResponse {
    let mut response = DescribeClusterResponse::default();
    if version >= 1 {
        response.endpoint_type = request.endpoint_type;
    }
    response.cluster_id = text(&view.cluster_id);
    response.controller_id = broker(view.leader_endpoint().map(|e| e.node_id));
    response.brokers = view
        .endpoints
        .iter()
        .map(|e| {
            let mut b = DescribeClusterBroker::default();
            b.broker_id = BrokerId(e.node_id.0);
            b.host = text(&e.host);
            b.port = i32::from(e.port);
            b.rack = view.racks.get(&e.node_id).map(|r| text(r));
            b
        })
        .collect();
    response
}

/// FindCoordinator: kraft has no group or transaction coordinator, so every key gets
/// COORDINATOR_NOT_AVAILABLE (consumers with a group id still read by assignment).
pub fn find_coordinator(request: &FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let code = ResponseError::CoordinatorNotAvailable.code();
    let message = || Some(text("kraft has no group or transaction coordinator"));
    let mut response = FindCoordinatorResponse::default();
    if version >= 4 {
        response.coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let mut c = Coordinator::default();
                c.key = key.clone();
                c.node_id = BrokerId(-1);
                c.port = -1;
                c.error_code = code;
                c.error_message = message();
                c
            })
            .collect();
    } else {
        response.error_code = code;
        response.node_id = BrokerId(-1);
        response.port = -1;
        if version >= 1 {
            response.error_message = message();
        }
    }
    response
}
