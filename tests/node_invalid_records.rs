//! KAFKA-18723 at the node level: a test-only transport rewrites the Fetch responses the nodes
//! of a three-node quorum receive: bit flips, batches cut short, a batch repeated, a batch
//! skipped, a batch moved to a future epoch (damaged FetchSnapshot chunks are
//! `node_invalid_snapshot_chunks.rs`: no snapshot is ever fetched here). Nothing invalid is ever
//! appended, each bad response is refused with one warning naming the peer, the offset and the
//! reason, the quorum keeps committing, and every node ends with the same valid log.

mod common;

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use common::cluster::{start_cluster_with, wait_for_commit_everywhere, wait_for_leader};
use common::{Lines, Rng, test_seed};
use kraft::node::SnapshotPolicy;
use kraft::raft::Response;
use kraft::record::BatchIter;
use kraft::storage::{LogConfig, ReplicatedLog};
use kraft::types::Offset;

/// What the tamperer did to one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    FlipBit,
    CutShort,
    Repeat,
    Skip,
    FutureEpoch,
}

/// Rewrites `records` by `fault`; `None` when there is nothing to rewrite that way.
fn damage(records: &Bytes, fault: Fault, rng: &mut Rng) -> Option<Bytes> {
    let batches: Vec<Bytes> = BatchIter::new(records.clone())
        .map_while(Result::ok)
        .map(|b| b.as_bytes().clone())
        .collect();
    let first = batches.first()?;
    let mut out = BytesMut::new();
    match fault {
        Fault::FlipBit => {
            // Inside the CRC-covered part of a batch, so that it is damage, not a cut.
            let victim = rng.below(batches.len() as u64) as usize;
            for (i, b) in batches.iter().enumerate() {
                let mut bytes = b.to_vec();
                if i == victim {
                    let at = 21 + rng.below((bytes.len() - 21) as u64) as usize;
                    bytes[at] ^= 1 << rng.below(8);
                }
                out.extend_from_slice(&bytes);
            }
        }
        Fault::CutShort => {
            out.extend_from_slice(
                &records[..records.len() - 1 - rng.below(first.len() as u64 - 1) as usize],
            );
        }
        Fault::Repeat => {
            out.extend_from_slice(first);
            out.extend_from_slice(records);
        }
        Fault::Skip if batches.len() > 1 => {
            for b in &batches[1..] {
                out.extend_from_slice(b);
            }
        }
        Fault::Skip => return None,
        Fault::FutureEpoch => {
            // The epoch field lies outside the CRC: the batch still checks out.
            let mut bytes = first.to_vec();
            let epoch = i32::from_be_bytes(bytes[12..16].try_into().unwrap());
            bytes[12..16].copy_from_slice(&(epoch + 5).to_be_bytes());
            out.extend_from_slice(&bytes);
            for b in &batches[1..] {
                out.extend_from_slice(b);
            }
        }
    }
    Some(out.freeze())
}

/// Every batch of the log in `dir`, checked as recovery checks them.
fn valid_batches(dir: &std::path::Path) -> Vec<Bytes> {
    let (log, _) = ReplicatedLog::open(dir, LogConfig::default()).expect("a valid log");
    let mut all = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        for batch in BatchIter::new(log.read(next, 1 << 20).unwrap()) {
            let batch = batch.expect("only valid batches were appended");
            assert_eq!(batch.base_offset(), next, "offsets continue");
            next = batch.next_offset();
            all.push(batch.as_bytes().clone());
        }
    }
    all
}

#[actix_rt::test]
async fn invalid_fetched_records_are_refused_and_the_quorum_converges() {
    let lines = Lines::default();
    let writer = lines.clone();
    let _ = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_env_filter("warn")
        .try_init();
    let seed = test_seed();
    let rng = Arc::new(Mutex::new(Rng::new(seed)));
    let faults = Arc::new(Mutex::new(Vec::new()));
    let (hook_rng, hook_faults) = (rng.clone(), faults.clone());
    kraft::actors::tamper::set(Some(Box::new(move |_, response| {
        let mut rng = hook_rng.lock().unwrap();
        match response {
            Response::Fetch(f) if !f.records.is_empty() && rng.below(4) == 0 => {
                let all = [
                    Fault::FlipBit,
                    Fault::CutShort,
                    Fault::Repeat,
                    Fault::Skip,
                    Fault::FutureEpoch,
                ];
                let fault = all[rng.below(all.len() as u64) as usize];
                if let Some(records) = damage(&f.records, fault, &mut rng) {
                    f.records = records;
                    hook_faults.lock().unwrap().push(fault);
                }
            }
            _ => {}
        }
    })));

    let cluster = start_cluster_with(
        "tampered",
        3,
        LogConfig::default(),
        SnapshotPolicy::default(),
    )
    .await;
    let leader = wait_for_leader(&cluster, None).await;
    let node = cluster.nodes[leader].clone().unwrap();
    let mut last = Offset(0);
    for i in 0..300 {
        let values = (0..5)
            .map(|j| Bytes::from(format!("record {i}-{j} (seed {seed})")))
            .collect();
        match node.append(values).await {
            Ok((_, end)) => last = end,
            Err(e) => panic!("seed {seed}: append {i} failed: {e:?}"),
        }
    }
    wait_for_commit_everywhere(&cluster, last).await;
    kraft::actors::tamper::set(None);
    for node in cluster.nodes.iter().flatten() {
        node.shutdown().await;
    }

    let faults = faults.lock().unwrap().clone();
    let kinds: std::collections::BTreeSet<_> = faults.iter().map(|f| format!("{f:?}")).collect();
    assert!(
        kinds.len() >= 4,
        "seed {seed}: too few kinds of damage: {kinds:?}"
    );
    let logs: Vec<Vec<Bytes>> = (0..3)
        .map(|i| valid_batches(&cluster.dirs[i].path().join("__raft_performance_test-0")))
        .collect();
    // Every log is a prefix of the longest (a last leader change may not have reached every
    // follower before the shutdown), and each holds everything committed.
    let longest = logs.iter().max_by_key(|l| l.len()).unwrap();
    for (i, log) in logs.iter().enumerate() {
        assert!(
            longest.starts_with(log),
            "seed {seed}: node {i}'s log diverges from the longest"
        );
        let end = BatchIter::new(log.last().unwrap().clone())
            .next()
            .unwrap()
            .unwrap()
            .next_offset();
        assert!(
            end > last,
            "seed {seed}: node {i} ends at {end}, before {last}"
        );
    }
    let text = lines.text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("refused records fetched from the leader"))
        .collect();
    // Every kind but a cut (a partial last batch is normal, and fetched again) is refused with
    // a warning naming the peer, the offset and the reason.
    let refusable = faults.iter().filter(|f| **f != Fault::CutShort).count();
    assert!(
        !warnings.is_empty() && warnings.len() <= refusable,
        "seed {seed}: {} warnings for {refusable} refusable faults",
        warnings.len()
    );
    for w in &warnings {
        assert!(
            w.contains("peer=") && w.contains("offset=") && w.contains("reason="),
            "seed {seed}: {w}"
        );
    }
    // Each refusal is counted in the refusing node's metrics.
    let counted: u64 = cluster
        .nodes
        .iter()
        .flatten()
        .flat_map(|n| n.metrics().rejected_batches)
        .filter(|(reason, _)| *reason == kraft::metrics::BatchRejection::FetchedRecords)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(counted, warnings.len() as u64, "seed {seed}");
}
