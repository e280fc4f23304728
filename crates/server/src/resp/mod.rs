//! The Redis-protocol front end (RESP2, and RESP3 after `HELLO 3`): codec, commands, connections, accept loop.

pub mod acl;
pub mod client;
pub mod codec;
pub mod commands;
pub mod conn;
pub mod memory;
pub mod scan;

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
    match tls {
        None => {
            let (rd, wr) = stream.into_split();
            conn::serve(rd, wr, ends, ctx).await
        }
        // Boxed: a future is as large as its largest state, and the TLS session's (over
        // a kilobyte) would otherwise be in every connection's task, TLS or not.
        Some(tls) => Box::pin(serve_tls(stream, ends, ctx, tls)).await,
    }
}

async fn serve_tls(stream: TcpStream, ends: client::Endpoints, ctx: Arc<RespCtx>, tls: Arc<Tls>) {
    let peer = ends.addr.map(|a| a.to_string()).unwrap_or_default();
    let handshake = tls.public_acceptor().accept(stream);
    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            ctx.node.metrics.client_tls_refused.inc();
            tracing::warn!(%peer, "refusing a RESP client: TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            ctx.node.metrics.client_tls_refused.inc();
            tracing::warn!(%peer, "refusing a RESP client: no TLS handshake within {TLS_HANDSHAKE_TIMEOUT:?}");
            return;
        }
    };
    let (rd, wr) = tokio::io::split(stream);
    conn::serve(rd, wr, ends, ctx).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Arc<RespCtx> {
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let metrics = Arc::new(crate::metrics::LoopMetrics::default());
        let node = crate::handle::NodeHandle::new(tx, std::time::Duration::from_secs(1), metrics);
        let users = acl::users::Users::of(&kv::Acl::default(), &[]);
        Arc::new(RespCtx {
            node,
            me: 1,
            max_value_bytes: 1 << 20,
            max_key_bytes: 1 << 10,
            max_request_bytes: 8 << 20,
            max_pipeline: 1024,
            max_clients: 10,
            client_port: 0,
            started: std::time::Instant::now(),
            cursors: Default::default(),
            clients: Default::default(),
            memory: memory::ClientMemory::new(1 << 30),
            users: tokio::sync::watch::channel(Arc::new(users)).1,
            bootstrap: Vec::new(),
        })
    }

    /// Every connection is a task whose future is as large as its largest state, held for
    /// as long as the connection is open: ten thousand idle clients hold ten thousand of
    /// them (tests/flood.rs measures the whole). The TLS session and the futures of
    /// running commands are boxed so that they are not part of it; before, the task of a
    /// plain TCP connection was 2.3 KB and its writer's 2.2 KB.
    #[tokio::test]
    async fn a_connections_task_stays_small() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        s.set_nonblocking(true).unwrap();
        let stream = TcpStream::from_std(s).unwrap();
        let task = serve(stream, ctx(), None);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 1536, "a connection's task future is {size} bytes");
        let (a, _b) = tokio::io::duplex(1);
        let (rd, wr) = tokio::io::split(a);
        let conn = conn::serve(rd, wr, client::Endpoints::default(), ctx());
        let size = std::mem::size_of_val(&conn);
        assert!(size <= 1280, "the writer's future is {size} bytes");
    }
}
