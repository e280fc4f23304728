//! `kvbench compare`: start every system, run the same cells on each, write the report.
//!
//! All systems run for the whole comparison and the cells are interleaved: for each
//! (workload, clients) cell every system runs once, and the order rotates from one cell to
//! the next. A machine that slows down over the run (other tenants, page cache, a warming
//! disk) then affects every system alike, so the ratios hold even when absolute figures
//! drift. Idle servers cost little: heartbeats on loopback.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::runtime::Runtime;

use crate::drivers::Target;
use crate::orchestrate::etcd::EtcdCluster;
use crate::orchestrate::process::{self, Proc};
use crate::orchestrate::raftkv::{self, RaftkvCluster};
use crate::orchestrate::redis::RedisServer;
use crate::orchestrate::{install, wait_ready, Workspace};
use crate::report::markdown::ms;
use crate::report::{self, markdown::ops, Params, Report, Sample, SystemInfo};
use crate::runner::{self, RunSpec};
use crate::workload::{DataShape, Workload};

pub struct CompareOpts {
    pub quick: bool,
    pub out: Option<PathBuf>,
    pub systems: Vec<Target>,
    pub raftkv_bin: Option<PathBuf>,
    pub clients: Option<Vec<usize>>,
    pub warmup: Option<f64>,
    pub duration: Option<f64>,
    pub shape: DataShape,
}

/// Quick: two client counts (single-client latency and the 64-client goal) and
/// 1 s + 3 s cells: 18 cells, about 85 s with setup.
pub const QUICK: (&[usize], f64, f64) = (&[1, 64], 1.0, 3.0);
/// Full: every client count and 5 s + 15 s cells: 36 cells, about 12.5 minutes.
pub const FULL: (&[usize], f64, f64) = (&[1, 16, 64, 256], 5.0, 15.0);

/// The default plan, with any overrides applied.
pub fn plan(opts: &CompareOpts) -> Params {
    let (clients, warmup, duration) = if opts.quick { QUICK } else { FULL };
    let clients = clients.to_vec();
    Params {
        quick: opts.quick,
        warmup_s: opts.warmup.unwrap_or(warmup),
        duration_s: opts.duration.unwrap_or(duration),
        shape: opts.shape,
        workloads: Workload::ALL.to_vec(),
        clients: opts.clients.clone().unwrap_or(clients),
    }
}

impl Params {
    /// "Quick" or "Full" when the plan is that preset as is, "Custom" otherwise.
    pub fn label(&self) -> &'static str {
        let (clients, warmup, duration) = if self.quick { QUICK } else { FULL };
        let preset =
            self.clients == clients && self.warmup_s == warmup && self.duration_s == duration;
        match (preset, self.quick) {
            (false, _) => "Custom",
            (true, true) => "Quick",
            (true, false) => "Full",
        }
    }
}

/// A started system: its processes (stopped when this is dropped) and client endpoints.
pub(crate) struct Running {
    target: Target,
    endpoints: Vec<String>,
    _procs: Vec<Proc>,
}

