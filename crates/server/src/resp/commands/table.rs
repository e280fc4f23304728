//! The command table: every command raftkv answers, the concern that runs it, and Redis's
//! own description of it (arity, flags, keys, ACL categories, tips, key specs,
//! subcommands) — what `COMMAND`, `COMMAND INFO`, `COMMAND COUNT`, `COMMAND LIST` and
//! `COMMAND DOCS` answer. `dispatch.rs` routes by this table (a name not in it is an
//! unknown command), so the two cannot drift apart: a command is added by adding its row
//! (in `table.py`, which writes `table_data.rs` from a real Redis's `COMMAND INFO`).

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;

use super::connection::unknown_sub;
use super::{upper, Failed, Res};
use crate::resp::codec::Value;
use crate::resp::scan::glob_match;

pub use super::table_data::TABLE;

/// The concern that runs a command (see `mod.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// `connection.rs`.
    Connection,
    /// `typed.rs` parses it, `data.rs` runs it.
    Typed,
    /// `cas.rs`.
    Cas,
    /// `keyspace.rs`.
    Keyspace,
    /// `server_info.rs`.
    Server,
    /// `txn.rs` (the connection hands these to its transaction, never to `execute`).
    Txn,
    /// Answered by `execute` itself.
    Quit,
    /// `acl.rs`: AUTH, ACL.
    Acl,
}

/// One command (or subcommand, named `container|sub`) as Redis 7 describes it.
#[derive(Debug)]
pub struct Spec {
    /// Lower case, as Redis shows it.
    pub name: &'static str,
    pub group: Group,
    /// The argument count including the name; negative: at least that many.
    pub arity: i64,
    pub flags: &'static [&'static str],
    /// First key, last key, step (Redis's legacy key positions).
    pub keys: (i64, i64, i64),
    pub acl: &'static [&'static str],
    pub tips: &'static [&'static str],
    pub key_specs: &'static [KeySpec],
    pub subs: &'static [Spec],
}

#[derive(Debug)]
pub struct KeySpec {
    pub notes: Option<&'static str>,
    pub flags: &'static [&'static str],
    pub begin: Begin,
    pub find: Find,
}

#[derive(Debug)]
pub enum Begin {
    Index(i64),
    Keyword {
        keyword: &'static str,
        startfrom: i64,
    },
}

#[derive(Debug)]
pub enum Find {
    Range {
        lastkey: i64,
        keystep: i64,
        limit: i64,
    },
    Keynum {
        keynumidx: i64,
        firstkey: i64,
        keystep: i64,
    },
}

impl Spec {
    /// Whether `argc` arguments (the name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let n = argc as i64;
        if self.arity >= 0 {
            n == self.arity
        } else {
            n >= -self.arity
        }
    }

    /// A subcommand by name (any case).
    pub fn sub(&self, sub: &[u8]) -> Option<&'static Spec> {
        let prefix = self.name.len() + 1;
        self.subs
            .iter()
            .find(|s| s.name.as_bytes()[prefix..].eq_ignore_ascii_case(sub))
    }

    /// The `COMMAND INFO` entry: `[name, arity, flags, first-key, last-key, step,
    /// acl-categories, tips, key-specs, subcommands]`, typed as Redis 7.0 types them
    /// (sets in RESP3; an empty subcommand list is an empty set, a full one an array).
    pub fn info(&self) -> Value {
        let simple_set =
            |xs: &[&str]| Value::Set(xs.iter().map(|x| Value::Simple(x.to_string())).collect());
        let subs = if self.subs.is_empty() {
            Value::Set(Vec::new())
        } else {
            Value::Array(Some(self.subs.iter().map(Spec::info).collect()))
        };
        Value::Array(Some(vec![
            Value::bulk(self.name),
            Value::Int(self.arity),
            simple_set(self.flags),
            Value::Int(self.keys.0),
            Value::Int(self.keys.1),
            Value::Int(self.keys.2),
            simple_set(self.acl),
            Value::Set(self.tips.iter().map(|t| Value::bulk(*t)).collect()),
            Value::Set(self.key_specs.iter().map(KeySpec::info).collect()),
            subs,
        ]))
    }
}

fn field(k: &'static str, v: Value) -> (Value, Value) {
    (Value::bulk(k), v)
}

/// A key spec's `begin_search` or `find_keys`: `{type: kind, spec: {...}}`.
fn typed_spec(kind: &'static str, spec: Vec<(Value, Value)>) -> Value {
    Value::Map(vec![
        field("type", Value::bulk(kind)),
        field("spec", Value::Map(spec)),
    ])
}

impl KeySpec {
    fn info(&self) -> Value {
        let mut m = Vec::with_capacity(4);
        if let Some(n) = self.notes {
            m.push(field("notes", Value::bulk(n)));
        }
        m.push(field(
            "flags",
            Value::Set(
                self.flags
                    .iter()
                    .map(|f| Value::Simple(f.to_string()))
                    .collect(),
            ),
        ));
        let (kind, spec) = match self.begin {
            Begin::Index(i) => ("index", vec![field("index", Value::Int(i))]),
            Begin::Keyword { keyword, startfrom } => (
                "keyword",
                vec![
                    field("keyword", Value::bulk(keyword)),
                    field("startfrom", Value::Int(startfrom)),
                ],
            ),
        };
        m.push(field("begin_search", typed_spec(kind, spec)));
        let (kind, spec) = match self.find {
            Find::Range {
                lastkey,
                keystep,
                limit,
            } => (
                "range",
                vec![
                    field("lastkey", Value::Int(lastkey)),
                    field("keystep", Value::Int(keystep)),
                    field("limit", Value::Int(limit)),
                ],
            ),
            Find::Keynum {
                keynumidx,
                firstkey,
                keystep,
            } => (
                "keynum",
                vec![
                    field("keynumidx", Value::Int(keynumidx)),
                    field("firstkey", Value::Int(firstkey)),
                    field("keystep", Value::Int(keystep)),
                ],
            ),
        };
        m.push(field("find_keys", typed_spec(kind, spec)));
        Value::Map(m)
    }
}

