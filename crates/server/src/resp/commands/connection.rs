//! The connection commands: PING, ECHO, SELECT, HELLO, CLIENT, READONLY, READWRITE —
//! the ones that read or change this connection's state (`resp/client.rs`). Replies and
//! errors are worded as Redis 7 words them.

use bytes::Bytes;

use super::{arity, upper, Failed, Res, RespCtx};
use crate::resp::client::{Client, ClientState};
use crate::resp::codec::{Protocol, Value};

/// The Redis version we answer as (HELLO, INFO): the one whose commands and replies we
/// follow.
pub(super) const REDIS_VERSION: &str = "7.0.0";

pub(super) async fn run(
    ctx: &RespCtx,
    client: &Client,
    name: &str,
    a: &[Bytes],
) -> Option<Res<Value>> {
    Some(match name {
        "PING" => ping(a),
        "ECHO" => echo(a),
        "SELECT" => select(a),
        "HELLO" => hello(ctx, client, a).await,
        "CLIENT" => client_command(ctx, client, a),
        "READONLY" | "READWRITE" => read_consistency(client, name, a),
        _ => return None,
    })
}

fn ping(a: &[Bytes]) -> Res<Value> {
    arity("PING", a.len() <= 1)?;
    Ok(match a.first() {
        Some(m) => Value::bulk(m.clone()),
        None => Value::Simple("PONG".into()),
    })
}

fn echo(a: &[Bytes]) -> Res<Value> {
    arity("ECHO", a.len() == 1)?;
    Ok(Value::bulk(a[0].clone()))
}

