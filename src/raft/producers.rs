//! Idempotent producers: for each producer id, its recent batches (epoch, first and last
//! sequence, offsets), kept by every replica as batches enter its log, so that whichever node
//! leads can tell a retried batch from a new one exactly as Kafka's leader does.
//!
//! Owns the duplicate and sequence rules (docs/kafka-face.md §6). Every
//! batch appended to the local log is recorded, truncation and log cleaning forget what they
//! removed, and a snapshot install forgets everything (the log it described is gone). Pure: it
//! never reads the log; recovery feeds it the batches found on disk.

use std::collections::{BTreeMap, VecDeque};

use crate::record::BatchHeader;
use crate::types::Offset;

/// Committed batches kept per producer for duplicate detection: Kafka's five, the most a
/// producer keeps in flight.
pub const RETAINED_BATCHES: usize = 5;

/// One batch of a producer, as appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_epoch: i16,
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub first_offset: Offset,
    pub last_offset: Offset,
}

/// What the leader should do with a client's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New (or not idempotent): append it.
    Append,
    /// A retry of a batch already in the log at these offsets: append nothing, answer with them
    /// once they are committed.
    Duplicate { first: Offset, last: Offset },
    /// Not the next sequence of its producer (Kafka's OUT_OF_ORDER_SEQUENCE_NUMBER).
    OutOfOrder,
    /// An older producer epoch than the log holds (Kafka's INVALID_PRODUCER_EPOCH).
    Fenced,
}

/// Every producer's recent batches in this replica's log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStates {
    producers: BTreeMap<i64, VecDeque<ProducerBatch>>,
}

/// The sequence after `last`, wrapping as Kafka's does.
fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX { 0 } else { last + 1 }
}

fn batch_of(header: &BatchHeader) -> Option<(i64, ProducerBatch)> {
    if header.producer_id < 0 {
        return None;
    }
    let delta = header.last_offset_delta;
    Some((
        header.producer_id,
        ProducerBatch {
            producer_epoch: header.producer_epoch,
            first_sequence: header.base_sequence,
            last_sequence: header.base_sequence.wrapping_add(delta) & i32::MAX,
            first_offset: Offset(header.base_offset),
            last_offset: Offset(header.base_offset + i64::from(delta)),
        },
    ))
}

impl ProducerStates {
    /// The rules for a client's batch (its header as sent; offsets do not matter here).
    pub fn check(&self, header: &BatchHeader) -> SequenceCheck {
        let Some((id, batch)) = batch_of(header) else {
            return SequenceCheck::Append;
        };
        let Some(known) = self.producers.get(&id) else {
            // An unknown producer may start at any sequence, as in Kafka.
            return SequenceCheck::Append;
        };
        if let Some(original) = known.iter().find(|b| {
            b.producer_epoch == batch.producer_epoch
                && b.first_sequence == batch.first_sequence
                && b.last_sequence == batch.last_sequence
        }) {
            return SequenceCheck::Duplicate {
                first: original.first_offset,
                last: original.last_offset,
            };
        }
        let Some(newest) = known.back() else {
            return SequenceCheck::Append;
        };
        match batch.producer_epoch.cmp(&newest.producer_epoch) {
            std::cmp::Ordering::Less => SequenceCheck::Fenced,
            std::cmp::Ordering::Greater if batch.first_sequence != 0 => SequenceCheck::OutOfOrder,
            std::cmp::Ordering::Equal
                if batch.first_sequence != next_sequence(newest.last_sequence) =>
            {
                SequenceCheck::OutOfOrder
            }
            _ => SequenceCheck::Append,
        }
    }

    /// Records a batch appended to the log (at its final offsets). Batches below `committed`
    /// beyond the newest [`RETAINED_BATCHES`] are forgotten; uncommitted ones are all kept, so
    /// a truncation can remove exactly what it removes from the log.
    pub fn record(&mut self, header: &BatchHeader, committed: Offset) {
        let Some((id, batch)) = batch_of(header) else {
            return;
        };
        let batches = self.producers.entry(id).or_default();
        batches.push_back(batch);
        while batches.len() > RETAINED_BATCHES
            && batches.front().is_some_and(|b| b.last_offset < committed)
        {
            batches.pop_front();
        }
    }

    /// Forgets every batch at or after `offset` (the log was truncated there).
    pub fn truncate(&mut self, offset: Offset) {
        self.producers.retain(|_, batches| {
            batches.retain(|b| b.first_offset < offset);
            !batches.is_empty()
        });
    }

    /// Forgets batches that end below `offset` (log cleaning removed them).
    pub fn forget_before(&mut self, offset: Offset) {
        self.producers.retain(|_, batches| {
            batches.retain(|b| b.last_offset >= offset);
            !batches.is_empty()
        });
    }

    /// Forgets everything (the log was replaced by a snapshot).
    pub fn clear(&mut self) {
        self.producers.clear();
    }

    /// How many producers are known.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}
