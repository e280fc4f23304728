//! What one run looks like: the cluster, its configuration, the fault profile and the
//! client load, all drawn from the seed (`Params::draw`), or fixed for scripted tests
//! (`Params::quiet`).

use super::clock::{MS, SEC};
use super::rng::SimRng;

/// TEST ONLY: the planted bugs a run turns on (all off by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// `NodeOptions.unsafe_local_reads`: every node answers gets from its own state.
    pub unsafe_local_reads: bool,
    /// `Config.planted_bugs.commit_old_term_by_count` (Figure 8).
    pub commit_old_term_by_count: bool,
    /// `Config.planted_bugs.vote_without_log_check`.
    pub vote_without_log_check: bool,
    /// `PlantedDriverBugs.ack_before_persist`.
    pub ack_before_persist: bool,
    /// `PlantedDriverBugs.apply_twice`.
    pub apply_twice: bool,
    /// `Config.planted_bugs.read_round_after_step_down` (the deposed leader's crash).
    pub read_round_after_step_down: bool,
    /// `PlantedRoutingBugs.forward_reply_by_id_only`.
    pub forward_reply_by_id_only: bool,
    /// `PlantedRoutingBugs.retry_without_session`.
    pub retry_without_session: bool,
    /// `PlantedRoutingBugs.redirect_for_executed_write`.
    pub redirect_for_executed_write: bool,
    /// `Config.planted_bugs.conf_change_without_joint`: voters switched in one step.
    pub conf_change_without_joint: bool,
}

/// Command-line names of the planted bugs, in `Bugs` field order.
pub const BUG_NAMES: [&str; 10] = [
    "unsafe-local-reads",
    "commit-old-term-by-count",
    "vote-without-log-check",
    "ack-before-persist",
    "apply-twice",
    "read-round-after-step-down",
    "forward-reply-by-id-only",
    "retry-without-session",
    "redirect-for-executed-write",
    "conf-change-without-joint",
];

impl Bugs {
    pub fn none() -> Bugs {
        Bugs::default()
    }

    /// Turns on the bug called `name` (one of [`BUG_NAMES`]).
    pub fn enable(&mut self, name: &str) -> Result<(), String> {
        match name {
            "unsafe-local-reads" => self.unsafe_local_reads = true,
            "commit-old-term-by-count" => self.commit_old_term_by_count = true,
            "vote-without-log-check" => self.vote_without_log_check = true,
            "ack-before-persist" => self.ack_before_persist = true,
            "apply-twice" => self.apply_twice = true,
            "read-round-after-step-down" => self.read_round_after_step_down = true,
            "forward-reply-by-id-only" => self.forward_reply_by_id_only = true,
            "retry-without-session" => self.retry_without_session = true,
            "redirect-for-executed-write" => self.redirect_for_executed_write = true,
            "conf-change-without-joint" => self.conf_change_without_joint = true,
            _ => {
                return Err(format!(
                    "unknown bug {name:?} (one of: {})",
                    BUG_NAMES.join(", ")
                ))
            }
        }
        Ok(())
    }

    pub fn names(&self) -> Vec<&'static str> {
        let on = [
            self.unsafe_local_reads,
            self.commit_old_term_by_count,
            self.vote_without_log_check,
            self.ack_before_persist,
            self.apply_twice,
            self.read_round_after_step_down,
            self.forward_reply_by_id_only,
            self.retry_without_session,
            self.redirect_for_executed_write,
            self.conf_change_without_joint,
        ];
        BUG_NAMES
            .iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect()
    }
}

/// Relative weights of the fault kinds the scheduler picks from.
#[derive(Clone, Copy, Debug)]
pub struct FaultMix {
    pub partition: u32,
    pub clog: u32,
    pub crash: u32,
    /// Power loss in the middle of an fsync (the next sync of the node fails, the node
    /// stops, and restarts from what reached the disk).
    pub crash_in_sync: u32,
    pub pause: u32,
    /// Leader churn (Figure 8 conditions): for a while, every node that becomes leader is
    /// crashed or cut off soon after, often before its first entries reach a quorum.
    pub churn: u32,
    /// Leadership transfer: the leader is asked to hand over to a random other voter
    /// (raft's transfer.rs), whatever else is going on.
    pub transfer: u32,
    /// A membership change asked of the leader (`membership.rs`): add a learner,
    /// promote one, remove a follower or the leader, replace a voter in one change, or
    /// bring a removed node back with a fresh disk.
    pub membership: u32,
}

