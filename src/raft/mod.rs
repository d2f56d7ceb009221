//! The KRaft protocol as a pure, deterministic state machine.
//!
//! ```text
//!   Input (with `now`)                         Action (executed strictly in order)
//!   ─────────────────                          ──────────────────────────────────
//!   Tick                         ┌─────────┐   PersistElection ─► quorum-state (then ElectionPersisted)
//!   Request / Response ────────► │ Replica │ ─► Append / Truncate / Flush ─► log (then Flushed)
//!   RequestFailed                │  step() │ ─► Send / Respond / RespondFetch ─► network
//!   ElectionPersisted / Flushed  └─────────┘ ─► Proposed / HighWatermark / LeaderChanged
//!   Propose / Shutdown                         ShutdownComplete / Fatal
//!   SnapshotWritten / LogStartAdvanced         RespondFetchSnapshot / WriteSnapshotChunk
//!   SnapshotInstalled                          InstallSnapshot
//! ```
//!
//! Owns every protocol decision: states and transitions (Unattached, Prospective, Candidate,
//! Leader, Follower, Resigned; observers), elections with pre-vote, leader announcement and
//! resignation, replication by Fetch with divergence and long polls, the high watermark, and
//! durability ordering (a send that depends on a persisted vote or epoch waits for
//! `ElectionPersisted`; a follower's Fetch waits for `Flushed`); the voter sets of a dynamic
//! (kraft.version 1) quorum along the log ([`VoterSetHistory`]).
//!
//! It must never touch actix, tokio, files, sockets, the clock or a global random generator:
//! time arrives with every step and randomness comes from a seed, so a run can be replayed
//! exactly. A test fails the build if any of those appear in this directory.

mod config;
mod election;
mod fetch;
mod flush;
mod io;
mod leader;
mod log_view;
mod message;
mod producers;
mod quorum_epoch;
mod reconfig;
mod replica;
mod rng;
mod role;
mod snapshot;
mod vote;
mod voter_set;
mod voter_set_history;

pub use config::{FETCH_MAX_BYTES, FETCH_MAX_WAIT, RaftConfig};
pub use io::{
    Action, InboundId, Input, PersistedElection, ProposalId, ProposalOutcome, ProposeError,
    RequestId, VoterChangeError, VoterChangeId,
};
pub use leader::{MAX_TRACKED_OBSERVERS, OBSERVER_SESSION_TIMEOUT, ReplicaProgress};
pub use log_view::{EpochStart, LogView};
pub use message::{
    BeginQuorumEpochRequest, EndQuorumEpochRequest, EpochResponse, ErrorCode, FetchRequest,
    FetchResponse, FetchSnapshotRequest, FetchSnapshotResponse, MAX_HOST_BYTES,
    MAX_VOTER_LISTENERS, Request, Response, VoteRequest, VoteResponse, VoterChange,
    VoterChangeRequest, VoterChangeResponse,
};
pub use producers::{ProducerBatch, ProducerStates, RETAINED_BATCHES, SequenceCheck};
pub use reconfig::{CAUGHT_UP_WINDOW, control_records};
pub use replica::Replica;
pub use rng::SeededRng;
pub use role::RoleKind;
pub use snapshot::{FETCH_SNAPSHOT_MAX_BYTES, SnapshotTransfer};
pub use voter_set::{ListenerAddress, MAX_VOTERS, ReplicaKey, Voter, VoterSet, VoterSetError};
pub use voter_set_history::{BOOTSTRAP_OFFSET, HistoryError, MAX_KRAFT_VERSION, VoterSetHistory};
