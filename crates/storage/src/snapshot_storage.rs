//! [`SnapshotStorage`]: the narrow interface the driver saves and loads state-machine
//! snapshots through, with a file implementation ([`FileSnapshotStore`]) and an in-memory one
//! for the simulator ([`MemSnapshotStore`]); and [`SnapshotSink`], where a snapshot from a
//! leader is written as it arrives (a temporary file, or memory in the simulator).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use raft::{Index, SnapshotMeta};

use crate::error::{Result, StorageError};
use crate::snapshot::{FileSnapshotStore, SnapshotWriter};

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

    /// Starts receiving the snapshot `meta` from a leader: its chunks are written to the
    /// returned sink as they arrive, not held in memory. Dropping the sink unfinished
    /// discards what it held.
    fn receive(&mut self, meta: &SnapshotMeta) -> Result<Box<dyn SnapshotSink>>;
}

/// A snapshot being received from a leader, written as it arrives (raft's
/// `Ready::snapshot_chunks`).
pub trait SnapshotSink: Send {
    /// Bytes written so far: where the next chunk starts.
    fn written(&self) -> u64;

    /// Appends `data`, which starts at `offset`: the bytes written so far (a chunk wholly
    /// within them is a retransmission and is ignored; a gap is an error).
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<()>;

    /// Seals the snapshot and returns its data (read back from where it was written), if
    /// `check` accepts it (the driver decodes it): then it is durable and in place, as
    /// [`SnapshotStorage::save`] leaves one (atomic: a crash before the end leaves what
    /// the store held). Refused, it is discarded and never loaded at a restart.
    fn finish(self: Box<Self>, check: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<Vec<u8>>;
}

/// A file being written by [`FileSnapshotStore::writer`].
struct FileSink(SnapshotWriter);

impl SnapshotSink for FileSink {
    fn written(&self) -> u64 {
        self.0.written()
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.0.write_chunk(offset, data)
    }

    fn finish(self: Box<Self>, check: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<Vec<u8>> {
        Ok(self.0.finish_checked(check)?.1)
    }
}

impl FileSnapshotStore {
    /// A sink writing a snapshot from a leader to a temporary file of this store, renamed
    /// into place when finished.
    pub fn sink(&self, meta: &SnapshotMeta) -> Result<Box<dyn SnapshotSink>> {
        Ok(Box::new(FileSink(self.writer(meta)?)))
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

    fn receive(&mut self, meta: &SnapshotMeta) -> Result<Box<dyn SnapshotSink>> {
        self.sink(meta)
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

/// Keeps `data` as the snapshot `meta`, and the newest [`MEM_RETAIN`].
fn mem_save(saved: &Mutex<Vec<SavedSnapshot>>, meta: &SnapshotMeta, data: Vec<u8>) {
    let mut saved = saved.lock().expect("not poisoned");
    saved.retain(|(m, _)| m.index != meta.index);
    saved.push((meta.clone(), Arc::new(data)));
    saved.sort_by_key(|(m, _)| m.index);
    let excess = saved.len().saturating_sub(MEM_RETAIN);
    saved.drain(..excess);
}

/// The simulator's sink: memory, kept (as `save` keeps it) when finished.
struct MemSink {
    meta: SnapshotMeta,
    data: Vec<u8>,
    saved: Arc<Mutex<Vec<SavedSnapshot>>>,
}

impl SnapshotSink for MemSink {
    fn written(&self) -> u64 {
        self.data.len() as u64
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        append_in_order(&mut self.data, offset, data)
    }

    fn finish(self: Box<Self>, check: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<Vec<u8>> {
        check(&self.data)?;
        mem_save(&self.saved, &self.meta, self.data.clone());
        Ok(self.data)
    }
}

/// A sink's rule for `write`: a chunk wholly within what `held` holds is a
/// retransmission, anything but the next bytes is an error.
pub fn append_in_order(held: &mut Vec<u8>, offset: u64, data: &[u8]) -> Result<()> {
    let written = held.len() as u64;
    if offset < written && offset + data.len() as u64 <= written {
        return Ok(());
    }
    if offset != written {
        return Err(StorageError::Snapshot(format!(
            "chunk at offset {offset} ({} bytes) but {written} bytes received so far",
            data.len()
        )));
    }
    held.extend_from_slice(data);
    Ok(())
}

impl SnapshotStorage for MemSnapshotStore {
    fn save(&mut self, meta: &SnapshotMeta, data: &[u8]) -> Result<()> {
        mem_save(&self.saved, meta, data.to_vec());
        Ok(())
    }

    fn receive(&mut self, meta: &SnapshotMeta) -> Result<Box<dyn SnapshotSink>> {
        Ok(Box::new(MemSink {
            meta: meta.clone(),
            data: Vec::new(),
            saved: Arc::clone(&self.saved),
        }))
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

    /// A snapshot from a leader goes to a temporary file chunk by chunk; refused by the
    /// check (it does not decode), it leaves nothing behind; accepted, it is in place.
    #[test]
    fn file_sinks_write_as_chunks_arrive_and_put_in_place_only_what_the_check_accepts() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = FileSnapshotStore::open(tmp.path()).unwrap();
        let files = |dir: &std::path::Path| {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n != "SNAPLOCK")
                .collect();
            names.sort();
            names
        };
        let mut sink = store.receive(&meta(5)).unwrap();
        sink.write(0, b"abc").unwrap();
        sink.write(0, b"abc").unwrap(); // a retransmission
        assert!(sink.write(7, b"x").is_err(), "a gap");
        sink.write(3, b"def").unwrap();
        assert_eq!(sink.written(), 6);
        assert!(
            files(tmp.path())[0].ends_with(".tmp"),
            "written to a temporary file"
        );
        let refused = sink.finish(&mut |_| Err(StorageError::Snapshot("no".into())));
        assert!(refused.is_err());
        assert!(files(tmp.path()).is_empty(), "{:?}", files(tmp.path()));
        assert_eq!(store.load_latest(1).unwrap(), None);

        let mut sink = store.receive(&meta(6)).unwrap();
        sink.write(0, b"abcdef").unwrap();
        let mut seen = Vec::new();
        let data = sink
            .finish(&mut |d| {
                seen = d.to_vec();
                Ok(())
            })
            .unwrap();
        assert_eq!(
            (data.as_slice(), seen.as_slice()),
            (&b"abcdef"[..], &b"abcdef"[..])
        );
        let (m, loaded) = store.load_latest(7).unwrap().unwrap();
        assert_eq!((m.index, loaded), (6, b"abcdef".to_vec()));
        // A sink dropped unfinished removes its file.
        let mut sink = store.receive(&meta(9)).unwrap();
        sink.write(0, b"partial").unwrap();
        drop(sink);
        assert_eq!(files(tmp.path()).len(), 1);
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
