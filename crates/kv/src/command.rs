//! Commands carried in log entries (the writes), and their compact binary encoding.
//!
//! Layout: one tag byte, then the fields. The first three commands keep the seed
//! replica's original layout (length-prefixed key, then the value to the end), so logs
//! and snapshots written before the typed model still apply. Every later command uses
//! the field encodings of [`crate::wire`] and must be read to its last byte.
//!
//! A command decides its own reply ([`crate::Reply`]) exactly as Redis would, so a new
//! command needs a variant here and an arm in `apply.rs`, and nothing in the driver or
//! the transport (they carry the encoded bytes).

use bytes::{BufMut, Bytes, BytesMut};

use crate::acl::AclOp;
use crate::query::Query;
use crate::reply::Reply;
use crate::wire::{put_bool, put_bytes, put_ivarint, put_list, put_uvarint, Reader, MAX_DEPTH};

/// A relative or absolute deadline, as the client gave it. A relative one becomes
/// absolute at apply, with the clock of the entry that carries it (see `expiry.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// Milliseconds after the entry's clock.
    InMs(u64),
    /// Unix time in milliseconds.
    AtMs(u64),
}

/// What `SET` does with the key's time to live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetTtl {
    /// No expiry (a plain SET clears any deadline).
    Clear,
    /// `KEEPTTL`.
    Keep,
    Expire(When),
}

/// `SET`'s `NX`/`XX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetCond {
    Always,
    IfAbsent,
    IfPresent,
}

/// `EXPIRE`'s `NX|XX|GT|LT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpireCond {
    Always,
    /// Only if the key has no deadline.
    Nx,
    /// Only if it has one.
    Xx,
    /// Only if the new deadline is later (no deadline counts as infinitely late).
    Gt,
    /// Only if the new deadline is earlier.
    Lt,
}

/// What `GETEX` does with the deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetExTtl {
    Leave,
    Persist,
    Expire(When),
}

