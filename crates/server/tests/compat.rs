//! The same scripts against a real `redis-server` and against raftkv, replies compared
//! byte for byte (format: `tests/compat/README.md`). Each script runs from an empty
//! database, once in RESP2 and once after `HELLO 3`. A line may name another connection
//! (`@sub`) and how many replies to read (`<2>`, `<0>`): pub/sub needs both.
//!
//! Without `redis-server` on PATH the test says so and passes, except under CI
//! (`CI` set), where scripts/test.sh installs it and its absence is a failure.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::raw::RawConn as Conn;
use common::Cluster;

/// A `redis-server` on a free loopback port, killed on drop.
struct Redis {
    child: Child,
    addr: SocketAddr,
}

impl Redis {
    /// Starts `redis-server`; `None` when it is not installed. Its port is below the
    /// ephemeral range, where the other tests' `bind(0)` never lands; a port once taken
    /// there anyway makes redis-server exit, or whatever holds it (a raftkv peer port)
    /// reset our PING. Both mean "try another port", never a failure.
    fn start() -> Option<Redis> {
        for _attempt in 0..20 {
            let Some(port) = free_port_below_ephemeral() else {
                continue;
            };
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()?;
            let mut r = Redis {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            };
            if r.answers_pong() {
                return Some(r);
            }
        }
        panic!("redis-server did not start on any of 20 ports");
    }

    /// Whether our redis-server is up on its port: it answers PING and is still running.
    fn answers_pong(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return false; // exited: most likely the port was taken
            }
            let pong = Conn::try_connect(self.addr)
                .and_then(|mut c| c.try_bytes(&[b"PING".to_vec()]))
                .is_ok_and(|reply| reply == b"+PONG\r\n");
            if pong && self.child.try_wait().ok().flatten().is_none() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

/// A loopback port in 20000..32000 (below Linux's ephemeral 32768..) that is free now.
fn free_port_below_ephemeral() -> Option<u16> {
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
    let port = 20_000 + (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33) % 12_000;
    let port = u16::try_from(port).ok()?;
    TcpListener::bind(("127.0.0.1", port)).ok().map(|_| port)
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Splits a line as redis-cli does: spaces separate words; double quotes group, with
/// `\n \r \t \" \\ \xHH` escapes.
fn words(line: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return out;
        };
        let mut w = Vec::new();
        if first == '"' {
            chars.next();
            loop {
                match chars.next().expect("unterminated quote") {
                    '"' => break,
                    '\\' => match chars.next().expect("escape") {
                        'n' => w.push(b'\n'),
                        'r' => w.push(b'\r'),
                        't' => w.push(b'\t'),
                        'x' => {
                            let hex: String = chars.by_ref().take(2).collect();
                            w.push(u8::from_str_radix(&hex, 16).expect("\\xHH"));
                        }
                        c => w.extend_from_slice(c.to_string().as_bytes()),
                    },
                    c => w.extend_from_slice(c.to_string().as_bytes()),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                w.extend_from_slice(c.to_string().as_bytes());
                chars.next();
            }
        }
        out.push(w);
    }
}

fn scripts() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/compat")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scripts in {}", dir.display());
    files
}

fn shown(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).escape_debug().to_string()
}

/// A script line: the connection it runs on, the replies to read, the command (none: read
/// only).
struct Line {
    conn: String,
    replies: usize,
    args: Vec<Vec<u8>>,
}

fn parse_line(line: &str) -> Line {
    let mut args = words(line);
    let mut conn = "main".to_string();
    let mut replies = 1;
    if args.first().is_some_and(|w| w.starts_with(b"@")) {
        conn = String::from_utf8_lossy(&args.remove(0)[1..]).into_owned();
    }
    if let Some(w) = args.first() {
        if w.starts_with(b"<") && w.ends_with(b">") {
            let n = String::from_utf8_lossy(&w[1..w.len() - 1]).into_owned();
            replies = n.parse().expect("<N>: a number of replies");
            args.remove(0);
        }
    }
    Line {
        conn,
        replies,
        args,
    }
}

