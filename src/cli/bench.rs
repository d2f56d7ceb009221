//! `kraft bench`: starts a fresh quorum in a temporary directory, runs the performance
//! workload against it for a while, and prints committed throughput, commit latency
//! percentiles, CPU time, peak memory and the elections seen, as a table or one JSON object.
//!
//! Owns the measurement only: nodes and the workload are the same code `kraft server` runs,
//! with Kafka's default timers; `--processes` runs real server processes instead
//! (`bench_processes`). It must never leave its temporary directory behind.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actix::prelude::*;
use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;

use super::CliError;
use crate::actors::messages::NodeEvent;
use crate::node::{NodeHandle, NodeOptions, Throughput, WorkloadReport, WorkloadSpec};
use crate::raft::RoleKind;
use crate::storage::LogConfig;
use crate::types::{Epoch, NodeId};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Voters in the quorum (1 or 3).
    #[arg(long, default_value_t = 3)]
    nodes: u8,
    /// Seconds to measure, after a leader is elected.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Records per second; -1 writes as fast as the quorum commits.
    #[arg(long, default_value_t = 5000, allow_negative_numbers = true)]
    throughput: i64,
    /// One record at a time: each append waits for the previous one to commit.
    #[arg(long, conflicts_with = "throughput")]
    one_at_a_time: bool,
    /// Bytes per record.
    #[arg(long, default_value_t = 256)]
    record_size: u32,
    /// Run each node as its own `kraft server` process (CPU and memory per node; latency is
    /// the worst of the leader's 5 s windows).
    #[arg(long)]
    processes: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Mutual TLS between the nodes, with the certificates in this directory: `ca.pem` and
    /// `node-<id>.keystore.pem` (key and chain) for ids 1..=nodes, made as the README's Security
    /// section shows (the node-id URI is checked; the loopback host name is not).
    #[arg(long, value_name = "DIR", conflicts_with = "processes")]
    tls: Option<PathBuf>,
    /// Keep the nodes' data in this directory (new or empty) instead of a temporary one, so
    /// that the logs can be inspected afterwards.
    #[arg(long, hide = true)]
    keep_dir: Option<std::path::PathBuf>,
}

/// CPU time and peak memory of one process.
#[derive(Debug, Clone, Serialize)]
pub struct NodeUsage {
    pub cpu_seconds: f64,
    pub peak_rss_mib: f64,
}

impl NodeUsage {
    /// Reads `/proc/<pid>` (zeros where unavailable).
    pub fn of_pid(pid: u32) -> Self {
        NodeUsage {
            cpu_seconds: cpu_seconds(&format!("/proc/{pid}/stat")),
            peak_rss_mib: peak_rss_mib(&format!("/proc/{pid}/status")),
        }
    }
}

/// The workload's mode as the report names it.
pub fn mode_name(throughput: Throughput) -> String {
    match throughput {
        Throughput::PerSecond(n) => format!("{n} records/s"),
        Throughput::Unlimited => "unthrottled".into(),
        Throughput::Sequential => "one at a time".into(),
    }
}

/// What a run measured.
#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub nodes: u8,
    pub mode: String,
    pub record_size: u32,
    pub seconds: f64,
    pub committed_records: u64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_p999: f64,
    pub latency_ms_max: f64,
    /// CPU seconds of every node together.
    pub cpu_seconds: f64,
    /// Peak resident memory, MiB: of the one process in-process, of the largest node with
    /// `--processes`.
    pub peak_rss_mib: f64,
    /// Elections (distinct epochs with a leader) during the measured span: 0 on a stable run.
    pub elections: usize,
    /// With `--processes`, each node's own figures.
    pub per_node: Vec<NodeUsage>,
}

/// How long after the measured span the bench waits for the last window's report.
const REPORT_GRACE: Duration = Duration::from_millis(300);

pub fn run(args: &BenchArgs) -> Result<(), CliError> {
    if args.nodes != 1 && args.nodes != 3 {
        return Err(CliError::usage("--nodes must be 1 or 3"));
    }
    if args.duration == 0 {
        return Err(CliError::usage("--duration must be at least 1 second"));
    }
    let throughput = if args.one_at_a_time {
        Throughput::Sequential
    } else {
        super::server::parse_throughput(args.throughput)?
    };
    super::server::check_record_size(args.record_size)?;
    let dir = args.keep_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "kraft-bench-{}-{}",
            std::process::id(),
            crate::actors::ReplicationDriver::wall_clock_now().as_nanos()
        ))
    });
    let result = if args.processes {
        super::bench_processes::measure(
            args.nodes,
            throughput,
            args.record_size,
            args.duration,
            &dir,
        )
    } else {
        actix_rt::System::new().block_on(measure(args, throughput, &dir))
    };
    if args.keep_dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let result = result?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&result).expect("plain data serializes")
        );
    } else {
        print_table(&result);
    }
    Ok(())
}

