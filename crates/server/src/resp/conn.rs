//! One client connection: a reader task that parses commands, and this task, which runs
//! them and writes the replies in order.
//!
//! Pipelining keeps Redis's per-connection ordering: a command sees the effects of every
//! command sent before it on the same connection. Commands are grouped as they arrive:
//! consecutive reads run concurrently; consecutive single-request writes to distinct keys
//! run concurrently; anything else (INCR, SET XX, INFO, QUIT, a write after a read...)
//! waits for the group before it. So `SET k 1; GET k` pipelined returns 1, and
//! `redis-benchmark -P 16` still gets 16 requests per round trip.
//!
//! "Concurrently" means many requests in flight at once, not in any order: a group's
//! commands run in this task, polled in order (`commands::join_all`), so their requests
//! reach the node loop's channel in the order the client sent them and, on the leader,
//! the log keeps that order. (Spawning a task per command would leave the order to the
//! scheduler.) Through a follower each write is a forward of its own, and one lost on
//! the way is resent after the others: there the group's order is not kept (the README's
//! "Pipelining" says what a client does about it).
//!
//! Memory per client is bounded: the read buffer by `max_request_bytes` (plus one read),
//! commands read ahead of their replies by `max_pipeline` and by a byte budget of
//! `2 × max_request_bytes` (the reader waits when either is used up). Memory across all
//! clients is bounded too: the same bytes are drawn from one shared budget
//! (`memory.rs`), and a connection that cannot get them in time is closed with an error.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::client::{Client, Endpoints};
use super::codec::{CommandParser, ProtoError, Value};
use super::commands::{classify, execute, join_all, Class, Outcome, RespCtx, Txn};
use super::memory::BufferHolding;
use super::pubsub::{self, Subscriptions};
use super::subscribed::{self, After};

/// Most commands run together in one group.
const MAX_GROUP: usize = 256;
/// Replies are written once this much is buffered, even if more commands are queued.
const WRITE_CHUNK: usize = 64 << 10;
/// A read's room in the read buffer: at first [`READ_MIN`], doubled each time a read fills
/// it, up to [`READ_MAX`]. Ten thousand idle connections then hold 256 bytes each, not 16
/// KiB.
const READ_MIN: usize = 256;
const READ_MAX: usize = 16 << 10;

/// What a command read ahead holds until its reply is written: its bytes from this
/// connection's budget and from the one shared by all clients.
pub struct Budget {
    _conn: OwnedSemaphorePermit,
    _shared: OwnedSemaphorePermit,
}

/// The error a connection closes with when the shared client memory stays exhausted.
const OUT_OF_CLIENT_MEMORY: &str =
    "ERR the server's client memory limit (limits.max_client_memory_bytes) is reached; closing this connection";

pub enum Item {
    Cmd {
        args: Vec<Bytes>,
        class: Class,
        _budget: Budget,
    },
    /// A protocol error, answered in order; `close` once it is sent.
    Error { msg: String, close: bool },
}

