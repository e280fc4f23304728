//! One run of one scenario: the reference harness's single-threaded loop.
//!
//! Each turn waits in poll (up to 0.1 s, less if something is due sooner)
//! on every replica socket (and, when output is shown, every replica pipe),
//! reads ONE datagram from each ready socket, checks and routes it, then
//! fires the client requests and events that are due. Because every replica
//! message costs harness time here, as in the reference, chatty replicas
//! see higher latency.

mod events;
mod queue;
mod routing;

use queue::{Due, Timed};

use super::client::Client;
use super::config::Scenario;
use super::history::{History, LinResult};
use super::network::{Faults, Partition, BROADCAST};
use super::replica::{Cluster, ReplicaProc};
use super::report::{correctness_errors, tiers, ScenarioReport, Stats};
use super::trace::Trace;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

/// Set by the CLI's SIGINT/SIGTERM handler: every running scenario stops at
/// its next turn and its replicas are killed.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The longest the loop waits in poll, as in the reference.
const MAX_WAIT_S: f64 = 0.1;

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct HarnessOptions {
    /// The replica program (`./3700kvstore`), run in the current directory.
    pub replica: PathBuf,
    /// Send replica stdout/stderr to /dev/null instead of showing it.
    pub silence: bool,
    /// Seed of the harness's RNG (overrides a `seed` key in the scenario).
    pub seed: Option<u64>,
    /// Write every datagram as a JSON line to this file.
    pub trace: Option<PathBuf>,
    /// Time allowed to the linearizability checker; "unknown" fails.
    pub lincheck_budget: Duration,
    /// Print `*** Simulator Error` lines (and replica output) as they occur.
    pub echo: bool,
    /// After the run, measure the harness's latency floor with this stand-in
    /// replica (see `harness::floor`) and put it in the report.
    pub floor: Option<PathBuf>,
}

impl Default for HarnessOptions {
    fn default() -> Self {
        HarnessOptions {
            replica: PathBuf::from("./3700kvstore"),
            silence: false,
            seed: None,
            trace: None,
            lincheck_budget: Duration::from_secs(10),
            echo: true,
            floor: None,
        }
    }
}

/// Why a run could not be carried out at all.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("cannot bind a UDP socket on localhost: {0}")]
    Bind(io::Error),
    #[error("cannot start replica {program}: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("invalid scenario: {0}")]
    Invalid(String),
    #[error("cannot write trace {path}: {source}")]
    Trace { path: String, source: io::Error },
}

struct Sim<'a> {
    sc: &'a Scenario,
    opts: &'a HarnessOptions,
    start: Instant,
    rng: StdRng,
    rids: Vec<String>,
    rid_index: HashMap<String, usize>,
    sockets: Vec<UdpSocket>,
    /// Learned from each replica's hello.
    addrs: Vec<Option<SocketAddr>>,
    cluster: Cluster,
    living: BTreeSet<String>,
    paused: BTreeSet<String>,
    clients: Vec<Client>,
    client_index: HashMap<String, usize>,
    /// The leader the harness believes in (`FFFF` = unknown).
    leader: String,
    partition: Option<Partition>,
    faults: Faults,
    stats: Stats,
    history: History,
    errors: Vec<String>,
    echoed: usize,
    queue: BinaryHeap<Timed>,
    seq: u64,
    trace: Option<Trace>,
}

