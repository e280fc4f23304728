//! The node's durable log: a [`FileLogStore`] under `data_dir/log`, wrapped to time its
//! syncs for the `raftkv_fsync_latency_seconds` histogram.
//!
//! Every method delegates unchanged, so the wrapper keeps the store's durability
//! contract exactly (see `storage::LogStore`).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use raft::{Entry, HardState, Index, SnapshotMeta, Term};
use storage::{FileLogOptions, FileLogStore, LogStore, RecoveryReport, Result};

use crate::metrics::LoopMetrics;

pub struct TimedStore {
    inner: FileLogStore,
    metrics: Arc<LoopMetrics>,
}

impl TimedStore {
    /// Opens (or creates) the log in `dir`, recovering what is there.
    pub fn open(dir: &Path, metrics: Arc<LoopMetrics>) -> Result<(TimedStore, RecoveryReport)> {
        let (inner, report) = FileLogStore::open(dir, FileLogOptions::default())?;
        Ok((TimedStore { inner, metrics }, report))
    }
}

impl LogStore for TimedStore {
    fn append(&mut self, entries: &[Entry]) -> Result<()> {
        self.inner.append(entries)
    }
    fn sync(&mut self) -> Result<()> {
        let t = Instant::now();
        let r = self.inner.sync();
        self.metrics.fsync_latency.observe(t.elapsed());
        r
    }
    fn save_hard_state(&mut self, hs: &HardState) -> Result<()> {
        self.inner.save_hard_state(hs)
    }
    fn hard_state(&self) -> HardState {
        self.inner.hard_state()
    }
    fn first_index(&self) -> Index {
        self.inner.first_index()
    }
    fn last_index(&self) -> Index {
        self.inner.last_index()
    }
    fn term(&self, index: Index) -> Result<Option<Term>> {
        self.inner.term(index)
    }
    fn entries(&self, lo: Index, hi: Index, max_bytes: u64) -> Result<Vec<Entry>> {
        self.inner.entries(lo, hi, max_bytes)
    }
    fn compact(&mut self, upto: Index) -> Result<()> {
        self.inner.compact(upto)
    }
    fn reset_to_snapshot(&mut self, meta: &SnapshotMeta) -> Result<()> {
        self.inner.reset_to_snapshot(meta)
    }
}
