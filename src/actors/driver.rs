//! The replication driver: owns the protocol core (`raft::Replica`), feeds it inputs with the
//! current time, and executes its actions strictly in order.
//!
//! Owns the node's clock (wall-clock milliseconds advanced by a monotonic clock), the single
//! timer that wakes the core at its next deadline, and the reply channels of appends waiting
//! for the outcome the core decides. It is the only actor that asks the log store to append,
//! truncate or flush. It must never make a protocol decision itself (not even when to flush or
//! whether an append committed) and never block: file IO happens in the log store.
//!
//! Supervised: a panic in the core stops the driver and its `Supervisor` restarts it on the same
//! address. Pending appends then fail with `Interrupted`, and the core is rebuilt from what the
//! log store finds on disk (as a process restart would); a restarted log store asks for the same
//! rebuild. Wire correlation ids carry an incarnation number so that answers to requests of an
//! earlier incarnation are dropped.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::log_store::LogStore;
use super::messages::*;
use super::outbound::OutboundConnection;
use super::snapshot_writer::{
    CommittedTo, ForgetSnapshotsBefore, InstallSnapshot, ReadSnapshotChunk, SetSnapshotListener,
    SnapshotWriter, WriteSnapshotChunk,
};
use super::supervision::*;
use crate::protocol::Handshake;
use crate::raft::{
    Action, InboundId, Input, ProposalId, ProposalOutcome, ProposeError, RaftConfig, Replica,
    RequestId, VoterChangeId,
};
use crate::types::{NodeId, Offset};

/// Bits of a wire correlation id that hold the core's request id; the bits above hold the
/// driver's incarnation (2^48 requests per incarnation is never reached).
const REQUEST_ID_BITS: u32 = 48;
const REQUEST_ID_MASK: u64 = (1 << REQUEST_ID_BITS) - 1;

/// Inbound requests awaiting the core's answer: one per peer and channel is normal; this bounds
/// what a misbehaving client can make the driver remember.
pub const MAX_PENDING_INBOUND: usize = 4096;

/// Events buffered per subscriber; a subscriber further behind misses the oldest and is told
/// so by the channel (it can re-read from the log), so a slow subscriber never slows the node.
pub const MAX_BUFFERED_EVENTS: usize = 1024;

/// Who this node is on the wire and where its peers listen.
#[derive(Debug, Clone)]
pub struct Network {
    pub local: Handshake,
    /// `host:port` of every other voter.
    pub peers: Vec<(NodeId, String)>,
    /// `host:port` of each bootstrap server, by the id the node gave it (-2, -3, …).
    pub bootstrap: Vec<(NodeId, String)>,
    /// Mutual TLS for the connections to them, when the quorum listener is SSL.
    pub tls: Option<std::sync::Arc<crate::security::PeerTls>>,
}

/// Peers dialled at most: the voters of the largest voter set a leader grows
/// ([`crate::raft::MAX_VOTERS`]) and a few more for bootstrap servers and a leader learned from
/// a fetch answer. Endpoints past it are not dialled, so a hostile Voters record cannot make the
/// node open connections without bound.
pub const MAX_DIALLED_PEERS: usize = crate::raft::MAX_VOTERS + 8;

/// Appends waiting for their outcome at once: beyond this the driver refuses new ones, so that a
/// slow quorum sheds load instead of growing memory.
pub const MAX_PENDING_APPENDS: usize = 10_000;

/// Where an append's outcome goes (the core decides it).
type Reply = oneshot::Sender<Result<(Offset, Offset), AppendError>>;

/// Voter changes waiting for their outcome at once. The core runs one change at a time and
/// answers a refusal within the step that asked, so normally at most one waits; the bound
/// keeps the map small should answers ever go missing, whatever operators or clients send.
pub const MAX_PENDING_VOTER_CHANGES: usize = 64;

/// Where a voter change's outcome goes.
type VoterReply = oneshot::Sender<Result<(), VoterChangeFailure>>;

