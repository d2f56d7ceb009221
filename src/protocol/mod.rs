//! The peer protocol between kraft nodes (docs/architecture.md §7): length-prefixed, checksummed
//! frames carrying a handshake and then the KRaft requests and responses of [`crate::raft`].
//!
//! ```text
//! magic "\xFFKRF" (4) | payload length u32 BE (4) | crc32c(payload) u32 BE (4) | bincode payload
//! ```
//!
//! The first byte 0xFF tells a peer connection from a Kafka-protocol client (a Kafka request
//! starts with a size whose first byte is never 0xFF). Owns framing and (de)serialization only;
//! it must never decode a payload before checking its size against the limit and its CRC.

mod codec;
mod inbound_codec;

use serde::{Deserialize, Serialize};

pub use codec::{FrameCodec, FrameError, MAGIC, MAX_FRAME_BYTES};
pub use inbound_codec::{HANDSHAKE_FRAME_LIMIT, InboundCodec};

use crate::raft::{Request, Response};
use crate::types::NodeId;

/// Version of this wire format; a peer speaking another is disconnected.
pub const PROTOCOL_VERSION: u16 = 4;

/// The first frame each side sends: who it is and which cluster it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    pub protocol_version: u16,
    pub cluster_id: String,
    /// `None` for a client without a node id (an id-less observer or tool).
    pub node_id: Option<NodeId>,
    /// The sender's `broker.rack`, so a leader can point consumers at a replica in theirs.
    pub rack: Option<String>,
    /// The sender's metadata log directory id, which DescribeQuorum reports.
    pub directory_id: Option<[u8; 16]>,
}

/// One frame's payload. Variants are only ever appended: bincode encodes them by index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMessage {
    Handshake(Handshake),
    Request {
        correlation_id: u64,
        request: Request,
    },
    Response {
        correlation_id: u64,
        response: Response,
    },
}

impl Handshake {
    /// Whether a peer's handshake lets us talk to it: same protocol version, same cluster.
    pub fn accepts(&self, remote: &Handshake) -> Result<(), String> {
        if remote.protocol_version != self.protocol_version {
            return Err(format!(
                "peer speaks protocol version {}, this node {}",
                remote.protocol_version, self.protocol_version
            ));
        }
        if remote.cluster_id != self.cluster_id {
            return Err(format!(
                "peer belongs to cluster '{}', this node to '{}'",
                remote.cluster_id, self.cluster_id
            ));
        }
        Ok(())
    }
}
