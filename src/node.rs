//! A kraft node assembled from its actors, and the handle a Rust program uses to drive it.
//!
//! Owns the public library API: starting a node from `NodeOptions`, appending, reading what is
//! committed, subscribing to events, describing, changing a dynamic quorum's voters, and
//! stopping. It must never expose actor
//! internals: users see `NodeHandle` only. The actors themselves are built, supervised and
//! restarted by `actors::node_supervisor`; a handle follows the node across restarts.
//!
//! A single-voter node used as a durable, replicated log:
//!
//! ```
//! use std::collections::BTreeSet;
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use kraft::node::{AppendError, NodeHandle, NodeOptions};
//! use kraft::storage::LogConfig;
//! use kraft::types::NodeId;
//!
//! actix_rt::System::new().block_on(async {
//!     let dir = tempfile::tempdir().unwrap();
//!     let node = NodeHandle::start(NodeOptions {
//!         cluster_id: "example".into(),
//!         node_id: Some(NodeId(1)),
//!         voters: BTreeSet::from([NodeId(1)]),
//!         voter_addresses: vec![],
//!         listener: None, // a single voter needs no peers
//!         partition_dir: dir.path().join("events-0"),
//!         log: LogConfig::default(),
//!         raft: None, // Kafka's default timers
//!         snapshots: Default::default(),
//!         state_machine: Default::default(), // the server's WorkloadState
//!         fs: None,                          // the real file system
//!         connections: Default::default(),   // Kafka's connection limits
//!         security: Default::default(),      // PLAINTEXT
//!         rack: None,
//!         directory_id: None,
//!         listener_name: None,
//!         bootstrap_servers: vec![], // a static voter needs none
//!     })
//!     .await
//!     .unwrap();
//!
//!     // Appends resolve once committed; until the node has elected itself it is not the leader.
//!     let (first, last) = loop {
//!         match node.append(vec![Bytes::from_static(b"hello")]).await {
//!             Ok(range) => break range,
//!             Err(AppendError::NotLeader { .. }) => {
//!                 actix_rt::time::sleep(Duration::from_millis(10)).await
//!             }
//!             Err(e) => panic!("append failed: {e}"),
//!         }
//!     };
//!     assert_eq!(first, last);
//!
//!     // Committed batches read back as Kafka record batches.
//!     let bytes = node.read_committed(first, 1 << 20).await.unwrap();
//!     let batch = kraft::record::BatchIter::new(bytes).next().unwrap().unwrap();
//!     let records = batch.decode_records().unwrap();
//!     assert_eq!(records[0].value.as_deref(), Some(&b"hello"[..]));
//!
//!     node.shutdown().await;
//! });
//! ```

use std::collections::BTreeSet;
use std::path::PathBuf;

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::watch;

pub use crate::actors::node_supervisor::{NodeError, NodeState, SupervisionStats};
pub use crate::actors::snapshot_writer::SnapshotPolicy;
pub use crate::actors::supervision::ActorKind;
#[cfg(feature = "fault-injection")]
pub use crate::actors::supervision::Fault;
pub use crate::actors::workload::{Throughput, WorkloadReport, WorkloadSpec};
pub use crate::state_machine::{StateMachine, StateMachineFactory, WorkloadState};

pub use crate::actors::messages::{AppendError, NodeEvent, Status, VoterChangeFailure};
pub use crate::raft::{ListenerAddress, ReplicaKey, Voter, VoterChangeError};

use crate::actors::messages::{AddVoter, Describe, Propose, ReadLog, RemoveVoter, Subscribe};
use crate::actors::node_supervisor::{
    GetStats, NodeParts, NodeSpec, NodeSupervisor, NodeView, StartNode, StartWorkload, StopNode,
};
use crate::raft::RaftConfig;
use crate::storage::LogConfig;
use crate::types::{Epoch, NodeId, Offset, OffsetAndEpoch};

