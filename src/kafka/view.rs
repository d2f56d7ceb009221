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

/// Where clients reach the voters: for a dynamic quorum (a voter set with endpoints) each voter
/// of the set in force at its endpoint on the quorum `listener` (its first endpoint when no
/// listener is named), so a voter added at run time is listed and a removed one is not; for a
/// static quorum the `configured` addresses.
pub fn voter_endpoints(
    configured: &[Endpoint],
    voter_set: &[crate::raft::Voter],
    listener: Option<&str>,
) -> Vec<Endpoint> {
    if voter_set.iter().all(|v| v.endpoints.is_empty()) {
        return configured.to_vec();
    }
    voter_set
        .iter()
        .filter_map(|v| {
            let at = v.endpoint(listener);
            match at {
                Some(a) => Some(Endpoint {
                    node_id: v.key.id,
                    host: a.host.clone(),
                    port: a.port,
                }),
                None => configured.iter().find(|e| e.node_id == v.key.id).cloned(),
            }
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::raft::{ListenerAddress, ReplicaKey, Voter};

    fn voter(id: i32, listeners: &[(&str, u16)]) -> Voter {
        Voter {
            key: ReplicaKey::new(NodeId(id), crate::uuid::Uuid([id as u8; 16])),
            endpoints: listeners
                .iter()
                .map(|&(name, port)| {
                    let host = format!("h{id}");
                    (name.to_string(), ListenerAddress { host, port })
                })
                .collect::<BTreeMap<_, _>>(),
            kraft_versions: (0, 1),
        }
    }

    #[test]
    fn a_dynamic_voter_set_names_where_the_voters_are() {
        let configured: Vec<Endpoint> = [(1, "c1:1"), (2, "c2:2")]
            .iter()
            .filter_map(|&(id, at)| Endpoint::parse(NodeId(id), at))
            .collect();
        // Static voters (no endpoints): the configuration.
        let static_set = [voter(1, &[]), voter(2, &[])];
        assert_eq!(
            voter_endpoints(&configured, &static_set, Some("C")),
            configured
        );
        // Voter 2 removed, 3 added: the set in force, on the quorum listener; a voter lacking
        // it keeps its configured address.
        let dynamic = [
            voter(1, &[("OTHER", 7)]),
            voter(3, &[("C", 9), ("OTHER", 8)]),
        ];
        let ends: Vec<(i32, String, u16)> = voter_endpoints(&configured, &dynamic, Some("C"))
            .into_iter()
            .map(|e| (e.node_id.0, e.host, e.port))
            .collect();
        assert_eq!(ends, [(1, "c1".into(), 1), (3, "h3".into(), 9)]);
        let first = voter_endpoints(&configured, &dynamic, None);
        assert_eq!((first[0].port, first[1].port), (7, 9));
    }
}
