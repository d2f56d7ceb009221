//! The fuzz targets' bodies, one function per target, so that `fuzz/` (cargo fuzz, libFuzzer)
//! and a plain test that replays the committed corpora call the same code.
//!
//! Each takes arbitrary bytes and must never panic; the invariants it checks are asserted, so a
//! broken one is a crash the fuzzer reports. Owns no state but the TLS configurations, built
//! once from the test certificates embedded here, and does no IO outside a simulated disk and a
//! temporary file (TLS runs in memory, without sockets).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::protocol::{FrameCodec, InboundCodec, PeerMessage};
use crate::raft::{Input, LogView, RaftConfig, Replica, RequestId};
use crate::record::BatchIter;
use crate::storage::{Fs, LogConfig, QuorumStateFile, ReplicatedLog, SimFs};
use crate::types::{NodeId, Offset};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConnection, Connection, ServerConnection};

/// The peer frame decoders (before and after a handshake) over arbitrary bytes.
pub fn peer_frames(data: &[u8]) {
    let mut inbound = InboundCodec::default();
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = inbound.decode(&mut buf) {}
    let mut buf = BytesMut::from(data);
    while let Ok(Some(message)) = FrameCodec.decode(&mut buf) {
        if let PeerMessage::Request { request, .. } = &message {
            let _ = request.insanity();
        }
    }
}

/// The record batch decoder: every batch it accepts decodes its records without panicking.
pub fn record_batches(data: &[u8]) {
    for batch in BatchIter::new(Bytes::copy_from_slice(data)) {
        let Ok(batch) = batch else { break };
        let _ = batch.decode_records();
        assert!(batch.next_offset() > batch.base_offset());
    }
}

/// The `.properties` loader and the configuration checks over an arbitrary file.
pub fn properties(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::config::parse_pairs(text);
    let Ok(file) = tempfile_path() else { return };
    if std::fs::write(&file, text).is_ok() {
        let _ = crate::config::NodeConfig::load(&file, &Default::default(), &[]);
    }
    let _ = std::fs::remove_file(&file);
}

fn tempfile_path() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("kraft-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join("node.properties"))
}

/// The `quorum-state` parser over an arbitrary file.
pub fn quorum_state(data: &[u8]) {
    let disk = SimFs::new();
    let fs: Fs = Arc::new(disk.clone());
    let dir = Path::new("/p");
    let _ = fs.create_dir_all(dir);
    if write(&fs, &dir.join("quorum-state"), data) {
        let _ = QuorumStateFile::new_in(&fs, dir).read();
    }
}

/// Log recovery over arbitrary segment bytes (split into two segments at a point the input
/// picks): it refuses or recovers, and what it recovers reads back as valid batches.
pub fn log_recovery(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let cut = (split as usize * rest.len() / 256).min(rest.len());
    let (first, second) = rest.split_at(cut);
    let disk = SimFs::new();
    let fs: Fs = Arc::new(disk.clone());
    let dir = Path::new("/p");
    let _ = fs.create_dir_all(dir);
    let second_base = BatchIter::new(Bytes::copy_from_slice(first))
        .map_while(Result::ok)
        .last()
        .map_or(Offset(0), |b| b.next_offset());
    let ok = write(&fs, &dir.join("00000000000000000000.log"), first)
        && (second.is_empty()
            || write(&fs, &dir.join(format!("{:020}.log", second_base.0)), second));
    if !ok {
        return;
    }
    let Ok((log, _)) = ReplicatedLog::open_in(&fs, dir, LogConfig::default()) else {
        return;
    };
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let chunk = log.read(next, 1 << 20).expect("a recovered log reads back");
        let mut advanced = false;
        for batch in BatchIter::new(chunk) {
            let batch = batch.expect("recovery keeps only valid batches");
            assert_eq!(batch.base_offset(), next, "offsets continue");
            next = batch.next_offset();
            advanced = true;
        }
        assert!(advanced, "a read inside the log returns a batch");
    }
}

fn write(fs: &Fs, path: &Path, data: &[u8]) -> bool {
    fs.open(path, crate::storage::OpenMode::Truncate)
        .and_then(|f| f.write_all_at(data, 0))
        .is_ok()
}

