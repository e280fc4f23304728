//! The conformance suite every [`LogStore`] implementation runs (feature `testing`).
//!
//! A [`Harness`] makes fresh stores and "restarts" them; [`run_all`] runs every check on
//! a fresh store and panics, naming the check, at the first failure. Checks only use the
//! trait, so they pin down the contract itself: two stores that pass behave the same.

use bytes::Bytes;
use raft::{Entry, EntryKind, HardState, Index, Membership, SnapshotMeta, Term};

use crate::error::StorageError;
use crate::log_store::LogStore;

/// How the suite gets stores.
pub trait Harness {
    type Store: LogStore;
    /// A new, empty store.
    fn fresh(&mut self) -> Self::Store;
    /// Drops `store` and recovers it from what is durable, as a restart would. The suite
    /// calls `sync` before, so nothing it checks may be lost.
    fn reopen(&mut self, store: Self::Store) -> Self::Store;
}

type Check<H> = (&'static str, fn(&mut H));

/// The checks, by name.
pub fn checks<H: Harness>() -> Vec<Check<H>> {
    vec![
        ("empty_store", empty_store::<H>),
        ("append_then_read_back", append_then_read_back::<H>),
        ("append_in_batches", append_in_batches::<H>),
        ("append_empty_is_noop", append_empty_is_noop::<H>),
        ("rejects_gap", rejects_gap::<H>),
        (
            "rejects_non_contiguous_batch",
            rejects_non_contiguous_batch::<H>,
        ),
        ("rejects_decreasing_terms", rejects_decreasing_terms::<H>),
        (
            "truncates_suffix_on_conflict",
            truncates_suffix_on_conflict::<H>,
        ),
        ("skips_matching_prefix", skips_matching_prefix::<H>),
        (
            "partial_overlap_appends_tail",
            partial_overlap_appends_tail::<H>,
        ),
        (
            "refuses_truncating_committed",
            refuses_truncating_committed::<H>,
        ),
        ("term_lookup_boundaries", term_lookup_boundaries::<H>),
        ("entries_range_errors", entries_range_errors::<H>),
        ("entries_max_bytes", entries_max_bytes::<H>),
        ("compact_boundaries", compact_boundaries::<H>),
        ("compact_then_append", compact_then_append::<H>),
        (
            "append_below_snapshot_point",
            append_below_snapshot_point::<H>,
        ),
        ("hard_state_round_trip", hard_state_round_trip::<H>),
        ("hard_state_rules", hard_state_rules::<H>),
        ("reset_to_snapshot", reset_to_snapshot::<H>),
        ("align_to_snapshot", align_to_snapshot::<H>),
        (
            "reopen_sees_synced_entries",
            reopen_sees_synced_entries::<H>,
        ),
        ("reopen_after_truncation", reopen_after_truncation::<H>),
        ("reopen_keeps_hard_state", reopen_keeps_hard_state::<H>),
        ("reopen_after_compaction", reopen_after_compaction::<H>),
        ("reopen_after_reset", reopen_after_reset::<H>),
        ("mixed_sizes_many_entries", mixed_sizes_many_entries::<H>),
    ]
}

/// Runs every check, each on a fresh store.
pub fn run_all<H: Harness>(h: &mut H) {
    for (name, check) in checks::<H>() {
        let _announce = Announce(name);
        check(h);
    }
}

/// Names the failing check when a panic unwinds through it.
struct Announce(&'static str);

impl Drop for Announce {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("storage conformance check `{}` failed", self.0);
        }
    }
}

/// Entry `index` of `term`, with data that identifies it.
pub fn entry(index: Index, term: Term) -> Entry {
    Entry {
        term,
        index,
        kind: EntryKind::Normal,
        data: Bytes::from(format!("entry {index} of term {term}")),
    }
}

/// Entries `lo..hi`, all of `term`.
pub fn entries(lo: Index, hi: Index, term: Term) -> Vec<Entry> {
    (lo..hi).map(|i| entry(i, term)).collect()
}

fn all<S: LogStore>(s: &S) -> Vec<Entry> {
    s.entries(s.first_index(), s.last_index() + 1, u64::MAX)
        .expect("whole log readable")
}

fn meta(index: Index, term: Term) -> SnapshotMeta {
    SnapshotMeta {
        index,
        term,
        membership: Membership::new([1, 2, 3]),
    }
}

