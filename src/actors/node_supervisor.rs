//! The node supervisor: builds a node's actors from its options, counts their restarts, and
//! restarts the whole node from its data directory when an actor spends its restart budget.
//!
//! Owns the node's lifecycle (running, restarting, stopped, failed) and publishes the current
//! actors' addresses to every `NodeHandle` through a watch channel, so handles keep working
//! across node restarts. It must never touch the log or make protocol decisions, and never keep
//! old actors writing while new ones open the same files: the old log store is closed (and its
//! mailbox drained) before a new one opens the log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::{broadcast, watch};

use super::driver::{DriverParts, MAX_BUFFERED_EVENTS, Network};
use super::kafka_service::{ClusterInfo, KafkaFace};
use super::listener::Listener;
use super::messages::*;
use super::snapshot_writer::{SnapshotPolicy, SnapshotWriter};
use super::supervision::*;
use super::workload::{WorkloadProducer, WorkloadSpec};
use super::{LogStore, ReplicationDriver};
use crate::executor::RetentionPolicy;
use crate::protocol::{Handshake, PROTOCOL_VERSION};
use crate::raft::RaftConfig;
use crate::storage::{LogConfig, StorageError};
use crate::types::NodeId;

/// Everything needed to build (and rebuild) a node's actors.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub cluster_id: String,
    pub node_id: Option<NodeId>,
    pub voters: BTreeSet<NodeId>,
    /// `host:port` of every other voter.
    pub peers: Vec<(NodeId, String)>,
    /// `controller.quorum.bootstrap.servers` by the ids the node gave them (-2, -3, …).
    pub bootstrap: Vec<(NodeId, String)>,
    /// What Kafka clients are told about the cluster: its id and every voter's endpoint.
    pub cluster: Arc<ClusterInfo>,
    pub listener: Option<Arc<tokio::net::TcpListener>>,
    pub partition_dir: PathBuf,
    pub log: LogConfig,
    pub raft: RaftConfig,
    pub snapshots: SnapshotPolicy,
    pub state_machine: crate::state_machine::StateMachineFactory,
    /// The file system every file of this node goes through.
    pub fs: crate::storage::Fs,
    /// The inbound connection limits and counts, kept across listener and node restarts.
    pub connections: Arc<super::connection_slots::ConnectionSlots>,
    /// Mutual TLS for peers, when the quorum listener is SSL.
    pub tls: Option<Arc<crate::security::PeerTls>>,
    /// The node's metrics, kept across actor and node restarts.
    pub metrics: Arc<crate::metrics::NodeMetrics>,
}

/// The addresses of a running node's actors.
#[derive(Clone)]
pub struct NodeParts {
    pub driver: Addr<ReplicationDriver>,
    pub log_store: Addr<LogStore>,
    pub snapshot_writer: Addr<SnapshotWriter>,
    pub listener: Option<Addr<Listener>>,
    pub workload: Option<Addr<WorkloadProducer>>,
    log_arbiter: ArbiterHandle,
    snapshot_arbiter: ArbiterHandle,
}

/// Where a node is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeState {
    Starting,
    Running,
    /// Rebuilding every actor from the data directory after an actor spent its budget.
    Restarting,
    /// Stopping its actors; `Stopped` or `Failed` follows once none of them writes any more.
    Stopping,
    /// Stopped on request.
    Stopped,
    /// Stopped because it could not go on; the text says why.
    Failed(String),
}

/// What handles see: the current actors (none while starting, restarting or stopped) and the
/// node's state.
#[derive(Clone)]
pub struct NodeView {
    pub parts: Option<NodeParts>,
    pub state: NodeState,
}

/// Restarts so far, for operators and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SupervisionStats {
    /// Restarts of single actors, by kind.
    pub actor_restarts: BTreeMap<ActorKind, u64>,
    /// Restarts of the whole node from its data directory.
    pub node_restarts: u64,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the log store stopped during start-up")]
    Stopped,
    #[error("cannot listen: {0}")]
    Listen(std::io::Error),
    #[error(transparent)]
    Tls(#[from] crate::security::TlsError),
}

pub struct NodeSupervisor {
    spec: NodeSpec,
    view: watch::Sender<NodeView>,
    events: broadcast::Sender<NodeEvent>,
    workload: Option<WorkloadSpec>,
    stats: SupervisionStats,
    budget: RestartBudget,
}

impl NodeSupervisor {
    pub fn new(spec: NodeSpec) -> (Self, watch::Receiver<NodeView>) {
        let (view, watcher) = watch::channel(NodeView {
            parts: None,
            state: NodeState::Starting,
        });
        let supervisor = NodeSupervisor {
            spec,
            view,
            events: broadcast::channel(MAX_BUFFERED_EVENTS).0,
            workload: None,
            stats: SupervisionStats::default(),
            budget: RestartBudget::default(),
        };
        (supervisor, watcher)
    }

    fn publish(&self, parts: Option<NodeParts>, state: NodeState) {
        self.view.send_replace(NodeView { parts, state });
    }

