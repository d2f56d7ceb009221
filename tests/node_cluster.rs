//! Three actor nodes in one process, talking over real loopback TCP with the peer protocol:
//! they elect one leader, replicate and commit on every node, and hand over on a graceful
//! shutdown of the leader.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::cluster::{raft_config, start_cluster, wait_for_commit_everywhere, wait_for_leader};
use kraft::node::{NodeHandle, NodeOptions};
use kraft::raft::RoleKind;
use kraft::storage::LogConfig;
use kraft::types::{NodeId, Offset};

#[actix_rt::test]
async fn three_nodes_elect_replicate_and_hand_over() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let mut cluster = start_cluster("c1", 3).await;
    let leader = wait_for_leader(&cluster, None).await;
    let handle = cluster.nodes[leader].clone().unwrap();
    let mut last = Offset(0);
    for i in 0..20 {
        let (_, end) = handle
            .append(vec![Bytes::from(format!("value-{i}"))])
            .await
            .unwrap();
        last = end;
    }
    wait_for_commit_everywhere(&cluster, last).await;

    // Graceful shutdown: the leader hands over and a new leader commits.
    let stopped_at = Instant::now();
    handle.shutdown().await;
    cluster.nodes[leader] = None;
    let new_leader = wait_for_leader(&cluster, Some(leader)).await;
    let new = cluster.nodes[new_leader].clone().unwrap();
    let (first, end) = new
        .append(vec![Bytes::from_static(b"after handover")])
        .await
        .unwrap();
    let handover = stopped_at.elapsed();
    assert!(first > last, "the new leader continues the log");
    wait_for_commit_everywhere(&cluster, end).await;
    eprintln!("graceful handover to the next commit: {handover:?}");
    for node in cluster.nodes.iter().flatten() {
        node.shutdown().await;
    }
}

#[actix_rt::test]
async fn a_killed_leader_is_replaced_and_catches_up_after_restart() {
    let mut cluster = start_cluster("c2", 3).await;
    let leader = wait_for_leader(&cluster, None).await;
    let handle = cluster.nodes[leader].clone().unwrap();
    let mut last = Offset(0);
    for i in 0..10 {
        last = handle
            .append(vec![Bytes::from(format!("before-{i}"))])
            .await
            .unwrap()
            .1;
    }
    let killed_at = Instant::now();
    handle.kill().await;
    cluster.nodes[leader] = None;
    let new_leader = wait_for_leader(&cluster, Some(leader)).await;
    let new = cluster.nodes[new_leader].clone().unwrap();
    let (first, end) = new
        .append(vec![Bytes::from_static(b"after the crash")])
        .await
        .unwrap();
    eprintln!("leader kill to the next commit: {:?}", killed_at.elapsed());
    assert!(
        first > last,
        "nothing acknowledged before the crash is overwritten"
    );
    cluster.start(leader).await;
    wait_for_commit_everywhere(&cluster, end).await;
    let restarted = cluster.nodes[leader]
        .as_ref()
        .unwrap()
        .describe()
        .await
        .unwrap();
    assert_eq!(restarted.role, RoleKind::Follower);
    for node in cluster.nodes.iter().flatten() {
        node.shutdown().await;
    }
}

