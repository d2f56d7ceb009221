//! `kraft bench --processes`: the quorum as separate `kraft server` processes (this same
//! executable), so CPU time and peak memory are measured per node.
//!
//! Owns the processes' lifetime, the parsing of the leader's 5 s statistics lines, and the count
//! of what committed. Throughput is counted, not derived from printed rates: after the servers
//! stop, the data records whose leader timestamps fall in the measured span are counted in the
//! longest log, so a window in which nothing committed (and nothing was printed) counts as
//! zero. Latency percentiles cannot be merged from printed windows, so each figure is the worst
//! window's. It must never leave a server running: every child is signalled and waited for.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::CliError;
use super::bench::{BenchResult, NodeUsage};
use crate::node::Throughput;

/// The server's statistics window.
const WINDOW: Duration = Duration::from_secs(5);
/// How long past the measured span the last window's statistics line is waited for.
const LAST_LINE_GRACE: Duration = Duration::from_millis(500);
/// How long a fresh quorum of processes may take to elect a leader.
const ELECTION_LIMIT: Duration = Duration::from_secs(60);

/// One line a server printed, or the note that it elected itself.
enum Seen {
    Leading,
    Window {
        records_per_sec: f64,
        bytes_per_sec: f64,
        latency_ms: [f64; 4],
    },
    Election(i64),
}

pub fn measure(
    nodes: u8,
    throughput: Throughput,
    record_size: u32,
    duration: u64,
    dir: &Path,
) -> Result<BenchResult, CliError> {
    let configs = write_configs(nodes, dir)?;
    let (tx, rx) = mpsc::channel();
    let mut children = Vec::new();
    for config in &configs {
        match spawn(config, throughput, record_size, tx.clone()) {
            Ok(child) => children.push(child),
            Err(e) => {
                stop_all(&mut children);
                return Err(e);
            }
        }
    }
    let result = observe(&rx, duration, &mut children);
    let usage: Vec<NodeUsage> = children.iter().map(|c| NodeUsage::of_pid(c.id())).collect();
    let usage = match &result {
        // CPU seconds of the measured windows only: start-up and warm-up are subtracted.
        Ok(observed) => usage
            .into_iter()
            .zip(&observed.cpu_at_start)
            .map(|(u, start)| NodeUsage {
                cpu_seconds: (u.cpu_seconds - start).max(0.0),
                ..u
            })
            .collect(),
        Err(_) => usage,
    };
    stop_all(&mut children);
    let observed = result?;
    let committed = count_committed(nodes, dir, observed.span_ms)?;
    Ok(summarise(
        nodes,
        throughput,
        record_size,
        &observed,
        committed,
        usage,
    ))
}

/// Data records (and their bytes) whose timestamps fall in `span_ms` in the longest of the
/// nodes' logs. The servers stopped gracefully (the leader hands over only once a voter holds
/// its whole log), so what the longest log holds is committed.
fn count_committed(nodes: u8, dir: &Path, span_ms: (i64, i64)) -> Result<(u64, u64), CliError> {
    let mut best: Option<crate::storage::ReplicatedLog> = None;
    for i in 1..=nodes {
        let partition = crate::storage::partition_dir(
            &dir.join(format!("node-{i}")),
            crate::storage::PERFORMANCE_TEST_TOPIC,
        );
        let (log, _) = crate::storage::ReplicatedLog::open(&partition, Default::default())
            .map_err(|e| problem(format!("cannot read the log to count commits: {e}")))?;
        if best
            .as_ref()
            .is_none_or(|b| log.log_end_offset() > b.log_end_offset())
        {
            best = Some(log);
        }
    }
    let log = best.ok_or_else(|| problem("no node logs".into()))?;
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let chunk = log
            .read(next, 1 << 20)
            .map_err(|e| problem(format!("cannot read the log to count commits: {e}")))?;
        for batch in crate::record::BatchIter::new(chunk) {
            let batch = batch.map_err(|e| problem(format!("a corrupt batch in the log: {e}")))?;
            next = batch.next_offset();
            if batch.is_control() {
                continue;
            }
            let values = batch
                .decode_records()
                .map_err(|e| problem(format!("a corrupt batch in the log: {e}")))?;
            let base = batch.header().base_timestamp;
            for r in values {
                let at = base + r.timestamp_delta;
                if (span_ms.0..span_ms.1).contains(&at) {
                    records += 1;
                    bytes += r.value.map_or(0, |v| v.len() as u64);
                }
            }
        }
    }
    Ok((records, bytes))
}

