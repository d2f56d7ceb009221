//! A deterministic simulation of a KRaft quorum driven through `kraft::raft::Replica` alone:
//! simulated time, a seeded RNG, an in-memory disk per node (a crash loses what was not
//! flushed), and a network that can drop, duplicate, delay, reorder, partition and corrupt.
//! After every event it checks the invariants of architecture.md §5 / kraft-protocol.md §15.1.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kraft::raft::{
    Action, EpochStart, ErrorCode, FetchSnapshotResponse, InboundId, Input, LogView,
    PersistedElection, ProposalId, ProposalOutcome, RaftConfig, Replica, Request, RequestId,
    Response, RoleKind,
};
use kraft::record::{BatchHeader, RecordBatch};
use kraft::types::{Epoch, NodeId, Offset, OffsetAndEpoch};

/// Simulated wall clock at the start (so batch timestamps look real).
const START: Duration = Duration::from_millis(1_700_000_000_000);
/// Events at one simulated instant beyond which the run is declared livelocked.
const MAX_EVENTS_AT_ONE_INSTANT: u64 = 10_000;
/// Events kept for a failure report.
const HISTORY: usize = 40;

/// The protocol core's deterministic RNG drives the simulation too.
pub use kraft::raft::SeededRng as Rng;

/// Bytes per FetchSnapshot answer in the simulation: small, so that transfers span requests.
const SNAPSHOT_CHUNK_BYTES: usize = 200;

/// What a node keeps across crashes.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    /// The log from `start` on (cleaning removes batches below it).
    pub batches: Vec<Bytes>,
    pub start: Offset,
    /// How many of `batches` are durable.
    pub flushed: usize,
    /// How many leading batches were already checked against the committed history.
    checked: usize,
    pub election: Option<PersistedElection>,
    /// The newest snapshot: its id and its "file", the committed batches below its end.
    pub snapshot: Option<(OffsetAndEpoch, Bytes)>,
    /// A snapshot being fetched (lost on a crash, like the real `.part` file).
    partial: Option<(OffsetAndEpoch, Vec<u8>)>,
}

impl Disk {
    pub fn end_offset(&self) -> Offset {
        self.batches
            .last()
            .map_or(self.start, |b| BatchHeader::parse(b).unwrap().next_offset())
    }

    pub fn flushed_end_offset(&self) -> Offset {
        self.batches[..self.flushed]
            .last()
            .map_or(self.start, |b| BatchHeader::parse(b).unwrap().next_offset())
    }

    fn log_view(&self) -> LogView {
        // A log that starts where an installed snapshot ends starts in the snapshot's epoch.
        let mut epochs: Vec<EpochStart> = match &self.snapshot {
            Some((id, _)) if id.offset == self.start && self.start > Offset(0) => {
                vec![EpochStart {
                    epoch: id.epoch,
                    start_offset: self.start,
                }]
            }
            _ => Vec::new(),
        };
        for b in &self.batches {
            let h = BatchHeader::parse(b).unwrap();
            if epochs.last().is_none_or(|e| h.epoch() > e.epoch) {
                epochs.push(EpochStart {
                    epoch: h.epoch(),
                    start_offset: h.base_offset(),
                });
            }
        }
        LogView::new(self.start, self.end_offset(), epochs)
            .with_snapshot(self.snapshot.as_ref().map(|(id, _)| *id))
    }

    /// The batch holding `offset`, in the log or, below the log start, in the snapshot.
    pub fn batch_at(&self, offset: Offset) -> Option<Bytes> {
        let holds = |b: &Bytes| {
            let h = BatchHeader::parse(b).unwrap();
            h.base_offset() <= offset && offset < h.next_offset()
        };
        if let Some(b) = self.batches.iter().find(|b| holds(b)) {
            return Some(b.clone());
        }
        let (_, file) = self.snapshot.as_ref()?;
        kraft::record::BatchIter::new(file.clone())
            .map(|b| b.unwrap().as_bytes().clone())
            .find(holds)
    }

