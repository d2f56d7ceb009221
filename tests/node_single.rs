//! The actor node end to end on a real disk, as a single-voter quorum: it elects itself, commits
//! appends (resolved only once committed and durable), and after a restart recovers its log,
//! leads in a higher epoch, and continues the offsets.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::cluster::{single_node_options, wait_until_leader};
use kraft::actors::messages::AppendError;
use kraft::node::NodeHandle;
use kraft::raft::RoleKind;
use kraft::storage::{LogConfig, QuorumStateFile, ReplicatedLog};
use kraft::types::{Epoch, NodeId, Offset};

#[actix_rt::test]
async fn a_single_voter_commits_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeHandle::start(single_node_options(dir.path(), &[1]))
        .await
        .unwrap();
    let status = wait_until_leader(&node).await;
    assert_eq!(
        (status.epoch, status.leader_id),
        (Epoch(1), Some(NodeId(1)))
    );
    let mut last = Offset(0);
    for i in 0..20 {
        let value = Bytes::from(format!("record-{i}"));
        let (first, end) = node.append(vec![value.clone(), value]).await.unwrap();
        assert_eq!(end.0, first.0 + 1);
        assert!(first > last || i == 0);
        last = end;
    }
    let status = node.describe().await.unwrap();
    assert!(
        status.high_watermark.unwrap() > last,
        "appends resolve only once committed"
    );
    node.shutdown().await;
    let refused = node.append(vec![Bytes::from_static(b"too late")]).await;
    assert_eq!(refused, Err(AppendError::Stopped));
    drop(node);

    // What was acknowledged is on disk, and the election state says who led.
    let partition = dir.path().join("__raft_performance_test-0");
    let state = QuorumStateFile::new(&partition).read().unwrap().unwrap();
    assert_eq!((state.epoch, state.leader_id), (Epoch(1), Some(NodeId(1))));
    // A static quorum's file is Kafka's data_version 0, listing the voters.
    let text = std::fs::read_to_string(partition.join("quorum-state")).unwrap();
    assert!(
        text.contains(r#""currentVoters":[{"voterId":1}],"data_version":0"#),
        "{text}"
    );

    let node = NodeHandle::start(single_node_options(dir.path(), &[1]))
        .await
        .unwrap();
    let status = wait_until_leader(&node).await;
    assert_eq!(
        status.epoch,
        Epoch(2),
        "a former leader never leads its old epoch again"
    );
    let (first, _) = node
        .append(vec![Bytes::from_static(b"after restart")])
        .await
        .unwrap();
    // 1 LeaderChange + 40 records in epoch 1, then epoch 2's LeaderChange.
    assert_eq!(first, Offset(42));
    node.shutdown().await;
    drop(node);
    let (log, _) = ReplicatedLog::open(&partition, LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), Offset(43));
}

#[actix_rt::test]
async fn a_voter_without_a_quorum_refuses_appends_naming_no_leader() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeHandle::start(single_node_options(dir.path(), &[1, 2, 3]))
        .await
        .unwrap();
    let err = node
        .append(vec![Bytes::from_static(b"x")])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AppendError::NotLeader {
            leader_id: None,
            epoch: Epoch(0)
        }
    );
    let status = node.describe().await.unwrap();
    assert_ne!(status.role, RoleKind::Leader);
}

/// `controller.quorum.append.linger.ms`, when set, holds the leader's flush (and so the commit)
/// for the linger.
#[actix_rt::test]
async fn a_configured_linger_holds_the_leaders_commit_for_the_linger() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = single_node_options(dir.path(), &[1]);
    let mut raft = kraft::raft::RaftConfig::new("c1", Some(NodeId(1)), [NodeId(1)]);
    raft.append_linger = Some(Duration::from_millis(300));
    opts.raft = Some(raft);
    let node = NodeHandle::start(opts).await.unwrap();
    wait_until_leader(&node).await;
    let started = std::time::Instant::now();
    let appends: Vec<_> = (0..5)
        .map(|i| node.append(vec![Bytes::from(format!("lingering-{i}"))]))
        .collect();
    let mut results = Vec::new();
    for append in appends {
        results.push(append.await.unwrap());
    }
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "committed after {:?}, before the linger ended",
        started.elapsed()
    );
    let ends: Vec<Offset> = results.iter().map(|r| r.1).collect();
    assert!(ends.windows(2).all(|w| w[0] < w[1]), "{ends:?}");
    node.shutdown().await;
}
