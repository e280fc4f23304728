//! One seed, start to finish: a safety phase with faults and clients, then a liveness
//! phase (faults heal, a new write must commit within a bound, all nodes converge), then
//! the end-of-run checks.

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::check::{check_final_state, check_linearizable, converged};
use super::clock::{MS, SEC};
use super::params::{Bugs, Params};
use super::rng::SimRng;
use super::trace::Trace;
use super::world::World;

/// Cluster sizes a seed picks from when `--nodes` is not given.
pub const SIZES: [usize; 3] = [3, 5, 7];

/// Every run lasts at least this much simulated time.
pub const MIN_SIM_US: u64 = 60 * SEC;

/// The cluster size of `seed` when none is given: a function of the seed alone (not of
/// the run's RNG stream), so `--seed S` and `--seed S --nodes K` are the same run.
pub fn default_nodes(seed: u64) -> usize {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    SIZES[((z ^ (z >> 31)) % 3) as usize]
}

pub struct RunOptions {
    pub seed: u64,
    pub nodes: Option<usize>,
    pub bugs: Bugs,
    /// Where to write the text trace, if anywhere.
    pub trace: Option<Box<dyn Write + Send>>,
    pub lincheck_budget: Duration,
    /// Also draw configurations that hit open findings (see `params::KNOWN_ISSUES`).
    pub known_issues: bool,
    /// Check the §5.4.2 commit rule directly (default); off, a commit by count is caught
    /// only by what it breaks later (leader completeness, commit safety, lost writes).
    pub commit_rule_check: bool,
    /// Check that every configuration's quorums overlap the previous one's (default);
    /// off, two voters switched at once are caught only by what they break later.
    pub conf_overlap_check: bool,
}

