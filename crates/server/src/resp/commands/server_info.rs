//! The server commands that describe the node rather than the data: INFO, COMMAND,
//! CONFIG.

use bytes::Bytes;

use super::{upper, Failed, Res, RespCtx};
use crate::node_loop::Status;
use crate::resp::client::Client;
use crate::resp::codec::Value;

pub(super) async fn run(
    ctx: &RespCtx,
    _client: &Client,
    name: &str,
    a: &[Bytes],
) -> Option<Res<Value>> {
    Some(match name {
        "INFO" => info_command(ctx).await,
        "COMMAND" => command(a),
        "CONFIG" => config(a),
        _ => return None,
    })
}

async fn info_command(ctx: &RespCtx) -> Res<Value> {
    Ok(Value::bulk(info(ctx, &ctx.status().await?)))
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
