//! A connection in subscribed mode: it has at least one channel, pattern or watch.
//!
//! One task interleaves three things: writing the output buffer as the socket takes it,
//! reading the node's events into it when the applied index moves (`pubsub/pump.rs`),
//! and running the client's commands. In RESP2 only (P)SUBSCRIBE, (P)UNSUBSCRIBE,
//! RAFTKV.(UN)WATCH, PING, QUIT and RESET are allowed (Redis's rule, with its error);
//! in RESP3 any command runs, one at a time, and its reply follows the messages its own
//! write produced (Redis sends a notification before the reply to the command).
//!
//! Bounds: the output buffer is Redis's `client-output-buffer-limit pubsub` — over the
//! hard limit, or over the soft one for its duration, the connection is closed and
//! counted (`raftkv_pubsub_output_limit_disconnects_total`); its bytes beyond a small
//! allowance come from the shared client memory budget (`memory.rs`). A watch that falls
//! behind what the node keeps gets `-TRIMMED ...` and is closed
//! (`raftkv_watch_trimmed_disconnects_total`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::client::Client;
use super::codec::{Protocol, Value};
use super::commands::{command_label, execute, table, unknown_command, RespCtx, Txn};
use super::conn::Item;
use super::memory::BufferHolding;
use super::pubsub::{self, Stop, Subscriptions};
use crate::events::OutputLimits;
use crate::resp::acl::gate::{self, Verdict};

/// How the connection goes on after subscribed mode.
pub enum After {
    /// No subscriptions left: back to ordinary commands.
    Normal,
    /// Closed (the client left, QUIT, or a limit): nothing more to write.
    Closed,
}

/// The last bytes of a closing connection get this long to leave.
const FINAL_WRITE: Duration = Duration::from_secs(1);

pub async fn run<W: AsyncWrite + Unpin>(
    wr: &mut W,
    rx: &mut mpsc::Receiver<Box<Item>>,
    out: &mut BytesMut,
    ctx: &Arc<RespCtx>,
    client: &Arc<Client>,
    subs: &mut Subscriptions,
    txn: &mut Txn,
) -> std::io::Result<After> {
    let mut changes = ctx.hub.changes();
    let mut soft_since: Option<Instant> = None;
    let mut holding = BufferHolding::new(&ctx.memory);
    loop {
        let more = match subs.pump(client.protocol(), out) {
            Ok(more) => more,
            Err(stop) => return stopped(wr, out, ctx, client, stop).await,
        };
        if let Some(why) = over_limit(out.len(), &ctx.hub.limits, &mut soft_since) {
            ctx.hub.metrics.pubsub_output_limit_disconnects.inc();
            tracing::warn!(
                client = client.id,
                bytes = out.len(),
                "closing a subscriber that does not keep up: {why}"
            );
            return Ok(After::Closed);
        }
        if !holding.fit(&ctx.memory, out.len()).await {
            ctx.node.metrics.client_memory_refused.inc();
            tracing::warn!(
                client = client.id,
                "closing a subscriber: the client memory limit is reached"
            );
            return Ok(After::Closed);
        }
        if !subs.active() {
            return Ok(After::Normal);
        }
        tokio::select! {
            biased;
            written = wr.write(out), if !out.is_empty() => {
                let n = written?;
                if n == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                out.advance(n);
                if out.is_empty() {
                    wr.flush().await?;
                }
            }
            item = rx.recv() => {
                let Some(item) = item else {
                    // The client closed its side: what was read is answered.
                    final_write(wr, out).await;
                    return Ok(After::Closed);
                };
                let close = match *item {
                    Item::Error { msg, close } => {
                        Value::err(msg).encode_as(client.protocol(), out);
                        close
                    }
                    Item::Cmd { args, .. } => {
                        let (replies, close) = command(ctx, client, subs, txn, &args).await;
                        // The messages its own write produced come first.
                        if let Err(stop) = subs.pump(client.protocol(), out) {
                            return stopped(wr, out, ctx, client, stop).await;
                        }
                        let proto = client.protocol();
                        for r in replies {
                            r.encode_as(proto, out);
                        }
                        close
                    }
                };
                if close {
                    final_write(wr, out).await;
                    return Ok(After::Closed);
                }
            }
            changed = changes.changed(), if !more => {
                if changed.is_err() {
                    return Ok(After::Closed); // the node is gone
                }
            }
            _ = tokio::task::yield_now(), if more => {}
        }
    }
}

/// Runs one command in subscribed mode: its replies, and whether to close after them.
async fn command(
    ctx: &Arc<RespCtx>,
    client: &Arc<Client>,
    subs: &mut Subscriptions,
    txn: &mut Txn,
    args: &[Bytes],
) -> (Vec<Value>, bool) {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    if pubsub::takes(args) {
        client.touch(&name);
        return (subscription_command(ctx, client, subs, txn, args), false);
    }
    if client.protocol() == Protocol::Resp2 {
        if let Some(refused) = refused_in_resp2(&name, args) {
            client.touch(&name);
            return (vec![refused], false);
        }
        if name == "PING" {
            client.touch(&name);
            if args.len() > 2 {
                return (vec![super::commands::wrong_args(&name)], false);
            }
            // Redis's subscribed PING: an array, not +PONG.
            let arg = args.get(1).cloned().unwrap_or_default();
            return (
                vec![Value::Array(Some(vec![
                    Value::bulk("pong"),
                    Value::bulk(arg),
                ]))],
                false,
            );
        }
    }
    if txn.takes(args) {
        client.touch(&name);
        return (vec![txn.handle(ctx, client, args).await], false);
    }
    let o = execute(ctx.clone(), client.clone(), args.to_vec()).await;
    (vec![o.value], o.close)
}