fn wall_ms() -> i64 {
    crate::actors::ReplicationDriver::wall_clock_now().as_millis() as i64
}

fn problem(message: String) -> CliError {
    CliError {
        message,
        exit_code: super::EXIT_PROBLEM,
    }
}

fn write_configs(nodes: u8, dir: &Path) -> Result<Vec<std::path::PathBuf>, CliError> {
    let ports = (0..nodes)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
        })
        .collect::<Result<Vec<u16>, _>>()
        .map_err(|e| problem(format!("cannot find a free port: {e}")))?;
    let voters: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
        .collect();
    std::fs::create_dir_all(dir).map_err(|e| problem(format!("{}: {e}", dir.display())))?;
    let mut paths = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let path = dir.join(format!("node-{}.properties", i + 1));
        let text = format!(
            // No retention: cleaning must not delete records the count reads afterwards.
            "node.id={}\nprocess.roles=controller\nlisteners=CONTROLLER://127.0.0.1:{port}\n\
             controller.listener.names=CONTROLLER\ncontroller.quorum.voters={}\nlog.dirs={}\n\
             metadata.max.retention.bytes=-1\nmetadata.max.retention.ms=-1\n",
            i + 1,
            voters.join(","),
            dir.join(format!("node-{}", i + 1)).display()
        );
        std::fs::write(&path, text).map_err(|e| problem(format!("{}: {e}", path.display())))?;
        paths.push(path);
    }
    Ok(paths)
}

fn spawn(
    config: &Path,
    throughput: Throughput,
    record_size: u32,
    seen: mpsc::Sender<Seen>,
) -> Result<Child, CliError> {
    let exe = std::env::current_exe().map_err(|e| problem(format!("cannot find kraft: {e}")))?;
    let mut command = Command::new(exe);
    command
        .arg("server")
        .arg("--config")
        .arg(config)
        .args(["--record-size", &record_size.to_string()])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match throughput {
        Throughput::PerSecond(n) => command.args(["--throughput", &n.to_string()]),
        Throughput::Unlimited => command.args(["--throughput", "-1"]),
        Throughput::Sequential => command.arg("--one-at-a-time"),
    };
    let mut child = command
        .spawn()
        .map_err(|e| problem(format!("cannot start kraft server: {e}")))?;
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let tx = seen.clone();
    std::thread::spawn(move || read_lines(out, tx));
    std::thread::spawn(move || read_lines(err, seen));
    Ok(child)
}

fn read_lines(stream: Option<impl std::io::Read>, seen: mpsc::Sender<Seen>) {
    let Some(stream) = stream else { return };
    for line in BufReader::new(stream).lines().map_while(Result::ok) {
        if let Some(event) = parse_line(&line)
            && seen.send(event).is_err()
        {
            return;
        }
    }
}

/// Recognises the workload's statistics line, the leading notice and leader announcements.
fn parse_line(line: &str) -> Option<Seen> {
    if line.contains("leading: writing") {
        return Some(Seen::Leading);
    }
    if line.contains("leader changed") && line.contains("leader_id=Some") {
        let epoch = line.split("epoch=").nth(1)?.split_whitespace().next()?;
        return epoch.parse().ok().map(Seen::Election);
    }
    let rest = line.strip_prefix("Throughput (records/second): ")?;
    let numbers: Vec<f64> = rest
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|s| !s.is_empty() && *s != ".")
        .filter_map(|s| s.parse().ok())
        .collect();
    // records/s, bytes/s, then (value, label digits) pairs: p50 50, p75 75, p99 99, p999 999, max.
    match numbers[..] {
        [r, b, p50, _, _, _, p99, _, p999, _, max, ..] => Some(Seen::Window {
            records_per_sec: r,
            bytes_per_sec: b,
            latency_ms: [p50, p99, p999, max],
        }),
        _ => None,
    }
}

type Window = (f64, f64, [f64; 4]);

/// What the servers printed during the measured span.
struct Observed {
    windows: Vec<Window>,
    /// The measured span, wall-clock milliseconds [from, to).
    span_ms: (i64, i64),
    /// Leader epochs announced after the first leader started writing.
    elections: usize,
    /// Each server's CPU seconds when the measured span began.
    cpu_at_start: Vec<f64>,
}

