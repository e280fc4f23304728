//! Membership changes among the faults (thesis chapter 4; raft's `reconfig.rs`).
//!
//! When one falls due, the leader (if one is up) is asked, through its router as a
//! client would, for one of:
//! - **add a learner**: a spare machine (started with an empty disk, knowing no
//!   configuration) or a removed node with its old disk;
//! - **replace with a fresh disk**: a removed node's disk is wiped (it restarts empty,
//!   as a replacement machine would) and it is added as a learner — only once its
//!   removal is committed and no change is in flight (wiping a voter's disk is losing a
//!   replica, which Raft cannot survive);
//! - **promote** a learner; **remove a follower**; **remove the leader** (the driver
//!   hands leadership over first);
//! - **replace a voter in one change**: remove a follower and promote a learner together
//!   (a joint configuration; the planted bug `conf-change-without-joint` switches them
//!   in one step instead).
//!
//! Every choice is drawn from its own stream (`World::member_rng`), and a change whose
//! precondition does not hold (no learner to promote, too few voters) is skipped. A
//! change may be refused (one in flight, an unhealthy quorum, no leader any more): the
//! answer is logged. An answer "complete" must name a configuration some committed entry
//! holds (checked at the end of the run, `check_member_answers`).

use bytes::Bytes;
use driver::{Request, Response};
use raft::{ConfChange, EntryKind, Membership, NodeId};
use storage::{MemLogStore, MemSnapshotStore};

use super::world::{World, MEMBER_CLIENT};

/// Removals keep at least this many voters.
const MIN_VOTERS: usize = 2;

impl World {
    /// Asks the leader for a random membership change (see the module docs).
    pub(super) fn random_membership_change(&mut self) {
        let Some(l) = self.leader() else {
            return;
        };
        if self.machines[l].paused {
            return;
        }
        let Some(raft) = self.machines[l].raft() else {
            return;
        };
        let leader = raft.id();
        let m = raft.membership().clone();
        let settled = !raft.conf_change_in_progress();
        let outsiders: Vec<NodeId> = (1..=self.n() as NodeId)
            .filter(|&id| !m.is_member(id))
            .collect();
        let learners: Vec<NodeId> = m.learners.iter().copied().collect();
        let followers: Vec<NodeId> = m.voters.iter().copied().filter(|&v| v != leader).collect();
        let can_remove = m.voters.len() > MIN_VOTERS;
        let r = &mut self.member_rng;
        let kind = r.below(6);
        let (what, changes) = match kind {
            0 | 1 if !outsiders.is_empty() => {
                // A replacement takes a removed node (one that ran) when there is one.
                let ran: Vec<NodeId> = outsiders
                    .iter()
                    .copied()
                    .filter(|&id| self.machines[id as usize - 1].started)
                    .collect();
                let pool = if kind == 1 && !ran.is_empty() {
                    &ran
                } else {
                    &outsiders
                };
                let id = *r.pick(pool);
                let slot = id as usize - 1;
                let never_started = !self.machines[slot].started;
                let wipe = kind == 1 && settled && self.machines[slot].started;
                if never_started || wipe {
                    self.start_fresh(slot);
                }
                let what = if wipe {
                    "replace with a fresh disk, add"
                } else {
                    "add learner"
                };
                let metadata = Bytes::from(format!("sim-node-{id}"));
                (what, vec![ConfChange::AddLearner { id, metadata }])
            }
            2 if !learners.is_empty() => {
                let id = *r.pick(&learners);
                ("promote", vec![ConfChange::Promote { id }])
            }
            3 if can_remove && !followers.is_empty() => {
                let id = *r.pick(&followers);
                ("remove follower", vec![ConfChange::Remove { id }])
            }
            4 if can_remove => ("remove leader", vec![ConfChange::Remove { id: leader }]),
            5 if !learners.is_empty() && !followers.is_empty() => {
                let out = *r.pick(&followers);
                let id = *r.pick(&learners);
                (
                    "replace a voter",
                    vec![ConfChange::Remove { id: out }, ConfChange::Promote { id }],
                )
            }
            _ => {
                self.log_fault(format!(
                    "membership: nothing to do for draw {kind} (voters {:?}, learners {:?})",
                    m.voters, m.learners
                ));
                return;
            }
        };
        self.member_requests += 1;
        let req_id = (MEMBER_CLIENT << 48) | self.member_requests;
        self.log_fault(format!(
            "membership: {what} {changes:?} asked of leader {leader} (request {req_id:#x})"
        ));
        let t = self.local_now(l);
        if let Some(node) = self.machines[l].node.as_mut() {
            node.submit(t, req_id, Request::ChangeMembership(changes), None);
        }
        self.after_node(l);
    }

    /// Starts machine `slot` with an empty disk and no configuration: a spare's first
    /// start, or a removed node replaced by a new machine (its disk wiped).
    fn start_fresh(&mut self, slot: usize) {
        if self.machines[slot].is_up() {
            self.crash_node(slot, 0, "replaced: its disk is wiped");
        }
        let deferred = self.p.snapshot_deferred;
        let m = &mut self.machines[slot];
        m.disk = Some(MemLogStore::with_durability_model());
        m.snapshots = MemSnapshotStore::new().with_deferred_saves(deferred);
        m.bootstrap = Membership::default();
        self.inv.on_wipe(slot);
        self.start_node(slot);
    }

    /// The answer to a membership change the faults asked for.
    pub(super) fn member_answer(&mut self, node: usize, req_id: u64, resp: Response) {
        self.log_fault(format!(
            "membership: request {req_id:#x} answered at {}: {resp:?}",
            node + 1
        ));
        self.member_answers.push(resp);
    }

    /// Every change answered complete names a plain configuration that a committed
    /// entry holds (a truthful answer), and nothing answered "refused" is in doubt.
    pub fn check_member_answers(&self) -> Result<(), String> {
        let committed: Vec<Membership> = self
            .inv
            .committed_log()
            .iter()
            .filter(|e| e.kind == EntryKind::ConfChange)
            .filter_map(|e| Membership::from_entry_data(&e.data))
            .collect();
        for resp in &self.member_answers {
            if let Response::MembershipChanged(m) = resp {
                if m.is_joint() || !committed.contains(m) {
                    return Err(format!(
                        "a membership change was answered complete with {m:?}, which no \
                         committed plain configuration entry holds"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The members of the leader's configuration (slots), or every machine the cluster
    /// started with when no leader is up.
    pub fn member_slots(&self) -> Vec<usize> {
        match self.leader().and_then(|l| self.machines[l].raft()) {
            Some(r) => {
                let m = r.membership();
                (0..self.n())
                    .filter(|&i| m.is_member(i as NodeId + 1))
                    .collect()
            }
            None => (0..self.p.nodes).collect(),
        }
    }
}
