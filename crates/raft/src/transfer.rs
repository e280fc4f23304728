//! Leadership transfer (thesis §3.10): the leader hands its role to a chosen voter
//! without waiting for an election timeout — for a rolling restart, or to move the
//! leader off a node about to be removed or stopped.
//!
//! 1. [`Raft::transfer_leader`] records the target. From then on the leader takes no
//!    new proposals ([`ProposeError::Transferring`]): the target must be able to catch
//!    up with a log that has stopped growing.
//! 2. Once the target's match index reaches the leader's last index (at once, or when
//!    its acknowledgement arrives), the leader sends it `TimeoutNow`; the target
//!    campaigns at once in the next term, its vote requests marked as a transfer so
//!    voters inside a lease still answer (`handle_term`).
//! 3. The new leader's first message deposes the old one. If that does not happen
//!    within an election timeout — the target died, or its campaign failed — the
//!    transfer is abandoned and the leader takes proposals again.
//!
//! Reads: from the moment `TimeoutNow` goes out the leader serves no read from its
//! lease for the rest of its term (`Leadership::lease_given_up`): voters grant the
//! target's transfer vote requests inside their leases, so a lease no longer means no
//! other leader can be elected. ReadIndex reads still work (they need a quorum of this
//! term).
//!
//! A transfer belongs to one leadership ([`crate::leadership::Leadership`]): stepping
//! down drops it with the rest. `TimeoutNow` is honoured only from the leader the
//! receiver follows, in its term (`Raft::timeout_now_from_our_leader`).

use crate::message::MessageBody;
use crate::raft::Raft;
use crate::types::NodeId;

/// A transfer in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Transfer {
    /// The voter that is to lead.
    pub target: NodeId,
    /// When it is abandoned if this leader still leads (an election timeout after it
    /// began).
    pub deadline: u64,
    /// `TimeoutNow` went out.
    pub sent: bool,
}

/// Why [`Raft::transfer_leader`] refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferError {
    /// Only the leader hands over leadership; here is who we think leads, if anyone.
    NotLeader {
        /// The leader this node follows, if it knows one.
        leader: Option<NodeId>,
    },
    /// The target is this leader itself.
    AlreadyLeader,
    /// The target does not vote in the current configuration (a learner, or no member).
    NotAVoter(NodeId),
    /// Another transfer is in progress, to this node.
    InProgress(NodeId),
}

impl core::fmt::Display for TransferError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TransferError::NotLeader { leader: Some(l) } => {
                write!(f, "this node does not lead; node {l} does")
            }
            TransferError::NotLeader { leader: None } => {
                write!(f, "this node does not lead, and knows no leader")
            }
            TransferError::AlreadyLeader => write!(f, "the target already leads"),
            TransferError::NotAVoter(id) => write!(f, "node {id} is not a voter"),
            TransferError::InProgress(id) => {
                write!(f, "a transfer to node {id} is already in progress")
            }
        }
    }
}

impl Raft {
    /// Starts handing leadership to `target` (see the module docs). `Ok` means the
    /// transfer started (or was already under way to the same target); whether it
    /// succeeded shows as a leader change, within an election timeout.
    pub fn transfer_leader(&mut self, target: NodeId) -> Result<(), TransferError> {
        if !self.is_leader() {
            return Err(TransferError::NotLeader {
                leader: self.leader(),
            });
        }
        if target == self.id() {
            return Err(TransferError::AlreadyLeader);
        }
        if !self.membership().is_voter(target) {
            return Err(TransferError::NotAVoter(target));
        }
        let deadline = self.now.saturating_add(self.cfg.election_timeout_ticks);
        let Some(lead) = self.leadership.as_mut() else {
            return Err(TransferError::NotLeader { leader: None });
        };
        match lead.transfer {
            Some(t) if t.target == target => return Ok(()),
            Some(t) => return Err(TransferError::InProgress(t.target)),
            None => {}
        }
        lead.transfer = Some(Transfer {
            target,
            deadline,
            sent: false,
        });
        self.advance_transfer();
        self.check_invariants();
        Ok(())
    }

    /// The voter leadership is being handed to, while a transfer is in progress.
    pub fn transferring_to(&self) -> Option<NodeId> {
        self.leadership.as_ref()?.transfer.map(|t| t.target)
    }

    /// Sends `TimeoutNow` once the target holds our whole log; until then, hurries its
    /// catch-up with an append. Called when the transfer starts and on each of the
    /// target's acknowledgements.
    pub(crate) fn advance_transfer(&mut self) {
        let Some(t) = self.leadership.as_ref().and_then(|l| l.transfer) else {
            return;
        };
        if t.sent {
            return;
        }
        let last = self.log.last_index();
        let caught_up = self
            .progress(t.target)
            .is_some_and(|p| p.match_index >= last);
        if caught_up {
            if let Some(lead) = self.leadership.as_mut() {
                lead.transfer = Some(Transfer { sent: true, ..t });
                lead.lease_given_up = true;
            }
            self.send(t.target, MessageBody::TimeoutNow);
        } else {
            self.send_append(t.target);
        }
    }

    /// Abandons a transfer whose deadline passed (we still lead, so it failed).
    pub(crate) fn tick_transfer(&mut self) {
        let now = self.now;
        if let Some(lead) = self.leadership.as_mut() {
            if lead.transfer.is_some_and(|t| now >= t.deadline) {
                lead.transfer = None;
            }
        }
    }

    /// The transfer's deadline, if one is in progress (for `next_deadline`).
    pub(crate) fn transfer_deadline(&self) -> Option<u64> {
        self.leadership.as_ref()?.transfer.map(|t| t.deadline)
    }
}
