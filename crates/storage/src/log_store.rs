//! The [`LogStore`] trait — the durability contract between the driver and a store — and
//! the validation every implementation shares, so they cannot disagree on semantics.

use raft::{Entry, HardState, Index, SnapshotMeta, Term};

use crate::error::{Result, StorageError};

/// A durable Raft log plus the node's hard state.
///
/// # Shape of the log
///
/// The store holds the contiguous entries `first_index() ..= last_index()` and remembers
/// the term of `first_index() - 1`, the *snapshot point* (index 0, term 0 for a fresh
/// store). An empty log has `last_index() == first_index() - 1`. Terms never decrease
/// along the log.
///
/// # Durability contract
///
/// - [`append`](LogStore::append) and the in-memory view are immediate: reads see appended
///   entries at once. Appended entries are **not durable until [`sync`](LogStore::sync)
///   returns**. After a crash the log is the log as of the last sync extended by some
///   prefix (possibly empty) of the entries appended since — never a middle part.
/// - An append that *truncates* (a conflict) makes the truncation, and everything
///   appended before it, durable before it returns: the store never lets a crash mix old
///   and new entries at the same indexes. Conflicts are rare (a leader change), so the
///   extra sync costs little.
/// - `sync` makes everything appended so far durable (one `fdatasync` however many appends
///   came before: group commit). The driver persists a `Ready` as
///   `append(entries)` + `save_hard_state(hs)` then **one** `sync()`, and only then sends
///   messages that depend on it (votes, AppendEntries acknowledgements) — but a
///   `known_commit` that rises is saved *before* the append (with the stored commit
///   hint), so a crash cannot keep the entries without it.
/// - [`save_hard_state`](LogStore::save_hard_state): `term` and `vote` are durable when it
///   returns (a changed term or vote costs one `fdatasync`; an unchanged one costs none),
///   and so is a `known_commit` that rose beyond the synced log (a catching-up node's).
///   `commit` is a hint, written without waiting: a crash may bring back an older commit,
///   and recovery clamps it to `last_index()`. Losing it is safe: commit is re-learned
///   from the leader.
/// - [`compact`](LogStore::compact) and [`reset_to_snapshot`](LogStore::reset_to_snapshot)
///   are durable on return and imply a `sync` of earlier appends. Compaction is durable at
///   segment granularity: after a restart `first_index()` may be *lower* than `upto + 1`
///   (those entries are intact and correct), never higher. After recovery the driver calls
///   [`align_to_snapshot`](LogStore::align_to_snapshot) with its snapshot to restore the
///   exact cut.
///
/// # Errors
///
/// Caller errors (out-of-range reads, invalid appends) leave the store untouched. After an
/// I/O error the store is *failed*: it never claims data it does not hold (a failed append
/// keeps only the entries fully written before the failure), and every later write returns
/// [`StorageError::Failed`]. Reads keep working. The way forward is to drop the store and
/// reopen it; recovery reads what really reached the disk.
pub trait LogStore {
    /// Appends `entries`, which must be contiguous (`index` increasing by one) with
    /// non-decreasing terms, and start at most at `last_index() + 1` (no gap).
    ///
    /// Follows §5.3 of the Raft paper rather than blindly overwriting: entries already
    /// present with the same term are skipped, the first entry whose term differs truncates
    /// the log from its index on, and the rest is appended. So a stale or duplicated
    /// AppendEntries never removes entries. Entries at or below the snapshot point are
    /// committed, hence identical, and are skipped. Refuses to truncate at or below the
    /// stored commit hint (that would lose a committed entry).
    ///
    /// The new entries are not durable until [`sync`](LogStore::sync); a truncation is
    /// durable on return (see the trait docs).
    fn append(&mut self, entries: &[Entry]) -> Result<()>;

    /// Makes every appended entry durable (group commit: one `fdatasync` for any number
    /// of appends). Cheap when nothing is pending.
    fn sync(&mut self) -> Result<()>;

