//! `raftkv serve` processes for the membership tests and measurements: a cluster under
//! one temporary directory (nodes on fixed ports of one block, so a node restarts at its
//! address), the membership CLI, and a writer that records every acknowledged write.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use server::cli::RespClient;
use server::resp::codec::Value;

const RAFTKV: &str = env!("CARGO_BIN_EXE_raftkv");
const ADMIN_TOKEN_ENV: &str = "RAFTKV_ADMIN_TOKEN";

/// A block of ports for up to ten nodes (client `base+i`, peer `base+100+i`, admin
/// `base+200+i`), below the ephemeral range and apart from the bases
/// `tests/processes.rs` hands out (10,000 and up); each once per process.
pub fn free_base() -> u16 {
    use std::sync::atomic::AtomicU16;
    static HANDED_OUT: AtomicU16 = AtomicU16::new(0);
    const FIRST: u16 = 4_000;
    const BASES: u16 = 20; // 4,000 to 9,700, 300 apart
    let start = (std::process::id() % u32::from(BASES)) as u16;
    for _ in 0..BASES {
        let k = HANDED_OUT.fetch_add(1, Ordering::Relaxed);
        let base = FIRST + ((start + k) % BASES) * 300;
        let free = (0..10u16).all(|i| {
            [base + i, base + 100 + i, base + 200 + i]
                .iter()
                .all(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        });
        if free {
            return base;
        }
    }
    panic!("no free ports");
}

pub struct Node {
    child: Child,
}

/// A cluster of `raftkv serve` processes under one temporary directory.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub base: u16,
    pub nodes: BTreeMap<u64, Node>,
    /// `[peers]` of the bootstrap members.
    pub bootstrap: String,
    /// Extra arguments every `serve` gets (a config file, say).
    pub extra: Vec<String>,
    /// Election timeout and heartbeat of every node, ms.
    pub timing: (u64, u64),
}

