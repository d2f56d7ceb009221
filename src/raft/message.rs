//! The KRaft RPCs as plain data: Vote (with pre-vote), BeginQuorumEpoch, EndQuorumEpoch and Fetch,
//! with the fields of Kafka's messages that a single-partition, static-voter quorum uses
//! (docs/protocol.md §2). Protocol rejections are error codes inside responses, never `Err`.
//!
//! Owns no behaviour: the replica decides, the transport carries these values.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::io::VoterChangeError;
use super::voter_set::{ListenerAddress, ReplicaKey, Voter};
use crate::types::{Epoch, NodeId, Offset, OffsetAndEpoch};
use crate::uuid::Uuid;

/// Kafka's error codes, as far as KRaft uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    None,
    NotLeaderOrFollower,
    BrokerNotAvailable,
    InvalidRequest,
    FencedLeaderEpoch,
    UnknownLeaderEpoch,
    InconsistentClusterId,
    InvalidVoterKey,
    SnapshotNotFound,
    PositionOutOfRange,
    /// A request between voters from, or naming as leader, a node that is not one.
    InconsistentVoterSet,
}

impl ErrorCode {
    /// Kafka's numeric code.
    pub fn code(self) -> i16 {
        match self {
            ErrorCode::None => 0,
            ErrorCode::NotLeaderOrFollower => 6,
            ErrorCode::BrokerNotAvailable => 8,
            ErrorCode::InvalidRequest => 42,
            ErrorCode::FencedLeaderEpoch => 74,
            ErrorCode::UnknownLeaderEpoch => 75,
            ErrorCode::InconsistentClusterId => 104,
            ErrorCode::InvalidVoterKey => 125,
            ErrorCode::SnapshotNotFound => 98,
            ErrorCode::PositionOutOfRange => 99,
            ErrorCode::InconsistentVoterSet => 94,
        }
    }
}

/// Vote (key 52): a candidate, or a prospective candidate with `pre_vote`, asks for a vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteRequest {
    pub cluster_id: String,
    /// The voter the request is meant for.
    pub voter_id: NodeId,
    pub candidate_epoch: Epoch,
    pub candidate_id: NodeId,
    pub last_offset_epoch: Epoch,
    pub last_offset: Offset,
    pub pre_vote: bool,
    /// The candidate's directory id: a voter of a dynamic quorum is its id and directory id.
    pub candidate_directory_id: Option<Uuid>,
    /// The directory id of the voter the request is meant for.
    pub voter_directory_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteResponse {
    pub error: ErrorCode,
    pub leader_id: Option<NodeId>,
    pub leader_epoch: Epoch,
    pub vote_granted: bool,
}

/// BeginQuorumEpoch (key 53): a new leader announces itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeginQuorumEpochRequest {
    pub cluster_id: String,
    pub voter_id: NodeId,
    /// The directory id of the voter the request is meant for.
    pub voter_directory_id: Option<Uuid>,
    pub leader_id: NodeId,
    pub leader_epoch: Epoch,
}

/// EndQuorumEpoch (key 54): a resigning leader names its preferred successors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndQuorumEpochRequest {
    pub cluster_id: String,
    pub leader_id: NodeId,
    pub leader_epoch: Epoch,
    /// Voters ordered by how far they had fetched, most caught up first.
    pub preferred_successors: Vec<NodeId>,
}

/// The response shared by BeginQuorumEpoch and EndQuorumEpoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochResponse {
    pub error: ErrorCode,
    pub leader_id: Option<NodeId>,
    pub leader_epoch: Epoch,
}

/// Fetch (key 1): a follower or observer asks the leader for records from `fetch_offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    pub cluster_id: String,
    /// `None` for a client without a node id (replica id -1): the leader keeps no state for it.
    pub replica_id: Option<NodeId>,
    /// The fetcher's directory id: a fetch with a voter's id and another directory id is an
    /// observer's (a replaced disk).
    pub replica_directory_id: Option<Uuid>,
    pub current_leader_epoch: Epoch,
    pub fetch_offset: Offset,
    pub last_fetched_epoch: Epoch,
    /// The fetcher's high watermark, if known (KIP-1166: a lagging one is answered at once).
    pub high_watermark: Option<Offset>,
    pub max_wait_ms: u32,
    pub max_bytes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchResponse {
    pub error: ErrorCode,
    pub leader_id: Option<NodeId>,
    pub leader_epoch: Epoch,
    pub high_watermark: Option<Offset>,
    pub log_start_offset: Offset,
    /// Set when the fetcher's log diverges: truncate to this (epoch, end offset) and refetch.
    pub diverging_epoch: Option<OffsetAndEpoch>,
    /// Set when the fetch offset is below the leader's log start: fetch this snapshot instead.
    pub snapshot_id: Option<OffsetAndEpoch>,
    /// Where the leader listens on the quorum listener, when the answering replica knows it
    /// (Kafka's NodeEndpoints): how a replica that found the leader through a bootstrap server
    /// reaches it.
    pub leader_endpoint: Option<ListenerAddress>,
    /// Raw record batches v2, possibly ending with a partial batch.
    pub records: Bytes,
}

