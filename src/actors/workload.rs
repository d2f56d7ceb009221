//! The workload producer of the standalone performance server: while this node leads, it
//! appends `throughput` random records per second of `record_size` bytes to the replicated log
//! and reports committed throughput and commit latency.
//!
//! Owns pacing and statistics only. It never blocks on the quorum: a bounded number of appends
//! is in flight, and past that it skips ticks, so a slow quorum sheds load instead of queueing.
//! Supervised: a restart forgets the appends in flight (their futures were dropped) and starts
//! pacing afresh.

use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;

use super::driver::ReplicationDriver;
use super::messages::{Close, Describe, Propose};
use super::supervision::*;
use crate::raft::RoleKind;

/// How often records are produced; each tick appends one batch.
const TICK: Duration = Duration::from_millis(10);
/// Appends (batches) awaiting commit at once; beyond this ticks are skipped.
const MAX_IN_FLIGHT_APPENDS: usize = 1000;
/// How often the node's role is checked (only a leader produces).
const ROLE_CHECK: Duration = Duration::from_millis(250);
/// How often statistics are reported.
const REPORT_EVERY: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Window {
    records: u64,
    batches: u64,
    latency_total: Duration,
    latency_max: Duration,
    skipped_ticks: u64,
}

pub struct WorkloadProducer {
    driver: Addr<ReplicationDriver>,
    throughput: u32,
    record_size: usize,
    leading: bool,
    in_flight: usize,
    /// Fractional records owed from earlier ticks, so any throughput is paced exactly.
    owed: f64,
    rng: u64,
    window: Window,
    window_started: Instant,
    closed: bool,
    budget: RestartBudget,
    node: Option<Recipient<SupervisionEvent>>,
}

impl WorkloadProducer {
    pub fn new(
        driver: Addr<ReplicationDriver>,
        throughput: u32,
        record_size: u32,
        node: Option<Recipient<SupervisionEvent>>,
    ) -> Self {
        WorkloadProducer {
            driver,
            throughput,
            record_size: record_size as usize,
            leading: false,
            in_flight: 0,
            owed: 0.0,
            rng: 0x9E37_79B9_7F4A_7C15 ^ Instant::now().elapsed().as_nanos() as u64,
            window: Window::default(),
            window_started: Instant::now(),
            closed: false,
            budget: RestartBudget::default(),
            node,
        }
    }

    fn random_record(&mut self) -> Bytes {
        let mut out = Vec::with_capacity(self.record_size);
        while out.len() < self.record_size {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            out.extend_from_slice(&self.rng.to_le_bytes());
        }
        out.truncate(self.record_size);
        Bytes::from(out)
    }

    fn produce(&mut self, ctx: &mut Context<Self>) {
        if !self.leading {
            return;
        }
        self.owed += f64::from(self.throughput) * TICK.as_secs_f64();
        let count = self.owed.floor() as usize;
        if count == 0 {
            return;
        }
        if self.in_flight >= MAX_IN_FLIGHT_APPENDS {
            self.window.skipped_ticks += 1;
            return;
        }
        self.owed -= count as f64;
        let records: Vec<Bytes> = (0..count).map(|_| self.random_record()).collect();
        self.in_flight += 1;
        let sent = Instant::now();
        self.driver
            .send(Propose(records))
            .into_actor(self)
            .map(move |result, act, _| {
                act.in_flight -= 1;
                if let Ok(Ok(_)) = result {
                    let latency = sent.elapsed();
                    act.window.records += count as u64;
                    act.window.batches += 1;
                    act.window.latency_total += latency;
                    act.window.latency_max = act.window.latency_max.max(latency);
                }
            })
            .spawn(ctx);
    }

    fn check_role(&mut self, ctx: &mut Context<Self>) {
        self.driver
            .send(Describe)
            .into_actor(self)
            .map(|status, act, _| {
                let leading =
                    status.is_ok_and(|s| s.role == RoleKind::Leader && s.high_watermark.is_some());
                if leading && !act.leading {
                    tracing::info!("leading: writing the workload to __raft_performance_test");
                }
                act.leading = leading;
            })
            .spawn(ctx);
    }

    fn report(&mut self) {
        let elapsed = self.window_started.elapsed().as_secs_f64().max(1e-9);
        let w = std::mem::take(&mut self.window);
        self.window_started = Instant::now();
        if !self.leading && w.records == 0 {
            return;
        }
        let avg_ms = if w.batches == 0 {
            0.0
        } else {
            w.latency_total.as_secs_f64() * 1000.0 / w.batches as f64
        };
        tracing::info!(
            records_per_sec = format!("{:.0}", w.records as f64 / elapsed),
            mb_per_sec = format!(
                "{:.2}",
                w.records as f64 * self.record_size as f64 / elapsed / 1e6
            ),
            commit_latency_avg_ms = format!("{avg_ms:.2}"),
            commit_latency_max_ms = format!("{:.2}", w.latency_max.as_secs_f64() * 1000.0),
            skipped_ticks = w.skipped_ticks,
            "workload"
        );
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
        ctx.run_interval(REPORT_EVERY, |act, _| act.report());
        self.check_role(ctx);
    }
}

impl Supervised for WorkloadProducer {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        self.in_flight = 0;
        self.leading = false;
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
