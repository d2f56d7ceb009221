//! A leader endpoint learned from a fetch answer is dialled, and forgotten with it: a hostile
//! bootstrap server that names a new "leader" at some address in each answer must not leave the
//! node holding a connection to every address it ever named (they would fill the node's peer
//! slots, so that a voter added later is never dialled, and keep dialling until restart).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::cluster::raft_config;
use kraft::node::{NodeHandle, NodeOptions};
use kraft::protocol::{FrameCodec, Handshake, PROTOCOL_VERSION, PeerMessage};
use kraft::raft::{ErrorCode, FetchResponse, ListenerAddress, Request, Response};
use kraft::types::{Epoch, NodeId, Offset};
use kraft::uuid::Uuid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Decoder, Encoder};

const CLUSTER: &str = "dyn";
/// How many distinct leaders the hostile server names.
const NAMED_LEADERS: usize = 6;
/// How long the whole exchange may take on a loaded machine.
const SETTLE: Duration = Duration::from_secs(60);

fn partition(dir: &Path) -> PathBuf {
    dir.join("__raft_performance_test-0")
}

fn options(dir: &Path, bootstrap: String) -> NodeOptions {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    NodeOptions {
        cluster_id: CLUSTER.into(),
        node_id: Some(NodeId(2)),
        voters: Default::default(),
        voter_addresses: Vec::new(),
        listener: Some(listener),
        partition_dir: partition(dir),
        log: Default::default(),
        raft: Some(raft_config()),
        snapshots: Default::default(),
        state_machine: Default::default(),
        fs: None,
        connections: Default::default(),
        security: Default::default(),
        rack: None,
        directory_id: Some(Uuid([2; 16])),
        listener_name: Some("CONTROLLER".into()),
        bootstrap_servers: vec![bootstrap],
    }
}

async fn send(stream: &mut TcpStream, message: PeerMessage) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    FrameCodec.encode(message, &mut out).unwrap();
    stream.write_all(&out).await
}

async fn receive(stream: &mut TcpStream, input: &mut BytesMut) -> Option<PeerMessage> {
    loop {
        if let Ok(Some(frame)) = FrameCodec.decode(input) {
            return Some(frame);
        }
        if stream.read_buf(input).await.unwrap_or(0) == 0 {
            return None;
        }
    }
}

/// A sink that accepts connections and holds each until the node closes it, counting the open
/// ones.
async fn sink(listener: TcpListener, open: Arc<AtomicUsize>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let open = open.clone();
        open.fetch_add(1, Ordering::SeqCst);
        actix_rt::spawn(async move {
            let mut buf = [0u8; 1024];
            while stream.read(&mut buf).await.unwrap_or(0) > 0 {}
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// A bootstrap server that answers each fetch naming a new leader (ids 10, 11, ...) in a newer
/// epoch, listening at `sink_port`.
async fn hostile_bootstrap(listener: TcpListener, sink_port: u16, named: Arc<AtomicUsize>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let named = named.clone();
        actix_rt::spawn(async move {
            let mut input = BytesMut::new();
            while let Some(message) = receive(&mut stream, &mut input).await {
                let reply = match message {
                    PeerMessage::Handshake(_) => PeerMessage::Handshake(Handshake {
                        protocol_version: PROTOCOL_VERSION,
                        cluster_id: CLUSTER.into(),
                        node_id: Some(NodeId(99)),
                        rack: None,
                        directory_id: None,
                    }),
                    PeerMessage::Request {
                        correlation_id,
                        request: Request::Fetch(f),
                    } => {
                        let n = named.fetch_add(1, Ordering::SeqCst) as i32;
                        PeerMessage::Response {
                            correlation_id,
                            response: Response::Fetch(FetchResponse {
                                error: ErrorCode::None,
                                leader_id: Some(NodeId(10 + n)),
                                leader_epoch: Epoch(f.current_leader_epoch.0 + 1),
                                high_watermark: None,
                                log_start_offset: Offset(0),
                                diverging_epoch: None,
                                snapshot_id: None,
                                leader_endpoint: Some(ListenerAddress {
                                    host: "127.0.0.1".into(),
                                    port: sink_port,
                                }),
                                records: Bytes::new(),
                            }),
                        }
                    }
                    _ => continue,
                };
                if send(&mut stream, reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

#[actix_rt::test]
async fn leaders_named_by_a_hostile_bootstrap_server_are_not_all_kept_dialled() {
    let sink_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_port = sink_listener.local_addr().unwrap().port();
    let open = Arc::new(AtomicUsize::new(0));
    actix_rt::spawn(sink(sink_listener, open.clone()));
    let bootstrap_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bootstrap = bootstrap_listener.local_addr().unwrap().to_string();
    let named = Arc::new(AtomicUsize::new(0));
    actix_rt::spawn(hostile_bootstrap(
        bootstrap_listener,
        sink_port,
        named.clone(),
    ));

    let dir = tempfile::tempdir().unwrap();
    kraft::storage::write_joining_checkpoint(&partition(dir.path()), 0).unwrap();
    let node = NodeHandle::start(options(dir.path(), bootstrap))
        .await
        .unwrap();
    let deadline = Instant::now() + SETTLE;
    while named.load(Ordering::SeqCst) < NAMED_LEADERS {
        assert!(Instant::now() < deadline, "the node stopped asking");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    // Only the last leader named may still be dialled (its connection may be reconnecting).
    while open.load(Ordering::SeqCst) > 1 {
        assert!(
            Instant::now() < deadline,
            "{} connections to {} named leaders stay open",
            open.load(Ordering::SeqCst),
            named.load(Ordering::SeqCst)
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    node.shutdown().await;
}
