//! kraft: KRaft, the Raft variant behind Apache Kafka's metadata quorum, in Rust.
//!
//! Layout:
//! - [`config`]: Kafka `.properties` files layered with `KRAFT_*` environment variables and
//!   `--override`s into a validated [`config::NodeConfig`].
//! - [`record`]: record batch v2, byte for byte, with KRaft's control records.
//! - [`storage`]: the durable log (segments, index, leader epoch checkpoint), `quorum-state` and
//!   `meta.properties`; synchronous file IO, no actors.
//! - [`cli`]: the `kraft` command line (server and operator tools).
//! - [`types`], [`uuid`]: the KRaft vocabulary's newtypes and Kafka's 128-bit ids.

#![deny(unsafe_code)]

pub mod actors;
pub mod cli;
pub mod config;
pub mod node;
pub mod protocol;
pub mod raft;
pub mod record;
pub mod state_machine;
pub mod storage;
pub mod telemetry;
pub mod types;
pub mod uuid;
