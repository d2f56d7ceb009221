//! The replica: one node's KRaft state machine. `step(now, input)` applies one input and returns
//! the actions to execute, in order.
//!
//! Owns the epoch, the known leader, the vote, the current state and every timer and in-flight
//! request. It must never perform IO or read a clock: time comes in with each step, randomness
//! from a seeded generator, and the log is seen through [`LogView`], kept in step with the
//! Append/Truncate/Flush actions it emits. The RPC handlers live in `vote.rs`, `fetch.rs` and
//! `quorum_epoch.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;

use super::config::RaftConfig;
use super::election::Election;
use super::flush::{FlushState, FlushStep};
use super::io::{
    Action, InboundId, Input, PersistedElection, ProposalId, ProposalOutcome, ProposeError,
    RequestId,
};
use super::leader::{LeaderState, PendingProposal};
use super::log_view::LogView;
use super::message::{ErrorCode, FetchResponse, Request, Response};
use super::producers::SequenceCheck;
use super::rng::SeededRng;
use super::role::{Role, RoleKind};
use crate::record::{BatchBuilder, BatchKind, ControlRecord, LeaderChangeMessage};
use crate::types::{Epoch, NodeId, Offset};

/// How long a leader keeps trying to hand over during a graceful shutdown (Kafka's driver uses
/// the same 5 s) before it stops anyway.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a leader shutting down waits (refusing new appends) for some voter to hold its
/// whole log before resigning, so that its first preferred successor can win the election: a
/// successor missing the last appends would be refused by the voters that have them.
pub const DRAIN_LIMIT: Duration = Duration::from_millis(500);
/// Transitions one step may chain (e.g. Resigned -> Unattached -> Prospective -> Candidate ->
/// Leader for a single voter); a bound so that a bug cannot loop forever.
const MAX_TRANSITIONS_PER_STEP: usize = 8;

/// A request this replica sent and still expects an answer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Inflight {
    pub id: RequestId,
    pub deadline: Duration,
}

/// Requests to one destination travel on two channels, one request in flight on each, so that
/// a long-polling Fetch never holds up a Vote or an epoch announcement to the same node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Channel {
    Control,
    Fetch,
}

impl Channel {
    fn of_request(request: &Request) -> Channel {
        match request {
            Request::Fetch(_) | Request::FetchSnapshot(_) => Channel::Fetch,
            _ => Channel::Control,
        }
    }

