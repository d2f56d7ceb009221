//! Benchmarks of the protocol core's `step` on the leader's write path: a proposal of 100
//! records of 256 bytes (the batch is built and the actions emitted) followed by the flush that
//! commits it. Run with `cargo bench --bench core`.

use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kraft::raft::{Action, Input, LogView, ProposalId, RaftConfig, Replica, RoleKind};
use kraft::types::NodeId;

const RECORDS_PER_PROPOSAL: usize = 100;

/// Feeds back what a single voter's actions ask for (persists and flushes) until quiet.
fn settle(replica: &mut Replica, now: Duration, actions: Vec<Action>) {
    let mut pending = actions;
    while !pending.is_empty() {
        let mut next = Vec::new();
        for action in pending {
            let input = match action {
                Action::PersistElection(_) => Input::ElectionPersisted,
                Action::Flush => Input::Flushed {
                    offset: replica.log().log_end_offset(),
                },
                _ => continue,
            };
            next.extend(replica.step(now, input));
        }
        pending = next;
    }
}

fn single_voter_leader() -> (Replica, Duration) {
    let config = RaftConfig::new("bench", Some(NodeId(1)), [NodeId(1)]);
    let now = Duration::from_secs(1_700_000_000);
    let (mut replica, actions) = Replica::start(
        config,
        None,
        LogView::new(Default::default(), Default::default(), Vec::new()),
        now,
        7,
    );
    settle(&mut replica, now, actions);
    let mut t = now;
    while replica.role() != RoleKind::Leader {
        t += Duration::from_millis(100);
        let actions = replica.step(t, Input::Tick);
        settle(&mut replica, t, actions);
    }
    (replica, t)
}

fn propose_and_commit(c: &mut Criterion) {
    let (mut replica, now) = single_voter_leader();
    let records: Vec<Bytes> = (0..RECORDS_PER_PROPOSAL)
        .map(|i| Bytes::from(vec![i as u8; 256]))
        .collect();
    let mut id = 0u64;
    let mut group = c.benchmark_group("core");
    group.throughput(Throughput::Elements(RECORDS_PER_PROPOSAL as u64));
    group.bench_function("propose_100x256B_then_flush", |b| {
        b.iter(|| {
            id += 1;
            let actions = replica.step(
                now,
                Input::Propose {
                    id: ProposalId(id),
                    records: records.clone(),
                },
            );
            settle(&mut replica, now, actions);
        })
    });
    group.finish();
}

criterion_group!(benches, propose_and_commit);
criterion_main!(benches);
