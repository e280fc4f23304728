//! SCAN and KEYS: the commands that walk the whole keyspace (DBSIZE is a typed query) (the cursor
//! table and glob matching are in `resp/scan.rs`).

use bytes::Bytes;

use super::node_calls::ReadFrom;
use super::{arity, parse_i64, upper, wrong_args, Failed, Res, RespCtx};
use crate::resp::acl::permissions::Permissions;
use crate::resp::client::Client;
use crate::resp::codec::Value;
use crate::resp::scan::{glob_match, literal_prefix, DEFAULT_COUNT, MAX_COUNT, MAX_KEYS};

pub(super) async fn run(
    ctx: &RespCtx,
    client: &Client,
    name: &str,
    a: &[Bytes],
) -> Option<Res<Value>> {
    let visible = Visible::of(ctx, client);
    Some(match name {
        "SCAN" => scan_command(ctx, a, ReadFrom::of(client), &visible).await,
        "KEYS" => keys_command(ctx, a, ReadFrom::of(client), &visible).await,
        _ => return None,
    })
}

/// The keys a connection's user may see: those it may read (`~pattern`, `%R~pattern`).
/// A difference from Redis, whose KEYS and SCAN show every key name to anyone allowed
/// to run them: here they show the names the user could read.
struct Visible(Option<std::sync::Arc<Permissions>>);

impl Visible {
    fn of(ctx: &RespCtx, client: &Client) -> Visible {
        let users = ctx.users.borrow().clone();
        let perms = users.permissions(&client.state().user);
        Visible(perms.filter(|p| !p.user.all_keys))
    }

    fn shows(&self, key: &[u8]) -> bool {
        self.0
            .as_ref()
            .is_none_or(|p| p.may_touch(key, true, false))
    }
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE string]`.
async fn scan_command(ctx: &RespCtx, a: &[Bytes], from: ReadFrom, visible: &Visible) -> Res<Value> {
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
            // As Redis: not an integer is one error, below 1 another.
            "COUNT" => {
                let n = parse_i64(value)?;
                if n < 1 {
                    return Err(Failed(Value::err("syntax error")));
                }
                count = n.min(i64::from(MAX_COUNT)) as u32;
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
    let (page, more) = ctx.scan_page(prefix, after, count, from).await?;
    let next = match page.last() {
        Some((last, _)) if more => ctx.cursors.save(last.clone()),
        _ => 0,
    };
    let keys = page
        .into_iter()
        .filter(|(k, _)| pattern.as_deref().is_none_or(|p| glob_match(p, k)))
        .filter(|(k, _)| visible.shows(k))
        .map(|(k, _)| Value::bulk(k))
        .collect();
    Ok(Value::Array(Some(vec![
        Value::bulk(next.to_string()),
        Value::Array(Some(keys)),
    ])))
}

/// `KEYS pattern`: every matching key, refused beyond a bound (use SCAN for more).
async fn keys_command(ctx: &RespCtx, a: &[Bytes], from: ReadFrom, visible: &Visible) -> Res<Value> {
    arity("KEYS", a.len() == 1)?;
    let pattern = &a[0];
    let prefix = literal_prefix(pattern);
    let mut after = None;
    let mut keys = Vec::new();
    loop {
        let (page, full) = ctx
            .scan_page(prefix.clone(), after.clone(), MAX_COUNT, from)
            .await?;
        after = page.last().map(|(k, _)| k.clone());
        keys.extend(
            page.into_iter()
                .filter(|(k, _)| glob_match(pattern, k) && visible.shows(k))
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
