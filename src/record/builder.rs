//! Building record batches v2 the way KRaft's leader does: no compression, CreateTime, producer
//! fields -1, offsets assigned densely from a base offset. Bounded by a byte limit so that one
//! batch never exceeds what a reader accepts.

use bytes::{BufMut, Bytes, BytesMut};

use super::batch::seal_crc;
use super::control::ControlRecord;
use super::entry::{Record, RecordHeader};
use super::error::RecordError;
use super::{MAGIC_V2, MAX_BATCH_BYTES, RECORD_BATCH_OVERHEAD};
use crate::types::{Epoch, Offset};

/// Whether a batch carries state-machine data or control records (attribute bit 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    Data,
    Control,
}

/// Accumulates records and produces one sealed batch.
pub struct BatchBuilder {
    buf: BytesMut,
    kind: BatchKind,
    base_offset: Offset,
    epoch: Epoch,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
    count: i32,
    limit_bytes: usize,
}

impl BatchBuilder {
    /// A builder whose first record gets `base_offset`, stamped with leader epoch `epoch`.
    pub fn new(kind: BatchKind, base_offset: Offset, epoch: Epoch) -> Self {
        Self::with_capacity(kind, base_offset, epoch, 1024)
    }

    /// Like [`BatchBuilder::new`] with room for `capacity_bytes` reserved up front.
    pub fn with_capacity(
        kind: BatchKind,
        base_offset: Offset,
        epoch: Epoch,
        capacity_bytes: usize,
    ) -> Self {
        let mut buf =
            BytesMut::with_capacity(capacity_bytes.clamp(RECORD_BATCH_OVERHEAD, MAX_BATCH_BYTES));
        buf.put_bytes(0, RECORD_BATCH_OVERHEAD);
        BatchBuilder {
            buf,
            kind,
            base_offset,
            epoch,
            base_timestamp: None,
            max_timestamp: -1,
            count: 0,
            limit_bytes: MAX_BATCH_BYTES,
        }
    }

    /// Lowers the batch size limit (never above [`MAX_BATCH_BYTES`]).
    pub fn with_size_limit(mut self, limit_bytes: usize) -> Self {
        self.limit_bytes = limit_bytes.min(MAX_BATCH_BYTES);
        self
    }

    /// Records appended so far.
    pub fn record_count(&self) -> usize {
        self.count as usize
    }

    /// Bytes the batch would have if built now.
    pub fn size_in_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The offset the next appended record would get.
    pub fn next_offset(&self) -> Offset {
        self.base_offset.plus(i64::from(self.count))
    }

    /// Appends a data record. Fails without changing the builder if it would exceed the limit.
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[RecordHeader],
    ) -> Result<(), RecordError> {
        if self.kind != BatchKind::Data {
            return Err(RecordError::WrongRecordKind);
        }
        self.push(timestamp, key, value, headers)
    }

    /// Appends a control record to a control batch.
    pub fn append_control(
        &mut self,
        timestamp: i64,
        record: &ControlRecord,
    ) -> Result<(), RecordError> {
        if self.kind != BatchKind::Control {
            return Err(RecordError::WrongRecordKind);
        }
        let value = record.encode_value();
        self.push(timestamp, Some(&record.encode_key()), Some(&value), &[])
    }

    fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[RecordHeader],
    ) -> Result<(), RecordError> {
        let base_timestamp = self.base_timestamp.unwrap_or(timestamp);
        let timestamp_delta = timestamp.wrapping_sub(base_timestamp);
        let body = Record::body_len(timestamp_delta, self.count, key, value, headers);
        // A varint length prefix is at most 5 bytes.
        if self.buf.len() + body + 5 > self.limit_bytes {
            return Err(RecordError::BatchTooLarge {
                limit: self.limit_bytes,
            });
        }
        Record::encode(
            &mut self.buf,
            timestamp_delta,
            self.count,
            key,
            value,
            headers,
        );
        self.base_timestamp = Some(base_timestamp);
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.count += 1;
        Ok(())
    }

    /// Fills in the header and the CRC and returns the batch bytes.
    pub fn build(mut self) -> Result<Bytes, RecordError> {
        if self.count == 0 {
            return Err(RecordError::EmptyBatch);
        }
        let batch_length = (self.buf.len() - super::LOG_OVERHEAD) as i32;
        let attributes: i16 = if self.kind == BatchKind::Control {
            0x20
        } else {
            0
        };
        let base_timestamp = self.base_timestamp.unwrap_or(-1);
        let mut header = &mut self.buf[..RECORD_BATCH_OVERHEAD];
        header.put_i64(self.base_offset.0);
        header.put_i32(batch_length);
        header.put_i32(self.epoch.0);
        header.put_i8(MAGIC_V2);
        header.put_u32(0);
        header.put_i16(attributes);
        header.put_i32(self.count - 1);
        header.put_i64(base_timestamp);
        header.put_i64(self.max_timestamp);
        header.put_i64(-1);
        header.put_i16(-1);
        header.put_i32(-1);
        header.put_i32(self.count);
        seal_crc(&mut self.buf);
        Ok(self.buf.freeze())
    }
}
