//! Inbound peer connections: the accept loop and one reader task per connection.
//!
//! A connection must open with `Hello { from, to, cluster, bootstrap, seen_you }` naming a
//! member this node knows of (`PeerRouter::knows`) and this node (with TLS: after a handshake in which the peer showed a
//! certificate from the cluster CA that names member `from`); anything else is refused
//! and the connection closed with a log line. The node answers with its own `Hello`
//! (its cluster identity), after applying the binding rules of `cluster_id/` to the
//! peer's; frames are read only if both were bound to the same cluster ID, else the
//! connection closes — quietly while one side is still binding (it redials), with a log
//! line and a metric when the identities conflict. After that every frame is decoded
//! and handed to the node loop.
//! A decoding error (bad version, garbage, oversized frame, an append that is not a slice
//! of a log) closes the connection with a log line: the stream cannot be resynchronised,
//! and the peer's writer reconnects.
//!
//! Against a hostile network (every refusal is a log line and a metric, never a crash):
//! - at most `max_connections` connections are open at once, authenticated or not; one
//!   over the limit is closed at once;
//! - the handshake (TLS and `Hello`) must finish within `handshake_timeout`;
//! - before it has, a connection holds only a `Hello`-sized buffer (plus rustls's own
//!   handshake buffers with TLS): frames longer than [`HELLO_MAX_FRAME`] are refused, and
//!   the 64 KiB read buffer and `max_frame`-sized bodies come only after.

use std::sync::Arc;

use raft::NodeId;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::Semaphore;

use super::codec::Frame;
use super::framing::{read_frame, write_frame, ReadError, HELLO_MAX_FRAME};
use super::peer::PeerRouter;
use crate::cluster_id::{ClusterIdentity, PeerView};
use crate::handle::Event;
use crate::metrics::LoopMetrics;
use crate::reply::Reply;
use crate::tls::{identity, Tls};

pub struct Inbound {
    pub me: NodeId,
    pub events: mpsc::Sender<Event>,
    pub router: PeerRouter,
    pub max_frame: usize,
    pub metrics: Arc<LoopMetrics>,
    /// Flips to true at shutdown: open connections close too.
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// Mutual TLS for peers, or plain TCP.
    pub tls: Option<Arc<Tls>>,
    /// One permit per open connection (`limits.max_peer_connections`).
    pub slots: Arc<Semaphore>,
    pub handshake_timeout: std::time::Duration,
    /// This node's cluster identity; handshakes may bind it.
    pub identity: Arc<ClusterIdentity>,
}

