//! `kvsim`: command-line front end of the `sim` crate.
//!
//! `kvsim harness [OPTIONS] CONFIG|all` runs the course harness (see
//! crates/sim/HARNESS.md).
//!
//! `kvsim simulate --seeds N | --seed S [OPTIONS]` runs the deterministic cluster
//! simulator (see crates/sim/SIMULATE.md).

use clap::{Args, Parser, Subcommand};
use serde_json::json;
use sim::harness::{
    describe, list_suite, resolve_config, resolve_config_dir, run_scenario, run_suite,
    HarnessOptions, Scenario, GROUPS, INTERRUPTED,
};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

mod simulate_cmd;

#[derive(Parser)]
#[command(name = "kvsim", version, about = "raftkv simulation and test tools")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario (or `all` of them) against real replica processes,
    /// exactly as the course harness does.
    Harness(HarnessArgs),
    /// Deterministic simulation of whole clusters (real core and driver, virtual time):
    /// many seeds in parallel, or one seed replayed bit for bit.
    Simulate(simulate_cmd::SimulateArgs),
}

#[derive(Args)]
struct HarnessArgs {
    /// Scenario file, scenario name (e.g. `simple-1`), or `all`.
    config: String,
    /// The replica program, started as `PATH <port> <ID> <other IDs…>`.
    #[arg(long, default_value = "./3700kvstore")]
    replica: PathBuf,
    /// Send replica stdout/stderr to /dev/null instead of showing it.
    #[arg(long)]
    silence: bool,
    /// Scenario directory (default: $KVSIM_CONFIG_DIR, else the nearest
    /// shared/sim-configs in the current directory or an ancestor).
    #[arg(long)]
    config_dir: Option<PathBuf>,
    /// Seed of the harness's own random choices (clients, keys, drops,
    /// partitions). With `all`, scenario i uses SEED+i.
    #[arg(long)]
    seed: Option<u64>,
    /// Write the report (figures, tiers, verdicts per scenario) as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write every datagram as a JSON line (with `all`: one file per
    /// scenario, FILE's stem + `.<scenario>`).
    #[arg(long)]
    trace: Option<PathBuf>,
    /// With `all`: scenarios run at a time. Tiers measured with more than
    /// one are not comparable (CPU contention); verdicts stay sound.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// With `all` and one job: seconds to wait between scenarios.
    #[arg(long, default_value_t = 10.0)]
    between: f64,
    /// Seconds allowed to the linearizability checker ("unknown" fails).
    #[arg(long, default_value_t = 10.0)]
    lincheck_budget: f64,
    /// With `all`: also print each scenario's full report.
    #[arg(long)]
    verbose: bool,
    /// After each scenario, run its schedule again against a stand-in replica
    /// that answers at once with no replication, and report that median as the
    /// harness's own latency floor (doubles the run time).
    #[arg(long)]
    floor: bool,
    /// The stand-in replica for --floor (default: `floorreplica` beside kvsim).
    #[arg(long)]
    floor_replica: Option<PathBuf>,
}

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe. The run loop sees it within
    // one turn, kills its replicas and reports.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installs a handler that only stores to an atomic.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Harness(a) => harness(a),
        Cmd::Simulate(a) => simulate_cmd::simulate(a),
    }
}

fn secs(v: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v).map_err(|_| format!("--{what}: {v} is not a duration"))
}

fn harness(a: HarnessArgs) -> ExitCode {
    match harness_inner(a) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kvsim: {e}");
            ExitCode::from(2)
        }
    }
}

fn write_json(path: &PathBuf, value: &serde_json::Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

fn harness_inner(a: HarnessArgs) -> Result<ExitCode, String> {
    install_signal_handlers();
    let floor = match (a.floor, &a.floor_replica) {
        (false, _) => None,
        (true, Some(p)) => Some(p.clone()),
        (true, None) => Some(sim::harness::default_standin().ok_or(
            "--floor: no floorreplica beside kvsim (cargo build --release -p sim), or use --floor-replica",
        )?),
    };
    let opts = HarnessOptions {
        replica: a.replica.clone(),
        silence: a.silence,
        seed: a.seed,
        trace: a.trace.clone(),
        lincheck_budget: secs(a.lincheck_budget, "lincheck-budget")?,
        echo: true,
        floor,
    };
    let dir = resolve_config_dir(a.config_dir.as_deref());

    if a.config == "all" {
        let dir = dir.ok_or("no scenario directory: use --config-dir or $KVSIM_CONFIG_DIR")?;
        let entries = list_suite(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if entries.is_empty() {
            return Err(format!("no scenarios in {}", dir.display()));
        }
        // 17 runs of N replicas each: their output would drown the summary,
        // and with --jobs it would interleave. Errors go to the JSON report.
        let suite_opts = HarnessOptions {
            silence: true,
            echo: false,
            ..opts
        };
        let between = secs(a.between, "between")?;
        let mut passed = 0;
        let mut group = usize::MAX;
        let mut results = Vec::new();
        run_suite(
            &entries,
            &suite_opts,
            a.jobs.max(1),
            between,
            |_, e, sc, out| {
                let desc = sc.map(describe).unwrap_or_else(|| e.name.clone());
                if a.verbose {
                    if let Ok(r) = out {
                        println!("## {}\n{}", e.name, r.render());
                    }
                }
                if e.group != group {
                    group = e.group;
                    println!("{}", GROUPS[group].1);
                }
                match out {
                    Ok(r) => {
                        passed += usize::from(r.passed);
                        println!("{}", r.summary_line(&desc));
                        results.push(json!({"description": desc, "report": r}));
                    }
                    Err(err) => {
                        println!("\t{desc}\t[FAIL]");
                        eprintln!("kvsim: {}: {err}", e.name);
                        results.push(json!({"name": e.name, "description": desc, "error": err}));
                    }
                }
                let _ = std::io::stdout().flush();
            },
        );
        println!("Passed {passed} out of {} tests", entries.len());
        if let Some(p) = &a.json {
            write_json(
                p,
                &json!({"passed": passed, "total": entries.len(), "jobs": a.jobs.max(1), "scenarios": results}),
            )?;
        }
        return Ok(exit_code(passed == entries.len()));
    }

    let path = resolve_config(&a.config, dir.as_deref())?;
    let sc = Scenario::from_file(&path).map_err(|e| e.to_string())?;
    let report = run_scenario(&sc, &opts).map_err(|e| e.to_string())?;
    print!("{}", report.render());
    let _ = std::io::stdout().flush();
    eprintln!(
        "kvsim: harness seed {} (replay its choices with --seed {})",
        report.seed, report.seed
    );
    if let Some(p) = &a.json {
        let desc = describe(&sc);
        write_json(
            p,
            &json!({"passed": usize::from(report.passed), "total": 1, "jobs": 1,
                    "scenarios": [{"description": desc, "report": report}]}),
        )?;
    }
    Ok(exit_code(report.passed))
}

fn exit_code(all_passed: bool) -> ExitCode {
    if INTERRUPTED.load(Ordering::SeqCst) {
        ExitCode::from(130)
    } else if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
