//! Three kraft nodes in one process, on ephemeral loopback ports, each with its own temporary
//! log dir: elect a leader, append and commit, crash the leader, watch the failover and the
//! commits continue, then shut everything down cleanly.
//!
//! Run with `cargo run --example three_node_quorum`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kraft::node::{NodeHandle, NodeOptions};
use kraft::raft::{RaftConfig, RoleKind};
use kraft::storage::LogConfig;
use kraft::types::NodeId;

#[actix_rt::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Bind every listener first, then tell each node where the others are: no port races.
    let listeners: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let addresses: Vec<(NodeId, String)> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| Ok((NodeId(i as i32 + 1), l.local_addr()?.to_string())))
        .collect::<std::io::Result<_>>()?;
    let voters: BTreeSet<NodeId> = addresses.iter().map(|(id, _)| *id).collect();
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir())
        .collect::<Result<_, _>>()?;
    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let mut raft = RaftConfig::new("example", None, []);
        raft.election_timeout = Duration::from_millis(300);
        raft.fetch_timeout = Duration::from_millis(1000);
        let options = NodeOptions {
            cluster_id: "example".into(),
            node_id: Some(NodeId(i as i32 + 1)),
            voters: voters.clone(),
            voter_addresses: addresses.clone(),
            listener: Some(listener),
            partition_dir: dirs[i].path().join("__raft_performance_test-0"),
            log: LogConfig::default(),
            raft: Some(raft),
            state_machine: Default::default(),
            fs: None,
            snapshots: Default::default(),
            connections: Default::default(),
            security: Default::default(),
            rack: None,
            directory_id: None,
            listener_name: None,
            bootstrap_servers: vec![],
        };
        nodes.push(Some(NodeHandle::start(options).await?));
        println!("node {} listening on {}", i + 1, addresses[i].1);
    }

    let leader = wait_for_leader(&nodes, None).await;
    println!("node {} was elected leader", leader + 1);
    let handle = nodes[leader].clone().unwrap();
    for i in 0..5 {
        let (first, last) = handle
            .append(vec![Bytes::from(format!("hello {i}"))])
            .await?;
        println!(
            "committed offsets {first}..={last} through node {}",
            leader + 1
        );
    }

    println!("crashing node {} (no hand-over)", leader + 1);
    let crashed_at = Instant::now();
    handle.kill().await;
    nodes[leader] = None;
    let next = wait_for_leader(&nodes, Some(leader)).await;
    println!(
        "node {} took over after {:?}",
        next + 1,
        crashed_at.elapsed()
    );
    let handle = nodes[next].clone().unwrap();
    for i in 0..5 {
        let (first, last) = handle
            .append(vec![Bytes::from(format!("after failover {i}"))])
            .await?;
        println!(
            "committed offsets {first}..={last} through node {}",
            next + 1
        );
    }
    for node in nodes.iter().flatten() {
        if let Some(s) = node.describe().await {
            println!(
                "node {:?}: {:?} in epoch {}, high watermark {:?}, log end offset {}",
                s.node_id, s.role, s.epoch, s.high_watermark, s.log_end_offset
            );
        }
    }
    for node in nodes.iter().flatten() {
        node.shutdown().await;
    }
    println!("all nodes stopped");
    Ok(())
}

/// Polls until exactly one running node leads with a known high watermark.
async fn wait_for_leader(nodes: &[Option<NodeHandle>], not: Option<usize>) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let mut leaders = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            if let Some(node) = node
                && let Some(s) = node.describe().await
                && s.role == RoleKind::Leader
                && s.high_watermark.is_some()
            {
                leaders.push(i);
            }
        }
        if let [leader] = leaders[..]
            && Some(leader) != not
        {
            return leader;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no leader within 20 s");
}
