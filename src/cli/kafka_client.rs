//! What the two producer tools (`verifiable-producer`, `producer-perf-test`) share as Kafka
//! clients: reading a producer `.properties` file, cleaning bootstrap addresses, creating the
//! librdkafka producer, naming its errors as Kafka's Java client would, pacing sends, and
//! stopping on SIGTERM/SIGINT.
//!
//! It owns the client side only. It must never reach kraft's own append path or storage: the
//! tools talk to a node over the Kafka protocol exactly as any other client does.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use super::CliError;

/// How long a send that found librdkafka's queue full waits for deliveries to make room
/// before it tries again (the polling serves delivery callbacks, which free the queue).
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(10);

/// Reads a Java `.properties` file into (key, value) pairs in file order (a later duplicate
/// wins, as in Java). `flag` names the option that gave the path, for the error line.
pub fn read_properties(flag: &str, path: &Path) -> Result<Vec<(String, String)>, CliError> {
    let bytes = std::fs::read(path).map_err(|e| {
        CliError::usage(format!(
            "{flag} {}: cannot read producer config: {e}",
            path.display()
        ))
    })?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    java_properties::PropertiesIter::new_with_encoding(&bytes[..], encoding_rs::UTF_8)
        .read_into(|k, v| {
            pairs.retain(|(existing, _)| existing != &k);
            pairs.push((k, v));
        })
        .map_err(|e| {
            CliError::usage(format!(
                "{flag} {}: not a valid properties file: {e}",
                path.display()
            ))
        })?;
    Ok(pairs)
}

/// `host:port[,host:port...]` with any `scheme://` prefix dropped from each entry: Kafka's Java
/// client ignores such a prefix (the seed commands pass `http://localhost:9092`) but librdkafka
/// would read the scheme as a security protocol and refuse it. `source` names where the value
/// came from, for the error line.
pub fn bootstrap_servers(source: &str, value: &str) -> Result<String, CliError> {
    let mut cleaned = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let address = entry.rsplit_once("://").map_or(entry, |(_, rest)| rest);
        let port_ok = address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(CliError::usage(format!(
                "{source}: invalid bootstrap server '{entry}': expected host:port"
            )));
        }
        cleaned.push(address.to_owned());
    }
    if cleaned.is_empty() {
        return Err(CliError::usage(format!(
            "{source}: no bootstrap server given (expected host:port[,host:port...])"
        )));
    }
    Ok(cleaned.join(","))
}

/// Whether a librdkafka boolean property value is on (it accepts these spellings).
pub fn is_true(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "true" | "t" | "1" | "yes" | "y" | "on"
    )
}

/// Creates the producer; librdkafka checks the whole configuration here, so a refusal (an
/// unknown key, a bad value, idempotence with acks=1...) is the operator's mistake, reported
/// as one line naming where the settings came from.
pub fn create_producer<C>(
    config: &ClientConfig,
    context: C,
    source: &str,
) -> Result<ThreadedProducer<C>, CliError>
where
    C: ProducerContext + 'static,
{
    config
        .create_with_context(context)
        .map_err(|e: KafkaError| {
            let detail = match &e {
                KafkaError::ClientConfig(_, desc, _, _) => desc.clone(),
                KafkaError::ClientCreation(message) => message.clone(),
                other => other.to_string(),
            };
            CliError::usage(format!(
                "the producer configuration ({source}) was refused: {detail}"
            ))
        })
}

/// Hands a record to the producer, waiting while librdkafka's queue is full (Kafka's Java
/// producer blocks in `send` the same way). Any other refusal is returned with the record's
/// error code.
pub fn send_waiting<'a, C>(
    producer: &ThreadedProducer<C>,
    mut record: rdkafka::producer::BaseRecord<'a, [u8], [u8], C::DeliveryOpaque>,
) -> Result<(), RDKafkaErrorCode>
where
    C: ProducerContext + 'static,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(QUEUE_FULL_WAIT);
            }
            Err((e, _)) => return Err(e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)),
        }
    }
}

/// The Java exception class Kafka's client would report for a librdkafka error code, as
/// `Class.toString()` prints it, so that tools reading the output see familiar names.
pub fn java_exception(code: RDKafkaErrorCode) -> String {
    use RDKafkaErrorCode as E;
    let name = match code {
        E::NotLeaderForPartition | E::FencedLeaderEpoch => "NotLeaderOrFollowerException",
        E::LeaderNotAvailable => "LeaderNotAvailableException",
        E::MessageTimedOut
        | E::RequestTimedOut
        | E::OperationTimedOut
        | E::TimedOutQueue
        | E::PurgeQueue
        | E::PurgeInflight => "TimeoutException",
        E::OutOfOrderSequenceNumber => "OutOfOrderSequenceException",
        E::DuplicateSequenceNumber => "DuplicateSequenceException",
        E::InvalidProducerEpoch => "InvalidProducerEpochException",
        E::ProducerFenced | E::Fenced => "ProducerFencedException",
        E::UnknownProducerId => "UnknownProducerIdException",
        E::UnknownTopicOrPartition | E::UnknownTopic | E::UnknownPartition => {
            "UnknownTopicOrPartitionException"
        }
        E::NetworkException | E::BrokerTransportFailure => "NetworkException",
        E::MessageSizeTooLarge | E::InvalidMessageSize => "RecordTooLargeException",
        E::InvalidMessage => "CorruptRecordException",
        E::InvalidRecord => "InvalidRecordException",
        E::InvalidTimestamp => "InvalidTimestampException",
        E::NotEnoughReplicas => "NotEnoughReplicasException",
        E::NotEnoughReplicasAfterAppend => "NotEnoughReplicasAfterAppendException",
        E::InvalidRequiredAcks => "InvalidRequiredAcksException",
        E::TopicAuthorizationFailed => "TopicAuthorizationException",
        E::ClusterAuthorizationFailed => "ClusterAuthorizationException",
        E::KafkaStorageError => "KafkaStorageException",
        // No closer Java class: Kafka's client raises its base exception, which lives one
        // package up.
        _ => return "class org.apache.kafka.common.KafkaException".to_owned(),
    };
    format!("class org.apache.kafka.common.errors.{name}")
}

