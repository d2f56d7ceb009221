//! `kraft tail`: follow a quorum's committed log like a consumer, with no node id (the seed's
//! id-less Raft client). It asks a bootstrap node over the Kafka protocol for the cluster id and
//! the voters (DescribeCluster) and, unless `--from-beginning`, for the high watermark
//! (DescribeQuorum); then [`crate::tail::Tail`] follows the log over the peer protocol and each
//! committed data record is printed once, as it commits.
//!
//! Owns the arguments, the output formats and the printing thread. It must never write to
//! disk, never block the node's actors on a slow stdout (a bounded queue to a printing thread
//! stands between), and never print a record twice or out of order.
//! SIGINT/SIGTERM end it promptly: the output stops after the step being written (what is
//! still queued is not printed), and a printer blocked on a stdout nobody reads is left behind.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::sync::mpsc;

use super::quorum::{admin_client, client_properties, problem};
use super::quorum_client::ENDPOINT_TYPE_CONTROLLER;
use super::{CliError, EXIT_PROBLEM};
use crate::config::{ClientProperties, Endpoint, KeyStore, ListenerSecurity, TlsSettings};
use crate::tail::{Tail, TailRecord, TailStep, TailTarget};
use crate::types::{NodeId, Offset};

/// Steps (record groups or gaps) waiting for the printing thread. Bounds what a stdout slower
/// than the log makes the tail buffer: past this the tail stops reading its log until the
/// printer catches up (its node keeps replicating, cleaning behind itself).
const PRINT_QUEUE: usize = 64;
/// Most voters the tail accepts from a bootstrap node's answer. The tail keeps a connection to
/// each, so a broken or hostile answer listing thousands must not make it open thousands of
/// sockets; real quorums have a handful of voters.
const MAX_VOTERS: usize = 128;
/// How long a signalled tail waits for the printer to finish the step it is writing. A stdout
/// that does not drain (a stopped pager, a pipe nobody reads) blocks the printer for good, and a
/// signal must still end the process.
const PRINTER_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TailFormat {
    /// `offset: N epoch: E timestamp: T size: S value: V`, one line a record.
    Text,
    /// One JSON object a line: offset, epoch, timestamp, size, value.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValueFormat {
    Hex,
    Base64,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// A comma-separated list of host:port pairs of the quorum's nodes.
    #[arg(long, value_name = "HOST:PORT[,...]")]
    bootstrap_controller: String,
    /// Kafka client properties: security.protocol=SSL with PEM ssl.* stores (the quorum
    /// listener asks for a client certificate, so a keystore is needed), request.timeout.ms.
    #[arg(long, value_name = "FILE")]
    command_config: Option<PathBuf>,
    /// Print the whole log from its start (default: records committed from now on).
    #[arg(long)]
    from_beginning: bool,
    #[arg(long, value_enum, default_value = "text")]
    format: TailFormat,
    /// How record values are printed (default: hex for text, base64 for json).
    #[arg(long, value_enum)]
    value_format: Option<ValueFormat>,
}

pub fn run(args: &TailArgs) -> Result<(), CliError> {
    let props = client_properties(args.command_config.as_deref())?;
    let security = peer_security(&props)?;
    let client = admin_client(
        "--bootstrap-controller",
        &args.bootstrap_controller,
        ENDPOINT_TYPE_CONTROLLER,
        &props,
    )?;
    let (cluster_id, nodes) = client.cluster_nodes().map_err(problem)?;
    let voters = voters(nodes).map_err(problem)?;
    let start = match args.from_beginning {
        true => Offset(0),
        false => Offset(
            client
                .describe()
                .map_err(problem)?
                .quorum
                .high_watermark
                .max(0),
        ),
    };
    let target = TailTarget {
        cluster_id,
        voters,
        security,
    };
    let printer = Printer {
        format: args.format,
        values: args.value_format.unwrap_or(match args.format {
            TailFormat::Text => ValueFormat::Hex,
            TailFormat::Json => ValueFormat::Base64,
        }),
    };
    actix_rt::System::new().block_on(follow(target, start, printer))
}

