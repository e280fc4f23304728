//! The HTTP admin endpoint: `GET /status` (JSON), `GET /metrics` (Prometheus text),
//! `GET /health`.
//!
//! A deliberately small HTTP/1.1 server (one request per connection, `Connection:
//! close`): three read-only GET routes do not justify an HTTP stack in the build. The
//! request head is bounded (8 KiB) and must arrive within 5 s.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::handle::NodeHandle;
use crate::metrics::LoopMetrics;
use crate::metrics::{counter, gauge};
use crate::status::Status;
use crate::tls::Tls;

const MAX_HEAD: usize = 8 << 10;
/// The TLS handshake (if any) and the request head must both arrive within this.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Admin connections at once; one more is closed unanswered.
const MAX_CONNECTIONS: usize = 64;

/// Serves admin requests; HTTPS only when `tls` is given.
pub async fn accept_loop(listener: TcpListener, node: NodeHandle, tls: Option<Arc<Tls>>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%addr, "refusing an admin connection: {MAX_CONNECTIONS} are open");
                    continue;
                };
                let node = node.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let _ = serve_maybe_tls(stream, &node, tls.as_deref()).await;
                    drop(slot);
                });
            }
            Err(e) => {
                tracing::warn!("admin accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

struct Response {
    code: u16,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn text(code: u16, body: impl Into<String>) -> Response {
        Response {
            code,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
    fn json(code: u16, v: &impl serde::Serialize) -> Response {
        Response {
            code,
            content_type: "application/json",
            body: serde_json::to_string_pretty(v)
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
                + "\n",
        }
    }
}

async fn serve_maybe_tls(
    stream: TcpStream,
    node: &NodeHandle,
    tls: Option<&Tls>,
) -> std::io::Result<()> {
    let loopback = stream.peer_addr().is_ok_and(|a| a.ip().is_loopback());
    let Some(tls) = tls else {
        return serve(stream, node, loopback).await;
    };
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    match tokio::time::timeout(HEAD_TIMEOUT, tls.public_acceptor().accept(stream)).await {
        Ok(Ok(stream)) => serve(stream, node, loopback).await,
        Ok(Err(e)) => {
            node.metrics.client_tls_refused.inc();
            tracing::warn!(%peer, "refusing an admin client: TLS handshake failed: {e}");
            Ok(())
        }
        Err(_) => {
            node.metrics.client_tls_refused.inc();
            tracing::warn!(%peer, "refusing an admin client: no TLS handshake within {HEAD_TIMEOUT:?}");
            Ok(())
        }
    }
}

/// `loopback`: the client connects from this machine (write routes need it, see
/// `route`).
async fn serve(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    node: &NodeHandle,
    loopback: bool,
) -> std::io::Result<()> {
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(h))) => h,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) => return Err(e),
        Err(_) => return Ok(()),
    };
    let resp = match head {
        Head::TooLarge => Response::text(431, "request head too large\n"),
        Head::Request {
            method,
            path,
            query,
        } => route(&method, &path, &query, node, loopback).await,
    };
    let reason = match resp.code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        409 => "Conflict",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        resp.code,
        resp.content_type,
        resp.body.len()
    );
    out.push_str(&resp.body);
    stream.write_all(out.as_bytes()).await?;
    stream.flush().await?;
    stream.shutdown().await
}

enum Head {
    Request {
        method: String,
        path: String,
        query: String,
    },
    TooLarge,
}