impl RunOptions {
    pub fn new(seed: u64) -> RunOptions {
        RunOptions {
            seed,
            nodes: None,
            bugs: Bugs::none(),
            trace: None,
            lincheck_budget: Duration::from_secs(60),
            known_issues: false,
            commit_rule_check: true,
            conf_overlap_check: true,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct RunReport {
    pub seed: u64,
    pub nodes: usize,
    pub bugs: Bugs,
    pub known_issues: bool,
    pub failure: Option<String>,
    pub trace_hash: u64,
    pub events: u64,
    pub sim_us: u64,
    pub ops: usize,
    pub acked: usize,
    pub indeterminate: usize,
    pub elections: u64,
    pub crashes: u32,
    pub snapshots_taken: u64,
    pub snapshots_installed: u64,
    pub msgs_sent: u64,
    pub committed: u64,
    /// Membership changes asked for, answered complete, answered refused.
    pub conf_changes: (u64, u64, u64),
    /// Configuration entries committed.
    pub configs_committed: u64,
    /// From the heal to the first acknowledged new write.
    pub recovery_us: Option<u64>,
    pub wall: Duration,
    pub lincheck_wall: Duration,
    pub params: String,
    /// The last faults before the end (for a failing seed's report).
    pub fault_tail: Vec<String>,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// The command that replays this run.
    pub fn repro(&self) -> String {
        let mut s = format!("kvsim simulate --seed {} --nodes {}", self.seed, self.nodes);
        for b in self.bugs.names() {
            s.push_str(&format!(" --bug {b}"));
        }
        if self.known_issues {
            s.push_str(" --known-issues");
        }
        s
    }
}

/// Runs one seed; a panic in the core, driver or simulator is a failure of the seed.
pub fn run_seed(opts: RunOptions) -> RunReport {
    let (seed, bugs, known_issues) = (opts.seed, opts.bugs, opts.known_issues);
    let nodes = opts.nodes.unwrap_or_else(|| default_nodes(seed));
    let start = Instant::now();
    match catch_unwind(AssertUnwindSafe(|| run_inner(opts, nodes))) {
        Ok(mut r) => {
            r.wall = start.elapsed();
            r
        }
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            RunReport {
                seed,
                nodes,
                bugs,
                known_issues,
                failure: Some(format!("panic: {msg}")),
                wall: start.elapsed(),
                ..RunReport::default()
            }
        }
    }
}

fn run_inner(opts: RunOptions, nodes: usize) -> RunReport {
    let mut rng = SimRng::new(opts.seed);
    let p = Params::draw(opts.seed, nodes, opts.bugs, opts.known_issues, &mut rng);
    let params = p.describe();
    let trace = match opts.trace {
        Some(w) => Trace::to_writer(w),
        None => Trace::new(),
    };
    let mut w = World::new(p, rng, trace);
    w.inv.commit_rule = opts.commit_rule_check;
    w.inv.conf_overlap = opts.conf_overlap_check;
    w.trace.note(0, &format!("seed {} — {params}", opts.seed));
    let mut lincheck_wall = Duration::ZERO;
    let failure = phases(&mut w).and_then(|()| {
        check_final_state(&w)?;
        let t = Instant::now();
        let r = check_linearizable(&w, opts.lincheck_budget);
        lincheck_wall = t.elapsed();
        r
    });
    if let Err(e) = failure {
        w.fail(e);
    }
    w.trace.flush();
    let (ops, acked, indeterminate) = w.clients.stats();
    let recovery_us = match (w.clients.probe_started_at, w.clients.probe_acked_at) {
        (Some(s), Some(a)) => Some(a - s),
        _ => None,
    };
    let tail_from = w.fault_log.len().saturating_sub(12);
    RunReport {
        seed: opts.seed,
        nodes,
        bugs: opts.bugs,
        known_issues: opts.known_issues,
        failure: w.failure.clone(),
        trace_hash: w.trace.hash(),
        events: w.steps,
        sim_us: w.now,
        ops,
        acked,
        indeterminate,
        elections: w.inv.elections,
        crashes: w.machines.iter().map(|m| m.crashes).sum(),
        snapshots_taken: w.machines.iter().map(|m| m.snapshots().0).sum(),
        snapshots_installed: w.machines.iter().map(|m| m.snapshots().1).sum(),
        msgs_sent: w.net.stats.sent,
        committed: w.inv.committed_len(),
        conf_changes: (
            w.member_requests,
            w.member_answers
                .iter()
                .filter(|r| matches!(r, driver::Response::MembershipChanged(_)))
                .count() as u64,
            w.member_answers
                .iter()
                .filter(|r| matches!(r, driver::Response::MembershipRefused(_)))
                .count() as u64,
        ),
        configs_committed: w
            .inv
            .committed_log()
            .iter()
            .filter(|e| e.kind == raft::EntryKind::ConfChange)
            .count() as u64,
        recovery_us,
        wall: Duration::ZERO,
        lincheck_wall,
        params,
        fault_tail: w.fault_log[tail_from..].to_vec(),
    }
}

/// The phases of a run; `Err` is the first failure.
fn phases(w: &mut World) -> Result<(), String> {
    // Safety phase: faults and clients.
    w.start_faults();
    w.start_clients();
    w.run_until(w.p.safety_us);
    stopped(w)?;

    // Liveness phase: heal, then a new write must commit within the bound.
    w.heal_all();
    stopped(w)?;
    let heal = w.now;
    w.start_probe();
    // A leader commits an entry of its term only once a quorum holds its log: the
    // catch-up that takes is allowed for, as at convergence below.
    let lag = quorum_lag_at_heal(w);
    let allowance = allowance_for_lag_us(w, lag);
    let bound = w.p.liveness_commit_bound_us + allowance;
    if !w.run_until_pred(heal + bound, |w| w.clients.probe_acked_at.is_some()) {
        stopped(w)?;
        return Err(format!(
            "liveness: no new write committed within {} ms of the heal ({} ms for a \
             catch-up of {lag} entries; leaders: {:?})",
            bound / MS,
            allowance / MS,
            w.leaders()
        ));
    }
    // Clients go on for a while on the healed cluster, then stop.
    w.run_until(heal + w.p.liveness_load_us);
    w.stop_clients();
    let limit = w.now + w.p.op_timeout_us + SEC;
    w.run_until_pred(limit, |w| w.clients.outstanding() == 0);
    stopped(w)?;

    // Convergence: same applied index, same state machine, everywhere.
    let quiet = w.now;
    let bound = w.p.converge_bound_us + catch_up_allowance_us(w);
    if !w.run_until_pred(quiet + bound, converged) {
        stopped(w)?;
        return Err(format!(
            "liveness: nodes did not converge within {} ms of the clients stopping ({})",
            bound / MS,
            describe_nodes(w)
        ));
    }
    // The final state, read through the front door (part of the checked history).
    w.start_final_reads();
    let limit = w.now + 10 * SEC;
    if !w.run_until_pred(limit, |w| w.clients.final_done_at.is_some()) {
        stopped(w)?;
        return Err("liveness: the final reads did not finish within 10 s".into());
    }
    // Idle to the minimum length, and check the cluster stays converged.
    let end = w.now.max(MIN_SIM_US);
    w.run_until(end);
    stopped(w)?;
    if !converged(w) {
        return Err(format!(
            "an idle converged cluster diverged ({})",
            describe_nodes(w)
        ));
    }
    Ok(())
}

fn stopped(w: &World) -> Result<(), String> {
    match &w.failure {
        Some(f) => Err(f.clone()),
        None => Ok(()),
    }
}

/// Time a lagging node may legitimately need to catch up, on top of the fixed bound (see
/// [`allowance_for_lag_us`]): the lag is how far the node furthest behind is from the
/// longest log.
fn catch_up_allowance_us(w: &World) -> u64 {
    let rafts: Vec<_> = w.machines.iter().filter_map(|m| m.raft()).collect();
    let Some(last) = rafts.iter().map(|r| r.log().last_index()).max() else {
        return 0;
    };
    let behind = rafts
        .iter()
        .map(|r| last.saturating_sub(r.log().applied))
        .max()
        .unwrap_or(0);
    allowance_for_lag_us(w, behind)
}

/// Time to bring a log `behind` entries up to date: the flow-control window carries
/// `entries/msg × in-flight` entries per round trip, and a round trip takes up to twice
/// the maximum latency, stretched by the run's loss. Small windows on a slow, lossy
/// network make catching up slow, not wrong.
fn allowance_for_lag_us(w: &World, behind: u64) -> u64 {
    let per_round_trip = (w.p.max_msg_entries * w.p.max_inflight_msgs).max(1) as u64;
    let round_trips = behind.div_ceil(per_round_trip);
    let round_trip_us = 2 * w.p.lat_max_us;
    let delivered = (1.0 - w.p.loss).powi(2).max(0.25);
    (round_trips as f64 * round_trip_us as f64 / delivered) as u64
}

/// Entries a leader elected at the heal must bring a quorum up to before an entry of its
/// term can commit (§5.4.2), from the nodes' logs at the heal. The leader's log is taken
/// to be the most up-to-date voter log (§5.4.1: the one any election favours); a voter
/// holds it up to the last index where their terms agree (log matching), and at least up
/// to its commit index (committed entries are in every future leader's log). The lag is
/// the gap to the voter a quorum needs last (in each half of a joint configuration).
fn quorum_lag_at_heal(w: &World) -> u64 {
    let rafts: Vec<&raft::Raft> = w.machines.iter().filter_map(|m| m.raft()).collect();
    let Some(reference) = rafts
        .iter()
        .filter(|r| r.membership().is_voter(r.id()))
        .max_by_key(|r| (r.log().last_term(), r.log().last_index()))
    else {
        return 0;
    };
    let target = reference.log().last_index();
    let matched = |id: raft::NodeId| -> u64 {
        let Some(r) = rafts.iter().find(|r| r.id() == id) else {
            return 0; // down or never started: holds nothing we can count on
        };
        let floor = r.commit_index();
        let mut i = r.log().last_index().min(target);
        while i > floor {
            let ours = r.log().term(i);
            if ours.is_some() && ours == reference.log().term(i) {
                return i;
            }
            i -= 1;
        }
        floor
    };
    let m = reference.membership();
    [&m.voters, &m.voters_outgoing]
        .into_iter()
        .filter(|half| !half.is_empty())
        .map(|half| {
            let mut held: Vec<u64> = half.iter().map(|&id| matched(id)).collect();
            held.sort_unstable_by(|a, b| b.cmp(a));
            // The quorum's slowest member: the majority-th most caught up.
            target.saturating_sub(held[half.len() / 2])
        })
        .max()
        .unwrap_or(0)
}

/// One line per node: role, term, last/commit/applied.
pub fn describe_nodes(w: &World) -> String {
    w.machines
        .iter()
        .map(|m| match m.raft() {
            Some(r) => format!(
                "{}: {:?} t{} last {} commit {} applied {}{}",
                m.id,
                r.role(),
                r.term(),
                r.log().last_index(),
                r.commit_index(),
                r.log().applied,
                if m.paused { " paused" } else { "" }
            ),
            None => format!("{}: down", m.id),
        })
        .collect::<Vec<_>>()
        .join("; ")
}