/// The voters a bootstrap node listed, checked: the list comes from the network, and the tail
/// dials every voter it names.
fn voters(nodes: Vec<(i32, Endpoint)>) -> Result<Vec<(NodeId, String)>, String> {
    if nodes.is_empty() {
        return Err("the bootstrap node lists no voters".into());
    }
    if nodes.len() > MAX_VOTERS {
        return Err(format!(
            "the bootstrap node lists {} voters (at most {MAX_VOTERS})",
            nodes.len()
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    nodes
        .into_iter()
        .map(|(id, endpoint)| match id {
            id if id < 0 => Err(format!("the bootstrap node lists a voter with id {id}")),
            id if !seen.insert(id) => Err(format!("the bootstrap node lists voter {id} twice")),
            id => Ok((NodeId(id), endpoint.to_string())),
        })
        .collect()
}

/// The quorum listener's TLS for the tail's peer connections, from the client properties.
fn peer_security(props: &ClientProperties) -> Result<ListenerSecurity, CliError> {
    let Some(tls) = &props.tls else {
        return Ok(ListenerSecurity::Plaintext);
    };
    let keystore: KeyStore = tls.keystore.clone().ok_or_else(|| {
        CliError::usage(
            "--command-config: the quorum listener asks for a client certificate: set \
             ssl.keystore.location (or ssl.keystore.certificate.chain and ssl.keystore.key)",
        )
    })?;
    Ok(ListenerSecurity::Ssl(TlsSettings {
        keystore,
        truststore: tls.truststore.clone(),
        check_hostname: tls.check_hostname,
        scoped_keys: Default::default(),
    }))
}

async fn follow(target: TailTarget, start: Offset, printer: Printer) -> Result<(), CliError> {
    let mut tail = Tail::start(target, start).await.map_err(problem)?;
    let (tx, rx) = mpsc::channel(PRINT_QUEUE);
    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, done) = std::sync::mpsc::channel::<()>();
    let printing = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            printer.run(rx, &stop);
            let _ = done_tx.send(());
        })
    };
    let (outcome, signalled) = tokio::select! {
        outcome = pump(&mut tail, tx) => (outcome, false),
        () = super::server::wait_for_signal() => (Ok(()), true),
    };
    if signalled {
        // A signal stops the output at the end of the step being written, not after the queue.
        stop.store(true, Ordering::Relaxed);
    }
    tail.stop().await;
    if !signalled || done.recv_timeout(PRINTER_GRACE).is_ok() {
        // The printer ends once the queue closes (or stdout did): nothing queued is lost.
        let _ = printing.join();
    }
    // Otherwise the printer is blocked on a stdout nobody reads; the process exits without it.
    outcome
}

/// Moves the tail's steps to the printer until stdout closes or the tail fails.
async fn pump(tail: &mut Tail, tx: mpsc::Sender<TailStep>) -> Result<(), CliError> {
    loop {
        let step = tail.next().await.map_err(|e| CliError {
            message: e.to_string(),
            exit_code: EXIT_PROBLEM,
        })?;
        if tx.send(step).await.is_err() {
            // stdout is gone (a closed pipe, `| head`): a normal end.
            return Ok(());
        }
    }
}

struct Printer {
    format: TailFormat,
    values: ValueFormat,
}

