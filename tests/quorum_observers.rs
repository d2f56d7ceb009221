//! Three voters and one observer, as `kraft server` processes, with `kraft tail` following
//! them and `kraft quorum describe` looking on: the observer replicates and is described as an
//! observer, never leads, and elections go on without it; the tail prints every committed
//! record once, in order, across a kill -9 and a graceful hand-over, while the leader keeps no
//! state for it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::{Server, free_port, partition, write_config};
use kraft::record::BatchIter;
use kraft::storage::{LogConfig, ReplicatedLog};

fn kraft(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kraft"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kraft quorum describe <mode>` through `port`: its output, if it succeeded.
fn describe(port: u16, mode: &str) -> Option<String> {
    let bootstrap = format!("localhost:{port}");
    let (code, out, _) = kraft(&[
        "quorum",
        "--bootstrap-controller",
        &bootstrap,
        "describe",
        mode,
    ]);
    (code == 0).then_some(out)
}

/// `kraft quorum describe --status` through `port`, as label → value.
fn status(port: u16) -> Option<BTreeMap<String, String>> {
    describe(port, "--status").map(|out| {
        out.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect()
    })
}

/// One `describe --replication` row: (id, log end offset, lag, last fetch, last caught up,
/// status).
type Row = (i32, i64, i64, i64, i64, String);

/// `describe --replication` rows through `port`.
fn replication(port: u16) -> Option<Vec<Row>> {
    let out = describe(port, "--replication")?;
    let rows = out.lines().skip(1).map(|l| {
        let c: Vec<&str> = l.split('\t').map(str::trim).collect();
        let n = |i: usize| c[i].parse::<i64>().unwrap();
        (n(0) as i32, n(2), n(3), n(4), n(5), c[6].to_string())
    });
    Some(rows.collect())
}

/// The current leader's id and epoch, asked through any of `ports`.
fn leader(ports: &[u16], not: Option<i32>) -> (i32, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for port in ports {
            if let Some(s) = status(*port)
                && let Ok(id) = s["LeaderId"].parse::<i32>()
                && Some(id) != not
            {
                return (id, s["LeaderEpoch"].clone());
            }
        }
        assert!(Instant::now() < deadline, "no leader");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Every data record in a stopped node's log: offset → value.
fn log_records(dir: &Path) -> BTreeMap<i64, Vec<u8>> {
    let (log, _) = ReplicatedLog::open(dir, LogConfig::default()).unwrap();
    let bytes = common::read_all(&log);
    let mut records = BTreeMap::new();
    for batch in BatchIter::new(bytes::Bytes::from(bytes)) {
        let batch = batch.unwrap();
        if batch.is_control() {
            continue;
        }
        for r in batch.decode_records().unwrap() {
            let offset = batch.base_offset().0 + i64::from(r.offset_delta);
            records.insert(offset, r.value.unwrap().to_vec());
        }
    }
    records
}

#[test]
fn an_observer_and_an_idless_tail_follow_three_voters_through_two_leader_changes() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port(), free_port()];
    // Node 4 lists the same three voters: it is an observer.
    let configs: Vec<_> = (1..=4)
        .map(|id| {
            let path = write_config(dir.path(), id, &ports);
            let voters = (1..=3)
                .map(|v| format!("{v}@localhost:{}", ports[v - 1]))
                .collect::<Vec<_>>()
                .join(",");
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text
                .lines()
                .map(|l| match l.starts_with("controller.quorum.voters=") {
                    true => format!("controller.quorum.voters={voters}"),
                    false => l.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n");
            std::fs::write(&path, text + "\n").unwrap();
            path
        })
        .collect();
    let mut servers: Vec<Option<Server>> = configs
        .iter()
        .map(|c| Some(Server::start_with(c, 200)))
        .collect();
    let observer = servers[3].as_ref().unwrap();
    assert!(observer.wait_for("kraft node started", Duration::from_secs(10)));
    let started = observer.lines_containing("kraft node started");
    assert!(started[0].contains("observer"), "{started:?}");
    let voter_ports = &ports[..3];
    let (first, _) = leader(voter_ports, None);

    let mut tail_command = Command::new(env!("CARGO_BIN_EXE_kraft"));
    let bootstrap = format!("localhost:{}", ports[0]);
    tail_command.args([
        "tail",
        "--bootstrap-controller",
        &bootstrap,
        "--from-beginning",
        "--format",
        "json",
    ]);
    let tail = Server::spawn(tail_command);

    // The observer is described as one, caught up, with fresh times; the voters as voters.
    let deadline = Instant::now() + Duration::from_secs(20);
    let rows = loop {
        let rows = replication(ports[0]).unwrap_or_default();
        // Every replica past the first record too: a voter that has only just fetched from
        // offset 0 is not yet the state the checks below describe.
        let fetched = rows.len() == 4 && rows.iter().all(|r| r.1 > 0);
        if fetched && rows.iter().any(|r| r.0 == 4 && r.2 == 0 && r.3 > 0) {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "observer 4 never caught up: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let statuses: Vec<(i32, &str)> = rows.iter().map(|r| (r.0, r.5.as_str())).collect();
    assert_eq!(statuses[0], (first, "Leader"), "{rows:?}");
    let mut followers: Vec<i32> = rows
        .iter()
        .filter(|r| r.5 == "Follower")
        .map(|r| r.0)
        .collect();
    followers.sort();
    let expected: Vec<i32> = (1..=3).filter(|v| *v != first).collect();
    assert_eq!(followers, expected, "{rows:?}");
    assert_eq!(statuses.last(), Some(&(4, "Observer")), "{rows:?}");
    assert_eq!(
        rows.len(),
        4,
        "the tail is not an observer the leader keeps: {rows:?}"
    );
    for r in &rows {
        assert!(r.1 > 0 && r.2 >= 0, "{r:?}");
        assert!(
            (now_ms() - r.3).abs() < 60_000,
            "a fetch within the last minute: {r:?}"
        );
        assert!(r.4 <= r.3, "{r:?}");
    }
    let s = status(ports[0]).unwrap();
    assert_eq!(s["LeaderId"], first.to_string());
    assert!(s["CurrentObservers"].starts_with("[{\"id\": 4,"), "{s:?}");
    assert!(!s["CurrentVoters"].contains("\"id\": 4"), "{s:?}");

    // Leader change 1: kill -9.
    servers[first as usize - 1]
        .as_ref()
        .unwrap()
        .signal("-KILL");
    servers[first as usize - 1] = None;
    let (second, _) = leader(voter_ports, Some(first));
    assert_ne!(second, 4);
    // The killed voter comes back, so a majority remains for the second change.
    servers[first as usize - 1] = Some(Server::start_with(&configs[first as usize - 1], 200));
    std::thread::sleep(Duration::from_millis(500));

    // Leader change 2: graceful (SIGTERM hands over).
    let graceful = servers[second as usize - 1].take().unwrap();
    graceful.signal("-TERM");
    let (third, third_epoch) = leader(voter_ports, Some(second));
    assert_ne!(third, 4);
    let mut graceful = graceful;
    assert_eq!(graceful.wait_exit(Duration::from_secs(20)), Some(0));
    // The tail goes on printing records the third leader wrote, records of three epochs in all
    // (a signal ends the output without printing what is still queued, so wait for them before
    // stopping it); the observer never stood.
    // The tail finds the third leader by its fetch timeout and a voter's answer, as any observer
    // does; on a loaded machine (CI) that once took longer than 30 s, so it gets 60.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mark = format!("\"epoch\":{third_epoch},");
    while !(tail.has_seen(&mark) && tail_epochs(&tail).len() >= 3) {
        assert!(
            Instant::now() < deadline,
            "no record of epoch {third_epoch} printed, or not three epochs"
        );
        tail.wait_for(&mark, Duration::from_millis(200));
    }
    let observer = servers[3].as_ref().unwrap();
    observer.drain(Duration::from_millis(100));
    assert!(!observer.has_seen("role=Leader") && !observer.has_seen("role=Candidate"));
    assert!(!observer.has_seen("role=Prospective"));

    // Stop the tail, then the servers, and compare with a voter's log.
    tail.signal("-TERM");
    let mut tail = tail;
    assert_eq!(tail.wait_exit(Duration::from_secs(20)), Some(0));
    tail.drain(Duration::from_secs(1));
    for s in servers.iter_mut().flatten() {
        s.signal("-TERM");
        s.wait_exit(Duration::from_secs(20));
    }
    let printed = tail_records(&tail);
    let offsets: Vec<i64> = printed.iter().map(|(o, _)| *o).collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "in order, each once"
    );
    let last = *offsets.last().unwrap();
    let log = log_records(&partition(dir.path(), third as usize));
    let expected: Vec<(i64, Vec<u8>)> = log.into_iter().filter(|(o, _)| *o <= last).collect();
    assert_eq!(printed.len(), expected.len());
    assert!(
        printed == expected,
        "the tail printed exactly the committed records"
    );
    let epochs: std::collections::BTreeSet<i64> = tail_epochs(&tail);
    assert!(epochs.len() >= 3, "records of three leaders: {epochs:?}");
}

fn tail_json(tail: &Server) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    tail.drain(Duration::from_millis(10));
    for l in tail_lines(tail) {
        lines.push(serde_json::from_str(&l).unwrap());
    }
    lines
}

fn tail_lines(tail: &Server) -> Vec<String> {
    tail.lines_containing("{\"offset\"")
}

fn tail_records(tail: &Server) -> Vec<(i64, Vec<u8>)> {
    use base64::Engine;
    tail_json(tail)
        .into_iter()
        .map(|v| {
            let value = base64::engine::general_purpose::STANDARD
                .decode(v["value"].as_str().unwrap())
                .unwrap();
            assert_eq!(v["size"].as_i64().unwrap(), value.len() as i64);
            (v["offset"].as_i64().unwrap(), value)
        })
        .collect()
}

fn tail_epochs(tail: &Server) -> std::collections::BTreeSet<i64> {
    tail_json(tail)
        .iter()
        .map(|v| v["epoch"].as_i64().unwrap())
        .collect()
}
