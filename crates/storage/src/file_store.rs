//! [`FileLogStore`]: the segmented write-ahead log on disk.
//!
//! Directory layout (the store owns the directory):
//! ```text
//! LOCK                         flock'ed while a store has the directory open
//! hardstate                    double-slot hard state (hard_state.rs)
//! 00000000000000000001.seg     segments named by their first index (segment.rs)
//! 00000000000000004097.seg
//! *.tmp                        leftovers of an interrupted atomic write, removed on open
//! ```
//!
//! Invariants:
//! - the segments are contiguous: each starts right after the previous one ends, and its
//!   header's `prev_term` is the previous one's last term;
//! - the logical `first_index` is at or after the first segment's first index (compaction
//!   hides entries logically, then deletes whole segments);
//! - only the last ("active") segment is written to; it is synced before another segment
//!   is created after it, so only it can have unsynced bytes (`unsynced`);
//! - every change that removes data (truncation, segment deletion) is made durable before
//!   new data is written, and removes newest-first (truncation, reset) or oldest-first
//!   (compaction), so a crash at any point leaves a contiguous log;
//! - the hard state records a lower bound of the synced prefix (`synced`, written along
//!   with each hard state change, at no extra sync); before entries at or below it are
//!   rewritten (truncation, reset) it is lowered durably. Recovery refuses a bad final
//!   record at or below it: that record was synced, so it is corruption, not a torn write.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::{Entry, HardState, Index, SnapshotMeta, Term};

use crate::error::{Result, StorageError};
use crate::fault::FaultInjector;
use crate::fsutil::{self, Faults};
use crate::hard_state::{HardStateFile, HARD_STATE_FILE};
use crate::log_store::{self, LogStore, LogView};
use crate::record::{self, BadRecord, MIN_ENTRY_RECORD};
use crate::segment::Segment;

/// Held (`flock`) while a store has the directory open.
const LOCK_FILE: &str = "LOCK";

/// Default bound on a segment file's size.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

#[derive(Clone, Debug)]
pub struct FileLogOptions {
    /// A segment is closed and a new one started once the next record would push it past
    /// this size. A single record larger than this gets a segment of its own.
    pub max_segment_bytes: u64,
    /// Test hook: makes writes and syncs fail on demand (disk full, I/O error).
    pub faults: Option<Arc<FaultInjector>>,
}

impl Default for FileLogOptions {
    fn default() -> Self {
        FileLogOptions {
            max_segment_bytes: DEFAULT_SEGMENT_BYTES,
            faults: None,
        }
    }
}

/// What recovery found, for the driver's startup log and for tests.
#[derive(Clone, Debug)]
pub struct RecoveryReport {
    pub first_index: Index,
    pub last_index: Index,
    pub last_term: Term,
    /// With `commit` clamped to `last_index`.
    pub hard_state: HardState,
    pub segments: usize,
    /// Bytes of valid log content read.
    pub bytes: u64,
    /// The directory held no log: a fresh store was initialised.
    pub created: bool,
    /// The torn final record that was cut off, if any.
    pub torn_tail: Option<TornTail>,
    /// What the hard state said was synced (entries `..=` this): a bad final record at
    /// or below it is corruption, not a torn tail. 0 when unknown (fresh, or older file).
    pub known_synced: Index,
    /// Stray `.tmp` files from interrupted atomic writes, deleted.
    pub removed_temp_files: Vec<PathBuf>,
    pub elapsed: Duration,
}

/// A torn tail dropped by recovery: an incomplete or checksum-failing record at the very
/// end of the last segment, with nothing valid after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub file: PathBuf,
    pub offset: u64,
    pub dropped_bytes: u64,
    pub reason: String,
}

