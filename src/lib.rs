//! kraft: KRaft, the Raft variant behind Apache Kafka's metadata quorum, in Rust.
//!
//! Layout:
//! - [`config`]: Kafka `.properties` files layered with `KRAFT_*` environment variables and
//!   `--override`s into a validated [`config::NodeConfig`]; a tool's Kafka client properties
//!   ([`config::ClientProperties`]).
//! - [`record`]: record batch v2, byte for byte, with KRaft's control records.
//! - [`storage`]: the durable log (segments, index, leader epoch checkpoint), `quorum-state`,
//!   `meta.properties` and snapshot files; recovery and repair; synchronous file IO through a
//!   file-system seam (the real disk, or the simulated one tests crash), no actors.
//! - [`raft`]: the protocol core, pure and deterministic: inputs in, actions out (group commit
//!   and every append's outcome included; a dynamic quorum's voter sets along the log and its
//!   voter changes).
//! - [`executor`]: carries out the core's actions on storage; the same code under the actors
//!   and the simulation.
//! - [`actors`]: the actix node (replication driver, log store, peer connections, listener,
//!   snapshot writer, workload producer, node supervisor and supervision); [`node`] is its
//!   public handle, [`protocol`] the peer wire format.
//! - [`metrics`]: the node's metrics (Kafka's raft metrics and kraft's own), recorded by the
//!   actors, read by `NodeHandle::metrics` and served in the Prometheus format over HTTP.
//! - [`kafka`]: the Kafka-protocol face on the same listener (framing, the bounds walk before
//!   decoding, request parsing, pure answers, the checks before a voter change reaches the
//!   core); its connection actor is `actors::kafka_connection`.
//! - [`security`]: mutual TLS between peers (rustls) and the rule binding a node id to its
//!   certificate (`kraft://node/<id>`); the same PEM stores as a tool's client TLS.
//! - [`state_machine`]: the contract an application's replicated state implements.
//! - [`tail`]: following the committed log with no node id (a node on an in-memory disk), the
//!   library side of `kraft tail`.
//! - [`cli`]: the `kraft` command line (server, operator tools, benchmark; `kraft quorum`, a
//!   small synchronous Kafka admin client with Kafka's describe formats, add-controller and
//!   remove-controller, and a ratatui dashboard; `kraft dump-log` in Kafka's lines;
//!   `kraft tail`); [`telemetry`] sets up logging for it.
//! - [`types`], [`uuid`]: the KRaft vocabulary's newtypes and Kafka's 128-bit ids.
//!
//! The design is described in `docs/architecture.md`, the protocol rules in `docs/protocol.md`,
//! what is durable when in `docs/durability.md`, what Kafka clients get in
//! `docs/kafka-face.md`, and the operator tools and observers in `docs/tools.md`.

#![deny(unsafe_code)]

pub mod actors;
pub mod cli;
pub mod config;
pub mod executor;
#[doc(hidden)]
pub mod fuzzing;
pub mod kafka;
pub mod metrics;
pub mod node;
pub mod protocol;
pub mod raft;
pub mod record;
pub mod security;
pub mod state_machine;
pub mod storage;
pub mod tail;
pub mod telemetry;
pub mod types;
pub mod uuid;
