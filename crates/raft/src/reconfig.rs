//! Membership changes on a running node (thesis §4; the rules are in `confchange.rs`):
//! the leader's proposal, the automatic leave of a joint configuration, a removed
//! leader's step-down, and every node's bookkeeping when its configuration changes —
//! appended, rolled back, or installed from a snapshot.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use crate::confchange::{self, ConfChange, ConfChangeError};
use crate::leadership::Departure;
use crate::membership::{is_valid_transition, Membership};
use crate::message::MessageBody;
use crate::progress::{Progress, ProgressState};
use crate::quorum::{joint_vote, VoteResult};
use crate::raft::Raft;
use crate::types::{Entry, EntryKind, Index, NodeId, Term};

impl Raft {
    /// Proposes a membership change (see `confchange.rs`); returns the index of the
    /// configuration entry appended: the joint configuration when the voters change
    /// (the leader appends the final one itself once it commits), the new
    /// configuration otherwise. The change is complete once a plain (not joint)
    /// configuration at or after that index is committed.
    pub fn propose_conf_change(
        &mut self,
        changes: &[ConfChange],
    ) -> Result<Index, ConfChangeError> {
        let result = self.try_conf_change(changes);
        self.check_invariants();
        result
    }

    /// Whether a membership change is in flight: the newest configuration is not
    /// committed yet, or the cluster has not left its joint configuration.
    pub fn conf_change_in_progress(&self) -> bool {
        self.configs.current_index() > self.log.committed || self.membership().is_joint()
    }

    fn try_conf_change(&mut self, changes: &[ConfChange]) -> Result<Index, ConfChangeError> {
        let Some(lead) = &self.leadership else {
            return Err(ConfChangeError::NotLeader {
                leader: self.leader,
            });
        };
        if let Some(to) = self.transferring_to() {
            return Err(ConfChangeError::Transferring { to });
        }
        if self.log.committed < lead.term_start_index {
            return Err(ConfChangeError::TermNotCommitted);
        }
        if self.conf_change_in_progress() {
            return Err(ConfChangeError::InProgress {
                index: self.configs.current_index(),
            });
        }
        // A leader that has not led for an election timeout may not have heard from every
        // live member yet: its refusals for health are then provisional.
        let settling = self.now.saturating_sub(lead.elected_at) < self.cfg.election_timeout_ticks;
        let (mut next, joint) = confchange::target(self.membership(), changes)?;
        for change in changes {
            if let ConfChange::Promote { id } = change {
                if !self.is_healthy(*id) || !self.holds_config_in_force(*id) {
                    return Err(if settling {
                        ConfChangeError::Settling
                    } else {
                        ConfChangeError::NotCaughtUp(*id)
                    });
                }
            }
        }
        if joint {
            let healthy = self.healthy_voters(&next);
            let vote = joint_vote(&next.voters, &next.voters_outgoing, |id| {
                Some(healthy.contains(&id))
            });
            if vote != VoteResult::Won {
                return Err(if settling {
                    ConfChangeError::Settling
                } else {
                    ConfChangeError::WouldLoseQuorum { healthy }
                });
            }
            if self.cfg.planted_bugs.conf_change_without_joint {
                next.voters_outgoing.clear();
            }
        }
        if next.to_entry_data().len() + 64 > self.cfg.max_msg_bytes {
            return Err(ConfChangeError::TooLarge);
        }
        if self.log.bytes_after(self.log.committed) > self.cfg.max_uncommitted_bytes {
            return Err(ConfChangeError::Busy);
        }
        Ok(self.append_config(next))
    }

    /// The voters of `m` (both halves) that could take part in a commit now: this
    /// leader, and followers in the pipelined state (their log matches ours) that
    /// answered within an election timeout.
    fn healthy_voters(&self, m: &Membership) -> BTreeSet<NodeId> {
        m.all_voters()
            .into_iter()
            .filter(|&id| self.is_healthy(id))
            .collect()
    }

    /// Whether `id` could take part in a commit now: this leader, or a follower in the
    /// pipelined state (its log matches ours) that answered within an election timeout.
    fn is_healthy(&self, id: NodeId) -> bool {
        let (now, window) = (self.now, self.cfg.election_timeout_ticks);
        id == self.cfg.id
            || self.progress(id).is_some_and(|p| {
                p.state == ProgressState::Replicate
                    && p.last_heard_tick
                        .is_some_and(|t| now.saturating_sub(t) <= window)
            })
    }

    /// Whether `id`'s log holds the configuration in force (for a learner: the entry that
    /// added it, or a later one). A learner promoted before it does may know no
    /// configuration at all — a node that joined with an empty disk learns it from the
    /// log — and such a node grants no vote (`election.rs`, `knows_configuration`). If
    /// the configuration then needs its vote (a joint one whose new half is {leader,
    /// it}) and the leader fails, no candidate can win, and no leader is left to bring
    /// it up to date: the cluster is stuck for good (the simulator found it, seeds
    /// 50002997 and 50007025). Holding the configuration in force, it knows one, votes,
    /// and receives the entry promoting it as any follower does.
    fn holds_config_in_force(&self, id: NodeId) -> bool {
        let index = self.configs.current_index();
        id == self.cfg.id || self.progress(id).is_some_and(|p| p.match_index >= index)
    }

    /// Leader: appends configuration `m` (in force at once) and replicates it.
    fn append_config(&mut self, m: Membership) -> Index {
        let index = self.append_own_entry(EntryKind::ConfChange, m.to_entry_data());
        self.configs.push(index, self.term, m);
        self.on_config_changed();
        if let Some(lead) = self.leadership.as_mut() {
            lead.replicate_needed = true;
        }
        index
    }

