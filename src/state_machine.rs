//! The state machine contract between a node and the application it replicates for, and the
//! standalone server's own state machine.
//!
//! A state machine is handed every committed data record in log order, writes its whole state
//! into a snapshot when asked, and is rebuilt from a snapshot before any later record. This
//! module owns that contract and `WorkloadState`; it must never touch the log or the network.

use bytes::{Bytes, BytesMut};

use crate::record::{RecordBatch, RecordError};
use crate::storage::{SnapshotFile, SnapshotFileWriter, StorageError};
use crate::types::Offset;

/// What an application replicated by a node implements. The node's snapshot writer owns it
/// (on its own thread), hands it every committed batch in order, asks it for snapshots, and
/// rebuilds it from the latest snapshot after a restart.
pub trait StateMachine: Send + 'static {
    /// Applies one committed batch (control batches are passed too; most ignore them).
    fn apply(&mut self, batch: &RecordBatch) -> Result<(), RecordError>;
    /// The offset after the last batch applied: a snapshot of this state ends here.
    fn applied_offset(&self) -> Offset;
    /// Writes the whole state as record values into `writer`.
    fn write_snapshot(&self, writer: &mut SnapshotFileWriter) -> Result<(), StorageError>;
    /// Replaces the state with the one in `snapshot`, which ends at `snapshot.id.offset`.
    fn load_snapshot(&mut self, snapshot: &SnapshotFile) -> Result<(), StorageError>;
    /// The state as `Any`, so that its owner can read it back (`NodeHandle::query_state`).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// Makes an empty state machine: at start, and again whenever the node rebuilds it from disk.
#[derive(Clone)]
pub struct StateMachineFactory(pub std::sync::Arc<dyn Fn() -> Box<dyn StateMachine> + Send + Sync>);

impl StateMachineFactory {
    pub fn new(make: impl Fn() -> Box<dyn StateMachine> + Send + Sync + 'static) -> Self {
        StateMachineFactory(std::sync::Arc::new(make))
    }

    pub fn make(&self) -> Box<dyn StateMachine> {
        (self.0)()
    }
}

impl Default for StateMachineFactory {
    /// The standalone server's [`WorkloadState`].
    fn default() -> Self {
        StateMachineFactory::new(|| Box::new(WorkloadState::default()))
    }
}

impl std::fmt::Debug for StateMachineFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateMachineFactory")
    }
}

/// The standalone server's state: how many workload records and bytes were committed, and a
/// CRC-32C chained over every record value in order. A snapshot and a replay of the log must
/// agree on all three exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkloadState {
    pub records: u64,
    pub bytes: u64,
    pub checksum: u32,
    pub applied: Offset,
}

/// Bytes of the one snapshot value: records, bytes, checksum, applied offset (big-endian).
const ENCODED_LEN: usize = 8 + 8 + 4 + 8;

impl WorkloadState {
    /// Folds one record value into the state.
    pub fn apply_value(&mut self, value: &[u8]) {
        self.records += 1;
        self.bytes += value.len() as u64;
        self.checksum = crc32c::crc32c_append(self.checksum, value);
    }

    fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(ENCODED_LEN);
        out.extend_from_slice(&self.records.to_be_bytes());
        out.extend_from_slice(&self.bytes.to_be_bytes());
        out.extend_from_slice(&self.checksum.to_be_bytes());
        out.extend_from_slice(&self.applied.0.to_be_bytes());
        out.freeze()
    }

    fn decode(value: &[u8]) -> Option<WorkloadState> {
        if value.len() != ENCODED_LEN {
            return None;
        }
        let u64_at = |i: usize| u64::from_be_bytes(value[i..i + 8].try_into().expect("8 bytes"));
        Some(WorkloadState {
            records: u64_at(0),
            bytes: u64_at(8),
            checksum: u32::from_be_bytes(value[16..20].try_into().expect("4 bytes")),
            applied: Offset(u64_at(20) as i64),
        })
    }
}

impl StateMachine for WorkloadState {
    fn apply(&mut self, batch: &RecordBatch) -> Result<(), RecordError> {
        if !batch.is_control() {
            for record in batch.decode_records()? {
                self.apply_value(record.value.as_deref().unwrap_or(&[]));
            }
        }
        self.applied = batch.next_offset();
        Ok(())
    }

    fn applied_offset(&self) -> Offset {
        self.applied
    }

    fn write_snapshot(&self, writer: &mut SnapshotFileWriter) -> Result<(), StorageError> {
        writer.append([self.encode()])
    }

    fn load_snapshot(&mut self, snapshot: &SnapshotFile) -> Result<(), StorageError> {
        let mut values = Vec::new();
        snapshot.for_each_value(|v| values.push(v))?;
        let state = match values.as_slice() {
            [one] => WorkloadState::decode(one),
            _ => None,
        };
        let state = state
            .filter(|s| s.applied == snapshot.id.offset)
            .ok_or_else(|| {
                StorageError::corrupt(&snapshot.path, "not a snapshot of the workload state")
            })?;
        *self = state;
        Ok(())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A state machine that keeps nothing but how far it has applied: for a node that only
/// replicates the log and reads it back (`kraft tail`). Its snapshots hold no values, and it
/// loads anyone's snapshot, whatever the application wrote into it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OffsetOnlyState {
    pub applied: Offset,
}

impl StateMachine for OffsetOnlyState {
    fn apply(&mut self, batch: &RecordBatch) -> Result<(), RecordError> {
        self.applied = batch.next_offset();
        Ok(())
    }

    fn applied_offset(&self) -> Offset {
        self.applied
    }

    fn write_snapshot(&self, _: &mut SnapshotFileWriter) -> Result<(), StorageError> {
        Ok(())
    }

    fn load_snapshot(&mut self, snapshot: &SnapshotFile) -> Result<(), StorageError> {
        self.applied = snapshot.id.offset;
        Ok(())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
