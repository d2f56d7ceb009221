//! Every message exchanged between the node's actors, in one place.

use actix::prelude::*;
use bytes::Bytes;

use crate::raft::{PersistedElection, ReplicaKey, RoleKind, Voter, VoterChangeError};
use crate::storage::StorageError;
use crate::types::{Epoch, NodeId, Offset};

pub use crate::executor::Recovered;

/// Opens (and recovers) the log and reads the election state.
#[derive(Message)]
#[rtype(result = "Result<Recovered, StorageError>")]
pub struct Recover;

/// Reopens the log after a restart of the log store or the driver; answers with
/// `IoDone::Recovered` through the driver's mailbox, behind every earlier completion.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Rebuild;

/// Closes the log for good (the node is stopping or restarting): later requests are ignored.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseLog;

/// Tells the log store where to report completions.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetDriver(pub Recipient<IoDone>);

/// Durably writes the election state; completes with `IoDone::ElectionPersisted`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Persist(
    pub PersistedElection,
    /// The directory id of the voter voted for, where the voter set names it.
    pub Option<crate::uuid::Uuid>,
);

/// Appends validated batches at the log end (not yet durable).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AppendBatches(pub Bytes);

/// Durably removes everything from an offset on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TruncateTo(pub Offset);

/// Durably forgets the repair point: the log got back to where it was before a repair.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ClearRepairPoint;

/// Log cleaning by these retention rules; completes with `IoDone::LogStartAdvanced` when the
/// log start moved.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct CleanLog(pub crate::executor::RetentionPolicy);

/// Replaces the log with an empty one starting at a snapshot's end (installing a fetched
/// snapshot); completes with `IoDone::LogReset`.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ResetLog(pub crate::types::OffsetAndEpoch);

/// Makes the log durable; completes with `IoDone::Flushed` carrying the same `seq`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushLog {
    /// Which core asked (the driver's incarnation + 1; 0: nobody waits for it), so that a
    /// completion reaches only the core that asked for it.
    pub seq: u64,
}

/// Reads whole batches from an offset.
#[derive(Message)]
#[rtype(result = "Result<Bytes, StorageError>")]
pub struct ReadLog {
    pub from: Offset,
    pub max_bytes: u32,
}

/// A completion from the log store, in the order the requests were made.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum IoDone {
    ElectionPersisted,
    /// Everything up to `offset` (the log end at fsync time) is durable.
    Flushed {
        offset: Offset,
        seq: u64,
    },
    /// The disk failed; the node must stop (its on-disk state is unknown until recovery).
    Failed(String),
    /// The log store restarted and drops writes until the driver rebuilds from disk.
    Restarted,
    /// The answer to `Rebuild`: what is on disk now.
    Recovered(Box<Result<Recovered, String>>),
    /// Cleaning moved the log start to `start`; snapshots ending before `snapshots_before` are
    /// no longer needed.
    LogStartAdvanced {
        start: Offset,
        snapshots_before: Offset,
    },
    /// The log now starts and ends at this snapshot's end.
    LogReset(crate::types::OffsetAndEpoch),
}

/// What the snapshot writer tells the driver.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum SnapshotEvent {
    /// A snapshot of the local state machine was written.
    Written(crate::types::OffsetAndEpoch),
    /// A fetched snapshot was verified, put in place and loaded (or could not be), with its
    /// KRaftVersion and Voters records.
    Installed(
        Result<
            (
                crate::types::OffsetAndEpoch,
                Vec<crate::record::ControlRecord>,
            ),
            String,
        >,
    ),
}

/// Why an append was not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("not the leader (leader: {leader_id:?}, epoch {epoch})")]
    NotLeader {
        leader_id: Option<NodeId>,
        epoch: Epoch,
    },
    #[error("the records do not fit in one batch")]
    TooLarge,
    #[error("the batch is not one valid data batch")]
    InvalidBatch,
    #[error("the batch does not follow its producer's last sequence")]
    OutOfOrderSequence,
    #[error("the batch's producer epoch is older than its producer's last")]
    InvalidProducerEpoch,
    #[error("the node stopped before the append was committed")]
    Stopped,
    /// The leader appended the records at `first..=last` in `epoch`, then stopped leading
    /// before they committed. A later leader may still commit them there or replace them: only
    /// the committed log tells, so retrying them may duplicate them.
    #[error(
        "leadership changed before the records at {first}..={last} (epoch {epoch}) committed; they may still commit"
    )]
    LeadershipLost {
        epoch: Epoch,
        first: Offset,
        last: Offset,
    },
    /// The node restarted internally while the append was in flight: the records may still be
    /// committed (read the log to know), so retrying them may duplicate them.
    #[error("the node restarted before the outcome of the append was known")]
    Interrupted,
}

/// Appends record values through the leader; resolves once they are committed.
#[derive(Message)]
#[rtype(result = "Result<(Offset, Offset), AppendError>")]
pub struct Propose(pub Vec<Bytes>);

/// Appends one client data batch (validated by the Kafka face, and again by the core) through
/// the leader; resolves once it is committed, with the offsets it got.
#[derive(Message)]
#[rtype(result = "Result<(Offset, Offset), AppendError>")]
pub struct ProposeBatch(pub Bytes);

/// Asks the leader to add a voter (AddRaftVoter); resolves once the new voter set is committed,
/// or with why not. `timeout` bounds the wait for the commit.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), VoterChangeFailure>")]
pub struct AddVoter {
    pub voter: Voter,
    pub timeout: std::time::Duration,
}