/// FetchSnapshot (key 59): a follower whose fetch offset is below the leader's log start pulls
/// the leader's snapshot in chunks by byte position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchSnapshotRequest {
    pub cluster_id: String,
    pub replica_id: Option<NodeId>,
    pub current_leader_epoch: Epoch,
    pub snapshot_id: OffsetAndEpoch,
    pub position: u64,
    pub max_bytes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchSnapshotResponse {
    pub error: ErrorCode,
    pub leader_id: Option<NodeId>,
    pub leader_epoch: Epoch,
    pub snapshot_id: OffsetAndEpoch,
    /// The snapshot file's whole size in bytes.
    pub size: u64,
    /// Where `bytes` starts in the file.
    pub position: u64,
    pub bytes: Bytes,
}

/// A replica's change of its own voter entry, sent to the leader over the peer protocol
/// (Kafka's AddRaftVoter, RemoveRaftVoter and UpdateRaftVoter as a node sends them itself): an
/// observer joining (auto-join), removing its entry of a replaced disk, or a voter updating its
/// endpoints. Always about the sender itself, which the peer port checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VoterChange {
    Add(Voter),
    Remove(ReplicaKey),
    Update(Voter),
}

impl VoterChange {
    /// The replica the change is about.
    pub fn key(&self) -> ReplicaKey {
        match self {
            VoterChange::Add(v) | VoterChange::Update(v) => v.key,
            VoterChange::Remove(k) => *k,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterChangeRequest {
    pub cluster_id: String,
    pub change: VoterChange,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterChangeResponse {
    pub result: Result<(), VoterChangeError>,
    pub leader_id: Option<NodeId>,
    pub leader_epoch: Epoch,
}

/// A request from one replica to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Vote(VoteRequest),
    BeginQuorumEpoch(BeginQuorumEpochRequest),
    EndQuorumEpoch(EndQuorumEpochRequest),
    Fetch(FetchRequest),
    FetchSnapshot(FetchSnapshotRequest),
    VoterChange(VoterChangeRequest),
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Vote(VoteResponse),
    BeginQuorumEpoch(EpochResponse),
    EndQuorumEpoch(EpochResponse),
    Fetch(FetchResponse),
    FetchSnapshot(FetchSnapshotResponse),
    VoterChange(VoterChangeResponse),
}

impl Request {
    pub fn name(&self) -> &'static str {
        match self {
            Request::Vote(_) => "Vote",
            Request::BeginQuorumEpoch(_) => "BeginQuorumEpoch",
            Request::EndQuorumEpoch(_) => "EndQuorumEpoch",
            Request::Fetch(_) => "Fetch",
            Request::FetchSnapshot(_) => "FetchSnapshot",
            Request::VoterChange(r) => match r.change {
                VoterChange::Add(_) => "AddRaftVoter",
                VoterChange::Remove(_) => "RemoveRaftVoter",
                VoterChange::Update(_) => "UpdateRaftVoter",
            },
        }
    }

    /// Whether it travels on the fetch channel (Fetch, FetchSnapshot) rather than the control
    /// one: a correct peer has at most one request outstanding on each.
    pub fn is_fetch(&self) -> bool {
        matches!(self, Request::Fetch(_) | Request::FetchSnapshot(_))
    }

    /// The node the request claims to come from (`None`: an id-less fetcher).
    pub fn sender(&self) -> Option<NodeId> {
        match self {
            Request::Vote(r) => Some(r.candidate_id),
            Request::BeginQuorumEpoch(r) => Some(r.leader_id),
            Request::EndQuorumEpoch(r) => Some(r.leader_id),
            Request::Fetch(r) => r.replica_id,
            Request::FetchSnapshot(r) => r.replica_id,
            Request::VoterChange(r) => Some(r.change.key().id),
        }
    }

    /// Why the request cannot be from a correct peer (a negative id, epoch or offset, or an
    /// epoch so high that it could never be followed by another), if so.
    pub fn insanity(&self) -> Option<&'static str> {
        match self {
            Request::Vote(r) => check_ids(&[r.voter_id, r.candidate_id])
                .or(check_epochs(&[r.candidate_epoch, r.last_offset_epoch]))
                .or(check_offset(r.last_offset)),
            Request::BeginQuorumEpoch(r) => {
                check_ids(&[r.voter_id, r.leader_id]).or(check_epochs(&[r.leader_epoch]))
            }
            Request::EndQuorumEpoch(r) => check_ids(&[r.leader_id])
                .or(check_ids(&r.preferred_successors))
                .or(check_epochs(&[r.leader_epoch])),
            Request::FetchSnapshot(r) => check_ids(r.replica_id.as_slice())
                .or(check_epochs(&[r.current_leader_epoch, r.snapshot_id.epoch]))
                .or(check_offset(r.snapshot_id.offset)),
            Request::Fetch(r) => check_ids(r.replica_id.as_slice())
                .or(check_epochs(&[
                    r.current_leader_epoch,
                    r.last_fetched_epoch,
                ]))
                .or(check_offset(r.fetch_offset)),
            Request::VoterChange(r) => check_ids(&[r.change.key().id]).or(match &r.change {
                VoterChange::Add(v) | VoterChange::Update(v) => check_voter(v),
                VoterChange::Remove(_) => None,
            }),
        }
    }
}

impl Response {
    /// Whether it answers a request of the fetch channel (see [`Request::is_fetch`]).
    pub fn is_fetch(&self) -> bool {
        matches!(self, Response::Fetch(_) | Response::FetchSnapshot(_))
    }