#[derive(Clone, Debug)]
pub struct Params {
    pub seed: u64,
    pub nodes: usize,
    pub bugs: Bugs,

    // ----- timeline (global µs) -----
    /// Faults run in `[0, safety_us)`; then they heal and the liveness phase starts.
    pub safety_us: u64,
    /// Clients keep going this long into the liveness phase, then stop.
    pub liveness_load_us: u64,
    /// A new write must commit within this long after the heal.
    pub liveness_commit_bound_us: u64,
    /// All nodes must have converged within this long after the clients stop.
    pub converge_bound_us: u64,

    // ----- network -----
    pub loss: f64,
    pub dup: f64,
    pub lat_min_us: u64,
    pub lat_max_us: u64,
    /// Probability a message takes the slow path (reordering across many others).
    pub slow_p: f64,
    pub slow_max_us: u64,

    // ----- faults -----
    /// Random faults at all (false for scripted tests).
    pub faults: bool,
    pub fault_gap_mean_us: u64,
    pub mix: FaultMix,
    /// Clock rates differ by up to this many parts per million either way.
    pub max_skew_ppm: i64,

    // ----- clients -----
    pub clients: usize,
    pub keys: usize,
    pub think_mean_us: u64,
    pub op_timeout_us: u64,
    /// Probability a client sends an op to a random node rather than the leader it knows.
    pub random_node_p: f64,

    // ----- Raft configuration -----
    pub election_timeout_ticks: u64,
    pub lease_ticks: u64,
    pub pre_vote: bool,
    pub fanout_quorum: bool,
    /// Chain replication (`Config::relay`, with the quorum fan-out only).
    pub relay: bool,
    pub max_msg_entries: usize,
    pub max_inflight_msgs: usize,

    // ----- snapshots (§7) -----
    /// `SnapshotPolicy::every_entries` (0: never snapshot).
    pub snapshot_every: u64,
    /// `SnapshotPolicy::keep_entries`.
    pub snapshot_keep: u64,
    /// `Config::snapshot_chunk_bytes`: small values stream a snapshot in many chunks.
    pub snapshot_chunk_bytes: usize,
    /// Saves of a node's own snapshots finish a step later, as the server's background
    /// writer does (`MemSnapshotStore::with_deferred_saves`).
    pub snapshot_deferred: bool,

    // ----- membership -----
    /// Machines beyond the `nodes` the cluster starts with, not members at first: the
    /// membership faults add them (0 when the run draws no membership faults).
    pub spares: usize,

    // ----- input batching (as the server's node loop) -----
    /// Inputs a node may take before it runs its Ready: 1 runs a Ready after every
    /// input; above 1, each batch's size is drawn from 1..=`batch_max`, as the server's
    /// loop takes every event waiting (up to 512) before it processes.
    pub batch_max: u32,
    /// How long a node sits on a partial batch before it runs its Ready anyway (µs).
    pub batch_delay_us: u64,
}

/// Snapshot settings come from their own stream (seeded from the run's seed), so adding
/// them left every earlier seed's draws — and the runs the docs cite — unchanged.
const SNAPSHOT_STREAM: u64 = 0x5AA9_5B07_0000_0001;
/// Seeds the draw of the input batching (see `Params::batch_max`).
const BATCH_STREAM: u64 = 0xBA7C_4000_0000_0002;
/// Seeds the weight of leadership transfers among the faults.
const TRANSFER_STREAM: u64 = 0x7A45_FE50_0000_0003;
/// Seeds the weight of membership changes among the faults (and, in `World`, every
/// choice they make).
pub const MEMBERSHIP_STREAM: u64 = 0x3E3B_E850_0000_0004;

/// Open findings in code the simulator does not own (the core), with the seed that
/// shows each. The default draws steer clear of them; `--known-issues` draws them again.
/// Remove an entry (and its avoidance in [`Params::draw`]) once it is fixed.
pub const KNOWN_ISSUES: [(&str, &str); 0] = [];

/// The lease must stay below the election timeout by the worst clock-rate ratio: a
/// follower that heard the leader at (its) time t refuses votes until t + ET on its clock,
/// while the leader trusts its lease until t' + lease on its own (t' ≤ t in real time).
/// With rates within ±MAX_SKEW_PPM, ET·(1−s)/(1+s) must exceed lease plus two ticks of
/// rounding: 1000 · 0.98/1.02 = 960.8 > 900 + 2 for s = 2 %.
pub const MAX_SKEW_PPM: i64 = 20_000;
pub const ELECTION_TIMEOUT_TICKS: u64 = 1_000;
pub const LEASE_TICKS: u64 = 900;

