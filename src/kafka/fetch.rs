//! Fetch for consumers: committed records only (up to the high watermark). The leader serves
//! every consumer; a follower serves consumers that send client metadata (Fetch v11 and later)
//! up to its own high watermark, and the leader points a consumer whose `client.rack` names
//! another node's `broker.rack` to that node as its preferred read replica (KIP-392), if that
//! node already holds the fetch offset. [`plan`] says what to read (or why nothing),
//! [`answer`] builds the response around the bytes read. The long poll (`max_wait_ms`,
//! `min_bytes`) is the connection actor's: it asks [`plan`] again when the high watermark moves.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};

use super::{PARTITION, QuorumView, TOPIC_ID, is_quorum_topic};
use crate::types::{NodeId, Offset};

/// Most bytes of records one Fetch answer carries, whatever the client asks: a bound on what a
/// connection makes the node hold (at least one whole batch is still always sent).
pub const MAX_FETCH_BYTES: u32 = 8 * 1024 * 1024;

/// What answering a Fetch needs from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Read whole batches from `from`, at most `max_bytes` (at least one batch), keeping only
    /// those below `end` (the high watermark).
    Read {
        from: Offset,
        max_bytes: u32,
        end: Offset,
    },
    /// Answer at once without records: the partition is absent, or in error.
    Answer,
    /// Answer at once, naming this node as the consumer's preferred read replica.
    Redirect(NodeId),
    /// Nothing committed at the fetch offset yet: wait (long poll) or answer empty.
    NothingYet,
}

/// Whether a request's `current_leader_epoch` (−1: not given) matches this leader's epoch.
pub fn check_leader_epoch(
    current_leader_epoch: i32,
    view: &QuorumView,
) -> Result<(), ResponseError> {
    match current_leader_epoch {
        -1 => Ok(()),
        e if e < view.epoch.0 => Err(ResponseError::FencedLeaderEpoch),
        e if e > view.epoch.0 => Err(ResponseError::UnknownLeaderEpoch),
        _ => Ok(()),
    }
}

/// The fetch offset and partition limit of the request's one partition of the log, if asked.
fn wanted(request: &FetchRequest, version: i16) -> Option<(i64, i32, i32)> {
    let topic = request.topics.iter().find(|t| {
        if version >= 13 {
            t.topic_id == TOPIC_ID
        } else {
            is_quorum_topic(t.topic.0.as_str())
        }
    })?;
    let p = topic.partitions.iter().find(|p| p.partition == PARTITION)?;
    Some((
        p.fetch_offset,
        p.partition_max_bytes,
        p.current_leader_epoch,
    ))
}

/// Whether the request carries client metadata (rack id), with which followers serve it.
fn may_read_from_follower(version: i16) -> bool {
    version >= 11
}

fn partition_error(
    offset: i64,
    epoch: i32,
    version: i16,
    view: &QuorumView,
) -> Result<(), ResponseError> {
    if !view.is_leader && !may_read_from_follower(version) {
        return Err(ResponseError::NotLeaderOrFollower);
    }
    check_leader_epoch(epoch, view)?;
    if offset < view.log_start_offset.0 || offset > view.log_end_offset.0 {
        return Err(ResponseError::OffsetOutOfRange);
    }
    Ok(())
}

/// What to read for this request now.
pub fn plan(request: &FetchRequest, version: i16, view: &QuorumView) -> Plan {
    let Some((offset, partition_max, epoch)) = wanted(request, version) else {
        return Plan::Answer;
    };
    if partition_error(offset, epoch, version, view).is_err() {
        return Plan::Answer;
    }
    if let Some(replica) = preferred_replica(request, version, view, offset) {
        return Plan::Redirect(replica);
    }
    let end = view.committed_end();
    if offset >= end.0 {
        return Plan::NothingYet;
    }
    let asked = if version >= 3 {
        partition_max.min(request.max_bytes)
    } else {
        partition_max
    };
    Plan::Read {
        from: Offset(offset),
        max_bytes: (asked.max(0) as u32).min(MAX_FETCH_BYTES),
        end,
    }
}

/// On the leader, for a consumer in another rack: the node in its rack that already holds the
/// fetch offset (the most caught up; ties by id).
fn preferred_replica(
    request: &FetchRequest,
    version: i16,
    view: &QuorumView,
    offset: i64,
) -> Option<NodeId> {
    let rack = request.rack_id.as_str();
    if !view.is_leader || !may_read_from_follower(version) || rack.is_empty() {
        return None;
    }
    if view
        .local_id
        .and_then(|id| view.racks.get(&id))
        .map(String::as_str)
        == Some(rack)
    {
        return None;
    }
    view.voter_progress
        .iter()
        .filter(|(id, end)| {
            view.racks.get(id).map(String::as_str) == Some(rack)
                && end.is_some_and(|e| e.0 >= offset)
        })
        .max_by_key(|(id, end)| (**end, std::cmp::Reverse(**id)))
        .map(|(id, _)| *id)
}

/// The response: every topic and partition asked for, the log's with `records` (already cut to
/// whole committed batches) or its error, any other with UNKNOWN_TOPIC_OR_PARTITION.
pub fn answer(
    request: &FetchRequest,
    version: i16,
    view: &QuorumView,
    records: Bytes,
    preferred: Option<NodeId>,
) -> FetchResponse {
    let mut response = FetchResponse::default();
    let hw = view.committed_end().0;
    // The records go to the first entry for the log's partition only: a request naming it
    // thousands of times must not make the answer thousands of times the read.
    let mut records = Some(records);
    response.responses = request
        .topics
        .iter()
        .map(|topic| {
            let ours = if version >= 13 {
                topic.topic_id == TOPIC_ID
            } else {
                is_quorum_topic(topic.topic.0.as_str())
            };
            let mut t = FetchableTopicResponse::default();
            if version >= 13 {
                t.topic_id = topic.topic_id;
            } else {
                t.topic = topic.topic.clone();
            }
            t.partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut d = PartitionData::default();
                    d.partition_index = p.partition;
                    d.high_watermark = hw;
                    if version >= 4 {
                        d.last_stable_offset = hw;
                    }
                    if version >= 5 {
                        d.log_start_offset = view.log_start_offset.0;
                    }
                    if version >= 11 {
                        d.preferred_read_replica = BrokerId(preferred.map_or(-1, |n| n.0));
                    }
                    let error = if !ours || p.partition != PARTITION {
                        Err(if version >= 13 && !ours {
                            ResponseError::UnknownTopicId
                        } else {
                            ResponseError::UnknownTopicOrPartition
                        })
                    } else {
                        partition_error(p.fetch_offset, p.current_leader_epoch, version, view)
                    };
                    match error {
                        Ok(()) => d.records = Some(records.take().unwrap_or_default()),
                        Err(e) => {
                            d.error_code = e.code();
                            d.high_watermark = -1;
                            d.records = Some(Bytes::new());
                        }
                    }
                    d
                })
                .collect();
            t
        })
        .collect();
    response
}
