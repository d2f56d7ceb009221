//! The `kraft` command line, run as a process: the storage tool and the server's start-up checks.
//! User mistakes end with one line on stderr and exit code 2, never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bytes::Bytes;
use kraft::record::{BatchIter, ControlRecord};
use kraft::storage::{BOOTSTRAP_SNAPSHOT_ID, MetaProperties, SnapshotFile};
use kraft::uuid::Uuid;

fn kraft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kraft"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a clean user error: exit 2, a `kraft:` line containing `needle`, no panic.
fn assert_usage_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

struct Node {
    _dir: tempfile::TempDir,
    config: PathBuf,
    logs: PathBuf,
    meta: PathBuf,
}

/// A node config with two log dirs and a separate metadata dir.
fn node(extra: &str) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let meta = dir.path().join("meta");
    let config = dir.path().join("node.properties");
    std::fs::write(
        &config,
        format!(
            "node.id=1\nlisteners=CONTROLLER://localhost:9093\ncontroller.listener.names=CONTROLLER\n\
             log.dirs={}\nmetadata.log.dir={}\n{extra}",
            logs.display(),
            meta.display()
        ),
    )
    .unwrap();
    Node {
        _dir: dir,
        config,
        logs,
        meta,
    }
}

/// `kraft storage format -c <node's config> -t <cluster_id> <extra...>`.
fn format(node: &Node, cluster_id: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "storage",
        "format",
        "-c",
        path(&node.config),
        "-t",
        cluster_id,
    ];
    args.extend_from_slice(extra);
    kraft(&args)
}

const VOTERS: &str = "controller.quorum.voters=1@localhost:9093\n";

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn random_uuid_prints_a_fresh_kafka_id() {
    let a = stdout(&kraft(&["storage", "random-uuid"]));
    let b = stdout(&kraft(&["storage", "random-uuid"]));
    for text in [&a, &b] {
        let id = text.trim();
        assert_eq!(id.len(), 22, "{id}");
        assert!(!id.starts_with('-'));
        assert_ne!(id.parse::<Uuid>().unwrap(), Uuid::ZERO);
    }
    assert_ne!(a, b);
}

#[test]
fn format_writes_every_dir_once_and_refuses_a_second_time() {
    let n = node(VOTERS);
    let out = format(&n, "MkU3OEVBNTcwNTJENDM2Qk", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("Formatting data directory {}", n.logs.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Formatting metadata directory {}",
            n.meta.display()
        )),
        "{text}"
    );
    let logs_meta = MetaProperties::read(&n.logs).unwrap().unwrap();
    let meta_meta = MetaProperties::read(&n.meta).unwrap().unwrap();
    assert_eq!(logs_meta.cluster_id, "MkU3OEVBNTcwNTJENDM2Qk");
    assert_eq!(logs_meta.node_id.0, 1);
    assert_ne!(logs_meta.directory_id, meta_meta.directory_id);
    let raw = std::fs::read_to_string(MetaProperties::path(&n.meta)).unwrap();
    assert!(
        raw.contains("version=1\n") && raw.starts_with("#\n#"),
        "{raw}"
    );

    let again = format(&n, "OtherClusterIdAAAAAAAAA", &[]);
    assert_usage_error(&again, "already formatted");
    assert_eq!(
        MetaProperties::read(&n.meta).unwrap().unwrap(),
        meta_meta,
        "a refusal changes nothing"
    );

    let ignored = format(&n, "x", &["--ignore-formatted"]);
    assert!(ignored.status.success());
    assert!(stdout(&ignored).contains("already formatted"));
    assert_eq!(MetaProperties::read(&n.meta).unwrap().unwrap(), meta_meta);
}

#[test]
fn ignore_formatted_formats_only_the_new_dirs() {
    let n = node(VOTERS);
    MetaProperties {
        cluster_id: "c".into(),
        node_id: kraft::types::NodeId(1),
        directory_id: None,
    }
    .write(&n.logs)
    .unwrap();
    let refused = format(&n, "c", &[]);
    assert_usage_error(&refused, &n.logs.display().to_string());
    assert!(
        !n.meta.join("meta.properties").exists(),
        "nothing is formatted when one dir is refused"
    );
    let out = format(&n, "c", &["-g"]);
    assert!(out.status.success());
    assert!(!stdout(&out).contains(&format!("directory {} ", n.logs.display())));
    assert!(MetaProperties::read(&n.meta).unwrap().is_some());
}

