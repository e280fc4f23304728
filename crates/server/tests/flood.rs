//! A flood of idle connections (issue 14): 1,000 peer connections that never say
//! `Hello` and 10,000 RESP clients that never send a command leave the node serving.
//! Prints the resident memory they add (the figure the README reports).
//!
//! The idle connections are held by a child process (python3), so the server ends alone
//! count against this process's file descriptor limit.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{bulk, ok, Cluster};

const IDLE_PEERS: usize = 1_000;
const IDLE_CLIENTS: usize = 10_000;

/// Opens `n` idle connections to each address in a child process (its own file
/// descriptor limit: this process needs its own for the server ends). The child holds
/// them until its stdin closes.
fn hold_connections(targets: &[(SocketAddr, usize)]) -> Child {
    let spec: Vec<String> = targets.iter().map(|(a, n)| format!("{a}={n}")).collect();
    let script = r#"
import resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for spec in sys.argv[1:]:
    addr, n = spec.rsplit("=", 1)
    host, port = addr.rsplit(":", 1)
    for _ in range(int(n)):
        s = socket.create_connection((host, int(port)))
        held.append(s)
print("ready", len(held), flush=True)
sys.stdin.read()
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&spec)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/test.sh installs it)");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("ready"),
        "the connection holder failed: {line:?}"
    );
    child
}

/// Resident set size of this process, in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

#[test]
fn idle_peer_and_client_floods_leave_the_node_serving() {
    let c = Cluster::start(3, |cfg| {
        cfg.limits.max_peer_connections = IDLE_PEERS + 16;
        cfg.limits.max_clients = IDLE_CLIENTS + 16;
        // Idle, not slow: the flood must outlive the measurement.
        cfg.limits.peer_handshake_timeout = Duration::from_secs(120);
    });
    c.wait_leader(Duration::from_secs(10));
    let mut cl = c.client(1);
    assert_eq!(cl.call(&["SET", "before", "1"]).unwrap(), ok());
    std::thread::sleep(Duration::from_millis(300));
    let base = rss_bytes();

    let started = Instant::now();
    let peer_addr = c.node(1).peer_addr;
    let client_addr = c.client_addr(1);
    let mut holder = hold_connections(&[(peer_addr, IDLE_PEERS), (client_addr, IDLE_CLIENTS)]);
    // Let the node accept them all and start their tasks.
    let m = c.node(1).node.metrics.clone();
    std::thread::sleep(Duration::from_secs(2));
    let opened = started.elapsed();
    let added = rss_bytes().saturating_sub(base);
    println!(
        "flood: {IDLE_PEERS} idle peer + {IDLE_CLIENTS} idle client connections opened in \
         {opened:?}; RSS {:.1} MiB -> +{:.1} MiB ({:.1} KiB per connection)",
        mib(base),
        mib(added),
        added as f64 / 1024.0 / (IDLE_PEERS + IDLE_CLIENTS) as f64
    );
    assert_eq!(m.peer_connections_refused.get(), 0, "the flood hit a limit");

    // Still serving, through node 1 (flooded) and a follower that forwards.
    let t = Instant::now();
    assert_eq!(cl.call(&["SET", "during", "2"]).unwrap(), ok());
    assert_eq!(cl.call(&["GET", "during"]).unwrap(), bulk("2"));
    let mut fresh = c.client(1);
    assert_eq!(fresh.call(&["GET", "before"]).unwrap(), bulk("1"));
    let mut other = c.client(2);
    assert_eq!(other.call(&["SET", "elsewhere", "3"]).unwrap(), ok());
    println!(
        "flood: a SET, two GETs and a forwarded SET during the flood took {:?}",
        t.elapsed()
    );
    drop(holder.stdin.take());
    let _ = holder.wait();
}

/// One bound across all clients (`limits.max_client_memory_bytes`): two connections each
/// sending most of a large command cannot together hold more than the bound. The one
/// that cannot get its bytes is closed with an error after a second, the first one
/// completes its command, and the node serves new clients throughout.
#[test]
fn clients_together_cannot_hold_more_than_the_client_memory_bound() {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    const BOUND: usize = 1 << 20;
    let c = Cluster::start(1, |cfg| {
        cfg.max_value_bytes = 4 << 20;
        cfg.limits.max_request_bytes = 8 << 20;
        cfg.limits.max_client_memory_bytes = BOUND;
    });
    c.wait_leader(Duration::from_secs(10));
    let addr = c.client_addr(1);
    let value_len = 700 << 10; // each partial command holds most of the bound
    let head = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${value_len}\r\n");
    let send_partial = |sent: usize| {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&vec![b'x'; sent]).unwrap();
        s
    };
    let mut first = send_partial(value_len - 10);
    std::thread::sleep(Duration::from_millis(300)); // the first one holds its bytes
    let mut second = send_partial(value_len - 10);
    // The second cannot get its bytes: closed with the error, within a few seconds.
    let started = Instant::now();
    let mut reply = Vec::new();
    let _ = second.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.starts_with("-ERR the server's client memory limit"),
        "second connection got {reply:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // New clients are served, and the first one finishes its command.
    let mut small = c.client(1);
    assert_eq!(small.call(&["SET", "small", "v"]).unwrap(), ok());
    first.write_all(&[b'x'; 10]).unwrap();
    first.write_all(b"\r\n").unwrap();
    let mut buf = [0u8; 5];
    first.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"+OK\r\n");
    let strlen = small.call(&["STRLEN", "k"]).unwrap();
    assert_eq!(strlen, server::resp::codec::Value::Int(value_len as i64));
}
