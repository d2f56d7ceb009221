//! The workload producer on a single-voter node: it never writes faster than its throughput,
//! writes nothing while the node does not lead, its one-at-a-time mode keeps one append in
//! flight, and what it reports matches what was committed to the log.

mod common;

use std::time::{Duration, Instant};

use actix::prelude::*;
use common::cluster::{single_node_options, wait_until_leader};
use kraft::node::{NodeHandle, Throughput, WorkloadReport, WorkloadSpec};
use kraft::storage::LogConfig;

/// Collects every report.
#[derive(Default)]
struct Reports(Vec<WorkloadReport>);

impl Actor for Reports {
    type Context = Context<Self>;
}

impl Handler<WorkloadReport> for Reports {
    type Result = ();
    fn handle(&mut self, report: WorkloadReport, _: &mut Context<Self>) {
        self.0.push(report);
    }
}

#[derive(Message)]
#[rtype(result = "Vec<WorkloadReport>")]
struct Take;

impl Handler<Take> for Reports {
    type Result = MessageResult<Take>;
    fn handle(&mut self, _: Take, _: &mut Context<Self>) -> Self::Result {
        MessageResult(std::mem::take(&mut self.0))
    }
}

async fn run(node: &NodeHandle, throughput: Throughput, for_how_long: Duration) -> (u64, f64) {
    let reports = Reports::default().start();
    let started = Instant::now();
    node.run_workload(WorkloadSpec {
        throughput,
        record_size: 100,
        sink: Some(reports.clone().recipient()),
        report_every: Duration::from_millis(100),
    });
    actix_rt::time::sleep(for_how_long).await;
    let taken = reports.send(Take).await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    for r in &taken {
        assert_eq!(r.latency_us.len(), r.records, "one latency per record");
    }
    (taken.iter().map(|r| r.records).sum(), elapsed)
}

#[actix_rt::test]
async fn a_paced_workload_never_exceeds_its_throughput_and_commits_what_it_reports() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeHandle::start(single_node_options(dir.path(), &[1]))
        .await
        .unwrap();
    wait_until_leader(&node).await;
    let (records, elapsed) = run(&node, Throughput::PerSecond(2000), Duration::from_secs(2)).await;
    assert!(
        records as f64 <= 2000.0 * elapsed + 1.0,
        "{records} records in {elapsed:.2} s is faster than 2000/s"
    );
    assert!(records > 0, "nothing committed");
    node.shutdown().await;
    // Everything reported as committed is in the log (plus the leader's control batches and
    // whatever was in flight when the report window closed).
    let (log, _) = kraft::storage::ReplicatedLog::open(
        &dir.path().join("__raft_performance_test-0"),
        LogConfig::default(),
    )
    .unwrap();
    let bytes = common::read_all(&log);
    let mut data_records = 0u64;
    for batch in kraft::record::BatchIter::new(bytes.into()) {
        let batch = batch.unwrap();
        if !batch.is_control() {
            let values = batch.decode_records().unwrap();
            assert!(
                values
                    .iter()
                    .all(|r| r.value.as_ref().unwrap().len() == 100)
            );
            data_records += values.len() as u64;
        }
    }
    assert!(data_records >= records, "{data_records} < {records}");
}

#[actix_rt::test]
async fn a_node_that_does_not_lead_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Voter 1 of a quorum of three with no peers reachable: it can never be elected.
    let node = NodeHandle::start(single_node_options(dir.path(), &[1, 2, 3]))
        .await
        .unwrap();
    let (records, _) = run(&node, Throughput::Unlimited, Duration::from_millis(700)).await;
    assert_eq!(records, 0);
    assert_eq!(node.describe().await.unwrap().appended_records, 0);
    node.shutdown().await;
}

#[actix_rt::test]
async fn one_at_a_time_commits_each_record_before_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeHandle::start(single_node_options(dir.path(), &[1]))
        .await
        .unwrap();
    wait_until_leader(&node).await;
    let mut events = node.subscribe().await.unwrap();
    let (records, _) = run(&node, Throughput::Sequential, Duration::from_millis(500)).await;
    assert!(records > 0);
    // Each append is one record, committed before the next is sent: the high watermark moves
    // by exactly one record at a time.
    let mut last = None;
    let mut steps = 0;
    loop {
        let event = match events.try_recv() {
            Ok(event) => event,
            // The oldest events were dropped (a slow subscriber): start comparing afresh.
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                last = None;
                continue;
            }
            Err(_) => break,
        };
        if let kraft::node::NodeEvent::Committed { high_watermark } = event {
            if let Some(previous) = last {
                assert_eq!(high_watermark.0 - previous, 1, "one record per commit");
                steps += 1;
            }
            last = Some(high_watermark.0);
        }
    }
    assert!(steps > 0);
    node.shutdown().await;
}
