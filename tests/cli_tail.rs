//! `kraft tail` as a process: a signal ends it promptly even when its stdout is a pipe nobody
//! reads (the printing thread blocked in a write) and records are queued behind it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
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

#[test]
fn sigterm_ends_a_tail_whose_stdout_nobody_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (_configs, _servers, ports) = start_three_with(dir.path(), 2000);
    let bootstrap = format!("localhost:{}", ports[0]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while high_watermark(&bootstrap).is_none_or(|hw| hw < 1) {
        assert!(Instant::now() < deadline, "the quorum never committed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut tail = Command::new(env!("CARGO_BIN_EXE_kraft"))
        .args(["tail", "--bootstrap-controller", &bootstrap])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
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
