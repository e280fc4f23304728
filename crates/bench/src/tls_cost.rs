//! `kvbench tls`: what TLS costs raftkv. Two three-node clusters on loopback, one plain and
//! one with TLS on every surface (mutual TLS between nodes, TLS to clients, certificates
//! from `raftkv certs`), the same workloads on each, cell by cell in alternating order (as
//! `compare` runs its systems), then a table of throughput and p99, plain and TLS, and
//! their ratios.
//!
//! Both use the same client code (boxed stream halves; the TLS one flushes its session
//! after each command, as any TLS client must), so the difference is TLS's: the
//! handshakes happen at connect, before the measured window; what is measured is the
//! record layer's encryption on every request and reply, client to node and node to node
//! (a write crosses two peer links before it is acknowledged).

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::compare::{self, CompareOpts};
use crate::drivers::Target;
use crate::orchestrate::Workspace;
use crate::report::markdown::{ms, ops, ratio};
use crate::report::{self, Params, Sample};
use crate::workload::{DataShape, Workload};

pub struct TlsOpts {
    pub out: Option<PathBuf>,
    pub raftkv_bin: Option<PathBuf>,
    pub clients: Vec<usize>,
    pub workloads: Vec<Workload>,
    pub warmup: f64,
    pub duration: f64,
    pub shape: DataShape,
}

#[derive(Serialize)]
struct TlsReport {
    kvbench_version: String,
    started_unix: u64,
    wall_s: f64,
    cores: usize,
    load_before: Option<f64>,
    load_after: Option<f64>,
    warmup_s: f64,
    duration_s: f64,
    samples: Vec<Sample>,
}

pub fn tls_cost(opts: TlsOpts) -> Result<PathBuf, String> {
    let wall = Instant::now();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let load_before = report::load_average();
    let Workspace {
        out,
        logs,
        rt,
        scratch,
    } = Workspace::create(opts.out.clone(), "tls-", started_unix)?;

    let copts = CompareOpts {
        quick: false,
        out: Some(out.clone()),
        systems: vec![Target::Raftkv, Target::RaftkvTls],
        raftkv_bin: opts.raftkv_bin.clone(),
        clients: Some(opts.clients.clone()),
        warmup: Some(opts.warmup),
        duration: Some(opts.duration),
        shape: opts.shape,
    };
    let params = Params {
        workloads: opts.workloads.clone(),
        ..compare::plan(&copts)
    };
    let mut running = Vec::new();
    for &t in &copts.systems {
        match compare::start(&rt, t, &copts, scratch.path(), &logs, &params) {
            Ok((r, _)) => running.push(r),
            Err(info) => {
                return Err(format!(
                    "{t} did not start: {}",
                    info.skipped.unwrap_or_default()
                ))
            }
        }
    }
    let samples = compare::run_cells(&rt, &running, &params)?;
    drop(running);
    drop(scratch);

    let report = TlsReport {
        kvbench_version: env!("CARGO_PKG_VERSION").to_string(),
        started_unix,
        wall_s: (wall.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        load_before,
        load_after: report::load_average(),
        warmup_s: params.warmup_s,
        duration_s: params.duration_s,
        samples,
    };
    let md = render(&report, &params);
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n";
    for (name, text) in [("tls.md", &md), ("tls.json", &json)] {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!();
    print!("{md}");
    println!(
        "\nwrote {}/tls.md and tls.json; server logs in {}",
        out.display(),
        logs.display()
    );
    Ok(out)
}

/// The table: per workload and client count, plain and TLS throughput and p99, and
/// TLS's ratio to plain (throughput below 1× and p99 above 1× are TLS's cost).
fn render(r: &TlsReport, params: &Params) -> String {
    let mut o = String::new();
    let load = |l: Option<f64>| l.map_or("?".into(), |l| format!("{l:.2}"));
    o.push_str(&format!(
        "## raftkv with and without TLS\n\n{}, {} cores, load average {} before and {} \
         after; {} s warm-up and {} s measured per cell, {} s in all.\n\n",
        report::utc_string(r.started_unix),
        r.cores,
        load(r.load_before),
        load(r.load_after),
        r.warmup_s,
        r.duration_s,
        r.wall_s
    ));
    o.push_str(
        "| workload | clients | plain ops/s | TLS ops/s | TLS/plain | plain p99 ms | TLS p99 ms | \
         TLS/plain p99 |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let find = |t: Target, w: Workload, c: usize| {
        r.samples
            .iter()
            .find(|s| s.system == t && s.workload == w && s.clients == c)
    };
    for &w in &params.workloads {
        for &c in &params.clients {
            let plain = find(Target::Raftkv, w, c);
            let tls = find(Target::RaftkvTls, w, c);
            let cell = |s: Option<&Sample>, f: fn(&Sample) -> String| s.map_or("—".into(), f);
            o.push_str(&format!(
                "| {} | {c} | {} | {} | {} | {} | {} | {} |\n",
                w.name(),
                cell(plain, |s| ops(s.throughput)),
                cell(tls, |s| ops(s.throughput)),
                ratio(tls.map(|s| s.throughput), plain.map(|s| s.throughput)),
                cell(plain, |s| ms(s.p99_us)),
                cell(tls, |s| ms(s.p99_us)),
                ratio(tls.map(|s| s.p99_us), plain.map(|s| s.p99_us)),
            ));
        }
    }
    let errors: u64 = r.samples.iter().map(|s| s.errors).sum();
    if errors > 0 {
        o.push_str(&format!("\n{errors} errors in all (see tls.json).\n"));
    }
    o
}