    /// Records the hard state. `term` and `vote` are durable on return, and so is a
    /// `known_commit` beyond the synced log; `commit` is a lazily persisted hint (see the
    /// trait docs).
    fn save_hard_state(&mut self, hs: &HardState) -> Result<()>;

    /// The last saved hard state (with `commit` clamped to `last_index()` after recovery).
    fn hard_state(&self) -> HardState;

    /// Index of the first entry held; `snapshot point + 1`.
    fn first_index(&self) -> Index;

    /// Index of the last entry held; `first_index() - 1` when the log is empty.
    fn last_index(&self) -> Index;

    /// The term of the entry at `index`: `Ok(Some(term))` for
    /// `first_index() - 1 ..= last_index()` (the snapshot point included), `Ok(None)`
    /// beyond `last_index()`, and [`StorageError::Compacted`] below the snapshot point.
    fn term(&self, index: Index) -> Result<Option<Term>>;

    /// Entries `lo .. hi` (half-open). Returns at least one entry when `lo < hi`, then more
    /// while the running total of [`Entry::size_bytes`] stays within `max_bytes`
    /// (`u64::MAX` for no limit). Errors: [`StorageError::Compacted`] if `lo <
    /// first_index()`, [`StorageError::Unavailable`] if `hi > last_index() + 1`,
    /// [`StorageError::InvalidRange`] if `lo > hi`.
    fn entries(&self, lo: Index, hi: Index, max_bytes: u64) -> Result<Vec<Entry>>;

    /// Drops the entries `..= upto`; afterwards `first_index() == upto + 1`. A no-op when
    /// `upto < first_index()`; [`StorageError::Unavailable`] when `upto > last_index()`.
    /// The caller guarantees a durable snapshot covers `upto`. Files are deleted in whole
    /// segments (see the trait docs for what a restart shows).
    fn compact(&mut self, upto: Index) -> Result<()>;

    /// Discards the whole log and restarts it empty after the snapshot:
    /// `first_index() == meta.index + 1`, `term(meta.index) == Some(meta.term)`. The caller
    /// saves the snapshot durably *before* calling this. Durable on return.
    fn reset_to_snapshot(&mut self, meta: &SnapshotMeta) -> Result<()>;

    /// The term of the last entry (the snapshot point's term when the log is empty).
    fn last_term(&self) -> Term {
        // `last_index()` is always within `first_index() - 1 ..= last_index()`.
        self.term(self.last_index()).ok().flatten().unwrap_or(0)
    }

    /// Brings the log in line with the snapshot the node restarts from (or just installed),
    /// following §7 of the Raft paper: if the log holds `meta.index` with `meta.term`, the
    /// entries after it are kept and the ones before are compacted; otherwise the log is
    /// discarded and restarted after the snapshot. Fails if the log starts after
    /// `meta.index + 1`: the entries in between exist nowhere.
    fn align_to_snapshot(&mut self, meta: &SnapshotMeta) -> Result<()> {
        let first = self.first_index();
        if meta.index + 1 < first {
            return Err(StorageError::Snapshot(format!(
                "log starts at {first}, after snapshot index {} + 1: entries {}..{first} are \
                 in neither the snapshot nor the log",
                meta.index,
                meta.index + 1
            )));
        }
        match self.term(meta.index)? {
            Some(t) if t == meta.term => self.compact(meta.index),
            _ => self.reset_to_snapshot(meta),
        }
    }
}

/// What an append must do once validated: optionally truncate, then write `new`.
#[derive(Debug)]
pub(crate) struct AppendPlan<'a> {
    /// Discard the log from this index on before writing (`<= last_index`).
    pub truncate_from: Option<Index>,
    /// The entries to write, starting at `last_index + 1` (after any truncation).
    pub new: &'a [Entry],
}

/// The view of a log that [`plan_append`] needs.
pub(crate) struct LogView<F: Fn(Index) -> Term> {
    pub first_index: Index,
    pub last_index: Index,
    /// Commit hint: truncating at or below it is refused.
    pub commit: Index,
    /// Valid for `first_index - 1 ..= last_index`.
    pub term_at: F,
}