pub struct FileLogStore {
    dir: PathBuf,
    opts: FileLogOptions,
    /// Held for the store's lifetime: the `flock` on `LOCK`.
    _lock: File,
    /// Ordered by first index; contiguous. Empty only after a failed reset.
    segments: Vec<Segment>,
    /// Logical first index (`>=` the first segment's first index).
    first_index: Index,
    /// Term of `first_index - 1`.
    snap_term: Term,
    hard_state: HardStateFile,
    /// The active segment has bytes written since its last `fdatasync`.
    unsynced: bool,
    /// Every entry `<= synced_index` is durable (`fdatasync`ed). Written into the hard
    /// state with its next change, for recovery to tell torn tails from corruption.
    synced_index: Index,
    /// Set by the first I/O error; every later write is refused.
    failed: Option<String>,
}

impl FileLogStore {
    /// Opens (or initialises) the log in `dir`, recovering what is there. See the README
    /// for the rules: a torn tail (a bad final record beyond the synced point the hard
    /// state records) is cut off with a warning; any other bad record makes this fail
    /// with an error naming the file and byte offset.
    pub fn open(dir: impl AsRef<Path>, opts: FileLogOptions) -> Result<(Self, RecoveryReport)> {
        let started = Instant::now();
        let dir = dir.as_ref().to_path_buf();
        let faults = opts.faults.clone();
        fsutil::ensure_dir(&dir)?;
        let lock = fsutil::lock_dir(&dir, LOCK_FILE)?;
        let removed_temp_files = fsutil::remove_temp_files(&dir)?;
        for tmp in &removed_temp_files {
            tracing::warn!(file = %tmp.display(), "removed leftover temporary file");
        }

        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| StorageError::io("readdir", &dir, e))? {
            let entry = entry.map_err(|e| StorageError::io("readdir", &dir, e))?;
            if let Some(index) = entry.file_name().to_str().and_then(Segment::parse_name) {
                names.push((index, entry.path()));
            }
        }
        names.sort();

        let (mut hard_state, created) = match HardStateFile::open(&dir, &faults)? {
            Some(hs) => (hs, false),
            None if names.is_empty() => (HardStateFile::create(&dir, &faults)?, true),
            None => {
                return Err(StorageError::corruption(
                    dir.join(HARD_STATE_FILE),
                    0,
                    "hard state file missing while log segments exist (term and vote \
                     would be lost)",
                ))
            }
        };

        let known_synced = hard_state.recovered_synced();
        let mut segments: Vec<Segment> = Vec::with_capacity(names.len());
        let mut torn_tail = None;
        let count = names.len();
        for (i, (name_index, path)) in names.into_iter().enumerate() {
            let (mut seg, bad) = Segment::recover(&path, name_index)?;
            if let Some(prev) = segments.last() {
                check_continuity(prev, &seg)?;
            }
            if let Some(bad) = bad {
                let is_last = i + 1 == count;
                let why = bad.reason.describe();
                if !is_last {
                    return Err(StorageError::corruption(
                        &path,
                        bad.offset,
                        format!("{why} in a segment that is not the last"),
                    ));
                }
                if let Some(valid) = bad.valid_after {
                    return Err(StorageError::corruption(
                        &path,
                        bad.offset,
                        format!("{why}, followed by a valid record at offset {valid}"),
                    ));
                }
                if let BadRecord::Malformed(_) = bad.reason {
                    // A checksum-valid record with wrong contents is not a torn write.
                    return Err(StorageError::corruption(&path, bad.offset, why));
                }
                let bad_index = seg.last_index() + 1;
                if bad_index <= known_synced {
                    // It was synced (and maybe acknowledged) before: the disk changed it.
                    return Err(StorageError::corruption(
                        &path,
                        bad.offset,
                        format!(
                            "{why} (entry {bad_index}), but the hard state records entries \
                             through {known_synced} as synced: not a torn write"
                        ),
                    ));
                }
                let dropped = bad.file_len - bad.offset;
                tracing::warn!(
                    file = %path.display(),
                    offset = bad.offset,
                    dropped_bytes = dropped,
                    "WAL recovery: truncating torn tail ({why})"
                );
                seg.truncate_bytes(bad.offset, &faults)?;
                torn_tail = Some(TornTail {
                    file: path.clone(),
                    offset: bad.offset,
                    dropped_bytes: dropped,
                    reason: why,
                });
            }
            segments.push(seg);
        }

