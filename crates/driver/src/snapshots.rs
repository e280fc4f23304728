//! The driver's side of snapshots (§7 of the paper): taking them as the log grows,
//! installing the leader's, and starting from the latest one.
//!
//! Order of durable steps, so a crash at any point loses nothing:
//! - taking: save the snapshot (atomic, durable), *then* compact the log, never past the
//!   oldest snapshot retained (so a corrupt newest one can fall back);
//! - installing: save the snapshot, *then* align the log store to it, then replace the
//!   state machine; the core acknowledges the install only after this Ready.

use bytes::Bytes;
use kv::KvStore;
use raft::{Snapshot, SnapshotMeta};
use storage::{LogStore, SaveStarted, SnapshotStorage, StorageError};

use crate::node::{Node, Transport};
use crate::request::Response;

/// At start: the latest usable snapshot, with the log store aligned to it, and the state
/// machine decoded from it. `Ok(None)`: no snapshot, the log starts at 1.
pub(crate) fn restore<S: LogStore>(
    snapshots: &(dyn SnapshotStorage + Send),
    store: &mut S,
) -> Result<Option<(Snapshot, KvStore)>, StorageError> {
    let Some((meta, data)) = snapshots.load_latest(store.first_index())? else {
        return Ok(None);
    };
    store.align_to_snapshot(&meta)?;
    let kv = decode(&meta, &data)?;
    let snapshot = Snapshot {
        meta,
        data: Bytes::from(data),
    };
    Ok(Some((snapshot, kv)))
}

fn decode(meta: &SnapshotMeta, data: &[u8]) -> Result<KvStore, StorageError> {
    KvStore::decode_snapshot(data).map_err(|e| {
        StorageError::Snapshot(format!(
            "snapshot at index {} (term {}) does not decode: {e}",
            meta.index, meta.term
        ))
    })
}

impl<T: Transport, S: LogStore> Node<T, S> {
    /// Snapshots the state machine if the policy says it is time and no save is in
    /// flight. The save may finish now or in the background (see
    /// [`SnapshotStorage::start_save`]); either way the log is compacted only after it is
    /// durable. A failed save is counted and the next is due `every_entries` later: the
    /// log is intact, so nothing is lost.
    pub(crate) fn maybe_snapshot(&mut self) -> Result<(), StorageError> {
        let every = self.opts.snapshot.every_entries;
        let due = self.snapshot_index + every;
        let idle = self.snapshot_saving.is_none();
        if every == 0 || self.applied < due || !idle || self.snapshots.is_none() {
            return Ok(());
        }
        let Some(meta) = self.raft.snapshot_meta(self.applied) else {
            return Ok(());
        };
        let data = Bytes::from(self.kv.encode_snapshot());
        self.snapshot_index = meta.index;
        let snaps = self.snapshots.as_mut().expect("checked above");
        let snapshot = Snapshot { meta, data };
        match snaps.start_save(&snapshot.meta, snapshot.data.clone()) {
            Ok(SaveStarted::Done) => self.snapshot_saved(snapshot),
            Ok(SaveStarted::Pending) => {
                self.snapshot_saving = Some(snapshot);
                Ok(())
            }
            Err(_) => {
                self.stats.snapshot_failures += 1;
                Ok(())
            }
        }
    }

    /// At the start of a batch: the outcome of a background save, if it is known.
    pub(crate) fn poll_snapshot_save(&mut self) -> Result<(), StorageError> {
        if self.snapshot_saving.is_none() {
            return Ok(());
        }
        let Some(snaps) = self.snapshots.as_mut() else {
            return Ok(());
        };
        let Some(result) = snaps.finished_save() else {
            return Ok(());
        };
        let snapshot = self.snapshot_saving.take().expect("checked above");
        match result {
            Ok(meta) if meta == snapshot.meta => self.snapshot_saved(snapshot),
            Ok(meta) => Err(StorageError::Snapshot(format!(
                "background save reported snapshot {} but {} was in flight",
                meta.index, snapshot.meta.index
            ))),
            Err(_) => {
                self.stats.snapshot_failures += 1;
                Ok(())
            }
        }
    }

    /// A snapshot we took is durable: lagging followers get it from now on, and the log
    /// is compacted (at the next batch) to `keep_entries` behind it, never past the
    /// oldest snapshot retained.
    fn snapshot_saved(&mut self, snapshot: Snapshot) -> Result<(), StorageError> {
        let snaps = self.snapshots.as_ref().expect("saved through it");
        let floor = snaps.compaction_floor()?.unwrap_or(0);
        self.stats.snapshots_taken += 1;
        let upto = snapshot
            .meta
            .index
            .saturating_sub(self.opts.snapshot.keep_entries)
            .min(floor);
        self.raft.set_snapshot(snapshot);
        self.pending_compaction = Some(upto.max(self.pending_compaction.unwrap_or(0)));
        Ok(())
    }

    /// Compacts the log up to where the last snapshot allowed. Runs at the next input
    /// after the snapshot (`Node::tick`), not in the same step: entries that arrive, commit and are
    /// snapshotted in one batch stay visible for one step to whoever watches the log
    /// (the simulator's invariant checker verifies every entry it sees, and a snapshot may
    /// only cover entries it saw commit).
    pub(crate) fn compact_pending(&mut self) -> Result<(), StorageError> {
        let Some(upto) = self.pending_compaction.take() else {
            return Ok(());
        };
        if upto >= self.store.first_index() {
            self.raft.compact(upto);
            self.store.compact(upto)?;
        }
        Ok(())
    }

    /// Installs a snapshot the core received from the leader.
    pub(crate) fn install_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StorageError> {
        let meta = &snapshot.meta;
        let kv = decode(meta, &snapshot.data)?;
        if let Some(snaps) = self.snapshots.as_mut() {
            snaps.save(meta, &snapshot.data)?;
        }
        self.store.align_to_snapshot(meta)?;
        self.kv = kv;
        self.applied = meta.index;
        self.snapshot_index = meta.index;
        self.stats.snapshots_installed += 1;
        self.conf_changes_after_snapshot(meta.index, &meta.membership);
        // Our proposals the snapshot covers (we led once): whether they committed is not
        // known here.
        while let Some((&index, &(_, id))) = self.proposals.first_key_value() {
            if index > meta.index {
                break;
            }
            self.proposals.pop_first();
            // Unknown, not a redirect: a redirect promises "not executed". The router
            // resends a session write on this answer (it applies at most once).
            let resp = Response::Unknown("outcome unknown: this node caught up from a snapshot");
            self.respond(id, resp);
        }
        Ok(())
    }
}
