//! `kraft quorum` as a process against real `kraft server` quorums: describe --status and
//! --replication checked against the nodes' own state (their logs, meta.properties, and the
//! leader's DescribeQuorum answer), the plain watch lines, TLS through --command-config, and
//! one line and a non-zero exit for every failure (unreachable, timeout, wrong CA, no leader,
//! usage mistakes).

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::process::{Server, first_to_log, free_port, start_three_with, write_config};
use common::tls::TestCa;
use kafka_protocol::messages::{ApiKey, DescribeQuorumResponse};

/// Longest wait for a quorum to elect and settle.
const SETTLE: Duration = Duration::from_secs(30);

fn quorum(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kraft"))
        .arg("quorum")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Exit code `code` and exactly one line on stderr containing `needle`, nothing on stdout.
fn assert_one_line_failure(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(needle), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    assert!(o.stdout.is_empty(), "{}", stdout(o));
}

/// `key=value` lines of a node's meta.properties.
fn meta(dir: &Path, id: usize) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(dir.join(format!("logs-{id}/meta.properties"))).unwrap();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The leader's own DescribeQuorum answer, through the tests' raw Kafka client.
fn raw_describe(port: u16) -> DescribeQuorumResponse {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = common::kafka::Client::connect(&format!("localhost:{port}")).await;
        let frame = common::kafka::sample(ApiKey::DescribeQuorum, 2);
        client.send_raw(&frame).await.unwrap();
        let mut bytes = client.receive_raw(Duration::from_secs(10)).await.unwrap();
        use kafka_protocol::protocol::Decodable;
        kafka_protocol::messages::ResponseHeader::decode(&mut bytes, 1).unwrap();
        DescribeQuorumResponse::decode(&mut bytes, 2).unwrap()
    })
}

/// The value after a `--status` label.
fn field<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in {text}"))
        .trim()
}

/// Three nodes with no workload: their servers, ports, and the leader's index once elected.
fn quiet_quorum(dir: &Path) -> (Vec<Option<Server>>, [u16; 3], usize) {
    let (_, servers, ports) = start_three_with(dir, 0);
    let leader = first_to_log(&servers, "role=Leader", SETTLE).expect("a leader");
    (servers, ports, leader)
}