    fn parts(&self) -> Option<NodeParts> {
        self.view.borrow().parts.clone()
    }

    /// Tears the running actors down, then builds new ones from disk.
    fn restart_node(&mut self, ctx: &mut Context<Self>) {
        if self.view.borrow().state != NodeState::Running {
            return;
        }
        if self.budget.on_restart(std::time::Instant::now()).is_none() {
            self.fail("actors keep failing after node restarts".into(), ctx);
            return;
        }
        self.stats.node_restarts += 1;
        tracing::warn!("restarting the node from its data directory");
        let old = self.parts();
        self.publish(None, NodeState::Restarting);
        let me = ctx.address();
        let spec = self.spec.clone();
        let events = self.events.clone();
        let workload = self.workload.clone();
        ctx.wait(
            actix::fut::wrap_future::<_, Self>(async move {
                if let Some(old) = old {
                    teardown(old, false).await;
                }
                build(spec, me.recipient(), events, workload).await
            })
            .map(|result, act, ctx| match result {
                Ok(parts) => act.publish(Some(parts), NodeState::Running),
                Err(e) => act.fail(format!("cannot restart: {e}"), ctx),
            }),
        );
    }

    fn fail(&mut self, reason: String, ctx: &mut Context<Self>) {
        tracing::error!(%reason, "node stopped");
        let old = self.parts();
        self.spec.listener = None;
        self.publish(None, NodeState::Stopping);
        // Failed is published only once nothing of this node writes to its files any more.
        ctx.wait(
            actix::fut::wrap_future::<_, Self>(async move {
                if let Some(old) = old {
                    teardown(old, false).await;
                }
            })
            .map(move |(), act, _| act.publish(None, NodeState::Failed(reason))),
        );
    }
}

/// Starts every actor of a node: recovers the log and election state, then the core.
async fn build(
    spec: NodeSpec,
    node: Recipient<SupervisionEvent>,
    events: broadcast::Sender<NodeEvent>,
    workload: Option<WorkloadSpec>,
) -> Result<NodeParts, NodeError> {
    let log_arbiter = Arbiter::new().handle();
    let (dir, log_config, n) = (spec.partition_dir.clone(), spec.log, node.clone());
    let fs = spec.fs.clone();
    let voters: Vec<NodeId> = spec.voters.iter().copied().collect();
    let metrics = spec.metrics.clone();
    let log_store = Supervisor::start_in_arbiter(&log_arbiter, move |_| {
        LogStore::new(fs, dir, log_config, voters, Some(n)).with_metrics(metrics)
    });
    let recovered = match log_store.send(Recover).await {
        Ok(Ok(recovered)) => recovered,
        failed => {
            log_arbiter.stop();
            return Err(match failed {
                Ok(Err(e)) => e.into(),
                _ => NodeError::Stopped,
            });
        }
    };
    let now = ReplicationDriver::wall_clock_now();
    let (replica, actions) = ReplicationDriver::start_replica(spec.raft.clone(), recovered, now);
    let local = Handshake {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: spec.cluster_id.clone(),
        node_id: spec.node_id,
        rack: spec.cluster.local_rack.clone(),
        directory_id: spec.cluster.local_directory_id.map(|d| d.0),
    };
    let snapshot_arbiter = Arbiter::new().handle();
    let (dir, policy, store, n) = (
        spec.partition_dir.clone(),
        spec.snapshots,
        log_store.clone(),
        node.clone(),
    );
    let factory = spec.state_machine.clone();
    let fs = spec.fs.clone();
    let metrics = spec.metrics.clone();
    let snapshot_writer = Supervisor::start_in_arbiter(&snapshot_arbiter, move |_| {
        SnapshotWriter::new(fs, dir, policy, factory, store, Some(n)).with_metrics(metrics)
    });
    let parts = DriverParts {
        raft_config: spec.raft.clone(),
        log_store: log_store.clone(),
        network: Network {
            local: local.clone(),
            peers: spec.peers.clone(),
            bootstrap: spec.bootstrap.clone(),
            tls: spec.tls.clone(),
        },
        started_at: now,
        events: events.clone(),
        node: Some(node.clone()),
        snapshot_writer: Some(snapshot_writer.clone()),
        retention: CleanLog(RetentionPolicy {
            max_bytes: spec.snapshots.retention_bytes,
            max_age: spec.snapshots.retention,
        }),
        metrics: spec.metrics.clone(),
    };
    let driver = Supervisor::start(move |_| ReplicationDriver::new(replica, actions, parts));
    let listener = spec.listener.clone().map(|socket| {
        let face = KafkaFace {
            driver: driver.clone(),
            log_store: log_store.clone(),
            events: events.clone(),
            cluster: spec.cluster.clone(),
            producers: Default::default(),
        };
        let node = Some(node.clone());
        let (slots, tls) = (spec.connections.clone(), spec.tls.clone());
        Supervisor::start(move |_| Listener::new(socket, local, face, node, slots, tls))
    });
    let workload = workload.map(|spec| start_workload(driver.clone(), spec, node.clone()));
    Ok(NodeParts {
        driver,
        log_store,
        snapshot_writer,
        listener,
        workload,
        log_arbiter,
        snapshot_arbiter,
    })
}

