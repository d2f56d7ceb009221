//! Elections: answering Vote requests (pre-vote and standard, docs/protocol.md §7), sending
//! them while Prospective or Candidate, and counting the answers (§6).

use super::message::{ErrorCode, Request, VoteRequest, VoteResponse};
use super::replica::Replica;
use super::role::Role;
use crate::types::{Epoch, NodeId};

impl Replica {
    pub(super) fn handle_vote_request(&mut self, r: &VoteRequest) -> VoteResponse {
        let reject = |this: &Self, error| VoteResponse {
            error,
            leader_id: this.leader_id,
            leader_epoch: this.epoch,
            vote_granted: false,
        };
        if r.cluster_id != self.config.cluster_id {
            return reject(self, ErrorCode::InconsistentClusterId);
        }
        let epoch_ok = if r.pre_vote {
            r.last_offset_epoch <= r.candidate_epoch
        } else {
            r.last_offset_epoch < r.candidate_epoch
        };
        if !epoch_ok || r.last_offset.0 < 0 || r.last_offset_epoch.0 < 0 || r.candidate_id.0 < 0 {
            return reject(self, ErrorCode::InvalidRequest);
        }
        if r.candidate_epoch < self.epoch {
            return reject(self, ErrorCode::FencedLeaderEpoch);
        }
        let candidate = super::voter_set::ReplicaKey {
            id: r.candidate_id,
            directory_id: r.candidate_directory_id,
        };
        let known = self.is_voter_key(candidate)
            || (self.kraft_version() >= 1 && self.log.voters().ever_voter(candidate));
        if !known && !self.may_lack_the_set_naming(r) {
            // Only a voter may stand; the request moves no epoch (a forged one could otherwise
            // push every voter to the highest epoch). A former voter is answered: one that
            // missed its own removal and stood in a newer epoch learns of the leader only from
            // the quorum moving to that epoch (as Kafka, whose pre-vote keeps this rare).
            return reject(self, ErrorCode::InconsistentVoterSet);
        }
        if r.candidate_epoch > self.epoch {
            self.become_unattached(r.candidate_epoch);
        }
        let for_another_disk = r.voter_directory_id.is_some()
            && self.config.local_directory_id.is_some()
            && r.voter_directory_id != self.config.local_directory_id;
        if Some(r.voter_id) != self.config.local_id || for_another_disk {
            return reject(self, ErrorCode::InvalidVoterKey);
        }
        let granted = self.can_grant_vote(r);
        if granted && !r.pre_vote {
            self.voted_id = Some(r.candidate_id);
            self.persist();
            // The candidate has at least as good a chance as we do: give it time.
            let deadline = self.random_election_deadline();
            match &mut self.role {
                Role::Unattached {
                    election_deadline: Some(d),
                } => *d = deadline,
                Role::Prospective {
                    election_deadline, ..
                } => *election_deadline = deadline,
                _ => {}
            }
        }
        VoteResponse {
            error: ErrorCode::None,
            leader_id: self.leader_id,
            leader_epoch: self.epoch,
            vote_granted: granted,
        }
    }

    /// Whether a candidate this replica does not know as a voter may be one by a voter set it
    /// has not fetched yet: in a dynamic quorum, when the candidate's log is ahead of this one.
    /// (As Kafka's voters, a lagging voter must be able to elect a voter added after its log
    /// ends, or a quorum whose other voters hold the newer set could never elect anyone.)
    fn may_lack_the_set_naming(&self, r: &VoteRequest) -> bool {
        self.kraft_version() >= 1
            && (r.last_offset_epoch, r.last_offset)
                > (self.log.last_fetched_epoch(), self.log.log_end_offset())
    }