/// Everything needed to start a node (a subset of `NodeConfig` plus where its log lives).
#[derive(Debug)]
pub struct NodeOptions {
    pub cluster_id: String,
    pub node_id: Option<NodeId>,
    pub voters: BTreeSet<NodeId>,
    /// `host:port` of each voter (this node's own entry is not dialled).
    pub voter_addresses: Vec<(NodeId, String)>,
    /// A bound listener for peers (bind `127.0.0.1:0` first to avoid port races), if any.
    pub listener: Option<std::net::TcpListener>,
    /// The partition directory, e.g. `<metadata log dir>/__raft_performance_test-0`.
    pub partition_dir: PathBuf,
    pub log: LogConfig,
    /// Protocol timers and limits (Kafka's defaults unless changed).
    pub raft: Option<RaftConfig>,
    /// When the node snapshots its state machine (Kafka's defaults: 20 MiB, one hour).
    pub snapshots: SnapshotPolicy,
    /// The application's state machine, fed every committed batch (default: the standalone
    /// server's `WorkloadState`).
    pub state_machine: StateMachineFactory,
    /// The file system the node's files go through (`None`: the real one). Tests pass a
    /// `storage::SimFs` to inject disk faults.
    pub fs: Option<crate::storage::Fs>,
    /// Limits on inbound connections (Kafka's defaults, the count capped by the descriptor
    /// limit).
    pub connections: crate::config::ConnectionLimits,
    /// The quorum listener's security protocol: PLAINTEXT, or mutual TLS (both directions).
    pub security: crate::config::ListenerSecurity,
    /// `broker.rack`: consumers whose `client.rack` matches are pointed here to read.
    pub rack: Option<String>,
    /// The metadata log directory's id (`meta.properties`), which DescribeQuorum reports.
    pub directory_id: Option<crate::uuid::Uuid>,
    /// The quorum listener's name (the first of `controller.listener.names`), which
    /// DescribeQuorum reports with each voter's endpoint; `None`: no endpoints are reported.
    pub listener_name: Option<String>,
    /// `controller.quorum.bootstrap.servers` (`host:port` each): where a node of a dynamic
    /// quorum asks for the leader while it knows no voter. Dialled like peers, known by the ids
    /// -2, -3, … (Kafka's convention for them).
    pub bootstrap_servers: Vec<String>,
}

/// The id the first bootstrap server is known by; the next ones count down from it. Negative,
/// so that it is never a node's id (-1 is Kafka's "no id").
pub const FIRST_BOOTSTRAP_ID: i32 = -2;

impl NodeOptions {
    fn into_spec(self) -> Result<NodeSpec, NodeError> {
        let mut raft = self.raft.unwrap_or_else(|| {
            RaftConfig::new(&self.cluster_id, self.node_id, self.voters.iter().copied())
        });
        raft.cluster_id = self.cluster_id.clone();
        raft.local_id = self.node_id;
        raft.voters = self.voters.clone();
        raft.local_directory_id = self.directory_id;
        raft.listener_name = self.listener_name.clone();
        let bootstrap: Vec<(NodeId, String)> = self
            .bootstrap_servers
            .iter()
            .enumerate()
            .map(|(i, address)| (NodeId(FIRST_BOOTSTRAP_ID - i as i32), address.clone()))
            .collect();
        raft.bootstrap_servers = bootstrap.iter().map(|(id, _)| *id).collect();
        let listener = match self.listener {
            Some(l) => Some(crate::actors::listener::adopt(l).map_err(NodeError::Listen)?),
            None => None,
        };
        let node_id = self.node_id;
        let metrics = std::sync::Arc::new(crate::metrics::NodeMetrics::new());
        let cluster = std::sync::Arc::new(crate::actors::kafka_service::ClusterInfo {
            cluster_id: self.cluster_id.clone(),
            local_id: node_id,
            local_rack: self.rack.clone(),
            local_directory_id: self.directory_id,
            listener_name: self.listener_name,
            racks: Default::default(),
            directory_ids: Default::default(),
            endpoints: self
                .voter_addresses
                .iter()
                .filter_map(|(id, address)| crate::kafka::Endpoint::parse(*id, address))
                .collect(),
        });
        Ok(NodeSpec {
            cluster,
            cluster_id: self.cluster_id,
            node_id,
            voters: self.voters,
            peers: self
                .voter_addresses
                .into_iter()
                .filter(|(id, _)| Some(*id) != node_id)
                .collect(),
            bootstrap,
            listener,
            partition_dir: self.partition_dir,
            log: self.log,
            raft,
            snapshots: self.snapshots,
            state_machine: self.state_machine,
            fs: self.fs.unwrap_or_else(crate::storage::real_fs),
            connections: crate::actors::connection_slots::ConnectionSlots::new(self.connections)
                .with_metrics(metrics.clone()),
            metrics,
            tls: match &self.security {
                crate::config::ListenerSecurity::Plaintext => None,
                crate::config::ListenerSecurity::Ssl(settings) => Some(std::sync::Arc::new(
                    crate::security::PeerTls::load(settings)?,
                )),
            },
        })
    }
}

