//! `raftkv get|set|del|status --cluster host:port,...`: a small blocking RESP client.
//!
//! Any node serves any request (followers forward to the leader), so the CLI tries the
//! listed nodes in order and uses the first that answers. If none does, it says so and
//! lists what it tried.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::BytesMut;

use crate::resp::codec::{encode_command, parse_reply, Value};

pub const DEFAULT_CLUSTER: &str = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003";

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("no node answered (tried {tried}): is the cluster running? (`raftkv up` starts one)")]
    NoNode { tried: String },
    #[error("{addr}: {msg}")]
    Protocol { addr: String, msg: String },
}

/// A connection to one node.
pub struct RespClient {
    stream: TcpStream,
    buf: BytesMut,
    pub addr: String,
}

impl RespClient {
    pub fn connect(addr: &str, timeout: Duration) -> std::io::Result<RespClient> {
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
        for sa in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&sa, timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
                    return Ok(RespClient {
                        stream,
                        buf: BytesMut::new(),
                        addr: addr.to_string(),
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        encode_command(args, &mut out);
        self.stream.write_all(&out)
    }

    pub fn send_raw(&mut self, raw: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(raw)
    }

    /// Reads one reply.
    pub fn read(&mut self) -> std::io::Result<Value> {
        let mut chunk = [0u8; 16 << 10];
        loop {
            match parse_reply(&mut self.buf) {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> std::io::Result<Value> {
        self.send(args)?;
        self.read()
    }
}

pub fn split_cluster(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Runs `args` on the first node that answers.
pub fn call_any(cluster: &[String], args: &[&[u8]]) -> Result<(String, Value), CliError> {
    for addr in cluster {
        let Ok(mut c) = RespClient::connect(addr, Duration::from_secs(1)) else {
            continue;
        };
        match c.call(args) {
            Ok(v) => return Ok((addr.clone(), v)),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(CliError::Protocol {
                    addr: addr.clone(),
                    msg: e.to_string(),
                })
            }
            Err(_) => continue,
        }
    }
    Err(CliError::NoNode {
        tried: cluster.join(", "),
    })
}

/// Shows a reply the way redis-cli does.
pub fn show(v: &Value) -> String {
    match v {
        Value::Simple(s) => s.clone(),
        Value::Error(e) => format!("(error) {e}"),
        Value::Int(n) => format!("(integer) {n}"),
        Value::Bulk(None) | Value::Array(None) => "(nil)".into(),
        Value::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
        Value::Verbatim(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Double(d) => format!("(double) {d}"),
        Value::Boolean(b) => format!("({b})"),
        Value::Map(pairs) => pairs
            .iter()
            .enumerate()
            .map(|(i, (k, v))| format!("{}# {} => {}", i + 1, show(k), show(v)))
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Array(Some(items)) | Value::Set(items) | Value::Push(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{}) {}", i + 1, show(v)))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// `raftkv status`: INFO from every listed node, one line each.
pub fn status(cluster: &[String]) -> Result<String, CliError> {
    let mut lines = vec![format!(
        "{:<22} {:>4} {:<13} {:>6} {:>7} {:>8} {:>8}",
        "node", "id", "role", "term", "leader", "commit", "applied"
    )];
    let mut answered = 0;
    for addr in cluster {
        let info =
            RespClient::connect(addr, Duration::from_secs(1)).and_then(|mut c| c.call(&["INFO"]));
        match info {
            Ok(Value::Bulk(Some(text))) => {
                answered += 1;
                let text = String::from_utf8_lossy(&text).into_owned();
                let field = |k: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(':')))
                        .unwrap_or("?")
                        .trim()
                        .to_string()
                };
                lines.push(format!(
                    "{:<22} {:>4} {:<13} {:>6} {:>7} {:>8} {:>8}",
                    addr,
                    field("node_id"),
                    field("role"),
                    field("term"),
                    field("leader"),
                    field("commit_index"),
                    field("applied_index")
                ));
            }
            Ok(other) => lines.push(format!("{addr:<22} unexpected reply: {}", show(&other))),
            Err(e) => lines.push(format!("{addr:<22} unreachable ({e})")),
        }
    }
    if answered == 0 {
        return Err(CliError::NoNode {
            tried: cluster.join(", "),
        });
    }
    Ok(lines.join("\n"))
}
