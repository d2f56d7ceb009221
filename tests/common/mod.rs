//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod cluster;
pub mod dynamic;
pub mod kafka;
pub mod process;
pub mod tls;

use bytes::Bytes;
use kraft::record::{BatchBuilder, BatchKind};
use kraft::storage::ReplicatedLog;
use kraft::types::{Epoch, Offset};

/// The deterministic RNG of the protocol core, so randomized tests can print and replay a seed.
#[allow(unused_imports)] // not every test binary that includes this module uses it
pub use kraft::raft::SeededRng as Rng;

/// Log lines, kept for assertions on what a node logged: hand a clone to
/// `tracing_subscriber::fmt().with_writer(..)` (with ANSI colours off) and read `text()`.
#[derive(Clone, Default)]
pub struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Lines {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The seed for a randomized test: `KRAFT_TEST_SEED` if set, else one derived from the clock.
pub fn test_seed() -> u64 {
    std::env::var("KRAFT_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// A data batch of `count` records of `size` bytes, each filled with a byte derived from `tag`.
pub fn batch(base: i64, epoch: i32, count: usize, size: usize, tag: u8) -> Bytes {
    let mut b = BatchBuilder::new(BatchKind::Data, Offset(base), Epoch(epoch));
    for i in 0..count {
        let value = vec![tag.wrapping_add(i as u8); size];
        b.append(1_700_000_000_000, None, Some(&value), &[])
            .unwrap();
    }
    b.build().unwrap()
}

/// Everything in the log, read batch by batch from its start.
pub fn read_all(log: &ReplicatedLog) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let chunk = log.read(next, 64 * 1024).unwrap();
        assert!(
            !chunk.is_empty(),
            "read at {next} returned nothing before the log end"
        );
        let mut last_next = next;
        for b in kraft::record::BatchIter::new(chunk.clone()) {
            last_next = b.unwrap().next_offset();
        }
        out.extend_from_slice(&chunk);
        next = last_next;
    }
    out
}

/// Runs `tests/python/record_batch_compat.py MODE PATH` (kafka-python) and parses its JSON lines.
pub fn run_python(mode: &str, path: &std::path::Path) -> Vec<serde_json::Value> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/record_batch_compat.py"
    );
    let out = std::process::Command::new("python3")
        .args([script, mode, path.to_str().unwrap()])
        .output()
        .expect("python3 must be installed (.ci/run installs it with kafka-python)");
    assert!(
        out.status.success(),
        "kafka-python failed (pip install kafka-python): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A control batch holding one LeaderChange record, at offset 0 in epoch 0: what a client may
/// never append.
pub fn leader_change_batch() -> Bytes {
    let mut control = BatchBuilder::new(BatchKind::Control, Offset(0), Epoch(0));
    control
        .append_control(
            0,
            &kraft::record::ControlRecord::LeaderChange(kraft::record::LeaderChangeMessage {
                version: 0,
                leader_id: 1,
                voters: vec![],
                granting_voters: vec![],
            }),
        )
        .unwrap();
    control.build().unwrap()
}