/// Runs one scenario against real replica processes and grades it.
pub fn run_scenario(sc: &Scenario, opts: &HarnessOptions) -> Result<ScenarioReport, HarnessError> {
    // Scenarios built in code skip the file checks; these would panic.
    if sc.replicas == 0 || sc.clients == 0 || sc.replicas + 16 + sc.clients > 0xFFFF {
        return Err(HarnessError::Invalid(format!(
            "{} replicas and {} clients",
            sc.replicas, sc.clients
        )));
    }
    let wall = Instant::now();
    let seed = opts.seed.or(sc.seed).unwrap_or_else(rand::random);
    let rids = sc.replica_ids();
    let mut sockets = Vec::with_capacity(rids.len());
    for _ in &rids {
        let s = UdpSocket::bind("127.0.0.1:0").map_err(HarnessError::Bind)?;
        s.set_nonblocking(true).map_err(HarnessError::Bind)?;
        sockets.push(s);
    }
    let trace = match &opts.trace {
        None => None,
        Some(p) => Some(Trace::create(p).map_err(|source| HarnessError::Trace {
            path: p.display().to_string(),
            source,
        })?),
    };
    let clients: Vec<Client> = sc.client_ids().iter().map(|c| Client::new(c)).collect();
    let mut sim = Sim {
        sc,
        opts,
        start: Instant::now(),
        rng: StdRng::seed_from_u64(seed),
        rid_index: rids
            .iter()
            .enumerate()
            .map(|(i, r)| (r.clone(), i))
            .collect(),
        addrs: vec![None; rids.len()],
        living: rids.iter().cloned().collect(),
        rids,
        sockets,
        cluster: Cluster::default(),
        paused: BTreeSet::new(),
        client_index: clients
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect(),
        clients,
        leader: BROADCAST.to_string(),
        partition: None,
        faults: Faults {
            drops: sc.drops,
            duplicate: sc.duplicate,
            reorder: sc
                .reorder
                .as_ref()
                .map(|r| (r.probability, r.max_delay_ms / 1000.0)),
        },
        stats: Stats::default(),
        history: History::default(),
        errors: Vec::new(),
        echoed: 0,
        queue: BinaryHeap::new(),
        seq: 0,
        trace,
    };

    // Launch; the guard in `sim.cluster` kills every group on any exit path.
    for (i, id) in sim.rids.iter().enumerate() {
        let others: Vec<String> = sim.rids.iter().filter(|r| *r != id).cloned().collect();
        let port = sim.sockets[i]
            .local_addr()
            .map_err(HarnessError::Bind)?
            .port();
        let proc = ReplicaProc::spawn(&opts.replica, port, id, &others, opts.silence).map_err(
            |source| HarnessError::Spawn {
                program: opts.replica.display().to_string(),
                source,
            },
        )?;
        sim.cluster.procs.push(proc);
    }
    sim.start = Instant::now();
    sim.schedule();
    sim.run_loop();
    let interrupted = INTERRUPTED.load(AtomicOrdering::SeqCst);
    let mut report = sim.finish(seed, interrupted, wall)?;
    if let (Some(standin), false) = (&opts.floor, interrupted) {
        report.latency_floor = Some(super::floor::measure(sc, opts, seed, standin)?);
    }
    Ok(report)
}

