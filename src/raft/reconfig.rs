//! The replica's voter set (KIP-853): who votes now, read from the log's history of voter
//! sets; the leader's AddRaftVoter and RemoveRaftVoter, one change at a time; and the endpoints
//! of the replicas this replica may send to.
//!
//! Owns every rule about voter changes: the preconditions Kafka's leader checks, in its order,
//! the Voters record appended for a change (in force from the moment it is appended, reverted
//! if truncated), its answer once committed, and a removed leader's resignation after that. It
//! must never do IO: the records come and go through the log view and the replica's actions.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::io::{Action, InboundId, VoterChangeError, VoterChangeId};
use super::leader::{ChangeAsker, PendingVoterChange};
use super::message::{Response, VoterChange, VoterChangeRequest, VoterChangeResponse};
use super::replica::Replica;
use super::role::Role;
use super::voter_set::{ListenerAddress, MAX_VOTERS, ReplicaKey, Voter, VoterSet};
use super::voter_set_history::MAX_KRAFT_VERSION;
use super::voter_set_history::VoterSetHistory;
use crate::record::{BatchBuilder, BatchKind, ControlRecord, RecordBatch};
use crate::types::{NodeId, Offset};
use crate::uuid::Uuid;

/// How long an observer's last catch-up counts for AddRaftVoter (Kafka's leader asks that the
/// new voter caught up within the last hour).
pub const CAUGHT_UP_WINDOW: Duration = Duration::from_secs(3600);

/// How long a replica waits before asking the leader again to change its own voter entry
/// after an answer (Kafka's observers retry auto-join on a timer too).
pub const OWN_CHANGE_BACKOFF: Duration = Duration::from_secs(1);

/// The control records of a control batch, each with its offset.
pub fn control_records(batch: &RecordBatch) -> Result<Vec<(Offset, ControlRecord)>, String> {
    let base = batch.base_offset();
    let mut out = Vec::new();
    for record in batch.records() {
        let record = record.map_err(|e| format!("control batch at {base}: {e}"))?;
        let (key, value) = (
            record.key.unwrap_or_default(),
            record.value.unwrap_or_default(),
        );
        let control = ControlRecord::decode(&key, &value)
            .map_err(|e| format!("control record at {base}: {e}"))?;
        out.push((Offset(base.0 + i64::from(record.offset_delta)), control));
    }
    Ok(out)
}

impl Replica {
    // ---- who votes ----------------------------------------------------------------------------

    /// The voter set in force at the log end (the last one appended, committed or not; the
    /// static voters of a kraft.version 0 quorum). `None` while a joining replica has not yet
    /// learned any.
    pub fn voter_set(&self) -> Option<&VoterSet> {
        self.log.voters().latest()
    }

    /// The kraft.version in force at the log end: 1 when voters live in the log.
    pub fn kraft_version(&self) -> i16 {
        self.log.voters().kraft_version()
    }

    /// Whether the last voter change is not yet committed.
    pub fn has_uncommitted_voter_change(&self) -> bool {
        self.log
            .voters()
            .has_uncommitted_change(self.high_watermark.unwrap_or(Offset(0)))
    }

    /// The control records a snapshot ending at `end_offset` must hold after its header: the
    /// kraft.version and voter set in force at its last record. None for kraft.version 0, whose
    /// snapshots carry no voters.
    pub fn snapshot_control_records(&self, end_offset: Offset) -> Vec<ControlRecord> {
        let last = Offset(end_offset.0 - 1);
        if self.log.voters().kraft_version_at(last) == 0 {
            return Vec::new();
        }
        self.log.voters().snapshot_records(last)
    }

    pub(super) fn local_key(&self) -> Option<ReplicaKey> {
        self.config.local_id.map(|id| ReplicaKey {
            id,
            directory_id: self.config.local_directory_id,
        })
    }

    /// Whether this replica is a voter of the set in force: its id and directory id.
    pub fn is_voter(&self) -> bool {
        self.local_key().is_some_and(|k| self.is_voter_key(k))
    }

    /// Whether this replica may stand for election: a voter of the set in force, or, while
    /// the last change is not known to be committed, of the set before it (which is, as only
    /// one change may be pending). A leader whose own removal is appended but not committed, and that
    /// then lost its leadership, may hold the only copy of the removal: were it barred from
    /// standing, the remaining voters (which still count it) could never elect anyone. It
    /// stands on the set in force, where its own vote does not count.
    pub(super) fn may_campaign(&self) -> bool {
        let history = self.log.voters();
        let pending = self.has_uncommitted_voter_change() || self.high_watermark.is_none();
        let in_set = |set: Option<&VoterSet>| {
            self.local_key()
                .is_some_and(|k| set.is_some_and(|s| s.is_voter(k)))
        };
        self.is_voter() || (pending && in_set(history.before_latest()))
    }

