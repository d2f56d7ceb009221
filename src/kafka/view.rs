//! What a Kafka answer needs to know about the quorum at one moment: the static cluster facts
//! (cluster id, nodes and their listener endpoints) and the replica's current state. Built by
//! the connection actor from the driver's status; never changed by an answer.

use std::collections::BTreeMap;

use crate::types::{Epoch, NodeId, Offset};

/// A node Kafka clients can reach: its id and listener address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub node_id: NodeId,
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses `host:port` (IPv6 hosts in brackets).
    pub fn parse(node_id: NodeId, address: &str) -> Option<Endpoint> {
        let (host, port) = address.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Some(Endpoint {
            node_id,
            host: host.to_owned(),
            port: port.parse().ok()?,
        })
    }
}

/// The quorum as one node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumView {
    pub cluster_id: String,
    pub local_id: Option<NodeId>,
    /// Every voter's endpoint, by id.
    pub endpoints: Vec<Endpoint>,
    /// The quorum listener's name, which DescribeQuorum reports with each voter's endpoint.
    pub listener_name: Option<String>,
    pub leader_id: Option<NodeId>,
    pub epoch: Epoch,
    /// Whether this node is the leader (and not resigning).
    pub is_leader: bool,
    pub high_watermark: Option<Offset>,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
    /// On the leader: each voter's log end offset as its last fetch told.
    pub voter_progress: BTreeMap<NodeId, Option<Offset>>,
    /// Each node's `broker.rack`, where known.
    pub racks: BTreeMap<NodeId, String>,
    /// Each node's metadata log directory id, where known.
    pub directory_ids: BTreeMap<NodeId, uuid::Uuid>,
    /// On the leader: each voter's last fetch and last caught-up times, in ms.
    pub voter_times: BTreeMap<NodeId, (Option<i64>, Option<i64>)>,
    /// On the leader: each observer that fetched with an id lately.
    pub observers: BTreeMap<NodeId, ReplicaReport>,
    /// The voter set in force (dynamic quorums: with directory ids and endpoints); empty when
    /// unknown.
    pub voter_set: Vec<crate::raft::Voter>,
    /// The node's clock, in ms since the Unix epoch.
    pub now_ms: i64,
}

/// What a leader reports of a replica that fetches from it, as DescribeQuorum carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplicaReport {
    /// The log end offset its last fetch told.
    pub log_end_offset: Option<Offset>,
    /// When it last fetched, in ms since the Unix epoch.
    pub last_fetch_ms: Option<i64>,
    /// When it was last known to hold everything the leader had, in ms since the Unix epoch.
    pub last_caught_up_ms: Option<i64>,
}

impl QuorumView {
    pub fn endpoint(&self, id: NodeId) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.node_id == id)
    }

    /// The leader, if known and reachable by clients.
    pub fn leader_endpoint(&self) -> Option<&Endpoint> {
        self.leader_id.and_then(|id| self.endpoint(id))
    }

    pub fn voter_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.endpoints.iter().map(|e| e.node_id)
    }

    /// What consumers may read up to: the high watermark, or nothing while it is unknown.
    pub fn committed_end(&self) -> Offset {
        self.high_watermark
            .unwrap_or(self.log_start_offset)
            .max(self.log_start_offset)
    }
}
