//! The durable log as a library: append record batches, make them durable, reopen (recovering
//! whatever a crash left) and read them back.
//!
//! Run with `cargo run --example durable_log [DIR]`; without DIR it uses a temporary directory.

use bytes::Bytes;
use kraft::record::{BatchBuilder, BatchIter, BatchKind};
use kraft::storage::{LogConfig, OffsetPolicy, ReplicatedLog};
use kraft::types::{Epoch, Offset};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temp = tempfile_dir()?;
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or(temp.clone());
    let partition = dir.join("__raft_performance_test-0");

    let (mut log, _) = ReplicatedLog::open(&partition, LogConfig::default())?;
    let start = log.log_end_offset();
    let epoch = Epoch(log.last_fetched_epoch().0.max(1));
    for n in 0..3 {
        // The leader builds a batch at its log end offset, stamped with its epoch.
        let mut batch = BatchBuilder::new(BatchKind::Data, log.log_end_offset(), epoch);
        for i in 0..4 {
            batch.append(
                now_ms(),
                None,
                Some(format!("batch {n} record {i}").as_bytes()),
                &[],
            )?;
        }
        let info = log.append(batch.build()?, OffsetPolicy::Assign)?;
        println!(
            "appended offsets {}..={}",
            info.first_offset, info.last_offset
        );
    }
    log.flush()?; // nothing is durable (or acknowledged) before this returns
    drop(log);

    let (log, report) = ReplicatedLog::open(&partition, LogConfig::default())?;
    println!(
        "reopened: log end offset {}, recovery report {report:?}",
        log.log_end_offset()
    );
    let bytes: Bytes = log.read(start, 1024 * 1024)?;
    for batch in BatchIter::new(bytes) {
        let batch = batch?;
        for record in batch.decode_records()? {
            let offset = Offset(batch.base_offset().0 + i64::from(record.offset_delta));
            let value = record
                .value
                .map(|v| String::from_utf8_lossy(&v).into_owned());
            println!(
                "offset {offset} epoch {}: {}",
                batch.epoch(),
                value.unwrap_or_default()
            );
        }
    }
    if dir == temp {
        std::fs::remove_dir_all(&temp)?;
    }
    Ok(())
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("kraft-durable-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