/// One step of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Write(Command),
    Read(Query),
    /// A reply known when the command was queued: a command that failed to parse
    /// (Redis reports that at EXEC, in its place in the array; only arity errors and
    /// unknown commands abort the whole EXEC), or one that touches no data (PING).
    Const(Reply),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Put {
        key: Bytes,
        value: Bytes,
    },
    Delete {
        key: Bytes,
    },
    /// Sets `key` to `new` only if its current value is `expected` (`None` = absent).
    Cas {
        key: Bytes,
        expected: Option<Bytes>,
        new: Bytes,
    },
    /// `SET` with all its options (`GETSET` is `SET ... GET`, `SETEX` and `PSETEX` are
    /// `SET ... EX|PX`).
    Set {
        key: Bytes,
        value: Bytes,
        cond: SetCond,
        ttl: SetTtl,
        get: bool,
    },
    /// `SETNX`: answers 1 or 0, unlike `SET NX`.
    SetNx {
        key: Bytes,
        value: Bytes,
    },
    GetDel {
        key: Bytes,
    },
    GetEx {
        key: Bytes,
        ttl: GetExTtl,
    },
    /// `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT`.
    Expire {
        key: Bytes,
        when: When,
        cond: ExpireCond,
    },
    Persist {
        key: Bytes,
    },
    /// `DEL` and `UNLINK`: all keys in one entry.
    Del {
        keys: Vec<Bytes>,
    },
    MSet {
        pairs: Vec<(Bytes, Bytes)>,
    },
    MSetNx {
        pairs: Vec<(Bytes, Bytes)>,
    },
    /// `INCR`, `DECR`, `INCRBY`, `DECRBY`.
    IncrBy {
        key: Bytes,
        by: i64,
    },
    /// The increment is kept as the client's text and parsed at apply, as Redis does.
    IncrByFloat {
        key: Bytes,
        by: Bytes,
    },
    Append {
        key: Bytes,
        value: Bytes,
    },
    SetRange {
        key: Bytes,
        offset: u64,
        value: Bytes,
    },
    /// `RENAME` (answers OK) and `RENAMENX` (answers 1 or 0).
    Rename {
        from: Bytes,
        to: Bytes,
        nx: bool,
    },
    Copy {
        from: Bytes,
        to: Bytes,
        replace: bool,
    },
    /// `FLUSHDB` and `FLUSHALL` (one database).
    FlushAll,
    /// `HSET` (answers the fields added) and `HMSET` (answers OK).
    HSet {
        key: Bytes,
        pairs: Vec<(Bytes, Bytes)>,
        hmset: bool,
    },
    HSetNx {
        key: Bytes,
        field: Bytes,
        value: Bytes,
    },
    HDel {
        key: Bytes,
        fields: Vec<Bytes>,
    },
    HIncrBy {
        key: Bytes,
        field: Bytes,
        by: i64,
    },
    /// Active expiry: the leader proposes removing keys it saw past their deadline;
    /// apply removes those still past it by the entry's clock (a key rewritten or
    /// given a new deadline since stays).
    ExpireKeys {
        keys: Vec<Bytes>,
    },
    /// `MULTI` ... `EXEC`: applied only if every watched key still has the version
    /// `WATCH` read (else the reply is a nil array); then every op in order, atomically.
    Multi {
        watched: Vec<(Bytes, u64)>,
        ops: Vec<Op>,
    },
    /// `ACL SETUSER` / `ACL DELUSER` (`acl.rs`), with the proposer's bootstrap rules for
    /// the `default` user, used if this entry is the first ACL entry.
    Acl {
        op: AclOp,
        bootstrap: Vec<Bytes>,
    },
    /// A command with the leader's wall-clock time (Unix ms) when it was proposed.
    Timed {
        now_ms: u64,
        cmd: Box<Command>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty command")]
    Empty,
    #[error("unknown command tag {0:#x}")]
    UnknownTag(u8),
    #[error("truncated command")]
    Truncated,
    #[error("trailing bytes after command")]
    Trailing,
    #[error("bad varint: bits beyond the 64th")]
    BadVarint,
    #[error("bad {0}")]
    BadField(&'static str),
    #[error("commands or replies nested too deeply")]
    TooDeep,
}

const TAG_PUT: u8 = b'P';
const TAG_DELETE: u8 = b'D';
const TAG_CAS: u8 = b'C';
const TAG_CAS_ABSENT: u8 = b'c';
const TAG_TIMED: u8 = b'T';
const TAG_SET: u8 = 0x10;
const TAG_SETNX: u8 = 0x11;
const TAG_GETDEL: u8 = 0x12;
const TAG_GETEX: u8 = 0x13;
const TAG_EXPIRE: u8 = 0x14;
const TAG_PERSIST: u8 = 0x15;
const TAG_DEL: u8 = 0x16;
const TAG_MSET: u8 = 0x17;
const TAG_MSETNX: u8 = 0x18;
const TAG_INCRBY: u8 = 0x19;
const TAG_INCRBYFLOAT: u8 = 0x1a;
const TAG_APPEND: u8 = 0x1b;
const TAG_SETRANGE: u8 = 0x1c;
const TAG_RENAME: u8 = 0x1d;
const TAG_COPY: u8 = 0x1e;
const TAG_FLUSHALL: u8 = 0x1f;
const TAG_HSET: u8 = 0x20;
const TAG_HSETNX: u8 = 0x21;
const TAG_HDEL: u8 = 0x22;
const TAG_HINCRBY: u8 = 0x23;
const TAG_EXPIREKEYS: u8 = 0x24;
const TAG_MULTI: u8 = 0x25;
const TAG_ACL: u8 = 0x26;

const ACL_SETUSER: u8 = 0;
const ACL_DELUSER: u8 = 1;
const ACL_INIT: u8 = 2;

const OP_WRITE: u8 = 0;
const OP_READ: u8 = 1;
const OP_CONST: u8 = 2;

impl Command {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        self.write(&mut buf);
        buf.freeze()
    }

    pub fn decode(data: &Bytes) -> Result<Command, DecodeError> {
        Command::decode_at(data, 0)
    }

    fn decode_at(data: &Bytes, depth: usize) -> Result<Command, DecodeError> {
        let (&tag, _) = data.split_first().ok_or(DecodeError::Empty)?;
        let mut r = Reader::new(data, 1);
        let cmd = match tag {
            // The original layouts: the last field runs to the end.
            TAG_PUT => {
                let key = r.bytes()?;
                return Ok(Command::Put {
                    key,
                    value: r.rest(),
                });
            }
            TAG_DELETE => return Ok(Command::Delete { key: r.rest() }),
            TAG_CAS | TAG_CAS_ABSENT => {
                let key = r.bytes()?;
                let expected = if tag == TAG_CAS {
                    Some(r.bytes()?)
                } else {
                    None
                };
                return Ok(Command::Cas {
                    key,
                    expected,
                    new: r.rest(),
                });
            }
            TAG_TIMED => {
                if depth > 0 {
                    return Err(DecodeError::TooDeep);
                }
                let now_ms = r.uvarint()?;
                let inner = data.slice(r.pos()..);
                let cmd = Box::new(Command::decode_at(&inner, depth + 1)?);
                return Ok(Command::Timed { now_ms, cmd });
            }
            _ => Command::read_tagged(tag, &mut r, depth)?,
        };
        r.finish()?;
        Ok(cmd)
    }

    fn read_tagged(tag: u8, r: &mut Reader, depth: usize) -> Result<Command, DecodeError> {
        Ok(match tag {
            TAG_SET => Command::Set {
                key: r.bytes()?,
                value: r.bytes()?,
                cond: match r.u8()? {
                    0 => SetCond::Always,
                    1 => SetCond::IfAbsent,
                    2 => SetCond::IfPresent,
                    _ => return Err(DecodeError::BadField("SET condition")),
                },
                ttl: match r.u8()? {
                    0 => SetTtl::Clear,
                    1 => SetTtl::Keep,
                    2 => SetTtl::Expire(read_when(r)?),
                    _ => return Err(DecodeError::BadField("SET ttl")),
                },
                get: r.bool()?,
            },
            TAG_SETNX => Command::SetNx {
                key: r.bytes()?,
                value: r.bytes()?,
            },
            TAG_GETDEL => Command::GetDel { key: r.bytes()? },
            TAG_GETEX => Command::GetEx {
                key: r.bytes()?,
                ttl: match r.u8()? {
                    0 => GetExTtl::Leave,
                    1 => GetExTtl::Persist,
                    2 => GetExTtl::Expire(read_when(r)?),
                    _ => return Err(DecodeError::BadField("GETEX ttl")),
                },
            },
            TAG_EXPIRE => Command::Expire {
                key: r.bytes()?,
                when: read_when(r)?,
                cond: match r.u8()? {
                    0 => ExpireCond::Always,
                    1 => ExpireCond::Nx,
                    2 => ExpireCond::Xx,
                    3 => ExpireCond::Gt,
                    4 => ExpireCond::Lt,
                    _ => return Err(DecodeError::BadField("EXPIRE condition")),
                },
            },
            TAG_PERSIST => Command::Persist { key: r.bytes()? },
            TAG_DEL => Command::Del { keys: r.list()? },
            TAG_MSET => Command::MSet {
                pairs: read_pairs(r)?,
            },
            TAG_MSETNX => Command::MSetNx {
                pairs: read_pairs(r)?,
            },
            TAG_INCRBY => Command::IncrBy {
                key: r.bytes()?,
                by: r.ivarint()?,
            },
            TAG_INCRBYFLOAT => Command::IncrByFloat {
                key: r.bytes()?,
                by: r.bytes()?,
            },
            TAG_APPEND => Command::Append {
                key: r.bytes()?,
                value: r.bytes()?,
            },
            TAG_SETRANGE => Command::SetRange {
                key: r.bytes()?,
                offset: r.uvarint()?,
                value: r.bytes()?,
            },
            TAG_RENAME => Command::Rename {
                from: r.bytes()?,
                to: r.bytes()?,
                nx: r.bool()?,
            },
            TAG_COPY => Command::Copy {
                from: r.bytes()?,
                to: r.bytes()?,
                replace: r.bool()?,
            },
            TAG_FLUSHALL => Command::FlushAll,
            TAG_HSET => Command::HSet {
                key: r.bytes()?,
                pairs: read_pairs(r)?,
                hmset: r.bool()?,
            },
            TAG_HSETNX => Command::HSetNx {
                key: r.bytes()?,
                field: r.bytes()?,
                value: r.bytes()?,
            },
            TAG_HDEL => Command::HDel {
                key: r.bytes()?,
                fields: r.list()?,
            },
            TAG_HINCRBY => Command::HIncrBy {
                key: r.bytes()?,
                field: r.bytes()?,
                by: r.ivarint()?,
            },
            TAG_EXPIREKEYS => Command::ExpireKeys { keys: r.list()? },
            TAG_ACL => {
                let op = match r.u8()? {
                    ACL_SETUSER => AclOp::SetUser {
                        name: r.bytes()?,
                        rules: r.list()?,
                    },
                    ACL_DELUSER => AclOp::DelUser { names: r.list()? },
                    ACL_INIT => AclOp::Init,
                    _ => return Err(DecodeError::BadField("ACL operation")),
                };
                Command::Acl {
                    op,
                    bootstrap: r.list()?,
                }
            }
            TAG_MULTI => {
                if depth >= MAX_DEPTH - 1 {
                    return Err(DecodeError::TooDeep);
                }
                let n = r.count(2)?;
                let mut watched = Vec::with_capacity(n);
                for _ in 0..n {
                    watched.push((r.bytes()?, r.uvarint()?));
                }
                let n = r.count(2)?;
                let mut ops = Vec::with_capacity(n);
                for _ in 0..n {
                    // Each op is length-prefixed: its command runs to the end of it.
                    let kind = r.u8()?;
                    let body = r.bytes()?;
                    ops.push(match kind {
                        OP_WRITE => {
                            let cmd = Command::decode_at(&body, depth + 1)?;
                            if matches!(cmd, Command::Multi { .. } | Command::Timed { .. }) {
                                return Err(DecodeError::TooDeep);
                            }
                            Op::Write(cmd)
                        }
                        OP_READ => Op::Read(Query::decode(&body)?),
                        OP_CONST => Op::Const(Reply::decode(&body)?),
                        _ => return Err(DecodeError::BadField("transaction op kind")),
                    });
                }
                Command::Multi { watched, ops }
            }
            other => return Err(DecodeError::UnknownTag(other)),
        })
    }

    fn write(&self, buf: &mut BytesMut) {
        match self {
            Command::Put { key, value } => {
                buf.put_u8(TAG_PUT);
                put_bytes(buf, key);
                buf.put_slice(value);
            }
            Command::Delete { key } => {
                buf.put_u8(TAG_DELETE);
                buf.put_slice(key);
            }
            Command::Cas { key, expected, new } => {
                match expected {
                    Some(expected) => {
                        buf.put_u8(TAG_CAS);
                        put_bytes(buf, key);
                        put_bytes(buf, expected);
                    }
                    None => {
                        buf.put_u8(TAG_CAS_ABSENT);
                        put_bytes(buf, key);
                    }
                }
                buf.put_slice(new);
            }
            Command::Timed { now_ms, cmd } => {
                buf.put_u8(TAG_TIMED);
                put_uvarint(buf, *now_ms);
                cmd.write(buf);
            }
            Command::Set {
                key,
                value,
                cond,
                ttl,
                get,
            } => {
                buf.put_u8(TAG_SET);
                put_bytes(buf, key);
                put_bytes(buf, value);
                buf.put_u8(match cond {
                    SetCond::Always => 0,
                    SetCond::IfAbsent => 1,
                    SetCond::IfPresent => 2,
                });
                match ttl {
                    SetTtl::Clear => buf.put_u8(0),
                    SetTtl::Keep => buf.put_u8(1),
                    SetTtl::Expire(when) => {
                        buf.put_u8(2);
                        put_when(buf, when);
                    }
                }
                put_bool(buf, *get);
            }
            Command::SetNx { key, value } => {
                buf.put_u8(TAG_SETNX);
                put_bytes(buf, key);
                put_bytes(buf, value);
            }
            Command::GetDel { key } => {
                buf.put_u8(TAG_GETDEL);
                put_bytes(buf, key);
            }
            Command::GetEx { key, ttl } => {
                buf.put_u8(TAG_GETEX);
                put_bytes(buf, key);
                match ttl {
                    GetExTtl::Leave => buf.put_u8(0),
                    GetExTtl::Persist => buf.put_u8(1),
                    GetExTtl::Expire(when) => {
                        buf.put_u8(2);
                        put_when(buf, when);
                    }
                }
            }
            Command::Expire { key, when, cond } => {
                buf.put_u8(TAG_EXPIRE);
                put_bytes(buf, key);
                put_when(buf, when);
                buf.put_u8(match cond {
                    ExpireCond::Always => 0,
                    ExpireCond::Nx => 1,
                    ExpireCond::Xx => 2,
                    ExpireCond::Gt => 3,
                    ExpireCond::Lt => 4,
                });
            }
            Command::Persist { key } => {
                buf.put_u8(TAG_PERSIST);
                put_bytes(buf, key);
            }
            Command::Del { keys } => {
                buf.put_u8(TAG_DEL);
                put_list(buf, keys);
            }
            Command::MSet { pairs } => {
                buf.put_u8(TAG_MSET);
                put_pairs(buf, pairs);
            }
            Command::MSetNx { pairs } => {
                buf.put_u8(TAG_MSETNX);
                put_pairs(buf, pairs);
            }
            Command::IncrBy { key, by } => {
                buf.put_u8(TAG_INCRBY);
                put_bytes(buf, key);
                put_ivarint(buf, *by);
            }
            Command::IncrByFloat { key, by } => {
                buf.put_u8(TAG_INCRBYFLOAT);
                put_bytes(buf, key);
                put_bytes(buf, by);
            }
            Command::Append { key, value } => {
                buf.put_u8(TAG_APPEND);
                put_bytes(buf, key);
                put_bytes(buf, value);
            }
            Command::SetRange { key, offset, value } => {
                buf.put_u8(TAG_SETRANGE);
                put_bytes(buf, key);
                put_uvarint(buf, *offset);
                put_bytes(buf, value);
            }
            Command::Rename { from, to, nx } => {
                buf.put_u8(TAG_RENAME);
                put_bytes(buf, from);
                put_bytes(buf, to);
                put_bool(buf, *nx);
            }
            Command::Copy { from, to, replace } => {
                buf.put_u8(TAG_COPY);
                put_bytes(buf, from);
                put_bytes(buf, to);
                put_bool(buf, *replace);
            }
            Command::FlushAll => buf.put_u8(TAG_FLUSHALL),
            Command::HSet { key, pairs, hmset } => {
                buf.put_u8(TAG_HSET);
                put_bytes(buf, key);
                put_pairs(buf, pairs);
                put_bool(buf, *hmset);
            }
            Command::HSetNx { key, field, value } => {
                buf.put_u8(TAG_HSETNX);
                put_bytes(buf, key);
                put_bytes(buf, field);
                put_bytes(buf, value);
            }
            Command::HDel { key, fields } => {
                buf.put_u8(TAG_HDEL);
                put_bytes(buf, key);
                put_list(buf, fields);
            }
            Command::HIncrBy { key, field, by } => {
                buf.put_u8(TAG_HINCRBY);
                put_bytes(buf, key);
                put_bytes(buf, field);
                put_ivarint(buf, *by);
            }
            Command::ExpireKeys { keys } => {
                buf.put_u8(TAG_EXPIREKEYS);
                put_list(buf, keys);
            }
            Command::Acl { op, bootstrap } => {
                buf.put_u8(TAG_ACL);
                match op {
                    AclOp::SetUser { name, rules } => {
                        buf.put_u8(ACL_SETUSER);
                        put_bytes(buf, name);
                        put_list(buf, rules);
                    }
                    AclOp::DelUser { names } => {
                        buf.put_u8(ACL_DELUSER);
                        put_list(buf, names);
                    }
                    AclOp::Init => buf.put_u8(ACL_INIT),
                }
                put_list(buf, bootstrap);
            }
            Command::Multi { watched, ops } => {
                buf.put_u8(TAG_MULTI);
                put_uvarint(buf, watched.len() as u64);
                for (key, version) in watched {
                    put_bytes(buf, key);
                    put_uvarint(buf, *version);
                }
                put_uvarint(buf, ops.len() as u64);
                for op in ops {
                    let (kind, body) = match op {
                        Op::Write(cmd) => (OP_WRITE, cmd.encode()),
                        Op::Read(q) => (OP_READ, q.encode()),
                        Op::Const(r) => (OP_CONST, r.encode()),
                    };
                    buf.put_u8(kind);
                    put_bytes(buf, &body);
                }
            }
        }
    }

    /// The first key the command touches (for logs and tests; empty for FLUSHALL).
    pub fn key(&self) -> &Bytes {
        static NONE: Bytes = Bytes::from_static(b"");
        match self {
            Command::Put { key, .. }
            | Command::Delete { key }
            | Command::Cas { key, .. }
            | Command::Set { key, .. }
            | Command::SetNx { key, .. }
            | Command::GetDel { key }
            | Command::GetEx { key, .. }
            | Command::Expire { key, .. }
            | Command::Persist { key }
            | Command::IncrBy { key, .. }
            | Command::IncrByFloat { key, .. }
            | Command::Append { key, .. }
            | Command::SetRange { key, .. }
            | Command::HSet { key, .. }
            | Command::HSetNx { key, .. }
            | Command::HDel { key, .. }
            | Command::HIncrBy { key, .. } => key,
            Command::Rename { from, .. } | Command::Copy { from, .. } => from,
            Command::Del { keys } | Command::ExpireKeys { keys } => keys.first().unwrap_or(&NONE),
            Command::MSet { pairs } | Command::MSetNx { pairs } => {
                pairs.first().map_or(&NONE, |(k, _)| k)
            }
            Command::Timed { cmd, .. } => cmd.key(),
            Command::Multi { .. } | Command::FlushAll | Command::Acl { .. } => &NONE,
        }
    }
}

