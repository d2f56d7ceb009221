//! An in-process cluster of actor nodes on loopback TCP, for the integration tests.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kraft::node::{NodeHandle, NodeOptions, SnapshotPolicy};
use kraft::raft::{RaftConfig, RoleKind};
use kraft::storage::LogConfig;
use kraft::types::{NodeId, Offset};

/// Timers shorter than Kafka's defaults so the test runs in seconds.
pub fn raft_config() -> RaftConfig {
    let mut c = RaftConfig::new("c1", None, []);
    c.election_timeout = Duration::from_millis(300);
    c.fetch_timeout = Duration::from_millis(1000);
    c.election_backoff_max = Duration::from_millis(300);
    c.request_timeout = Duration::from_millis(1000);
    c.fetch_max_wait = Duration::from_millis(100);
    c
}

pub struct Cluster {
    pub cluster_id: String,
    pub nodes: Vec<Option<NodeHandle>>,
    pub dirs: Vec<tempfile::TempDir>,
    pub addresses: Vec<(NodeId, String)>,
    pub log: LogConfig,
    pub snapshots: SnapshotPolicy,
    /// Each node's quorum listener security (PLAINTEXT for a node not listed).
    pub security: Vec<kraft::config::ListenerSecurity>,
    /// Each node's `broker.rack` (none for a node not listed).
    pub racks: Vec<String>,
}

impl Cluster {
    pub fn options(&self, i: usize, listener: std::net::TcpListener) -> NodeOptions {
        NodeOptions {
            cluster_id: self.cluster_id.clone(),
            node_id: Some(NodeId(i as i32 + 1)),
            voters: self
                .addresses
                .iter()
                .map(|(id, _)| *id)
                .collect::<BTreeSet<_>>(),
            voter_addresses: self.addresses.clone(),
            listener: Some(listener),
            partition_dir: self.dirs[i].path().join("__raft_performance_test-0"),
            log: self.log,
            raft: Some(raft_config()),
            snapshots: self.snapshots,
            state_machine: Default::default(),
            fs: None,
            connections: Default::default(),
            security: self.security.get(i).cloned().unwrap_or_default(),
            rack: self.racks.get(i).cloned(),
            directory_id: Some(kraft::uuid::Uuid([i as u8 + 1; 16])),
            listener_name: None,
            bootstrap_servers: vec![],
        }
    }

    /// (Re)starts node `i` on its address, with its directory.
    pub async fn start(&mut self, i: usize) {
        let listener = std::net::TcpListener::bind(&self.addresses[i].1).unwrap();
        let node = NodeHandle::start(self.options(i, listener)).await.unwrap();
        self.nodes[i] = Some(node);
    }
}

pub async fn start_cluster(cluster_id: &str, n: usize) -> Cluster {
    start_cluster_with(
        cluster_id,
        n,
        LogConfig::default(),
        SnapshotPolicy::default(),
    )
    .await
}

/// A cluster whose nodes use this log and snapshot configuration.
pub async fn start_cluster_with(
    cluster_id: &str,
    n: usize,
    log: LogConfig,
    snapshots: SnapshotPolicy,
) -> Cluster {
    start_cluster_secured(cluster_id, n, log, snapshots, Vec::new()).await
}

/// A cluster whose node i's quorum listener uses `security[i]`.
pub async fn start_cluster_secured(
    cluster_id: &str,
    n: usize,
    log: LogConfig,
    snapshots: SnapshotPolicy,
    security: Vec<kraft::config::ListenerSecurity>,
) -> Cluster {
    start_cluster_full(cluster_id, n, log, snapshots, security, Vec::new()).await
}

/// A cluster whose node i is in rack `racks[i]`.
pub async fn start_cluster_in_racks(cluster_id: &str, racks: &[&str]) -> Cluster {
    let racks = racks.iter().map(|r| r.to_string()).collect::<Vec<_>>();
    let (log, snapshots) = (LogConfig::default(), SnapshotPolicy::default());
    start_cluster_full(cluster_id, racks.len(), log, snapshots, Vec::new(), racks).await
}