impl Cluster {
    pub fn client_addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.base + id as u16)
    }
    pub fn peer_addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.base + 100 + id as u16)
    }
    pub fn admin_addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.base + 200 + id as u16)
    }
    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node{id}"))
    }

    /// Bootstraps nodes `1..=n`.
    pub fn start(n: u64) -> Cluster {
        Cluster::start_with(n, &[])
    }

    /// Bootstraps nodes `1..=n`, every `serve` given `extra` too.
    pub fn start_with(n: u64, extra: &[&str]) -> Cluster {
        Cluster::start_timed(n, extra, (300, 30))
    }

    /// [`Cluster::start_with`], with election timeout and heartbeat `timing` (ms).
    pub fn start_timed(n: u64, extra: &[&str], timing: (u64, u64)) -> Cluster {
        Cluster::start_some(n, n, extra, timing)
    }

    /// A bootstrap list of `n` members of which only `1..=up` start (the others are
    /// late starters: [`Cluster::spawn`] them later; with `up` 0 none is waited for).
    pub fn start_some(n: u64, up: u64, extra: &[&str], timing: (u64, u64)) -> Cluster {
        let base = free_base();
        let mut c = Cluster {
            dir: tempfile::tempdir().expect("tempdir"),
            base,
            nodes: BTreeMap::new(),
            bootstrap: String::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            timing,
        };
        c.bootstrap = (1..=n)
            .map(|i| format!("{i}={}", c.peer_addr(i)))
            .collect::<Vec<_>>()
            .join(",");
        for id in 1..=up {
            c.spawn(id, &[]);
        }
        if up > 0 {
            c.wait_leader(Duration::from_secs(20));
        }
        c
    }

    pub fn command(&self, id: u64) -> Command {
        let mut cmd = Command::new(RAFTKV);
        cmd.env_remove(ADMIN_TOKEN_ENV)
            .env("RUST_LOG", "info")
            .arg("serve")
            .args(["--id", &id.to_string()])
            .arg("--data-dir")
            .arg(self.data_dir(id))
            .args(["--peer-addr", &self.peer_addr(id)])
            .args(["--client-addr", &self.client_addr(id)])
            .args(["--admin-addr", &self.admin_addr(id)])
            .args(["--election-timeout-ms", &self.timing.0.to_string()])
            .args(["--heartbeat-ms", &self.timing.1.to_string()])
            .args(&self.extra);
        cmd
    }

    pub fn log_file(&self, id: u64) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node{id}.log")))
            .expect("log file")
    }

    /// Starts node `id`: a bootstrap member (its `[peers]` given) unless `extra` says
    /// otherwise (`--join ADDR`).
    pub fn spawn(&mut self, id: u64, extra: &[&str]) {
        if extra.is_empty() {
            let peers = self.bootstrap.clone();
            return self.spawn_args(id, &["--peers", &peers]);
        }
        self.spawn_args(id, extra)
    }

    /// Starts node `id` with exactly `args` after the common ones (no `--peers`).
    pub fn spawn_args(&mut self, id: u64, args: &[&str]) {
        let mut cmd = self.command(id);
        let child = cmd
            .args(args)
            .stdout(Stdio::null())
            .stderr(self.log_file(id))
            .spawn()
            .expect("spawn raftkv serve");
        self.nodes.insert(id, Node { child });
    }

    /// Starts `id` with an empty data directory, joining through node `via`'s admin port.
    pub fn join(&mut self, id: u64, via: u64) {
        let addr = self.admin_addr(via);
        self.spawn(id, &["--join", &addr]);
    }

    /// `--join` run to its end: what a node refused at the join prints and exits with.
    pub fn join_refused(&self, id: u64, via: u64) -> Output {
        let mut cmd = self.command(id);
        cmd.args(["--join", &self.admin_addr(via)]);
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("node {id} was not refused: it is running");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().expect("output")
    }

    /// SIGTERM (a leader hands over first), and wait for the process to end.
    pub fn stop(&mut self, id: u64) {
        if let Some(mut n) = self.nodes.remove(&id) {
            // SAFETY: kill(2) of a child we spawned, by its PID.
            unsafe {
                libc::kill(n.child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while n.child.try_wait().expect("wait").is_none() {
                assert!(Instant::now() < deadline, "node {id} did not stop");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Waits (up to `timeout`) for node `id` to exit on its own: its exit status, or
    /// `None` if it is still running then.
    pub fn wait_exit(&mut self, id: u64, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let n = self.nodes.get_mut(&id).expect("node was started");
        loop {
            if let Some(status) = n.child.try_wait().expect("wait") {
                self.nodes.remove(&id);
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut n) = self.nodes.remove(&id) {
            let _ = n.child.kill();
            let _ = n.child.wait();
        }
    }

    pub fn admin_list(&self) -> String {
        self.nodes
            .keys()
            .map(|&i| self.admin_addr(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `raftkv ARGS... --admin <running nodes>`.
    pub fn cli(&self, args: &[&str]) -> Output {
        let admin = self.admin_list();
        Command::new(RAFTKV)
            .env_remove(ADMIN_TOKEN_ENV)
            .args(args)
            .args(["--admin", &admin])
            .output()
            .expect("run raftkv")
    }

    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "raftkv {args:?} failed: {}{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// `GET /members` from some running node: the JSON.
    pub fn members(&self) -> serde_json::Value {
        let client = server::admin_client::AdminClient::new(None, None);
        for &id in self.nodes.keys() {
            if let Ok((200, body)) = client.request(
                &self.admin_addr(id),
                axum::http::Method::GET,
                "/members",
                None,
            ) {
                return serde_json::from_str(&body).expect("json");
            }
        }
        panic!("no node answers /members");
    }

    /// The voters and learners every running node agrees on, once they do and a
    /// leader is known.
    pub fn wait_members(&self, voters: &[u64], learners: &[u64], timeout: Duration) {
        let want = |v: &serde_json::Value| {
            let ids = |role: &str| -> Vec<u64> {
                v["members"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|m| m["role"] == role)
                    .filter_map(|m| m["id"].as_u64())
                    .collect()
            };
            ids("voter") == voters && ids("learner") == learners && v["leader"].is_u64()
        };
        let client = server::admin_client::AdminClient::new(None, None);
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.nodes.keys().all(|&id| {
                client
                    .request(
                        &self.admin_addr(id),
                        axum::http::Method::GET,
                        "/members",
                        None,
                    )
                    .ok()
                    .filter(|(code, _)| *code == 200)
                    .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
                    .is_some_and(|v| want(&v))
            });
            if all {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "members never became voters {voters:?} learners {learners:?}: {}",
                self.members()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Until node `id` reports that it was removed.
    pub fn wait_removed(&self, id: u64, timeout: Duration) {
        let client = server::admin_client::AdminClient::new(None, None);
        let deadline = Instant::now() + timeout;
        loop {
            let removed = client
                .request(
                    &self.admin_addr(id),
                    axum::http::Method::GET,
                    "/members",
                    None,
                )
                .ok()
                .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
                .is_some_and(|v| v["removed"] == true);
            if removed {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} never learned it was removed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn leader(&self) -> Option<u64> {
        self.members()["leader"].as_u64()
    }

    pub fn wait_leader(&self, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let client = server::admin_client::AdminClient::new(None, None);
            for &id in self.nodes.keys() {
                if let Ok((200, body)) = client.request(
                    &self.admin_addr(id),
                    axum::http::Method::GET,
                    "/members",
                    None,
                ) {
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                    if let Some(l) = v["leader"].as_u64() {
                        if v["node"] == l {
                            return l;
                        }
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn resp_addrs(&self) -> Vec<String> {
        self.nodes.keys().map(|&i| self.client_addr(i)).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.kill(id);
        }
    }
}

/// Writes distinct keys through any node, in a loop, recording which were acknowledged.
pub struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(String, String)>>>,
    /// When each acknowledgement arrived.
    pub times: Arc<Mutex<Vec<Instant>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// `addrs` is read afresh for every connection (nodes come and go).
    pub fn start(addrs: Arc<Mutex<Vec<String>>>, prefix: &str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let times = Arc::new(Mutex::new(Vec::new()));
        let (s, a, t, prefix) = (
            stop.clone(),
            acked.clone(),
            times.clone(),
            prefix.to_string(),
        );
        let thread = std::thread::spawn(move || {
            let mut n = 0u64;
            let mut which = 0usize;
            let mut conn: Option<RespClient> = None;
            while !s.load(Ordering::Relaxed) {
                if conn.is_none() {
                    let list = addrs.lock().unwrap().clone();
                    which += 1;
                    let addr = &list[which % list.len()];
                    conn = RespClient::connect(addr, Duration::from_millis(500)).ok();
                    if conn.is_none() {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                }
                let (key, value) = (format!("{prefix}-{n}"), format!("v{n}"));
                n += 1;
                let c = conn.as_mut().expect("connected");
                match c.call(&["SET", &key, &value]) {
                    Ok(Value::Simple(ok)) if ok == "OK" => {
                        a.lock().unwrap().push((key, value));
                        t.lock().unwrap().push(Instant::now());
                    }
                    // Refused or unknown: not counted as acknowledged; a new key next.
                    Ok(_) => std::thread::sleep(Duration::from_millis(10)),
                    Err(_) => conn = None,
                }
            }
        });
        Writer {
            stop,
            acked,
            times,
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) -> Vec<(String, String)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("writer");
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

/// Every acknowledged write reads back (linearizable reads, through node `via`).
pub fn check_acked(c: &Cluster, acked: &[(String, String)], via: u64) {
    assert!(!acked.is_empty(), "no write was acknowledged");
    let mut client =
        RespClient::connect(&c.client_addr(via), Duration::from_secs(2)).expect("connect");
    for (key, value) in acked {
        let got = client.call(&["GET", key]).expect("GET");
        assert_eq!(
            got,
            Value::Bulk(Some(bytes::Bytes::copy_from_slice(value.as_bytes()))),
            "acknowledged write {key}={value} lost"
        );
    }
}

pub fn log_of(c: &Cluster, id: u64) -> String {
    std::fs::read_to_string(c.dir.path().join(format!("node{id}.log"))).unwrap_or_default()
}