pub fn compare(opts: CompareOpts) -> Result<PathBuf, String> {
    let wall = Instant::now();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let params = plan(&opts);
    let load_before = report::load_average();
    let Workspace {
        out,
        logs,
        rt,
        scratch,
    } = Workspace::create(opts.out.clone(), "", started_unix)?;
    let data = scratch.path();

    let mut infos = Vec::new();
    let mut running: Vec<Running> = Vec::new();
    for &t in &opts.systems {
        match start(&rt, t, &opts, data, &logs, &params) {
            Ok((r, info)) => {
                running.push(r);
                infos.push(info);
            }
            Err(info) => {
                eprintln!(
                    "kvbench: skipping {t}: {}",
                    info.skipped.as_deref().unwrap_or("")
                );
                infos.push(info);
            }
        }
    }
    if running.is_empty() {
        return Err("no system could be started; see above".into());
    }

    let samples = run_cells(&rt, &running, &params)?;

    // Stop the servers before writing, so the report's wall time includes teardown and
    // nothing is left behind even if writing fails.
    drop(running);
    drop(scratch);
    let report = Report {
        kvbench_version: env!("CARGO_PKG_VERSION").to_string(),
        started_unix,
        wall_s: (wall.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        load_before,
        load_after: report::load_average(),
        params,
        systems: infos,
        samples,
    };
    let files = report::write_all(&report, &out)?;
    println!();
    print!("{}", report::markdown::render(&report));
    println!();
    for f in files {
        println!("wrote {}", f.display());
    }
    println!("server logs in {}", logs.display());
    Ok(out)
}

/// Starts one system, waits for it, loads the key space. `Err` carries the skip reason.
pub(crate) fn start(
    rt: &Runtime,
    t: Target,
    opts: &CompareOpts,
    data: &std::path::Path,
    logs: &std::path::Path,
    params: &Params,
) -> Result<(Running, SystemInfo), SystemInfo> {
    let skip = |version: &str, why: String| SystemInfo {
        system: t,
        version: version.to_string(),
        setup: String::new(),
        skipped: Some(why),
    };
    let ready_timeout = Duration::from_secs(60);
    let (mut procs, endpoints, version, setup) = match t {
        Target::Etcd => {
            install::ensure(&[("etcd", "etcd-server")]).map_err(|e| skip("", e))?;
            let bin = install::which("etcd").expect("ensured above");
            let c = EtcdCluster::start(&bin, data, logs).map_err(|e| skip("", e))?;
            (c.members, c.endpoints, c.version, EtcdCluster::setup())
        }
        Target::Redis => {
            install::ensure(&[("redis-server", "redis-server")]).map_err(|e| skip("", e))?;
            let bin = install::which("redis-server").expect("ensured above");
            let r = RedisServer::start(&bin, data, logs).map_err(|e| skip("", e))?;
            (
                vec![r.proc],
                vec![r.endpoint],
                r.version,
                RedisServer::setup(),
            )
        }
        Target::Raftkv => {
            let Some(bin) = raftkv::find_binary(opts.raftkv_bin.as_deref()) else {
                return Err(skip(
                    "not built",
                    "no `raftkv` binary (looked next to kvbench, in target/release and on \
                     PATH); build it with `cargo build --release -p server` or pass \
                     --raftkv-bin"
                        .into(),
                ));
            };
            let c = RaftkvCluster::start(&bin, data, logs).map_err(|e| skip("", e))?;
            (c.nodes, c.endpoints, c.version, RaftkvCluster::setup())
        }
        Target::RaftkvTls => {
            let Some(bin) = raftkv::find_binary(opts.raftkv_bin.as_deref()) else {
                return Err(skip("not built", "no `raftkv` binary".into()));
            };
            let c = RaftkvCluster::start_tls(&bin, data, logs).map_err(|e| skip("", e))?;
            crate::drivers::resp::trust_ca(&RaftkvCluster::tls_ca(data))
                .map_err(|e| skip("", e))?;
            (c.nodes, c.endpoints, c.version, RaftkvCluster::setup_tls())
        }
    };
    eprintln!(
        "kvbench: started {t} ({version}) at {}",
        endpoints.join(" ")
    );
    let mut refs: Vec<&mut Proc> = procs.iter_mut().collect();
    wait_ready(rt, t, &endpoints, &mut refs, ready_timeout).map_err(|e| skip(&version, e))?;

    let bar = runner::progress_bar(&format!("{t} preload"), Duration::ZERO);
    let t0 = Instant::now();
    rt.block_on(runner::preload(t, &endpoints, params.shape, &bar))
        .map_err(|e| skip(&version, e))?;
    eprintln!(
        "kvbench: {t} ready, {} keys loaded in {:.1} s",
        params.shape.keyspace,
        t0.elapsed().as_secs_f64()
    );
    let info = SystemInfo {
        system: t,
        version,
        setup: setup.to_string(),
        skipped: None,
    };
    Ok((
        Running {
            target: t,
            endpoints,
            _procs: procs,
        },
        info,
    ))
}

pub(crate) fn run_cells(
    rt: &Runtime,
    running: &[Running],
    params: &Params,
) -> Result<Vec<Sample>, String> {
    let total = params.workloads.len() * params.clients.len() * running.len();
    let mut samples = Vec::with_capacity(total);
    let mut cell = 0usize;
    for &w in &params.workloads {
        for &c in &params.clients {
            let mut order: Vec<&Running> = running.iter().collect();
            order.rotate_left(cell % running.len());
            for r in order {
                let spec = RunSpec {
                    target: r.target,
                    endpoints: r.endpoints.clone(),
                    workload: w,
                    clients: c,
                    warmup: Duration::from_secs_f64(params.warmup_s),
                    duration: Duration::from_secs_f64(params.duration_s),
                    shape: params.shape,
                    // Same seed for every system in a cell: the same keys in the same order.
                    seed: 0x6b76_6265_6e63_6800 + cell as u64,
                };
                let label = format!("{} {} ×{}", r.target, w, c);
                let bar = runner::progress_bar(&label, spec.warmup + spec.duration);
                let s = rt.block_on(runner::run(&spec, &bar))?;
                if process::interrupted() {
                    // The handler is killing the servers and exits the process when done;
                    // report nothing measured against dying servers, and wait for it.
                    loop {
                        std::thread::park();
                    }
                }
                println!(
                    "[{:>2}/{total}] {:<7} {:<6} {:>4} clients {:>10} ops/s  p50 {:>7} ms  p99 {:>7} ms  p99.9 {:>7} ms{}",
                    samples.len() + 1,
                    r.target.name(),
                    w.name(),
                    c,
                    ops(s.throughput),
                    ms(s.p50_us),
                    ms(s.p99_us),
                    ms(s.p999_us),
                    if s.errors > 0 {
                        format!("  errors {}", s.errors)
                    } else {
                        String::new()
                    }
                );
                samples.push(s);
            }
            cell += 1;
        }
    }
    Ok(samples)
}