/// The protocol core fed an arbitrary sequence of peer messages (framed as on the wire), as a
/// voter of three: it never panics, and its epoch and high watermark never go back.
pub fn core_messages(data: &[u8]) {
    let voters: BTreeSet<NodeId> = [1, 2, 3].map(NodeId).into();
    let config = RaftConfig::new("fuzz", Some(NodeId(1)), voters);
    let mut now = Duration::from_secs(1_000);
    let (mut replica, _) = Replica::start(config, None, LogView::empty(), now, 7);
    let mut buf = BytesMut::from(data);
    let (mut epoch, mut hw) = (replica.epoch(), replica.high_watermark());
    let mut step = 0u64;
    while let Ok(Some(message)) = FrameCodec.decode(&mut buf) {
        step += 1;
        now += Duration::from_millis(37 * (step % 11));
        let input = match message {
            PeerMessage::Request { request, .. } if request.insanity().is_none() => {
                Input::Request {
                    from: crate::raft::InboundId(step),
                    request,
                }
            }
            PeerMessage::Response {
                correlation_id,
                response,
            } if response.insanity().is_none() => Input::Response {
                from: NodeId(2 + (correlation_id % 2) as i32),
                request_id: RequestId(correlation_id % 8),
                response,
            },
            _ => Input::Tick,
        };
        let _ = replica.step(now, input);
        let _ = replica.step(now, Input::ElectionPersisted);
        assert!(replica.epoch() >= epoch, "the epoch went back");
        assert!(replica.epoch().0 >= 0, "a negative epoch");
        if let (Some(before), Some(after)) = (hw, replica.high_watermark()) {
            assert!(after >= before, "the high watermark went back");
        }
        epoch = replica.epoch();
        hw = replica.high_watermark().or(hw);
    }
}

// ---- TLS ------------------------------------------------------------------------------------

/// A test CA and node 1's certificate and key (`kraft://node/1`, `localhost`, `127.0.0.1`;
/// server and client auth, as the README's recipe makes them), generated once and embedded
/// because the fuzz body cannot depend on a certificate generator. Dated 2000 to 2125, so no
/// clock a test runs under finds them not yet valid or expired. Test material only: the key
/// is public.
const TLS_CA: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIBdTCCARygAwIBAgIUP/+VEzGb5SX39i7DYnz3ZfuUB7EwCgYIKoZIzj0EAwIw\n\
GDEWMBQGA1UEAwwNa3JhZnQtZnV6ei1jYTAgFw0wMDAxMDEwMDAwMDBaGA8yMTI1\n\
MTIzMTAwMDAwMFowGDEWMBQGA1UEAwwNa3JhZnQtZnV6ei1jYTBZMBMGByqGSM49\n\
AgEGCCqGSM49AwEHA0IABDH40x65q5mL610e5Ngxok1tkxSsOomPUQiyKcwmS3fD\n\
wlC4q2TcJ7pqEo20YPBBR/R8mIeGJrbrjJrbw2PwFzqjQjBAMA8GA1UdEwEB/wQF\n\
MAMBAf8wDgYDVR0PAQH/BAQDAgEGMB0GA1UdDgQWBBR4U5qUo6JrHiQaU9gvV0G4\n\
h2fbiTAKBggqhkjOPQQDAgNHADBEAiBUwJsH66GO4kcaoVnYbnhhANxM5L6WeZrD\n\
q6f+Hv5AYQIgUgwIvjodYCMkxNirIqG13ZJwdI+LCYpnk5J4L2hDvuA=\n\
-----END CERTIFICATE-----\n\
";

