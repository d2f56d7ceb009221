//! Snapshots on a running node: the snapshot writer follows the high watermark, writes
//! snapshots on the byte threshold and on request (never past the high watermark), and after a
//! restart loads the latest one and replays the log after it, agreeing with a full replay.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::cluster::wait_until_leader;
use kraft::node::{NodeHandle, NodeOptions, SnapshotPolicy, WorkloadState};
use kraft::record::BatchIter;
use kraft::state_machine::StateMachine;
use kraft::storage::{LogConfig, ReplicatedLog, list_snapshots};
use kraft::types::{NodeId, Offset};

fn options(dir: &std::path::Path) -> NodeOptions {
    NodeOptions {
        cluster_id: "s".into(),
        node_id: Some(NodeId(1)),
        voters: BTreeSet::from([NodeId(1)]),
        voter_addresses: Vec::new(),
        listener: None,
        partition_dir: dir.join("p-0"),
        log: LogConfig::default(),
        raft: None,
        state_machine: Default::default(),
        fs: None,
        snapshots: SnapshotPolicy {
            max_bytes: 64 << 10,
            interval: None,
            retention_bytes: None,
            retention: None,
        },
        connections: Default::default(),
        security: Default::default(),
        rack: None,
        directory_id: None,
        listener_name: None,
        bootstrap_servers: vec![],
    }
}

async fn leader(dir: &std::path::Path) -> NodeHandle {
    let node = NodeHandle::start(options(dir)).await.unwrap();
    wait_until_leader(&node).await;
    node
}

/// Waits until the state machine has applied everything below the high watermark.
async fn caught_up(node: &NodeHandle) -> WorkloadState {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let hw = node.describe().await.unwrap().high_watermark.unwrap();
        let state = node.workload_state().await.unwrap();
        if state.applied == hw {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "state at {} of {hw}",
            state.applied
        );
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The state a full replay of the log on disk gives.
fn replay(dir: &std::path::Path, up_to: Offset) -> WorkloadState {
    let (log, _) = ReplicatedLog::open(&dir.join("p-0"), LogConfig::default()).unwrap();
    let mut state = WorkloadState::default();
    while state.applied < up_to {
        let bytes = log.read(state.applied, 1 << 20).unwrap();
        for batch in BatchIter::new(bytes) {
            let batch = batch.unwrap();
            if batch.next_offset() > up_to {
                return state;
            }
            state.apply(&batch).unwrap();
        }
    }
    state
}

async fn append_values(node: &NodeHandle, appends: usize) {
    for i in 0..appends {
        let values = (0..10)
            .map(|j| Bytes::from(format!("{i:05}-{j:02}-{}", "v".repeat(100))))
            .collect();
        node.append(values).await.unwrap();
    }
}

#[actix_rt::test]
async fn snapshots_follow_the_threshold_and_a_restart_agrees_with_a_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    let node = leader(dir.path()).await;
    // About 250 KiB of batches: several 64 KiB snapshots.
    append_values(&node, 200).await;
    let state = caught_up(&node).await;
    let hw = node.describe().await.unwrap().high_watermark.unwrap();
    let ids = list_snapshots(&dir.path().join("p-0")).unwrap();
    assert!(ids.len() >= 3, "{ids:?}");
    assert!(ids.iter().all(|id| id.offset <= hw), "{ids:?} past {hw}");
    assert_eq!(state.records, 2000);

    // On request: a snapshot at exactly what is applied; asking again writes nothing new.
    let taken = node.take_snapshot().await.unwrap().expect("a new snapshot");
    assert_eq!(taken.offset, state.applied);
    assert_eq!(node.take_snapshot().await.unwrap(), None);
    node.shutdown().await;
    assert_eq!(replay(dir.path(), state.applied), state);

    // A snapshot write torn by a crash is removed at start-up; the state is rebuilt from the
    // latest snapshot plus the log, and keeps following new commits.
    let torn = dir
        .path()
        .join("p-0/00000000000000099999-0000000009.checkpoint.part");
    std::fs::write(&torn, b"torn").unwrap();
    let node = leader(dir.path()).await;
    let restored = caught_up(&node).await;
    assert!(!torn.exists());
    assert!(restored.applied >= state.applied);
    assert_eq!(
        (restored.records, restored.bytes, restored.checksum),
        (state.records, state.bytes, state.checksum)
    );
    append_values(&node, 20).await;
    let more = caught_up(&node).await;
    assert_eq!(more.records, 2200);
    node.shutdown().await;
    assert_eq!(replay(dir.path(), more.applied), more);
}