/// Routes librdkafka's own log lines and client-level errors (a broker going away, a failed
/// connection) to kraft's log on stderr, so stdout carries only the tool's output.
pub fn log_client_event(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(facility, "librdkafka: {message}"),
        RDKafkaLogLevel::Warning => tracing::warn!(facility, "librdkafka: {message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(facility, "librdkafka: {message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(facility, "librdkafka: {message}"),
    }
}

/// A client context's error hook, logged (librdkafka retries connections by itself).
pub fn log_client_error(error: &KafkaError, reason: &str) {
    tracing::warn!("librdkafka: {error}: {reason}");
}

/// Milliseconds since the Unix epoch, as the tools print timestamps.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Spaces sends so that record `i` goes no earlier than `i / rate` seconds after the start:
/// approximately `rate` records a second overall, catching up after a slow stretch rather than
/// drifting (Kafka's tools throttle to the same average).
pub struct Pacer {
    start: Instant,
    per_second: Option<f64>,
}

impl Pacer {
    /// `per_second` None sends as fast as the producer takes records.
    pub fn new(per_second: Option<f64>) -> Self {
        Pacer {
            start: Instant::now(),
            per_second,
        }
    }

    /// When record `index` (0-based) is due; None when unthrottled.
    pub fn due(&self, index: u64) -> Option<Instant> {
        let rate = self.per_second?;
        Some(self.start + Duration::from_secs_f64(index as f64 / rate))
    }
}

/// A SIGTERM or SIGINT, delivered once to whoever waits.
pub struct StopSignal {
    rx: Receiver<()>,
}

impl StopSignal {
    /// Installs the handlers (on a small thread of its own, which blocks in tokio's signal
    /// streams) and returns once they are in place, so that a signal sent right after the tool
    /// printed its start cannot be missed. From then on the signals no longer kill the process.
    pub fn install() -> Result<StopSignal, CliError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    use tokio::signal::unix::{SignalKind, signal};
                    let (mut term, mut int) = match (
                        signal(SignalKind::terminate()),
                        signal(SignalKind::interrupt()),
                    ) {
                        (Ok(t), Ok(i)) => (t, i),
                        (Err(e), _) | (_, Err(e)) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                    let _ = tx.send(());
                });
            })
            .map_err(|e| problem(format!("cannot start the signal thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(StopSignal { rx }),
            Ok(Err(e)) => Err(problem(format!("cannot install signal handlers: {e}"))),
            Err(_) => Err(problem("the signal thread stopped".into())),
        }
    }

    /// Whether a stop signal has arrived.
    pub fn arrived(&self) -> bool {
        !matches!(self.rx.try_recv(), Err(TryRecvError::Empty))
    }

    /// Waits until `deadline` (None: not at all); true when a stop signal came first.
    pub fn wait_until(&self, deadline: Option<Instant>) -> bool {
        let Some(deadline) = deadline else {
            return self.arrived();
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return self.arrived();
        }
        !matches!(self.rx.recv_timeout(left), Err(RecvTimeoutError::Timeout))
    }
}

fn problem(message: String) -> CliError {
    CliError {
        message,
        exit_code: super::EXIT_PROBLEM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_servers_drop_schemes_and_check_ports() {
        assert_eq!(
            bootstrap_servers("--bootstrap-server", "http://localhost:9092").unwrap(),
            "localhost:9092"
        );
        assert_eq!(
            bootstrap_servers("x", "PLAINTEXT://a:1, b:2").unwrap(),
            "a:1,b:2"
        );
        for bad in [
            "",
            "localhost",
            "http://localhost",
            ":9092",
            "a:b",
            "a:99999",
        ] {
            let e = bootstrap_servers("--bootstrap-server", bad).unwrap_err();
            assert_eq!(e.exit_code, super::super::EXIT_USAGE);
            assert!(
                e.message.starts_with("--bootstrap-server: "),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn errors_get_kafka_exception_names() {
        assert_eq!(
            java_exception(RDKafkaErrorCode::NotLeaderForPartition),
            "class org.apache.kafka.common.errors.NotLeaderOrFollowerException"
        );
        assert_eq!(
            java_exception(RDKafkaErrorCode::MessageTimedOut),
            "class org.apache.kafka.common.errors.TimeoutException"
        );
        assert_eq!(
            java_exception(RDKafkaErrorCode::OutOfOrderSequenceNumber),
            "class org.apache.kafka.common.errors.OutOfOrderSequenceException"
        );
        assert_eq!(
            java_exception(RDKafkaErrorCode::Fail),
            "class org.apache.kafka.common.KafkaException"
        );
    }

    #[test]
    fn the_pacer_spreads_records_over_the_second() {
        let pacer = Pacer::new(Some(4.0));
        let first = pacer.due(0).unwrap();
        assert_eq!(pacer.due(2).unwrap() - first, Duration::from_millis(500));
        assert!(Pacer::new(None).due(7).is_none());
    }
}
