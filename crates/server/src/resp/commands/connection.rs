//! The connection commands: PING, ECHO, SELECT, CLIENT.

use bytes::Bytes;

use super::{arity, upper, Failed, Res, RespCtx};
use crate::resp::client::Client;
use crate::resp::codec::Value;

pub(super) async fn run(
    _ctx: &RespCtx,
    _client: &Client,
    name: &str,
    a: &[Bytes],
) -> Option<Res<Value>> {
    Some(match name {
        "PING" => ping(a),
        "ECHO" => echo(a),
        "SELECT" => select(a),
        "CLIENT" => client(a),
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

fn select(a: &[Bytes]) -> Res<Value> {
    arity("SELECT", a.len() == 1)?;
    if &a[0][..] == b"0" {
        Ok(Value::ok())
    } else {
        Err(Failed(Value::err(
            "DB index is out of range (raftkv has one database)",
        )))
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
