//! Decoding and validating record batches: the header, the CRC-32C, and iteration over the
//! records of one batch or over the batches of a buffer.

use bytes::Bytes;

use super::cursor::Cursor;
use super::entry::Record;
use super::error::RecordError;
use super::{
    ATTRIBUTES_OFFSET, CRC_OFFSET, LOG_OVERHEAD, MAGIC_V2, MAX_BATCH_BYTES,
    MAX_PREALLOCATED_ELEMENTS, MIN_RECORD_BYTES, RECORD_BATCH_OVERHEAD,
};
use crate::types::{Epoch, Offset};

/// Attribute bits (docs/protocol.md §15).
const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
const DELETE_HORIZON_BIT: i16 = 0x40;

/// The compression codec named by the low three attribute bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    fn from_id(id: u8) -> Result<Compression, RecordError> {
        match id {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(RecordError::UnsupportedCompression(other)),
        }
    }

    /// The codec named by a batch's (or a legacy record's) attributes.
    pub fn from_attributes(attributes: i16) -> Result<Compression, RecordError> {
        Compression::from_id((attributes & COMPRESSION_MASK) as u8)
    }

    /// Kafka's name for the codec (`CompressionType.name`), as its tools print it.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Every field of the 61-byte batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Reads the header fields without validating them.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, RecordError> {
        let short = RecordError::Short {
            needed: RECORD_BATCH_OVERHEAD,
            available: buf.len(),
        };
        let mut c = Cursor::new(buf);
        let mut read = || -> Option<BatchHeader> {
            Some(BatchHeader {
                base_offset: c.i64()?,
                batch_length: c.i32()?,
                partition_leader_epoch: c.i32()?,
                magic: c.i8()?,
                crc: c.i32()? as u32,
                attributes: c.i16()?,
                last_offset_delta: c.i32()?,
                base_timestamp: c.i64()?,
                max_timestamp: c.i64()?,
                producer_id: c.i64()?,
                producer_epoch: c.i16()?,
                base_sequence: c.i32()?,
                records_count: c.i32()?,
            })
        };
        read().ok_or(short)
    }

    /// Total bytes of the batch, header included.
    pub fn size_in_bytes(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    pub fn base_offset(&self) -> Offset {
        Offset(self.base_offset)
    }

    /// Saturates instead of overflowing on an unvalidated header.
    pub fn last_offset(&self) -> Offset {
        Offset(
            self.base_offset
                .saturating_add(i64::from(self.last_offset_delta)),
        )
    }

    /// The offset after this batch's last record.
    pub fn next_offset(&self) -> Offset {
        Offset(self.last_offset().0.saturating_add(1))
    }

    pub fn epoch(&self) -> Epoch {
        Epoch(self.partition_leader_epoch)
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_BIT != 0
    }

    /// `true` for LogAppendTime, `false` for CreateTime.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    pub fn compression(&self) -> Result<Compression, RecordError> {
        Compression::from_id((self.attributes & COMPRESSION_MASK) as u8)
    }
}

/// Looks at the front of a buffer of concatenated batches. `Ok(None)` means the buffer ends
/// inside the next batch (a partial trailing batch, normal at the end of a fetch response);
/// an impossible length field is an error.
pub fn next_batch_size(buf: &[u8]) -> Result<Option<usize>, RecordError> {
    if buf.len() < LOG_OVERHEAD {
        return Ok(None);
    }
    let length = i64::from(i32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]));
    let size = LOG_OVERHEAD as i64 + length;
    if size < RECORD_BATCH_OVERHEAD as i64 || size > MAX_BATCH_BYTES as i64 {
        return Err(RecordError::BadLength { length });
    }
    let size = size as usize;
    Ok((buf.len() >= size).then_some(size))
}

/// One complete, validated record batch (header checked, CRC verified). Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBatch {
    header: BatchHeader,
    bytes: Bytes,
}

impl RecordBatch {
    /// Validates `bytes` as exactly one batch: length, magic, CRC-32C, compression id and record
    /// count. The records themselves are decoded lazily by [`RecordBatch::records`].
    pub fn decode(bytes: Bytes) -> Result<RecordBatch, RecordError> {
        let header = Self::validate(&bytes)?;
        Ok(RecordBatch { header, bytes })
    }

    /// The checks of [`RecordBatch::decode`] on a borrowed slice, returning the header.
    pub fn validate(bytes: &[u8]) -> Result<BatchHeader, RecordError> {
        let header = BatchHeader::parse(bytes)?;
        let length = i64::from(header.batch_length);
        let expected = LOG_OVERHEAD as i64 + length;
        if expected < RECORD_BATCH_OVERHEAD as i64 || expected > MAX_BATCH_BYTES as i64 {
            return Err(RecordError::BadLength { length });
        }
        if expected as usize != bytes.len() {
            return Err(RecordError::Short {
                needed: expected as usize,
                available: bytes.len(),
            });
        }
        if header.magic != MAGIC_V2 {
            return Err(RecordError::BadMagic(header.magic));
        }
        let computed = crc32c::crc32c(&bytes[ATTRIBUTES_OFFSET..]);
        if computed != header.crc {
            return Err(RecordError::CrcMismatch {
                stored: header.crc,
                computed,
            });
        }
        let compression = header.compression()?;
        check_record_count(&header, bytes.len() - RECORD_BATCH_OVERHEAD, compression)?;
        let next = header
            .base_offset
            .checked_add(i64::from(header.last_offset_delta) + 1);
        if header.base_offset < 0 || next.is_none() {
            return Err(RecordError::BadOffset {
                base_offset: header.base_offset,
                last_offset_delta: header.last_offset_delta,
            });
        }
        Ok(header)
    }

    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The whole batch as it is on disk and on the wire.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn size_in_bytes(&self) -> usize {
        self.bytes.len()
    }