/// Validates `entries` against the log and works out the truncation point (§5.3 steps
/// 3–4). Pure: both stores call it before touching any state, so a rejected append leaves
/// the store exactly as it was.
pub(crate) fn plan_append<'a, F: Fn(Index) -> Term>(
    log: &LogView<F>,
    entries: &'a [Entry],
) -> Result<AppendPlan<'a>> {
    let Some(head) = entries.first() else {
        return Ok(AppendPlan {
            truncate_from: None,
            new: entries,
        });
    };
    if head.index == 0 {
        return Err(StorageError::InvalidAppend("entry index 0".into()));
    }
    for w in entries.windows(2) {
        if w[1].index != w[0].index + 1 {
            return Err(StorageError::InvalidAppend(format!(
                "entries not contiguous: {} followed by {}",
                w[0].index, w[1].index
            )));
        }
        if w[1].term < w[0].term {
            return Err(StorageError::InvalidAppend(format!(
                "term decreases from {} (index {}) to {} (index {})",
                w[0].term, w[0].index, w[1].term, w[1].index
            )));
        }
    }
    if head.index > log.last_index + 1 {
        return Err(StorageError::InvalidAppend(format!(
            "gap: first entry {} but last index is {}",
            head.index, log.last_index
        )));
    }

    let snapshot_point = log.first_index - 1;
    let mut truncate_from = None;
    let mut start = entries.len();
    for (pos, e) in entries.iter().enumerate() {
        if e.index <= snapshot_point {
            // Committed entries, identical everywhere; only the cut point's term is known.
            if e.index == snapshot_point && e.term != (log.term_at)(e.index) {
                return Err(StorageError::InvalidAppend(format!(
                    "entry {} has term {} but the snapshot point has term {}",
                    e.index,
                    e.term,
                    (log.term_at)(e.index)
                )));
            }
            continue;
        }
        if e.index > log.last_index {
            start = pos;
            break;
        }
        if (log.term_at)(e.index) != e.term {
            if e.index <= log.commit {
                return Err(StorageError::InvalidAppend(format!(
                    "entry {} (term {}) conflicts with a committed entry (commit {})",
                    e.index, e.term, log.commit
                )));
            }
            truncate_from = Some(e.index);
            start = pos;
            break;
        }
    }
    let new = &entries[start..];
    if let Some(first_new) = new.first() {
        let prev_term = (log.term_at)(first_new.index - 1);
        if first_new.term < prev_term {
            return Err(StorageError::InvalidAppend(format!(
                "entry {} has term {} below the term {} of the entry before it",
                first_new.index, first_new.term, prev_term
            )));
        }
    }
    Ok(AppendPlan { truncate_from, new })
}

/// Shared bounds check for `entries(lo, hi, _)`.
pub(crate) fn check_range(lo: Index, hi: Index, first: Index, last: Index) -> Result<()> {
    if lo > hi {
        return Err(StorageError::InvalidRange { lo, hi });
    }
    if lo < first {
        return Err(StorageError::Compacted {
            index: lo,
            first_index: first,
        });
    }
    if hi > last + 1 {
        return Err(StorageError::Unavailable {
            index: hi - 1,
            last_index: last,
        });
    }
    Ok(())
}

/// Shared bounds check for `term(index)`: `Ok(false)` means "beyond the log".
pub(crate) fn check_term_index(index: Index, first: Index, last: Index) -> Result<bool> {
    if index < first - 1 {
        return Err(StorageError::Compacted {
            index,
            first_index: first,
        });
    }
    Ok(index <= last)
}

/// How many of `sizes` (entry sizes in order, at least one available) fit in `max_bytes`:
/// always at least one.
pub(crate) fn count_within(sizes: impl Iterator<Item = u64>, max_bytes: u64) -> usize {
    let mut total: u64 = 0;
    let mut n = 0;
    for s in sizes {
        total = total.saturating_add(s);
        if n > 0 && total > max_bytes {
            break;
        }
        n += 1;
    }
    n
}
