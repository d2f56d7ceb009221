//! BeginQuorumEpoch and EndQuorumEpoch (docs/protocol.md §9): a new leader
//! announces itself to voters that are not fetching; a resigning leader tells the voters who
//! should succeed it, and each follower shortens its fetch timeout by its place in that list.

use std::time::Duration;

use super::message::{
    BeginQuorumEpochRequest, EndQuorumEpochRequest, EpochResponse, ErrorCode, Request,
};
use super::replica::Replica;
use super::role::Role;
use crate::types::{Epoch, NodeId};

impl Replica {
    fn epoch_response(&self, error: ErrorCode) -> EpochResponse {
        EpochResponse {
            error,
            leader_id: self.leader_id,
            leader_epoch: self.epoch,
        }
    }

    /// Follows `leader` if it leads a newer epoch, or this epoch while we know no leader.
    fn follow_announced_leader(&mut self, leader: NodeId, epoch: Epoch) {
        let unattached = matches!(
            self.role,
            Role::Unattached { .. } | Role::Prospective { .. } | Role::Candidate { .. }
        );
        if epoch > self.epoch || (epoch == self.epoch && (self.leader_id.is_none() || unattached)) {
            self.become_follower(epoch, leader);
        }
    }

    /// The checks Begin- and EndQuorumEpoch share: our cluster, not an older epoch, and a
    /// leader that is a real node other than us.
    fn check_announcement(
        &self,
        cluster_id: &str,
        leader_id: NodeId,
        epoch: Epoch,
    ) -> Option<ErrorCode> {
        if cluster_id != self.config.cluster_id {
            Some(ErrorCode::InconsistentClusterId)
        } else if epoch < self.epoch {
            Some(ErrorCode::FencedLeaderEpoch)
        } else if leader_id.0 < 0 || Some(leader_id) == self.config.local_id {
            Some(ErrorCode::InvalidRequest)
        } else if self.voter_set().is_none_or(|s| s.get(leader_id).is_none()) {
            // Only a voter can lead: following a non-voter would follow a leader that no
            // election made.
            Some(ErrorCode::InconsistentVoterSet)
        } else {
            None
        }
    }

    pub(super) fn handle_begin_quorum_epoch(
        &mut self,
        r: &BeginQuorumEpochRequest,
    ) -> EpochResponse {
        if let Some(error) = self.check_announcement(&r.cluster_id, r.leader_id, r.leader_epoch) {
            return self.epoch_response(error);
        }
        self.follow_announced_leader(r.leader_id, r.leader_epoch);
        if Some(r.voter_id) != self.config.local_id {
            return self.epoch_response(ErrorCode::InvalidVoterKey);
        }
        self.epoch_response(ErrorCode::None)
    }

    pub(super) fn handle_end_quorum_epoch(&mut self, r: &EndQuorumEpochRequest) -> EpochResponse {
        if let Some(error) = self.check_announcement(&r.cluster_id, r.leader_id, r.leader_epoch) {
            return self.epoch_response(error);
        }
        self.follow_announced_leader(r.leader_id, r.leader_epoch);
        let backoff = self.successor_backoff(&r.preferred_successors);
        let now = self.now;
        if self.leader_id == Some(r.leader_id)
            && let Role::Follower { fetch_deadline, .. } = &mut self.role
        {
            // The leader is leaving: let the most caught-up voter start the election first. Its
            // wait is zero, and it campaigns like any follower whose timer ran out, pre-vote
            // first. What this follower fetched from the leader still stands, so it keeps
            // refusing pre-votes until its own timer runs out.
            *fetch_deadline = (*fetch_deadline).min(now + backoff);
        }
        self.epoch_response(ErrorCode::None)
    }

    /// Kafka's "strict exponential" backoff by position p in a list of n successors: 0 for the
    /// first, max for anyone not listed, else min(max, (max >> (n - 1)) << (p - 1)). An empty
    /// list prefers nobody, so nobody waits.
    fn successor_backoff(&self, successors: &[NodeId]) -> Duration {
        let max = self.config.election_backoff_max;
        let position = self
            .config
            .local_id
            .and_then(|id| successors.iter().position(|s| *s == id));
        match position {
            _ if successors.is_empty() => Duration::ZERO,
            Some(0) => Duration::ZERO,
            Some(p) => {
                let n = successors.len() as u32;
                let ms = max.as_millis() as u64;
                let shifted = (ms >> (n - 1).min(63)) << (p as u32 - 1).min(63);
                Duration::from_millis(shifted.min(ms))
            }
            None => max,
        }
    }

    pub(super) fn handle_end_quorum_epoch_response(&mut self, from: NodeId, r: &EpochResponse) {
        if !self.handle_common(from, r.error, r.leader_id, r.leader_epoch) {
            return;
        }
        if let Role::Resigned { unacked, .. } = &mut self.role {
            unacked.remove(&from);
        }
    }

    /// Announces the leader to voters that have not fetched within half a fetch timeout.
    pub(super) fn send_begin_quorum_epoch(&mut self) {
        let half = self.config.fetch_timeout / 2;
        let now = self.now;
        let local = self.config.local_id;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if now < l.begin_quorum_deadline {
            return;
        }
        l.begin_quorum_deadline = now + half;
        let quiet: Vec<NodeId> = l
            .progress
            .iter()
            .filter(|(id, p)| {
                Some(**id) != local && p.last_fetch.is_none_or(|t| now.saturating_sub(t) >= half)
            })
            .map(|(id, _)| *id)
            .collect();
        let leader_id = local.expect("a leader has an id");
        for voter in quiet {
            if self.can_send_to(voter) {
                let request = BeginQuorumEpochRequest {
                    cluster_id: self.config.cluster_id.clone(),
                    voter_id: voter,
                    voter_directory_id: self.voter_directory_id(voter),
                    leader_id,
                    leader_epoch: self.epoch,
                };
                self.send(voter, Request::BeginQuorumEpoch(request));
            }
        }
    }

    /// Resigned: tell every voter that has not answered yet.
    pub(super) fn send_end_quorum_epoch(&mut self) {
        let Role::Resigned {
            unacked,
            successors,
            ..
        } = &self.role
        else {
            return;
        };
        let targets: Vec<NodeId> = unacked.iter().copied().collect();
        let successors = successors.clone();
        let leader_id = self.config.local_id.expect("a resigned leader has an id");
        for voter in targets {
            if self.can_send_to(voter) {
                let request = EndQuorumEpochRequest {
                    cluster_id: self.config.cluster_id.clone(),
                    leader_id,
                    leader_epoch: self.epoch,
                    preferred_successors: successors.clone(),
                };
                self.send(voter, Request::EndQuorumEpoch(request));
            }
        }
    }
}
