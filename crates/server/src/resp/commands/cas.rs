//! `CAS key expected new` (raftkv's own): 1 if the value was `expected` and is now `new`.
//! The string commands of Redis are the typed model's (`data.rs`).

use bytes::Bytes;

use super::{arity, Res, RespCtx};
use crate::resp::client::Client;
use crate::resp::codec::Value;

pub(super) async fn run(
    ctx: &RespCtx,
    _client: &Client,
    name: &str,
    a: &[Bytes],
) -> Option<Res<Value>> {
    if name != "CAS" {
        return None;
    }
    Some(cas(ctx, a).await)
}

async fn cas(ctx: &RespCtx, a: &[Bytes]) -> Res<Value> {
    arity("CAS", a.len() == 3)?;
    ctx.check_key(&a[0])?;
    ctx.check_value(&a[2])?;
    let (swapped, _) = ctx
        .cas(a[0].clone(), Some(a[1].clone()), a[2].clone())
        .await?;
    Ok(Value::Int(i64::from(swapped)))
}