/// A running node. Cheap to clone; every clone drives the same node, across its restarts.
#[derive(Clone)]
pub struct NodeHandle {
    supervisor: Addr<NodeSupervisor>,
    view: watch::Receiver<NodeView>,
    metrics: std::sync::Arc<crate::metrics::NodeMetrics>,
}

impl NodeHandle {
    /// Starts a node on the current actix system: recovers its log and election state, then
    /// starts the protocol core and the node's other actors under supervision.
    pub async fn start(options: NodeOptions) -> Result<NodeHandle, NodeError> {
        let spec = options.into_spec()?;
        let metrics = spec.metrics.clone();
        let (supervisor, view) = NodeSupervisor::new(spec);
        let supervisor = supervisor.start();
        supervisor
            .send(StartNode)
            .await
            .map_err(|_| NodeError::Stopped)??;
        Ok(NodeHandle {
            supervisor,
            view,
            metrics,
        })
    }

    fn parts(&self) -> Option<NodeParts> {
        self.view.borrow().parts.clone()
    }

    /// Where the node is in its life (running, restarting after failures, stopped, failed).
    pub fn state(&self) -> NodeState {
        self.view.borrow().state.clone()
    }

    /// Resolves once the node has stopped for good, on request or because it failed; returns
    /// the final state.
    pub async fn stopped(&self) -> NodeState {
        let mut view = self.view.clone();
        let result = view
            .wait_for(|v| matches!(v.state, NodeState::Stopped | NodeState::Failed(_)))
            .await
            .map(|v| v.state.clone());
        result.unwrap_or(NodeState::Stopped)
    }

    /// Appends record values through this node, which must lead. Resolves with the offsets the
    /// records got once they are committed.
    pub async fn append(&self, records: Vec<Bytes>) -> Result<(Offset, Offset), AppendError> {
        let Some(parts) = self.parts() else {
            return Err(self.unavailable());
        };
        parts
            .driver
            .send(Propose(records))
            .await
            .unwrap_or(Err(AppendError::Interrupted))
    }

    /// Adds `voter` to a dynamic (kraft.version 1) quorum through this node, which must lead
    /// (Kafka's AddRaftVoter): the new voter must be an observer that caught up with this
    /// leader, and list an endpoint on the quorum listener. Resolves once the new voter set is
    /// committed; fails with the reason (each with Kafka's error code) otherwise, at the latest
    /// after `timeout`.
    pub async fn add_voter(
        &self,
        voter: Voter,
        timeout: std::time::Duration,
    ) -> Result<(), VoterChangeFailure> {
        self.change_voters(AddVoter { voter, timeout }).await
    }

