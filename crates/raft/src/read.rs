//! Linearizable reads without writing to the log (§6.4 of the thesis): a lease while a
//! quorum recently acknowledged us, otherwise ReadIndex (a round of heartbeats).

use crate::quorum::joint_value;
use crate::raft::{PendingRead, ProposeError, Raft, ReadState, Role};

impl Raft {
    /// Asks to read at the current commit index. `ctx` comes back in a [`ReadState`] (or in
    /// `aborted_reads` if leadership is lost first).
    pub fn read(&mut self, ctx: u64) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if self.log.committed < self.term_start_index {
            // Our commit index may lag the cluster's until our first entry commits.
            self.reads_awaiting_term_commit.push(ctx);
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
        let stamp_required = self.stamps.last() + 1;
        self.pending_reads.push_back(PendingRead {
            ctx,
            index,
            stamp_required,
        });
        self.read_broadcast_needed = true;
    }

    fn quorum_size_is_one(&self) -> bool {
        self.membership.voters.len() <= 1 && self.membership.voters_outgoing.len() <= 1
    }

    /// The highest stamp a quorum has echoed (our own messages count as echoed at once).
    fn quorum_stamp(&self) -> u64 {
        let me = self.cfg.id;
        joint_value(
            &self.membership.voters,
            &self.membership.voters_outgoing,
            |id| {
                if id == me {
                    u64::MAX
                } else {
                    self.progress.get(&id).map_or(0, |p| p.acked_stamp)
                }
            },
        )
    }

    /// Lease: a quorum acknowledged a message sent at tick `t`, so no other leader can be
    /// elected before `t + election_timeout` (they refuse votes while they hear from us);
    /// we use `lease_ticks` (< election timeout) to leave room for clock drift.
    pub fn lease_valid(&self) -> bool {
        if self.role != Role::Leader
            || self.cfg.lease_ticks == 0
            || self.log.committed < self.term_start_index
        {
            return false;
        }
        if self.quorum_size_is_one() {
            return true;
        }
        match self.stamps.tick_of(self.quorum_stamp()) {
            Some(sent) => self.now < sent + self.cfg.lease_ticks,
            None => false,
        }
    }

    pub(crate) fn check_pending_reads(&mut self) {
        if self.pending_reads.is_empty() {
            return;
        }
        let confirmed = self.quorum_stamp();
        while let Some(read) = self.pending_reads.front() {
            if read.stamp_required > confirmed {
                break;
            }
            self.read_states.push(ReadState {
                ctx: read.ctx,
                index: read.index,
            });
            self.pending_reads.pop_front();
        }
    }

    pub(crate) fn release_reads_awaiting_term_commit(&mut self) {
        for ctx in core::mem::take(&mut self.reads_awaiting_term_commit) {
            self.start_read(ctx);
        }
    }

    pub(crate) fn abort_reads(&mut self) {
        self.aborted_reads
            .extend(self.pending_reads.drain(..).map(|r| r.ctx));
        self.aborted_reads
            .append(&mut self.reads_awaiting_term_commit);
    }
}
