//! raftkv speaks RESP like Redis, so this is the Redis driver plus one thing: during an
//! election a node cannot place a request and answers with an error naming the cause.
//! Those errors are retried inside the operation, so their cost shows up in its latency,
//! which is what a real client waiting on the cluster sees.

use std::time::Duration;

use super::redis::{expect_ok, RedisConn};
use super::resp::Reply;
use super::Found;

/// Retries for one operation: 200 × 10 ms covers an election timeout several times over.
const MAX_RETRIES: u32 = 200;
const RETRY_PAUSE: Duration = Duration::from_millis(10);

pub struct RaftkvConn {
    inner: RedisConn,
}

impl RaftkvConn {
    pub async fn connect(addr: &str) -> Result<Self, String> {
        RaftkvConn::connect_with(addr, false).await
    }

    /// Over TLS when `tls` (see [`super::resp::trust_ca`]).
    pub async fn connect_with(addr: &str, tls: bool) -> Result<Self, String> {
        Ok(RaftkvConn {
            inner: RedisConn::connect_with(addr, tls).await?,
        })
    }

    async fn call(&mut self, args: &[&[u8]]) -> Result<Reply, String> {
        let mut tries = 0;
        loop {
            match self.inner.call(args).await? {
                Reply::Error(e) if is_transient(&e) && tries < MAX_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                r => return Ok(r),
            }
        }
    }

    pub async fn get(&mut self, key: &[u8]) -> Result<Found, String> {
        match self.call(&[b"GET", key]).await? {
            Reply::Bulk(Some(_)) => Ok(Found::Hit),
            Reply::Bulk(None) => Ok(Found::Miss),
            Reply::Error(e) => Err(e),
            other => Err(format!("GET answered {other:?}")),
        }
    }

    pub async fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        expect_ok(self.call(&[b"SET", key, value]).await?)
    }

    pub async fn set_many(&mut self, keys: &[Vec<u8>], value: &[u8]) -> Result<(), String> {
        let mut args: Vec<&[u8]> = Vec::with_capacity(1 + 2 * keys.len());
        args.push(b"MSET");
        for k in keys {
            args.push(k);
            args.push(value);
        }
        expect_ok(self.call(&args).await?)
    }
}

/// Errors that mean "no leader right now, ask again", as opposed to a refused request.
/// Matched loosely on purpose: the server's exact wording is not settled yet.
fn is_transient(e: &str) -> bool {
    let e = e.to_ascii_lowercase();
    [
        "tryagain",
        "leader",
        "election",
        "loading",
        "unavailable",
        "timeout",
    ]
    .iter()
    .any(|w| e.contains(w))
}

#[cfg(test)]
mod tests {
    #[test]
    fn transient_errors() {
        assert!(super::is_transient("TRYAGAIN no leader yet"));
        assert!(super::is_transient("ERR not leader"));
        assert!(!super::is_transient("ERR value too large"));
    }
}