    /// Removes the voter whose id and directory id are `voter` through this node, which must
    /// lead (Kafka's RemoveRaftVoter). Resolves like [`NodeHandle::add_voter`]. A leader that
    /// removes itself keeps leading until the removal commits, then resigns.
    pub async fn remove_voter(
        &self,
        voter: ReplicaKey,
        timeout: std::time::Duration,
    ) -> Result<(), VoterChangeFailure> {
        self.change_voters(RemoveVoter { voter, timeout }).await
    }

    async fn change_voters<M>(&self, change: M) -> Result<(), VoterChangeFailure>
    where
        M: Message<Result = Result<(), VoterChangeFailure>> + Send + 'static,
        crate::actors::ReplicationDriver: Handler<M>,
    {
        let Some(parts) = self.parts() else {
            return Err(match self.unavailable() {
                AppendError::Stopped => VoterChangeFailure::Stopped,
                _ => VoterChangeFailure::Refused(VoterChangeError::NotLeader {
                    leader_id: None,
                    epoch: Epoch(0),
                }),
            });
        };
        parts
            .driver
            .send(change)
            .await
            .unwrap_or(Err(VoterChangeFailure::Interrupted))
    }

    /// The error for a node without running actors: retry later while it restarts.
    fn unavailable(&self) -> AppendError {
        match self.state() {
            NodeState::Starting | NodeState::Restarting | NodeState::Running => {
                AppendError::NotLeader {
                    leader_id: None,
                    epoch: Epoch(0),
                }
            }
            NodeState::Stopping | NodeState::Stopped | NodeState::Failed(_) => AppendError::Stopped,
        }
    }

    /// Starts the performance workload: while this node leads, random records of `record_size`
    /// bytes are appended at `throughput`, and statistics are printed every 5 s.
    pub fn start_workload(&self, throughput: Throughput, record_size: u32) {
        self.run_workload(WorkloadSpec::printed(throughput, record_size));
    }

    /// Starts a workload whose statistics go where `spec` says (e.g. to a benchmark).
    pub fn run_workload(&self, spec: WorkloadSpec) {
        self.supervisor.do_send(StartWorkload(spec));
    }

    /// The node's current role, epoch, leader, high watermark and log end offset (`None` while
    /// it is stopped or restarting).
    pub async fn describe(&self) -> Option<Status> {
        self.parts()?.driver.send(Describe).await.ok()
    }

    /// The node's metrics now: Kafka's raft metrics (the values `describe` reports, as the
    /// driver last set them) and kraft's own; the same values the metrics endpoint serves.
    /// Available in every state (counters survive restarts).
    pub fn metrics(&self) -> crate::metrics::MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// Serves this node's metrics in the Prometheus text format at `GET /metrics` on `listener`
    /// (bind `127.0.0.1:0` first for a free port), from the current actix/tokio runtime, until
    /// the returned endpoint is dropped.
    pub fn serve_metrics(
        &self,
        listener: std::net::TcpListener,
    ) -> std::io::Result<crate::metrics::MetricsEndpoint> {
        let exposition = crate::metrics::Exposition::new(self.metrics.clone());
        crate::metrics::MetricsEndpoint::start(listener, exposition)
    }

    /// Leader changes and high-watermark advances, in order, from now on (across node
    /// restarts). Read the committed records with [`NodeHandle::read_committed`].
    pub async fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<NodeEvent>> {
        self.supervisor.send(Subscribe).await.ok()
    }

    /// Writes a snapshot of the state machine now: its id, or `None` when the latest snapshot
    /// already covers everything applied.
    pub async fn take_snapshot(&self) -> Result<Option<OffsetAndEpoch>, NodeError> {
        let parts = self.parts().ok_or(NodeError::Stopped)?;
        parts
            .snapshot_writer
            .send(crate::actors::snapshot_writer::TakeSnapshot)
            .await
            .map_err(|_| NodeError::Stopped)?
            .map_err(|e| NodeError::Storage(crate::storage::StorageError::Failed(e)))
    }

