//! Linearizable reads without writing to the log (§6.4 of the thesis): a lease while a
//! quorum recently acknowledged us, otherwise ReadIndex (a round of heartbeats).

use crate::leadership::PendingRead;
use crate::quorum::joint_value;
use crate::raft::{ProposeError, Raft, ReadState};

impl Raft {
    /// Asks to read at the current commit index. `ctx` comes back in a [`ReadState`] (or in
    /// `aborted_reads` if leadership is lost first).
    pub fn read(&mut self, ctx: u64) -> Result<(), ProposeError> {
        let committed = self.log.committed;
        let Some(lead) = self.leadership.as_mut() else {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        };
        if committed < lead.term_start_index {
            // Our commit index may lag the cluster's until our first entry commits.
            lead.reads_awaiting_term_commit.push(ctx);
            return Ok(());
        }
        self.start_read(ctx);
        Ok(())
    }

    fn start_read(&mut self, ctx: u64) {
        let index = self.log.committed;
        if self.lease_valid() {
            self.read_states.push(ReadState { ctx, index });
            return;
        }
        if self.quorum_size_is_one() {
            self.read_states.push(ReadState { ctx, index });
            return;
        }
        let Some(lead) = self.leadership.as_mut() else {
            return;
        };
        let stamp_required = lead.stamps.last() + 1;
        lead.pending_reads.push_back(PendingRead {
            ctx,
            index,
            stamp_required,
        });
        self.read_broadcast_needed = true;
    }

    /// Whether we alone make a quorum: every voter of both halves is us. (Counting
    /// voters per half is not enough: in the joint configuration `{2} / {1}` that node
    /// 1 leads while it removes itself, each half has one voter and both are needed.)
    fn quorum_size_is_one(&self) -> bool {
        self.membership().is_sole_voter(self.cfg.id)
    }

    /// The highest stamp a quorum has echoed (our own messages count as echoed at once).
    fn quorum_stamp(&self) -> u64 {
        let me = self.cfg.id;
        joint_value(
            &self.membership().voters,
            &self.membership().voters_outgoing,
            |id| {
                if id == me {
                    u64::MAX
                } else {
                    self.progress(id).map_or(0, |p| p.acked_stamp)
                }
            },
        )
    }

    /// Lease: a quorum acknowledged a message sent at tick `t`, so no other leader can be
    /// elected before `t + election_timeout` (they refuse votes while they hear from us);
    /// we use `lease_ticks` (< election timeout) to leave room for clock drift. A leader
    /// that sent `TimeoutNow` has none: the votes its target asks for skip that refusal.
    pub fn lease_valid(&self) -> bool {
        let Some(lead) = &self.leadership else {
            return false;
        };
        if self.cfg.lease_ticks == 0
            || lead.lease_given_up
            || self.log.committed < lead.term_start_index
        {
            return false;
        }
        if self.quorum_size_is_one() {
            return true;
        }
        match lead.stamps.tick_of(self.quorum_stamp()) {
            Some(sent) => self.now < sent + self.cfg.lease_ticks,
            None => false,
        }
    }

    /// Answers the ReadIndex reads a quorum has now confirmed, oldest first.
    pub(crate) fn check_pending_reads(&mut self) {
        if self
            .leadership
            .as_ref()
            .is_none_or(|l| l.pending_reads.is_empty())
        {
            return;
        }
        let confirmed = self.quorum_stamp();
        let Some(lead) = self.leadership.as_mut() else {
            return;
        };
        while let Some(read) = lead.pending_reads.front() {
            if read.stamp_required > confirmed {
                break;
            }
            self.read_states.push(ReadState {
                ctx: read.ctx,
                index: read.index,
            });
            lead.pending_reads.pop_front();
        }
    }

    /// This term's first entry committed: the reads that waited for it start now.
    pub(crate) fn release_reads_awaiting_term_commit(&mut self) {
        let Some(lead) = self.leadership.as_mut() else {
            return;
        };
        for ctx in core::mem::take(&mut lead.reads_awaiting_term_commit) {
            self.start_read(ctx);
        }
    }
}