fn empty_store<H: Harness>(h: &mut H) {
    let s = h.fresh();
    assert_eq!((s.first_index(), s.last_index()), (1, 0));
    assert_eq!(s.term(0).unwrap(), Some(0));
    assert_eq!(s.term(1).unwrap(), None);
    assert_eq!(s.last_term(), 0);
    assert_eq!(s.entries(1, 1, u64::MAX).unwrap(), vec![]);
    assert_eq!(s.hard_state(), HardState::default());
}

fn append_then_read_back<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    let es = entries(1, 11, 1);
    s.append(&es).unwrap();
    assert_eq!((s.first_index(), s.last_index()), (1, 10));
    assert_eq!(all(&s), es);
    assert_eq!(s.entries(4, 7, u64::MAX).unwrap(), es[3..6].to_vec());
    let kinds = [
        Entry {
            kind: EntryKind::Noop,
            data: Bytes::new(),
            ..entry(11, 2)
        },
        Entry {
            kind: EntryKind::ConfChange,
            ..entry(12, 2)
        },
    ];
    s.append(&kinds).unwrap();
    assert_eq!(s.entries(11, 13, u64::MAX).unwrap(), kinds.to_vec());
    assert_eq!(s.last_term(), 2);
}

fn append_in_batches<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    for lo in (1..60).step_by(7) {
        s.append(&entries(lo, lo + 7, 1 + lo / 20)).unwrap();
    }
    assert_eq!(s.last_index(), 63);
    let got = all(&s);
    assert!(got.iter().enumerate().all(|(i, e)| e.index == i as u64 + 1));
    assert_eq!(s.term(63).unwrap(), Some(1 + 57 / 20));
}

fn append_empty_is_noop<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&[]).unwrap();
    s.append(&entries(1, 4, 1)).unwrap();
    s.append(&[]).unwrap();
    assert_eq!(s.last_index(), 3);
    s.sync().unwrap();
    s.sync().unwrap();
}

fn rejects_gap<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    let err = s.append(&entries(2, 4, 1)).unwrap_err();
    assert!(matches!(err, StorageError::InvalidAppend(_)), "{err}");
    s.append(&entries(1, 4, 1)).unwrap();
    let err = s.append(&entries(5, 6, 1)).unwrap_err();
    assert!(matches!(err, StorageError::InvalidAppend(_)), "{err}");
    // A rejected append is a caller error: the store is untouched and still usable.
    assert_eq!(s.last_index(), 3);
    s.append(&entries(4, 6, 1)).unwrap();
    assert_eq!(s.last_index(), 5);
}

fn rejects_non_contiguous_batch<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    let batch = vec![entry(1, 1), entry(2, 1), entry(4, 1)];
    assert!(matches!(
        s.append(&batch),
        Err(StorageError::InvalidAppend(_))
    ));
    let zero = vec![entry(0, 1)];
    assert!(matches!(
        s.append(&zero),
        Err(StorageError::InvalidAppend(_))
    ));
    assert_eq!(s.last_index(), 0);
}

fn rejects_decreasing_terms<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    let batch = vec![entry(1, 2), entry(2, 1)];
    assert!(matches!(
        s.append(&batch),
        Err(StorageError::InvalidAppend(_))
    ));
    s.append(&entries(1, 4, 3)).unwrap();
    assert!(matches!(
        s.append(&[entry(4, 2)]),
        Err(StorageError::InvalidAppend(_))
    ));
    assert_eq!((s.last_index(), s.last_term()), (3, 3));
}

fn truncates_suffix_on_conflict<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1, 11, 1)).unwrap();
    s.append(&entries(6, 9, 2)).unwrap();
    assert_eq!(s.last_index(), 8);
    assert_eq!(s.term(5).unwrap(), Some(1));
    assert_eq!(s.term(6).unwrap(), Some(2));
    assert_eq!(s.term(9).unwrap(), None);
    let mut want = entries(1, 6, 1);
    want.extend(entries(6, 9, 2));
    assert_eq!(all(&s), want);
    // A conflict at the very first entry replaces everything.
    s.append(&entries(1, 3, 3)).unwrap();
    assert_eq!(all(&s), entries(1, 3, 3));
}

fn skips_matching_prefix<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1, 11, 1)).unwrap();
    // A stale, duplicated AppendEntries must not remove the entries after it (§5.3).
    s.append(&entries(3, 6, 1)).unwrap();
    assert_eq!(s.last_index(), 10);
    assert_eq!(all(&s), entries(1, 11, 1));
}

fn partial_overlap_appends_tail<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1, 11, 1)).unwrap();
    let mut batch = entries(8, 11, 1);
    batch.extend(entries(11, 13, 2));
    s.append(&batch).unwrap();
    assert_eq!(s.last_index(), 12);
    assert_eq!(s.entries(8, 13, u64::MAX).unwrap(), batch);
}