/// A subscription command, in either mode; RESET also resets the rest of the
/// connection's state, as Redis's does.
///
/// It passes the same check as every other command first (`resp/acl/gate.rs`: NOAUTH,
/// and NOPERM for a user without `@pubsub`); channel permissions (`&pattern`) are not
/// enforced: every user may use every channel, as with Redis's `allchannels`.
pub fn subscription_command(
    ctx: &RespCtx,
    client: &Client,
    subs: &mut Subscriptions,
    txn: &mut Txn,
    args: &[Bytes],
) -> Vec<Value> {
    match gate::check(ctx, client, args) {
        Verdict::Run => {}
        Verdict::Refuse(v) => return vec![v],
        Verdict::Close => {
            client.kill();
            return vec![Value::err("this connection's user was deleted")];
        }
    }
    let replies = subs.handle(args);
    if args[0].eq_ignore_ascii_case(b"RESET") {
        *txn = Txn::default();
        let mut s = client.state();
        s.name = Bytes::new();
        s.protocol = Protocol::Resp2;
        s.local_reads = false;
    }
    replies
}

/// In RESP2 subscribed mode: Redis's error for a command other than the subscription
/// ones, PING, QUIT and RESET (after the unknown-command and arity checks, in its order).
fn refused_in_resp2(name: &str, args: &[Bytes]) -> Option<Value> {
    let Some(spec) = table::command_spec(name) else {
        return Some(unknown_command(args));
    };
    if !spec.arity_ok(args.len()) {
        return Some(super::commands::wrong_args(name));
    }
    if matches!(name, "PING" | "QUIT") {
        return None;
    }
    Some(Value::err(format!(
        "Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET \
         are allowed in this context",
        command_label(name, args)
    )))
}

/// Redis's rule: over the hard limit, or over the soft one for its whole duration.
fn over_limit(len: usize, l: &OutputLimits, soft_since: &mut Option<Instant>) -> Option<String> {
    if len > l.hard_bytes {
        return Some(format!(
            "{len} bytes waiting, over the hard limit of {} (limits.pubsub_output_hard_bytes)",
            l.hard_bytes
        ));
    }
    if len <= l.soft_bytes {
        *soft_since = None;
        return None;
    }
    let since = *soft_since.get_or_insert_with(Instant::now);
    (since.elapsed() >= l.soft_for).then(|| {
        format!(
            "over the soft limit of {} bytes for {:?} (limits.pubsub_output_soft_*)",
            l.soft_bytes, l.soft_for
        )
    })
}

/// The connection's reading stopped: say why (a watch) and close.
async fn stopped<W: AsyncWrite + Unpin>(
    wr: &mut W,
    out: &mut BytesMut,
    ctx: &RespCtx,
    client: &Client,
    stop: Stop,
) -> std::io::Result<After> {
    match stop {
        Stop::ChannelsBehind => {
            ctx.hub.metrics.pubsub_output_limit_disconnects.inc();
            tracing::warn!(
                client = client.id,
                "closing a subscriber that fell behind the node's events"
            );
        }
        Stop::WatchBehind {
            prefix,
            from,
            oldest,
        } => {
            ctx.hub.metrics.watch_trimmed_disconnects.inc();
            tracing::warn!(
                client = client.id,
                from,
                oldest,
                "closing a watch that fell behind the node's events"
            );
            pubsub::trimmed(&prefix, from, oldest).encode_as(client.protocol(), out);
            final_write(wr, out).await;
        }
    }
    Ok(After::Closed)
}

/// Writes what is left, if the client takes it within [`FINAL_WRITE`].
async fn final_write<W: AsyncWrite + Unpin>(wr: &mut W, out: &mut BytesMut) {
    let write = async {
        wr.write_all(out).await?;
        wr.flush().await
    };
    let _ = tokio::time::timeout(FINAL_WRITE, write).await;
    out.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_needs_its_whole_duration_and_the_hard_one_none() {
        let l = OutputLimits {
            hard_bytes: 100,
            soft_bytes: 50,
            soft_for: Duration::from_millis(30),
        };
        let mut since = None;
        assert!(over_limit(101, &l, &mut since).is_some());
        assert!(over_limit(60, &l, &mut since).is_none());
        std::thread::sleep(Duration::from_millis(40));
        assert!(over_limit(60, &l, &mut since).is_some());
        assert!(over_limit(40, &l, &mut since).is_none(), "under it again");
        assert!(
            over_limit(60, &l, &mut since).is_none(),
            "the clock starts over"
        );
    }
}
