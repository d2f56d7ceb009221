//! A follower that was down while the leader wrote past several snapshots and cleaned its log
//! catches up through FetchSnapshot, then Fetch; its state machine ends equal to the leader's.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::cluster::{start_cluster_with, wait_for_commit_everywhere, wait_for_leader};
use kraft::node::{NodeHandle, SnapshotPolicy};
use kraft::storage::{LogConfig, list_snapshots};
use kraft::types::Offset;

fn partition(cluster: &common::cluster::Cluster, i: usize) -> std::path::PathBuf {
    cluster.dirs[i].path().join("__raft_performance_test-0")
}

fn has_segment_zero(dir: &std::path::Path) -> bool {
    dir.join("00000000000000000000.log").exists()
}

async fn append_batches(node: &NodeHandle, count: usize, tag: &str) -> Offset {
    let mut end = Offset(0);
    for i in 0..count {
        let values = (0..10)
            .map(|j| Bytes::from(format!("{tag}-{i:05}-{j}-{}", "p".repeat(90))))
            .collect();
        end = node.append(values).await.unwrap().1;
    }
    end
}

#[actix_rt::test]
async fn a_follower_behind_the_leaders_log_start_catches_up_by_snapshot() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let log = LogConfig {
        segment_bytes: 16 << 10,
        ..LogConfig::default()
    };
    let snapshots = SnapshotPolicy {
        max_bytes: 32 << 10,
        interval: None,
        retention_bytes: Some(96 << 10),
        retention: None,
    };
    let mut cluster = start_cluster_with("catch-up", 3, log, snapshots).await;
    let leader = wait_for_leader(&cluster, None).await;
    let behind = (leader + 1) % 3;
    let handle = cluster.nodes[leader].clone().unwrap();
    append_batches(&handle, 20, "early").await;
    cluster.nodes[behind].take().unwrap().kill().await;

    // About 500 KiB more: many snapshots, and retention cleans the leader's log.
    let deadline = Instant::now() + Duration::from_secs(30);
    while has_segment_zero(&partition(&cluster, leader)) {
        assert!(
            Instant::now() < deadline,
            "the leader never cleaned its log"
        );
        append_batches(&handle, 50, "while-down").await;
    }
    let leader_snapshots = list_snapshots(&partition(&cluster, leader)).unwrap();
    assert!(!leader_snapshots.is_empty());
    // Every node's snapshot at the same offset is byte-identical (what lets a transfer resume
    // from another leader's copy).
    let other = (leader + 2) % 3;
    let mut compared = 0;
    for id in list_snapshots(&partition(&cluster, other)).unwrap() {
        if leader_snapshots.contains(&id) {
            let name = kraft::storage::snapshot_file_name(id);
            assert_eq!(
                std::fs::read(partition(&cluster, leader).join(&name)).unwrap(),
                std::fs::read(partition(&cluster, other).join(&name)).unwrap(),
                "{name}"
            );
            compared += 1;
        }
    }
    assert!(compared > 0, "no snapshot in common");

    cluster.start(behind).await;
    let end = append_batches(&handle, 5, "after").await;
    wait_for_commit_everywhere(&cluster, end).await;
    assert!(
        !has_segment_zero(&partition(&cluster, behind)),
        "the follower's log was replaced by the snapshot"
    );
    assert!(
        !list_snapshots(&partition(&cluster, behind))
            .unwrap()
            .is_empty()
    );

    // Same committed state on both, once the follower's state machine has caught up.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = handle.workload_state().await.unwrap();
        let b = cluster.nodes[behind]
            .as_ref()
            .unwrap()
            .workload_state()
            .await
            .unwrap();
        if a.applied == b.applied && a.applied > end {
            assert_eq!(a, b);
            break;
        }
        assert!(Instant::now() < deadline, "states {a:?} and {b:?}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    for node in cluster.nodes.iter().flatten() {
        node.shutdown().await;
    }
}
