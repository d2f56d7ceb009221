//! The workload producer of the standalone performance server: while this node leads, it
//! appends random records of `record_size` bytes to the replicated log at `throughput` records
//! per second (or as fast as the quorum accepts), and every 5 s prints committed throughput and
//! append→commit latency percentiles; a follower prints what it replicated.
//!
//! Owns pacing and statistics only. It never queues without bound: at most
//! [`MAX_IN_FLIGHT_BYTES`] of records await commit, and past that it waits. Supervised: a
//! restart forgets the appends in flight (their futures were dropped) and starts pacing afresh.

use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use hdrhistogram::Histogram;

use super::driver::ReplicationDriver;
use super::messages::{AppendError, Close, Describe, Propose, Status};
use super::supervision::*;
use crate::raft::RoleKind;

/// How often records are released: short, so that the records of a second are spread evenly.
const TICK: Duration = Duration::from_millis(1);
/// Bytes of records awaiting commit at once; beyond this the producer waits for commits, so a
/// slow quorum sheds load instead of growing memory. 32 MiB keeps several fsyncs' worth queued.
pub const MAX_IN_FLIGHT_BYTES: usize = 32 << 20;
/// Most bytes of records in one append: big enough to amortise the per-batch cost when running
/// unthrottled, far below the 8 MiB batch limit.
const MAX_APPEND_BYTES: usize = 512 << 10;
/// A throttled producer that fell behind catches up at most this much (one second's records),
/// so a stall never turns into an unbounded burst.
const MAX_BACKLOG_SECONDS: f64 = 1.0;
/// How often the node's role is checked (only a leader produces).
const ROLE_CHECK: Duration = Duration::from_millis(50);
/// How often statistics are printed.
const REPORT_EVERY: Duration = Duration::from_secs(5);
/// Latencies above this (µs) are clamped into the histogram's top bucket.
const MAX_LATENCY_US: u64 = 60_000_000;

/// How fast the workload writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throughput {
    PerSecond(u32),
    /// As fast as the quorum commits (`--throughput -1`).
    Unlimited,
    /// One record at a time: each append waits for the previous one's commit.
    Sequential,
}

/// What the workload runs and where its statistics go.
#[derive(Clone)]
pub struct WorkloadSpec {
    pub throughput: Throughput,
    pub record_size: u32,
    /// Where each window's statistics go; `None` prints them to stdout.
    pub sink: Option<Recipient<WorkloadReport>>,
    pub report_every: Duration,
}

impl WorkloadSpec {
    /// The standalone server's workload: statistics printed every 5 s.
    pub fn printed(throughput: Throughput, record_size: u32) -> Self {
        WorkloadSpec {
            throughput,
            record_size,
            sink: None,
            report_every: REPORT_EVERY,
        }
    }
}

/// One window of a leader's committed records and their append→commit latencies (µs).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct WorkloadReport {
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub latency_us: Histogram<u64>,
}

/// Committed records since the last report, on the leader.
struct Window {
    started: Instant,
    records: u64,
    bytes: u64,
    latency_us: Histogram<u64>,
}

impl Window {
    fn new() -> Self {
        Window {
            started: Instant::now(),
            records: 0,
            bytes: 0,
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds"),
        }
    }
}

pub struct WorkloadProducer {
    driver: Addr<ReplicationDriver>,
    throughput: Throughput,
    record_size: usize,
    sink: Option<Recipient<WorkloadReport>>,
    report_every: Duration,
    /// When this node last became leader; `None` while it does not lead.
    leading_since: Option<Instant>,
    /// Records sent since `leading_since`.
    produced: u64,
    in_flight_bytes: usize,
    rng: u64,
    window: Window,
    /// The follower's appended counters at the last report.
    replicated: (u64, u64),
    closed: bool,
    budget: RestartBudget,
    node: Option<Recipient<SupervisionEvent>>,
}

impl WorkloadProducer {
    pub fn new(
        driver: Addr<ReplicationDriver>,
        spec: WorkloadSpec,
        node: Option<Recipient<SupervisionEvent>>,
    ) -> Self {
        let WorkloadSpec {
            throughput,
            record_size,
            sink,
            report_every,
        } = spec;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        WorkloadProducer {
            driver,
            throughput,
            record_size: record_size.max(1) as usize,
            sink,
            report_every,
            leading_since: None,
            produced: 0,
            in_flight_bytes: 0,
            rng: seed | 1,
            window: Window::new(),
            replicated: (0, 0),
            closed: false,
            budget: RestartBudget::default(),
            node,
        }
    }

    fn random_record(&mut self) -> Bytes {
        let mut out = Vec::with_capacity(self.record_size + 8);
        while out.len() < self.record_size {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            out.extend_from_slice(&self.rng.to_le_bytes());
        }
        out.truncate(self.record_size);
        Bytes::from(out)
    }

    /// Records the in-flight budget still allows.
    fn budget_records(&self) -> u64 {
        (MAX_IN_FLIGHT_BYTES.saturating_sub(self.in_flight_bytes) / self.record_size) as u64
    }

    /// Records due now: the throttle's target since leadership began, minus those sent.
    fn due(&mut self, since: Instant) -> u64 {
        match self.throughput {
            Throughput::Unlimited => self.budget_records(),
            Throughput::Sequential => u64::from(self.in_flight_bytes == 0),
            Throughput::PerSecond(rate) => {
                let target = (since.elapsed().as_secs_f64() * f64::from(rate)) as u64;
                let backlog_cap = (f64::from(rate) * MAX_BACKLOG_SECONDS) as u64;
                if target > self.produced + backlog_cap {
                    self.produced = target - backlog_cap;
                }
                (target - self.produced.min(target)).min(self.budget_records())
            }
        }
    }