pub struct ReplicationDriver {
    replica: Replica,
    /// Kept to rebuild the core after a restart.
    raft_config: RaftConfig,
    log_store: Addr<LogStore>,
    /// Actions from `Replica::start`, executed when the actor starts.
    initial: Vec<Action>,
    wall_origin: Duration,
    origin: Instant,
    timer: Option<SpawnHandle>,
    pending: HashMap<ProposalId, Reply>,
    next_proposal: u64,
    /// Voter changes handed to the core, answered by its `Action::VoterChanged`.
    voter_changes: HashMap<VoterChangeId, VoterReply>,
    next_voter_change: u64,
    shutdown_waiters: Vec<oneshot::Sender<()>>,
    stopped: bool,
    network: Network,
    peers: HashMap<NodeId, Addr<OutboundConnection>>,
    /// The address of each peer dialled because the core announced it (not a configured voter
    /// or bootstrap server): closed once the core no longer names it there.
    announced: HashMap<NodeId, String>,
    inbound: HashMap<InboundId, (Recipient<SendResponse>, u64)>,
    next_inbound: u64,
    events: tokio::sync::broadcast::Sender<NodeEvent>,
    /// Bumped by every rebuild of the core; part of every wire correlation id.
    incarnation: u64,
    /// Waiting for the `Recovered` answer to a `Rebuild`; the core is not stepped meanwhile.
    rebuilding: bool,
    started_once: bool,
    budget: RestartBudget,
    node: Option<Recipient<SupervisionEvent>>,
    /// Records and bytes this node appended to its log (as leader or follower), for statistics.
    appended_records: u64,
    appended_bytes: u64,
    snapshot_writer: Option<Addr<SnapshotWriter>>,
    retention: CleanLog,
    /// The snapshot this core asked to install: an install finishing after a rebuild belongs
    /// to the old core, and replacing the log then could drop records the new one acknowledged.
    /// With the peer that sent its last chunk, named if the snapshot is refused.
    installing: Option<(crate::types::OffsetAndEpoch, NodeId)>,
    /// The installed snapshot whose log reset is under way, with its KRaftVersion and Voters
    /// records (the core's voter set at its end).
    resetting: Option<(
        crate::types::OffsetAndEpoch,
        Vec<crate::record::ControlRecord>,
    )>,
    /// Kafka's raft metrics, from what the core did (see `crate::metrics::RaftRecorder`).
    metrics: crate::metrics::RaftRecorder,
}

/// Everything the driver needs besides the core itself.
pub struct DriverParts {
    pub raft_config: RaftConfig,
    pub log_store: Addr<LogStore>,
    pub network: Network,
    pub started_at: Duration,
    pub events: tokio::sync::broadcast::Sender<NodeEvent>,
    pub node: Option<Recipient<SupervisionEvent>>,
    /// Told every high-watermark advance (its state machine follows it); serves and installs
    /// snapshots.
    pub snapshot_writer: Option<Addr<SnapshotWriter>>,
    /// Log cleaning after each new snapshot.
    pub retention: CleanLog,
    /// The node's metrics.
    pub metrics: std::sync::Arc<crate::metrics::NodeMetrics>,
}

impl ReplicationDriver {
    pub fn new(replica: Replica, initial: Vec<Action>, parts: DriverParts) -> Self {
        let DriverParts {
            raft_config,
            log_store,
            network,
            started_at,
            events,
            node,
            snapshot_writer,
            retention,
            metrics,
        } = parts;
        ReplicationDriver {
            replica,
            raft_config,
            log_store,
            initial,
            wall_origin: started_at,
            origin: Instant::now(),
            timer: None,
            pending: HashMap::new(),
            next_proposal: 0,
            voter_changes: HashMap::new(),
            next_voter_change: 0,
            shutdown_waiters: Vec::new(),
            stopped: false,
            network,
            peers: HashMap::new(),
            announced: HashMap::new(),
            inbound: HashMap::new(),
            next_inbound: 0,
            events,
            incarnation: 0,
            rebuilding: false,
            started_once: false,
            budget: RestartBudget::default(),
            node,
            appended_records: 0,
            appended_bytes: 0,
            snapshot_writer,
            retention,
            installing: None,
            resetting: None,
            metrics: crate::metrics::RaftRecorder::new(metrics),
        }
    }

    /// Asks the log store to flush; the core decided when (group commit and linger).
    fn send_flush(&mut self) {
        self.log_store.do_send(FlushLog {
            seq: self.incarnation + 1,
        });
    }

    /// A flush completed. Only the current core's flushes count: after a rebuild, the new core
    /// starts from what recovery found durable.
    fn flushed(&mut self, offset: Offset, seq: u64, ctx: &mut Context<Self>) {
        if seq == self.incarnation + 1 {
            self.step(Input::Flushed { offset }, ctx);
        }
    }

    /// A fresh core from what is on disk, as at process start.
    pub fn start_replica(
        config: RaftConfig,
        recovered: Recovered,
        now: Duration,
    ) -> (Replica, Vec<Action>) {
        // Election jitter differs per node and per start; nothing else depends on the seed.
        let seed = now.as_nanos() as u64 ^ u64::from(config.local_id.map_or(0, |n| n.0 as u32));
        recovered.start_replica(config, now, seed)
    }

