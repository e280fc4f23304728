//! Timing and economy settings of the seed replica, sized for the course harness:
//! a loopback network through a single-threaded forwarder that charges for every
//! replica-to-replica datagram.

use std::time::Duration;

use driver::NodeOptions;
use raft::{Config, Fanout, NodeId};

pub struct Tuning {
    pub tick: Duration,
    pub election_timeout: Duration,
    pub heartbeat: Duration,
    pub lease: Duration,
    pub retransmit: Duration,
    pub min_retransmit: Duration,
    pub hold: Duration,
    pub fresh_leader: Duration,
    pub fanout_extra: usize,
    pub relay: bool,
    /// Consecutive chains alternate between groups of followers (raft::Config).
    pub rotate_chain: bool,
    /// A lost chain is retried after this (not the retransmission timeout) while most
    /// chains arrive whole; the next write's chain usually carries it first (raft::Config).
    /// Off (0) unless `RAFTKV_DEFER_CHAIN_RETRY_MS` is set: a write whose chain was lost
    /// waits for the next one, and is never answered if its leader is killed meanwhile
    /// (docs/SEED.md, "Deferred chain retries: an experiment").
    pub defer_chain_retry: Duration,
    /// A pre-candidate cut off in a minority stops re-asking within a round.
    pub quiet_cut_off_pre_votes: bool,
    /// No retransmission to a follower that lacks only committed entries (raft::Config).
    pub lazy_committed_catch_up: bool,
    /// The chain's tail answers the writes it commits (answers.rs); off unless
    /// `RAFTKV_TAIL_ANSWERS=1` (it can answer twice, see docs/SEED.md).
    pub tail_answers: bool,
    pub seed: u64,
    pub unsafe_stale_reads: bool,
}

fn env_ms(name: &str, default_ms: u64) -> Duration {
    let ms = std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok());
    ms.map_or(Duration::from_millis(default_ms), |m| {
        Duration::from_secs_f64(m / 1000.0)
    })
}

impl Tuning {
    pub fn from_env(me: NodeId) -> Tuning {
        let seed = std::env::var("RAFTKV_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| (u64::from(std::process::id()) << 16) ^ me ^ 0x5eed);
        Tuning {
            tick: Duration::from_micros(100),
            election_timeout: env_ms("RAFTKV_ELECTION_MS", 1000),
            heartbeat: env_ms("RAFTKV_HEARTBEAT_MS", 500),
            lease: env_ms("RAFTKV_LEASE_MS", 900),
            retransmit: env_ms("RAFTKV_RETRANSMIT_MS", 4),
            min_retransmit: env_ms("RAFTKV_MIN_RETRANSMIT_MS", 2),
            hold: env_ms("RAFTKV_HOLD_MS", 2000),
            fresh_leader: env_ms("RAFTKV_FRESH_LEADER_MS", 450),
            fanout_extra: std::env::var("RAFTKV_FANOUT_EXTRA")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            relay: std::env::var("RAFTKV_RELAY").map_or(true, |v| v != "0"),
            rotate_chain: std::env::var("RAFTKV_ROTATE_CHAIN").map_or(true, |v| v != "0"),
            defer_chain_retry: env_ms("RAFTKV_DEFER_CHAIN_RETRY_MS", 0),
            quiet_cut_off_pre_votes: std::env::var("RAFTKV_QUIET_PRE_VOTES")
                .map_or(true, |v| v != "0"),
            lazy_committed_catch_up: std::env::var("RAFTKV_LAZY_CATCH_UP")
                .map_or(true, |v| v != "0"),
            // Off by default: see docs/SEED.md ("The chain's tail answers: an experiment").
            tail_answers: std::env::var("RAFTKV_TAIL_ANSWERS").is_ok_and(|v| v == "1"),
            seed,
            unsafe_stale_reads: std::env::var("RAFTKV_UNSAFE_STALE_READS").is_ok_and(|v| v == "1"),
        }
    }

    fn ticks(&self, d: Duration) -> u64 {
        (d.as_nanos() / self.tick.as_nanos()).max(1) as u64
    }

    pub fn raft_config(&self, me: NodeId) -> Config {
        let mut cfg = Config::new(me);
        cfg.seed = self.seed;
        cfg.election_timeout_ticks = self.ticks(self.election_timeout);
        cfg.heartbeat_interval_ticks = self.ticks(self.heartbeat);
        cfg.lease_ticks = self.ticks(self.lease);
        cfg.retransmit_ticks = self.ticks(self.retransmit);
        cfg.min_retransmit_ticks = self.ticks(self.min_retransmit).min(cfg.retransmit_ticks);
        // Entry bytes per append; JSON escaping can inflate text up to 6x, and the
        // server splits any append that still overflows a datagram.
        cfg.max_msg_bytes = 64 * 1024;
        cfg.max_msg_entries = 512;
        cfg.max_inflight_msgs = 64;
        cfg.max_uncommitted_bytes = 8 << 20;
        cfg.relay = self.relay;
        cfg.rotate_chain = self.rotate_chain;
        // 0 ms turns it off.
        cfg.defer_chain_retry_ticks = if self.defer_chain_retry.is_zero() {
            0
        } else {
            self.ticks(self.defer_chain_retry)
        };
        cfg.quiet_cut_off_pre_votes = self.quiet_cut_off_pre_votes;
        cfg.lazy_committed_catch_up = self.lazy_committed_catch_up;
        cfg.fanout = Fanout::Quorum {
            extra: self.fanout_extra,
        };
        cfg
    }

    pub fn node_options(&self) -> NodeOptions {
        NodeOptions {
            hold_ticks: self.ticks(self.hold),
            fresh_leader_ticks: self.ticks(self.fresh_leader),
            max_held: 10_000,
            max_in_flight: 100_000,
            unsafe_local_reads: self.unsafe_stale_reads,
            // The seed replica keeps everything in memory and never restarts: no
            // snapshot store (Node::open), so this policy is never used.
            snapshot: Default::default(),
            planted_bugs: Default::default(),
        }
    }
}
