//! Framing for the peer protocol: a `tokio_util` codec that checks the magic, refuses frames over
//! [`MAX_FRAME_BYTES`] before buffering them, verifies the CRC-32C, and only then decodes the
//! bincode payload (with the same limit, so a crafted length inside cannot allocate either).

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::PeerMessage;

/// Identifies a kraft peer frame; the first byte can never start a Kafka request.
pub const MAGIC: [u8; 4] = [0xFF, b'K', b'R', b'F'];
/// Largest payload: a Fetch response of 8 MiB of records plus room for its other fields.
pub const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024 + 64 * 1024;
/// Magic, length and CRC.
const HEADER_BYTES: usize = 12;

type WireConfig = bincode::config::Configuration<
    bincode::config::BigEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_FRAME_BYTES>,
>;
const WIRE: WireConfig = bincode::config::standard()
    .with_big_endian()
    .with_limit::<MAX_FRAME_BYTES>();

/// Why a stream of bytes is not a valid sequence of peer frames. Any of these ends the
/// connection: framing is lost.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("bad magic {0:02x?}: not a kraft peer frame")]
    BadMagic([u8; 4]),
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("frame of {0} bytes before the handshake (at most {limit})", limit = super::HANDSHAKE_FRAME_LIMIT)]
    TooLargeBeforeHandshake(usize),
    #[error("frame crc mismatch: header says {stored:#010x}, payload has {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("undecodable payload: {0}")]
    Payload(String),
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes and decodes [`PeerMessage`] frames.
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameCodec;

impl Decoder for FrameCodec {
    type Item = PeerMessage;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<PeerMessage>, FrameError> {
        if src.len() < HEADER_BYTES {
            // Check what magic we have early, so garbage is refused without waiting for more.
            let n = src.len().min(MAGIC.len());
            if src[..n] != MAGIC[..n] {
                let mut seen = [0u8; 4];
                seen[..n].copy_from_slice(&src[..n]);
                return Err(FrameError::BadMagic(seen));
            }
            return Ok(None);
        }
        let magic: [u8; 4] = src[..4].try_into().expect("4 bytes");
        if magic != MAGIC {
            return Err(FrameError::BadMagic(magic));
        }
        let len = u32::from_be_bytes(src[4..8].try_into().expect("4 bytes")) as usize;
        if len > MAX_FRAME_BYTES {
            return Err(FrameError::TooLarge(len));
        }
        if src.len() < HEADER_BYTES + len {
            src.reserve(HEADER_BYTES + len - src.len());
            return Ok(None);
        }
        let stored = u32::from_be_bytes(src[8..12].try_into().expect("4 bytes"));
        src.advance(HEADER_BYTES);
        let payload = src.split_to(len);
        let computed = crc32c::crc32c(&payload);
        if computed != stored {
            return Err(FrameError::CrcMismatch { stored, computed });
        }
        let (message, used) = bincode::serde::decode_from_slice::<PeerMessage, _>(&payload, WIRE)
            .map_err(|e| FrameError::Payload(e.to_string()))?;
        if used != len {
            return Err(FrameError::Payload(format!(
                "{} bytes left after the message",
                len - used
            )));
        }
        Ok(Some(message))
    }
}

impl Encoder<PeerMessage> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, message: PeerMessage, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode(&message, dst)
    }
}

impl Encoder<&PeerMessage> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, message: &PeerMessage, dst: &mut BytesMut) -> Result<(), FrameError> {
        let payload = bincode::serde::encode_to_vec(message, WIRE)
            .map_err(|e| FrameError::Payload(e.to_string()))?;
        if payload.len() > MAX_FRAME_BYTES {
            return Err(FrameError::TooLarge(payload.len()));
        }
        dst.reserve(HEADER_BYTES + payload.len());
        dst.put_slice(&MAGIC);
        dst.put_u32(payload.len() as u32);
        dst.put_u32(crc32c::crc32c(&payload));
        dst.put_slice(&payload);
        Ok(())
    }
}
