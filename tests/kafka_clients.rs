//! Unmodified Kafka clients against `kraft server` processes: kafka-python (producer, consumer,
//! admin client), confluent-kafka (librdkafka 2.16) and Debian's kcat (librdkafka 2.0.2) with
//! every compression codec. An idempotent producer keeps producing through three `kill -9`s of
//! the leader and every record is in every node's log exactly once, in order; without
//! idempotence retries may duplicate but nothing acknowledged is lost.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::{Server, first_to_log, free_port, partition, start_three_with, write_config};
use kraft::record::{BatchIter, Compression};
use kraft::storage::{LogConfig, ReplicatedLog};
use kraft::types::Offset;
use serde_json::Value;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/kafka_clients.py");

/// Runs the kafka-python script to its end; its JSON lines.
fn python(args: &[&str]) -> Vec<Value> {
    let out = Command::new("timeout")
        .env_remove("LD_LIBRARY_PATH")
        .arg("180")
        .arg("python3")
        .arg(SCRIPT)
        .args(args)
        .output()
        .expect("python3 must be installed (.ci/run installs it with kafka-python)");
    assert!(
        out.status.success(),
        "kafka-python {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The values a consumer read, in offset order, checking offsets only grow.
fn consumed(lines: &[Value]) -> Vec<String> {
    let mut last = -1;
    lines
        .iter()
        .filter_map(|l| {
            let offset = l.get("offset")?.as_i64()?;
            assert!(offset > last, "offset {offset} after {last}");
            last = offset;
            Some(l["value"].as_str()?.to_owned())
        })
        .collect()
}

fn single_node(dir: &Path) -> (Server, String) {
    let port = free_port();
    let config = write_config(dir, 1, &[port]);
    let server = Server::start_with(&config, 0);
    assert!(server.wait_for("leader changed", Duration::from_secs(20)));
    (server, format!("localhost:{port}"))
}

#[test]
fn kafka_python_produces_consumes_and_describes_a_single_node() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, bootstrap) = single_node(dir.path());
    let produced = python(&["produce", &bootstrap, "500"]);
    let done = produced.last().unwrap();
    assert_eq!(done["acked"], 500, "{done}");
    assert_eq!(done["errors"], Value::Array(vec![]));
    let values = consumed(&python(&["consume", &bootstrap]));
    let expected: Vec<String> = (0..500).map(|i| format!("v-{i}")).collect();
    assert_eq!(values, expected);
    let described = python(&["describe", &bootstrap]);
    assert_eq!(described[0]["cluster"]["controller_id"], 1);
    let quorum = &described[1]["quorum"]["topics"][0]["partitions"][0];
    assert_eq!(quorum["leader_id"], 1);
    assert!(quorum["high_watermark"].as_i64().unwrap() > 500);
    assert_eq!(quorum["current_voters"][0]["replica_id"], 1);
}

