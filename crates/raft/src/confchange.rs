//! Membership changes (thesis §4): what may be asked for, what the leader appends, and
//! why a change is refused.
//!
//! # Joint consensus, with an automatic leave
//!
//! Every change of *voters* goes through a joint configuration (§4.3): the leader
//! appends `C_old,new` (the new voters as `voters`, the old ones as `voters_outgoing`),
//! and once that entry commits it appends `C_new` on its own (`maybe_leave_joint`). While
//! joint, elections, commitment, CheckQuorum and leases need a majority of both halves.
//! A change that touches only learners or metadata moves no quorum and is appended as
//! the new configuration directly.
//!
//! A configuration takes effect on a node as soon as it is in its log, committed or not
//! (§4.1), and is rolled back if the entry is truncated away (`ConfigHistory`).
//!
//! # What the leader refuses ([`ConfChangeError`])
//!
//! - any change until an entry of its own term has committed (it may not know yet which
//!   configuration is committed: the bug of single-server changes that §4.1's fix, and
//!   etcd's, close);
//! - a change while another is in flight: the latest configuration is not yet committed,
//!   or the cluster is still joint (at most one change at a time);
//! - a change that names the wrong nodes (adding a member, promoting a non-learner,
//!   removing a stranger, one node twice, no voter left);
//! - promoting a learner that is not caught up (its log does not match the leader's
//!   yet, or it was not heard from within an election timeout);
//! - a change whose resulting quorum (both halves while joint) the voters that are
//!   caught up and were heard from within an election timeout could not form: it would
//!   stop the cluster from committing — including the entry that would undo it.
//!
//! # Removing the leader
//!
//! A leader that is not a voter of a configuration it committed steps down (§4.2.2),
//! first sending `TimeoutNow` to the most caught-up voter so no election timeout is
//! lost. The driver may also hand leadership over before it asks.

use alloc::collections::BTreeSet;

use bytes::Bytes;

use crate::membership::Membership;
use crate::types::{Index, NodeId};

/// One step of a membership change (several may go in one request, applied together).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfChange {
    /// A new member that receives the log and snapshots but neither votes nor counts
    /// for any quorum; `metadata` is carried with the configuration, opaque to the core.
    AddLearner {
        /// The new member.
        id: NodeId,
        /// Opaque bytes (the server's: the member's peer address).
        metadata: Bytes,
    },
    /// A learner becomes a voter.
    Promote {
        /// The learner.
        id: NodeId,
    },
    /// A voter or a learner leaves the cluster.
    Remove {
        /// The member.
        id: NodeId,
    },
    /// Replaces a member's metadata (a member that moved to another address).
    SetMetadata {
        /// The member.
        id: NodeId,
        /// Its new opaque bytes.
        metadata: Bytes,
    },
}

impl ConfChange {
    /// The member the step is about.
    pub fn id(&self) -> NodeId {
        match self {
            ConfChange::AddLearner { id, .. }
            | ConfChange::Promote { id }
            | ConfChange::Remove { id }
            | ConfChange::SetMetadata { id, .. } => *id,
        }
    }
}

