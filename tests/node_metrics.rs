//! Node metrics end to end: a three-node quorum's metrics endpoints, scraped over HTTP, report
//! what `describe()` reports (leader, epoch, high watermark, log end offset, state) and what
//! `NodeHandle::metrics` returns; the endpoint refuses what is not a `GET /metrics` and closes
//! connections that send nothing, and sheds connections over its limit.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::cluster::{start_cluster, wait_for_commit_everywhere, wait_for_leader};
use kraft::actors::messages::AppendError;
use kraft::metrics::http::{MAX_CONNECTIONS, MAX_HEAD_BYTES, READ_TIMEOUT};
use kraft::metrics::{BatchRejection, FrameRejection};
use kraft::node::{NodeHandle, Status};
use kraft::raft::RoleKind;
use kraft::types::Offset;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request` raw and returns everything the server answers until it closes.
async fn exchange(address: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// `GET /metrics`, parsed: series (name with labels) → value.
async fn scrape(address: std::net::SocketAddr) -> BTreeMap<String, f64> {
    let answer = exchange(address, b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").await;
    let (head, body) = answer.split_once("\r\n\r\n").expect("a complete response");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: application/openmetrics-text"),
        "{head}"
    );
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(length, body.len());
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse::<f64>().unwrap())
        })
        .collect()
}

/// The state name Kafka reports for a voter in `role`.
fn kafka_state(role: RoleKind) -> &'static str {
    match role {
        RoleKind::Leader => "leader",
        RoleKind::Follower => "follower",
        RoleKind::Candidate => "candidate",
        RoleKind::Prospective => "prospective",
        RoleKind::Unattached | RoleKind::Resigned => "unattached",
    }
}

/// The Kafka gauges a scrape and a status should agree on, from each.
fn from_scrape(m: &BTreeMap<String, f64>) -> Vec<(String, i64)> {
    let state = m
        .iter()
        .find_map(|(k, v)| {
            (*v == 1.0)
                .then(|| k.strip_prefix("kafka_server_raft_metrics_current_state_info{state=\""))
                .flatten()
        })
        .map(|s| s.trim_end_matches("\"}").to_string())
        .unwrap_or_default();
    let get = |name: &str| m[&format!("kafka_server_raft_metrics_{name}")] as i64;
    vec![
        (state, 0),
        ("leader".into(), get("current_leader")),
        ("epoch".into(), get("current_epoch")),
        ("high_watermark".into(), get("high_watermark")),
        ("log_end_offset".into(), get("log_end_offset")),
        (
            "appended_records".into(),
            m["kraft_appended_records_total"] as i64,
        ),
    ]
}

fn from_status(s: &Status) -> Vec<(String, i64)> {
    vec![
        (kafka_state(s.role).into(), 0),
        ("leader".into(), s.leader_id.map_or(-1, |n| n.0.into())),
        ("epoch".into(), s.epoch.0.into()),
        (
            "high_watermark".into(),
            s.high_watermark.map_or(-1, |o| o.0),
        ),
        ("log_end_offset".into(), s.log_end_offset.0),
        ("appended_records".into(), s.appended_records as i64),
    ]
}

/// Scrapes `node` until its endpoint agrees with `describe()` (the values move while the
/// quorum settles); returns the last scrape.
async fn scrape_agreeing(
    node: &NodeHandle,
    address: std::net::SocketAddr,
) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let before = node.describe().await.unwrap();
        let scraped = scrape(address).await;
        let after = node.describe().await.unwrap();
        if from_status(&before) == from_status(&after)
            && from_scrape(&scraped) == from_status(&after)
        {
            return scraped;
        }
        assert!(
            Instant::now() < deadline,
            "the scrape never agreed with describe(): {:?} vs {:?}",
            from_scrape(&scraped),
            from_status(&after)
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn every_nodes_endpoint_reports_what_describe_reports() {
    let cluster = start_cluster("metrics", 3).await;
    let leader = wait_for_leader(&cluster, None).await;
    let leader_node = cluster.nodes[leader].as_ref().unwrap();
    let mut last = Offset(0);
    for i in 0..10 {
        let value = Bytes::from(format!("record-{i}"));
        last = leader_node
            .append(vec![value.clone(), value])
            .await
            .unwrap()
            .1;
    }
    wait_for_commit_everywhere(&cluster, last).await;

    let mut endpoints = Vec::new();
    for node in cluster.nodes.iter().flatten() {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        endpoints.push(node.serve_metrics(socket).unwrap());
    }
    for (i, (node, endpoint)) in cluster.nodes.iter().flatten().zip(&endpoints).enumerate() {
        // A follower's flush of what it fetched may still be running (fsync on a busy disk).
        wait_for_metrics(node, "a completed fsync", |m| m.fsyncs >= 1).await;
        let m = scrape_agreeing(node, endpoint.local_addr()).await;
        let status = node.describe().await.unwrap();
        assert!(status.high_watermark.unwrap() > last);
        // The library's own reading is the same registry.
        let lib = node.metrics();
        assert_eq!(
            lib.raft.current_epoch,
            m["kafka_server_raft_metrics_current_epoch"] as i64
        );
        assert_eq!(
            lib.raft.log_end_epoch,
            m["kafka_server_raft_metrics_log_end_epoch"] as i64
        );
        assert_eq!(lib.raft.log_end_epoch, i64::from(status.epoch.0));
        assert_eq!(
            m["kraft_appended_bytes_total"] as u64,
            status.appended_bytes
        );
        assert!(m["kraft_fsync_duration_seconds_count"] >= 1.0, "{m:?}");
        assert!(m["kraft_connections"] >= 1.0, "peers are connected: {m:?}");
        assert_eq!(
            m["kafka_server_raft_metrics_number_unknown_voter_connections"],
            0.0
        );
        let commit_avg = m["kafka_server_raft_metrics_commit_latency_avg"];
        if i == leader {
            assert_eq!(status.role, RoleKind::Leader);
            assert_eq!(
                m["kafka_server_raft_metrics_current_vote"],
                status.node_id.unwrap().0 as f64
            );
            // 20 records appended as leader within the window.
            assert!(
                m["kafka_server_raft_metrics_append_records_rate"] > 0.0,
                "{m:?}"
            );
            assert_eq!(m["kafka_server_raft_metrics_fetch_records_rate"], 0.0);
            // Leader only, per record: committed batches were measured.
            assert!(commit_avg >= 0.0, "{m:?}");
            assert!(m["kafka_server_raft_metrics_commit_latency_max"] >= commit_avg);
            // It stood as a candidate before it led.
            assert!(
                m["kafka_server_raft_metrics_election_latency_max"] >= 0.0,
                "{m:?}"
            );
        } else {
            assert_eq!(status.role, RoleKind::Follower);
            assert!(
                m["kafka_server_raft_metrics_fetch_records_rate"] > 0.0,
                "{m:?}"
            );
            assert_eq!(m["kafka_server_raft_metrics_append_records_rate"], 0.0);
            assert!(commit_avg.is_nan(), "commit latency is the leader's: {m:?}");
        }
        let idle = m["kafka_server_raft_metrics_poll_idle_ratio_avg"];
        assert!((0.0..=1.0).contains(&idle), "{idle}");
    }
    for node in cluster.nodes.iter().flatten() {
        node.shutdown().await;
    }
}

/// A node with its endpoint.
async fn single_node_endpoint(
    dir: &std::path::Path,
) -> (NodeHandle, kraft::metrics::MetricsEndpoint) {
    let node = NodeHandle::start(common::cluster::single_node_options(dir, &[1]))
        .await
        .unwrap();
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = node.serve_metrics(socket).unwrap();
    (node, endpoint)
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or_default()
}

#[actix_rt::test]
async fn the_endpoint_answers_only_get_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (node, endpoint) = single_node_endpoint(dir.path()).await;
    let address = endpoint.local_addr();
    let cases: [(&[u8], &str); 6] = [
        (
            b"POST /metrics HTTP/1.1\r\n\r\n",
            "HTTP/1.1 405 Method Not Allowed",
        ),
        (b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
        (
            b"GET /metrics/../etc HTTP/1.1\r\n\r\n",
            "HTTP/1.1 404 Not Found",
        ),
        (b"GET /metrics SPDY/3\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"\x00\xff\xfe garbage\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"GET /metrics?name=x HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK"),
    ];
    for (request, expected) in cases {
        let answer = exchange(address, request).await;
        assert_eq!(status_line(&answer), expected, "{request:?}");
    }
    let answer = exchange(address, b"DELETE /metrics HTTP/1.1\r\n\r\n").await;
    assert!(answer.contains("Allow: GET\r\n"), "{answer}");
    // A head larger than the limit is refused without reading the rest.
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', MAX_HEAD_BYTES + 1));
    let answer = exchange(address, &huge).await;
    assert_eq!(
        status_line(&answer),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // Still serving.
    assert!(
        scrape(address)
            .await
            .contains_key("kraft_appended_bytes_total")
    );
    node.shutdown().await;
}

#[actix_rt::test]
async fn idle_connections_are_closed_and_excess_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (node, endpoint) = single_node_endpoint(dir.path()).await;
    let address = endpoint.local_addr();
    // Fill every slot with a connection that sends half a head and then nothing (slowloris).
    let mut idle = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        let mut s = TcpStream::connect(address).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
        idle.push(s);
    }
    // One more is told at once that the endpoint is busy.
    let started = Instant::now();
    let answer = exchange(address, b"GET /metrics HTTP/1.1\r\n\r\n").await;
    assert_eq!(status_line(&answer), "HTTP/1.1 503 Service Unavailable");
    assert!(started.elapsed() < READ_TIMEOUT);
    // The idle ones are closed once the read timeout passes, without an answer.
    for mut s in idle {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(READ_TIMEOUT * 3, s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "an idle connection stayed open");
        assert!(buf.is_empty(), "{}", String::from_utf8_lossy(&buf));
    }
    assert!(started.elapsed() >= READ_TIMEOUT - Duration::from_millis(100));
    // With the slots free again, scrapes are served.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = exchange(address, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        if status_line(&answer) == "HTTP/1.1 200 OK" {
            break;
        }
        assert!(Instant::now() < deadline, "{answer}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    node.shutdown().await;
}

/// Polls `condition` on the node's metrics until it holds (they are recorded by other actors).
async fn wait_for_metrics(
    node: &NodeHandle,
    what: &str,
    condition: impl Fn(&kraft::metrics::MetricsSnapshot) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition(&node.metrics()) {
        assert!(Instant::now() < deadline, "{what}: {:?}", node.metrics());
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

fn rejected_frames(m: &kraft::metrics::MetricsSnapshot, reason: FrameRejection) -> u64 {
    m.rejected_frames
        .iter()
        .find(|(r, _)| *r == reason)
        .map_or(0, |(_, n)| *n)
}

#[actix_rt::test]
async fn refused_frames_connections_and_snapshots_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let mut options = common::cluster::single_node_options(dir.path(), &[1]);
    options.listener = Some(listener);
    let partition = options.partition_dir.clone();
    let node = NodeHandle::start(options).await.unwrap();
    common::cluster::wait_until_leader(&node).await;
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = node.serve_metrics(socket).unwrap();

    // A Kafka client request announcing 2 GiB (a Metadata request: api key 3, version 0) is
    // refused from its size and api key, and its connection closed.
    let mut client = TcpStream::connect(address).await.unwrap();
    let mut head = 0x7fff_ffffu32.to_be_bytes().to_vec();
    head.extend_from_slice(&[0, 3, 0, 0]);
    client.write_all(&head).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut rest)).await;
    // A peer frame that does not decode: the magic byte, then a header of nonsense.
    let mut peer = TcpStream::connect(address).await.unwrap();
    let mut junk = kraft::protocol::MAGIC.to_vec();
    junk.extend_from_slice(&[0u8; 8]);
    junk.extend_from_slice(&[0xAB; 8]);
    peer.write_all(&junk).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), peer.read_to_end(&mut rest)).await;
    wait_for_metrics(&node, "two refused frames, two closed connections", |m| {
        rejected_frames(m, FrameRejection::KafkaRequest) == 1
            && rejected_frames(m, FrameRejection::PeerBadFrame) == 1
            && m.connections_accepted == 2
            && m.connections_open == 0
    })
    .await;

    // A proposal too large for one batch is refused by the core, and counted.
    let huge = Bytes::from(vec![0u8; kraft::record::MAX_BATCH_BYTES + 1]);
    assert_eq!(node.append(vec![huge]).await, Err(AppendError::TooLarge));
    let refused = node.metrics().rejected_batches;
    assert!(
        refused.contains(&(BatchRejection::ProposedTooLarge, 1)),
        "{refused:?}"
    );
    assert_eq!(refused.iter().map(|(_, n)| n).sum::<u64>(), 1);

    // A snapshot: its size is the file's.
    node.append(vec![Bytes::from_static(b"some state")])
        .await
        .unwrap();
    let id = node.take_snapshot().await.unwrap().expect("a new snapshot");
    let file = partition.join(kraft::storage::snapshot_file_name(id));
    let size = std::fs::metadata(&file).unwrap().len();
    let m = node.metrics();
    assert_eq!((m.snapshots_written, m.snapshot_bytes_sum), (1, size));

    // The endpoint says the same.
    let scraped = scrape(endpoint.local_addr()).await;
    for (series, value) in [
        ("kraft_rejected_frames_total{reason=\"kafka_request\"}", 1.0),
        (
            "kraft_rejected_frames_total{reason=\"peer_bad_frame\"}",
            1.0,
        ),
        (
            "kraft_rejected_frames_total{reason=\"peer_pipelined\"}",
            0.0,
        ),
        (
            "kraft_rejected_batches_total{reason=\"proposed_too_large\"}",
            1.0,
        ),
        ("kraft_connections_accepted_total", 2.0),
        ("kraft_connections", 0.0),
        ("kraft_snapshot_size_bytes_count", 1.0),
        ("kraft_snapshot_size_bytes_sum", size as f64),
        ("kraft_snapshot_write_duration_seconds_count", 1.0),
    ] {
        assert_eq!(scraped.get(series), Some(&value), "{series}: {scraped:?}");
    }
    node.shutdown().await;
}