#[actix_rt::test]
async fn a_node_of_another_cluster_is_refused_and_disturbs_nothing() {
    let cluster = start_cluster("c3", 3).await;
    let leader = wait_for_leader(&cluster, None).await;
    // A node that believes it is voter 4 of cluster "intruder", dialling the real voters.
    let dir = tempfile::tempdir().unwrap();
    let mut addresses = cluster.addresses.clone();
    addresses.push((NodeId(4), "127.0.0.1:1".into()));
    let intruder = NodeHandle::start(NodeOptions {
        cluster_id: "intruder".into(),
        node_id: Some(NodeId(4)),
        voters: addresses.iter().map(|(id, _)| *id).collect(),
        voter_addresses: addresses,
        listener: None,
        partition_dir: dir.path().join("p-0"),
        log: LogConfig::default(),
        raft: Some(raft_config()),
        state_machine: Default::default(),
        fs: None,
        snapshots: Default::default(),
        connections: Default::default(),
        security: Default::default(),
        rack: None,
        directory_id: None,
        listener_name: None,
        bootstrap_servers: vec![],
    })
    .await
    .unwrap();
    let handle = cluster.nodes[leader].clone().unwrap();
    let before = handle.describe().await.unwrap();
    let mut last = Offset(0);
    for i in 0..5 {
        last = handle
            .append(vec![Bytes::from(format!("v{i}"))])
            .await
            .unwrap()
            .1;
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for_commit_everywhere(&cluster, last).await;
    let after = handle.describe().await.unwrap();
    assert_eq!(
        (after.role, after.epoch),
        (RoleKind::Leader, before.epoch),
        "the intruder changed nothing"
    );
    let seen = intruder.describe().await.unwrap();
    assert_eq!(
        seen.leader_id, None,
        "the intruder never learned about the cluster"
    );
    intruder.shutdown().await;
    for node in cluster.nodes.iter().flatten() {
        node.shutdown().await;
    }
}

#[actix_rt::test]
async fn a_subscriber_on_a_follower_sees_commits_and_reads_them_back() {
    let cluster = start_cluster("c4", 3).await;
    let leader = wait_for_leader(&cluster, None).await;
    let follower = (0..3).find(|i| *i != leader).unwrap();
    let follower = cluster.nodes[follower].clone().unwrap();
    let mut events = follower.subscribe().await.unwrap();
    let handle = cluster.nodes[leader].clone().unwrap();
    let values: Vec<Bytes> = (0..5)
        .map(|i| Bytes::from(format!("subscribed-{i}")))
        .collect();
    let (first, last) = handle.append(values.clone()).await.unwrap();

    // Events arrive in order; wait for a commit covering the append.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("no commit event");
        let event = actix_rt::time::timeout(left, events.recv())
            .await
            .expect("no event in time")
            .unwrap();
        if let kraft::actors::messages::NodeEvent::Committed { high_watermark } = event
            && high_watermark > last
        {
            break;
        }
    }

    // The committed batches read back on the follower hold exactly the appended values.
    let mut read = Vec::new();
    let mut next = Offset(0);
    while next <= last {
        let bytes = follower.read_committed(next, 1 << 20).await.unwrap();
        assert!(!bytes.is_empty(), "nothing committed at {next}");
        for batch in kraft::record::BatchIter::new(bytes) {
            let batch = batch.unwrap();
            next = batch.next_offset();
            if batch.base_offset() >= first && !batch.is_control() {
                read.extend(
                    batch
                        .decode_records()
                        .unwrap()
                        .into_iter()
                        .map(|r| r.value.unwrap()),
                );
            }
        }
    }
    assert_eq!(read, values);
    // Nothing past the high watermark is readable as committed.
    let hw = follower.describe().await.unwrap().high_watermark.unwrap();
    assert!(
        follower
            .read_committed(hw, 1 << 20)
            .await
            .unwrap()
            .is_empty()
    );

    // The leader describes every voter's fetch state.
    let status = handle.describe().await.unwrap();
    assert_eq!(status.voters.len(), 3);
    assert!(
        status.voters.values().all(|v| v.is_some()),
        "{:?}",
        status.voters
    );
    for node in cluster.nodes.iter().flatten() {
        node.shutdown().await;
    }
}