fn refuses_truncating_committed<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1, 11, 1)).unwrap();
    s.sync().unwrap();
    s.save_hard_state(&HardState {
        term: 1,
        vote: Some(1),
        commit: 5,
        known_commit: 0,
    })
    .unwrap();
    let err = s.append(&entries(4, 6, 2)).unwrap_err();
    assert!(matches!(err, StorageError::InvalidAppend(_)), "{err}");
    assert_eq!(all(&s), entries(1, 11, 1));
    // Above the commit index a conflict is fine.
    s.append(&entries(6, 7, 2)).unwrap();
    assert_eq!(s.last_index(), 6);
}

fn term_lookup_boundaries<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1, 4, 1)).unwrap();
    s.append(&entries(4, 7, 3)).unwrap();
    assert_eq!(s.term(0).unwrap(), Some(0));
    assert_eq!(s.term(3).unwrap(), Some(1));
    assert_eq!(s.term(4).unwrap(), Some(3));
    assert_eq!(s.term(6).unwrap(), Some(3));
    assert_eq!(s.term(7).unwrap(), None);
    assert_eq!(s.term(u64::MAX - 1).unwrap(), None);
    s.compact(3).unwrap();
    assert_eq!(
        s.term(3).unwrap(),
        Some(1),
        "the snapshot point keeps its term"
    );
    assert!(matches!(
        s.term(2),
        Err(StorageError::Compacted {
            index: 2,
            first_index: 4
        })
    ));
}

fn entries_range_errors<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1, 11, 1)).unwrap();
    assert!(matches!(
        s.entries(5, 4, u64::MAX),
        Err(StorageError::InvalidRange { lo: 5, hi: 4 })
    ));
    assert!(matches!(
        s.entries(5, 12, u64::MAX),
        Err(StorageError::Unavailable { .. })
    ));
    assert_eq!(s.entries(11, 11, u64::MAX).unwrap(), vec![]);
    assert_eq!(s.entries(10, 11, 0).unwrap(), vec![entry(10, 1)]);
    s.compact(4).unwrap();
    assert!(matches!(
        s.entries(4, 6, u64::MAX),
        Err(StorageError::Compacted { index: 4, .. })
    ));
    assert!(matches!(
        s.entries(0, 6, u64::MAX),
        Err(StorageError::Compacted { .. })
    ));
    assert_eq!(s.entries(5, 7, u64::MAX).unwrap(), entries(5, 7, 1));
}

fn entries_max_bytes<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    let es: Vec<Entry> = (1..11)
        .map(|i| Entry {
            data: Bytes::from(vec![i as u8; 100]),
            ..entry(i, 1)
        })
        .collect();
    s.append(&es).unwrap();
    let size = es[0].size_bytes() as u64;
    assert!(es.iter().all(|e| e.size_bytes() as u64 == size));
    // At least one entry, even when it alone exceeds the limit.
    assert_eq!(s.entries(1, 11, 0).unwrap().len(), 1);
    assert_eq!(s.entries(1, 11, size - 1).unwrap().len(), 1);
    assert_eq!(s.entries(1, 11, size).unwrap().len(), 1);
    assert_eq!(s.entries(1, 11, 3 * size).unwrap(), es[..3].to_vec());
    assert_eq!(s.entries(1, 11, 3 * size + size - 1).unwrap().len(), 3);
    assert_eq!(s.entries(2, 11, 100 * size).unwrap(), es[1..].to_vec());
    assert_eq!(
        s.entries(2, 5, 100 * size).unwrap().len(),
        3,
        "hi bounds too"
    );
}

fn compact_boundaries<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1, 11, 1)).unwrap();
    s.compact(0).unwrap();
    assert_eq!(s.first_index(), 1);
    s.compact(5).unwrap();
    assert_eq!((s.first_index(), s.last_index()), (6, 10));
    s.compact(3).unwrap(); // below: a no-op
    s.compact(5).unwrap(); // the snapshot point again: a no-op
    assert_eq!(s.first_index(), 6);
    assert!(matches!(
        s.compact(11),
        Err(StorageError::Unavailable { index: 11, .. })
    ));
    assert_eq!(all(&s), entries(6, 11, 1));
    // Everything: an empty log that remembers the last term.
    s.compact(10).unwrap();
    assert_eq!((s.first_index(), s.last_index()), (11, 10));
    assert_eq!(s.term(10).unwrap(), Some(1));
    assert_eq!(s.last_term(), 1);
    assert_eq!(s.entries(11, 11, u64::MAX).unwrap(), vec![]);
}

