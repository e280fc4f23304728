//! `raftkv get|set|del|status --cluster host:port,...`: a small blocking RESP client.
//!
//! Any node serves any request (followers forward to the leader), so the CLI tries the
//! listed nodes in order and uses the first that answers. If none does, it says so and
//! lists what it tried. With `--cacert ca.pem` it speaks TLS, trusting that CA. With
//! `RAFTKV_PASSWORD` (and `RAFTKV_USER`) in the environment it authenticates first.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::BytesMut;

use crate::admin_client::AdminClient;
use crate::resp::codec::{encode_command, parse_reply, Value};
use axum::http::Method;

pub const DEFAULT_CLUSTER: &str = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003";
/// The admin (HTTP) addresses of `raftkv up`'s nodes (up to five: an address where
/// nothing listens is skipped at once).
pub const DEFAULT_ADMIN: &str =
    "127.0.0.1:7201,127.0.0.1:7202,127.0.0.1:7203,127.0.0.1:7204,127.0.0.1:7205";

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("no node answered (tried {tried}): is the cluster running? (`raftkv up` starts one)")]
    NoNode { tried: String },
    #[error("{addr}: {msg}")]
    Protocol { addr: String, msg: String },
}

pub use crate::tls::client::{host_of, ClientTls};

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A connection to one node.
pub struct RespClient {
    stream: Box<dyn Stream>,
    buf: BytesMut,
    pub addr: String,
}

impl RespClient {
    pub fn connect(addr: &str, timeout: Duration) -> std::io::Result<RespClient> {
        RespClient::connect_with(addr, timeout, None)
    }

    /// Over TLS when `tls` is given: the node's certificate must chain to its CA and
    /// name the host of `addr` (an IP address or a DNS name).
    pub fn connect_with(
        addr: &str,
        timeout: Duration,
        tls: Option<&ClientTls>,
    ) -> std::io::Result<RespClient> {
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
        for sa in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&sa, timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
                    let stream: Box<dyn Stream> = match tls {
                        None => Box::new(stream),
                        Some(tls) => Box::new(tls_stream(addr, stream, tls)?),
                    };
                    let mut c = RespClient {
                        stream,
                        buf: BytesMut::new(),
                        addr: addr.to_string(),
                    };
                    c.authenticate_from_env()?;
                    return Ok(c);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// With `RAFTKV_PASSWORD` set, sends `AUTH [RAFTKV_USER] RAFTKV_PASSWORD` (as
    /// redis-cli reads `REDISCLI_AUTH`: a password on the command line shows in `ps`);
    /// without it, `RAFTKV_REQUIREPASS`, the servers' own (so `raftkv up` and the CLI
    /// work in the environment that started the nodes).
    fn authenticate_from_env(&mut self) -> std::io::Result<()> {
        let Some(password) = ["RAFTKV_PASSWORD", "RAFTKV_REQUIREPASS"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|p| !p.is_empty()))
        else {
            return Ok(());
        };
        let reply = match std::env::var("RAFTKV_USER") {
            Ok(user) => self.call(&["AUTH", &user, &password])?,
            Err(_) => self.call(&["AUTH", &password])?,
        };
        match reply {
            Value::Error(e) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("AUTH failed: {e}"),
            )),
            _ => Ok(()),
        }
    }

    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        encode_command(args, &mut out);
        self.stream.write_all(&out)?;
        self.stream.flush()
    }

    pub fn send_raw(&mut self, raw: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(raw)?;
        self.stream.flush()
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

/// A TLS session over `stream`, handshake done (so a refused certificate is an error
/// here, not at the first read).
fn tls_stream(
    addr: &str,
    stream: TcpStream,
    tls: &ClientTls,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let host = host_of(addr);
    let name = rustls_pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| invalid(format!("{host}: {e}")))?;
    let conn =
        rustls::ClientConnection::new(tls.config(), name).map_err(|e| invalid(e.to_string()))?;
    let mut s = rustls::StreamOwned::new(conn, stream);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// Runs `args` on the first node that answers.
pub fn call_any(
    cluster: &[String],
    args: &[&[u8]],
    tls: Option<&ClientTls>,
) -> Result<(String, Value), CliError> {
    for addr in cluster {
        let Ok(mut c) = RespClient::connect_with(addr, Duration::from_secs(1), tls) else {
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
pub fn status(cluster: &[String], tls: Option<&ClientTls>) -> Result<String, CliError> {
    let mut lines = vec![format!(
        "{:<22} {:>4} {:<13} {:>6} {:>7} {:>8} {:>8}",
        "node", "id", "role", "term", "leader", "commit", "applied"
    )];
    let mut answered = 0;
    for addr in cluster {
        let info = RespClient::connect_with(addr, Duration::from_secs(1), tls)
            .and_then(|mut c| c.call(&["INFO"]));
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

/// `raftkv transfer-leader [ID]`: asks each admin address in turn to hand leadership over
/// (`POST /transfer-leader`); the leader does, the others answer that they do not lead.
/// Returns the node that leads afterwards. Plain HTTP, with the admin credential from
/// `RAFTKV_ADMIN_TOKEN` if set (see [`transfer_leader_with`]).
pub fn transfer_leader(admin: &[String], to: Option<u64>) -> Result<String, CliError> {
    transfer_leader_with(admin, to, &AdminClient::from_env(None))
}

/// [`transfer_leader`] through `client` (its TLS and credential).
pub fn transfer_leader_with(
    admin: &[String],
    to: Option<u64>,
    client: &AdminClient,
) -> Result<String, CliError> {
    let path = match to {
        Some(id) => format!("/transfer-leader?to={id}"),
        None => "/transfer-leader".to_string(),
    };
    let mut refusals = Vec::new();
    for addr in admin {
        match client.request(addr, Method::POST, &path, None) {
            Ok((200, body)) => return Ok(body.trim().to_string()),
            // The credential is the same for every node: asking the others is no use.
            Ok((code @ (401 | 403), body)) => {
                return Err(CliError::Protocol {
                    addr: addr.clone(),
                    msg: format!("refused ({code}): {}", body.trim()),
                })
            }
            Ok((_, body)) => refusals.push(format!("{addr}: {}", body.trim())),
            Err(e) => refusals.push(format!("{addr}: {e}")),
        }
    }
    let not_leading = refusals
        .iter()
        .all(|r| r.contains("does not lead") || r.contains("Connection refused"));
    Err(CliError::Protocol {
        addr: admin.join(","),
        msg: if not_leading && !refusals.is_empty() {
            format!("no listed node leads now; {}", refusals.join("; "))
        } else {
            refusals.join("; ")
        },
    })
}
