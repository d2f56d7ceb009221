//! Helpers for process tests of dynamic (kraft.version 1) quorums: configs without static
//! voters, `kraft storage format`, and `kraft quorum` run and read.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kraft::storage::{LogConfig, ReplicatedLog};
use kraft::types::Offset;

/// How long a start-up step or a voter change may take on a loaded machine.
pub const SETTLE: Duration = Duration::from_secs(30);

pub fn kraft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kraft"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Node `id`'s config for a dynamic quorum: no controller.quorum.voters, bootstrap servers at
/// `ports` (node i listens on ports[i - 1]).
pub fn dynamic_config(dir: &Path, id: usize, ports: &[u16], extra: &str) -> PathBuf {
    let bootstrap: Vec<String> = ports.iter().map(|p| format!("localhost:{p}")).collect();
    let path = dir.join(format!("node-{id}.properties"));
    std::fs::write(
        &path,
        format!(
            "node.id={id}\nlisteners=PLAINTEXT://localhost:{}\ncontroller.listener.names=PLAINTEXT\n\
             controller.quorum.bootstrap.servers={}\nlog.dirs={}\n\
             controller.quorum.election.timeout.ms=300\ncontroller.quorum.fetch.timeout.ms=1000\n{extra}",
            ports[id - 1],
            bootstrap.join(","),
            log_dir(dir, id).display()
        ),
    )
    .unwrap();
    path
}

pub fn log_dir(dir: &Path, id: usize) -> PathBuf {
    dir.join(format!("logs-{id}"))
}

pub fn format(config: &Path, flags: &[&str]) {
    let mut args = vec![
        "storage",
        "format",
        "-c",
        config.to_str().unwrap(),
        "-t",
        "dyn-cluster",
    ];
    args.extend_from_slice(flags);
    let out = kraft(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

pub fn log_end(dir: &Path, id: usize) -> Offset {
    let partition = log_dir(dir, id).join("__raft_performance_test-0");
    let (log, _) = ReplicatedLog::open(&partition, LogConfig::default()).unwrap();
    log.log_end_offset()
}

/// A field of `kraft quorum describe --status` (e.g. `HighWatermark:`).
pub fn field(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in {text}"))
        .trim()
        .to_string()
}

/// The ids in a `CurrentVoters:` list (`[{"id": 1, ...}, ...]`).
pub fn voter_ids(list: &str) -> Vec<i32> {
    list.split("{\"id\": ")
        .skip(1)
        .map(|rest| {
            rest.split(',')
                .next()
                .unwrap()
                .trim_end_matches('}')
                .parse()
                .unwrap()
        })
        .collect()
}

/// Polls `kraft quorum describe --status` at `port` until node `leader` leads with a high
/// watermark past `beyond`; returns the tool's text.
pub fn wait_for_commits(port: u16, leader: usize, beyond: i64) -> String {
    let bootstrap = format!("localhost:{port}");
    let deadline = Instant::now() + SETTLE;
    loop {
        let o = Command::new(env!("CARGO_BIN_EXE_kraft"))
            .args(["quorum", "--bootstrap-controller", &bootstrap])
            .args(["describe", "--status"])
            .output()
            .unwrap();
        let out = text(&o.stdout);
        if o.status.success()
            && field(&out, "LeaderId:") == leader.to_string()
            && field(&out, "HighWatermark:").parse::<i64>().unwrap() > beyond
        {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "never committed past {beyond}: {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `--initial-controllers` naming node i + 1 at `localhost:ports[i]` with directory id `ids[i]`.
pub fn initial_controllers(ports: &[u16], ids: &[kraft::uuid::Uuid]) -> String {
    let list: Vec<String> = ports
        .iter()
        .zip(ids)
        .enumerate()
        .map(|(i, (port, id))| format!("{}@localhost:{port}:{id}", i + 1))
        .collect();
    list.join(",")
}

/// `kraft quorum --bootstrap-controller localhost:P,... ARGS`.
pub fn quorum(ports: &[u16], args: &[&str]) -> Output {
    let bootstrap: Vec<String> = ports.iter().map(|p| format!("localhost:{p}")).collect();
    let bootstrap = bootstrap.join(",");
    let mut all = vec!["quorum", "--bootstrap-controller", bootstrap.as_str()];
    all.extend_from_slice(args);
    kraft(&all)
}

/// Polls `describe --status` through `ports` until `done` holds of its text; returns it.
pub fn wait_for_status(ports: &[u16], what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + SETTLE;
    loop {
        let o = quorum(ports, &["describe", "--status"]);
        let out = text(&o.stdout);
        if o.status.success() && done(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "never {what}: {out}{}",
            text(&o.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
