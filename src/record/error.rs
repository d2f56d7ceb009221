//! The typed failures of record batch decoding and building.

/// Why bytes could not be read as (or built into) a record batch v2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("short batch: need {needed} bytes, have {available}")]
    Short { needed: usize, available: usize },
    #[error("bad batch length field {length} (a batch is 61..={max} bytes)", max = super::MAX_BATCH_BYTES)]
    BadLength { length: i64 },
    #[error("bad magic {0} (only record batch v2 is supported)")]
    BadMagic(i8),
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error(
        "bad record count {count} (last offset delta {last_offset_delta}, {body_bytes} record bytes)"
    )]
    BadRecordCount {
        count: i32,
        last_offset_delta: i32,
        body_bytes: usize,
    },
    #[error("bad offsets: base offset {base_offset} with last offset delta {last_offset_delta}")]
    BadOffset {
        base_offset: i64,
        last_offset_delta: i32,
    },
    #[error("unsupported compression codec {0}")]
    UnsupportedCompression(u8),
    #[error("cannot decompress the {codec} records: {reason}")]
    Decompress { codec: &'static str, reason: String },
    #[error("malformed record {index}: {reason}")]
    BadRecord { index: usize, reason: &'static str },
    #[error("{0} bytes left over after the last record")]
    TrailingBytes(usize),
    #[error("malformed control record: {0}")]
    BadControlRecord(String),
    #[error("batch would exceed {limit} bytes")]
    BatchTooLarge { limit: usize },
    #[error("a batch needs at least one record")]
    EmptyBatch,
    #[error("a control batch holds only control records, a data batch none")]
    WrongRecordKind,
    #[error("not a batch a client may append: {0}")]
    NotAClientBatch(&'static str),
    #[error("record {index} has offset delta {found}, expected {index}")]
    OffsetDeltaOutOfPlace { index: usize, found: i32 },
    #[error("the batch header's max timestamp {header} is not its records' largest, {records}")]
    MaxTimestampMismatch { header: i64, records: i64 },
}
