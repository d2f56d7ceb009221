//! The producer tools (`kraft verifiable-producer`, `kraft producer-perf-test`) against
//! `kraft server` processes with no workload: the seed's commands through the `bin/` scripts,
//! their output formats, the records they were acknowledged for found in the node's log, one
//! clear line for every bad flag, and an idempotent run through a `kill -9` of the leader that
//! leaves every acknowledged value exactly once in each surviving node's log.

mod common;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::process::{Server, first_to_log, free_port, partition, start_three_with, write_config};
use kraft::record::BatchIter;
use kraft::storage::{LogConfig, ReplicatedLog};
use serde_json::Value;

/// Longest a tool run may take; the runs here need a few seconds.
const TOOL_LIMIT: Duration = Duration::from_secs(120);

fn script(name: &str) -> Command {
    Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("bin").join(name))
}

/// A running tool whose stdout lines arrive on a channel (stderr is kept for failure messages).
struct Tool {
    child: Child,
    lines: Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Tool {
    fn spawn(mut command: Command) -> Tool {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut text);
            text
        });
        Tool {
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// The next stdout line, or None at the end of the output or after `limit`.
    fn next_line(&self, limit: Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }

    /// Every remaining stdout line, the exit code and stderr, within `limit`.
    fn finish(mut self, limit: Duration) -> (Vec<String>, Option<i32>, String) {
        let deadline = Instant::now() + limit;
        let mut lines = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => break,
            }
        }
        let code = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status.code();
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = self.stderr.take().unwrap().join().unwrap();
        (lines, code, stderr)
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A one-voter quorum with no workload, led by its node; its Kafka port.
fn single_node(dir: &Path) -> (Server, u16) {
    let port = free_port();
    let config = write_config(dir, 1, &[port]);
    let server = Server::start_with(&config, 0);
    assert!(server.wait_for("leader changed", Duration::from_secs(20)));
    (server, port)
}

fn producer_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("producer.properties");
    std::fs::write(&path, text).unwrap();
    path
}

