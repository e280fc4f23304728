//! `kvsim simulate`: the command-line front end of `sim::simulate`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use sim::simulate::{
    default_nodes, run_batch, run_seed, BatchOptions, Bugs, RunOptions, RunReport, BUG_NAMES,
};

#[derive(Args)]
pub struct SimulateArgs {
    /// Run this many seeds (from --first-seed) in parallel.
    #[arg(long, conflicts_with = "seed")]
    seeds: Option<u64>,
    /// The first seed of --seeds.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Run one seed (replays it exactly).
    #[arg(long)]
    seed: Option<u64>,
    /// Cluster size (3, 5 or 7; any size from 1 works). Default: drawn from the seed.
    #[arg(long)]
    nodes: Option<usize>,
    /// Threads for --seeds (default: the number of CPUs).
    #[arg(long)]
    jobs: Option<usize>,
    /// With --seed: write every event as a text line to FILE (`-` or no FILE: stdout).
    #[arg(long, num_args = 0..=1, default_missing_value = "-", requires = "seed")]
    trace: Option<String>,
    /// TEST ONLY: turn on a planted bug (repeatable): unsafe-local-reads,
    /// commit-old-term-by-count, vote-without-log-check, ack-before-persist, apply-twice.
    #[arg(long = "bug", value_name = "NAME")]
    bugs: Vec<String>,
    /// With --seeds: stop at the first failing seed (the smallest one is reported).
    #[arg(long)]
    stop_at_first_failure: bool,
    /// Seconds allowed to the linearizability checker per seed ("unknown" fails).
    #[arg(long, default_value_t = 60.0)]
    lincheck_budget: f64,
    /// With --seeds: a line per seed, not only per failure.
    #[arg(long)]
    verbose: bool,
    /// Also draw configurations that hit open findings in the core (listed in
    /// crates/sim/SIMULATE.md); by default the draws steer clear of them.
    #[arg(long)]
    known_issues: bool,
    /// Do not check the §5.4.2 commit rule directly (catch a commit by count only by its
    /// consequences); for measuring how long the consequences take to show.
    #[arg(long, hide = true)]
    no_commit_rule_check: bool,
    /// Do not check configuration transitions directly (catch two disjoint quorums only
    /// by their consequences); for measuring how long the consequences take to show.
    #[arg(long, hide = true)]
    no_conf_overlap_check: bool,
}

pub fn simulate(a: SimulateArgs) -> ExitCode {
    // `kvsim simulate … | head` should end quietly, not panic on a closed pipe.
    // SAFETY: restores the default disposition of SIGPIPE before any output.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match simulate_inner(a) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("kvsim simulate: {e}");
            ExitCode::from(2)
        }
    }
}