#[actix_rt::test]
async fn connections_come_back_after_a_peer_restarts() {
    let mut cluster = start_cluster("c5", 3).await;
    // Kill the first leader and restart it: every peer's connection to it drops and must return.
    let a = wait_for_leader(&cluster, None).await;
    cluster.nodes[a].clone().unwrap().kill().await;
    cluster.nodes[a] = None;
    let b = wait_for_leader(&cluster, Some(a)).await;
    cluster.start(a).await;
    let handle = cluster.nodes[b].clone().unwrap();
    let (_, end) = handle
        .append(vec![Bytes::from_static(b"with a back")])
        .await
        .unwrap();
    wait_for_commit_everywhere(&cluster, end).await;
    // Now lose the second leader: the survivors can only elect if their links to the restarted
    // node work again.
    handle.kill().await;
    cluster.nodes[b] = None;
    let c = wait_for_leader(&cluster, Some(b)).await;
    let (_, end) = cluster.nodes[c]
        .clone()
        .unwrap()
        .append(vec![Bytes::from_static(b"after b")])
        .await
        .unwrap();
    wait_for_commit_everywhere(&cluster, end).await;
    for node in cluster.nodes.iter().flatten() {
        node.shutdown().await;
    }
}

/// Writes one frame and reads the next one (`None` when the node closed the connection).
async fn exchange(
    stream: &mut tokio::net::TcpStream,
    message: kraft::protocol::PeerMessage,
) -> Option<kraft::protocol::PeerMessage> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::codec::{Decoder, Encoder};
    let mut out = bytes::BytesMut::new();
    kraft::protocol::FrameCodec
        .encode(message, &mut out)
        .unwrap();
    stream.write_all(&out).await.unwrap();
    let mut input = bytes::BytesMut::new();
    loop {
        if let Some(frame) = kraft::protocol::FrameCodec.decode(&mut input).unwrap() {
            return Some(frame);
        }
        let read = actix_rt::time::timeout(Duration::from_secs(10), stream.read_buf(&mut input))
            .await
            .expect("the node neither answered nor closed");
        if read.unwrap_or(0) == 0 {
            return None;
        }
    }
}

#[actix_rt::test]
async fn a_peer_cannot_speak_for_another_node() {
    use kraft::protocol::{Handshake, PROTOCOL_VERSION, PeerMessage};
    use kraft::raft::{Request, VoteRequest};
    let cluster = start_cluster("c6", 3).await;
    let leader = wait_for_leader(&cluster, None).await;
    let before = cluster.nodes[leader]
        .as_ref()
        .unwrap()
        .describe()
        .await
        .unwrap();
    // Handshake as node 9 of the right cluster, then ask for a vote as if we were node 2 (or 1):
    // a real candidate with a higher epoch would make the leader step down.
    let mut stream = tokio::net::TcpStream::connect(&cluster.addresses[leader].1)
        .await
        .unwrap();
    let hello = Handshake {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: "c6".into(),
        node_id: Some(NodeId(9)),
        rack: None,
        directory_id: None,
    };
    let answer = exchange(&mut stream, PeerMessage::Handshake(hello)).await;
    assert!(matches!(answer, Some(PeerMessage::Handshake(_))));
    let impersonated = cluster.addresses[(leader + 1) % 3].0;
    let vote = Request::Vote(VoteRequest {
        cluster_id: "c6".into(),
        voter_id: cluster.addresses[leader].0,
        candidate_epoch: kraft::types::Epoch(before.epoch.0 + 10),
        candidate_id: impersonated,
        last_offset_epoch: before.epoch,
        last_offset: Offset(1_000_000),
        pre_vote: false,
        candidate_directory_id: None,
        voter_directory_id: None,
    });
    let request = PeerMessage::Request {
        correlation_id: 1,
        request: vote,
    };
    assert!(
        exchange(&mut stream, request).await.is_none(),
        "the connection is closed"
    );
    let after = cluster.nodes[leader]
        .as_ref()
        .unwrap()
        .describe()
        .await
        .unwrap();
    assert_eq!((after.role, after.epoch), (RoleKind::Leader, before.epoch));
    for node in cluster.nodes.iter().flatten() {
        node.shutdown().await;
    }
}
