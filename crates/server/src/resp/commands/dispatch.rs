//! The entry point: a command's name picks the concern that runs it.

use std::sync::Arc;

use bytes::Bytes;

use super::table::{self, Group};
use super::{
    acl, cas, connection, data, keyspace, server_info, upper, Failed, Outcome, Res, RespCtx,
};
use crate::resp::acl::gate::{self, Verdict};
use crate::resp::client::Client;
use crate::resp::codec::Value;

pub async fn execute(ctx: Arc<RespCtx>, client: Arc<Client>, args: Vec<Bytes>) -> Outcome {
    let Some(first) = args.first() else {
        return Value::Simple(String::new()).into(); // empty command: nothing to say
    };
    let name = upper(first);
    client.touch(&command_label(&name, &args));
    if name == "QUIT" {
        return Outcome {
            value: Value::ok(),
            close: true,
        };
    }
    match gate::check(&ctx, &client, &args) {
        Verdict::Run => {}
        Verdict::Refuse(v) => return v.into(),
        Verdict::Close => {
            client.kill();
            return Value::err("this connection's user was deleted").into();
        }
    }
    match run(&ctx, &client, &name, &args[1..]).await {
        Some(Ok(v) | Err(Failed(v))) => v.into(),
        None => gate::unknown_command(&args).into(),
    }
}

/// The command table names the concern; its `run` answers. `None`: not a command of
/// ours (not in the table).
async fn run(ctx: &RespCtx, client: &Client, name: &str, a: &[Bytes]) -> Option<Res<Value>> {
    match table::command_spec(name)?.group {
        Group::Connection => connection::run(ctx, client, name, a).await,
        Group::Typed => data::run(ctx, client, name, a).await,
        Group::Cas => cas::run(ctx, client, name, a).await,
        Group::Keyspace => keyspace::run(ctx, client, name, a).await,
        Group::Server => server_info::run(ctx, client, name, a).await,
        Group::Acl => acl::run(ctx, client, name, a).await,
        // The connection hands these to its transaction, and answers QUIT in `execute`.
        Group::Txn | Group::Quit => Some(Err(Failed(Value::err(format!(
            "internal error: '{}' reached the dispatcher",
            name.to_ascii_lowercase()
        ))))),
    }
}

/// Commands whose first argument names a subcommand (shown as `client|list`).
const CONTAINERS: &[&str] = &["CLIENT", "CONFIG", "COMMAND", "ACL"];

/// How `CLIENT LIST` shows a command: lower case, with its subcommand.
fn command_label(name: &str, args: &[Bytes]) -> String {
    match args.get(1) {
        Some(sub) if CONTAINERS.contains(&name) => {
            format!("{name}|{}", String::from_utf8_lossy(sub)).to_ascii_lowercase()
        }
        _ => name.to_ascii_lowercase(),
    }
}
