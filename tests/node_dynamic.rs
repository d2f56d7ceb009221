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
use kraft::storage::{LogConfig, ReplicatedLog, SnapshotFile, list_snapshots};
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
    options_with(
        dir,
        id,
        listener,
        bootstrap_servers,
        LogConfig::default(),
        SnapshotPolicy::default(),
    )
}

fn options_with(
    dir: &Path,
    id: i32,
    listener: std::net::TcpListener,
    bootstrap_servers: Vec<String>,
    log: LogConfig,
    snapshots: SnapshotPolicy,
) -> NodeOptions {
    NodeOptions {
        cluster_id: "dyn".into(),
        node_id: Some(NodeId(id)),
        voters: BTreeSet::new(),
        voter_addresses: Vec::new(),
        listener: Some(listener),
        partition_dir: partition(dir),
        log,
        raft: Some(raft_config()),
        snapshots,
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

    // A dynamic quorum's quorum-state is Kafka's data_version 1, naming the directory id of the
    // voter voted for (the node voted for itself).
    let text = std::fs::read_to_string(partition(dir.path()).join("quorum-state")).unwrap();
    assert!(text.ends_with(r#""data_version":1}"#), "{text}");
    let state = kraft::storage::QuorumStateFile::new(&partition(dir.path()))
        .read()
        .unwrap()
        .unwrap();
    assert_eq!(state.voted_id, Some(NodeId(1)), "{text}");
    assert_eq!(state.voted_directory_id, Some(directory_id(1)), "{text}");

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

/// `format --no-initial-controllers`: kraft.version 1 and no voter set; the node joins later.
fn format_joining(dir: &Path) {
    kraft::storage::write_joining_checkpoint(&partition(dir), 0).unwrap();
}

/// Appends `count` batches of ten ~100-byte records.
async fn append_batches(node: &NodeHandle, count: usize, tag: &str) {
    for i in 0..count {
        let values = (0..10)
            .map(|j| Bytes::from(format!("{tag}-{i:05}-{j}-{}", "p".repeat(90))))
            .collect();
        node.append(values).await.unwrap();
    }
}

#[actix_rt::test]
async fn a_joining_node_finds_the_leader_through_bootstrap_servers_and_observes() {
    let (leader_dir, joining_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (listener, port) = bind();
    let voters = format_standalone(leader_dir.path(), 1, port);
    let leader = NodeHandle::start(options(leader_dir.path(), 1, listener, vec![]))
        .await
        .unwrap();
    wait_for_leader(&leader).await;
    append_batches(&leader, 5, "before").await;

    format_joining(joining_dir.path());
    let (listener, joining_port) = bind();
    let bootstrap = vec![format!("127.0.0.1:{port}")];
    let joining = NodeHandle::start(options(joining_dir.path(), 2, listener, bootstrap))
        .await
        .unwrap();
    append_batches(&leader, 5, "after").await;
    let hw = leader.describe().await.unwrap().high_watermark.unwrap();
    let status = wait_for(&joining, "not following the leader", |s| {
        s.role == RoleKind::Follower && s.leader_id == Some(NodeId(1)) && s.log_end_offset >= hw
    })
    .await;
    // It learned the voters from the leader's log, and is not one of them.
    assert_eq!(status.voter_set, Some(voter_set(&voters)));
    let leader_status = wait_for(&leader, "the joining node is no observer", |s| {
        s.observers.contains_key(&NodeId(2))
    })
    .await;
    assert!(!leader_status.voters.contains_key(&NodeId(2)));
    assert_eq!(
        joining.metrics().raft.current_state,
        kraft::metrics::CurrentState::Observer
    );

    // Added through the library API, it follows as a voter (and says so in its metrics).
    let voter = kraft::raft::Voter {
        key: kraft::raft::ReplicaKey {
            id: NodeId(2),
            directory_id: Some(directory_id(2)),
        },
        endpoints: std::collections::BTreeMap::from([(
            LISTENER.to_string(),
            kraft::raft::ListenerAddress {
                host: "127.0.0.1".into(),
                port: joining_port,
            },
        )]),
        kraft_versions: (0, 1),
    };
    // The leader takes it once a fetch showed it at the leader's log end (an operator retries
    // a REQUEST_TIMED_OUT as this does).
    let deadline = Instant::now() + SETTLE;
    while let Err(e) = leader.add_voter(voter.clone(), SETTLE).await {
        assert!(e.code() == 7 && Instant::now() < deadline, "{e}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let status = wait_for(&joining, "a voter", |s| {
        s.voter_set
            .as_ref()
            .is_some_and(|v| v.get(NodeId(2)).is_some())
    })
    .await;
    assert_eq!(status.role, RoleKind::Follower);
    assert_eq!(
        joining.metrics().raft.current_state,
        kraft::metrics::CurrentState::Follower
    );
    joining.shutdown().await;
    leader.shutdown().await;
}

#[actix_rt::test]
async fn snapshots_hold_the_voters_and_a_node_installing_one_learns_them() {
    let (leader_dir, joining_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (listener, port) = bind();
    let voters = format_standalone(leader_dir.path(), 1, port);
    // Small segments, frequent snapshots and a tight retention: the leader soon cleans the
    // segment holding its first LeaderChange batch, so only a snapshot tells the voters.
    let log = LogConfig {
        segment_bytes: 16 << 10,
        ..LogConfig::default()
    };
    let snapshots = SnapshotPolicy {
        max_bytes: 32 << 10,
        interval: None,
        retention_bytes: Some(96 << 10),
        retention: None,
    };
    let leader = NodeHandle::start(options_with(
        leader_dir.path(),
        1,
        listener,
        vec![],
        log,
        snapshots,
    ))
    .await
    .unwrap();
    wait_for_leader(&leader).await;
    let segment_zero = partition(leader_dir.path()).join("00000000000000000000.log");
    let deadline = Instant::now() + SETTLE;
    while segment_zero.exists() {
        assert!(
            Instant::now() < deadline,
            "the leader never cleaned its log"
        );
        append_batches(&leader, 20, "fill").await;
    }
    let ids = list_snapshots(&partition(leader_dir.path())).unwrap();
    let newest = *ids.last().unwrap();
    let head = SnapshotFile::open(&partition(leader_dir.path()), newest)
        .unwrap()
        .leading_control_records()
        .unwrap();
    assert!(
        matches!(head.as_slice(), [ControlRecord::SnapshotHeader(_), ControlRecord::KRaftVersion(k), ControlRecord::Voters(v)]
            if k.kraft_version == 1 && *v == voters),
        "{head:?}"
    );

    format_joining(joining_dir.path());
    let (listener, _) = bind();
    let bootstrap = vec![format!("127.0.0.1:{port}")];
    let joining = NodeHandle::start(options_with(
        joining_dir.path(),
        2,
        listener,
        bootstrap,
        log,
        snapshots,
    ))
    .await
    .unwrap();
    let leader_status = leader.describe().await.unwrap();
    let status = wait_for(&joining, "not caught up", |s| {
        s.log_end_offset >= leader_status.high_watermark.unwrap()
    })
    .await;
    let installed = list_snapshots(&partition(joining_dir.path())).unwrap();
    assert!(
        installed.iter().any(|id| id.offset > Offset(0)),
        "no snapshot installed: {installed:?}"
    );
    assert_eq!(status.voter_set, leader_status.voter_set);
    assert_eq!(status.voter_set, Some(voter_set(&voters)));
    joining.shutdown().await;
    leader.shutdown().await;
}

/// Over mutual TLS, a bootstrap server's certificate names its real node id, not the -2 the
/// joining node knows it by: accepted, while a voter's certificate must still name the voter.
#[actix_rt::test]
async fn a_joining_node_finds_the_leader_over_tls() {
    let ca = common::tls::TestCa::new("dyn");
    let (leader_dir, joining_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (listener, port) = bind();
    format_standalone(leader_dir.path(), 1, port);
    let mut leader_options = options(leader_dir.path(), 1, listener, vec![]);
    leader_options.security = ca.node_settings(1, leader_dir.path());
    let leader = NodeHandle::start(leader_options).await.unwrap();
    wait_for_leader(&leader).await;
    append_batches(&leader, 3, "tls").await;

    format_joining(joining_dir.path());
    let (listener, _) = bind();
    let bootstrap = vec![format!("localhost:{port}")];
    let mut joining_options = options(joining_dir.path(), 2, listener, bootstrap);
    joining_options.security = ca.node_settings(2, joining_dir.path());
    let joining = NodeHandle::start(joining_options).await.unwrap();
    let hw = leader.describe().await.unwrap().high_watermark.unwrap();
    wait_for(&joining, "not following over TLS", |s| {
        s.role == RoleKind::Follower && s.leader_id == Some(NodeId(1)) && s.log_end_offset >= hw
    })
    .await;
    wait_for(&leader, "no TLS observer", |s| {
        s.observers.contains_key(&NodeId(2))
    })
    .await;
    joining.shutdown().await;
    leader.shutdown().await;
}

#[actix_rt::test]
async fn update_raft_voter_from_a_kafka_client_rewrites_the_voters_endpoints() {
    use kafka_protocol::messages::update_raft_voter_request::Listener;
    use kafka_protocol::messages::{ApiKey, UpdateRaftVoterRequest, UpdateRaftVoterResponse};
    use kafka_protocol::protocol::StrBytes;

    let dir = tempfile::tempdir().unwrap();
    let (listener, port) = bind();
    format_standalone(dir.path(), 1, port);
    let node = NodeHandle::start(options(dir.path(), 1, listener, vec![]))
        .await
        .unwrap();
    let status = wait_for_leader(&node).await;
    let mut client = common::kafka::Client::connect(&format!("127.0.0.1:{port}")).await;
    let mut request = UpdateRaftVoterRequest::default();
    request.cluster_id = Some(StrBytes::from_static_str("dyn"));
    request.current_leader_epoch = status.epoch.0;
    request.voter_id = 1;
    request.voter_directory_id = uuid::Uuid::from_bytes(directory_id(1).0);
    let mut moved = Listener::default();
    moved.name = StrBytes::from_static_str(LISTENER);
    moved.host = StrBytes::from_static_str("controller-1.example");
    moved.port = 19093;
    request.listeners = vec![moved];
    request.k_raft_version_feature.min_supported_version = 0;
    request.k_raft_version_feature.max_supported_version = 1;
    let answer: UpdateRaftVoterResponse = client.call(ApiKey::UpdateRaftVoter, 0, &request).await;
    assert_eq!(answer.error_code, 0);
    assert_eq!(answer.current_leader.leader_id.0, 1);
    let status = wait_for(&node, "the new endpoint in force", |s| {
        s.voter_set.as_ref().is_some_and(|set| {
            set.get(NodeId(1))
                .is_some_and(|v| v.endpoints[LISTENER].host == "controller-1.example")
        })
    })
    .await;
    assert_eq!(
        status.voter_set.unwrap().get(NodeId(1)).unwrap().endpoints[LISTENER].port,
        19093
    );
    // Another directory id is not that voter (once the update committed: until then the
    // leader answers REQUEST_TIMED_OUT, one change at a time).
    request.voter_directory_id = uuid::Uuid::from_bytes([9; 16]);
    let deadline = Instant::now() + SETTLE;
    let code = loop {
        let answer: UpdateRaftVoterResponse =
            client.call(ApiKey::UpdateRaftVoter, 0, &request).await;
        if answer.error_code != 7 || Instant::now() > deadline {
            break answer.error_code;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(code, 127, "VOTER_NOT_FOUND");
    node.shutdown().await;
}
