//! A cluster of real `raftkv serve` processes on loopback ports, for the tests that kill
//! nodes for real (`durability.rs`, `watch.rs`). Every spawned process belongs to a
//! [`Cluster`] guard that SIGKILLs it on drop, so a failing assertion leaves no node
//! running; a node also dies with the test process (`PR_SET_PDEATHSIG`).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use server::cli::RespClient;
use server::resp::codec::Value;

pub const RAFTKV: &str = env!("CARGO_BIN_EXE_raftkv");

/// Same timings as the in-process tests (`tests/common/mod.rs`): elections settle well
/// under a second.
pub const ELECTION_MS: u64 = 300;
pub const HEARTBEAT_MS: u64 = 30;
/// A forwarded request that gets no answer fails after this long (default 10 s): keeps a
/// writer stuck behind an election from holding up the test.
pub const REQUEST_TIMEOUT_MS: u64 = 3000;
pub const SETTLE: Duration = Duration::from_secs(10);

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time (see the module docs). A test that panicked poisons the lock; the
/// next one still runs.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Next candidate port. Ports come from 20000..32000, below Linux's ephemeral range
/// (32768..60999): an outgoing connection (a writer, a peer link) can then never be
/// handed a port a node is about to listen on, even across a restart on the same ports.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

pub fn free_ports(n: usize) -> Vec<u16> {
    const LO: u16 = 20_000;
    const SPAN: u16 = 12_000;
    let _ = NEXT_PORT.compare_exchange(
        0,
        (std::process::id() % u32::from(SPAN)) as u16,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    // Hold every chosen listener until all are chosen, so the ports are distinct.
    let mut held = Vec::new();
    for _ in 0..SPAN {
        if held.len() == n {
            break;
        }
        let port = LO + NEXT_PORT.fetch_add(1, Ordering::SeqCst) % SPAN;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
        }
    }
    assert_eq!(held.len(), n, "not enough free loopback ports");
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

pub struct Ports {
    pub peer: u16,
    pub client: u16,
    pub admin: u16,
}

/// A cluster of `raftkv serve` processes. Node `id` (1-based) keeps its data in
/// `dir/node{id}` and its ports across restarts; each start logs (stdout and stderr) to a
/// file of its own. Dropping it SIGKILLs whatever still runs.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub ports: Vec<Ports>,
    pub procs: Vec<Option<Child>>,
    /// The log file of each node's latest start.
    logs: Vec<Option<PathBuf>>,
    starts: usize,
}

impl Cluster {
    /// Writes the configs of `n` nodes; starts none.
    pub fn new(n: usize) -> Cluster {
        Cluster::with_config(n, "")
    }

