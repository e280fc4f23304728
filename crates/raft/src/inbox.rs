//! Appends held ahead of a gap (follower side).
//!
//! On a network that reorders messages, a leader's pipeline of appends arrives in any
//! order. A follower takes entries only in order (§5.3: the entry at `prev_index` must
//! be there), so every append that overtakes the one filling its gap used to be
//! rejected; the leader rewound, resent from the follower's end and restarted its window
//! from one append. A late learner caught up at about 50 entries/s with 4-entry appends
//! on a 26–101 ms network (kvsim finding 6). Instead, a follower now keeps a bounded
//! number of such appends and applies them, in order, as soon as the gap is filled.
//!
//! # Safety
//!
//! A held append is applied through exactly the checks a fresh one goes through
//! (`Raft::try_append`: the log-matching check on `prev_index`/`prev_term` *at the time
//! it is applied*, the configuration checks, the merge, the commit rule), and only while
//! we still follow the same leader in the same term as when it arrived (the term check
//! `handle_term` did on arrival is therefore still true). Applying it later is then the
//! same as the network delivering it later, which Raft already tolerates: the inbox
//! neither invents nor reorders anything a network could not. Nothing here is persisted:
//! a restart, a snapshot, a new term or a new leader drops what is held.
//!
//! A held append is answered as the append "our log matches yours up to `synced_to`"
//! would be: a success at `synced_to`, the highest index this term's leader proved our
//! log matches its own (an append of this leader and term that we accepted). Within one
//! term a leader's appends never conflict with each other, so nothing after that
//! acceptance truncated our log below `synced_to`; the commit index we take from it is
//! capped at `synced_to`, as a heartbeat at that point would be. The answer tells the
//! leader we are alive and saw its stamp (CheckQuorum, leases, ReadIndex) without making
//! it rewind; the entries it holds are acknowledged, cumulatively, once the gap is
//! filled. If the append that fills the gap was really lost, the leader's retransmission
//! timeout (no acknowledgement advanced) rewinds it to our match point, and that resend
//! fills the gap.
//!
//! We hold only while synced: before the first append of this leader's term is
//! accepted, a gap is answered with a rejection as before — a new leader probes at its
//! own log's end and must learn where ours ends.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::types::{Entry, Index, NodeId, Term};

/// One append kept until its `prev_index` is in our log.
#[derive(Debug)]
pub(crate) struct HeldAppend {
    pub prev_term: Term,
    pub entries: Vec<Entry>,
    pub commit: Index,
    pub stamp: u64,
    bytes: usize,
}

/// The appends a follower holds ahead of a gap, for one leader in one term.
///
/// Invariants (checked in `invariants.rs`): at most `max_held_appends` appends and
/// `max_held_bytes` entry bytes; non-empty only while we follow `leader` in `term`;
/// every held append starts beyond the end of our log (`prev_index > last_index`), since
/// each time the log grows the ones it reaches are applied or dropped.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    /// The leader and term the state below belongs to.
    key: Option<(Term, NodeId)>,
    /// The highest index an append of `key` proved our log matches the leader's; `None`
    /// until one was accepted (nothing is held before).
    synced_to: Option<Index>,
    /// Held appends by `prev_index`.
    held: BTreeMap<Index, HeldAppend>,
    bytes: usize,
}

impl Inbox {
    /// Forgets everything unless it belongs to `leader` in `term`.
    pub fn keep_only(&mut self, term: Term, leader: Option<NodeId>) {
        if leader.map(|l| (term, l)) != self.key {
            self.clear();
        }
    }

    /// Forgets everything (a snapshot replaced our log, a restart, a new term or leader).
    pub fn clear(&mut self) {
        self.key = None;
        self.synced_to = None;
        self.held.clear();
        self.bytes = 0;
    }

    /// An append of `leader` in `term` was accepted: our log matches its log up to `index`.
    pub fn note_synced(&mut self, term: Term, leader: NodeId, index: Index) {
        if self.key != Some((term, leader)) {
            self.clear();
            self.key = Some((term, leader));
        }
        self.synced_to = Some(self.synced_to.map_or(index, |s| s.max(index)));
    }

    /// The match point proved by `leader` in `term`, if any (see the module docs).
    pub fn synced_to(&self, term: Term, leader: NodeId) -> Option<Index> {
        if self.key == Some((term, leader)) {
            self.synced_to
        } else {
            None
        }
    }

    /// Keeps an append of the synced leader that starts at `prev_index`, beyond our
    /// log. Returns false (nothing kept) when the bounds would be exceeded; an append at
    /// a `prev_index` already held replaces it only if it reaches further.
    pub fn hold(
        &mut self,
        max_appends: usize,
        max_bytes: usize,
        prev_index: Index,
        append: (Term, Vec<Entry>, Index, u64),
    ) -> bool {
        let (prev_term, entries, commit, stamp) = append;
        let bytes: usize = entries.iter().map(Entry::size_bytes).sum();
        let last = entries.last().map_or(prev_index, |e| e.index);
        let replaced = self.held.get(&prev_index);
        if let Some(old) = replaced {
            let old_last = old.entries.last().map_or(prev_index, |e| e.index);
            if old_last >= last {
                // Already held (a duplicate): nothing more to keep, and nothing refused.
                return true;
            }
        }
        let (count, freed) = match replaced {
            Some(old) => (self.held.len() - 1, old.bytes),
            None => (self.held.len(), 0),
        };
        if count >= max_appends || self.bytes - freed + bytes > max_bytes {
            return false;
        }
        self.bytes = self.bytes - freed + bytes;
        self.held.insert(
            prev_index,
            HeldAppend {
                prev_term,
                entries,
                commit,
                stamp,
                bytes,
            },
        );
        true
    }

    /// Takes the held append with the lowest `prev_index` if our log (ending at
    /// `last_index`) reaches it.
    pub fn take_ready(&mut self, last_index: Index) -> Option<(Index, HeldAppend)> {
        let entry = self.held.first_entry()?;
        if *entry.key() > last_index {
            return None;
        }
        let (prev_index, held) = entry.remove_entry();
        self.bytes -= held.bytes;
        Some((prev_index, held))
    }

    /// How many appends are held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Entry bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The leader and term held appends belong to.
    pub fn key(&self) -> Option<(Term, NodeId)> {
        self.key
    }

    /// The lowest `prev_index` held.
    pub fn first_prev_index(&self) -> Option<Index> {
        self.held.keys().next().copied()
    }
}
