//! Produce: which batch of a request may be appended (validated as Kafka's leader validates a
//! client's batch), and the response once the append's outcome is known.
//!
//! Pure. The connection actor proposes the batch [`check`] returns through the replication
//! driver and answers with [`answer`]; nothing of a refused batch is ever proposed.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use super::{PARTITION, QuorumView, is_quorum_topic};
use crate::actors::messages::AppendError;
use crate::record::{Compression, RecordBatch, RecordError};
use crate::types::Offset;

/// When the client wants its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// No answer at all (acks=0).
    None,
    /// acks=1 and acks=-1 alike: once the batch is committed. A leader's own write is not
    /// durable enough to acknowledge in kraft, so "the leader has it" waits for the quorum too.
    Committed,
}

/// Why a partition's records are refused, with the text for the response's error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: ResponseError,
    pub message: String,
}

impl Refusal {
    fn new(error: ResponseError, message: impl Into<String>) -> Refusal {
        Refusal {
            error,
            message: message.into(),
        }
    }
}

/// The request's acks, or the refusal of every partition.
pub fn acks(request: &ProduceRequest) -> Result<Acks, Refusal> {
    match request.acks {
        0 => Ok(Acks::None),
        1 | -1 => Ok(Acks::Committed),
        other => Err(Refusal::new(
            ResponseError::InvalidRequiredAcks,
            format!("acks must be 0, 1 or -1, not {other}"),
        )),
    }
}

/// The batch to append for the log's partition, if the request carries one: `None` when the
/// request does not name the log, else the validated batch or why it is refused.
pub fn check(
    request: &ProduceRequest,
    version: i16,
    view: &QuorumView,
) -> Option<Result<Bytes, Refusal>> {
    let records = request
        .topic_data
        .iter()
        .filter(|t| is_quorum_topic(t.name.0.as_str()))
        .flat_map(|t| t.partition_data.iter())
        .find(|p| p.index == PARTITION)
        .map(|p| p.records.clone().unwrap_or_default())?;
    Some(validate(request, version, view, records))
}

fn validate(
    request: &ProduceRequest,
    version: i16,
    view: &QuorumView,
    records: Bytes,
) -> Result<Bytes, Refusal> {
    if !view.is_leader {
        return Err(Refusal::new(
            ResponseError::NotLeaderOrFollower,
            "this node does not lead",
        ));
    }
    if request.transactional_id.is_some() {
        return Err(Refusal::new(
            ResponseError::InvalidRequest,
            "kraft has no transactions",
        ));
    }
    acks(request)?;
    let batch = RecordBatch::decode(records.clone()).map_err(|e| refusal_for(&e, &records))?;
    let header = batch.header();
    let compression = header
        .compression()
        .map_err(|e| refusal_for(&e, &records))?;
    if compression == Compression::Zstd && version < 7 {
        return Err(Refusal::new(
            ResponseError::UnsupportedCompressionType,
            "zstd needs Produce v7 or later",
        ));
    }
    let invalid = |e: RecordError| Refusal::new(ResponseError::InvalidRecord, e.to_string());
    crate::record::check_client_header(header).map_err(invalid)?;
    check_records(&batch).map_err(|e| match e {
        RecordError::Decompress { .. } => {
            Refusal::new(ResponseError::CorruptMessage, e.to_string())
        }
        _ => invalid(e),
    })?;
    Ok(records)
}

/// Every record must decode (decompressed, within the caps) before the batch is proposed, as
/// the state machines read them all once committed; each sits at its own offset (delta `i` for
/// the `i`th record, so consumers and lookups see the offsets the log assigned), and the
/// header's max timestamp is the records' largest. One record is held at a time.
fn check_records(batch: &RecordBatch) -> Result<(), RecordError> {
    let header = batch.header();
    let mut max = None;
    for (index, record) in batch.records().enumerate() {
        let record = record?;
        if usize::try_from(record.offset_delta) != Ok(index) {
            return Err(RecordError::OffsetDeltaOutOfPlace {
                index,
                found: record.offset_delta,
            });
        }
        let timestamp = header.base_timestamp.saturating_add(record.timestamp_delta);
        max = Some(max.map_or(timestamp, |m: i64| m.max(timestamp)));
    }
    match max {
        Some(records) if records != header.max_timestamp => {
            Err(RecordError::MaxTimestampMismatch {
                header: header.max_timestamp,
                records,
            })
        }
        _ => Ok(()),
    }
}

