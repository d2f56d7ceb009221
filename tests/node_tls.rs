//! Mutual TLS between peers: three nodes whose certificates name their node ids commit as before;
//! a client without TLS, one without a certificate, one with a certificate from another CA, and
//! one with node 2's valid certificate claiming to be node 3 are each refused, and the quorum's
//! epoch and log do not move.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::cluster::{start_cluster_secured, wait_for_commit_everywhere, wait_for_leader};
use common::tls::{Identity, TestCa};
use kraft::node::SnapshotPolicy;
use kraft::protocol::{FrameCodec, Handshake, PROTOCOL_VERSION, PeerMessage};
use kraft::raft::{Request, VoteRequest};
use kraft::storage::LogConfig;
use kraft::types::{Epoch, NodeId, Offset};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

const WAIT: Duration = Duration::from_secs(10);

/// Sends `message` and returns the first frame back, or `None` once the node closed (or failed)
/// the connection.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    message: PeerMessage,
) -> Option<PeerMessage> {
    let mut out = BytesMut::new();
    FrameCodec.encode(message, &mut out).unwrap();
    if stream.write_all(&out).await.is_err() || stream.flush().await.is_err() {
        return None;
    }
    let mut input = BytesMut::new();
    loop {
        if let Ok(Some(frame)) = FrameCodec.decode(&mut input) {
            return Some(frame);
        }
        let read = actix_rt::time::timeout(WAIT, stream.read_buf(&mut input))
            .await
            .expect("the node neither answered nor closed");
        if read.unwrap_or(0) == 0 {
            return None;
        }
    }
}

fn hello(cluster: &str, id: Option<i32>) -> PeerMessage {
    PeerMessage::Handshake(Handshake {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: cluster.into(),
        node_id: id.map(NodeId),
        rack: None,
        directory_id: None,
    })
}

/// A TLS client trusting `ca`, presenting `identity` if any.
fn client(ca: &TestCa, identity: Option<&Identity>) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let chain = CertificateDer::pem_slice_iter(identity.chain_pem.as_bytes())
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Connects with TLS and handshakes as `id`: whether the node answered the handshake.
async fn handshake_over_tls(
    connector: tokio_rustls::TlsConnector,
    address: &str,
    cluster: &str,
    id: Option<i32>,
) -> Option<PeerMessage> {
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.ok()?;
    exchange(&mut tls, hello(cluster, id)).await
}

#[actix_rt::test]
async fn three_nodes_with_mutual_tls_commit_and_refuse_unauthenticated_peers() {
    let ca = TestCa::new("kraft test CA");
    let certs = tempfile::tempdir().unwrap();
    let security = (1..=3)
        .map(|id| ca.node_settings(id, certs.path()))
        .collect();
    let cluster = start_cluster_secured(
        "tls",
        3,
        LogConfig::default(),
        SnapshotPolicy::default(),
        security,
    )
    .await;
    let leader = wait_for_leader(&cluster, None).await;
    let node = cluster.nodes[leader].as_ref().unwrap();
    let (_, last) = node
        .append(vec![Bytes::from_static(b"over tls")])
        .await
        .unwrap();
    wait_for_commit_everywhere(&cluster, last).await;
    let before = node.describe().await.unwrap();
    let address = &cluster.addresses[leader].1;

    // A node id that is the leader's neighbour, so that a forged Vote would matter.
    let other = cluster.addresses[(leader + 1) % 3].0;
    let vote = PeerMessage::Request {
        correlation_id: 1,
        request: Request::Vote(VoteRequest {
            cluster_id: "tls".into(),
            voter_id: cluster.addresses[leader].0,
            candidate_epoch: Epoch(before.epoch.0 + 10),
            candidate_id: other,
            last_offset_epoch: before.epoch,
            last_offset: Offset(1_000_000),
            pre_vote: false,
            candidate_directory_id: None,
            voter_directory_id: None,
        }),
    };
    // 1. No TLS at all: the kraft handshake is not a ClientHello.
    let mut plain = tokio::net::TcpStream::connect(address).await.unwrap();
    assert_eq!(
        exchange(&mut plain, hello("tls", Some(other.0))).await,
        None
    );
    // 2. TLS without a certificate.
    let answer = handshake_over_tls(client(&ca, None), address, "tls", None).await;
    assert_eq!(answer, None, "a client without a certificate was served");
    // 3. A certificate from another CA (naming a voter).
    let stranger = TestCa::new("another CA");
    let foreign = stranger.identity(Some(other.0));
    let answer =
        handshake_over_tls(client(&ca, Some(&foreign)), address, "tls", Some(other.0)).await;
    assert_eq!(answer, None, "a certificate from another CA was accepted");
    // 4. Node 2's valid certificate, claiming to be node 3.
    let node2 = ca.identity(Some(2));
    let answer = handshake_over_tls(client(&ca, Some(&node2)), address, "tls", Some(3)).await;
    assert_eq!(answer, None, "node 2's certificate passed for node 3");
    // The honest identity of that certificate is accepted, and may speak only for node 2.
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = client(&ca, Some(&node2)).connect(name, tcp).await.unwrap();
    let answer = exchange(&mut tls, hello("tls", Some(2))).await;
    assert!(
        matches!(answer, Some(PeerMessage::Handshake(_))),
        "{answer:?}"
    );
    if other != NodeId(2) {
        assert_eq!(
            exchange(&mut tls, vote).await,
            None,
            "spoke for another node"
        );
    }

    let after = node.describe().await.unwrap();
    assert_eq!(
        (after.role, after.epoch, after.log_end_offset),
        (before.role, before.epoch, before.log_end_offset)
    );
    for node in cluster.nodes.iter().flatten() {
        node.shutdown().await;
    }
}

#[actix_rt::test]
async fn a_node_with_a_bad_key_file_does_not_start_and_names_the_key_and_file() {
    let ca = TestCa::new("kraft test CA");
    let certs = tempfile::tempdir().unwrap();
    let kraft::config::ListenerSecurity::Ssl(mut settings) = ca.node_settings(1, certs.path())
    else {
        unreachable!()
    };
    // Node 1's chain with node 2's key.
    let one = ca.identity(Some(1));
    let two = ca.identity(Some(2));
    let mismatched = certs.path().join("mismatched.pem");
    std::fs::write(&mismatched, format!("{}{}", two.key_pem, one.chain_pem)).unwrap();
    settings.keystore = kraft::config::KeyStore::File(mismatched.clone());
    let dir = tempfile::tempdir().unwrap();
    let mut options = common::cluster::single_node_options(dir.path(), &[1]);
    options.security = kraft::config::ListenerSecurity::Ssl(settings);
    let error = match kraft::node::NodeHandle::start(options).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a node started with a key that does not match its certificate"),
    };
    assert!(
        error.contains("ssl.keystore.location")
            && error.contains(&mismatched.display().to_string()),
        "{error}"
    );
}
