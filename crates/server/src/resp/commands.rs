//! The commands: what each one asks of the node, and how its answer becomes a reply.
//!
//! Single-request commands map one to one onto the driver's requests (GET → Get, SET →
//! Put, SET NX → Cas with nothing expected, DEL → Delete, CAS → Cas). Read-modify-write
//! commands (INCR/DECR, SET XX) are compare-and-set loops: read, compute, CAS with what
//! was read, and retry with the value the CAS found if someone else got there first.
//! Each CAS is linearizable, so the loop is too (it takes effect at the successful CAS).
//! Multi-key commands (MGET, MSET, DEL/EXISTS with several keys) issue one request per
//! key, all at once; they are *not* atomic across keys (MSET in Redis is).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use node::Request;
use raft::NodeId;

use super::codec::Value;
use crate::handle::{CallError, NodeHandle};
use crate::reply::Reply;
use crate::status::Status;

/// What every connection shares.
pub struct RespCtx {
    pub node: NodeHandle,
    pub me: NodeId,
    pub max_value_bytes: usize,
    pub max_key_bytes: usize,
    pub max_request_bytes: usize,
    pub max_pipeline: usize,
    pub client_port: u16,
    pub started: Instant,
    /// SCAN cursors in flight (see `scan.rs`).
    pub cursors: super::scan::Cursors,
}

/// How a command orders against its neighbours in a pipeline (see `conn.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// Touches no data (PING, ECHO, COMMAND...): runs alongside anything.
    Free,
    /// Reads only (GET, MGET, EXISTS).
    Read,
    /// Writes with one request per key, no read first (SET, SET NX, DEL, MSET, CAS).
    Write(Vec<Bytes>),
    /// Everything else: runs alone, after everything before it finished.
    Barrier,
}

fn upper(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_uppercase()
}

pub fn classify(args: &[Bytes]) -> Class {
    let Some(name) = args.first() else {
        return Class::Free;
    };
    match upper(name).as_str() {
        "PING" | "ECHO" | "COMMAND" | "CLIENT" | "CONFIG" | "SELECT" => Class::Free,
        "GET" | "MGET" | "EXISTS" => Class::Read,
        "SET" if args.len() == 3 => Class::Write(vec![args[1].clone()]),
        "SET" if args.len() == 4 && upper(&args[3]) == "NX" => Class::Write(vec![args[1].clone()]),
        "SETNX" | "CAS" if args.len() >= 2 => Class::Write(vec![args[1].clone()]),
        "DEL" => Class::Write(args[1..].to_vec()),
        "MSET" => Class::Write(args[1..].iter().step_by(2).cloned().collect()),
        _ => Class::Barrier,
    }
}

/// The reply, and whether to close the connection after sending it.
pub struct Outcome {
    pub value: Value,
    pub close: bool,
}

impl From<Value> for Outcome {
    fn from(value: Value) -> Self {
        Outcome {
            value,
            close: false,
        }
    }
}

