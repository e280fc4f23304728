//! `redis-benchmark`'s default test list (Debian's redis-tools) against a three-node
//! cluster, through a follower, plain and pipelined, with a small `-n`: every test of the
//! list whose commands raftkv has must run with no error; the others (lists, sets,
//! sorted sets: not implemented) must fail on exactly the command raftkv lacks, so this
//! test says so when one of them starts working.
//!
//! The default list is read off the installed redis-benchmark itself (run against a real
//! redis-server, when installed), so a newer redis-tools with a longer list makes this
//! test fail until the new tests are sorted here. Skipped with a note without
//! redis-benchmark, except under CI (`CI` set), where scripts/test.sh installs it.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Cluster;

/// The default tests raftkv runs, by the name redis-benchmark prints.
const SUPPORTED: &[&str] = &[
    "PING_INLINE",
    "PING_MBULK",
    "SET",
    "GET",
    "INCR",
    "HSET",
    "MSET (10 keys)",
];

/// The default tests raftkv does not run: (`-t` name, the command it is refused, the
/// names the default list prints for it).
const UNSUPPORTED: &[(&str, &str, &[&str])] = &[
    (
        "lpush",
        "LPUSH",
        &["LPUSH", "LPUSH (needed to benchmark LRANGE)"],
    ),
    ("rpush", "RPUSH", &["RPUSH"]),
    ("lpop", "LPOP", &["LPOP"]),
    ("rpop", "RPOP", &["RPOP"]),
    ("sadd", "SADD", &["SADD"]),
    ("spop", "SPOP", &["SPOP"]),
    ("zadd", "ZADD", &["ZADD"]),
    ("zpopmin", "ZPOPMIN", &["ZPOPMIN"]),
    (
        "lrange",
        "LPUSH",
        &[
            "LRANGE_100 (first 100 elements)",
            "LRANGE_300 (first 300 elements)",
            "LRANGE_500 (first 500 elements)",
            "LRANGE_600 (first 600 elements)",
        ],
    ),
];

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// redis-benchmark with `args` against `port`: (exit ok, stdout, stderr).
fn bench(port: u16, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("timeout")
        .arg("120")
        .arg("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-benchmark");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// The test names of a `--csv` run, in order.
fn csv_tests(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split("\",\"").next())
        .map(|n| n.trim_start_matches('"').to_string())
        .collect()
}

/// The default list, as the installed redis-benchmark runs it against a real Redis.
fn default_list() -> Option<Vec<String>> {
    if !have("redis-server") {
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("redis.sock");
    let mut redis = Command::new("redis-server")
        .args(["--port", "0", "--unixsocket"])
        .arg(&sock)
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start redis-server");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = Command::new("redis-benchmark")
        .arg("-s")
        .arg(&sock)
        .args(["-n", "10", "-c", "1", "--csv"])
        .output()
        .expect("redis-benchmark against redis-server");
    let _ = redis.kill();
    let _ = redis.wait();
    assert!(out.status.success(), "against redis-server: {out:?}");
    Some(csv_tests(&String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn redis_benchmark_default_tests_run_without_errors_where_raftkv_has_the_commands() {
    if !have("redis-benchmark") {
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-benchmark is not installed, and CI must run this test (scripts/test.sh \
             installs redis-tools)"
        );
        eprintln!("SKIPPED: redis-benchmark not found (apt-get install redis-tools)");
        return;
    }
    // Every test of the default list is sorted into one of the two lists.
    if let Some(list) = default_list() {
        let known: Vec<&str> = SUPPORTED
            .iter()
            .copied()
            .chain(
                UNSUPPORTED
                    .iter()
                    .flat_map(|(_, _, names)| names.iter().copied()),
            )
            .collect();
        let unsorted: Vec<&String> = list
            .iter()
            .filter(|t| !known.contains(&t.as_str()))
            .collect();
        assert!(
            unsorted.is_empty(),
            "redis-benchmark's default list has tests this file does not sort: {unsorted:?}"
        );
    }

    let c = Cluster::start(3, |_| {});
    let leader = c.wait_leader(Duration::from_secs(10));
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    let port = c.client_addr(follower).port();
    let supported = "ping_inline,ping_mbulk,set,get,incr,hset,mset";
    for pipeline in ["1", "16"] {
        let args = [
            "-n", "2000", "-c", "8", "-P", pipeline, "--csv", "-t", supported,
        ];
        let (ok, out, err) = bench(port, &args);
        assert!(ok, "-P {pipeline}: redis-benchmark failed:\n{out}\n{err}");
        assert!(
            !err.contains("Error") && !out.contains("Error"),
            "{out}\n{err}"
        );
        assert_eq!(csv_tests(&out), SUPPORTED, "-P {pipeline}:\n{out}");
        eprintln!("redis-benchmark -P {pipeline} through a follower:\n{out}");
    }
    for (test, command, _) in UNSUPPORTED {
        let (ok, out, err) = bench(port, &["-n", "100", "-c", "2", "-q", "-t", test]);
        let refused = format!("ERR unknown command '{command}'");
        assert!(
            !ok && err.contains(&refused),
            "{test}: expected to fail on {command} (not implemented); if it works now, move \
             it to SUPPORTED:\n{out}\n{err}"
        );
    }
}
