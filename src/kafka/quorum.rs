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

/// The voters DescribeQuorum lists: the voter set in force, else the configured voters.
fn voter_ids(view: &QuorumView) -> Vec<NodeId> {
    match view.voter_set.is_empty() {
        false => view.voter_set.iter().map(|v| v.key.id).collect(),
        true => view.voter_ids().collect(),
    }
}

/// A voter's directory id: the voter set's (a dynamic quorum's), else the one it announced.
fn directory_id(view: &QuorumView, id: NodeId) -> uuid::Uuid {
    let in_set = view
        .voter_set
        .iter()
        .find(|v| v.key.id == id)
        .and_then(|v| v.key.directory_id);
    match in_set {
        Some(dir) => uuid::Uuid::from_bytes(dir.0),
        None => view.directory_ids.get(&id).copied().unwrap_or_default(),
    }
}

fn listener(name: &str, host: &str, port: u16) -> Listener {
    let mut listener = Listener::default();
    listener.name = StrBytes::from_string(name.to_owned());
    listener.host = StrBytes::from_string(host.to_owned());
    listener.port = port;
    listener
}

/// Each voter's endpoints: every listener the voter set names for it (a dynamic quorum), else
/// its configured endpoint on the quorum listener, as Kafka lists a static voter set's.
fn voter_nodes(view: &QuorumView) -> Vec<Node> {
    voter_ids(view)
        .into_iter()
        .filter_map(|id| {
            let in_set = view.voter_set.iter().find(|v| v.key.id == id);
            let listeners: Vec<Listener> = match in_set {
                Some(v) if !v.endpoints.is_empty() => v
                    .endpoints
                    .iter()
                    .map(|(name, a)| listener(name, &a.host, a.port))
                    .collect(),
                _ => {
                    let (name, e) = (view.listener_name.as_ref()?, view.endpoint(id)?);
                    vec![listener(name, &e.host, e.port)]
                }
            };
            let mut node = Node::default();
            node.node_id = BrokerId(id.0);
            node.listeners = listeners;
            Some(node)
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
    d.current_voters = voter_ids(view)
        .into_iter()
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
        r.replica_directory_id = directory_id(view, id);
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
            voter_set: Default::default(),
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
    fn a_dynamic_voter_set_gives_the_voters_directory_ids_and_endpoints() {
        use crate::raft::{ListenerAddress, ReplicaKey, Voter};
        let mut view = leader_view();
        let voter = |id: i32, dir: u8, listeners: &[(&str, u16)]| Voter {
            key: ReplicaKey::new(NodeId(id), crate::uuid::Uuid([dir; 16])),
            endpoints: listeners
                .iter()
                .map(|&(name, port)| {
                    let at = ListenerAddress {
                        host: format!("h{id}"),
                        port,
                    };
                    (name.to_string(), at)
                })
                .collect(),
            kraft_versions: (0, 1),
        };
        // Voters 1 and 4 (4 not configured); 2 and 3 are configured but no longer voters.
        view.voter_set = vec![
            voter(1, 7, &[("CONTROLLER", 9001)]),
            voter(4, 9, &[("CONTROLLER", 9004), ("SSL", 9104)]),
        ];
        view.directory_ids
            .insert(NodeId(1), uuid::Uuid::from_bytes([3; 16]));
        let answer = describe_quorum(&asking(1, 1), 2, &view);
        let p = &answer.topics[0].partitions[0];
        let voters: Vec<(i32, [u8; 16])> = p
            .current_voters
            .iter()
            .map(|r| (r.replica_id.0, r.replica_directory_id.into_bytes()))
            .collect();
        assert_eq!(voters, [(1, [7; 16]), (4, [9; 16])]);
        type Listed = Vec<(i32, Vec<(String, String, u16)>)>;
        let nodes: Listed = answer
            .nodes
            .iter()
            .map(|n| {
                let l = n
                    .listeners
                    .iter()
                    .map(|l| (l.name.to_string(), l.host.to_string(), l.port))
                    .collect();
                (n.node_id.0, l)
            })
            .collect();
        assert_eq!(
            nodes,
            [
                (1, vec![("CONTROLLER".into(), "h1".into(), 9001)]),
                (
                    4,
                    vec![
                        ("CONTROLLER".into(), "h4".into(), 9004),
                        ("SSL".into(), "h4".into(), 9104)
                    ]
                ),
            ]
        );
        // A static voter set (no directory ids, no endpoints) keeps the configured endpoints
        // and the announced directory ids.
        view.voter_set = vec![voter(1, 0, &[]), voter(2, 0, &[]), voter(3, 0, &[])];
        let answer = describe_quorum(&asking(1, 1), 2, &view);
        let p = &answer.topics[0].partitions[0];
        assert_eq!(
            p.current_voters[0].replica_directory_id.into_bytes(),
            [3; 16]
        );
        assert_eq!(answer.nodes.len(), 3);
        assert_eq!(answer.nodes[1].listeners[0].port, 1);
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