    /// Why the response cannot be from a correct peer, if so (see [`Request::insanity`]).
    pub fn insanity(&self) -> Option<&'static str> {
        let (leader_id, epoch) = match self {
            Response::Vote(r) => (r.leader_id, r.leader_epoch),
            Response::VoterChange(r) => (r.leader_id, r.leader_epoch),
            Response::BeginQuorumEpoch(r) | Response::EndQuorumEpoch(r) => {
                (r.leader_id, r.leader_epoch)
            }
            Response::FetchSnapshot(r) => {
                let id = r.snapshot_id;
                if let Some(reason) = check_epochs(&[id.epoch]).or(check_offset(id.offset)) {
                    return Some(reason);
                }
                if r.position.saturating_add(r.bytes.len() as u64) > r.size {
                    return Some("a snapshot chunk past the snapshot's size");
                }
                (r.leader_id, r.leader_epoch)
            }
            Response::Fetch(r) => {
                let diverging = r
                    .diverging_epoch
                    .or(r.snapshot_id)
                    .map(|d| (d.epoch, d.offset));
                let bad_diverging =
                    diverging.and_then(|(e, o)| check_epochs(&[e]).or(check_offset(o)));
                let bad_offsets =
                    check_offset(r.log_start_offset).or(r.high_watermark.and_then(check_offset));
                // The node dials what this names: an empty or endless host is no address.
                let bad_endpoint = r
                    .leader_endpoint
                    .as_ref()
                    .filter(|a| !host_name_ok(&a.host))
                    .map(|_| "a leader endpoint with an empty or too long host");
                if let Some(reason) = bad_diverging.or(bad_offsets).or(bad_endpoint) {
                    return Some(reason);
                }
                (r.leader_id, r.leader_epoch)
            }
        };
        check_ids(leader_id.as_slice()).or(check_epochs(&[epoch]))
    }
}

/// Most listeners a voter entry may name: Kafka's controllers list one or two.
pub const MAX_VOTER_LISTENERS: usize = 16;
/// Longest host name a voter entry may carry (DNS names are at most 253 bytes).
pub const MAX_HOST_BYTES: usize = 255;

fn check_voter(v: &Voter) -> Option<&'static str> {
    let (min, max) = v.kraft_versions;
    if v.endpoints.len() > MAX_VOTER_LISTENERS {
        Some("a voter with too many listeners")
    } else if v
        .endpoints
        .iter()
        .any(|(name, a)| !host_name_ok(name) || !host_name_ok(&a.host))
    {
        Some("a voter endpoint name too long or empty")
    } else if min < 0 || max < min {
        Some("a voter's kraft.version range is empty")
    } else {
        None
    }
}

/// A listener name or host a voter entry may carry: 1 to [`MAX_HOST_BYTES`] bytes (the Kafka
/// face refuses the same).
fn host_name_ok(name: &str) -> bool {
    (1..=MAX_HOST_BYTES).contains(&name.len())
}

