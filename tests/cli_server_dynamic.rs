//! `kraft server` on a metadata directory formatted for a dynamic quorum (kraft.version 1) as
//! real processes: `kraft storage format --standalone` then `kraft server` elects the one voter,
//! commits its workload and does again after a restart; three nodes formatted with the same
//! `--initial-controllers` form a quorum; a replaced disk runs as an observer, saying so; a node
//! formatted with `--no-initial-controllers` finds the leader through the bootstrap servers and
//! replicates as an observer; a damaged checkpoint and a config that also names static voters
//! are refused with one line.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::dynamic::{
    SETTLE, dynamic_config, field, format, initial_controllers, kraft, log_dir, log_end, text,
    voter_ids, wait_for_commits,
};
use common::process::{Server, first_to_log, free_port};

use kraft::storage::MetaProperties;
use kraft::types::Offset;
use kraft::uuid::Uuid;

#[test]
fn a_standalone_voter_elects_itself_commits_and_does_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dynamic_config(dir.path(), 1, &[port], "");
    format(&config, &["--standalone"]);
    let checkpoint = log_dir(dir.path(), 1)
        .join("__cluster_metadata-0/00000000000000000000-0000000000.checkpoint");
    let written = std::fs::read(&checkpoint).unwrap();

    let mut server = Server::start(&config);
    assert!(server.wait_for("leading: writing the workload", SETTLE));
    assert!(server.has_seen("the voters come from the log"));
    assert!(server.has_seen("member=\"voter\""));
    let status = wait_for_commits(port, 1, 100);
    assert_eq!(
        voter_ids(&field(&status, "CurrentVoters:")),
        [1],
        "{status}"
    );
    assert_eq!(field(&status, "CurrentObservers:"), "[]", "{status}");
    let epoch: i64 = field(&status, "LeaderEpoch:").parse().unwrap();
    server.signal("-TERM");
    assert_eq!(server.wait_exit(SETTLE), Some(0));
    let first_end = log_end(dir.path(), 1);
    assert!(first_end > Offset(100), "{first_end}");

    let mut again = Server::start(&config);
    assert!(again.wait_for("leading: writing the workload", SETTLE));
    let status = wait_for_commits(port, 1, first_end.0);
    let new_epoch: i64 = field(&status, "LeaderEpoch:").parse().unwrap();
    assert!(new_epoch > epoch, "{epoch} then {new_epoch}");
    again.signal("-TERM");
    assert_eq!(again.wait_exit(SETTLE), Some(0));
    assert!(log_end(dir.path(), 1) > first_end);
    assert_eq!(
        std::fs::read(&checkpoint).unwrap(),
        written,
        "the bootstrap checkpoint is never rewritten"
    );
}

#[test]
fn three_nodes_formatted_with_the_same_initial_controllers_form_a_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let ids = [Uuid::random(), Uuid::random(), Uuid::random()];
    let list = initial_controllers(&ports, &ids);
    let servers: Vec<Option<Server>> = (1..=3)
        .map(|id| {
            let config = dynamic_config(dir.path(), id, &ports, "");
            format(&config, &["--initial-controllers", &list]);
            Some(Server::start(&config))
        })
        .collect();
    let leader = first_to_log(&servers, "leading: writing", SETTLE).expect("a leader") + 1;
    let status = wait_for_commits(ports[0], leader, 100);
    assert_eq!(
        voter_ids(&field(&status, "CurrentVoters:")),
        [1, 2, 3],
        "{status}"
    );
    for id in 1..=3 {
        let meta = MetaProperties::read(&log_dir(dir.path(), id))
            .unwrap()
            .unwrap();
        assert_eq!(meta.directory_id, Some(ids[id - 1]));
    }
}