fn problem(message: String) -> CliError {
    CliError {
        message,
        exit_code: super::EXIT_PROBLEM,
    }
}

async fn measure(
    args: &BenchArgs,
    throughput: Throughput,
    dir: &Path,
) -> Result<BenchResult, CliError> {
    let nodes = start_quorum(args.nodes, dir, args.tls.as_deref()).await?;
    wait_for_leader(&nodes).await?;
    let leader_epochs = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    for node in &nodes {
        let events = node
            .subscribe()
            .await
            .ok_or_else(|| problem("node stopped".into()))?;
        actix_rt::spawn(watch_elections(events, leader_epochs.clone()));
    }
    let collector = Collector::default().start();
    let cpu_before = cpu_seconds(SELF_STAT);
    let started = Instant::now();
    for node in &nodes {
        node.run_workload(WorkloadSpec {
            throughput,
            record_size: args.record_size,
            sink: Some(collector.clone().recipient()),
            report_every: Duration::from_secs(1),
        });
    }
    // Slightly past the last whole window, so that its report has arrived.
    actix_rt::time::sleep(Duration::from_secs(args.duration) + REPORT_GRACE).await;
    let totals = collector
        .send(TakeTotals)
        .await
        .map_err(|_| problem("collector stopped".into()))?;
    let seconds = totals
        .last_report
        .map_or(0.0, |t| t.duration_since(started).as_secs_f64())
        .max(1e-9);
    let cpu = cpu_seconds(SELF_STAT) - cpu_before;
    let elections = leader_epochs.lock().map_or(0, |e| e.len());
    for node in &nodes {
        node.shutdown().await;
    }
    let ms = |q: f64| totals.latency_us.value_at_quantile(q) as f64 / 1000.0;
    Ok(BenchResult {
        nodes: args.nodes,
        mode: mode_name(throughput),
        record_size: args.record_size,
        seconds,
        committed_records: totals.records,
        records_per_sec: totals.records as f64 / seconds,
        mb_per_sec: totals.bytes as f64 / seconds / 1e6,
        latency_ms_p50: ms(0.5),
        latency_ms_p99: ms(0.99),
        latency_ms_p999: ms(0.999),
        latency_ms_max: totals.latency_us.max() as f64 / 1000.0,
        cpu_seconds: cpu,
        peak_rss_mib: peak_rss_mib(SELF_STATUS),
        elections,
        per_node: Vec::new(),
    })
}

/// Node `id`'s TLS from the certificates in `tls` (`None`: PLAINTEXT).
fn bench_security(tls: Option<&Path>, id: NodeId) -> crate::config::ListenerSecurity {
    use crate::config::{KeyStore, ListenerSecurity, TlsSettings, TrustStore};
    match tls {
        None => ListenerSecurity::Plaintext,
        Some(dir) => ListenerSecurity::Ssl(TlsSettings {
            keystore: KeyStore::File(dir.join(format!("node-{id}.keystore.pem"))),
            truststore: TrustStore::File(dir.join("ca.pem")),
            check_hostname: false,
            scoped_keys: Default::default(),
        }),
    }
}

/// Starts `count` voters on loopback ports in `dir`, with Kafka's default timers.
async fn start_quorum(
    count: u8,
    dir: &Path,
    tls: Option<&Path>,
) -> Result<Vec<NodeHandle>, CliError> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(format!("cannot listen on 127.0.0.1: {e}")))?;
    let addresses: Vec<(NodeId, String)> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
            (NodeId(i as i32 + 1), format!("127.0.0.1:{port}"))
        })
        .collect();
    let voters: BTreeSet<NodeId> = addresses.iter().map(|(id, _)| *id).collect();
    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let options = NodeOptions {
            cluster_id: "kraft-bench".into(),
            node_id: Some(addresses[i].0),
            voters: voters.clone(),
            voter_addresses: addresses.clone(),
            listener: Some(listener),
            partition_dir: node_dir(dir, i),
            log: LogConfig::default(),
            raft: None,
            state_machine: Default::default(),
            fs: None,
            snapshots: Default::default(),
            connections: Default::default(),
            security: bench_security(tls, addresses[i].0),
            rack: None,
            directory_id: None,
            listener_name: None,
            bootstrap_servers: vec![],
        };
        let node = NodeHandle::start(options)
            .await
            .map_err(|e| problem(format!("cannot start node {}: {e}", i + 1)))?;
        nodes.push(node);
    }
    Ok(nodes)
}

