//! `kraft producer-perf-test`: Kafka's `kafka-producer-perf-test.sh` (`ProducerPerformance`) as a
//! Kafka client: it produces `--num-records` records at `--throughput`, prints a progress line
//! every 5 s while acknowledgements arrive and a closing line with throughput, average and
//! maximum latency and latency percentiles. Latency is acknowledgement time minus send time,
//! counted for successful sends only.
//!
//! Owns the flags, the payloads, the statistics and their printing. It must never reach
//! kraft's own append path (it produces through librdkafka over the Kafka protocol) and has no
//! transactions: kraft does not coordinate them, so the transaction flags are refused.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::{ArgGroup, Args};
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::util::Timeout;

use super::CliError;
use super::kafka_client::{self, Pacer};
use crate::raft::SeededRng;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("payload").required(true).multiple(false)
    .args(["record_size", "payload_file", "payload_monotonic"])))]
pub struct ProducerPerfArgs {
    /// Produce to this topic.
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    /// How many records to produce (more than 0).
    #[arg(long, value_name = "NUM-RECORDS", allow_negative_numbers = true)]
    num_records: i64,
    /// Bytes per record: random upper-case letters from a fixed seed. Exactly one of
    /// --record-size, --payload-file and --payload-monotonic.
    #[arg(long, value_name = "RECORD-SIZE", allow_negative_numbers = true)]
    record_size: Option<i64>,
    /// A UTF-8 text file of payloads split at --payload-delimiter; each record is one of them
    /// picked at random.
    #[arg(long, value_name = "PAYLOAD-FILE")]
    payload_file: Option<PathBuf>,
    /// Each record is its index as a decimal string (0, 1, 2, …).
    #[arg(long)]
    payload_monotonic: bool,
    /// Splits --payload-file (`\n`, the default, is a newline).
    #[arg(long, value_name = "PAYLOAD-DELIMITER", default_value = "\\n")]
    payload_delimiter: String,
    /// About this many records a second; -1 (any negative) is unthrottled.
    #[arg(long, value_name = "THROUGHPUT", allow_negative_numbers = true)]
    throughput: f64,
    /// librdkafka producer settings as key=value, over those of --producer.config.
    #[arg(long, value_name = "PROP-NAME=PROP-VALUE", num_args = 1..)]
    producer_props: Vec<String>,
    /// A Java .properties file of librdkafka producer settings.
    #[arg(long = "producer.config", value_name = "CONFIG-FILE")]
    producer_config: Option<PathBuf>,
    /// Accepted for compatibility; prints nothing beyond the summary (librdkafka's metrics are
    /// not Kafka's).
    #[arg(long)]
    print_metrics: bool,
    /// The first this many records are left out of a second, steady-state summary line.
    #[arg(
        long,
        value_name = "WARMUP-RECORDS",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    warmup_records: i64,
    /// Refused: kraft has no transaction coordinator.
    #[arg(long, value_name = "TRANSACTIONAL-ID", hide = true)]
    transactional_id: Option<String>,
    /// Refused: kraft has no transaction coordinator.
    #[arg(
        long,
        value_name = "TRANSACTION-DURATION",
        hide = true,
        allow_negative_numbers = true
    )]
    transaction_duration_ms: Option<i64>,
}

/// At most this many latencies are kept for the percentiles (every n-th one on longer runs), so
/// memory stays bounded whatever --num-records is.
const MAX_LATENCY_SAMPLES: u64 = 500_000;
/// How often a progress line is printed while acknowledgements arrive.
const REPORT_INTERVAL_MS: u128 = 5_000;
/// The payload generator's seed: every run sends the same payloads.
const PAYLOAD_SEED: u64 = 0;
const MIB: f64 = 1024.0 * 1024.0;

/// Throughput and latency of the acknowledged records, over the whole run and over the current
/// reporting window.
struct Stats {
    start: Instant,
    steady_state: bool,
    /// Set once steady-state statistics take over the progress lines.
    quiet: bool,
    count: u64,
    bytes: u64,
    total_latency: u64,
    max_latency: u64,
    sampling: u64,
    seen: u64,
    samples: Vec<u64>,
    window_start: Instant,
    window_count: u64,
    window_bytes: u64,
    window_total_latency: u64,
    window_max_latency: u64,
}