        if segments.is_empty() {
            segments.push(Segment::create(&dir, 1, 0, &faults)?);
        } else {
            // What we read may be only in the page cache (the process died, not the
            // machine): make it durable before the node acts on it.
            segments.last().expect("non-empty").sync(&faults)?;
            fsutil::sync_dir(&dir, &faults)?;
        }

        let first_index = segments[0].first_index;
        let snap_term = segments[0].prev_term;
        let last_index = segments.last().expect("non-empty").last_index();
        hard_state.clamp_commit(last_index);
        let store = FileLogStore {
            dir,
            opts,
            _lock: lock,
            segments,
            first_index,
            snap_term,
            hard_state,
            unsynced: false,
            // Synced just above (or nothing there yet).
            synced_index: last_index,
            failed: None,
        };
        let report = RecoveryReport {
            first_index: store.first_index(),
            last_index: store.last_index(),
            last_term: store.last_term(),
            hard_state: store.hard_state(),
            segments: store.segments.len(),
            bytes: store.segments.iter().map(|s| s.byte_len()).sum(),
            created,
            torn_tail,
            known_synced,
            removed_temp_files,
            elapsed: started.elapsed(),
        };
        tracing::info!(
            dir = %store.dir.display(),
            first_index = report.first_index,
            last_index = report.last_index,
            segments = report.segments,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "WAL recovered"
        );
        Ok((store, report))
    }
}

/// Checks that `next` continues `prev` exactly: no gap, no overlap, same cut-point term.
fn check_continuity(prev: &Segment, next: &Segment) -> Result<()> {
    if next.first_index != prev.last_index() + 1 {
        return Err(StorageError::corruption(
            &next.path,
            8,
            format!(
                "segment starts at index {} but the previous segment ends at {}",
                next.first_index,
                prev.last_index()
            ),
        ));
    }
    if next.prev_term != prev.last_term() {
        return Err(StorageError::corruption(
            &next.path,
            16,
            format!(
                "segment header says entry {} has term {}, the previous segment says {}",
                prev.last_index(),
                next.prev_term,
                prev.last_term()
            ),
        ));
    }
    Ok(())
}

impl FileLogStore {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> &FileLogOptions {
        &self.opts
    }

