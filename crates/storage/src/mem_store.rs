//! [`MemLogStore`]: the log in memory, for the seed replica and the simulator.
//!
//! Without the durability model, everything counts as durable at once. With it
//! ([`MemLogStore::with_durability_model`]), the store also keeps the image a disk would
//! hold — what the contract in [`LogStore`] guarantees survives a crash, and no more:
//! - appends reach the durable image only at `sync` (the weakest behaviour the contract
//!   allows: the file store may keep some of them, this model keeps none), except that a
//!   truncating append makes everything before it and the truncation durable at once;
//! - `term`/`vote` reach it when `save_hard_state` returns, and so does a `known_commit`
//!   beyond the durable log; a commit-only change never does by itself (it rides along
//!   with the next synced change);
//! - `compact` and `reset_to_snapshot` are durable on return.
//!
//! [`MemLogStore::crash`] replaces the live state by the durable image, as a restart after
//! a power cut would. [`MemLogStore::crash_keeping`] keeps a prefix of the unsynced
//! entries, modelling writes that happened to reach the disk.

use std::collections::VecDeque;
use std::sync::Arc;

use raft::{Entry, HardState, Index, SnapshotMeta, Term};

use crate::error::{Result, StorageError};
use crate::fault::FaultInjector;
use crate::hard_state::HardStateFile;
use crate::log_store::{self, LogStore, LogView};

/// A log: the snapshot point and the entries after it.
/// Invariant: `entries[k].index == snap_index + 1 + k`.
#[derive(Clone, Debug, Default)]
struct MemLog {
    snap_index: Index,
    snap_term: Term,
    entries: VecDeque<Entry>,
}

impl MemLog {
    fn first_index(&self) -> Index {
        self.snap_index + 1
    }

    fn last_index(&self) -> Index {
        self.snap_index + self.entries.len() as u64
    }

    /// For `snap_index ..= last_index()`.
    fn term_at(&self, index: Index) -> Term {
        if index == self.snap_index {
            self.snap_term
        } else {
            self.entries[(index - self.first_index()) as usize].term
        }
    }

    /// Writes `new` at its own indexes, dropping whatever was there and after.
    fn write(&mut self, new: &[Entry]) {
        let Some(head) = new.first() else { return };
        debug_assert!(head.index > self.snap_index && head.index <= self.last_index() + 1);
        self.entries
            .truncate((head.index - self.first_index()) as usize);
        self.entries.extend(new.iter().cloned());
    }

    fn compact(&mut self, upto: Index) {
        if upto <= self.snap_index {
            return;
        }
        debug_assert!(upto <= self.last_index());
        self.snap_term = self.term_at(upto);
        self.entries.drain(..(upto - self.snap_index) as usize);
        self.snap_index = upto;
    }

    fn reset(&mut self, meta: &SnapshotMeta) {
        *self = MemLog {
            snap_index: meta.index,
            snap_term: meta.term,
            entries: VecDeque::new(),
        };
    }
}

/// What would survive a crash.
#[derive(Clone, Debug, Default)]
struct Durable {
    log: MemLog,
    hard_state: HardState,
    /// Entry batches appended since the last sync, in order. Each batch starts at the index
    /// it was written at (a truncation there, if it was not `last_index + 1`).
    pending: Vec<Vec<Entry>>,
}

impl Durable {
    fn unsynced_entries(&self) -> usize {
        self.pending.iter().map(Vec::len).sum()
    }

