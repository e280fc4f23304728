//! The one error type of the crate.
//!
//! Errors fall in three families, and callers treat them differently:
//! - **caller errors** ([`StorageError::Compacted`], [`StorageError::Unavailable`],
//!   [`StorageError::InvalidRange`], [`StorageError::InvalidAppend`]): the request was
//!   wrong; the store is untouched and stays usable;
//! - **I/O errors** ([`StorageError::Io`]): the store may not know what reached the disk, so
//!   it *fails stop*: every later write returns [`StorageError::Failed`] until the store
//!   is dropped and reopened, and recovery decides what is durable;
//! - **corruption** ([`StorageError::Corruption`]): found on open or on read; open refuses
//!   to start rather than silently drop data.

use std::io;
use std::path::PathBuf;

use raft::Index;

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The index is below the log's first index: a snapshot covers it.
    #[error("index {index} is compacted (the log starts at {first_index})")]
    Compacted { index: Index, first_index: Index },

    /// The index is beyond the last entry the store holds.
    #[error("index {index} is beyond the last index {last_index}")]
    Unavailable { index: Index, last_index: Index },

    /// `lo > hi` in a range read.
    #[error("invalid range [{lo}, {hi})")]
    InvalidRange { lo: Index, hi: Index },

    /// The entries handed to `append` break a log invariant (gap, non-contiguous indexes,
    /// decreasing terms, disagreement with the snapshot point).
    #[error("append rejected: {0}")]
    InvalidAppend(String),

    /// An operating-system call failed. The store is now failed (see the module docs).
    #[error("I/O error: {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Stored bytes do not decode or do not match their checksum.
    #[error("corruption in {} at byte offset {offset}: {reason}", file.display())]
    Corruption {
        file: PathBuf,
        offset: u64,
        reason: String,
    },

    /// A write was refused because an earlier I/O error left the store in an unknown
    /// state. Drop the store and reopen it: recovery reads what really is on disk.
    #[error("store failed after an earlier I/O error ({0}); reopen it to recover")]
    Failed(String),

    /// The hard state handed to `save_hard_state` would break Raft's rules (term going
    /// backwards, a second vote in the same term). Nothing is written.
    #[error("hard state rejected: {0}")]
    InvalidHardState(String),

    /// Another process (or another store in this process) holds the directory's lock.
    #[error("directory {} is locked by another store", .0.display())]
    Locked(PathBuf),

    /// A snapshot-specific misuse or inconsistency (bad chunk offset, missing snapshot,
    /// no usable snapshot for the log).
    #[error("snapshot: {0}")]
    Snapshot(String),
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corruption(
        file: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        StorageError::Corruption {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// True for errors that put the store in the failed state.
    pub fn is_io(&self) -> bool {
        matches!(self, StorageError::Io { .. })
    }
}