impl Stats {
    fn new(records: u64, steady_state: bool) -> Self {
        let now = Instant::now();
        let sampling = (records / records.clamp(1, MAX_LATENCY_SAMPLES)).max(1);
        Stats {
            start: now,
            steady_state,
            quiet: false,
            count: 0,
            bytes: 0,
            total_latency: 0,
            max_latency: 0,
            sampling,
            seen: 0,
            samples: Vec::with_capacity((records / sampling + 1) as usize),
            window_start: now,
            window_count: 0,
            window_bytes: 0,
            window_total_latency: 0,
            window_max_latency: 0,
        }
    }

    /// Counts one acknowledged record; returns the lines to print when its window is over.
    fn record(&mut self, latency_ms: u64, bytes: u64, now: Instant) -> Vec<String> {
        self.count += 1;
        self.bytes += bytes;
        self.total_latency += latency_ms;
        self.max_latency = self.max_latency.max(latency_ms);
        self.window_count += 1;
        self.window_bytes += bytes;
        self.window_total_latency += latency_ms;
        self.window_max_latency = self.window_max_latency.max(latency_ms);
        if self.seen.is_multiple_of(self.sampling) {
            self.samples.push(latency_ms);
        }
        self.seen += 1;
        let mut lines = Vec::new();
        if now.duration_since(self.window_start).as_millis() >= REPORT_INTERVAL_MS {
            if self.steady_state && self.count == self.window_count {
                lines.push("In steady state.".to_owned());
            }
            if !self.quiet {
                lines.push(self.window_line(now));
            }
            self.window_start = now;
            self.window_count = 0;
            self.window_bytes = 0;
            self.window_total_latency = 0;
            self.window_max_latency = 0;
        }
        lines
    }

    fn window_line(&self, now: Instant) -> String {
        let elapsed = ms_f64(now.duration_since(self.window_start));
        format!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
            self.window_count,
            1000.0 * self.window_count as f64 / elapsed,
            1000.0 * self.window_bytes as f64 / elapsed / MIB,
            ratio(self.window_total_latency, self.window_count),
            self.window_max_latency as f64,
        )
    }

    fn summary(&mut self, now: Instant) -> String {
        let elapsed = ms_f64(now.duration_since(self.start));
        self.samples.sort_unstable();
        let [p50, p95, p99, p999] = [0.5, 0.95, 0.99, 0.999].map(|p| {
            let index = (p * self.samples.len() as f64) as usize;
            self.samples.get(index).copied().unwrap_or(0)
        });
        format!(
            "{}{} records sent, {:.6} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {p50} ms 50th, {p95} ms 95th, {p99} ms 99th, {p999} ms 99.9th.",
            self.count,
            if self.steady_state {
                " steady state"
            } else {
                ""
            },
            1000.0 * self.count as f64 / elapsed,
            1000.0 * self.bytes as f64 / elapsed / MIB,
            ratio(self.total_latency, self.count),
            self.max_latency as f64,
        )
    }
}

/// Milliseconds, never zero, so that rates over a very short span stay finite.
fn ms_f64(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).max(1.0)
}

fn ratio(total: u64, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        total as f64 / count as f64
    }
}

fn print_lines(lines: &[String]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
}

/// When a record was handed to the producer and whether it counts for the steady state.
struct Sent {
    at: Instant,
    steady: bool,
}

/// Collects the delivery reports on librdkafka's polling thread.
struct Collector {
    stats: Mutex<Stats>,
    steady: Mutex<Option<Stats>>,
    failed: AtomicU64,
}

impl ClientContext for Collector {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        kafka_client::log_client_event(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        kafka_client::log_client_error(&error, reason);
    }
}

impl ProducerContext for Collector {
    type DeliveryOpaque = Box<Sent>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Sent>) {
        let now = Instant::now();
        match result {
            Ok(m) => {
                let latency = now.duration_since(sent.at).as_millis() as u64;
                let bytes = m.payload_len() as u64;
                let mut lines = lock(&self.stats).record(latency, bytes, now);
                if sent.steady
                    && let Some(steady) = lock(&self.steady).as_mut()
                {
                    lines.extend(steady.record(latency, bytes, now));
                }
                print_lines(&lines);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::SeqCst);
                let code = e
                    .rdkafka_error_code()
                    .unwrap_or(rdkafka::types::RDKafkaErrorCode::Fail);
                report_failure(code);
            }
        }
    }
}