    fn of_response(response: &Response) -> Channel {
        match response {
            Response::Fetch(_) | Response::FetchSnapshot(_) => Channel::Fetch,
            _ => Channel::Control,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Replica {
    pub(super) config: RaftConfig,
    pub(super) epoch: Epoch,
    pub(super) leader_id: Option<NodeId>,
    pub(super) voted_id: Option<NodeId>,
    pub(super) role: Role,
    pub(super) log: LogView,
    pub(super) high_watermark: Option<Offset>,
    pub(super) rng: SeededRng,
    pub(super) now: Duration,
    next_request_id: u64,
    pub(super) inflight: BTreeMap<(NodeId, Channel), Inflight>,
    pub(super) backoff_until: BTreeMap<NodeId, Duration>,
    persists_pending: usize,
    last_persisted: Option<PersistedElection>,
    held: Vec<Action>,
    pub(super) out: Vec<Action>,
    pub(super) shutdown_deadline: Option<Duration>,
    shutdown_done: bool,
    /// A snapshot being fetched from the leader (kept across leader changes: a new leader with
    /// the same snapshot lets the transfer resume).
    pub(super) snapshot_transfer: Option<super::snapshot::SnapshotTransfer>,
    announced: Option<(Epoch, Option<NodeId>)>,
    flush: FlushState,
    /// Where the leader listens, as a fetch answer named it (a leader found through a
    /// bootstrap server may not be in any voter set this replica knows yet).
    pub(super) learned_leader_endpoint: Option<(NodeId, super::voter_set::ListenerAddress)>,
    pub(super) announced_endpoints: Option<BTreeMap<NodeId, super::voter_set::ListenerAddress>>,
    /// The voter set in force when last looked at, to notice a change.
    pub(super) last_voter_set: Option<super::voter_set::VoterSet>,
    /// When this replica may next ask the leader to change its own voter entry (auto-join,
    /// a stale entry's removal, an endpoint update).
    pub(super) next_own_change_at: Duration,
    /// The epoch whose leader accepted this voter's endpoint update.
    pub(super) endpoints_updated_in: Option<Epoch>,
}

impl Replica {
    /// Starts a replica from its persisted election state and recovered log (docs/protocol.md
    /// §4.2): a former leader restarts Resigned, a self-vote restarts the candidacy, a known
    /// leader is followed, and a single voter elects itself at once.
    pub fn start(
        config: RaftConfig,
        persisted: Option<PersistedElection>,
        log: LogView,
        now: Duration,
        seed: u64,
    ) -> (Replica, Vec<Action>) {
        let stored = persisted.unwrap_or(PersistedElection {
            epoch: Epoch(0),
            leader_id: None,
            voted_id: None,
        });
        let mut r = Replica {
            config,
            epoch: stored.epoch,
            leader_id: stored.leader_id,
            voted_id: stored.voted_id,
            role: Role::Unattached {
                election_deadline: None,
            },
            log,
            high_watermark: None,
            rng: SeededRng::new(seed),
            now,
            next_request_id: 0,
            inflight: BTreeMap::new(),
            backoff_until: BTreeMap::new(),
            persists_pending: 0,
            last_persisted: persisted,
            held: Vec::new(),
            out: Vec::new(),
            shutdown_deadline: None,
            shutdown_done: false,
            snapshot_transfer: None,
            announced: None,
            flush: FlushState::default(),
            learned_leader_endpoint: None,
            announced_endpoints: None,
            last_voter_set: None,
            next_own_change_at: Duration::ZERO,
            endpoints_updated_in: None,
        };
        if !r.config.voters.is_empty() {
            let static_voters = super::voter_set::VoterSet::static_voters(&r.config.voters);
            r.log.voters_mut().set_static_voters(static_voters);
        }
        r.last_voter_set = r.voter_set().cloned();
        r.announce_endpoints();
        r.note_repair_point_reached();
        r.initialize(stored);
        r.poll();
        r.announce_leader();
        let actions = std::mem::take(&mut r.out);
        (r, actions)
    }

    fn initialize(&mut self, stored: PersistedElection) {
        let local = self.config.local_id;
        let log_epoch = self.log.last_fetched_epoch();
        if stored.epoch < log_epoch {
            self.become_unattached(log_epoch);
        } else if stored.leader_id.is_some() && stored.leader_id == local && self.may_campaign() {
            self.resign_in_place();
        } else if stored.voted_id.is_some()
            && stored.voted_id == local
            && self.may_campaign()
            && !self.held_back_by_repair()
        {
            let role = Role::Candidate {
                election: Election::new(&self.voter_ids(), local.expect("a voter has an id")),
                election_deadline: self.random_election_deadline(),
            };
            self.set_role(role);
        } else if let Some(leader) = stored.leader_id.filter(|l| Some(*l) != local) {
            let role = self.follower_role();
            self.set_role(role);
            self.leader_id = Some(leader);
        } else {
            let role = self.unattached_role();
            self.set_role(role);
        }
        if self.config.local_id.is_none() && stored.voted_id.is_some() {
            // Kafka refuses this too: only a replica with an id can have voted, so the file
            // belongs to another replica or is damaged, and clearing the vote would hide that.
            self.out.push(Action::Fatal(format!(
                "quorum-state records a vote for {:?} in epoch {}, but this replica has no id",
                stored.voted_id, stored.epoch
            )));
            self.voted_id = None;
        }
        self.persist();
        self.campaign_after_restart();
    }

    /// A restarted candidacy that its own vote already wins (the only voter) leads its stored
    /// epoch: nobody else could have voted in it. Any other state of the only voter elects
    /// itself at once in a new epoch, so that a former leader never leads its old epoch again.
    fn campaign_after_restart(&mut self) {
        let won = matches!(&self.role, Role::Candidate { election, .. } if election.is_won());
        if won {
            self.become_leader();
        } else if self.is_voter() && !self.has_other_voters() {
            self.become_prospective();
        }
    }

    // ---- accessors -------------------------------------------------------------------------

    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    pub fn role(&self) -> RoleKind {
        self.role.kind()
    }

    pub fn leader_id(&self) -> Option<NodeId> {
        self.leader_id
    }

    pub fn voted_id(&self) -> Option<NodeId> {
        self.voted_id
    }

    pub fn high_watermark(&self) -> Option<Offset> {
        self.high_watermark
    }

    pub fn log(&self) -> &LogView {
        &self.log
    }

    pub fn config(&self) -> &RaftConfig {
        &self.config
    }

    /// The leader's view of each voter's durable log end offset (empty unless leader).
    pub fn voter_end_offsets(&self) -> BTreeMap<NodeId, Option<Offset>> {
        match &self.role {
            Role::Leader(l) => l
                .progress
                .iter()
                .map(|(id, p)| (*id, p.end_offset))
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    /// On the leader: each voter's progress (log end, last fetch, last caught up); the leader's
    /// own entry has no fetch times. Empty on other replicas.
    pub fn voter_progress(&self) -> BTreeMap<NodeId, super::leader::ReplicaProgress> {
        match &self.role {
            Role::Leader(l) => l.progress.clone(),
            _ => BTreeMap::new(),
        }
    }

    /// On the leader: each observer that fetched with an id within the session timeout.
    /// Empty on other replicas.
    pub fn observer_progress(&self) -> BTreeMap<NodeId, super::leader::ReplicaProgress> {
        match &self.role {
            Role::Leader(l) => l.observers.clone(),
            _ => BTreeMap::new(),
        }
    }

    /// The earliest time at which a `Tick` would change anything.
    pub fn next_deadline(&self) -> Option<Duration> {
        let mut deadlines: Vec<Duration> = Vec::new();
        // While shutting down, Unattached and Resigned never campaign: their timers act on nothing.
        let campaigns = self.shutdown_deadline.is_none();
        match &self.role {
            Role::Unattached { election_deadline } => {
                deadlines.extend(election_deadline.filter(|_| campaigns))
            }
            Role::Prospective {
                election_deadline, ..
            }
            | Role::Candidate {
                election_deadline, ..
            } => deadlines.push(*election_deadline),
            Role::Follower { fetch_deadline, .. } => deadlines.push(*fetch_deadline),
            Role::Resigned {
                election_deadline, ..
            } => deadlines.extend(Some(*election_deadline).filter(|_| campaigns)),
            Role::Leader(l) => {
                if self.has_other_voters() {
                    deadlines.push(l.check_quorum_deadline);
                }
                deadlines.extend(self.voter_change_deadline());
                deadlines.push(l.begin_quorum_deadline);
                deadlines.extend(l.parked.iter().map(|p| p.deadline));
                deadlines.extend(self.drain_deadline());
            }
        }
        deadlines.extend(self.inflight.values().map(|i| i.deadline));
        deadlines.extend(self.backoff_until.values().copied());
        deadlines.extend(self.shutdown_deadline.filter(|_| !self.shutdown_done));
        deadlines.extend(self.flush.deadline());
        deadlines.into_iter().min()
    }

    // ---- the step --------------------------------------------------------------------------

    /// Applies one input at time `now` and returns the actions to execute, in order.
    pub fn step(&mut self, now: Duration, input: Input) -> Vec<Action> {
        self.now = self.now.max(now);
        match input {
            Input::Tick => {}
            Input::Request { from, request } => self.handle_request(from, request),
            Input::Response {
                from,
                request_id,
                response,
            } => self.handle_response(from, request_id, response),
            Input::RequestFailed { to, request_id } => self.request_failed(to, request_id),
            Input::ElectionPersisted => self.election_persisted(),
            Input::Flushed { offset } => self.flushed(offset),
            Input::Propose { id, records } => self.propose(id, records),
            Input::ProposeBatch { id, batch } => self.propose_batch(id, batch),
            Input::Shutdown => self.shutdown(),
            Input::SnapshotWritten { id } => self.log.snapshot_written(id),
            Input::LogStartAdvanced { offset } => self.log.start_advanced(offset),
            Input::SnapshotInstalled { id, control } => self.snapshot_installed(id, control),
            Input::AddVoter { id, voter, timeout } => self.add_voter(id, voter, timeout),
            Input::RemoveVoter { id, voter, timeout } => self.remove_voter(id, voter, timeout),
            Input::UpdateVoter { id, voter } => {
                self.update_voter(super::leader::ChangeAsker::Operator(id), voter)
            }
        }
        self.poll();
        self.announce_leader();
        std::mem::take(&mut self.out)
    }

    fn handle_request(&mut self, from: InboundId, request: Request) {
        match request {
            Request::Vote(r) => {
                let response = self.handle_vote_request(&r);
                self.reply(from, Response::Vote(response));
            }
            Request::BeginQuorumEpoch(r) => {
                let response = self.handle_begin_quorum_epoch(&r);
                self.reply(from, Response::BeginQuorumEpoch(response));
            }
            Request::EndQuorumEpoch(r) => {
                let response = self.handle_end_quorum_epoch(&r);
                self.reply(from, Response::EndQuorumEpoch(response));
            }
            Request::Fetch(r) => self.handle_fetch_request(from, r),
            Request::FetchSnapshot(r) => self.handle_fetch_snapshot_request(from, r),
            Request::VoterChange(r) => self.handle_voter_change_request(from, r),
        }
    }

    fn handle_response(&mut self, from: NodeId, request_id: RequestId, response: Response) {
        let key = (from, Channel::of_response(&response));
        match self.inflight.get(&key) {
            Some(i) if i.id == request_id => {
                self.inflight.remove(&key);
            }
            // Not (or no longer) expected: a late answer to a request we gave up on.
            _ => return,
        }
        match response {
            Response::Vote(r) => self.handle_vote_response(from, &r),
            Response::BeginQuorumEpoch(r) => {
                self.handle_common(from, r.error, r.leader_id, r.leader_epoch);
            }
            Response::EndQuorumEpoch(r) => self.handle_end_quorum_epoch_response(from, &r),
            Response::Fetch(r) => self.handle_fetch_response(from, r),
            Response::FetchSnapshot(r) => self.handle_fetch_snapshot_response(from, r),
            Response::VoterChange(r) => self.handle_voter_change_response(from, r),
        }
    }

    fn request_failed(&mut self, to: NodeId, request_id: RequestId) {
        let before = self.inflight.len();
        self.inflight
            .retain(|(node, _), i| !(*node == to && i.id == request_id));
        if self.inflight.len() != before {
            self.backoff(to);
        }
    }

    fn election_persisted(&mut self) {
        self.persists_pending = self.persists_pending.saturating_sub(1);
        if self.persists_pending == 0 {
            self.out.append(&mut self.held);
        }
    }

    /// A flush completed: it proves durable what the log held when it was asked for, less
    /// whatever a truncation or install replaced since (see `FlushState`).
    fn flushed(&mut self, offset: Offset) {
        let (proven, again) = self.flush.completed(offset);
        if let Some(proven) = proven {
            self.log.flushed(proven);
            self.note_repair_point_reached();
            let durable = self.log.flushed_offset();
            let local = self.config.local_id;
            if let (Role::Leader(l), Some(local)) = (&mut self.role, local) {
                // A leader removed from the voter set no longer counts its own log.
                if let Some(own) = l.progress.get_mut(&local) {
                    own.end_offset = Some(durable);
                }
                self.maybe_advance_high_watermark();
            }
        }
        if again {
            self.request_flush();
        }
    }

    /// Whether a repair keeps this replica from voting and standing: its log has yet to get
    /// back to where it was, and other voters may hold what it lost. (A lone voter has nobody
    /// to get it back from; holding it back would only stop the quorum.)
    pub(super) fn held_back_by_repair(&self) -> bool {
        self.log.awaiting_repair_point() && self.has_other_voters()
    }

    /// The durable log got back to where it was before a repair: the replica votes again.
    pub(super) fn note_repair_point_reached(&mut self) {
        if self.log.clear_reached_repair_point() {
            self.out.push(Action::RepairPointReached);
        }
    }

    /// The log grew: flush it now, or once the flush in flight (or a leader's linger) is done.
    pub(super) fn request_flush(&mut self) {
        let linger = match self.role {
            Role::Leader(_) => self.config.append_linger,
            _ => None,
        };
        let log_end = self.log.log_end_offset();
        if self.flush.wanted(log_end, self.now, linger) == FlushStep::Flush {
            self.out.push(Action::Flush);
        }
    }

    /// Records at or above `offset` were replaced: an earlier flush cannot vouch for them.
    pub(super) fn log_replaced_from(&mut self, offset: Offset) {
        self.flush.replaced_from(offset);
    }

    // ---- sending, gated on durability --------------------------------------------------------

    /// Emits a message now, or holds it until every outstanding election persist is durable.
    pub(super) fn gated(&mut self, action: Action) {
        if self.persists_pending > 0 {
            self.held.push(action);
        } else {
            self.out.push(action);
        }
    }

    pub(super) fn reply(&mut self, to: InboundId, response: Response) {
        self.gated(Action::Respond { to, response });
    }

    /// Whether a new control request (Vote, Begin/EndQuorumEpoch) to `to` may go out now: one in
    /// flight per destination and channel, as Kafka's RequestManager, and none while backing off.
    pub(super) fn can_send_to(&self, to: NodeId) -> bool {
        self.channel_ready(to, Channel::Control)
    }

    pub(super) fn channel_ready(&self, to: NodeId, channel: Channel) -> bool {
        !self.inflight.contains_key(&(to, channel))
            && self.backoff_until.get(&to).is_none_or(|t| *t <= self.now)
    }

    pub(super) fn send(&mut self, to: NodeId, request: Request) {
        let id = RequestId(self.next_request_id);
        self.next_request_id += 1;
        let channel = Channel::of_request(&request);
        let deadline = self.now + self.config.request_timeout;
        self.inflight
            .insert((to, channel), Inflight { id, deadline });
        self.backoff_until.remove(&to);
        self.gated(Action::Send {
            to,
            request_id: id,
            request,
        });
    }

    pub(super) fn backoff(&mut self, to: NodeId) {
        self.backoff_until
            .insert(to, self.now + self.config.retry_backoff);
    }

    /// Forgets requests whose answer is overdue. The destination is ready again at once (as
    /// Kafka's RequestManager): the request timeout already was the wait, and only an error
    /// answer or a failed send earns the retry backoff on top.
    fn expire_requests(&mut self) {
        let now = self.now;
        self.inflight.retain(|_, i| i.deadline > now);
        self.backoff_until.retain(|_, t| *t > now);
    }

    // ---- persistence -------------------------------------------------------------------------

    fn election_state(&self) -> PersistedElection {
        PersistedElection {
            epoch: self.epoch,
            leader_id: self.leader_id,
            voted_id: self.voted_id,
        }
    }

    fn persist_always(&mut self) {
        let state = self.election_state();
        self.out.push(Action::PersistElection(state));
        self.persists_pending += 1;
        self.last_persisted = Some(state);
    }

    /// Persists the election state if it differs from what is on disk.
    pub(super) fn persist(&mut self) {
        if self.last_persisted != Some(self.election_state()) {
            self.persist_always();
        }
    }

    fn announce_leader(&mut self) {
        let current = (self.epoch, self.leader_id);
        if self.announced != Some(current) {
            self.announced = Some(current);
            self.out.push(Action::LeaderChanged {
                epoch: self.epoch,
                leader_id: self.leader_id,
            });
        }
    }

    // ---- transitions -------------------------------------------------------------------------

    pub(super) fn random_election_deadline(&mut self) -> Duration {
        let base = self.config.election_timeout;
        let jitter = self.rng.below(base.as_millis() as u64);
        self.now + base + Duration::from_millis(jitter)
    }

    /// Enters a new state. An answer to a request sent in the old state must not be acted on
    /// (a fetch or vote asked for another state's reasons), and must not hold up this state's
    /// requests, so every in-flight request is forgotten (late answers are then ignored) and
    /// every retry backoff is dropped: as Kafka resets its connections, a new state starts
    /// with every destination ready.
    ///
    /// A leader's pending proposals end here as unresolved: from now on another leader decides
    /// what stands at their offsets, and a batch there is theirs no longer by offset alone.
    fn set_role(&mut self, role: Role) {
        self.inflight.clear();
        self.backoff_until.clear();
        let old = std::mem::replace(&mut self.role, role);
        if let Role::Leader(l) = old {
            if let Some(change) = l.voter_change {
                let lost = Err(super::io::VoterChangeError::LeadershipLost);
                self.answer_voter_change(change.asker, lost);
            }
            for p in l.pending {
                let outcome = ProposalOutcome::Unresolved {
                    epoch: p.epoch,
                    first: p.first,
                    last: p.last,
                };
                self.out.push(Action::Proposed { id: p.id, outcome });
            }
        }
    }

    /// Unattached, with the election timer it inherits from the state it leaves. A timer that
    /// was already running (Unattached, Candidate, Resigned, or a Prospective whose pre-vote was
    /// not rejected) keeps what remains, so that a stream of newer epochs never postpones this
    /// voter's own campaign; otherwise (Follower, Leader, a rejected pre-vote, startup) a fresh
    /// one is drawn. Observers never campaign.
    fn unattached_role(&mut self) -> Role {
        if !self.may_campaign() {
            return Role::Unattached {
                election_deadline: None,
            };
        }
        let running = match &self.role {
            Role::Unattached { election_deadline } => *election_deadline,
            Role::Candidate {
                election_deadline, ..
            }
            | Role::Resigned {
                election_deadline, ..
            } => Some(*election_deadline),
            Role::Prospective {
                election,
                election_deadline,
            } if !election.is_lost() => Some(*election_deadline),
            _ => None,
        };
        let election_deadline = running.or_else(|| Some(self.random_election_deadline()));
        Role::Unattached { election_deadline }
    }

    fn follower_role(&self) -> Role {
        Role::Follower {
            fetch_deadline: self.now + self.config.fetch_timeout,
            has_fetched: false,
        }
    }

    /// Leaving the leader state: parked fetches are told the replica no longer leads.
    fn leave_leader(&mut self) {
        if let Role::Leader(l) = &mut self.role {
            let parked = std::mem::take(&mut l.parked);
            for p in parked {
                let response = self.fetch_error(ErrorCode::NotLeaderOrFollower);
                self.respond_fetch_without_records(p.from, response);
            }
        }
    }

    /// Unattached in a newer epoch: no leader, no vote.
    pub(super) fn become_unattached(&mut self, epoch: Epoch) {
        self.leave_leader();
        self.epoch = epoch;
        self.leader_id = None;
        self.voted_id = None;
        let role = self.unattached_role();
        self.set_role(role);
        self.persist();
    }

    /// Unattached in the same epoch, keeping the known leader and the vote.
    pub(super) fn become_unattached_same_epoch(&mut self) {
        let role = self.unattached_role();
        self.set_role(role);
        self.persist();
    }

    pub(super) fn become_prospective(&mut self) {
        let Some(local) = self.config.local_id.filter(|_| self.may_campaign()) else {
            // Not (or no longer) a voter: an observer never campaigns.
            if let Role::Unattached { election_deadline } = &mut self.role {
                *election_deadline = None;
            }
            return;
        };
        if self.held_back_by_repair() {
            // Its log lost records it once acknowledged: standing could elect a log without
            // them. It waits, unattached, for a leader to bring it back, looking again after a
            // fresh election timeout.
            let role = Role::Unattached {
                election_deadline: Some(self.random_election_deadline()),
            };
            self.set_role(role);
            return;
        }
        let election = Election::new(&self.voter_ids(), local);
        let won = election.is_won();
        let role = Role::Prospective {
            election,
            election_deadline: self.random_election_deadline(),
        };
        self.set_role(role);
        if won {
            self.become_candidate();
        }
    }

    pub(super) fn become_candidate(&mut self) {
        let Some(local) = self.config.local_id.filter(|_| self.may_campaign()) else {
            return;
        };
        let Some(next) = self.epoch.next() else {
            // The highest epoch: no election can start a newer one. Wrapping would persist a
            // negative epoch that no restart accepts; the replica waits instead.
            let role = Role::Unattached {
                election_deadline: Some(self.random_election_deadline()),
            };
            self.set_role(role);
            return;
        };
        self.epoch = next;
        self.leader_id = None;
        self.voted_id = Some(local);
        let election = Election::new(&self.voter_ids(), local);
        let won = election.is_won();
        let role = Role::Candidate {
            election,
            election_deadline: self.random_election_deadline(),
        };
        self.set_role(role);
        self.persist();
        if won {
            self.become_leader();
        }
    }

    /// Leader of the current epoch: persist, then append this epoch's LeaderChange record.
    pub(super) fn become_leader(&mut self) {
        let Role::Candidate { election, .. } = &self.role else {
            return;
        };
        let granting: Vec<i32> = election.granted().iter().map(|n| n.0).collect();
        let local = self.config.local_id.expect("a candidate has an id");
        self.leader_id = Some(local);
        // A new leader knows no high watermark until it commits in its own epoch: what it
        // learned as a follower may be ahead of what it can prove (as Kafka's LeaderState).
        self.high_watermark = None;
        self.persist();
        let epoch_start = self.log.log_end_offset();
        let check_quorum = self.config.fetch_timeout.mul_f64(1.5);
        let voters = self.voter_ids();
        let mut state = LeaderState::new(&voters, epoch_start, self.now, check_quorum);
        if let Some(own) = state.progress.get_mut(&local) {
            own.end_offset = Some(self.log.flushed_offset());
        }
        let role = Role::Leader(Box::new(state));
        self.set_role(role);
        let record = ControlRecord::LeaderChange(LeaderChangeMessage {
            version: 0,
            leader_id: local.0,
            voters: voters.iter().map(|n| n.0).collect(),
            granting_voters: granting,
        });
        let mut batch = BatchBuilder::new(BatchKind::Control, epoch_start, self.epoch);
        let timestamp = self.timestamp_ms();
        for record in std::iter::once(record).chain(self.bootstrap_records_to_copy()) {
            batch
                .append_control(timestamp, &record)
                .expect("a LeaderChange batch fits its few records");
        }
        self.append_as_leader(batch.build().expect("one record at least"));
    }

    /// Follower of `leader` in `epoch` (a newer epoch clears the vote).
    pub(super) fn become_follower(&mut self, epoch: Epoch, leader: NodeId) {
        if Some(leader) == self.config.local_id {
            return;
        }
        self.leave_leader();
        if epoch != self.epoch {
            self.voted_id = None;
        }
        self.epoch = epoch;
        self.leader_id = Some(leader);
        let role = self.follower_role();
        self.set_role(role);
        self.persist();
    }

    /// Leader to Resigned (memory only): stop leading, tell the voters who should succeed.
    pub(super) fn resign(&mut self) {
        if !matches!(self.role, Role::Leader(_)) {
            return;
        }
        self.leave_leader();
        self.resign_in_place();
    }

    fn resign_in_place(&mut self) {
        let local = self.config.local_id.expect("only a voter resigns");
        // Only a sitting leader knows how far each voter got; a replica restarting as Resigned
        // has no basis for a preference and names nobody.
        let successors = match &self.role {
            Role::Leader(l) => l.successors(local),
            _ => Vec::new(),
        };
        let unacked: BTreeSet<NodeId> = self
            .voter_ids()
            .into_iter()
            .filter(|v| *v != local)
            .collect();
        self.leader_id = Some(local);
        let role = Role::Resigned {
            election_deadline: self.random_election_deadline(),
            unacked,
            successors,
        };
        self.set_role(role);
    }

    // ---- the leader's own appends ------------------------------------------------------------

    pub(super) fn timestamp_ms(&self) -> i64 {
        self.now.as_millis() as i64
    }

    /// Appends a batch the leader built at its log end offset, then flushes it.
    pub(super) fn append_as_leader(&mut self, batch: Bytes) {
        let header = crate::record::BatchHeader::parse(&batch).expect("built above");
        let committed = self.high_watermark.unwrap_or(Offset(0));
        self.log.appended_batch(&header, committed);
        self.out.push(Action::Append {
            batches: batch.clone(),
        });
        if header.is_control()
            && let Ok(parsed) = crate::record::RecordBatch::decode(batch)
        {
            self.apply_control_batch(&parsed);
        }
        self.request_flush();
        self.complete_parked_fetches(false);
    }

    /// Refuses a proposal unless this replica leads (and is not handing over); true if it may
    /// go on.
    fn may_propose(&mut self, id: ProposalId) -> bool {
        let leading = matches!(self.role, Role::Leader(_)) && self.shutdown_deadline.is_none();
        if !leading {
            let err = ProposeError::NotLeader {
                leader_id: self.leader_id,
                epoch: self.epoch,
            };
            self.refuse(id, err);
        }
        leading
    }

    fn propose(&mut self, id: ProposalId, records: Vec<Bytes>) {
        if !self.may_propose(id) {
            return;
        }
        let base = self.log.log_end_offset();
        let mut batch = BatchBuilder::new(BatchKind::Data, base, self.epoch);
        let timestamp = self.timestamp_ms();
        for value in &records {
            if batch.append(timestamp, None, Some(value), &[]).is_err() {
                self.refuse(id, ProposeError::TooLarge);
                return;
            }
        }
        let Ok(bytes) = batch.build() else {
            // Nothing to append: an empty proposal gets the empty range at the log end.
            let outcome = ProposalOutcome::Committed {
                first: base,
                last: Offset(base.0 - 1),
            };
            self.out.push(Action::Proposed { id, outcome });
            return;
        };
        self.append_pending(id, bytes);
    }

    /// Appends a leader-stamped batch and tracks it until its outcome is known.
    fn append_pending(&mut self, id: ProposalId, batch: Bytes) {
        let first = self.log.log_end_offset();
        self.append_as_leader(batch);
        let last = Offset(self.log.log_end_offset().0 - 1);
        if let Role::Leader(l) = &mut self.role {
            l.pending.push_back(PendingProposal {
                id,
                epoch: self.epoch,
                first,
                last,
            });
        }
    }

    /// A client's batch: appended unless its producer already has it in the log (then it waits
    /// for the original's commit) or it breaks its producer's sequence.
    fn propose_batch(&mut self, id: ProposalId, batch: Bytes) {
        if !self.may_propose(id) {
            return;
        }
        let Ok(header) = crate::record::RecordBatch::validate(&batch) else {
            return self.refuse(id, ProposeError::InvalidBatch);
        };
        match self.log.producers().check(&header) {
            SequenceCheck::Append => {}
            SequenceCheck::Duplicate { first, last } => {
                return self.await_original(id, first, last);
            }
            SequenceCheck::OutOfOrder => return self.refuse(id, ProposeError::OutOfOrderSequence),
            SequenceCheck::Fenced => return self.refuse(id, ProposeError::InvalidProducerEpoch),
        }
        let base = self.log.log_end_offset();
        match crate::record::restamp(&batch, base, self.epoch) {
            Ok(stamped) => self.append_pending(id, stamped),
            Err(_) => self.refuse(id, ProposeError::InvalidBatch),
        }
    }

    /// A retried batch already in the log at `first..=last`: its outcome is the original's,
    /// committed once the high watermark passes it (as Kafka answers a duplicate only then).
    fn await_original(&mut self, id: ProposalId, first: Offset, last: Offset) {
        if self.high_watermark.is_some_and(|hw| hw > last) {
            let outcome = ProposalOutcome::Committed { first, last };
            self.out.push(Action::Proposed { id, outcome });
            return;
        }
        let epoch = self.epoch;
        if let Role::Leader(l) = &mut self.role {
            let at = l.pending.partition_point(|p| p.last <= last);
            l.pending.insert(
                at,
                PendingProposal {
                    id,
                    epoch,
                    first,
                    last,
                },
            );
        }
    }

    fn refuse(&mut self, id: ProposalId, error: ProposeError) {
        let outcome = ProposalOutcome::Refused(error);
        self.out.push(Action::Proposed { id, outcome });
    }

    /// Raises the leader's high watermark to what a majority holds, if that passes both this
    /// epoch's start and the current value; answers parked fetches when it moves.
    pub(super) fn maybe_advance_high_watermark(&mut self) {
        let Role::Leader(l) = &self.role else { return };
        let Some(candidate) = l.majority_offset() else {
            return;
        };
        if self.high_watermark.is_some_and(|hw| hw >= candidate) {
            return;
        }
        self.high_watermark = Some(candidate);
        self.out.push(Action::HighWatermark(candidate));
        if let Role::Leader(l) = &mut self.role {
            for p in l.take_committed(candidate) {
                let outcome = ProposalOutcome::Committed {
                    first: p.first,
                    last: p.last,
                };
                self.out.push(Action::Proposed { id: p.id, outcome });
            }
        }
        self.complete_parked_fetches(true);
        self.poll_voter_change();
    }

    /// Sets a follower's high watermark to min(leader's, own log end), never backwards.
    pub(super) fn update_follower_high_watermark(&mut self, leader_hw: Option<Offset>) {
        let Some(leader_hw) = leader_hw else { return };
        let candidate = leader_hw.min(self.log.log_end_offset());
        if self.high_watermark.is_none_or(|hw| candidate > hw) {
            self.high_watermark = Some(candidate);
            self.out.push(Action::HighWatermark(candidate));
        }
    }

    /// Answers a fetch with an error or a divergence: nothing to read from the log.
    pub(super) fn respond_fetch_without_records(&mut self, to: InboundId, response: FetchResponse) {
        self.gated(Action::RespondFetch {
            to,
            response,
            read_from: None,
            max_bytes: 0,
        });
    }

    pub(super) fn fetch_error(&self, error: ErrorCode) -> FetchResponse {
        FetchResponse {
            error,
            leader_id: self.leader_id,
            leader_epoch: self.epoch,
            high_watermark: self.high_watermark,
            log_start_offset: self.log.log_start_offset(),
            diverging_epoch: None,
            snapshot_id: None,
            leader_endpoint: self.leader_endpoint(),
            records: Bytes::new(),
        }
    }

    // ---- graceful shutdown -------------------------------------------------------------------

    fn shutdown(&mut self) {
        if self.shutdown_deadline.is_none() {
            self.shutdown_deadline = Some(self.now + SHUTDOWN_TIMEOUT);
            if self.drained() {
                self.resign();
            }
        }
    }

    /// When a leader shutting down may resign: another voter holds its whole log, there is no
    /// other voter, or [`DRAIN_LIMIT`] has passed.
    fn drained(&self) -> bool {
        let Role::Leader(l) = &self.role else {
            return true;
        };
        let end = self.log.log_end_offset();
        let mut others = l
            .progress
            .iter()
            .filter(|(id, _)| Some(**id) != self.config.local_id)
            .peekable();
        others.peek().is_none()
            || others.any(|(_, p)| p.end_offset >= Some(end))
            || self.drain_deadline().is_some_and(|d| d <= self.now)
    }

    fn drain_deadline(&self) -> Option<Duration> {
        self.shutdown_deadline
            .map(|d| d - SHUTDOWN_TIMEOUT + DRAIN_LIMIT)
    }

    /// Done once another leader is known, this is an observer or the only voter, or time ran out.
    fn maybe_complete_shutdown(&mut self) {
        let Some(deadline) = self.shutdown_deadline else {
            return;
        };
        if self.shutdown_done {
            return;
        }
        let handed_over = matches!(self.role, Role::Follower { .. } | Role::Unattached { .. });
        if handed_over || !self.is_voter() || !self.has_other_voters() || self.now >= deadline {
            self.shutdown_done = true;
            self.out.push(Action::ShutdownComplete);
        }
    }

    // ---- polling: timers and periodic sends ----------------------------------------------------

    fn poll(&mut self) {
        self.expire_requests();
        if self.flush.poll(self.log.log_end_offset(), self.now) == FlushStep::Flush {
            self.out.push(Action::Flush);
        }
        for _ in 0..MAX_TRANSITIONS_PER_STEP {
            let before = (self.role.kind(), self.epoch);
            match self.role.kind() {
                RoleKind::Unattached => self.poll_unattached(),
                RoleKind::Prospective | RoleKind::Candidate => self.poll_election(),
                RoleKind::Leader => self.poll_leader(),
                RoleKind::Follower => self.poll_follower(),
                RoleKind::Resigned => self.poll_resigned(),
            }
            if before == (self.role.kind(), self.epoch) {
                break;
            }
        }
        self.maybe_complete_shutdown();
    }

    fn poll_unattached(&mut self) {
        let Role::Unattached { election_deadline } = &self.role else {
            return;
        };
        if election_deadline.is_some_and(|d| d <= self.now) && self.shutdown_deadline.is_none() {
            self.become_prospective();
            return;
        }
        self.discover_leader();
    }

    fn poll_election(&mut self) {
        let (deadline, pre_vote) = match &self.role {
            Role::Prospective {
                election_deadline, ..
            } => (*election_deadline, true),
            Role::Candidate {
                election_deadline, ..
            } => (*election_deadline, false),
            _ => return,
        };
        if deadline <= self.now {
            if pre_vote {
                self.prospective_lost();
            } else {
                self.become_prospective();
            }
            return;
        }
        self.send_votes();
    }

    /// A pre-vote that failed: back to following the known leader (with a whole fresh fetch
    /// timeout, as Kafka's transition to Follower gives, even when that leader is resigning),
    /// or to Unattached.
    pub(super) fn prospective_lost(&mut self) {
        match self.leader_id {
            Some(leader) if Some(leader) != self.config.local_id => {
                self.become_follower(self.epoch, leader);
            }
            _ => self.become_unattached_same_epoch(),
        }
    }

    fn poll_leader(&mut self) {
        let Role::Leader(l) = &self.role else { return };
        if (self.has_other_voters() && l.check_quorum_deadline <= self.now)
            || (self.shutdown_deadline.is_some() && self.drained())
        {
            self.resign();
            return;
        }
        self.poll_voter_change();
        if !matches!(self.role, Role::Leader(_)) {
            return;
        }
        self.send_begin_quorum_epoch();
        self.expire_parked_fetches();
        let now = self.now;
        if let Role::Leader(l) = &mut self.role {
            l.expire_observers(now);
        }
    }

    fn poll_follower(&mut self) {
        let Role::Follower { fetch_deadline, .. } = &self.role else {
            return;
        };
        if *fetch_deadline <= self.now {
            if self.may_campaign() && self.shutdown_deadline.is_none() {
                self.become_prospective();
            } else {
                self.become_unattached_same_epoch();
            }
            return;
        }
        self.send_fetch_to_leader();
        self.maybe_change_own_entry();
    }

    fn poll_resigned(&mut self) {
        let Role::Resigned {
            election_deadline, ..
        } = &self.role
        else {
            return;
        };
        if *election_deadline <= self.now && self.shutdown_deadline.is_none() {
            // A new epoch, so that nobody keeps treating this node as the leader; the timer it
            // inherits has run out, so it campaigns at once. At the highest epoch there is no
            // new one: it stays resigned and keeps telling the voters.
            match self.epoch.next() {
                Some(next) => self.become_unattached(next),
                None => {
                    let deadline = self.random_election_deadline();
                    if let Role::Resigned {
                        election_deadline, ..
                    } = &mut self.role
                    {
                        *election_deadline = deadline;
                    }
                }
            }
            return;
        }
        self.send_end_quorum_epoch();
    }
}