/// raftkv has one database, 0 (the README lists this difference: Redis has 16).
fn select(a: &[Bytes]) -> Res<Value> {
    arity("SELECT", a.len() == 1)?;
    match super::parse_i64(&a[0])? {
        0 => Ok(Value::ok()),
        _ => Err(Failed(Value::err("DB index is out of range"))),
    }
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`: switches the
/// protocol and answers with what the server is. Checks everything before changing
/// anything, as Redis does, so a refused HELLO leaves the connection as it was.
async fn hello(ctx: &RespCtx, client: &Client, a: &[Bytes]) -> Res<Value> {
    let mut protocol = None;
    let mut opts = a;
    if let Some(ver) = a.first() {
        protocol = Some(
            match std::str::from_utf8(ver)
                .ok()
                .and_then(|v| v.parse::<i64>().ok())
            {
                Some(2) => Protocol::Resp2,
                Some(3) => Protocol::Resp3,
                Some(_) => {
                    return Err(Failed(Value::Error(
                        "NOPROTO unsupported protocol version".into(),
                    )))
                }
                None => {
                    return Err(Failed(Value::err(
                        "Protocol version is not an integer or out of range",
                    )))
                }
            },
        );
        opts = &a[1..];
    }
    let mut auth = None;
    let mut name = None;
    let mut i = 0;
    while i < opts.len() {
        let more = opts.len() - 1 - i;
        match upper(&opts[i]).as_str() {
            "AUTH" if more >= 2 => {
                auth = Some((&opts[i + 1], &opts[i + 2]));
                i += 3;
            }
            "SETNAME" if more >= 1 => {
                check_name(&opts[i + 1], "Client names")?;
                name = Some(opts[i + 1].clone());
                i += 2;
            }
            _ => {
                return Err(Failed(Value::err(format!(
                    "Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&opts[i])
                ))))
            }
        }
    }
    if let Some((user, password)) = auth {
        crate::resp::acl::gate::authenticate(ctx, client, user, password).map_err(Failed)?;
    }
    if !client.state().authenticated {
        return Err(Failed(Value::Error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise \
             the HELLO AUTH <user> <pass> option can be used to authenticate the client and \
             select the RESP protocol version at the same time"
                .into(),
        )));
    }
    let role = match ctx.status().await?.role {
        "leader" => "master",
        _ => "replica",
    };
    let proto = {
        let mut s = client.state();
        if let Some(name) = name {
            s.name = name;
        }
        if let Some(p) = protocol {
            s.protocol = p;
        }
        s.protocol
    };
    let field = |k: &'static str, v: Value| (Value::bulk(k), v);
    Ok(Value::Map(vec![
        field("server", Value::bulk("redis")),
        field("version", Value::bulk(REDIS_VERSION)),
        field("proto", Value::Int(proto.number())),
        field("id", Value::Int(client.id as i64)),
        field("mode", Value::bulk("standalone")),
        field("role", Value::bulk(role)),
        field("modules", Value::Array(Some(Vec::new()))),
    ]))
}

/// Names and library fields hold printable ASCII without spaces, as in Redis (they are
/// shown space-separated in `CLIENT LIST`). `what` starts Redis's error message.
fn check_name(name: &[u8], what: &str) -> Res<()> {
    if name.iter().all(|&b| (b'!'..=b'~').contains(&b)) {
        Ok(())
    } else {
        Err(Failed(Value::err(format!(
            "{what} cannot contain spaces, newlines or special characters."
        ))))
    }
}

/// Redis's arity error for a subcommand: `'client|setname'`.
fn wrong_sub_args(cmd: &str, sub: &str) -> Failed {
    Failed(Value::err(format!(
        "wrong number of arguments for '{}|{}' command",
        cmd.to_ascii_lowercase(),
        sub.to_ascii_lowercase()
    )))
}

/// Redis's error for a subcommand it does not know.
pub(super) fn unknown_sub(cmd: &str, sub: &[u8]) -> Failed {
    let sub: String = String::from_utf8_lossy(sub).chars().take(128).collect();
    Failed(Value::err(format!(
        "unknown subcommand '{sub}'. Try {} HELP.",
        cmd.to_ascii_uppercase()
    )))
}

/// Subcommands Redis has and raftkv does not implement (no blocking commands, no client
/// tracking, no pause): refused by name rather than as unknown.
const UNSUPPORTED_CLIENT: &[&str] = &[
    "KILL",
    "PAUSE",
    "UNPAUSE",
    "TRACKING",
    "CACHING",
    "GETREDIR",
    "TRACKINGINFO",
    "UNBLOCK",
];

fn client_command(ctx: &RespCtx, client: &Client, a: &[Bytes]) -> Res<Value> {
    let Some(sub) = a.first() else {
        return Err(Failed(super::wrong_args("CLIENT")));
    };
    let sub_name = upper(sub);
    let container = super::table::command_spec("CLIENT").expect("CLIENT is in the table");
    let Some(spec) = container.sub(sub) else {
        if UNSUPPORTED_CLIENT.contains(&sub_name.as_str()) {
            return Err(Failed(Value::err(format!(
                "CLIENT {sub_name} is not supported by raftkv"
            ))));
        }
        return Err(unknown_sub("CLIENT", sub));
    };
    // The arity (CLIENT and the subcommand included) is the table's, as in Redis.
    if !spec.arity_ok(a.len() + 1) {
        return Err(wrong_sub_args("CLIENT", &sub_name));
    }
    let s = client.state();
    match sub_name.as_str() {
        "ID" => Ok(Value::Int(client.id as i64)),
        "GETNAME" if s.name.is_empty() => Ok(Value::nil()),
        "GETNAME" => Ok(Value::bulk(s.name.clone())),
        "SETNAME" => {
            check_name(&a[1], "Client names")?;
            drop(s);
            client.state().name = a[1].clone();
            Ok(Value::ok())
        }
        "SETINFO" => {
            drop(s);
            setinfo(client, &a[1], &a[2])
        }
        "INFO" => {
            let mut line = client_line(client, &s);
            line.push('\n');
            Ok(Value::Verbatim(line.into()))
        }
        "LIST" => {
            drop(s);
            client_list(ctx, &a[1..])
        }
        "REPLY" => match upper(&a[1]).as_str() {
            "ON" => Ok(Value::ok()),
            "OFF" | "SKIP" => Err(Failed(Value::err(
                "CLIENT REPLY OFF|SKIP is not supported by raftkv",
            ))),
            _ => Err(Failed(Value::err("syntax error"))),
        },
        // Nothing is ever evicted, and no key has an access time to keep untouched.
        "NO-EVICT" | "NO-TOUCH" => match upper(&a[1]).as_str() {
            "ON" | "OFF" => Ok(Value::ok()),
            _ => Err(Failed(Value::err("syntax error"))),
        },
        _ => Ok(Value::Array(Some(
            CLIENT_HELP
                .iter()
                .map(|l| Value::Simple(l.to_string()))
                .collect(),
        ))),
    }
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "LIST [TYPE <normal|master|replica|pubsub>] [ID <id> [<id> ...]]",
    "    Return information about client connections.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <LIB-NAME|LIB-VER> <value>",
    "    Set the client library name or version shown by CLIENT LIST and CLIENT INFO.",
    "HELP",
    "    Print this help.",
];

/// `CLIENT SETINFO LIB-NAME|LIB-VER value` (Redis 7.2's).
fn setinfo(client: &Client, attr: &Bytes, value: &Bytes) -> Res<Value> {
    let attr_name = upper(attr);
    let what = match attr_name.as_str() {
        "LIB-NAME" => "lib-name",
        "LIB-VER" => "lib-ver",
        _ => {
            return Err(Failed(Value::err(format!(
                "Unrecognized option '{}'",
                String::from_utf8_lossy(attr)
            ))))
        }
    };
    check_name(value, what)?;
    let mut s = client.state();
    if what == "lib-name" {
        s.lib_name = value.clone();
    } else {
        s.lib_ver = value.clone();
    }
    Ok(Value::ok())
}

/// `CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id ...]`.
fn client_list(ctx: &RespCtx, opts: &[Bytes]) -> Res<Value> {
    let mut only_ids: Option<Vec<u64>> = None;
    let mut normal = true;
    match opts.first().map(|o| upper(o)).as_deref() {
        None => {}
        Some("TYPE") if opts.len() == 2 => match upper(&opts[1]).as_str() {
            "NORMAL" => {}
            // None of ours is a replica link or a subscriber.
            "MASTER" | "REPLICA" | "SLAVE" | "PUBSUB" => normal = false,
            _ => {
                return Err(Failed(Value::err(format!(
                    "Unknown client type '{}'",
                    String::from_utf8_lossy(&opts[1])
                ))))
            }
        },
        Some("ID") if opts.len() >= 2 => {
            let mut ids = Vec::with_capacity(opts.len() - 1);
            for id in &opts[1..] {
                match std::str::from_utf8(id)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    Some(id) if id > 0 => ids.push(id),
                    _ => return Err(Failed(Value::err("Invalid client ID"))),
                }
            }
            only_ids = Some(ids);
        }
        Some(_) => return Err(Failed(Value::err("syntax error"))),
    }
    let mut out = String::new();
    if normal {
        for c in ctx.clients.list() {
            if only_ids.as_ref().is_some_and(|ids| !ids.contains(&c.id)) {
                continue;
            }
            let line = client_line(&c, &c.state());
            out.push_str(&line);
            out.push('\n');
        }
    }
    Ok(Value::Verbatim(out.into()))
}

/// One connection in `CLIENT LIST`'s format: Redis's fields, in Redis's order, for the
/// ones raftkv has; those about buffers and memory, which it does not track per client,
/// are left out (client libraries read the line as `key=value` pairs, by name).
fn client_line(c: &Client, s: &ClientState) -> String {
    let now = std::time::Instant::now();
    let addr = |a: Option<std::net::SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    let idle = s
        .last_active
        .map_or(now - c.opened, |t| now.saturating_duration_since(t));
    let flags = if s.local_reads { "r" } else { "N" };
    let cmd = if s.last_command.is_empty() {
        "NULL"
    } else {
        &s.last_command
    };
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db=0 sub=0 psub=0 \
         ssub=0 multi=-1 cmd={} user={} redir=-1 resp={} lib-name={} lib-ver={}",
        c.id,
        addr(c.addr),
        addr(c.local_addr),
        c.fd,
        String::from_utf8_lossy(&s.name),
        (now - c.opened).as_secs(),
        idle.as_secs(),
        flags,
        cmd,
        String::from_utf8_lossy(&s.user),
        s.protocol.number(),
        String::from_utf8_lossy(&s.lib_name),
        String::from_utf8_lossy(&s.lib_ver),
    )
}

/// `READONLY` / `READWRITE` (Redis Cluster's): whether this connection's reads (GET,
/// MGET, EXISTS, SCAN, KEYS) are served from this node's state machine as it is — no
/// leader round, so possibly stale, and served while there is no leader — or as the
/// node's read mode says (the default). Read-modify-write commands stay linearizable.
fn read_consistency(client: &Client, name: &str, a: &[Bytes]) -> Res<Value> {
    arity(name, a.is_empty())?;
    client.state().local_reads = name == "READONLY";
    Ok(Value::ok())
}