const TLS_NODE_CHAIN: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIBvDCCAWGgAwIBAgIUDx9pWYdinNld3EbKkKcnAsDYum8wCgYIKoZIzj0EAwIw\n\
GDEWMBQGA1UEAwwNa3JhZnQtZnV6ei1jYTAgFw0wMDAxMDEwMDAwMDBaGA8yMTI1\n\
MTIzMTAwMDAwMFowETEPMA0GA1UEAwwGbm9kZS0xMFkwEwYHKoZIzj0CAQYIKoZI\n\
zj0DAQcDQgAENtIkh8BdpKDsguqd6Y++3v0U6hg0mgWxqBgIwX+QbhVLW26Sut8A\n\
w9kMzqq500rvUUoyt6ye5wCMuP1nox/vKaOBjTCBijAMBgNVHRMBAf8EAjAAMA4G\n\
A1UdDwEB/wQEAwIHgDAdBgNVHSUEFjAUBggrBgEFBQcDAQYIKwYBBQUHAwIwKgYD\n\
VR0RBCMwIYYOa3JhZnQ6Ly9ub2RlLzGCCWxvY2FsaG9zdIcEfwAAATAfBgNVHSME\n\
GDAWgBR4U5qUo6JrHiQaU9gvV0G4h2fbiTAKBggqhkjOPQQDAgNJADBGAiEA8sjK\n\
EHSah+05o2IZsm4j+sURHKimd7In5zsZQ77HEboCIQDtVkI8BsafXAtrr3mrGEOP\n\
FQcOBJxgzyJUA+m/jIZBjw==\n\
-----END CERTIFICATE-----\n\
";

const TLS_NODE_KEY: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgHk9qHqDxm0JgdnrT\n\
txt1U+289J2xfgA0fzJs//QZz8qhRANCAAQ20iSHwF2koOyC6p3pj77e/RTqGDSa\n\
BbGoGAjBf5BuFUtbbpK63wDD2QzOqrnTSu9RSjK3rJ7nAIy4/WejH+8p\n\
-----END PRIVATE KEY-----\n\
";

/// kraft's TLS for node 1 as the node builds it from its settings: with the host name check
/// (the default) and without (`ssl.endpoint.identification.algorithm=`).
fn node_tls() -> &'static (crate::security::PeerTls, crate::security::PeerTls) {
    static TLS: OnceLock<(crate::security::PeerTls, crate::security::PeerTls)> = OnceLock::new();
    TLS.get_or_init(|| {
        let load = |check_hostname| {
            let settings = crate::config::TlsSettings {
                keystore: crate::config::KeyStore::Inline {
                    chain: TLS_NODE_CHAIN.into(),
                    key: TLS_NODE_KEY.into(),
                },
                truststore: crate::config::TrustStore::Inline(TLS_CA.into()),
                check_hostname,
                scoped_keys: Default::default(),
            };
            // Constants of this file, not input: a failure is a broken build, found by the
            // corpus replay at once.
            crate::security::PeerTls::load(&settings).expect("the embedded certificates load")
        };
        (load(true), load(false))
    })
}

/// The host name a fuzzed client dials (its certificate names it).
fn tls_host() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("a valid DNS name")
}

/// kraft's TLS handshake, in memory, against an arbitrary peer. The first byte picks what is
/// fuzzed, the rest is what the peer sends:
/// - 0: the server side (a node accepting a peer); the bytes are the client's flights;
/// - 1: the client side (a node dialing a voter), checking the host name; the bytes are the
///   server's flights;
/// - 2: the client side without the host name check (kraft's own verifier wrapper);
/// - 3: the node id a certificate names, over the bytes as a DER certificate.
///
/// Whatever arrives, the connection refuses it (with an alert) or goes on, never panics.
pub fn tls_handshake(data: &[u8]) {
    let Some((&mode, peer)) = data.split_first() else {
        return;
    };
    let (checked, any_host) = node_tls();
    let connection: Result<Connection, rustls::Error> = match mode % 4 {
        0 => ServerConnection::new(checked.server_config()).map(Connection::from),
        1 => ClientConnection::new(checked.client_config(), tls_host()).map(Connection::from),
        2 => ClientConnection::new(any_host.client_config(), tls_host()).map(Connection::from),
        _ => {
            let _ = crate::security::node_ids_named(&CertificateDer::from(peer));
            return;
        }
    };
    if let Ok(connection) = connection {
        feed_tls(connection, peer);
    }
}

/// Hands `input` to `connection` as it would arrive from the socket, processing every read and
/// sending (into nothing) whatever it answers, until the input is used up or refused.
fn feed_tls(mut connection: Connection, mut input: &[u8]) {
    let mut sink = std::io::sink();
    loop {
        while connection.wants_write() {
            if connection.write_tls(&mut sink).is_err() {
                return;
            }
        }
        if input.is_empty() {
            return;
        }
        match connection.read_tls(&mut input) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if connection.process_new_packets().is_err() {
            // The alert a refused peer is sent.
            let _ = connection.write_tls(&mut sink);
            return;
        }
        let mut plaintext = [0u8; 4096];
        while matches!(connection.reader().read(&mut plaintext), Ok(n) if n > 0) {}
    }
}