/// The restarted state comes from the latest snapshot (not a replay from offset 0): a snapshot
/// rewritten with different counts at the same end offset shows through.
#[actix_rt::test]
async fn a_restart_loads_the_latest_snapshot_and_replays_only_what_follows() {
    let dir = tempfile::tempdir().unwrap();
    let node = leader(dir.path()).await;
    append_values(&node, 30).await;
    caught_up(&node).await;
    let id = node.take_snapshot().await.unwrap().unwrap();
    node.shutdown().await;
    let marked = WorkloadState {
        records: 1_000_000,
        bytes: 7,
        checksum: 42,
        applied: id.offset,
    };
    let partition = dir.path().join("p-0");
    std::fs::remove_file(partition.join(kraft::storage::snapshot_file_name(id))).unwrap();
    let mut writer = kraft::storage::SnapshotFileWriter::create(&partition, id, 0).unwrap();
    marked.write_snapshot(&mut writer).unwrap();
    writer.finish().unwrap();

    let node = leader(dir.path()).await;
    let restored = caught_up(&node).await;
    // The restart's own LeaderChange batch follows the snapshot; no data records do.
    assert_eq!(
        (restored.records, restored.bytes, restored.checksum),
        (1_000_000, 7, 42)
    );
    node.shutdown().await;
}

/// An application's own state machine: every committed value in order.
#[derive(Default)]
struct AllValues {
    values: Vec<Bytes>,
    applied: Offset,
}

