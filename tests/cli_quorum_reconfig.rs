//! Changing a dynamic quorum's voters while `kraft server` processes run their workload:
//! grow one voter to three with `kraft quorum add-controller`, remove the leader itself and
//! shrink to one with `remove-controller`, replace a voter whose disk was wiped, and let a node
//! join by itself (`controller.quorum.auto.join.enable`). Every record committed along the way
//! is still in the final leader's log, and every node's log agrees with it.

mod common;

use std::path::Path;

use common::dynamic::{
    SETTLE, dynamic_config, field, format, initial_controllers, log_dir, quorum, text, voter_ids,
    wait_for_status,
};
use common::process::{Server, free_port};

use kraft::storage::{LogConfig, MetaProperties, ReplicatedLog};
use kraft::uuid::Uuid;

/// What `add-controller` checks a config for (the server itself does not need it).
const CONTROLLER: &str = "process.roles=controller\n";

fn directory_id(dir: &Path, id: usize) -> Uuid {
    MetaProperties::read(&log_dir(dir, id))
        .unwrap()
        .unwrap()
        .directory_id
        .unwrap()
}

fn voters_of(status: &str) -> Vec<i32> {
    voter_ids(&field(status, "CurrentVoters:"))
}

fn leader_of(status: &str) -> i32 {
    field(status, "LeaderId:").parse().unwrap()
}

fn high_watermark(status: &str) -> i64 {
    field(status, "HighWatermark:").parse().unwrap()
}