/// Seeds for [`tls_handshake`], from real in-memory handshakes with the same certificates:
/// the client's flights of a TLS 1.3 and a TLS 1.2 handshake with kraft's server, its first
/// flight alone (the ClientHello), the server's flights of a TLS 1.3 and a TLS 1.2 handshake
/// with kraft's client, and node 1's certificate. Panics if a handshake does not complete:
/// the embedded certificates no longer work, and the target would only fuzz refusals.
pub fn tls_handshake_seeds() -> Vec<Vec<u8>> {
    let (checked, any_host) = node_tls();
    let tls12 = [&rustls::version::TLS12];
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = CertificateDer::pem_slice_iter(TLS_NODE_CHAIN.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("the embedded chain");
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(TLS_NODE_KEY.as_bytes())
        .expect("the embedded key");
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(TLS_CA.as_bytes()) {
        roots
            .add(ca.expect("the embedded CA"))
            .expect("a usable CA");
    }
    let roots = Arc::new(roots);
    // TLS 1.2 peers, so that the seeds hold the certificates in the clear (TLS 1.3 encrypts
    // them under keys a replay cannot share).
    let client12 = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&tls12)
        .expect("TLS 1.2 with ring")
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(chain.clone(), key.clone_key())
        .expect("the embedded key goes with the chain");
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .expect("a client verifier");
    let server12 = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&tls12)
        .expect("TLS 1.2 with ring")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key)
        .expect("the embedded key goes with the chain");
    let client = |config: Arc<rustls::ClientConfig>| {
        ClientConnection::new(config, tls_host()).expect("a client connection")
    };
    let server = |config: Arc<rustls::ServerConfig>| {
        ServerConnection::new(config).expect("a server connection")
    };
    let (client13, server13) = handshake(
        client(checked.client_config()),
        server(checked.server_config()),
    );
    let (client12, _) = handshake(client(Arc::new(client12)), server(checked.server_config()));
    let (_, server12) = handshake(client(any_host.client_config()), server(Arc::new(server12)));
    let mut hello = Vec::new();
    client(checked.client_config())
        .write_tls(&mut hello)
        .expect("a ClientHello");
    let seed = |mode: u8, bytes: &[u8]| [&[mode][..], bytes].concat();
    vec![
        seed(0, &client13),
        seed(0, &client12),
        seed(0, &hello),
        seed(1, &server13),
        seed(2, &server12),
        seed(3, chain[0].as_ref()),
    ]
}

/// Runs a handshake between `client` and `server` in memory; returns what each sent.
fn handshake(mut client: ClientConnection, mut server: ServerConnection) -> (Vec<u8>, Vec<u8>) {
    let (mut from_client, mut from_server) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        let sent = from_client.len();
        while client.wants_write() {
            client
                .write_tls(&mut from_client)
                .expect("writes to memory");
        }
        let mut flight = &from_client[sent..];
        while !flight.is_empty() {
            server.read_tls(&mut flight).expect("reads from memory");
            server
                .process_new_packets()
                .expect("the server takes the client's flight");
        }
        let sent = from_server.len();
        while server.wants_write() {
            server
                .write_tls(&mut from_server)
                .expect("writes to memory");
        }
        let mut flight = &from_server[sent..];
        while !flight.is_empty() {
            client.read_tls(&mut flight).expect("reads from memory");
            client
                .process_new_packets()
                .expect("the client takes the server's flight");
        }
        if !client.is_handshaking() && !server.is_handshaking() {
            return (from_client, from_server);
        }
    }
    panic!("the in-memory handshake did not complete");
}