/// Reads up to the blank line ending the head; `None` if the client left first.
async fn read_head(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Head>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]);
            let mut parts = head.lines().next().unwrap_or("").split_whitespace();
            let method = parts.next().unwrap_or("").to_string();
            let target = parts.next().unwrap_or("");
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            return Ok(Some(Head::Request {
                method,
                path: path.to_string(),
                query: query.to_string(),
            }));
        }
        if buf.len() > MAX_HEAD {
            return Ok(Some(Head::TooLarge));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn route(
    method: &str,
    path: &str,
    query: &str,
    node: &NodeHandle,
    loopback: bool,
) -> Response {
    if method.is_empty() || path.is_empty() {
        return Response::text(400, "bad request line\n");
    }
    if path == "/transfer-leader" {
        return transfer_leader(method, query, node, loopback).await;
    }
    if !matches!(path, "/status" | "/metrics" | "/health") {
        return Response::text(404, "not found: try /status, /metrics or /health\n");
    }
    if method != "GET" {
        return Response::text(405, "only GET\n");
    }
    let status = node.status().await;
    match (path, status) {
        ("/status", Ok(s)) => Response::json(200, &s),
        ("/metrics", Ok(s)) => Response {
            code: 200,
            content_type: "text/plain; version=0.0.4",
            body: render_metrics(&s, &node.metrics),
        },
        ("/health", Ok(s)) => {
            // Healthy: the loop answers, the log store works, and a leader is known.
            let problem = match (&s.storage_failure, s.leader) {
                (Some(f), _) => Some(format!("storage failure: {f}")),
                (None, None) => Some("no leader".to_string()),
                (None, Some(_)) => None,
            };
            let body = serde_json::json!({
                "status": problem.as_deref().unwrap_or("ok"),
                "id": s.id, "role": s.role, "leader": s.leader, "term": s.term,
            });
            Response::json(if problem.is_none() { 200 } else { 503 }, &body)
        }
        (_, Err(e)) => Response::json(503, &serde_json::json!({ "status": e.to_string() })),
        _ => Response::text(404, "not found\n"),
    }
}

/// How long `POST /transfer-leader` waits to see leadership move.
const TRANSFER_WAIT: Duration = Duration::from_secs(5);

/// `POST /transfer-leader[?to=ID]`: this node, if it leads, hands leadership to `ID` (or
/// to its most caught-up voter) and answers once it no longer leads. A write route:
/// until admin credentials exist it is taken only from a loopback client.
async fn transfer_leader(method: &str, query: &str, node: &NodeHandle, loopback: bool) -> Response {
    if method != "POST" {
        return Response::text(405, "POST /transfer-leader[?to=ID]\n");
    }
    if !loopback {
        return Response::text(403, "write routes are served to loopback clients only\n");
    }
    let to = match query.strip_prefix("to=") {
        None if query.is_empty() => None,
        Some(id) => match id.parse::<u64>() {
            Ok(id) => Some(id),
            Err(_) => return Response::text(400, format!("not a node ID: {id:?}\n")),
        },
        None => return Response::text(400, "the only parameter is to=ID\n"),
    };
    match node.hand_over(to, TRANSFER_WAIT).await {
        Ok(leader) => Response::json(200, &serde_json::json!({ "leader": leader })),
        Err(e) => Response::json(409, &serde_json::json!({ "error": e })),
    }
}

pub fn render_metrics(s: &Status, m: &LoopMetrics) -> String {
    let mut o = String::with_capacity(8 << 10);
    gauge(&mut o, "raftkv_node_id", "This node's ID.", s.id);
    gauge(&mut o, "raftkv_term", "Current Raft term.", s.term);
    gauge(
        &mut o,
        "raftkv_is_leader",
        "1 if this node leads.",
        u8::from(s.role == "leader"),
    );
    gauge(
        &mut o,
        "raftkv_leader_id",
        "The leader this node knows (0: none).",
        s.leader.unwrap_or(0),
    );
    gauge(
        &mut o,
        "raftkv_commit_index",
        "Highest log index known committed.",
        s.commit_index,
    );
    gauge(
        &mut o,
        "raftkv_applied_index",
        "Highest log index applied.",
        s.applied_index,
    );
    gauge(
        &mut o,
        "raftkv_log_first_index",
        "First index held in the log.",
        s.first_index,
    );
    gauge(
        &mut o,
        "raftkv_log_last_index",
        "Last index in the log.",
        s.last_index,
    );
    gauge(
        &mut o,
        "raftkv_log_entries",
        "Entries held in the log.",
        s.log_entries,
    );
    gauge(
        &mut o,
        "raftkv_log_bytes",
        "Bytes of entries held in the log.",
        s.log_bytes,
    );
    gauge(
        &mut o,
        "raftkv_snapshot_index",
        "Log index covered by the latest snapshot (0: none).",
        s.snapshot_index,
    );
    counter(
        &mut o,
        "raftkv_snapshots_taken_total",
        "Snapshots of the state machine taken here.",
        s.snapshots_taken,
    );
    counter(
        &mut o,
        "raftkv_snapshots_installed_total",
        "Snapshots received from a leader and installed.",
        s.snapshots_installed,
    );
    counter(
        &mut o,
        "raftkv_followers_lost_log_total",
        "Followers found (while leading) to have lost log entries they had acknowledged.",
        s.followers_lost_log,
    );
    let name = "raftkv_core_refusals_total";
    let _ = writeln!(
        o,
        "# HELP {name} Peer messages the consensus core refused as impossible from an honest peer, by reason.\n# TYPE {name} counter"
    );
    for (reason, n) in s.refused_by_core.by_reason() {
        let _ = writeln!(o, "{name}{{reason=\"{reason}\"}} {n}");
    }
    gauge(&mut o, "raftkv_keys", "Keys in the state machine.", s.keys);
    gauge(
        &mut o,
        "raftkv_kv_bytes",
        "Bytes of keys and values in the state machine.",
        s.kv_bytes,
    );
    counter(
        &mut o,
        "raftkv_proposals_total",
        "Entries proposed by this node as leader.",
        s.proposals,
    );
    counter(
        &mut o,
        "raftkv_applied_entries_total",
        "Log entries applied.",
        s.applied_entries,
    );
    counter(
        &mut o,
        "raftkv_reads_served_total",
        "Linearizable reads served as leader.",
        s.reads_served,
    );
    counter(
        &mut o,
        "raftkv_client_requests_total",
        "Requests from this node's clients.",
        m.client_requests.get(),
    );
    counter(
        &mut o,
        "raftkv_stale_reads_total",
        "Reads served locally in stale mode.",
        m.stale_reads.get(),
    );
    counter(
        &mut o,
        "raftkv_forwarded_out_total",
        "Requests forwarded to the leader.",
        m.forwarded_out.get(),
    );
    counter(
        &mut o,
        "raftkv_forwarded_in_total",
        "Requests forwarded to us by followers.",
        m.forwarded_in.get(),
    );
    counter(
        &mut o,
        "raftkv_forward_timeouts_total",
        "Forwarded requests that got no answer in time.",
        m.forward_timeouts.get(),
    );
    counter(
        &mut o,
        "raftkv_elections_total",
        "Elections this node started (as candidate).",
        m.elections.get(),
    );
    counter(
        &mut o,
        "raftkv_leader_changes_total",
        "Times this node saw a new leader.",
        m.leader_changes.get(),
    );
    counter(
        &mut o,
        "raftkv_peer_messages_dropped_inbound_total",
        "Peer messages dropped: node loop busy.",
        m.dropped_inbound.get(),
    );
    counter(
        &mut o,
        "raftkv_peer_connections_refused_total",
        "Inbound peer connections closed at once: the connection limit was reached.",
        m.peer_connections_refused.get(),
    );
    counter(
        &mut o,
        "raftkv_peer_handshakes_refused_total",
        "Inbound peer connections refused at the handshake (TLS, certificate, hello, deadline).",
        m.peer_handshakes_refused.get(),
    );
    counter(
        &mut o,
        "raftkv_peer_frames_rejected_total",
        "Peer frames refused after the handshake (bad encoding, protocol breach); the connection is dropped.",
        m.peer_frames_rejected.get(),
    );
    counter(
        &mut o,
        "raftkv_client_tls_handshakes_refused_total",
        "RESP and admin connections whose TLS handshake failed.",
        m.client_tls_refused.get(),
    );
    counter(
        &mut o,
        "raftkv_client_memory_refusals_total",
        "Client connections closed because all clients together reached limits.max_client_memory_bytes.",
        m.client_memory_refused.get(),
    );
    let _ = writeln!(
        o,
        "# HELP raftkv_peer_connected 1 if the connection to the peer is up."
    );
    let _ = writeln!(o, "# TYPE raftkv_peer_connected gauge");
    for p in &s.peers {
        let _ = writeln!(
            o,
            "raftkv_peer_connected{{peer=\"{}\"}} {}",
            p.id,
            u8::from(p.connected)
        );
    }
    let _ = writeln!(
        o,
        "# HELP raftkv_peer_frames_dropped_total Frames dropped from a full send queue."
    );
    let _ = writeln!(o, "# TYPE raftkv_peer_frames_dropped_total counter");
    for p in &s.peers {
        let _ = writeln!(
            o,
            "raftkv_peer_frames_dropped_total{{peer=\"{}\"}} {}",
            p.id, p.dropped_frames
        );
    }
    let _ = writeln!(
        o,
        "# HELP raftkv_peer_lag Entries the peer is behind the leader's log (leader only)."
    );
    let _ = writeln!(o, "# TYPE raftkv_peer_lag gauge");
    for p in &s.peers {
        if let Some(lag) = p.lag {
            let _ = writeln!(o, "raftkv_peer_lag{{peer=\"{}\"}} {lag}", p.id);
        }
    }
    m.commit_latency.render(
        "raftkv_commit_latency_seconds",
        "Client write latency, from arrival here to the committed answer.",
        &mut o,
    );
    m.read_latency.render(
        "raftkv_read_latency_seconds",
        "Client read latency, from arrival here to the answer.",
        &mut o,
    );
    m.fsync_latency.render(
        "raftkv_fsync_latency_seconds",
        "Time spent in fdatasync of the log (empty until the log is on disk).",
        &mut o,
    );
    crate::events::render_metrics(m, &mut o);
    o
}