    /// Number of segment files the log currently spans.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Paths of the segment files, oldest first (for tests and tooling).
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    /// The error that failed the store, if one did.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    fn faults(&self) -> Faults {
        self.opts.faults.clone()
    }

    fn check_writable(&self) -> Result<()> {
        match &self.failed {
            Some(why) => Err(StorageError::Failed(why.clone())),
            None => Ok(()),
        }
    }

    /// Passes `r` through, failing the store on an I/O error: after one we no longer know
    /// what is on disk, so we stop writing rather than risk building on a hole.
    fn fail_on_io<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            if e.is_io() && self.failed.is_none() {
                tracing::error!(dir = %self.dir.display(), error = %e, "log store failed");
                self.failed = Some(e.to_string());
            }
        }
        r
    }

    /// Position in `segments` of the segment holding `index` (`first_index - 1 ..=
    /// last_index` of that segment).
    fn segment_for(&self, index: Index) -> usize {
        self.segments
            .partition_point(|s| s.first_index <= index)
            .saturating_sub(1)
    }

    /// Term of `index` for `first_index - 1 ..= last_index`.
    fn term_at(&self, index: Index) -> Term {
        if index + 1 == self.first_index {
            return self.snap_term;
        }
        self.segments[self.segment_for(index)].term(index)
    }

    /// The cost [`Entry::size_bytes`] of `index`, from the record length alone.
    fn size_of(&self, index: Index) -> u64 {
        let rec = self.segments[self.segment_for(index)].record_len(index);
        rec - MIN_ENTRY_RECORD as u64 + 24
    }

    fn write_entries(&mut self, new: &[Entry]) -> Result<()> {
        let faults = self.faults();
        let max = self.opts.max_segment_bytes;
        let mut buf = Vec::new();
        let mut i = 0;
        while i < new.len() {
            let active = self.segments.last().expect("writable store has a segment");
            buf.clear();
            let start = i;
            let mut size = active.byte_len();
            while i < new.len() {
                let rec = record::entry_record_len(&new[i]) as u64;
                // An empty segment takes any one entry, however large.
                let first_in_empty = active.is_empty() && i == start;
                if !first_in_empty && size + rec > max {
                    break;
                }
                record::encode_entry(&new[i], &mut buf);
                size += rec;
                i += 1;
            }
            if i == start {
                self.roll()?;
                continue;
            }
            // Set before writing: even a failed write may have left unsynced bytes.
            self.unsynced = true;
            self.segments.last_mut().expect("checked above").append(
                &buf,
                &new[start..i],
                &faults,
            )?;
        }
        Ok(())
    }

    /// Starts a new active segment after the current one, which is synced first so that
    /// only the last segment can ever have a torn tail.
    fn roll(&mut self) -> Result<()> {
        let faults = self.faults();
        let active = self.segments.last().expect("writable store has a segment");
        debug_assert!(!active.is_empty(), "rolling an empty segment");
        if self.unsynced {
            active.sync(&faults)?;
            self.unsynced = false;
            self.synced_index = active.last_index();
        }
        let (next, prev_term) = (active.last_index() + 1, active.last_term());
        let seg = Segment::create(&self.dir, next, prev_term, &faults)?;
        self.segments.push(seg);
        Ok(())
    }

    /// Discards entries `from..` durably: later segments are deleted newest first, the
    /// segment holding `from` is cut and synced.
    fn truncate_suffix(&mut self, from: Index) -> Result<()> {
        let faults = self.faults();
        // Entries `from..` will be rewritten: a torn write of the new ones must not look
        // like corruption of synced ones.
        self.synced_index = self.synced_index.min(from - 1);
        self.hard_state.lower_synced(from - 1, &faults)?;
        let k = self.segment_for(from);
        while self.segments.len() > k + 1 {
            self.delete_last_segment()?;
        }
        // The truncation's fdatasync also covers earlier unsynced appends of this segment;
        // unsynced bytes of deleted segments are gone with them.
        self.segments[k].truncate_from(from, &faults)?;
        self.unsynced = false;
        // Earlier segments were synced when they stopped being the last one.
        self.synced_index = from - 1;
        Ok(())
    }

    fn compact_inner(&mut self, upto: Index) -> Result<()> {
        self.sync_inner()?;
        let faults = self.faults();
        let active = self.segments.last().expect("writable store has a segment");
        if !active.is_empty() && active.last_index() <= upto {
            // Everything is compacted: start an empty segment so the old one can go.
            self.roll()?;
        }
        // Logical compaction first: it is valid on its own, so a failure while deleting
        // files below leaves a consistent store.
        self.snap_term = self.term_at(upto);
        self.first_index = upto + 1;
        // Oldest first: a crash leaves a contiguous suffix of segments.
        while self.segments.len() > 1 && self.segments[0].last_index() <= upto {
            fsutil::remove_file(&self.segments[0].path)?;
            self.segments.remove(0);
            // One directory sync per deletion: filesystems need not persist unlinks in
            // order, and a hole in the middle of the log would make it unrecoverable.
            fsutil::sync_dir(&self.dir, &faults)?;
        }
        Ok(())
    }

    fn reset_inner(&mut self, meta: &SnapshotMeta) -> Result<()> {
        let faults = self.faults();
        // Entries after `meta.index` will be written anew (see `truncate_suffix`).
        self.synced_index = self.synced_index.min(meta.index);
        self.hard_state.lower_synced(meta.index, &faults)?;
        // Newest first: a crash leaves a contiguous prefix of the old log, which recovery
        // accepts; the driver then re-applies the (already durable) snapshot.
        while !self.segments.is_empty() {
            self.delete_last_segment()?;
        }
        // The log is now empty after the snapshot, on disk and in memory.
        self.first_index = meta.index + 1;
        self.snap_term = meta.term;
        self.unsynced = false;
        self.synced_index = meta.index;
        let seg = Segment::create(&self.dir, meta.index + 1, meta.term, &faults)?;
        self.segments.push(seg);
        Ok(())
    }

    /// Deletes the newest segment, durably. One directory sync per deletion, because
    /// filesystems need not persist unlinks in order, and a hole in the middle of the log
    /// would make it unrecoverable.
    fn delete_last_segment(&mut self) -> Result<()> {
        let faults = self.faults();
        let path = self
            .segments
            .last()
            .expect("a segment to delete")
            .path
            .clone();
        fsutil::remove_file(&path)?;
        self.segments.pop();
        fsutil::sync_dir(&self.dir, &faults)
    }

    fn sync_inner(&mut self) -> Result<()> {
        if self.unsynced {
            let faults = self.faults();
            self.segments
                .last()
                .expect("unsynced implies a segment")
                .sync(&faults)?;
            self.unsynced = false;
            self.synced_index = self.last_index();
        }
        Ok(())
    }
}

