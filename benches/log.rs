//! Benchmarks of the durable log and of record batch v2, for 256-byte records in 64 KiB and
//! 1 MiB batches: append + fsync, read, encode and decode. Run with `cargo bench --bench log`.
//! Throughput targets on the reference machine (2 cores, ~330 MB/s disk): append+fsync of 1 MiB
//! batches >= 250 MB/s; encode and decode >= 1 GB/s.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kraft::record::{BatchBuilder, BatchKind, RecordBatch};
use kraft::storage::{LogConfig, OffsetPolicy, ReplicatedLog};
use kraft::types::{Epoch, Offset};

const RECORD_BYTES: usize = 256;
const BATCH_SIZES: [(&str, usize); 2] = [("64KiB", 64 * 1024), ("1MiB", 1024 * 1024)];

/// A batch of 256-byte records filling about `batch_bytes`.
fn build_batch(base: i64, batch_bytes: usize) -> Bytes {
    let value: Vec<u8> = (0..RECORD_BYTES).map(|i| (i * 7) as u8).collect();
    let mut b =
        BatchBuilder::with_capacity(BatchKind::Data, Offset(base), Epoch(1), batch_bytes + 1024);
    while b.size_in_bytes() + RECORD_BYTES + 16 <= batch_bytes {
        b.append(1_700_000_000_000, None, Some(&value), &[])
            .unwrap();
    }
    b.build().unwrap()
}

fn bench_dir() -> tempfile::TempDir {
    // Under target/, on the same disk as the project, never a tmpfs.
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn append_fsync(c: &mut Criterion) {
    let mut group = c.benchmark_group("append+fsync");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for (name, size) in BATCH_SIZES {
        let batch = build_batch(0, size);
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                let dir = bench_dir();
                let config = LogConfig {
                    segment_bytes: 256 * 1024 * 1024,
                    ..LogConfig::default()
                };
                let (mut log, _) = ReplicatedLog::open(dir.path(), config).unwrap();
                let start = Instant::now();
                for _ in 0..iters {
                    log.append(batch.clone(), OffsetPolicy::Assign).unwrap();
                    log.flush().unwrap();
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

fn read(c: &mut Criterion) {
    let mut group = c.benchmark_group("read");
    for (name, size) in BATCH_SIZES {
        let dir = bench_dir();
        let (mut log, _) = ReplicatedLog::open(dir.path(), LogConfig::default()).unwrap();
        let batch = build_batch(0, size);
        for _ in 0..(64 * 1024 * 1024 / batch.len()).max(1) {
            log.append(batch.clone(), OffsetPolicy::Assign).unwrap();
        }
        log.flush().unwrap();
        let leo = log.log_end_offset();
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            let mut next = Offset(0);
            b.iter(|| {
                let bytes = log.read(next, size).unwrap();
                let last = RecordBatch::decode(bytes.slice(..batch.len()))
                    .unwrap()
                    .next_offset();
                next = if last >= leo { Offset(0) } else { last };
                bytes
            })
        });
    }
    group.finish();
}

fn encode_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("record-batch");
    for (name, size) in BATCH_SIZES {
        let batch = build_batch(0, size);
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| build_batch(0, size))
        });
        group.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| {
                let decoded = RecordBatch::decode(batch.clone()).unwrap();
                decoded.decode_records().unwrap().len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode_decode, read, append_fsync);
criterion_main!(benches);