    fn produce(&mut self, ctx: &mut Context<Self>) {
        let Some(since) = self.leading_since else {
            return;
        };
        let mut due = self.due(since);
        let per_append = (MAX_APPEND_BYTES / self.record_size).max(1) as u64;
        while due > 0 {
            let count = due.min(per_append);
            due -= count;
            self.send(count as usize, ctx);
        }
    }

    fn send(&mut self, count: usize, ctx: &mut Context<Self>) {
        let records: Vec<Bytes> = (0..count).map(|_| self.random_record()).collect();
        let bytes = count * self.record_size;
        self.produced += count as u64;
        self.in_flight_bytes += bytes;
        let sent = Instant::now();
        self.driver
            .send(Propose(records))
            .into_actor(self)
            .map(move |result, act, ctx| {
                act.in_flight_bytes -= bytes;
                match result {
                    Ok(Ok(_)) => act.committed(count, bytes, sent.elapsed()),
                    Ok(Err(AppendError::NotLeader { .. })) => act.leading_since = None,
                    _ => {}
                }
                if !act.throttled() {
                    act.produce(ctx);
                }
            })
            .spawn(ctx);
    }

    fn throttled(&self) -> bool {
        matches!(self.throughput, Throughput::PerSecond(_))
    }

    fn committed(&mut self, count: usize, bytes: usize, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        let _ = self.window.latency_us.record_n(us, count as u64);
        self.window.records += count as u64;
        self.window.bytes += bytes as u64;
    }

    fn check_role(&mut self, ctx: &mut Context<Self>) {
        self.driver
            .send(Describe)
            .into_actor(self)
            .map(|status, act, ctx| {
                let leading = status
                    .as_ref()
                    .is_ok_and(|s| s.role == RoleKind::Leader && s.high_watermark.is_some());
                match (leading, act.leading_since) {
                    (true, None) => {
                        tracing::info!(
                            "leading: writing the workload to __raft_performance_test (the log Kafka's tools call __cluster_metadata)"
                        );
                        act.leading_since = Some(Instant::now());
                        act.produced = 0;
                        act.produce(ctx);
                    }
                    (false, Some(_)) => act.leading_since = None,
                    _ => {}
                }
            })
            .spawn(ctx);
    }

    fn report(&mut self, ctx: &mut Context<Self>) {
        let w = std::mem::replace(&mut self.window, Window::new());
        let seconds = w.started.elapsed().as_secs_f64().max(1e-9);
        if let Some(sink) = &self.sink {
            sink.do_send(WorkloadReport {
                records: w.records,
                bytes: w.bytes,
                seconds,
                latency_us: w.latency_us,
            });
            return;
        }
        if w.records > 0 {
            let ms = |q: f64| w.latency_us.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "Throughput (records/second): {:.0}, (bytes/second): {:.0}, Latency (ms): {:.2} p50 {:.2} p75 {:.2} p99 {:.2} p999 {:.2} max",
                w.records as f64 / seconds,
                w.bytes as f64 / seconds,
                ms(0.5),
                ms(0.75),
                ms(0.99),
                ms(0.999),
                w.latency_us.max() as f64 / 1000.0
            );
        }
        if self.leading_since.is_none() {
            self.report_replicated(seconds, ctx);
        }
    }

    /// A follower prints what it appended since the last report (nothing while idle).
    fn report_replicated(&mut self, seconds: f64, ctx: &mut Context<Self>) {
        self.driver
            .send(Describe)
            .into_actor(self)
            .map(move |status: Result<Status, _>, act, _| {
                let Ok(s) = status else { return };
                let (records, bytes) = (
                    s.appended_records - act.replicated.0.min(s.appended_records),
                    s.appended_bytes - act.replicated.1.min(s.appended_bytes),
                );
                act.replicated = (s.appended_records, s.appended_bytes);
                if records > 0 && s.role != RoleKind::Leader {
                    println!(
                        "Replicated (records/second): {:.0}, (bytes/second): {:.0}, high watermark: {}",
                        records as f64 / seconds,
                        bytes as f64 / seconds,
                        s.high_watermark.map_or(-1, |h| h.0)
                    );
                }
            })
            .spawn(ctx);
    }
}

impl Actor for WorkloadProducer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.closed {
            return;
        }
        ctx.run_interval(TICK, |act, ctx| act.produce(ctx));
        ctx.run_interval(ROLE_CHECK, |act, ctx| act.check_role(ctx));
        ctx.run_interval(self.report_every, |act, ctx| act.report(ctx));
        self.check_role(ctx);
    }
}

impl Supervised for WorkloadProducer {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        self.in_flight_bytes = 0;
        self.leading_since = None;
        if !self.closed {
            on_restart(ctx, ActorKind::Workload, &mut self.budget, &self.node);
        }
    }
}

impl Handler<Close> for WorkloadProducer {
    type Result = ();
    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) {
        self.closed = true;
        ctx.stop();
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<InjectFault> for WorkloadProducer {
    type Result = ();
    fn handle(&mut self, msg: InjectFault, ctx: &mut Context<Self>) {
        apply_fault(ctx, ActorKind::Workload, msg.0);
    }
}