impl Params {
    /// A quiet, reliable cluster for scripted tests: fixed small latency, no faults, no
    /// clients, no skew, default Raft settings.
    pub fn quiet(seed: u64, nodes: usize) -> Params {
        Params {
            seed,
            nodes,
            bugs: Bugs::none(),
            safety_us: 0,
            liveness_load_us: 0,
            liveness_commit_bound_us: 10 * SEC,
            converge_bound_us: 10 * SEC,
            loss: 0.0,
            dup: 0.0,
            lat_min_us: 500,
            lat_max_us: 2 * MS,
            slow_p: 0.0,
            slow_max_us: 0,
            faults: false,
            fault_gap_mean_us: 2 * SEC,
            mix: FaultMix {
                partition: 0,
                clog: 0,
                crash: 0,
                crash_in_sync: 0,
                pause: 0,
                churn: 0,
                transfer: 0,
                membership: 0,
            },
            max_skew_ppm: 0,
            clients: 0,
            keys: 4,
            think_mean_us: 20 * MS,
            op_timeout_us: 2 * SEC,
            random_node_p: 0.0,
            election_timeout_ticks: ELECTION_TIMEOUT_TICKS,
            lease_ticks: LEASE_TICKS,
            pre_vote: true,
            fanout_quorum: false,
            relay: false,
            max_msg_entries: 4096,
            max_inflight_msgs: 256,
            snapshot_every: 0,
            snapshot_keep: 0,
            snapshot_chunk_bytes: 1 << 20,
            snapshot_deferred: false,
            spares: 0,
            batch_max: 1,
            batch_delay_us: 0,
        }
    }