/// A command by name, any case; `container|sub` finds a subcommand (as in Redis 7).
pub fn lookup(name: &str) -> Option<&'static Spec> {
    static BY_NAME: OnceLock<HashMap<String, &'static Spec>> = OnceLock::new();
    let by_name = BY_NAME.get_or_init(|| {
        TABLE
            .iter()
            .map(|s| (s.name.to_ascii_uppercase(), s))
            .collect()
    });
    if let Some(s) = by_name.get(name) {
        return Some(s);
    }
    let upper_name = name.to_ascii_uppercase();
    if let Some(s) = by_name.get(&upper_name) {
        return Some(s);
    }
    let (container, sub) = upper_name.split_once('|')?;
    by_name.get(container)?.sub(sub.as_bytes())
}

/// The command a client sent (its upper-cased name), if raftkv has it.
pub fn command_spec(name: &str) -> Option<&'static Spec> {
    lookup(name).filter(|s| !s.name.contains('|'))
}

const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "HELP",
    "    Prints this help.",
];

/// `COMMAND [COUNT | LIST [FILTERBY ...] | INFO [name ...] | DOCS [name ...] | HELP]`.
pub(super) fn command(a: &[Bytes]) -> Res<Value> {
    let Some(sub) = a.first() else {
        return Ok(Value::Array(Some(TABLE.iter().map(Spec::info).collect())));
    };
    let container = command_spec("COMMAND").expect("COMMAND is in the table");
    let Some(spec) = container.sub(sub) else {
        return Err(unknown_sub("COMMAND", sub));
    };
    if !spec.arity_ok(a.len() + 1) {
        return Err(Failed(Value::err(format!(
            "wrong number of arguments for '{}' command",
            spec.name
        ))));
    }
    let names = &a[1..];
    match &spec.name["command|".len()..] {
        "count" => Ok(Value::Int(TABLE.len() as i64)),
        "help" => Ok(Value::Array(Some(
            COMMAND_HELP
                .iter()
                .map(|l| Value::Simple(l.to_string()))
                .collect(),
        ))),
        "info" if names.is_empty() => command(&[]),
        "info" => Ok(Value::Array(Some(
            names
                .iter()
                .map(|n| lookup(&String::from_utf8_lossy(n)).map_or_else(Value::nil, Spec::info))
                .collect(),
        ))),
        // Documentation is not kept: each command's is an empty map. Unknown names are
        // left out, as Redis leaves them out.
        "docs" => {
            let specs: Vec<&Spec> = if names.is_empty() {
                TABLE.iter().collect()
            } else {
                names
                    .iter()
                    .filter_map(|n| lookup(&String::from_utf8_lossy(n)))
                    .collect()
            };
            Ok(Value::Map(
                specs
                    .into_iter()
                    .map(|s| (Value::bulk(s.name), Value::Map(Vec::new())))
                    .collect(),
            ))
        }
        _ => command_list(names),
    }
}

/// `COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]`: every
/// command's name and every subcommand's (`client|list`).
fn command_list(opts: &[Bytes]) -> Res<Value> {
    let keep: Box<dyn Fn(&Spec) -> bool> = match opts {
        [] => Box::new(|_| true),
        [by, kind, what] if upper(by) == "FILTERBY" => match upper(kind).as_str() {
            "MODULE" => Box::new(|_| false),
            "ACLCAT" => {
                let cat = format!("@{}", String::from_utf8_lossy(what).to_ascii_lowercase());
                Box::new(move |s| s.acl.contains(&cat.as_str()))
            }
            "PATTERN" => {
                let pattern = what.to_ascii_lowercase();
                Box::new(move |s| glob_match(&pattern, s.name.as_bytes()))
            }
            _ => return Err(Failed(Value::err("syntax error"))),
        },
        _ => return Err(Failed(Value::err("syntax error"))),
    };
    let mut out = Vec::new();
    for s in TABLE {
        for s in std::iter::once(s).chain(s.subs) {
            if keep(s) {
                out.push(Value::bulk(s.name));
            }
        }
    }
    Ok(Value::Array(Some(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_in_any_case_and_subcommands_by_container() {
        assert_eq!(lookup("GET").map(|s| s.name), Some("get"));
        assert_eq!(lookup("hGetAll").map(|s| s.name), Some("hgetall"));
        assert_eq!(lookup("CLIENT|LIST").map(|s| s.name), Some("client|list"));
        assert_eq!(lookup("client|nosuch").map(|s| s.name), None);
        assert!(command_spec("client|list").is_none());
        assert!(lookup("NOSUCH").is_none());
    }

    #[test]
    fn the_table_is_consistent() {
        let mut seen = std::collections::HashSet::new();
        for s in TABLE {
            assert!(seen.insert(s.name), "{} twice", s.name);
            assert_eq!(s.name, s.name.to_ascii_lowercase());
            assert!(!s.name.contains('|'));
            for sub in s.subs {
                assert!(
                    sub.name.starts_with(&format!("{}|", s.name)),
                    "{}",
                    sub.name
                );
                assert_eq!(sub.group, s.group);
            }
            assert!(s.arity != 0, "{}", s.name);
        }
    }
}
