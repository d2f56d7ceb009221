//! The decoder of an inbound connection: [`FrameCodec`], with a small frame limit until the
//! peer's first frame (its handshake) has arrived.
//!
//! Owns only that limit. Before a peer has said who it is, a frame header announcing megabytes
//! would otherwise make the node reserve them for anyone who can reach the port.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::PeerMessage;
use super::codec::{FrameCodec, FrameError};

/// Largest frame before the handshake: a handshake is a version, a cluster id and a node id.
pub const HANDSHAKE_FRAME_LIMIT: usize = 4 * 1024;
/// Magic and length: enough to read what a frame announces.
const LENGTH_END: usize = 8;

#[derive(Debug, Default, Clone, Copy)]
pub struct InboundCodec {
    handshaken: bool,
}

impl Decoder for InboundCodec {
    type Item = PeerMessage;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<PeerMessage>, FrameError> {
        if !self.handshaken && src.len() >= LENGTH_END {
            let len = u32::from_be_bytes(src[4..LENGTH_END].try_into().expect("4 bytes")) as usize;
            if len > HANDSHAKE_FRAME_LIMIT {
                return Err(FrameError::TooLargeBeforeHandshake(len));
            }
        }
        let message = FrameCodec.decode(src)?;
        self.handshaken |= message.is_some();
        Ok(message)
    }
}
