//! Giving a client's batch its place in the log: the leader overwrites the base offset and the
//! partition leader epoch, the two header fields the CRC-32C does not cover (it starts at the
//! attributes), so records, timestamps, compression and producer fields stay exactly as sent.
//!
//! Owns that rewrite and the checks that make it safe; it never changes a covered byte.

use bytes::{Bytes, BytesMut};

use super::batch::{BatchHeader, RecordBatch};
use super::error::RecordError;
use crate::types::{Epoch, Offset};

/// Where the partition leader epoch sits in the header.
const EPOCH_AT: usize = 12;

/// A copy of `batch` at `base` in `epoch`. The batch must be one valid client data batch (see
/// [`check_client_header`]).
pub fn restamp(batch: &[u8], base: Offset, epoch: Epoch) -> Result<Bytes, RecordError> {
    let header = RecordBatch::validate(batch)?;
    check_client_header(&header)?;
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

/// The header rules for a batch a client may append, checkable without reading its records:
/// a data batch (no control, transactional, log-append-time or delete-horizon bits), at least
/// one record, exactly one offset per record (a batch whose last offset delta ran past its
/// records would move the log end by up to 2^31 for a handful of bytes), and a base sequence
/// whenever a producer id is set.
pub fn check_client_header(header: &BatchHeader) -> Result<(), RecordError> {
    let bad = |reason| Err(RecordError::NotAClientBatch(reason));
    if header.is_control() {
        return Err(RecordError::WrongRecordKind);
    }
    if header.records_count < 1 {
        return Err(RecordError::EmptyBatch);
    }
    if header.last_offset_delta != header.records_count - 1 {
        return bad("its last offset delta is not its record count minus one");
    }
    if header.is_transactional() {
        return bad("it is transactional");
    }
    if header.is_log_append_time() {
        return bad("it claims log-append time");
    }
    if header.has_delete_horizon() {
        return bad("it carries a delete horizon");
    }
    if header.producer_id >= 0 && header.base_sequence < 0 {
        return bad("it has a producer id but no base sequence");
    }
    Ok(())
}