impl Printer {
    /// Writes each step as it arrives; returns when the queue closes, stdout fails, or `stop`
    /// is set (checked between steps).
    fn run(self, mut rx: mpsc::Receiver<TailStep>, stop: &AtomicBool) {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        while let Some(step) = rx.blocking_recv() {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let written = match step {
                TailStep::Records(records) => records
                    .iter()
                    .try_for_each(|r| writeln!(out, "{}", self.line(r)))
                    .and_then(|()| out.flush()),
                TailStep::Gap { from, to } => {
                    // Not eprintln!: a closed stderr must not panic the printer; the gap line
                    // is a notice, and the records go on either way.
                    let _ = writeln!(
                        std::io::stderr(),
                        "kraft tail: offsets {from} to {} are held only in a snapshot; \
                         continuing at {to}",
                        to.0 - 1
                    );
                    Ok(())
                }
            };
            if written.is_err() {
                return;
            }
        }
    }

    /// One record's line.
    pub fn line(&self, r: &TailRecord) -> String {
        let size = r.value.as_ref().map_or(-1, |v| v.len() as i64);
        let value = r.value.as_ref().map(|v| match self.values {
            ValueFormat::Hex => hex(v),
            ValueFormat::Base64 => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(v)
            }
        });
        match self.format {
            TailFormat::Text => format!(
                "offset: {} epoch: {} timestamp: {} size: {size} value: {}",
                r.offset,
                r.epoch,
                r.timestamp,
                value.as_deref().unwrap_or("null")
            ),
            TailFormat::Json => format!(
                "{{\"offset\":{},\"epoch\":{},\"timestamp\":{},\"size\":{size},\"value\":{}}}",
                r.offset,
                r.epoch,
                r.timestamp,
                value.map_or("null".to_string(), |v| format!("\"{v}\""))
            ),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Epoch;
    use bytes::Bytes;

    fn record(value: Option<&'static [u8]>) -> TailRecord {
        TailRecord {
            offset: Offset(42),
            epoch: Epoch(3),
            timestamp: 1_700_000_000_123,
            key: None,
            value: value.map(Bytes::from_static),
        }
    }

    fn node(id: i32, port: u16) -> (i32, Endpoint) {
        let host = "localhost".to_string();
        (id, Endpoint { host, port })
    }

    #[test]
    fn a_bootstrap_nodes_voter_list_is_checked_before_it_is_dialled() {
        assert_eq!(
            voters(vec![node(1, 9093), node(2, 9094)]),
            Ok(vec![
                (NodeId(1), "localhost:9093".to_string()),
                (NodeId(2), "localhost:9094".to_string())
            ])
        );
        let fails = |nodes, needle: &str| {
            let e = voters(nodes).unwrap_err();
            assert!(e.contains(needle), "{e}");
        };
        fails(vec![], "no voters");
        fails(vec![node(1, 1), node(-1, 2)], "id -1");
        fails(vec![node(1, 1), node(1, 2)], "voter 1 twice");
        let many = (0..=MAX_VOTERS as i32).map(|i| node(i, 1)).collect();
        fails(
            many,
            &format!("{} voters (at most {MAX_VOTERS})", MAX_VOTERS + 1),
        );
    }

    #[test]
    fn records_print_as_text_and_json_in_either_value_format() {
        let text = |values| Printer {
            format: TailFormat::Text,
            values,
        };
        let json = |values| Printer {
            format: TailFormat::Json,
            values,
        };
        let r = record(Some(b"hi\x00"));
        assert_eq!(
            text(ValueFormat::Hex).line(&r),
            "offset: 42 epoch: 3 timestamp: 1700000000123 size: 3 value: 686900"
        );
        assert_eq!(
            json(ValueFormat::Base64).line(&r),
            r#"{"offset":42,"epoch":3,"timestamp":1700000000123,"size":3,"value":"aGkA"}"#
        );
        assert_eq!(
            json(ValueFormat::Hex).line(&record(None)),
            r#"{"offset":42,"epoch":3,"timestamp":1700000000123,"size":-1,"value":null}"#
        );
        assert_eq!(
            text(ValueFormat::Base64).line(&record(None)),
            "offset: 42 epoch: 3 timestamp: 1700000000123 size: -1 value: null"
        );
    }
}
