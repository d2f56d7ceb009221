//! Executing the protocol core's actions against storage: the one implementation that both the
//! actors and the deterministic simulation run.
//!
//! - [`LogExecutor`]: the log and `quorum-state` (Persist, Append, Truncate, Flush, reads for
//!   Fetch, snapshot install's log reset, retention cleaning, and recovery at start).
//! - [`SnapshotExecutor`]: the state machine and the snapshot files (applying committed
//!   batches, writing snapshots, serving and writing FetchSnapshot chunks, installing a fetched
//!   snapshot).
//!
//! Owns how an action is carried out and what its completion reports; it must never decide what
//! to do (the core does) and never wait on anything but the disk. The actors wrap these types
//! in mailboxes; the simulation calls them directly over a simulated disk, so what the
//! simulation proves is what production runs.

mod log_executor;
mod recovered;
mod snapshot_executor;

pub use log_executor::{LogExecutor, RetentionPolicy};
pub use recovered::Recovered;
pub use snapshot_executor::{InstallError, Installed, SnapshotExecutor, SnapshotPolicy};
