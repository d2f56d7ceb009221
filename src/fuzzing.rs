//! The fuzz targets' bodies, one function per target, so that `fuzz/` (cargo fuzz, libFuzzer)
//! and a plain test that replays the committed corpora call the same code.
//!
//! Each takes arbitrary bytes and must never panic; the invariants it checks are asserted, so a
//! broken one is a crash the fuzzer reports. Owns no state and does no IO outside a simulated
//! disk and a temporary file.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::protocol::{FrameCodec, InboundCodec, PeerMessage};
use crate::raft::{Input, LogView, RaftConfig, Replica, RequestId};
use crate::record::BatchIter;
use crate::storage::{Fs, LogConfig, QuorumStateFile, ReplicatedLog, SimFs};
use crate::types::{NodeId, Offset};

/// The peer frame decoders (before and after a handshake) over arbitrary bytes.
pub fn peer_frames(data: &[u8]) {
    let mut inbound = InboundCodec::default();
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = inbound.decode(&mut buf) {}
    let mut buf = BytesMut::from(data);
    while let Ok(Some(message)) = FrameCodec.decode(&mut buf) {
        if let PeerMessage::Request { request, .. } = &message {
            let _ = request.insanity();
        }
    }
}

/// The record batch decoder: every batch it accepts decodes its records without panicking.
pub fn record_batches(data: &[u8]) {
    for batch in BatchIter::new(Bytes::copy_from_slice(data)) {
        let Ok(batch) = batch else { break };
        let _ = batch.decode_records();
        assert!(batch.next_offset() > batch.base_offset());
    }
}

/// The `.properties` loader and the configuration checks over an arbitrary file.
pub fn properties(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::config::parse_pairs(text);
    let Ok(file) = tempfile_path() else { return };
    if std::fs::write(&file, text).is_ok() {
        let _ = crate::config::NodeConfig::load(&file, &Default::default(), &[]);
    }
    let _ = std::fs::remove_file(&file);
}

fn tempfile_path() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("kraft-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join("node.properties"))
}

/// The `quorum-state` parser over an arbitrary file.
pub fn quorum_state(data: &[u8]) {
    let disk = SimFs::new();
    let fs: Fs = Arc::new(disk.clone());
    let dir = Path::new("/p");
    let _ = fs.create_dir_all(dir);
    if write(&fs, &dir.join("quorum-state"), data) {
        let _ = QuorumStateFile::new_in(&fs, dir).read();
    }
}

/// Log recovery over arbitrary segment bytes (split into two segments at a point the input
/// picks): it refuses or recovers, and what it recovers reads back as valid batches.
pub fn log_recovery(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let cut = (split as usize * rest.len() / 256).min(rest.len());
    let (first, second) = rest.split_at(cut);
    let disk = SimFs::new();
    let fs: Fs = Arc::new(disk.clone());
    let dir = Path::new("/p");
    let _ = fs.create_dir_all(dir);
    let second_base = BatchIter::new(Bytes::copy_from_slice(first))
        .map_while(Result::ok)
        .last()
        .map_or(Offset(0), |b| b.next_offset());
    let ok = write(&fs, &dir.join("00000000000000000000.log"), first)
        && (second.is_empty()
            || write(&fs, &dir.join(format!("{:020}.log", second_base.0)), second));
    if !ok {
        return;
    }
    let Ok((log, _)) = ReplicatedLog::open_in(&fs, dir, LogConfig::default()) else {
        return;
    };
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let chunk = log.read(next, 1 << 20).expect("a recovered log reads back");
        let mut advanced = false;
        for batch in BatchIter::new(chunk) {
            let batch = batch.expect("recovery keeps only valid batches");
            assert_eq!(batch.base_offset(), next, "offsets continue");
            next = batch.next_offset();
            advanced = true;
        }
        assert!(advanced, "a read inside the log returns a batch");
    }
}

fn write(fs: &Fs, path: &Path, data: &[u8]) -> bool {
    fs.open(path, crate::storage::OpenMode::Truncate)
        .and_then(|f| f.write_all_at(data, 0))
        .is_ok()
}

/// The protocol core fed an arbitrary sequence of peer messages (framed as on the wire), as a
/// voter of three: it never panics, and its epoch and high watermark never go back.
pub fn core_messages(data: &[u8]) {
    let voters: BTreeSet<NodeId> = [1, 2, 3].map(NodeId).into();
    let config = RaftConfig::new("fuzz", Some(NodeId(1)), voters);
    let mut now = Duration::from_secs(1_000);
    let (mut replica, _) = Replica::start(config, None, LogView::empty(), now, 7);
    let mut buf = BytesMut::from(data);
    let (mut epoch, mut hw) = (replica.epoch(), replica.high_watermark());
    let mut step = 0u64;
    while let Ok(Some(message)) = FrameCodec.decode(&mut buf) {
        step += 1;
        now += Duration::from_millis(37 * (step % 11));
        let input = match message {
            PeerMessage::Request { request, .. } if request.insanity().is_none() => {
                Input::Request {
                    from: crate::raft::InboundId(step),
                    request,
                }
            }
            PeerMessage::Response {
                correlation_id,
                response,
            } if response.insanity().is_none() => Input::Response {
                from: NodeId(2 + (correlation_id % 2) as i32),
                request_id: RequestId(correlation_id % 8),
                response,
            },
            _ => Input::Tick,
        };
        let _ = replica.step(now, input);
        let _ = replica.step(now, Input::ElectionPersisted);
        assert!(replica.epoch() >= epoch, "the epoch went back");
        assert!(replica.epoch().0 >= 0, "a negative epoch");
        if let (Some(before), Some(after)) = (hw, replica.high_watermark()) {
            assert!(after >= before, "the high watermark went back");
        }
        epoch = replica.epoch();
        hw = replica.high_watermark().or(hw);
    }
}
