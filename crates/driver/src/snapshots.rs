//! The driver's side of snapshots (§7 of the paper): taking them as the log grows,
//! installing the leader's, and starting from the latest one.
//!
//! Order of durable steps, so a crash at any point loses nothing:
//! - taking: save the snapshot (atomic, durable), *then* compact the log, never past the
//!   oldest snapshot retained (so a corrupt newest one can fall back);
//! - receiving: each chunk from the leader is written to a sink (a temporary file) as it
//!   arrives, and acknowledged by the core only after that; nothing is buffered. One sink
//!   at most: a transfer the leader abandons keeps its partial file until the next
//!   transfer replaces it or a restart removes it (at most `max_snapshot_bytes` of disk);
//! - installing: seal the sink (the snapshot is durable and in place), *then* align the
//!   log store to it, then replace the state machine; the core acknowledges the install
//!   only after this Ready.

use bytes::Bytes;
use kv::KvStore;
use raft::{Snapshot, SnapshotChunk, SnapshotMeta};
use storage::{LogStore, SaveStarted, SnapshotSink, SnapshotStorage, StorageError};

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

    /// Writes the chunks of snapshots arriving from the leader to a sink (`Ready::
    /// snapshot_chunks`): a file of the snapshot store, or memory without one. A chunk at
    /// offset 0, or of another snapshot, starts a new sink; the one it replaces is
    /// dropped with what it held. `install` (`Ready::snapshot`) is the snapshot of the last
    /// chunk that completes a transfer: it is installed right after that chunk, before
    /// the chunks after it (a newer transfer, started in the same batch of messages).
    pub(crate) fn receive_snapshot(
        &mut self,
        chunks: Vec<SnapshotChunk>,
        install: Option<SnapshotMeta>,
    ) -> Result<(), StorageError> {
        let install_after = chunks.iter().rposition(|c| c.done);
        if install.is_some() != install_after.is_some() {
            return Err(StorageError::Snapshot(
                "the core asked to install a snapshot without its last chunk (or the reverse)"
                    .into(),
            ));
        }
        for (i, c) in chunks.into_iter().enumerate() {
            let same = self
                .receiving
                .as_ref()
                .is_some_and(|(meta, _)| *meta == c.meta);
            if c.offset == 0 || !same {
                let sink: Box<dyn SnapshotSink> = match self.snapshots.as_mut() {
                    Some(snaps) => snaps.receive(&c.meta)?,
                    None => Box::new(BufferSink(Vec::new())),
                };
                self.receiving = Some((c.meta.clone(), sink));
            }
            let (_, sink) = self.receiving.as_mut().expect("set above");
            sink.write(c.offset, &c.data)?;
            if Some(i) == install_after {
                let meta = install.clone().expect("checked above");
                self.install_snapshot(meta)?;
            }
        }
        Ok(())
    }

    /// Installs the snapshot whose chunks the sink received (`Ready::snapshot`): seals it
    /// and reads it back (decoding it before it is put in place, so a snapshot that does
    /// not decode is never loaded at a restart), aligns the log store, replaces the state
    /// machine, and hands the snapshot to the core for followers it may one day lead.
    fn install_snapshot(&mut self, meta: SnapshotMeta) -> Result<(), StorageError> {
        let sink = match self.receiving.take() {
            Some((m, sink)) if m == meta => sink,
            _ => {
                return Err(StorageError::Snapshot(format!(
                    "asked to install snapshot {} but its chunks were not received",
                    meta.index
                )))
            }
        };
        let mut decoded = None;
        let data = sink.finish(&mut |data: &[u8]| {
            decoded = Some(decode(&meta, data)?);
            Ok(())
        })?;
        let kv = decoded.expect("the sink checked the data before returning it");
        self.store.align_to_snapshot(&meta)?;
        self.kv = kv;
        self.applied = meta.index;
        self.events_reset();
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
        self.raft.set_snapshot(Snapshot {
            meta,
            data: Bytes::from(data),
        });
        Ok(())
    }
}

/// The sink of a node without a snapshot store: memory (it never restarts from a
/// snapshot, so nothing needs to be durable).
struct BufferSink(Vec<u8>);

impl SnapshotSink for BufferSink {
    fn written(&self) -> u64 {
        self.0.len() as u64
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        storage::append_in_order(&mut self.0, offset, data)
    }

    fn finish(
        self: Box<Self>,
        check: &mut dyn FnMut(&[u8]) -> Result<(), StorageError>,
    ) -> Result<Vec<u8>, StorageError> {
        check(&self.0)?;
        Ok(self.0)
    }
}
