//! ListOffsets: the earliest offset (the log start), the latest (the high watermark: kraft has
//! no transactions, so the last stable offset is the same), and lookups by timestamp, which the
//! connection actor answers by scanning committed batches with [`search`].
//!
//! Pure: the scan's results come in as a map from each target timestamp to what was found.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{PARTITION, QuorumView, is_quorum_topic};
use crate::record::{BatchIter, Compression, RecordBatch};

/// Kafka's special timestamps, with the first ListOffsets version that knows each.
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL: i64 = -4;
pub const LATEST_TIERED: i64 = -5;

/// A record found by a timestamp search: its offset and timestamp.
pub type Found = Option<(i64, i64)>;

/// The timestamp target (or `MAX_TIMESTAMP`) whose answer needs a scan of the log: that of the
/// first entry for the log's partition, the only one answered (a repeat is INVALID_REQUEST, any
/// other topic unknown), so one request costs at most one scan.
pub fn searches(request: &ListOffsetsRequest, version: i16) -> Vec<i64> {
    request
        .topics
        .iter()
        .filter(|t| is_quorum_topic(t.name.0.as_str()))
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == PARTITION)
        .map(|p| p.timestamp)
        .filter(|&ts| ts >= 0 || (ts == MAX_TIMESTAMP && version >= 7))
        .into_iter()
        .collect()
}

/// The running result of scanning `batches` (in offset order) for `target`: the first record
/// with a timestamp at or after it, or for `MAX_TIMESTAMP` the record with the largest one.
/// Returns `true` when the scan can stop.
pub fn search(batches: &Bytes, target: i64, found: &mut Found) -> bool {
    for batch in BatchIter::new(batches.clone()) {
        let Ok(batch) = batch else { return true };
        if batch.is_control() {
            continue;
        }
        let header = batch.header();
        let max = header.max_timestamp;
        if target == MAX_TIMESTAMP {
            if found.is_none_or(|(_, ts)| max > ts) {
                *found = Some((max_record_offset(&batch, max), max));
            }
            continue;
        }
        if max < target {
            continue;
        }
        *found = Some(first_record_at(&batch, target).unwrap_or((batch.base_offset().0, max)));
        return true;
    }
    false
}

/// The offset of the record carrying `max` in an uncompressed batch (the last offset otherwise).
fn max_record_offset(batch: &RecordBatch, max: i64) -> i64 {
    records_of(batch)
        .and_then(|records| records.into_iter().find(|&(_, ts)| ts == max))
        .map_or(batch.last_offset().0, |(offset, _)| offset)
}

/// The first record at or after `target` in an uncompressed batch.
fn first_record_at(batch: &RecordBatch, target: i64) -> Option<(i64, i64)> {
    records_of(batch)?.into_iter().find(|&(_, ts)| ts >= target)
}

/// Each record's offset and timestamp, for an uncompressed batch (compressed ones are located
/// by their batch header alone).
fn records_of(batch: &RecordBatch) -> Option<Vec<(i64, i64)>> {
    if batch.header().compression().ok()? != Compression::None {
        return None;
    }
    let base = batch.header().base_timestamp;
    let records = batch.decode_records().ok()?;
    Some(
        records
            .iter()
            .map(|r| {
                let offset = batch.base_offset().0 + i64::from(r.offset_delta);
                (offset, base.saturating_add(r.timestamp_delta))
            })
            .collect(),
    )
}

/// The answer, given what the scans found for each target of [`searches`].
pub fn list_offsets(
    request: &ListOffsetsRequest,
    version: i16,
    view: &QuorumView,
    found: &BTreeMap<i64, Found>,
) -> ListOffsetsResponse {
    let mut response = ListOffsetsResponse::default();
    let mut seen = false;
    response.topics = request
        .topics
        .iter()
        .map(|topic| {
            let mut t = ListOffsetsTopicResponse::default();
            t.name = topic.name.clone();
            t.partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let known =
                        is_quorum_topic(topic.name.0.as_str()) && p.partition_index == PARTITION;
                    // A partition asked for twice is a malformed request, as in Kafka.
                    let duplicate = known && std::mem::replace(&mut seen, true);
                    let mut r = ListOffsetsPartitionResponse::default();
                    r.partition_index = p.partition_index;
                    r.timestamp = -1;
                    r.offset = -1;
                    let answer = if !known {
                        Err(ResponseError::UnknownTopicOrPartition)
                    } else if duplicate {
                        Err(ResponseError::InvalidRequest)
                    } else {
                        answer(p.timestamp, p.current_leader_epoch, version, view, found)
                    };
                    match answer {
                        Ok((offset, timestamp)) => {
                            r.offset = offset;
                            r.timestamp = timestamp;
                            if version >= 4 {
                                r.leader_epoch = view.epoch.0;
                            }
                        }
                        Err(e) => r.error_code = e.code(),
                    }
                    r
                })
                .collect();
            t
        })
        .collect();
    response
}

fn answer(
    timestamp: i64,
    current_leader_epoch: i32,
    version: i16,
    view: &QuorumView,
    found: &BTreeMap<i64, Found>,
) -> Result<(i64, i64), ResponseError> {
    if !view.is_leader {
        return Err(ResponseError::NotLeaderOrFollower);
    }
    super::fetch::check_leader_epoch(current_leader_epoch, view)?;
    let minimum = match timestamp {
        MAX_TIMESTAMP => 7,
        EARLIEST_LOCAL => 8,
        LATEST_TIERED => 9,
        _ => 0,
    };
    if version < minimum {
        return Err(ResponseError::UnsupportedVersion);
    }
    let Some(hw) = view.high_watermark else {
        return Err(if version >= 5 {
            ResponseError::OffsetNotAvailable
        } else {
            ResponseError::LeaderNotAvailable
        });
    };
    match timestamp {
        EARLIEST | EARLIEST_LOCAL => Ok((view.log_start_offset.0, -1)),
        LATEST => Ok((hw.0, -1)),
        LATEST_TIERED => Ok((-1, -1)),
        t if t >= 0 || t == MAX_TIMESTAMP => Ok(match found.get(&t).copied().flatten() {
            Some((offset, ts)) if offset < hw.0 && offset >= view.log_start_offset.0 => {
                (offset, ts)
            }
            _ => (-1, -1),
        }),
        _ => Err(ResponseError::InvalidRequest),
    }
}