/// Kafka's error for a batch that does not decode.
fn refusal_for(error: &RecordError, records: &Bytes) -> Refusal {
    let code = match error {
        RecordError::CrcMismatch { .. }
        | RecordError::Short { .. }
        | RecordError::BadLength { .. } => {
            // More than one batch is Kafka's INVALID_RECORD ("exactly one batch"); a batch cut
            // short or a bad checksum is corruption.
            if more_than_one_batch(records) {
                ResponseError::InvalidRecord
            } else {
                ResponseError::CorruptMessage
            }
        }
        RecordError::UnsupportedCompression(_) => ResponseError::UnsupportedCompressionType,
        _ => ResponseError::InvalidRecord,
    };
    Refusal::new(code, error.to_string())
}

fn more_than_one_batch(records: &Bytes) -> bool {
    matches!(crate::record::next_batch_size(records), Ok(Some(n)) if n < records.len())
}

/// Kafka's error for an append that did not commit. All are retriable but a bad batch.
pub fn refusal_for_append(error: &AppendError) -> Refusal {
    let code = match error {
        AppendError::NotLeader { .. }
        | AppendError::Stopped
        | AppendError::LeadershipLost { .. } => ResponseError::NotLeaderOrFollower,
        AppendError::Interrupted => ResponseError::RequestTimedOut,
        AppendError::TooLarge => ResponseError::MessageTooLarge,
        AppendError::InvalidBatch => ResponseError::InvalidRecord,
        AppendError::OutOfOrderSequence => ResponseError::OutOfOrderSequenceNumber,
        AppendError::InvalidProducerEpoch => ResponseError::InvalidProducerEpoch,
    };
    Refusal::new(code, error.to_string())
}

/// The response: the log's partition with its outcome (the base offset it got, or the
/// refusal), every other partition UNKNOWN_TOPIC_OR_PARTITION.
pub fn answer(
    request: &ProduceRequest,
    version: i16,
    view: &QuorumView,
    outcome: Result<Offset, Refusal>,
) -> ProduceResponse {
    let mut response = ProduceResponse::default();
    let mut answered = false;
    response.responses = request
        .topic_data
        .iter()
        .map(|topic| {
            let mut t = TopicProduceResponse::default();
            t.name = topic.name.clone();
            t.partition_responses = topic
                .partition_data
                .iter()
                .map(|p| {
                    let ours = is_quorum_topic(topic.name.0.as_str()) && p.index == PARTITION;
                    let first = ours && !std::mem::replace(&mut answered, true);
                    let result = match (ours, first) {
                        (true, true) => outcome.clone(),
                        (true, false) => Err(Refusal::new(
                            ResponseError::InvalidRequest,
                            "the partition appears twice",
                        )),
                        _ => Err(Refusal::new(
                            ResponseError::UnknownTopicOrPartition,
                            "kraft serves only its own log",
                        )),
                    };
                    partition_response(p.index, version, view, result)
                })
                .collect();
            t
        })
        .collect();
    response
}

fn partition_response(
    index: i32,
    version: i16,
    view: &QuorumView,
    result: Result<Offset, Refusal>,
) -> PartitionProduceResponse {
    let mut r = PartitionProduceResponse::default();
    r.index = index;
    r.base_offset = -1;
    if version >= 5 {
        r.log_start_offset = view.log_start_offset.0;
    }
    match result {
        Ok(base) => r.base_offset = base.0,
        Err(refusal) => {
            r.error_code = refusal.error.code();
            if version >= 8 {
                r.error_message = Some(StrBytes::from_string(refusal.message));
            }
            if version >= 10 && refusal.error == ResponseError::NotLeaderOrFollower {
                let mut leader = LeaderIdAndEpoch::default();
                leader.leader_id = BrokerId(view.leader_id.map_or(-1, |n| n.0));
                leader.leader_epoch = view.epoch.0;
                r.current_leader = leader;
            }
        }
    }
    r
}
