//! Crash injection under load (needs `--features fault-injection`): each actor kind is made to
//! panic on the leader and then on a follower of a three-node in-process quorum while a client
//! keeps appending and every node runs the performance workload. After each fault the actor must
//! have been restarted by its supervisor and the quorum must keep committing; at the end every
//! record the client saw acknowledged is committed exactly once on every node, and no record is
//! committed twice.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::cluster::{Cluster, committed_values, start_cluster, wait_for_leader};
use kraft::actors::messages::AppendError;
use kraft::node::{ActorKind, Fault, NodeHandle, NodeState, Throughput};
use kraft::types::NodeId;

/// Marks the client's records apart from the workload's random ones.
const PREFIX: &[u8] = b"crash-test-record:";
/// Records per client append.
const RECORDS_PER_APPEND: u64 = 4;
/// Acknowledged appends required after each fault to show the quorum keeps committing.
const PROGRESS_AFTER_FAULT: usize = 200;

/// A client appending unique records through whichever node leads. A record whose outcome is
/// unknown (the node restarted or leadership moved mid-append) is never retried, so a duplicate
/// in the log can only come from the node.
struct Client {
    acked: Arc<Mutex<Vec<u64>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    fn start(nodes: Vec<NodeHandle>) -> Client {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (acked.clone(), stop.clone());
        let task = actix_rt::spawn(async move { run_client(nodes, a, s).await });
        Client { acked, stop, task }
    }

    fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    async fn wait_for_progress(&self, more: usize, what: &str) {
        let target = self.acked_count() + more;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.acked_count() < target {
            assert!(
                Instant::now() < deadline,
                "{what}: the quorum stopped committing"
            );
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn finish(self) -> Vec<u64> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        std::mem::take(&mut *self.acked.lock().unwrap())
    }
}

async fn run_client(nodes: Vec<NodeHandle>, acked: Arc<Mutex<Vec<u64>>>, stop: Arc<AtomicBool>) {
    let mut next_seq = 0u64;
    let mut target = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let seqs: Vec<u64> = (next_seq..next_seq + RECORDS_PER_APPEND).collect();
        next_seq += RECORDS_PER_APPEND;
        let records = seqs.iter().map(|s| encode(*s)).collect();
        match nodes[target].append(records).await {
            Ok(_) => acked.lock().unwrap().extend(seqs),
            Err(AppendError::NotLeader {
                leader_id: Some(NodeId(id)),
                ..
            }) => target = (id - 1) as usize,
            Err(_) => {
                target = (target + 1) % nodes.len();
                actix_rt::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

fn encode(seq: u64) -> Bytes {
    let mut v = PREFIX.to_vec();
    v.extend_from_slice(&seq.to_be_bytes());
    Bytes::from(v)
}

fn decode(value: &[u8]) -> Option<u64> {
    let rest = value.strip_prefix(PREFIX)?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

/// Waits until `node` reports a restart of `kind` beyond `before` restarts (or a node restart).
async fn wait_for_restart(node: &NodeHandle, kind: ActorKind, before: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = node.supervision().await;
        let restarts = stats.actor_restarts.get(&kind).copied().unwrap_or(0);
        if restarts > before && node.state() == NodeState::Running {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{kind:?} was not restarted: {stats:?}"
        );
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Appends one final record through the leader and waits until every node commits it; returns
/// the nodes' committed values.
async fn settle(cluster: &Cluster) -> Vec<Vec<Bytes>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let end = loop {
        let leader = wait_for_leader(cluster, None).await;
        let node = cluster.nodes[leader].as_ref().unwrap();
        if let Ok((_, end)) = node.append(vec![Bytes::from_static(b"final")]).await {
            break end;
        }
        assert!(Instant::now() < deadline, "no final append succeeded");
    };
    common::cluster::wait_for_commit_everywhere(cluster, end).await;
    let mut logs = Vec::new();
    for node in cluster.nodes.iter().flatten() {
        logs.push(committed_values(node).await);
    }
    logs
}

/// Every acknowledged record exactly once on every node, no record twice, and the nodes'
/// committed logs agree.
fn check_exactly_once(logs: &[Vec<Bytes>], acked: &[u64]) {
    for (i, log) in logs.iter().enumerate() {
        let seqs: Vec<u64> = log.iter().filter_map(|v| decode(v)).collect();
        let mut seen = HashSet::new();
        for s in &seqs {
            assert!(seen.insert(*s), "node {i}: record {s} committed twice");
        }
        for s in acked {
            assert!(
                seen.contains(s),
                "node {i}: acknowledged record {s} is missing"
            );
        }
        // The workload keeps appending, so nodes read at slightly different high watermarks:
        // each committed log must be a prefix of the longest.
        let longest = logs.iter().max_by_key(|l| l.len()).unwrap();
        assert!(
            longest.starts_with(log),
            "node {i} committed a different log"
        );
    }
}

async fn panic_on_leader_and_follower(cluster_id: &str, kind_for: fn(NodeId) -> ActorKind) {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let cluster = start_cluster(cluster_id, 3).await;
    let nodes: Vec<NodeHandle> = cluster.nodes.iter().flatten().cloned().collect();
    for node in &nodes {
        node.start_workload(Throughput::PerSecond(200), 64);
    }
    let client = Client::start(nodes.clone());
    client
        .wait_for_progress(PROGRESS_AFTER_FAULT, "start")
        .await;

    let leader = wait_for_leader(&cluster, None).await;
    let follower = (leader + 1) % 3;
    for (role, target) in [("leader", leader), ("follower", follower)] {
        // A peer connection fault targets this node's link to the next node.
        let peer = NodeId(((target + 1) % 3) as i32 + 1);
        let kind = kind_for(peer);
        let node = &nodes[target];
        let before = node
            .supervision()
            .await
            .actor_restarts
            .get(&kind)
            .copied()
            .unwrap_or(0);
        assert!(
            node.inject_fault(kind, Fault::Panic).await,
            "{kind:?} exists"
        );
        wait_for_restart(node, kind, before).await;
        client
            .wait_for_progress(PROGRESS_AFTER_FAULT, &format!("{kind:?} on the {role}"))
            .await;
    }

    let acked = client.finish().await;
    let logs = settle(&cluster).await;
    check_exactly_once(&logs, &acked);
    assert!(acked.len() >= 3 * PROGRESS_AFTER_FAULT);
    for node in &nodes {
        node.shutdown().await;
    }
}

#[actix_rt::test]
async fn driver_panics() {
    panic_on_leader_and_follower("crash-driver", |_| ActorKind::Driver).await;
}

#[actix_rt::test]
async fn log_store_panics() {
    panic_on_leader_and_follower("crash-log-store", |_| ActorKind::LogStore).await;
}

#[actix_rt::test]
async fn peer_connection_panics() {
    panic_on_leader_and_follower("crash-peer", ActorKind::Peer).await;
}

#[actix_rt::test]
async fn listener_panics() {
    panic_on_leader_and_follower("crash-listener", |_| ActorKind::Listener).await;
}

#[actix_rt::test]
async fn workload_producer_panics() {
    panic_on_leader_and_follower("crash-workload", |_| ActorKind::Workload).await;
}

#[actix_rt::test]
async fn snapshot_writer_panics() {
    panic_on_leader_and_follower("crash-snapshot-writer", |_| ActorKind::SnapshotWriter).await;
}

/// Panicking and stopping the leader's log store over and over spends its restart budget: the node restarts
/// from its data directory, and still nothing acknowledged is lost.
#[actix_rt::test]
async fn a_spent_restart_budget_restarts_the_node() {
    let cluster = start_cluster("crash-budget", 3).await;
    let nodes: Vec<NodeHandle> = cluster.nodes.iter().flatten().cloned().collect();
    let client = Client::start(nodes.clone());
    client
        .wait_for_progress(PROGRESS_AFTER_FAULT, "start")
        .await;
    let leader = wait_for_leader(&cluster, None).await;
    let node = &nodes[leader];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut faults = [Fault::Panic, Fault::Stop].into_iter().cycle();
    while node.supervision().await.node_restarts == 0 {
        assert!(Instant::now() < deadline, "the node never restarted");
        let fault = faults.next().unwrap();
        node.inject_fault(ActorKind::LogStore, fault).await;
        actix_rt::time::sleep(Duration::from_millis(30)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.state() != NodeState::Running {
        assert!(Instant::now() < deadline, "the node did not come back");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    client
        .wait_for_progress(PROGRESS_AFTER_FAULT, "after the node restart")
        .await;
    let acked = client.finish().await;
    let logs = settle(&cluster).await;
    check_exactly_once(&logs, &acked);
    for node in &nodes {
        node.shutdown().await;
    }
}

/// A stalled driver (its mailbox paused past the election timeout) loses leadership or is
/// simply late; either way the quorum keeps committing and nothing acknowledged is lost.
#[actix_rt::test]
async fn a_stalled_leader_driver_does_not_lose_records() {
    let cluster = start_cluster("crash-stall", 3).await;
    let nodes: Vec<NodeHandle> = cluster.nodes.iter().flatten().cloned().collect();
    let client = Client::start(nodes.clone());
    client
        .wait_for_progress(PROGRESS_AFTER_FAULT, "start")
        .await;
    let leader = wait_for_leader(&cluster, None).await;
    assert!(
        nodes[leader]
            .inject_fault(ActorKind::Driver, Fault::Stall(Duration::from_millis(1500)))
            .await
    );
    client
        .wait_for_progress(PROGRESS_AFTER_FAULT, "during and after the stall")
        .await;
    let acked = client.finish().await;
    let logs = settle(&cluster).await;
    check_exactly_once(&logs, &acked);
    for node in &nodes {
        node.shutdown().await;
    }
}

/// A graceful shutdown asked for while the driver rebuilds its core (after a log store panic,
/// with the log store stalled) still hands over and completes.
#[actix_rt::test]
async fn a_shutdown_during_a_rebuild_completes() {
    let cluster = start_cluster("crash-shutdown", 3).await;
    let leader = wait_for_leader(&cluster, None).await;
    let node = cluster.nodes[leader].clone().unwrap();
    assert!(node.inject_fault(ActorKind::LogStore, Fault::Panic).await);
    assert!(
        node.inject_fault(ActorKind::LogStore, Fault::Stall(Duration::from_secs(1)))
            .await
    );
    actix_rt::time::timeout(Duration::from_secs(15), node.shutdown())
        .await
        .expect("the shutdown hung");
    assert_eq!(node.state(), NodeState::Stopped);
    for other in cluster.nodes.iter().flatten() {
        other.shutdown().await;
    }
}