#[test]
fn format_refuses_bad_input_cleanly() {
    let n = node(VOTERS);
    assert_usage_error(&format(&n, "", &[]), "--cluster-id");
    assert_usage_error(&format(&n, "a b", &[]), "--cluster-id");
    assert_usage_error(
        &kraft(&["storage", "format", "-c", "/nope.properties", "-t", "x"]),
        "/nope.properties",
    );
    assert_usage_error(
        &kraft(&["storage", "format", "-c", path(&n.config)]),
        "--cluster-id",
    );
    let standalone = format(&n, "x", &["--standalone"]);
    assert_usage_error(&standalone, "--standalone");
    let no_voters = node("controller.quorum.bootstrap.servers=localhost:9093\n");
    assert_usage_error(&format(&no_voters, "x", &[]), "--standalone");
    assert!(!n.logs.exists() && !n.meta.exists());
}

/// The control records of the bootstrap checkpoint in `meta`, after kraft's snapshot reader has
/// checked its framing (header first, footer last, offsets from 0) and found no data records.
fn bootstrap_controls(meta: &Path) -> Vec<ControlRecord> {
    let partition = meta.join("__cluster_metadata-0");
    let file = SnapshotFile::open(&partition, BOOTSTRAP_SNAPSHOT_ID).unwrap();
    let mut data_records = 0;
    file.for_each_value(|_| data_records += 1).unwrap();
    assert_eq!(data_records, 0);
    let bytes = Bytes::from(std::fs::read(&file.path).unwrap());
    let batches: Vec<_> = BatchIter::new(bytes).map(|b| b.unwrap()).collect();
    assert_eq!(batches.len(), 2);
    assert!(batches.iter().all(|b| b.is_control()));
    let controls: Vec<ControlRecord> = batches
        .iter()
        .flat_map(|b| b.decode_records().unwrap())
        .map(|r| ControlRecord::decode(r.key.as_ref().unwrap(), r.value.as_ref().unwrap()).unwrap())
        .collect();
    assert!(matches!(controls[0], ControlRecord::SnapshotHeader(_)));
    assert!(matches!(
        controls.last(),
        Some(ControlRecord::SnapshotFooter(_))
    ));
    controls
}

/// The directory id `format` wrote into `dir`'s meta.properties.
fn directory_id(dir: &Path) -> Uuid {
    MetaProperties::read(dir)
        .unwrap()
        .unwrap()
        .directory_id
        .unwrap()
}

