//! The Redis-protocol (RESP2) front end: codec, commands, connections, accept loop.

pub mod client;
pub mod codec;
pub mod commands;
pub mod conn;
pub mod scan;

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use commands::RespCtx;

/// Accepts clients, at most `max_clients` at once; the one over the limit gets an error
/// reply and is closed (as Redis does).
pub async fn accept_loop(
    listener: TcpListener,
    ctx: Arc<RespCtx>,
    max_clients: usize,
    stop: tokio::sync::watch::Receiver<bool>,
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
        let mut stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = conn::serve(stream, ctx) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            drop(slot);
        });
    }
}
