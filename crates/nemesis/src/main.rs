//! `raftkv-nemesis`: see README.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use nemesis::faults::FaultKind;
use nemesis::run::{run, Options};

#[derive(Parser)]
#[command(
    name = "raftkv-nemesis",
    about = "Runs a raftkv cluster in network namespaces under real faults and checks it"
)]
struct Args {
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Seconds of faults under load (then heal, converge, check).
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Seed of the fault schedule and the clients' choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The nodes' read_mode: linearizable, lease or stale.
    #[arg(long, default_value = "linearizable")]
    read_mode: String,
    /// Faults to draw from: all, none, or a list of partition, one-way, bridge,
    /// isolate-leader, kill, pause, clock, disk-full, transfer, member.
    #[arg(long, default_value = "all")]
    faults: String,
    /// The raftkv binary.
    #[arg(long, default_value = "target/release/raftkv")]
    raftkv: PathBuf,
    /// Keep the data dirs and logs (a failing run always keeps them).
    #[arg(long)]
    keep: bool,
    /// Where the data dirs and logs go (default /tmp/rkn<pid>-data).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Also write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write every client op (JSON lines: client, node, key, op, outcome, times).
    #[arg(long)]
    history: Option<PathBuf>,
    /// Only re-check a history written by --history (no cluster, no root).
    #[arg(long)]
    check_history: Option<PathBuf>,
    /// The nodes' election timeout.
    #[arg(long, default_value_t = 1000)]
    election_timeout_ms: u64,
    /// Client threads per node.
    #[arg(long, default_value_t = 2)]
    clients_per_node: usize,
    /// A client gives up on an answer after this (the op is then unknown).
    #[arg(long, default_value_t = 5000)]
    op_timeout_ms: u64,
    /// FAIL if writes through some node are not back this long after a fault heals
    /// (default 2 x election timeout + 500 ms; 0: report only).
    #[arg(long)]
    recovery_limit_ms: Option<u64>,
    /// lincheck's time budget for the whole history.
    #[arg(long, default_value_t = 180)]
    check_budget_s: u64,
    /// Seconds after which the clients move on to fresh keys.
    #[arg(long, default_value_t = 30)]
    key_epoch_s: u64,
    /// Size of the tmpfs under the last node's data dir (the disk-full fault).
    #[arg(long, default_value_t = 256)]
    disk_mib: u64,
}

fn main() -> ExitCode {
    let a = Args::parse();
    let faults = match FaultKind::parse_list(&a.faults) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("raftkv-nemesis: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &a.check_history {
        return check_history(path, Duration::from_secs(a.check_budget_s));
    }
    let o = Options {
        nodes: a.nodes,
        duration: Duration::from_secs(a.duration),
        seed: a.seed,
        read_mode: a.read_mode,
        faults,
        raftkv: a.raftkv,
        keep: a.keep,
        data: a.data,
        json: a.json.clone(),
        history: a.history,
        election_ms: a.election_timeout_ms,
        clients_per_node: a.clients_per_node,
        op_timeout: Duration::from_millis(a.op_timeout_ms),
        recovery_limit_ms: a
            .recovery_limit_ms
            .unwrap_or(2 * a.election_timeout_ms + 500),
        check_budget: Duration::from_secs(a.check_budget_s),
        epoch: Duration::from_secs(a.key_epoch_s.max(1)),
        disk_mib: a.disk_mib,
    };
    match run(&o, Box::new(std::io::stdout())) {
        Ok(report) => {
            print!("{}", report.render());
            if let Some(path) = &a.json {
                let text = serde_json::to_string_pretty(&report).expect("report serializes");
                if let Err(e) = std::fs::write(path, text + "\n") {
                    eprintln!("raftkv-nemesis: {}: {e}", path.display());
                }
            }
            if report.pass {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("raftkv-nemesis: {e}");
            ExitCode::from(if e == "interrupted" { 130 } else { 3 })
        }
    }
}

fn check_history(path: &std::path::Path, budget: Duration) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("raftkv-nemesis: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let mut records = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str::<nemesis::history::Record>(line) {
            Ok(r) => records.push(r),
            Err(e) => {
                eprintln!("raftkv-nemesis: {}:{}: {e}", path.display(), n + 1);
                return ExitCode::from(2);
            }
        }
    }
    let ops = nemesis::history::to_lincheck(&records);
    match lincheck::check(&ops, budget) {
        lincheck::Verdict::Linearizable => {
            println!("{} records: linearizable", records.len());
            ExitCode::SUCCESS
        }
        lincheck::Verdict::NotLinearizable(v) => {
            println!("{} records: NOT linearizable\n{v}", records.len());
            ExitCode::from(1)
        }
        lincheck::Verdict::Unknown { key, reason } => {
            println!(
                "{} records: undecided on {}: {reason}",
                records.len(),
                String::from_utf8_lossy(&key)
            );
            ExitCode::from(1)
        }
    }
}