    /// The wall clock as the core sees it: it never goes backwards.
    pub fn wall_clock_now() -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }

    fn now(&self) -> Duration {
        self.wall_origin + self.origin.elapsed()
    }

    fn step(&mut self, input: Input, ctx: &mut Context<Self>) {
        if self.stopped || self.rebuilding {
            return;
        }
        let kind = input_kind(&input);
        let started = Instant::now();
        let now = self.now();
        let replica = &mut self.replica;
        let Some(actions) = guarded(ctx, ActorKind::Driver, || replica.step(now, input)) else {
            return;
        };
        tracing::debug!(input = kind, role = ?self.replica.role(), epoch = %self.replica.epoch(), actions = actions.len(), "step");
        self.execute(actions, ctx);
        self.metrics.busy_since(started);
    }

    fn execute(&mut self, actions: Vec<Action>, ctx: &mut Context<Self>) {
        self.metrics.observe(&self.replica);
        for action in actions {
            self.execute_one(action, ctx);
        }
        self.schedule_tick(ctx);
    }

    fn execute_one(&mut self, action: Action, ctx: &mut Context<Self>) {
        match action {
            Action::PersistElection(state) => {
                // The voter voted for is one of the set in force: its directory id is there.
                let voted_directory_id = state
                    .voted_id
                    .and_then(|id| self.replica.voter_set()?.get(id)?.key.directory_id);
                self.log_store.do_send(Persist(state, voted_directory_id))
            }
            Action::Append { batches } => {
                let leader = self.replica.role() == crate::raft::RoleKind::Leader;
                let (records, bytes) = self.metrics.appended(&batches, leader);
                self.appended_records += records;
                self.appended_bytes += bytes;
                self.log_store.do_send(AppendBatches(batches));
            }
            Action::Truncate { offset } => self.log_store.do_send(TruncateTo(offset)),
            Action::FetchedSnapshotRefused {
                from,
                id,
                position,
                reason,
            } => {
                tracing::warn!(peer = %from, end_offset = %id.offset, epoch = %id.epoch, position, reason = %reason, "refused a snapshot chunk fetched from the leader");
                self.metrics
                    .rejected_batch(crate::metrics::BatchRejection::FetchedSnapshotChunk);
            }
            Action::FetchedRecordsRefused {
                from,
                offset,
                reason,
            } => {
                tracing::warn!(peer = %from, offset = %offset, reason = %reason, "refused records fetched from the leader");
                self.metrics
                    .rejected_batch(crate::metrics::BatchRejection::FetchedRecords);
            }
            Action::VoterChanged { id, result } => {
                tracing::info!(change = id.0, result = ?result, "voter change done");
                if let Some(reply) = self.voter_changes.remove(&id) {
                    let _ = reply.send(result.map_err(VoterChangeFailure::Refused));
                }
            }
            Action::Endpoints(endpoints) => {
                tracing::debug!(?endpoints, "replicas this node may send to");
                let addresses: HashMap<NodeId, String> = endpoints
                    .into_iter()
                    .map(|(peer, a)| (peer, dial_address(&a.host, a.port)))
                    .collect();
                self.hang_up_unannounced(&addresses);
                for (peer, address) in addresses {
                    let dialled = self.peers.contains_key(&peer);
                    self.dial(peer, address.clone(), false, ctx);
                    if !dialled && self.peers.contains_key(&peer) {
                        self.announced.insert(peer, address);
                    }
                }
            }
            Action::RepairPointReached => {
                tracing::info!("the log is back where it was before the repair: voting again");
                self.log_store.do_send(ClearRepairPoint);
            }
            Action::Flush => self.send_flush(),
            // No peer connections yet: a request to another node fails at once, as a
            // disconnected peer would.
            Action::Send {
                to,
                request_id,
                request,
            } => match self.peers.get(&to) {
                Some(conn) => conn.do_send(SendRequest {
                    correlation_id: (self.incarnation << REQUEST_ID_BITS)
                        | (request_id.0 & REQUEST_ID_MASK),
                    request,
                }),
                None => ctx.notify(Failed(Input::RequestFailed { to, request_id })),
            },
            Action::Respond { to, response } => {
                if let crate::raft::Response::Vote(v) = &response
                    && !v.vote_granted
                    && self.replica.log().awaiting_repair_point()
                {
                    tracing::info!(
                        epoch = %v.leader_epoch,
                        "refused a vote: the log is not yet back at its repair point"
                    );
                }
                if let Some((conn, correlation_id)) = self.inbound.remove(&to) {
                    conn.do_send(SendResponse {
                        correlation_id,
                        response,
                    });
                }
            }
            Action::RespondFetch {
                to,
                response,
                read_from,
                max_bytes,
            } => {
                let Some((deliver, correlation_id)) = self.inbound.remove(&to) else {
                    return;
                };
                match read_from {
                    Some(from) => self.log_store.do_send(ReadForFetch {
                        from,
                        max_bytes,
                        response,
                        correlation_id,
                        deliver,
                    }),
                    None => deliver.do_send(SendResponse {
                        correlation_id,
                        response: crate::raft::Response::Fetch(response),
                    }),
                }
            }
            Action::RespondFetchSnapshot {
                to,
                response,
                max_bytes,
            } => {
                if let (Some((deliver, correlation_id)), Some(writer)) =
                    (self.inbound.remove(&to), &self.snapshot_writer)
                {
                    writer.do_send(ReadSnapshotChunk {
                        response,
                        max_bytes,
                        correlation_id,
                        deliver,
                    });
                }
            }
            Action::WriteSnapshotChunk {
                id,
                position,
                bytes,
            } => {
                if let Some(writer) = &self.snapshot_writer {
                    writer.do_send(WriteSnapshotChunk {
                        id,
                        position,
                        bytes,
                    });
                }
            }
            Action::InstallSnapshot { id, from } => match &self.snapshot_writer {
                Some(writer) => {
                    self.installing = Some((id, from));
                    writer.do_send(InstallSnapshot(id))
                }
                None => self.begin_rebuild(),
            },
            Action::Proposed { id, outcome } => self.proposed(id, outcome),
            Action::HighWatermark(hw) => {
                self.metrics.committed(hw);
                if let Some(writer) = &self.snapshot_writer {
                    writer.do_send(CommittedTo(hw));
                }
                let _ = self
                    .events
                    .send(NodeEvent::Committed { high_watermark: hw });
            }
            Action::LeaderChanged { epoch, leader_id } => {
                let _ = self
                    .events
                    .send(NodeEvent::LeaderChanged { epoch, leader_id });
                tracing::info!(epoch = %epoch, leader_id = ?leader_id, role = ?self.replica.role(), "leader changed");
            }
            Action::ShutdownComplete => {
                // A last flush nobody waits for (numbered 0, matching no core).
                self.log_store.do_send(FlushLog { seq: 0 });
                for waiter in self.shutdown_waiters.drain(..) {
                    let _ = waiter.send(());
                }
            }
            Action::Fatal(reason) => self.fail(&reason, ctx),
        }
    }

    fn proposed(&mut self, id: ProposalId, outcome: ProposalOutcome) {
        if let ProposalOutcome::Refused(refusal) = &outcome {
            self.metrics.refused_proposal(refusal);
        }
        let result = match outcome {
            ProposalOutcome::Committed { first, last } => Ok((first, last)),
            ProposalOutcome::Refused(ProposeError::NotLeader { leader_id, epoch }) => {
                Err(AppendError::NotLeader { leader_id, epoch })
            }
            ProposalOutcome::Refused(ProposeError::TooLarge) => Err(AppendError::TooLarge),
            ProposalOutcome::Refused(ProposeError::InvalidBatch) => Err(AppendError::InvalidBatch),
            ProposalOutcome::Refused(ProposeError::OutOfOrderSequence) => {
                Err(AppendError::OutOfOrderSequence)
            }
            ProposalOutcome::Refused(ProposeError::InvalidProducerEpoch) => {
                Err(AppendError::InvalidProducerEpoch)
            }
            ProposalOutcome::Unresolved { epoch, first, last } => {
                Err(AppendError::LeadershipLost { epoch, first, last })
            }
        };
        if let Some(reply) = self.pending.remove(&id) {
            let _ = reply.send(result);
        }
    }

    /// The node cannot go on (the disk failed, or the core reported a fatal error).
    fn fail(&mut self, reason: &str, ctx: &mut Context<Self>) {
        tracing::error!(reason, "replication stopped");
        if let Some(node) = &self.node {
            node.do_send(SupervisionEvent::Fatal {
                actor: ActorKind::Driver,
                reason: reason.to_string(),
            });
        }
        self.halt(ctx);
    }

    /// Stops for good: fails what waits, closes the peer connections and answers nothing more.
    /// The actor itself stays (idle) until its last address is dropped, because a stopped
    /// supervised actor would only be restarted.
    fn halt(&mut self, ctx: &mut Context<Self>) {
        self.stopped = true;
        self.fail_pending(AppendError::Stopped);
        for waiter in self.shutdown_waiters.drain(..) {
            let _ = waiter.send(());
        }
        for (_, conn) in self.peers.drain() {
            conn.do_send(Close);
        }
        self.announced.clear();
        self.inbound.clear();
        if let Some(handle) = self.timer.take() {
            ctx.cancel_future(handle);
        }
    }

    fn fail_pending(&mut self, error: AppendError) {
        let voter_error = match error {
            AppendError::Stopped => VoterChangeFailure::Stopped,
            _ => VoterChangeFailure::Interrupted,
        };
        for (_, reply) in self.pending.drain() {
            let _ = reply.send(Err(error.clone()));
        }
        for (_, reply) in self.voter_changes.drain() {
            let _ = reply.send(Err(voter_error.clone()));
        }
    }

    /// Asks the log store for what is on disk; the core is rebuilt from its answer.
    fn begin_rebuild(&mut self) {
        if self.stopped {
            return;
        }
        self.incarnation += 1;
        self.rebuilding = true;
        self.installing = None;
        self.resetting = None;
        self.inbound.clear();
        self.fail_pending(AppendError::Interrupted);
        tracing::warn!(
            incarnation = self.incarnation,
            "rebuilding the protocol core from disk"
        );
        self.log_store.do_send(Rebuild);
    }

    fn rebuilt(&mut self, outcome: Result<Recovered, String>, ctx: &mut Context<Self>) {
        if self.stopped {
            return;
        }
        match outcome {
            Ok(recovered) => {
                let now = self.now();
                let (replica, actions) =
                    Self::start_replica(self.raft_config.clone(), recovered, now);
                self.replica = replica;
                self.rebuilding = false;
                tracing::info!(role = ?self.replica.role(), epoch = %self.replica.epoch(), "protocol core rebuilt");
                self.execute(actions, ctx);
                // A shutdown asked for before or during the rebuild still has to happen.
                if !self.shutdown_waiters.is_empty() {
                    self.step(Input::Shutdown, ctx);
                }
            }
            Err(reason) => self.fail(&reason, ctx),
        }
    }

    /// Wakes the core at its next deadline (one timer, replaced after every step).
    fn schedule_tick(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        if let Some(deadline) = self.replica.next_deadline() {
            let delay = deadline.saturating_sub(self.now());
            self.timer = Some(ctx.run_later(delay, |act, ctx| {
                act.timer = None;
                act.step(Input::Tick, ctx);
            }));
        }
    }
}

