//! The tally of one election (pre-vote or standard): who granted, who rejected, and whether the
//! outcome is decided. The local replica counts as granted from the start when it is one of
//! the voters (a leader removed by an uncommitted change may stand, but its vote does not count).

use std::collections::BTreeSet;

use crate::types::NodeId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Election {
    voters: BTreeSet<NodeId>,
    granted: BTreeSet<NodeId>,
    rejected: BTreeSet<NodeId>,
}

impl Election {
    pub fn new(voters: &BTreeSet<NodeId>, local: NodeId) -> Self {
        Election {
            voters: voters.clone(),
            granted: voters.iter().copied().filter(|v| *v == local).collect(),
            rejected: BTreeSet::new(),
        }
    }

    fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Records an answer; an answer already recorded is kept (a voter never flips).
    pub fn record(&mut self, voter: NodeId, granted: bool) {
        if !self.voters.contains(&voter)
            || self.granted.contains(&voter)
            || self.rejected.contains(&voter)
        {
            return;
        }
        if granted {
            self.granted.insert(voter);
        } else {
            self.rejected.insert(voter);
        }
    }

    pub fn is_won(&self) -> bool {
        self.granted.len() >= self.majority()
    }

    /// Lost once the voters still unanswered cannot make a majority with those who granted.
    pub fn is_lost(&self) -> bool {
        self.voters.len() - self.rejected.len() < self.majority()
    }

    /// Voters (other than those answered) still worth asking.
    pub fn unrecorded(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters
            .iter()
            .copied()
            .filter(|v| !self.granted.contains(v) && !self.rejected.contains(v))
    }

    pub fn granted(&self) -> &BTreeSet<NodeId> {
        &self.granted
    }
}
