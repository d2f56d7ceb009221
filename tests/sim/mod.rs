//! A deterministic simulation of a KRaft quorum that runs what production runs: the protocol
//! core (`raft::Replica`) and the executors that carry out its actions (`executor::LogExecutor`,
//! `executor::SnapshotExecutor`, so the real segment log, epoch checkpoint, `quorum-state`,
//! snapshot files and a state machine) over one simulated disk per node (`storage::SimFs`),
//! with simulated time, a seeded RNG, and a network that can drop, duplicate, delay, reorder,
//! partition and corrupt.
//!
//! Disks behave like real ones: writes sit in a page cache until fsync; a process crash keeps
//! the page cache, a power loss keeps only what was made durable (tearing unsynced appends);
//! an fsync can fail the Linux way (the dirty pages are dropped unwritten), after which the node
//! stops and its machine reboots before it starts again. Invariants are checked after every
//! event, some against the disk's oracle of what a power loss would keep.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use kraft::executor::{
    InstallError, LogExecutor, Recovered, RetentionPolicy, SnapshotExecutor, SnapshotPolicy,
};
use kraft::raft::{
    Action, FetchResponse, InboundId, Input, ListenerAddress, PersistedElection, ProposalId,
    ProposalOutcome, RaftConfig, Replica, ReplicaKey, Request, RequestId, Response, RoleKind,
    Voter, VoterChangeError, VoterChangeId, VoterSet,
};
use kraft::record::{BatchIter, ControlRecord, RecordBatch, RecordError};
use kraft::state_machine::{StateMachine, StateMachineFactory};
use kraft::storage::{
    Fs, LogConfig, SimFs, SnapshotFile, SnapshotFileWriter, StorageError, repair_partition_in,
    write_bootstrap_checkpoint_in, write_joining_checkpoint_in,
};
use kraft::types::{Epoch, NodeId, Offset, OffsetAndEpoch};
use kraft::uuid::Uuid;

/// Simulated wall clock at the start (so batch timestamps look real).
/// The quorum listener's name in a dynamic quorum's voter records.
const SIM_LISTENER: &str = "CONTROLLER";
/// How long a voter change may take to commit before the leader answers it timed out.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(5);
const START: Duration = Duration::from_millis(1_700_000_000_000);
/// Events at one simulated instant beyond which the run is declared livelocked.
const MAX_EVENTS_AT_ONE_INSTANT: u64 = 10_000;
/// Events kept for a failure report (`KRAFT_SIM_HISTORY=N` keeps N).
const HISTORY: usize = 60;
/// Where each node keeps its partition, on its own disk.
const DIR: &str = "/kraft/__sim-0";
/// Small segments and index intervals, so that rolls, cleaning and index lookups happen.
const LOG: LogConfig = LogConfig {
    segment_bytes: 2048,
    index_interval_bytes: 256,
};
/// Bytes per FetchSnapshot answer in the simulation: small, so that transfers span requests.
const SNAPSHOT_CHUNK_BYTES: u32 = 200;
/// Bytes read per step when the state machine catches up with the high watermark.
const CATCH_UP_BYTES: u32 = 16 * 1024;

/// The protocol core's deterministic RNG drives the simulation too.
pub use kraft::raft::SeededRng as Rng;

fn dir() -> &'static Path {
    Path::new(DIR)
}

/// The simulation's state machine: every committed batch, in order. Its snapshots hold them
/// all, so an installed snapshot can be compared with the committed history batch by batch.
#[derive(Default)]
pub struct History {
    pub batches: Vec<Bytes>,
    applied: Offset,
}

