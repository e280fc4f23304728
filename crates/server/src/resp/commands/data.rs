//! The typed model's commands (strings, keys, expiry, hashes): parsed by `typed.rs` into
//! one `kv::Command` or `kv::Query`, sent to the node as one request, answered with the
//! state machine's `kv::Reply`. Every write here is one log entry: `MSET`, `DEL k1 k2`,
//! `INCR` and `SET ... XX` are atomic, with no read-then-CAS loop.

use bytes::Bytes;
use driver::Request;

use super::node_calls::ReadFrom;
use super::typed::{self, Parsed};
use super::{Failed, Res, RespCtx};
use crate::reply::Reply;
use crate::resp::client::Client;
use crate::resp::codec::Value;
use crate::resp::scan::glob_match;

pub(super) async fn run(
    ctx: &RespCtx,
    client: &Client,
    name: &str,
    a: &[Bytes],
) -> Option<Res<Value>> {
    let parsed = typed::parse(name, a, unix_ms())?;
    Some(
        async {
            let p = parsed.map_err(|e| Failed(Value::err(e.text(name))))?;
            ctx.check_parsed(&p, a)?;
            // HSCAN's MATCH filters the page here (the state machine has no globs).
            let pattern = match name {
                "HSCAN" => typed::hscan(a).ok().and_then(|(_, p)| p),
                _ => None,
            };
            let reply = ctx.kv(p, ReadFrom::of(client)).await?;
            Ok(match pattern {
                Some(p) => hscan_filter(typed::to_value(reply), &p, a),
                None => typed::to_value(reply),
            })
        }
        .await,
    )
}

impl RespCtx {
    /// One typed request to the node; its answer, or the error reply.
    pub(super) async fn kv(&self, p: Parsed, from: ReadFrom) -> Res<kv::Reply> {
        let (req, from) = match p {
            Parsed::Write(c) => (Request::Write(c), ReadFrom::Node),
            Parsed::Read(q) => (Request::Read(q), from),
        };
        match self.call_from(req, from).await? {
            Reply::Kv(r) => Ok(r),
            other => Err(Failed(Value::err(format!(
                "internal error: unexpected answer {other:?}"
            )))),
        }
    }

    /// The key and value limits, for every argument of a typed command.
    pub(super) fn check_parsed(&self, p: &Parsed, a: &[Bytes]) -> Res<()> {
        for k in typed::keys_of(p) {
            self.check_key(&k)?;
        }
        for v in a {
            self.check_value(v)?;
        }
        // SETRANGE builds a string as long as its offset: bounded like a value.
        if let Parsed::Write(kv::Command::SetRange { offset, value, .. }) = p {
            if offset.saturating_add(value.len() as u64) > self.max_value_bytes as u64 {
                return Err(Failed(Value::err(
                    "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
                )));
            }
        }
        Ok(())
    }
}

/// Keeps the fields of an HSCAN page that match `pattern` (with their values, unless
/// NOVALUES).
fn hscan_filter(v: Value, pattern: &[u8], a: &[Bytes]) -> Value {
    let novalues = a[2..].iter().any(|o| o.eq_ignore_ascii_case(b"NOVALUES"));
    let step = if novalues { 1 } else { 2 };
    let Value::Array(Some(mut parts)) = v else {
        return v;
    };
    if let Some(Value::Array(Some(items))) = parts.get_mut(1) {
        let kept: Vec<Value> = items
            .chunks(step)
            .filter(|c| matches!(&c[0], Value::Bulk(Some(f)) if glob_match(pattern, f)))
            .flat_map(|c| c.to_vec())
            .collect();
        *items = kept;
    }
    Value::Array(Some(parts))
}

/// The system clock in Unix ms (for Redis's TTL overflow checks only: the deadline is
/// decided by the leader's clock at apply).
pub(super) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
