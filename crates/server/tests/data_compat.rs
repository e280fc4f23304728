//! The typed model's commands (expiry, transactions, strings, keys, hashes) against real
//! Redis 7: the same script runs on Debian's `redis-server` (started here) and on a
//! one-node raftkv, and every reply must match byte for byte, errors included. Replies
//! that depend on time (TTL) are compared where they are exact. Skipped, saying so,
//! when `redis-server` is not installed.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::Cluster;
use server::resp::codec::{encode_command, parse_reply};

struct Raw {
    stream: TcpStream,
    buf: BytesMut,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Raw {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// The exact bytes of the reply to `args`.
    fn raw(&mut self, args: &[&str]) -> String {
        let mut out = BytesMut::new();
        encode_command(args, &mut out);
        self.stream.write_all(&out).expect("send");
        let mut chunk = [0u8; 16 << 10];
        loop {
            let mut probe = self.buf.clone();
            if parse_reply(&mut probe)
                .expect("well-formed reply")
                .is_some()
            {
                let used = self.buf.len() - probe.len();
                let raw = self.buf.split_to(used);
                return String::from_utf8_lossy(&raw).into_owned();
            }
            let n = self.stream.read(&mut chunk).expect("read");
            assert!(n > 0, "connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A real redis-server on a free port, killed on drop.
struct Redis {
    child: Child,
    addr: SocketAddr,
}

impl Redis {
    fn start() -> Option<Redis> {
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().ok()?;
        let start = Instant::now();
        while TcpStream::connect(addr).is_err() {
            if start.elapsed() > Duration::from_secs(10) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Redis { child, addr })
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `script` on both and asserts the same bytes for every reply.
fn same_replies(script: &[&[&str]]) {
    let Some(redis) = Redis::start() else {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    };
    let c = Cluster::start(1, |_| {});
    c.wait_leader(Duration::from_secs(10));
    let mut ours = Raw::connect(c.client_addr(1));
    let mut theirs = Raw::connect(redis.addr);
    let mut differences = Vec::new();
    for cmd in script {
        let (a, b) = (theirs.raw(cmd), ours.raw(cmd));
        if a != b {
            differences.push(format!("{cmd:?}\n  redis:  {a:?}\n  raftkv: {b:?}"));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} replies differ:\n{}",
        differences.len(),
        script.len(),
        differences.join("\n")
    );
}

#[test]
fn strings_and_keys_match_redis() {
    same_replies(&[
        &["SET", "k", "v"],
        &["GET", "k"],
        &["SET", "k", "w", "NX"],
        &["SET", "k", "w", "XX", "GET"],
        &["SET", "new", "1", "XX"],
        &["SET", "k", "v", "NX", "XX"],
        &["SET", "k", "v", "EX", "0"],
        &["SET", "k", "v", "EX", "abc"],
        &["SET", "k", "v", "EX", "10", "PX", "5"],
        &["SET", "k", "v", "KEEPTTL", "EX", "5"],
        &["SET", "k"],
        &["SETNX", "k", "x"],
        &["SETNX", "fresh", "x"],
        &["GETSET", "k", "z"],
        &["GETDEL", "k"],
        &["GETDEL", "k"],
        &["APPEND", "s", "Hello"],
        &["APPEND", "s", " World"],
        &["STRLEN", "s"],
        &["STRLEN", "none"],
        &["GETRANGE", "s", "0", "4"],
        &["GETRANGE", "s", "-5", "-1"],
        &["GETRANGE", "s", "5", "2"],
        &["GETRANGE", "s", "x", "2"],
        &["SETRANGE", "s", "6", "Redis"],
        &["GET", "s"],
        &["SETRANGE", "s", "-1", "x"],
        &["SETRANGE", "pad", "2", "x"],
        &["GET", "pad"],
        &["INCR", "n"],
        &["INCRBY", "n", "41"],
        &["DECR", "n"],
        &["DECRBY", "n", "-8"],
        &["INCRBY", "n", "x"],
        &["INCR", "s"],
        &["SET", "max", "9223372036854775807"],
        &["INCR", "max"],
        &["DECRBY", "n", "-9223372036854775808"],
        &["SET", "f", "10.5"],
        &["INCRBYFLOAT", "f", "0.25"],
        &["INCRBYFLOAT", "f", "x"],
        &["INCRBYFLOAT", "s", "1"],
        &["MSET", "a", "1", "b", "2"],
        &["MSET", "a", "1", "b"],
        &["MGET", "a", "b", "nope"],
        &["MSETNX", "a", "9", "c", "3"],
        &["MSETNX", "c", "3", "d", "4"],
        &["EXISTS", "a", "a", "nope"],
        &["DEL", "a", "a", "nope"],
        &["UNLINK", "b", "c"],
        &["TYPE", "d"],
        &["TYPE", "nope"],
        &["RENAME", "d", "e"],
        &["RENAME", "nope", "x"],
        &["RENAMENX", "e", "s"],
        &["RENAMENX", "e", "g"],
        &["COPY", "g", "h"],
        &["COPY", "g", "h"],
        &["COPY", "g", "h", "REPLACE"],
        &["COPY", "g", "h", "BOGUS"],
        &["DBSIZE"],
        &["FLUSHALL"],
        &["DBSIZE"],
        &["GET", "g"],
    ]);
}

#[test]
fn expiry_matches_redis() {
    same_replies(&[
        &["SET", "k", "v", "EX", "100"],
        &["TTL", "k"],
        &["EXPIRETIME", "nope"],
        &["TTL", "nope"],
        &["PTTL", "nope"],
        &["SET", "p", "v"],
        &["TTL", "p"],
        &["EXPIRE", "p", "100", "XX"],
        &["EXPIRE", "p", "100", "GT"],
        &["EXPIRE", "p", "100", "NX"],
        &["EXPIRE", "p", "50", "NX"],
        &["EXPIRE", "p", "50", "GT"],
        &["EXPIRE", "p", "200", "GT"],
        &["EXPIRE", "p", "300", "LT"],
        &["TTL", "p"],
        &["EXPIRE", "p", "1", "NX", "XX"],
        &["EXPIRE", "p", "1", "GT", "LT"],
        &["EXPIRE", "p", "1", "FOO"],
        &["EXPIRE", "p", "x"],
        &["EXPIRE", "p", "9223372036854775807"],
        &["EXPIRE", "nope", "10"],
        &["PERSIST", "p"],
        &["PERSIST", "p"],
        &["TTL", "p"],
        &["EXPIREAT", "p", "4102444800"],
        &["EXPIRETIME", "p"],
        &["PEXPIRETIME", "p"],
        &["PEXPIREAT", "p", "4102444800123"],
        &["PEXPIRETIME", "p"],
        &["EXPIRE", "p", "-1"],
        &["GET", "p"],
        &["EXISTS", "p"],
        &["SETEX", "s", "100", "v"],
        &["TTL", "s"],
        &["SETEX", "s", "0", "v"],
        &["PSETEX", "s", "-5", "v"],
        &["SET", "s", "w", "KEEPTTL"],
        &["TTL", "s"],
        &["SET", "s", "w"],
        &["TTL", "s"],
        &["GETEX", "s", "EX", "100"],
        &["TTL", "s"],
        &["GETEX", "s", "PERSIST"],
        &["TTL", "s"],
        &["GETEX", "s", "PX", "0"],
        &["GETEX", "s", "EX"],
        &["GETEX", "nope"],
        &["SET", "gone", "v", "PXAT", "1"],
        &["GET", "gone"],
        &["SET", "x", "1", "EXAT", "4102444800"],
        &["EXPIRETIME", "x"],
    ]);
}

#[test]
fn hashes_match_redis() {
    same_replies(&[
        &["HSET", "h", "a", "1", "b", "2"],
        &["HSET", "h", "a", "x", "c", "3"],
        &["HSET", "h", "a"],
        &["HGET", "h", "a"],
        &["HGET", "h", "zz"],
        &["HGET", "nope", "a"],
        &["HMGET", "h", "a", "zz", "c"],
        &["HGETALL", "h"],
        &["HGETALL", "nope"],
        &["HLEN", "h"],
        &["HKEYS", "h"],
        &["HVALS", "h"],
        &["HEXISTS", "h", "b"],
        &["HEXISTS", "h", "q"],
        &["HSTRLEN", "h", "a"],
        &["HSETNX", "h", "a", "n"],
        &["HSETNX", "h", "d", "n"],
        &["HINCRBY", "h", "c", "5"],
        &["HINCRBY", "h", "a", "1"],
        &["HINCRBY", "h", "c", "x"],
        &["HDEL", "h", "a", "a", "zz"],
        &["HDEL", "h"],
        &["HSCAN", "h", "0"],
        &["HSCAN", "h", "0", "MATCH", "c*"],
        &["HSCAN", "h", "x"],
        &["HMSET", "h2", "f", "v"],
        &["TYPE", "h"],
        &["SET", "str", "v"],
        &["HSET", "str", "f", "v"],
        &["HGET", "str", "f"],
        &["GET", "h"],
        &["INCR", "h"],
        &["APPEND", "h", "x"],
        &["SET", "h", "v", "GET"],
        &["MGET", "h", "str"],
        &["HDEL", "h2", "f"],
        &["EXISTS", "h2"],
    ]);
}

#[test]
fn transactions_match_redis() {
    same_replies(&[
        &["EXEC"],
        &["DISCARD"],
        &["MULTI"],
        &["MULTI"],
        &["SET", "a", "1"],
        &["INCR", "a"],
        &["HSET", "a", "f", "v"],
        &["SET", "a", "1", "BOGUS"],
        &["GET", "a"],
        &["PING"],
        &["EXEC"],
        &["MULTI"],
        &["SET", "a"],
        &["GET", "a"],
        &["EXEC"],
        &["GET", "a"],
        &["MULTI"],
        &["SET", "a", "3"],
        &["DISCARD"],
        &["GET", "a"],
        &["WATCH", "a"],
        &["MULTI"],
        &["INCR", "a"],
        &["EXEC"],
        &["WATCH", "a", "nope"],
        &["SET", "a", "changed"],
        &["MULTI"],
        &["GET", "a"],
        &["EXEC"],
        &["WATCH", "a"],
        &["UNWATCH"],
        &["SET", "a", "again"],
        &["MULTI"],
        &["GET", "a"],
        &["EXEC"],
        &["MULTI"],
        &["EXEC"],
        &["MULTI"],
        &["WATCH", "a"],
        &["EXEC"],
    ]);
}
