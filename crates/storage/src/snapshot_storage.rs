//! [`SnapshotStorage`]: the narrow interface the driver saves and loads state-machine
//! snapshots through, with a file implementation ([`FileSnapshotStore`]) and an in-memory one
//! for the simulator ([`MemSnapshotStore`]).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use raft::{Index, SnapshotMeta};

use crate::error::{Result, StorageError};
use crate::snapshot::FileSnapshotStore;

/// Durable snapshots of the state machine.
///
/// Contract: [`save`](SnapshotStorage::save) is atomic and durable on return — after a
/// crash, the store holds either the new snapshot or what it held before, never a part.
/// The driver compacts the log only up to [`compaction_floor`](SnapshotStorage::compaction_floor),
/// so [`load_latest`](SnapshotStorage::load_latest) can fall back to an older snapshot if
/// the newest turns out unreadable.
pub trait SnapshotStorage {
    fn save(&mut self, meta: &SnapshotMeta, data: &[u8]) -> Result<()>;

    /// The newest readable snapshot the log continues (`log_first_index <= index + 1`);
    /// `Ok(None)` when there is none and the log starts at 1; an error when the log starts
    /// later and no snapshot covers the gap.
    fn load_latest(&self, log_first_index: Index) -> Result<Option<(SnapshotMeta, Vec<u8>)>>;

    /// The index of the oldest snapshot retained (`None`: no snapshot yet).
    fn compaction_floor(&self) -> Result<Option<Index>>;

    /// Starts saving a snapshot the node took itself. By default it is saved at once
    /// ([`SaveStarted::Done`]); a store that writes in the background returns
    /// [`SaveStarted::Pending`] and reports through [`finished_save`](Self::finished_save),
    /// so a large snapshot's write and `fdatasync` do not stall the node. At most one save
    /// is in flight: the driver starts the next only after the last finished.
    fn start_save(&mut self, meta: &SnapshotMeta, data: Bytes) -> Result<SaveStarted> {
        self.save(meta, &data)?;
        Ok(SaveStarted::Done)
    }

    /// The outcome of the background save in flight, once it is known (taken once).
    fn finished_save(&mut self) -> Option<Result<SnapshotMeta>> {
        None
    }
}

/// What [`SnapshotStorage::start_save`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveStarted {
    /// Durable already.
    Done,
    /// Being written; ask `finished_save` later.
    Pending,
}

impl SnapshotStorage for FileSnapshotStore {
    fn save(&mut self, meta: &SnapshotMeta, data: &[u8]) -> Result<()> {
        FileSnapshotStore::save(self, meta, data).map(|_| ())
    }

    fn load_latest(&self, log_first_index: Index) -> Result<Option<(SnapshotMeta, Vec<u8>)>> {
        FileSnapshotStore::load_latest(self, log_first_index)
    }

    fn compaction_floor(&self) -> Result<Option<Index>> {
        FileSnapshotStore::compaction_floor(self)
    }
}

/// Snapshots in memory, shared between clones: a simulator keeps one handle while the
/// node holding the other "crashes", and gives it to the restarted node. Saves are atomic,
/// so a crash never loses a saved snapshot. Keeps the newest two, like the file store.
#[derive(Clone, Debug, Default)]
pub struct MemSnapshotStore {
    saved: Arc<Mutex<Vec<SavedSnapshot>>>,
    /// Model a background writer: `start_save` returns `Pending` and the save lands (and
    /// is reported) at the next `finished_save`. A crash in between loses it, as it would
    /// lose a half-written file.
    deferred: bool,
    in_flight: Option<(SnapshotMeta, Bytes)>,
}

const MEM_RETAIN: usize = 2;

type SavedSnapshot = (SnapshotMeta, Arc<Vec<u8>>);

impl MemSnapshotStore {
    pub fn new() -> MemSnapshotStore {
        MemSnapshotStore::default()
    }

    /// Saves of snapshots the node took itself finish one step later (see the field).
    pub fn with_deferred_saves(mut self, deferred: bool) -> MemSnapshotStore {
        self.deferred = deferred;
        self
    }

    /// How many snapshots are held.
    pub fn len(&self) -> usize {
        self.saved.lock().expect("not poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SnapshotStorage for MemSnapshotStore {
    fn save(&mut self, meta: &SnapshotMeta, data: &[u8]) -> Result<()> {
        let mut saved = self.saved.lock().expect("not poisoned");
        saved.retain(|(m, _)| m.index != meta.index);
        saved.push((meta.clone(), Arc::new(data.to_vec())));
        saved.sort_by_key(|(m, _)| m.index);
        let excess = saved.len().saturating_sub(MEM_RETAIN);
        saved.drain(..excess);
        Ok(())
    }

    fn load_latest(&self, log_first_index: Index) -> Result<Option<(SnapshotMeta, Vec<u8>)>> {
        let saved = self.saved.lock().expect("not poisoned");
        match saved.last() {
            Some((meta, _)) if log_first_index > meta.index + 1 => {
                Err(StorageError::Snapshot(format!(
                    "snapshot at index {} but the log starts at {log_first_index}",
                    meta.index
                )))
            }
            Some((meta, data)) => Ok(Some((meta.clone(), data.as_ref().clone()))),
            None if log_first_index > 1 => Err(StorageError::Snapshot(format!(
                "no snapshot but the log starts at {log_first_index}"
            ))),
            None => Ok(None),
        }
    }

    fn compaction_floor(&self) -> Result<Option<Index>> {
        let saved = self.saved.lock().expect("not poisoned");
        Ok(saved.first().map(|(m, _)| m.index))
    }

    fn start_save(&mut self, meta: &SnapshotMeta, data: Bytes) -> Result<SaveStarted> {
        if !self.deferred {
            self.save(meta, &data)?;
            return Ok(SaveStarted::Done);
        }
        self.in_flight = Some((meta.clone(), data));
        Ok(SaveStarted::Pending)
    }

    fn finished_save(&mut self) -> Option<Result<SnapshotMeta>> {
        let (meta, data) = self.in_flight.take()?;
        Some(self.save(&meta, &data).map(|()| meta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(index: Index) -> SnapshotMeta {
        SnapshotMeta {
            index,
            term: 1,
            membership: Default::default(),
        }
    }

    #[test]
    fn mem_store_keeps_the_newest_two_and_survives_clones() {
        let mut a = MemSnapshotStore::new();
        let b = a.clone();
        assert_eq!(b.load_latest(1).unwrap(), None);
        assert!(
            b.load_latest(2).is_err(),
            "a compacted log needs a snapshot"
        );
        for i in [5, 10, 15] {
            a.save(&meta(i), &[i as u8]).unwrap();
        }
        assert_eq!(b.len(), 2);
        assert_eq!(b.compaction_floor().unwrap(), Some(10));
        let (m, data) = b.load_latest(16).unwrap().unwrap();
        assert_eq!((m.index, data), (15, vec![15]));
        assert!(b.load_latest(17).is_err(), "entries 16..17 missing");
    }
}
