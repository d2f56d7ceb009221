//! The peer protocol's framing: every message round-trips, partial input waits, and bad input
//! (wrong magic, oversize length, corrupt payload, crafted lengths) is a clean error that never
//! panics or allocates past the limit.

use bytes::{BufMut, Bytes, BytesMut};
use kraft::protocol::{
    FrameCodec, FrameError, Handshake, MAGIC, MAX_FRAME_BYTES, PROTOCOL_VERSION, PeerMessage,
};
use kraft::raft::{
    BeginQuorumEpochRequest, EndQuorumEpochRequest, EpochResponse, ErrorCode, FetchRequest,
    FetchResponse, Request, Response, VoteRequest, VoteResponse,
};
use kraft::types::{Epoch, NodeId, Offset, OffsetAndEpoch};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

fn every_message() -> Vec<PeerMessage> {
    let vote = VoteRequest {
        cluster_id: "c1".into(),
        voter_id: NodeId(2),
        candidate_epoch: Epoch(7),
        candidate_id: NodeId(1),
        last_offset_epoch: Epoch(6),
        last_offset: Offset(1234),
        pre_vote: true,
        candidate_directory_id: None,
        voter_directory_id: None,
    };
    let fetch = FetchRequest {
        cluster_id: "c1".into(),
        replica_id: None,
        replica_directory_id: None,
        current_leader_epoch: Epoch(7),
        fetch_offset: Offset(99),
        last_fetched_epoch: Epoch(6),
        high_watermark: Some(Offset(90)),
        max_wait_ms: 500,
        max_bytes: 8 << 20,
    };
    let fetched = FetchResponse {
        error: ErrorCode::None,
        leader_id: Some(NodeId(1)),
        leader_epoch: Epoch(7),
        high_watermark: Some(Offset(100)),
        log_start_offset: Offset(0),
        diverging_epoch: Some(OffsetAndEpoch {
            offset: Offset(50),
            epoch: Epoch(3),
        }),
        snapshot_id: Some(OffsetAndEpoch {
            offset: Offset(40),
            epoch: Epoch(2),
        }),
        leader_endpoint: None,
        records: Bytes::from(vec![7u8; 100_000]),
    };
    let epoch = EpochResponse {
        error: ErrorCode::FencedLeaderEpoch,
        leader_id: None,
        leader_epoch: Epoch(9),
    };
    vec![
        PeerMessage::Handshake(Handshake {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: "c1".into(),
            node_id: Some(NodeId(3)),
            rack: None,
            directory_id: None,
        }),
        PeerMessage::Handshake(Handshake {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: String::new(),
            node_id: None,
            rack: None,
            directory_id: None,
        }),
        PeerMessage::Request {
            correlation_id: 1,
            request: Request::Vote(vote),
        },
        PeerMessage::Response {
            correlation_id: 1,
            response: Response::Vote(VoteResponse {
                error: ErrorCode::None,
                leader_id: None,
                leader_epoch: Epoch(7),
                vote_granted: true,
            }),
        },
        PeerMessage::Request {
            correlation_id: 2,
            request: Request::BeginQuorumEpoch(BeginQuorumEpochRequest {
                cluster_id: "c1".into(),
                voter_id: NodeId(2),
                voter_directory_id: None,
                leader_id: NodeId(1),
                leader_epoch: Epoch(7),
            }),
        },
        PeerMessage::Response {
            correlation_id: 2,
            response: Response::BeginQuorumEpoch(epoch.clone()),
        },
        PeerMessage::Request {
            correlation_id: 3,
            request: Request::EndQuorumEpoch(EndQuorumEpochRequest {
                cluster_id: "c1".into(),
                leader_id: NodeId(1),
                leader_epoch: Epoch(7),
                preferred_successors: vec![NodeId(3), NodeId(2)],
            }),
        },
        PeerMessage::Response {
            correlation_id: 3,
            response: Response::EndQuorumEpoch(epoch),
        },
        PeerMessage::Request {
            correlation_id: u64::MAX,
            request: Request::Fetch(fetch),
        },
        PeerMessage::Response {
            correlation_id: u64::MAX,
            response: Response::Fetch(fetched),
        },
    ]
}

fn encode(message: &PeerMessage) -> BytesMut {
    let mut buf = BytesMut::new();
    FrameCodec.encode(message, &mut buf).unwrap();
    buf
}