/// Stops the server gracefully, then every data record of its log: offset -> value.
fn stored_values(mut server: Server, dir: &Path, id: usize) -> BTreeMap<i64, Vec<u8>> {
    server.signal("-TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(0));
    values_in_log(&partition(dir, id))
}

fn values_in_log(partition: &Path) -> BTreeMap<i64, Vec<u8>> {
    let (log, _) = ReplicatedLog::open(partition, LogConfig::default()).unwrap();
    let bytes = bytes::Bytes::from(common::read_all(&log));
    let mut values = BTreeMap::new();
    for batch in BatchIter::new(bytes) {
        let batch = batch.unwrap();
        if batch.is_control() {
            continue;
        }
        let base = batch.base_offset().0;
        for record in batch.decode_records().unwrap() {
            let offset = base + i64::from(record.offset_delta);
            values.insert(offset, record.value.unwrap_or_default().to_vec());
        }
    }
    values
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// The verifiable producer's lines begin with the timestamp, then the event's name, as
/// Kafka's tool prints them.
fn assert_event_shape(line: &str) {
    let shape = regex::Regex::new(r#"^\{"timestamp":\d+,"name":"[a-z_]+"[,}]"#).unwrap();
    assert!(shape.is_match(line), "{line}");
}

#[test]
fn the_seed_verifiable_producer_command_is_acknowledged_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port) = single_node(dir.path());
    let config = producer_config(
        dir.path(),
        &format!(
            "# the seed's file, pointed at the test node\nbootstrap.servers=localhost:{port}\n"
        ),
    );
    let mut command = script("kafka-verifiable-producer.sh");
    command.args([
        "--bootstrap-server",
        &format!("http://localhost:{port}"),
        "--topic",
        "__cluster_metadata",
        "--max-messages",
        "200",
        "--throughput",
        "1000",
        "--producer.config",
        config.to_str().unwrap(),
    ]);
    let (lines, code, stderr) = Tool::spawn(command).finish(TOOL_LIMIT);
    assert_eq!(code, Some(0), "{stderr}");
    for line in &lines {
        assert_event_shape(line);
    }
    let events: Vec<Value> = lines.iter().map(|l| json(l)).collect();
    assert_eq!(events[0]["name"], "startup_complete", "{lines:?}");
    let successes: Vec<&Value> = events
        .iter()
        .filter(|e| e["name"] == "producer_send_success")
        .collect();
    assert_eq!(successes.len(), 200, "{lines:?}");
    let mut last = -1;
    for (i, s) in successes.iter().enumerate() {
        assert_eq!(s["value"], i.to_string());
        assert_eq!(s["key"], Value::Null);
        assert_eq!(s["topic"], "__cluster_metadata");
        assert_eq!(s["partition"], 0);
        let offset = s["offset"].as_i64().unwrap();
        assert!(offset > last, "offset {offset} after {last}");
        last = offset;
    }
    let n = events.len();
    assert_eq!(n, 203, "{lines:?}");
    assert_eq!(events[n - 2]["name"], "shutdown_complete");
    let data = &events[n - 1];
    assert_eq!(data["name"], "tool_data");
    assert_eq!(data["sent"], 200);
    assert_eq!(data["acked"], 200);
    assert_eq!(data["target_throughput"], 1000);
    assert!(data["avg_throughput"].as_f64().unwrap() > 0.0, "{data}");
    // Each acknowledged value is in the node's log at the offset it was acknowledged with.
    let stored = stored_values(server, dir.path(), 1);
    assert_eq!(stored.len(), 200);
    for s in successes {
        let offset = s["offset"].as_i64().unwrap();
        assert_eq!(
            stored
                .get(&offset)
                .map(|v| String::from_utf8_lossy(v).into_owned()),
            Some(s["value"].as_str().unwrap().to_owned()),
            "offset {offset}"
        );
    }
}

#[test]
fn the_seed_producer_perf_test_command_prints_kafkas_summary_and_logs_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port) = single_node(dir.path());
    let config = producer_config(dir.path(), &format!("bootstrap.servers=localhost:{port}\n"));
    let mut command = script("kafka-producer-perf-test.sh");
    command.args([
        "--topic",
        "__cluster_metadata",
        "--num-records",
        "2000",
        "--throughput",
        "-1",
        "--record-size",
        "10",
        "--producer.config",
        config.to_str().unwrap(),
    ]);
    let (lines, code, stderr) = Tool::spawn(command).finish(TOOL_LIMIT);
    assert_eq!(code, Some(0), "{stderr}");
    let summary = regex::Regex::new(
        r"^(\d+) records sent, \d+\.\d{6} records/sec \(\d+\.\d{2} MB/sec\), \d+\.\d{2} ms avg latency, \d+\.\d{2} ms max latency, \d+ ms 50th, \d+ ms 95th, \d+ ms 99th, \d+ ms 99\.9th\.$",
    )
    .unwrap();
    let last = lines.last().expect("a summary line");
    let found = summary
        .captures(last)
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert_eq!(&found[1], "2000");
    // Any earlier line is a 5 s progress line.
    let progress = regex::Regex::new(
        r"^\d+ records sent, \d+\.\d records/sec \(\d+\.\d{2} MB/sec\), \d+\.\d ms avg latency, \d+\.\d ms max latency\.$",
    )
    .unwrap();
    for line in &lines[..lines.len() - 1] {
        assert!(progress.is_match(line), "{line}");
    }
    let stored = stored_values(server, dir.path(), 1);
    assert_eq!(stored.len(), 2000);
    for value in stored.values() {
        assert_eq!(value.len(), 10);
        assert!(value.iter().all(u8::is_ascii_uppercase), "{value:?}");
    }
}

/// Runs the debug binary (no server needed: every case fails before connecting).
fn kraft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kraft"))
        .args(args)
        .output()
        .unwrap()
}

