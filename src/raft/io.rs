//! What goes into the replica ([`Input`]) and what comes out ([`Action`]).
//!
//! The driver feeds one input at a time with the current time and executes the returned actions
//! strictly in order. Durability contract: the replica emits a send that depends on a persisted
//! election state only after `Input::ElectionPersisted` for it, and a follower emits its next
//! Fetch (its acknowledgement) only after `Input::Flushed` covers its log end offset.

use bytes::Bytes;

use std::collections::BTreeMap;
use std::time::Duration;

use super::message::{FetchResponse, FetchSnapshotResponse, Request, Response};
use super::voter_set::{ListenerAddress, ReplicaKey, Voter};
use crate::record::ControlRecord;
use crate::types::{Epoch, NodeId, Offset, OffsetAndEpoch};

/// Correlates a request the replica sent with its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// Identifies an inbound request so the driver can route the answer (opaque to the replica).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InboundId(pub u64);

/// Identifies a user's append so its outcome can be reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProposalId(pub u64);

/// Identifies an operator's voter change (AddRaftVoter, RemoveRaftVoter) so its outcome can be
/// reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VoterChangeId(pub u64);

/// The election state that must survive a restart (the `quorum-state` file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersistedElection {
    pub epoch: Epoch,
    pub leader_id: Option<NodeId>,
    pub voted_id: Option<NodeId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Time passed; timers are checked.
    Tick,
    /// A request from another replica (or an id-less client).
    Request { from: InboundId, request: Request },
    /// The answer to a request this replica sent.
    Response {
        from: NodeId,
        request_id: RequestId,
        response: Response,
    },
    /// A request this replica sent will get no answer (disconnected, unreachable).
    RequestFailed { to: NodeId, request_id: RequestId },
    /// The last `Action::PersistElection` is durable.
    ElectionPersisted,
    /// Everything appended up to `offset` is durable.
    Flushed { offset: Offset },
    /// A user asks the leader to append these record values.
    Propose { id: ProposalId, records: Vec<Bytes> },
    /// A client (through the Kafka face) asks the leader to append this one data batch as it
    /// is: its records, timestamps, compression and producer fields are kept; the leader gives
    /// it its base offset and epoch.
    ProposeBatch { id: ProposalId, batch: Bytes },
    /// Graceful shutdown: a leader resigns and hands over first.
    Shutdown,
    /// A snapshot ending at `id.offset` was written locally (the leader can now serve it).
    SnapshotWritten { id: OffsetAndEpoch },
    /// Log cleaning deleted everything below `offset`.
    LogStartAdvanced { offset: Offset },
    /// The snapshot the last `Action::InstallSnapshot` named is in place and the log now starts
    /// (and ends) at its end offset. `control` holds the snapshot's KRaftVersion and Voters
    /// records (none in a kraft.version 0 snapshot): the voter set in force at its end.
    SnapshotInstalled {
        id: OffsetAndEpoch,
        control: Vec<ControlRecord>,
    },
    /// An operator asks the leader to add `voter` (AddRaftVoter); answered by
    /// `Action::VoterChanged` once the new set is committed, refused, or after `timeout`.
    AddVoter {
        id: VoterChangeId,
        voter: Voter,
        timeout: Duration,
    },
    /// An operator asks the leader to remove the voter whose key is exactly `voter`
    /// (RemoveRaftVoter); answered like `AddVoter`.
    RemoveVoter {
        id: VoterChangeId,
        voter: ReplicaKey,
        timeout: Duration,
    },
    /// A voter's new endpoints and supported versions (UpdateRaftVoter from a Kafka client):
    /// appended and answered at once, as Kafka's leader does.
    UpdateVoter { id: VoterChangeId, voter: Voter },
}

/// Why a voter change was refused or did not complete. Each maps to Kafka's error code for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum VoterChangeError {
    #[error("this node is not the leader (the leader is {leader_id:?} in epoch {epoch})")]
    NotLeader {
        leader_id: Option<NodeId>,
        epoch: Epoch,
    },
    #[error("the leader is shutting down")]
    ShuttingDown,
    #[error("the request names another cluster")]
    InconsistentClusterId,
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the quorum runs kraft.version 0 (static voters): its voters cannot change")]
    StaticQuorum,
    #[error("another voter change is in progress")]
    ChangeInProgress,
    #[error("the leader has not yet committed a record in its epoch")]
    EpochNotCommitted,
    #[error("the last voter change is not committed yet")]
    UncommittedChange,
    #[error("node {0} is already a voter")]
    DuplicateVoter(NodeId),
    #[error("{0} is not a voter, or is the last one")]
    VoterNotFound(ReplicaKey),
    #[error("{0} is not an observer that has caught up with the leader")]
    NotCaughtUp(ReplicaKey),
    #[error("the voter change did not commit in time")]
    TimedOut,
    #[error("the leader lost its leadership before the voter change committed")]
    LeadershipLost,
}

impl VoterChangeError {
    /// Kafka's error code for this refusal.
    pub fn code(&self) -> i16 {
        match self {
            VoterChangeError::NotLeader { .. } | VoterChangeError::LeadershipLost => 6,
            VoterChangeError::ShuttingDown => 8,
            VoterChangeError::InconsistentClusterId => 104,
            VoterChangeError::InvalidRequest(_) => 42,
            VoterChangeError::StaticQuorum => 35,
            VoterChangeError::ChangeInProgress
            | VoterChangeError::EpochNotCommitted
            | VoterChangeError::UncommittedChange
            | VoterChangeError::NotCaughtUp(_)
            | VoterChangeError::TimedOut => 7,
            VoterChangeError::DuplicateVoter(_) => 126,
            VoterChangeError::VoterNotFound(_) => 127,
        }
    }
}

