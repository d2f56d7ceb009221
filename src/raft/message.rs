//! The KRaft RPCs as plain data: Vote (with pre-vote), BeginQuorumEpoch, EndQuorumEpoch and Fetch,
//! with the fields of Kafka's messages that a single-partition, static-voter quorum uses
//! (kraft-protocol.md §4). Protocol rejections are error codes inside responses, never `Err`.
//!
//! Owns no behaviour: the replica decides, the transport carries these values.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::types::{Epoch, NodeId, Offset, OffsetAndEpoch};

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
    /// Raw record batches v2, possibly ending with a partial batch.
    pub records: Bytes,
}

/// A request from one replica to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Vote(VoteRequest),
    BeginQuorumEpoch(BeginQuorumEpochRequest),
    EndQuorumEpoch(EndQuorumEpochRequest),
    Fetch(FetchRequest),
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Vote(VoteResponse),
    BeginQuorumEpoch(EpochResponse),
    EndQuorumEpoch(EpochResponse),
    Fetch(FetchResponse),
}

impl Request {
    pub fn name(&self) -> &'static str {
        match self {
            Request::Vote(_) => "Vote",
            Request::BeginQuorumEpoch(_) => "BeginQuorumEpoch",
            Request::EndQuorumEpoch(_) => "EndQuorumEpoch",
            Request::Fetch(_) => "Fetch",
        }
    }

    /// The node the request claims to come from (`None`: an id-less fetcher).
    pub fn sender(&self) -> Option<NodeId> {
        match self {
            Request::Vote(r) => Some(r.candidate_id),
            Request::BeginQuorumEpoch(r) => Some(r.leader_id),
            Request::EndQuorumEpoch(r) => Some(r.leader_id),
            Request::Fetch(r) => r.replica_id,
        }
    }
}