pub async fn accept_loop(listener: TcpListener, ctx: Arc<Inbound>) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let Ok(slot) = ctx.slots.clone().try_acquire_owned() else {
                    ctx.metrics.peer_connections_refused.inc();
                    tracing::warn!(%addr, "refusing a peer connection: the limit of open peer connections is reached");
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let ctx = ctx.clone();
                let mut stop = ctx.stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        r = serve(stream, &ctx) => if let Err(e) = r {
                            tracing::warn!(%addr, "closing peer connection: {e}");
                        },
                        _ = stop.wait_for(|s| *s) => {}
                    }
                    drop(slot);
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("peer accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// A refused handshake: the `reason` label of the metric, and what to log.
pub struct Refused {
    pub reason: &'static str,
    pub why: String,
    /// The identity refusals name the peer: they are logged at warn once a minute per
    /// peer and reason (a misconfigured peer redials every second).
    pub peer: Option<NodeId>,
}

fn refused(reason: &'static str, why: impl Into<String>) -> Refused {
    Refused {
        reason,
        why: why.into(),
        peer: None,
    }
}

/// The peer and the stream to read its frames from; `None` for a connection that ends
/// without frames and without a refusal (closed before saying anything, or an identity
/// still being agreed on: the peer redials).
type Handshake<S> = Result<Option<(NodeId, S)>, Refused>;

async fn serve(stream: TcpStream, ctx: &Inbound) -> Result<(), String> {
    match &ctx.tls {
        None => {
            let hs = handshake_plain(stream, ctx);
            match within_deadline(ctx, hs).await? {
                Some((from, s)) => read_frames(from, s, ctx).await,
                None => Ok(()),
            }
        }
        // Boxed: a future is as large as its largest state, and the TLS session's (over
        // a kilobyte) would otherwise be in every connection's task, TLS or not.
        Some(tls) => Box::pin(serve_tls(stream, tls, ctx)).await,
    }
}

async fn serve_tls(stream: TcpStream, tls: &Tls, ctx: &Inbound) -> Result<(), String> {
    let hs = handshake_tls(stream, tls, ctx);
    match within_deadline(ctx, hs).await? {
        Some((from, s)) => read_frames(from, s, ctx).await,
        None => Ok(()),
    }
}

/// Runs a handshake under the deadline; a refusal is counted by reason and logged here.
async fn within_deadline<S>(
    ctx: &Inbound,
    hs: impl std::future::Future<Output = Handshake<S>>,
) -> Result<Option<(NodeId, S)>, String> {
    let result = match tokio::time::timeout(ctx.handshake_timeout, hs).await {
        Ok(r) => r,
        Err(_) => Err(refused(
            "deadline",
            format!("no handshake within {:?}", ctx.handshake_timeout),
        )),
    };
    match result {
        Ok(r) => Ok(r),
        Err(r) => {
            ctx.metrics.peer_handshakes_refused.inc(r.reason);
            match r.peer {
                Some(peer) if !ctx.identity.should_warn_about(peer, r.reason, false) => {
                    tracing::debug!(peer, reason = r.reason, "{}", r.why);
                    Ok(None)
                }
                _ => Err(r.why),
            }
        }
    }
}

async fn handshake_plain(mut stream: TcpStream, ctx: &Inbound) -> Handshake<TcpStream> {
    let Some((from, theirs)) = read_hello(&mut stream, ctx).await? else {
        return Ok(None);
    };
    Ok(answer_hello(&mut stream, from, theirs, ctx)
        .await?
        .then_some((from, stream)))
}

/// TLS first (the peer's certificate must chain to the cluster CA: rustls checks it),
/// then the `Hello`, whose `from` the certificate must name.
async fn handshake_tls(
    stream: TcpStream,
    tls: &Tls,
    ctx: &Inbound,
) -> Handshake<tokio_rustls::server::TlsStream<TcpStream>> {
    let mut stream = tls
        .peer_acceptor()
        .accept(stream)
        .await
        .map_err(|e| refused("tls", format!("TLS handshake failed: {e}")))?;
    let Some((from, theirs)) = read_hello(&mut stream, ctx).await? else {
        return Ok(None);
    };
    let (_, conn) = stream.get_ref();
    let cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| refused("certificate", "the peer presented no certificate"))?;
    identity::certifies_member(cert, from).map_err(|e| refused("certificate", e))?;
    Ok(answer_hello(&mut stream, from, theirs, ctx)
        .await?
        .then_some((from, stream)))
}

/// Reads the `Hello` from an unbuffered stream (so nothing beyond it is read or
/// allocated) and checks it names a configured peer and this node.
async fn read_hello<R: AsyncRead + Unpin>(
    r: &mut R,
    ctx: &Inbound,
) -> Result<Option<(NodeId, PeerView)>, Refused> {
    match read_frame(r, HELLO_MAX_FRAME).await {
        Ok(Some(Frame::Hello {
            from,
            to,
            cluster,
            bootstrap,
            seen_you,
        })) => {
            if to != ctx.me {
                return Err(refused(
                    "hello",
                    format!("hello for node {to}, but this is node {}", ctx.me),
                ));
            }
            // Peers are the members this node knows of: from its configurations' metadata,
            // the `[peers]` hints and (for a node that joined) what it learned joining.
            if !ctx.router.knows(from) {
                return Err(refused(
                    "hello",
                    format!("hello from node {from}, which is no member this node knows of"),
                ));
            }
            Ok(Some((
                from,
                PeerView {
                    cluster,
                    bootstrap,
                    seen_you,
                },
            )))
        }
        Ok(Some(other)) => Err(refused(
            "hello",
            format!("expected hello, got {}", frame_name(&other)),
        )),
        Ok(None) => Ok(None),
        Err(e) => Err(refused("hello", format!("bad hello: {e}"))),
    }
}

