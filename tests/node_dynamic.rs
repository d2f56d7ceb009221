//! The actor node on a dynamic quorum (kraft.version 1, voters in the log): a node on a
//! directory formatted like `kraft storage format --standalone` elects itself and writes the
//! bootstrap voters into its first LeaderChange batch; a restart takes the voter set from its
//! log (the checkpoint removed); a snapshot it writes holds the Voters record after its header,
//! and a node installing that snapshot reports the same voter set; a node formatted to join
//! (`--no-initial-controllers`) finds the leader through bootstrap servers and replicates as an
//! observer.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::cluster::raft_config;
use kraft::node::{NodeHandle, NodeOptions, SnapshotPolicy, Status};
use kraft::raft::{RoleKind, VoterSet};
use kraft::record::{BatchIter, ControlRecord, VoterEndpoint, VoterRecord, VotersRecord};
use kraft::storage::{LogConfig, ReplicatedLog};
use kraft::types::{NodeId, Offset};
use kraft::uuid::Uuid;

/// The quorum listener's name in the Voters records and the nodes' options.
const LISTENER: &str = "CONTROLLER";
/// How long a step may take on a loaded machine.
const SETTLE: Duration = Duration::from_secs(20);

fn partition(dir: &Path) -> PathBuf {
    dir.join("__raft_performance_test-0")
}

fn directory_id(n: u8) -> Uuid {
    Uuid([n; 16])
}

/// Node `id`'s options on `dir` for a dynamic quorum: no static voters, its directory id and
/// listener name, the given bootstrap servers.
fn options(
    dir: &Path,
    id: i32,
    listener: std::net::TcpListener,
    bootstrap_servers: Vec<String>,
) -> NodeOptions {
    NodeOptions {
        cluster_id: "dyn".into(),
        node_id: Some(NodeId(id)),
        voters: BTreeSet::new(),
        voter_addresses: Vec::new(),
        listener: Some(listener),
        partition_dir: partition(dir),
        log: LogConfig::default(),
        raft: Some(raft_config()),
        snapshots: SnapshotPolicy::default(),
        state_machine: Default::default(),
        fs: None,
        connections: Default::default(),
        security: Default::default(),
        rack: None,
        directory_id: Some(directory_id(id as u8)),
        listener_name: Some(LISTENER.into()),
        bootstrap_servers,
    }
}

fn bind() -> (std::net::TcpListener, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// `format --standalone` for node `id` listening on `port`: the bootstrap checkpoint names it
/// the one voter.
fn format_standalone(dir: &Path, id: i32, port: u16) -> VotersRecord {
    let voters = VotersRecord {
        version: 0,
        voters: vec![VoterRecord {
            voter_id: id,
            voter_directory_id: directory_id(id as u8),
            endpoints: vec![VoterEndpoint {
                name: LISTENER.into(),
                host: "127.0.0.1".into(),
                port,
            }],
            min_supported_kraft_version: 0,
            max_supported_kraft_version: 1,
        }],
    };
    kraft::storage::write_bootstrap_checkpoint(&partition(dir), voters.clone(), 0).unwrap();
    voters
}

/// Polls `node` until `ready` holds for its status, or fails after [`SETTLE`].
async fn wait_for(node: &NodeHandle, what: &str, ready: impl Fn(&Status) -> bool) -> Status {
    let deadline = Instant::now() + SETTLE;
    loop {
        if let Some(status) = node.describe().await
            && ready(&status)
        {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {:?} ({:?})",
            node.describe().await,
            node.state()
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_leader(node: &NodeHandle) -> Status {
    wait_for(node, "no leader", |s| {
        s.role == RoleKind::Leader && s.high_watermark.is_some()
    })
    .await
}

/// Appends until the node takes it (it may not lead yet).
async fn append(node: &NodeHandle, value: &str) -> (Offset, Offset) {
    let deadline = Instant::now() + SETTLE;
    loop {
        match node.append(vec![Bytes::from(value.to_string())]).await {
            Ok(range) => return range,
            Err(e) => assert!(Instant::now() < deadline, "append failed: {e}"),
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The control records of the first control batch in the log of `dir`.
fn first_control_batch(dir: &Path) -> Vec<ControlRecord> {
    let (log, _) = ReplicatedLog::open(&partition(dir), LogConfig::default()).unwrap();
    let bytes = log.read(Offset(0), 1 << 20).unwrap();
    let batch = BatchIter::new(bytes)
        .map(Result::unwrap)
        .find(|b| b.is_control())
        .expect("a control batch");
    kraft::raft::control_records(&batch)
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .collect()
}

fn voter_set(record: &VotersRecord) -> VoterSet {
    VoterSet::from_record(record).unwrap()
}

#[actix_rt::test]
async fn a_standalone_node_elects_itself_and_keeps_its_voters_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, port) = bind();
    let voters = format_standalone(dir.path(), 1, port);
    let node = NodeHandle::start(options(dir.path(), 1, listener, vec![]))
        .await
        .unwrap();
    let status = wait_for_leader(&node).await;
    assert_eq!(status.voter_set, Some(voter_set(&voters)));
    assert_eq!(status.kraft_version, 1);
    append(&node, "one").await;
    node.shutdown().await;
    drop(node);

    // The first leader copied the bootstrap voters into its LeaderChange batch.
    let records = first_control_batch(dir.path());
    assert!(
        matches!(records.first(), Some(ControlRecord::LeaderChange(l)) if l.leader_id == 1),
        "{records:?}"
    );
    assert!(
        records.iter().any(|r| matches!(r,
            ControlRecord::KRaftVersion(k) if k.kraft_version == 1)),
        "{records:?}"
    );
    assert!(
        records.contains(&ControlRecord::Voters(voters.clone())),
        "{records:?}"
    );

    // Without the checkpoint, the voter set comes from the log alone: the node is still the
    // one voter and leads again.
    let checkpoint = partition(dir.path()).join("00000000000000000000-0000000000.checkpoint");
    std::fs::remove_file(checkpoint).unwrap();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let node = NodeHandle::start(options(dir.path(), 1, listener, vec![]))
        .await
        .unwrap();
    let status = wait_for_leader(&node).await;
    assert_eq!(status.voter_set, Some(voter_set(&voters)));
    assert_eq!(status.kraft_version, 1);
    node.shutdown().await;
}

#[actix_rt::test]
async fn a_damaged_voter_history_stops_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, _) = bind();
    // A Voters record without voters is no voter set.
    let checkpoint = kraft::storage::write_bootstrap_checkpoint(
        &partition(dir.path()),
        VotersRecord {
            version: 0,
            voters: Vec::new(),
        },
        0,
    )
    .unwrap();
    let error = match NodeHandle::start(options(dir.path(), 1, listener, vec![])).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a node started on an empty voter set"),
    };
    assert!(error.contains(&checkpoint.display().to_string()), "{error}");
}
