//! Lenient reading of one record batch as it sits in a file, for operator tools (`kraft
//! dump-log`): the header is read whatever it says, the CRC-32C is reported instead of enforced,
//! and the records are iterated even when the CRC does not match, as Kafka's own dump tool does.
//!
//! Owns the batch-level facts such a tool prints (validity, last sequence, each record's sequence)
//! and the decoding of transaction-marker values. It must never do IO, never panic on the bytes
//! it is given, and never allocate more than those bytes justify; it never accepts a batch for
//! the replicated log (that is [`super::RecordBatch::decode`]'s job).

use bytes::Bytes;

use super::batch::{BatchHeader, Records, records_in};
use super::error::RecordError;
use super::{ATTRIBUTES_OFFSET, RECORD_BATCH_OVERHEAD};

/// Kafka's "no sequence" value of `baseSequence` and of each record's sequence.
pub const NO_SEQUENCE: i32 = -1;
/// Bytes of a transaction marker value Kafka reads: version (2) and coordinator epoch (4).
const END_TXN_MARKER_VALUE_BYTES: usize = 6;

/// One batch's bytes, at least a whole header, not validated.
#[derive(Debug, Clone)]
pub struct InspectedBatch {
    header: BatchHeader,
    bytes: Bytes,
}

impl InspectedBatch {
    /// Reads the header of `bytes` (the whole batch); fails only when the header is incomplete.
    pub fn new(bytes: Bytes) -> Result<InspectedBatch, RecordError> {
        let header = BatchHeader::parse(&bytes)?;
        Ok(InspectedBatch { header, bytes })
    }

    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    pub fn size_in_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Kafka's `isValid`: a whole header and a stored CRC-32C matching the bytes it covers.
    pub fn is_valid(&self) -> bool {
        self.bytes.len() >= RECORD_BATCH_OVERHEAD
            && crc32c::crc32c(&self.bytes[ATTRIBUTES_OFFSET..]) == self.header.crc
    }

    /// The sequence of the batch's last record, or [`NO_SEQUENCE`] (Kafka's `lastSequence`:
    /// only -1 means "none" here).
    pub fn last_sequence(&self) -> i32 {
        if self.header.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        increment_sequence(self.header.base_sequence, self.header.last_offset_delta)
    }

    /// The sequence of the record at `offset_delta` (Kafka's record `sequence`: any negative
    /// base sequence means "none").
    pub fn record_sequence(&self, offset_delta: i32) -> i32 {
        if self.header.base_sequence < 0 {
            return NO_SEQUENCE;
        }
        increment_sequence(self.header.base_sequence, offset_delta)
    }

    /// The records, decompressed when the batch is compressed, whatever the CRC says.
    pub fn records(&self) -> Records {
        records_in(&self.header, &self.bytes)
    }
}

/// Kafka's sequence arithmetic: past `i32::MAX` a sequence wraps to 0, not to a negative. Every
/// step wraps as Java's `int` does, so a damaged header's values cannot overflow.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX.wrapping_sub(increment) {
        increment
            .wrapping_sub(i32::MAX.wrapping_sub(sequence))
            .wrapping_sub(1)
    } else {
        sequence.wrapping_add(increment)
    }
}

/// Bytes of a legacy (magic 0 and 1) entry before its record: offset (8) and size (4).
const LEGACY_LOG_OVERHEAD: usize = 12;
/// Bytes of a legacy record up to and including its timestamp (magic 1): crc (4), magic (1),
/// attributes (1), timestamp (8).
const LEGACY_V1_TIMESTAMP_END: usize = 14;
/// Bytes of a legacy record up to and including its attributes.
const LEGACY_ATTRIBUTES_END: usize = 6;

/// The batch-level facts of a legacy (message format v0 or v1) entry, as Kafka's tool shows a
/// file it finds one in. kraft never writes these; they appear when a magic byte is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyEntry {
    pub offset: i64,
    pub magic: i8,
    pub attributes: i8,
    /// The record's timestamp (magic 1), or -1 (magic 0 has none).
    pub timestamp: i64,
    /// The stored CRC-32 (IEEE, not Castagnoli) of the record from its magic byte on.
    pub crc: u32,
    pub size_in_bytes: usize,
    pub valid: bool,
}