    /// Reads the state machine as applied so far (it follows the high watermark) on its own
    /// thread; `None` when the node is not running.
    pub async fn query_state<R: Send + 'static>(
        &self,
        query: impl FnOnce(&dyn StateMachine) -> R + Send + 'static,
    ) -> Option<R> {
        let parts = self.parts()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let run = Box::new(move |state: &dyn StateMachine| {
            let _ = tx.send(query(state));
        });
        parts
            .snapshot_writer
            .send(crate::actors::snapshot_writer::QueryState(run))
            .await
            .ok()?;
        rx.await.ok()
    }

    /// The standalone server's state machine as applied so far (`None` when the node runs
    /// another state machine or is not running).
    pub async fn workload_state(&self) -> Option<WorkloadState> {
        self.query_state(|s| s.as_any().downcast_ref::<WorkloadState>().copied())
            .await
            .flatten()
    }

    /// How often the node's actors, and the node itself, were restarted after failures.
    pub async fn supervision(&self) -> SupervisionStats {
        self.supervisor.send(GetStats).await.unwrap_or_default()
    }

    /// Whole record batches from `from` below the high watermark (at most `max_bytes`, but at
    /// least one batch). Empty when nothing is committed there yet.
    pub async fn read_committed(&self, from: Offset, max_bytes: u32) -> Result<Bytes, NodeError> {
        let hw = self
            .describe()
            .await
            .and_then(|s| s.high_watermark)
            .unwrap_or(Offset(0));
        if from >= hw {
            return Ok(Bytes::new());
        }
        let parts = self.parts().ok_or(NodeError::Stopped)?;
        let bytes = parts
            .log_store
            .send(ReadLog { from, max_bytes })
            .await
            .map_err(|_| NodeError::Stopped)??;
        // Keep only whole batches that end at or below the high watermark.
        let mut end = 0;
        for batch in crate::record::BatchIter::new(bytes.clone()) {
            match batch {
                Ok(b) if b.next_offset() <= hw => end += b.size_in_bytes(),
                _ => break,
            }
        }
        Ok(bytes.slice(..end))
    }

    /// Graceful shutdown: a leader hands over first, then the actors stop, the log is flushed
    /// and the log store's thread ends. Appends still waiting fail with `Stopped`.
    pub async fn shutdown(&self) {
        let _ = self.supervisor.send(StopNode { graceful: true }).await;
    }

    /// Stops the node abruptly, as a crash would: no hand-over, nothing more written. What it
    /// had written but not flushed stays in the OS page cache (as after `kill -9`).
    pub async fn kill(&self) {
        let _ = self.supervisor.send(StopNode { graceful: false }).await;
    }

    /// Injects a fault into one of this node's actors (tests only). Returns false when there is
    /// no such actor (e.g. no workload running, an unknown peer, or the node is restarting).
    #[cfg(feature = "fault-injection")]
    pub async fn inject_fault(&self, actor: ActorKind, fault: Fault) -> bool {
        use crate::actors::driver::InjectPeerFault;
        use crate::actors::supervision::InjectFault;
        let Some(parts) = self.parts() else {
            return false;
        };
        let message = InjectFault(fault);
        match actor {
            ActorKind::Driver => parts.driver.do_send(message),
            ActorKind::LogStore => parts.log_store.do_send(message),
            ActorKind::SnapshotWriter => parts.snapshot_writer.do_send(message),
            ActorKind::Listener => match parts.listener {
                Some(listener) => listener.do_send(message),
                None => return false,
            },
            ActorKind::Workload => match parts.workload {
                Some(workload) => workload.do_send(message),
                None => return false,
            },
            ActorKind::Peer(peer) => {
                return parts
                    .driver
                    .send(InjectPeerFault { peer, fault })
                    .await
                    .unwrap_or(false);
            }
        }
        true
    }
}