fn compact_then_append<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1, 6, 1)).unwrap();
    s.compact(5).unwrap();
    s.append(&entries(6, 9, 2)).unwrap();
    assert_eq!(all(&s), entries(6, 9, 2));
    s.compact(6).unwrap();
    s.append(&entries(8, 10, 3)).unwrap();
    let mut want = vec![entry(7, 2)];
    want.extend(entries(8, 10, 3));
    assert_eq!(all(&s), want);
}

fn append_below_snapshot_point<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1, 11, 2)).unwrap();
    s.compact(5).unwrap();
    // Entries at or below the snapshot point are committed: skipped, not an error.
    s.append(&entries(3, 12, 2)).unwrap();
    assert_eq!((s.first_index(), s.last_index()), (6, 11));
    // ...unless they contradict the snapshot point's term.
    let err = s.append(&[entry(5, 1), entry(6, 3)]).unwrap_err();
    assert!(matches!(err, StorageError::InvalidAppend(_)), "{err}");
    assert_eq!(s.last_index(), 11);
}

fn hard_state_round_trip<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    let states = [
        HardState {
            term: 1,
            vote: None,
            commit: 0,
            known_commit: 0,
        },
        HardState {
            term: 1,
            vote: Some(7),
            commit: 0,
            known_commit: 0,
        },
        HardState {
            term: 4,
            vote: Some(u64::MAX),
            commit: 0,
            known_commit: 0,
        },
        HardState {
            term: 9,
            vote: None,
            commit: 0,
            known_commit: 0,
        },
    ];
    for hs in states {
        s.save_hard_state(&hs).unwrap();
        assert_eq!(s.hard_state(), hs);
    }
    s.append(&entries(1, 4, 9)).unwrap();
    let hs = HardState {
        term: 9,
        vote: None,
        commit: 3,
        known_commit: 0,
    };
    s.save_hard_state(&hs).unwrap();
    assert_eq!(s.hard_state(), hs);
}

fn hard_state_rules<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    let hs = HardState {
        term: 5,
        vote: Some(2),
        commit: 0,
        known_commit: 0,
    };
    s.save_hard_state(&hs).unwrap();
    let back = HardState { term: 4, ..hs };
    assert!(matches!(
        s.save_hard_state(&back),
        Err(StorageError::InvalidHardState(_))
    ));
    let revote = HardState {
        vote: Some(3),
        ..hs
    };
    assert!(matches!(
        s.save_hard_state(&revote),
        Err(StorageError::InvalidHardState(_))
    ));
    assert_eq!(s.hard_state(), hs);
    // A new term frees the vote.
    let next = HardState {
        term: 6,
        vote: Some(3),
        commit: 0,
        known_commit: 0,
    };
    s.save_hard_state(&next).unwrap();
    assert_eq!(s.hard_state(), next);
}

fn reset_to_snapshot<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1, 11, 1)).unwrap();
    s.reset_to_snapshot(&meta(50, 4)).unwrap();
    assert_eq!((s.first_index(), s.last_index()), (51, 50));
    assert_eq!(s.term(50).unwrap(), Some(4));
    assert_eq!(s.last_term(), 4);
    assert!(matches!(s.term(49), Err(StorageError::Compacted { .. })));
    assert!(matches!(
        s.append(&entries(52, 53, 4)),
        Err(StorageError::InvalidAppend(_))
    ));
    s.append(&entries(51, 55, 5)).unwrap();
    assert_eq!(all(&s), entries(51, 55, 5));
    // Resetting to a point inside the log also discards everything.
    s.reset_to_snapshot(&meta(52, 5)).unwrap();
    assert_eq!((s.first_index(), s.last_index()), (53, 52));
}

fn align_to_snapshot<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1, 11, 2)).unwrap();
    // The log holds the snapshot point with the right term: keep what follows.
    s.align_to_snapshot(&meta(6, 2)).unwrap();
    assert_eq!(all(&s), entries(7, 11, 2));
    // Wrong term at the point: discard the log.
    s.align_to_snapshot(&meta(8, 3)).unwrap();
    assert_eq!((s.first_index(), s.last_index()), (9, 8));
    // Beyond the log: discard too.
    s.align_to_snapshot(&meta(20, 3)).unwrap();
    assert_eq!((s.first_index(), s.term(20).unwrap()), (21, Some(3)));
    // The log starts after the snapshot: a hole nobody can fill.
    assert!(matches!(
        s.align_to_snapshot(&meta(5, 1)),
        Err(StorageError::Snapshot(_))
    ));
}