impl LegacyEntry {
    /// Reads `bytes`, a whole legacy entry (log overhead included).
    pub fn parse(bytes: &[u8]) -> Result<LegacyEntry, RecordError> {
        let needed = LEGACY_LOG_OVERHEAD + LEGACY_ATTRIBUTES_END;
        let short = || RecordError::Short {
            needed,
            available: bytes.len(),
        };
        let head = bytes.get(..needed).ok_or_else(short)?;
        let record = &bytes[LEGACY_LOG_OVERHEAD..];
        let offset = i64::from_be_bytes(head[..8].try_into().map_err(|_| short())?);
        let crc = u32::from_be_bytes(record[..4].try_into().map_err(|_| short())?);
        let magic = record[4] as i8;
        let attributes = record[5] as i8;
        let timestamp = if magic == 0 {
            -1
        } else {
            let field = record
                .get(LEGACY_ATTRIBUTES_END..LEGACY_V1_TIMESTAMP_END)
                .ok_or_else(short)?;
            i64::from_be_bytes(field.try_into().map_err(|_| short())?)
        };
        let mut computed = flate2::Crc::new();
        computed.update(&record[4..]);
        Ok(LegacyEntry {
            offset,
            magic,
            attributes,
            timestamp,
            crc,
            size_in_bytes: bytes.len(),
            valid: computed.sum() == crc,
        })
    }
}

/// A COMMIT or ABORT marker's value: its version and the transaction coordinator's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnMarker {
    pub version: i16,
    pub coordinator_epoch: i32,
}

impl EndTxnMarker {
    /// Decodes a marker value as Kafka does: a newer version is read as version 0, extra bytes
    /// are ignored, a negative version or a short value is malformed.
    pub fn decode(value: &[u8]) -> Result<EndTxnMarker, RecordError> {
        let Some(fixed) = value.get(..END_TXN_MARKER_VALUE_BYTES) else {
            return Err(RecordError::BadControlRecord(format!(
                "end transaction marker value of {} bytes, at least {END_TXN_MARKER_VALUE_BYTES} needed",
                value.len()
            )));
        };
        let version = i16::from_be_bytes([fixed[0], fixed[1]]);
        if version < 0 {
            return Err(RecordError::BadControlRecord(format!(
                "negative end transaction marker version {version}"
            )));
        }
        let coordinator_epoch = i32::from_be_bytes([fixed[2], fixed[3], fixed[4], fixed[5]]);
        Ok(EndTxnMarker {
            version,
            coordinator_epoch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchBuilder, BatchKind};
    use crate::types::{Epoch, Offset};

    fn batch() -> Bytes {
        let mut b = BatchBuilder::new(BatchKind::Data, Offset(5), Epoch(2));
        b.append(1000, Some(b"k"), Some(b"v"), &[]).unwrap();
        b.append(1001, None, Some(b"w"), &[]).unwrap();
        b.build().unwrap()
    }

    #[test]
    fn a_corrupt_batch_is_invalid_but_its_records_still_read() {
        let good = InspectedBatch::new(batch()).unwrap();
        assert!(good.is_valid());
        let mut bytes = batch().to_vec();
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        let bad = InspectedBatch::new(Bytes::from(bytes)).unwrap();
        assert!(!bad.is_valid());
        assert_eq!(bad.records().count(), 2);
    }

    #[test]
    fn sequences_wrap_like_kafka() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        // A damaged (negative) offset delta wraps as Java's int arithmetic does.
        assert_eq!(increment_sequence(5, -1), i32::MIN + 4);
        assert_eq!(increment_sequence(i32::MIN, i32::MIN), 0);
        let b = InspectedBatch::new(batch()).unwrap();
        assert_eq!(b.last_sequence(), NO_SEQUENCE);
    }

    #[test]
    fn legacy_entries_show_their_fields_and_crc32() {
        // Offset 9, a magic 1 record: attributes 0, timestamp 77, null key, value "v".
        let mut record = vec![1u8, 0];
        record.extend_from_slice(&77i64.to_be_bytes());
        record.extend_from_slice(&(-1i32).to_be_bytes());
        record.extend_from_slice(&1i32.to_be_bytes());
        record.push(b'v');
        let mut crc = flate2::Crc::new();
        crc.update(&record);
        let mut bytes = 9i64.to_be_bytes().to_vec();
        bytes.extend_from_slice(&(record.len() as i32 + 4).to_be_bytes());
        bytes.extend_from_slice(&crc.sum().to_be_bytes());
        bytes.extend_from_slice(&record);
        let entry = LegacyEntry::parse(&bytes).unwrap();
        assert_eq!((entry.offset, entry.magic, entry.timestamp), (9, 1, 77));
        assert!(entry.valid);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(!LegacyEntry::parse(&bytes).unwrap().valid);
        assert!(LegacyEntry::parse(&bytes[..15]).is_err());
    }

    #[test]
    fn end_txn_markers_decode_as_kafka_reads_them() {
        let marker = EndTxnMarker::decode(&[0, 1, 0, 0, 0, 7, 9]).unwrap();
        assert_eq!(marker.coordinator_epoch, 7);
        assert!(EndTxnMarker::decode(&[0, 0, 0]).is_err());
        assert!(EndTxnMarker::decode(&[0xff, 0xff, 0, 0, 0, 0]).is_err());
    }
}
