//! The fixed value sets behind the metrics' string values and labels: Kafka's `current-state`
//! names and the reasons a frame or batch is refused.
//!
//! Owns the names as they appear in Prometheus series. Nothing a peer or client sends may ever
//! become a label value: every value comes from these enums. It must never record anything.

/// Kafka's `current-state` values (its `KafkaRaftMetrics` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurrentState {
    Leader,
    Candidate,
    /// Pre-vote (KIP-996); Kafka versions without pre-vote never report it.
    Prospective,
    /// Unattached, having voted in this epoch.
    Voted,
    Follower,
    /// A follower that is not a voter.
    Observer,
    /// Unattached without a vote; also a resigned leader (Kafka names no state for it).
    Unattached,
}

impl CurrentState {
    pub const ALL: [CurrentState; 7] = [
        CurrentState::Leader,
        CurrentState::Candidate,
        CurrentState::Prospective,
        CurrentState::Voted,
        CurrentState::Follower,
        CurrentState::Observer,
        CurrentState::Unattached,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CurrentState::Leader => "leader",
            CurrentState::Candidate => "candidate",
            CurrentState::Prospective => "prospective",
            CurrentState::Voted => "voted",
            CurrentState::Follower => "follower",
            CurrentState::Observer => "observer",
            CurrentState::Unattached => "unattached",
        }
    }

    /// The state stored as `code` (an unknown code reads as unattached).
    pub(super) fn from_code(code: i64) -> CurrentState {
        CurrentState::ALL
            .get(code as usize)
            .copied()
            .unwrap_or(CurrentState::Unattached)
    }

    /// The state as stored in an atomic.
    pub(super) fn code(self) -> i64 {
        CurrentState::ALL
            .iter()
            .position(|s| *s == self)
            .unwrap_or_default() as i64
    }
}

/// Why a connection's frame was refused (the connection is closed). A fixed set, so that
/// nothing a peer sends can add label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRejection {
    /// A peer frame that does not decode.
    PeerBadFrame,
    /// A peer request that fails its sanity checks.
    PeerInvalidRequest,
    /// A peer request sent on behalf of another node than the connection's.
    PeerImpersonation,
    /// A second peer request on a channel before the first was answered.
    PeerPipelined,
    /// A peer message that is not expected at this point (e.g. a second handshake).
    PeerUnexpected,
    /// A peer handshake refused (cluster id, node id or certificate).
    PeerHandshake,
    /// A connection that sent no first byte or handshake in time.
    HandshakeTimeout,
    /// A Kafka client frame or request refused (size, bounds walk, decoding, version).
    KafkaRequest,
}

impl FrameRejection {
    pub const ALL: [FrameRejection; 8] = [
        FrameRejection::PeerBadFrame,
        FrameRejection::PeerInvalidRequest,
        FrameRejection::PeerImpersonation,
        FrameRejection::PeerPipelined,
        FrameRejection::PeerUnexpected,
        FrameRejection::PeerHandshake,
        FrameRejection::HandshakeTimeout,
        FrameRejection::KafkaRequest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FrameRejection::PeerBadFrame => "peer_bad_frame",
            FrameRejection::PeerInvalidRequest => "peer_invalid_request",
            FrameRejection::PeerImpersonation => "peer_impersonation",
            FrameRejection::PeerPipelined => "peer_pipelined",
            FrameRejection::PeerUnexpected => "peer_unexpected",
            FrameRejection::PeerHandshake => "peer_handshake",
            FrameRejection::HandshakeTimeout => "handshake_timeout",
            FrameRejection::KafkaRequest => "kafka_request",
        }
    }
}

/// Why records were refused and not appended: by a follower, from what it fetched from the
/// leader; by the leader, from what was proposed to it (a library append or a Kafka client's
/// produced batch that reached the core).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchRejection {
    /// Record batches in a Fetch answer.
    FetchedRecords,
    /// A chunk of a FetchSnapshot answer.
    FetchedSnapshotChunk,
    /// A whole fetched snapshot that could not be installed.
    FetchedSnapshot,
    /// Proposed records that do not fit in one batch.
    ProposedTooLarge,
    /// A proposed client batch that is not one valid data batch.
    ProposedInvalidBatch,
    /// A proposed client batch out of its producer's sequence.
    ProposedOutOfOrderSequence,
    /// A proposed client batch with an older producer epoch than its producer's last.
    ProposedInvalidProducerEpoch,
}

impl BatchRejection {
    pub const ALL: [BatchRejection; 7] = [
        BatchRejection::FetchedRecords,
        BatchRejection::FetchedSnapshotChunk,
        BatchRejection::FetchedSnapshot,
        BatchRejection::ProposedTooLarge,
        BatchRejection::ProposedInvalidBatch,
        BatchRejection::ProposedOutOfOrderSequence,
        BatchRejection::ProposedInvalidProducerEpoch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BatchRejection::FetchedRecords => "fetched_records",
            BatchRejection::FetchedSnapshotChunk => "fetched_snapshot_chunk",
            BatchRejection::FetchedSnapshot => "fetched_snapshot",
            BatchRejection::ProposedTooLarge => "proposed_too_large",
            BatchRejection::ProposedInvalidBatch => "proposed_invalid_batch",
            BatchRejection::ProposedOutOfOrderSequence => "proposed_out_of_order_sequence",
            BatchRejection::ProposedInvalidProducerEpoch => "proposed_invalid_producer_epoch",
        }
    }
}
