//! The node's snapshots: a [`FileSnapshotStore`] under `data_dir/snap`, with the snapshots the
//! node takes itself written and synced on a background thread, so a large state machine
//! does not stall the node loop for the length of a multi-megabyte write and `fdatasync`.
//!
//! Snapshots received from a leader are written to a temporary file of the store chunk by
//! chunk as they arrive (`receive`), and sealed synchronously on the last chunk: the
//! follower acknowledges the install only once it is durable. At most one background save runs at
//! a time (the driver waits for its outcome before taking the next snapshot), but it may
//! run while an install is saved: the [`FileSnapshotStore`] serializes the two saves' renames
//! and prunes itself (a failure on the install path would stop the node).

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use raft::{Index, SnapshotMeta};
use storage::{
    FileSnapshotStore, Result, SaveStarted, SnapshotSink, SnapshotStorage, StorageError,
};
use tokio::sync::mpsc;

use crate::handle::Event;

pub struct BackgroundSnapshots {
    store: Arc<FileSnapshotStore>,
    done_tx: std_mpsc::Sender<Result<SnapshotMeta>>,
    done_rx: std_mpsc::Receiver<Result<SnapshotMeta>>,
    /// Wakes the node loop when a save finishes, so it compacts without waiting for
    /// other traffic.
    wake: mpsc::Sender<Event>,
    /// The thread of the last background save: joined on drop, so a node that stopped
    /// writes nothing more to its data directory.
    saver: Option<std::thread::JoinHandle<()>>,
}

impl Drop for BackgroundSnapshots {
    fn drop(&mut self) {
        if let Some(t) = self.saver.take() {
            let _ = t.join();
        }
    }
}

impl BackgroundSnapshots {
    pub fn new(store: FileSnapshotStore, wake: mpsc::Sender<Event>) -> BackgroundSnapshots {
        let (done_tx, done_rx) = std_mpsc::channel();
        BackgroundSnapshots {
            store: Arc::new(store),
            done_tx,
            done_rx,
            wake,
            saver: None,
        }
    }
}

impl SnapshotStorage for BackgroundSnapshots {
    fn save(&mut self, meta: &SnapshotMeta, data: &[u8]) -> Result<()> {
        self.store.save(meta, data).map(|_| ())
    }

    fn load_latest(&self, log_first_index: Index) -> Result<Option<(SnapshotMeta, Vec<u8>)>> {
        self.store.load_latest(log_first_index)
    }

    fn compaction_floor(&self) -> Result<Option<Index>> {
        self.store.compaction_floor()
    }

    fn start_save(&mut self, meta: &SnapshotMeta, data: Bytes) -> Result<SaveStarted> {
        let store = Arc::clone(&self.store);
        let done = self.done_tx.clone();
        let wake = self.wake.clone();
        let meta = meta.clone();
        // At most one save is in flight: the last one has reported, so this returns at
        // once.
        if let Some(t) = self.saver.take() {
            let _ = t.join();
        }
        let saver = std::thread::Builder::new()
            .name("snapshot-save".into())
            .spawn(move || {
                let started = Instant::now();
                let result = store.save(&meta, &data).map(|_| meta.clone());
                match &result {
                    Ok(_) => tracing::info!(
                        index = meta.index,
                        bytes = data.len(),
                        "snapshot saved in {:?}",
                        started.elapsed()
                    ),
                    Err(e) => tracing::warn!(
                        index = meta.index,
                        "snapshot save failed (the log is kept): {e}"
                    ),
                }
                let _ = done.send(result);
                // Never blocks (the loop joins this thread): a full channel means the
                // loop is busy and polls the outcome at its next batch anyway; a closed
                // one, that it is gone.
                let _ = wake.try_send(Event::SnapshotSaved);
            })
            .map_err(|e| {
                StorageError::Snapshot(format!("cannot start the snapshot writer: {e}"))
            })?;
        self.saver = Some(saver);
        Ok(SaveStarted::Pending)
    }

    fn finished_save(&mut self) -> Option<Result<SnapshotMeta>> {
        self.done_rx.try_recv().ok()
    }

    /// A snapshot from the leader goes to a temporary file of the store as it arrives.
    fn receive(&mut self, meta: &SnapshotMeta) -> Result<Box<dyn SnapshotSink>> {
        self.store.sink(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(index: Index) -> SnapshotMeta {
        SnapshotMeta {
            index,
            term: 1,
            membership: raft::Membership::new([1, 2, 3]),
        }
    }

    /// A background save of a snapshot the node took and the synchronous save of one
    /// installed from the leader, at the same time, many times: both must succeed (an
    /// error on the install path stops the node).
    #[test]
    fn background_and_install_saves_race_without_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FileSnapshotStore::open(tmp.path()).unwrap();
        let (wake, _wake_rx) = mpsc::channel(1024);
        let mut snaps = BackgroundSnapshots::new(store, wake);
        let data = Bytes::from(vec![7u8; 4096]);
        for i in 1..=200u64 {
            let started = snaps.start_save(&meta(2 * i), data.clone()).unwrap();
            assert!(matches!(started, SaveStarted::Pending));
            if let Err(e) = snaps.save(&meta(2 * i + 1), &data) {
                panic!("round {i}: install save failed: {e}");
            }
            let deadline = Instant::now() + std::time::Duration::from_secs(10);
            let done = loop {
                if let Some(r) = snaps.finished_save() {
                    break r;
                }
                assert!(
                    Instant::now() < deadline,
                    "round {i}: background save hangs"
                );
                std::thread::sleep(std::time::Duration::from_micros(100));
            };
            if let Err(e) = done {
                panic!("round {i}: background save failed: {e}");
            }
        }
        assert_eq!(snaps.compaction_floor().unwrap(), Some(400));
    }
}
