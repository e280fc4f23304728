//! Following what the applied log did: the state machine's events (`kv::events`), each
//! with the index of the entry that produced it, for a server to deliver to watchers.
//!
//! Off unless asked for ([`Node::record_events`]): the simulator and the seed replica
//! never pay for it. Every entry's events come in index order; a snapshot installed from
//! the leader replaces the state machine without applying the entries it covers, so their
//! events were never produced here: a [`AppliedEvents::Reset`] says so, and whoever keeps
//! events knows it holds none before that index.

use raft::Index;
use storage::LogStore;

use crate::node::{Node, Transport};

/// What the state machine did, in apply order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppliedEvents {
    /// The entry at `index` produced these events (entries that produced none are left
    /// out).
    Entry {
        index: Index,
        events: Vec<kv::Event>,
    },
    /// The state machine is at `index` with no events known for the entries up to it
    /// (recording started there, or a snapshot was installed).
    Reset { index: Index },
}

impl<T: Transport, S: LogStore> Node<T, S> {
    /// Starts recording events from here: the first item is a `Reset` at the applied
    /// index (at start: the snapshot restored, or 0), then every applied entry's events.
    /// Drain them with [`Node::take_applied_events`] after each `process`.
    pub fn record_events(&mut self) {
        self.kv.record_events(true);
        self.applied_events = Some(vec![AppliedEvents::Reset {
            index: self.applied,
        }]);
    }

    /// The events recorded since the last call, in apply order.
    pub fn take_applied_events(&mut self) -> Vec<AppliedEvents> {
        self.applied_events
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The index of the last entry the state machine applied.
    pub fn applied_index(&self) -> Index {
        self.applied
    }

    /// After applying the entry at `index`: its events, if recording.
    pub(crate) fn collect_events(&mut self, index: Index) {
        let Some(out) = self.applied_events.as_mut() else {
            return;
        };
        let events = self.kv.take_events();
        if !events.is_empty() {
            out.push(AppliedEvents::Entry { index, events });
        }
    }

    /// The state machine was replaced by a snapshot: recording goes on in the new one,
    /// from its index.
    pub(crate) fn events_reset(&mut self) {
        let Some(out) = self.applied_events.as_mut() else {
            return;
        };
        self.kv.record_events(true);
        out.push(AppliedEvents::Reset {
            index: self.applied,
        });
    }
}