/// Why [`crate::Raft::propose_conf_change`] refused. Nothing was appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfChangeError {
    /// Only the leader changes the membership; here is who we think leads, if anyone.
    NotLeader {
        /// The leader this node follows, if it knows one.
        leader: Option<NodeId>,
    },
    /// Leadership is being handed to this node: ask it once it leads.
    Transferring {
        /// The transfer's target.
        to: NodeId,
    },
    /// This leader has not committed an entry of its term yet: retry shortly.
    TermNotCommitted,
    /// Another change is in flight (its entry at `index` is not committed, or the
    /// cluster has not left its joint configuration yet): retry once it completes.
    InProgress {
        /// The index of the configuration entry still in flight.
        index: Index,
    },
    /// The request holds no step.
    Empty,
    /// One node appears in two steps of the request.
    Duplicate(NodeId),
    /// The node to add is already a member.
    AlreadyMember(NodeId),
    /// The node to remove or update is no member.
    NotAMember(NodeId),
    /// The node to promote is not a learner.
    NotALearner(NodeId),
    /// The learner to promote is not caught up: its log does not match the leader's
    /// (it is still being probed or sent a snapshot), does not yet hold the
    /// configuration in force (it might know none, and so vote for no one), or it was
    /// not heard from within an election timeout. A voter that cannot take part weakens
    /// every quorum.
    NotCaughtUp(NodeId),
    /// The change would leave no voter.
    NoVoters,
    /// The resulting configuration's quorum (both halves while joint) could not be
    /// formed by the voters that are caught up and were heard from within an election
    /// timeout: the cluster would stop committing.
    WouldLoseQuorum {
        /// Voters of the resulting configuration (both halves) able to take part now.
        healthy: BTreeSet<NodeId>,
    },
    /// A refusal for health (`WouldLoseQuorum`, `NotCaughtUp`) by a leader elected less
    /// than an election timeout ago: a member it has not heard from yet may simply not
    /// have answered it yet (a follower is healthy once its first acknowledgement puts it
    /// in the pipelined state). Passes by itself within about a heartbeat if the members
    /// are up; the same request then gets the standing answer.
    Settling,
    /// The configuration would not fit in one message (metadata too large).
    TooLarge,
    /// The uncommitted tail of the log is at its limit: retry later.
    Busy,
}

impl ConfChangeError {
    /// Whether the same request may succeed unchanged once the cluster moves on by
    /// itself (a new leader commits an entry of its term, a change in flight completes,
    /// a leadership transfer ends, the uncommitted tail drains): a client may retry it
    /// after a short wait. Every other
    /// refusal stands until someone does something (starts the learner, names another
    /// node, heals the quorum).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConfChangeError::TermNotCommitted
                | ConfChangeError::InProgress { .. }
                | ConfChangeError::Transferring { .. }
                | ConfChangeError::Busy
                | ConfChangeError::Settling
        )
    }
}

impl core::fmt::Display for ConfChangeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfChangeError::NotLeader { leader: Some(l) } => {
                write!(f, "this node does not lead; node {l} does")
            }
            ConfChangeError::NotLeader { leader: None } => {
                write!(f, "this node does not lead, and knows no leader")
            }
            ConfChangeError::Transferring { to } => {
                write!(f, "leadership is being handed to node {to}; ask it")
            }
            ConfChangeError::TermNotCommitted => write!(
                f,
                "the leader has not committed an entry of its term yet; retry shortly"
            ),
            ConfChangeError::InProgress { index } => write!(
                f,
                "another membership change (entry {index}) is still in progress; retry once it completes"
            ),
            ConfChangeError::Empty => write!(f, "the change is empty"),
            ConfChangeError::Duplicate(id) => {
                write!(f, "node {id} appears twice in one change")
            }
            ConfChangeError::AlreadyMember(id) => write!(f, "node {id} is already a member"),
            ConfChangeError::NotAMember(id) => write!(f, "node {id} is not a member"),
            ConfChangeError::NotALearner(id) => write!(f, "node {id} is not a learner"),
            ConfChangeError::NotCaughtUp(id) => write!(
                f,
                "learner {id} has not caught up with the leader's log (or was not heard from \
                 recently): promote it once it has"
            ),
            ConfChangeError::NoVoters => write!(f, "the change would leave no voter"),
            ConfChangeError::WouldLoseQuorum { healthy } => write!(
                f,
                "the new configuration's quorum could not be formed: only voters {healthy:?} \
                 are caught up and were heard from recently"
            ),
            ConfChangeError::Settling => write!(
                f,
                "the leader was elected moments ago and has not heard from every member yet; \
                 retry shortly"
            ),
            ConfChangeError::TooLarge => write!(f, "the configuration would not fit in a message"),
            ConfChangeError::Busy => write!(f, "the uncommitted log is at its limit; retry later"),
        }
    }
}

