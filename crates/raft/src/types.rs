//! Plain data types shared by the core, the storage crate and the codecs.
//!
//! Nothing here knows about wire formats: codecs live outside the core.

use bytes::Bytes;

/// A replica's identity. The seed protocol's four-hex-digit IDs map onto the low 16 bits.
pub type NodeId = u64;
/// A Raft term (§5.1). Term 0 is "before any election".
pub type Term = u64;
/// A log position. Index 0 is the empty prefix; the first real entry has index 1.
pub type Index = u64;

/// What an entry carries. The core only interprets `Noop` and `ConfChange`; `Normal`
/// payloads are opaque bytes handed to the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// An application command.
    Normal,
    /// The empty entry a new leader appends to commit its term (§5.4.2, §8).
    Noop,
    /// A membership change; `data` is an encoded [`crate::Membership`].
    ConfChange,
}

impl EntryKind {
    /// The kind's tag in the binary codecs (stable: stored on disk).
    pub fn as_u8(self) -> u8 {
        match self {
            EntryKind::Normal => 0,
            EntryKind::Noop => 1,
            EntryKind::ConfChange => 2,
        }
    }
    /// The kind for a codec tag; `None` for a tag no version ever wrote.
    pub fn from_u8(tag: u8) -> Option<EntryKind> {
        match tag {
            0 => Some(EntryKind::Normal),
            1 => Some(EntryKind::Noop),
            2 => Some(EntryKind::ConfChange),
            _ => None,
        }
    }
}

/// One log entry. Invariant: within a log, indexes are contiguous and terms never decrease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// Its position in the log (1-based).
    pub index: Index,
    /// What `data` holds.
    pub kind: EntryKind,
    /// The payload: opaque for `Normal`, empty for `Noop`, a membership for `ConfChange`.
    pub data: Bytes,
}

impl Entry {
    /// Bytes this entry costs in a message or on disk, for flow control and batching.
    pub fn size_bytes(&self) -> usize {
        self.data.len() + 24
    }
}

/// The state that must be durable before the node answers any message that depends on it
/// (Figure 2, "Persistent state on all servers"). `commit` is stored as a hint only: it may
/// lag, and recovery never trusts it beyond what the log holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// Whom it voted for in `term`, if anyone (at most one vote per term).
    pub vote: Option<NodeId>,
    /// The commit index when this was written (a hint, see above).
    pub commit: Index,
    /// The highest index a leader (or a snapshot) told this node is committed: a fact
    /// about the cluster, unlike `commit`, which never exceeds the node's own log. While
    /// the log ends before it, the node neither campaigns nor grants a vote to a
    /// candidate whose log ends before it (`Raft::may_campaign`). It must survive a
    /// restart whenever it exceeds the log (storage syncs it then, before the entries
    /// that follow): a node re-added on a wiped disk replays configurations of its
    /// earlier life, and only this tells it they are superseded. 0 in hard states
    /// written before it existed.
    pub known_commit: Index,
}

/// Where a snapshot cuts the log: everything up to and including `index` is in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// The last log index the snapshot covers.
    pub index: Index,
    /// The term of the entry at `index`.
    pub term: Term,
    /// Voters and learners as of `index`.
    pub membership: crate::Membership,
}

/// A state-machine snapshot: the application's bytes for everything up to `meta.index`.
/// `data` is opaque to the core; it is cheap to clone and slice (InstallSnapshot chunks).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Where the snapshot cuts the log, and the membership at that point.
    pub meta: SnapshotMeta,
    /// The application's serialised state machine.
    pub data: Bytes,
}
