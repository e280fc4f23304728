//! `kvbench ttl`: a million keys under TTLs on a three-node raftkv cluster. Does memory
//! stay bounded by the live keys (active expiry, through the log, keeps up), and does the
//! other traffic's p99 stay within 10 % of a run without TTLs?
//!
//! Each run starts a fresh cluster and writes at a fixed rate (`churn.rs`): with TTLs,
//! every write a new key living `--ttl` seconds, so the live keys settle at
//! `--keys` = rate × TTL, and from then on active expiry must remove as many keys per
//! second as are written; without TTLs, the same writes over a fixed key space of
//! `--keys`, so the map holds as many keys. After one TTL of churn (the fill), a closed
//! loop of `--clients` clients runs a 50/50 GET/SET mix on a separate preloaded key
//! space for `--duration` seconds (the "other traffic"), the churn still going; every
//! node's INFO is sampled each second (`sampler.rs`). Runs alternate (no TTL, TTL, then
//! TTL, no TTL, ...) for `--rounds` rounds, so a machine that drifts affects both alike.

mod churn;
mod report;
mod sampler;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

use crate::drivers::Target;
use crate::orchestrate::process::Proc;
use crate::orchestrate::raftkv::{find_binary, RaftkvCluster};
use crate::orchestrate::{wait_ready, Workspace};
use crate::runner::{self, RunSpec};
use crate::workload::{DataShape, Workload};
use churn::{Churn, ChurnSpec};
use sampler::{Sample, Sampler};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TtlOpts {
    pub keys: u64,
    pub ttl_s: f64,
    pub duration_s: f64,
    pub clients: usize,
    pub value_size: usize,
    pub rounds: usize,
    #[serde(skip)]
    pub out: Option<PathBuf>,
    #[serde(skip)]
    pub raftkv_bin: Option<PathBuf>,
}

/// One run: with or without TTLs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub ttl: bool,
    pub round: usize,
    pub churn_rate: f64,
    pub churn_achieved: f64,
    pub churn_errors: u64,
    /// The other traffic, measured after the fill.
    pub traffic: crate::report::Sample,
    /// When the measured window began and ended (Unix ms).
    pub window: (u64, u64),
    pub samples: Vec<Sample>,
    /// TTL runs: the writes acknowledged, as (sent at, count), to know which keys are live.
    pub batches: Vec<(u64, u64)>,
    /// CPU seconds (user + system) each node used during the measured traffic, warm-up
    /// included: what the work cost, whatever else the machine was doing.
    pub node_cpu_s: Vec<f64>,
}

/// User + system CPU seconds of process `pid` so far (`/proc/<pid>/stat`).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) / hz
}

/// The shape of the other traffic: raftkv's usual benchmark key space.
const TRAFFIC: DataShape = DataShape {
    keyspace: 100_000,
    key_size: 16,
    value_size: 256,
};

pub fn ttl(opts: TtlOpts) -> Result<PathBuf, String> {
    if opts.keys == 0 || opts.ttl_s <= 0.0 || opts.duration_s <= 0.0 || opts.clients == 0 {
        return Err("--keys, --ttl, --duration and --clients must be positive".into());
    }
    let bin = find_binary(opts.raftkv_bin.as_deref()).ok_or(
        "no raftkv binary (build it: cargo build --release -p server, or pass --raftkv-bin)",
    )?;
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let Workspace {
        out,
        logs,
        rt,
        scratch,
    } = Workspace::create(opts.out.clone(), "ttl-", started)?;
    let load_before = crate::report::load_average();

    let mut runs = Vec::new();
    for round in 0..opts.rounds.max(1) {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for ttl in order {
            let name = format!("round{}-{}", round + 1, if ttl { "ttl" } else { "nottl" });
            eprintln!("kvbench ttl: {name}");
            let data = scratch.path().join(&name);
            let log_dir = logs.join(&name);
            std::fs::create_dir_all(&log_dir).map_err(|e| e.to_string())?;
            runs.push(run_one(&rt, &bin, &data, &log_dir, &opts, ttl, round + 1)?);
            let _ = std::fs::remove_dir_all(&data);
        }
    }
    let load = (load_before, crate::report::load_average());
    write(&out, &opts, &runs, load)?;
    Ok(out)
}

/// Writes `ttl.json` (everything measured) and `ttl.md` into `out`, and prints the latter.
fn write(
    out: &Path,
    opts: &TtlOpts,
    runs: &[RunResult],
    load: (Option<f64>, Option<f64>),
) -> Result<(), String> {
    let summary = report::Summary::of(opts, runs, load.0, load.1);
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "opts": opts,
        "load": load,
        "summary": summary,
        "runs": runs,
    }))
    .map_err(|e| e.to_string())?;
    std::fs::write(out.join("ttl.json"), json + "\n").map_err(|e| e.to_string())?;
    let md = report::markdown(opts, &summary, runs);
    std::fs::write(out.join("ttl.md"), &md).map_err(|e| e.to_string())?;
    println!("{md}");
    println!("wrote {}", out.display());
    Ok(())
}