impl kraft::node::StateMachine for AllValues {
    fn apply(
        &mut self,
        batch: &kraft::record::RecordBatch,
    ) -> Result<(), kraft::record::RecordError> {
        if !batch.is_control() {
            for r in batch.decode_records()? {
                self.values.push(r.value.unwrap_or_default());
            }
        }
        self.applied = batch.next_offset();
        Ok(())
    }
    fn applied_offset(&self) -> Offset {
        self.applied
    }
    fn write_snapshot(
        &self,
        writer: &mut kraft::storage::SnapshotFileWriter,
    ) -> Result<(), kraft::storage::StorageError> {
        writer.append(self.values.iter().cloned())
    }
    fn load_snapshot(
        &mut self,
        snapshot: &kraft::storage::SnapshotFile,
    ) -> Result<(), kraft::storage::StorageError> {
        let mut values = Vec::new();
        snapshot.for_each_value(|v| values.push(v))?;
        *self = AllValues {
            values,
            applied: snapshot.id.offset,
        };
        Ok(())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

async fn all_values(node: &NodeHandle) -> (Offset, Vec<Bytes>) {
    node.query_state(|s| {
        let s = s.as_any().downcast_ref::<AllValues>().unwrap();
        (s.applied, s.values.clone())
    })
    .await
    .unwrap()
}

/// A library user's state machine is fed every committed value, snapshotted, and rebuilt from
/// its snapshot plus the log after a restart.
#[actix_rt::test]
async fn an_application_state_machine_is_applied_snapshotted_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let with_app = |dir: &std::path::Path| NodeOptions {
        state_machine: kraft::node::StateMachineFactory::new(|| Box::new(AllValues::default())),
        ..options(dir)
    };
    let node = NodeHandle::start(with_app(dir.path())).await.unwrap();
    wait_until_leader(&node).await;
    let mut expected = Vec::new();
    for i in 0..30 {
        let value = Bytes::from(format!("app-{i}"));
        node.append(vec![value.clone()]).await.unwrap();
        expected.push(value);
        if i == 19 {
            node.take_snapshot().await.unwrap().expect("a snapshot");
        }
    }
    let hw = node.describe().await.unwrap().high_watermark.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while all_values(&node).await.0 < hw {
        assert!(Instant::now() < deadline);
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(all_values(&node).await.1, expected);
    assert_eq!(
        node.workload_state().await,
        None,
        "not the server's state machine"
    );
    node.shutdown().await;

    let node = NodeHandle::start(with_app(dir.path())).await.unwrap();
    wait_until_leader(&node).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while all_values(&node).await.1.len() < expected.len() {
        assert!(Instant::now() < deadline);
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(all_values(&node).await.1, expected);
    node.shutdown().await;
}

/// `metadata.max.retention.ms`: once a snapshot's last record is older than the bound (here
/// zero), the log is cleaned up to the next snapshot and the older snapshots are deleted.
#[actix_rt::test]
async fn retention_by_age_cleans_the_log_and_old_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeHandle::start(NodeOptions {
        log: LogConfig {
            segment_bytes: 16 << 10,
            ..LogConfig::default()
        },
        snapshots: SnapshotPolicy {
            max_bytes: 32 << 10,
            interval: None,
            retention_bytes: None,
            retention: Some(Duration::ZERO),
        },
        ..options(dir.path())
    })
    .await
    .unwrap();
    wait_until_leader(&node).await;
    append_values(&node, 200).await;
    caught_up(&node).await;
    let partition = dir.path().join("p-0");
    let deadline = Instant::now() + Duration::from_secs(10);
    while partition.join("00000000000000000000.log").exists() {
        assert!(Instant::now() < deadline, "the log was never cleaned");
        append_values(&node, 5).await;
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let ids = list_snapshots(&partition).unwrap();
    assert!(ids.len() <= 2, "older snapshots were not deleted: {ids:?}");
    node.shutdown().await;
    // The cleaned node restarts from its snapshot and log.
    let node = leader(dir.path()).await;
    caught_up(&node).await;
    node.shutdown().await;
}

/// A snapshot that cannot be loaded keeps the node from starting, with an error naming the file:
/// starting from an empty state instead would apply only the log after the snapshot, and log
/// cleaning would still count the damaged file as covering everything below it.
#[actix_rt::test]
async fn a_snapshot_that_cannot_be_loaded_keeps_the_node_from_starting_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let node = leader(dir.path()).await;
    append_values(&node, 30).await;
    caught_up(&node).await;
    let id = node.take_snapshot().await.unwrap().unwrap();
    node.shutdown().await;
    let name = kraft::storage::snapshot_file_name(id);
    let path = dir.path().join("p-0").join(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();

    match NodeHandle::start(options(dir.path())).await {
        Err(e) => {
            let line = e.to_string();
            assert!(line.contains(&name) && line.contains("snapshot"), "{line}");
        }
        Ok(_) => panic!("a node started on an unreadable snapshot"),
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the snapshot was left as it was"
    );
}

/// A log the disk can no longer read stops the node: answering reads (a follower's fetch, the
/// state machine's catch-up) with nothing would leave a leader leading while its followers
/// starve.
#[actix_rt::test]
async fn a_log_read_failure_stops_the_node_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let node = leader(dir.path()).await;
    append_values(&node, 3).await;
    let segment = dir.path().join("p-0/00000000000000000000.log");
    // Damage the first batch's length at rest (bytes 8..12), as a bad sector would.
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[8..12].copy_from_slice(&0x7fff_0000u32.to_be_bytes());
    std::fs::write(&segment, bytes).unwrap();
    assert!(node.read_committed(Offset(0), 1 << 20).await.is_err());
    let state = actix_rt::time::timeout(Duration::from_secs(10), node.stopped())
        .await
        .expect("the node stops");
    match state {
        kraft::node::NodeState::Failed(reason) => {
            assert!(reason.contains("00000000000000000000.log"), "{reason}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// A snapshot that cannot be written stops the node, never retried: the write may have failed in
/// an fsync, after which the page cache can hold bytes the disk never got, so a retry could
/// "succeed" on lost data. Here the disk fills up under the snapshot.
#[actix_rt::test]
async fn a_failed_snapshot_write_stops_the_node() {
    let disk = kraft::storage::SimFs::new();
    let options = NodeOptions {
        fs: Some(disk.fs()),
        ..options(std::path::Path::new("/sim"))
    };
    let node = NodeHandle::start(options).await.unwrap();
    wait_until_leader(&node).await;
    append_values(&node, 30).await;
    caught_up(&node).await;
    disk.set_capacity(Some(disk.used_bytes() + 64));
    let taken = node.take_snapshot().await;
    assert!(taken.is_err(), "{taken:?}");
    let state = actix_rt::time::timeout(Duration::from_secs(10), node.stopped())
        .await
        .expect("the node stops");
    match state {
        kraft::node::NodeState::Failed(reason) => {
            assert!(reason.contains("snapshot"), "{reason}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}