impl LogStore for FileLogStore {
    fn append(&mut self, entries: &[Entry]) -> Result<()> {
        self.check_writable()?;
        let view = LogView {
            first_index: self.first_index,
            last_index: self.last_index(),
            commit: self.hard_state.get().commit,
            term_at: |i| self.term_at(i),
        };
        let plan = log_store::plan_append(&view, entries)?;
        if let Some(from) = plan.truncate_from {
            let r = self.truncate_suffix(from);
            self.fail_on_io(r)?;
        }
        let r = self.write_entries(plan.new);
        self.fail_on_io(r)
    }

    fn sync(&mut self) -> Result<()> {
        self.check_writable()?;
        let r = self.sync_inner();
        self.fail_on_io(r)
    }

    fn save_hard_state(&mut self, hs: &HardState) -> Result<()> {
        self.check_writable()?;
        HardStateFile::validate(&self.hard_state.get(), hs)?;
        let faults = self.faults();
        let r = self.hard_state.save(hs, self.synced_index, &faults);
        self.fail_on_io(r)
    }

    fn hard_state(&self) -> HardState {
        self.hard_state.get()
    }

    fn first_index(&self) -> Index {
        self.first_index
    }

    fn last_index(&self) -> Index {
        self.segments
            .last()
            .map_or(self.first_index - 1, |s| s.last_index())
    }

    fn term(&self, index: Index) -> Result<Option<Term>> {
        let present = log_store::check_term_index(index, self.first_index, self.last_index())?;
        Ok(present.then(|| self.term_at(index)))
    }

    fn entries(&self, lo: Index, hi: Index, max_bytes: u64) -> Result<Vec<Entry>> {
        log_store::check_range(lo, hi, self.first_index, self.last_index())?;
        if lo == hi {
            return Ok(Vec::new());
        }
        let n = log_store::count_within((lo..hi).map(|i| self.size_of(i)), max_bytes);
        let end = lo + n as u64;
        let mut out = Vec::with_capacity(n);
        let mut k = self.segment_for(lo);
        let mut at = lo;
        while at < end {
            let seg = &self.segments[k];
            let stop = end.min(seg.last_index() + 1);
            out.extend(seg.read(at..stop)?);
            at = stop;
            k += 1;
        }
        Ok(out)
    }

    fn compact(&mut self, upto: Index) -> Result<()> {
        self.check_writable()?;
        if upto < self.first_index {
            return Ok(());
        }
        if upto > self.last_index() {
            return Err(StorageError::Unavailable {
                index: upto,
                last_index: self.last_index(),
            });
        }
        let r = self.compact_inner(upto);
        self.fail_on_io(r)
    }

    fn reset_to_snapshot(&mut self, meta: &SnapshotMeta) -> Result<()> {
        self.check_writable()?;
        let r = self.reset_inner(meta);
        self.fail_on_io(r)?;
        // Nothing after the snapshot is held any more, so no commit hint beyond it
        // (in memory only: the stored value is a hint and recovery clamps it anyway).
        self.hard_state.clamp_commit(meta.index);
        Ok(())
    }
}
