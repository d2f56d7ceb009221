//! Kafka's record batch v2 ("magic 2"), byte for byte: the unit of the replicated log, of fetch
//! responses and of snapshot files.
//!
//! Owns encoding ([`BatchBuilder`]), decoding and validation ([`RecordBatch`], [`BatchIter`]),
//! the control records KRaft writes ([`ControlRecord`]), and the lenient reading operator tools
//! need ([`InspectedBatch`]: a batch shown whatever its CRC says). Decoding never panics on
//! untrusted bytes and never allocates more than the bytes it was given can justify; every
//! failure is a [`RecordError`]. It must never do IO: callers hand it bytes.
//!
//! Layout (all integers big-endian), see docs/protocol.md §15:
//! ```text
//! baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 | crc u32 |
//! attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 |
//! producerId i64 | producerEpoch i16 | baseSequence i32 | recordsCount i32 | records...
//!                                                  CRC-32C covers attributes .. end
//! ```

mod batch;
mod builder;
mod compression;
mod control;
mod cursor;
mod entry;
mod error;
mod inspect;
mod restamp;

pub use batch::{BatchHeader, BatchIter, Compression, RecordBatch, Records, next_batch_size};
pub use builder::{BatchBuilder, BatchKind};
pub use compression::{MAX_DECOMPRESSED_BYTES, decompress};
pub use control::{
    ControlRecord, ControlRecordType, KRaftVersionRecord, LeaderChangeMessage,
    SnapshotFooterRecord, SnapshotHeaderRecord, VoterEndpoint, VoterRecord, VotersRecord,
};
pub use entry::{Record, RecordHeader};
pub use error::RecordError;
pub use inspect::{EndTxnMarker, InspectedBatch, LegacyEntry, NO_SEQUENCE, increment_sequence};
pub use restamp::{check_client_header, restamp};

/// Bytes before `batchLength`'s coverage starts: baseOffset (8) + batchLength (4).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the batch header, up to and including `recordsCount`.
pub const RECORD_BATCH_OVERHEAD: usize = 61;
/// The only batch format KRaft writes or accepts.
pub const MAGIC_V2: i8 = 2;
/// Largest batch accepted from disk or the network: Kafka's `MAX_BATCH_SIZE_BYTES` (8 MiB).
/// A larger length field is treated as corruption, so a flipped bit cannot make us allocate.
pub const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Smallest possible encoded record (length, attributes, timestampDelta, offsetDelta, keyLength,
/// valueLength, headersCount: one byte each). Bounds how many records a batch can claim.
pub const MIN_RECORD_BYTES: usize = 7;
/// Most elements (records, headers, voters...) a decoder reserves room for before decoding them:
/// a count field is untrusted, and an in-memory element is many times its smallest encoding, so
/// beyond this the vector grows only as elements actually decode.
pub(crate) const MAX_PREALLOCATED_ELEMENTS: usize = 1024;
/// Position of the CRC field and of the first byte it covers.
pub(crate) const CRC_OFFSET: usize = 17;
pub(crate) const ATTRIBUTES_OFFSET: usize = 21;
