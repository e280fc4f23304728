//! Inbound peer connections: the accept loop and one reader task per connection.
//!
//! A connection must open with `Hello { from, to }` naming a configured peer and this
//! node; anything else is a misconfiguration and the connection is closed with a log
//! line. After that every frame is decoded and handed to the node loop. A decoding error
//! (bad version, garbage, oversized frame) closes the connection with a log line: the
//! stream cannot be resynchronised, and the peer's writer reconnects.

use std::collections::BTreeSet;
use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use raft::NodeId;
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{self, error::TrySendError};

use super::codec::{check_len, decode_body, CodecError, Frame, LEN_BYTES};
use super::peer::PeerRouter;
use crate::handle::Event;
use crate::metrics::LoopMetrics;
use crate::reply::Reply;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("bad frame: {0}")]
    Codec(#[from] CodecError),
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_frame: usize,
) -> Result<Option<Frame>, ReadError> {
    let mut len = [0u8; LEN_BYTES];
    let mut got = 0;
    while got < LEN_BYTES {
        let n = r.read(&mut len[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(CodecError::Truncated("length prefix").into());
        }
        got += n;
    }
    let len = u32::from_be_bytes(len) as usize;
    // Checked before allocating: a forged length cannot make us reserve memory.
    check_len(len, max_frame)?;
    let mut body = BytesMut::zeroed(len);
    match r.read_exact(&mut body).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(CodecError::Truncated("frame").into())
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Some(decode_body(body.freeze())?))
}

pub struct Inbound {
    pub me: NodeId,
    pub peers: BTreeSet<NodeId>,
    pub events: mpsc::Sender<Event>,
    pub router: PeerRouter,
    pub max_frame: usize,
    pub metrics: Arc<LoopMetrics>,
    /// Flips to true at shutdown: open connections close too.
    pub stop: tokio::sync::watch::Receiver<bool>,
}

pub async fn accept_loop(listener: TcpListener, ctx: Arc<Inbound>) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
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

async fn serve(stream: TcpStream, ctx: &Inbound) -> Result<(), String> {
    let mut r = BufReader::with_capacity(64 << 10, stream);
    let from = match read_frame(&mut r, ctx.max_frame).await {
        Ok(Some(Frame::Hello { from, to })) => {
            if to != ctx.me {
                return Err(format!("hello for node {to}, but this is node {}", ctx.me));
            }
            if !ctx.peers.contains(&from) {
                return Err(format!(
                    "hello from node {from}, which is not a configured peer"
                ));
            }
            from
        }
        Ok(Some(other)) => return Err(format!("expected hello, got {}", frame_name(&other))),
        Ok(None) => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    tracing::debug!(peer = from, "peer connected");
    loop {
        let frame = match read_frame(&mut r, ctx.max_frame).await {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("from node {from}: {e}")),
        };
        match frame {
            Frame::Raft(msg) => {
                if msg.from != from || msg.to != ctx.me {
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
            Frame::Hello { .. } => return Err(format!("node {from} sent a second hello")),
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
