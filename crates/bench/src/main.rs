//! The `kvbench` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bench::compare::{self, CompareOpts};
use bench::drivers::Target;
use bench::report::markdown::{ms, ops};
use bench::runner::{self, RunSpec};
use bench::workload::{DataShape, Workload};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kvbench",
    version,
    about = "Load generator for raftkv, etcd and Redis, and a side-by-side comparison"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Drive one running system with closed-loop clients and print throughput and latency.
    Run(RunArgs),
    /// Start etcd, Redis and raftkv on loopback, run every workload on each, write a report.
    Compare(CompareArgs),
    /// Measure the hardware floor of a durable commit here: one fdatasync of a small
    /// append, and one loopback TCP round trip.
    Floor {
        /// Directory on the disk to measure (default: $TMPDIR, where `compare` keeps data).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, default_value_t = 2000)]
        samples: usize,
    },
    /// What TLS costs raftkv: a plain and a TLS cluster on loopback, the same workloads
    /// on each in alternating order, throughput and p99 side by side.
    Tls(TlsArgs),
    /// Re-render results.md and results.png from a results.json.
    Report {
        /// The results.json to read.
        json: PathBuf,
        /// Where to write (default: the JSON's directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Args, Clone, Copy)]
struct ShapeArgs {
    /// Number of distinct keys; each operation picks one uniformly.
    #[arg(long, default_value_t = 100_000)]
    keyspace: u64,
    /// Key length in bytes.
    #[arg(long, default_value_t = 16)]
    key_size: usize,
    /// Value length in bytes.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
}

impl ShapeArgs {
    fn shape(self) -> DataShape {
        DataShape {
            keyspace: self.keyspace,
            key_size: self.key_size,
            value_size: self.value_size,
        }
    }
}

#[derive(Args)]
struct RunArgs {
    /// The protocol to speak: redis (RESP), etcd (v3 gRPC) or raftkv (RESP, retrying
    /// "no leader" errors).
    #[arg(long)]
    target: Target,
    /// host:port of each node, comma-separated; clients are spread over them round-robin.
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// write, read (linearizable) or mixed (50/50).
    #[arg(long, default_value = "write")]
    workload: Workload,
    /// Concurrent clients, each with its own connection and one request in flight.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds run before measuring (connections warm, caches filled, leader settled).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    #[command(flatten)]
    shape: ShapeArgs,
    /// Write every key once before measuring, so reads find values.
    #[arg(long)]
    preload: bool,
    /// Also write the sample as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Seed for the key sequence.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// For `--target raftkv-tls`: the CA its nodes' certificates chain to (`raftkv
    /// certs`'s ca.pem).
    #[arg(long)]
    cacert: Option<PathBuf>,
}

#[derive(Args)]
struct TlsArgs {
    /// Results directory (default results/tls-<UTC date-time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The raftkv binary (default: next to kvbench, target/release, then PATH).
    #[arg(long)]
    raftkv_bin: Option<PathBuf>,
    /// Client counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    clients: Vec<usize>,
    /// Workloads, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "write,read")]
    workloads: Vec<Workload>,
    /// Warm-up per cell, seconds.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Measured time per cell, seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    #[command(flatten)]
    shape: ShapeArgs,
}

#[derive(Args)]
struct CompareArgs {
    /// Short smoke run (two client counts, 1 s + 3 s cells): under two minutes.
    #[arg(long)]
    quick: bool,
    /// Results directory (default results/<UTC date-time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Systems to compare.
    #[arg(long, value_delimiter = ',', default_value = "raftkv,etcd,redis")]
    systems: Vec<Target>,
    /// The raftkv binary (default: next to kvbench, target/release, then PATH).
    #[arg(long)]
    raftkv_bin: Option<PathBuf>,
    /// Override the client counts, comma-separated.
    #[arg(long, value_delimiter = ',')]
    clients: Option<Vec<usize>>,
    /// Override the warm-up per cell, seconds.
    #[arg(long)]
    warmup: Option<f64>,
    /// Override the measured time per cell, seconds.
    #[arg(long)]
    duration: Option<f64>,
    #[command(flatten)]
    shape: ShapeArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run(a) => run(a),
        Cmd::Compare(a) => compare::compare(CompareOpts {
            quick: a.quick,
            out: a.out,
            systems: a.systems,
            raftkv_bin: a.raftkv_bin,
            clients: a.clients,
            warmup: a.warmup,
            duration: a.duration,
            shape: a.shape.shape(),
        })
        .map(|_| ()),
        Cmd::Tls(a) => bench::tls_cost::tls_cost(bench::tls_cost::TlsOpts {
            out: a.out,
            raftkv_bin: a.raftkv_bin,
            clients: a.clients,
            workloads: a.workloads,
            warmup: a.warmup,
            duration: a.duration,
            shape: a.shape.shape(),
        })
        .map(|_| ()),
        Cmd::Report { json, out } => rerender(&json, out),
        Cmd::Floor { dir, samples } => {
            let dir = dir.unwrap_or_else(std::env::temp_dir);
            bench::floor::measure(&dir, samples.max(1)).map(|f| {
                println!("{}", bench::floor::describe(&f));
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvbench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(a: RunArgs) -> Result<(), String> {
    if a.clients == 0 || a.duration <= 0.0 || a.warmup < 0.0 {
        return Err("--clients and --duration must be positive, --warmup not negative".into());
    }
    match (a.target, &a.cacert) {
        (Target::RaftkvTls, Some(ca)) => bench::drivers::resp::trust_ca(ca)?,
        (Target::RaftkvTls, None) => return Err("--target raftkv-tls needs --cacert".into()),
        _ => {}
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let spec = RunSpec {
        target: a.target,
        endpoints: a.endpoints,
        workload: a.workload,
        clients: a.clients,
        warmup: Duration::from_secs_f64(a.warmup),
        duration: Duration::from_secs_f64(a.duration),
        shape: a.shape.shape(),
        seed: a.seed,
    };
    if a.preload {
        let bar = runner::progress_bar("preload", Duration::ZERO);
        rt.block_on(runner::preload(
            spec.target,
            &spec.endpoints,
            spec.shape,
            &bar,
        ))?;
    }
    let label = format!("{} {} ×{}", spec.target, spec.workload, spec.clients);
    let bar = runner::progress_bar(&label, spec.warmup + spec.duration);
    let s = rt.block_on(runner::run(&spec, &bar))?;
    println!(
        "{} {} clients={} ops={} errors={} read-misses={}\nthroughput {} ops/s\nlatency ms: mean {} p50 {} p99 {} p99.9 {} max {}",
        s.system,
        s.workload,
        s.clients,
        s.ops,
        s.errors,
        s.misses,
        ops(s.throughput),
        ms(s.mean_us),
        ms(s.p50_us),
        ms(s.p99_us),
        ms(s.p999_us),
        ms(s.max_us)
    );
    if let Some(e) = &s.first_error {
        println!("first error: {e}");
    }
    if s.workload != Workload::Write && s.misses > 0 && !a.preload {
        println!(
            "note: {} reads found no value; --preload loads every key first",
            s.misses
        );
    }
    if let Some(path) = a.json {
        let text = serde_json::to_string_pretty(&s).map_err(|e| e.to_string())?;
        std::fs::write(&path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn rerender(json: &std::path::Path, out: Option<PathBuf>) -> Result<(), String> {
    let report = bench::report::json::read(json)?;
    let dir = out.unwrap_or_else(|| {
        json.parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| PathBuf::from("."))
    });
    for f in bench::report::write_all(&report, &dir)? {
        println!("wrote {}", f.display());
    }
    Ok(())
}
