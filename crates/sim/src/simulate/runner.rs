//! Many seeds in parallel (std threads pulling seeds from a shared counter).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::params::Bugs;
use super::run::{run_seed, RunOptions, RunReport};

#[derive(Clone, Debug)]
pub struct BatchOptions {
    pub first_seed: u64,
    pub seeds: u64,
    pub nodes: Option<usize>,
    pub jobs: usize,
    pub bugs: Bugs,
    /// Stop at the first failing seed (seeds below it still finish, so the reported seed
    /// is the smallest failing one).
    pub stop_at_first_failure: bool,
    pub lincheck_budget: Duration,
    pub known_issues: bool,
    pub commit_rule_check: bool,
    /// See `RunOptions::conf_overlap_check`.
    pub conf_overlap_check: bool,
}

impl BatchOptions {
    pub fn new(first_seed: u64, seeds: u64) -> BatchOptions {
        BatchOptions {
            first_seed,
            seeds,
            nodes: None,
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            bugs: Bugs::none(),
            stop_at_first_failure: false,
            lincheck_budget: Duration::from_secs(60),
            known_issues: false,
            commit_rule_check: true,
            conf_overlap_check: true,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct BatchReport {
    /// Seeds run to the end.
    pub runs: u64,
    /// Failing runs, in seed order.
    pub failures: Vec<RunReport>,
    pub wall: Duration,
    pub sim_us: u64,
    pub events: u64,
    pub ops: u64,
    /// Runs per cluster size (3, 5, 7).
    pub by_size: [u64; 3],
    /// Slowest seed's wall time, and its seed.
    pub slowest: (Duration, u64),
    /// Longest recovery (heal → new write acknowledged), µs.
    pub max_recovery_us: u64,
    /// Snapshots taken, and installed by followers from a leader (InstallSnapshot).
    pub snapshots_taken: u64,
    pub snapshots_installed: u64,
    /// Runs in which some follower caught up through a snapshot.
    pub runs_with_installs: u64,
    /// Membership changes asked for, answered complete, answered refused (all runs).
    pub conf_changes: (u64, u64, u64),
    /// Configuration entries committed (all runs), and runs that committed any.
    pub configs_committed: u64,
    pub runs_with_configs: u64,
}

impl BatchReport {
    pub fn seeds_per_sec(&self) -> f64 {
        self.runs as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// The smallest failing seed.
    pub fn first_failure(&self) -> Option<&RunReport> {
        self.failures.first()
    }
}

/// Runs `opts.seeds` seeds from `opts.first_seed` on `opts.jobs` threads; `each` sees
/// every report as it completes (in completion order).
pub fn run_batch(opts: &BatchOptions, mut each: impl FnMut(&RunReport)) -> BatchReport {
    let start = Instant::now();
    let end = opts.first_seed.saturating_add(opts.seeds);
    let next = AtomicU64::new(opts.first_seed);
    let found = AtomicU64::new(u64::MAX);
    let mut report = BatchReport::default();
    let (tx, rx) = mpsc::channel::<RunReport>();
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.max(1) {
            let tx = tx.clone();
            let (next, found) = (&next, &found);
            scope.spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::SeqCst);
                if seed >= end
                    || (opts.stop_at_first_failure && seed > found.load(Ordering::SeqCst))
                {
                    break;
                }
                let mut ro = RunOptions::new(seed);
                ro.nodes = opts.nodes;
                ro.bugs = opts.bugs;
                ro.lincheck_budget = opts.lincheck_budget;
                ro.known_issues = opts.known_issues;
                ro.commit_rule_check = opts.commit_rule_check;
                ro.conf_overlap_check = opts.conf_overlap_check;
                let r = run_seed(ro);
                if !r.passed() {
                    found.fetch_min(seed, Ordering::SeqCst);
                }
                if tx.send(r).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for r in rx {
            report.runs += 1;
            report.sim_us += r.sim_us;
            report.events += r.events;
            report.ops += r.ops as u64;
            report.snapshots_taken += r.snapshots_taken;
            report.snapshots_installed += r.snapshots_installed;
            report.runs_with_installs += u64::from(r.snapshots_installed > 0);
            report.conf_changes.0 += r.conf_changes.0;
            report.conf_changes.1 += r.conf_changes.1;
            report.conf_changes.2 += r.conf_changes.2;
            report.configs_committed += r.configs_committed;
            report.runs_with_configs += u64::from(r.configs_committed > 0);
            if let Some(k) = [3, 5, 7].iter().position(|&n| n == r.nodes) {
                report.by_size[k] += 1;
            }
            if r.wall > report.slowest.0 {
                report.slowest = (r.wall, r.seed);
            }
            report.max_recovery_us = report.max_recovery_us.max(r.recovery_us.unwrap_or(0));
            each(&r);
            if !r.passed() {
                report.failures.push(r);
            }
        }
    });
    report.failures.sort_by_key(|r| r.seed);
    report.wall = start.elapsed();
    report
}