impl ReplicationDriver {
    /// Starts a supervised connection to `peer` at `address` (`host:port`), unless one is
    /// dialled already (it keeps its connection), `peer` is this node, or
    /// [`MAX_DIALLED_PEERS`] are dialled.
    fn dial(&mut self, peer: NodeId, address: String, bootstrap: bool, ctx: &mut Context<Self>) {
        if self.stopped
            || self.peers.contains_key(&peer)
            || Some(peer) == self.network.local.node_id
        {
            return;
        }
        if self.peers.len() >= MAX_DIALLED_PEERS {
            tracing::warn!(peer = %peer, address, limit = MAX_DIALLED_PEERS, "not dialling a peer: too many peers");
            return;
        }
        tracing::info!(peer = %peer, address, bootstrap, "dialling a peer");
        let local = self.network.local.clone();
        let driver = ctx.address().recipient();
        let node = self.node.clone();
        let tls = self.network.tls.clone();
        let conn = Supervisor::start(move |_| {
            let conn =
                OutboundConnection::new(peer, address.clone(), local, driver, node, tls.clone());
            if bootstrap {
                conn.to_bootstrap_server()
            } else {
                conn
            }
        });
        self.peers.insert(peer, conn);
    }
}

impl ReplicationDriver {
    /// Closes the connections dialled for endpoints the core no longer names, or names at
    /// another address (a leader a fetch answer named, a removed voter, a voter that moved):
    /// otherwise every address a peer ever named would stay dialled, filling the peer slots.
    fn hang_up_unannounced(&mut self, addresses: &HashMap<NodeId, String>) {
        let gone: Vec<NodeId> = self
            .announced
            .iter()
            .filter(|(peer, at)| addresses.get(peer) != Some(at))
            .map(|(peer, _)| *peer)
            .collect();
        for peer in gone {
            self.announced.remove(&peer);
            if let Some(conn) = self.peers.remove(&peer) {
                tracing::info!(peer = %peer, "closing the connection to a peer no longer named");
                conn.do_send(Close);
            }
        }
    }
}

