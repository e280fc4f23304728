//! The `raftkv` binary as a user runs it: `raftkv up` (three processes), unmodified
//! `redis-cli` and `redis-benchmark` (Debian's redis-tools; skipped with a note when not
//! installed), and the `raftkv get|set|del|status` CLI.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const RAFTKV: &str = env!("CARGO_BIN_EXE_raftkv");

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A base port whose nine `raftkv up` ports are free.
///
/// Bases lie below the kernel's ephemeral range (32768 and up on Linux): there, the client
/// sockets of the test that ran before — the flood test's 11,000 connections linger while
/// they close — could hold some port of every base. (Before, the scan started anywhere
/// from 20,000 to 49,900 by the process id and never wrapped: a start in the ephemeral
/// range right after the flood test found no free base.) The scan wraps, so every base is
/// tried whatever the start. A base is handed out once per process: two tests running
/// `raftkv up` at once scanned from the same start, both found the same base free before
/// either bound it, and the second `up` exited on ports in use.
fn free_base() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static HANDED_OUT: AtomicU16 = AtomicU16::new(0);
    const FIRST: u16 = 10_000;
    const BASES: u16 = 70; // 10,000 to 30,700, 300 apart; the highest port is 30,902
    let start = (std::process::id() % u32::from(BASES)) as u16;
    for _ in 0..BASES {
        let k = HANDED_OUT.fetch_add(1, Ordering::Relaxed);
        let base = FIRST + ((start + k) % BASES) * 300;
        let free = (0..5u16).all(|i| {
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

/// Held by each test that runs `raftkv up`: `free_base` checks that ports are free but
/// does not hold them, so two tests starting clusters at once could pick the same base
/// (one cluster's `up` then waited on the other's nodes).
static ONE_UP_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_up_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_UP_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

struct Up {
    child: Child,
    base: u16,
    nodes: u16,
}

impl Up {
    /// Starts `raftkv up` and waits for its banner (it prints it once a leader is known).
    fn start(data: &Path, base: u16) -> Up {
        Up::start_with_env(data, base, &[])
    }

    /// `raftkv up` with `env` set (its nodes inherit it).
    fn start_with_env(data: &Path, base: u16, env: &[(&str, &str)]) -> Up {
        Up::start_n(data, base, env, 3)
    }

    /// `raftkv up --nodes n`.
    fn start_n(data: &Path, base: u16, env: &[(&str, &str)], nodes: u16) -> Up {
        let mut child = Command::new(RAFTKV)
            .envs(env.iter().copied())
            .env_remove_unless_set(ADMIN_TOKEN_ENV, env)
            .arg("up")
            .arg("--data")
            .arg(data)
            .args(["--base-port", &base.to_string()])
            .args(["--nodes", &nodes.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn raftkv up");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut banner = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let done = line.contains("Ctrl-C stops the cluster");
                    banner.push(line);
                    if done {
                        break;
                    }
                }
                Err(_) => panic!("raftkv up printed no banner: {banner:?}"),
            }
        }
        let banner = banner.join("\n");
        assert!(banner.contains(&format!("redis-cli -p {base}")), "{banner}");
        assert!(banner.contains("leader: node"), "{banner}");
        Up { child, base, nodes }
    }

    /// SIGTERM, as Ctrl-C would; `raftkv up` stops its children and exits 0.
    fn stop(mut self) {
        // SAFETY: kill(2) of the child we spawned, by its PID.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "raftkv up exited with {status}");
                break;
            }
            assert!(Instant::now() < deadline, "raftkv up did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The nodes are gone: their ports are free again.
        for i in 0..self.nodes {
            let port = self.base + i;
            assert!(
                TcpListener::bind(("127.0.0.1", port)).is_ok(),
                "port {port} still in use"
            );
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .env_remove(ADMIN_TOKEN_ENV)
        .args(args)
        .output()
        .expect("run command")
}

const ADMIN_TOKEN_ENV: &str = "RAFTKV_ADMIN_TOKEN";

/// Keeps the test's own environment from deciding whether a child has a token.
trait EnvRemoveUnlessSet {
    fn env_remove_unless_set(&mut self, name: &str, set: &[(&str, &str)]) -> &mut Self;
}

impl EnvRemoveUnlessSet for Command {
    fn env_remove_unless_set(&mut self, name: &str, set: &[(&str, &str)]) -> &mut Self {
        if !set.iter().any(|(k, _)| *k == name) {
            self.env_remove(name);
        }
        self
    }
}

/// `RAFTKV_ADMIN_TOKEN` set for `raftkv up` reaches its nodes, and `raftkv
/// transfer-leader` reads it too: without it the command is refused (401), with it the
/// leader moves. The token appears in no node's log.
#[test]
fn the_admin_token_from_the_environment_guards_transfer_leader() {
    let data = tempfile::tempdir().expect("tempdir");
    let base = free_base();
    let token = "env-admin-token-0123456789abcdef";
    let up = Up::start_with_env(data.path(), base, &[(ADMIN_TOKEN_ENV, token)]);
    let admin = (0..3)
        .map(|i| format!("127.0.0.1:{}", base + 200 + i))
        .collect::<Vec<_>>()
        .join(",");
    let o = run(RAFTKV, &["transfer-leader", "--admin", &admin]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("refused (401)"), "{err}");
    let o = Command::new(RAFTKV)
        .env(ADMIN_TOKEN_ENV, token)
        .args(["transfer-leader", "--admin", &admin])
        .output()
        .expect("run raftkv");
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("\"leader\""), "{o:?}");
    up.stop();
    for i in 1..=3 {
        let log = std::fs::read_to_string(data.path().join(format!("node{i}.log"))).unwrap();
        assert!(!log.contains(token), "node {i} logged the token");
        // The command stopped at the first node's refusal.
        if i == 1 {
            assert!(log.contains("refusing an admin write request"), "{log}");
        }
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn cli(args: &[&str]) -> String {
    let o = run("redis-cli", args);
    assert!(o.status.success(), "redis-cli {args:?}: {o:?}");
    stdout(&o)
}

#[test]
fn up_with_redis_cli_benchmark_and_our_cli() {
    if !have("redis-cli") {
        eprintln!("NOTE: skipping: redis-cli is not installed (apt-get install redis-tools)");
        return;
    }
    let _one = one_up_at_a_time();
    let data = tempfile::tempdir().expect("tempdir");
    let base = free_base();
    let up = Up::start(data.path(), base);
    let (p1, p2, p3) = (
        base.to_string(),
        (base + 1).to_string(),
        (base + 2).to_string(),
    );

    assert_eq!(cli(&["-p", &p1, "PING"]), "PONG");
    assert_eq!(cli(&["-p", &p1, "SET", "greeting", "hello"]), "OK");
    assert_eq!(cli(&["-p", &p2, "GET", "greeting"]), "hello");
    assert_eq!(cli(&["-p", &p3, "INCR", "visits"]), "1");
    assert_eq!(cli(&["-p", &p2, "INCR", "visits"]), "2");
    assert_eq!(cli(&["-p", &p3, "SET", "greeting", "x", "NX"]), "");
    assert_eq!(cli(&["-p", &p3, "EXISTS", "greeting", "nope"]), "1");
    let info = cli(&["-p", &p2, "INFO"]);
    assert!(
        info.contains("role:") && info.contains("commit_index:"),
        "{info}"
    );
    // redis-cli reading commands from stdin, pipelined in one go.
    let mut child = Command::new("redis-cli")
        .args(["-p", &p1, "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli --pipe");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        for i in 0..200 {
            write!(stdin, "SET piped:{i} {i}\r\n").unwrap();
        }
    }
    let out = child.wait_with_output().expect("redis-cli --pipe");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("errors: 0, replies: 200"), "{text}");
    assert_eq!(cli(&["-p", &p3, "GET", "piped:199"]), "199");

    if have("redis-benchmark") {
        let o = run(
            "redis-benchmark",
            &[
                "-p", &p2, "-t", "set,get", "-n", "2000", "-c", "8", "-P", "4", "-q",
            ],
        );
        let text = format!("{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success(), "{text}");
        assert!(text.contains("SET:") && text.contains("GET:"), "{text}");
        assert!(text.contains("requests per second"), "{text}");
        println!("redis-benchmark via a follower:\n{text}");
    } else {
        eprintln!("NOTE: redis-benchmark is not installed; skipped");
    }

    // Our own CLI against the same cluster.
    let cluster = format!("127.0.0.1:{p1},127.0.0.1:{p2},127.0.0.1:{p3}");
    let o = run(RAFTKV, &["get", "greeting", "--cluster", &cluster]);
    assert_eq!(stdout(&o), "hello");
    let o = run(RAFTKV, &["set", "cli", "value", "--cluster", &cluster]);
    assert_eq!(stdout(&o), "OK");
    let o = run(RAFTKV, &["del", "cli", "nope", "--cluster", &cluster]);
    assert_eq!(stdout(&o), "(integer) 1");
    let o = run(RAFTKV, &["status", "--cluster", &cluster]);
    let table = stdout(&o);
    assert!(o.status.success(), "{table}");
    assert!(
        table.lines().skip(1).any(|l| l.contains(" leader ")),
        "one node is the leader: {table}"
    );
    assert_eq!(table.lines().count(), 4, "{table}");

    up.stop();

    // Next start on the same data finds it again.
    let up = Up::start(data.path(), base);
    assert_eq!(cli(&["-p", &p3, "GET", "greeting"]), "hello");
    assert_eq!(cli(&["-p", &p1, "GET", "visits"]), "2");
    up.stop();
}

/// `RAFTKV_REQUIREPASS` in the environment of `raftkv up` (and so of its nodes): clients
/// without it get NOAUTH; redis-cli with `-a` and our CLI (which reads the same variable)
/// are served.
#[test]
fn up_with_a_password_from_the_environment() {
    let _one = one_up_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let base = free_base();
    let up = Up::start_with_env(dir.path(), base, &[("RAFTKV_REQUIREPASS", "pa55")]);
    let ours = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(RAFTKV)
            .env_remove("RAFTKV_REQUIREPASS")
            .envs(env.iter().copied())
            .args(args)
            .args(["--cluster", &format!("127.0.0.1:{base}")])
            .output()
            .expect("raftkv cli");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    };
    assert_eq!(
        ours(&["set", "k", "v"], &[("RAFTKV_PASSWORD", "pa55")]),
        (true, "OK".into())
    );
    assert_eq!(
        ours(&["get", "k"], &[("RAFTKV_PASSWORD", "pa55")]),
        (true, "v".into())
    );
    let (_, denied) = ours(&["get", "k"], &[]);
    assert!(denied.contains("NOAUTH"), "{denied}");
    if have("redis-cli") {
        let port = base.to_string();
        assert_eq!(
            cli(&["-p", &port, "get", "k"]),
            "NOAUTH Authentication required."
        );
        let authed = ["-p", &port, "-a", "pa55", "--no-auth-warning", "get", "k"];
        assert_eq!(cli(&authed), "v");
    }
    up.stop();
}

/// `raftkv up --nodes 5`: five voters, a write through the last node is read through
/// the first, and every node's process stops with `up`.
#[test]
fn up_with_five_nodes() {
    let _one = one_up_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let base = free_base();
    let up = Up::start_n(dir.path(), base, &[], 5);
    let members = Command::new(RAFTKV)
        .args(["member", "list", "--admin"])
        .arg(format!("127.0.0.1:{}", base + 200))
        .output()
        .expect("raftkv member list");
    let list = stdout(&members);
    assert!(members.status.success(), "{list}");
    assert_eq!(list.matches("voter").count(), 5, "{list}");
    let at = |i: u16| format!("127.0.0.1:{}", base + i);
    let ours = |args: &[&str], node: u16| {
        let out = Command::new(RAFTKV)
            .args(args)
            .args(["--cluster", &at(node)])
            .output()
            .expect("raftkv cli");
        stdout(&out).trim().to_string()
    };
    assert_eq!(ours(&["set", "five", "nodes"], 4), "OK");
    assert_eq!(ours(&["get", "five"], 0), "nodes");
    up.stop();
}

#[test]
fn cli_says_when_no_node_answers() {
    // Port 1 on loopback: nothing listens there.
    let o = run(
        RAFTKV,
        &["get", "k", "--cluster", "127.0.0.1:1,127.0.0.1:2"],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no node answered"), "{err}");
    assert!(err.contains("127.0.0.1:1, 127.0.0.1:2"), "{err}");
    let o = run(RAFTKV, &["status", "--cluster", "127.0.0.1:1"]);
    assert!(!o.status.success());
}

#[test]
fn serve_refuses_bad_config_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.toml");
    std::fs::write(
        &path,
        "id = 1\npeer_addr = \"127.0.0.1:1\"\nread_mode = \"fast\"\n",
    )
    .unwrap();
    let o = run(RAFTKV, &["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("read_mode"), "{err}");
    std::fs::write(&path, "id = 1\npeer_adr = \"127.0.0.1:1\"\n").unwrap();
    let o = run(RAFTKV, &["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("peer_adr"), "{err}");
}