impl StateMachine for History {
    fn apply(&mut self, batch: &RecordBatch) -> Result<(), RecordError> {
        self.batches.push(batch.as_bytes().clone());
        self.applied = batch.next_offset();
        Ok(())
    }
    fn applied_offset(&self) -> Offset {
        self.applied
    }
    fn write_snapshot(&self, writer: &mut SnapshotFileWriter) -> Result<(), StorageError> {
        writer.append(self.batches.iter().cloned())
    }
    fn load_snapshot(&mut self, snapshot: &SnapshotFile) -> Result<(), StorageError> {
        let mut batches = Vec::new();
        snapshot.for_each_value(|v| batches.push(v))?;
        *self = History {
            batches,
            applied: snapshot.id.offset,
        };
        Ok(())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn history(snaps: &SnapshotExecutor) -> &History {
    snaps
        .state()
        .as_any()
        .downcast_ref::<History>()
        .expect("the simulation's state machine")
}

/// A running node: its core and its executors (dropped by a crash; the disk stays).
pub struct Live {
    pub replica: Replica,
    pub log: LogExecutor,
    pub snaps: SnapshotExecutor,
}

pub struct SimNode {
    pub id: Option<NodeId>,
    /// Its metadata directory's id: a wiped disk comes back with a new one.
    pub directory_id: Uuid,
    /// The machine's disk: survives process crashes; a power loss keeps what was durable.
    pub disk: SimFs,
    pub live: Option<Live>,
    incarnation: u64,
    /// Requests awaiting an answer: who asked, their id, and whether it is a standard vote.
    inbound: HashMap<u64, (usize, RequestId, bool)>,
    next_inbound: u64,
    tick_at: Option<Duration>,
    /// Highest high watermark this incarnation reported.
    hw: Option<Offset>,
    shutting_down: bool,
    /// Batches below this offset were already checked against the committed history.
    checked: Offset,
    /// The node stopped on a disk error: its machine reboots (the page cache is dropped, as
    /// the operator must after an fsync failure) before it starts again.
    needs_reboot: bool,
    /// When the last queued log store operation runs (later ones run after it).
    store_at: Duration,
    /// Log store operations queued and not yet carried out.
    store_pending: usize,
    /// Of those, flushes (appends before them are written but not yet durable).
    flushes_pending: usize,
    /// Data rotted at rest on its disk and it has not been repaired yet: the one case where a
    /// start may refuse damage.
    rotted: bool,
    /// The repair point `storage repair` recorded, until the node clears it.
    repair_point: Option<OffsetAndEpoch>,
    /// The durable log end before its data rotted, standing in for what the disk holds until
    /// the node is back at its repair point: the records it lost are still counted as held,
    /// because the repair gate keeps it from voting as if it had never had them.
    durable_before_rot: Option<Offset>,
}

impl SimNode {
    fn replica(&self) -> Option<&Replica> {
        self.live.as_ref().map(|l| &l.replica)
    }
}

#[derive(Debug, Clone)]
enum Msg {
    Request {
        from: usize,
        request_id: RequestId,
        request: Request,
    },
    Response {
        from: NodeId,
        request_id: RequestId,
        response: Response,
    },
}

#[derive(Debug, Clone)]
enum Event {
    Deliver {
        to: usize,
        msg: Msg,
    },
    Tick {
        node: usize,
    },
    Io {
        node: usize,
        incarnation: u64,
        input: Input,
    },
    /// The node's log store carries out its next queued operation.
    Store {
        node: usize,
        incarnation: u64,
        op: StoreOp,
    },
}

/// What the driver hands the log store actor, carried out in order a little later (its
/// mailbox), so that a crash can find an election state not yet persisted or appends not yet
/// flushed, and an answer that should wait for them can be caught going out early.
#[derive(Debug, Clone)]
enum StoreOp {
    Persist(PersistedElection),
    Append(Bytes),
    Truncate(Offset),
    Flush,
    /// The log is back where it was before a repair: forget the repair point.
    ClearRepairPoint,
    ReadForFetch {
        to: InboundId,
        response: FetchResponse,
        from: Offset,
        max_bytes: u32,
    },
    /// The high watermark moved: check the committed prefix, and let the state machine read
    /// the newly committed batches (the snapshot writer reads through the log store).
    Committed(Offset),
    /// Install: replace the log with an empty one at the snapshot's end (whose voter records
    /// the core is then given).
    ResetLog(OffsetAndEpoch, Vec<ControlRecord>),
    Clean,
    /// A graceful shutdown's last flush; then the process stops.
    Shutdown,
    /// Not the log store's: checks a proposal's outcome against the committed history once the
    /// high watermark that decided it has been checked (queued behind it).
    CheckOutcome(ProposalId, ProposalOutcome),
}

/// Knobs of the simulated network.
#[derive(Debug, Clone, Copy)]
pub struct NetConfig {
    pub drop_per_mille: u64,
    pub dup_per_mille: u64,
    pub corrupt_per_mille: u64,
    pub min_delay_ms: u64,
    pub max_delay_ms: u64,
}

impl NetConfig {
    pub const PERFECT: NetConfig = NetConfig {
        drop_per_mille: 0,
        dup_per_mille: 0,
        corrupt_per_mille: 0,
        min_delay_ms: 1,
        max_delay_ms: 3,
    };
}

pub struct Sim {
    pub seed: u64,
    pub now: Duration,
    pub nodes: Vec<SimNode>,
    pub voters: BTreeSet<NodeId>,
    queue: BinaryHeap<Reverse<(Duration, u64)>>,
    events: HashMap<u64, Event>,
    next_event: u64,
    pub rng: Rng,
    pub net: NetConfig,
    /// Fsync failures per million syncs on every disk (0: none).
    pub sync_faults_per_million: u64,
    /// Directed links that drop everything: (from, to) node indexes.
    pub blocked: BTreeSet<(usize, usize)>,
    history: VecDeque<String>,
    pub events_run: u64,
    /// Events run without simulated time advancing: a livelock if it grows without bound.
    same_time_events: u64,
    /// Committed batches by base offset, as first seen committed on any node.
    committed: BTreeMap<Offset, Bytes>,
    leaders: BTreeMap<Epoch, NodeId>,
    /// Highest persisted epoch and the vote per (node, epoch), across restarts.
    max_epoch: HashMap<usize, Epoch>,
    votes: HashMap<(usize, Epoch), NodeId>,
    next_proposal: u64,
    /// Every value ever proposed.
    pub proposed: BTreeSet<Bytes>,
    /// Data values seen committed (in any node's log below its high watermark), by offset.
    pub acknowledged: BTreeMap<Offset, Bytes>,
    /// Where each committed value stands: a value committed twice is a duplicate.
    committed_at: BTreeMap<Bytes, Offset>,
    /// The outcome each proposal was given (exactly one each).
    pub outcomes: BTreeMap<u64, ProposalOutcome>,
    /// Proposals a running node took and has not answered, by id: the node's index. A node
    /// that stops answers its own with "stopped", outside the core.
    awaiting: BTreeMap<u64, usize>,
    /// A disk was wiped: a node may forget its votes and epochs, and a durable copy can vanish,
    /// so those two checks stop; single leadership and committed data are still checked.
    pub wiped: bool,
    pub config: RaftConfig,
    /// A dynamic (kraft.version 1) quorum: voters live in the log and change at run time;
    /// `voters` is then only the initial set.
    pub dynamic: bool,
    /// Ids that were ever asked to become voters (a dynamic quorum wipes only the others).
    ever_voters: BTreeSet<NodeId>,
    next_change: u64,
    /// Voter changes asked for and not yet answered, by id: the node asked.
    changes_awaiting: BTreeMap<u64, usize>,
    /// Each answered voter change's outcome (exactly one each).
    pub change_outcomes: BTreeMap<u64, Result<(), VoterChangeError>>,
    /// Crashes, power losses and disk-error stops so far.
    /// Process crashes, power losses, disk-error stops and repairs.
    pub crashes: (u64, u64, u64, u64),
}

impl Sim {
    /// `voters` voters with ids 0.., `observers` observers after them, and optionally one observer
    /// without an id.
    pub fn new(seed: u64, voters: usize, observers: usize, idless: bool) -> Sim {
        Sim::with_linger(seed, voters, observers, idless, None)
    }

    /// The same, with leaders lingering `linger` before each flush.
    pub fn with_linger(
        seed: u64,
        voters: usize,
        observers: usize,
        idless: bool,
        linger: Option<Duration>,
    ) -> Sim {
        let voter_ids: BTreeSet<NodeId> = (0..voters as i32).map(NodeId).collect();
        let mut config = RaftConfig::new("sim-cluster", None, voter_ids.clone());
        config.election_timeout = Duration::from_millis(1000);
        config.election_backoff_max = Duration::from_millis(100);
        config.fetch_timeout = Duration::from_millis(3000);
        config.retry_backoff = Duration::from_millis(50);
        config.request_timeout = Duration::from_millis(3000);
        config.fetch_max_wait = Duration::from_millis(100);
        config.fetch_max_bytes = 64 * 1024;
        config.append_linger = linger;
        let mut ids: Vec<Option<NodeId>> = (0..(voters + observers) as i32)
            .map(|i| Some(NodeId(i)))
            .collect();
        if idless {
            ids.push(None);
        }
        let nodes: Vec<SimNode> = ids
            .into_iter()
            .map(|id| SimNode {
                id,
                directory_id: sim_uuid(seed, 0),
                disk: SimFs::new(),
                live: None,
                incarnation: 0,
                inbound: HashMap::new(),
                next_inbound: 0,
                tick_at: None,
                hw: None,
                shutting_down: false,
                checked: Offset(0),
                needs_reboot: false,
                store_at: START,
                store_pending: 0,
                flushes_pending: 0,
                rotted: false,
                repair_point: None,
                durable_before_rot: None,
            })
            .collect();
        let mut nodes = nodes;
        for (i, node) in nodes.iter_mut().enumerate() {
            node.directory_id = sim_uuid(seed, i as u64 + 2);
        }
        let mut sim = Sim {
            seed,
            now: START,
            nodes,
            voters: voter_ids,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            next_event: 0,
            rng: Rng::new(seed),
            net: NetConfig::PERFECT,
            sync_faults_per_million: 0,
            blocked: BTreeSet::new(),
            history: VecDeque::new(),
            events_run: 0,
            same_time_events: 0,
            committed: BTreeMap::new(),
            leaders: BTreeMap::new(),
            max_epoch: HashMap::new(),
            votes: HashMap::new(),
            next_proposal: 0,
            proposed: BTreeSet::new(),
            acknowledged: BTreeMap::new(),
            committed_at: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            wiped: false,
            config,
            dynamic: false,
            ever_voters: BTreeSet::new(),
            next_change: 0,
            changes_awaiting: BTreeMap::new(),
            change_outcomes: BTreeMap::new(),
            crashes: (0, 0, 0, 0),
        };
        for i in 0..sim.nodes.len() {
            sim.start_node(i);
        }
        sim
    }

    /// A dynamic quorum: every node's disk formatted with the bootstrap checkpoint naming the
    /// first `voters` nodes (as `format --initial-controllers`), the others observers that
    /// may be added later.
    pub fn dynamic(seed: u64, voters: usize, observers: usize, linger: Option<Duration>) -> Sim {
        let mut sim = Sim::with_linger(seed, 0, voters + observers, false, linger);
        for i in 0..sim.nodes.len() {
            sim.stop_process(i);
            sim.nodes[i].disk = SimFs::new();
        }
        sim.dynamic = true;
        sim.voters = (0..voters as i32).map(NodeId).collect();
        sim.ever_voters = sim.voters.clone();
        sim.config.voters.clear();
        sim.config.listener_name = Some(SIM_LISTENER.to_string());
        // controller.quorum.bootstrap.servers: the initial voters (the simulated network routes
        // by id, so their ids stand for their addresses).
        sim.config.bootstrap_servers = sim.voters.iter().copied().collect();
        let initial = VoterSet::new(sim.voters.iter().map(|id| sim.voter_of(*id))).unwrap();
        for node in &sim.nodes {
            write_bootstrap_checkpoint_in(&node.disk.fs(), dir(), initial.to_record(), 0)
                .expect("format the simulated disk");
        }
        for i in 0..sim.nodes.len() {
            sim.start_node(i);
        }
        sim
    }

    /// Node `id` as a voter: its current directory id and a made-up endpoint (the simulated
    /// network routes by id).
    fn voter_of(&self, id: NodeId) -> Voter {
        let i = self.node_index(id).expect("a node with that id");
        Voter {
            key: ReplicaKey {
                id,
                directory_id: Some(self.nodes[i].directory_id),
            },
            endpoints: BTreeMap::from([(
                SIM_LISTENER.to_string(),
                ListenerAddress {
                    host: format!("node{}", id.0),
                    port: 9000,
                },
            )]),
            kraft_versions: (0, 1),
        }
    }

    fn node_index(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == Some(id))
    }

    fn schedule(&mut self, at: Duration, event: Event) {
        let id = self.next_event;
        self.next_event += 1;
        self.events.insert(id, event);
        self.queue.push(Reverse((at, id)));
    }

    fn note(&mut self, text: String) {
        let kept = std::env::var("KRAFT_SIM_HISTORY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(HISTORY);
        if self.history.len() >= kept {
            self.history.pop_front();
        }
        self.history
            .push_back(format!("t={} {text}", (self.now - START).as_millis()));
    }

    /// Fails the test with the seed, the broken invariant and the last events.
    pub fn fail(&self, what: &str) -> ! {
        let history: Vec<&String> = self.history.iter().collect();
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match &n.live {
                None => format!(
                    "  node {i} ({:?}): stopped, durable log end {:?}",
                    n.id,
                    durable_end(&n.disk)
                ),
                Some(l) => {
                    let r = &l.replica;
                    format!(
                        "  node {i} ({:?}): {:?} epoch {} leader {:?} voted {:?} hw {:?} log [{}, {}) flushed {} durable {:?} voters {}",
                        n.id,
                        r.role(),
                        r.epoch(),
                        r.leader_id(),
                        r.voted_id(),
                        r.high_watermark(),
                        l.log.log().log_start_offset(),
                        r.log().log_end_offset(),
                        r.log().flushed_offset(),
                        durable_end(&n.disk),
                        r.voter_set().map_or("none".to_string(), |v| v.to_string())
                    )
                }
            })
            .collect();
        panic!(
            "{} seed {} (replay with KRAFT_SIM_SEED={} and that test): {what}\nnodes:\n{}\nlast events:\n{}",
            if self.dynamic {
                "dynamic-quorum"
            } else {
                "static-quorum"
            },
            self.seed,
            self.seed,
            nodes.join("\n"),
            history
                .iter()
                .map(|s| format!("  {s}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    // ---- nodes starting and stopping ------------------------------------------------------------

    /// Starts node `i` from its disk, as a process start does: recovery, the latest snapshot,
    /// then the core from what recovery found.
    pub fn start_node(&mut self, i: usize) {
        if self.nodes[i].needs_reboot {
            let seed = self.rng.next_u64();
            self.nodes[i].disk.power_loss(seed);
            self.nodes[i].needs_reboot = false;
            self.note(format!("node {i}'s machine rebooted"));
        }
        let mut config = self.config.clone();
        config.local_id = self.nodes[i].id;
        config.local_directory_id = Some(self.nodes[i].directory_id);
        let fs = self.nodes[i].disk.fs();
        let static_voters: Vec<NodeId> = match self.dynamic {
            true => Vec::new(),
            false => self.voters.iter().copied().collect(),
        };
        let (log, recovered) = match self.open_log(i, &fs) {
            Ok((log, recovered)) => (log.with_static_voters(static_voters), recovered),
            Err(e) => return self.start_failed(i, "recover its log", e),
        };
        self.check_recovered(i, &recovered);
        let policy = SnapshotPolicy {
            max_bytes: u64::MAX,
            interval: None,
            retention_bytes: None,
            retention: None,
        };
        let factory = StateMachineFactory::new(|| Box::new(History::default()));
        let snaps = match SnapshotExecutor::open(&fs, dir(), policy, factory, self.now) {
            Ok(snaps) => snaps,
            Err(e) => return self.start_failed(i, "load its snapshot", e),
        };
        let node = &mut self.nodes[i];
        node.incarnation += 1;
        node.inbound.clear();
        node.tick_at = None;
        node.hw = None;
        node.shutting_down = false;
        node.checked = recovered.log_start_offset;
        node.store_pending = 0;
        node.flushes_pending = 0;
        let seed = self.seed ^ (i as u64 + 1).wrapping_mul(0x1234_5678_9ABC) ^ node.incarnation;
        let (replica, actions) = recovered.start_replica(config, self.now, seed);
        node.live = Some(Live {
            replica,
            log,
            snaps,
        });
        self.note(format!(
            "node {i} started: log [{}, {}) epoch {:?}",
            recovered.log_start_offset,
            recovered.log_end_offset,
            recovered.election.map(|e| e.epoch)
        ));
        self.execute(i, actions);
    }

    /// A start that failed: an injected disk error leaves the node down until its machine
    /// reboots (the next start); anything else is a failure of recovery itself.
    /// Recovery, and for a node whose data rotted, the operator's `storage repair` when
    /// recovery refuses the damage.
    fn open_log(&mut self, i: usize, fs: &Fs) -> Result<(LogExecutor, Recovered), StorageError> {
        match LogExecutor::open(fs, dir(), LOG) {
            Err(StorageError::Damaged(damage)) if self.nodes[i].rotted => {
                self.note(format!("node {i} refused to start: {damage}"));
                let report = repair_partition_in(fs, dir(), self.now.as_millis() as u64)?;
                self.nodes[i].rotted = false;
                self.nodes[i].repair_point = report.repair_point;
                self.crashes.3 += 1;
                self.note(format!(
                    "node {i} repaired: cut {:?}, moved {:?}, repair point {:?}",
                    report.cut, report.moved, report.repair_point
                ));
                LogExecutor::open(fs, dir(), LOG)
            }
            other => other,
        }
    }

    /// Data rots at rest on stopped node `i`: one bit flips inside a durable batch that is not
    /// the last of its log (a rotted last batch looks exactly like a torn write, which recovery
    /// cuts). Only while no other node awaits its repair point, so that repairs stay a
    /// minority of the voters.
    /// In a dynamic quorum, whose voter sets shrink and grow, only on a node never asked to
    /// be a voter: a repaired voter must stay a minority of every set that may count it.
    pub fn rot(&mut self, i: usize) {
        let ever_voter = self.dynamic
            && self.nodes[i]
                .id
                .is_some_and(|id| self.ever_voters.contains(&id));
        if self.is_running(i) || self.repairing() || self.voters.len() < 3 || ever_voter {
            return;
        }
        let disk = self.nodes[i].disk.clone();
        let mut batches = Vec::new();
        let mut names: Vec<_> = disk
            .list(dir())
            .into_iter()
            .filter(|n| n.to_string_lossy().ends_with(".log"))
            .collect();
        names.sort();
        for name in names {
            let path = dir().join(&name);
            let Some(bytes) = disk.durable_bytes(&path) else {
                continue;
            };
            let mut pos = 0;
            for batch in BatchIter::new(Bytes::from(bytes)) {
                let Ok(batch) = batch else { break };
                batches.push((path.clone(), pos, batch.size_in_bytes() as u64));
                pos += batch.size_in_bytes() as u64;
            }
        }
        batches.pop();
        if batches.is_empty() {
            return;
        }
        let (path, pos, len) = batches[self.rng.below(batches.len() as u64) as usize].clone();
        let byte = pos + self.rng.below(len);
        let bit = self.rng.below(8) as u8;
        let before = durable_end(&disk);
        if disk.flip_bit(&path, byte, bit).is_ok() {
            self.nodes[i].rotted = true;
            self.nodes[i].durable_before_rot = before;
            self.note(format!(
                "node {i}: bit {bit} of byte {byte} of {} rotted",
                path.display()
            ));
        }
    }

    /// A node granting a vote while its durable log is short of its repair point could elect a
    /// leader missing records it had acknowledged.
    fn check_repair_gate(&mut self, i: usize, response: &Response) {
        let (Response::Vote(v), Some(point)) = (response, self.nodes[i].repair_point) else {
            return;
        };
        if !v.vote_granted || self.voters.len() < 2 {
            return;
        }
        let flushed = self.live(i).log.log().flushed_offset();
        if flushed < point.offset {
            self.fail(&format!(
                "node {i} granted a vote with its durable log ending at {flushed}, short of its repair point {point:?}"
            ));
        }
    }

    fn start_failed(&mut self, i: usize, what: &str, error: StorageError) {
        let injected = matches!(&error, StorageError::Io { source, .. }
            if source.to_string().contains("(simulated)"));
        if !injected {
            self.fail(&format!("node {i} cannot {what}: {error}"));
        }
        self.nodes[i].needs_reboot = true;
        self.note(format!("node {i} did not start: {what}: {error}"));
    }

    /// What recovery found must not have forgotten a durable election state.
    fn check_recovered(&mut self, i: usize, recovered: &Recovered) {
        if self.wiped {
            return;
        }
        let max = self.max_epoch.get(&i).copied().unwrap_or(Epoch(0));
        let found = recovered.election.map_or(Epoch(0), |e| e.epoch);
        if found < max {
            self.fail(&format!(
                "node {i} recovered epoch {found} after persisting {max}"
            ));
        }
    }

    fn stop_process(&mut self, i: usize) -> bool {
        let node = &mut self.nodes[i];
        if node.live.take().is_none() {
            return false;
        }
        node.disk.process_crash();
        self.awaiting.retain(|_, n| *n != i);
        self.changes_awaiting.retain(|_, n| *n != i);
        true
    }

    /// Kills a node's process (kill -9, panic): its page cache survives.
    pub fn crash(&mut self, i: usize) {
        if self.stop_process(i) {
            self.crashes.0 += 1;
            self.note(format!("node {i} crashed"));
        }
    }

    /// Kills a node's process between a write and its fsync: runs until it has appended
    /// something not yet flushed (for at most a second), then crashes it. Its restart then
    /// finds bytes in the page cache that never reached the disk.
    pub fn crash_unflushed(&mut self, i: usize) {
        let until = self.now + Duration::from_secs(1);
        while self.is_running(i) && self.nodes[i].flushes_pending == 0 && self.now < until {
            if !self.step() {
                break;
            }
        }
        self.crash(i);
    }

    /// Cuts a node's power: its process dies and its disk keeps only what was durable.
    pub fn power_loss(&mut self, i: usize) {
        self.stop_process(i);
        let seed = self.rng.next_u64();
        self.nodes[i].disk.power_loss(seed);
        self.crashes.1 += 1;
        self.note(format!("node {i} lost power"));
    }

    /// A disk error stopped the node (as the real node stops on any IO error).
    fn disk_failed(&mut self, i: usize, what: &str, error: &dyn std::fmt::Display) {
        if self.stop_process(i) {
            self.nodes[i].needs_reboot = true;
            self.crashes.2 += 1;
            self.note(format!("node {i} stopped: {what}: {error}"));
        }
    }

    /// Crashes a node and deletes everything it stored.
    pub fn wipe(&mut self, i: usize) {
        self.crash(i);
        self.nodes[i].disk = SimFs::new();
        self.nodes[i].directory_id = sim_uuid(self.rng.next_u64(), 1);
        self.nodes[i].needs_reboot = false;
        self.nodes[i].rotted = false;
        self.nodes[i].repair_point = None;
        self.nodes[i].durable_before_rot = None;
        self.wiped = true;
        self.note(format!("node {i} wiped"));
    }

    /// Restarts every node that is stopped or shutting down, so all take part from here on.
    pub fn restart_all(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].shutting_down {
                self.crash(i);
            }
            if !self.is_running(i) {
                self.start_node(i);
            }
        }
    }

    /// Crashes an observer and deletes everything it stored. Observers hold no votes and count
    /// for no commit, so every invariant still applies.
    pub fn wipe_observer(&mut self, i: usize) {
        let ever_voted = match self.dynamic {
            true => &self.ever_voters,
            false => &self.voters,
        };
        if self.nodes[i].id.is_some_and(|id| ever_voted.contains(&id)) {
            return; // a voter's disk: Raft's known limit, not this scenario
        }
        self.crash(i);
        self.nodes[i].disk = SimFs::new();
        // A new disk is formatted anew: a new directory id, and in a dynamic quorum the
        // joining checkpoint (kraft.version 1, no voters: it learns them from the log).
        self.nodes[i].directory_id = sim_uuid(self.rng.next_u64(), 1);
        if self.dynamic {
            write_joining_checkpoint_in(&self.nodes[i].disk.fs(), dir(), 0)
                .expect("format the simulated disk");
        }
        self.nodes[i].needs_reboot = false;
        self.nodes[i].rotted = false;
        self.nodes[i].repair_point = None;
        self.nodes[i].durable_before_rot = None;
        // Its epoch history restarts with its disk.
        self.max_epoch.remove(&i);
        self.votes.retain(|(node, _), _| *node != i);
        self.note(format!("observer {i} wiped"));
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].live.is_some()
    }

    /// Asks a node to shut down gracefully; it stops once it reports completion.
    pub fn shutdown(&mut self, i: usize) {
        if !self.is_running(i) {
            return;
        }
        self.nodes[i].shutting_down = true;
        self.input(i, Input::Shutdown);
    }

    /// Turns fsync failures on or off for every disk.
    pub fn set_sync_faults(&mut self, per_million: u64) {
        self.sync_faults_per_million = per_million;
        for i in 0..self.nodes.len() {
            let seed = self.rng.next_u64();
            self.nodes[i].disk.set_sync_fault_rate(per_million, seed);
        }
    }

    /// Node `i`'s disk fills up: it has `room` bytes left.
    pub fn fill_disk(&mut self, i: usize, room: u64) {
        let disk = &self.nodes[i].disk;
        disk.set_capacity(Some(disk.used_bytes() + room));
        self.note(format!("node {i}'s disk has {room} bytes left"));
    }

    /// Every disk has room again.
    pub fn free_disks(&mut self) {
        for node in &self.nodes {
            node.disk.set_capacity(None);
        }
    }

    /// The log end offset of a running node.
    pub fn log_end(&self, i: usize) -> Offset {
        let live = self.nodes[i].live.as_ref().expect("running");
        live.log.log().log_end_offset()
    }

    /// Every batch in a running node's log, from its start.
    pub fn batches(&self, i: usize) -> Vec<Bytes> {
        let live = self.nodes[i].live.as_ref().expect("running");
        let log = live.log.log();
        let mut out = Vec::new();
        let mut at = log.log_start_offset();
        while at < log.log_end_offset() {
            let bytes = live.log.read(at, 1 << 20).expect("readable");
            for batch in BatchIter::new(bytes) {
                let batch = batch.expect("valid");
                at = batch.next_offset();
                out.push(batch.as_bytes().clone());
            }
        }
        out
    }

    // ---- the network ---------------------------------------------------------------------------

    pub fn partition(&mut self, side: &[usize]) {
        for &a in side {
            for b in 0..self.nodes.len() {
                if !side.contains(&b) {
                    self.blocked.insert((a, b));
                    self.blocked.insert((b, a));
                }
            }
        }
        self.note(format!("partition {side:?} from the rest"));
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
        self.note("network healed".into());
    }

    fn transmit(&mut self, from: usize, to: usize, msg: Msg) {
        if self.blocked.contains(&(from, to)) || self.rng.chance(self.net.drop_per_mille) {
            return;
        }
        let copies = if self.rng.chance(self.net.dup_per_mille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut msg = msg.clone();
            if let Msg::Response {
                response: Response::Fetch(r),
                ..
            } = &mut msg
                && !r.records.is_empty()
                && self.rng.chance(self.net.corrupt_per_mille)
            {
                r.records = self.tear_or_flip(&r.records);
            }
            let delay = self.net.min_delay_ms
                + self
                    .rng
                    .below(self.net.max_delay_ms - self.net.min_delay_ms + 1);
            self.schedule(
                self.now + Duration::from_millis(delay),
                Event::Deliver { to, msg },
            );
        }
    }

    /// Damages fetched records the way a racing read of the leader's log can (KAFKA-18723): a
    /// response cut short, or a bit flipped inside a batch's CRC-covered bytes. Header fields
    /// outside the CRC are left alone: on the wire the peer frame's own CRC-32C covers them.
    fn tear_or_flip(&mut self, records: &Bytes) -> Bytes {
        if self.rng.chance(300) {
            let cut = self.rng.below(records.len() as u64) as usize;
            return records.slice(..cut);
        }
        let mut covered = Vec::new();
        let mut at = 0;
        while let Ok(Some(size)) = kraft::record::next_batch_size(&records[at..]) {
            covered.push((at + 21, at + size));
            at += size;
        }
        let mut bytes = records.to_vec();
        if !covered.is_empty() {
            let (from, to) = covered[self.rng.below(covered.len() as u64) as usize];
            let pos = from + self.rng.below((to - from) as u64) as usize;
            bytes[pos] ^= 1 << self.rng.below(8);
        }
        Bytes::from(bytes)
    }

    // ---- executing a replica's actions -------------------------------------------------------

    fn input(&mut self, i: usize, input: Input) {
        let Some(live) = self.nodes[i].live.as_mut() else {
            return;
        };
        let actions = live.replica.step(self.now, input);
        self.execute(i, actions);
    }

    /// Delivers a completion to node `i` a little later, unless it restarted meanwhile.
    fn io_done(&mut self, i: usize, input: Input) {
        let delay = self.rng.below(3);
        let incarnation = self.nodes[i].incarnation;
        self.schedule(
            self.now + Duration::from_millis(delay),
            Event::Io {
                node: i,
                incarnation,
                input,
            },
        );
    }

    fn execute(&mut self, i: usize, actions: Vec<Action>) {
        for action in actions {
            if !self.is_running(i) {
                return; // a disk error stopped it part-way
            }
            self.execute_one(i, action);
        }
        self.reschedule_tick(i);
    }

    fn live(&mut self, i: usize) -> &mut Live {
        self.nodes[i].live.as_mut().expect("running")
    }

    fn execute_one(&mut self, i: usize, action: Action) {
        match action {
            Action::PersistElection(state) => self.enqueue(i, StoreOp::Persist(state)),
            Action::Append { batches } => self.enqueue(i, StoreOp::Append(batches)),
            Action::Truncate { offset } => {
                let hw = self.nodes[i].hw;
                if hw.is_some_and(|hw| offset < hw) {
                    self.fail(&format!(
                        "node {i} truncated to {offset} below its high watermark {hw:?}"
                    ));
                }
                self.enqueue(i, StoreOp::Truncate(offset));
            }
            Action::Flush => self.enqueue(i, StoreOp::Flush),
            Action::RepairPointReached => self.enqueue(i, StoreOp::ClearRepairPoint),
            Action::FetchedRecordsRefused { offset, reason, .. } => {
                self.note(format!(
                    "node {i} refused fetched records at {offset}: {reason}"
                ));
            }
            Action::FetchedSnapshotRefused { .. } => {}
            Action::VoterChanged { id, result } => self.voter_changed(i, id.0, result),
            // The simulated network routes by id.
            Action::Endpoints(_) => {}
            Action::Send {
                to,
                request_id,
                request,
            } => {
                self.check_send(i, &request);
                if let Some(j) = self.node_index(to) {
                    self.transmit(
                        i,
                        j,
                        Msg::Request {
                            from: i,
                            request_id,
                            request,
                        },
                    );
                }
            }
            Action::Respond { to, response } => self.respond(i, to, response),
            Action::RespondFetch {
                to,
                response,
                read_from,
                max_bytes,
            } => match read_from {
                Some(from) => self.enqueue(
                    i,
                    StoreOp::ReadForFetch {
                        to,
                        response,
                        from,
                        max_bytes,
                    },
                ),
                None => self.respond(i, to, Response::Fetch(response)),
            },
            Action::Proposed { id, outcome } => {
                self.proposal_outcome(i, id, outcome);
                self.enqueue(i, StoreOp::CheckOutcome(id, outcome));
            }
            Action::HighWatermark(hw) => {
                if self.nodes[i].hw.is_some_and(|old| hw < old) {
                    self.fail(&format!(
                        "node {i} high watermark went back from {:?} to {hw}",
                        self.nodes[i].hw
                    ));
                }
                self.nodes[i].hw = Some(hw);
                // A leader announces a high watermark only once a majority holds it durably:
                // checked now, before anything queued after it could make it so.
                if !self.wiped
                    && self.nodes[i].replica().map(|r| r.role()) == Some(RoleKind::Leader)
                {
                    self.check_majority_holds(i, hw);
                }
                self.enqueue(i, StoreOp::Committed(hw));
            }
            Action::RespondFetchSnapshot {
                to,
                response,
                max_bytes,
            } => {
                let max_bytes = max_bytes.min(SNAPSHOT_CHUNK_BYTES);
                let response = self.live(i).snaps.read_chunk(response, max_bytes);
                self.respond(i, to, Response::FetchSnapshot(response));
            }
            Action::WriteSnapshotChunk {
                id,
                position,
                bytes,
            } => {
                if let Err(e) = self.live(i).snaps.write_chunk(id, position, &bytes) {
                    self.disk_failed(i, "write snapshot chunk", &e);
                }
            }
            Action::InstallSnapshot { id, .. } => self.install_snapshot(i, id),
            Action::LeaderChanged { epoch, leader_id } => {
                self.note(format!("node {i} sees epoch {epoch} leader {leader_id:?}"));
                // A leader announces itself even if it resigns within the same step.
                if let Some(id) = leader_id.filter(|l| Some(*l) == self.nodes[i].id) {
                    self.record_leader(epoch, id);
                }
            }
            Action::ShutdownComplete => {
                if self.nodes[i].shutting_down {
                    self.enqueue(i, StoreOp::Shutdown);
                }
            }
            Action::Fatal(reason) => self.fail(&format!("node {i} fatal: {reason}")),
        }
    }

    /// Queues a log store operation behind the node's earlier ones. Operations that fsync take
    /// longer, so a crash often finds appends written but not yet durable.
    fn enqueue(&mut self, i: usize, op: StoreOp) {
        let cost = match op {
            StoreOp::Flush | StoreOp::Persist(_) | StoreOp::ResetLog(..) => 1 + self.rng.below(5),
            _ => self.rng.below(2),
        };
        let delay = Duration::from_millis(cost);
        let node = &mut self.nodes[i];
        let at = (self.now + delay).max(node.store_at);
        node.store_at = at;
        node.store_pending += 1;
        if matches!(op, StoreOp::Flush) {
            node.flushes_pending += 1;
        }
        let incarnation = node.incarnation;
        self.schedule(
            at,
            Event::Store {
                node: i,
                incarnation,
                op,
            },
        );
    }

    /// Carries out one log store operation, as the log store actor does.
    fn store(&mut self, i: usize, op: StoreOp) {
        match op {
            // Checked once durable: a persist that failed was never acted on.
            StoreOp::Persist(state) => match self.live(i).log.persist_election(state) {
                Ok(()) => {
                    self.check_persist(i, state);
                    self.io_done(i, Input::ElectionPersisted)
                }
                Err(e) => self.disk_failed(i, "persist", &e),
            },
            StoreOp::Append(batches) => {
                if let Err(e) = self.live(i).log.append(batches) {
                    self.disk_failed(i, "append", &e);
                }
            }
            StoreOp::Truncate(offset) => {
                let node = &mut self.nodes[i];
                node.checked = node.checked.min(offset);
                match self.live(i).log.truncate(offset) {
                    Ok(()) => self.note(format!("node {i} truncated to {offset}")),
                    Err(e) => self.disk_failed(i, "truncate", &e),
                }
            }
            StoreOp::ClearRepairPoint => match self.live(i).log.clear_repair_point() {
                Ok(()) => {
                    self.nodes[i].repair_point = None;
                    self.nodes[i].durable_before_rot = None;
                    self.note(format!("node {i} got back to its repair point"));
                }
                Err(e) => self.disk_failed(i, "clear the repair point", &e),
            },
            StoreOp::Flush => match self.live(i).log.flush() {
                Ok(offset) => self.io_done(i, Input::Flushed { offset }),
                Err(e) => self.disk_failed(i, "flush", &e),
            },
            StoreOp::ReadForFetch {
                to,
                mut response,
                from,
                max_bytes,
            } => match self.live(i).log.fill_fetch(&mut response, from, max_bytes) {
                Ok(()) => self.respond(i, to, Response::Fetch(response)),
                Err(e) => self.disk_failed(i, "read for fetch", &e),
            },
            StoreOp::Committed(hw) => {
                self.high_watermark(i, hw);
                if self.is_running(i) {
                    self.apply_committed(i, hw);
                }
            }
            StoreOp::ResetLog(id, control) => self.reset_log(i, id, control),
            StoreOp::CheckOutcome(id, outcome) => self.check_outcome(i, id, outcome),
            StoreOp::Clean => self.clean_now(i),
            StoreOp::Shutdown => {
                if let Err(e) = self.live(i).log.flush() {
                    return self.disk_failed(i, "final flush", &e);
                }
                self.stop_process(i);
                self.note(format!("node {i} shut down"));
            }
        }
    }

    fn respond(&mut self, i: usize, to: InboundId, response: Response) {
        let Some((from, request_id, vote)) = self.nodes[i].inbound.remove(&to.0) else {
            return;
        };
        self.check_repair_gate(i, &response);
        if vote {
            self.check_vote_granted(i, &response);
        }
        let Some(id) = self.nodes[i].id else { return };
        self.transmit(
            i,
            from,
            Msg::Response {
                from: id,
                request_id,
                response,
            },
        );
    }

    fn reschedule_tick(&mut self, i: usize) {
        let Some(deadline) = self.nodes[i].replica().and_then(|r| r.next_deadline()) else {
            return;
        };
        let at = deadline.max(self.now);
        if self.nodes[i].tick_at.is_none_or(|t| at < t || t < self.now) {
            self.nodes[i].tick_at = Some(at);
            self.schedule(at, Event::Tick { node: i });
        }
    }

    // ---- the state machine and snapshots --------------------------------------------------------

    /// The state machine follows the high watermark, reading the log as the snapshot writer
    /// does.
    fn apply_committed(&mut self, i: usize, hw: Offset) {
        loop {
            let live = self.live(i);
            let from = live.snaps.applied_offset();
            if from >= hw {
                return;
            }
            let bytes = match live.log.read(from, CATCH_UP_BYTES) {
                Ok(bytes) => bytes,
                Err(e) => {
                    let start = live.log.log().log_start_offset();
                    if from < start {
                        self.fail(&format!(
                            "node {i}'s state machine at {from} is below its log start {start}"
                        ));
                    }
                    self.disk_failed(i, "read for the state machine", &e);
                    return;
                }
            };
            if self.live(i).snaps.apply(bytes, hw) == 0 {
                return;
            }
        }
    }

    /// Node `i` writes a snapshot of its state machine (everything applied, all committed).
    pub fn snapshot(&mut self, i: usize) {
        if !self.is_running(i) {
            return;
        }
        let now = self.now;
        let id = match self.live(i).snaps.write_snapshot(now) {
            Ok(Some(id)) => id,
            Ok(None) => return,
            Err(e) => return self.disk_failed(i, "write snapshot", &e),
        };
        self.check_history(i, id, "wrote");
        self.note(format!("node {i} wrote snapshot {id:?}"));
        self.input(i, Input::SnapshotWritten { id });
    }

    /// Node `i` cleans its log by retention (everything but the newest snapshot's log goes),
    /// through its log store.
    pub fn clean(&mut self, i: usize) {
        if self.is_running(i) {
            self.enqueue(i, StoreOp::Clean);
        }
    }

    fn clean_now(&mut self, i: usize) {
        let policy = RetentionPolicy {
            max_bytes: Some(0),
            max_age: None,
        };
        let now_ms = self.now.as_millis() as i64;
        let cleaned = match self.live(i).log.clean(policy, now_ms) {
            Ok(Some(cleaned)) => cleaned,
            Ok(None) => return,
            Err(e) => return self.disk_failed(i, "clean", &e),
        };
        self.note(format!(
            "node {i} cleaned its log to {}",
            cleaned.log_start_offset
        ));
        self.input(
            i,
            Input::LogStartAdvanced {
                offset: cleaned.log_start_offset,
            },
        );
        if self.is_running(i)
            && let Err(e) = self.live(i).snaps.forget_before(cleaned.snapshots_before)
        {
            self.disk_failed(i, "forget snapshots", &e);
        }
    }

    /// The state machine of node `i` (just written into snapshot `id`, or installed from it)
    /// holds exactly the committed history below `id.offset`.
    fn check_history(&mut self, i: usize, id: OffsetAndEpoch, what: &str) {
        let state = history(&self.live(i).snaps).batches.clone();
        let mut next = Offset(0);
        for batch in state {
            let header = kraft::record::BatchHeader::parse(&batch).unwrap();
            if header.base_offset() != next || self.committed.get(&next) != Some(&batch) {
                self.fail(&format!(
                    "node {i} {what} snapshot {id:?} that disagrees with the committed history at {next}"
                ));
            }
            next = header.next_offset();
        }
        if next != id.offset {
            self.fail(&format!("node {i} {what} snapshot {id:?} ending at {next}"));
        }
    }

    /// Installs a fetched snapshot as the node does: verify and load it, then replace the log.
    fn install_snapshot(&mut self, i: usize, id: OffsetAndEpoch) {
        let now = self.now;
        let control = match self.live(i).snaps.install(id, now) {
            Ok(installed) => installed.control,
            Err(InstallError::Disk(e)) => return self.disk_failed(i, "install", &e),
            // The driver rebuilds the core from disk, as a restart does.
            Err(InstallError::Invalid(e)) => {
                self.note(format!("node {i} could not install {id:?}: {e}"));
                self.stop_process(i);
                return self.start_node(i);
            }
        };
        self.check_history(i, id, "installed");
        self.enqueue(i, StoreOp::ResetLog(id, control));
    }

    /// The log store replaces the log with an empty one at the installed snapshot's end.
    fn reset_log(&mut self, i: usize, id: OffsetAndEpoch, control: Vec<ControlRecord>) {
        if let Err(e) = self.live(i).log.reset_to(id) {
            return self.disk_failed(i, "reset the log", &e);
        }
        self.nodes[i].checked = id.offset;
        self.note(format!("node {i} installed snapshot {id:?}"));
        self.input(i, Input::SnapshotInstalled { id, control });
    }

    // ---- running -------------------------------------------------------------------------------

    /// Runs one event; returns false when nothing is scheduled.
    pub fn step(&mut self) -> bool {
        let Some(Reverse((at, id))) = self.queue.pop() else {
            return false;
        };
        let event = self.events.remove(&id).expect("scheduled");
        if at > self.now {
            self.same_time_events = 0;
        } else {
            self.same_time_events += 1;
            if self.same_time_events > MAX_EVENTS_AT_ONE_INSTANT {
                self.fail("livelock: events keep happening without time advancing");
            }
        }
        self.now = self.now.max(at);
        self.events_run += 1;
        match event {
            Event::Deliver { to, msg } => self.deliver(to, msg),
            Event::Tick { node } => {
                if self.nodes[node].tick_at == Some(at) {
                    self.nodes[node].tick_at = None;
                    let state = self.nodes[node]
                        .replica()
                        .as_ref()
                        .map(|r| (r.role(), r.epoch()));
                    self.note(format!("node {node} tick {state:?}"));
                    self.input(node, Input::Tick);
                }
            }
            Event::Io {
                node,
                incarnation,
                input,
            } => {
                if self.nodes[node].incarnation == incarnation {
                    self.input(node, input);
                }
            }
            Event::Store {
                node,
                incarnation,
                op,
            } => {
                if self.nodes[node].incarnation == incarnation && self.is_running(node) {
                    self.nodes[node].store_pending -= 1;
                    if matches!(op, StoreOp::Flush) {
                        self.nodes[node].flushes_pending -= 1;
                    }
                    self.store(node, op);
                }
            }
        }
        self.check_invariants();
        true
    }

    fn deliver(&mut self, to: usize, msg: Msg) {
        if self.nodes[to].replica().is_none() {
            return;
        }
        match msg {
            Msg::Request {
                from,
                request_id,
                request,
            } => {
                let node = &mut self.nodes[to];
                let inbound = node.next_inbound;
                node.next_inbound += 1;
                let vote = matches!(&request, Request::Vote(v) if !v.pre_vote);
                node.inbound.insert(inbound, (from, request_id, vote));
                self.input(
                    to,
                    Input::Request {
                        from: InboundId(inbound),
                        request,
                    },
                );
            }
            Msg::Response {
                from,
                request_id,
                response,
            } => {
                self.input(
                    to,
                    Input::Response {
                        from,
                        request_id,
                        response,
                    },
                );
            }
        }
    }

    /// Runs for `duration` of simulated time (or until `max_events`).
    pub fn run_for(&mut self, duration: Duration, max_events: u64) {
        let until = self.now + duration;
        let start = self.events_run;
        while self.events_run - start < max_events {
            match self.queue.peek() {
                Some(Reverse((at, _))) if *at <= until => {}
                _ => break,
            }
            self.step();
        }
        self.now = self.now.max(until.min(self.now + duration));
    }

    /// Runs until `done` holds, failing after `limit` of simulated time.
    pub fn run_until(&mut self, limit: Duration, what: &str, mut done: impl FnMut(&Sim) -> bool) {
        let until = self.now + limit;
        while !done(self) {
            if self.now > until || !self.step() {
                self.fail(&format!("timed out waiting for: {what}"));
            }
        }
    }

    /// Proposes the next value to whichever node leads (or a random node, which refuses).
    pub fn propose(&mut self) {
        let id = self.next_proposal;
        self.next_proposal += 1;
        let target = self
            .leader()
            .unwrap_or_else(|| self.rng.below(self.nodes.len() as u64) as usize);
        let value = Bytes::from(format!("value-{id}"));
        self.proposed.insert(value.clone());
        if self.is_running(target) {
            self.awaiting.insert(id, target);
        }
        // Half the proposals come the way a Kafka client's do: one batch built by the client,
        // which the leader restamps.
        let input = if self.rng.below(2) == 0 {
            Input::Propose {
                id: ProposalId(id),
                records: vec![value],
            }
        } else {
            let mut batch = kraft::record::BatchBuilder::new(
                kraft::record::BatchKind::Data,
                kraft::types::Offset(0),
                Epoch(-1),
            );
            batch.append(0, None, Some(&value), &[]).expect("fits");
            Input::ProposeBatch {
                id: ProposalId(id),
                batch: batch.build().expect("one record"),
            }
        };
        self.input(target, input);
    }

    /// Asks the leader (or, now and then, some other node) to add a node that is not a voter,
    /// to remove a voter (the leader itself included), or to move a voter's endpoint.
    pub fn reconfigure(&mut self) {
        let target = self
            .leader()
            .filter(|_| self.rng.below(10) > 0)
            .unwrap_or_else(|| self.rng.below(self.nodes.len() as u64) as usize);
        let Some(set) = self.nodes[target]
            .replica()
            .and_then(|r| r.voter_set())
            .cloned()
        else {
            return;
        };
        let id = self.next_change;
        self.next_change += 1;
        let others: Vec<NodeId> = self
            .nodes
            .iter()
            .filter_map(|n| n.id)
            .filter(|id| set.get(*id).is_none())
            .collect();
        let input = if self.rng.below(5) == 0 {
            let keys: Vec<ReplicaKey> = set.voters().map(|v| v.key).collect();
            let key = keys[self.rng.below(keys.len() as u64) as usize];
            let mut voter = set.get(key.id).expect("listed").clone();
            let port = 9000 + self.rng.below(1000) as u16;
            for address in voter.endpoints.values_mut() {
                address.port = port;
            }
            self.note(format!("node {target} asked to move {key} to port {port}"));
            Input::UpdateVoter {
                id: VoterChangeId(id),
                voter,
            }
        } else if !others.is_empty() && self.rng.below(2) == 0 {
            let new = others[self.rng.below(others.len() as u64) as usize];
            self.ever_voters.insert(new);
            let voter = self.voter_of(new);
            self.note(format!("node {target} asked to add {}", voter.key));
            Input::AddVoter {
                id: VoterChangeId(id),
                voter,
                timeout: CHANGE_TIMEOUT,
            }
        } else {
            let keys: Vec<ReplicaKey> = set.voters().map(|v| v.key).collect();
            let key = keys[self.rng.below(keys.len() as u64) as usize];
            self.note(format!("node {target} asked to remove {key}"));
            Input::RemoveVoter {
                id: VoterChangeId(id),
                voter: key,
                timeout: CHANGE_TIMEOUT,
            }
        };
        if self.is_running(target) {
            self.changes_awaiting.insert(id, target);
        }
        self.input(target, input);
    }

    /// Whether some node's data rotted and it is not yet back where it was (one at a time).
    fn repairing(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| n.rotted || n.repair_point.is_some())
    }

    /// A voter change answered: exactly once, by the node asked.
    fn voter_changed(&mut self, i: usize, id: u64, result: Result<(), VoterChangeError>) {
        if self.changes_awaiting.remove(&id) != Some(i) {
            self.fail(&format!(
                "node {i} answered voter change {id} it was not asked or answered already"
            ));
        }
        self.note(format!("node {i} voter change {id}: {result:?}"));
        self.change_outcomes.insert(id, result);
    }

    /// The node that leads the highest epoch, if any.
    pub fn leader(&self) -> Option<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                n.replica()
                    .as_ref()
                    .filter(|r| r.role() == RoleKind::Leader)
                    .map(|r| (r.epoch(), i))
            })
            .max()
            .map(|(_, i)| i)
    }

    pub fn role(&self, i: usize) -> Option<RoleKind> {
        self.nodes[i].replica().map(|r| r.role())
    }

    pub fn epoch(&self, i: usize) -> Option<Epoch> {
        self.nodes[i].replica().map(|r| r.epoch())
    }

    pub fn hw(&self, i: usize) -> Option<Offset> {
        self.nodes[i]
            .replica()
            .as_ref()
            .and_then(|r| r.high_watermark())
    }

    // ---- invariants ----------------------------------------------------------------------------

    fn check_persist(&mut self, i: usize, state: PersistedElection) {
        if self.wiped {
            return;
        }
        let max = self.max_epoch.entry(i).or_insert(Epoch(0));
        if state.epoch < *max {
            let m = *max;
            self.fail(&format!(
                "node {i} persisted epoch {} after {m}",
                state.epoch
            ));
        }
        *max = state.epoch;
        if let Some(voted) = state.voted_id {
            let previous = *self.votes.entry((i, state.epoch)).or_insert(voted);
            if previous != voted {
                self.fail(&format!(
                    "node {i} voted for {previous} and then {voted} in epoch {}",
                    state.epoch
                ));
            }
        }
    }

    fn high_watermark(&mut self, i: usize, hw: Offset) {
        let end = self.log_end(i);
        if hw > end {
            self.fail(&format!(
                "node {i} high watermark {hw} is past its log end {end}"
            ));
        }
        self.check_committed_prefix(i, hw);
    }

    /// Every batch below `hw` on node `i` matches what any node ever saw committed there.
    fn check_committed_prefix(&mut self, i: usize, hw: Offset) {
        let start = self.live(i).log.log().log_start_offset();
        let mut at = self.nodes[i].checked.max(start);
        while at < hw {
            let bytes = match self.live(i).log.read(at, CATCH_UP_BYTES) {
                Ok(bytes) => bytes,
                Err(e) => return self.disk_failed(i, "read", &e),
            };
            let mut progressed = false;
            for batch in BatchIter::new(bytes) {
                let batch = batch.unwrap_or_else(|e| {
                    self.fail(&format!("node {i} holds a corrupt batch at {at}: {e}"))
                });
                if batch.next_offset() > hw {
                    break;
                }
                let b = batch.as_bytes().clone();
                match self.committed.get(&batch.base_offset()) {
                    Some(existing) if existing != &b => self.fail(&format!(
                        "node {i} committed a different batch at offset {}",
                        batch.base_offset()
                    )),
                    Some(_) => {}
                    None => {
                        self.check_known_records(i, &b);
                        self.committed.insert(batch.base_offset(), b);
                    }
                }
                at = batch.next_offset();
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        self.nodes[i].checked = at;
    }

    /// No record appears that nobody appended: data values are proposals made at that offset.
    fn check_known_records(&mut self, i: usize, batch: &Bytes) {
        let batch = RecordBatch::decode(batch.clone()).unwrap();
        if batch.is_control() {
            return;
        }
        let value = batch.decode_records().unwrap()[0].value.clone().unwrap();
        let offset = batch.base_offset();
        if !self.proposed.contains(&value) {
            self.fail(&format!(
                "node {i} committed a value nobody proposed at {offset}"
            ));
        }
        if let Some(earlier) = self.committed_at.insert(value.clone(), offset) {
            self.fail(&format!(
                "node {i} committed {value:?} at {offset}, already committed at {earlier}"
            ));
        }
        let id = proposal_id(&value);
        match self.outcomes.get(&id) {
            Some(ProposalOutcome::Refused(e)) => self.fail(&format!(
                "{value:?} was refused ({e:?}) yet committed at {offset}"
            )),
            Some(
                ProposalOutcome::Unresolved { first, .. }
                | ProposalOutcome::Committed { first, .. },
            ) if *first != offset => self.fail(&format!(
                "{value:?} was appended at {first} yet committed at {offset}"
            )),
            _ => {}
        }
        self.acknowledged.insert(offset, value);
    }

    /// A proposal's outcome: exactly one per proposal; a committed one must already stand in
    /// the committed history at its offsets; a refused or unresolved one must not stand
    /// anywhere but where it was appended.
    fn proposal_outcome(&mut self, i: usize, id: ProposalId, outcome: ProposalOutcome) {
        self.awaiting.remove(&id.0);
        if let Some(earlier) = self.outcomes.insert(id.0, outcome) {
            self.fail(&format!(
                "node {i} gave proposal {} a second outcome {outcome:?} after {earlier:?}",
                id.0
            ));
        }
    }

    fn check_outcome(&mut self, i: usize, id: ProposalId, outcome: ProposalOutcome) {
        let value = Bytes::from(format!("value-{}", id.0));
        let standing = self.committed_at.get(&value).copied();
        match outcome {
            ProposalOutcome::Committed { first, last }
                if last >= first
                    && (standing != Some(first)
                        || self.acknowledged.get(&first) != Some(&value)) =>
            {
                self.fail(&format!(
                    "node {i} acknowledged {value:?} at {first}, the committed history holds it at {standing:?}"
                ))
            }
            ProposalOutcome::Refused(_) if standing.is_some() => self.fail(&format!(
                "node {i} refused {value:?}, already committed at {standing:?}"
            )),
            ProposalOutcome::Unresolved { first, .. } if standing.is_some_and(|o| o != first) => {
                self.fail(&format!(
                    "node {i} appended {value:?} at {first}, committed at {standing:?}"
                ))
            }
            _ => {}
        }
    }

    /// A majority of voters hold every offset below the leader's high watermark durably: what
    /// a power loss of every voter would keep, by the disks' oracle.
    /// Node `j`'s durable log end, or for a node whose data rotted and that is not yet back at
    /// its repair point, what it had durable before.
    fn durable_or_held(&self, j: usize) -> Option<Offset> {
        let node = &self.nodes[j];
        durable_end(&node.disk).max(node.durable_before_rot)
    }

    ///
    /// In a dynamic quorum the voters are the leader's set in force (the one it counts), each
    /// by its id and directory id: a node whose disk was replaced holds nothing for its old key.
    fn check_majority_holds(&mut self, leader: usize, hw: Offset) {
        let voters: Vec<(NodeId, Option<Uuid>)> = match self.nodes[leader].replica() {
            Some(r) if self.dynamic => r
                .voter_set()
                .map(|s| s.voters().map(|v| (v.key.id, v.key.directory_id)).collect())
                .unwrap_or_default(),
            _ => self.voters.iter().map(|v| (*v, None)).collect(),
        };
        let holders = voters
            .iter()
            .filter_map(|(v, d)| {
                self.node_index(*v)
                    .filter(|j| d.is_none_or(|d| self.nodes[*j].directory_id == d))
            })
            .filter(|j| self.durable_or_held(*j).is_some_and(|end| end >= hw))
            .count();
        if holders < voters.len() / 2 + 1 {
            self.fail(&format!(
                "leader {leader} high watermark {hw} is durable on only {holders} voters"
            ));
        }
    }

    /// A fetch acknowledges everything below its offset, and a vote request stands on the
    /// persisted self-vote: neither may claim what the disk could still lose.
    fn check_send(&mut self, i: usize, request: &Request) {
        match request {
            Request::Fetch(f) if f.replica_id.is_some() => {
                let durable = durable_end(&self.nodes[i].disk);
                if durable.is_none_or(|end| f.fetch_offset > end) {
                    self.fail(&format!(
                        "node {i} fetches at {} but only {durable:?} is durable",
                        f.fetch_offset
                    ));
                }
            }
            Request::Vote(v) if !v.pre_vote => {
                let durable = durable_election(&self.nodes[i].disk);
                let me = self.nodes[i].id;
                let covered = durable.is_some_and(|(epoch, voted)| {
                    epoch > v.candidate_epoch || (epoch == v.candidate_epoch && voted == me)
                });
                if !covered {
                    self.fail(&format!(
                        "node {i} asks for votes in epoch {} with {durable:?} durable",
                        v.candidate_epoch
                    ));
                }
            }
            _ => {}
        }
    }

    /// A granted (standard) vote goes out only once the vote is durable.
    fn check_vote_granted(&mut self, i: usize, response: &Response) {
        if let Response::Vote(v) = response
            && v.vote_granted
        {
            let durable = durable_election(&self.nodes[i].disk);
            // A later epoch may have been persisted since (the answer was held until then).
            let covered = durable.is_some_and(|(epoch, voted)| {
                epoch > v.leader_epoch || (epoch == v.leader_epoch && voted.is_some())
            });
            if !covered {
                self.fail(&format!(
                    "node {i} granted a vote in epoch {} with {durable:?} durable",
                    v.leader_epoch
                ));
            }
        }
    }

    fn check_invariants(&mut self) {
        for i in 0..self.nodes.len() {
            // Between the core and its disk, the log store's queue; compare once it is empty.
            let Some(live) = self.nodes[i]
                .live
                .as_ref()
                .filter(|_| self.nodes[i].store_pending == 0)
            else {
                continue;
            };
            let r = &live.replica;
            let (role, epoch) = (r.role(), r.epoch());
            let (core_start, core_end) = (r.log().log_start_offset(), r.log().log_end_offset());
            let log = live.log.log();
            let (disk_start, disk_end) = (log.log_start_offset(), log.log_end_offset());
            let applied = live.snaps.applied_offset();
            if core_start != disk_start {
                self.fail(&format!(
                    "node {i} believes its log starts at {core_start}, the disk says {disk_start}"
                ));
            }
            if core_end != disk_end {
                self.fail(&format!(
                    "node {i} believes its log ends at {core_end}, the disk says {disk_end}"
                ));
            }
            if disk_start > Offset(0) && applied < disk_start {
                self.fail(&format!(
                    "node {i} log starts at {disk_start} but its state covers only {applied}"
                ));
            }
            if role == RoleKind::Leader {
                let id = self.nodes[i].id.unwrap();
                let voters: BTreeSet<NodeId> =
                    r.voter_set().map(|s| s.ids().collect()).unwrap_or_default();
                let observers = r.observer_progress();
                // KIP-853: at most one voter change is not yet committed.
                if let Some(hw) = r.high_watermark() {
                    let pending = r.log().voters().uncommitted_changes(hw);
                    if pending > 1 {
                        self.fail(&format!(
                            "leader {} has {pending} uncommitted voter changes at {hw}",
                            self.nodes[i].id.unwrap()
                        ));
                    }
                }
                self.record_leader(epoch, id);
                // Observers the leader remembers are never voters nor itself, and never claim
                // more than its log holds (a fetch past its end is answered with a divergence).
                for (observer, p) in observers {
                    if voters.contains(&observer) || observer == id {
                        self.fail(&format!(
                            "leader {id} tracks voter {observer} as an observer"
                        ));
                    }
                    if p.end_offset.is_some_and(|end| end > core_end) {
                        self.fail(&format!(
                            "leader {id} believes observer {observer} holds {:?}, past its end {core_end}",
                            p.end_offset
                        ));
                    }
                }
            }
        }
    }

    /// At most one leader per epoch, ever.
    fn record_leader(&mut self, epoch: Epoch, id: NodeId) {
        match self.leaders.get(&epoch) {
            Some(other) if *other != id => {
                self.fail(&format!("two leaders in epoch {epoch}: {other} and {id}"))
            }
            _ => {
                self.leaders.insert(epoch, id);
            }
        }
    }

    /// After faults stop: a leader exists and a fresh proposal commits on every running node.
    pub fn check_progress(&mut self, limit: Duration) {
        self.run_until(limit, "a leader after the faults healed", |s| {
            s.leader().is_some()
        });
        let target = self.next_proposal;
        let mut attempts = 0;
        let mut committed = false;
        while !committed {
            attempts += 1;
            if attempts > 50 {
                self.fail("no proposal committed after the faults healed");
            }
            self.propose();
            self.run_for(Duration::from_millis(500), 20_000);
            committed = self.acknowledged.values().any(|v| proposal_id(v) >= target);
        }
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.is_running(*i))
            .collect();
        // Every acknowledged offset, including what earlier attempts commit meanwhile.
        self.run_until(limit, "every running node to reach the new commit", |s| {
            let newest = *s.acknowledged.keys().next_back().expect("one committed");
            running
                .iter()
                .all(|i| s.hw(*i).is_some_and(|hw| hw > newest) && s.nodes[*i].store_pending == 0)
        });
        // Every acknowledged record, on every running node, in its state machine's history
        // (snapshot and log alike), at its offset.
        for &i in &running {
            // What the state machine applied, then the log above it.
            let mut state = history(&self.live(i).snaps).batches.clone();
            let applied = self.live(i).snaps.applied_offset();
            state.extend(self.batches(i).into_iter().filter(|b| {
                kraft::record::BatchHeader::parse(b).unwrap().base_offset() >= applied
            }));
            let by_offset: BTreeMap<Offset, Bytes> = state
                .into_iter()
                .map(|b| {
                    (
                        kraft::record::BatchHeader::parse(&b).unwrap().base_offset(),
                        b,
                    )
                })
                .collect();
            for (offset, value) in self.acknowledged.clone() {
                let Some(batch) = by_offset.get(&offset) else {
                    let known: Vec<Offset> = by_offset.keys().rev().take(5).copied().collect();
                    self.fail(&format!(
                        "node {i} lost acknowledged offset {offset} (applied {applied}, last held {known:?})"
                    ));
                };
                let record = RecordBatch::decode(batch.clone())
                    .unwrap()
                    .decode_records()
                    .unwrap();
                if record[0].value.as_ref() != Some(&value) {
                    self.fail(&format!(
                        "node {i} holds a different value at acknowledged offset {offset}"
                    ));
                }
            }
        }
        // Every append acknowledged as committed stands in the committed history, at its
        // offset (and so, by the check above, on every running node).
        for (id, outcome) in self.outcomes.clone() {
            if let ProposalOutcome::Committed { first, last } = outcome
                && last >= first
            {
                let value = Bytes::from(format!("value-{id}"));
                if self.acknowledged.get(&first) != Some(&value) {
                    self.fail(&format!(
                        "proposal {id} was acknowledged at {first} but is not committed there"
                    ));
                }
            }
        }
        // Every proposal a running node took got its outcome from the core.
        if let Some((id, node)) = self.awaiting.iter().next() {
            let (id, node) = (*id, *node);
            self.fail(&format!(
                "proposal {id} to node {node} never got an outcome"
            ));
        }
    }
}