fn reopen_sees_synced_entries<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    let mut want = Vec::new();
    for (lo, term) in [(1, 1), (5, 1), (9, 2)] {
        let es = entries(lo, lo + 4, term);
        s.append(&es).unwrap();
        want.extend(es);
    }
    s.sync().unwrap();
    let s = h.reopen(s);
    assert_eq!((s.first_index(), s.last_index(), s.last_term()), (1, 12, 2));
    assert_eq!(all(&s), want);
    // And it takes appends after recovery.
    let mut s = s;
    s.append(&entries(13, 15, 2)).unwrap();
    s.sync().unwrap();
    let s = h.reopen(s);
    assert_eq!(s.last_index(), 14);
}

fn reopen_after_truncation<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1, 21, 1)).unwrap();
    s.sync().unwrap();
    s.append(&entries(8, 12, 2)).unwrap();
    s.sync().unwrap();
    let s = h.reopen(s);
    let mut want = entries(1, 8, 1);
    want.extend(entries(8, 12, 2));
    assert_eq!(all(&s), want);
}

fn reopen_keeps_hard_state<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1, 6, 3)).unwrap();
    s.sync().unwrap();
    let hs = HardState {
        term: 3,
        vote: Some(2),
        commit: 4,
        known_commit: 0,
    };
    // Durable on return for term and vote: no sync needed.
    s.save_hard_state(&hs).unwrap();
    let s = h.reopen(s);
    let got = s.hard_state();
    assert_eq!((got.term, got.vote), (3, Some(2)));
    assert!(got.commit <= 4, "commit is a hint: it may lag, never lead");
}

fn reopen_after_compaction<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1, 201, 1)).unwrap();
    s.append(&entries(201, 301, 2)).unwrap();
    s.sync().unwrap();
    s.compact(150).unwrap();
    let s = h.reopen(s);
    // Compaction persists at segment granularity: first_index may come back lower.
    assert!(s.first_index() <= 151, "first index {}", s.first_index());
    assert_eq!(s.last_index(), 300);
    assert_eq!(s.term(150).unwrap(), Some(1));
    assert_eq!(s.entries(151, 301, u64::MAX).unwrap().len(), 150);
    let mut s = s;
    s.align_to_snapshot(&meta(150, 1)).unwrap();
    assert_eq!((s.first_index(), s.last_index()), (151, 300));
    // Compacting everything survives a restart too.
    s.compact(300).unwrap();
    let s = h.reopen(s);
    assert_eq!(s.last_index(), 300);
    assert_eq!(s.last_term(), 2);
}

fn reopen_after_reset<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1, 11, 1)).unwrap();
    s.sync().unwrap();
    s.reset_to_snapshot(&meta(40, 3)).unwrap();
    let mut s = h.reopen(s);
    assert_eq!((s.first_index(), s.last_index()), (41, 40));
    assert_eq!(s.term(40).unwrap(), Some(3));
    s.append(&entries(41, 43, 3)).unwrap();
    s.sync().unwrap();
    let s = h.reopen(s);
    assert_eq!(all(&s), entries(41, 43, 3));
}

fn mixed_sizes_many_entries<H: Harness>(h: &mut H) {
    let mut s = h.fresh();
    // Sizes 0..~3 KiB, crossing any small segment bound many times.
    let es: Vec<Entry> = (1..=400u64)
        .map(|i| Entry {
            term: 1 + i / 100,
            index: i,
            kind: EntryKind::Normal,
            data: Bytes::from(vec![(i % 251) as u8; ((i * 37) % 3000) as usize]),
        })
        .collect();
    for chunk in es.chunks(23) {
        s.append(chunk).unwrap();
    }
    assert_eq!(all(&s), es);
    let budget = 10_000;
    let page = s.entries(100, 401, budget).unwrap();
    let bytes: usize = page.iter().map(Entry::size_bytes).sum();
    assert!(bytes <= budget as usize && !page.is_empty());
    let next = &es[99 + page.len()];
    assert!(
        bytes + next.size_bytes() > budget as usize,
        "page stopped early"
    );
    s.sync().unwrap();
    let mut s = h.reopen(s);
    assert_eq!(all(&s), es);
    // Truncate across many segments, then continue.
    s.append(&entries(120, 130, 9)).unwrap();
    s.sync().unwrap();
    let s = h.reopen(s);
    assert_eq!(s.last_index(), 129);
    assert_eq!(s.entries(1, 120, u64::MAX).unwrap(), es[..119].to_vec());
}
