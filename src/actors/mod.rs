//! The actors that run a node: thin adapters that execute the protocol core's actions against
//! the disk and the network, and feed back what happened.
//!
//! ```text
//!   NodeHandle ───────┐ Propose, Describe
//!   WorkloadProducer ─┤
//!                     ▼                     SendRequest
//!            ReplicationDriver ─────────────────────────────► OutboundConnection ──► peer
//!           (owns raft::Replica) ◄───────────────────────────── (one per peer)
//!             │  ▲      │    ▲   ▲                PeerEvent
//!          (1)│  │(2)   │(3) │(4)│ InboundRequest
//!             ▼  │      ▼    │   └───────────── InboundConnection ◄── peer
//!          LogStore   SnapshotWriter            (one per peer socket the Listener accepts)
//!     (own Arbiter:   (own Arbiter: the state   ▲ SendResponse, from the driver, the
//!      the log and     machine, snapshot files) │ LogStore (Fetch answers) and the
//!      quorum-state)   reads through ReadLog    │ SnapshotWriter (FetchSnapshot answers)
//!
//!   (1) Persist, AppendBatches, TruncateTo, FlushLog, CleanLog, ResetLog, ClearRepairPoint,
//!       ReadForFetch, Rebuild
//!   (2) IoDone: ElectionPersisted, Flushed, LogStartAdvanced, LogReset, Recovered, Restarted,
//!       Failed (in request order)
//!   (3) CommittedTo, WriteSnapshotChunk, InstallSnapshot, ReadSnapshotChunk,
//!       ForgetSnapshotsBefore
//!   (4) SnapshotEvent: Written, Installed
//!
//!   KafkaConnection (one per Kafka client socket): Describe and ProposeBatch to the driver,
//!   ReadLog to the LogStore; it waits on the node's commit events for long polls.
//!
//!   NodeSupervisor starts them (the driver starts the outbound connections, the Listener the
//!   inbound ones), counts their restarts, and restarts the whole node when one spends its
//!   budget; it stops the driver (Shutdown, Stop) and closes the log (CloseLog) on the way down.
//! ```
//!
//! The driver is the only actor that mutates the log, and it sends every IO request to the log
//! store from one address, so the log store's mailbox executes them in the order the core
//! emitted them. Actors must never make protocol decisions: those live in `crate::raft`. See
//! `docs/architecture.md` §4–§6.

pub mod connection_slots;
pub mod driver;
pub mod inbound;
pub mod kafka_connection;
pub mod kafka_service;
pub mod listener;
pub mod log_store;
pub mod messages;
pub mod node_supervisor;
pub mod outbound;
pub mod snapshot_writer;
pub mod supervision;
#[cfg(feature = "fault-injection")]
pub mod tamper;
pub mod workload;

pub use driver::ReplicationDriver;
pub use log_store::LogStore;