fn wrong_args(name: &str) -> Value {
    Value::err(format!(
        "wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    ))
}

/// A failed call or a `Fail` reply, as an error reply.
#[derive(Debug)]
struct Failed(Value);

impl From<CallError> for Failed {
    fn from(e: CallError) -> Self {
        Failed(match e {
            CallError::Timeout => Value::err("TIMEOUT no answer in time; the outcome is unknown"),
            CallError::Stopped => Value::err("node is shutting down"),
        })
    }
}

type Res<T> = Result<T, Failed>;

impl RespCtx {
    async fn call(&self, req: Request) -> Res<Reply> {
        match self.node.call(req).await? {
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

    async fn get(&self, key: Bytes) -> Res<Option<Bytes>> {
        match self.call(Request::Get { key }).await? {
            Reply::Value(v) => Ok(v),
            other => Err(unexpected(&other)),
        }
    }

    async fn put(&self, key: Bytes, value: Bytes) -> Res<()> {
        match self.call(Request::Put { key, value }).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// (swapped, value found)
    async fn cas(
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

    async fn delete(&self, key: Bytes) -> Res<bool> {
        match self.call(Request::Delete { key }).await? {
            Reply::Deleted(d) => Ok(d),
            other => Err(unexpected(&other)),
        }
    }

    fn check_key(&self, key: &[u8]) -> Res<()> {
        if key.len() > self.max_key_bytes {
            return Err(Failed(Value::err(format!(
                "key too large ({} bytes; the limit is {})",
                key.len(),
                self.max_key_bytes
            ))));
        }
        Ok(())
    }

    fn check_value(&self, value: &[u8]) -> Res<()> {
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

/// Bytes of keys in one SCAN/KEYS page (well inside a peer frame).
const SCAN_PAGE_BYTES: u32 = 256 << 10;

/// CAS retries before INCR or SET XX gives up under contention.
const MAX_CAS_ROUNDS: usize = 64;

pub async fn execute(ctx: Arc<RespCtx>, args: Vec<Bytes>) -> Outcome {
    let Some(name) = args.first() else {
        return Value::Simple(String::new()).into(); // empty command: nothing to say
    };
    let name = upper(name);
    if name == "QUIT" {
        return Outcome {
            value: Value::ok(),
            close: true,
        };
    }
    match run(&ctx, &name, &args[1..]).await {
        Ok(v) | Err(Failed(v)) => v.into(),
    }
}

impl RespCtx {
    /// One page of keys starting with `prefix` after `after` (a linearizable read), and
    /// whether more may follow. Keys only, and at most `SCAN_PAGE_BYTES` of them, so a
    /// page forwarded from a follower always fits in a peer frame.
    async fn scan_page(
        &self,
        prefix: Bytes,
        after: Option<Bytes>,
        limit: u32,
    ) -> Res<(Vec<(Bytes, Bytes)>, bool)> {
        match self
            .call(Request::Scan {
                prefix,
                after,
                limit,
                max_bytes: SCAN_PAGE_BYTES,
                keys_only: true,
            })
            .await?
        {
            Reply::Entries(kvs) => {
                let more = node::scan_page_is_full(&kvs, limit, SCAN_PAGE_BYTES);
                Ok((kvs, more))
            }
            other => Err(unexpected(&other)),
        }
    }
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE string]`.
async fn scan_command(ctx: &RespCtx, a: &[Bytes]) -> Res<Value> {
    use super::scan::{glob_match, literal_prefix, DEFAULT_COUNT, MAX_COUNT};
    let Some(cursor) = a.first() else {
        return Err(Failed(wrong_args("SCAN")));
    };
    let cursor: u64 = std::str::from_utf8(cursor)
        .ok()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Failed(Value::err("invalid cursor")))?;
    let (mut pattern, mut count) = (None, DEFAULT_COUNT);
    let mut rest = a[1..].chunks(2);
    for opt in rest.by_ref() {
        let [name, value] = opt else {
            return Err(Failed(Value::err("syntax error")));
        };
        match upper(name).as_str() {
            "MATCH" => pattern = Some(value.clone()),
            "COUNT" => {
                count = std::str::from_utf8(value)
                    .ok()
                    .and_then(|c| c.parse::<u32>().ok())
                    .filter(|&c| c > 0)
                    .ok_or_else(|| Failed(Value::err("value is not an integer or out of range")))?
                    .min(MAX_COUNT)
            }
            // Every value here is a string.
            "TYPE" if upper(value) == "STRING" => {}
            "TYPE" => {
                return Ok(Value::Array(Some(vec![
                    Value::bulk("0"),
                    Value::Array(Some(Vec::new())),
                ])))
            }
            _ => return Err(Failed(Value::err("syntax error"))),
        }
    }
    let after = ctx
        .cursors
        .resume(cursor)
        .map_err(|e| Failed(Value::err(e)))?;
    let prefix = pattern.as_deref().map_or_else(Bytes::new, literal_prefix);
    let (page, more) = ctx.scan_page(prefix, after, count).await?;
    let next = match page.last() {
        Some((last, _)) if more => ctx.cursors.save(last.clone()),
        _ => 0,
    };
    let keys = page
        .into_iter()
        .filter(|(k, _)| pattern.as_deref().is_none_or(|p| glob_match(p, k)))
        .map(|(k, _)| Value::bulk(k))
        .collect();
    Ok(Value::Array(Some(vec![
        Value::bulk(next.to_string()),
        Value::Array(Some(keys)),
    ])))
}

/// `KEYS pattern`: every matching key, refused beyond a bound (use SCAN for more).
async fn keys_command(ctx: &RespCtx, pattern: &Bytes) -> Res<Value> {
    use super::scan::{glob_match, literal_prefix, MAX_COUNT, MAX_KEYS};
    let prefix = literal_prefix(pattern);
    let mut after = None;
    let mut keys = Vec::new();
    loop {
        let (page, full) = ctx
            .scan_page(prefix.clone(), after.clone(), MAX_COUNT)
            .await?;
        after = page.last().map(|(k, _)| k.clone());
        keys.extend(
            page.into_iter()
                .filter(|(k, _)| glob_match(pattern, k))
                .map(|(k, _)| Value::bulk(k)),
        );
        if keys.len() > MAX_KEYS {
            return Err(Failed(Value::err(format!(
                "more than {MAX_KEYS} keys match; use SCAN"
            ))));
        }
        if !full {
            return Ok(Value::Array(Some(keys)));
        }
    }
}

async fn run(ctx: &RespCtx, name: &str, a: &[Bytes]) -> Res<Value> {
    let n = a.len();
    let arity = |ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(Failed(wrong_args(name)))
        }
    };
    match name {
        "PING" => {
            arity(n <= 1)?;
            Ok(match a.first() {
                Some(m) => Value::bulk(m.clone()),
                None => Value::Simple("PONG".into()),
            })
        }
        "ECHO" => {
            arity(n == 1)?;
            Ok(Value::bulk(a[0].clone()))
        }
        "GET" => {
            arity(n == 1)?;
            ctx.check_key(&a[0])?;
            Ok(Value::Bulk(ctx.get(a[0].clone()).await?))
        }
        "SET" => set(ctx, a).await,
        "SETNX" => {
            arity(n == 2)?;
            ctx.check_key(&a[0])?;
            ctx.check_value(&a[1])?;
            let (swapped, _) = ctx.cas(a[0].clone(), None, a[1].clone()).await?;
            Ok(Value::Int(i64::from(swapped)))
        }
        "CAS" => {
            arity(n == 3)?;
            ctx.check_key(&a[0])?;
            ctx.check_value(&a[2])?;
            let (swapped, _) = ctx
                .cas(a[0].clone(), Some(a[1].clone()), a[2].clone())
                .await?;
            Ok(Value::Int(i64::from(swapped)))
        }
        "DEL" | "UNLINK" => {
            arity(n >= 1)?;
            for k in a {
                ctx.check_key(k)?;
            }
            let done = join_all(a.iter().map(|k| ctx.delete(k.clone()))).await;
            let mut count = 0;
            for d in done {
                count += i64::from(d?);
            }
            Ok(Value::Int(count))
        }
        "EXISTS" => {
            arity(n >= 1)?;
            for k in a {
                ctx.check_key(k)?;
            }
            let got = join_all(a.iter().map(|k| ctx.get(k.clone()))).await;
            let mut count = 0;
            for v in got {
                count += i64::from(v?.is_some());
            }
            Ok(Value::Int(count))
        }
        "MGET" => {
            arity(n >= 1)?;
            for k in a {
                ctx.check_key(k)?;
            }
            let got = join_all(a.iter().map(|k| ctx.get(k.clone()))).await;
            let mut out = Vec::with_capacity(n);
            for v in got {
                out.push(Value::Bulk(v?));
            }
            Ok(Value::Array(Some(out)))
        }
        "MSET" => {
            arity(n >= 2 && n & 1 == 0)?;
            for kv in a.chunks(2) {
                ctx.check_key(&kv[0])?;
                ctx.check_value(&kv[1])?;
            }
            let done = join_all(a.chunks(2).map(|kv| ctx.put(kv[0].clone(), kv[1].clone()))).await;
            for d in done {
                d?;
            }
            Ok(Value::ok())
        }
        "INCR" | "DECR" => {
            arity(n == 1)?;
            let by = if name == "INCR" { 1 } else { -1 };
            incr_by(ctx, &a[0], by).await
        }
        "INCRBY" | "DECRBY" => {
            arity(n == 2)?;
            let by = parse_i64(&a[1])?;
            let by = if name == "INCRBY" {
                by
            } else {
                by.checked_neg()
                    .ok_or_else(|| Failed(Value::err("decrement would overflow")))?
            };
            incr_by(ctx, &a[0], by).await
        }
        "SCAN" => scan_command(ctx, a).await,
        "KEYS" => {
            arity(n == 1)?;
            keys_command(ctx, &a[0]).await
        }
        "DBSIZE" => {
            arity(n == 0)?;
            Ok(Value::Int(status(ctx).await?.keys as i64))
        }
        "INFO" => Ok(Value::bulk(info(ctx, &status(ctx).await?))),
        "COMMAND" => command(a),
        "CLIENT" => client(a),
        "CONFIG" => config(a),
        "SELECT" => {
            arity(n == 1)?;
            if &a[0][..] == b"0" {
                Ok(Value::ok())
            } else {
                Err(Failed(Value::err(
                    "DB index is out of range (raftkv has one database)",
                )))
            }
        }
        _ => {
            let shown: String = String::from_utf8_lossy(name.as_bytes())
                .chars()
                .take(64)
                .collect();
            Err(Failed(Value::err(format!("unknown command '{shown}'"))))
        }
    }
}

async fn set(ctx: &RespCtx, a: &[Bytes]) -> Res<Value> {
    if a.len() < 2 {
        return Err(Failed(wrong_args("SET")));
    }
    let (key, value) = (a[0].clone(), a[1].clone());
    ctx.check_key(&key)?;
    ctx.check_value(&value)?;
    let mut nx = false;
    let mut xx = false;
    for opt in &a[2..] {
        match upper(opt).as_str() {
            "NX" => nx = true,
            "XX" => xx = true,
            "EX" | "PX" | "EXAT" | "PXAT" | "KEEPTTL" => {
                return Err(Failed(Value::err(
                    "SET with an expiry is not supported (raftkv has no TTLs)",
                )))
            }
            "GET" => return Err(Failed(Value::err("SET ... GET is not supported"))),
            _ => return Err(Failed(Value::err("syntax error"))),
        }
    }
    if nx && xx {
        return Err(Failed(Value::err("syntax error")));
    }
    if nx {
        let (swapped, _) = ctx.cas(key, None, value).await?;
        return Ok(if swapped { Value::ok() } else { Value::nil() });
    }
    if xx {
        // Only if present: CAS against the value we last saw, until it sticks.
        let mut seen = ctx.get(key.clone()).await?;
        for _ in 0..MAX_CAS_ROUNDS {
            let Some(cur) = seen else {
                return Ok(Value::nil());
            };
            let (swapped, found) = ctx.cas(key.clone(), Some(cur), value.clone()).await?;
            if swapped {
                return Ok(Value::ok());
            }
            seen = found;
        }
        return Err(Failed(Value::err(
            "TRYAGAIN too much contention on this key",
        )));
    }
    ctx.put(key, value).await?;
    Ok(Value::ok())
}

fn parse_i64(b: &[u8]) -> Res<i64> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Failed(Value::err("value is not an integer or out of range")))
}

async fn incr_by(ctx: &RespCtx, key: &Bytes, by: i64) -> Res<Value> {
    ctx.check_key(key)?;
    let mut seen = ctx.get(key.clone()).await?;
    for _ in 0..MAX_CAS_ROUNDS {
        let cur = match &seen {
            None => 0,
            Some(v) => parse_i64(v)?,
        };
        let next = cur
            .checked_add(by)
            .ok_or_else(|| Failed(Value::err("increment or decrement would overflow")))?;
        let new = Bytes::from(next.to_string());
        let (swapped, found) = ctx.cas(key.clone(), seen.clone(), new).await?;
        if swapped {
            return Ok(Value::Int(next));
        }
        seen = found;
    }
    Err(Failed(Value::err(
        "TRYAGAIN too much contention on this key",
    )))
}

async fn status(ctx: &RespCtx) -> Res<Status> {
    Ok(ctx.node.status().await?)
}

/// `INFO`: Redis-style sections; `# Raft` is ours.
pub fn info(ctx: &RespCtx, s: &Status) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let leader = s.leader.map_or("none".to_string(), |l| l.to_string());
    let _ = write!(
        o,
        "# Server\r\nredis_version:7.0.0\r\nraftkv_version:{}\r\nprocess_id:{}\r\ntcp_port:{}\r\n\
         uptime_in_seconds:{}\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        ctx.client_port,
        ctx.started.elapsed().as_secs(),
    );
    let _ = write!(
        o,
        "# Raft\r\nrole:{}\r\nnode_id:{}\r\nterm:{}\r\nleader:{}\r\ncommit_index:{}\r\n\
         applied_index:{}\r\nfirst_index:{}\r\nlast_index:{}\r\nsnapshot_index:{}\r\n\
         snapshots_taken:{}\r\nsnapshots_installed:{}\r\nread_mode:{}\r\n",
        s.role,
        s.id,
        s.term,
        leader,
        s.commit_index,
        s.applied_index,
        s.first_index,
        s.last_index,
        s.snapshot_index,
        s.snapshots_taken,
        s.snapshots_installed,
        s.read_mode,
    );
    for p in &s.peers {
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let _ = write!(
            o,
            "peer_{}:addr={},connected={},match_index={},lag={}\r\n",
            p.id,
            p.addr,
            u8::from(p.connected),
            opt(p.match_index),
            opt(p.lag),
        );
    }
    let _ = write!(
        o,
        "\r\n# Keyspace\r\ndb0:keys={},expires=0,avg_ttl=0\r\n",
        s.keys
    );
    o
}

/// Enough of `COMMAND` for redis-cli: it asks `COMMAND DOCS` at start-up for its hints
/// and copes with an empty answer.
fn command(a: &[Bytes]) -> Res<Value> {
    match a.first().map(|s| upper(s)).as_deref() {
        None | Some("DOCS") | Some("INFO") | Some("LIST") => Ok(Value::Array(Some(vec![]))),
        Some("COUNT") => Ok(Value::Int(0)),
        Some(_) => Err(Failed(Value::err("unknown COMMAND subcommand"))),
    }
}

fn client(a: &[Bytes]) -> Res<Value> {
    match a.first().map(|s| upper(s)).as_deref() {
        Some("SETNAME") | Some("SETINFO") | Some("REPLY") | Some("NO-EVICT") | Some("NO-TOUCH") => {
            Ok(Value::ok())
        }
        Some("GETNAME") => Ok(Value::nil()),
        Some("ID") => Ok(Value::Int(0)),
        Some("INFO") | Some("LIST") => Ok(Value::bulk("")),
        _ => Err(Failed(Value::err("unknown CLIENT subcommand"))),
    }
}

/// redis-benchmark reads `save` and `appendonly` at start-up (and only warns if it
/// cannot).
fn config(a: &[Bytes]) -> Res<Value> {
    if a.first().map(|s| upper(s)).as_deref() != Some("GET") {
        return Err(Failed(Value::err("only CONFIG GET is supported")));
    }
    let mut out = Vec::new();
    for p in &a[1..] {
        let value = match upper(p).as_str() {
            "SAVE" => "",
            "APPENDONLY" => "no",
            "DATABASES" => "1",
            _ => continue,
        };
        out.push(Value::bulk(p.clone()));
        out.push(Value::bulk(value));
    }
    Ok(Value::Array(Some(out)))
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

    fn args(v: &[&str]) -> Vec<Bytes> {
        v.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn classes() {
        assert_eq!(classify(&args(&["ping"])), Class::Free);
        assert_eq!(classify(&args(&["get", "k"])), Class::Read);
        assert_eq!(
            classify(&args(&["set", "k", "v"])),
            Class::Write(args(&["k"]))
        );
        assert_eq!(classify(&args(&["set", "k", "v", "xx"])), Class::Barrier);
        assert_eq!(
            classify(&args(&["mset", "a", "1", "b", "2"])),
            Class::Write(args(&["a", "b"]))
        );
        assert_eq!(classify(&args(&["incr", "k"])), Class::Barrier);
        assert_eq!(classify(&args(&["quit"])), Class::Barrier);
    }

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
