//! Newtypes for the KRaft vocabulary: node ids, epochs, offsets.
//!
//! Owns the integer widths that Kafka's wire and disk formats use (int32 ids and epochs, int64
//! offsets), so that an id can never be passed where an offset is expected. Must never grow
//! behaviour beyond construction, ordering and display.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A replica's id (`node.id`). Kafka ids are int32; real nodes are >= 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub i32);

/// A leader epoch (Raft's "term").
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Epoch(pub i32);

/// A position in the replicated log.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Offset(pub i64);

/// An offset together with the epoch of the record before it, as used by divergence checks and
/// snapshot ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OffsetAndEpoch {
    pub offset: Offset,
    pub epoch: Epoch,
}

impl Epoch {
    /// The epoch after this one, unless this is the highest: an epoch is never wrapped.
    pub fn next(self) -> Option<Epoch> {
        self.0.checked_add(1).map(Epoch)
    }
}

impl Offset {
    /// The offset `n` positions after this one.
    pub fn plus(self, n: i64) -> Offset {
        Offset(self.0 + n)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
