//! The Kafka-protocol face: what lets unmodified Kafka clients (kcat, librdkafka, kafka-python)
//! produce to the quorum's log, consume its committed records and describe the quorum, on the
//! node's own listener.
//!
//! The log is partition 0 of a topic with two names: `__raft_performance_test` (what the
//! standalone server writes) and `__cluster_metadata` (what Kafka's tools ask for). Any other
//! topic does not exist and is never created.
//!
//! Owns framing ([`frame`]), the bounds walk that runs before any decoding ([`bounds`]),
//! request parsing ([`request`]), response encoding ([`response`]) and the pure answers to each
//! request given a [`QuorumView`] and what was read from the log. It must never do IO or hold
//! state: the connection actor (`actors::kafka_connection`) reads the log and proposes batches
//! through the replication driver, the sole log mutator.

pub mod bounds;
pub mod cluster;
pub mod fetch;
pub mod frame;
pub mod offsets;
pub mod produce;
pub mod quorum;
pub mod request;
pub mod response;
mod view;
pub mod voters;

pub use frame::{KafkaCodec, KafkaFrameError};
pub use request::{KafkaRequest, Parsed, RequestError, RequestMeta};
pub use view::{Endpoint, QuorumView, ReplicaReport, voter_endpoints};

/// The topic the standalone server's workload writes.
pub const PERFORMANCE_TOPIC: &str = "__raft_performance_test";
/// The name Kafka's own tools use for the metadata log.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// The log's topic id under both names: Kafka's fixed id for the metadata topic.
pub const TOPIC_ID: uuid::Uuid = uuid::Uuid::from_u64_pair(0, 1);
/// The only partition.
pub const PARTITION: i32 = 0;

/// Whether `name` names the quorum's log.
pub fn is_quorum_topic(name: &str) -> bool {
    name == PERFORMANCE_TOPIC || name == METADATA_TOPIC
}