/// Waits for a leader, then collects the windows printed during `duration` seconds.
fn observe(
    rx: &mpsc::Receiver<Seen>,
    duration: u64,
    children: &mut [Child],
) -> Result<Observed, CliError> {
    let deadline = Instant::now() + ELECTION_LIMIT;
    let mut epochs = std::collections::BTreeSet::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Seen::Leading) => break,
            Ok(Seen::Election(e)) => {
                epochs.insert(e);
            }
            Ok(_) => {}
            Err(_) => return Err(problem("no leader was elected within 60 s".into())),
        }
        if children
            .iter_mut()
            .any(|c| matches!(c.try_wait(), Ok(Some(_))))
        {
            return Err(problem("a kraft server exited early".into()));
        }
    }
    // The first leader announced its epoch before it started writing (same stream, in order);
    // followers may report that epoch later, so only higher epochs are new elections.
    let first_epoch = epochs.iter().max().copied().unwrap_or(0);
    let mut cpu_at_start = vec![0.0; children.len()];
    // The first window began before the election: it is a warm-up, not measured. The span
    // starts when it ends and lasts `duration` seconds of wall-clock time, whatever is printed.
    let mut span: Option<(Instant, i64)> = None;
    let warm_up_limit = Instant::now() + WINDOW + Duration::from_secs(2);
    let mut windows = Vec::new();
    loop {
        // A little past the span, for the statistics line of its last window.
        let until = span.map_or(warm_up_limit, |(at, _)| {
            at + Duration::from_secs(duration) + LAST_LINE_GRACE
        });
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(Seen::Window {
                records_per_sec,
                bytes_per_sec,
                latency_ms,
            }) => {
                if span.is_none() {
                    span = Some((Instant::now(), wall_ms()));
                    cpu_at_start = children
                        .iter()
                        .map(|c| NodeUsage::of_pid(c.id()).cpu_seconds)
                        .collect();
                } else {
                    windows.push((records_per_sec, bytes_per_sec, latency_ms));
                }
            }
            Ok(Seen::Election(e)) => {
                epochs.insert(e);
            }
            Ok(Seen::Leading) => {}
            Err(_) => break,
        }
    }
    let Some((_, from_ms)) = span else {
        return Err(problem("the leader printed no statistics".into()));
    };
    Ok(Observed {
        windows,
        span_ms: (from_ms, from_ms + duration as i64 * 1000),
        elections: epochs.iter().filter(|e| **e > first_epoch).count(),
        cpu_at_start,
    })
}

fn summarise(
    nodes: u8,
    throughput: Throughput,
    record_size: u32,
    observed: &Observed,
    (records, bytes): (u64, u64),
    usage: Vec<NodeUsage>,
) -> BenchResult {
    let windows = &observed.windows;
    let worst = |i: usize| windows.iter().map(|w| w.2[i]).fold(0.0, f64::max);
    let seconds = ((observed.span_ms.1 - observed.span_ms.0) as f64 / 1000.0).max(1e-3);
    BenchResult {
        nodes,
        mode: super::bench::mode_name(throughput),
        record_size,
        seconds,
        committed_records: records,
        records_per_sec: records as f64 / seconds,
        mb_per_sec: bytes as f64 / seconds / 1e6,
        latency_ms_p50: worst(0),
        latency_ms_p99: worst(1),
        latency_ms_p999: worst(2),
        latency_ms_max: worst(3),
        cpu_seconds: usage.iter().map(|u| u.cpu_seconds).sum(),
        peak_rss_mib: usage.iter().map(|u| u.peak_rss_mib).fold(0.0, f64::max),
        elections: observed.elections,
        per_node: usage,
    }
}

/// Asks every server to stop (SIGTERM, so the leader hands over and all flush), then waits.
fn stop_all(children: &mut [Child]) {
    for child in children.iter() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    for child in children.iter_mut() {
        let deadline = Instant::now() + Duration::from_secs(15);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statistics_line_is_parsed() {
        let line = "Throughput (records/second): 4999, (bytes/second): 1279927, Latency (ms): 0.23 p50 0.27 p75 0.45 p99 16.40 p999 20.27 max";
        match parse_line(line) {
            Some(Seen::Window {
                records_per_sec,
                bytes_per_sec,
                latency_ms,
            }) => {
                assert_eq!((records_per_sec, bytes_per_sec), (4999.0, 1279927.0));
                assert_eq!(latency_ms, [0.23, 0.45, 16.40, 20.27]);
            }
            _ => panic!("not parsed"),
        }
        let election = "2026-11-21T08:38:16Z  INFO leader changed epoch=3 leader_id=Some(NodeId(2)) role=Follower";
        assert!(matches!(parse_line(election), Some(Seen::Election(3))));
        assert!(parse_line("leader changed epoch=4 leader_id=None").is_none());
    }
}