/// Kafka's tool prints each failure's stack trace on stderr; this prints its first line.
fn report_failure(code: rdkafka::types::RDKafkaErrorCode) {
    let class = kafka_client::java_exception(code);
    eprintln!("{}: {code}", class.trim_start_matches("class "));
}

/// A poisoned lock only means a print panicked on another thread; the counts are still whole.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The payloads to send.
enum Payloads {
    Random {
        size: usize,
        rng: SeededRng,
    },
    File {
        choices: Vec<Vec<u8>>,
        rng: SeededRng,
    },
    Monotonic,
}

impl Payloads {
    fn next(&mut self, index: u64) -> Vec<u8> {
        match self {
            Payloads::Random { size, rng } => {
                (0..*size).map(|_| b'A' + rng.below(26) as u8).collect()
            }
            Payloads::File { choices, rng } => {
                choices[rng.below(choices.len() as u64) as usize].clone()
            }
            Payloads::Monotonic => index.to_string().into_bytes(),
        }
    }
}

fn payloads(args: &ProducerPerfArgs) -> Result<Payloads, CliError> {
    if let Some(size) = args.record_size {
        if size <= 0 {
            return Err(CliError::usage(format!(
                "--record-size {size}: expected more than 0 bytes"
            )));
        }
        return Ok(Payloads::Random {
            size: size as usize,
            rng: SeededRng::new(PAYLOAD_SEED),
        });
    }
    let Some(path) = &args.payload_file else {
        return Ok(Payloads::Monotonic);
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::usage(format!(
            "--payload-file {}: cannot read payloads: {e}",
            path.display()
        ))
    })?;
    let delimiter = match args.payload_delimiter.as_str() {
        "\\n" => "\n",
        "" => {
            return Err(CliError::usage(
                "--payload-delimiter: expected a non-empty delimiter",
            ));
        }
        other => other,
    };
    println!(
        "Reading payloads from: {}",
        std::path::absolute(path)
            .unwrap_or_else(|_| path.clone())
            .display()
    );
    let choices: Vec<Vec<u8>> = text
        .split(delimiter)
        .filter(|p| !p.is_empty())
        .map(|p| p.as_bytes().to_vec())
        .collect();
    if choices.is_empty() {
        return Err(CliError::usage(format!(
            "--payload-file {}: no payloads in the file",
            path.display()
        )));
    }
    println!("Number of messages read: {}", choices.len());
    Ok(Payloads::File {
        choices,
        rng: SeededRng::new(PAYLOAD_SEED),
    })
}

/// The producer settings: --producer.config, then --producer-props over it, then the tool's
/// default client id where neither names one. Nothing else is added: acks, idempotence,
/// batching are librdkafka's defaults unless the settings say otherwise.
fn producer_config(args: &ProducerPerfArgs) -> Result<(ClientConfig, String), CliError> {
    if args.producer_props.is_empty() && args.producer_config.is_none() {
        return Err(CliError::usage(
            "Either --producer-props or --producer.config must be specified.",
        ));
    }
    let mut pairs = match &args.producer_config {
        Some(path) => kafka_client::read_properties("--producer.config", path)?,
        None => Vec::new(),
    };
    for prop in &args.producer_props {
        let Some((key, value)) = prop.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
            return Err(CliError::usage(format!(
                "--producer-props: invalid property '{prop}': expected key=value"
            )));
        };
        pairs.retain(|(k, _)| k != key.trim());
        pairs.push((key.trim().to_owned(), value.to_owned()));
    }
    let mut source = Vec::new();
    if let Some(path) = &args.producer_config {
        source.push(format!("--producer.config {}", path.display()));
    }
    if !args.producer_props.is_empty() {
        source.push("--producer-props".to_owned());
    }
    let source = source.join(" and ");
    if pairs.iter().any(|(k, _)| k == "transactional.id") {
        return Err(CliError::usage(format!(
            "transactional.id in {source}: kraft has no transactions"
        )));
    }
    let mut config = ClientConfig::new();
    config.set("client.id", "perf-producer-client");
    let mut has_bootstrap = false;
    for (key, value) in pairs {
        let value = if key == "bootstrap.servers" || key == "metadata.broker.list" {
            has_bootstrap = true;
            kafka_client::bootstrap_servers(&format!("{key} in {source}"), &value)?
        } else {
            value
        };
        config.set(key, value);
    }
    if !has_bootstrap {
        return Err(CliError::usage(format!(
            "no bootstrap.servers in {source}: the producer needs servers to connect to"
        )));
    }
    Ok((config, source))
}