    pub(super) fn is_voter_key(&self, key: ReplicaKey) -> bool {
        self.voter_set().is_some_and(|s| s.is_voter(key))
    }

    pub(super) fn voter_ids(&self) -> BTreeSet<NodeId> {
        self.voter_set()
            .map(|s| s.ids().collect())
            .unwrap_or_default()
    }

    /// Whether some other replica votes too: alone, a voter needs nobody's fetches or votes.
    pub(super) fn has_other_voters(&self) -> bool {
        self.voter_set().is_some_and(|s| s.len() > 1)
    }

    /// Votes a majority needs (the leader's own included when it is a voter).
    pub(super) fn majority(&self) -> usize {
        self.voter_set().map_or(1, |s| s.majority())
    }

    pub(super) fn voter_directory_id(&self, id: NodeId) -> Option<Uuid> {
        self.voter_set()
            .and_then(|s| s.get(id))
            .and_then(|v| v.key.directory_id)
    }

    /// A voter's endpoint on the quorum listener.
    fn endpoint_of(&self, voter: &Voter) -> Option<ListenerAddress> {
        voter
            .endpoint(self.config.listener_name.as_deref())
            .cloned()
    }

    /// Where the leader listens, for fetch answers: from the voter set, else as learned.
    pub(super) fn leader_endpoint(&self) -> Option<ListenerAddress> {
        let leader = self.leader_id?;
        self.voter_set()
            .and_then(|s| s.get(leader))
            .and_then(|v| self.endpoint_of(v))
            .or_else(|| {
                self.learned_leader_endpoint
                    .as_ref()
                    .filter(|(id, _)| *id == leader)
                    .map(|(_, a)| a.clone())
            })
    }

    /// A fetch answer named where `leader` listens: remembered, so that a replica that found
    /// the leader through a bootstrap server can reach it.
    pub(super) fn learn_leader_endpoint(&mut self, leader: NodeId, at: ListenerAddress) {
        if self.learned_leader_endpoint.as_ref() != Some(&(leader, at.clone())) {
            self.learned_leader_endpoint = Some((leader, at));
            self.announce_endpoints();
        }
    }

    /// Emits `Action::Endpoints` if the replicas this one may send to, or where, changed.
    pub(super) fn announce_endpoints(&mut self) {
        let mut endpoints: BTreeMap<NodeId, ListenerAddress> = BTreeMap::new();
        if let Some((id, at)) = &self.learned_leader_endpoint {
            endpoints.insert(*id, at.clone());
        }
        if let Some(set) = self.voter_set() {
            for voter in set.voters() {
                if let Some(at) = self.endpoint_of(voter) {
                    endpoints.insert(voter.key.id, at);
                }
            }
        }
        if let Some(local) = self.config.local_id {
            endpoints.remove(&local);
        }
        // An empty map is announced too (after the first): the driver hangs up on the peers
        // it dialled for earlier announcements.
        let first = self.announced_endpoints.is_none();
        if self.announced_endpoints.as_ref() != Some(&endpoints) {
            self.announced_endpoints = Some(endpoints.clone());
            if !(first && endpoints.is_empty()) {
                self.out.push(Action::Endpoints(endpoints));
            }
        }
    }

    // ---- following the log's voter sets ------------------------------------------------------