    /// The grant rules of docs/protocol.md §7 (its table), and a repaired replica's abstention
    /// (docs/durability.md §6).
    fn can_grant_vote(&self, r: &VoteRequest) -> bool {
        if self.held_back_by_repair() {
            // It lost records it had acknowledged: its log cannot vouch for a candidate's.
            return false;
        }
        let up_to_date = (r.last_offset_epoch, r.last_offset)
            >= (self.log.last_fetched_epoch(), self.log.log_end_offset());
        match &self.role {
            Role::Unattached { .. } | Role::Prospective { .. } if r.pre_vote => up_to_date,
            Role::Unattached { .. } | Role::Prospective { .. } => match self.voted_id {
                Some(voted) => voted == r.candidate_id,
                None => self.leader_id.is_none() && up_to_date,
            },
            Role::Follower { has_fetched, .. } => r.pre_vote && up_to_date && !has_fetched,
            // A resigned leader has stepped aside: an up-to-date voter may try to succeed it.
            Role::Candidate { .. } | Role::Resigned { .. } => r.pre_vote && up_to_date,
            Role::Leader(_) => false,
        }
    }

    pub(super) fn handle_vote_response(&mut self, from: NodeId, r: &VoteResponse) {
        if !self.handle_common(from, r.error, r.leader_id, r.leader_epoch)
            || r.leader_epoch != self.epoch
        {
            return;
        }
        match &mut self.role {
            Role::Prospective { election, .. } => {
                election.record(from, r.vote_granted);
                if election.is_won() {
                    self.become_candidate();
                } else if election.is_lost() {
                    self.prospective_lost();
                }
            }
            Role::Candidate { election, .. } => {
                election.record(from, r.vote_granted);
                if election.is_won() {
                    self.become_leader();
                }
                // A lost standard election waits out its timer, then tries a pre-vote again.
            }
            _ => {}
        }
    }

    /// Sends Vote to every voter that has not answered, while the election can still be won.
    pub(super) fn send_votes(&mut self) {
        let (pending, pre_vote, epoch): (Vec<NodeId>, bool, Epoch) = match &self.role {
            Role::Prospective { election, .. } if !election.is_lost() => {
                (election.unrecorded().collect(), true, self.epoch)
            }
            Role::Candidate { election, .. } if !election.is_lost() => {
                (election.unrecorded().collect(), false, self.epoch)
            }
            _ => return,
        };
        let local = self.config.local_id.expect("only voters campaign");
        for voter in pending {
            if !self.can_send_to(voter) {
                continue;
            }
            let request = VoteRequest {
                cluster_id: self.config.cluster_id.clone(),
                voter_id: voter,
                candidate_epoch: epoch,
                candidate_id: local,
                last_offset_epoch: self.log.last_fetched_epoch(),
                last_offset: self.log.log_end_offset(),
                pre_vote,
                candidate_directory_id: self.config.local_directory_id,
                voter_directory_id: self.voter_directory_id(voter),
            };
            self.send(voter, Request::Vote(request));
        }
    }

    /// Kafka's common response handling (docs/protocol.md §8). Returns whether the caller
    /// should go on to handle the response body.
    pub(super) fn handle_common(
        &mut self,
        from: NodeId,
        error: ErrorCode,
        leader_id: Option<NodeId>,
        epoch: Epoch,
    ) -> bool {
        if epoch < self.epoch || error == ErrorCode::UnknownLeaderEpoch {
            return false;
        }
        let local = self.config.local_id;
        let leader = leader_id.filter(|l| Some(*l) != local);
        if epoch > self.epoch {
            match leader {
                Some(l) => self.become_follower(epoch, l),
                None => self.become_unattached(epoch),
            }
            return false;
        }
        // Same epoch: follow a leader we did not know, or knew only by id while Unattached.
        let leads = matches!(self.role, Role::Leader(_) | Role::Resigned { .. });
        let unattached = matches!(self.role, Role::Unattached { .. });
        if let Some(l) = leader
            && !leads
            && (self.leader_id.is_none() || (unattached && self.leader_id == Some(l)))
        {
            self.become_follower(epoch, l);
            return error == ErrorCode::None;
        }
        if error != ErrorCode::None {
            self.backoff(from);
            return false;
        }
        true
    }
}
