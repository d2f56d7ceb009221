//! What a DescribeQuorum answer says, checked and in KRaft's terms: the leader, its epoch, the
//! high watermark, every voter's and observer's progress, and the endpoints the answer lists.
//!
//! Owns the translation from the decoded response (kafka-protocol's types) and the checks
//! Kafka's admin client makes on it (one topic, one partition 0, no error code). Pure: it never
//! reads a socket or a clock.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::DescribeQuorumResponse;
use kafka_protocol::messages::describe_quorum_response::ReplicaState;

use crate::uuid::Uuid;

/// Kafka's name of the metadata log, which DescribeQuorum asks about.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// One replica of the log, voter or observer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaInfo {
    pub id: i32,
    /// `Uuid::ZERO` when the answer has none (before version 2, or an unknown directory).
    pub directory_id: Uuid,
    pub log_end_offset: i64,
    /// Milliseconds since the epoch; `None` where the answer says -1 (never, or unknown).
    pub last_fetch_ms: Option<i64>,
    pub last_caught_up_ms: Option<i64>,
}

/// A listener a node announces (DescribeQuorum v2's `Nodes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterEndpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for VoterEndpoint {
    /// `NAME://host:port`, an IPv6 host in brackets, as Kafka prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host.contains(':') {
            true => write!(f, "{}://[{}]:{}", self.name, self.host, self.port),
            false => write!(f, "{}://{}:{}", self.name, self.host, self.port),
        }
    }
}

/// The quorum as the leader described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumInfo {
    /// -1 when the answering node knows no leader.
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<ReplicaInfo>,
    pub observers: Vec<ReplicaInfo>,
    pub endpoints: BTreeMap<i32, Vec<VoterEndpoint>>,
}

/// Why a DescribeQuorum answer carries no quorum description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumAnswerError {
    #[error("the server answered {error}{}", message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        error: ResponseError,
        message: Option<String>,
    },
    #[error("malformed DescribeQuorum answer: {0}")]
    Shape(String),
}

impl QuorumInfo {
    /// Checks and translates an answer, as Kafka's admin client does.
    pub fn from_response(
        response: &DescribeQuorumResponse,
    ) -> Result<QuorumInfo, QuorumAnswerError> {
        check_code(response.error_code, &response.error_message)?;
        let [topic] = &response.topics[..] else {
            return Err(shape(format!(
                "{} topics, expected 1",
                response.topics.len()
            )));
        };
        if topic.topic_name.0.as_str() != METADATA_TOPIC {
            return Err(shape(format!(
                "topic '{}', expected {METADATA_TOPIC}",
                topic.topic_name.0.as_str()
            )));
        }
        let [partition] = &topic.partitions[..] else {
            return Err(shape(format!(
                "{} partitions, expected 1",
                topic.partitions.len()
            )));
        };
        if partition.partition_index != 0 {
            return Err(shape(format!(
                "partition {}, expected 0",
                partition.partition_index
            )));
        }
        check_code(partition.error_code, &partition.error_message)?;
        let endpoints = response
            .nodes
            .iter()
            .map(|n| {
                let listeners = n
                    .listeners
                    .iter()
                    .map(|l| VoterEndpoint {
                        name: l.name.as_str().to_string(),
                        host: l.host.as_str().to_string(),
                        port: l.port,
                    })
                    .collect();
                (n.node_id.0, listeners)
            })
            .collect();
        Ok(QuorumInfo {
            leader_id: partition.leader_id.0,
            leader_epoch: partition.leader_epoch,
            high_watermark: partition.high_watermark,
            voters: partition.current_voters.iter().map(replica).collect(),
            observers: partition.observers.iter().map(replica).collect(),
            endpoints,
        })
    }

    /// The leader's own entry among the voters (the first with its id, as Kafka picks it).
    pub fn leader(&self) -> Option<&ReplicaInfo> {
        self.voters.iter().find(|v| v.id == self.leader_id)
    }
}

fn shape(reason: String) -> QuorumAnswerError {
    QuorumAnswerError::Shape(reason)
}

fn check_code(
    code: i16,
    message: &Option<kafka_protocol::protocol::StrBytes>,
) -> Result<(), QuorumAnswerError> {
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(error) => Err(QuorumAnswerError::Kafka {
            error,
            message: message
                .as_ref()
                .map(|m| m.as_str().to_string())
                .filter(|m| !m.is_empty()),
        }),
    }
}

fn replica(r: &ReplicaState) -> ReplicaInfo {
    let known = |ms: i64| (ms != -1).then_some(ms);
    ReplicaInfo {
        id: r.replica_id.0,
        directory_id: Uuid(*r.replica_directory_id.as_bytes()),
        log_end_offset: r.log_end_offset,
        last_fetch_ms: known(r.last_fetch_timestamp),
        last_caught_up_ms: known(r.last_caught_up_timestamp),
    }
}