    /// The configuration in force changed (appended, rolled back or installed). A leader
    /// starts tracking new members and keeps sending to removed ones until they hold
    /// the entry that removed them (so they learn it and stop campaigning); a transfer
    /// to a node that no longer votes is abandoned.
    pub(crate) fn on_config_changed(&mut self) {
        let me = self.cfg.id;
        let members = self.membership().members();
        self.was_member |= members.contains(&me);
        let config_index = self.configs.current_index();
        let (next, now, backoff) = (self.log.last_index(), self.now, self.rto_ticks());
        let transfer_target = self.transferring_to();
        let target_votes = transfer_target.is_none_or(|t| self.membership().is_voter(t));
        let Some(lead) = self.leadership.as_mut() else {
            return;
        };
        for &id in members.iter().filter(|&&id| id != me) {
            lead.departing.remove(&id);
            lead.progress
                .entry(id)
                .or_insert_with(|| Progress::new(next, now, backoff));
        }
        for &id in lead.progress.keys() {
            if !members.contains(&id) {
                lead.departing.entry(id).or_insert(Departure {
                    removed_at: config_index,
                    committed_by_stamp: None,
                });
            }
        }
        if !target_votes {
            lead.transfer = None;
        }
    }

    /// Leader, after an acknowledgement from `peer` matching its log up to `index`, of
    /// the append stamped `stamp`: a removed node that now holds the entry that removed
    /// it and knows that entry committed is no longer sent anything. Holding it is not
    /// enough: one that does not know its removal committed may still campaign
    /// (`may_campaign`), and would, forever, once no leader sends it anything.
    pub(crate) fn release_departed(&mut self, peer: NodeId, index: Index, stamp: u64) {
        let Some(lead) = self.leadership.as_mut() else {
            return;
        };
        let Some(departure) = lead.departing.get(&peer) else {
            return;
        };
        let told = departure
            .committed_by_stamp
            .is_some_and(|committed_by| stamp > committed_by);
        if told && index >= departure.removed_at {
            lead.departing.remove(&peer);
            lead.progress.remove(&peer);
        }
    }

    /// Leader, after its commit index moved: leave a committed joint configuration
    /// (§4.3: `C_new` follows once `C_old,new` commits), and step down once a
    /// configuration it does not vote in is committed (§4.2.2).
    pub(crate) fn after_commit_advanced(&mut self) {
        if !self.is_leader() {
            return;
        }
        let committed = self.log.committed;
        if let Some(lead) = self.leadership.as_mut() {
            let newest_stamp = lead.stamps.last();
            for departure in lead.departing.values_mut() {
                if departure.removed_at <= committed && departure.committed_by_stamp.is_none() {
                    departure.committed_by_stamp = Some(newest_stamp);
                }
            }
        }
        if self.membership().is_joint() && self.configs.current_index() <= committed {
            let mut next = self.membership().clone();
            next.voters_outgoing.clear();
            self.append_config(next);
        }
        let me = self.cfg.id;
        if !self.membership().is_voter(me) && self.configs.current_index() <= committed {
            self.hand_over_on_removal();
            self.become_follower(self.term, None);
        }
    }

    /// A removed leader about to step down: the voter of the new configuration that is
    /// furthest along (and holds that configuration) is told to campaign at once, so the
    /// cluster does not wait an election timeout for a new leader.
    fn hand_over_on_removal(&mut self) {
        let config_index = self.configs.current_index();
        let voters = self.membership().all_voters();
        let best = self.leadership.as_ref().and_then(|lead| {
            voters
                .iter()
                .filter_map(|id| lead.progress.get(id).map(|p| (p.match_index, *id)))
                .filter(|&(matched, _)| matched >= config_index)
                .max()
        });
        if let Some((_, id)) = best {
            self.send(id, MessageBody::TimeoutNow);
        }
    }

    /// Follower: the configurations an append carries, checked before it is merged.
    /// Each `ConfChange` entry must be a legal step from the configuration before it
    /// (our log matches the leader's up to `prev_index`, so that is ours there).
    /// `Err(())`: the append is refused whole (counted in `illegal_conf_changes`).
    pub(crate) fn configs_in_append(
        &mut self,
        prev_index: Index,
        entries: &[Entry],
    ) -> Result<Vec<(Index, Term, Membership)>, ()> {
        let mut prev = self.configs.at(prev_index).clone();
        let mut out = Vec::new();
        for e in entries.iter().filter(|e| e.kind == EntryKind::ConfChange) {
            // Decodable: `hostile::well_formed_append` checked.
            let Some(m) = Membership::from_entry_data(&e.data) else {
                self.stats.malformed_appends += 1;
                return Err(());
            };
            let legal =
                is_valid_transition(&prev, &m) || self.cfg.planted_bugs.conf_change_without_joint;
            if !legal {
                self.stats.illegal_conf_changes += 1;
                return Err(());
            }
            prev = m.clone();
            out.push((e.index, e.term, m));
        }
        Ok(out)
    }

    /// Follower, after merging an append: configurations truncated away are rolled
    /// back, the new ones take effect.
    pub(crate) fn note_merged_configs(&mut self, configs: Vec<(Index, Term, Membership)>) {
        let mut changed = self.configs.retain_log(&self.log);
        for (index, term, m) in configs {
            if index > self.configs.current_index() && self.log.term(index) == Some(term) {
                self.configs.push(index, term, m);
                changed = true;
            }
        }
        if changed {
            self.on_config_changed();
        }
    }
}