    /// Moves the first `n` unsynced entries (all if `n` is larger) into the durable log.
    fn persist(&mut self, mut n: usize) {
        for batch in std::mem::take(&mut self.pending) {
            if n == 0 {
                break;
            }
            let take = n.min(batch.len());
            self.log.write(&batch[..take]);
            n -= take;
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct MemLogStore {
    log: MemLog,
    hard_state: HardState,
    /// `Some` when modelling durability.
    durable: Option<Box<Durable>>,
    faults: Option<Arc<FaultInjector>>,
    failed: Option<String>,
}

impl MemLogStore {
    /// A store where everything is durable at once (the seed replica).
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that tracks what is synced, so [`crash`](Self::crash) can lose the rest.
    pub fn with_durability_model() -> Self {
        MemLogStore {
            durable: Some(Box::default()),
            ..Self::default()
        }
    }

    /// Installs a fault injector: writes consume its byte budget (an entry costs
    /// [`Entry::size_bytes`]), syncs and durable hard-state saves consume its sync
    /// failures. An injected failure fails the store, as an I/O error does on disk.
    pub fn with_faults(mut self, faults: Arc<FaultInjector>) -> Self {
        self.faults = Some(faults);
        self
    }

    pub fn models_durability(&self) -> bool {
        self.durable.is_some()
    }

    /// Entries appended but not yet synced (0 without the durability model).
    pub fn unsynced_entries(&self) -> usize {
        self.durable.as_ref().map_or(0, |d| d.unsynced_entries())
    }

    /// The error that failed the store, if one did.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Simulates a crash and restart: the live state becomes the durable image (with the
    /// commit hint clamped to the log, as file recovery does) and the failed state is
    /// cleared. Without the durability model, nothing is lost.
    pub fn crash(&mut self) {
        self.crash_keeping(0);
    }

    /// Like [`crash`](Self::crash), but the first `n` unsynced entries (in append order)
    /// made it to disk first: a torn tail anywhere in the unsynced suffix.
    pub fn crash_keeping(&mut self, n: usize) {
        self.failed = None;
        let Some(d) = self.durable.as_mut() else {
            return;
        };
        d.persist(n);
        self.log = d.log.clone();
        self.hard_state = d.hard_state;
        self.hard_state.commit = self.hard_state.commit.min(self.log.last_index());
    }

    fn check_writable(&self) -> Result<()> {
        match &self.failed {
            Some(why) => Err(StorageError::Failed(why.clone())),
            None => Ok(()),
        }
    }

    /// An injected sync failure, if one is due; fails the store.
    fn injected_sync_failure(&mut self) -> Result<()> {
        if self.faults.as_ref().is_some_and(|f| f.claim_sync_failure()) {
            return Err(self.fail("fdatasync", FaultInjector::sync_failed()));
        }
        Ok(())
    }

    fn fail(&mut self, op: &'static str, e: std::io::Error) -> StorageError {
        let err = StorageError::io(op, "<memory>", e);
        self.failed = Some(err.to_string());
        err
    }
}

impl LogStore for MemLogStore {
    fn append(&mut self, entries: &[Entry]) -> Result<()> {
        self.check_writable()?;
        let view = LogView {
            first_index: self.log.first_index(),
            last_index: self.log.last_index(),
            commit: self.hard_state.commit,
            term_at: |i| self.log.term_at(i),
        };
        let plan = log_store::plan_append(&view, entries)?;
        let new = plan.new;
        if new.is_empty() {
            return Ok(());
        }
        if let Some(from) = plan.truncate_from {
            // The truncation is durable on return, and so is everything appended before.
            // Live state follows at once, so a failed write below never leaves the store
            // claiming the truncated entries.
            self.injected_sync_failure()?;
            let keep = (from - self.log.first_index()) as usize;
            self.log.entries.truncate(keep);
            if let Some(d) = self.durable.as_mut() {
                d.persist(usize::MAX);
                d.log.entries.truncate(keep);
            }
        }
        if let Some(f) = &self.faults {
            let bytes: usize = new.iter().map(Entry::size_bytes).sum();
            if f.claim_write(bytes) < bytes {
                // Nothing of the batch is claimed; the store is failed from here on.
                return Err(self.fail("write", FaultInjector::disk_full()));
            }
        }
        self.log.write(new);
        if let Some(d) = self.durable.as_mut() {
            d.pending.push(new.to_vec());
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.check_writable()?;
        if self.durable.as_ref().is_some_and(|d| d.pending.is_empty()) {
            return Ok(());
        }
        self.injected_sync_failure()?;
        if let Some(d) = self.durable.as_mut() {
            d.persist(usize::MAX);
        }
        Ok(())
    }

    fn save_hard_state(&mut self, hs: &HardState) -> Result<()> {
        self.check_writable()?;
        HardStateFile::validate(&self.hard_state, hs)?;
        if *hs == self.hard_state {
            return Ok(());
        }
        let (durable_hs, synced) = match self.durable.as_deref() {
            Some(d) => (d.hard_state, d.log.last_index()),
            None => (self.hard_state, self.log.last_index()),
        };
        if crate::hard_state::needs_sync(&durable_hs, hs, synced) {
            self.injected_sync_failure()?;
            if let Some(d) = self.durable.as_mut() {
                d.hard_state = *hs;
            }
        }
        self.hard_state = *hs;
        Ok(())
    }

    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn first_index(&self) -> Index {
        self.log.first_index()
    }

    fn last_index(&self) -> Index {
        self.log.last_index()
    }

    fn term(&self, index: Index) -> Result<Option<Term>> {
        let present =
            log_store::check_term_index(index, self.log.first_index(), self.log.last_index())?;
        Ok(present.then(|| self.log.term_at(index)))
    }

    fn entries(&self, lo: Index, hi: Index, max_bytes: u64) -> Result<Vec<Entry>> {
        log_store::check_range(lo, hi, self.log.first_index(), self.log.last_index())?;
        let first = self.log.first_index();
        let range = (lo - first) as usize..(hi - first) as usize;
        let slice = self.log.entries.range(range);
        let n = log_store::count_within(slice.clone().map(|e| e.size_bytes() as u64), max_bytes);
        Ok(slice.take(n).cloned().collect())
    }

    fn compact(&mut self, upto: Index) -> Result<()> {
        self.check_writable()?;
        if upto < self.log.first_index() {
            return Ok(());
        }
        if upto > self.log.last_index() {
            return Err(StorageError::Unavailable {
                index: upto,
                last_index: self.log.last_index(),
            });
        }
        // Durable on return and implies a sync (the contract; the file store does so).
        self.sync()?;
        self.log.compact(upto);
        if let Some(d) = self.durable.as_mut() {
            d.log.compact(upto);
        }
        Ok(())
    }

    fn reset_to_snapshot(&mut self, meta: &SnapshotMeta) -> Result<()> {
        self.check_writable()?;
        self.log.reset(meta);
        if let Some(d) = self.durable.as_mut() {
            d.log.reset(meta);
            d.pending.clear();
        }
        self.hard_state.commit = self.hard_state.commit.min(meta.index);
        Ok(())
    }
}