async fn start_cluster_full(
    cluster_id: &str,
    n: usize,
    log: LogConfig,
    snapshots: SnapshotPolicy,
    security: Vec<kraft::config::ListenerSecurity>,
    racks: Vec<String>,
) -> Cluster {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addresses: Vec<(NodeId, String)> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (NodeId(i as i32 + 1), l.local_addr().unwrap().to_string()))
        .collect();
    let dirs = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut cluster = Cluster {
        cluster_id: cluster_id.into(),
        nodes: (0..n).map(|_| None).collect(),
        dirs,
        addresses,
        log,
        snapshots,
        security,
        racks,
    };
    for (i, listener) in listeners.into_iter().enumerate() {
        let node = NodeHandle::start(cluster.options(i, listener))
            .await
            .unwrap();
        cluster.nodes[i] = Some(node);
    }
    cluster
}

/// Waits until exactly one running node leads with a known high watermark; returns its index.
pub async fn wait_for_leader(cluster: &Cluster, not: Option<usize>) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let mut leaders = Vec::new();
        for (i, node) in cluster.nodes.iter().enumerate() {
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
    panic!("no single leader elected");
}

/// Waits until every running node's high watermark passes `offset`.
pub async fn wait_for_commit_everywhere(cluster: &Cluster, offset: Offset) {
    let deadline = Instant::now() + Duration::from_secs(20);
    'outer: while Instant::now() < deadline {
        for node in cluster.nodes.iter().flatten() {
            let hw = node.describe().await.and_then(|s| s.high_watermark);
            if hw.is_none_or(|hw| hw <= offset) {
                actix_rt::time::sleep(Duration::from_millis(20)).await;
                continue 'outer;
            }
        }
        return;
    }
    panic!("offset {offset} did not commit on every node");
}

/// The values of every data record committed on `node`, in log order.
pub async fn committed_values(node: &NodeHandle) -> Vec<Bytes> {
    let hw = node
        .describe()
        .await
        .and_then(|s| s.high_watermark)
        .unwrap_or(Offset(0));
    let mut values = Vec::new();
    let mut next = Offset(0);
    while next < hw {
        let bytes = node.read_committed(next, 1 << 20).await.unwrap();
        assert!(!bytes.is_empty(), "nothing committed at {next} below {hw}");
        for batch in kraft::record::BatchIter::new(bytes) {
            let batch = batch.unwrap();
            next = batch.next_offset();
            if !batch.is_control() {
                let records = batch.decode_records().unwrap();
                values.extend(records.into_iter().filter_map(|r| r.value));
            }
        }
    }
    values
}

/// Node 1 alone (or one voter of `voters`, with no peers reachable), its log in `dir`.
pub fn single_node_options(dir: &std::path::Path, voters: &[i32]) -> NodeOptions {
    NodeOptions {
        cluster_id: "single".into(),
        node_id: Some(NodeId(1)),
        voters: voters.iter().map(|v| NodeId(*v)).collect::<BTreeSet<_>>(),
        voter_addresses: Vec::new(),
        listener: None,
        partition_dir: dir.join("__raft_performance_test-0"),
        log: LogConfig::default(),
        raft: None,
        state_machine: Default::default(),
        fs: None,
        snapshots: Default::default(),
        connections: Default::default(),
        security: Default::default(),
        rack: None,
        directory_id: None,
        listener_name: None,
        bootstrap_servers: vec![],
    }
}

/// Waits (up to 5 s) until `node` leads with a known high watermark; returns its status.
pub async fn wait_until_leader(node: &NodeHandle) -> kraft::node::Status {
    for _ in 0..500 {
        if let Some(status) = node.describe().await
            && status.role == RoleKind::Leader
            && status.high_watermark.is_some()
        {
            return status;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no leader: {:?}", node.describe().await);
}
