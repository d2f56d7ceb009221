//! `kraft quorum add-controller` and `remove-controller` as processes: Kafka's dry-run lines
//! (derived from MetadataQuorumCommand's format, which never connects), Kafka's messages for a
//! configuration that is not a controller's and for bad arguments (exit 2), and one line with
//! exit 1 when the leader refuses: a static (kraft.version 0) quorum cannot change its voters.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::process::{Server, free_port, write_config};
use kraft::storage::MetaProperties;
use kraft::types::NodeId;

/// Longest wait for a single node to elect itself and answer.
const SETTLE: Duration = Duration::from_secs(30);

fn quorum(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kraft"))
        .arg("quorum")
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Exit code `code` and exactly one line on stderr containing `needle`, nothing on stdout.
fn assert_one_line_failure(o: &Output, code: i32, needle: &str) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(needle), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(o.stdout.is_empty(), "{}", text(&o.stdout));
}

/// The server properties of a new controller 4 listening on `listener` whose metadata
/// directory (formatted, with directory id `_KWDkTahTVaiVVVTaugNew`) is in `dir`.
fn new_controller_config(dir: &Path, listener: &str) -> PathBuf {
    let logs = dir.join("logs-4");
    MetaProperties {
        cluster_id: "MkU3OEVBNTcwNTJENDM2Qg".into(),
        node_id: NodeId(4),
        directory_id: Some("_KWDkTahTVaiVVVTaugNew".parse().unwrap()),
    }
    .write(&logs)
    .unwrap();
    let path = dir.join("controller-4.properties");
    std::fs::write(
        &path,
        format!(
            "process.roles=controller\nnode.id=4\nmetadata.log.dir={}\n\
             listeners={listener}://:9093\nadvertised.listeners={listener}://node4.example:19093\n\
             controller.listener.names={listener}\n",
            logs.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn dry_runs_print_kafkas_lines_without_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let config = new_controller_config(dir.path(), "CONTROLLER");
    // Nothing listens there: a dry run must not need it.
    let nobody = format!("127.0.0.1:{}", free_port());
    let o = quorum(&[
        "--bootstrap-controller",
        &nobody,
        "--command-config",
        config.to_str().unwrap(),
        "add-controller",
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "DRY RUN of adding controller 4 with directory id _KWDkTahTVaiVVVTaugNew and endpoints: \
         CONTROLLER://node4.example:19093\n"
    );
    let o = quorum(&[
        "--bootstrap-controller",
        &nobody,
        "remove-controller",
        "-i",
        "2",
        "-d",
        "_KWDkTahTVaiVVVTaugNew",
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "DRY RUN of removing  KRaft controller 2 with directory id _KWDkTahTVaiVVVTaugNew\n"
    );
    // Kafka's script name runs the same commands.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bin/kafka-metadata-quorum.sh");
    let o = Command::new(script)
        .env("KRAFT_BINARY", env!("CARGO_BIN_EXE_kraft"))
        .args(["--bootstrap-controller", &nobody, "remove-controller"])
        .args(["--controller-id", "3", "--controller-directory-id"])
        .args(["_KWDkTahTVaiVVVTaugNew", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "DRY RUN of removing  KRaft controller 3 with directory id _KWDkTahTVaiVVVTaugNew\n"
    );
}

#[test]
fn mistakes_are_one_line_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let nobody = format!("127.0.0.1:{}", free_port());
    let o = quorum(&["--bootstrap-controller", &nobody, "add-controller"]);
    assert_one_line_failure(
        &o,
        2,
        "You must supply the configuration file of the controller you are adding when using add-controller.",
    );
    let broker = dir.path().join("broker.properties");
    std::fs::write(&broker, "process.roles=broker\nnode.id=7\n").unwrap();
    let o = quorum(&[
        "--bootstrap-controller",
        &nobody,
        "--command-config",
        broker.to_str().unwrap(),
        "add-controller",
        "--dry-run",
    ]);
    assert_one_line_failure(
        &o,
        2,
        "process.roles did not contain 'controller' in configuration file. Is this a valid controller configuration file?",
    );
    let remove = |id: &str, dir_id: &str| {
        quorum(&[
            "--bootstrap-controller",
            &nobody,
            "remove-controller",
            "--controller-id",
            id,
            "--controller-directory-id",
            dir_id,
        ])
    };
    assert_one_line_failure(
        &remove("-3", "_KWDkTahTVaiVVVTaugNew"),
        2,
        "Invalid negative --controller-id: -3",
    );
    assert_one_line_failure(
        &remove("3", "not-an-id"),
        2,
        "Failed to parse --controller-directory-id: ",
    );
}

#[test]
fn a_static_quorums_leader_refuses_in_one_line_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), 1, &[port]);
    let server = Server::start_with(&config, 0);
    assert!(server.wait_for("role=Leader", SETTLE), "no leader");
    let bootstrap = format!("localhost:{port}");
    // The quorum's listener is PLAINTEXT (else the leader refuses the voter as INVALID_REQUEST).
    let new_config = new_controller_config(dir.path(), "PLAINTEXT");
    let deadline = Instant::now() + SETTLE;
    // Right after its election the leader may not have committed in its epoch yet (then it
    // answers REQUEST_TIMED_OUT): ask until the answer is the static quorum's.
    let (add, remove) = loop {
        let add = quorum(&[
            "--bootstrap-controller",
            &bootstrap,
            "--command-config",
            new_config.to_str().unwrap(),
            "add-controller",
        ]);
        let remove = quorum(&[
            "--bootstrap-controller",
            &bootstrap,
            "remove-controller",
            "-i",
            "1",
            "-d",
            "_KWDkTahTVaiVVVTaugNew",
        ]);
        let settled = [&add, &remove]
            .iter()
            .all(|o| text(&o.stderr).contains("UNSUPPORTED_VERSION"));
        if settled || Instant::now() >= deadline {
            break (add, remove);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for o in [&add, &remove] {
        assert_one_line_failure(
            o,
            1,
            &format!("{bootstrap} refused the voter change: UNSUPPORTED_VERSION: "),
        );
    }
}
