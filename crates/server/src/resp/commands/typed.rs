//! The commands of the typed model: RESP arguments → a `kv::Command` (a write) or a
//! `kv::Query` (a read), with Redis 7's argument checks and error texts; and a
//! `kv::Reply` → a RESP value. The semantics live in the kv crate (`apply.rs`,
//! `read.rs`); adding a command there means adding its parser here and nothing else.
//!
//! A parse fails one of two ways, because a transaction treats them differently:
//! [`ParseError::Arity`] (and unknown commands) abort a whole `MULTI` at `EXEC`, as in
//! Redis; [`ParseError::Other`] (syntax, not an integer, ...) becomes that command's
//! error in the `EXEC` array.

use bytes::Bytes;
use kv::{Command, ExpireCond, GetExTtl, Query, Reply, SetCond, SetTtl, TtlKind, When};

use crate::resp::codec::Value;

/// A parsed typed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    Write(Command),
    Read(Query),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// `ERR wrong number of arguments for '<name>' command`.
    Arity,
    /// Any other error, as its full Redis text (`ERR ...`).
    Other(String),
}

impl ParseError {
    pub fn text(&self, name: &str) -> String {
        match self {
            ParseError::Arity => format!(
                "ERR wrong number of arguments for '{}' command",
                name.to_ascii_lowercase()
            ),
            ParseError::Other(e) => e.clone(),
        }
    }
}

type P = Result<Parsed, ParseError>;

const SYNTAX: &str = "ERR syntax error";
const NOT_INTEGER: &str = "ERR value is not an integer or out of range";

fn other(e: &str) -> ParseError {
    ParseError::Other(e.to_string())
}

fn upper(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_uppercase()
}

fn int(b: &[u8]) -> Result<i64, ParseError> {
    kv::apply::parse_i64(b).ok_or_else(|| other(NOT_INTEGER))
}

fn invalid_expire(cmd: &str) -> ParseError {
    ParseError::Other(format!("ERR invalid expire time in '{cmd}' command"))
}

/// A TTL option's value as a deadline, checked as Redis checks it: positive, and no
/// overflow once in milliseconds and added to `now_ms`.
fn ttl_when(unit: &str, v: &[u8], cmd: &str, now_ms: u64) -> Result<When, ParseError> {
    let n = int(v)?;
    if n <= 0 {
        return Err(invalid_expire(cmd));
    }
    let ms = match unit {
        "EX" | "EXAT" => n.checked_mul(1000).ok_or_else(|| invalid_expire(cmd))?,
        _ => n,
    };
    let relative = unit == "EX" || unit == "PX";
    if relative && ms > i64::MAX - now_ms as i64 {
        return Err(invalid_expire(cmd));
    }
    Ok(if relative {
        When::InMs(ms as u64)
    } else {
        When::AtMs(ms as u64)
    })
}

/// Whether `name` (upper case) is a typed command.
pub fn is_typed(name: &str) -> bool {
    super::table::command_spec(name).is_some_and(|s| s.group == super::table::Group::Typed)
}

