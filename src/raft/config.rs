//! The replica's configuration: who it is, who votes, and the protocol timers.
//! Built by the node from `NodeConfig`; plain values, no IO.

use std::collections::{BTreeMap, BTreeSet};

use super::voter_set::ListenerAddress;
use std::time::Duration;

use crate::types::NodeId;
use crate::uuid::Uuid;

/// Longest a follower's Fetch waits at the leader for data (Kafka's `MAX_FETCH_WAIT_MS`).
pub const FETCH_MAX_WAIT: Duration = Duration::from_millis(500);
/// Most bytes asked for in one Fetch (Kafka's `MAX_FETCH_SIZE_BYTES`, 8 MiB).
pub const FETCH_MAX_BYTES: u32 = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    pub cluster_id: String,
    /// `None` for a client without a node id: always an observer, never votes.
    pub local_id: Option<NodeId>,
    /// `controller.quorum.voters` (kraft.version 0); empty for a dynamic quorum, whose voters
    /// come from the log, its snapshots and the bootstrap checkpoint.
    pub voters: BTreeSet<NodeId>,
    /// This replica's directory id (`meta.properties`): with its id, its voter key.
    pub local_directory_id: Option<Uuid>,
    /// The quorum listener's name: the endpoint of a voter that peers dial, and the one an
    /// added voter must list.
    pub listener_name: Option<String>,
    /// `controller.quorum.bootstrap.servers`, as the ids the node gave them (-2, -3, …): asked
    /// for the leader while this replica knows no voter to ask.
    pub bootstrap_servers: Vec<NodeId>,
    /// Where this replica listens, by listener name (its voter entry's endpoints).
    pub local_endpoints: BTreeMap<String, ListenerAddress>,
    /// `controller.quorum.auto.join.enable`: an observer with an id adds itself as a voter
    /// once it has caught up with the leader.
    pub auto_join: bool,
    pub election_timeout: Duration,
    pub fetch_timeout: Duration,
    pub election_backoff_max: Duration,
    pub request_timeout: Duration,
    pub retry_backoff: Duration,
    pub fetch_max_wait: Duration,
    pub fetch_max_bytes: u32,
    /// `controller.quorum.append.linger.ms` when set: a leader waits this long after an append
    /// before asking for a flush, to gather more appends into one fsync. Unset, a flush is asked
    /// for at once, and appends made while it runs share the next one.
    pub append_linger: Option<Duration>,
}

impl RaftConfig {
    /// Kafka's defaults for the given identity and voters.
    pub fn new(
        cluster_id: &str,
        local_id: Option<NodeId>,
        voters: impl IntoIterator<Item = NodeId>,
    ) -> Self {
        RaftConfig {
            cluster_id: cluster_id.to_string(),
            local_id,
            voters: voters.into_iter().collect(),
            local_directory_id: None,
            listener_name: None,
            bootstrap_servers: Vec::new(),
            local_endpoints: BTreeMap::new(),
            auto_join: false,
            election_timeout: Duration::from_millis(1000),
            fetch_timeout: Duration::from_millis(2000),
            election_backoff_max: Duration::from_millis(1000),
            request_timeout: Duration::from_millis(2000),
            retry_backoff: Duration::from_millis(20),
            fetch_max_wait: FETCH_MAX_WAIT,
            fetch_max_bytes: FETCH_MAX_BYTES,
            append_linger: None,
        }
    }

    /// Whether this replica is in the voter set.
    pub fn is_voter(&self) -> bool {
        self.local_id.is_some_and(|id| self.voters.contains(&id))
    }

    /// Votes needed to win: a strict majority of the voters.
    pub fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }
}