    /// The randomized profile of seed `seed` (drawn from `rng`, the run's only RNG).
    /// With `known_issues` false, configurations that hit an open finding (see
    /// [`KNOWN_ISSUES`]) are replaced by the nearest safe one; the RNG stream is the same
    /// either way.
    pub fn draw(
        seed: u64,
        nodes: usize,
        bugs: Bugs,
        known_issues: bool,
        rng: &mut SimRng,
    ) -> Params {
        let mut p = Params::quiet(seed, nodes);
        p.bugs = bugs;
        p.faults = true;
        p.safety_us = 48 * SEC;
        p.liveness_load_us = 4 * SEC;
        p.converge_bound_us = 5 * ELECTION_TIMEOUT_TICKS * MS;

        // Network: 0–30 % loss (a third of runs lossless), up to 5 % duplication.
        p.loss = match rng.below(3) {
            0 => 0.0,
            _ => rng.unit() * 0.30,
        };
        p.dup = if rng.chance(0.5) {
            rng.unit() * 0.05
        } else {
            0.0
        };
        // A LAN mostly; one run in ten a WAN (round trips up to 300 ms).
        if rng.chance(0.1) {
            p.lat_min_us = rng.range(10 * MS, 50 * MS);
            p.lat_max_us = p.lat_min_us + rng.range(MS, 100 * MS);
        } else {
            p.lat_min_us = rng.range(100, 1_000);
            p.lat_max_us = p.lat_min_us + rng.range(500, 20 * MS);
        }
        p.slow_p = rng.unit() * 0.05;
        p.slow_max_us = rng.range(50 * MS, 1_500 * MS);

        p.fault_gap_mean_us = rng.range(300 * MS, 3 * SEC);
        p.mix = FaultMix {
            partition: rng.range(0, 6) as u32,
            clog: rng.range(0, 4) as u32,
            crash: rng.range(0, 6) as u32,
            crash_in_sync: rng.range(0, 4) as u32,
            pause: rng.range(0, 3) as u32,
            churn: rng.range(0, 3) as u32,
            // Its own stream, like the snapshot settings: the seeds that draw 0 (one in
            // three) keep exactly the runs they had before transfers existed.
            transfer: SimRng::new(seed ^ TRANSFER_STREAM).range(0, 3) as u32,
            // Its own stream too: the quarter of the seeds that draw 0 keep their runs;
            // the others weigh it 2–6, about as much as crashes.
            membership: 2 * SimRng::new(seed ^ MEMBERSHIP_STREAM).range(0, 4) as u32,
        };
        // Two machines to grow into; none in runs without membership changes, so those
        // keep their runs exactly (clients pick among every machine).
        p.spares = if p.mix.membership > 0 { 2 } else { 0 };
        p.max_skew_ppm = rng.range(0, MAX_SKEW_PPM as u64 + 1) as i64;

        p.clients = rng.range(2, 10) as usize;
        p.keys = rng.range(2, 9) as usize;
        p.think_mean_us = rng.range(5 * MS, 100 * MS);
        p.op_timeout_us = rng.range(1_500 * MS, 4 * SEC);
        p.random_node_p = rng.unit() * 0.3;

        p.lease_ticks = if rng.chance(0.2) { 0 } else { LEASE_TICKS };
        p.pre_vote = !rng.chance(0.15);
        // Without Pre-Vote, nodes with stale logs keep calling elections they cannot win
        // and every such election bumps the term: with 7 nodes and loss, recovery can take
        // several rounds (a 100,000-seed soak found 3 runs over 5 timeouts), so a looser
        // bound. With Pre-Vote, 5 timeouts. Each round also spends two round trips (the
        // Pre-Vote's and the vote's) at the network's latency: seed 31018611 (21 % loss,
        // up to 124 ms one way) needed 5.0 s after the heal — two split rounds and a
        // pre-candidate that had not yet heard of the new leader — which the bound
        // counted as a liveness failure when it left no room for the latency.
        let rounds = if p.pre_vote { 5 } else { 10 };
        p.liveness_commit_bound_us = rounds * (ELECTION_TIMEOUT_TICKS * MS + 4 * p.lat_max_us);
        p.fanout_quorum = rng.chance(0.5);
        p.relay = p.fanout_quorum && rng.chance(0.5);
        p.max_msg_entries = *rng.pick(&[4096, 64, 4, 4]);
        p.max_inflight_msgs = *rng.pick(&[256, 8, 1]);
        // Snapshots in three runs out of four, often enough that followers catch up
        // through them, streamed in anything from many tiny chunks to one.
        let mut side = SimRng::new(seed ^ SNAPSHOT_STREAM);
        p.snapshot_every = *side.pick(&[0, 5, 20, 100]);
        p.snapshot_keep = *side.pick(&[0, 0, 3, 50]);
        p.snapshot_chunk_bytes = *side.pick(&[16, 256, 4096, 1 << 20]);
        p.snapshot_deferred = side.chance(0.5);
        // Batching too has its own stream: a Ready after every input in a quarter of the
        // runs, batches of up to 4–64 inputs in the rest (a deposed leader's crash that
        // only a batch of a read and a step-down triggers escaped 150,000 seeds of
        // one-input Readys).
        let mut batch = SimRng::new(seed ^ BATCH_STREAM);
        p.batch_max = *batch.pick(&[1, 4, 16, 64]);
        p.batch_delay_us = *batch.pick(&[0, 50, 300, 1000]);
        // No open findings today (see KNOWN_ISSUES); the switch stays for the next one.
        let _ = known_issues;
        p
    }

    pub fn describe(&self) -> String {
        format!(
            "{} nodes, loss {:.0}%, dup {:.1}%, latency {}–{} µs (slow {:.1}% up to {} ms), \
             fault every ~{} ms (partition {} clog {} crash {} crash-in-sync {} pause {} churn {} transfer {} membership {}, {} spare machines), \
             skew ±{} ppm, {} clients on {} keys, lease {} ticks, pre-vote {}, fan-out {}, \
             {} entries/msg, {} in flight, snapshot every {} entries (keep {}, {}-byte chunks{}), \
             up to {} inputs per Ready (flushed after {} µs)",
            self.nodes,
            self.loss * 100.0,
            self.dup * 100.0,
            self.lat_min_us,
            self.lat_max_us,
            self.slow_p * 100.0,
            self.slow_max_us / MS,
            self.fault_gap_mean_us / MS,
            self.mix.partition,
            self.mix.clog,
            self.mix.crash,
            self.mix.crash_in_sync,
            self.mix.pause,
            self.mix.churn,
            self.mix.transfer,
            self.mix.membership,
            self.spares,
            self.max_skew_ppm,
            self.clients,
            self.keys,
            self.lease_ticks,
            self.pre_vote,
            match (self.fanout_quorum, self.relay) {
                (true, true) => "quorum, relayed",
                (true, false) => "quorum",
                _ => "all",
            },
            self.max_msg_entries,
            self.max_inflight_msgs,
            self.snapshot_every,
            self.snapshot_keep,
            self.snapshot_chunk_bytes,
            if self.snapshot_deferred {
                ", saved in the background"
            } else {
                ""
            },
            self.batch_max,
            self.batch_delay_us,
        )
    }
}
