//! The string and key commands: GET, SET, SETNX, CAS, DEL/UNLINK, EXISTS, MGET, MSET,
//! INCR/DECR/INCRBY/DECRBY.
//!
//! Read-modify-write commands (INCR/DECR, SET XX) are compare-and-set loops: read,
//! compute, CAS with what was read, and retry with the value the CAS found if someone
//! else got there first. Each CAS is linearizable, so the loop is too (it takes effect at
//! the successful CAS). Multi-key commands (MGET, MSET, DEL/EXISTS with several keys)
//! issue one request per key, all at once; they are *not* atomic across keys (MSET in
//! Redis is).

use bytes::Bytes;

use super::node_calls::join_all;
use super::{arity, parse_i64, upper, wrong_args, Failed, Res, RespCtx};
use crate::resp::client::Client;
use crate::resp::codec::Value;

/// CAS retries before INCR or SET XX gives up under contention.
const MAX_CAS_ROUNDS: usize = 64;

pub(super) async fn run(
    ctx: &RespCtx,
    _client: &Client,
    name: &str,
    a: &[Bytes],
) -> Option<Res<Value>> {
    Some(match name {
        "GET" => get(ctx, a).await,
        "SET" => set(ctx, a).await,
        "SETNX" => setnx(ctx, a).await,
        "CAS" => cas(ctx, a).await,
        "DEL" | "UNLINK" => del(ctx, name, a).await,
        "EXISTS" => exists(ctx, a).await,
        "MGET" => mget(ctx, a).await,
        "MSET" => mset(ctx, a).await,
        "INCR" | "DECR" | "INCRBY" | "DECRBY" => incr_command(ctx, name, a).await,
        _ => return None,
    })
}

async fn get(ctx: &RespCtx, a: &[Bytes]) -> Res<Value> {
    arity("GET", a.len() == 1)?;
    ctx.check_key(&a[0])?;
    Ok(Value::Bulk(ctx.get(a[0].clone()).await?))
}

async fn setnx(ctx: &RespCtx, a: &[Bytes]) -> Res<Value> {
    arity("SETNX", a.len() == 2)?;
    ctx.check_key(&a[0])?;
    ctx.check_value(&a[1])?;
    let (swapped, _) = ctx.cas(a[0].clone(), None, a[1].clone()).await?;
    Ok(Value::Int(i64::from(swapped)))
}

/// `CAS key expected new` (ours): 1 if the value was `expected` and is now `new`.
async fn cas(ctx: &RespCtx, a: &[Bytes]) -> Res<Value> {
    arity("CAS", a.len() == 3)?;
    ctx.check_key(&a[0])?;
    ctx.check_value(&a[2])?;
    let (swapped, _) = ctx
        .cas(a[0].clone(), Some(a[1].clone()), a[2].clone())
        .await?;
    Ok(Value::Int(i64::from(swapped)))
}

async fn del(ctx: &RespCtx, name: &str, a: &[Bytes]) -> Res<Value> {
    arity(name, !a.is_empty())?;
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

async fn exists(ctx: &RespCtx, a: &[Bytes]) -> Res<Value> {
    arity("EXISTS", !a.is_empty())?;
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

async fn mget(ctx: &RespCtx, a: &[Bytes]) -> Res<Value> {
    arity("MGET", !a.is_empty())?;
    for k in a {
        ctx.check_key(k)?;
    }
    let got = join_all(a.iter().map(|k| ctx.get(k.clone()))).await;
    let mut out = Vec::with_capacity(a.len());
    for v in got {
        out.push(Value::Bulk(v?));
    }
    Ok(Value::Array(Some(out)))
}

async fn mset(ctx: &RespCtx, a: &[Bytes]) -> Res<Value> {
    arity("MSET", a.len() >= 2 && a.len() & 1 == 0)?;
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

async fn incr_command(ctx: &RespCtx, name: &str, a: &[Bytes]) -> Res<Value> {
    match name {
        "INCR" | "DECR" => {
            arity(name, a.len() == 1)?;
            let by = if name == "INCR" { 1 } else { -1 };
            incr_by(ctx, &a[0], by).await
        }
        _ => {
            arity(name, a.len() == 2)?;
            let by = parse_i64(&a[1])?;
            let by = if name == "INCRBY" {
                by
            } else {
                by.checked_neg()
                    .ok_or_else(|| Failed(Value::err("decrement would overflow")))?
            };
            incr_by(ctx, &a[0], by).await
        }
    }
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