/// Asserts a server run ends at once with exit 2 and one `kraft:` line containing `needle`.
fn assert_refused(config: &Path, needle: &str) {
    let out = kraft(&["server", "-c", config.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("kraft: ") && err.contains(needle), "{err}");
}

#[test]
fn a_replaced_disk_is_not_the_voter_and_runs_as_an_observer() {
    let dir = tempfile::tempdir().unwrap();
    let config = dynamic_config(dir.path(), 1, &[free_port()], "");
    format(&config, &["--standalone"]);
    let logs = log_dir(dir.path(), 1);
    let mut meta = MetaProperties::read(&logs).unwrap().unwrap();
    let voter = meta.directory_id.unwrap();
    let replaced = Uuid::random();
    meta.directory_id = Some(replaced);
    meta.write(&logs).unwrap();
    let mut server = Server::start(&config);
    assert!(server.wait_for("kraft node started", SETTLE));
    let warning = server
        .line_containing("running as an observer until it is added as a voter again")
        .expect("the replaced disk is named at start");
    assert!(
        warning.contains(&voter.to_string()) && warning.contains(&replaced.to_string()),
        "{warning}"
    );
    assert!(server.has_seen("member=\"observer\""));
    // The one voter's disk is gone: nobody may lead.
    server.drain(Duration::from_secs(2));
    assert!(!server.has_seen("leading: writing"));
    server.signal("-TERM");
    assert_eq!(server.wait_exit(SETTLE), Some(0));
}

#[test]
fn a_damaged_bootstrap_checkpoint_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dynamic_config(dir.path(), 1, &[free_port()], "");
    format(&config, &["--standalone"]);
    let checkpoint = log_dir(dir.path(), 1)
        .join("__cluster_metadata-0/00000000000000000000-0000000000.checkpoint");
    let bytes = std::fs::read(&checkpoint).unwrap();
    std::fs::write(&checkpoint, &bytes[..bytes.len() - 5]).unwrap();
    assert_refused(
        &config,
        "00000000000000000000-0000000000.checkpoint: corrupt",
    );
}

#[test]
fn a_joining_node_finds_the_leader_and_replicates_as_an_observer() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port()];
    let standalone = dynamic_config(dir.path(), 1, &ports, "");
    format(&standalone, &["--standalone"]);
    let joining = dynamic_config(dir.path(), 2, &ports, "");
    format(&joining, &["--no-initial-controllers"]);
    let mut leader = Server::start(&standalone);
    assert!(leader.wait_for("leading: writing the workload", SETTLE));
    let mut observer = Server::start(&joining);
    assert!(observer.wait_for("kraft node started", SETTLE));
    assert!(observer.has_seen("starting as an observer that finds the leader"));
    assert!(observer.has_seen("member=\"observer\""));

    let bootstrap = format!("localhost:{}", ports[0]);
    let deadline = Instant::now() + SETTLE;
    let status = loop {
        let o = kraft(&[
            "quorum",
            "--bootstrap-controller",
            &bootstrap,
            "describe",
            "--status",
        ]);
        let out = text(&o.stdout);
        if o.status.success() && voter_ids(&field(&out, "CurrentObservers:")) == [2] {
            break out;
        }
        assert!(Instant::now() < deadline, "node 2 never observed: {out}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        voter_ids(&field(&status, "CurrentVoters:")),
        [1],
        "{status}"
    );
    observer.signal("-TERM");
    assert_eq!(observer.wait_exit(SETTLE), Some(0));
    leader.signal("-TERM");
    assert_eq!(leader.wait_exit(SETTLE), Some(0));
    // It replicated the leader's log (an observer never appends on its own).
    assert!(log_end(dir.path(), 2) > Offset(0));
}

#[test]
fn static_voters_over_a_dynamic_dir_are_refused() {
    let port = free_port();
    let other = tempfile::tempdir().unwrap();
    let config = dynamic_config(other.path(), 1, &[port], "");
    format(&config, &["--standalone"]);
    let with_voters = format!("controller.quorum.voters=1@localhost:{port}");
    let out = kraft(&[
        "server",
        "-c",
        config.to_str().unwrap(),
        "--override",
        &with_voters,
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("controller.quorum.voters is set, but") && err.lines().count() == 1,
        "{err}"
    );
}
