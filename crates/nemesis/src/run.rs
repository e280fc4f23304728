//! One nemesis run: set up, faults under client load, heal, final checks, report.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::cluster::Cluster;
use crate::faults::{network_fault, FaultKind};
use crate::history::{to_lincheck, Op, Outcome, Record};
use crate::net::Net;
use crate::report::{availability, FaultRecord, NodeExit, Report};
use crate::workload::{spawn_client, Conn, Shared};

/// Set by SIGINT/SIGTERM/SIGHUP: stop, clean up, exit.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub nodes: usize,
    pub duration: Duration,
    pub seed: u64,
    pub read_mode: String,
    pub faults: Vec<FaultKind>,
    pub raftkv: PathBuf,
    pub keep: bool,
    pub data: Option<PathBuf>,
    pub json: Option<PathBuf>,
    /// Where to dump every client op as JSON lines.
    pub history: Option<PathBuf>,
    pub election_ms: u64,
    pub clients_per_node: usize,
    pub op_timeout: Duration,
    /// Writes through every node must succeed again this soon after a fault heals
    /// (0: report only).
    pub recovery_limit_ms: u64,
    pub check_budget: Duration,
    pub epoch: Duration,
    /// Which node's data dir is a small tmpfs (for disk-full).
    pub disk_mib: u64,
}

impl Options {
    pub fn defaults() -> Options {
        Options {
            nodes: 3,
            duration: Duration::from_secs(60),
            seed: 1,
            read_mode: "linearizable".into(),
            faults: crate::faults::ALL.to_vec(),
            raftkv: PathBuf::from("target/release/raftkv"),
            keep: false,
            data: None,
            json: None,
            history: None,
            election_ms: 1000,
            clients_per_node: 2,
            op_timeout: Duration::from_secs(5),
            recovery_limit_ms: 2500,
            check_budget: Duration::from_secs(180),
            epoch: Duration::from_secs(30),
            disk_mib: 256,
        }
    }
}