/// The Kafka face over arbitrary bytes from a client: framing, the bounds walk, decoding, and
/// every pure answer to what decodes (produced batches validated and decompressed); each answer
/// must encode at the request's version.
pub fn kafka_requests(data: &[u8]) {
    use crate::kafka::{KafkaCodec, KafkaRequest, Parsed, cluster, fetch, offsets, produce};
    use crate::kafka::{quorum, response::encode, voters};
    let view = fuzz_quorum_view();
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = KafkaCodec.decode(&mut buf) {
        let Ok(Parsed::Request { meta, request }) = crate::kafka::request::parse(frame) else {
            continue;
        };
        let (c, v) = (meta.correlation_id, meta.version);
        let encoded = match *request {
            KafkaRequest::ApiVersions(_) => encode(c, v, &cluster::api_versions()).map(drop),
            KafkaRequest::Metadata(r) => encode(c, v, &cluster::metadata(&r, v, &view)).map(drop),
            KafkaRequest::DescribeCluster(r) => {
                encode(c, v, &cluster::describe_cluster(&r, v, &view)).map(drop)
            }
            KafkaRequest::FindCoordinator(r) => {
                encode(c, v, &cluster::find_coordinator(&r, v)).map(drop)
            }
            KafkaRequest::DescribeQuorum(r) => {
                encode(c, v, &quorum::describe_quorum(&r, v, &view)).map(drop)
            }
            KafkaRequest::ListOffsets(r) => {
                let found = offsets::searches(&r, v)
                    .into_iter()
                    .map(|t| (t, Some((12, t))))
                    .collect();
                encode(c, v, &offsets::list_offsets(&r, v, &view, &found)).map(drop)
            }
            KafkaRequest::Fetch(r) => {
                let _ = fetch::plan(&r, v, &view);
                let answer = fetch::answer(&r, v, &view, Bytes::new(), Some(NodeId(2)));
                encode(c, v, &answer).map(drop)
            }
            KafkaRequest::Produce(r) => {
                let outcome = match produce::check(&r, v, &view) {
                    Some(Ok(_)) | None => Ok(Offset(7)),
                    Some(Err(refusal)) => Err(refusal),
                };
                encode(c, v, &produce::answer(&r, v, &view, outcome)).map(drop)
            }
            KafkaRequest::InitProducerId(_) => Ok(()),
            KafkaRequest::AddRaftVoter(r) => {
                let result = voters::check_add(&r.request, &view).map(drop);
                encode(c, 0, &voters::add_answer(result)).map(drop)
            }
            KafkaRequest::RemoveRaftVoter(r) => {
                let result = voters::check_remove(&r, &view).map(drop);
                encode(c, v, &voters::remove_answer(result)).map(drop)
            }
            KafkaRequest::UpdateRaftVoter(r) => {
                let result = voters::check_update(&r, &view).map(drop);
                encode(c, v, &voters::update_answer(result, &view)).map(drop)
            }
        };
        if let Err(e) = encoded {
            panic!(
                "{:?} v{v}: an answer that does not encode: {e}",
                meta.api_key
            );
        }
    }
}

fn fuzz_quorum_view() -> crate::kafka::QuorumView {
    use crate::kafka::Endpoint;
    crate::kafka::QuorumView {
        cluster_id: "fuzz".into(),
        local_id: Some(NodeId(1)),
        endpoints: (1..=3)
            .filter_map(|i| Endpoint::parse(NodeId(i), &format!("localhost:{}", 9090 + i)))
            .collect(),
        listener_name: Some("CONTROLLER".into()),
        leader_id: Some(NodeId(1)),
        epoch: crate::types::Epoch(3),
        is_leader: true,
        high_watermark: Some(Offset(10)),
        log_start_offset: Offset(0),
        log_end_offset: Offset(12),
        voter_progress: [(NodeId(2), Some(Offset(12))), (NodeId(3), None)].into(),
        racks: [(NodeId(2), "r2".to_string())].into(),
        voter_times: [(NodeId(2), (Some(5), Some(4)))].into(),
        observers: [(
            NodeId(7),
            crate::kafka::ReplicaReport {
                log_end_offset: Some(Offset(9)),
                last_fetch_ms: Some(5),
                last_caught_up_ms: None,
            },
        )]
        .into(),
        voter_set: Default::default(),
        now_ms: 6,
        directory_ids: [(NodeId(1), uuid::Uuid::from_u64_pair(1, 1))].into(),
    }
}
