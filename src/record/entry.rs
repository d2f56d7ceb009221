//! One record inside a v2 batch: its varint layout, decoding from a batch body and encoding into
//! a builder's buffer. Never allocates for a field before checking the bytes for it are present.

use bytes::{BufMut, Bytes, BytesMut};

use super::cursor::{self, Cursor};
use super::error::RecordError;

/// A record header: a UTF-8 key and an optional value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    pub key: String,
    pub value: Option<Bytes>,
}

/// A decoded record. `key` and `value` share the batch's buffer (no copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<RecordHeader>,
}

/// Smallest encoded header: key length and value length, one byte each.
const MIN_HEADER_BYTES: usize = 2;

impl Record {
    /// Decodes the record at the cursor; `body` is the buffer the cursor reads, so that key and
    /// value can be returned as slices of it.
    pub(crate) fn decode(
        body: &Bytes,
        cur: &mut Cursor<'_>,
        index: usize,
    ) -> Result<Record, RecordError> {
        let bad = |reason| RecordError::BadRecord { index, reason };
        let length = cur.varint().ok_or(bad("bad length varint"))?;
        let length = usize::try_from(length).map_err(|_| bad("negative length"))?;
        if length > cur.remaining() {
            return Err(bad("length runs past the batch"));
        }
        let start = cur.position();
        let end = start + length;
        let mut rec = Cursor::new(&body[..end]);
        rec.take(start).ok_or(bad("cursor"))?;
        let attributes = rec.i8().ok_or(bad("missing attributes"))?;
        let timestamp_delta = rec.varlong().ok_or(bad("bad timestamp delta"))?;
        let offset_delta = rec.varint().ok_or(bad("bad offset delta"))?;
        let key = read_nullable(body, &mut rec).ok_or(bad("bad key"))?;
        let value = read_nullable(body, &mut rec).ok_or(bad("bad value"))?;
        let headers = read_headers(body, &mut rec).ok_or(bad("bad headers"))?;
        if rec.remaining() != 0 {
            return Err(bad("bytes left inside the record"));
        }
        cur.take(length).ok_or(bad("cursor"))?;
        Ok(Record {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers,
        })
    }

    /// Encoded size of a record's body (everything after its length varint).
    pub(crate) fn body_len(
        timestamp_delta: i64,
        offset_delta: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[RecordHeader],
    ) -> usize {
        1 + cursor::varlong_len(timestamp_delta)
            + cursor::varint_len(offset_delta)
            + nullable_len(key)
            + nullable_len(value)
            + cursor::varint_len(headers.len() as i32)
            + headers
                .iter()
                .map(|h| nullable_len(Some(h.key.as_bytes())) + nullable_len(h.value.as_deref()))
                .sum::<usize>()
    }

    /// Appends the encoded record (length prefix included) to `buf`.
    pub(crate) fn encode(
        buf: &mut BytesMut,
        timestamp_delta: i64,
        offset_delta: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[RecordHeader],
    ) {
        let body_len = Self::body_len(timestamp_delta, offset_delta, key, value, headers);
        cursor::put_varint(buf, body_len as i32);
        buf.put_i8(0);
        cursor::put_varlong(buf, timestamp_delta);
        cursor::put_varint(buf, offset_delta);
        put_nullable(buf, key);
        put_nullable(buf, value);
        cursor::put_varint(buf, headers.len() as i32);
        for header in headers {
            put_nullable(buf, Some(header.key.as_bytes()));
            put_nullable(buf, header.value.as_deref());
        }
    }
}

fn nullable_len(bytes: Option<&[u8]>) -> usize {
    match bytes {
        None => 1,
        Some(b) => cursor::varint_len(b.len() as i32) + b.len(),
    }
}

fn put_nullable(buf: &mut BytesMut, bytes: Option<&[u8]>) {
    match bytes {
        None => cursor::put_varint(buf, -1),
        Some(b) => {
            cursor::put_varint(buf, b.len() as i32);
            buf.put_slice(b);
        }
    }
}

/// A varint length (-1 = null) and that many bytes, as a slice of `body`.
fn read_nullable(body: &Bytes, cur: &mut Cursor<'_>) -> Option<Option<Bytes>> {
    let len = cur.varint()?;
    if len == -1 {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    let start = cur.position();
    cur.take(len)?;
    Some(Some(body.slice(start..start + len)))
}

/// Most headers one record may carry. Each becomes its own allocation, so a compressed batch
/// of empty headers (two bytes each) would otherwise expand a few kilobytes on the wire into a
/// gigabyte in memory; real records carry a handful.
pub const MAX_RECORD_HEADERS: usize = 4096;

fn read_headers(body: &Bytes, cur: &mut Cursor<'_>) -> Option<Vec<RecordHeader>> {
    let count = usize::try_from(cur.varint()?).ok()?;
    if count > cur.remaining() / MIN_HEADER_BYTES || count > MAX_RECORD_HEADERS {
        return None;
    }
    let mut headers = Vec::with_capacity(count.min(super::MAX_PREALLOCATED_ELEMENTS));
    for _ in 0..count {
        let key = read_nullable(body, cur)??;
        let key = String::from_utf8(key.to_vec()).ok()?;
        let value = read_nullable(body, cur)?;
        headers.push(RecordHeader { key, value });
    }
    Some(headers)
}
