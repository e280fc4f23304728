//! The requests to the node, as typed calls that turn the node's answers into values or
//! error replies; the key and value limits checked before a call; and `join_all`, which
//! keeps a pipeline's requests in order while they are in flight together.
//!
//! The typed model's commands go as `Request::Write`/`Request::Read` (`data.rs`); CAS
//! and SCAN keep their own requests.

use std::future::Future;

use bytes::Bytes;
use driver::Request;

use super::{Failed, Res, RespCtx};
use crate::handle::CallError;
use crate::reply::Reply;
use crate::resp::client::Client;
use crate::resp::codec::Value;
use crate::status::Status;

/// Where a read is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReadFrom {
    /// As the node's read mode says (linearizable by default: through the leader).
    Node,
    /// This node's state machine as it is, no leader round (a `READONLY` connection).
    Local,
}

impl ReadFrom {
    pub(super) fn of(client: &Client) -> ReadFrom {
        if client.state().local_reads {
            ReadFrom::Local
        } else {
            ReadFrom::Node
        }
    }
}

/// Bytes of keys in one SCAN/KEYS page (well inside a peer frame).
pub(super) const SCAN_PAGE_BYTES: u32 = 256 << 10;

impl From<CallError> for Failed {
    fn from(e: CallError) -> Self {
        Failed(match e {
            CallError::Timeout => Value::err("TIMEOUT no answer in time; the outcome is unknown"),
            CallError::Stopped => Value::err("node is shutting down"),
            CallError::StoppedInFlight => Value::err(
                "TIMEOUT the node stopped with the request in flight; the outcome is unknown",
            ),
        })
    }
}

impl RespCtx {
    pub(super) async fn call(&self, req: Request) -> Res<Reply> {
        self.call_from(req, ReadFrom::Node).await
    }

    pub(super) async fn call_from(&self, req: Request, from: ReadFrom) -> Res<Reply> {
        let reply = match from {
            ReadFrom::Node => self.node.call(req).await?,
            ReadFrom::Local => self.node.read_local(req).await?,
        };
        match reply {
            Reply::Fail(why) => Err(Failed(Value::err(why))),
            // Clients tell "maybe applied" by the TIMEOUT code.
            Reply::Unknown(why) if why.starts_with("TIMEOUT") => Err(Failed(Value::err(why))),
            Reply::Unknown(why) if why.contains("unknown") => {
                Err(Failed(Value::err(format!("TIMEOUT {why}"))))
            }
            Reply::Unknown(why) => Err(Failed(Value::err(format!(
                "TIMEOUT {why}; the outcome is unknown"
            )))),
            Reply::Redirect(_) => Err(Failed(Value::err(
                "CLUSTERDOWN no leader elected; try again",
            ))),
            r => Ok(r),
        }
    }

    /// (swapped, value found)
    pub(super) async fn cas(
        &self,
        key: Bytes,
        expected: Option<Bytes>,
        new: Bytes,
    ) -> Res<(bool, Option<Bytes>)> {
        match self.call(Request::Cas { key, expected, new }).await? {
            Reply::Cas { swapped, current } => Ok((swapped, current)),
            other => Err(unexpected(&other)),
        }
    }

    /// One page of keys starting with `prefix` after `after`, and whether more may
    /// follow. Keys only, and at most `SCAN_PAGE_BYTES` of them, so a page forwarded
    /// from a follower always fits in a peer frame.
    pub(super) async fn scan_page(
        &self,
        prefix: Bytes,
        after: Option<Bytes>,
        limit: u32,
        from: ReadFrom,
    ) -> Res<(Vec<(Bytes, Bytes)>, bool)> {
        let req = Request::Scan {
            prefix,
            after,
            limit,
            max_bytes: SCAN_PAGE_BYTES,
            keys_only: true,
        };
        match self.call_from(req, from).await? {
            Reply::Entries(kvs) => {
                let more = driver::scan_page_is_full(&kvs, limit, SCAN_PAGE_BYTES);
                Ok((kvs, more))
            }
            other => Err(unexpected(&other)),
        }
    }

    pub(super) async fn status(&self) -> Res<Status> {
        Ok(self.node.status().await?)
    }

    pub(super) fn check_key(&self, key: &[u8]) -> Res<()> {
        if key.len() > self.max_key_bytes {
            return Err(Failed(Value::err(format!(
                "key too large ({} bytes; the limit is {})",
                key.len(),
                self.max_key_bytes
            ))));
        }
        Ok(())
    }

    pub(super) fn check_value(&self, value: &[u8]) -> Res<()> {
        if value.len() > self.max_value_bytes {
            return Err(Failed(Value::err(format!(
                "value too large ({} bytes; max_value_bytes is {})",
                value.len(),
                self.max_value_bytes
            ))));
        }
        Ok(())
    }
}

fn unexpected(r: &Reply) -> Failed {
    Failed(Value::err(format!(
        "internal error: unexpected answer {r:?}"
    )))
}

/// Awaits futures concurrently, results in order. (Small local version: the crate does
/// not depend on `futures`.)
///
/// Every pass polls the futures in order, starting with the first poll of each: so
/// futures that each begin by sending on the node's channel send in order — a send that
/// cannot complete at once (channel full, or the task's cooperative budget used up) makes
/// every later one in that pass wait too, and tokio's `mpsc` completes waiting sends in
/// the order they were requested. `conn.rs` relies on this for pipelined writes.
pub(crate) async fn join_all<F: Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut futs: Vec<_> = futs.map(|f| Some(Box::pin(f))).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, fut) in out.iter_mut().zip(futs.iter_mut()) {
            if let Some(f) = fut {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *slot = Some(v);
                        *fut = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn join_all_keeps_order() {
        let out = join_all((0..5u64).map(|i| async move {
            tokio::time::sleep(std::time::Duration::from_millis(10 * (5 - i))).await;
            i
        }))
        .await;
        assert_eq!(out, vec![0, 1, 2, 3, 4]);
    }
}
