//! Measures the snapshot paths on this disk: writing a large snapshot (streamed, fsynced,
//! renamed), then moving it the way FetchSnapshot does (4 MiB chunks read by position, written
//! into the receiver's `.part`, then fsynced, verified batch by batch and renamed), and the peak
//! memory of the process meanwhile. Prints a table and one JSON line.
//!
//!     cargo run --release --example snapshot_rates -- [MiB, default 1024]

use std::time::Instant;

use bytes::Bytes;
use kraft::raft::FETCH_SNAPSHOT_MAX_BYTES;
use kraft::storage::{SnapshotFile, SnapshotFileWriter, complete_partial, write_partial_chunk};
use kraft::types::{Epoch, Offset, OffsetAndEpoch};

/// Bytes per state value in the snapshot, as the workload's records.
const VALUE_BYTES: usize = 256;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let mib: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1024);
    // Under target/, on the project's disk (never a tmpfs).
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/snapshot-rates");
    let (sender, receiver) = (base.join("sender"), base.join("receiver"));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&sender).unwrap();
    std::fs::create_dir_all(&receiver).unwrap();
    let values = (mib << 20) / VALUE_BYTES as u64;
    let id = OffsetAndEpoch {
        offset: Offset(values as i64),
        epoch: Epoch(1),
    };

    let started = Instant::now();
    let mut writer = SnapshotFileWriter::create(&sender, id, 0).unwrap();
    let value = Bytes::from(vec![0x5a; VALUE_BYTES]);
    for _ in 0..values {
        writer.append([value.clone()]).unwrap();
    }
    writer.finish().unwrap();
    let write_secs = started.elapsed().as_secs_f64();
    let file = SnapshotFile::open(&sender, id).unwrap();

    let started = Instant::now();
    let mut position = 0;
    while position < file.size {
        let chunk = file
            .read_chunk(position, FETCH_SNAPSHOT_MAX_BYTES as usize)
            .unwrap();
        write_partial_chunk(&receiver, id, position, &chunk).unwrap();
        position += chunk.len() as u64;
    }
    let installed = complete_partial(&receiver, id).unwrap();
    let transfer_secs = started.elapsed().as_secs_f64();
    assert_eq!(installed.size, file.size);

    let mb = file.size as f64 / 1e6;
    let rss = peak_rss_mib();
    println!(
        "snapshot of {:.0} MB ({values} values of {VALUE_BYTES} bytes)",
        mb
    );
    println!(
        "  write (stream, fsync, rename)          {:>8.1} MB/s",
        mb / write_secs
    );
    println!(
        "  transfer (4 MiB chunks, verify, rename) {:>8.1} MB/s",
        mb / transfer_secs
    );
    println!("  peak RSS                               {rss:>8.1} MiB");
    println!(
        "{{\"snapshot_mb\":{mb:.1},\"write_mb_per_sec\":{:.1},\"transfer_mb_per_sec\":{:.1},\"peak_rss_mib\":{rss:.1}}}",
        mb / write_secs,
        mb / transfer_secs
    );
    let _ = std::fs::remove_dir_all(&base);
}