    fn read(&self, from: Offset, max_bytes: u32) -> Bytes {
        let mut out = BytesMut::new();
        let start = self
            .batches
            .partition_point(|b| BatchHeader::parse(b).unwrap().next_offset() <= from);
        for b in &self.batches[start..] {
            if !out.is_empty() && out.len() + b.len() > max_bytes as usize {
                break;
            }
            out.extend_from_slice(b);
        }
        out.freeze()
    }

    fn truncate(&mut self, offset: Offset) {
        self.batches
            .retain(|b| BatchHeader::parse(b).unwrap().next_offset() <= offset);
        self.flushed = self.flushed.min(self.batches.len());
        self.checked = self.checked.min(self.batches.len());
    }
}

pub struct SimNode {
    pub id: Option<NodeId>,
    pub replica: Option<Replica>,
    pub disk: Disk,
    incarnation: u64,
    inbound: HashMap<u64, (usize, RequestId)>,
    next_inbound: u64,
    tick_at: Option<Duration>,
    /// Highest high watermark this incarnation reported.
    hw: Option<Offset>,
    shutting_down: bool,
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
}

impl Sim {
    /// `voters` voters with ids 0.., `observers` observers after them, and optionally one observer
    /// without an id.
    pub fn new(seed: u64, voters: usize, observers: usize, idless: bool) -> Sim {
        let voter_ids: BTreeSet<NodeId> = (0..voters as i32).map(NodeId).collect();
        let mut config = RaftConfig::new("sim-cluster", None, voter_ids.clone());
        config.election_timeout = Duration::from_millis(1000);
        config.election_backoff_max = Duration::from_millis(100);
        config.fetch_timeout = Duration::from_millis(3000);
        config.retry_backoff = Duration::from_millis(50);
        config.request_timeout = Duration::from_millis(3000);
        config.fetch_max_wait = Duration::from_millis(100);
        config.fetch_max_bytes = 64 * 1024;
        let mut ids: Vec<Option<NodeId>> = (0..(voters + observers) as i32)
            .map(|i| Some(NodeId(i)))
            .collect();
        if idless {
            ids.push(None);
        }
        let nodes = ids
            .into_iter()
            .map(|id| SimNode {
                id,
                replica: None,
                disk: Disk::default(),
                incarnation: 0,
                inbound: HashMap::new(),
                next_inbound: 0,
                tick_at: None,
                hw: None,
                shutting_down: false,
            })
            .collect();
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
        };
        for i in 0..sim.nodes.len() {
            sim.start_node(i);
        }
        sim
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
        if self.history.len() == HISTORY {
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
            .map(|(i, n)| match &n.replica {
                None => format!("  node {i} ({:?}): stopped, disk end {}", n.id, n.disk.end_offset()),
                Some(r) => format!(
                    "  node {i} ({:?}): {:?} epoch {} leader {:?} voted {:?} hw {:?} log end {} flushed {}",
                    n.id,
                    r.role(),
                    r.epoch(),
                    r.leader_id(),
                    r.voted_id(),
                    r.high_watermark(),
                    r.log().log_end_offset(),
                    r.log().flushed_offset()
                ),
            })
            .collect();
        panic!(
            "seed {} (replay with KRAFT_SIM_SEED={}): {what}\nnodes:\n{}\nlast events:\n{}",
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

    // ---- node lifecycle ------------------------------------------------------------------------

    pub fn start_node(&mut self, i: usize) {
        let mut config = self.config.clone();
        config.local_id = self.nodes[i].id;
        let node = &mut self.nodes[i];
        node.incarnation += 1;
        node.inbound.clear();
        node.tick_at = None;
        node.hw = None;
        node.shutting_down = false;
        let seed = self.seed ^ (i as u64 + 1).wrapping_mul(0x1234_5678_9ABC) ^ node.incarnation;
        let (replica, actions) = Replica::start(
            config,
            node.disk.election,
            node.disk.log_view(),
            self.now,
            seed,
        );
        node.replica = Some(replica);
        self.note(format!("node {i} started"));
        self.execute(i, actions);
    }

    /// Stops a node abruptly: what was not flushed is lost.
    pub fn crash(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if node.replica.take().is_none() {
            return;
        }
        self.awaiting.retain(|_, node| *node != i);
        let flushed = node.disk.flushed;
        node.disk.batches.truncate(flushed);
        node.disk.checked = node.disk.checked.min(flushed);
        node.disk.partial = None;
        self.note(format!("node {i} crashed (kept {flushed} batches)"));
    }

    /// Crashes a node and deletes everything it stored.
    pub fn wipe(&mut self, i: usize) {
        self.crash(i);
        self.nodes[i].disk = Disk::default();
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
        assert!(
            self.nodes[i].id.is_none_or(|id| !self.voters.contains(&id)),
            "node {i} is a voter"
        );
        self.crash(i);
        self.nodes[i].disk = Disk::default();
        // Its epoch history restarts with its disk.
        self.max_epoch.remove(&i);
        self.votes.retain(|(node, _), _| *node != i);
        self.note(format!("observer {i} wiped"));
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].replica.is_some()
    }

    /// Asks a node to shut down gracefully; it stops once it reports completion.
    pub fn shutdown(&mut self, i: usize) {
        if self.nodes[i].replica.is_none() {
            return;
        }
        self.nodes[i].shutting_down = true;
        self.input(i, Input::Shutdown);
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
        let Some(replica) = self.nodes[i].replica.as_mut() else {
            return;
        };
        let actions = replica.step(self.now, input);
        self.execute(i, actions);
    }

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
            self.execute_one(i, action);
        }
        self.reschedule_tick(i);
    }

    fn execute_one(&mut self, i: usize, action: Action) {
        match action {
            Action::PersistElection(state) => {
                self.check_persist(i, state);
                self.nodes[i].disk.election = Some(state);
                self.io_done(i, Input::ElectionPersisted);
            }
            Action::Append { batches } => self.append(i, batches),
            Action::Truncate { offset } => {
                let hw = self.nodes[i].hw;
                if hw.is_some_and(|hw| offset < hw) {
                    self.fail(&format!(
                        "node {i} truncated to {offset} below its high watermark {hw:?}"
                    ));
                }
                self.nodes[i].disk.truncate(offset);
                self.note(format!("node {i} truncated to {offset}"));
            }
            Action::Flush => {
                let disk = &mut self.nodes[i].disk;
                disk.flushed = disk.batches.len();
                let offset = disk.end_offset();
                self.io_done(i, Input::Flushed { offset });
            }
            Action::Send {
                to,
                request_id,
                request,
            } => {
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
                mut response,
                read_from,
                max_bytes,
            } => {
                if let Some(from) = read_from {
                    response.records = self.nodes[i].disk.read(from, max_bytes);
                }
                self.respond(i, to, Response::Fetch(response));
            }
            Action::Proposed { id, outcome } => self.proposal_outcome(i, id, outcome),
            Action::HighWatermark(hw) => self.high_watermark(i, hw),
            Action::RespondFetchSnapshot {
                to,
                response,
                max_bytes,
            } => {
                let response = self.read_snapshot_chunk(i, response, max_bytes);
                self.respond(i, to, Response::FetchSnapshot(response));
            }
            Action::WriteSnapshotChunk {
                id,
                position,
                bytes,
            } => {
                let disk = &mut self.nodes[i].disk;
                let mut file = match disk.partial.take() {
                    Some((partial_id, file)) if partial_id == id => file,
                    _ => Vec::new(),
                };
                if position as usize > file.len() {
                    self.fail(&format!("node {i} wrote a snapshot chunk past its end"));
                }
                file.truncate(position as usize);
                file.extend_from_slice(&bytes);
                self.nodes[i].disk.partial = Some((id, file));
            }
            Action::InstallSnapshot { id } => self.install_snapshot(i, id),
            Action::LeaderChanged { epoch, leader_id } => {
                self.note(format!("node {i} sees epoch {epoch} leader {leader_id:?}"));
                // A leader announces itself even if it resigns within the same step.
                if let Some(id) = leader_id.filter(|l| Some(*l) == self.nodes[i].id) {
                    self.record_leader(epoch, id);
                }
            }
            Action::ShutdownComplete => {
                if self.nodes[i].shutting_down {
                    let disk = &mut self.nodes[i].disk;
                    disk.flushed = disk.batches.len();
                    self.nodes[i].replica = None;
                    self.awaiting.retain(|_, node| *node != i);
                    self.note(format!("node {i} shut down"));
                }
            }
            Action::Fatal(reason) => self.fail(&format!("node {i} fatal: {reason}")),
        }
    }

    fn respond(&mut self, i: usize, to: InboundId, response: Response) {
        let Some((from, request_id)) = self.nodes[i].inbound.remove(&to.0) else {
            return;
        };
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

    fn append(&mut self, i: usize, batches: Bytes) {
        let disk = &mut self.nodes[i].disk;
        let mut next = disk.end_offset();
        for batch in kraft::record::BatchIter::new(batches) {
            let batch = batch
                .unwrap_or_else(|e| self.fail(&format!("node {i} appended an invalid batch: {e}")));
            if batch.base_offset() != next {
                self.fail(&format!(
                    "node {i} appended at {} with log end {next}",
                    batch.base_offset()
                ));
            }
            next = batch.next_offset();
            self.nodes[i].disk.batches.push(batch.as_bytes().clone());
        }
    }

    fn reschedule_tick(&mut self, i: usize) {
        let Some(deadline) = self.nodes[i]
            .replica
            .as_ref()
            .and_then(|r| r.next_deadline())
        else {
            return;
        };
        let at = deadline.max(self.now);
        if self.nodes[i].tick_at.is_none_or(|t| at < t || t < self.now) {
            self.nodes[i].tick_at = Some(at);
            self.schedule(at, Event::Tick { node: i });
        }
    }

    // ---- snapshots -----------------------------------------------------------------------------

    /// Node `i` snapshots its committed, durable prefix (if it has anything new).
    pub fn snapshot(&mut self, i: usize) {
        let (Some(hw), true) = (self.nodes[i].hw, self.is_running(i)) else {
            return;
        };
        let disk = &self.nodes[i].disk;
        let end = hw.min(disk.flushed_end_offset());
        if disk
            .snapshot
            .as_ref()
            .is_some_and(|(id, _)| id.offset >= end)
            || end <= disk.start
        {
            return;
        }
        let mut file = BytesMut::new();
        if let Some((_, bytes)) = &disk.snapshot {
            file.extend_from_slice(bytes);
        }
        let mut epoch = disk.snapshot.as_ref().map_or(Epoch(0), |(id, _)| id.epoch);
        let covered = disk
            .snapshot
            .as_ref()
            .map_or(Offset(0), |(id, _)| id.offset);
        for b in &disk.batches {
            let h = BatchHeader::parse(b).unwrap();
            if h.next_offset() > end {
                break;
            }
            if h.base_offset() < covered {
                continue; // already in the previous snapshot
            }
            file.extend_from_slice(b);
            epoch = h.epoch();
        }
        let id = OffsetAndEpoch { offset: end, epoch };
        let file = file.freeze();
        // A snapshot ends at or below the high watermark: it holds only committed batches.
        for batch in kraft::record::BatchIter::new(file.clone()) {
            let batch = batch.unwrap();
            if self.committed.get(&batch.base_offset()) != Some(batch.as_bytes()) {
                self.fail(&format!(
                    "node {i} snapshot {id:?} holds an uncommitted batch at {}",
                    batch.base_offset()
                ));
            }
        }
        self.nodes[i].disk.snapshot = Some((id, file));
        self.note(format!("node {i} wrote snapshot {id:?}"));
        self.input(i, Input::SnapshotWritten { id });
    }

    /// Node `i` cleans its log up to its snapshot.
    pub fn clean(&mut self, i: usize) {
        if !self.is_running(i) {
            return;
        }
        let disk = &mut self.nodes[i].disk;
        let Some((id, _)) = disk.snapshot.as_ref() else {
            return;
        };
        let target = id.offset.min(disk.flushed_end_offset());
        let drop = disk
            .batches
            .iter()
            .take_while(|b| BatchHeader::parse(b).unwrap().next_offset() <= target)
            .count();
        if drop == 0 {
            return;
        }
        let new_start = BatchHeader::parse(&disk.batches[drop - 1])
            .unwrap()
            .next_offset();
        disk.batches.drain(..drop);
        disk.flushed -= drop;
        disk.checked = disk.checked.saturating_sub(drop);
        disk.start = new_start;
        self.note(format!("node {i} cleaned its log to {new_start}"));
        self.input(i, Input::LogStartAdvanced { offset: new_start });
    }

    /// Serves a FetchSnapshot chunk, in small pieces so that transfers take several requests.
    fn read_snapshot_chunk(
        &mut self,
        i: usize,
        mut response: FetchSnapshotResponse,
        max_bytes: u32,
    ) -> FetchSnapshotResponse {
        let chunk = (max_bytes as usize).min(SNAPSHOT_CHUNK_BYTES);
        match &self.nodes[i].disk.snapshot {
            Some((id, file)) if *id == response.snapshot_id => {
                response.size = file.len() as u64;
                let position = response.position as usize;
                if position > file.len() {
                    response.error = ErrorCode::PositionOutOfRange;
                } else {
                    response.bytes = file.slice(position..(position + chunk).min(file.len()));
                }
            }
            _ => response.error = ErrorCode::SnapshotNotFound,
        }
        response
    }

    /// Installs a fetched snapshot: it must hold exactly the committed history below its end.
    fn install_snapshot(&mut self, i: usize, id: OffsetAndEpoch) {
        let file = match self.nodes[i].disk.partial.take() {
            Some((partial_id, file)) if partial_id == id => Bytes::from(file),
            _ => self.fail(&format!(
                "node {i} installed snapshot {id:?} it never fetched"
            )),
        };
        let mut next = Offset(0);
        for batch in kraft::record::BatchIter::new(file.clone()) {
            let batch = batch.unwrap_or_else(|e| {
                self.fail(&format!("node {i} installed a corrupt snapshot: {e}"))
            });
            if batch.base_offset() != next || self.committed.get(&next) != Some(batch.as_bytes()) {
                self.fail(&format!(
                    "node {i} installed a snapshot that disagrees with the committed history at {next}"
                ));
            }
            next = batch.next_offset();
        }
        if next != id.offset {
            self.fail(&format!(
                "node {i} installed snapshot {id:?} ending at {next}"
            ));
        }
        let disk = &mut self.nodes[i].disk;
        disk.snapshot = Some((id, file));
        disk.batches.clear();
        disk.flushed = 0;
        disk.checked = 0;
        disk.start = id.offset;
        self.note(format!("node {i} installed snapshot {id:?}"));
        // At once, so that the core and the disk never disagree about where the log starts.
        self.input(i, Input::SnapshotInstalled { id });
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
                        .replica
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
        }
        self.check_invariants();
        true
    }

    fn deliver(&mut self, to: usize, msg: Msg) {
        if self.nodes[to].replica.is_none() {
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
                node.inbound.insert(inbound, (from, request_id));
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
        self.input(
            target,
            Input::Propose {
                id: ProposalId(id),
                records: vec![value],
            },
        );
    }

    /// The node that leads the highest epoch, if any.
    pub fn leader(&self) -> Option<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                n.replica
                    .as_ref()
                    .filter(|r| r.role() == RoleKind::Leader)
                    .map(|r| (r.epoch(), i))
            })
            .max()
            .map(|(_, i)| i)
    }

    pub fn role(&self, i: usize) -> Option<RoleKind> {
        self.nodes[i].replica.as_ref().map(|r| r.role())
    }

    pub fn epoch(&self, i: usize) -> Option<Epoch> {
        self.nodes[i].replica.as_ref().map(|r| r.epoch())
    }

    pub fn hw(&self, i: usize) -> Option<Offset> {
        self.nodes[i]
            .replica
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
        if self.nodes[i].hw.is_some_and(|old| hw < old) {
            self.fail(&format!(
                "node {i} high watermark went back from {:?} to {hw}",
                self.nodes[i].hw
            ));
        }
        self.nodes[i].hw = Some(hw);
        let end = self.nodes[i].disk.end_offset();
        if hw > end {
            self.fail(&format!(
                "node {i} high watermark {hw} is past its log end {end}"
            ));
        }
        self.check_committed_prefix(i, hw);
        if !self.wiped
            && self.nodes[i]
                .replica
                .as_ref()
                .is_some_and(|r| r.role() == RoleKind::Leader)
        {
            self.check_majority_holds(i, hw);
        }
    }

    /// Every batch below `hw` on node `i` matches what any node ever saw committed there.
    fn check_committed_prefix(&mut self, i: usize, hw: Offset) {
        while let Some(b) = self.nodes[i]
            .disk
            .batches
            .get(self.nodes[i].disk.checked)
            .cloned()
        {
            let h = BatchHeader::parse(&b).unwrap();
            if h.next_offset() > hw {
                break;
            }
            self.nodes[i].disk.checked += 1;
            match self.committed.get(&h.base_offset()) {
                Some(existing) if existing != &b => self.fail(&format!(
                    "node {i} committed a different batch at offset {}",
                    h.base_offset()
                )),
                Some(_) => {}
                None => {
                    self.check_known_records(i, &b);
                    self.committed.insert(h.base_offset(), b);
                }
            }
        }
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

    /// A majority of voters hold (durably) every offset below the leader's high watermark.
    fn check_majority_holds(&mut self, leader: usize, hw: Offset) {
        let holders = self
            .voters
            .iter()
            .filter_map(|v| self.node_index(*v))
            .filter(|j| self.nodes[*j].disk.flushed_end_offset() >= hw)
            .count();
        if holders < self.voters.len() / 2 + 1 {
            self.fail(&format!(
                "leader {leader} high watermark {hw} is held by only {holders} voters"
            ));
        }
    }

    fn check_invariants(&mut self) {
        for i in 0..self.nodes.len() {
            let Some(r) = self.nodes[i].replica.as_ref() else {
                continue;
            };
            let (role, epoch) = (r.role(), r.epoch());
            let leo = r.log().log_end_offset();
            let disk = &self.nodes[i].disk;
            if r.log().log_start_offset() != disk.start {
                let (core, disk) = (r.log().log_start_offset(), disk.start);
                self.fail(&format!(
                    "node {i} believes its log starts at {core}, the disk says {disk}"
                ));
            }
            let covered = disk
                .snapshot
                .as_ref()
                .is_some_and(|(id, _)| id.offset >= disk.start);
            if disk.start > Offset(0) && !covered {
                let start = disk.start;
                self.fail(&format!(
                    "node {i} log starts at {start} but no snapshot covers what is below"
                ));
            }
            if leo != self.nodes[i].disk.end_offset() {
                let disk = self.nodes[i].disk.end_offset();
                self.fail(&format!(
                    "node {i} believes its log ends at {leo}, the disk says {disk}"
                ));
            }
            if role == RoleKind::Leader {
                let id = self.nodes[i].id.unwrap();
                self.record_leader(epoch, id);
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
        let mut committed_at: Option<Offset> = None;
        while committed_at.is_none() {
            attempts += 1;
            if attempts > 50 {
                self.fail("no proposal committed after the faults healed");
            }
            self.propose();
            self.run_for(Duration::from_millis(500), 20_000);
            committed_at = self
                .acknowledged
                .iter()
                .find(|(_, v)| {
                    let id: u64 = std::str::from_utf8(v).unwrap()[6..].parse().unwrap();
                    id >= target
                })
                .map(|(o, _)| *o);
        }
        let offset = committed_at.unwrap();
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.is_running(*i))
            .collect();
        self.run_until(limit, "every running node to reach the new commit", |s| {
            running
                .iter()
                .all(|i| s.hw(*i).is_some_and(|hw| hw > offset))
        });
        {
            for (offset, value) in self.acknowledged.clone() {
                for &i in &running {
                    let Some(batch) = self.nodes[i].disk.batch_at(offset) else {
                        self.fail(&format!("node {i} lost acknowledged offset {offset}"));
                    };
                    let record = RecordBatch::decode(batch)
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