/// Applies the binding rules to the peer's identity, answers with this node's (as it
/// is afterwards: adopting or minting happens first), and says whether frames may flow:
/// only if both were bound to one cluster ID.
async fn answer_hello<S: AsyncWrite + Unpin>(
    stream: &mut S,
    from: NodeId,
    theirs: PeerView,
    ctx: &Inbound,
) -> Result<bool, Refused> {
    let verdict = ctx.identity.reconcile(from, theirs);
    let mine = ctx.identity.view_for(from);
    // Answered even when refusing, so the dialler can log why (and a wiped member learns
    // it was seen): an identity is no secret.
    let answer = Frame::Hello {
        from: ctx.me,
        to: from,
        cluster: mine.cluster,
        bootstrap: mine.bootstrap,
        seen_you: mine.seen_you,
    };
    let sent = write_frame(stream, &answer).await;
    if let Err(r) = verdict {
        return Err(Refused {
            reason: r.reason(),
            why: format!("refusing node {from}: {r}"),
            peer: Some(from),
        });
    }
    sent.map_err(|e| refused("hello", format!("cannot answer the hello: {e}")))?;
    let agreed = theirs.cluster.is_some() && theirs.cluster == mine.cluster;
    if !agreed {
        tracing::debug!(
            peer = from,
            ours = ?mine.cluster,
            theirs = ?theirs.cluster,
            "closing a handshake while the cluster identity is being agreed on (the peer redials)"
        );
    }
    Ok(agreed)
}

/// After the handshake: every frame to the node loop.
async fn read_frames<S: AsyncRead + Unpin>(
    from: NodeId,
    stream: S,
    ctx: &Inbound,
) -> Result<(), String> {
    tracing::debug!(peer = from, "peer connected");
    let mut r = BufReader::with_capacity(64 << 10, stream);
    loop {
        let frame = match read_frame(&mut r, ctx.max_frame).await {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()),
            Err(e) => {
                if matches!(e, ReadError::Codec(_)) {
                    ctx.metrics.peer_frames_rejected.inc();
                }
                return Err(format!("from node {from}: {e}"));
            }
        };
        match frame {
            Frame::Raft(msg) => {
                if msg.from != from || msg.to != ctx.me {
                    ctx.metrics.peer_frames_rejected.inc();
                    return Err(format!(
                        "node {from} sent a message from {} to {}",
                        msg.from, msg.to
                    ));
                }
                // Never wait for a busy node loop here: Raft retransmits what is dropped.
                if let Err(TrySendError::Full(_)) = ctx.events.try_send(Event::Peer(msg)) {
                    ctx.metrics.inc_dropped_inbound();
                }
            }
            Frame::ForwardReq { id, req, session } => {
                let ev = Event::Forwarded {
                    from,
                    id,
                    req,
                    session,
                };
                if let Err(TrySendError::Full(_)) = ctx.events.try_send(ev) {
                    // Tell the asker at once rather than let it time out.
                    ctx.router.send_frame(
                        from,
                        Frame::ForwardResp {
                            id,
                            reply: Reply::Fail("busy: leader overloaded".into()),
                        },
                    );
                }
            }
            Frame::ForwardResp { id, reply } => {
                // A client is waiting for this one: worth waiting for room.
                if ctx
                    .events
                    .send(Event::ForwardReply { from, id, reply })
                    .await
                    .is_err()
                {
                    return Ok(()); // shutting down
                }
            }
            Frame::Hello { .. } => {
                ctx.metrics.peer_frames_rejected.inc();
                return Err(format!("node {from} sent a second hello"));
            }
        }
    }
}

fn frame_name(f: &Frame) -> &'static str {
    match f {
        Frame::Hello { .. } => "Hello",
        Frame::Raft(_) => "Raft",
        Frame::ForwardReq { .. } => "ForwardReq",
        Frame::ForwardResp { .. } => "ForwardResp",
    }
}