/// `host:port` for a voter's endpoint (an IPv6 literal in brackets).
fn dial_address(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A request failure delivered on the next turn, so the core never re-enters itself.
#[derive(Message)]
#[rtype(result = "()")]
struct Failed(Input);

impl Actor for ReplicationDriver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.started_once {
            // A restart: the core may be half-updated, so rebuild it from disk.
            self.begin_rebuild();
            return;
        }
        self.started_once = true;
        self.log_store.do_send(SetDriver(ctx.address().recipient()));
        if let Some(writer) = &self.snapshot_writer {
            writer.do_send(SetSnapshotListener(ctx.address().recipient()));
        }
        for (peer, address) in self.network.peers.clone() {
            self.dial(peer, address, false, ctx);
        }
        for (server, address) in self.network.bootstrap.clone() {
            self.dial(server, address, true, ctx);
        }
        let initial = std::mem::take(&mut self.initial);
        self.execute(initial, ctx);
    }
}

impl Supervised for ReplicationDriver {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        self.timer = None;
        self.fail_pending(AppendError::Interrupted);
        on_restart(ctx, ActorKind::Driver, &mut self.budget, &self.node);
    }
}

impl Handler<Failed> for ReplicationDriver {
    type Result = ();
    fn handle(&mut self, msg: Failed, ctx: &mut Context<Self>) {
        self.step(msg.0, ctx);
    }
}