fn check_ids(ids: &[NodeId]) -> Option<&'static str> {
    ids.iter()
        .any(|id| id.0 < 0)
        .then_some("a negative node id")
}

/// The highest epoch a peer may send: the next election must still be able to add one.
const MAX_EPOCH: i32 = i32::MAX - 1;

fn check_epochs(epochs: &[Epoch]) -> Option<&'static str> {
    epochs
        .iter()
        .any(|e| e.0 < 0 || e.0 > MAX_EPOCH)
        .then_some("an epoch out of range")
}

fn check_offset(offset: Offset) -> Option<&'static str> {
    (offset.0 < 0).then_some("a negative offset")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(epoch: i32, candidate: i32, last_offset: i64) -> Request {
        Request::Vote(VoteRequest {
            cluster_id: "c".into(),
            voter_id: NodeId(1),
            candidate_epoch: Epoch(epoch),
            candidate_id: NodeId(candidate),
            last_offset_epoch: Epoch(0),
            last_offset: Offset(last_offset),
            pre_vote: false,
            candidate_directory_id: None,
            voter_directory_id: None,
        })
    }

    fn fetch_response(leader_epoch: i32, high_watermark: Option<i64>) -> Response {
        Response::Fetch(FetchResponse {
            error: ErrorCode::None,
            leader_id: Some(NodeId(1)),
            leader_epoch: Epoch(leader_epoch),
            high_watermark: high_watermark.map(Offset),
            log_start_offset: Offset(0),
            diverging_epoch: None,
            snapshot_id: None,
            leader_endpoint: None,
            records: Bytes::new(),
        })
    }

    #[test]
    fn requests_a_correct_peer_never_sends_are_named() {
        assert_eq!(vote(5, 2, 10).insanity(), None);
        assert_eq!(vote(i32::MAX - 1, 2, 10).insanity(), None);
        assert_eq!(
            vote(i32::MAX, 2, 10).insanity(),
            Some("an epoch out of range")
        );
        assert_eq!(vote(-1, 2, 10).insanity(), Some("an epoch out of range"));
        assert_eq!(vote(5, -3, 10).insanity(), Some("a negative node id"));
        assert_eq!(vote(5, 2, -1).insanity(), Some("a negative offset"));
    }

    fn with_leader_endpoint(host: &str) -> Response {
        let Response::Fetch(mut r) = fetch_response(3, Some(7)) else {
            unreachable!()
        };
        r.leader_endpoint = Some(ListenerAddress {
            host: host.into(),
            port: 9093,
        });
        Response::Fetch(r)
    }

    #[test]
    fn a_leader_endpoint_no_correct_peer_names_is_refused() {
        assert_eq!(with_leader_endpoint("node1").insanity(), None);
        let reason = Some("a leader endpoint with an empty or too long host");
        assert_eq!(with_leader_endpoint("").insanity(), reason);
        let long = "h".repeat(MAX_HOST_BYTES + 1);
        assert_eq!(with_leader_endpoint(&long).insanity(), reason);
    }

    fn add_voter(listener: &str, host: &str) -> Request {
        let endpoints = [(
            listener.to_string(),
            ListenerAddress {
                host: host.into(),
                port: 9093,
            },
        )];
        Request::VoterChange(VoterChangeRequest {
            cluster_id: "c".into(),
            change: VoterChange::Add(Voter {
                key: ReplicaKey {
                    id: NodeId(4),
                    directory_id: Some(Uuid([4; 16])),
                },
                endpoints: endpoints.into_iter().collect(),
                kraft_versions: (0, 1),
            }),
        })
    }

    #[test]
    fn a_voter_entry_with_an_empty_listener_or_host_is_refused() {
        assert_eq!(add_voter("CONTROLLER", "node4").insanity(), None);
        let reason = Some("a voter endpoint name too long or empty");
        assert_eq!(add_voter("", "node4").insanity(), reason);
        assert_eq!(add_voter("CONTROLLER", "").insanity(), reason);
    }

    #[test]
    fn responses_a_correct_peer_never_sends_are_named() {
        assert_eq!(fetch_response(3, Some(7)).insanity(), None);
        assert_eq!(fetch_response(3, None).insanity(), None);
        assert_eq!(
            fetch_response(i32::MAX, Some(7)).insanity(),
            Some("an epoch out of range")
        );
        assert_eq!(
            fetch_response(3, Some(-2)).insanity(),
            Some("a negative offset")
        );
    }
}
