//! Tunables of one Raft node. All durations are in ticks: the driver decides how long a
//! tick is (the seed replica uses 100 µs, the cluster server 1 ms).

use crate::types::NodeId;
use alloc::string::String;

/// How many followers a leader sends new entries to as soon as they are proposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fanout {
    /// Every follower gets every append at once (classic Raft).
    All,
    /// Only as many followers as a commit needs, plus `extra`, chosen among the most
    /// responsive; the rest catch up in the batched appends that double as heartbeats.
    /// Saves messages on a network that charges for them; costs nothing in safety.
    Quorum {
        /// Followers beyond the quorum's need that also get new entries at once.
        extra: usize,
    },
}

/// TEST ONLY: deliberate bugs, so the simulator can prove it catches them. All off by
/// default; nothing outside tests may turn them on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlantedBugs {
    /// Commit an entry of an earlier term once a quorum holds it (the Figure 8 bug).
    pub commit_old_term_by_count: bool,
    /// Grant votes without the §5.4.1 "log at least as up to date" check.
    pub vote_without_log_check: bool,
    /// Run a pending ReadIndex broadcast in `ready()` even after stepping down in the
    /// same batch (the deposed leader's crash: it indexes progress it no longer has).
    pub read_round_after_step_down: bool,
    /// Change the voters in one step, without the joint configuration (and followers
    /// accept such a step): switching two voters at once lets two disjoint majorities
    /// decide (thesis §4.3, Figure 4.3).
    pub conf_change_without_joint: bool,
}

/// Everything a [`crate::Raft`] is configured with; checked by [`Config::validate`].
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's ID.
    pub id: NodeId,
    /// Seed for the node's private RNG (election timeouts).
    pub seed: u64,
    /// Minimum election timeout; each timeout is drawn from `[min, 2·min)` (§5.2).
    pub election_timeout_ticks: u64,
    /// A leader sends each follower something at least this often.
    pub heartbeat_interval_ticks: u64,
    /// How long a leader may serve reads locally after a quorum acknowledged a message it
    /// sent at time `t`: until `t + lease_ticks`. Must be below `election_timeout_ticks`
    /// by the clock drift the deployment tolerates (§6.4 of the Raft thesis).
    /// Zero disables lease reads (every read then takes a ReadIndex round).
    pub lease_ticks: u64,
    /// Re-send an unacknowledged append after this long.
    pub retransmit_ticks: u64,
    /// Lower bound of the adaptive retransmission timeout: the leader measures round
    /// trips and retransmits after `3 × smoothed RTT`, within
    /// `[min_retransmit_ticks, retransmit_ticks]`.
    pub min_retransmit_ticks: u64,
    /// Pre-Vote (§9.6 of the thesis): a node only starts a real election once a quorum
    /// says it could win, so a partitioned node cannot inflate terms.
    pub pre_vote: bool,
    /// CheckQuorum: a leader that has not heard from a quorum within an election timeout
    /// steps down, and followers ignore votes while they hear from a live leader.
    pub check_quorum: bool,
    /// Upper bound on the entry bytes in one append message.
    pub max_msg_bytes: usize,
    /// Upper bound on entries in one append message.
    pub max_msg_entries: usize,
    /// Appends in flight to one follower before the leader waits for acknowledgements.
    pub max_inflight_msgs: usize,
    /// Appends a follower keeps when they arrive ahead of a gap in its log (a reordering
    /// network), to apply once the gap is filled instead of rejecting them (`inbox.rs`).
    /// Zero turns holding off: every such append is rejected, and the leader rewinds.
    pub max_held_appends: usize,
    /// Entry bytes a follower keeps in held appends, at most (with `max_held_appends`).
    pub max_held_bytes: usize,
    /// Proposals are refused while the uncommitted tail of the log is larger than this.
    pub max_uncommitted_bytes: usize,
    /// Bytes of snapshot data in one InstallSnapshot chunk (the leader keeps up to
    /// `max_inflight_msgs` chunks in flight to one follower).
    pub snapshot_chunk_bytes: usize,
    /// Largest snapshot a follower accepts; a bigger transfer is refused (and retried
    /// from the start), so a confused or hostile leader cannot exhaust its memory.
    pub max_snapshot_bytes: u64,
    /// Which followers get new entries at once (see [`Fanout`]).
    pub fanout: Fanout,
    /// Chain replication of new entries: with `Fanout::Quorum`, the leader sends a fresh
    /// append to the first eager follower only, which passes it on (once durable) to the
    /// next, and the last one answers for all of them. One message fewer per commit than
    /// a star (3 instead of 4 with two eager followers); retransmissions fall back to
    /// direct appends.
    pub relay: bool,
    /// With `relay`: each fresh chain goes to the healthy followers furthest behind
    /// rather than the most caught up, so consecutive writes alternate between groups of
    /// followers. Every follower then hears from the leader every few writes, and the
    /// ones outside a chain need no catch-up appends of their own while writes flow.
    pub rotate_chain: bool,
    /// With `rotate_chain`: once most chains arrive whole (`chain_retry_delay`), a chain
    /// that got no answer is sent again only after this many ticks instead of the
    /// retransmission timeout. Meanwhile the next write's chain carries the lost entries
    /// too (a rotated chain starts after the lowest acknowledged index of its
    /// followers), so a lost chain usually costs no retry at all. 0: off.
    pub defer_chain_retry_ticks: u64,
    /// A pre-candidate whose previous pre-vote round heard from less than a majority
    /// (cut off by a partition rather than unlucky on a lossy link) asks each voter once
    /// in its next round, without the in-round retries (`election.rs`).
    pub quiet_cut_off_pre_votes: bool,
    /// A follower whose unacknowledged entries are all committed already (a commit went
    /// through other followers) is not retransmitted to when its timer runs out: its
    /// progress rewinds to its match point, and the next chain or heartbeat carries what
    /// it lacks. No answer waits for it, so the retry would only spend messages.
    pub lazy_committed_catch_up: bool,
    /// TEST ONLY (see [`PlantedBugs`]).
    pub planted_bugs: PlantedBugs,
}