impl Handler<IoDone> for ReplicationDriver {
    type Result = ();
    fn handle(&mut self, msg: IoDone, ctx: &mut Context<Self>) {
        match msg {
            IoDone::ElectionPersisted => self.step(Input::ElectionPersisted, ctx),
            // Completions of flushes from before a rebuild carry the old core's number.
            IoDone::Flushed { offset, seq } => self.flushed(offset, seq, ctx),
            IoDone::Failed(reason) => self.fail(&reason, ctx),
            IoDone::Restarted => self.begin_rebuild(),
            // Answers come in request order: the first one after a `Rebuild` rebuilds the core,
            // and one for a superseded request (asked again meanwhile) finds it rebuilt.
            IoDone::Recovered(outcome) if self.rebuilding => self.rebuilt(*outcome, ctx),
            IoDone::Recovered(_) => {}
            IoDone::LogStartAdvanced {
                start,
                snapshots_before,
            } => {
                self.step(Input::LogStartAdvanced { offset: start }, ctx);
                if let Some(writer) = &self.snapshot_writer {
                    writer.do_send(ForgetSnapshotsBefore(snapshots_before));
                }
            }
            IoDone::LogReset(id) => {
                let control = match self.resetting.take() {
                    Some((reset, control)) if reset == id => control,
                    _ => Vec::new(),
                };
                self.step(Input::SnapshotInstalled { id, control }, ctx)
            }
        }
    }
}

impl Handler<Propose> for ReplicationDriver {
    type Result = ResponseFuture<Result<(Offset, Offset), AppendError>>;

    fn handle(&mut self, msg: Propose, ctx: &mut Context<Self>) -> Self::Result {
        self.submit(|id| Input::Propose { id, records: msg.0 }, ctx)
    }
}

impl Handler<ProposeBatch> for ReplicationDriver {
    type Result = ResponseFuture<Result<(Offset, Offset), AppendError>>;

    fn handle(&mut self, msg: ProposeBatch, ctx: &mut Context<Self>) -> Self::Result {
        self.submit(|id| Input::ProposeBatch { id, batch: msg.0 }, ctx)
    }
}

impl ReplicationDriver {
    /// Hands a proposal to the core, or refuses it at once (stopped, too many pending, or
    /// rebuilding); resolves with its outcome.
    fn submit(
        &mut self,
        input: impl FnOnce(ProposalId) -> Input,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<(Offset, Offset), AppendError>> {
        let (reply, outcome) = oneshot::channel();
        if self.stopped || self.pending.len() >= MAX_PENDING_APPENDS {
            let _ = reply.send(Err(AppendError::Stopped));
        } else if self.rebuilding {
            let _ = reply.send(Err(AppendError::NotLeader {
                leader_id: None,
                epoch: self.replica.epoch(),
            }));
        } else {
            let id = ProposalId(self.next_proposal);
            self.next_proposal += 1;
            self.pending.insert(id, reply);
            self.step(input(id), ctx);
        }
        Box::pin(async move { outcome.await.unwrap_or(Err(AppendError::Stopped)) })
    }
}

impl Handler<AddVoter> for ReplicationDriver {
    type Result = ResponseFuture<Result<(), VoterChangeFailure>>;

