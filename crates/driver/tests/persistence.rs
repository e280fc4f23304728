//! The order in which the driver writes a `Ready` to its store.
//!
//! A follower told that more is committed than its log holds (`known_commit`, raft's
//! hard state) must have that durable before the entries it appends next: they may
//! replay configurations of an earlier life of its node ID, and after a crash only that
//! index tells it they are superseded (kvsim finding 7). The store syncs such a rise on
//! `save_hard_state`; the driver must call it before `append`.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use driver::{Node, NodeOptions, Transport};
use raft::{
    Config, Entry, EntryKind, HardState, Index, Membership, Message, MessageBody, SnapshotMeta,
    Term,
};
use storage::{LogStore, MemLogStore, Result};

#[derive(Clone, Debug, PartialEq)]
enum Call {
    Append { first: Index, last: Index },
    SaveHardState(HardState),
    Sync,
}

/// A store that records the writes made to it, in order.
struct Recording {
    inner: MemLogStore,
    calls: Rc<RefCell<Vec<Call>>>,
}

impl LogStore for Recording {
    fn append(&mut self, entries: &[Entry]) -> Result<()> {
        if let (Some(a), Some(b)) = (entries.first(), entries.last()) {
            self.calls.borrow_mut().push(Call::Append {
                first: a.index,
                last: b.index,
            });
        }
        self.inner.append(entries)
    }
    fn sync(&mut self) -> Result<()> {
        self.calls.borrow_mut().push(Call::Sync);
        self.inner.sync()
    }
    fn save_hard_state(&mut self, hs: &HardState) -> Result<()> {
        self.calls.borrow_mut().push(Call::SaveHardState(*hs));
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

struct Discard;

impl Transport for Discard {
    fn send(&mut self, _msg: Message) {}
}

fn append_from_leader(prev_index: Index, entries: Vec<Entry>, commit: Index) -> Message {
    Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::Append {
            prev_index,
            prev_term: if prev_index == 0 { 0 } else { 1 },
            entries,
            commit,
            stamp: 1,
            leader: 1,
            relay: Vec::new(),
            relayed_by: Vec::new(),
        },
    }
}

fn entry(index: Index) -> Entry {
    Entry {
        term: 1,
        index,
        kind: EntryKind::Noop,
        data: Bytes::new(),
    }
}

/// Failed before: the driver appended the entries first and saved the hard state (with
/// the new `known_commit`) after them, so a crash between the two kept entries without it.
#[test]
fn a_rising_known_commit_is_saved_before_the_entries_it_comes_with() {
    let calls = Rc::new(RefCell::new(Vec::new()));
    let store = Recording {
        inner: MemLogStore::with_durability_model(),
        calls: calls.clone(),
    };
    let mut node = Node::open(
        Config::new(2),
        Membership::new([1, 2, 3]),
        Discard,
        store,
        NodeOptions::default(),
    )
    .expect("open");
    calls.borrow_mut().clear();
    // A catching-up follower: entries 1..=5 arrive, the leader has committed 50.
    node.step(1, append_from_leader(0, (1..=5).map(entry).collect(), 50));
    node.process();
    let calls = calls.borrow().clone();
    let append_at = calls
        .iter()
        .position(|c| matches!(c, Call::Append { .. }))
        .expect("the entries were appended");
    let floor_at = calls
        .iter()
        .position(|c| matches!(c, Call::SaveHardState(hs) if hs.known_commit == 50))
        .expect("the known commit index was saved");
    assert!(floor_at < append_at, "{calls:?}");
    // Saved before the entries, it may not claim a commit index they bring.
    let Call::SaveHardState(first) = &calls[floor_at] else {
        unreachable!()
    };
    assert_eq!(first.commit, 0, "{calls:?}");
    assert_eq!(node.store().hard_state().commit, 5);
    assert_eq!(node.store().hard_state().known_commit, 50);

    // Still catching up: entries 6..=60, commit 55 beyond the log (5) before them.
    let calls = step_and_record(&mut node, 5, 6..=60, 55);
    assert!(
        matches!(&calls[..2], [Call::SaveHardState(hs), Call::Append { .. }] if hs.known_commit == 55),
        "{calls:?}"
    );
    // Caught up (the log already reaches the leader's commit index): the plain order,
    // append then one save (a hint, no sync).
    let calls = step_and_record(&mut node, 60, 61..=70, 60);
    assert!(
        matches!(
            &calls[..],
            [Call::Append { .. }, Call::SaveHardState(_), Call::Sync]
        ),
        "{calls:?}"
    );
}

fn step_and_record(
    node: &mut Node<Discard, Recording>,
    prev_index: Index,
    indexes: std::ops::RangeInclusive<Index>,
    commit: Index,
) -> Vec<Call> {
    node.store_mut().calls.borrow_mut().clear();
    node.step(
        2,
        append_from_leader(prev_index, indexes.map(entry).collect(), commit),
    );
    node.process();
    let calls = node.store().calls.borrow().clone();
    calls
}