fn put_when(buf: &mut BytesMut, when: &When) {
    match when {
        When::InMs(ms) => {
            buf.put_u8(0);
            put_uvarint(buf, *ms);
        }
        When::AtMs(ms) => {
            buf.put_u8(1);
            put_uvarint(buf, *ms);
        }
    }
}

fn read_when(r: &mut Reader) -> Result<When, DecodeError> {
    match r.u8()? {
        0 => Ok(When::InMs(r.uvarint()?)),
        1 => Ok(When::AtMs(r.uvarint()?)),
        _ => Err(DecodeError::BadField("deadline kind")),
    }
}

fn put_pairs(buf: &mut BytesMut, pairs: &[(Bytes, Bytes)]) {
    put_uvarint(buf, pairs.len() as u64);
    for (k, v) in pairs {
        put_bytes(buf, k);
        put_bytes(buf, v);
    }
}

fn read_pairs(r: &mut Reader) -> Result<Vec<(Bytes, Bytes)>, DecodeError> {
    let n = r.count(2)?;
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        pairs.push((r.bytes()?, r.bytes()?));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn roundtrip(c: Command) {
        assert_eq!(Command::decode(&c.encode()), Ok(c));
    }

    /// One of every command, for round trips here and corruption tests elsewhere.
    pub(crate) fn every_command() -> Vec<Command> {
        let pairs = vec![(b("a"), b("1")), (b("b"), b(""))];
        let mut all = vec![
            Command::Put {
                key: b("k"),
                value: b("v"),
            },
            Command::Put {
                key: Bytes::from(vec![7u8; 300]),
                value: Bytes::new(),
            },
            Command::Delete { key: b("gone") },
            Command::Cas {
                key: b("k"),
                expected: None,
                new: b("n"),
            },
            Command::Cas {
                key: b("k"),
                expected: Some(b("o")),
                new: b("n"),
            },
            Command::Set {
                key: b("k"),
                value: b("v"),
                cond: SetCond::IfPresent,
                ttl: SetTtl::Expire(When::InMs(10_000)),
                get: true,
            },
            Command::Set {
                key: b("k"),
                value: b("v"),
                cond: SetCond::IfAbsent,
                ttl: SetTtl::Keep,
                get: false,
            },
            Command::Set {
                key: b("k"),
                value: b("v"),
                cond: SetCond::Always,
                ttl: SetTtl::Expire(When::AtMs(u64::MAX)),
                get: false,
            },
            Command::SetNx {
                key: b("k"),
                value: b("v"),
            },
            Command::GetDel { key: b("k") },
            Command::GetEx {
                key: b("k"),
                ttl: GetExTtl::Persist,
            },
            Command::GetEx {
                key: b("k"),
                ttl: GetExTtl::Expire(When::AtMs(5)),
            },
            Command::Expire {
                key: b("k"),
                when: When::InMs(1),
                cond: ExpireCond::Lt,
            },
            Command::Persist { key: b("k") },
            Command::Del {
                keys: vec![b("a"), b("b")],
            },
            Command::MSet {
                pairs: pairs.clone(),
            },
            Command::MSetNx {
                pairs: pairs.clone(),
            },
            Command::IncrBy {
                key: b("n"),
                by: i64::MIN,
            },
            Command::IncrByFloat {
                key: b("f"),
                by: b("1.5e3"),
            },
            Command::Append {
                key: b("k"),
                value: b("more"),
            },
            Command::SetRange {
                key: b("k"),
                offset: 7,
                value: b("x"),
            },
            Command::Rename {
                from: b("a"),
                to: b("b"),
                nx: true,
            },
            Command::Copy {
                from: b("a"),
                to: b("b"),
                replace: false,
            },
            Command::FlushAll,
            Command::HSet {
                key: b("h"),
                pairs: pairs.clone(),
                hmset: false,
            },
            Command::HSetNx {
                key: b("h"),
                field: b("f"),
                value: b("v"),
            },
            Command::HDel {
                key: b("h"),
                fields: vec![b("f")],
            },
            Command::HIncrBy {
                key: b("h"),
                field: b("f"),
                by: -3,
            },
            Command::ExpireKeys {
                keys: vec![b("old")],
            },
            Command::Acl {
                op: AclOp::SetUser {
                    name: b("alice"),
                    rules: vec![b("on"), b("~k*"), b("+@read")],
                },
                bootstrap: vec![b("resetpass")],
            },
            Command::Acl {
                op: AclOp::DelUser {
                    names: vec![b("alice"), b("bob")],
                },
                bootstrap: vec![],
            },
            Command::Acl {
                op: AclOp::Init,
                bootstrap: vec![b("nopass")],
            },
        ];
        let multi = Command::Multi {
            watched: vec![(b("w"), 42)],
            ops: vec![
                Op::Write(all[5].clone()),
                Op::Read(Query::Get { key: b("k") }),
                Op::Const(Reply::Error("ERR syntax error".into())),
                Op::Write(Command::Put {
                    key: b("p"),
                    value: b("tail"),
                }),
            ],
        };
        all.push(Command::Timed {
            now_ms: 1_700_000_000_000,
            cmd: Box::new(multi.clone()),
        });
        all.push(multi);
        all
    }

    #[test]
    fn commands_roundtrip() {
        for c in every_command() {
            roundtrip(c);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(Command::decode(&Bytes::new()), Err(DecodeError::Empty));
        assert_eq!(
            Command::decode(&Bytes::from_static(b"Z")),
            Err(DecodeError::UnknownTag(b'Z'))
        );
        assert_eq!(
            Command::decode(&Bytes::from_static(&[b'P', 0x85])),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            Command::decode(&Bytes::from_static(&[b'P', 9, b'a'])),
            Err(DecodeError::Truncated)
        );
        // New commands are read to their last byte.
        let mut trailing = Command::GetDel { key: b("k") }.encode().to_vec();
        trailing.push(0);
        assert_eq!(
            Command::decode(&Bytes::from(trailing)),
            Err(DecodeError::Trailing)
        );
        // A clock inside a clock, and a transaction inside a transaction, are refused.
        let nested = Command::Timed {
            now_ms: 1,
            cmd: Box::new(Command::Timed {
                now_ms: 2,
                cmd: Box::new(Command::FlushAll),
            }),
        };
        assert_eq!(Command::decode(&nested.encode()), Err(DecodeError::TooDeep));
        let inner = Command::Multi {
            watched: vec![],
            ops: vec![],
        };
        let outer = Command::Multi {
            watched: vec![],
            ops: vec![Op::Write(inner)],
        };
        assert_eq!(Command::decode(&outer.encode()), Err(DecodeError::TooDeep));
    }

    #[test]
    fn every_truncation_and_byte_flip_is_an_error_or_a_valid_command() {
        for c in every_command() {
            let enc = c.encode();
            for len in 0..enc.len() {
                // The legacy layouts end in a field that runs to the end: a cut there
                // is a shorter value, not an error.
                let _ = Command::decode(&enc.slice(..len));
            }
            for pos in 0..enc.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut bad = enc.to_vec();
                    bad[pos] ^= flip;
                    if let Ok(d) = Command::decode(&Bytes::from(bad)) {
                        assert_eq!(Command::decode(&d.encode()), Ok(d));
                    }
                }
            }
        }
    }

    #[test]
    fn short_ascii_put_is_utf8() {
        let c = Command::Put {
            key: Bytes::from("a".repeat(32)),
            value: Bytes::from("b".repeat(32)),
        };
        assert!(std::str::from_utf8(&c.encode()).is_ok());
    }
}
