//! `kraft verifiable-producer`: Kafka's `VerifiableProducer` tool as a Kafka client of a kraft
//! node (or any Kafka cluster). It produces the integers 0, 1, 2, … as decimal strings and
//! prints one JSON object per line on stdout for every event (start, each acknowledged or
//! failed send, shutdown, a closing summary), so that a test can check afterwards which
//! records the cluster acknowledged and find each of them in the log.
//!
//! Owns the flags, the producer settings and the output. It must never write anything but
//! those JSON lines to stdout, and never reach kraft's own append path: it produces through
//! librdkafka over the Kafka protocol.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Args;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::util::Timeout;
use serde::Serialize;

use super::CliError;
use super::kafka_client::{self, Pacer, StopSignal};

#[derive(Debug, Args)]
pub struct VerifiableProducerArgs {
    /// Produce to this topic (a kraft node serves `__cluster_metadata` and
    /// `__raft_performance_test`, both its replicated log).
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    /// The servers to connect to; a `scheme://` prefix on an entry is ignored, as Kafka's
    /// Java client does.
    #[arg(long = "bootstrap-server", value_name = "HOST1:PORT1[,HOST2:PORT2...]")]
    bootstrap_server: String,
    /// Produce this many messages; -1 produces until SIGTERM or SIGINT.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    max_messages: i64,
    /// About this many messages a second; -1 (any negative) is unthrottled.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    throughput: i64,
    /// Acknowledgements each send needs: 0, 1, or -1 (= all).
    #[arg(long, default_value = "-1", allow_negative_numbers = true,
          value_parser = ["0", "1", "-1", "all"])]
    acks: String,
    /// A Java .properties file of librdkafka producer settings, applied over the tool's own.
    #[arg(long = "producer.config", value_name = "CONFIG-FILE")]
    producer_config: Option<PathBuf>,
    /// The same as --producer.config (Kafka's newer name for it).
    #[arg(
        long = "command-config",
        value_name = "CONFIG-FILE",
        conflicts_with = "producer_config"
    )]
    command_config: Option<PathBuf>,
    /// Give the first message this create time (ms since the epoch); later ones add the time
    /// elapsed since the start. -1 uses the time of each send.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    message_create_time: i64,
    /// Values become `PREFIX.i` instead of `i`.
    #[arg(long, value_name = "VALUE-PREFIX", allow_negative_numbers = true)]
    value_prefix: Option<i64>,
    /// Key the messages "0", "1", … "N-1" and round again; without it keys are null.
    #[arg(long, value_name = "N")]
    repeating_keys: Option<u64>,
}

/// `startup_complete` (once the producer exists, before the first send) and
/// `shutdown_complete` (after the last delivery report).
#[derive(Serialize)]
struct Lifecycle {
    timestamp: i64,
    name: &'static str,
}

#[derive(Serialize)]
struct SendSuccess<'a> {
    timestamp: i64,
    name: &'static str,
    key: Option<String>,
    value: String,
    topic: &'a str,
    partition: i32,
    offset: i64,
}

#[derive(Serialize)]
struct SendError<'a> {
    timestamp: i64,
    name: &'static str,
    key: Option<String>,
    value: String,
    topic: &'a str,
    exception: String,
    message: String,
}

#[derive(Serialize)]
struct ToolData {
    timestamp: i64,
    name: &'static str,
    sent: u64,
    acked: u64,
    target_throughput: i64,
    avg_throughput: f64,
}

/// Prints one JSON line. A closed stdout (the reader went away) is not worth a panic: the
/// lines are the tool's only output, so there is nobody left to tell.
fn emit(event: &impl Serialize) {
    use std::io::Write;
    let line = serde_json::to_string(event).expect("plain data serializes");
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn text(bytes: Option<&[u8]>) -> Option<String> {
    bytes.map(|b| String::from_utf8_lossy(b).into_owned())
}

fn send_error(
    topic: &str,
    key: Option<String>,
    value: String,
    code: rdkafka::types::RDKafkaErrorCode,
) {
    emit(&SendError {
        timestamp: kafka_client::now_ms(),
        name: "producer_send_error",
        key,
        value,
        topic,
        exception: kafka_client::java_exception(code),
        message: code.to_string(),
    });
}

/// Prints each delivery report as librdkafka's polling thread hands it over.
struct Reporter {
    acked: AtomicU64,
}

impl ClientContext for Reporter {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        kafka_client::log_client_event(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        kafka_client::log_client_error(&error, reason);
    }
}

impl ProducerContext for Reporter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                self.acked.fetch_add(1, Ordering::SeqCst);
                emit(&SendSuccess {
                    timestamp: kafka_client::now_ms(),
                    name: "producer_send_success",
                    key: text(m.key()),
                    value: text(m.payload()).unwrap_or_default(),
                    topic: m.topic(),
                    partition: m.partition(),
                    offset: m.offset(),
                });
            }
            Err((e, m)) => send_error(
                m.topic(),
                text(m.key()),
                text(m.payload()).unwrap_or_default(),
                e.rdkafka_error_code()
                    .unwrap_or(rdkafka::types::RDKafkaErrorCode::Fail),
            ),
        }
    }
}