    fn handle(&mut self, msg: AddVoter, ctx: &mut Context<Self>) -> Self::Result {
        let AddVoter { voter, timeout } = msg;
        self.change_voters(|id| Input::AddVoter { id, voter, timeout }, ctx)
    }
}

impl Handler<RemoveVoter> for ReplicationDriver {
    type Result = ResponseFuture<Result<(), VoterChangeFailure>>;

    fn handle(&mut self, msg: RemoveVoter, ctx: &mut Context<Self>) -> Self::Result {
        let RemoveVoter { voter, timeout } = msg;
        self.change_voters(|id| Input::RemoveVoter { id, voter, timeout }, ctx)
    }
}

impl Handler<UpdateVoter> for ReplicationDriver {
    type Result = ResponseFuture<Result<(), VoterChangeFailure>>;

    fn handle(&mut self, msg: UpdateVoter, ctx: &mut Context<Self>) -> Self::Result {
        let voter = msg.voter;
        self.change_voters(|id| Input::UpdateVoter { id, voter }, ctx)
    }
}

impl ReplicationDriver {
    /// Hands a voter change to the core, or refuses it at once (stopped, rebuilding, or too
    /// many waiting); resolves with the outcome the core reports.
    fn change_voters(
        &mut self,
        input: impl FnOnce(VoterChangeId) -> Input,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<(), VoterChangeFailure>> {
        let (reply, outcome) = oneshot::channel();
        if self.stopped {
            let _ = reply.send(Err(VoterChangeFailure::Stopped));
        } else if self.rebuilding {
            let _ = reply.send(Err(VoterChangeFailure::Refused(
                crate::raft::VoterChangeError::NotLeader {
                    leader_id: None,
                    epoch: self.replica.epoch(),
                },
            )));
        } else if self.voter_changes.len() >= MAX_PENDING_VOTER_CHANGES {
            let _ = reply.send(Err(VoterChangeFailure::Busy));
        } else {
            let id = VoterChangeId(self.next_voter_change);
            self.next_voter_change += 1;
            self.voter_changes.insert(id, reply);
            self.step(input(id), ctx);
        }
        Box::pin(async move { outcome.await.unwrap_or(Err(VoterChangeFailure::Stopped)) })
    }
}

/// A time on the node's clock (since the Unix epoch) in whole milliseconds, as Kafka reports it.
fn millis(t: Option<Duration>) -> Option<i64> {
    t.map(|t| t.as_millis() as i64)
}

impl Handler<Describe> for ReplicationDriver {
    type Result = MessageResult<Describe>;