    /// As [`Cluster::new`], with `extra` appended to every node's config file (whole
    /// TOML sections, e.g. `[events]`).
    pub fn with_config(n: usize, extra: &str) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = free_ports(3 * n);
        let ports: Vec<Ports> = (0..n)
            .map(|i| Ports {
                peer: p[3 * i],
                client: p[3 * i + 1],
                admin: p[3 * i + 2],
            })
            .collect();
        let peers: String = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{} = \"127.0.0.1:{}\"\n", i + 1, p.peer))
            .collect();
        for (i, p) in ports.iter().enumerate() {
            let id = i + 1;
            // A config file rather than flags: `limits.request_timeout_ms` has no flag.
            let toml = format!(
                "id = {id}\n\
                 data_dir = {data:?}\n\
                 client_addr = \"127.0.0.1:{client}\"\n\
                 admin_addr = \"127.0.0.1:{admin}\"\n\
                 [peers]\n{peers}\
                 [raft]\n\
                 election_timeout_ms = {ELECTION_MS}\n\
                 heartbeat_ms = {HEARTBEAT_MS}\n\
                 [limits]\n\
                 request_timeout_ms = {REQUEST_TIMEOUT_MS}\n\
                 {extra}\n",
                data = dir.path().join(format!("node{id}")).display().to_string(),
                client = p.client,
                admin = p.admin,
            );
            std::fs::write(dir.path().join(format!("node{id}.toml")), toml).unwrap();
        }
        Cluster {
            dir,
            procs: (0..n).map(|_| None).collect(),
            logs: vec![None; n],
            ports,
            starts: 0,
        }
    }

    pub fn ids(&self) -> Vec<u64> {
        (1..=self.procs.len() as u64).collect()
    }

    pub fn running(&self) -> Vec<u64> {
        self.ids()
            .into_iter()
            .filter(|&id| self.procs[id as usize - 1].is_some())
            .collect()
    }

    pub fn port(&self, id: u64) -> &Ports {
        &self.ports[id as usize - 1]
    }

    pub fn client_addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.port(id).client)
    }

    pub fn log_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node{id}")).join("log")
    }

    pub fn start(&mut self, id: u64) {
        assert!(self.procs[id as usize - 1].is_none(), "node {id} runs");
        self.starts += 1;
        let log_path = self
            .dir
            .path()
            .join(format!("node{id}.start{}.log", self.starts));
        let log = File::create(&log_path).expect("create node log");
        let mut cmd = Command::new(RAFTKV);
        cmd.arg("serve")
            .arg("--config")
            .arg(self.dir.path().join(format!("node{id}.toml")))
            // The log assertions need the storage crate's warnings, whatever the caller's
            // RUST_LOG says.
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // If the test process dies without unwinding (SIGKILL, abort), the kernel kills
        // the node too. PDEATHSIG follows the spawning *thread*: nodes are only started
        // from the test's own thread, which outlives them (the guard kills them first).
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn raftkv serve");
        self.procs[id as usize - 1] = Some(child);
        self.logs[id as usize - 1] = Some(log_path);
    }

    pub fn start_all(&mut self) {
        for id in self.ids() {
            self.start(id);
        }
    }

    /// SIGKILLs every running node, all at once (no waiting between the kills), then
    /// reaps them. Asserts each was still alive: a node that died on its own during the
    /// test is a failure in itself.
    pub fn kill_all(&mut self) {
        let mut dead = Vec::new();
        for (i, slot) in self.procs.iter_mut().enumerate() {
            if let Some(c) = slot {
                if let Ok(Some(status)) = c.try_wait() {
                    dead.push((i + 1, status));
                }
                let _ = c.kill(); // SIGKILL
            }
        }
        for slot in &mut self.procs {
            if let Some(mut c) = slot.take() {
                let _ = c.wait();
            }
        }
        assert!(
            dead.is_empty(),
            "nodes exited before the kill: {dead:?}; logs:\n{}",
            self.all_output()
        );
    }

    /// Waits up to `timeout` for node `id` to exit on its own.
    pub fn wait_exit(&mut self, id: u64, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.procs[id as usize - 1].as_mut().expect("node started");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.procs[id as usize - 1] = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn is_alive(&mut self, id: u64) -> bool {
        self.procs[id as usize - 1]
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// What node `id` printed in its latest start (stdout and stderr).
    pub fn output(&self, id: u64) -> String {
        self.logs[id as usize - 1]
            .as_ref()
            .map(|p| strip_ansi(&std::fs::read_to_string(p).unwrap_or_default()))
            .unwrap_or_default()
    }

    pub fn all_output(&self) -> String {
        self.ids()
            .into_iter()
            .map(|id| format!("--- node {id} ---\n{}", self.output(id)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// INFO of node `id` as `field -> value`, or `None` if it does not answer.
    pub fn info(&self, id: u64) -> Option<HashMap<String, String>> {
        let mut c = RespClient::connect(&self.client_addr(id), Duration::from_millis(200)).ok()?;
        match c.call(&["INFO"]).ok()? {
            Value::Bulk(Some(b)) => Some(
                String::from_utf8_lossy(&b)
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// Waits until every running node names the same leader and that node says it is
    /// the leader; returns it.
    pub fn wait_leader(&mut self) -> u64 {
        let deadline = Instant::now() + SETTLE;
        loop {
            for id in self.running() {
                assert!(
                    self.is_alive(id),
                    "node {id} exited while electing; its output:\n{}",
                    self.output(id)
                );
            }
            let ids = self.running();
            let infos: Vec<Option<HashMap<String, String>>> =
                ids.iter().map(|&id| self.info(id)).collect();
            let leader_of = |i: &Option<HashMap<String, String>>| {
                i.as_ref()
                    .and_then(|m| m.get("leader"))
                    .and_then(|l| l.parse::<u64>().ok())
            };
            if let Some(l) = infos.first().and_then(leader_of) {
                let agreed = infos.iter().all(|i| leader_of(i) == Some(l));
                let pos = ids.iter().position(|&id| id == l);
                let is_leader = pos.is_some_and(|p| {
                    infos[p]
                        .as_ref()
                        .and_then(|m| m.get("role"))
                        .map(String::as_str)
                        == Some("leader")
                });
                if agreed && is_leader {
                    return l;
                }
            }
            let leaders: Vec<Option<u64>> = infos.iter().map(leader_of).collect();
            assert!(
                Instant::now() < deadline,
                "no leader agreed on by nodes {ids:?} within {SETTLE:?}: {leaders:?}\n{}",
                self.all_output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every running node has applied the same, committed, last index: the
    /// whole log is on every node, so a later kill catches no entry in flight.
    pub fn wait_caught_up(&self) -> u64 {
        let deadline = Instant::now() + SETTLE;
        loop {
            let infos: Vec<Option<HashMap<String, String>>> =
                self.running().iter().map(|&id| self.info(id)).collect();
            let num = |i: &Option<HashMap<String, String>>, k: &str| {
                i.as_ref()
                    .and_then(|m| m.get(k))
                    .and_then(|v| v.parse::<u64>().ok())
            };
            let last: Vec<Option<u64>> = infos.iter().map(|i| num(i, "last_index")).collect();
            let caught_up = infos.iter().all(|i| {
                let (c, a, l) = (
                    num(i, "commit_index"),
                    num(i, "applied_index"),
                    num(i, "last_index"),
                );
                c.is_some() && c == a && a == l && l == last[0]
            });
            if caught_up {
                return last[0].unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "nodes did not converge: last_index {last:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A plain HTTP GET on node `id`'s admin port: (status code, body).
    pub fn http_get(&self, id: u64, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port(id).admin)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let code = out.split_whitespace().nth(1)?.parse().ok()?;
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
        Some((code, body))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.procs.iter_mut().flatten() {
            let _ = c.kill();
        }
        for mut c in self.procs.iter_mut().filter_map(Option::take) {
            let _ = c.wait();
        }
    }
}

/// Tracing's field formatting uses ANSI escapes when it thinks it may; `NO_COLOR` asks it
/// not to, and this makes the text comparable either way.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