/// `kvbench ttl --report DIR/ttl.json`: the summary and `ttl.md` again, from what a run
/// measured (into the JSON's directory).
pub fn rerender(json: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(json).map_err(|e| format!("{}: {e}", json.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let opts: TtlOpts = serde_json::from_value(v["opts"].clone()).map_err(|e| e.to_string())?;
    let runs: Vec<RunResult> =
        serde_json::from_value(v["runs"].clone()).map_err(|e| e.to_string())?;
    let load = match &v["load"] {
        serde_json::Value::Array(l) if l.len() == 2 => (l[0].as_f64(), l[1].as_f64()),
        _ => (
            v["summary"]["load_before"].as_f64(),
            v["summary"]["load_after"].as_f64(),
        ),
    };
    let dir = json.parent().unwrap_or(Path::new("."));
    write(dir, &opts, &runs, load)
}

fn run_one(
    rt: &Runtime,
    bin: &Path,
    data: &Path,
    logs: &Path,
    opts: &TtlOpts,
    ttl: bool,
    round: usize,
) -> Result<RunResult, String> {
    let mut cluster = RaftkvCluster::start(bin, data, logs)?;
    let endpoints = cluster.endpoints.clone();
    {
        let mut procs: Vec<&mut Proc> = cluster.nodes.iter_mut().collect();
        wait_ready(
            rt,
            Target::Raftkv,
            &endpoints,
            &mut procs,
            Duration::from_secs(60),
        )?;
    }
    let bar = runner::progress_bar("preload", Duration::ZERO);
    rt.block_on(runner::preload(Target::Raftkv, &endpoints, TRAFFIC, &bar))?;

    let rate = opts.keys as f64 / opts.ttl_s;
    let spec = ChurnSpec {
        endpoints: endpoints.clone(),
        rate,
        ttl_ms: ttl.then_some((opts.ttl_s * 1000.0) as u64),
        keys: opts.keys,
        value_size: opts.value_size,
    };
    let churn = rt.block_on(Churn::start(spec))?;
    let sampler = rt.block_on(Sampler::start(&endpoints))?;
    // The fill: one TTL of churn, so the live keys reach --keys.
    let fill = Duration::from_secs_f64(opts.ttl_s);
    let bar = runner::progress_bar("fill (one TTL of writes)", fill);
    let t0 = std::time::Instant::now();
    while t0.elapsed() < fill {
        for p in cluster.nodes.iter_mut() {
            p.check_alive()?;
        }
        bar.set_position(t0.elapsed().as_millis() as u64);
        bar.set_message(format!("{:>7.0} writes/s", churn.achieved_rate()));
        std::thread::sleep(Duration::from_millis(250));
    }
    bar.finish_and_clear();

    let traffic = RunSpec {
        target: Target::Raftkv,
        endpoints: endpoints.clone(),
        workload: Workload::Mixed,
        clients: opts.clients,
        warmup: Duration::from_secs(2),
        duration: Duration::from_secs_f64(opts.duration_s),
        shape: TRAFFIC,
        seed: round as u64,
    };
    let label = format!("traffic ({})", if ttl { "TTL" } else { "no TTL" });
    let bar = runner::progress_bar(&label, traffic.warmup + traffic.duration);
    let window_start = churn::unix_ms() + 2_000 + 20;
    let cpu_before: Vec<f64> = cluster.nodes.iter().map(|p| cpu_seconds(p.pid())).collect();
    let sample = rt.block_on(runner::run(&traffic, &bar))?;
    let node_cpu_s: Vec<f64> = cluster
        .nodes
        .iter()
        .zip(&cpu_before)
        .map(|(p, b)| cpu_seconds(p.pid()) - b)
        .collect();
    let window_end = churn::unix_ms();
    let achieved = churn.achieved_rate();
    let errors = churn.errors.load(std::sync::atomic::Ordering::Relaxed);
    let batches = rt.block_on(churn.stop())?;
    let samples = rt.block_on(sampler.stop());
    for p in cluster.nodes.iter_mut() {
        p.check_alive()?;
        p.stop();
    }
    Ok(RunResult {
        ttl,
        round,
        churn_rate: rate,
        churn_achieved: achieved,
        churn_errors: errors,
        traffic: sample,
        window: (window_start, window_end),
        samples,
        batches: if ttl {
            batches.iter().map(|b| (b.sent_ms, b.acked)).collect()
        } else {
            Vec::new()
        },
        node_cpu_s,
    })
}
