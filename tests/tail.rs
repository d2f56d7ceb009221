//! The id-less tail (`kraft::tail`): it follows a live quorum through leader changes and hands
//! out each committed record once, in order; the leader keeps no state for it; it starts where
//! asked; and a stretch only a snapshot holds is reported as a gap, never skipped silently.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::cluster::{
    Cluster, committed_values, start_cluster, start_cluster_with, wait_for_commit_everywhere,
    wait_for_leader,
};
use kraft::node::{AppendError, SnapshotPolicy};
use kraft::storage::LogConfig;
use kraft::tail::{Tail, TailLimits, TailRecord, TailStep, TailTarget};
use kraft::types::Offset;

fn target(cluster: &Cluster) -> TailTarget {
    TailTarget {
        cluster_id: cluster.cluster_id.clone(),
        voters: cluster.addresses.clone(),
        security: Default::default(),
    }
}

/// Appends `value` through whichever node leads, retrying through elections; returns its
/// offset once committed.
async fn append_somewhere(cluster: &Cluster, value: Bytes) -> Offset {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for node in cluster.nodes.iter().flatten() {
            match node.append(vec![value.clone()]).await {
                Ok((first, _)) => return first,
                Err(AppendError::NotLeader { .. }) | Err(AppendError::Stopped) => {}
                Err(e) => panic!("append failed: {e}"),
            }
        }
        assert!(Instant::now() < deadline, "no leader took the append");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Takes records (and no gaps) from the tail until it has handed out everything below `end`.
async fn take_until(tail: &mut Tail, end: Offset) -> Vec<TailRecord> {
    let mut records = Vec::new();
    while tail.position() < end {
        let step = actix_rt::time::timeout(Duration::from_secs(20), tail.next())
            .await
            .unwrap_or_else(|_| panic!("the tail stopped at {} before {end}", tail.position()))
            .unwrap();
        match step {
            TailStep::Records(r) => records.extend(r),
            gap => panic!("unexpected {gap:?}"),
        }
    }
    records
}

fn value(i: usize) -> Bytes {
    Bytes::from(format!("value-{i}"))
}

#[actix_rt::test]
async fn the_tail_hands_out_every_committed_record_once_across_leader_changes() {
    let mut cluster = start_cluster("tail-follow", 3).await;
    wait_for_leader(&cluster, None).await;
    let mut tail = Tail::start(target(&cluster), Offset(0)).await.unwrap();
    let mut last = Offset(0);
    for i in 0..300 {
        last = append_somewhere(&cluster, value(i)).await;
        if i == 100 {
            // A crash: the leader is killed outright.
            let leader = wait_for_leader(&cluster, None).await;
            cluster.nodes[leader].take().unwrap().kill().await;
        }
        if i == 200 {
            // A graceful hand-over: the new leader resigns; the killed node comes back first so
            // that a majority remains.
            let leader = wait_for_leader(&cluster, None).await;
            let down = cluster.nodes.iter().position(Option::is_none).unwrap();
            cluster.start(down).await;
            cluster.nodes[leader].take().unwrap().shutdown().await;
        }
    }
    let records = take_until(&mut tail, Offset(last.0 + 1)).await;

    // Exactly the committed values, in order, each once; offsets strictly increasing.
    let survivor = cluster.nodes.iter().flatten().next().unwrap();
    wait_for_commit_everywhere(&cluster, last).await;
    let committed = committed_values(survivor).await;
    let tailed: Vec<Bytes> = records.iter().filter_map(|r| r.value.clone()).collect();
    assert_eq!(tailed, committed);
    assert_eq!(tailed.len(), 300);
    assert!(records.windows(2).all(|w| w[0].offset < w[1].offset));
    let epochs: std::collections::BTreeSet<_> = records.iter().map(|r| r.epoch).collect();
    assert!(epochs.len() >= 3, "three leaders wrote: {epochs:?}");

    // The leader holds nothing for the tail: no observer entry, though it fetches all along.
    let leader = wait_for_leader(&cluster, None).await;
    let status = cluster.nodes[leader]
        .as_ref()
        .unwrap()
        .describe()
        .await
        .unwrap();
    assert!(status.observers.is_empty(), "{:?}", status.observers);
    let tail_status = tail.node().describe().await.unwrap();
    assert_eq!(tail_status.node_id, None);
    assert_eq!(tail_status.leader_id, status.leader_id);
    tail.stop().await;
}

#[actix_rt::test]
async fn the_tail_starts_where_it_is_asked() {
    let cluster = start_cluster("tail-start", 3).await;
    wait_for_leader(&cluster, None).await;
    for i in 0..10 {
        append_somewhere(&cluster, value(i)).await;
    }
    let start = append_somewhere(&cluster, value(10)).await;
    let mut tail = Tail::start(target(&cluster), start).await.unwrap();
    let last = append_somewhere(&cluster, value(11)).await;
    let records = take_until(&mut tail, Offset(last.0 + 1)).await;
    let values: Vec<_> = records.iter().filter_map(|r| r.value.clone()).collect();
    assert_eq!(values, vec![value(10), value(11)]);
    assert_eq!(records[0].offset, start);
    tail.stop().await;
}

#[actix_rt::test]
async fn records_only_a_snapshot_holds_are_reported_as_a_gap() {
    // Snapshots every 16 KiB; the log is cleaned down to the latest snapshot past 32 KiB.
    let snapshots = SnapshotPolicy {
        max_bytes: 16 << 10,
        interval: None,
        retention_bytes: Some(32 << 10),
        retention: None,
    };
    let log = LogConfig {
        segment_bytes: 8 << 10,
        ..LogConfig::default()
    };
    let cluster = start_cluster_with("tail-gap", 3, log, snapshots).await;
    wait_for_leader(&cluster, None).await;
    let big = |i: usize| Bytes::from(format!("{i:0>1000}"));
    let mut last = Offset(0);
    for i in 0..200 {
        last = append_somewhere(&cluster, big(i)).await;
    }
    // Wait until every node's log starts past 0: the start of the log is only in a snapshot.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log_start = Offset(0);
    while log_start == Offset(0) {
        assert!(Instant::now() < deadline, "the log was never cleaned");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        log_start = Offset(i64::MAX);
        for node in cluster.nodes.iter().flatten() {
            log_start = log_start.min(node.describe().await.unwrap().log_start_offset);
        }
    }
    let mut tail = Tail::start(target(&cluster), Offset(0)).await.unwrap();
    let step = actix_rt::time::timeout(Duration::from_secs(20), tail.next())
        .await
        .unwrap()
        .unwrap();
    let TailStep::Gap { from, to } = step else {
        panic!("expected a gap first, got {step:?}");
    };
    assert_eq!(from, Offset(0));
    assert!(to >= log_start, "{to} vs {log_start}");
    let records = take_until(&mut tail, Offset(last.0 + 1)).await;
    assert_eq!(records.first().map(|r| r.offset), Some(to));
    assert_eq!(records.last().unwrap().value, Some(big(199)));
    tail.stop().await;
}

/// Over mutual TLS the tail presents a certificate that names no node id: the voters let it
/// fetch, as an id-less client, and it follows the log as over PLAINTEXT.
#[actix_rt::test]
async fn the_tail_follows_a_quorum_over_mutual_tls_with_an_idless_certificate() {
    use common::tls::TestCa;
    use kraft::config::{KeyStore, ListenerSecurity, TlsSettings, TrustStore};
    let ca = TestCa::new("tail-ca");
    let certs = tempfile::tempdir().unwrap();
    let security = (1..=3)
        .map(|id| ca.node_settings(id, certs.path()))
        .collect();
    let cluster = common::cluster::start_cluster_secured(
        "tail-tls",
        3,
        LogConfig::default(),
        SnapshotPolicy::default(),
        security,
    )
    .await;
    wait_for_leader(&cluster, None).await;
    // The tail's certificate, and the CA it trusts, as inline PEM.
    let over_tls = |identity: common::tls::Identity| TailTarget {
        security: ListenerSecurity::Ssl(TlsSettings {
            keystore: KeyStore::Inline {
                chain: identity.chain_pem,
                key: identity.key_pem,
            },
            truststore: TrustStore::Inline(ca.pem()),
            check_hostname: false,
            scoped_keys: Default::default(),
        }),
        ..target(&cluster)
    };
    let mut tail = Tail::start(over_tls(ca.identity(None)), Offset(0))
        .await
        .unwrap();
    let mut last = Offset(0);
    for i in 0..5 {
        last = append_somewhere(&cluster, value(i)).await;
    }
    let records = take_until(&mut tail, Offset(last.0 + 1)).await;
    let values: Vec<_> = records.iter().filter_map(|r| r.value.clone()).collect();
    assert_eq!(values, (0..5).map(value).collect::<Vec<_>>());
    tail.stop().await;

    // A client the CA never signed is refused: nothing arrives.
    let stranger = TestCa::new("stranger").identity(None);
    let mut refused = Tail::start(over_tls(stranger), Offset(0)).await.unwrap();
    let step = actix_rt::time::timeout(Duration::from_secs(3), refused.next()).await;
    assert!(step.is_err(), "an unsigned client got {step:?}");
    assert_eq!(refused.node().describe().await.unwrap().leader_id, None);
    refused.stop().await;
}

/// 40 MiB committed while the reader reads nothing: the tail's own log holds it all (it
/// snapshots only where the reader is), so the reader then gets every record, with no gap.
#[actix_rt::test]
async fn a_slow_reader_loses_nothing_within_the_memory_bound() {
    let cluster = start_cluster("tail-slow", 3).await;
    wait_for_leader(&cluster, None).await;
    let limits = TailLimits {
        snapshot_bytes: 4 << 20,
        max_lag_bytes: 64 << 20,
    };
    let mut tail = Tail::start_with(target(&cluster), Offset(0), limits)
        .await
        .unwrap();
    let mut last = Offset(0);
    for i in 0..400 {
        last = append_somewhere(&cluster, big(i)).await;
    }
    replicated(&tail, last).await;
    let records = take_until(&mut tail, Offset(last.0 + 1)).await;
    let values: Vec<_> = records.iter().filter_map(|r| r.value.clone()).collect();
    assert_eq!(values, (0..400).map(big).collect::<Vec<_>>());
    tail.stop().await;
}

/// Past `max_lag_bytes` the tail snapshots anyway: cleaning skips what the reader had not
/// reached, reported as one gap, and the records after it still come, in order.
#[actix_rt::test]
async fn a_reader_past_the_memory_bound_gets_a_gap_and_goes_on() {
    let cluster = start_cluster("tail-bound", 3).await;
    wait_for_leader(&cluster, None).await;
    let limits = TailLimits {
        snapshot_bytes: 4 << 20,
        max_lag_bytes: 12 << 20,
    };
    let mut tail = Tail::start_with(target(&cluster), Offset(0), limits)
        .await
        .unwrap();
    // Two stretches of 20 MiB, each past the bound when the reader looks: the first forced
    // snapshot has no older one to clean down to, the second cleans to itself.
    let mut last = Offset(0);
    let mut values = Vec::new();
    let mut gaps = Vec::new();
    for stretch in 0..2 {
        for i in 0..200 {
            last = append_somewhere(&cluster, big(stretch * 200 + i)).await;
        }
        replicated(&tail, last).await;
        match actix_rt::time::timeout(Duration::from_secs(20), tail.next()).await {
            Ok(Ok(TailStep::Records(r))) => values.extend(r.into_iter().filter_map(|r| r.value)),
            Ok(Ok(TailStep::Gap { from, to })) => gaps.push((from, to)),
            other => panic!("{other:?}"),
        }
    }
    let after = append_somewhere(&cluster, big(400)).await;
    while tail.position() <= after {
        match actix_rt::time::timeout(Duration::from_secs(20), tail.next()).await {
            Ok(Ok(TailStep::Records(r))) => values.extend(r.into_iter().filter_map(|r| r.value)),
            Ok(Ok(TailStep::Gap { from, to })) => gaps.push((from, to)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert!(gaps[0].1 > gaps[0].0 && gaps[0].1 <= after, "{gaps:?}");
    assert_eq!(values.last(), Some(&big(400)));
    assert!(
        values.windows(2).all(|w| w[0] < w[1]),
        "in order, each once"
    );
    tail.stop().await;
}

fn big(i: usize) -> Bytes {
    Bytes::from(format!("{i:08}").repeat(12_500))
}

/// Waits until the tail's own node has committed past `last`.
async fn replicated(tail: &Tail, last: Offset) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tail.node().describe().await.unwrap().high_watermark <= Some(last) {
        assert!(Instant::now() < deadline, "the tail's node never caught up");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}
