//! `kraft bench` as a process: a short run prints one JSON object with every figure, and bad
//! arguments are one line with exit code 2.

use std::process::Command;

fn kraft(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kraft"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn a_short_bench_prints_its_figures_as_json() {
    let out = kraft(&["bench", "--nodes", "1", "--duration", "1", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["nodes"], 1);
    assert_eq!(v["record_size"], 256);
    assert!(v["committed_records"].as_u64().unwrap() > 0, "{v}");
    for key in [
        "records_per_sec",
        "mb_per_sec",
        "latency_ms_p50",
        "latency_ms_p99",
        "latency_ms_p999",
        "latency_ms_max",
        "cpu_seconds",
        "peak_rss_mib",
    ] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key} in {v}");
    }
    assert!(v["latency_ms_p50"].as_f64() <= v["latency_ms_p99"].as_f64());
}

#[test]
fn bad_arguments_are_one_line_and_exit_2() {
    for args in [
        &["bench", "--nodes", "2"][..],
        &["bench", "--throughput", "0"],
        &["bench", "--throughput", "-2"],
        &["bench", "--record-size", "0"],
        &["bench", "--duration", "0"],
    ] {
        let out = kraft(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
}

#[test]
fn a_bench_of_server_processes_reports_each_node() {
    let out = kraft(&[
        "bench",
        "--processes",
        "--nodes",
        "3",
        "--duration",
        "5",
        "--throughput",
        "2000",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    let per_node = v["per_node"].as_array().unwrap();
    assert_eq!(per_node.len(), 3);
    for node in per_node {
        assert!(node["cpu_seconds"].as_f64().unwrap() > 0.0, "{v}");
        assert!(node["peak_rss_mib"].as_f64().unwrap() > 0.0, "{v}");
    }
    // Paced, not unthrottled: a 5 s window can exceed 2,000/s only by catching up on a backlog,
    // which the producer caps at one second of records.
    let rate = v["records_per_sec"].as_f64().unwrap();
    assert!(rate > 0.0 && rate <= 2000.0 * 6.0 / 5.0, "{v}");
}

/// Data records in a node's log, as the bench left it.
fn records_in_log(dir: &std::path::Path, node: u8) -> u64 {
    let partition = dir.join(format!("node-{node}/__raft_performance_test-0"));
    let (log, _) =
        kraft::storage::ReplicatedLog::open(&partition, kraft::storage::LogConfig::default())
            .unwrap();
    let mut count = 0;
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        for batch in kraft::record::BatchIter::new(log.read(next, 1 << 20).unwrap()) {
            let batch = batch.unwrap();
            next = batch.next_offset();
            if !batch.is_control() {
                count += batch.decode_records().unwrap().len() as u64;
            }
        }
    }
    count
}

/// What the bench reports as committed is there: at least that many records are in the log
/// (the log also holds what committed after the measured span, before shutdown).
#[test]
fn the_committed_count_is_backed_by_the_log() {
    for processes in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let keep = dir.path().join("run");
        let keep_arg = keep.to_str().unwrap();
        let mut args = vec![
            "bench",
            "--nodes",
            "3",
            "--duration",
            "2",
            "--throughput",
            "3000",
            "--json",
            "--keep-dir",
            keep_arg,
        ];
        if processes {
            args.push("--processes");
        }
        let out = kraft(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value =
            serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
        let committed = v["committed_records"].as_u64().unwrap();
        let in_log = (1..=3).map(|n| records_in_log(&keep, n)).max().unwrap();
        assert!(committed > 0, "{v}");
        assert!(
            committed <= in_log,
            "processes={processes}: reported {committed} committed, the log holds {in_log}"
        );
    }
}