pub fn run(args: &ProducerPerfArgs) -> Result<(), CliError> {
    if args.transactional_id.is_some() || args.transaction_duration_ms.is_some() {
        return Err(CliError::usage(
            "--transactional-id and --transaction-duration-ms: kraft has no transactions",
        ));
    }
    if args.num_records <= 0 {
        return Err(CliError::usage(format!(
            "--num-records {}: expected more than 0",
            args.num_records
        )));
    }
    let records = args.num_records as u64;
    let warmup = args.warmup_records.max(0) as u64;
    if warmup >= records {
        return Err(CliError::usage(format!(
            "--warmup-records {warmup}: expected fewer than --num-records {records}"
        )));
    }
    if args.throughput == 0.0 || args.throughput.is_nan() {
        return Err(CliError::usage(format!(
            "--throughput {}: expected a positive number of records a second, or -1 for unthrottled",
            args.throughput
        )));
    }
    let mut payloads = payloads(args)?;
    let (config, source) = producer_config(args)?;
    let collector = Collector {
        stats: Mutex::new(Stats::new(records, false)),
        steady: Mutex::new(None),
        failed: AtomicU64::new(0),
    };
    let producer = kafka_client::create_producer(&config, collector, &source)?;
    if warmup > 0 {
        println!(
            "Warmup first {warmup} records. Steady state results will print after the complete test summary."
        );
    }
    let pacer = Pacer::new((args.throughput > 0.0).then_some(args.throughput));
    // Restart the clocks: creating the producer is not part of the measurement.
    *lock(&producer.context().stats) = Stats::new(records, false);
    for i in 0..records {
        let payload = payloads.next(i);
        if let Some(due) = pacer.due(i) {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        if warmup > 0 && i == warmup {
            let steady = Stats::new(records - warmup, true);
            lock(&producer.context().stats).quiet = true;
            *lock(&producer.context().steady) = Some(steady);
        }
        let sent = Box::new(Sent {
            at: Instant::now(),
            steady: warmup > 0 && i >= warmup,
        });
        let record = BaseRecord::<[u8], [u8], Box<Sent>>::with_opaque_to(&args.topic, sent)
            .payload(&payload[..]);
        if let Err(code) = kafka_client::send_waiting(&producer, record) {
            producer.context().failed.fetch_add(1, Ordering::SeqCst);
            report_failure(code);
        }
    }
    // Every queued record ends acknowledged or failed within librdkafka's
    // message.timeout.ms, which bounds this wait.
    let _ = producer.flush(Timeout::Never);
    let now = Instant::now();
    let mut lines = vec![lock(&producer.context().stats).summary(now)];
    if let Some(steady) = lock(&producer.context().steady).as_mut() {
        lines.push(steady.summary(now));
    }
    print_lines(&lines);
    let failed = producer.context().failed.load(Ordering::SeqCst);
    if failed > 0 {
        return Err(CliError {
            message: format!("{failed} of {records} records failed"),
            exit_code: super::EXIT_PROBLEM,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_lines_follow_kafkas_format() {
        let mut stats = Stats::new(100, false);
        let now = stats.start;
        for latency in 1..=100 {
            assert!(stats.record(latency, 10, now).is_empty());
        }
        let line = stats.summary(now + std::time::Duration::from_secs(2));
        assert_eq!(
            line,
            "100 records sent, 50.000000 records/sec (0.00 MB/sec), 50.50 ms avg latency, \
             100.00 ms max latency, 51 ms 50th, 96 ms 95th, 100 ms 99th, 100 ms 99.9th."
        );
        let later = now + std::time::Duration::from_secs(5);
        let lines = stats.record(7, 10, later);
        assert_eq!(
            lines,
            [
                "101 records sent, 20.2 records/sec (0.00 MB/sec), 50.1 ms avg latency, 100.0 ms max latency."
            ]
        );
    }

    #[test]
    fn sampling_keeps_memory_bounded() {
        let stats = Stats::new(10 * MAX_LATENCY_SAMPLES, false);
        assert_eq!(stats.sampling, 10);
        assert!(stats.samples.capacity() <= MAX_LATENCY_SAMPLES as usize + 1);
    }
}
