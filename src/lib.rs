//! kraft: KRaft, the Raft variant behind Apache Kafka's metadata quorum, in Rust.
//!
//! Layout:
//! - [`config`]: Kafka `.properties` files layered with `KRAFT_*` environment variables and
//!   `--override`s into a validated [`config::NodeConfig`].
//! - [`record`]: record batch v2, byte for byte, with KRaft's control records.
//! - [`storage`]: the durable log (segments, index, leader epoch checkpoint), `quorum-state` and
//!   `meta.properties`; synchronous file IO, no actors.
//! - [`raft`]: the protocol core, pure and deterministic: inputs in, actions out.
//! - [`executor`]: carries out the core's actions on storage; the same code under the actors
//!   and the simulation.
//! - [`actors`]: the actix node (replication driver, log store, peer connections, snapshot
//!   writer, workload producer, supervision); [`node`] is its public handle, [`protocol`] the
//!   peer wire format.
//! - [`state_machine`]: the contract an application's replicated state implements.
//! - [`cli`]: the `kraft` command line (server and operator tools).
//! - [`types`], [`uuid`]: the KRaft vocabulary's newtypes and Kafka's 128-bit ids.

#![deny(unsafe_code)]

pub mod actors;
pub mod cli;
pub mod config;
pub mod executor;
pub mod node;
pub mod protocol;
pub mod raft;
pub mod record;
pub mod state_machine;
pub mod storage;
pub mod telemetry;
pub mod types;
pub mod uuid;
