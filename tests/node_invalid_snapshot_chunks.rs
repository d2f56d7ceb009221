//! KAFKA-18723 for snapshots, at the node level: a follower that was down while the leader
//! cleaned its log must catch up by FetchSnapshot, and a test-only transport
//! (`kraft::actors::tamper`) damages the chunks it receives: a bit flipped inside a batch's
//! checksummed bytes, a bit flipped in a batch's epoch (outside the checksum), an answer for
//! another position or another snapshot, a chunk claiming to end the snapshot early, garbage
//! past the snapshot's end, a size too large, a chunk cut short. No damaged snapshot is ever
//! installed, each refusal is one warning naming the peer and the reason, the quorum keeps
//! committing, and the follower ends with the leader's snapshot byte for byte and its state.
//!
//! The hook is process-wide, so this test has a binary of its own.

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::cluster::{Cluster, start_cluster_with, wait_for_leader};
use common::{Lines, Rng, test_seed};
use kraft::node::{NodeHandle, SnapshotPolicy};
use kraft::raft::{ErrorCode, FetchSnapshotResponse, Response};
use kraft::storage::{LogConfig, list_snapshots, snapshot_file_name};
use kraft::types::{Offset, OffsetAndEpoch};

/// What the tamperer does to one FetchSnapshot chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// A bit inside a batch's CRC-covered bytes: found when the whole file is verified.
    FlipBit,
    /// A bit of a batch's partition leader epoch, which the CRC does not cover.
    FlipEpoch,
    /// The chunk claims another byte position than the one asked for.
    WrongPosition,
    /// The chunk claims to be of another snapshot than the one asked for.
    WrongSnapshot,
    /// The chunk is cut and claims to end the snapshot there.
    EndsEarly,
    /// Garbage after the snapshot's last byte, counted in its size.
    Extend,
    /// The size claimed is larger than the file: the follower asks past the end, is told the
    /// position is out of range, and starts over (nothing written is ever installed).
    TooLarge,
    /// The chunk is shorter than the leader sent: not damage, the follower asks for the rest.
    CutShort,
}

impl Fault {
    /// Whether the follower must refuse what it got (one warning each).
    fn refused(self) -> bool {
        !matches!(self, Fault::TooLarge | Fault::CutShort)
    }
}

/// The byte ranges of each whole batch in `file`.
fn batch_ranges(file: &[u8]) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut at = 0;
    while let Ok(Some(size)) = kraft::record::next_batch_size(&file[at..]) {
        ranges.push((at, at + size));
        at += size;
    }
    ranges
}

/// Damages `chunk` (the whole snapshot, from byte 0) by `fault`.
fn damage(chunk: &mut FetchSnapshotResponse, fault: Fault, rng: &mut Rng) {
    let bytes = chunk.bytes.to_vec();
    let len = bytes.len() as u64;
    let ranges = batch_ranges(&bytes);
    let (start, end) = ranges[rng.below(ranges.len() as u64) as usize];
    match fault {
        Fault::FlipBit => {
            // Past the CRC field (offset 21), where the checksum covers every byte.
            let at = start + 21 + rng.below((end - start - 21) as u64) as usize;
            let mut bytes = bytes;
            bytes[at] ^= 1 << rng.below(8);
            chunk.bytes = Bytes::from(bytes);
        }
        Fault::FlipEpoch => {
            let at = start + 12 + rng.below(4) as usize;
            let mut bytes = bytes;
            bytes[at] ^= 1 << rng.below(8);
            chunk.bytes = Bytes::from(bytes);
        }
        Fault::WrongPosition => chunk.position += 1 + rng.below(len),
        Fault::WrongSnapshot => chunk.snapshot_id.offset = Offset(chunk.snapshot_id.offset.0 + 1),
        Fault::EndsEarly => {
            let cut = 1 + rng.below(len - 1);
            chunk.bytes = chunk.bytes.slice(..cut as usize);
            chunk.size = chunk.position + cut;
        }
        Fault::Extend => {
            let extra = 1 + rng.below(40) as usize;
            let mut out = BytesMut::from(&bytes[..]);
            out.extend((0..extra).map(|_| rng.below(256) as u8));
            chunk.bytes = out.freeze();
            chunk.size += extra as u64;
        }
        Fault::TooLarge => chunk.size += 1 + rng.below(1000),
        Fault::CutShort => {
            let cut = 1 + rng.below(len - 1);
            chunk.bytes = chunk.bytes.slice(..cut as usize);
        }
    }
}

/// What the hook saw and did.
#[derive(Default)]
struct Tampering {
    /// Faults still to apply, one per chunk, in order.
    pending: VecDeque<Fault>,
    /// Faults applied, with the peer whose chunk they damaged.
    applied: Vec<(Fault, kraft::types::NodeId)>,
    /// Each snapshot as the leader sent it (from chunks that held it whole).
    pristine: BTreeMap<OffsetAndEpoch, Bytes>,
    /// Chunks that did not start at byte 0 while faults were pending (each damage is meant for
    /// a whole snapshot: a refused transfer starts over from byte 0).
    unexpected: Vec<String>,
}

