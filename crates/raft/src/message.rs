//! Messages between Raft nodes. Codecs (JSON for the seed, binary for the cluster) live
//! outside the core.

use alloc::vec::Vec;
use bytes::Bytes;

use core::fmt;

use crate::types::{Entry, EntryKind, Index, NodeId, SnapshotMeta, Term};

/// One message between two nodes: an envelope (`from`, `to`, `term`) around a body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The sender (for a relayed append: the follower that passed it on).
    pub from: NodeId,
    /// The addressee; a node drops a message not addressed to it.
    pub to: NodeId,
    /// The sender's term, except for `PreVote` (the term it would campaign in) and a
    /// granted `PreVoteResp` (echoes the request's term).
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// What a message says. Requests and their answers come in pairs (`X` / `XResp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    /// "Could I win an election in `term`?" (Pre-Vote, §9.6 of the thesis). Changes no
    /// state on either side.
    PreVote {
        /// The asker's last log index.
        last_index: Index,
        /// The term of the asker's last log entry.
        last_term: Term,
    },
    /// The answer to a [`MessageBody::PreVote`].
    PreVoteResp {
        /// Whether the voter would vote for the asker.
        granted: bool,
        /// On a refusal: the leader the voter currently follows, so the asker can stand
        /// down instead of retrying.
        leader: Option<NodeId>,
    },
    /// RequestVote (§5.2): "vote for me in `term`".
    Vote {
        /// The candidate's last log index.
        last_index: Index,
        /// The term of the candidate's last log entry.
        last_term: Term,
        /// Set by a leadership transfer: voters skip the lease check.
        transfer: bool,
    },
    /// The answer to a [`MessageBody::Vote`], sent only once the vote is durable.
    VoteResp {
        /// Whether the voter voted for the candidate in this term.
        granted: bool,
    },
    /// AppendEntries (§5.3); with no entries it is a heartbeat.
    Append {
        /// The index just before `entries`: the follower must hold it with `prev_term`.
        prev_index: Index,
        /// The term of the leader's entry at `prev_index`.
        prev_term: Term,
        /// New entries, contiguous from `prev_index + 1`, terms never decreasing.
        entries: Vec<Entry>,
        /// The leader's commit index.
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
    /// The answer to an [`MessageBody::Append`].
    AppendResp {
        /// Whether the follower's log matched at `prev_index` and took the entries.
        success: bool,
        /// On success: the follower's log matches the leader's up to here.
        /// On a rejection: the follower's hint (§5.3 "fast backup"): the largest index
        /// `i <= rejected` whose term is `<= prev_term` in its log, with that term.
        index: Index,
        /// On a rejection: the term of the follower's entry at `index` (0 if none).
        hint_term: Term,
        /// On a rejection: the `prev_index` of the append that did not match.
        rejected: Index,
        /// The stamp of the append answered, echoed.
        stamp: u64,
        /// On success of a relayed append: the followers it passed through, each of which
        /// holds the leader's log up to `vouch_index` durably.
        vouch: Vec<NodeId>,
        /// The index the followers in `vouch` hold durably (0 when `vouch` is empty).
        vouch_index: Index,
    },
    /// One chunk of InstallSnapshot (§7).
    Snapshot {
        /// Which snapshot this chunk belongs to.
        meta: SnapshotMeta,
        /// Where `data` starts in the snapshot's bytes.
        offset: u64,
        /// The chunk's bytes.
        data: Bytes,
        /// Whether this is the last chunk.
        done: bool,
        /// Opaque stamp echoed by the answer (as for appends).
        stamp: u64,
    },
    /// The answer to a [`MessageBody::Snapshot`] chunk.
    SnapshotResp {
        /// Non-zero once the snapshot is installed (or was not needed): the follower's log
        /// now matches the leader's up to here.
        index: Index,
        /// The number of bytes of the transfer the follower holds: where to go on from.
        next_offset: u64,
        /// False when the follower refused the chunk (out of order, unknown transfer,
        /// too large); `next_offset` then says where to resume.
        success: bool,
        /// The stamp of the chunk answered, echoed.
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

    /// The variant's name, for logs and metrics.
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

/// A short human form, one line: `from->to tTERM Body fields…` (the simulator's trace and
/// the transcript tests print this). The alternate form (`{:#}`) adds what the short one
/// leaves out: each entry as `index@term` (with a kind tag for no-ops and membership
/// changes), the relay route, the vouching followers, a snapshot's membership.
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{} t{} ", self.from, self.to, self.term)?;
        fmt::Display::fmt(&self.body, f)?;
        match &self.body {
            // Only a relayed append's author differs from its sender.
            MessageBody::Append { leader, .. } if f.alternate() && *leader != self.from => {
                write_ids(f, "leader", core::slice::from_ref(leader), false)
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for MessageBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let detail = f.alternate();
        match self {
            MessageBody::PreVote {
                last_index,
                last_term,
            } => write!(f, "PreVote last={last_index}@{last_term}"),
            MessageBody::PreVoteResp { granted, leader } => {
                write!(f, "PreVoteResp granted={granted} leader={leader:?}")
            }
            MessageBody::Vote {
                last_index,
                last_term,
                transfer,
            } => {
                write!(f, "Vote last={last_index}@{last_term}")?;
                if *transfer {
                    write!(f, " transfer")?;
                }
                Ok(())
            }
            MessageBody::VoteResp { granted } => write!(f, "VoteResp granted={granted}"),
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
                stamp,
                leader: _,
                relay,
                relayed_by,
            } => {
                write!(
                    f,
                    "Append prev={prev_index}@{prev_term} n={} commit={commit} stamp={stamp}",
                    entries.len()
                )?;
                if detail {
                    if !entries.is_empty() {
                        write!(f, " entries=[")?;
                        for (i, e) in entries.iter().enumerate() {
                            let sep = if i == 0 { "" } else { " " };
                            let kind = match e.kind {
                                EntryKind::Normal => "",
                                EntryKind::Noop => "(noop)",
                                EntryKind::ConfChange => "(conf)",
                            };
                            write!(f, "{sep}{}@{}{kind}", e.index, e.term)?;
                        }
                        write!(f, "]")?;
                    }
                    write_ids(f, "relay", relay, true)?;
                    write_ids(f, "relayed_by", relayed_by, true)?;
                }
                Ok(())
            }
            MessageBody::AppendResp {
                success,
                index,
                hint_term,
                rejected,
                stamp,
                vouch,
                vouch_index,
            } => {
                write!(
                    f,
                    "AppendResp ok={success} index={index} hint={hint_term} rejected={rejected} stamp={stamp}"
                )?;
                if detail && !vouch.is_empty() {
                    write_ids(f, "vouch", vouch, true)?;
                    write!(f, " vouch_index={vouch_index}")?;
                }
                Ok(())
            }
            MessageBody::Snapshot {
                meta,
                offset,
                data,
                done,
                stamp,
            } => {
                write!(
                    f,
                    "Snapshot {}@{} offset={offset} len={} done={done} stamp={stamp}",
                    meta.index,
                    meta.term,
                    data.len()
                )?;
                if detail {
                    let voters: Vec<NodeId> = meta.membership.voters.iter().copied().collect();
                    write_ids(f, "voters", &voters, false)?;
                }
                Ok(())
            }
            MessageBody::SnapshotResp {
                index,
                next_offset,
                success,
                stamp,
            } => write!(
                f,
                "SnapshotResp ok={success} index={index} next_offset={next_offset} stamp={stamp}"
            ),
            MessageBody::TimeoutNow => write!(f, "TimeoutNow"),
        }
    }
}

/// ` name=[1 2 3]` (nothing when `skip_empty` and `ids` is empty).
fn write_ids(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    ids: &[NodeId],
    skip_empty: bool,
) -> fmt::Result {
    if skip_empty && ids.is_empty() {
        return Ok(());
    }
    write!(f, " {name}=[")?;
    for (i, id) in ids.iter().enumerate() {
        let sep = if i == 0 { "" } else { " " };
        write!(f, "{sep}{id}")?;
    }
    write!(f, "]")
}
