//! The limits on a node's inbound connections, exercised with raw sockets against a running
//! single-voter node: the handshake deadline and its small frame limit, the idle timeout, one
//! outstanding request per channel, `max.connections` (the rest wait in the backlog) and
//! `max.connections.per.ip` (the extra one is closed at once). After each, the node still leads.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use kraft::config::ConnectionLimits;
use kraft::node::NodeHandle;
use kraft::protocol::{FrameCodec, Handshake, MAGIC, PROTOCOL_VERSION, PeerMessage};
use kraft::raft::{FetchRequest, Request, RoleKind};
use kraft::types::{Epoch, Offset};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, Encoder};

/// Longest any test waits for the node to answer or close (an upper bound, not a sleep).
const WAIT: Duration = Duration::from_secs(10);

fn limits() -> ConnectionLimits {
    ConnectionLimits {
        max_connections: 100,
        max_connections_per_ip: 100,
        idle: Duration::from_secs(60),
        handshake_timeout: Duration::from_secs(60),
    }
}

/// A single-voter node with a listener and these limits; returns it and its address.
async fn node(dir: &std::path::Path, connections: ConnectionLimits) -> (NodeHandle, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let mut options = common::cluster::single_node_options(dir, &[1]);
    options.listener = Some(listener);
    options.connections = connections;
    let node = NodeHandle::start(options).await.unwrap();
    common::cluster::wait_until_leader(&node).await;
    (node, address)
}

async fn send(stream: &mut TcpStream, message: PeerMessage) {
    let mut out = BytesMut::new();
    FrameCodec.encode(message, &mut out).unwrap();
    stream.write_all(&out).await.unwrap();
}

/// The next frame from the node, or `None` once it closed the connection; panics if it does
/// neither within `limit`.
async fn receive(stream: &mut TcpStream, limit: Duration) -> Option<PeerMessage> {
    let mut input = BytesMut::new();
    loop {
        if let Some(frame) = FrameCodec.decode(&mut input).unwrap() {
            return Some(frame);
        }
        let read = actix_rt::time::timeout(limit, stream.read_buf(&mut input))
            .await
            .expect("the node neither answered nor closed");
        if read.unwrap_or(0) == 0 {
            return None;
        }
    }
}

/// Whether the node answers within `limit` (false: still waiting, the connection open).
async fn answers_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut byte = [0u8; 1];
    actix_rt::time::timeout(limit, stream.peek(&mut byte))
        .await
        .is_ok()
}

fn hello() -> PeerMessage {
    PeerMessage::Handshake(Handshake {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: "single".into(),
        node_id: None,
        rack: None,
        directory_id: None,
    })
}

async fn handshaken(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    send(&mut stream, hello()).await;
    let answer = receive(&mut stream, WAIT).await;
    assert!(
        matches!(answer, Some(PeerMessage::Handshake(_))),
        "{answer:?}"
    );
    stream
}

async fn still_leads(node: &NodeHandle) {
    let status = node.describe().await.unwrap();
    assert_eq!(status.role, RoleKind::Leader);
}

#[actix_rt::test]
async fn a_connection_that_never_says_who_it_is_is_closed_at_the_handshake_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let connections = ConnectionLimits {
        handshake_timeout: Duration::from_millis(300),
        ..limits()
    };
    let (node, address) = node(dir.path(), connections).await;
    let mut silent = TcpStream::connect(&address).await.unwrap();
    let started = std::time::Instant::now();
    assert_eq!(receive(&mut silent, WAIT).await, None);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    still_leads(&node).await;
    node.shutdown().await;
}

#[actix_rt::test]
async fn a_large_frame_before_the_handshake_is_refused_without_waiting_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let (node, address) = node(dir.path(), limits()).await;
    let mut stream = TcpStream::connect(&address).await.unwrap();
    // A header announcing 8 MiB, and nothing after it: the node must not wait (or reserve).
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&(8u32 << 20).to_be_bytes());
    header.extend_from_slice(&0u32.to_be_bytes());
    stream.write_all(&header).await.unwrap();
    assert_eq!(receive(&mut stream, WAIT).await, None);
    still_leads(&node).await;
    node.shutdown().await;
}

#[actix_rt::test]
async fn an_idle_connection_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let connections = ConnectionLimits {
        idle: Duration::from_millis(300),
        ..limits()
    };
    let (node, address) = node(dir.path(), connections).await;
    let mut stream = handshaken(&address).await;
    let started = std::time::Instant::now();
    assert_eq!(receive(&mut stream, WAIT).await, None);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    node.shutdown().await;
}

fn fetch(offset: i64) -> PeerMessage {
    PeerMessage::Request {
        correlation_id: offset as u64,
        request: Request::Fetch(FetchRequest {
            cluster_id: "single".into(),
            replica_id: None,
            replica_directory_id: None,
            current_leader_epoch: Epoch(1),
            fetch_offset: Offset(offset),
            last_fetched_epoch: Epoch(1),
            high_watermark: None,
            max_wait_ms: 500,
            max_bytes: 1024,
        }),
    }
}

#[actix_rt::test]
async fn a_second_request_on_a_busy_channel_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (node, address) = node(dir.path(), limits()).await;
    let end = node.describe().await.unwrap().log_end_offset.0;
    // One fetch at the log end is answered after its long poll; pipelined ones are refused.
    let mut polite = handshaken(&address).await;
    send(&mut polite, fetch(end)).await;
    assert!(matches!(
        receive(&mut polite, WAIT).await,
        Some(PeerMessage::Response { .. })
    ));
    let mut pipelining = handshaken(&address).await;
    let mut both = BytesMut::new();
    FrameCodec.encode(fetch(end), &mut both).unwrap();
    FrameCodec.encode(fetch(end), &mut both).unwrap();
    pipelining.write_all(&both).await.unwrap();
    assert_eq!(receive(&mut pipelining, WAIT).await, None);
    still_leads(&node).await;
    node.shutdown().await;
}

#[actix_rt::test]
async fn beyond_max_connections_a_connection_waits_until_one_closes() {
    let dir = tempfile::tempdir().unwrap();
    let connections = ConnectionLimits {
        max_connections: 2,
        ..limits()
    };
    let (node, address) = node(dir.path(), connections).await;
    let first = handshaken(&address).await;
    let _second = handshaken(&address).await;
    let mut third = TcpStream::connect(&address).await.unwrap();
    send(&mut third, hello()).await;
    assert!(
        !answers_within(&mut third, Duration::from_millis(500)).await,
        "a third connection was served with max.connections=2"
    );
    drop(first);
    let answer = receive(&mut third, WAIT).await;
    assert!(
        matches!(answer, Some(PeerMessage::Handshake(_))),
        "{answer:?}"
    );
    still_leads(&node).await;
    node.shutdown().await;
}

#[actix_rt::test]
async fn beyond_max_connections_per_ip_the_extra_connection_is_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let connections = ConnectionLimits {
        max_connections_per_ip: 1,
        ..limits()
    };
    let (node, address) = node(dir.path(), connections).await;
    let first = handshaken(&address).await;
    let mut second = TcpStream::connect(&address).await.unwrap();
    assert_eq!(receive(&mut second, WAIT).await, None);
    drop(first);
    // The address's place is free again once the first connection is gone.
    let mut third = None;
    for _ in 0..100 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        send(&mut stream, hello()).await;
        if let Some(PeerMessage::Handshake(_)) = receive(&mut stream, WAIT).await {
            third = Some(stream);
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(third.is_some(), "the address never got its place back");
    still_leads(&node).await;
    node.shutdown().await;
}