    /// Checks that a control batch's KRaftVersion and Voters records can join the history
    /// (without changing it): a leader's records that break the one-change rule are refused.
    pub(super) fn check_control_batch(&self, batch: &RecordBatch) -> Result<(), String> {
        let mut trial: VoterSetHistory = self.log.voters().clone();
        for (offset, record) in self.uncovered_control_records(batch)? {
            trial.apply(offset, &record).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Adds an appended control batch's KRaftVersion and Voters records to the history.
    pub(super) fn apply_control_batch(&mut self, batch: &RecordBatch) {
        let Ok(records) = self.uncovered_control_records(batch) else {
            return;
        };
        for (offset, record) in records {
            if let Err(e) = self.log.voters_mut().apply(offset, &record) {
                // Checked before appending (the leader's own records are built valid).
                self.out.push(Action::Fatal(format!(
                    "a control record appended at {offset} breaks the voter history: {e}"
                )));
            }
        }
        self.voters_may_have_changed();
    }

    /// A control batch's records that the newest snapshot does not already cover. A log can end
    /// below its newest snapshot (a follower snapshots what it knows committed, and a power
    /// loss can take the unflushed log under it); fetching those records again must not apply
    /// them twice, the snapshot's voter set standing for them.
    fn uncovered_control_records(
        &self,
        batch: &RecordBatch,
    ) -> Result<Vec<(Offset, ControlRecord)>, String> {
        let covered = self.log.latest_snapshot().map_or(Offset(0), |s| s.offset);
        let mut records = control_records(batch)?;
        records.retain(|(offset, _)| *offset >= covered);
        Ok(records)
    }

    /// Called after anything that can change the voter set in force (an append, a truncation,
    /// an installed snapshot): the leader re-counts its voters, endpoints are announced, and a
    /// replica that stopped or started being a voter stops or may start campaigning.
    pub(super) fn voters_may_have_changed(&mut self) {
        let current = self.voter_set().cloned();
        if self.last_voter_set == current {
            return;
        }
        self.last_voter_set = current;
        let ids = self.voter_ids();
        if let Role::Leader(l) = &mut self.role {
            l.set_voters(&ids);
        }
        let voter = self.may_campaign();
        match &self.role {
            Role::Prospective { .. } | Role::Candidate { .. } if !voter => {
                self.become_unattached_same_epoch();
            }
            Role::Unattached {
                election_deadline: None,
            } if voter => {
                let deadline = self.random_election_deadline();
                self.role = Role::Unattached {
                    election_deadline: Some(deadline),
                };
            }
            Role::Unattached {
                election_deadline: Some(_),
            } if !voter => {
                self.role = Role::Unattached {
                    election_deadline: None,
                };
            }
            _ => {}
        }
        self.announce_endpoints();
        self.maybe_advance_high_watermark();
    }

    /// The first leader of a dynamic quorum copies the bootstrap checkpoint's voters (at offset
    /// -1, in no log) into its LeaderChange batch, so that they are replicated like any change.
    pub(super) fn bootstrap_records_to_copy(&self) -> Vec<ControlRecord> {
        let history = self.log.voters();
        match history.latest_entry() {
            Some((offset, _)) if offset.0 < 0 && history.kraft_version() > 0 => {
                history.snapshot_records(offset)
            }
            _ => Vec::new(),
        }
    }

    // ---- AddRaftVoter / RemoveRaftVoter on the leader ----------------------------------------

    pub(super) fn add_voter(&mut self, id: VoterChangeId, voter: Voter, timeout: Duration) {
        let checked = self.check_add(&voter);
        self.start_voter_change(ChangeAsker::Operator(id), checked, timeout);
    }

    pub(super) fn remove_voter(&mut self, id: VoterChangeId, voter: ReplicaKey, timeout: Duration) {
        let checked = self.check_remove(voter);
        self.start_voter_change(ChangeAsker::Operator(id), checked, timeout);
    }

    fn start_voter_change(
        &mut self,
        asker: ChangeAsker,
        checked: Result<VoterSet, VoterChangeError>,
        timeout: Duration,
    ) {
        match checked {
            Ok(set) => self.append_voter_set(asker, set, timeout),
            Err(e) => self.answer_voter_change(asker, Err(e)),
        }
    }

    /// Gives a voter change its one answer.
    pub(super) fn answer_voter_change(
        &mut self,
        asker: ChangeAsker,
        result: Result<(), VoterChangeError>,
    ) {
        match asker {
            ChangeAsker::Operator(id) => self.out.push(Action::VoterChanged { id, result }),
            ChangeAsker::Peer(to) => {
                let response = Response::VoterChange(VoterChangeResponse {
                    result,
                    leader_id: self.leader_id,
                    leader_epoch: self.epoch,
                });
                self.reply(to, response);
            }
        }
    }

    /// A replica's change of its own entry: added and removed as an operator's are (answered
    /// once committed, within the request timeout); an update is appended and answered at
    /// once, as Kafka's leader does.
    pub(super) fn handle_voter_change_request(&mut self, from: InboundId, r: VoterChangeRequest) {
        let asker = ChangeAsker::Peer(from);
        if r.cluster_id != self.config.cluster_id {
            return self.answer_voter_change(asker, Err(VoterChangeError::InconsistentClusterId));
        }
        let timeout = self.config.request_timeout;
        match r.change {
            VoterChange::Add(voter) => {
                let checked = self.check_add(&voter);
                self.start_voter_change(asker, checked, timeout);
            }
            VoterChange::Remove(key) => {
                let checked = self.check_remove(key);
                self.start_voter_change(asker, checked, timeout);
            }
            VoterChange::Update(voter) => self.update_voter(asker, voter),
        }
    }

    /// A voter's new endpoints: appended (unless nothing changed) and answered at once.
    pub(super) fn update_voter(&mut self, asker: ChangeAsker, voter: Voter) {
        let result = self.check_update(&voter).map(|set| {
            if self.voter_set() != Some(&set) {
                self.append_voters_record(&set);
            }
        });
        self.answer_voter_change(asker, result);
    }

    fn check_update(&self, voter: &Voter) -> Result<VoterSet, VoterChangeError> {
        self.check_new_entry(voter)?;
        let set = self.check_change_allowed()?;
        // As Kafka's leader: a voter must support the kraft.version in force.
        let (min, max) = voter.kraft_versions;
        if !(min..=max).contains(&self.kraft_version()) {
            return Err(VoterChangeError::InvalidRequest(format!(
                "voter {} supports kraft.version {min} to {max}, not {}",
                voter.key,
                self.kraft_version()
            )));
        }
        set.update(voter.clone())
            .ok_or(VoterChangeError::VoterNotFound(voter.key))
    }

    /// The leader's answer to this replica's change of its own entry: wait before the next.
    pub(super) fn handle_voter_change_response(&mut self, from: NodeId, r: VoterChangeResponse) {
        let error = match &r.result {
            Ok(()) => super::message::ErrorCode::None,
            Err(VoterChangeError::NotLeader { .. }) | Err(VoterChangeError::LeadershipLost) => {
                super::message::ErrorCode::NotLeaderOrFollower
            }
            Err(_) => super::message::ErrorCode::None,
        };
        if !self.handle_common(from, error, r.leader_id, r.leader_epoch) {
            return;
        }
        self.next_own_change_at = self.now + OWN_CHANGE_BACKOFF;
        if r.result.is_ok() && self.is_voter() {
            self.endpoints_updated_in = Some(self.epoch);
        }
    }

    /// This replica as a voter entry: its key, its endpoints, the versions it supports.
    fn own_entry(&self) -> Option<Voter> {
        let key = self.local_key().filter(|k| k.directory_id.is_some())?;
        Some(Voter {
            key,
            endpoints: self.config.local_endpoints.clone(),
            kraft_versions: (0, MAX_KRAFT_VERSION),
        })
    }

    /// A follower of a dynamic quorum asks its leader to change its own entry: an observer
    /// with auto-join adds itself once caught up (first removing an entry of its id with
    /// another directory id, a replaced disk's); a voter whose stored endpoints differ from
    /// its own updates them, once per leader.
    pub(super) fn maybe_change_own_entry(&mut self) {
        let Some(leader) = self.leader_id else { return };
        let ready = matches!(
            self.role,
            Role::Follower {
                has_fetched: true,
                ..
            }
        ) && self.kraft_version() >= 1
            && self.now >= self.next_own_change_at
            && self.shutdown_deadline.is_none()
            && self.can_send_to(leader);
        if !ready {
            return;
        }
        let (Some(me), Some(set)) = (self.own_entry(), self.voter_set()) else {
            return;
        };
        let change = match set.get(me.key.id) {
            Some(stored) if stored.key == me.key => {
                let stale = !me.endpoints.is_empty() && stored.endpoints != me.endpoints;
                (stale && self.endpoints_updated_in != Some(self.epoch))
                    .then_some(VoterChange::Update(me))
            }
            Some(stored) if self.config.auto_join => Some(VoterChange::Remove(stored.key)),
            None if self.config.auto_join && self.caught_up() && !me.endpoints.is_empty() => {
                Some(VoterChange::Add(me))
            }
            _ => None,
        };
        if let Some(change) = change {
            self.next_own_change_at = self.now + self.config.request_timeout;
            let request = VoterChangeRequest {
                cluster_id: self.config.cluster_id.clone(),
                change,
            };
            self.send(leader, super::message::Request::VoterChange(request));
        }
    }

    /// Whether this follower holds everything the leader has committed (as far as it knows).
    fn caught_up(&self) -> bool {
        self.high_watermark
            .is_some_and(|hw| self.log.log_end_offset() >= hw)
    }

    /// Kafka's preconditions common to every change, in its order.
    fn check_change_allowed(&self) -> Result<&VoterSet, VoterChangeError> {
        let Role::Leader(l) = &self.role else {
            return Err(VoterChangeError::NotLeader {
                leader_id: self.leader_id,
                epoch: self.epoch,
            });
        };
        if self.shutdown_deadline.is_some() {
            return Err(VoterChangeError::ShuttingDown);
        }
        if l.voter_change.is_some() {
            return Err(VoterChangeError::ChangeInProgress);
        }
        let Some(hw) = self.high_watermark else {
            return Err(VoterChangeError::EpochNotCommitted);
        };
        if self.kraft_version() < 1 {
            return Err(VoterChangeError::StaticQuorum);
        }
        if self.log.voters().has_uncommitted_change(hw) {
            return Err(VoterChangeError::UncommittedChange);
        }
        self.voter_set().ok_or(VoterChangeError::StaticQuorum)
    }

    /// A voter entry must name its node id, directory id and quorum listener.
    fn check_new_entry(&self, voter: &Voter) -> Result<(), VoterChangeError> {
        if voter.key.id.0 < 0 || voter.key.directory_id.is_none() {
            return Err(VoterChangeError::InvalidRequest(
                "a voter needs a node id and a directory id".to_string(),
            ));
        }
        if let Some(name) = &self.config.listener_name
            && !voter.endpoints.contains_key(name)
        {
            return Err(VoterChangeError::InvalidRequest(format!(
                "the voter lists no endpoint on the quorum listener {name}"
            )));
        }
        Ok(())
    }

    fn check_add(&self, voter: &Voter) -> Result<VoterSet, VoterChangeError> {
        self.check_new_entry(voter)?;
        let set = self.check_change_allowed()?;
        if set.get(voter.key.id).is_some() {
            return Err(VoterChangeError::DuplicateVoter(voter.key.id));
        }
        if set.len() >= MAX_VOTERS {
            return Err(VoterChangeError::InvalidRequest(format!(
                "the voter set already has {MAX_VOTERS} voters, the most allowed"
            )));
        }
        if !self.caught_up_observer(voter.key) {
            return Err(VoterChangeError::NotCaughtUp(voter.key));
        }
        set.add(voter.clone())
            .ok_or(VoterChangeError::DuplicateVoter(voter.key.id))
    }

    /// Whether `key` fetches from this leader as an observer with that directory id and caught
    /// up with its log end within the last hour.
    fn caught_up_observer(&self, key: ReplicaKey) -> bool {
        let Role::Leader(l) = &self.role else {
            return false;
        };
        l.observers.get(&key.id).is_some_and(|p| {
            p.directory_id == key.directory_id
                && p.last_caught_up
                    .is_some_and(|t| self.now.saturating_sub(t) < CAUGHT_UP_WINDOW)
        })
    }

    fn check_remove(&self, key: ReplicaKey) -> Result<VoterSet, VoterChangeError> {
        if key.id.0 < 0 || key.directory_id.is_none() {
            return Err(VoterChangeError::InvalidRequest(
                "a voter to remove is named by its node id and directory id".to_string(),
            ));
        }
        let set = self.check_change_allowed()?;
        set.remove(key).ok_or(VoterChangeError::VoterNotFound(key))
    }

    /// Appends the Voters record of `set`: in force from now on; answered once committed.
    fn append_voter_set(&mut self, asker: ChangeAsker, set: VoterSet, timeout: Duration) {
        let offset = self.append_voters_record(&set);
        let deadline = self.now + timeout;
        if let Role::Leader(l) = &mut self.role {
            l.voter_change = Some(PendingVoterChange {
                asker,
                offset,
                deadline,
            });
        }
    }

    /// Appends a Voters record of `set` at the log end, returning its offset.
    fn append_voters_record(&mut self, set: &VoterSet) -> Offset {
        let offset = self.log.log_end_offset();
        let mut batch = BatchBuilder::new(BatchKind::Control, offset, self.epoch);
        batch
            .append_control(self.timestamp_ms(), &ControlRecord::Voters(set.to_record()))
            .expect("a Voters record of a valid set fits a batch");
        self.append_as_leader(batch.build().expect("one record"));
        offset
    }

    /// Answers the pending change once its record is committed, or once its time is up; a
    /// leader whose committed set no longer holds it resigns.
    pub(super) fn poll_voter_change(&mut self) {
        let (hw, now) = (self.high_watermark, self.now);
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if let Some(change) = l.voter_change {
            let result = if hw.is_some_and(|hw| hw > change.offset) {
                Some(Ok(()))
            } else if change.deadline <= now {
                Some(Err(VoterChangeError::TimedOut))
            } else {
                None
            };
            if let Some(result) = result {
                l.voter_change = None;
                self.answer_voter_change(change.asker, result);
            }
        }
        if !self.is_voter() && !self.has_uncommitted_voter_change() {
            self.resign();
        }
    }

    /// The pending change's deadline, for `next_deadline`.
    pub(super) fn voter_change_deadline(&self) -> Option<Duration> {
        match &self.role {
            Role::Leader(l) => l.voter_change.map(|c| c.deadline),
            _ => None,
        }
    }
}
