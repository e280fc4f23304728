//! Messages between Raft nodes. Codecs (JSON for the seed, binary for the cluster) live
//! outside the core.

use bytes::Bytes;

use crate::types::{Entry, Index, NodeId, SnapshotMeta, Term};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    /// The sender's term, except for `PreVote` (the term it would campaign in) and a
    /// granted `PreVoteResp` (echoes the request's term).
    pub term: Term,
    pub body: MessageBody,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    PreVote {
        last_index: Index,
        last_term: Term,
    },
    PreVoteResp {
        granted: bool,
        /// On a refusal: the leader the voter currently follows, so the asker can stand
        /// down instead of retrying.
        leader: Option<NodeId>,
    },
    Vote {
        last_index: Index,
        last_term: Term,
        /// Set by a leadership transfer: voters skip the lease check.
        transfer: bool,
    },
    VoteResp {
        granted: bool,
    },
    /// AppendEntries (§5.3); with no entries it is a heartbeat.
    Append {
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
        /// Opaque stamp echoed by the response; it lets the leader tell when a quorum heard
        /// it (lease and ReadIndex).
        stamp: u64,
        /// The leader that wrote this append. Equal to `from` unless the append was
        /// relayed by a follower (chain replication, see `Config::relay`).
        leader: NodeId,
        /// Followers to pass the append on to, in order, once it is durable here.
        relay: Vec<NodeId>,
        /// Followers that already accepted it (and made it durable) on its way here.
        relayed_by: Vec<NodeId>,
    },
    AppendResp {
        success: bool,
        /// On success: the follower's log matches the leader's up to here.
        /// On a rejection: the follower's hint (§5.3 "fast backup"): the largest index
        /// `i <= rejected` whose term is `<= prev_term` in its log, with that term.
        index: Index,
        hint_term: Term,
        /// On a rejection: the `prev_index` of the append that did not match.
        rejected: Index,
        stamp: u64,
        /// On success of a relayed append: the followers it passed through, each of which
        /// holds the leader's log up to `vouch_index` durably.
        vouch: Vec<NodeId>,
        vouch_index: Index,
    },
    /// One chunk of InstallSnapshot (§7).
    Snapshot {
        meta: SnapshotMeta,
        offset: u64,
        data: Bytes,
        done: bool,
        stamp: u64,
    },
    SnapshotResp {
        /// The follower's last index after the chunk, or the offset it wants next.
        index: Index,
        next_offset: u64,
        success: bool,
        stamp: u64,
    },
    /// Leadership transfer: "start an election now" (§3.10 of the thesis).
    TimeoutNow,
}

impl MessageBody {
    /// What a node answers an append from an older term: its own (newer) term, in the
    /// envelope, makes the stale leader step down. Carries no hint (stamp 0).
    pub fn stale_term_reply() -> MessageBody {
        MessageBody::AppendResp {
            success: false,
            index: 0,
            hint_term: 0,
            rejected: 0,
            stamp: 0,
            vouch: Vec::new(),
            vouch_index: 0,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            MessageBody::PreVote { .. } => "PreVote",
            MessageBody::PreVoteResp { .. } => "PreVoteResp",
            MessageBody::Vote { .. } => "Vote",
            MessageBody::VoteResp { .. } => "VoteResp",
            MessageBody::Append { .. } => "Append",
            MessageBody::AppendResp { .. } => "AppendResp",
            MessageBody::Snapshot { .. } => "Snapshot",
            MessageBody::SnapshotResp { .. } => "SnapshotResp",
            MessageBody::TimeoutNow => "TimeoutNow",
        }
    }
}