#[test]
fn standalone_writes_a_bootstrap_snapshot_with_this_node_as_the_voter() {
    let n = node("controller.quorum.bootstrap.servers=localhost:9093\n");
    let out = format(&n, "c1", &["--standalone"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Formatting dynamic metadata voter directory"));
    let meta = MetaProperties::read(&n.meta).unwrap().unwrap();
    let controls = bootstrap_controls(&n.meta);
    assert_eq!(controls.len(), 4, "{controls:?}");
    assert!(matches!(controls[1], ControlRecord::KRaftVersion(k) if k.kraft_version == 1));
    let ControlRecord::Voters(voters) = &controls[2] else {
        panic!("{controls:?}")
    };
    assert_eq!(voters.voters[0].voter_id, 1);
    assert_eq!(Some(voters.voters[0].voter_directory_id), meta.directory_id);
    assert_eq!(voters.voters[0].endpoints[0].port, 9093);
}

const DIR_1: &str = "JEXY6aqzQY-32P5TStzaFg";
const DIR_2: &str = "MvDxzVmcRsaTz33bUuRU6A";
const DIR_3: &str = "07R5amHmR32VDA6jHkGbTA";

fn three_controllers() -> String {
    format!("2@host-b:9094:{DIR_2},1@host-a:9093:{DIR_1},3@[::1]:9095:{DIR_3}")
}

#[test]
fn initial_controllers_writes_every_voter_and_takes_this_nodes_directory_id_from_the_list() {
    let n = node("controller.quorum.bootstrap.servers=localhost:9093\n");
    let list = three_controllers();
    let out = format(&n, "c1", &["--initial-controllers", &list]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(directory_id(&n.meta).to_string(), DIR_1);
    let expected = format!(
        "Formatting data directory {} with cluster.id c1, node.id 1, directory.id {}.\n\
         Formatting dynamic metadata voter directory {} with cluster.id c1, node.id 1, directory.id {DIR_1}.\n",
        n.logs.display(),
        directory_id(&n.logs),
        n.meta.display()
    );
    assert_eq!(stdout(&out), expected);
    assert_ne!(directory_id(&n.logs).to_string(), DIR_1);

    let controls = bootstrap_controls(&n.meta);
    assert_eq!(controls.len(), 4, "{controls:?}");
    assert!(matches!(controls[1], ControlRecord::KRaftVersion(k) if k.kraft_version == 1));
    let ControlRecord::Voters(voters) = &controls[2] else {
        panic!("{controls:?}")
    };
    // Each voter as "id directoryId endpoints kraft.version range".
    let got: Vec<String> = voters
        .voters
        .iter()
        .map(|v| {
            let endpoints: Vec<String> = v
                .endpoints
                .iter()
                .map(|e| format!("{}://{}:{}", e.name, e.host, e.port))
                .collect();
            format!(
                "{} {} {} {}-{}",
                v.voter_id,
                v.voter_directory_id,
                endpoints.join(","),
                v.min_supported_kraft_version,
                v.max_supported_kraft_version
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            format!("1 {DIR_1} CONTROLLER://host-a:9093 0-1"),
            format!("2 {DIR_2} CONTROLLER://host-b:9094 0-1"),
            format!("3 {DIR_3} CONTROLLER://::1:9095 0-1"),
        ]
    );
}

#[test]
fn short_flags_and_the_joining_node() {
    let n = node("controller.quorum.bootstrap.servers=localhost:9093\n");
    let out = format(&n, "c1", &["-N"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = format!(
        "Formatting data directory {} with cluster.id c1, node.id 1, directory.id {}.\n\
         Formatting metadata directory {} with cluster.id c1, node.id 1, directory.id {}.\n",
        n.logs.display(),
        directory_id(&n.logs),
        n.meta.display(),
        directory_id(&n.meta)
    );
    assert_eq!(stdout(&out), expected);
    let controls = bootstrap_controls(&n.meta);
    assert_eq!(controls.len(), 3, "no voters: {controls:?}");
    assert!(matches!(controls[1], ControlRecord::KRaftVersion(k) if k.kraft_version == 1));

    let m = node("controller.quorum.bootstrap.servers=localhost:9093\n");
    let out = format(&m, "c1", &["-I", &three_controllers()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(directory_id(&m.meta).to_string(), DIR_1);
}

#[test]
fn a_broker_may_join_without_a_controller_role() {
    let n = node("controller.quorum.bootstrap.servers=localhost:9093\nprocess.roles=broker\n");
    let out = format(&n, "c1", &["--no-initial-controllers"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(bootstrap_controls(&n.meta).len(), 3);
}

/// Asserts `out` is a one-line usage error containing `needle` and that nothing was formatted.
fn assert_refused(n: &Node, out: &Output, needle: &str) {
    assert_usage_error(out, needle);
    assert_eq!(stderr(out).lines().count(), 1, "{}", stderr(out));
    assert!(!n.logs.join("meta.properties").exists() && !n.meta.join("meta.properties").exists());
    assert!(!n.meta.join("__cluster_metadata-0").exists());
}

#[test]
fn dynamic_quorum_flags_are_mutually_exclusive() {
    let n = node("controller.quorum.bootstrap.servers=localhost:9093\n");
    let list = three_controllers();
    for flags in [
        &["--standalone", "--no-initial-controllers"][..],
        &["-s", "-I", &list],
        &["--initial-controllers", &list, "-N"],
    ] {
        assert_refused(&n, &format(&n, "c1", flags), "cannot be used with");
    }
}

#[test]
fn dynamic_quorum_flags_are_refused_where_they_do_not_fit() {
    let list = three_controllers();
    let n = node(VOTERS);
    for flag in [&["-s"][..], &["-N"], &["-I", &list]] {
        let out = format(&n, "c1", flag);
        assert_refused(&n, &out, "cannot be used with controller.quorum.voters");
        assert_usage_error(&out, "controller.quorum.bootstrap.servers instead");
    }
    let dynamic = node("controller.quorum.bootstrap.servers=localhost:9093\n");
    let out = format(&dynamic, "c1", &[]);
    assert_refused(
        &dynamic,
        &out,
        "controller.quorum.voters is not set on this controller, so one of --standalone, --initial-controllers or --no-initial-controllers is needed",
    );
    let others = format!("2@host-b:9094:{DIR_2},3@host-c:9095:{DIR_3}");
    let out = format(&dynamic, "c1", &["-I", &others]);
    assert_refused(
        &dynamic,
        &out,
        "--initial-controllers does not list this node (node.id 1",
    );
    let broker = node("controller.quorum.bootstrap.servers=localhost:9093\nprocess.roles=broker\n");
    let out = format(&broker, "c1", &["-I", &list]);
    assert_refused(
        &broker,
        &out,
        "--initial-controllers makes this node a voter, but process.roles has no 'controller'",
    );
}

#[test]
fn a_malformed_initial_controllers_entry_is_named() {
    let n = node("controller.quorum.bootstrap.servers=localhost:9093\n");
    let cases = [
        (
            format!("1@h:1:{DIR_1},2h:2:{DIR_2}"),
            format!(
                "--initial-controllers: '2h:2:{DIR_2}': no '@' between the node id and the host"
            ),
        ),
        (
            format!("x@h:1:{DIR_1}"),
            format!(
                "--initial-controllers: 'x@h:1:{DIR_1}': 'x' is not a node id (a non-negative integer)"
            ),
        ),
        (
            "1@h:9093".to_string(),
            "--initial-controllers: '1@h:9093': no ':' between the port and the directory id"
                .to_string(),
        ),
        (
            format!("1@h:99999:{DIR_1}"),
            format!("--initial-controllers: '1@h:99999:{DIR_1}': '99999' is not a port (0-65535)"),
        ),
        (
            "1@h:1:short".to_string(),
            "--initial-controllers: '1@h:1:short': 'short' is not a directory id".to_string(),
        ),
        (
            format!("1@[::1:1:{DIR_1}"),
            format!(
                "--initial-controllers: '1@[::1:1:{DIR_1}': the host starts with '[' but has no closing ']'"
            ),
        ),
        (
            format!("1@h:1:{DIR_1},1@g:2:{DIR_2}"),
            "--initial-controllers: node id 1 is given more than once".to_string(),
        ),
        (
            ",".to_string(),
            "--initial-controllers: no voters given".to_string(),
        ),
    ];
    for (list, message) in cases {
        let out = format(&n, "c1", &["--initial-controllers", &list]);
        assert_refused(&n, &out, &message);
    }
}

#[test]
fn info_reports_what_is_there_and_what_is_wrong() {
    let n = node(VOTERS);
    let before = kraft(&["storage", "info", "-c", path(&n.config)]);
    assert_eq!(before.status.code(), Some(1));
    assert!(
        stdout(&before).contains(&format!("{} does not exist.", n.logs.display())),
        "{}",
        stdout(&before)
    );

    assert!(format(&n, "c1", &[]).status.success());
    let ok = kraft(&["storage", "info", "-c", path(&n.config)]);
    let text = stdout(&ok);
    assert_eq!(ok.status.code(), Some(0), "{text}");
    assert!(text.starts_with("Found log directories:\n"), "{text}");
    assert!(text.contains("{cluster.id=c1, directory.id="), "{text}");
    assert!(!text.contains("problem"), "{text}");

    let other = kraft(&[
        "storage",
        "info",
        "-c",
        path(&n.config),
        "--override",
        "node.id=2",
    ]);
    assert_eq!(other.status.code(), Some(1));
    assert!(
        stdout(&other).contains("node.id 1 in meta.properties does not match node.id 2"),
        "{}",
        stdout(&other)
    );

    std::fs::write(MetaProperties::path(&n.logs), "version=1\n").unwrap();
    let corrupt = kraft(&["storage", "info", "-c", path(&n.config)]);
    assert_eq!(corrupt.status.code(), Some(1));
    assert!(
        stdout(&corrupt).contains("missing 'cluster.id'"),
        "{}",
        stdout(&corrupt)
    );
}

#[test]
fn server_refuses_bad_config_and_foreign_directories() {
    let bad = node("controller.quorum.voters=1@localhost\n");
    let out = kraft(&["server", "--config", path(&bad.config)]);
    assert_usage_error(&out, "'controller.quorum.voters'");
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));

    let n = node(VOTERS);
    assert!(format(&n, "c1", &[]).status.success());
    let other_node = kraft(&["server", "-c", path(&n.config), "--override", "node.id=5"]);
    assert_usage_error(&other_node, "does not match node.id 5");
    let other_dir = kraft(&[
        "server",
        "-c",
        path(&n.config),
        "--replica-directory-id",
        "b8tRS7h4TJ2Vt43Dp85v2A",
    ]);
    assert_usage_error(
        &other_dir,
        "does not match --replica-directory-id b8tRS7h4TJ2Vt43Dp85v2A",
    );
    assert_usage_error(
        &kraft(&[
            "server",
            "-c",
            path(&n.config),
            "--replica-directory-id",
            "nope",
        ]),
        "--replica-directory-id",
    );
    assert_usage_error(
        &kraft(&["server", "-c", path(&n.config), "--throughput", "-2"]),
        "--throughput",
    );
    assert_usage_error(
        &kraft(&["server", "-c", path(&n.config), "--throughput", "many"]),
        "--throughput",
    );

    std::fs::create_dir_all(n.meta.join("__raft_performance_test-0")).unwrap();
    std::fs::write(
        n.meta.join("__raft_performance_test-0/quorum-state"),
        "{broken",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listeners = format!("listeners=CONTROLLER://127.0.0.1:{port}");
    assert_usage_error(
        &kraft(&["server", "-c", path(&n.config), "--override", &listeners]),
        "quorum-state: corrupt",
    );
}

#[test]
fn the_shell_entry_points_run_the_release_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("bin/kraft"))
        .args(["storage", "random-uuid"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim().len(), 22);
    let out = Command::new(root.join("bin/test-kraft-server-start.sh"))
        .args(["--config", "/no/such/file.properties"])
        .output()
        .unwrap();
    assert_usage_error(&out, "/no/such/file.properties: cannot read config file");
}

#[test]
fn a_refused_standalone_format_writes_nothing() {
    let n = node("controller.quorum.bootstrap.servers=localhost:9093\n");
    let text = std::fs::read_to_string(&n.config)
        .unwrap()
        .replace("CONTROLLER://localhost:9093", "CONTROLLER://0.0.0.0:9093");
    std::fs::write(&n.config, text).unwrap();
    let out = format(&n, "c1", &["--standalone"]);
    assert_usage_error(&out, "reach");
    assert!(!n.logs.join("meta.properties").exists() && !n.meta.join("meta.properties").exists());
    let broker = node("controller.quorum.bootstrap.servers=localhost:9093\nprocess.roles=broker\n");
    let out = format(&broker, "c1", &["--standalone"]);
    assert_usage_error(&out, "process.roles");
}

#[test]
fn server_on_a_busy_port_is_one_clear_error() {
    let n = node(VOTERS);
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let listeners = format!("listeners=CONTROLLER://127.0.0.1:{port}");
    let voters = format!("controller.quorum.voters=1@127.0.0.1:{port}");
    let out = kraft(&[
        "server",
        "-c",
        path(&n.config),
        "--override",
        &listeners,
        "--override",
        &voters,
    ]);
    assert_usage_error(&out, &format!("cannot listen on 127.0.0.1:{port}"));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

#[test]
fn argument_errors_are_one_line() {
    for args in [
        &["storage", "format"][..],
        &["serve"],
        &["server", "--throughput", "x", "-c", "f"],
    ] {
        let out = kraft(args);
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(
            stderr(&out).lines().count(),
            1,
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).starts_with("kraft: "), "{}", stderr(&out));
    }
    let help = kraft(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("storage"));
}

/// A log of `batches` one-record batches of epoch 1 in `partition`, rolled into small segments.
fn write_log(partition: &Path, batches: i64) -> Vec<PathBuf> {
    use kraft::record::{BatchBuilder, BatchKind};
    use kraft::storage::{LogConfig, OffsetPolicy, ReplicatedLog};
    use kraft::types::{Epoch, Offset};
    let config = LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 256,
    };
    let (mut log, _) = ReplicatedLog::open(partition, config).unwrap();
    for i in 0..batches {
        let mut b = BatchBuilder::new(BatchKind::Data, Offset(i), Epoch(1));
        b.append(0, None, Some(&[i as u8; 100]), &[]).unwrap();
        log.append(b.build().unwrap(), OffsetPolicy::Validate)
            .unwrap();
    }
    log.flush().unwrap();
    log.segment_files()
}

#[test]
fn repair_refuses_an_unformatted_dir_and_changes_nothing_on_a_healthy_one() {
    let n = node("controller.quorum.voters=1@localhost:9093\n");
    assert_usage_error(
        &kraft(&["storage", "repair", "--config", path(&n.config)]),
        "not formatted",
    );
    assert!(format(&n, "c1", &[]).status.success());
    let partition = n.meta.join("__raft_performance_test-0");
    let files = write_log(&partition, 30);
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let out = kraft(&["storage", "repair", "--config", path(&n.config)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("no damage found, nothing changed"),
        "{}",
        stdout(&out)
    );
    let after: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(before == after);
    assert!(!partition.join("repair-point").exists());
}

#[test]
fn repair_moves_a_log_with_a_missing_middle_segment_aside_and_records_its_end() {
    let n = node("controller.quorum.voters=1@localhost:9093\n");
    assert!(format(&n, "c1", &[]).status.success());
    let partition = n.meta.join("__raft_performance_test-0");
    let files = write_log(&partition, 40);
    assert!(files.len() >= 4, "{files:?}");
    let later: Vec<Vec<u8>> = files[2..]
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    std::fs::remove_file(&files[1]).unwrap();

    let out = kraft(&["storage", "repair", "--config", path(&n.config)]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("a missing segment"), "{text}");
    assert!(
        text.contains("Repair point: end offset 40 in epoch 1"),
        "{text}"
    );
    let aside = std::fs::read_dir(&partition)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("the damaged-* directory");
    for (file, bytes) in files[2..].iter().zip(&later) {
        assert!(!file.exists(), "{} is still in the log", file.display());
        let kept = std::fs::read(aside.join(file.file_name().unwrap())).unwrap();
        assert!(&kept == bytes, "{} was not kept whole", file.display());
    }
    let point = std::fs::read_to_string(partition.join("repair-point")).unwrap();
    assert_eq!(point.trim(), r#"{"version":0,"endOffset":40,"epoch":1}"#);
    // The repaired log opens without refusing, holding the first segment only.
    let (log, _) =
        kraft::storage::ReplicatedLog::open(&partition, kraft::storage::LogConfig::default())
            .unwrap();
    assert_eq!(log.segment_files(), vec![files[0].clone()]);
    // A second run finds nothing more to do.
    let again = kraft(&["storage", "repair", "--config", path(&n.config)]);
    assert!(
        stdout(&again).contains("no damage found"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn an_ssl_listener_with_bad_settings_or_files_is_one_line_naming_the_key_and_file() {
    let ssl = "controller.quorum.voters=1@localhost:9093\nlistener.security.protocol.map=CONTROLLER:SSL\n";
    // Kafka's default store type is JKS: kraft reads PEM only, and says so.
    let n = node(ssl);
    let out = kraft(&["server", "--config", path(&n.config)]);
    assert_usage_error(&out, "'ssl.keystore.type'");
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    // Mutual authentication is not optional on the quorum listener.
    let n = node(&format!(
        "{ssl}ssl.keystore.type=PEM\nssl.truststore.type=PEM\n"
    ));
    let out = kraft(&["server", "--config", path(&n.config)]);
    assert_usage_error(&out, "'ssl.client.auth'");
    // A trust store file that is not there: named, with nothing formatted.
    let missing = "/no/such/ca.pem";
    let n = node(&format!(
        "{ssl}ssl.keystore.type=PEM\nssl.truststore.type=PEM\nssl.client.auth=required\n\
         ssl.keystore.location={missing}\nssl.truststore.location={missing}\n"
    ));
    let out = kraft(&["server", "--config", path(&n.config)]);
    assert_usage_error(&out, "ssl.keystore.location (/no/such/ca.pem)");
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(
        !n.meta.join("meta.properties").exists(),
        "formatted before refusing"
    );
}