/// The producer settings: the tool's own (from the flags), then the file's entries over them.
///
/// Kafka's tool sets `retries=0` so that every failure shows as a failed send rather than a
/// silent retry; librdkafka's default of no idempotence matches what that does to Kafka's Java
/// client. A file that turns `enable.idempotence` on gets librdkafka's retries back (unless it
/// sets `retries` itself), because idempotence needs them and its retries are exactly-once:
/// the sequence numbers let the leader drop a batch it already has.
fn producer_config(
    args: &VerifiableProducerArgs,
    file: &[(String, String)],
) -> Result<ClientConfig, CliError> {
    let mut config = ClientConfig::new();
    config.set(
        "bootstrap.servers",
        kafka_client::bootstrap_servers("--bootstrap-server", &args.bootstrap_server)?,
    );
    config.set("acks", &args.acks);
    config.set("retries", "0");
    for (key, value) in file {
        let value = if key == "bootstrap.servers" {
            kafka_client::bootstrap_servers("bootstrap.servers in the producer config", value)?
        } else {
            value.clone()
        };
        config.set(key, value);
    }
    let idempotent = file
        .iter()
        .any(|(k, v)| k == "enable.idempotence" && kafka_client::is_true(v));
    let file_sets_retries = file
        .iter()
        .any(|(k, _)| k == "retries" || k == "message.send.max.retries");
    if idempotent && !file_sets_retries {
        config.remove("retries");
    }
    Ok(config)
}

pub fn run(args: &VerifiableProducerArgs) -> Result<(), CliError> {
    if args.throughput == 0 {
        return Err(CliError::usage(
            "--throughput 0: expected a positive number of messages a second, or -1 for unthrottled",
        ));
    }
    if args.repeating_keys == Some(0) {
        return Err(CliError::usage(
            "--repeating-keys 0: expected at least 1 distinct key",
        ));
    }
    let (file_flag, file) = match (&args.producer_config, &args.command_config) {
        (Some(path), _) => ("--producer.config", Some(path)),
        (None, Some(path)) => ("--command-config", Some(path)),
        (None, None) => ("", None),
    };
    let file_pairs = match file {
        Some(path) => kafka_client::read_properties(file_flag, path)?,
        None => Vec::new(),
    };
    let source = match file {
        Some(path) => format!("the flags and {file_flag} {}", path.display()),
        None => "the flags".to_owned(),
    };
    let config = producer_config(args, &file_pairs)?;
    let stop = StopSignal::install()?;
    let reporter = Reporter {
        acked: AtomicU64::new(0),
    };
    let producer = kafka_client::create_producer(&config, reporter, &source)?;

    let started = Instant::now();
    emit(&Lifecycle {
        timestamp: kafka_client::now_ms(),
        name: "startup_complete",
    });
    let pacer = Pacer::new((args.throughput > 0).then_some(args.throughput as f64));
    let limit = u64::try_from(args.max_messages).unwrap_or(u64::MAX);
    let mut sent = 0u64;
    let mut next_key = 0u64;
    for i in 0..limit {
        if stop.wait_until(pacer.due(i)) {
            break;
        }
        let key = args.repeating_keys.map(|n| {
            let key = next_key;
            next_key = (next_key + 1) % n;
            key.to_string()
        });
        let value = match args.value_prefix {
            Some(prefix) => format!("{prefix}.{i}"),
            None => i.to_string(),
        };
        let mut record = BaseRecord::<[u8], [u8]>::to(&args.topic).payload(value.as_bytes());
        if let Some(key) = &key {
            record = record.key(key.as_bytes());
        }
        if args.message_create_time >= 0 {
            let elapsed = started.elapsed().as_millis() as i64;
            record = record.timestamp(args.message_create_time.saturating_add(elapsed));
        }
        sent += 1;
        if let Err(code) = kafka_client::send_waiting(&producer, record) {
            send_error(&args.topic, key, value, code);
        }
    }
    // Every queued record ends acknowledged or failed within librdkafka's
    // message.timeout.ms, which bounds this wait.
    let _ = producer.flush(Timeout::Never);
    emit(&Lifecycle {
        timestamp: kafka_client::now_ms(),
        name: "shutdown_complete",
    });
    let acked = producer.context().acked.load(Ordering::SeqCst);
    let elapsed_ms = (started.elapsed().as_millis() as f64).max(1.0);
    emit(&ToolData {
        timestamp: kafka_client::now_ms(),
        name: "tool_data",
        sent,
        acked,
        target_throughput: args.throughput,
        avg_throughput: 1000.0 * acked as f64 / elapsed_ms,
    });
    Ok(())
}
