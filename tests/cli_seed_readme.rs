//! The older seed README (Kafka's raft module before the KRaft renaming) followed verbatim:
//! `bin/test-raft-server-start.sh` with the config file as its argument or after `--config`, and
//! that README's own files (`broker.id`, `quorum.voters`, `zookeeper.connect`, no
//! `controller.listener.names`) with only their ports and log dirs moved to free ones. Three
//! such processes form a quorum whose leader writes the workload; the single-node file runs
//! with one warning that `zookeeper.connect` is unused.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::process::{Server, first_to_log, free_port};

use kraft::storage::{LogConfig, MetaProperties, ReplicatedLog};
use kraft::types::Offset;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The start script, running the binary cargo built for this test (bin/kraft would otherwise
/// build a release binary first, which could outlast every deadline below).
fn start_script(args: &[&str]) -> Command {
    let mut command = Command::new(repo("bin/test-raft-server-start.sh"));
    command
        .args(args)
        .env("KRAFT_BINARY", env!("CARGO_BIN_EXE_kraft"));
    command
}

/// A copy of the shipped `config/<name>` in `dir` with each `(from, to)` replaced: only ports
/// and log dirs, so every key keeps its old name.
fn old_style_copy(dir: &Path, name: &str, replacements: &[(String, String)]) -> PathBuf {
    let mut text = std::fs::read_to_string(repo(&format!("config/{name}"))).unwrap();
    for (from, to) in replacements {
        assert!(text.contains(from.as_str()), "{name} has no {from}");
        text = text.replace(from.as_str(), to);
    }
    for key in ["broker.id=", "quorum.voters=", "zookeeper.connect="] {
        assert!(
            text.lines().any(|l| l.starts_with(key)),
            "{name}: {key} kept"
        );
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn partition(log_dir: &Path) -> PathBuf {
    log_dir.join("__raft_performance_test-0")
}

fn log_end(log_dir: &Path) -> Offset {
    let (log, _) = ReplicatedLog::open(&partition(log_dir), LogConfig::default()).unwrap();
    log.log_end_offset()
}

const ZOOKEEPER_WARNING: &str = "'zookeeper.connect' is unused";

#[test]
fn the_three_old_quorum_files_form_a_quorum_through_the_old_script() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let log_dirs: Vec<PathBuf> = (1..=3)
        .map(|i| dir.path().join(format!("raft-logs-{i}")))
        .collect();
    let configs: Vec<PathBuf> = (0..3)
        .map(|i| {
            let mut replacements: Vec<(String, String)> = (0..3)
                .map(|p| {
                    (
                        format!("localhost:{}", 9092 + p),
                        format!("localhost:{}", ports[p]),
                    )
                })
                .collect();
            replacements.push((
                format!("/tmp/raft-logs-{}", i + 1),
                log_dirs[i].display().to_string(),
            ));
            let config = old_style_copy(
                dir.path(),
                &format!("raft-quorum-{}.properties", i + 1),
                &replacements,
            );
            let text = std::fs::read_to_string(&config).unwrap();
            assert!(!text.contains("node.id") && !text.contains("controller."));
            config
        })
        .collect();
    let path = |i: usize| configs[i].to_str().unwrap().to_string();
    // As the old README writes the commands: the file as the argument for two of them, after
    // --config for the other; the workload flags it names come after.
    let mut servers: Vec<Option<Server>> = vec![
        Some(Server::spawn(start_script(&[
            &path(0),
            "--throughput",
            "1000",
            "--record-size",
            "64",
        ]))),
        Some(Server::spawn(start_script(&[
            "--config",
            &path(1),
            "--throughput",
            "1000",
            "--record-size",
            "64",
        ]))),
        Some(Server::spawn(start_script(&[
            &path(2),
            "--throughput",
            "1000",
            "--record-size",
            "64",
        ]))),
    ];
    let leader = first_to_log(
        &servers,
        "leading: writing the workload",
        Duration::from_secs(60),
    )
    .expect("the old-style quorum elected a leader that writes the workload");
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    for &f in &followers {
        assert!(
            servers[f]
                .as_ref()
                .unwrap()
                .wait_for("Replicated (records/second)", Duration::from_secs(30)),
            "node {} never replicated the leader's workload",
            f + 1
        );
    }
    for s in servers.iter().flatten() {
        s.signal("-TERM");
    }
    for (i, s) in servers.iter_mut().enumerate() {
        let s = s.as_mut().unwrap();
        assert_eq!(
            s.wait_exit(Duration::from_secs(15)),
            Some(0),
            "node {}",
            i + 1
        );
        s.drain(Duration::from_secs(5));
        assert_eq!(
            s.count_seen(ZOOKEEPER_WARNING),
            1,
            "node {}: one zookeeper.connect warning",
            i + 1
        );
    }
    for (i, log_dir) in log_dirs.iter().enumerate() {
        let meta = MetaProperties::read(log_dir).unwrap().unwrap();
        assert_eq!(meta.node_id.0, i as i32 + 1, "broker.id became the node id");
        assert!(
            log_end(log_dir) > Offset(10),
            "node {}'s log holds the workload: {}",
            i + 1,
            log_end(log_dir)
        );
    }
    servers.clear();
}

#[test]
fn the_old_single_node_file_runs_with_one_zookeeper_warning() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log_dir = dir.path().join("raft-logs");
    let config = old_style_copy(
        dir.path(),
        "raft.properties",
        &[
            ("localhost:9092".into(), format!("localhost:{port}")),
            ("/tmp/raft-logs".into(), log_dir.display().to_string()),
        ],
    );
    let mut server = Server::spawn(start_script(&[
        config.to_str().unwrap(),
        "--throughput",
        "2000",
        "--record-size",
        "100",
    ]));
    assert!(
        server.wait_for("leading: writing the workload", Duration::from_secs(30)),
        "the single old-style node never led"
    );
    assert!(
        server.wait_for("Throughput (records/second): ", Duration::from_secs(15)),
        "no statistics reported"
    );
    server.signal("-TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    server.drain(Duration::from_secs(5));
    assert_eq!(
        server.count_seen(ZOOKEEPER_WARNING),
        1,
        "exactly one zookeeper.connect warning"
    );
    assert_eq!(
        MetaProperties::read(&log_dir).unwrap().unwrap().node_id.0,
        0
    );
    assert!(log_end(&log_dir) > Offset(100), "{}", log_end(&log_dir));
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit code 2 and one line on stderr containing every one of `needles`.
fn assert_usage_error(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    for needle in needles {
        assert!(err.contains(needle), "no {needle:?} in: {err}");
    }
}

#[test]
fn the_config_file_is_given_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = old_style_copy(
        dir.path(),
        "raft.properties",
        &[(
            "/tmp/raft-logs".into(),
            dir.path().join("logs").display().to_string(),
        )],
    );
    let config = config.to_str().unwrap();
    let twice = start_script(&[config, "--config", config])
        .output()
        .unwrap();
    assert_usage_error(&twice, &["given twice", "exactly one"]);
    let none = start_script(&["--throughput", "10"]).output().unwrap();
    assert_usage_error(&none, &["no config file", "--config"]);
    assert!(!dir.path().join("logs").exists(), "nothing was formatted");
}

#[test]
fn an_old_and_a_new_name_that_disagree_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = old_style_copy(
        dir.path(),
        "raft.properties",
        &[
            ("broker.id=0".into(), "broker.id=0\nnode.id=7".into()),
            (
                "/tmp/raft-logs".into(),
                dir.path().join("logs").display().to_string(),
            ),
        ],
    );
    let out = start_script(&[config.to_str().unwrap()]).output().unwrap();
    assert_usage_error(
        &out,
        &[config.to_str().unwrap(), "'broker.id'", "'node.id'", "'7'"],
    );
    assert!(!dir.path().join("logs").exists(), "nothing was formatted");
}