#[test]
fn describe_status_and_replication_agree_with_the_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let (servers, ports, leader) = quiet_quorum(dir.path());
    // A dead address first, then a follower: the tool moves on to the follower, which names
    // the leader.
    let follower = (leader + 1) % 3;
    let bootstrap = format!("127.0.0.1:{},localhost:{}", free_port(), ports[follower]);
    let leader_id = (leader + 1).to_string();
    // The leader's view of its followers settles once both fetched past its LeaderChange
    // record; poll until the tool's summary and the leader's own answer say the same.
    let deadline = Instant::now() + SETTLE;
    let (text, answer) = loop {
        let o = quorum(&["--bootstrap-controller", &bootstrap, "describe", "--status"]);
        // The follower may not have heard of the new leader yet: it then names none.
        if o.status.code() != Some(0) && Instant::now() < deadline {
            assert!(stderr(&o).contains("no leader"), "{}", stderr(&o));
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let text = stdout(&o);
        let answer = raw_describe(ports[leader]);
        let p = &answer.topics[0].partitions[0];
        let same = field(&text, "HighWatermark:") == p.high_watermark.to_string()
            && p.current_voters
                .iter()
                .all(|v| v.log_end_offset == p.current_voters[0].log_end_offset);
        if same && field(&text, "MaxFollowerLag:") == "0" {
            break (text, answer);
        }
        assert!(Instant::now() < deadline, "never settled: {text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let p = &answer.topics[0].partitions[0];
    assert_eq!(
        field(&text, "ClusterId:"),
        meta(dir.path(), 1)["cluster.id"]
    );
    assert_eq!(field(&text, "LeaderId:"), leader_id);
    let epoch = field(&text, "LeaderEpoch:");
    assert_eq!(epoch, p.leader_epoch.to_string());
    let leader_server = servers[leader].as_ref().unwrap();
    assert!(leader_server.has_seen(&format!(
        "leader changed epoch={epoch} leader_id=Some(NodeId({leader_id})) role=Leader"
    )));
    assert_eq!(
        field(&text, "MaxFollowerLagTimeMs:")
            .parse::<i64>()
            .map(|t| t >= -1),
        Ok(true)
    );
    let voters: Vec<String> = (1..=3)
        .map(|id| {
            // Each voter's endpoint on the quorum listener, as Kafka lists a static voter's.
            format!(
                "{{\"id\": {id}, \"directoryId\": \"{}\", \"endpoints\": [\"PLAINTEXT://localhost:{}\"]}}",
                meta(dir.path(), id)["directory.id"],
                ports[id - 1]
            )
        })
        .collect();
    assert_eq!(
        field(&text, "CurrentVoters:"),
        format!("[{}]", voters.join(", "))
    );
    assert_eq!(field(&text, "CurrentObservers:"), "[]");
    let labels: Vec<&str> = text.lines().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(
        labels,
        [
            "ClusterId",
            "LeaderId",
            "LeaderEpoch",
            "HighWatermark",
            "MaxFollowerLag",
            "MaxFollowerLagTimeMs",
            "CurrentVoters",
            "CurrentObservers"
        ]
    );

    // The table: the leader first, every voter at the leader's log end offset (nothing is
    // written), with its directory id; times are milliseconds since the epoch.
    let o = quorum(&[
        "--bootstrap-controller",
        &bootstrap,
        "describe",
        "--replication",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let table = stdout(&o);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split('\t').map(str::trim_end).collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "NodeId",
            "DirectoryId",
            "LogEndOffset",
            "Lag",
            "LastFetchTimestamp",
            "LastCaughtUpTimestamp",
            "Status",
            ""
        ]
    );
    assert_eq!(rows.len(), 4, "{table}");
    assert_eq!((rows[1][0], rows[1][6]), (leader_id.as_str(), "Leader"));
    let end = p.current_voters[0].log_end_offset.to_string();
    let started = kraft_now_ms() - 120_000;
    for row in &rows[1..] {
        let id: usize = row[0].parse().unwrap();
        assert_eq!(row[1], meta(dir.path(), id)["directory.id"]);
        assert_eq!((row[2], row[3]), (end.as_str(), "0"), "{table}");
        for time in [row[4], row[5]] {
            let t: i64 = time.parse().unwrap();
            assert!(t > started && t <= kraft_now_ms(), "{table}");
        }
        if row[0] != leader_id {
            assert_eq!(row[6], "Follower");
        }
    }

    let o = quorum(&[
        "--bootstrap-server",
        &bootstrap,
        "describe",
        "--replication",
        "--human-readable",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for line in stdout(&o).lines().skip(1) {
        let cells: Vec<&str> = line.split('\t').map(str::trim_end).collect();
        assert!(
            cells[4].ends_with(" ms ago") && cells[5].ends_with(" ms ago"),
            "{line}"
        );
    }

    // The plain watch: one line a refresh, each naming the leader and epoch.
    let o = quorum(&[
        "--bootstrap-controller",
        &bootstrap,
        "watch",
        "--count",
        "3",
        "--interval-ms",
        "200",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines: Vec<String> = stdout(&o).lines().map(String::from).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for line in &lines {
        assert!(
            line.contains(&format!(
                " leader={leader_id} epoch={epoch} high_watermark="
            )),
            "{line}"
        );
        assert!(
            line.contains(&format!("replicas={leader_id}:Leader:{end}:0:")),
            "{line}"
        );
    }
    assert!(lines[1].contains("commit_rate=0/s"), "{lines:?}");
}

fn kraft_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn one_node_of_three_has_no_leader() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let config = write_config(dir.path(), 1, &ports);
    let _alone = Server::start_with(&config, 0);
    let bootstrap = format!("localhost:{}", ports[0]);
    let deadline = Instant::now() + SETTLE;
    // Until the node listens, the tool cannot connect; then it learns there is no leader.
    let o = loop {
        let o = quorum(&["--bootstrap-controller", &bootstrap, "describe", "--status"]);
        if !stderr(&o).contains("cannot connect") || Instant::now() > deadline {
            break o;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_one_line_failure(
        &o,
        1,
        &format!(
            "no leader: the quorum has not elected one (localhost:{} names none)",
            ports[0]
        ),
    );
}

#[test]
fn an_unreachable_host_is_one_line() {
    let port = free_port();
    let o = quorum(&[
        "--bootstrap-controller",
        &format!("127.0.0.1:{port}"),
        "describe",
        "--status",
    ]);
    assert_one_line_failure(&o, 1, &format!("cannot connect to 127.0.0.1:{port}"));
}

#[test]
fn a_listener_that_never_answers_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let config = dir.path().join("client.properties");
    std::fs::write(&config, "request.timeout.ms=500\n").unwrap();
    let started = Instant::now();
    let o = quorum(&[
        "--bootstrap-controller",
        &address,
        "--command-config",
        config.to_str().unwrap(),
        "describe",
        "--replication",
    ]);
    assert_one_line_failure(&o, 1, &format!("no answer from {address} within 500 ms"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(listener);
}

/// Three nodes on an SSL listener with mutual TLS, certificates from `ca`.
fn tls_quorum(dir: &Path, ca: &TestCa) -> (Vec<Server>, [u16; 3]) {
    let ports = [free_port(), free_port(), free_port()];
    let servers = (1..=3)
        .map(|id| {
            let config = write_config(dir, id, &ports);
            ca.node_settings(id as i32, dir);
            let mut text = std::fs::read_to_string(&config).unwrap();
            text.push_str(&format!(
                "listener.security.protocol.map=PLAINTEXT:SSL\nssl.keystore.type=PEM\nssl.keystore.location={}\n\
                 ssl.truststore.type=PEM\nssl.truststore.location={}\nssl.client.auth=required\n",
                dir.join(format!("node-{id}.pem")).display(),
                dir.join("ca.pem").display()
            ));
            std::fs::write(&config, text).unwrap();
            Server::start_with(&config, 0)
        })
        .collect();
    (servers, ports)
}

#[test]
fn tls_through_command_config_and_a_wrong_ca_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("quorum-ca");
    let (servers, ports) = tls_quorum(dir.path(), &ca);
    let with_options: Vec<Option<Server>> = servers.into_iter().map(Some).collect();
    first_to_log(&with_options, "role=Leader", SETTLE).expect("a leader");
    // The tool's certificate names no node id: an id-less client, as Kafka clients are.
    let me = ca.identity(None);
    let keystore = dir.path().join("client.pem");
    std::fs::write(&keystore, format!("{}{}", me.key_pem, me.chain_pem)).unwrap();
    let good = dir.path().join("client.properties");
    std::fs::write(
        &good,
        format!(
            "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n\
             ssl.keystore.type=PEM\nssl.keystore.location={}\n",
            dir.path().join("ca.pem").display(),
            keystore.display()
        ),
    )
    .unwrap();
    let bootstrap = format!("localhost:{}", ports[0]);
    let o = quorum(&[
        "--bootstrap-controller",
        &bootstrap,
        "--command-config",
        good.to_str().unwrap(),
        "describe",
        "--status",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("ClusterId:"), "{}", stdout(&o));

    let other = TestCa::new("someone-else");
    let other_dir = dir.path().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let wrong = dir.path().join("wrong.properties");
    std::fs::write(
        &wrong,
        format!(
            "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n\
             ssl.keystore.type=PEM\nssl.keystore.location={}\n",
            other.write_ca(&other_dir).display(),
            keystore.display()
        ),
    )
    .unwrap();
    let o = quorum(&[
        "--bootstrap-controller",
        &bootstrap,
        "--command-config",
        wrong.to_str().unwrap(),
        "describe",
        "--status",
    ]);
    assert_one_line_failure(
        &o,
        1,
        &format!("TLS with {bootstrap} failed: invalid peer certificate: UnknownIssuer"),
    );

    // Plaintext to the SSL listener: the node drops the connection, one line too.
    let o = quorum(&[
        "--bootstrap-controller",
        &bootstrap,
        "--command-config",
        "/dev/null",
        "describe",
        "--status",
    ]);
    assert_one_line_failure(
        &o,
        1,
        &format!("{bootstrap} answered with TLS: set security.protocol=SSL"),
    );
}

#[test]
fn usage_mistakes_are_one_line_with_exit_2() {
    let b = ["--bootstrap-controller", "localhost:1"];
    for (args, message) in [
        (
            vec!["describe", "--status", "--replication"],
            "Only one of --status or --replication should be specified with describe sub-command",
        ),
        (
            vec!["describe", "--status", "--human-readable"],
            "The option --human-readable is only supported along with --replication",
        ),
        (
            vec!["describe"],
            "One of --status or --replication must be specified with describe sub-command",
        ),
        (
            vec!["--command-config", "/no/such/file", "describe", "--status"],
            "Properties file /no/such/file does not exists!",
        ),
        (vec!["watch", "--interval-ms", "5"], "--interval-ms"),
    ] {
        let all: Vec<&str> = b.iter().copied().chain(args).collect();
        assert_one_line_failure(&quorum(&all), 2, message);
    }
    assert_one_line_failure(&quorum(&["describe", "--status"]), 2, "--bootstrap-server");
    assert_one_line_failure(
        &quorum(&[
            "--bootstrap-server",
            "a:1",
            "--bootstrap-controller",
            "b:2",
            "describe",
            "--status",
        ]),
        2,
        "cannot be used with",
    );
    assert_one_line_failure(
        &quorum(&[
            "--bootstrap-controller",
            "nohostport",
            "describe",
            "--status",
        ]),
        2,
        "--bootstrap-controller: entry 'nohostport'",
    );
    // Kafka's script name runs the same tool.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bin/kafka-metadata-quorum.sh");
    let o = Command::new(script)
        .env("KRAFT_BINARY", env!("CARGO_BIN_EXE_kraft"))
        .args(["--bootstrap-controller", "localhost:1", "describe"])
        .output()
        .unwrap();
    assert_one_line_failure(&o, 2, "One of --status or --replication must be specified");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sasl.properties");
    std::fs::write(&config, "security.protocol=SASL_SSL\n").unwrap();
    assert_one_line_failure(
        &quorum(&[
            "--bootstrap-controller",
            "localhost:1",
            "--command-config",
            config.to_str().unwrap(),
            "describe",
            "--status",
        ]),
        2,
        "'security.protocol' is 'SASL_SSL'",
    );
}

#[test]
fn the_plain_watch_reports_a_leader_change_on_its_own_line() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let (mut servers, ports, leader) = quiet_quorum(dir.path());
    let bootstrap: Vec<String> = ports.iter().map(|p| format!("localhost:{p}")).collect();
    let mut watch = Command::new(env!("CARGO_BIN_EXE_kraft"))
        .args([
            "quorum",
            "--bootstrap-controller",
            &bootstrap.join(","),
            "watch",
            "--interval-ms",
            "200",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let out = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_line = |pred: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + SETTLE;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    };
    let old = format!(" leader={} ", leader + 1);
    assert!(wait_line(&|l| l.contains(&old)).is_some());
    servers[leader] = None; // killed
    let change =
        wait_line(&|l| l.contains(" leader change: leader=")).expect("a leader change line");
    // "<time> leader change: leader=N epoch=E": a surviving node, which logged leading in E.
    let (_, rest) = change.split_once("leader change: leader=").unwrap();
    let (id, epoch) = rest.split_once(" epoch=").unwrap();
    let id: usize = id.parse().unwrap();
    assert_ne!(id, leader + 1, "{change}");
    let logged = format!("leader changed epoch={epoch} leader_id=Some(NodeId({id})) role=Leader");
    let new_leader = servers[id - 1].as_ref().unwrap();
    assert!(
        new_leader.has_seen(&logged) || new_leader.wait_for(&logged, SETTLE),
        "{change}"
    );
    let _ = watch.kill();
    let _ = watch.wait();
}