/// Everything that must be undone on any exit path (a panic included: `Drop`).
struct Guard {
    cluster: Option<Cluster>,
    net: Option<Net>,
    dir: PathBuf,
    remove_dir: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = &mut self.cluster {
            c.kill_all();
            c.unmount_all();
        }
        self.net.take();
        if self.remove_dir {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl Guard {
    fn c(&mut self) -> &mut Cluster {
        self.cluster.as_mut().expect("cluster")
    }
    fn net(&self) -> &Net {
        self.net.as_ref().expect("net")
    }
}

/// What the main loop needs to undo the fault in progress.
enum Undo {
    Net,
    Restart(usize),
    Resume(usize),
    Unclock(usize),
    Disk(usize, PathBuf),
    /// After a transfer: wait until the nodes agree on a leader.
    WaitLeader,
    /// The member fault's last step: start node `i` with `--join`, wait until it votes.
    Rejoin(usize),
}

struct Runner<'a> {
    g: &'a mut Guard,
    o: &'a Options,
    start: Instant,
    exits: Vec<NodeExit>,
    current: Option<String>,
    /// The last fault healed, and when.
    last_healed: Option<(String, Instant)>,
    /// Membership steps that failed or timed out: each FAILs the run.
    membership_failures: Vec<String>,
    log: Box<dyn Write>,
}

fn say(log: &mut dyn Write, start: Instant, msg: &str) {
    let _ = writeln!(log, "[{:8.3}s] {msg}", start.elapsed().as_secs_f64());
    let _ = log.flush();
}

impl Runner<'_> {
    fn say(&mut self, msg: &str) {
        say(&mut *self.log, self.start, msg);
    }

    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Sleeps `d` in small steps, restarting any node that exited on its own.
    /// Returns false if interrupted.
    fn tick(&mut self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if INTERRUPTED.load(Ordering::SeqCst) {
                return false;
            }
            self.reap();
            let now = Instant::now();
            if now >= end {
                return true;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(100)));
        }
    }

    fn reap(&mut self) {
        for (node, status, tail) in self.g.c().reap_exited() {
            let at = self.now_ns();
            let during = match (&self.current, &self.last_healed) {
                (Some(c), _) => c.clone(),
                (None, Some((f, t))) => {
                    format!("no fault, {} ms after {f} healed", t.elapsed().as_millis())
                }
                (None, None) => "no fault".to_string(),
            };
            self.say(&format!(
                "NODE {node} EXITED ON ITS OWN ({status}) during {during}; last log lines:\n{tail}"
            ));
            self.exits.push(NodeExit {
                node,
                at_ms: at / 1_000_000,
                status,
                during,
                log_tail: tail,
            });
            std::thread::sleep(Duration::from_millis(500));
            if let Err(e) = self.g.c().start(node, None) {
                self.say(&format!("restart of node {node} failed: {e}"));
            }
        }
    }

    fn target(&mut self, rng: &mut StdRng) -> (usize, String) {
        let leader = self.g.c().leader();
        let n = self.o.nodes;
        match leader {
            Some(l) if rng.gen_bool(0.5) => (l, format!("node {l} (leader)")),
            _ => {
                let i = rng.gen_range(1..=n);
                let role = if Some(i) == leader { " (leader)" } else { "" };
                (i, format!("node {i}{role}"))
            }
        }
    }

    fn apply(&mut self, kind: FaultKind, rng: &mut StdRng) -> Result<(Undo, String), String> {
        let n = self.o.nodes;
        Ok(match kind {
            FaultKind::Partition
            | FaultKind::OneWay
            | FaultKind::Bridge
            | FaultKind::IsolateLeader => {
                let leader = self.g.c().leader();
                let (drops, desc) = network_fault(kind, n, leader, rng);
                for i in 1..=n {
                    let set = drops.get(&i).cloned().unwrap_or_default();
                    self.g.net().set_drops(i, &set)?;
                }
                (Undo::Net, desc)
            }
            FaultKind::Kill => {
                let (i, who) = self.target(rng);
                self.g.c().kill(i);
                (Undo::Restart(i), format!("kill -9 {who}"))
            }
            FaultKind::Pause => {
                let (i, who) = self.target(rng);
                self.g.c().pause(i);
                (Undo::Resume(i), format!("SIGSTOP {who}"))
            }
            FaultKind::Clock => {
                let (i, who) = self.target(rng);
                let rate = [0.5, 0.8, 1.25, 2.0][rng.gen_range(0..4)];
                self.g.c().kill(i);
                self.g.c().start(i, Some(rate))?;
                (
                    Undo::Unclock(i),
                    format!("{who} restarted with its clock at x{rate}"),
                )
            }
            FaultKind::DiskFull => {
                let i = n;
                let path = self.g.c().data_dir(i).join("nemesis-filler");
                let bytes = fill(&path);
                (
                    Undo::Disk(i, path),
                    format!(
                        "node {i}'s disk filled ({} MiB filler, ENOSPC)",
                        bytes >> 20
                    ),
                )
            }
            FaultKind::Transfer => (
                Undo::WaitLeader,
                crate::membership::transfer(self.g.c(), rng),
            ),
            FaultKind::Member => {
                let c = self.g.c();
                let Some(l) = c
                    .leader()
                    .or_else(|| c.wait_leader(Duration::from_secs(10)))
                else {
                    return Ok((
                        Undo::WaitLeader,
                        "no leader known: no member replaced".into(),
                    ));
                };
                let followers: Vec<usize> = (1..=n).filter(|&j| j != l && c.running(j)).collect();
                let Some(&i) = followers.choose(rng) else {
                    return Ok((
                        Undo::WaitLeader,
                        "no follower runs: no member replaced".into(),
                    ));
                };
                let removed = crate::membership::remove(c, i)?;
                c.kill(i);
                c.wipe_data(i)?;
                c.nodes[i - 1].join_via = Some(c.admin_addr(l));
                (
                    Undo::Rejoin(i),
                    format!("node {i} (follower) {removed}, stopped, its data dir wiped"),
                )
            }
        })
    }

    fn undo(&mut self, u: Undo) -> Result<String, String> {
        Ok(match u {
            Undo::Net => {
                self.g.net().heal()?;
                "network healed".into()
            }
            Undo::Restart(i) => {
                self.g.c().start(i, None)?;
                format!("node {i} restarted")
            }
            Undo::Resume(i) => {
                self.g.c().resume(i);
                format!("node {i} continued")
            }
            Undo::Unclock(i) => {
                self.g.c().kill(i);
                self.g.c().start(i, None)?;
                format!("node {i} restarted with a true clock")
            }
            Undo::Disk(i, path) => {
                let _ = fs::remove_file(&path);
                let st = self.g.c().status(i);
                let failed = st.as_ref().and_then(|s| s.storage_failure.clone());
                match (self.g.c().running(i), failed) {
                    (true, None) => format!("filler removed; node {i} carried on"),
                    (running, failure) => {
                        self.g.c().kill(i);
                        self.g.c().start(i, None)?;
                        format!(
                            "filler removed; node {i} {} and was restarted",
                            match failure {
                                Some(f) => format!("reported a storage failure ({f})"),
                                None if !running => "was down".to_string(),
                                None => "did not answer".to_string(),
                            }
                        )
                    }
                }
            }
            Undo::WaitLeader => match self.g.c().wait_leader(Duration::from_secs(10)) {
                Some(l) => format!("node {l} leads"),
                None => "no leader agreed on within 10 s".into(),
            },
            Undo::Rejoin(i) => crate::membership::rejoin(self.g.c(), i)?,
        })
    }

    /// Every fault undone: network, paused, down, clocks, disk.
    fn heal_all(&mut self) {
        let _ = self.g.net().heal();
        for i in 1..=self.o.nodes {
            let filler = self.g.c().data_dir(i).join("nemesis-filler");
            let _ = fs::remove_file(filler);
            if self.g.c().nodes[i - 1].paused {
                self.g.c().resume(i);
            }
            if self.g.c().nodes[i - 1].clock_rate.is_some() {
                self.g.c().kill(i);
            }
            if !self.g.c().running(i) {
                let _ = self.g.c().start(i, None);
            }
        }
    }
}

