//! Membership changes through the driver (raft's `reconfig.rs` does the consensus part):
//! a [`Request::ChangeMembership`] is answered once the change is complete — its
//! configuration committed and, for a change of voters, the joint configuration left —
//! or refused with the core's reason; applied configurations are reported to the
//! embedder, which learns new members' addresses from their metadata.
//!
//! Invariants:
//! - a change is answered [`Response::MembershipChanged`] only once a plain (not joint)
//!   configuration at or after its entry has been applied here, and only if the entry
//!   applied at its index is the one we proposed (same term);
//! - an answer that promises "not executed" ([`Response::MembershipRefused`], a
//!   redirect) is given only when the entry was refused by the core or another entry
//!   took its index.
//!
//! Removing the leader: the leader first hands leadership to the most caught-up voter
//! that stays, holds the request meanwhile, and it goes on to the new leader (the core
//! would also cope with a leader removing itself: it steps down once the change
//! commits). If the transfer fails, the leader makes the change itself.

use raft::{ConfChange, ConfChangeError, Entry, EntryKind, Index, Membership, NodeId};
use storage::LogStore;

use crate::node::{Node, Transport};
use crate::request::{ReqId, Request, Response};

/// Configurations applied and not yet taken by the embedder, kept at most: the newest
/// is what matters, so older ones are dropped beyond this.
const MAX_UNTAKEN_CONFIGS: usize = 64;

impl<T: Transport, S: LogStore> Node<T, S> {
    /// Leader: proposes a membership change for request `id` (or first hands leadership
    /// over, if it removes us).
    pub(crate) fn serve_conf_change(&mut self, id: ReqId, changes: Vec<ConfChange>) {
        if self.removes_this_voter(&changes) && !self.removal_handovers.contains(&id) {
            if let Some(target) = self.handover_target(&changes) {
                if self.raft.transfer_leader(target).is_ok() {
                    self.removal_handovers.insert(id);
                    self.hold(id, Request::ChangeMembership(changes), None);
                    return;
                }
            }
        }
        match self.raft.propose_conf_change(&changes) {
            Ok(index) => {
                self.stats.conf_changes_proposed += 1;
                self.conf_changes.insert(index, (self.raft.term(), id));
            }
            Err(ConfChangeError::NotLeader { leader }) => {
                self.respond(id, Response::Redirect(leader));
            }
            // Not executed: the router holds it until the target leads, then sends it on.
            Err(ConfChangeError::Transferring { .. }) => {
                self.respond(id, Response::Redirect(None));
            }
            Err(e) => self.respond(id, Response::MembershipRefused(e)),
        }
    }

    fn removes_this_voter(&self, changes: &[ConfChange]) -> bool {
        let me = self.raft.id();
        self.raft.membership().is_voter(me)
            && changes
                .iter()
                .any(|c| matches!(c, ConfChange::Remove { id } if *id == me))
    }

    /// The voter that stays after `changes` and holds the most of our log.
    fn handover_target(&self, changes: &[ConfChange]) -> Option<NodeId> {
        let leaving: Vec<NodeId> = changes
            .iter()
            .filter_map(|c| match c {
                ConfChange::Remove { id } => Some(*id),
                _ => None,
            })
            .collect();
        let voters = self.raft.membership().voters.clone();
        self.raft
            .follower_matches()
            .into_iter()
            .filter(|(id, _)| voters.contains(id) && !leaving.contains(id))
            .max_by_key(|&(id, matched)| (matched, std::cmp::Reverse(id)))
            .map(|(id, _)| id)
    }

    /// An entry was applied: resolve the changes waiting on it, and report it if it is a
    /// configuration.
    pub(crate) fn conf_entry_applied(&mut self, entry: &Entry) {
        let config = (entry.kind == EntryKind::ConfChange)
            .then(|| Membership::from_entry_data(&entry.data))
            .flatten();
        if let Some(m) = &config {
            self.applied_configs.push((entry.index, m.clone()));
            if self.applied_configs.len() > MAX_UNTAKEN_CONFIGS {
                self.applied_configs.remove(0);
            }
        }
        while let Some((&index, &(term, id))) = self.conf_changes.first_key_value() {
            if index > entry.index {
                break;
            }
            self.conf_changes.pop_first();
            let ours = index == entry.index && term == entry.term;
            match (&config, ours) {
                (Some(m), true) if m.is_joint() => self.awaiting_leave.push(id),
                (Some(m), true) => self.respond(id, Response::MembershipChanged(m.clone())),
                // Our own entry, not a configuration: cannot happen.
                (None, true) => self.respond(id, Response::Fail("entry could not be applied")),
                // Another leader's entry took this index: ours will never commit.
                (_, false) => {
                    let leader = self.raft.leader();
                    self.respond(id, Response::Redirect(leader));
                }
            }
        }
        if let Some(m) = config.filter(|m| !m.is_joint()) {
            for id in std::mem::take(&mut self.awaiting_leave) {
                self.respond(id, Response::MembershipChanged(m.clone()));
            }
        }
    }

    /// A snapshot from the leader was installed up to `index` with `membership`:
    /// changes whose entry it covers are resolved as well as can be known.
    pub(crate) fn conf_changes_after_snapshot(&mut self, index: Index, membership: &Membership) {
        while let Some((&at, &(_, id))) = self.conf_changes.first_key_value() {
            if at > index {
                break;
            }
            self.conf_changes.pop_first();
            self.respond(
                id,
                Response::Unknown("outcome unknown: this node caught up from a snapshot"),
            );
        }
        // Ours was applied and joint; the cluster is in a plain configuration past it:
        // it left the joint configuration, so our change is complete.
        if !membership.is_joint() && !membership.is_unknown() {
            for id in std::mem::take(&mut self.awaiting_leave) {
                self.respond(id, Response::MembershipChanged(membership.clone()));
            }
        }
        self.applied_configs.push((index, membership.clone()));
    }

    /// The store failed: changes in flight may complete without us.
    pub(crate) fn fail_conf_changes(&mut self) {
        let ids: Vec<ReqId> = self
            .conf_changes
            .values()
            .map(|&(_, id)| id)
            .chain(self.awaiting_leave.drain(..))
            .collect();
        self.conf_changes.clear();
        for id in ids {
            self.respond(
                id,
                Response::Unknown("storage failure: the outcome is unknown"),
            );
        }
    }

    /// Configurations applied since the last call (index, configuration), oldest first,
    /// including one installed with a snapshot: the embedder logs them and learns
    /// members' addresses from their metadata. Only the newest matters if some were
    /// dropped (at most 64 are kept).
    pub fn take_applied_configs(&mut self) -> Vec<(Index, Membership)> {
        std::mem::take(&mut self.applied_configs)
    }

    /// The configuration as of the applied index: committed, as this node knows it.
    pub fn committed_membership(&self) -> &Membership {
        self.raft.membership_at(self.applied)
    }

    /// Whether this node was removed from the cluster (it knows a configuration and is
    /// not in it): it serves nothing and never campaigns.
    pub fn is_removed(&self) -> bool {
        self.raft.is_removed()
    }
}