fn partition(cluster: &Cluster, i: usize) -> PathBuf {
    cluster.dirs[i].path().join("__raft_performance_test-0")
}

fn has_segment_zero(dir: &Path) -> bool {
    dir.join("00000000000000000000.log").exists()
}

/// Appends `count` batches of 10 records; on a failure, panics with what the nodes logged.
async fn append_batches(
    node: &NodeHandle,
    count: usize,
    tag: &str,
    seed: u64,
    lines: &Lines,
) -> Offset {
    let mut end = Offset(0);
    for i in 0..count {
        let values = (0..10)
            .map(|j| Bytes::from(format!("{tag}-{i:05}-{j}-{}", "p".repeat(90))))
            .collect();
        match node.append(values).await {
            Ok((_, last)) => end = last,
            Err(e) => panic!(
                "seed {seed}: append {tag} {i} failed: {e:?}; log:\n{}",
                lines.text()
            ),
        }
    }
    end
}

/// The snapshot ids named by the follower's "installed" log lines.
fn installs(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains("installed a snapshot fetched from the leader"))
        .map(|l| l.to_string())
        .collect()
}

/// The snapshot an "installed" line names (`end_offset=N epoch=E`).
fn installed_id(line: &str) -> Option<OffsetAndEpoch> {
    let field = |name: &str| -> Option<i64> {
        let key = format!(" {name}=");
        let rest = &line[line.find(&key)? + key.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some(OffsetAndEpoch {
        offset: Offset(field("end_offset")?),
        epoch: kraft::types::Epoch(field("epoch")? as i32),
    })
}

#[actix_rt::test]
async fn damaged_snapshot_chunks_are_refused_and_the_follower_installs_a_good_one() {
    let lines = Lines::default();
    let writer = lines.clone();
    let _ = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        // The executor's info line tells each install.
        .with_env_filter("warn,kraft::executor::snapshot_executor=info")
        .try_init();
    let seed = test_seed();
    println!("seed {seed} (KRAFT_TEST_SEED replays it)");
    let mut rng = Rng::new(seed);

    let log = LogConfig {
        segment_bytes: 16 << 10,
        ..LogConfig::default()
    };
    let snapshots = SnapshotPolicy {
        max_bytes: 32 << 10,
        interval: None,
        retention_bytes: Some(96 << 10),
        retention: None,
    };
    let mut cluster = start_cluster_with("tampered-snapshots", 3, log, snapshots).await;
    let leader = wait_for_leader(&cluster, None).await;
    let leader_id = cluster.addresses[leader].0;
    let behind = (leader + 1) % 3;
    let handle = cluster.nodes[leader].clone().unwrap();
    append_batches(&handle, 20, "early", seed, &lines).await;
    cluster.nodes[behind].take().unwrap().kill().await;

    // Enough more that retention cleans the leader's log past everything the follower has.
    let deadline = Instant::now() + Duration::from_secs(30);
    while has_segment_zero(&partition(&cluster, leader)) {
        assert!(
            Instant::now() < deadline,
            "seed {seed}: the leader never cleaned its log"
        );
        append_batches(&handle, 50, "while-down", seed, &lines).await;
    }

    // Every refusable fault once, in a seeded order, then a chunk cut short: the transfer that
    // finally succeeds arrives in two pieces.
    let mut faults = vec![
        Fault::FlipBit,
        Fault::FlipEpoch,
        Fault::WrongPosition,
        Fault::WrongSnapshot,
        Fault::EndsEarly,
        Fault::Extend,
        Fault::TooLarge,
    ];
    for i in (1..faults.len()).rev() {
        faults.swap(i, rng.below(i as u64 + 1) as usize);
    }
    faults.push(Fault::CutShort);
    println!("seed {seed}: faults in order {faults:?}");
    let tampering = Arc::new(Mutex::new(Tampering {
        pending: faults.iter().copied().collect(),
        ..Tampering::default()
    }));
    let hook_state = tampering.clone();
    let hook_rng = Mutex::new(Rng::new(seed ^ 0x5eed));
    kraft::actors::tamper::set(Some(Box::new(move |from, response| {
        let Response::FetchSnapshot(chunk) = response else {
            return;
        };
        if chunk.error != ErrorCode::None || chunk.bytes.is_empty() {
            return;
        }
        let mut t = hook_state.lock().unwrap();
        let whole = chunk.position == 0 && chunk.bytes.len() as u64 == chunk.size;
        if whole {
            t.pristine.insert(chunk.snapshot_id, chunk.bytes.clone());
        }
        let Some(&fault) = t.pending.front() else {
            return;
        };
        if !whole {
            let note = format!(
                "a chunk at {} of {} bytes (size {}) with {fault:?} pending",
                chunk.position,
                chunk.bytes.len(),
                chunk.size
            );
            t.unexpected.push(note);
            return;
        }
        t.pending.pop_front();
        damage(chunk, fault, &mut hook_rng.lock().unwrap());
        t.applied.push((fault, from));
    })));

    cluster.start(behind).await;
    let follower = cluster.nodes[behind].clone().unwrap();
    // The quorum commits throughout; the follower gets every fault, then installs a snapshot
    // and follows the log from its end.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut end = Offset(0);
    loop {
        let done = tampering.lock().unwrap().pending.is_empty();
        let hw = follower.describe().await.and_then(|s| s.high_watermark);
        if done && !installs(&lines.text()).is_empty() && hw.is_some_and(|hw| hw > end) {
            break;
        }
        // Appends keep committing while faults remain; afterwards the follower only has to
        // reach the last one.
        if !done {
            end = append_batches(&handle, 2, "during", seed, &lines).await;
        }
        if Instant::now() >= deadline {
            let t = tampering.lock().unwrap();
            panic!(
                "seed {seed}: the follower did not catch up (high watermark {hw:?}, end {end}); \
                 applied {:?}, pending {:?}, unexpected chunks {:?}; log:\n{}",
                t.applied,
                t.pending,
                t.unexpected,
                lines.text()
            );
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    kraft::actors::tamper::set(None);

    let text = lines.text();
    let (applied, pristine, unexpected) = {
        let t = tampering.lock().unwrap();
        (t.applied.clone(), t.pristine.clone(), t.unexpected.clone())
    };
    assert!(unexpected.is_empty(), "seed {seed}: {unexpected:?}");
    assert!(
        applied.iter().all(|(_, from)| *from == leader_id),
        "seed {seed}: chunks from a node other than the leader: {:?}",
        applied
    );

    // Exactly one install, of a snapshot byte-identical to the one the leader sent.
    let installed = installs(&text);
    assert_eq!(
        installed.len(),
        1,
        "seed {seed}: installs {installed:?} (faults {faults:?})"
    );
    let id = installed_id(&installed[0])
        .unwrap_or_else(|| panic!("seed {seed}: no snapshot id in {}", installed[0]));
    assert!(
        list_snapshots(&partition(&cluster, behind))
            .unwrap()
            .contains(&id),
        "seed {seed}: the follower does not hold the snapshot {id:?} it installed"
    );
    let on_disk = std::fs::read(partition(&cluster, behind).join(snapshot_file_name(id))).unwrap();
    let sent = pristine
        .get(&id)
        .unwrap_or_else(|| panic!("seed {seed}: snapshot {id:?} was never sent whole"));
    assert!(
        on_disk == sent[..],
        "seed {seed}: the follower installed snapshot {id:?} unlike the leader's (faults {faults:?})"
    );

    // One warning per refused chunk or snapshot, naming the peer and the reason.
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("refused a snapshot"))
        .collect();
    let refused = applied.iter().filter(|(f, _)| f.refused()).count();
    assert_eq!(
        warnings.len(),
        refused,
        "seed {seed}: {} warnings for {refused} refused faults {:?}:\n{}",
        warnings.len(),
        applied,
        warnings.join("\n")
    );
    println!("{}", warnings.join("\n"));
    for w in &warnings {
        assert!(
            w.contains(&format!("peer={leader_id}")) && w.contains("reason="),
            "seed {seed}: {w}"
        );
    }
    // And each is counted, by kind, in the metrics of the node that refused it.
    use kraft::metrics::BatchRejection;
    let counted = |kind: BatchRejection| -> u64 {
        let nodes = cluster.nodes.iter().flatten();
        let all = nodes.flat_map(|n| n.metrics().rejected_batches);
        all.filter(|(k, _)| *k == kind).map(|(_, n)| n).sum()
    };
    let chunk_warnings = warnings
        .iter()
        .filter(|w| w.contains("refused a snapshot chunk"))
        .count() as u64;
    assert_eq!(
        (
            counted(BatchRejection::FetchedSnapshotChunk),
            counted(BatchRejection::FetchedSnapshot)
        ),
        (chunk_warnings, warnings.len() as u64 - chunk_warnings),
        "seed {seed}"
    );

    // The follower's state machine ends where the leader's does.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = handle.workload_state().await.unwrap();
        let b = follower.workload_state().await.unwrap();
        if a.applied == b.applied && a.applied > end {
            assert_eq!(a, b, "seed {seed}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "seed {seed}: states {a:?} and {b:?}"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    for node in cluster.nodes.iter().flatten() {
        node.shutdown().await;
    }
}