/// `add-controller` for node `id`'s config through `ports`: asserts Kafka's line.
fn add_controller(dir: &Path, ports: &[u16], id: usize) {
    let config = dir.join(format!("node-{id}.properties"));
    let out = quorum(
        ports,
        &[
            "--command-config",
            config.to_str().unwrap(),
            "add-controller",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim_end(),
        format!(
            "Added controller {id} with directory id {} and endpoints: PLAINTEXT://localhost:{}",
            directory_id(dir, id),
            ports[id - 1]
        )
    );
}

/// `remove-controller` of voter `id` with directory id `directory`: asserts Kafka's line.
fn remove_controller(ports: &[u16], id: usize, directory: Uuid) {
    let (id_text, dir_text) = (id.to_string(), directory.to_string());
    let out = quorum(
        ports,
        &[
            "remove-controller",
            "--controller-id",
            &id_text,
            "--controller-directory-id",
            &dir_text,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim_end(),
        format!("Removed  KRaft controller {id} with directory id {directory}")
    );
}

/// Waits for `voters` to be the voter set with a leader among them committing past `beyond`.
fn wait_for_voters(ports: &[u16], voters: &[i32], beyond: i64) -> String {
    wait_for_status(ports, &format!("voters {voters:?} committing"), |s| {
        voters_of(s) == voters && voters.contains(&leader_of(s)) && high_watermark(s) > beyond
    })
}

/// Node `id`'s log, whole batches from its start.
fn log_bytes(dir: &Path, id: usize) -> (i64, Vec<u8>) {
    let partition = log_dir(dir, id).join("__raft_performance_test-0");
    let (log, _) = ReplicatedLog::open(&partition, LogConfig::default()).unwrap();
    (log.log_start_offset().0, common::read_all(&log))
}

/// Stops every server gracefully, then checks that the final leader's log holds every offset
/// below `committed` (the highest high watermark reported), and that every node's log agrees
/// byte for byte with the leader's as far as both reach (all of them replicate whole batches
/// from offset 0, and each stopped after following the last leader).
fn stop_and_check(dir: &Path, servers: &mut [(usize, Server)], leader: usize, committed: i64) {
    for (_, server) in servers.iter_mut() {
        server.signal("-TERM");
    }
    for (id, server) in servers.iter_mut() {
        assert_eq!(server.wait_exit(SETTLE), Some(0), "node {id}");
    }
    let partition = log_dir(dir, leader).join("__raft_performance_test-0");
    let (log, _) = ReplicatedLog::open(&partition, LogConfig::default()).unwrap();
    assert!(
        log.log_end_offset().0 >= committed,
        "the leader's log ends at {} below the committed {committed}",
        log.log_end_offset()
    );
    let (start, reference) = log_bytes(dir, leader);
    assert_eq!(start, 0, "nothing was cleaned");
    for (id, _) in servers.iter() {
        let (start, bytes) = log_bytes(dir, *id);
        assert_eq!(start, 0, "node {id}: nothing was cleaned");
        let common = bytes.len().min(reference.len());
        assert!(
            bytes[..common] == reference[..common],
            "node {id}'s log departs from the leader's"
        );
    }
}

#[test]
fn grow_one_voter_to_three_then_remove_the_leader_and_shrink_to_one() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let configs: Vec<_> = (1..=3)
        .map(|id| dynamic_config(dir.path(), id, &ports, CONTROLLER))
        .collect();
    format(&configs[0], &["--standalone"]);
    format(&configs[1], &["--no-initial-controllers"]);
    format(&configs[2], &["--no-initial-controllers"]);
    let mut servers: Vec<(usize, Server)> = (1..=3)
        .map(|id| (id, Server::start(&configs[id - 1])))
        .collect();
    let status = wait_for_status(&ports, "two observers", |s| {
        leader_of(s) == 1 && voter_ids(&field(s, "CurrentObservers:")) == [2, 3]
    });
    let mut committed = high_watermark(&status);

    // Grow: 1 -> 2 -> 3 voters while the leader writes its workload.
    add_controller(dir.path(), &ports, 2);
    committed = high_watermark(&wait_for_voters(&ports, &[1, 2], committed));
    add_controller(dir.path(), &ports, 3);
    let status = wait_for_voters(&ports, &[1, 2, 3], committed);
    committed = high_watermark(&status);
    assert!(
        status.contains(&directory_id(dir.path(), 3).to_string()),
        "{status}"
    );

    // Remove the leader itself: it leads until its removal commits, then another leads.
    remove_controller(&ports, 1, directory_id(dir.path(), 1));
    let status = wait_for_voters(&ports, &[2, 3], committed);
    committed = high_watermark(&status);
    assert_ne!(leader_of(&status), 1);
    let status = wait_for_status(&ports, "node 1 observing", |s| {
        voter_ids(&field(s, "CurrentObservers:")).contains(&1)
    });
    committed = committed.max(high_watermark(&status));

    // Shrink to one: remove whichever of 2 and 3 does not lead.
    let leader = leader_of(&status) as usize;
    let other = if leader == 2 { 3 } else { 2 };
    remove_controller(&ports, other, directory_id(dir.path(), other));
    let status = wait_for_voters(&ports, &[leader as i32], committed);
    committed = high_watermark(&status);
    // The lone voter still commits on its own.
    let status = wait_for_voters(&ports, &[leader as i32], committed + 100);
    committed = high_watermark(&status);
    stop_and_check(dir.path(), &mut servers, leader, committed);
}

#[test]
fn a_voter_whose_disk_was_wiped_observes_until_it_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let ids = [Uuid::random(), Uuid::random(), Uuid::random()];
    let list = initial_controllers(&ports, &ids);
    let configs: Vec<_> = (1..=3)
        .map(|id| dynamic_config(dir.path(), id, &ports, CONTROLLER))
        .collect();
    for config in &configs {
        format(config, &["--initial-controllers", &list]);
    }
    let mut servers: Vec<(usize, Server)> = (1..=3)
        .map(|id| (id, Server::start(&configs[id - 1])))
        .collect();
    let status = wait_for_voters(&ports, &[1, 2, 3], 50);
    let mut committed = high_watermark(&status);

    // Node 3 (a follower, so that the quorum keeps its leader) loses its disk.
    let victim = if leader_of(&status) == 3 { 2 } else { 3 };
    let at = servers.iter().position(|(id, _)| *id == victim).unwrap();
    let (_, mut gone) = servers.remove(at);
    gone.signal("-KILL");
    gone.wait_exit(SETTLE);
    std::fs::remove_dir_all(log_dir(dir.path(), victim)).unwrap();
    format(&configs[victim - 1], &["--no-initial-controllers"]);
    let new_id = directory_id(dir.path(), victim);
    assert_ne!(new_id, ids[victim - 1]);
    let back = Server::start(&configs[victim - 1]);
    assert!(back.wait_for("member=\"observer\"", SETTLE));
    servers.push((victim, back));

    // The quorum still lists the old disk as the voter; the new one only observes.
    let status = wait_for_status(&ports, "the new disk observing", |s| {
        voter_ids(&field(s, "CurrentObservers:")) == [victim as i32]
    });
    assert!(status.contains(&ids[victim - 1].to_string()), "{status}");
    committed = committed.max(high_watermark(&status));

    // Replace it: remove the old disk's voter, add the new one.
    remove_controller(&ports, victim, ids[victim - 1]);
    let remaining: Vec<i32> = (1..=3).filter(|i| *i != victim as i32).collect();
    committed = high_watermark(&wait_for_voters(&ports, &remaining, committed));
    add_controller(dir.path(), &ports, victim);
    let status = wait_for_voters(&ports, &[1, 2, 3], committed);
    assert!(status.contains(&new_id.to_string()), "{status}");
    assert!(!status.contains(&ids[victim - 1].to_string()), "{status}");
    let leader = leader_of(&status) as usize;
    stop_and_check(dir.path(), &mut servers, leader, high_watermark(&status));
}

#[test]
fn a_node_with_auto_join_adds_itself_once_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port()];
    let first = dynamic_config(dir.path(), 1, &ports, "");
    // It advertises another host than it listens on: the entry it adds, and keeps, is the
    // advertised one (as add-controller would take it from the same file).
    let advertised = format!(
        "controller.quorum.auto.join.enable=true\nadvertised.listeners=PLAINTEXT://127.0.0.1:{}\n",
        ports[1]
    );
    let joining = dynamic_config(dir.path(), 2, &ports, &advertised);
    format(&first, &["--standalone"]);
    format(&joining, &["--no-initial-controllers"]);
    let mut servers = vec![(1, Server::start(&first))];
    let committed = high_watermark(&wait_for_voters(&ports, &[1], 100));
    servers.push((2, Server::start(&joining)));
    let status = wait_for_voters(&ports, &[1, 2], committed);
    assert!(
        status.contains(&directory_id(dir.path(), 2).to_string()),
        "{status}"
    );
    let entry = format!("PLAINTEXT://127.0.0.1:{}", ports[1]);
    assert!(status.contains(&entry), "{status}");
    // Still so after the leader has had the time to take an update from it.
    let later = wait_for_voters(&ports, &[1, 2], high_watermark(&status) + 100);
    assert!(later.contains(&entry), "{later}");
    stop_and_check(dir.path(), &mut servers, 1, high_watermark(&later));
}
