//! Everything kraft keeps on disk, in Kafka's layout and formats (docs/protocol.md §16):
//!
//! ```text
//! <log dir>/meta.properties                 node identity          (MetaProperties)
//! <log dir>/<topic>-0/%020d.log             record batches v2      (ReplicatedLog, Segment)
//! <log dir>/<topic>-0/%020d.index           sparse offset index    (OffsetIndex)
//! <log dir>/<topic>-0/leader-epoch-checkpoint  epoch -> start offset (LeaderEpochCache)
//! <log dir>/<topic>-0/quorum-state          election state JSON    (QuorumStateFile)
//! ```
//!
//! Every file operation goes through the [`FileSystem`] seam ([`Fs`]), handed to each storage
//! object when it is built: [`RealFs`] in production, [`SimFs`] (a simulated disk with page
//! cache, power loss and fsync failures) in deterministic tests.
//!
//! Owns synchronous, blocking file IO and crash recovery. It must never be called from an
//! event loop that runs timers (the log store actor runs it on its own arbiter), never
//! acknowledges anything it has not fsynced when asked to flush, and never silently resets
//! state it cannot read: a corrupt state file is an error, a corrupt log tail is truncated with
//! a warning naming the file and byte position.

mod epoch_cache;
mod error;
mod fs;
pub mod fsutil;
mod index;
mod inspect;
mod log;
mod meta_properties;
mod quorum_state_file;
mod repair;
mod repair_point_file;
mod segment;
mod sim_fs;
mod snapshot;
mod snapshot_file;

pub use epoch_cache::{EpochEntry, LeaderEpochCache};
pub use error::StorageError;
pub use fs::{FileHandle, FileSystem, Fs, HandleReader, OpenMode, RealFs, real_fs};
pub use index::OffsetIndex;
pub use inspect::{Damage, LogInspection};
pub use log::{AppendInfo, LogConfig, OffsetPolicy, RecoveryReport, ReplicatedLog, Truncation};
pub use meta_properties::MetaProperties;
pub use quorum_state_file::{ElectionState, QuorumStateFile};
pub use repair::{RepairReport, repair_partition_in};
pub use repair_point_file::RepairPointFile;
pub use sim_fs::SimFs;
pub use snapshot::{
    BOOTSTRAP_SNAPSHOT_ID, copy_bootstrap_checkpoint, read_bootstrap_checkpoint,
    read_bootstrap_checkpoint_in, snapshot_file_name, write_bootstrap_checkpoint,
    write_bootstrap_checkpoint_in, write_joining_checkpoint, write_joining_checkpoint_in,
};
pub use snapshot_file::{
    SnapshotFile, SnapshotFileWriter, complete_partial, complete_partial_in,
    delete_snapshots_before, delete_snapshots_before_in, fetch_path, fetched_so_far,
    fetched_so_far_in, list_snapshots, list_snapshots_in, parse_snapshot_name, partial_path,
    promote_fetched_in, remove_fetch, remove_fetch_in, remove_other_fetches,
    remove_other_fetches_in, remove_snapshot_leftovers, remove_snapshot_leftovers_in,
    verify_fetched_in, write_partial_chunk, write_partial_chunk_in,
};

/// The partition directory of a topic inside a log dir (Kafka names it `<topic>-<partition>`;
/// KRaft has exactly one partition, 0).
pub fn partition_dir(log_dir: &std::path::Path, topic: &str) -> std::path::PathBuf {
    log_dir.join(format!("{topic}-0"))
}

/// The topic of Kafka's metadata log.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// The topic the standalone performance test server replicates.
pub const PERFORMANCE_TEST_TOPIC: &str = "__raft_performance_test";