/// One side's connections by name, opened on first use (after `HELLO 3` in the RESP3
/// pass).
struct Side {
    addr: SocketAddr,
    resp3: bool,
    conns: HashMap<String, Conn>,
}

impl Side {
    fn new(addr: SocketAddr, resp3: bool) -> Side {
        Side {
            addr,
            resp3,
            conns: HashMap::new(),
        }
    }

    fn conn(&mut self, name: &str) -> &mut Conn {
        let (addr, resp3) = (self.addr, self.resp3);
        self.conns.entry(name.to_string()).or_insert_with(|| {
            let mut c = Conn::connect(addr);
            if resp3 {
                let hello = [b"HELLO".to_vec(), b"3".to_vec()];
                assert!(c.bytes(&hello).starts_with(b"%7\r\n"));
            }
            c
        })
    }

    /// Sends the line's command (if any) and returns the bytes of the replies it reads;
    /// a read that fails (the server sent fewer) shows as an error text.
    fn run(&mut self, line: &Line) -> Vec<u8> {
        let c = self.conn(&line.conn);
        if !line.args.is_empty() {
            c.send(&line.args);
        }
        let mut got = Vec::new();
        for _ in 0..line.replies {
            match c.try_read() {
                Ok((bytes, _)) => got.extend(bytes),
                Err(e) => {
                    got.extend(format!("<no reply: {e}>").into_bytes());
                    break;
                }
            }
        }
        got
    }
}

#[test]
fn replies_match_redis_byte_for_byte() {
    let Some(redis) = Redis::start() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-server is not installed, and CI must run this test (scripts/test.sh \
             installs it)"
        );
        eprintln!("SKIPPED: redis-server not found on PATH (apt-get install redis-server)");
        return;
    };
    let mut mismatches = Vec::new();
    let mut cases = 0;
    for script in scripts() {
        let text = std::fs::read_to_string(&script).expect("read script");
        let name = script.file_name().unwrap().to_string_lossy().into_owned();
        for resp3 in [false, true] {
            let mut reset = Conn::connect(redis.addr);
            assert_eq!(reset.bytes(&[b"FLUSHALL".to_vec()]), b"+OK\r\n");
            let notify = [&b"CONFIG"[..], b"SET", b"notify-keyspace-events", b""];
            assert_eq!(reset.bytes(&notify), b"+OK\r\n");
            drop(reset);
            let cluster = Cluster::start(1, |_| {});
            cluster.wait_leader(Duration::from_secs(10));
            let mut r = Side::new(redis.addr, resp3);
            let mut k = Side::new(cluster.client_addr(1), resp3);
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                cases += 1;
                let parsed = parse_line(line);
                let (want, got) = (r.run(&parsed), k.run(&parsed));
                if want != got {
                    mismatches.push(format!(
                        "{name}:{} [{}] {line}\n    redis:  {}\n    raftkv: {}",
                        n + 1,
                        if resp3 { "RESP3" } else { "RESP2" },
                        shown(&want),
                        shown(&got)
                    ));
                }
            }
        }
    }
    eprintln!("{cases} cases compared, {} mismatches", mismatches.len());
    assert!(
        mismatches.is_empty(),
        "replies that differ from Redis's:\n{}",
        mismatches.join("\n")
    );
}

/// redis-py (pinned in scripts/test.sh) with its defaults: it opens with HELLO 3 when its
/// default protocol is RESP3, sends CLIENT SETINFO, then plain commands and a pipeline.
#[test]
fn redis_py_connects_with_its_defaults() {
    let has_redis_py = Command::new("python3")
        .args(["-c", "import redis"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_redis_py {
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-py is not installed, and CI must run this test (scripts/test.sh installs it)"
        );
        eprintln!("SKIPPED: python3 with redis-py not found (pip install redis)");
        return;
    }
    let cluster = Cluster::start(1, |_| {});
    cluster.wait_leader(Duration::from_secs(10));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/redis_py.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(cluster.client_addr(1).port().to_string())
        .output()
        .expect("run python3");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    eprintln!("{}", text(&out.stdout));
    assert!(
        out.status.success(),
        "redis-py script failed:\n{}",
        text(&out.stderr)
    );
}
