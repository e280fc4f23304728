//! PUBLISH and PUBSUB. (Subscribing changes the connection, so SUBSCRIBE and friends are
//! the connection's: `resp/pubsub/`.)
//!
//! **PUBLISH is replicated**: the message is one log entry, and every node delivers it
//! to its own subscribers when it applies that entry — so a subscriber on any node gets
//! every message, in the log's order, after the writes committed before it (Redis
//! Cluster broadcasts to every node too, but with no order against the writes). The
//! reply counts the receivers on this node, as Redis Cluster's does. The cost: a publish
//! waits for a commit (one quorum `fdatasync`), like a write.

use bytes::Bytes;

use super::connection::unknown_sub;
use super::node_calls::ReadFrom;
use super::typed::Parsed;
use super::{arity, upper, Failed, Res, RespCtx};
use crate::resp::codec::Value;

pub(super) async fn run(ctx: &RespCtx, name: &str, a: &[Bytes]) -> Option<Res<Value>> {
    Some(match name {
        "PUBLISH" => publish(ctx, a).await,
        "PUBSUB" => pubsub(ctx, a),
        _ => return None,
    })
}

async fn publish(ctx: &RespCtx, a: &[Bytes]) -> Res<Value> {
    arity("PUBLISH", a.len() == 2)?;
    ctx.check_key(&a[0])?;
    ctx.check_value(&a[1])?;
    let cmd = kv::Command::Publish {
        channel: a[0].clone(),
        message: a[1].clone(),
    };
    ctx.kv(Parsed::Write(cmd), ReadFrom::Node).await?;
    Ok(Value::Int(ctx.hub.receivers(&a[0]) as i64))
}

const PUBSUB_HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "HELP",
    "    Prints this help.",
];

/// `PUBSUB CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT | HELP`: this node's
/// subscriptions (as in Redis Cluster, where each node answers for its own clients).
fn pubsub(ctx: &RespCtx, a: &[Bytes]) -> Res<Value> {
    let Some(sub) = a.first() else {
        return Err(Failed(super::wrong_args("PUBSUB")));
    };
    let sub_arity = |ok: bool| -> Res<()> {
        if ok {
            Ok(())
        } else {
            Err(Failed(Value::err(format!(
                "wrong number of arguments for 'pubsub|{}' command",
                String::from_utf8_lossy(sub).to_ascii_lowercase()
            ))))
        }
    };
    match upper(sub).as_str() {
        "CHANNELS" => {
            sub_arity(a.len() <= 2)?;
            let chans = ctx.hub.channels(a.get(1).map(|p| &p[..]));
            Ok(Value::Array(Some(
                chans.into_iter().map(Value::bulk).collect(),
            )))
        }
        "NUMSUB" => Ok(Value::Array(Some(
            a[1..]
                .iter()
                .flat_map(|c| [Value::bulk(c.clone()), Value::Int(ctx.hub.numsub(c) as i64)])
                .collect(),
        ))),
        "NUMPAT" => {
            sub_arity(a.len() == 1)?;
            Ok(Value::Int(ctx.hub.numpat() as i64))
        }
        "HELP" => {
            sub_arity(a.len() == 1)?;
            Ok(Value::Array(Some(
                PUBSUB_HELP
                    .iter()
                    .map(|l| Value::Simple(l.to_string()))
                    .collect(),
            )))
        }
        _ => Err(unknown_sub("PUBSUB", sub)),
    }
}
