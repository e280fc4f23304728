//! storage — the durable side of raftkv: the Raft log, the hard state and snapshots.
//!
//! - [`LogStore`]: the trait the driver persists each `Ready` through, with the durability
//!   contract in its docs;
//! - [`MemLogStore`]: in memory, with an optional durability model that a deterministic
//!   simulator uses to lose unsynced writes on a simulated crash;
//! - [`FileLogStore`]: a segmented write-ahead log with CRC32C-framed records, a
//!   double-slot hard state file, and recovery that cuts torn tails but refuses corruption;
//! - [`FileSnapshotStore`]: CRC-checked snapshot files, streamed in chunks;
//! - [`SnapshotStorage`]: what the driver needs of snapshots, for files and (in the
//!   simulator) memory.
//!
//! Byte layouts and recovery rules: `crates/storage/README.md`.

mod codec;
pub mod error;
pub mod fault;
pub mod file_store;
mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
mod hard_state;
pub mod log_store;
pub mod mem_store;
mod record;
mod segment;
pub mod snapshot;
pub mod snapshot_storage;

#[cfg(feature = "testing")]
pub mod conformance;

pub use codec::{decode_membership_bytes, encode_membership};
pub use error::{Result, StorageError};
pub use fault::FaultInjector;
pub use file_store::{
    FileLogOptions, FileLogStore, RecoveryReport, TornTail, DEFAULT_SEGMENT_BYTES,
};
pub use log_store::LogStore;
pub use mem_store::MemLogStore;
pub use snapshot::{FileSnapshotStore, SnapshotInfo, SnapshotReader, SnapshotWriter};
pub use snapshot_storage::{
    append_in_order, MemSnapshotStore, SaveStarted, SnapshotSink, SnapshotStorage,
};

/// Writes a small file durably, for files other crates keep beside the log (the server's
/// cluster identity): `dir` is created if missing (its new levels' parents synced), then
/// `name.tmp` is written and synced, renamed over `name`, and `dir` synced. A crash leaves
/// either the old file or the new one, and a stray `name.tmp` at worst.
pub fn write_file_durably(
    dir: &std::path::Path,
    name: &str,
    contents: &[u8],
) -> Result<std::path::PathBuf> {
    fsutil::ensure_dir(dir)?;
    fsutil::write_file_atomically(dir, name, contents, &None)
}