/// Asks the leader to remove the voter whose id and directory id are `voter` (RemoveRaftVoter);
/// resolves like [`AddVoter`].
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), VoterChangeFailure>")]
pub struct RemoveVoter {
    pub voter: ReplicaKey,
    pub timeout: std::time::Duration,
}

/// Gives the voter whose id and directory id are `voter.key` its endpoints and supported
/// versions (UpdateRaftVoter); resolves once appended, or with why not.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), VoterChangeFailure>")]
pub struct UpdateVoter {
    pub voter: Voter,
}

/// Why a voter change did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoterChangeFailure {
    /// The protocol core refused it or it did not commit (its reason, with Kafka's code).
    #[error(transparent)]
    Refused(#[from] VoterChangeError),
    /// Too many changes wait for their outcome already (see `driver::MAX_PENDING_VOTER_CHANGES`).
    #[error("too many voter changes are waiting for their outcome")]
    Busy,
    /// The node is stopping or stopped.
    #[error("the node stopped before the voter change's outcome was known")]
    Stopped,
    /// The node restarted internally while the change was in flight: its Voters record may
    /// still commit (describe the quorum to know).
    #[error("the node restarted before the voter change's outcome was known; it may still commit")]
    Interrupted,
}

impl VoterChangeFailure {
    /// Kafka's error code for this failure: the core's, BROKER_NOT_AVAILABLE (8) for a stopping
    /// node, as Kafka's leader answers while shutting down, and REQUEST_TIMED_OUT (7) where the
    /// outcome is unknown or the operator should retry.
    pub fn code(&self) -> i16 {
        match self {
            VoterChangeFailure::Refused(e) => e.code(),
            VoterChangeFailure::Stopped => 8,
            VoterChangeFailure::Busy | VoterChangeFailure::Interrupted => 7,
        }
    }
}

/// A snapshot of the node's protocol state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub node_id: Option<NodeId>,
    pub role: RoleKind,
    pub epoch: Epoch,
    pub leader_id: Option<NodeId>,
    pub high_watermark: Option<Offset>,
    /// The first offset the log still holds (everything below is in a snapshot).
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
    /// On the leader: each voter's durable log end offset as its last fetch told (`None` until
    /// it fetched). Empty on other nodes.
    pub voters: std::collections::BTreeMap<NodeId, Option<Offset>>,
    /// On the leader: each voter's last fetch and last caught-up times (ms since the Unix
    /// epoch; `None` until known, and for the leader itself). Empty on other nodes.
    pub voter_times: std::collections::BTreeMap<NodeId, (Option<i64>, Option<i64>)>,
    /// On the leader: each observer that fetched with a node id lately (id-less fetchers leave
    /// no trace). Empty on other nodes.
    pub observers: std::collections::BTreeMap<NodeId, crate::kafka::ReplicaReport>,
    /// The node's clock when this status was taken (ms since the Unix epoch).
    pub now_ms: i64,
    /// Data records and bytes (control batches' bytes included) this node has appended to its
    /// log since it started, as leader or follower.
    pub appended_records: u64,
    pub appended_bytes: u64,
    /// The voter set in force at the log end (the static voters of a kraft.version 0 quorum;
    /// `None` while a joining node has learned none).
    pub voter_set: Option<crate::raft::VoterSet>,
    /// The kraft.version in force at the log end: 1 when the voters live in the log.
    pub kraft_version: i16,
}

/// What a subscriber to a node is told, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// The known leader or epoch changed.
    LeaderChanged {
        epoch: Epoch,
        leader_id: Option<NodeId>,
    },
    /// Every offset below this is committed.
    Committed { high_watermark: Offset },
}

/// Subscribes to node events.
#[derive(Message)]
#[rtype(result = "tokio::sync::broadcast::Receiver<NodeEvent>")]
pub struct Subscribe;

#[derive(Message)]
#[rtype(result = "Status")]
pub struct Describe;

/// Graceful shutdown: resolves once the replica has handed over (or given up) and the log is
/// flushed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Stops the driver for good: pending appends fail with `AppendError::Stopped`, its peer
/// connections close, and it answers nothing more.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

/// Stops a peer connection, listener or workload producer for good (its node is stopping).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close;

// ---- the network -------------------------------------------------------------------------------

/// A request a peer sent us, with where to send the answer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct InboundRequest {
    pub connection: Recipient<SendResponse>,
    /// Closes the connection: a stopped driver answers nothing, and the peer should notice.
    pub closer: Recipient<Close>,
    pub correlation_id: u64,
    pub request: crate::raft::Request,
}

/// An answer to write back on an inbound connection.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendResponse {
    pub correlation_id: u64,
    pub response: crate::raft::Response,
}

/// A request to write on an outbound connection.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendRequest {
    pub correlation_id: u64,
    pub request: crate::raft::Request,
}

/// What an outbound connection reports to the driver.
#[derive(Message)]
#[rtype(result = "()")]
pub enum PeerEvent {
    Response {
        from: NodeId,
        correlation_id: u64,
        response: crate::raft::Response,
    },
    /// The request will get no answer (not connected, or the connection dropped).
    Failed { to: NodeId, correlation_id: u64 },
}

/// Reads the records a Fetch answer needs and sends the answer straight to its connection. It
/// travels through the log store's mailbox behind every earlier write, so the bytes read are
/// never from after a later truncation.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReadForFetch {
    pub from: Offset,
    pub max_bytes: u32,
    pub response: crate::raft::FetchResponse,
    pub correlation_id: u64,
    pub deliver: Recipient<SendResponse>,
}