fn start_workload(
    driver: Addr<ReplicationDriver>,
    spec: WorkloadSpec,
    node: Recipient<SupervisionEvent>,
) -> Addr<WorkloadProducer> {
    Supervisor::start(move |_| WorkloadProducer::new(driver, spec, Some(node)))
}

/// Stops a node's actors. `graceful` hands leadership over and flushes first. Returns once the
/// log store has closed the log, so nothing of this node writes to its files afterwards.
async fn teardown(parts: NodeParts, graceful: bool) {
    if graceful {
        let _ = parts.driver.send(Shutdown).await;
    }
    let _ = parts.driver.send(Stop).await;
    if let Some(listener) = &parts.listener {
        listener.do_send(Close);
    }
    if let Some(workload) = &parts.workload {
        workload.do_send(Close);
    }
    // Awaited: a snapshot being written finishes (or is abandoned as .part) before the caller
    // may start a new node on the same directory.
    let _ = parts.snapshot_writer.send(Close).await;
    if graceful {
        let _ = parts.log_store.send(FlushLog { seq: 0 }).await;
    }
    let _ = parts.log_store.send(CloseLog).await;
    parts.log_arbiter.stop();
    parts.snapshot_arbiter.stop();
}

impl Actor for NodeSupervisor {
    type Context = Context<Self>;
}

/// Builds the node's actors for the first time.
#[derive(Message)]
#[rtype(result = "Result<(), NodeError>")]
pub struct StartNode;

impl Handler<StartNode> for NodeSupervisor {
    type Result = ResponseActFuture<Self, Result<(), NodeError>>;

    fn handle(&mut self, _: StartNode, ctx: &mut Context<Self>) -> Self::Result {
        let fut = build(
            self.spec.clone(),
            ctx.address().recipient(),
            self.events.clone(),
            self.workload.clone(),
        );
        Box::pin(
            actix::fut::wrap_future::<_, Self>(fut).map(|result, act, _| {
                let parts = result?;
                act.publish(Some(parts), NodeState::Running);
                Ok(())
            }),
        )
    }
}

impl Handler<SupervisionEvent> for NodeSupervisor {
    type Result = ();

    fn handle(&mut self, event: SupervisionEvent, ctx: &mut Context<Self>) {
        match event {
            SupervisionEvent::Restarted(kind) => {
                *self.stats.actor_restarts.entry(kind).or_default() += 1;
            }
            SupervisionEvent::Exhausted(kind) => {
                tracing::warn!(actor = ?kind, "actor spent its restart budget");
                self.restart_node(ctx);
            }
            SupervisionEvent::Fatal { actor, reason } => {
                self.fail(format!("{actor:?} cannot continue: {reason}"), ctx);
            }
        }
    }
}

/// Stops the node: `graceful` hands leadership over and flushes first.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopNode {
    pub graceful: bool,
}

impl Handler<StopNode> for NodeSupervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: StopNode, _: &mut Context<Self>) -> Self::Result {
        let old = self.parts();
        self.spec.listener = None; // frees the port once the listener closes
        let state = self.view.borrow().state.clone();
        let final_state = match state {
            NodeState::Failed(_) => state,
            _ => NodeState::Stopped,
        };
        if !matches!(final_state, NodeState::Failed(_)) {
            self.publish(None, NodeState::Stopping);
        }
        // Stopped is published only once nothing of this node writes to its files any more.
        Box::pin(
            actix::fut::wrap_future::<_, Self>(async move {
                if let Some(old) = old {
                    teardown(old, msg.graceful).await;
                }
            })
            .map(move |(), act, _| act.publish(None, final_state)),
        )
    }
}

/// Starts the performance workload, now and after every node restart.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartWorkload(pub WorkloadSpec);

impl Handler<StartWorkload> for NodeSupervisor {
    type Result = ();

    fn handle(&mut self, msg: StartWorkload, ctx: &mut Context<Self>) {
        self.workload = Some(msg.0.clone());
        let Some(mut parts) = self.parts() else {
            return;
        };
        if let Some(old) = parts.workload.take() {
            old.do_send(Close);
        }
        parts.workload = Some(start_workload(
            parts.driver.clone(),
            msg.0,
            ctx.address().recipient(),
        ));
        let state = self.view.borrow().state.clone();
        self.publish(Some(parts), state);
    }
}

/// Asks for the restart counts.
#[derive(Message)]
#[rtype(result = "SupervisionStats")]
pub struct GetStats;

impl Handler<GetStats> for NodeSupervisor {
    type Result = MessageResult<GetStats>;
    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats.clone())
    }
}

/// Subscribes to the node's events (they survive node restarts).
impl Handler<Subscribe> for NodeSupervisor {
    type Result = MessageResult<Subscribe>;
    fn handle(&mut self, _: Subscribe, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.events.subscribe())
    }
}
