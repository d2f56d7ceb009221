//! `kraft server` with `metrics.listener`: it logs the endpoint's bound address (port 0 picks a
//! free one), serves Kafka's raft metrics there under jmx_exporter's names, and a bad value is
//! one line naming the key, exit 2. Without the key there is no endpoint.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::{Server, free_port, write_config};

/// The address in the server's "metrics endpoint listening" line (`address=host:port`).
fn endpoint_address(server: &Server) -> String {
    assert!(
        server.wait_for("metrics endpoint listening", Duration::from_secs(20)),
        "no metrics endpoint line"
    );
    server
        .line_containing("metrics endpoint listening")
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("address=").map(str::to_string))
        })
        .expect("address=host:port in the line")
}

fn get(address: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[test]
fn a_server_serves_its_metrics_where_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1, &[free_port()]);
    let mut command = Command::new(env!("CARGO_BIN_EXE_kraft"));
    command.args([
        "server",
        "--config",
        config.to_str().unwrap(),
        "--throughput",
        "0",
        "--override",
        "metrics.listener=http://127.0.0.1:0",
    ]);
    let mut server = Server::spawn(command);
    let address = endpoint_address(&server);
    assert!(!address.ends_with(":0"), "{address}");
    // A single voter elects itself; the scrape says so once it has.
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let answer = get(&address, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        if answer.contains("\nkafka_server_raft_metrics_current_state_info{state=\"leader\"} 1\n") {
            break answer;
        }
        assert!(Instant::now() < deadline, "never leader: {answer}");
        std::thread::sleep(Duration::from_millis(50));
    };
    for line in [
        "kafka_server_raft_metrics_current_leader 1",
        "kafka_server_raft_metrics_current_vote 1",
        "kafka_server_raft_metrics_number_unknown_voter_connections 0",
        "# TYPE kraft_fsync_duration_seconds histogram",
        "# TYPE kafka_server_raft_metrics_current_state info",
        "# EOF",
    ] {
        assert!(body.lines().any(|l| l == line), "no '{line}' in:\n{body}");
    }
    server.signal("-TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
}

#[test]
fn a_bad_metrics_listener_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1, &[free_port()]);
    for value in [
        "127.0.0.1:9404",
        "http://127.0.0.1",
        "https://127.0.0.1:1",
        "http://:1",
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_kraft"))
            .args(["server", "--config", config.to_str().unwrap(), "--override"])
            .arg(format!("metrics.listener={value}"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{value}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{value}: {stderr}");
        assert!(
            lines[0].contains("'metrics.listener'") && lines[0].contains(value),
            "{value}: {stderr}"
        );
    }
}

#[test]
fn without_the_key_there_is_no_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1, &[free_port()]);
    let server = Server::start_with(&config, 0);
    // The endpoint would be logged before this line, and the election after it.
    assert!(server.wait_for("kraft node started", Duration::from_secs(20)));
    assert!(
        server.has_seen("leader changed")
            || server.wait_for("leader changed", Duration::from_secs(20))
    );
    assert!(!server.has_seen("metrics endpoint"));
}
