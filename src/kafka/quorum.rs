//! DescribeQuorum: the leader, its epoch and high watermark, and each voter's and observer's log
//! end offset, last fetch and last caught-up times as the leader knows them. Served by the leader only;
//! another node answers NOT_LEADER_OR_FOLLOWER naming the leader it knows, as Kafka's
//! controllers do.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use kafka_protocol::protocol::StrBytes;

use super::{PARTITION, QuorumView, ReplicaReport, is_quorum_topic};
use crate::types::NodeId;

pub fn describe_quorum(
    request: &DescribeQuorumRequest,
    version: i16,
    view: &QuorumView,
) -> DescribeQuorumResponse {
    let mut response = DescribeQuorumResponse::default();
    // As Kafka's leader: only a request naming the one quorum partition, once, is answered with
    // the quorum's state. Any other shape gets UNKNOWN_TOPIC_OR_PARTITION for every partition it
    // names, so a request repeating the partition thousands of times (it fits in the request
    // limit) cannot make the node build an answer with every voter and observer in each.
    let single = request.topics.len() == 1 && request.topics[0].partitions.len() == 1;
    // The voters' endpoints exist from v2 (KIP-853), and only the leader's answer carries them.
    if version >= 2 && view.is_leader && single {
        response.nodes = voter_nodes(view);
    }
    response.topics = request
        .topics
        .iter()
        .map(|topic| {
            let mut t = TopicData::default();
            t.topic_name = topic.topic_name.clone();
            let ours = single && is_quorum_topic(topic.topic_name.0.as_str());
            t.partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let ours = ours && p.partition_index == PARTITION;
                    partition(ours, p.partition_index, version, view)
                })
                .collect();
            t
        })
        .collect();
    response
}

/// Each voter's endpoint on the quorum listener, as Kafka lists a static voter set's.
fn voter_nodes(view: &QuorumView) -> Vec<Node> {
    let Some(name) = &view.listener_name else {
        return Vec::new();
    };
    view.endpoints
        .iter()
        .map(|e| {
            let mut listener = Listener::default();
            listener.name = StrBytes::from_string(name.clone());
            listener.host = StrBytes::from_string(e.host.clone());
            listener.port = e.port;
            let mut node = Node::default();
            node.node_id = BrokerId(e.node_id.0);
            node.listeners = vec![listener];
            node
        })
        .collect()
}

fn partition(ours: bool, index: i32, version: i16, view: &QuorumView) -> PartitionData {
    let mut d = PartitionData::default();
    d.partition_index = index;
    d.leader_id = BrokerId(view.leader_id.map_or(-1, |n| n.0));
    d.leader_epoch = view.epoch.0;
    if !ours {
        d.error_code = ResponseError::UnknownTopicOrPartition.code();
        return d;
    }
    if !view.is_leader {
        d.error_code = ResponseError::NotLeaderOrFollower.code();
        return d;
    }
    d.high_watermark = view.high_watermark.map_or(-1, |o| o.0);
    d.current_voters = view
        .voter_ids()
        .map(|id| {
            // The leader is caught up with itself as of now, as Kafka reports it.
            let report = if Some(id) == view.local_id {
                ReplicaReport {
                    log_end_offset: Some(view.log_end_offset),
                    last_fetch_ms: Some(view.now_ms),
                    last_caught_up_ms: Some(view.now_ms),
                }
            } else {
                let (fetched, caught_up) = view.voter_times.get(&id).copied().unwrap_or_default();
                ReplicaReport {
                    log_end_offset: view.voter_progress.get(&id).copied().flatten(),
                    last_fetch_ms: fetched,
                    last_caught_up_ms: caught_up,
                }
            };
            replica_state(id, &report, version, view)
        })
        .collect();
    d.observers = view
        .observers
        .iter()
        .map(|(id, report)| replica_state(*id, report, version, view))
        .collect();
    d
}

fn replica_state(
    id: NodeId,
    report: &ReplicaReport,
    version: i16,
    view: &QuorumView,
) -> ReplicaState {
    let mut r = ReplicaState::default();
    r.replica_id = BrokerId(id.0);
    r.log_end_offset = report.log_end_offset.map_or(-1, |o| o.0);
    // Directory ids exist from v2 (KIP-853); an older answer must leave them unset.
    if version >= 2 {
        r.replica_directory_id = view.directory_ids.get(&id).copied().unwrap_or_default();
    }
    r.last_fetch_timestamp = report.last_fetch_ms.unwrap_or(-1);
    r.last_caught_up_timestamp = report.last_caught_up_ms.unwrap_or(-1);
    r
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::describe_quorum_request::{
        PartitionData as AskedPartition, TopicData as AskedTopic,
    };
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::*;
    use crate::kafka::{METADATA_TOPIC, QuorumView, ReplicaReport};
    use crate::types::{Epoch, Offset};

    /// A leader's view with three voters and as many observers as it tracks.
    fn leader_view() -> QuorumView {
        let observers = (100..100 + crate::raft::MAX_TRACKED_OBSERVERS as i32)
            .map(|i| (NodeId(i), ReplicaReport::default()))
            .collect();
        QuorumView {
            cluster_id: "c".into(),
            local_id: Some(NodeId(1)),
            endpoints: (1..=3)
                .filter_map(|i| crate::kafka::Endpoint::parse(NodeId(i), "localhost:1"))
                .collect(),
            listener_name: Some("CONTROLLER".into()),
            leader_id: Some(NodeId(1)),
            epoch: Epoch(2),
            is_leader: true,
            high_watermark: Some(Offset(5)),
            log_start_offset: Offset(0),
            log_end_offset: Offset(5),
            voter_progress: Default::default(),
            racks: Default::default(),
            directory_ids: Default::default(),
            voter_times: Default::default(),
            observers,
            now_ms: 1,
        }
    }

    fn asking(topics: usize, partitions: usize) -> DescribeQuorumRequest {
        let mut topic = AskedTopic::default();
        topic.topic_name = TopicName(StrBytes::from_static_str(METADATA_TOPIC));
        topic.partitions = (0..partitions).map(|_| AskedPartition::default()).collect();
        let mut request = DescribeQuorumRequest::default();
        request.topics = (0..topics).map(|_| topic.clone()).collect();
        request
    }

    #[test]
    fn the_one_quorum_partition_is_answered_with_voters_and_observers() {
        let view = leader_view();
        let answer = describe_quorum(&asking(1, 1), 2, &view);
        let p = &answer.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        assert_eq!(p.current_voters.len(), 3);
        assert_eq!(p.observers.len(), view.observers.len());
    }

    #[test]
    fn a_request_repeating_the_partition_gets_errors_not_copies_of_the_quorum() {
        let view = leader_view();
        // 30,000 partitions is about 120 KB of request, under the request limit.
        for (topics, partitions) in [(1, 30_000), (30_000, 1), (2, 1)] {
            let answer = describe_quorum(&asking(topics, partitions), 2, &view);
            let all: Vec<_> = answer.topics.iter().flat_map(|t| &t.partitions).collect();
            assert_eq!(all.len(), topics * partitions);
            for p in all {
                assert_eq!(p.error_code, ResponseError::UnknownTopicOrPartition.code());
                assert!(p.current_voters.is_empty() && p.observers.is_empty());
            }
            let size = answer.compute_size(2).unwrap();
            assert!(
                size < 2 * 1024 * 1024,
                "{topics}x{partitions}: {size} bytes"
            );
        }
    }
}