    fn handle(&mut self, _: Describe, _: &mut Context<Self>) -> Self::Result {
        let r = &self.replica;
        MessageResult(Status {
            node_id: r.config().local_id,
            role: r.role(),
            epoch: r.epoch(),
            leader_id: r.leader_id(),
            high_watermark: r.high_watermark(),
            log_start_offset: r.log().log_start_offset(),
            log_end_offset: r.log().log_end_offset(),
            voters: r.voter_end_offsets(),
            voter_times: r
                .voter_progress()
                .into_iter()
                .map(|(id, p)| (id, (millis(p.last_fetch), millis(p.last_caught_up))))
                .collect(),
            observers: r
                .observer_progress()
                .into_iter()
                .map(|(id, p)| {
                    let report = crate::kafka::ReplicaReport {
                        log_end_offset: p.end_offset,
                        last_fetch_ms: millis(p.last_fetch),
                        last_caught_up_ms: millis(p.last_caught_up),
                    };
                    (id, report)
                })
                .collect(),
            now_ms: self.now().as_millis() as i64,
            appended_records: self.appended_records,
            appended_bytes: self.appended_bytes,
            voter_set: r.voter_set().cloned(),
            kraft_version: r.kraft_version(),
        })
    }
}

impl Handler<Shutdown> for ReplicationDriver {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if self.stopped {
            let _ = tx.send(());
        } else {
            self.shutdown_waiters.push(tx);
            // While rebuilding, the rebuilt core is told once it exists (see `rebuilt`).
            self.step(Input::Shutdown, ctx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<Stop> for ReplicationDriver {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        self.halt(ctx);
    }
}

impl Handler<InboundRequest> for ReplicationDriver {
    type Result = ();

    fn handle(&mut self, msg: InboundRequest, ctx: &mut Context<Self>) {
        if self.stopped {
            // The connection holds this driver's address; closing it lets both go.
            msg.closer.do_send(Close);
            return;
        }
        if self.rebuilding {
            return;
        }
        if self.inbound.len() >= MAX_PENDING_INBOUND {
            // Not a silent drop, which would leave the peer waiting out its request timeout:
            // the connection closes, and a correct peer dials again.
            tracing::warn!(
                "too many requests awaiting an answer; closing the connection of one more"
            );
            msg.closer.do_send(Close);
            return;
        }
        let id = InboundId(self.next_inbound);
        self.next_inbound += 1;
        self.inbound
            .insert(id, (msg.connection, msg.correlation_id));
        self.step(
            Input::Request {
                from: id,
                request: msg.request,
            },
            ctx,
        );
    }
}

impl Handler<PeerEvent> for ReplicationDriver {
    type Result = ();

    fn handle(&mut self, msg: PeerEvent, ctx: &mut Context<Self>) {
        let correlation_id = match &msg {
            PeerEvent::Response { correlation_id, .. }
            | PeerEvent::Failed { correlation_id, .. } => *correlation_id,
        };
        if correlation_id >> REQUEST_ID_BITS != self.incarnation {
            return; // an answer to a request of an earlier core
        }
        let request_id = RequestId(correlation_id & REQUEST_ID_MASK);
        let input = match msg {
            PeerEvent::Response { from, response, .. } => Input::Response {
                from,
                request_id,
                response,
            },
            PeerEvent::Failed { to, .. } => Input::RequestFailed { to, request_id },
        };
        self.step(input, ctx);
    }
}

/// A short name for an input, for logs.
fn input_kind(input: &Input) -> &'static str {
    match input {
        Input::Tick => "tick",
        Input::Request { request, .. } => request.name(),
        Input::Response { .. } => "response",
        Input::RequestFailed { .. } => "request-failed",
        Input::ElectionPersisted => "election-persisted",
        Input::Flushed { .. } => "flushed",
        Input::Propose { .. } => "propose",
        Input::ProposeBatch { .. } => "propose batch",
        Input::Shutdown => "shutdown",
        Input::SnapshotWritten { .. } => "snapshot-written",
        Input::LogStartAdvanced { .. } => "log-start-advanced",
        Input::SnapshotInstalled { .. } => "snapshot-installed",
        Input::AddVoter { .. } => "add-voter",
        Input::UpdateVoter { .. } => "update-voter",
        Input::RemoveVoter { .. } => "remove-voter",
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<InjectFault> for ReplicationDriver {
    type Result = ();
    fn handle(&mut self, msg: InjectFault, ctx: &mut Context<Self>) {
        apply_fault(ctx, ActorKind::Driver, msg.0);
    }
}

/// Delivers a fault to this driver's connection to one peer.
#[cfg(feature = "fault-injection")]
#[derive(Message)]
#[rtype(result = "bool")]
pub struct InjectPeerFault {
    pub peer: NodeId,
    pub fault: Fault,
}

#[cfg(feature = "fault-injection")]
impl Handler<InjectPeerFault> for ReplicationDriver {
    type Result = bool;
    fn handle(&mut self, msg: InjectPeerFault, _: &mut Context<Self>) -> bool {
        match self.peers.get(&msg.peer) {
            Some(conn) => {
                conn.do_send(InjectFault(msg.fault));
                true
            }
            None => false,
        }
    }
}

impl Handler<SnapshotEvent> for ReplicationDriver {
    type Result = ();

    fn handle(&mut self, event: SnapshotEvent, ctx: &mut Context<Self>) {
        match event {
            SnapshotEvent::Written(id) => {
                self.step(Input::SnapshotWritten { id }, ctx);
                if !self.stopped && !self.rebuilding {
                    self.log_store.do_send(self.retention);
                }
            }
            // The log is replaced only once the state machine holds the snapshot.
            SnapshotEvent::Installed(Ok((id, control)))
                if self.installing.is_some_and(|(i, _)| i == id) =>
            {
                self.installing = None;
                self.resetting = Some((id, control));
                self.log_store.do_send(ResetLog(id));
            }
            // A transfer that cannot be installed starts over with a fresh core (its bytes
            // were deleted).
            SnapshotEvent::Installed(Err(reason)) if self.installing.is_some() => {
                let (id, from) = self.installing.take().expect("checked by the guard");
                tracing::warn!(peer = %from, end_offset = %id.offset, epoch = %id.epoch, reason = %reason, "refused a snapshot fetched from the leader; fetching it again");
                self.metrics
                    .rejected_batch(crate::metrics::BatchRejection::FetchedSnapshot);
                self.begin_rebuild()
            }
            SnapshotEvent::Installed(_) => {
                tracing::warn!("ignored a snapshot install an earlier core asked for");
            }
        }
    }
}