/// Why a proposal was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposeError {
    /// Only the leader appends; this is the leader this replica knows of.
    NotLeader {
        leader_id: Option<NodeId>,
        epoch: Epoch,
    },
    /// The records do not fit in one batch.
    TooLarge,
    /// A client's batch is not one valid data batch (checked again here: the core never
    /// appends what it has not validated itself).
    InvalidBatch,
    /// A client's batch does not follow its producer's last sequence.
    OutOfOrderSequence,
    /// A client's batch carries an older producer epoch than its producer's last batch.
    InvalidProducerEpoch,
}

/// How a proposal ended. Decided by the replica alone, never by offset: a batch is this
/// proposal's only while this replica leads the epoch it was appended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalOutcome {
    /// Every record is below the high watermark at `first..=last`, appended by this leader in
    /// its epoch (an empty proposal: the empty range at the log end, at once).
    Committed { first: Offset, last: Offset },
    /// Nothing was appended.
    Refused(ProposeError),
    /// Appended at `first..=last` in `epoch`, but this replica stopped leading before they
    /// committed: a later leader may still commit them there, or replace them. Only the
    /// committed log can tell, so retrying may duplicate them.
    Unresolved {
        epoch: Epoch,
        first: Offset,
        last: Offset,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Durably store the election state; answer with `Input::ElectionPersisted`.
    PersistElection(PersistedElection),
    /// Append these whole, validated batches at the log end offset (offsets already assigned).
    Append { batches: Bytes },
    /// Remove every record at or after `offset` (a batch boundary), durably.
    Truncate { offset: Offset },
    /// Make the log durable; answer with `Input::Flushed` once done.
    Flush,
    /// Send a request; its answer comes back as `Input::Response` with this id.
    Send {
        to: NodeId,
        request_id: RequestId,
        request: Request,
    },
    /// Answer an inbound request.
    Respond { to: InboundId, response: Response },
    /// Answer an inbound Fetch: fill `response.records` with whole batches read from
    /// `read_from` (at most `max_bytes`, at least one batch) before sending.
    RespondFetch {
        to: InboundId,
        response: FetchResponse,
        read_from: Option<Offset>,
        max_bytes: u32,
    },
    /// A proposal's outcome; each proposal gets exactly one.
    Proposed {
        id: ProposalId,
        outcome: ProposalOutcome,
    },
    /// Answer an inbound FetchSnapshot: fill `response.bytes` (and `size`) with at most
    /// `max_bytes` of snapshot `response.snapshot_id` from `response.position`, or answer
    /// `SnapshotNotFound` / `PositionOutOfRange` if the file says so.
    RespondFetchSnapshot {
        to: InboundId,
        response: FetchSnapshotResponse,
        max_bytes: u32,
    },
    /// Write a chunk of the snapshot being fetched at byte `position` of its partial file.
    WriteSnapshotChunk {
        id: OffsetAndEpoch,
        position: u64,
        bytes: Bytes,
    },
    /// The fetched snapshot is complete: verify it, put it in place, load it into the state
    /// machine, and replace the log with an empty one starting at its end offset; then answer
    /// with `Input::SnapshotInstalled`. `from` sent the last chunk: the peer to name if the
    /// snapshot turns out invalid (a transfer resumed after a leader change also holds the
    /// earlier leader's bytes, which are the same: every copy of a snapshot is byte-identical).
    InstallSnapshot { id: OffsetAndEpoch, from: NodeId },
    /// The high watermark advanced: every offset below it is committed.
    HighWatermark(Offset),
    /// The known leader or epoch changed.
    LeaderChanged {
        epoch: Epoch,
        leader_id: Option<NodeId>,
    },
    /// Graceful shutdown finished: the node may stop.
    ShutdownComplete,
    /// The durable log got back to the end it had before a repair: forget the repair point
    /// (the replica votes and stands again).
    RepairPointReached,
    /// Fetched records the follower refused from `offset` on (nothing from there was
    /// appended): for the operator, who may be looking at a faulty leader or network.
    FetchedRecordsRefused {
        from: NodeId,
        offset: Offset,
        reason: String,
    },
    /// A FetchSnapshot answer the follower refused (nothing of it was written): not the
    /// snapshot, position or bytes it asked for. For the operator, like
    /// `FetchedRecordsRefused`; the chunk is asked for again.
    FetchedSnapshotRefused {
        from: NodeId,
        id: OffsetAndEpoch,
        position: u64,
        reason: String,
    },
    /// A voter change's outcome; each `AddVoter` / `RemoveVoter` gets exactly one.
    VoterChanged {
        id: VoterChangeId,
        result: Result<(), VoterChangeError>,
    },
    /// Where to reach every replica this replica may now send to on the quorum listener (the
    /// voters of the set in force, and a leader learned from a fetch answer), by id. Emitted
    /// whenever it changes; replicas without a known endpoint (static voters) are not listed.
    Endpoints(BTreeMap<NodeId, ListenerAddress>),
    /// An invariant of the protocol broke (e.g. a leader asked for truncation below the high
    /// watermark); the node must stop rather than risk committed data.
    Fatal(String),
}
