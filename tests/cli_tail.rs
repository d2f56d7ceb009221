//! `kraft tail` as a process: a signal ends it promptly even when its stdout is a pipe nobody
//! reads (the printing thread blocked in a write) and records are queued behind it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::process::start_three_with;

/// The high watermark `kraft quorum describe --status` reports through `bootstrap`, if any.
fn high_watermark(bootstrap: &str) -> Option<i64> {
    let out = Command::new(env!("CARGO_BIN_EXE_kraft"))
        .args([
            "quorum",
            "--bootstrap-controller",
            bootstrap,
            "describe",
            "--status",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("HighWatermark:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Three servers writing `throughput` records a second, once something has committed; and the
/// bootstrap address of the first.
fn committing_quorum(
    dir: &std::path::Path,
    throughput: i64,
) -> (Vec<Option<common::process::Server>>, String) {
    let (_configs, servers, ports) = start_three_with(dir, throughput);
    let bootstrap = format!("localhost:{}", ports[0]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while high_watermark(&bootstrap).is_none_or(|hw| hw < 1) {
        assert!(Instant::now() < deadline, "the quorum never committed");
        std::thread::sleep(Duration::from_millis(100));
    }
    (servers, bootstrap)
}

/// `kraft tail [flags] --bootstrap-controller bootstrap`.
fn spawn_tail(flags: &[&str], bootstrap: &str, stdout: Stdio, stderr: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kraft"))
        .arg("tail")
        .args(flags)
        .args(["--bootstrap-controller", bootstrap])
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap()
}

#[test]
fn sigterm_ends_a_tail_whose_stdout_nobody_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (_servers, bootstrap) = committing_quorum(dir.path(), 2000);
    let mut tail = spawn_tail(&[], &bootstrap, Stdio::piped(), Stdio::null());
    // Read one line, to know the tail prints, then read no more.
    let mut stdout = BufReader::new(tail.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let first: i64 = first.split_whitespace().nth(1).unwrap().parse().unwrap();
    // Each record is a line of over 500 bytes: 2,000 more records are far more than a pipe
    // holds, so the printer is blocked in a write once they commit.
    let deadline = Instant::now() + Duration::from_secs(30);
    while high_watermark(&bootstrap).is_none_or(|hw| hw < first + 2_000) {
        assert!(Instant::now() < deadline, "the quorum stopped committing");
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = Command::new("kill")
        .args(["-TERM", &tail.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(status) = tail.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() >= deadline {
            let _ = tail.kill();
            let _ = tail.wait();
            panic!("kraft tail still running 10 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
}

/// A one-connection bootstrap node that answers each DescribeCluster with `brokers`
/// (id, port), as a broken or hostile server might.
fn fake_bootstrap(brokers: Vec<(i32, i32)>) -> String {
    use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
    use kafka_protocol::messages::{BrokerId, DescribeClusterResponse, ResponseHeader};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let Ok((mut socket, _)) = listener.accept() else {
            return;
        };
        let mut size = [0u8; 4];
        while socket.read_exact(&mut size).is_ok() {
            let mut request = vec![0u8; u32::from_be_bytes(size) as usize];
            if socket.read_exact(&mut request).is_err() {
                return;
            }
            let correlation_id = i32::from_be_bytes(request[4..8].try_into().unwrap());
            let mut answer = DescribeClusterResponse::default();
            answer.cluster_id = StrBytes::from_static_str("fake");
            answer.controller_id = BrokerId(brokers.first().map_or(-1, |b| b.0));
            answer.brokers = brokers
                .iter()
                .map(|(id, port)| {
                    let mut b = DescribeClusterBroker::default();
                    b.broker_id = BrokerId(*id);
                    b.host = StrBytes::from_static_str("127.0.0.1");
                    b.port = *port;
                    b
                })
                .collect();
            let mut header = ResponseHeader::default();
            header.correlation_id = correlation_id;
            let mut body = bytes::BytesMut::new();
            header.encode(&mut body, 1).unwrap();
            answer.encode(&mut body, 1).unwrap();
            let mut frame = (body.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&body);
            if socket.write_all(&frame).is_err() {
                return;
            }
        }
    });
    address
}

#[test]
fn a_bootstrap_node_listing_bad_voters_is_one_line_not_a_dial() {
    let cases: Vec<(Vec<(i32, i32)>, &str)> = vec![
        (vec![(1, 70_000)], "node 1 has port 70000"),
        (vec![(1, -1)], "node 1 has port -1"),
        ((1..=500).map(|i| (i, 1)).collect(), "lists 500 voters"),
        (vec![(1, 1), (1, 2)], "voter 1 twice"),
        (vec![(-3, 1)], "id -3"),
    ];
    for (brokers, needle) in cases {
        let bootstrap = fake_bootstrap(brokers);
        let mut tail = spawn_tail(
            &["--from-beginning"],
            &bootstrap,
            Stdio::null(),
            Stdio::piped(),
        );
        // Without the checks the tail dials the listed voters and waits for a leader for good.
        let deadline = Instant::now() + Duration::from_secs(10);
        while tail.try_wait().unwrap().is_none() {
            if Instant::now() >= deadline {
                let _ = tail.kill();
                let _ = tail.wait();
                panic!("{needle}: kraft tail is still running, following the listed voters");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = tail.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{needle}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
}

#[test]
fn a_tail_whose_voters_never_answer_says_so() {
    // A voter at a port nothing listens on.
    let closed = common::process::free_port();
    let bootstrap = fake_bootstrap(vec![(1, i32::from(closed))]);
    let mut tail = spawn_tail(
        &["--from-beginning"],
        &bootstrap,
        Stdio::null(),
        Stdio::piped(),
    );
    let stderr = BufReader::new(tail.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(30));
    let _ = tail.kill();
    let _ = tail.wait();
    let line = line.expect("nothing on stderr within 30 s");
    assert!(line.contains("no leader for 10 s"), "{line}");
}

#[test]
fn a_tail_whose_quorum_goes_away_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (mut servers, bootstrap) = committing_quorum(dir.path(), 200);
    let mut tail = spawn_tail(&[], &bootstrap, Stdio::piped(), Stdio::piped());
    // It follows: a record is printed.
    let mut stdout = BufReader::new(tail.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("offset: "), "{first}");
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let stderr = BufReader::new(tail.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    for server in servers.iter_mut().flatten() {
        server.signal("-KILL");
    }
    // Other warnings (connections reset by the killed voters) may come first.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut lines = Vec::new();
    while !lines
        .iter()
        .any(|l: &String| l.contains("no leader for 10 s"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    let _ = tail.kill();
    let _ = tail.wait();
    assert!(
        lines.iter().any(|l| l.contains("no leader for 10 s")),
        "no warning within 40 s of the quorum's end: {lines:?}"
    );
}
