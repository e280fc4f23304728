//! The entry point: a command's name picks the concern that runs it.

use std::sync::Arc;

use bytes::Bytes;

use super::{connection, keyspace, server_info, strings, upper, Failed, Outcome, Res, RespCtx};
use crate::resp::client::Client;
use crate::resp::codec::Value;

pub async fn execute(ctx: Arc<RespCtx>, client: Arc<Client>, args: Vec<Bytes>) -> Outcome {
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
    match run(&ctx, &client, &name, &args[1..]).await {
        Ok(v) | Err(Failed(v)) => v.into(),
    }
}

/// Each concern's `run` answers the names it owns and `None` to the others.
async fn run(ctx: &RespCtx, client: &Client, name: &str, a: &[Bytes]) -> Res<Value> {
    if let Some(r) = connection::run(ctx, client, name, a).await {
        return r;
    }
    if let Some(r) = strings::run(ctx, client, name, a).await {
        return r;
    }
    if let Some(r) = keyspace::run(ctx, client, name, a).await {
        return r;
    }
    if let Some(r) = server_info::run(ctx, client, name, a).await {
        return r;
    }
    Err(unknown_command(name))
}

fn unknown_command(name: &str) -> Failed {
    let shown: String = String::from_utf8_lossy(name.as_bytes())
        .chars()
        .take(64)
        .collect();
    Failed(Value::err(format!("unknown command '{shown}'")))
}
