//! Kafka's framing on a client connection: a 4-byte big-endian size, then that many bytes of
//! request (header and body). A `tokio_util` codec that refuses an oversized frame from its
//! first eight bytes, before buffering it.
//!
//! Owns the size limits only; it never looks past the api key.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use tokio_util::codec::{Decoder, Encoder};

/// Largest Produce request: one batch of the largest size kraft appends, plus its headers.
pub const MAX_PRODUCE_REQUEST_BYTES: usize = crate::record::MAX_BATCH_BYTES + 64 * 1024;
/// Largest request of any other kind. Every request a client sends for a one-partition log is a
/// few hundred bytes; the bound keeps what one connection can make the node decode (and the
/// decoder's in-memory structures, several times the wire size) small.
pub const MAX_OTHER_REQUEST_BYTES: usize = 128 * 1024;
/// Most buffer reserved ahead of a request's bytes arriving.
const RESERVE_STEP: usize = 64 * 1024;
/// Size prefix and api key: enough to tell which limit applies.
const PEEK_BYTES: usize = 6;

/// Why the bytes on a client connection are not Kafka frames kraft accepts. Each ends the
/// connection, as Kafka's own socket server does.
#[derive(Debug, thiserror::Error)]
pub enum KafkaFrameError {
    #[error("request of {size} bytes for api key {api_key} exceeds the {limit}-byte limit")]
    TooLarge {
        size: i64,
        api_key: i16,
        limit: usize,
    },
    #[error("request of {0} bytes is too short for a request header")]
    TooShort(i64),
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
}

/// The size limit for requests with this api key.
pub fn request_limit(api_key: i16) -> usize {
    if api_key == ApiKey::Produce as i16 {
        MAX_PRODUCE_REQUEST_BYTES
    } else {
        MAX_OTHER_REQUEST_BYTES
    }
}

/// Splits a client's byte stream into whole requests; encodes response frames.
#[derive(Debug, Default, Clone, Copy)]
pub struct KafkaCodec;

impl Decoder for KafkaCodec {
    type Item = Bytes;
    type Error = KafkaFrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, KafkaFrameError> {
        if src.len() < PEEK_BYTES {
            return Ok(None);
        }
        let size = i64::from(i32::from_be_bytes(src[..4].try_into().expect("4 bytes")));
        let api_key = i16::from_be_bytes(src[4..6].try_into().expect("2 bytes"));
        let limit = request_limit(api_key);
        // Api key, version and correlation id: the least a request header holds.
        if size < 8 {
            return Err(KafkaFrameError::TooShort(size));
        }
        if size as usize > limit {
            return Err(KafkaFrameError::TooLarge {
                size,
                api_key,
                limit,
            });
        }
        let size = size as usize;
        if src.len() < 4 + size {
            // Grow with the bytes that actually arrive, not with what a header claims: a
            // client that announces 8 MiB and sends nothing more holds no more than it sent.
            src.reserve((4 + size - src.len()).min(RESERVE_STEP));
            return Ok(None);
        }
        src.advance(4);
        Ok(Some(src.split_to(size).freeze()))
    }
}

impl Encoder<Bytes> for KafkaCodec {
    type Error = KafkaFrameError;

    /// `frame` is a response header and body; the size prefix is added here.
    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> Result<(), KafkaFrameError> {
        dst.reserve(4 + frame.len());
        dst.put_u32(frame.len() as u32);
        dst.put_slice(&frame);
        Ok(())
    }
}
