//! The Redis-protocol front end (RESP2, and RESP3 after `HELLO 3`): codec, commands, connections, accept loop.

pub mod client;
pub mod codec;
pub mod commands;
pub mod conn;
pub mod memory;
pub mod pubsub;
pub mod scan;
pub mod subscribed;

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::tls::Tls;
use commands::RespCtx;

/// A client must finish its TLS handshake this fast, or give its slot back.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Accepts clients, at most `max_clients` at once; the one over the limit gets an error
/// reply and is closed (as Redis does). With `tls`, every client must speak TLS.
pub async fn accept_loop(
    listener: TcpListener,
    ctx: Arc<RespCtx>,
    max_clients: usize,
    stop: tokio::sync::watch::Receiver<bool>,
    tls: Option<Arc<Tls>>,
) {
    let slots = Arc::new(Semaphore::new(max_clients));
    loop {
        let (mut stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("client accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(async move {
                let _ = stream
                    .write_all(b"-ERR max number of clients reached\r\n")
                    .await;
            });
            continue;
        };
        let ctx = ctx.clone();
        let tls = tls.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = serve(stream, ctx, tls) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            drop(slot);
        });
    }
}

async fn serve(stream: TcpStream, ctx: Arc<RespCtx>, tls: Option<Arc<Tls>>) {
    let _ = stream.set_nodelay(true);
    let ends = client::Endpoints::of(&stream);
    let peer = ends.addr.map(|a| a.to_string()).unwrap_or_default();
    let Some(tls) = tls else {
        let (rd, wr) = stream.into_split();
        return conn::serve(rd, wr, ends, ctx).await;
    };
    let handshake = tls.public_acceptor().accept(stream);
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => {
            let (rd, wr) = tokio::io::split(stream);
            conn::serve(rd, wr, ends, ctx).await
        }
        Ok(Err(e)) => {
            ctx.node.metrics.client_tls_refused.inc();
            tracing::warn!(%peer, "refusing a RESP client: TLS handshake failed: {e}");
        }
        Err(_) => {
            ctx.node.metrics.client_tls_refused.inc();
            tracing::warn!(%peer, "refusing a RESP client: no TLS handshake within {TLS_HANDSHAKE_TIMEOUT:?}");
        }
    }
}