impl Sim<'_> {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn push(&mut self, at: f64, what: Due) {
        self.seq += 1;
        self.queue.push(Timed {
            at,
            seq: self.seq,
            what,
        });
    }

    /// Requests evenly spaced from `start_wait`, then the scripted events
    /// (each `time` seconds after the first request).
    fn schedule(&mut self) {
        let dt = self.sc.request_interval();
        let first = self.sc.start_wait;
        for i in 0..self.sc.requests {
            let get = self.rng.gen::<f64>() < self.sc.mix;
            if get {
                self.stats.generated_gets += 1;
            } else {
                self.stats.generated_puts += 1;
            }
            self.push(first + i as f64 * dt, Due::Request { get });
        }
        for ev in &self.sc.events {
            self.push(first + ev.time, Due::Event(ev.kind.clone()));
        }
    }

    fn error(&mut self, msg: String) {
        self.errors.push(msg);
    }

    /// Prints new simulator errors (clients add to the list directly).
    fn echo_errors(&mut self) {
        if self.opts.echo {
            let mut out = io::stdout().lock();
            for e in &self.errors[self.echoed..] {
                let _ = writeln!(out, "{e}");
            }
        }
        self.echoed = self.errors.len();
    }

    fn run_loop(&mut self) {
        let end = self.sc.duration_secs();
        let mut buf = vec![0u8; 65536];
        loop {
            let now = self.now();
            if now >= end
                || self.stats.total_msgs as f64 >= self.sc.max_packets
                || INTERRUPTED.load(AtomicOrdering::Relaxed)
            {
                break;
            }
            let next = self.queue.peek().map_or(end, |t| t.at.min(end));
            let wait = (next - now).clamp(0.0, MAX_WAIT_S);

            // The poll set: sockets of replicas not killed, then pipes.
            let mut fds: Vec<libc::pollfd> = Vec::new();
            let mut owners: Vec<(bool, usize)> = Vec::new(); // (is_socket, replica)
            for (i, s) in self.sockets.iter().enumerate() {
                if !self.cluster.procs[i].was_killed() {
                    fds.push(pollfd(s.as_raw_fd(), libc::POLLIN));
                    owners.push((true, i));
                }
            }
            for (i, p) in self.cluster.procs.iter().enumerate() {
                for fd in p.output_fds() {
                    fds.push(pollfd(fd, libc::POLLIN));
                    owners.push((false, i));
                }
            }
            let ready = ppoll(&mut fds, wait);
            if ready > 0 {
                for (k, fd) in fds.iter().enumerate() {
                    if fd.revents == 0 {
                        continue;
                    }
                    let (is_socket, i) = owners[k];
                    if is_socket {
                        match self.sockets[i].recv_from(&mut buf) {
                            Ok((n, from)) => {
                                let data = buf[..n].to_vec();
                                self.on_datagram(i, from, &data);
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(e) => self.error(format!(
                                "*** Simulator Error - Cannot read from replica {}: {e}",
                                self.rids[i]
                            )),
                        }
                    } else {
                        self.show_output(i, fd.fd);
                    }
                }
            }
            self.check_exits();

            let now = self.now();
            while self.queue.peek().is_some_and(|t| t.at <= now) {
                let Some(t) = self.queue.pop() else { break };
                self.fire(t.what);
            }
            self.echo_errors();
        }
    }

    fn show_output(&mut self, i: usize, fd: i32) {
        let t = self.now();
        let lines = self.cluster.procs[i].read_output(fd);
        if lines.is_empty() || !self.opts.echo {
            return;
        }
        let mut out = io::stdout().lock();
        for l in lines {
            let _ = writeln!(out, "[{t:10.6} {}] {l}", self.rids[i]);
        }
    }

    /// A replica that exits without being killed has died.
    fn check_exits(&mut self) {
        for i in 0..self.cluster.procs.len() {
            let Some(how) = self.cluster.procs[i].poll_exit() else {
                continue;
            };
            if self.cluster.procs[i].was_killed() {
                continue;
            }
            let id = self.rids[i].clone();
            self.paused.remove(&id);
            if self.living.remove(&id) {
                self.error(format!(
                    "*** Simulator Error - Replica {id} quit unexpectedly ({how})"
                ));
            }
        }
    }

    /// Ends the run: counts, kills every replica, checks the history, grades.
    fn finish(
        mut self,
        seed: u64,
        interrupted: bool,
        wall: Instant,
    ) -> Result<ScenarioReport, HarnessError> {
        if self.stats.total_msgs as f64 >= self.sc.max_packets {
            self.stats.packet_storm = true;
            self.error(format!(
                "*** Simulator Error - Replicas sent too many packets (>{}), possible packet storm",
                self.sc.max_packets as i64
            ));
        }
        self.check_exits();
        self.stats.died = (self.rids.len() - self.living.len()) as u64 - self.stats.killed;
        for c in &self.clients {
            c.finalize(&mut self.stats.client);
        }
        self.stats.stored_keys = self.clients.iter().map(|c| c.stored() as u64).sum();
        self.stats.finalize();
        self.echo_errors();
        self.cluster.shutdown();
        if let Some(t) = self.trace.take() {
            t.finish().map_err(|source| HarnessError::Trace {
                path: self
                    .opts
                    .trace
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                source,
            })?;
        }

        let lin = if self.history.ops.is_empty() {
            LinResult::Linearizable
        } else {
            self.history.check(self.opts.lincheck_budget)
        };
        let mut correctness = correctness_errors(self.sc, &self.stats, Some(&lin));
        if interrupted {
            correctness.push("the run was interrupted before its end".to_string());
        }
        let passed = correctness.is_empty();
        Ok(ScenarioReport {
            name: self.sc.name.clone(),
            seed,
            scenario: self.sc.clone(),
            tiers: correctness.is_empty().then(|| tiers(self.sc, &self.stats)),
            stats: self.stats,
            simulator_errors: self.errors,
            correctness_errors: correctness,
            linearizability: Some(lin),
            passed,
            interrupted,
            wall_secs: wall.elapsed().as_secs_f64(),
            latency_floor: None,
            history: self.history,
        })
    }
}

fn pollfd(fd: i32, events: i16) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// Waits up to `wait_s` seconds (sub-millisecond precision, unlike poll).
fn ppoll(fds: &mut [libc::pollfd], wait_s: f64) -> i32 {
    let ts = libc::timespec {
        tv_sec: wait_s.trunc() as libc::time_t,
        tv_nsec: (wait_s.fract() * 1e9) as libc::c_long,
    };
    // SAFETY: `fds` is a valid slice of pollfd for its length; `ts` lives
    // across the call; a null sigmask keeps the current mask.
    unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        )
    }
}
