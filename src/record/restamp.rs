//! Giving a client's batch its place in the log: the leader overwrites the base offset and the
//! partition leader epoch, the two header fields the CRC-32C does not cover (it starts at the
//! attributes), so records, timestamps, compression and producer fields stay exactly as sent.
//!
//! Owns that rewrite and the checks that make it safe; it never changes a covered byte.

use bytes::{Bytes, BytesMut};

use super::batch::RecordBatch;
use super::error::RecordError;
use crate::types::{Epoch, Offset};

/// Where the partition leader epoch sits in the header.
const EPOCH_AT: usize = 12;

/// A copy of `batch` (exactly one valid data batch with at least one record) at `base` in
/// `epoch`.
pub fn restamp(batch: &[u8], base: Offset, epoch: Epoch) -> Result<Bytes, RecordError> {
    let header = RecordBatch::validate(batch)?;
    if header.is_control() {
        return Err(RecordError::WrongRecordKind);
    }
    if header.records_count < 1 {
        return Err(RecordError::EmptyBatch);
    }
    if base
        .0
        .checked_add(i64::from(header.last_offset_delta) + 1)
        .is_none()
    {
        return Err(RecordError::BadOffset {
            base_offset: base.0,
            last_offset_delta: header.last_offset_delta,
        });
    }
    let mut out = BytesMut::from(batch);
    out[..8].copy_from_slice(&base.0.to_be_bytes());
    out[EPOCH_AT..EPOCH_AT + 4].copy_from_slice(&epoch.0.to_be_bytes());
    Ok(out.freeze())
}