/// kcat, or a failure saying how to get it (CI installs it).
fn kcat(args: &[&str], input: Option<&str>) -> String {
    use std::io::Write;
    // cargo points LD_LIBRARY_PATH at its build outputs, which include the librdkafka built
    // for the producer tools (without zlib); kcat must load Debian's.
    let mut child = Command::new("timeout")
        .env_remove("LD_LIBRARY_PATH")
        .arg("60")
        .arg("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("timeout(1) must exist");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.unwrap_or("").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat {args:?} failed (apt-get install kcat; .ci/run installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn kcat_produces_with_every_codec_and_the_batches_are_stored_as_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, bootstrap) = single_node(dir.path());
    let listing = kcat(&["-b", &bootstrap, "-L"], None);
    assert!(
        listing.contains("topic \"__raft_performance_test\" with 1 partitions"),
        "{listing}"
    );
    assert!(
        listing.contains("leader 1, replicas: 1, isrs: 1"),
        "{listing}"
    );
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    // Records long enough that compressing pays: librdkafka sends a batch uncompressed when
    // compressing would not make it smaller.
    let pad = "x".repeat(500);
    for codec in codecs {
        let lines = format!("{codec}-1{pad}\n{codec}-2{pad}\n{codec}-3{pad}\n");
        let topic = "__raft_performance_test";
        kcat(
            &["-b", &bootstrap, "-P", "-t", topic, "-p", "0", "-z", codec],
            Some(&lines),
        );
    }
    let read = kcat_read_all(&bootstrap, &[]);
    let expected: Vec<String> = codecs
        .iter()
        .flat_map(|c| (1..=3).map(move |i| format!("{c}-{i}{}", "x".repeat(500))))
        .collect();
    assert_eq!(read, expected);
    server.signal("-TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    // Each codec's batch is in the log compressed as kcat sent it.
    let (log, _) = ReplicatedLog::open(&partition(dir.path(), 1), LogConfig::default()).unwrap();
    let bytes = log.read(Offset(0), 1 << 20).unwrap();
    let stored: Vec<Compression> = BatchIter::new(bytes)
        .map(|b| b.unwrap())
        .filter(|b| !b.is_control())
        .map(|b| b.header().compression().unwrap())
        .collect();
    assert_eq!(
        stored,
        [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd
        ]
    );
}

/// What a producer run through leader kills left: the values acknowledged, and each node's
/// log (data values in offset order) once every node stopped.
struct KillRun {
    acked: usize,
    logs: Vec<Vec<String>>,
}

/// The seed's verifiable-producer check: a producer (acks=all; `client` is the script's
/// produce mode) sends increasing integers while the leader is killed with `kill -9` and
/// restarted three times.
fn produce_through_three_leader_kills(client: &str, idempotent: bool) -> KillRun {
    let dir = tempfile::tempdir().unwrap();
    let (configs, mut servers, ports) = start_three_with(dir.path(), 0);
    let mut leader =
        first_to_log(&servers, "role=Leader", Duration::from_secs(30)).expect("a leader");
    let count = 12_000;
    let mut producer = Command::new("timeout")
        .env_remove("LD_LIBRARY_PATH")
        .args(["240", "python3", SCRIPT, client, &bootstrap(&ports)])
        .args([
            count.to_string().as_str(),
            "v",
            if idempotent { "1" } else { "0" },
            "1500",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = producer.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut lines: Vec<Value> = Vec::new();
    for threshold in [2_000, 5_000, 8_000] {
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the producer made progress");
            let value: Value = serde_json::from_str(&line).unwrap();
            assert!(
                value.get("done").is_none(),
                "the producer finished before the kills"
            );
            lines.push(value.clone());
            if value["acked"].as_i64().unwrap_or(0) >= threshold {
                break;
            }
        }
        servers[leader].take().unwrap().signal("-KILL");
        servers[leader] = Some(Server::start_with(&configs[leader], 0));
        leader =
            first_to_log(&servers, "role=Leader", Duration::from_secs(30)).expect("a new leader");
    }
    lines.extend(
        rx.iter()
            .map(|l| serde_json::from_str::<Value>(&l).unwrap()),
    );
    let status = producer.wait().unwrap();
    assert!(status.success(), "the producer failed: {:?}", lines.last());
    let done = lines.last().unwrap();
    assert_eq!(done["errors"], Value::Array(vec![]), "{done}");
    let acked = done["acked"].as_u64().unwrap() as usize;
    for server in servers.iter_mut().flatten() {
        server.signal("-TERM");
        assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(0));
    }
    let logs = (1..=3)
        .map(|id| data_values(&partition(dir.path(), id)))
        .collect();
    KillRun { acked, logs }
}

/// Every data record's value in a stopped node's log, in offset order.
fn data_values(partition: &Path) -> Vec<String> {
    let (log, _) = ReplicatedLog::open(partition, LogConfig::default()).unwrap();
    let mut values = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let chunk = log.read(next, 1 << 20).unwrap();
        for batch in BatchIter::new(chunk) {
            let batch = batch.unwrap();
            next = batch.next_offset();
            if batch.is_control() {
                continue;
            }
            for record in batch.decode_records().unwrap() {
                let value = record.value.unwrap();
                values.push(String::from_utf8(value.to_vec()).unwrap());
            }
        }
    }
    values
}

#[test]
fn an_idempotent_producer_appends_every_record_once_through_three_leader_kills() {
    let run = produce_through_three_leader_kills("ck-produce", true);
    assert_eq!(run.acked, 12_000);
    let expected: Vec<String> = (0..12_000).map(|i| format!("v-{i}")).collect();
    for (i, log) in run.logs.iter().enumerate() {
        assert_eq!(
            log.len(),
            expected.len(),
            "node {}: duplicates or losses",
            i + 1
        );
        assert_eq!(log, &expected, "node {}", i + 1);
    }
}

/// Without idempotence a retried batch may be stored twice (the run says how often), but
/// nothing acknowledged is lost and nothing appears that was not sent.
#[test]
fn without_idempotence_retries_may_duplicate_but_nothing_acknowledged_is_lost() {
    let run = produce_through_three_leader_kills("ck-produce", false);
    assert_eq!(run.acked, 12_000);
    for (i, log) in run.logs.iter().enumerate() {
        let mut seen = std::collections::BTreeMap::new();
        for value in log {
            *seen.entry(value.as_str()).or_insert(0) += 1;
        }
        let missing: Vec<_> = (0..12_000)
            .map(|i| format!("v-{i}"))
            .filter(|v| !seen.contains_key(v.as_str()))
            .collect();
        assert_eq!(missing, Vec::<String>::new(), "node {}", i + 1);
        assert_eq!(seen.len(), 12_000, "node {}: values nobody sent", i + 1);
        let duplicates = log.len() - seen.len();
        println!("node {}: {duplicates} duplicate records", i + 1);
    }
}

/// Three `kraft server` processes with no workload, node i in rack `r{i}`; their bootstrap list.
fn three_in_racks(dir: &Path) -> (Vec<std::path::PathBuf>, Vec<Option<Server>>, Vec<u16>) {
    let ports = [free_port(), free_port(), free_port()];
    let configs: Vec<_> = (1..=3)
        .map(|id| {
            let path = write_config(dir, id, &ports);
            let mut text = std::fs::read_to_string(&path).unwrap();
            text.push_str(&format!("broker.rack=r{id}\n"));
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    let servers = configs
        .iter()
        .map(|c| Some(Server::start_with(c, 0)))
        .collect();
    (configs, servers, ports.to_vec())
}

fn bootstrap(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|p| format!("localhost:{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Every value in the log, read with kcat from the beginning to the end (`extra`: more flags).
fn kcat_read_all(bootstrap: &str, extra: &[&str]) -> Vec<String> {
    let topic = "__raft_performance_test";
    let mut args = vec!["-b", bootstrap];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "-C",
        "-t",
        topic,
        "-p",
        "0",
        "-o",
        "beginning",
        "-e",
        "-f",
        "%s\\n",
    ]);
    kcat(&args, None).lines().map(str::to_owned).collect()
}

/// Each producer's values appear in the order it sent them, all of them, and nothing else.
fn check_all_in_order(values: &[String], producers: &[&str], count: usize) {
    for prefix in producers {
        let mine: Vec<&str> = values
            .iter()
            .filter(|v| v.starts_with(&format!("{prefix}-")))
            .map(String::as_str)
            .collect();
        let expected: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
        assert_eq!(mine, expected, "{prefix}'s records");
    }
    assert_eq!(values.len(), producers.len() * count, "records nobody sent");
}

/// kcat, kafka-python (bootstrapped at a follower) and confluent-kafka (acks=all) each produce
/// 10,000 records to a 3-node quorum; kcat reads them back through the leader, and kcat,
/// kafka-python and confluent-kafka from each follower's rack (pointed there by the leader):
/// all present, in order, nothing extra.
#[test]
fn three_clients_produce_and_every_reader_sees_every_record_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_configs, servers, ports) = three_in_racks(dir.path());
    let leader = first_to_log(&servers, "role=Leader", Duration::from_secs(30)).expect("a leader");
    let all = bootstrap(&ports);
    let count = 10_000;
    let lines: String = (0..count).map(|i| format!("kcat-{i}\n")).collect();
    let topic = "__raft_performance_test";
    kcat(
        &["-b", &all, "-P", "-t", topic, "-p", "0", "-X", "acks=all"],
        Some(&lines),
    );
    // kafka-python bootstraps at a follower only: it is told the leader and produces there.
    let follower = format!("localhost:{}", ports[(leader + 1) % 3]);
    let kp = python(&["produce", &follower, &count.to_string(), "kp"]);
    assert_eq!(kp.last().unwrap()["acked"], count);
    let ck = python(&["ck-produce", &all, &count.to_string(), "ck"]);
    assert_eq!(ck.last().unwrap()["acked"], count, "{:?}", ck.last());
    let producers = ["kcat", "kp", "ck"];
    check_all_in_order(&kcat_read_all(&all, &[]), &producers, count);
    for follower in (0..3).filter(|i| *i != leader) {
        let rack = format!("r{}", follower + 1);
        let client_rack = format!("client.rack={rack}");
        let values = kcat_read_all(&all, &["-X", &client_rack]);
        check_all_in_order(&values, &producers, count);
        let values = consumed(&python(&["consume", &all, &rack]));
        check_all_in_order(&values, &producers, count);
        let values = consumed(&python(&["ck-consume", &all, &rack]));
        check_all_in_order(&values, &producers, count);
    }
}