/// Parses a typed command (`name` upper-case, `a` its arguments). `None`: not one of
/// ours. `now_ms` is only for Redis's overflow checks of relative TTLs.
pub fn parse(name: &str, a: &[Bytes], now_ms: u64) -> Option<P> {
    if !is_typed(name) {
        return None;
    }
    let n = a.len();
    let arity = |ok: bool| if ok { Ok(()) } else { Err(ParseError::Arity) };
    let key = || a[0].clone();
    let w = |c: Command| Ok(Parsed::Write(c));
    let r = |q: Query| Ok(Parsed::Read(q));
    let p: P = (|| match name {
        "GET" => {
            arity(n == 1)?;
            r(Query::Get { key: key() })
        }
        "SET" => {
            arity(n >= 2)?;
            set(a, now_ms)
        }
        "SETNX" => {
            arity(n == 2)?;
            w(Command::SetNx {
                key: key(),
                value: a[1].clone(),
            })
        }
        "SETEX" | "PSETEX" => {
            arity(n == 3)?;
            let unit = if name == "SETEX" { "EX" } else { "PX" };
            let when = ttl_when(unit, &a[1], &name.to_ascii_lowercase(), now_ms)?;
            w(Command::Set {
                key: key(),
                value: a[2].clone(),
                cond: SetCond::Always,
                ttl: SetTtl::Expire(when),
                get: false,
            })
        }
        "GETSET" => {
            arity(n == 2)?;
            w(Command::Set {
                key: key(),
                value: a[1].clone(),
                cond: SetCond::Always,
                ttl: SetTtl::Clear,
                get: true,
            })
        }
        "GETDEL" => {
            arity(n == 1)?;
            w(Command::GetDel { key: key() })
        }
        "GETEX" => {
            arity(n >= 1)?;
            getex(a, now_ms)
        }
        "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" => {
            arity(n >= 2)?;
            expire(name, a, now_ms)
        }
        "TTL" | "PTTL" | "EXPIRETIME" | "PEXPIRETIME" => {
            arity(n == 1)?;
            let kind = match name {
                "TTL" => TtlKind::Ttl,
                "PTTL" => TtlKind::Pttl,
                "EXPIRETIME" => TtlKind::ExpireTime,
                _ => TtlKind::PexpireTime,
            };
            r(Query::Ttl { key: key(), kind })
        }
        "PERSIST" => {
            arity(n == 1)?;
            w(Command::Persist { key: key() })
        }
        "DEL" | "UNLINK" => {
            arity(n >= 1)?;
            w(Command::Del { keys: a.to_vec() })
        }
        "EXISTS" => {
            arity(n >= 1)?;
            r(Query::Exists { keys: a.to_vec() })
        }
        "MGET" => {
            arity(n >= 1)?;
            r(Query::MGet { keys: a.to_vec() })
        }
        "MSET" | "MSETNX" => {
            arity(n >= 2 && n & 1 == 0)?;
            let pairs = a.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
            w(if name == "MSET" {
                Command::MSet { pairs }
            } else {
                Command::MSetNx { pairs }
            })
        }
        "INCR" | "DECR" => {
            arity(n == 1)?;
            let by = if name == "INCR" { 1 } else { -1 };
            w(Command::IncrBy { key: key(), by })
        }
        "INCRBY" | "DECRBY" => {
            arity(n == 2)?;
            let by = int(&a[1])?;
            let by = if name == "INCRBY" {
                by
            } else {
                by.checked_neg()
                    .ok_or_else(|| other("ERR decrement would overflow"))?
            };
            w(Command::IncrBy { key: key(), by })
        }
        "INCRBYFLOAT" => {
            arity(n == 2)?;
            w(Command::IncrByFloat {
                key: key(),
                by: a[1].clone(),
            })
        }
        "APPEND" => {
            arity(n == 2)?;
            w(Command::Append {
                key: key(),
                value: a[1].clone(),
            })
        }
        "STRLEN" => {
            arity(n == 1)?;
            r(Query::StrLen { key: key() })
        }
        "GETRANGE" | "SUBSTR" => {
            arity(n == 3)?;
            r(Query::GetRange {
                key: key(),
                start: int(&a[1])?,
                end: int(&a[2])?,
            })
        }
        "SETRANGE" => {
            arity(n == 3)?;
            let offset = int(&a[1])?;
            if offset < 0 {
                return Err(other("ERR offset is out of range"));
            }
            w(Command::SetRange {
                key: key(),
                offset: offset as u64,
                value: a[2].clone(),
            })
        }
        "TYPE" => {
            arity(n == 1)?;
            r(Query::Type { key: key() })
        }
        "RENAME" | "RENAMENX" => {
            arity(n == 2)?;
            w(Command::Rename {
                from: key(),
                to: a[1].clone(),
                nx: name == "RENAMENX",
            })
        }
        "COPY" => {
            arity(n >= 2)?;
            let mut replace = false;
            let mut opts = a[2..].iter();
            while let Some(opt) = opts.next() {
                match upper(opt).as_str() {
                    "REPLACE" => replace = true,
                    "DB" => {
                        let db = opts.next().ok_or_else(|| other(SYNTAX))?;
                        if int(db)? != 0 {
                            return Err(other("ERR DB index is out of range"));
                        }
                    }
                    _ => return Err(other(SYNTAX)),
                }
            }
            w(Command::Copy {
                from: key(),
                to: a[1].clone(),
                replace,
            })
        }
        "FLUSHDB" | "FLUSHALL" => {
            match a {
                [] => {}
                [mode] if matches!(upper(mode).as_str(), "ASYNC" | "SYNC") => {}
                _ => return Err(other(SYNTAX)),
            }
            w(Command::FlushAll)
        }
        "DBSIZE" => {
            arity(n == 0)?;
            r(Query::DbSize)
        }
        "HSET" | "HMSET" => {
            arity(n >= 3 && n & 1 == 1)?;
            let pairs = a[1..]
                .chunks(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect();
            w(Command::HSet {
                key: key(),
                pairs,
                hmset: name == "HMSET",
            })
        }
        "HSETNX" => {
            arity(n == 3)?;
            w(Command::HSetNx {
                key: key(),
                field: a[1].clone(),
                value: a[2].clone(),
            })
        }
        "HGET" => {
            arity(n == 2)?;
            r(Query::HGet {
                key: key(),
                field: a[1].clone(),
            })
        }
        "HMGET" => {
            arity(n >= 2)?;
            r(Query::HMGet {
                key: key(),
                fields: a[1..].to_vec(),
            })
        }
        "HDEL" => {
            arity(n >= 2)?;
            w(Command::HDel {
                key: key(),
                fields: a[1..].to_vec(),
            })
        }
        "HGETALL" | "HKEYS" | "HVALS" | "HLEN" => {
            arity(n == 1)?;
            r(match name {
                "HGETALL" => Query::HGetAll { key: key() },
                "HKEYS" => Query::HKeys { key: key() },
                "HVALS" => Query::HVals { key: key() },
                _ => Query::HLen { key: key() },
            })
        }
        "HEXISTS" | "HSTRLEN" => {
            arity(n == 2)?;
            let (key, field) = (key(), a[1].clone());
            r(if name == "HEXISTS" {
                Query::HExists { key, field }
            } else {
                Query::HStrLen { key, field }
            })
        }
        "HINCRBY" => {
            arity(n == 3)?;
            w(Command::HIncrBy {
                key: key(),
                field: a[1].clone(),
                by: int(&a[2])?,
            })
        }
        "HSCAN" => {
            arity(n >= 2)?;
            hscan(a).map(|(q, _)| Parsed::Read(q))
        }
        _ => unreachable!("every typed command in the table has an arm"),
    })();
    Some(p)
}

fn set(a: &[Bytes], now_ms: u64) -> P {
    let (mut cond, mut ttl, mut get) = (SetCond::Always, None::<SetTtl>, false);
    let mut i = 2;
    while i < a.len() {
        let opt = upper(&a[i]);
        match opt.as_str() {
            "NX" if cond == SetCond::Always => cond = SetCond::IfAbsent,
            "XX" if cond == SetCond::Always => cond = SetCond::IfPresent,
            "GET" => get = true,
            "KEEPTTL" if ttl.is_none() => ttl = Some(SetTtl::Keep),
            "EX" | "PX" | "EXAT" | "PXAT" if ttl.is_none() && i + 1 < a.len() => {
                i += 1;
                ttl = Some(SetTtl::Expire(ttl_when(&opt, &a[i], "set", now_ms)?));
            }
            _ => return Err(other(SYNTAX)),
        }
        i += 1;
    }
    Ok(Parsed::Write(Command::Set {
        key: a[0].clone(),
        value: a[1].clone(),
        cond,
        ttl: ttl.unwrap_or(SetTtl::Clear),
        get,
    }))
}

fn getex(a: &[Bytes], now_ms: u64) -> P {
    let ttl = match &a[1..] {
        [] => GetExTtl::Leave,
        [opt] if upper(opt) == "PERSIST" => GetExTtl::Persist,
        [opt, v] => {
            let opt = upper(opt);
            if !matches!(opt.as_str(), "EX" | "PX" | "EXAT" | "PXAT") {
                return Err(other(SYNTAX));
            }
            GetExTtl::Expire(ttl_when(&opt, v, "getex", now_ms)?)
        }
        _ => return Err(other(SYNTAX)),
    };
    Ok(Parsed::Write(Command::GetEx {
        key: a[0].clone(),
        ttl,
    }))
}

fn expire(name: &str, a: &[Bytes], now_ms: u64) -> P {
    let lower = name.to_ascii_lowercase();
    let v = int(&a[1])?;
    let mut cond = ExpireCond::Always;
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &a[2..] {
        match upper(opt).as_str() {
            "NX" => nx = true,
            "XX" => xx = true,
            "GT" => gt = true,
            "LT" => lt = true,
            _ => {
                return Err(ParseError::Other(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(opt)
                )))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(other(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(other(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    for (flag, c) in [
        (nx, ExpireCond::Nx),
        (xx, ExpireCond::Xx),
        (gt, ExpireCond::Gt),
        (lt, ExpireCond::Lt),
    ] {
        if flag {
            cond = c;
        }
    }
    let seconds = name == "EXPIRE" || name == "EXPIREAT";
    let ms = if seconds {
        v.checked_mul(1000).ok_or_else(|| invalid_expire(&lower))?
    } else {
        v
    };
    let relative = name == "EXPIRE" || name == "PEXPIRE";
    let when = if relative {
        if ms > i64::MAX - now_ms as i64 {
            return Err(invalid_expire(&lower));
        }
        // A deadline at or before now deletes the key: any past time will do.
        if ms <= 0 {
            When::AtMs(0)
        } else {
            When::InMs(ms as u64)
        }
    } else {
        When::AtMs(ms.max(0) as u64)
    };
    Ok(Parsed::Write(Command::Expire {
        key: a[0].clone(),
        when,
        cond,
    }))
}

/// `HSCAN key cursor [MATCH pattern] [COUNT count] [NOVALUES]`: the query, and the
/// pattern (applied to the page here, as a filter).
pub fn hscan(a: &[Bytes]) -> Result<(Query, Option<Bytes>), ParseError> {
    let cursor = std::str::from_utf8(&a[1])
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
        .ok_or_else(|| other("ERR invalid cursor"))?;
    let (mut count, mut pattern, mut novalues) = (10u32, None, false);
    let mut opts = a[2..].iter();
    while let Some(opt) = opts.next() {
        match upper(opt).as_str() {
            "MATCH" => pattern = Some(opts.next().ok_or_else(|| other(SYNTAX))?.clone()),
            "COUNT" => {
                let c = int(opts.next().ok_or_else(|| other(SYNTAX))?)?;
                if c < 1 {
                    return Err(other(SYNTAX));
                }
                count = u32::try_from(c).unwrap_or(u32::MAX);
            }
            "NOVALUES" => novalues = true,
            _ => return Err(other(SYNTAX)),
        }
    }
    let q = Query::HScan {
        key: a[0].clone(),
        cursor,
        count,
        novalues,
    };
    Ok((q, pattern))
}

/// A kv reply as a RESP value (a map is a RESP3 map, a flat array of fields and values
/// in RESP2, as Redis sends HGETALL's).
pub fn to_value(r: Reply) -> Value {
    match r {
        Reply::Ok => Value::ok(),
        Reply::Status(s) => Value::Simple(s),
        Reply::Nil => Value::nil(),
        Reply::NilArray => Value::Array(None),
        Reply::Int(i) => Value::Int(i),
        Reply::Bulk(b) => Value::Bulk(Some(b)),
        Reply::Array(items) => Value::Array(Some(items.into_iter().map(to_value).collect())),
        Reply::Map(pairs) => Value::Map(
            pairs
                .into_iter()
                .map(|(f, v)| (Value::Bulk(Some(f)), Value::Bulk(Some(v))))
                .collect(),
        ),
        Reply::Error(e) => Value::Error(e),
    }
}

/// The keys a typed command touches, for pipeline grouping and size limits.
pub fn keys_of(p: &Parsed) -> Vec<Bytes> {
    match p {
        Parsed::Write(Command::Del { keys }) => keys.clone(),
        Parsed::Write(Command::MSet { pairs } | Command::MSetNx { pairs }) => {
            pairs.iter().map(|(k, _)| k.clone()).collect()
        }
        Parsed::Write(Command::Rename { from, to, .. } | Command::Copy { from, to, .. }) => {
            vec![from.clone(), to.clone()]
        }
        Parsed::Write(c) => vec![c.key().clone()],
        Parsed::Read(Query::Exists { keys } | Query::MGet { keys }) => keys.clone(),
        Parsed::Read(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<Bytes> {
        v.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    fn err(name: &str, a: &[&str]) -> String {
        match parse(name, &args(a), 1_000).expect("typed") {
            Err(e) => e.text(name),
            Ok(p) => panic!("parsed: {p:?}"),
        }
    }

    #[test]
    fn redis_error_texts() {
        assert_eq!(
            err("SET", &["k"]),
            "ERR wrong number of arguments for 'set' command"
        );
        assert_eq!(err("SET", &["k", "v", "EX"]), "ERR syntax error");
        assert_eq!(err("SET", &["k", "v", "NX", "XX"]), "ERR syntax error");
        assert_eq!(
            err("SET", &["k", "v", "EX", "1", "PX", "1"]),
            "ERR syntax error"
        );
        assert_eq!(err("SET", &["k", "v", "EX", "x"]), NOT_INTEGER);
        assert_eq!(
            err("SET", &["k", "v", "EX", "0"]),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            err("SET", &["k", "v", "EX", "9223372036854775807"]),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            err("SETEX", &["k", "-1", "v"]),
            "ERR invalid expire time in 'setex' command"
        );
        assert_eq!(
            err("GETEX", &["k", "PX", "0"]),
            "ERR invalid expire time in 'getex' command"
        );
        assert_eq!(err("GETEX", &["k", "PERSIST", "EX"]), "ERR syntax error");
        assert_eq!(
            err("EXPIRE", &["k", "1", "NX", "XX"]),
            "ERR NX and XX, GT or LT options at the same time are not compatible"
        );
        assert_eq!(
            err("EXPIRE", &["k", "1", "GT", "LT"]),
            "ERR GT and LT options at the same time are not compatible"
        );
        assert_eq!(
            err("EXPIRE", &["k", "1", "YY"]),
            "ERR Unsupported option YY"
        );
        assert_eq!(
            err("EXPIRE", &["k", "9223372036854775807"]),
            "ERR invalid expire time in 'expire' command"
        );
        assert_eq!(
            err("DECRBY", &["k", "-9223372036854775808"]),
            "ERR decrement would overflow"
        );
        assert_eq!(
            err("SETRANGE", &["k", "-1", "v"]),
            "ERR offset is out of range"
        );
        assert_eq!(
            err("MSET", &["a", "1", "b"]),
            "ERR wrong number of arguments for 'mset' command"
        );
        assert_eq!(
            err("HSET", &["h", "f"]),
            "ERR wrong number of arguments for 'hset' command"
        );
        assert_eq!(err("HSCAN", &["h", "x"]), "ERR invalid cursor");
        assert_eq!(err("HSCAN", &["h", "0", "COUNT", "0"]), "ERR syntax error");
        assert_eq!(err("FLUSHALL", &["NOW"]), "ERR syntax error");
        assert!(parse("PING", &[], 0).is_none());
        assert!(is_typed("HGETALL") && !is_typed("CAS"));
    }

    #[test]
    fn every_listed_command_parses_or_refuses_without_panicking() {
        let typed = super::super::table::TABLE
            .iter()
            .filter(|s| s.group == super::super::table::Group::Typed);
        for spec in typed {
            let name = &spec.name.to_ascii_uppercase();
            for n in 0..6 {
                let a = args(&["k", "1", "2", "3", "4", "5"][..n]);
                assert!(parse(name, &a, 0).is_some(), "{name}");
            }
        }
    }

    #[test]
    fn options_parse() {
        let p = parse("SET", &args(&["k", "v", "nx", "get", "px", "50"]), 0).unwrap();
        assert_eq!(
            p,
            Ok(Parsed::Write(Command::Set {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"v"),
                cond: SetCond::IfAbsent,
                ttl: SetTtl::Expire(When::InMs(50)),
                get: true,
            }))
        );
        let p = parse("EXPIRE", &args(&["k", "-5", "lt"]), 0).unwrap();
        assert_eq!(
            p,
            Ok(Parsed::Write(Command::Expire {
                key: Bytes::from_static(b"k"),
                when: When::AtMs(0),
                cond: ExpireCond::Lt,
            }))
        );
    }
}
