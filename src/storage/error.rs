//! The storage layer's error type.

use std::io;
use std::path::{Path, PathBuf};

use crate::record::RecordError;
use crate::types::{Epoch, Offset};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("invalid batch #{index} in append: {source}")]
    InvalidBatch {
        index: usize,
        #[source]
        source: RecordError,
    },
    #[error("{0} bytes after the last complete batch in append")]
    PartialBatch(usize),
    #[error("batch base offset {got} does not follow the log end offset {expected}")]
    NonContiguous { expected: Offset, got: Offset },
    #[error("batch epoch {got} is below the log's latest epoch {latest}")]
    EpochRegression { latest: Epoch, got: Epoch },
    #[error("batch epoch {0} is negative")]
    NegativeEpoch(Epoch),
    #[error("offset {offset} is outside the log [{start}, {end}]")]
    OffsetOutOfRange {
        offset: Offset,
        start: Offset,
        end: Offset,
    },
    #[error("the log failed earlier ({0}) and must be reopened")]
    Failed(String),
    /// Damage recovery must not repair on its own; nothing was changed.
    #[error("{0}")]
    Damaged(super::inspect::Damage),
}

impl StorageError {
    pub fn io(path: &Path, source: io::Error) -> StorageError {
        StorageError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn corrupt(path: &Path, reason: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Attaches the path to an IO result.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T, StorageError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T, StorageError> {
        self.map_err(|e| StorageError::io(path, e))
    }
}