fn simulate_inner(a: SimulateArgs) -> Result<bool, String> {
    let mut bugs = Bugs::none();
    for b in &a.bugs {
        bugs.enable(b)?;
    }
    if a.nodes == Some(0) {
        return Err("--nodes must be at least 1".into());
    }
    let budget = Duration::try_from_secs_f64(a.lincheck_budget)
        .map_err(|_| format!("--lincheck-budget {} is not a duration", a.lincheck_budget))?;
    if let Some(seed) = a.seed {
        return Ok(one_seed(seed, &a, bugs, budget));
    }
    let Some(seeds) = a.seeds else {
        return Err(format!(
            "give --seeds N (a batch) or --seed S (one run); planted bugs: {}",
            BUG_NAMES.join(", ")
        ));
    };
    let mut opts = BatchOptions::new(a.first_seed, seeds);
    opts.nodes = a.nodes;
    if let Some(j) = a.jobs {
        opts.jobs = j.max(1);
    }
    opts.bugs = bugs;
    opts.stop_at_first_failure = a.stop_at_first_failure;
    opts.lincheck_budget = budget;
    opts.known_issues = a.known_issues;
    opts.commit_rule_check = !a.no_commit_rule_check;
    opts.conf_overlap_check = !a.no_conf_overlap_check;
    println!(
        "kvsim simulate: seeds {}..{} on {} threads{}{}",
        a.first_seed,
        a.first_seed.saturating_add(seeds),
        opts.jobs,
        a.nodes.map_or(
            ", cluster size drawn per seed (3/5/7)".to_string(),
            |n| format!(", {n} nodes")
        ),
        if bugs.names().is_empty() {
            String::new()
        } else {
            format!(", planted bugs: {}", bugs.names().join(", "))
        }
    );
    let progress_every = (seeds / 20).max(1);
    let mut done = 0u64;
    let started = std::time::Instant::now();
    let report = run_batch(&opts, |r| {
        done += 1;
        if !r.passed() {
            println!(
                "FAIL seed {} ({} nodes): {}\n  reproduce: {}",
                r.seed,
                r.nodes,
                first_line(r.failure.as_deref().unwrap_or("")),
                r.repro()
            );
        } else if a.verbose {
            println!("ok   seed {} ({} nodes) {}", r.seed, r.nodes, summary(r));
        }
        if done % progress_every == 0 && seeds >= 100 {
            let el = started.elapsed().as_secs_f64();
            eprintln!(
                "  {done}/{seeds} seeds, {:.1} seeds/s",
                done as f64 / el.max(1e-9)
            );
        }
        let _ = std::io::stdout().flush();
    });
    let secs = report.wall.as_secs_f64();
    println!(
        "{} seeds ({} × 3 nodes, {} × 5, {} × 7) in {:.1} s: {:.2} seeds/s on {} threads; \
         {:.0} s simulated per seed, {} events, {} client ops; slowest seed {} ({:.2} s); \
         longest recovery after heal {} ms; {} snapshots taken, {} installed from a leader \
         (in {} runs); {} membership changes asked, {} completed, {} refused; {} \
         configuration entries committed (in {} runs)",
        report.runs,
        report.by_size[0],
        report.by_size[1],
        report.by_size[2],
        secs,
        report.seeds_per_sec(),
        opts.jobs,
        report.sim_us as f64 / 1e6 / report.runs.max(1) as f64,
        report.events,
        report.ops,
        report.slowest.1,
        report.slowest.0.as_secs_f64(),
        report.max_recovery_us / 1000,
        report.snapshots_taken,
        report.snapshots_installed,
        report.runs_with_installs,
        report.conf_changes.0,
        report.conf_changes.1,
        report.conf_changes.2,
        report.configs_committed,
        report.runs_with_configs,
    );
    if report.failures.is_empty() {
        println!("all {} seeds passed", report.runs);
        Ok(true)
    } else {
        println!("{} seeds FAILED:", report.failures.len());
        for r in &report.failures {
            println!(
                "  {}   # {}",
                r.repro(),
                first_line(r.failure.as_deref().unwrap_or(""))
            );
        }
        Ok(false)
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn summary(r: &RunReport) -> String {
    format!(
        "{:.1} s simulated, {} events, {} ops ({} acked, {} indeterminate), {} committed, \
         {} leaders, {} crashes, {} snapshots ({} installed from a leader), {} messages, \
         membership changes {} asked / {} completed / {} refused, {} configurations committed, \
         recovery {} ms, {:.2} s wall (lincheck {:.0} ms), \
         trace hash {:016x}",
        r.sim_us as f64 / 1e6,
        r.events,
        r.ops,
        r.acked,
        r.indeterminate,
        r.committed,
        r.elections,
        r.crashes,
        r.snapshots_taken,
        r.snapshots_installed,
        r.msgs_sent,
        r.conf_changes.0,
        r.conf_changes.1,
        r.conf_changes.2,
        r.configs_committed,
        r.recovery_us
            .map_or("-".to_string(), |us| (us / 1000).to_string()),
        r.wall.as_secs_f64(),
        r.lincheck_wall.as_secs_f64() * 1e3,
        r.trace_hash
    )
}

fn one_seed(seed: u64, a: &SimulateArgs, bugs: Bugs, budget: Duration) -> bool {
    let mut opts = RunOptions::new(seed);
    opts.nodes = Some(a.nodes.unwrap_or_else(|| default_nodes(seed)));
    opts.bugs = bugs;
    opts.lincheck_budget = budget;
    opts.known_issues = a.known_issues;
    opts.commit_rule_check = !a.no_commit_rule_check;
    opts.conf_overlap_check = !a.no_conf_overlap_check;
    opts.trace = match a.trace.as_deref() {
        None => None,
        Some("-") => Some(Box::new(std::io::stdout())),
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Some(Box::new(std::io::BufWriter::new(f))),
            Err(e) => {
                eprintln!("kvsim simulate: {path}: {e}");
                return false;
            }
        },
    };
    let r = run_seed(opts);
    println!("seed {} ({} nodes): {}", r.seed, r.nodes, r.params);
    println!("{}", summary(&r));
    if !r.fault_tail.is_empty() {
        println!("last faults:");
        for f in &r.fault_tail {
            println!("  {f}");
        }
    }
    match &r.failure {
        None => {
            println!("PASS  (replay: {})", r.repro());
            true
        }
        Some(f) => {
            println!("FAIL: {f}\n  reproduce: {}", r.repro());
            false
        }
    }
}