    pub fn base_offset(&self) -> Offset {
        self.header.base_offset()
    }

    pub fn last_offset(&self) -> Offset {
        self.header.last_offset()
    }

    pub fn next_offset(&self) -> Offset {
        self.header.next_offset()
    }

    pub fn epoch(&self) -> Epoch {
        self.header.epoch()
    }

    pub fn is_control(&self) -> bool {
        self.header.is_control()
    }

    /// Iterates over the records, decompressing them first when the batch is compressed (a
    /// batch that does not decompress yields that one error).
    pub fn records(&self) -> Records {
        records_in(&self.header, &self.bytes)
    }

    /// Decodes every record, checking that exactly `recordsCount` records fill the batch.
    pub fn decode_records(&self) -> Result<Vec<Record>, RecordError> {
        let body_bytes = self.bytes.len() - RECORD_BATCH_OVERHEAD;
        let capacity = (self.header.records_count.max(0) as usize)
            .min(body_bytes / MIN_RECORD_BYTES)
            .min(MAX_PREALLOCATED_ELEMENTS);
        let mut out = Vec::with_capacity(capacity);
        for record in self.records() {
            out.push(record?);
        }
        Ok(out)
    }
}

/// The records of the batch `bytes` whose header is `header`, decompressed first when the batch
/// is compressed (a batch that does not decompress yields that one error). Checks nothing else:
/// callers decide whether the batch was valid.
pub(super) fn records_in(header: &BatchHeader, bytes: &Bytes) -> Records {
    let body = bytes.slice(RECORD_BATCH_OVERHEAD.min(bytes.len())..);
    let count = header.records_count.max(0) as usize;
    let (body, failure) = match header.compression() {
        Ok(Compression::None) => (body, None),
        Ok(codec) => match super::decompress(codec, &body) {
            Ok(plain) => (plain, None),
            Err(e) => (Bytes::new(), Some(e)),
        },
        Err(e) => (Bytes::new(), Some(e)),
    };
    Records {
        body,
        pos: 0,
        index: 0,
        count,
        failure,
        done: false,
    }
}

fn check_record_count(
    header: &BatchHeader,
    body_bytes: usize,
    compression: Compression,
) -> Result<(), RecordError> {
    let count = header.records_count;
    let bad = || RecordError::BadRecordCount {
        count,
        last_offset_delta: header.last_offset_delta,
        body_bytes,
    };
    if count < 0 || header.last_offset_delta < 0 || header.last_offset_delta < count - 1 {
        return Err(bad());
    }
    if compression == Compression::None && count as usize > body_bytes / MIN_RECORD_BYTES {
        return Err(bad());
    }
    Ok(())
}

/// Iterator over a batch's records; stops after the first error.
pub struct Records {
    body: Bytes,
    pos: usize,
    index: usize,
    count: usize,
    failure: Option<RecordError>,
    done: bool,
}

impl Iterator for Records {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(err) = self.failure.take() {
            self.done = true;
            return Some(Err(err));
        }
        if self.index == self.count {
            self.done = true;
            let left = self.body.len() - self.pos;
            return (left != 0).then_some(Err(RecordError::TrailingBytes(left)));
        }
        let mut cur = Cursor::new(&self.body);
        cur.take(self.pos);
        let result = Record::decode(&self.body, &mut cur, self.index);
        self.pos = cur.position();
        self.index += 1;
        self.done = result.is_err();
        Some(result)
    }
}

/// Iterator over the complete batches at the front of a buffer. A partial trailing batch ends
/// iteration without an error (see [`BatchIter::trailing_bytes`]); a corrupt batch yields one
/// error and ends iteration.
pub struct BatchIter {
    buf: Bytes,
    pos: usize,
    failed: bool,
}

impl BatchIter {
    pub fn new(buf: Bytes) -> Self {
        BatchIter {
            buf,
            pos: 0,
            failed: false,
        }
    }

    /// Position of the next unread byte.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes after the last complete batch (meaningful once iteration has ended without error).
    pub fn trailing_bytes(&self) -> usize {
        self.buf.len() - self.pos
    }
}

impl Iterator for BatchIter {
    type Item = Result<RecordBatch, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let size = match next_batch_size(&self.buf[self.pos..]) {
            Ok(Some(size)) => size,
            Ok(None) => return None,
            Err(err) => {
                self.failed = true;
                return Some(Err(err));
            }
        };
        let result = RecordBatch::decode(self.buf.slice(self.pos..self.pos + size));
        match &result {
            Ok(_) => self.pos += size,
            Err(_) => self.failed = true,
        }
        Some(result)
    }
}

/// Writes the CRC-32C of `batch[21..]` into the CRC field.
pub(crate) fn seal_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..ATTRIBUTES_OFFSET].copy_from_slice(&crc.to_be_bytes());
}
