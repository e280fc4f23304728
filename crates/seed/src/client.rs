//! Client requests and replies of the seed protocol (SEED.md).

use bytes::Bytes;
use driver::{Request, Response};
use raft::NodeId;
use serde_json::{json, Map, Value};

use crate::ids::{format_id, format_leader};

/// Who asked, so the reply can find its way back.
#[derive(Clone, Debug)]
pub struct Asker {
    pub client: String,
    pub mid: String,
}

/// Parses a `get`/`put`; `Err` names what is wrong.
pub fn parse_request(o: &Map<String, Value>, ty: &str) -> Result<(Asker, Request), String> {
    let client = o
        .get("src")
        .and_then(Value::as_str)
        .ok_or("src missing")?
        .to_string();
    let mid = o
        .get("MID")
        .and_then(Value::as_str)
        .ok_or("MID missing")?
        .to_string();
    let key = o.get("key").and_then(Value::as_str).ok_or("key missing")?;
    let key = Bytes::copy_from_slice(key.as_bytes());
    let req = match ty {
        "get" => Request::Get { key },
        "put" => {
            let value = o
                .get("value")
                .and_then(Value::as_str)
                .ok_or("value missing")?;
            Request::Put {
                key,
                value: Bytes::copy_from_slice(value.as_bytes()),
            }
        }
        other => return Err(format!("unknown request type {other:?}")),
    };
    Ok((Asker { client, mid }, req))
}

/// The reply datagram for `resp`.
pub fn encode_reply(me: NodeId, leader: Option<NodeId>, asker: &Asker, resp: &Response) -> Vec<u8> {
    let mut v = json!({
        "src": format_id(me),
        "dst": asker.client,
        "leader": format_leader(leader),
        "MID": asker.mid,
    });
    let o = v.as_object_mut().expect("object");
    let ty = match resp {
        Response::Value(value) => {
            let s = value
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            o.insert("value".into(), json!(s));
            "ok"
        }
        Response::Done | Response::Deleted(_) | Response::Cas { .. } => "ok",
        Response::Redirect(to) => {
            // A redirect names where to go; with no leader known we say FFFF and the
            // client picks another replica.
            o.insert("leader".into(), json!(format_leader(*to)));
            "redirect"
        }
        // The seed protocol has no scans or typed replies; what it cannot express is a
        // failure.
        Response::Fail(_)
        | Response::Unknown(_)
        | Response::Entries(_)
        | Response::Reply(_)
        | Response::MembershipChanged(_)
        | Response::MembershipRefused(_) => "fail",
    };
    o.insert("type".into(), json!(ty));
    serde_json::to_vec(&v).expect("json encodes")
}