fn node_dir(dir: &Path, i: usize) -> PathBuf {
    crate::storage::partition_dir(
        &dir.join(format!("node-{}", i + 1)),
        crate::storage::PERFORMANCE_TEST_TOPIC,
    )
}

/// Waits (up to a minute) until some node leads with a known high watermark.
async fn wait_for_leader(nodes: &[NodeHandle]) -> Result<(), CliError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        for node in nodes {
            if let Some(s) = node.describe().await
                && s.role == RoleKind::Leader
                && s.high_watermark.is_some()
            {
                return Ok(());
            }
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    Err(problem("no leader was elected within 60 s".into()))
}

/// Collects the epochs in which a node announced a leader, until the node stops. Commit
/// events far outnumber leader changes, so a lagging receiver skips ahead and keeps going.
async fn watch_elections(
    mut events: tokio::sync::broadcast::Receiver<NodeEvent>,
    epochs: std::sync::Arc<std::sync::Mutex<BTreeSet<Epoch>>>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(NodeEvent::LeaderChanged {
                epoch,
                leader_id: Some(_),
            }) => {
                if let Ok(mut e) = epochs.lock() {
                    e.insert(epoch);
                }
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

fn print_table(r: &BenchResult) {
    let how = if r.per_node.is_empty() {
        "in one process"
    } else {
        "as processes"
    };
    println!(
        "kraft bench: {} node(s) {how}, {}-byte records, {}, {:.1} s",
        r.nodes, r.record_size, r.mode, r.seconds
    );
    println!("  committed records/s   {:.0}", r.records_per_sec);
    println!("  committed MB/s        {:.2}", r.mb_per_sec);
    println!(
        "  commit latency (ms)   p50 {:.3}  p99 {:.3}  p999 {:.3}  max {:.3}",
        r.latency_ms_p50, r.latency_ms_p99, r.latency_ms_p999, r.latency_ms_max
    );
    println!("  CPU seconds           {:.2} (all nodes)", r.cpu_seconds);
    if r.per_node.is_empty() {
        println!("  peak RSS (MiB)        {:.1} (all nodes)", r.peak_rss_mib);
    }
    for (i, u) in r.per_node.iter().enumerate() {
        println!(
            "  node {}                CPU {:.2} s, peak RSS {:.1} MiB",
            i + 1,
            u.cpu_seconds,
            u.peak_rss_mib
        );
    }
    println!("  elections during run  {}", r.elections);
}

const SELF_STAT: &str = "/proc/self/stat";
const SELF_STATUS: &str = "/proc/self/status";

/// User plus system CPU seconds of a process, from its /proc stat file (0 where unavailable).
fn cpu_seconds(stat_file: &str) -> f64 {
    // Fields 14 and 15 of the stat file, in clock ticks of 1/100 s (USER_HZ on Linux).
    let stat = std::fs::read_to_string(stat_file).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size of a process in MiB (`VmHWM`), 0 where unavailable.
fn peak_rss_mib(status_file: &str) -> f64 {
    let status = std::fs::read_to_string(status_file).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Sums the workload windows of every node.
struct Collector {
    records: u64,
    bytes: u64,
    latency_us: Histogram<u64>,
    last_report: Option<Instant>,
}

impl Default for Collector {
    fn default() -> Self {
        Collector {
            records: 0,
            bytes: 0,
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            last_report: None,
        }
    }
}

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<WorkloadReport> for Collector {
    type Result = ();
    fn handle(&mut self, report: WorkloadReport, _: &mut Context<Self>) {
        self.records += report.records;
        self.bytes += report.bytes;
        let _ = self.latency_us.add(&report.latency_us);
        self.last_report = Some(Instant::now());
    }
}

/// The sums so far.
#[derive(Message)]
#[rtype(result = "Totals")]
struct TakeTotals;

struct Totals {
    records: u64,
    bytes: u64,
    latency_us: Histogram<u64>,
    last_report: Option<Instant>,
}

impl Handler<TakeTotals> for Collector {
    type Result = MessageResult<TakeTotals>;
    fn handle(&mut self, _: TakeTotals, _: &mut Context<Self>) -> Self::Result {
        MessageResult(Totals {
            records: self.records,
            bytes: self.bytes,
            latency_us: self.latency_us.clone(),
            last_report: self.last_report,
        })
    }
}