#[test]
fn every_message_round_trips_and_frames_concatenate() {
    let mut stream = BytesMut::new();
    for message in every_message() {
        let frame = encode(&message);
        assert_eq!(&frame[..4], &MAGIC);
        assert_eq!(
            frame[0], 0xFF,
            "the first byte tells peers from Kafka clients"
        );
        let mut one = frame.clone();
        assert_eq!(FrameCodec.decode(&mut one).unwrap(), Some(message));
        assert!(one.is_empty());
        stream.extend_from_slice(&frame);
    }
    let mut decoded = Vec::new();
    while let Some(m) = FrameCodec.decode(&mut stream).unwrap() {
        decoded.push(m);
    }
    assert_eq!(decoded, every_message());
}

#[test]
fn a_frame_arriving_byte_by_byte_is_decoded_once_complete() {
    let message = every_message().pop().unwrap();
    let frame = encode(&message);
    let mut buf = BytesMut::new();
    for (i, byte) in frame.iter().enumerate() {
        buf.put_u8(*byte);
        let result = FrameCodec.decode(&mut buf).unwrap();
        if i + 1 < frame.len() {
            assert_eq!(result, None);
        } else {
            assert_eq!(result, Some(message.clone()));
        }
    }
}

#[test]
fn bad_input_is_refused_cleanly() {
    // Not our magic, even before a full header: a Kafka request or garbage.
    let mut kafka = BytesMut::from(&[0x00, 0x00, 0x00, 0x2a, 0x00][..]);
    assert!(matches!(
        FrameCodec.decode(&mut kafka),
        Err(FrameError::BadMagic(_))
    ));
    let mut early = BytesMut::from(&[0xFF, b'X'][..]);
    assert!(matches!(
        FrameCodec.decode(&mut early),
        Err(FrameError::BadMagic(_))
    ));
    // A length over the limit is refused before anything is buffered.
    let mut huge = BytesMut::new();
    huge.put_slice(&MAGIC);
    huge.put_u32(u32::MAX);
    huge.put_u32(0);
    assert!(
        matches!(FrameCodec.decode(&mut huge), Err(FrameError::TooLarge(n)) if n == u32::MAX as usize)
    );
    assert!(huge.capacity() < 1 << 20);
    // A flipped payload bit.
    let mut flipped = encode(&every_message()[2]);
    let last = flipped.len() - 1;
    flipped[last] ^= 0x10;
    assert!(matches!(
        FrameCodec.decode(&mut flipped),
        Err(FrameError::CrcMismatch { .. })
    ));
}

/// A frame with a correct CRC around `payload`.
fn frame_of(payload: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_slice(&MAGIC);
    buf.put_u32(payload.len() as u32);
    buf.put_u32(crc32c::crc32c(payload));
    buf.put_slice(payload);
    buf
}

#[test]
fn a_valid_frame_around_a_crafted_payload_cannot_allocate_or_panic() {
    // Handshake variant (0), protocol version, then a string claiming 2^40 bytes (bincode's
    // varint: 0xFD = u64 follows, big-endian).
    let mut payload = vec![0x00, 0x00, 0x01, 0xFD];
    payload.extend_from_slice(&(1u64 << 40).to_be_bytes());
    payload.extend_from_slice(b"short");
    let err = FrameCodec.decode(&mut frame_of(&payload)).unwrap_err();
    assert!(matches!(err, FrameError::Payload(_)), "{err}");
    // Trailing bytes after a valid message are refused too.
    let mut valid = bincode::serde::encode_to_vec(
        &every_message()[0],
        bincode::config::standard().with_big_endian(),
    )
    .unwrap();
    valid.push(0);
    assert!(matches!(
        FrameCodec.decode(&mut frame_of(&valid)),
        Err(FrameError::Payload(_))
    ));
}

#[test]
fn the_limit_leaves_room_for_a_full_fetch_response() {
    let mut messages = every_message();
    let PeerMessage::Response {
        response: Response::Fetch(f),
        ..
    } = messages.last_mut().unwrap()
    else {
        panic!()
    };
    f.records = Bytes::from(vec![1u8; 8 * 1024 * 1024]);
    let message = messages.pop().unwrap();
    let mut frame = encode(&message);
    assert!(frame.len() - 12 <= MAX_FRAME_BYTES);
    assert_eq!(FrameCodec.decode(&mut frame).unwrap(), Some(message));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), framed in any::<bool>()) {
        let mut buf = if framed { frame_of(&bytes) } else { BytesMut::from(&bytes[..]) };
        for _ in 0..4 {
            match FrameCodec.decode(&mut buf) {
                Ok(Some(_)) => continue,
                _ => break,
            }
        }
    }
}