/// The proposal id a simulated value carries (`value-<id>`).
fn proposal_id(value: &Bytes) -> u64 {
    std::str::from_utf8(value).unwrap()[6..].parse().unwrap()
}

/// The log end offset a power loss now would leave on `disk` (the oracle): the valid batches
/// of the newest segment whose directory entry is durable, read from its platter bytes.
/// Earlier segments are complete and durable before a newer one exists.
/// A directory id drawn from the run's seed (never the global generator: a run must replay).
fn sim_uuid(a: u64, b: u64) -> Uuid {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&(b | 0x100).to_le_bytes());
    Uuid(bytes)
}

pub fn durable_end(disk: &SimFs) -> Option<Offset> {
    let newest = disk
        .list(dir())
        .into_iter()
        .filter_map(|name| {
            let name = name.to_str()?.to_string();
            let base: i64 = name.strip_suffix(".log")?.parse().ok()?;
            disk.is_durable_entry(&dir().join(&name))
                .then_some((base, name))
        })
        .max()?;
    let bytes = disk.durable_bytes(&dir().join(&newest.1))?;
    let mut end = Offset(newest.0);
    for batch in BatchIter::new(Bytes::from(bytes)) {
        match batch {
            Ok(b) if b.base_offset() == end => end = b.next_offset(),
            _ => break,
        }
    }
    Some(end)
}

/// The election state a power loss now would leave on `disk`: (epoch, vote).
pub fn durable_election(disk: &SimFs) -> Option<(Epoch, Option<NodeId>)> {
    let bytes = disk.durable_bytes(&dir().join("quorum-state"))?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let epoch = json.get("leaderEpoch")?.as_i64()? as i32;
    let voted = json.get("votedId")?.as_i64()? as i32;
    Some((Epoch(epoch), (voted >= 0).then_some(NodeId(voted))))
}
