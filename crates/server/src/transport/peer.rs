//! Outbound peer connections: one bounded queue and one writer task per peer.
//!
//! The node loop pushes frames into a peer's queue and never waits: when the queue is
//! full the *oldest* frame is dropped, because Raft retransmits and a newer message
//! carries newer state (a fresher commit index, a later term). The writer task owns the
//! TCP connection: it connects, says `Hello`, then writes batches of frames; on any error
//! it reconnects with exponential backoff (with jitter, so two nodes restarting together
//! do not keep colliding). Frames queued while disconnected are sent after reconnecting.
//!
//! With TLS the writer dials with the peer's member name (`raftkv-member-N`) as the
//! server name, so it talks to that member and no other, and shows its own certificate.
//!
//! The handshake goes both ways: the writer sends its `Hello` (with this node's cluster
//! identity) and reads the peer's answering `Hello`, to which it applies the binding
//! rules of `cluster_id/` (it may adopt the peer's cluster ID). Frames are sent only if
//! both sides were bound to the same cluster ID; a conflict is logged and counted
//! (`raftkv_peer_handshakes_refused_total{direction="outbound"}`) and retried at the
//! slowest backoff, since it lasts until someone fixes a configuration.
//!
//! After the handshake the connection is one-way: the peer answers over its own
//! connection to us. Anything read from this socket therefore means the peer closed it
//! (or broke the protocol), which we treat as a broken connection.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use driver::Transport;
use raft::{Message, MessageBody, NodeId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::codec::{encode_frame, Frame};
use super::framing::{read_frame, write_frame, ReadError, HELLO_MAX_FRAME};
use crate::cluster_id::{ClusterIdentity, PeerView};
use crate::metrics::LoopMetrics;
use crate::tls::{identity, Tls};

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// A peer connection whose sent data stays unacknowledged this long is dropped by the
/// kernel (TCP_USER_TIMEOUT) and redialled. Heartbeats flow every 100 ms, so a silent
/// link means a broken path; without this, TCP's own retransmission backoff during a
/// partition (seen: rto 3.3 s, backoff 4) kept a healed node deaf for seconds.
const USER_TIMEOUT_MS: u32 = 1_500;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Frames encoded into one write.
const MAX_BATCH: usize = 256;

/// A bounded queue of frames for one peer, by count and by (approximate) bytes.
pub struct PeerQueue {
    frames: Mutex<Queued>,
    notify: Notify,
    max_frames: usize,
    max_bytes: usize,
    dropped: AtomicU64,
    sent: AtomicU64,
    connected: AtomicBool,
}

#[derive(Default)]
struct Queued {
    frames: VecDeque<(Frame, usize)>,
    bytes: usize,
}

/// Payload bytes a frame holds, for the byte bound (headers are noise next to data).
fn approx_size(f: &Frame) -> usize {
    64 + match f {
        Frame::Raft(Message {
            body: MessageBody::Append { entries, .. },
            ..
        }) => entries.iter().map(|e| e.size_bytes()).sum(),
        Frame::Raft(Message {
            body: MessageBody::Snapshot { data, .. },
            ..
        }) => data.len(),
        Frame::ForwardReq { req, .. } => match req {
            driver::Request::Put { key, value } => key.len() + value.len(),
            driver::Request::Cas { key, expected, new } => {
                key.len() + new.len() + expected.as_ref().map_or(0, |e| e.len())
            }
            driver::Request::Get { key } | driver::Request::Delete { key } => key.len(),
            driver::Request::Scan { prefix, after, .. } => {
                prefix.len() + after.as_ref().map_or(0, |a| a.len())
            }
            driver::Request::Write(cmd) => cmd.encode().len(),
            driver::Request::Read(q) => q.encode().len(),
            driver::Request::ChangeMembership(changes) => changes.len() * 64,
        },
        Frame::ForwardResp { reply, .. } => match reply {
            crate::reply::Reply::Value(Some(v)) => v.len(),
            crate::reply::Reply::Entries(kvs) => kvs.iter().map(|(k, v)| k.len() + v.len()).sum(),
            crate::reply::Reply::Cas {
                current: Some(v), ..
            } => v.len(),
            crate::reply::Reply::Kv(r) => r.encode().len(),
            _ => 0,
        },
        _ => 0,
    }
}

impl PeerQueue {
    pub fn new(max_frames: usize, max_bytes: usize) -> PeerQueue {
        PeerQueue {
            frames: Mutex::new(Queued::default()),
            notify: Notify::new(),
            max_frames: max_frames.max(1),
            max_bytes,
            dropped: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            connected: AtomicBool::new(false),
        }
    }

    /// Queues `frame`, dropping the oldest frames while over either bound (the newest
    /// frame is always kept, even if alone it exceeds the byte bound).
    pub fn push(&self, frame: Frame) {
        let size = approx_size(&frame);
        {
            let mut q = self.frames.lock().unwrap_or_else(|e| e.into_inner());
            while !q.frames.is_empty()
                && (q.frames.len() >= self.max_frames || q.bytes + size > self.max_bytes)
            {
                // Raft frames go first: the core retransmits them. A forward is resent
                // by its router only after its retry time, so it is kept while it can be.
                let victim = q
                    .frames
                    .iter()
                    .position(|(f, _)| matches!(f, Frame::Raft(_)))
                    .unwrap_or(0);
                if let Some((_, s)) = q.frames.remove(victim) {
                    q.bytes -= s;
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            q.bytes += size;
            q.frames.push_back((frame, size));
        }
        // Stores a permit if the writer is not waiting yet: no lost wake-ups.
        self.notify.notify_one();
    }

    /// Waits until at least one frame is queued, then takes up to `max`.
    async fn pop_batch(&self, out: &mut Vec<Frame>, max: usize) {
        loop {
            {
                let mut q = self.frames.lock().unwrap_or_else(|e| e.into_inner());
                if !q.frames.is_empty() {
                    let n = q.frames.len().min(max);
                    let mut taken = 0;
                    for (f, s) in q.frames.drain(..n) {
                        taken += s;
                        out.push(f);
                    }
                    q.bytes -= taken;
                    return;
                }
            }
            self.notify.notified().await;
        }
    }

    pub fn len(&self) -> usize {
        self.frames.lock().map_or(0, |q| q.frames.len())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}

/// One peer: its queue and the address its writer dials (it may change: a member that
/// moved, learned from the log).
pub struct PeerEntry {
    pub queue: PeerQueue,
    addr: Mutex<String>,
}

impl PeerEntry {
    pub fn addr(&self) -> String {
        self.addr.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The peers' queues, shared by the node loop (which pushes) and the writer tasks.
/// Implements the driver's [`Transport`]: sending never blocks.
///
/// The set of peers grows as the node learns members from the log (`add`): the node
/// loop adds every member its configurations name, with the address in their metadata,
/// and a writer task is started for each new one. Peers are never removed (a removed
/// node may still be sent the entry that removed it); the set is bounded by the members
/// the log ever named.
#[derive(Clone)]
pub struct PeerRouter {
    inner: Arc<RouterInner>,
}

struct RouterInner {
    me: NodeId,
    max_frames: usize,
    max_bytes: usize,
    peers: std::sync::RwLock<BTreeMap<NodeId, Arc<PeerEntry>>>,
    /// Set once the async side runs: new peers get their writer at once.
    writers: Mutex<Option<Writers>>,
}

struct Writers {
    ctx: Arc<WriterCtx>,
    rt: tokio::runtime::Handle,
    tasks: Vec<JoinHandle<()>>,
}

impl PeerRouter {
    pub fn new(me: NodeId, max_frames: usize, max_bytes: usize) -> PeerRouter {
        PeerRouter {
            inner: Arc::new(RouterInner {
                me,
                max_frames,
                max_bytes,
                peers: Default::default(),
                writers: Mutex::new(None),
            }),
        }
    }

    fn peers(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<NodeId, Arc<PeerEntry>>> {
        self.inner.peers.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `id` at `addr`, or updates its address. Returns whether anything changed.
    /// Ourselves are never a peer.
    pub fn add(&self, id: NodeId, addr: &str) -> bool {
        if id == self.inner.me || id == 0 {
            return false;
        }
        let entry = {
            let mut peers = self.inner.peers.write().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = peers.get(&id) {
                let mut a = e.addr.lock().unwrap_or_else(|e| e.into_inner());
                if *a == addr {
                    return false;
                }
                tracing::info!(peer = id, old = %a, new = %addr, "peer address changed");
                *a = addr.to_string();
                return true;
            }
            let e = Arc::new(PeerEntry {
                queue: PeerQueue::new(self.inner.max_frames, self.inner.max_bytes),
                addr: Mutex::new(addr.to_string()),
            });
            peers.insert(id, e.clone());
            e
        };
        let mut w = self.inner.writers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = w.as_mut() {
            let task = w.rt.spawn(run_writer(w.ctx.clone(), id, entry));
            w.tasks.push(task);
        }
        true
    }

    /// Starts a writer for every peer, and from now on for each one added.
    pub fn start_writers(&self, ctx: Arc<WriterCtx>, rt: tokio::runtime::Handle) {
        let mut w = self.inner.writers.lock().unwrap_or_else(|e| e.into_inner());
        let tasks = self
            .queues()
            .into_iter()
            .map(|(id, e)| rt.spawn(run_writer(ctx.clone(), id, e)))
            .collect();
        *w = Some(Writers { ctx, rt, tasks });
    }

    /// Stops every writer (shutdown).
    pub fn stop_writers(&self) {
        let mut w = self.inner.writers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = w.take() {
            for t in w.tasks {
                t.abort();
            }
        }
    }

    /// Queues `frame` for `to`; false if `to` is not a peer.
    pub fn send_frame(&self, to: NodeId, frame: Frame) -> bool {
        match self.peers().get(&to) {
            Some(e) => {
                e.queue.push(frame);
                true
            }
            None => false,
        }
    }

    /// Whether `id` is a known peer (inbound connections are accepted from these only).
    pub fn knows(&self, id: NodeId) -> bool {
        self.peers().contains_key(&id)
    }

    pub fn queue(&self, id: NodeId) -> Option<Arc<PeerEntry>> {
        self.peers().get(&id).cloned()
    }

    pub fn queues(&self) -> Vec<(NodeId, Arc<PeerEntry>)> {
        self.peers()
            .iter()
            .map(|(&id, e)| (id, e.clone()))
            .collect()
    }
}

impl Transport for PeerRouter {
    fn send(&mut self, msg: Message) {
        let to = msg.to;
        if !self.send_frame(to, Frame::Raft(msg)) {
            tracing::debug!(to, "dropping message for a node that is not a peer");
        }
    }
}

/// What every writer task shares.
pub struct WriterCtx {
    pub me: NodeId,
    pub max_frame: usize,
    pub tls: Option<Arc<Tls>>,
    pub identity: Arc<ClusterIdentity>,
    pub metrics: Arc<LoopMetrics>,
}

/// How a connection ended.
enum Ended {
    /// Broken (or never set up): reconnect with backoff.
    Lost(String),
    /// This handshake bound this node's identity (it adopted the peer's cluster ID):
    /// redial at once, now as a bound member.
    Bound,
    /// One side is still waiting for a cluster ID: redial with backoff, quietly.
    Unbound,
    /// The peer's identity conflicts with ours (counted and logged): retry slowly.
    Refused,
}

async fn run_writer(ctx: Arc<WriterCtx>, peer: NodeId, entry: Arc<PeerEntry>) {
    let me = ctx.me;
    let queue = &entry.queue;
    let mut backoff = MIN_BACKOFF;
    let mut failures: u64 = 0;
    // Connections that failed at the handshake in a row (the first is logged at warn).
    let mut handshake_failures: u64 = 0;
    let mut jitter = me.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ peer;
    loop {
        // Read at each dial: the address may have changed (learned from the log).
        let addr = entry.addr();
        let ended = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                if let Err(e) = set_user_timeout(&stream, USER_TIMEOUT_MS) {
                    tracing::debug!(peer, "cannot set TCP_USER_TIMEOUT: {e}");
                }
                if failures > 0 {
                    tracing::info!(peer, %addr, "connected to peer after {failures} failed attempts");
                } else {
                    tracing::debug!(peer, %addr, "connected to peer");
                }
                failures = 0;
                match &ctx.tls {
                    None => {
                        let (rd, wr) = stream.into_split();
                        pump(&ctx, peer, &addr, rd, wr, queue).await
                    }
                    Some(tls) => {
                        let name = identity::member_server_name(peer);
                        let hs = tls.peer_connector().connect(name, stream);
                        match tokio::time::timeout(CONNECT_TIMEOUT, hs).await {
                            Ok(Ok(stream)) => {
                                let (rd, wr) = tokio::io::split(stream);
                                pump(&ctx, peer, &addr, rd, wr, queue).await
                            }
                            Ok(Err(e)) => Ended::Lost(format!("TLS handshake failed: {e}")),
                            Err(_) => Ended::Lost("TLS handshake timed out".to_string()),
                        }
                    }
                }
            }
            Ok(Err(e)) => {
                failures += 1;
                // The first failure is news; the rest of an outage is noise.
                if failures == 1 {
                    tracing::warn!(peer, %addr, "cannot connect to peer (will retry): {e}");
                } else {
                    tracing::debug!(peer, %addr, failures, "cannot connect to peer: {e}");
                }
                Ended::Unbound
            }
            Err(_) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(peer, %addr, "connecting to peer timed out (will retry)");
                }
                Ended::Unbound
            }
        };
        match ended {
            Ended::Bound => {
                backoff = MIN_BACKOFF;
                continue;
            }
            Ended::Lost(err) => {
                if queue.connected.swap(false, Ordering::Relaxed) {
                    backoff = MIN_BACKOFF;
                    handshake_failures = 0;
                    tracing::warn!(peer, %addr, "connection to peer lost: {err}");
                } else {
                    handshake_failures += 1;
                    if handshake_failures == 1 {
                        tracing::warn!(peer, %addr, "peer handshake failed (will retry): {err}");
                    } else {
                        tracing::debug!(peer, %addr, "peer handshake failed: {err}");
                    }
                }
            }
            Ended::Unbound => {}
            Ended::Refused => backoff = MAX_BACKOFF,
        }
        // xorshift jitter: sleep between backoff/2 and backoff.
        jitter ^= jitter << 13;
        jitter ^= jitter >> 7;
        jitter ^= jitter << 17;
        let half = backoff.as_millis() as u64 / 2;
        let sleep = Duration::from_millis(half + jitter % (half + 1));
        tokio::time::sleep(sleep).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Sets TCP_USER_TIMEOUT (Linux): unacknowledged data older than `ms` fails the socket.
fn set_user_timeout(stream: &TcpStream, ms: u32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let v: libc::c_uint = ms;
    // SAFETY: a valid socket fd and a c_uint option value of the size we pass.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            (&v as *const libc::c_uint).cast(),
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The handshake (module docs), then queued frames until the connection fails.
async fn pump(
    ctx: &WriterCtx,
    peer: NodeId,
    addr: &str,
    mut rd: impl AsyncRead + Unpin,
    mut wr: impl AsyncWrite + Unpin,
    queue: &PeerQueue,
) -> Ended {
    let me = ctx.me;
    let sent = ctx.identity.view_for(peer);
    let hello = Frame::Hello {
        from: me,
        to: peer,
        cluster: sent.cluster,
        bootstrap: sent.bootstrap,
        seen_you: sent.seen_you,
    };
    if let Err(e) = write_frame(&mut wr, &hello).await {
        return Ended::Lost(format!("write: {e}"));
    }
    let refuse = |reason: &'static str, why: String| {
        ctx.metrics.peer_dials_refused.inc(reason);
        if ctx.identity.should_warn_about(peer, reason, true) {
            tracing::warn!(peer, %addr, reason, "refusing to talk to node {peer}: {why}");
        } else {
            tracing::debug!(peer, %addr, reason, "refusing to talk to node {peer}: {why}");
        }
        Ended::Refused
    };
    let answer = match tokio::time::timeout(CONNECT_TIMEOUT, read_frame(&mut rd, HELLO_MAX_FRAME))
        .await
    {
        Err(_) => return Ended::Lost(format!("no answer to our hello within {CONNECT_TIMEOUT:?}")),
        Ok(Ok(None)) => {
            return Ended::Lost(
                "the peer closed the connection at the handshake (it refused us: see its log)"
                    .into(),
            )
        }
        Ok(Err(ReadError::Io(e))) => return Ended::Lost(format!("read: {e}")),
        Ok(Err(e)) => return refuse("hello", format!("bad answer to our hello: {e}")),
        Ok(Ok(Some(f))) => f,
    };
    let theirs = match answer {
        Frame::Hello {
            from,
            to,
            cluster,
            bootstrap,
            seen_you,
        } if from == peer && to == me => PeerView {
            cluster,
            bootstrap,
            seen_you,
        },
        Frame::Hello { from, to, .. } => {
            return refuse(
                "hello",
                format!("answered as node {from} to node {to}: another node listens at {addr}"),
            )
        }
        _ => return refuse("hello", "did not answer our hello with one".into()),
    };
    if let Err(r) = ctx.identity.reconcile(peer, theirs) {
        return refuse(r.reason(), r.to_string());
    }
    if sent.cluster.is_none() || sent.cluster != theirs.cluster {
        // The peer closes this connection: one of us had no cluster ID when it spoke.
        return if ctx.identity.current() != sent.cluster {
            Ended::Bound
        } else {
            Ended::Unbound
        };
    }
    queue.connected.store(true, Ordering::Relaxed);
    let mut buf = BytesMut::with_capacity(64 << 10);
    let max_frame = ctx.max_frame;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut probe = [0u8; 64];
    loop {
        batch.clear();
        tokio::select! {
            _ = queue.pop_batch(&mut batch, MAX_BATCH) => {}
            r = rd.read(&mut probe) => {
                return Ended::Lost(match r {
                    Ok(0) => "closed by peer".to_string(),
                    Ok(_) => "peer sent data on a one-way connection".to_string(),
                    Err(e) => format!("read: {e}"),
                });
            }
        }
        buf.clear();
        let n = batch.len() as u64;
        for frame in batch.drain(..) {
            if let Err(e) = encode_frame(&frame, max_frame, &mut buf) {
                // Cannot happen with a consistent config (proposals are size-checked);
                // dropping is safe, the receiver would have refused it anyway.
                tracing::error!(peer, "dropping unencodable frame: {e}");
            }
        }
        if let Err(e) = write_out(&mut wr, &buf).await {
            return Ended::Lost(format!("write: {e}"));
        }
        queue.sent.fetch_add(n, Ordering::Relaxed);
        // Keep big buffers from living forever after one large append.
        if buf.capacity() > (4 << 20) {
            buf = BytesMut::with_capacity(64 << 10);
        }
    }
}

/// Writes and flushes: a TLS stream holds written bytes until flushed (a TCP stream
/// has nothing to flush).
async fn write_out(wr: &mut (impl AsyncWrite + Unpin), buf: &[u8]) -> std::io::Result<()> {
    wr.write_all(buf).await?;
    wr.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(n: u64) -> Frame {
        Frame::Hello {
            from: n,
            to: 0,
            cluster: None,
            bootstrap: 0,
            seen_you: false,
        }
    }

    #[tokio::test]
    async fn full_queue_drops_the_oldest() {
        let q = PeerQueue::new(3, usize::MAX);
        for i in 0..5 {
            q.push(hello(i));
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.dropped(), 2);
        let mut out = Vec::new();
        q.pop_batch(&mut out, 10).await;
        assert_eq!(out, vec![hello(2), hello(3), hello(4)]);
    }

    #[tokio::test]
    async fn byte_bound_keeps_the_newest() {
        let big = |id| Frame::ForwardReq {
            id,
            session: None,
            req: driver::Request::Put {
                key: bytes::Bytes::from_static(b"k"),
                value: bytes::Bytes::from(vec![0u8; 1000]),
            },
        };
        let q = PeerQueue::new(100, 1500);
        q.push(big(1));
        q.push(big(2));
        assert_eq!(q.len(), 1);
        let mut out = Vec::new();
        q.pop_batch(&mut out, 10).await;
        assert_eq!(out, vec![big(2)]);
    }
}