/// Serves one client on the two halves of its stream (a TCP socket's, or a TLS
/// session's); `ends` says where it comes from (logs, `CLIENT LIST`).
pub async fn serve<R, W>(rd: R, wr: W, ends: Endpoints, ctx: Arc<RespCtx>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send,
{
    let peer = ends.addr.map(|a| a.to_string()).unwrap_or_default();
    let registered = ctx.clients.open(ends);
    // Redis's rule: authenticated from the start while `default` needs no password.
    registered.client.state().authenticated = ctx.users.borrow().default_is_open();
    // Commands travel boxed: the channel allocates its first block of 32 slots at once,
    // so an idle connection holds 32 pointers rather than 32 `Item`s (80 bytes each).
    let (tx, rx) = mpsc::channel(ctx.max_pipeline);
    let budget_bytes = (2 * ctx.max_request_bytes).min(Semaphore::MAX_PERMITS);
    let budget = Arc::new(Semaphore::new(budget_bytes));
    let client = registered.client.clone();
    let reader = tokio::spawn(read_loop(rd, tx, ctx.clone(), budget, budget_bytes));
    tokio::select! {
        r = write_loop(wr, rx, ctx, client.clone()) => {
            if let Err(e) = r {
                tracing::debug!(%peer, "client connection ended: {e}");
            }
        }
        // Its user was deleted (`acl/users.rs`): closed at once, as Redis does.
        _ = client.killed() => {}
    }
    reader.abort();
    drop(registered);
}

async fn read_loop(
    mut rd: impl AsyncRead + Unpin,
    tx: mpsc::Sender<Box<Item>>,
    ctx: Arc<RespCtx>,
    budget: Arc<Semaphore>,
    budget_bytes: usize,
) {
    // Allocated when a read needs it, released while the connection waits with nothing
    // buffered (see `read_more`).
    let mut buf = BytesMut::new();
    let mut read_size = READ_MIN;
    // Resumes a command split across reads where it stopped (see `CommandParser`).
    let mut parser = CommandParser::default();
    let mut holding = BufferHolding::new(&ctx.memory);
    loop {
        loop {
            match parser.parse(&mut buf, ctx.max_request_bytes) {
                Ok(Some(args)) if args.is_empty() => continue,
                Ok(Some(args)) => {
                    let size: usize = args.iter().map(|a| a.len() + 16).sum();
                    let permits = size.clamp(1, budget_bytes) as u32;
                    let Ok(conn) = budget.clone().acquire_many_owned(permits).await else {
                        return;
                    };
                    // The command's bytes leave the buffer: its holding shrinks first,
                    // so they are not counted twice.
                    if !holding.fit(&ctx.memory, buf.capacity()).await {
                        return out_of_memory(&ctx, &tx).await;
                    }
                    let Some(shared) = ctx.memory.reserve(size).await else {
                        return out_of_memory(&ctx, &tx).await;
                    };
                    let class = classify(&args);
                    let item = Item::Cmd {
                        args,
                        class,
                        _budget: Budget {
                            _conn: conn,
                            _shared: shared,
                        },
                    };
                    if tx.send(Box::new(item)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(ProtoError::Recoverable { msg, skip }) => {
                    buf.advance(skip);
                    if tx
                        .send(Box::new(Item::Error { msg, close: false }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(ProtoError::Fatal(msg)) => {
                    let _ = tx.send(Box::new(Item::Error { msg, close: true })).await;
                    return;
                }
            }
        }
        match read_more(&mut rd, &mut buf, &mut read_size, &mut holding, &ctx).await {
            Ok(0) | Err(_) => return, // the writer finishes what was read, then closes
            Ok(n) if n == usize::MAX => return out_of_memory(&ctx, &tx).await,
            Ok(_) => {}
        }
    }
}

/// Reads into `buf`, with room for `read_size` more bytes (doubled when a read fills
/// it). An empty buffer is released before the connection waits: one read is tried
/// first, and only if no data is there yet is the allocation dropped (with what it held
/// from the shared budget) and the wait done with a fresh buffer of `read_size`, so an
/// idle connection holds none (a busy one rarely waits with nothing buffered). Returns
/// the bytes read (0 at the end), or `usize::MAX` when the shared budget stayed exhausted.
async fn read_more(
    rd: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    read_size: &mut usize,
    holding: &mut BufferHolding,
    ctx: &RespCtx,
) -> std::io::Result<usize> {
    if buf.is_empty() && buf.capacity() > 0 {
        // Cancel-safe: a read that is not ready has read nothing.
        let now = {
            let mut read = std::pin::pin!(rd.read_buf(buf));
            std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await
        };
        if let Poll::Ready(r) = now {
            return grown(r, read_size);
        }
        *buf = BytesMut::new();
    }
    buf.reserve(*read_size);
    if !holding.fit(&ctx.memory, buf.capacity()).await {
        return Ok(usize::MAX);
    }
    let spare = buf.capacity() - buf.len();
    let r = rd.read_buf(buf).await;
    if matches!(r, Ok(n) if n == spare) {
        *read_size = (*read_size * 2).min(READ_MAX);
    }
    r
}

/// A read's outcome, doubling `read_size` if it filled its room (not known here: any
/// read of `read_size` bytes or more counts).
fn grown(r: std::io::Result<usize>, read_size: &mut usize) -> std::io::Result<usize> {
    if matches!(r, Ok(n) if n >= *read_size) {
        *read_size = (*read_size * 2).min(READ_MAX);
    }
    r
}

/// Closes the connection with [`OUT_OF_CLIENT_MEMORY`], after the replies before it.
async fn out_of_memory(ctx: &RespCtx, tx: &mpsc::Sender<Box<Item>>) {
    ctx.node.metrics.client_memory_refused.inc();
    tracing::warn!(
        limit = ctx.memory.limit(),
        used = ctx.memory.used(),
        "closing a client connection: the client memory limit is reached"
    );
    let msg = OUT_OF_CLIENT_MEMORY.to_string();
    let _ = tx.send(Box::new(Item::Error { msg, close: true })).await;
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    Barrier,
}

/// Commands that may run concurrently. Invariant: at most one `Kind` besides free
/// commands; a barrier is alone; writes touch distinct keys.
#[derive(Default)]
struct Group {
    items: Vec<(Vec<Bytes>, Budget)>,
    kind: Option<Kind>,
    keys: HashSet<Bytes>,
}

type Cmd = (Vec<Bytes>, Class, Budget);

impl Group {
    /// Adds the command if it may run with the group; gives it back if not.
    fn try_add(&mut self, cmd: Cmd) -> Option<Cmd> {
        let (args, class, permit) = cmd;
        if !self.items.is_empty() {
            let fits = !self.closed()
                && match (&class, self.kind) {
                    (Class::Free, _) => true,
                    (Class::Read, None | Some(Kind::Read)) => true,
                    (Class::Write(keys), None | Some(Kind::Write)) => {
                        keys.iter().all(|k| !self.keys.contains(k))
                    }
                    _ => false,
                };
            if !fits {
                return Some((args, class, permit));
            }
        }
        match class {
            Class::Free => {}
            Class::Read => self.kind = Some(Kind::Read),
            Class::Write(keys) => {
                self.kind = Some(Kind::Write);
                self.keys.extend(keys);
            }
            Class::Barrier => self.kind = Some(Kind::Barrier),
        }
        self.items.push((args, permit));
        None
    }

    fn closed(&self) -> bool {
        self.kind == Some(Kind::Barrier) || self.items.len() >= MAX_GROUP
    }
}

async fn write_loop(
    mut wr: impl AsyncWrite + Unpin,
    mut rx: mpsc::Receiver<Box<Item>>,
    ctx: Arc<RespCtx>,
    client: Arc<Client>,
) -> std::io::Result<()> {
    // Grown as replies are encoded, released while the connection waits for commands.
    let mut out = BytesMut::new();
    let mut carry: Option<Item> = None;
    // MULTI ... EXEC: while one is open, every command goes to it, one at a time.
    let mut txn = Txn::default();
    // SUBSCRIBE and friends: once there is one, the connection is in subscribed mode.
    let mut subs = Subscriptions::new(ctx.hub.clone(), client.clone());
    loop {
        let item = match carry.take() {
            Some(i) => i,
            None => match rx.try_recv() {
                Ok(i) => *i,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    // Waiting with everything written: an idle connection holds no
                    // reply buffer.
                    if out.is_empty() {
                        out = BytesMut::new();
                    }
                    match rx.recv().await {
                        Some(i) => *i,
                        None => break,
                    }
                }
            },
        };
        let (args, class, permit) = match item {
            Item::Error { msg, close } => {
                Value::err(msg).encode(&mut out);
                if close {
                    break;
                }
                if rx.is_empty() {
                    write_flush(&mut wr, &out).await?;
                    out.clear();
                }
                continue;
            }
            Item::Cmd {
                args,
                class,
                _budget,
            } => (args, class, _budget),
        };
        if txn.takes(&args) {
            client.touch(&String::from_utf8_lossy(&args[0]).to_ascii_lowercase());
            // Boxed, as the group below: a connection waiting for commands keeps only the
            // small state of this loop, not the largest of the futures it awaits.
            Box::pin(txn.handle(&ctx, &client, &args))
                .await
                .encode_as(client.protocol(), &mut out);
            drop(permit);
            if rx.is_empty() || out.len() >= WRITE_CHUNK {
                wr.write_all(&out).await?;
                out.clear();
            }
            continue;
        }
        if pubsub::takes(&args) {
            client.touch(&String::from_utf8_lossy(&args[0]).to_ascii_lowercase());
            let replies =
                subscribed::subscription_command(&ctx, &client, &mut subs, &mut txn, &args);
            let proto = client.protocol();
            for r in replies {
                r.encode_as(proto, &mut out);
            }
            drop(permit);
            if subs.active() {
                // Boxed: subscribed mode's state is only paid for while in it.
                let after = Box::pin(subscribed::run(
                    &mut wr, &mut rx, &mut out, &ctx, &client, &mut subs, &mut txn,
                ))
                .await?;
                if let After::Closed = after {
                    return Ok(());
                }
            }
            if rx.is_empty() || out.len() >= WRITE_CHUNK {
                write_flush(&mut wr, &out).await?;
                out.clear();
            }
            continue;
        }
        let mut group = Group::default();
        let _ = group.try_add((args, class, permit));
        while !group.closed() {
            match rx.try_recv().map(|i| *i) {
                Ok(Item::Cmd {
                    args,
                    class,
                    _budget,
                }) => {
                    if let Some((args, class, _budget)) = group.try_add((args, class, _budget)) {
                        carry = Some(Item::Cmd {
                            args,
                            class,
                            _budget,
                        });
                        break;
                    }
                }
                Ok(other) => {
                    carry = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let close = Box::pin(run_group(&ctx, &client, group.items, &mut out)).await;
        if close {
            break;
        }
        if (carry.is_none() && rx.is_empty()) || out.len() >= WRITE_CHUNK {
            write_flush(&mut wr, &out).await?;
            out.clear();
        }
    }
    write_flush(&mut wr, &out).await?;
    let _ = wr.shutdown().await;
    Ok(())
}

/// Runs a group's commands concurrently and encodes the replies in order. Returns true
/// if the connection must close (QUIT).
///
/// The commands are polled in order in this task, so their requests are submitted to the
/// node in the order they were received (see the module docs); all of them are in flight
/// before the first reply is awaited.
async fn run_group(
    ctx: &Arc<RespCtx>,
    client: &Arc<Client>,
    items: Vec<(Vec<Bytes>, Budget)>,
    out: &mut BytesMut,
) -> bool {
    let outcomes: Vec<Outcome> = join_all(items.into_iter().map(|(args, permit)| {
        let (ctx, client) = (ctx.clone(), client.clone());
        async move {
            let o = execute(ctx, client, args).await;
            drop(permit); // room for the reader as soon as this one is done
            o
        }
    }))
    .await;
    // Read after the group ran: a HELLO (always alone in its group) answers in the
    // protocol it switched to.
    let proto = client.protocol();
    let mut close = false;
    for o in outcomes {
        o.value.encode_as(proto, out);
        close |= o.close;
    }
    close
}

/// Writes and flushes: a TLS session may hold written bytes until flushed (a TCP
/// socket has nothing to flush).
async fn write_flush(wr: &mut (impl AsyncWrite + Unpin), out: &[u8]) -> std::io::Result<()> {
    wr.write_all(out).await?;
    wr.flush().await
}