/// The configuration `changes` lead to from `current` (plain, not joint), and whether
/// it needs a joint step (it changes the voters). Checks the request's own consistency,
/// not the cluster's health.
pub(crate) fn target(
    current: &Membership,
    changes: &[ConfChange],
) -> Result<(Membership, bool), ConfChangeError> {
    if changes.is_empty() {
        return Err(ConfChangeError::Empty);
    }
    let mut seen = BTreeSet::new();
    let mut next = current.clone();
    next.voters_outgoing.clear();
    for change in changes {
        let id = change.id();
        if !seen.insert(id) {
            return Err(ConfChangeError::Duplicate(id));
        }
        match change {
            ConfChange::AddLearner { metadata, .. } => {
                if next.is_member(id) {
                    return Err(ConfChangeError::AlreadyMember(id));
                }
                next.learners.insert(id);
                next.metadata.insert(id, metadata.clone());
            }
            ConfChange::Promote { .. } => {
                if !next.learners.remove(&id) {
                    return Err(ConfChangeError::NotALearner(id));
                }
                next.voters.insert(id);
            }
            ConfChange::Remove { .. } => {
                if !next.voters.remove(&id) && !next.learners.remove(&id) {
                    return Err(ConfChangeError::NotAMember(id));
                }
                next.metadata.remove(&id);
            }
            ConfChange::SetMetadata { metadata, .. } => {
                if !next.is_member(id) {
                    return Err(ConfChangeError::NotAMember(id));
                }
                next.metadata.insert(id, metadata.clone());
            }
        }
    }
    if next.voters.is_empty() {
        return Err(ConfChangeError::NoVoters);
    }
    let joint = next.voters != current.voters;
    if joint {
        next.voters_outgoing = current.voters.clone();
    }
    Ok((next, joint))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(id: NodeId) -> ConfChange {
        ConfChange::AddLearner {
            id,
            metadata: Bytes::from_static(b"addr"),
        }
    }

    #[test]
    fn learner_changes_are_direct_voter_changes_joint() {
        let cur = Membership::new([1, 2, 3]);
        let (next, joint) = target(&cur, &[add(4)]).unwrap();
        assert!(!joint);
        assert!(next.learners.contains(&4) && next.voters_outgoing.is_empty());
        let (next2, joint) = target(&next, &[ConfChange::Promote { id: 4 }]).unwrap();
        assert!(joint);
        assert_eq!(next2.voters_outgoing, cur.voters);
        assert_eq!(next2.voters, [1, 2, 3, 4].into_iter().collect());
        assert_eq!(next2.metadata.get(&4).map(|b| &b[..]), Some(&b"addr"[..]));
        let (next3, joint) = target(&cur, &[ConfChange::Remove { id: 3 }]).unwrap();
        assert!(joint);
        assert_eq!(next3.voters, [1, 2].into_iter().collect());
    }

    #[test]
    fn inconsistent_requests_are_refused() {
        let cur = Membership::new([1, 2, 3]);
        assert_eq!(target(&cur, &[]), Err(ConfChangeError::Empty));
        assert_eq!(
            target(&cur, &[add(2)]),
            Err(ConfChangeError::AlreadyMember(2))
        );
        assert_eq!(
            target(&cur, &[ConfChange::Promote { id: 2 }]),
            Err(ConfChangeError::NotALearner(2))
        );
        assert_eq!(
            target(&cur, &[ConfChange::Remove { id: 9 }]),
            Err(ConfChangeError::NotAMember(9))
        );
        assert_eq!(
            target(&cur, &[add(4), ConfChange::Promote { id: 4 }]),
            Err(ConfChangeError::Duplicate(4))
        );
        let one = Membership::new([1]);
        assert_eq!(
            target(&one, &[ConfChange::Remove { id: 1 }]),
            Err(ConfChangeError::NoVoters)
        );
    }
}
