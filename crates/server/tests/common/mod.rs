//! An in-process cluster on loopback ports for the integration tests: every node is a
//! full server (node loop thread, TCP peers, RESP, HTTP) in one tokio runtime.

#![allow(dead_code)]

pub mod member_procs;
pub mod procs;
pub mod raw;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use server::cli::RespClient;
use server::config::{Config, FileConfig, Overrides};
use server::resp::codec::Value;
use server::server::{start, Listeners, Running};
use server::status::Status;

pub struct Cluster {
    pub rt: tokio::runtime::Runtime,
    pub nodes: Vec<Option<Running>>,
    pub configs: Vec<Config>,
    pub dir: tempfile::TempDir,
}

fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind loopback")
}

/// Fast timings so elections settle in well under a second.
pub fn test_config(id: u64, peers: &str, dir: &std::path::Path) -> Config {
    let flags = Overrides {
        id: Some(id),
        peers: Some(peers.to_string()),
        data_dir: Some(dir.join(format!("node{id}"))),
        election_timeout_ms: Some(300),
        heartbeat_ms: Some(30),
        client_addr: Some("127.0.0.1:0".into()),
        admin_addr: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    };
    let mut cfg = Config::resolve(FileConfig::default(), &flags).expect("valid test config");
    cfg.limits.request_timeout = Duration::from_secs(5);
    cfg
}

impl Cluster {
    pub fn start(n: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut c = Cluster {
            rt,
            nodes: Vec::new(),
            configs: Vec::new(),
            dir,
        };
        c.boot(n, tweak);
        c
    }

    /// Starts `n` nodes on fresh ports, on the data in `self.dir`.
    pub fn boot(&mut self, n: u64, tweak: impl Fn(&mut Config)) {
        let peers: Vec<TcpListener> = (0..n).map(|_| listener()).collect();
        let list: Vec<String> = peers
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{}={}", i + 1, l.local_addr().unwrap()))
            .collect();
        let list = list.join(",");
        self.nodes.clear();
        self.configs.clear();
        for (i, peer) in peers.into_iter().enumerate() {
            let mut cfg = test_config(i as u64 + 1, &list, self.dir.path());
            tweak(&mut cfg);
            let ls = Listeners {
                peer,
                client: listener(),
                admin: listener(),
            };
            let running = self
                .rt
                .block_on(start(cfg.clone(), ls))
                .expect("node starts");
            self.configs.push(cfg);
            self.nodes.push(Some(running));
        }
    }

    pub fn node(&self, id: u64) -> &Running {
        self.nodes[(id - 1) as usize]
            .as_ref()
            .expect("node is running")
    }

    pub fn client_addr(&self, id: u64) -> SocketAddr {
        self.node(id).client_addr
    }

    pub fn client(&self, id: u64) -> RespClient {
        RespClient::connect(&self.client_addr(id).to_string(), Duration::from_secs(2))
            .expect("connect to RESP port")
    }

    pub fn status(&self, id: u64) -> Status {
        let h = self.node(id).node.clone();
        self.rt.block_on(h.status()).expect("status")
    }

    pub fn running_ids(&self) -> Vec<u64> {
        (1..=self.nodes.len() as u64)
            .filter(|&i| self.nodes[(i - 1) as usize].is_some())
            .collect()
    }

    /// Waits until every running node follows the same leader; returns it.
    pub fn wait_leader(&self, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let ids = self.running_ids();
            let leaders: Vec<Option<u64>> = ids.iter().map(|&i| self.status(i).leader).collect();
            if let Some(Some(l)) = leaders.first() {
                if ids.contains(l)
                    && leaders.iter().all(|x| *x == Some(*l))
                    && self.status(*l).role == "leader"
                {
                    return *l;
                }
            }
            assert!(Instant::now() < deadline, "no stable leader: {leaders:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self, id: u64) {
        if let Some(r) = self.nodes[(id - 1) as usize].take() {
            self.rt.block_on(r.shutdown());
        }
    }

    /// Stops `id` as SIGTERM does: a leader hands leadership over first.
    pub fn stop_gracefully(&mut self, id: u64) {
        if let Some(r) = self.nodes[(id - 1) as usize].take() {
            self.rt
                .block_on(r.shutdown_gracefully(Duration::from_secs(2)));
        }
    }

    /// Starts a stopped node again on its data, at its old peer address (so the others
    /// find it), with `cfg` as it was at boot.
    pub fn restart(&mut self, id: u64) {
        let cfg = self.configs[(id - 1) as usize].clone();
        // The stopped node's listener closes asynchronously: retry for a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        let peer = loop {
            match TcpListener::bind(&cfg.peer_addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("rebind the peer address {}: {e}", cfg.peer_addr),
            }
        };
        let ls = Listeners {
            peer,
            client: listener(),
            admin: listener(),
        };
        let running = self.rt.block_on(start(cfg, ls)).expect("node restarts");
        self.nodes[(id - 1) as usize] = Some(running);
    }

    /// Polls `id`'s status until `done` holds (panics after `timeout`).
    pub fn wait_status(
        &self,
        id: u64,
        timeout: Duration,
        done: impl Fn(&Status) -> bool,
    ) -> Status {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status(id);
            if done(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "node {id}: condition not met: {s:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop_all(&mut self) {
        for id in self.running_ids() {
            self.stop(id);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

pub fn bulk(s: &str) -> Value {
    Value::Bulk(Some(bytes::Bytes::copy_from_slice(s.as_bytes())))
}

pub fn ok() -> Value {
    Value::Simple("OK".into())
}

/// [`http_get`], `None` if the connection fails or closes without an answer.
pub fn try_http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

/// A plain HTTP/1.1 GET; returns (status code, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect admin");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read response");
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

pub fn data_dir(c: &Cluster) -> PathBuf {
    c.dir.path().to_path_buf()
}
