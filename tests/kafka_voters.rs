//! Voter changes on running nodes of a static (kraft.version 0) quorum, through the Kafka face
//! (AddRaftVoter, RemoveRaftVoter, UpdateRaftVoter over a raw Kafka client) and through the
//! library API (`NodeHandle::add_voter` / `remove_voter`): Kafka's error codes for each refusal.
//! Adding and removing voters of a dynamic quorum is tested with the processes.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Buf;
use common::cluster::{start_cluster, wait_for_leader};
use common::kafka::{Client, add_raft_voter, add_raft_voter_frame, remove_raft_voter};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    AddRaftVoterResponse, ApiKey, ApiVersionsRequest, ApiVersionsResponse, RemoveRaftVoterResponse,
    ResponseHeader, UpdateRaftVoterRequest, UpdateRaftVoterResponse,
};
use kafka_protocol::protocol::{Decodable, HeaderVersion};
use kraft::node::{ListenerAddress, ReplicaKey, Voter, VoterChangeError, VoterChangeFailure};
use kraft::types::NodeId;
use kraft::uuid::Uuid;

async fn add(client: &mut Client, request: &kafka_protocol::messages::AddRaftVoterRequest) -> i16 {
    let answer: AddRaftVoterResponse = client.call(ApiKey::AddRaftVoter, 0, request).await;
    answer.error_code
}

async fn remove(
    client: &mut Client,
    request: &kafka_protocol::messages::RemoveRaftVoterRequest,
) -> i16 {
    let answer: RemoveRaftVoterResponse = client.call(ApiKey::RemoveRaftVoter, 0, request).await;
    answer.error_code
}

fn voter(id: i32, dir: u8) -> Voter {
    Voter {
        key: ReplicaKey::new(NodeId(id), Uuid([dir; 16])),
        endpoints: BTreeMap::from([(
            "CONTROLLER".to_string(),
            ListenerAddress {
                host: "localhost".into(),
                port: 9093,
            },
        )]),
        kraft_versions: (0, 1),
    }
}

#[actix_rt::test]
async fn a_static_quorum_refuses_voter_changes_with_kafkas_codes() {
    let cluster = start_cluster("kafka-voters", 3).await;
    let leader = wait_for_leader(&cluster, None).await;
    let follower = (leader + 1) % 3;
    let mut to_leader = Client::connect(&cluster.addresses[leader].1).await;
    let mut to_follower = Client::connect(&cluster.addresses[follower].1).await;

    let versions: ApiVersionsResponse = to_leader
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    let range = |key: ApiKey| {
        versions
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version))
    };
    assert_eq!(range(ApiKey::AddRaftVoter), Some((0, 1)));
    assert_eq!(range(ApiKey::RemoveRaftVoter), Some((0, 0)));

    let unsupported = ResponseError::UnsupportedVersion.code();
    let not_leader = ResponseError::NotLeaderOrFollower.code();
    let inconsistent = ResponseError::InconsistentClusterId.code();
    let invalid = ResponseError::InvalidRequest.code();

    // The leader of a kraft.version 0 quorum: its voters cannot change.
    let new_voter = add_raft_voter(Some("kafka-voters"), 4, 9);
    assert_eq!(add(&mut to_leader, &new_voter).await, unsupported);
    let old_voter = remove_raft_voter(None, 2, 2);
    assert_eq!(remove(&mut to_leader, &old_voter).await, unsupported);
    // A follower names no change at all.
    assert_eq!(add(&mut to_follower, &new_voter).await, not_leader);
    assert_eq!(remove(&mut to_follower, &old_voter).await, not_leader);
    // Another cluster's request, before anything else.
    let elsewhere = add_raft_voter(Some("other"), 4, 9);
    assert_eq!(add(&mut to_leader, &elsewhere).await, inconsistent);
    assert_eq!(add(&mut to_follower, &elsewhere).await, inconsistent);
    let elsewhere = remove_raft_voter(Some("other"), 2, 2);
    assert_eq!(remove(&mut to_leader, &elsewhere).await, inconsistent);
    // A voter without a directory id is no voter key.
    assert_eq!(
        add(&mut to_leader, &add_raft_voter(None, 4, 0)).await,
        invalid
    );
    assert_eq!(
        remove(&mut to_leader, &remove_raft_voter(None, 2, 0)).await,
        invalid
    );

    // Version 1 (AckWhenCommitted) is answered as version 0 is.
    to_leader
        .send_raw(&add_raft_voter_frame(1, 77, &new_voter))
        .await
        .unwrap();
    let mut frame = to_leader
        .receive_raw(Duration::from_secs(30))
        .await
        .expect("an answer");
    let header =
        ResponseHeader::decode(&mut frame, AddRaftVoterResponse::header_version(0)).unwrap();
    assert_eq!(header.correlation_id, 77);
    let answer = AddRaftVoterResponse::decode(&mut frame, 0).unwrap();
    assert_eq!(frame.remaining(), 0);
    assert_eq!(answer.error_code, unsupported);
    assert!(answer.error_message.is_some());

    // UpdateRaftVoter to a follower: NOT_LEADER_OR_FOLLOWER, naming the leader.
    let mut update = UpdateRaftVoterRequest::default();
    update.cluster_id = None;
    update.voter_id = 2;
    let answer: UpdateRaftVoterResponse =
        to_follower.call(ApiKey::UpdateRaftVoter, 0, &update).await;
    assert_eq!(answer.error_code, 6);
    assert_eq!(answer.current_leader.leader_id.0, leader as i32 + 1);
}

#[actix_rt::test]
async fn the_library_api_answers_every_voter_change_and_never_hangs() {
    let cluster = start_cluster("library-voters", 3).await;
    let leader = wait_for_leader(&cluster, None).await;
    let follower = (leader + 1) % 3;
    let (leader, follower) = (
        cluster.nodes[leader].clone().unwrap(),
        cluster.nodes[follower].clone().unwrap(),
    );
    let timeout = Duration::from_secs(5);

    let refused = leader.add_voter(voter(4, 9), timeout).await;
    assert_eq!(
        refused,
        Err(VoterChangeFailure::Refused(VoterChangeError::StaticQuorum))
    );
    assert_eq!(refused.unwrap_err().code(), 35);
    let key = ReplicaKey::new(NodeId(2), Uuid([2; 16]));
    assert_eq!(
        leader.remove_voter(key, timeout).await,
        Err(VoterChangeFailure::Refused(VoterChangeError::StaticQuorum))
    );
    match follower.add_voter(voter(4, 9), timeout).await {
        Err(VoterChangeFailure::Refused(e @ VoterChangeError::NotLeader { .. })) => {
            assert_eq!(e.code(), 6)
        }
        other => panic!("{other:?}"),
    }

    follower.shutdown().await;
    assert_eq!(
        follower.remove_voter(key, timeout).await,
        Err(VoterChangeFailure::Stopped)
    );
}
