//! The actors that run a node: thin adapters that execute the protocol core's actions against
//! the disk and the network, and feed back what happened.
//!
//! ```text
//!   NodeHandle ── Propose/Describe/Shutdown ──► ReplicationDriver (owns raft::Replica)
//!                                                  │  ▲ IoDone (ElectionPersisted, Flushed, Failed)
//!                     Persist/Append/Truncate/Flush│  │
//!                                                  ▼  │
//!                                               LogStore (own Arbiter: ReplicatedLog, quorum-state)
//! ```
//!
//! The driver is the only actor that mutates the log, and it sends every IO request to the log
//! store from one address, so the log store's mailbox executes them in the order the core
//! emitted them. Actors must never make protocol decisions: those live in `crate::raft`.

pub mod driver;
pub mod inbound;
pub mod listener;
pub mod log_store;
pub mod messages;
pub mod node_supervisor;
pub mod outbound;
pub mod snapshot_writer;
pub mod supervision;
pub mod workload;

pub use driver::ReplicationDriver;
pub use log_store::LogStore;