impl Config {
    /// Defaults sized for 1 ms ticks.
    pub fn new(id: NodeId) -> Config {
        Config {
            id,
            seed: id,
            election_timeout_ticks: 1000,
            heartbeat_interval_ticks: 100,
            lease_ticks: 900,
            retransmit_ticks: 200,
            min_retransmit_ticks: 2,
            pre_vote: true,
            check_quorum: true,
            max_msg_bytes: 1 << 20,
            max_msg_entries: 4096,
            max_inflight_msgs: 256,
            max_held_appends: 32,
            max_held_bytes: 4 << 20,
            max_uncommitted_bytes: 64 << 20,
            snapshot_chunk_bytes: 1 << 20,
            max_snapshot_bytes: 8 << 30,
            fanout: Fanout::All,
            relay: false,
            rotate_chain: false,
            defer_chain_retry_ticks: 0,
            quiet_cut_off_pre_votes: false,
            lazy_committed_catch_up: false,
            planted_bugs: PlantedBugs::default(),
        }
    }

    /// Rejects settings under which the core could not keep its guarantees.
    pub fn validate(&self) -> Result<(), String> {
        if self.election_timeout_ticks < 2 {
            return Err("election_timeout_ticks must be at least 2".into());
        }
        if self.heartbeat_interval_ticks == 0
            || self.heartbeat_interval_ticks >= self.election_timeout_ticks
        {
            return Err("heartbeat_interval_ticks must be in 1..election_timeout_ticks".into());
        }
        if self.lease_ticks >= self.election_timeout_ticks {
            return Err("lease_ticks must be below election_timeout_ticks".into());
        }
        if self.lease_ticks > 0 && !self.check_quorum {
            return Err("lease reads need check_quorum (followers must honour the lease)".into());
        }
        if self.min_retransmit_ticks == 0 || self.min_retransmit_ticks > self.retransmit_ticks {
            return Err("need 0 < min_retransmit_ticks <= retransmit_ticks".into());
        }
        if self.max_msg_bytes == 0
            || self.max_msg_entries == 0
            || self.max_inflight_msgs == 0
            || self.snapshot_chunk_bytes == 0
        {
            return Err("message and in-flight limits must be positive".into());
        }
        Ok(())
    }
}