/// Writes a filler file until the filesystem is full; returns the bytes written.
fn fill(path: &std::path::Path) -> u64 {
    let Ok(mut f) = fs::File::create(path) else {
        return 0;
    };
    let chunk = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(k) => total += k as u64,
        }
    }
    // The last partial megabyte too.
    let small = vec![0u8; 4096];
    while let Ok(k) = f.write(&small) {
        if k == 0 {
            break;
        }
        total += k as u64;
    }
    let _ = f.sync_all();
    total
}

/// Runs the whole thing. `Err` is a setup problem (not a verdict).
pub fn run(o: &Options, mut log: Box<dyn Write>) -> Result<Report, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("needs root (network namespaces, nftables, mount)".into());
    }
    for tool in ["ip", "nft", "mount"] {
        if crate::net::run(&["sh", "-c", &format!("command -v {tool}")]).is_err() {
            return Err(format!(
                "`{tool}` not found (apt-get install iproute2 nftables)"
            ));
        }
    }
    if o.faults.contains(&FaultKind::Clock)
        && !std::path::Path::new(crate::cluster::LIBFAKETIME).exists()
    {
        return Err(format!(
            "{} not found (apt-get install libfaketime), or leave out the clock fault",
            crate::cluster::LIBFAKETIME
        ));
    }
    let raftkv = fs::canonicalize(&o.raftkv)
        .map_err(|e| format!("raftkv binary {}: {e}", o.raftkv.display()))?;
    if !(3..=9).contains(&o.nodes) {
        return Err("--nodes must be between 3 and 9".into());
    }
    install_signal_handlers();
    let start = Instant::now();
    for r in crate::net::cleanup_stale() {
        say(
            &mut *log,
            start,
            &format!("removed a dead run's leftover: {r}"),
        );
    }
    let pid = std::process::id();
    let prefix = format!("rkn{pid}");
    let dir = o
        .data
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("{prefix}-data")));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut g = Guard {
        cluster: None,
        net: None,
        dir: dir.clone(),
        remove_dir: !o.keep,
    };
    g.net = Some(Net::create(&prefix, o.nodes)?);
    g.net().enter_bridge()?;
    g.cluster = Some(Cluster::new(
        g.net(),
        raftkv,
        dir.clone(),
        &o.read_mode,
        o.election_ms,
    )?);
    let disk_node = o.nodes;
    if o.faults.contains(&FaultKind::DiskFull) {
        g.c()
            .mount_small_disk(disk_node, o.disk_mib, &format!("{prefix}-disk"))?;
    }
    let mut r = Runner {
        g: &mut g,
        o,
        start,
        exits: Vec::new(),
        current: None,
        last_healed: None,
        membership_failures: Vec::new(),
        log,
    };
    r.say(&format!(
        "{} nodes in namespaces {prefix}-n1..n{}, bridge {prefix}-br; data in {}; read_mode {}; seed {}",
        o.nodes,
        o.nodes,
        dir.display(),
        o.read_mode,
        o.seed
    ));
    for i in 1..=o.nodes {
        r.g.c().start(i, None)?;
    }
    let Some(l) = r.g.c().wait_leader(Duration::from_secs(30)) else {
        return Err(format!(
            "no leader within 30 s of start; node 1's log:\n{}",
            crate::cluster::tail(&r.g.c().log_path(1), 20)
        ));
    };
    r.say(&format!("leader: node {l}"));

    let stop = Arc::new(AtomicBool::new(false));
    let shared = Shared {
        start,
        stop: stop.clone(),
        epoch: o.epoch,
        op_timeout: o.op_timeout,
    };
    let mut clients = Vec::new();
    for c in 0..(o.nodes * o.clients_per_node) as u64 {
        let node = c as usize % o.nodes + 1;
        clients.push(spawn_client(c + 1, node, o.seed, shared.clone()));
    }
    let load_start_ns = r.now_ns();
    let mut rng = StdRng::seed_from_u64(o.seed);
    let et = Duration::from_millis(o.election_ms);
    let mut faults: Vec<FaultRecord> = Vec::new();
    let mut ok = r.tick(et * 2);
    let fault_end = start + o.duration;
    while ok && Instant::now() < fault_end && !o.faults.is_empty() {
        let kind = o.faults[rng.gen_range(0..o.faults.len())];
        let hold = match kind {
            FaultKind::Clock => rng.gen_range(5_000..15_000),
            FaultKind::Kill => rng.gen_range(500..6_000),
            // Nothing to hold: the transfer is done when its request returns.
            FaultKind::Transfer => 0,
            // How long the removed node stays down with its data dir wiped.
            FaultKind::Member => rng.gen_range(500..4_000),
            _ => rng.gen_range(1_500..8_000),
        };
        let start_ns = r.now_ns();
        let (undo, desc) = match r.apply(kind, &mut rng) {
            Ok(x) => x,
            Err(e) => {
                r.say(&format!("could not apply {}: {e}", kind.name()));
                if kind == FaultKind::Member && !INTERRUPTED.load(Ordering::SeqCst) {
                    // A cluster that cannot remove a member is a finding.
                    r.membership_failures
                        .push(format!("member fault #{}: {e}", faults.len() + 1));
                }
                break;
            }
        };
        r.current = Some(format!("{} ({desc})", kind.name()));
        r.say(&format!(
            "fault #{} {}: {desc}",
            faults.len() + 1,
            kind.name()
        ));
        ok = r.tick(Duration::from_millis(hold));
        let rejoin = matches!(undo, Undo::Rejoin(_));
        let healed = r.undo(undo);
        let heal_ns = r.now_ns();
        let mut give_up = false;
        let healed = healed.unwrap_or_else(|e| {
            if rejoin && !INTERRUPTED.load(Ordering::SeqCst) {
                // The cluster is not what the schedule assumes: no more faults.
                r.membership_failures
                    .push(format!("member fault #{}: {e}", faults.len() + 1));
                give_up = true;
            }
            format!("heal failed: {e}")
        });
        r.say(&format!("healed #{}: {healed}", faults.len() + 1));
        r.last_healed = r.current.take().map(|c| (c, Instant::now()));
        faults.push(FaultRecord {
            kind,
            desc,
            healed: healed.clone(),
            start_ms: start_ns / 1_000_000,
            heal_ms: heal_ns / 1_000_000,
            longest_gap_ms: 0,
            recovery_ms: None,
            recovery_by_node: Vec::new(),
            slow: false,
        });
        if give_up {
            r.say("a membership step failed: no more faults");
        }
        if !ok || give_up || INTERRUPTED.load(Ordering::SeqCst) {
            ok = ok && !INTERRUPTED.load(Ordering::SeqCst);
            break;
        }
        // Long enough for writes through every node to come back before the next fault.
        let gap = rng.gen_range(et.as_millis() as u64 * 5 / 2..et.as_millis() as u64 * 5);
        ok = r.tick(Duration::from_millis(gap));
    }
    if ok && o.faults.is_empty() {
        ok = r.tick(fault_end.saturating_duration_since(Instant::now()));
    }
    let interrupted = !ok;
    r.heal_all();
    r.say(if interrupted {
        "interrupted: healing, stopping clients"
    } else {
        "fault phase over: everything healed; load continues for a while"
    });
    if !interrupted {
        r.tick(et * 2 + Duration::from_secs(2));
    }
    let load_end_ns = r.now_ns();
    stop.store(true, Ordering::SeqCst);
    let mut records: Vec<Record> = Vec::new();
    for c in clients {
        records.extend(c.join().unwrap_or_default());
    }
    if interrupted {
        return Err("interrupted".into());
    }
    r.say(&format!("clients stopped: {} ops", records.len()));

    // Convergence and the final checks.
    let mut problems: Vec<String> = r.membership_failures.clone();
    let converged = wait_converged(r.g.c(), Duration::from_secs(60));
    r.reap();
    match &converged {
        Ok(s) => r.say(&format!("converged: {s}")),
        Err(e) => {
            r.say(&format!("did not converge: {e}"));
            problems.push(format!("no convergence within 60 s after healing: {e}"));
        }
    }
    // A write through every node, then every key read back through every node.
    let base_client = 10_000u64;
    let mut final_write_ms = BTreeMap::new();
    for i in 1..=o.nodes {
        let key = format!("final-n{i}");
        let t0 = Instant::now();
        let mut done = false;
        let mut conn = Conn::new(i, o.op_timeout);
        while t0.elapsed() < Duration::from_secs(15) {
            let op = Op::Set(format!("final-{i}-{}", t0.elapsed().as_nanos()));
            let invoke_ns = r.now_ns();
            let Some(out) = conn.exec(&key, &op) else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            let good = out == Outcome::Done;
            records.push(Record {
                client: base_client + i as u64,
                node: i,
                key: key.clone(),
                op,
                outcome: out,
                invoke_ns,
                complete_ns: r.now_ns(),
            });
            if good {
                done = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        final_write_ms.insert(i, t0.elapsed().as_millis() as u64);
        if !done {
            problems.push(format!(
                "final write through node {i} did not succeed in 15 s"
            ));
        }
    }
    let _ = wait_converged(r.g.c(), Duration::from_secs(20));
    let keys: BTreeSet<String> = records.iter().map(|x| x.key.clone()).collect();
    let mut finals: BTreeMap<String, BTreeMap<usize, Option<String>>> = BTreeMap::new();
    for i in 1..=o.nodes {
        let mut conn = Conn::new(i, o.op_timeout);
        for key in &keys {
            let mut tries = 0;
            loop {
                tries += 1;
                let invoke_ns = r.now_ns();
                let out = conn.exec(key, &Op::Get);
                let complete_ns = r.now_ns();
                match out {
                    Some(Outcome::Value(v)) => {
                        finals.entry(key.clone()).or_default().insert(i, v.clone());
                        records.push(Record {
                            client: base_client + 100 + i as u64,
                            node: i,
                            key: key.clone(),
                            op: Op::Get,
                            outcome: Outcome::Value(v),
                            invoke_ns,
                            complete_ns,
                        });
                        break;
                    }
                    other if tries >= 20 => {
                        problems.push(format!("final read of {key} through node {i}: {other:?}"));
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }
    }
    for (key, by_node) in &finals {
        let vals: BTreeSet<&Option<String>> = by_node.values().collect();
        if vals.len() > 1 {
            problems.push(format!("nodes disagree on {key}: {by_node:?}"));
        }
    }
    // Every acknowledged INCR is in its counter's final value.
    let mut max_incr: BTreeMap<&str, i64> = BTreeMap::new();
    for x in &records {
        if let (Op::Incr, Outcome::Int(v)) = (&x.op, &x.outcome) {
            let e = max_incr.entry(x.key.as_str()).or_insert(0);
            *e = (*e).max(*v);
        }
    }
    for (key, max) in &max_incr {
        let fin = finals
            .get(*key)
            .and_then(|m| m.values().next().cloned())
            .flatten()
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        if fin < *max {
            problems.push(format!(
                "lost acknowledged INCR: {key} ends at {fin}, an INCR returned {max}"
            ));
        }
    }
    let statuses: Vec<_> = (1..=o.nodes).map(|i| r.g.c().status(i)).collect();
    let sizes: BTreeSet<(u64, u64)> = statuses
        .iter()
        .flatten()
        .map(|s| (s.keys, s.kv_bytes))
        .collect();
    if sizes.len() > 1 {
        problems.push(format!(
            "state machines differ in size (keys, kv_bytes) across nodes: {sizes:?}"
        ));
    }
    r.reap();
    for e in &r.exits {
        problems.push(format!(
            "node {} exited on its own at {:.1}s ({}) during {}",
            e.node,
            e.at_ms as f64 / 1000.0,
            e.status,
            e.during
        ));
    }

    if let Some(path) = &o.history {
        let mut text = String::new();
        for x in &records {
            text.push_str(&serde_json::to_string(x).unwrap_or_default());
            text.push('\n');
        }
        if let Err(e) = fs::write(path, text) {
            r.say(&format!("{}: {e}", path.display()));
        }
    }
    r.say(&format!("checking {} ops with lincheck", records.len()));
    let t = Instant::now();
    let verdict = lincheck::check(&to_lincheck(&records), o.check_budget);
    let check_ms = t.elapsed().as_millis() as u64;
    let (lin, violation) = match &verdict {
        lincheck::Verdict::Linearizable => ("linearizable".to_string(), None),
        lincheck::Verdict::NotLinearizable(v) => {
            problems.push(format!(
                "linearizability violation on key {}",
                String::from_utf8_lossy(&v.key)
            ));
            ("NOT linearizable".to_string(), Some(v.to_string()))
        }
        lincheck::Verdict::Unknown { key, reason } => {
            let k = String::from_utf8_lossy(key).into_owned();
            problems.push(format!("lincheck could not decide key {k}: {reason}"));
            (format!("unknown ({k}: {reason})"), None)
        }
    };
    let avail = availability(
        &records,
        &mut faults,
        o.nodes,
        load_start_ns,
        load_end_ns,
        o.recovery_limit_ms,
    );
    if o.recovery_limit_ms > 0 {
        for f in faults.iter().filter(|f| f.slow) {
            let per_node: Vec<String> = f
                .recovery_by_node
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let r = r.map_or("none before the next fault".into(), |m| format!("{m} ms"));
                    format!("n{}: {r}", i + 1)
                })
                .collect();
            let took = f
                .recovery_ms
                .map_or("longer than until the next fault".to_string(), |m| {
                    format!("{m} ms")
                });
            problems.push(format!(
                "after {} ({}) healed at {:.1}s, writes through every node took {took} \
                 (limit {} ms; {})",
                f.kind.name(),
                f.desc,
                f.heal_ms as f64 / 1000.0,
                o.recovery_limit_ms,
                per_node.join(", ")
            ));
        }
    }
    let report = Report::new(
        o,
        &records,
        faults,
        avail,
        lin,
        violation,
        problems,
        r.exits.clone(),
        final_write_ms,
        check_ms,
        dir.display().to_string(),
    );
    if !report.pass {
        // Keep the logs of a failing run.
        r.g.remove_dir = false;
    }
    Ok(report)
}

/// Waits until every node answers, agrees on one leader and term, and has applied the
/// same commit index (equal to the leader's last index).
fn wait_converged(c: &Cluster, timeout: Duration) -> Result<String, String> {
    let end = Instant::now() + timeout;
    let mut last = String::new();
    let mut stable = 0;
    while Instant::now() < end {
        let st: Vec<_> = (1..=c.n).map(|i| c.status(i)).collect();
        let desc: Vec<String> = st
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Some(s) => format!(
                    "n{}:{} t{} leader {:?} commit {} applied {} last {}{}",
                    i + 1,
                    s.role,
                    s.term,
                    s.leader,
                    s.commit_index,
                    s.applied_index,
                    s.last_index,
                    s.storage_failure
                        .as_ref()
                        .map_or(String::new(), |f| format!(" STORAGE FAILURE {f}"))
                ),
                None => format!("n{}: no answer", i + 1),
            })
            .collect();
        last = desc.join("; ");
        let all: Option<Vec<_>> = st.into_iter().collect();
        if let Some(all) = all {
            let leaders: BTreeSet<_> = all.iter().map(|s| (s.leader, s.term)).collect();
            let applied: BTreeSet<_> = all
                .iter()
                .map(|s| (s.commit_index, s.applied_index))
                .collect();
            let one_leader =
                leaders.len() == 1 && leaders.iter().next().is_some_and(|l| l.0.is_some());
            let max_last = all.iter().map(|s| s.last_index).max().unwrap_or(0);
            let same = applied.len() == 1
                && applied
                    .iter()
                    .next()
                    .is_some_and(|&(c, a)| c == a && a == max_last);
            if one_leader && same && all.iter().all(|s| s.storage_failure.is_none()) {
                stable += 1;
                if stable >= 3 {
                    return Ok(last);
                }
            } else {
                stable = 0;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(last)
}
