//! The replica's current state (docs/protocol.md §3) and the data each state carries. The
//! epoch, the known leader and the vote live on the replica itself, because they outlive a
//! state change within an epoch.

use std::collections::BTreeSet;
use std::time::Duration;

use super::election::Election;
use super::leader::LeaderState;
use crate::types::NodeId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Knows the epoch but follows no leader. Voters run an election timer; observers do not.
    Unattached {
        election_deadline: Option<Duration>,
    },
    /// Running a pre-vote at the current epoch (KIP-996); memory only.
    Prospective {
        election: Election,
        election_deadline: Duration,
    },
    /// Running a standard election at a new epoch, having voted for itself.
    Candidate {
        election: Election,
        election_deadline: Duration,
    },
    Leader(Box<LeaderState>),
    /// Fetching from the leader of the epoch.
    Follower {
        fetch_deadline: Duration,
        has_fetched: bool,
    },
    /// A former leader that fenced itself; tells the voters (EndQuorumEpoch) until they answer.
    Resigned {
        election_deadline: Duration,
        unacked: BTreeSet<NodeId>,
        successors: Vec<NodeId>,
    },
}

/// The state's name, for tests, logs and `describe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleKind {
    Unattached,
    Prospective,
    Candidate,
    Leader,
    Follower,
    Resigned,
}

impl Role {
    pub fn kind(&self) -> RoleKind {
        match self {
            Role::Unattached { .. } => RoleKind::Unattached,
            Role::Prospective { .. } => RoleKind::Prospective,
            Role::Candidate { .. } => RoleKind::Candidate,
            Role::Leader(_) => RoleKind::Leader,
            Role::Follower { .. } => RoleKind::Follower,
            Role::Resigned { .. } => RoleKind::Resigned,
        }
    }
}