fn assert_one_line_usage_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn bad_flags_are_one_line_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let good = producer_config(dir.path(), "bootstrap.servers=localhost:9\n");
    let good = good.to_str().unwrap();
    let missing = dir.path().join("missing.properties");
    let missing = missing.to_str().unwrap();
    let perf = [
        "producer-perf-test",
        "--num-records",
        "10",
        "--throughput",
        "-1",
    ];
    let with = |extra: &[&str]| {
        let mut args = perf.to_vec();
        args.extend_from_slice(extra);
        kraft(&args)
    };
    assert_one_line_usage_error(
        &with(&["--record-size", "10", "--producer.config", good]),
        "--topic",
    );
    assert_one_line_usage_error(
        &with(&[
            "--topic",
            "t",
            "--record-size",
            "10",
            "--payload-monotonic",
            "--producer.config",
            good,
        ]),
        "cannot be used with",
    );
    assert_one_line_usage_error(
        &with(&["--topic", "t", "--record-size", "10"]),
        "Either --producer-props or --producer.config must be specified.",
    );
    assert_one_line_usage_error(
        &with(&[
            "--topic",
            "t",
            "--record-size",
            "10",
            "--producer.config",
            missing,
        ]),
        &format!("--producer.config {missing}: cannot read producer config"),
    );
    assert_one_line_usage_error(
        &with(&[
            "--topic",
            "t",
            "--record-size",
            "10",
            "--producer-props",
            "acks=1",
            "--transactional-id",
            "x",
        ]),
        "kraft has no transactions",
    );
    assert_one_line_usage_error(
        &with(&[
            "--topic",
            "t",
            "--record-size",
            "10",
            "--producer-props",
            "bootstrap.servers=localhost:9",
            "no.such.setting=1",
        ]),
        "No such configuration property: \"no.such.setting\"",
    );
    let vp = |extra: &[&str]| {
        let mut args = vec!["verifiable-producer"];
        args.extend_from_slice(extra);
        kraft(&args)
    };
    assert_one_line_usage_error(&vp(&["--bootstrap-server", "localhost:9"]), "--topic");
    assert_one_line_usage_error(
        &vp(&[
            "--topic",
            "t",
            "--bootstrap-server",
            "localhost:9",
            "--producer.config",
            missing,
        ]),
        &format!("--producer.config {missing}: cannot read producer config"),
    );
    assert_one_line_usage_error(
        &vp(&["--topic", "t", "--bootstrap-server", "http://localhost"]),
        "--bootstrap-server: invalid bootstrap server 'http://localhost'",
    );
    assert_one_line_usage_error(
        &vp(&[
            "--topic",
            "t",
            "--bootstrap-server",
            "localhost:9",
            "--acks",
            "2",
        ]),
        "--acks",
    );
}

#[test]
fn acknowledged_idempotent_sends_survive_a_leader_kill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut servers, ports) = start_three_with(dir.path(), 0);
    let leader = first_to_log(&servers, "role=Leader", Duration::from_secs(30)).expect("a leader");
    let bootstrap = ports
        .iter()
        .map(|p| format!("localhost:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let config = producer_config(dir.path(), "enable.idempotence=true\n");
    let mut command = Command::new(env!("CARGO_BIN_EXE_kraft"));
    command.args([
        "verifiable-producer",
        "--bootstrap-server",
        &bootstrap,
        "--topic",
        "__cluster_metadata",
        "--max-messages",
        "3000",
        "--throughput",
        "1000",
        "--producer.config",
        config.to_str().unwrap(),
    ]);
    let tool = Tool::spawn(command);
    // Kill the leader a third of the way through.
    let mut lines = Vec::new();
    while lines
        .iter()
        .filter(|l: &&String| l.contains("producer_send_success"))
        .count()
        < 1000
    {
        let line = tool
            .next_line(Duration::from_secs(30))
            .expect("the producer made progress");
        lines.push(line);
    }
    servers[leader].as_ref().unwrap().signal("-KILL");
    servers[leader] = None;
    let (rest, code, stderr) = tool.finish(TOOL_LIMIT);
    lines.extend(rest);
    assert_eq!(code, Some(0), "{stderr}");
    let events: Vec<Value> = lines.iter().map(|l| json(l)).collect();
    let data = events.last().unwrap();
    assert_eq!(data["name"], "tool_data", "{data}");
    assert_eq!(data["sent"], 3000);
    let acked: Vec<(i64, String)> = events
        .iter()
        .filter(|e| e["name"] == "producer_send_success")
        .map(|e| {
            (
                e["offset"].as_i64().unwrap(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(data["acked"], acked.len(), "{data}");
    let failed = events
        .iter()
        .filter(|e| e["name"] == "producer_send_error")
        .count();
    // Shown with --nocapture: how much the kill cost.
    eprintln!("{data} ({failed} sends failed)");
    assert!(acked.len() >= 1000);
    for (id, server) in servers.into_iter().enumerate() {
        let Some(server) = server else { continue };
        let stored = stored_values(server, dir.path(), id + 1);
        let mut seen: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for (offset, value) in &stored {
            if let Ok(text) = std::str::from_utf8(value) {
                seen.entry(text).or_default().push(*offset);
            }
        }
        let mut last: Option<(i64, i64)> = None;
        for (offset, value) in &acked {
            let offsets = seen.get(value.as_str()).cloned().unwrap_or_default();
            assert_eq!(
                offsets,
                [*offset],
                "node {}: acknowledged value {value} (offset {offset}) is at {offsets:?}",
                id + 1
            );
            // Acknowledged values are in the log in the order they were sent.
            let number: i64 = value.parse().unwrap();
            if let Some((prev_number, prev_offset)) = last {
                assert!(
                    number > prev_number && *offset > prev_offset,
                    "node {}: {value} at {offset} after {prev_number} at {prev_offset}",
                    id + 1
                );
            }
            last = Some((number, *offset));
        }
    }
}
