//! `kraft server` processes for the tests: started from a properties file, their log lines
//! collected, signalled and waited for.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// A running `kraft server` whose log lines (stderr, ANSI-free) and statistics lines (stdout)
/// arrive on one channel.
pub struct Server {
    child: Child,
    lines: Receiver<String>,
    /// Every line read so far.
    seen: std::cell::RefCell<Vec<String>>,
}

fn forward_lines(stream: impl std::io::Read + Send + 'static, tx: std::sync::mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}

impl Server {
    pub fn start(config: &Path) -> Server {
        Server::start_with(config, 1000)
    }

    /// `kraft server` writing `throughput` workload records a second (0: none).
    pub fn start_with(config: &Path, throughput: i64) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kraft"));
        command.args([
            "server",
            "--config",
            config.to_str().unwrap(),
            "--throughput",
            &throughput.to_string(),
        ]);
        Server::spawn(command)
    }

    /// Runs `command` (a server, perhaps wrapped in a shell), collecting its lines.
    pub fn spawn(mut command: Command) -> Server {
        let mut child = command
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = channel();
        forward_lines(child.stderr.take().unwrap(), tx.clone());
        forward_lines(child.stdout.take().unwrap(), tx);
        Server {
            child,
            lines: rx,
            seen: Default::default(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether a line read so far contains `needle`.
    pub fn has_seen(&self, needle: &str) -> bool {
        self.seen.borrow().iter().any(|l| l.contains(needle))
    }

    /// The lines read so far that contain `needle`, in order.
    pub fn lines_containing(&self, needle: &str) -> Vec<String> {
        self.seen
            .borrow()
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// The first line read so far that contains `needle`.
    pub fn line_containing(&self, needle: &str) -> Option<String> {
        self.lines_containing(needle).into_iter().next()
    }

    /// How many lines read so far contain `needle`.
    pub fn count_seen(&self, needle: &str) -> usize {
        self.seen
            .borrow()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Reads every line still to come from a process that has exited (both streams close
    /// then), waiting at most `limit`.
    pub fn drain(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.borrow_mut().push(line),
                Err(_) => return,
            }
        }
    }

    /// Waits for a log line containing `needle`.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.borrow_mut().push(line);
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes node `id`'s config for a quorum on `ports` (1-based ids).
pub fn write_config(dir: &Path, id: usize, ports: &[u16]) -> PathBuf {
    let voters: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}@localhost:{p}", i + 1))
        .collect();
    let path = dir.join(format!("node-{id}.properties"));
    std::fs::write(
        &path,
        format!(
            "node.id={id}\nlisteners=PLAINTEXT://localhost:{}\ncontroller.listener.names=PLAINTEXT\n\
             controller.quorum.voters={}\nlog.dirs={}\ncontroller.quorum.election.timeout.ms=300\n\
             controller.quorum.fetch.timeout.ms=1000\n",
            ports[id - 1],
            voters.join(","),
            dir.join(format!("logs-{id}")).display()
        ),
    )
    .unwrap();
    path
}

/// Three `kraft server` processes of one quorum in `dir`: their configs and the servers.
pub fn start_three(dir: &Path) -> (Vec<PathBuf>, Vec<Option<Server>>) {
    let (configs, servers, _) = start_three_with(dir, 1000);
    (configs, servers)
}

/// Three `kraft server` processes of one quorum in `dir`, writing `throughput` workload records
/// a second (0: none): their configs, the servers and their ports.
pub fn start_three_with(
    dir: &Path,
    throughput: i64,
) -> (Vec<PathBuf>, Vec<Option<Server>>, [u16; 3]) {
    let ports = [free_port(), free_port(), free_port()];
    let configs: Vec<PathBuf> = (1..=3).map(|id| write_config(dir, id, &ports)).collect();
    let servers = configs
        .iter()
        .map(|c| Some(Server::start_with(c, throughput)))
        .collect();
    (configs, servers, ports)
}

pub fn partition(dir: &Path, id: usize) -> PathBuf {
    dir.join(format!("logs-{id}"))
        .join("__raft_performance_test-0")
}

/// The first server to log a line containing `needle`.
pub fn first_to_log(servers: &[Option<Server>], needle: &str, limit: Duration) -> Option<usize> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        for (i, s) in servers.iter().enumerate() {
            if let Some(s) = s
                && s.wait_for(needle, Duration::from_millis(50))
            {
                return Some(i);
            }
        }
    }
    None
}
