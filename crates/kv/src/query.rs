//! Reads of the state machine, and their encoding (a forwarded read carries these bytes).
//!
//! A query is answered from the applied state at a time `now_ms` (see `expiry.rs`): on a
//! node serving a read, the later of its wall clock and the state machine's clock; inside
//! a transaction, the entry's clock, so a read in `MULTI` is as deterministic as a write.

use bytes::{BufMut, Bytes, BytesMut};

use crate::command::DecodeError;
use crate::wire::{put_bool, put_bytes, put_ivarint, put_list, put_uvarint, Reader};

/// Which of the four TTL commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtlKind {
    /// `TTL`: seconds left.
    Ttl,
    /// `PTTL`: milliseconds left.
    Pttl,
    /// `EXPIRETIME`: the deadline in Unix seconds.
    ExpireTime,
    /// `PEXPIRETIME`: the deadline in Unix milliseconds.
    PexpireTime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    Get {
        key: Bytes,
    },
    StrLen {
        key: Bytes,
    },
    GetRange {
        key: Bytes,
        start: i64,
        end: i64,
    },
    /// `TYPE`: `string`, `hash` or `none`.
    Type {
        key: Bytes,
    },
    Ttl {
        key: Bytes,
        kind: TtlKind,
    },
    /// How many of the keys exist (a key named twice counts twice).
    Exists {
        keys: Vec<Bytes>,
    },
    MGet {
        keys: Vec<Bytes>,
    },
    /// Live keys (expired ones not yet removed are not counted).
    DbSize,
    HGet {
        key: Bytes,
        field: Bytes,
    },
    HMGet {
        key: Bytes,
        fields: Vec<Bytes>,
    },
    HGetAll {
        key: Bytes,
    },
    HExists {
        key: Bytes,
        field: Bytes,
    },
    HLen {
        key: Bytes,
    },
    HKeys {
        key: Bytes,
    },
    HVals {
        key: Bytes,
    },
    HStrLen {
        key: Bytes,
        field: Bytes,
    },
    /// One page of a hash's fields in field order, from position `cursor`; answers
    /// `[next cursor, [field, value, ...]]` (cursor 0: done). `novalues` leaves values out.
    HScan {
        key: Bytes,
        cursor: u64,
        count: u32,
        novalues: bool,
    },
    /// `WATCH`: the version of each key (0 for an absent key), in order.
    Versions {
        keys: Vec<Bytes>,
    },
}

const Q_GET: u8 = 1;
const Q_STRLEN: u8 = 2;
const Q_GETRANGE: u8 = 3;
const Q_TYPE: u8 = 4;
const Q_TTL: u8 = 5;
const Q_EXISTS: u8 = 6;
const Q_MGET: u8 = 7;
const Q_DBSIZE: u8 = 8;
const Q_HGET: u8 = 9;
const Q_HMGET: u8 = 10;
const Q_HGETALL: u8 = 11;
const Q_HEXISTS: u8 = 12;
const Q_HLEN: u8 = 13;
const Q_HKEYS: u8 = 14;
const Q_HVALS: u8 = 15;
const Q_HSTRLEN: u8 = 16;
const Q_HSCAN: u8 = 17;
const Q_VERSIONS: u8 = 18;

impl Query {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        let key_only = |buf: &mut BytesMut, tag: u8, key: &Bytes| {
            buf.put_u8(tag);
            put_bytes(buf, key);
        };
        match self {
            Query::Get { key } => key_only(&mut buf, Q_GET, key),
            Query::StrLen { key } => key_only(&mut buf, Q_STRLEN, key),
            Query::GetRange { key, start, end } => {
                key_only(&mut buf, Q_GETRANGE, key);
                put_ivarint(&mut buf, *start);
                put_ivarint(&mut buf, *end);
            }
            Query::Type { key } => key_only(&mut buf, Q_TYPE, key),
            Query::Ttl { key, kind } => {
                key_only(&mut buf, Q_TTL, key);
                buf.put_u8(match kind {
                    TtlKind::Ttl => 0,
                    TtlKind::Pttl => 1,
                    TtlKind::ExpireTime => 2,
                    TtlKind::PexpireTime => 3,
                });
            }
            Query::Exists { keys } => {
                buf.put_u8(Q_EXISTS);
                put_list(&mut buf, keys);
            }
            Query::MGet { keys } => {
                buf.put_u8(Q_MGET);
                put_list(&mut buf, keys);
            }
            Query::DbSize => buf.put_u8(Q_DBSIZE),
            Query::HGet { key, field } => {
                key_only(&mut buf, Q_HGET, key);
                put_bytes(&mut buf, field);
            }
            Query::HMGet { key, fields } => {
                key_only(&mut buf, Q_HMGET, key);
                put_list(&mut buf, fields);
            }
            Query::HGetAll { key } => key_only(&mut buf, Q_HGETALL, key),
            Query::HExists { key, field } => {
                key_only(&mut buf, Q_HEXISTS, key);
                put_bytes(&mut buf, field);
            }
            Query::HLen { key } => key_only(&mut buf, Q_HLEN, key),
            Query::HKeys { key } => key_only(&mut buf, Q_HKEYS, key),
            Query::HVals { key } => key_only(&mut buf, Q_HVALS, key),
            Query::HStrLen { key, field } => {
                key_only(&mut buf, Q_HSTRLEN, key);
                put_bytes(&mut buf, field);
            }
            Query::HScan {
                key,
                cursor,
                count,
                novalues,
            } => {
                key_only(&mut buf, Q_HSCAN, key);
                put_uvarint(&mut buf, *cursor);
                put_uvarint(&mut buf, u64::from(*count));
                put_bool(&mut buf, *novalues);
            }
            Query::Versions { keys } => {
                buf.put_u8(Q_VERSIONS);
                put_list(&mut buf, keys);
            }
        }
        buf.freeze()
    }

    /// The query `encode` wrote into `data`; anything else is an error, never a panic.
    pub fn decode(data: &Bytes) -> Result<Query, DecodeError> {
        let (&tag, _) = data.split_first().ok_or(DecodeError::Empty)?;
        let mut r = Reader::new(data, 1);
        let q = match tag {
            Q_GET => Query::Get { key: r.bytes()? },
            Q_STRLEN => Query::StrLen { key: r.bytes()? },
            Q_GETRANGE => Query::GetRange {
                key: r.bytes()?,
                start: r.ivarint()?,
                end: r.ivarint()?,
            },
            Q_TYPE => Query::Type { key: r.bytes()? },
            Q_TTL => Query::Ttl {
                key: r.bytes()?,
                kind: match r.u8()? {
                    0 => TtlKind::Ttl,
                    1 => TtlKind::Pttl,
                    2 => TtlKind::ExpireTime,
                    3 => TtlKind::PexpireTime,
                    _ => return Err(DecodeError::BadField("TTL kind")),
                },
            },
            Q_EXISTS => Query::Exists { keys: r.list()? },
            Q_MGET => Query::MGet { keys: r.list()? },
            Q_DBSIZE => Query::DbSize,
            Q_HGET => Query::HGet {
                key: r.bytes()?,
                field: r.bytes()?,
            },
            Q_HMGET => Query::HMGet {
                key: r.bytes()?,
                fields: r.list()?,
            },
            Q_HGETALL => Query::HGetAll { key: r.bytes()? },
            Q_HEXISTS => Query::HExists {
                key: r.bytes()?,
                field: r.bytes()?,
            },
            Q_HLEN => Query::HLen { key: r.bytes()? },
            Q_HKEYS => Query::HKeys { key: r.bytes()? },
            Q_HVALS => Query::HVals { key: r.bytes()? },
            Q_HSTRLEN => Query::HStrLen {
                key: r.bytes()?,
                field: r.bytes()?,
            },
            Q_HSCAN => Query::HScan {
                key: r.bytes()?,
                cursor: r.uvarint()?,
                count: u32::try_from(r.uvarint()?).map_err(|_| DecodeError::BadField("count"))?,
                novalues: r.bool()?,
            },
            Q_VERSIONS => Query::Versions { keys: r.list()? },
            other => return Err(DecodeError::UnknownTag(other)),
        };
        r.finish()?;
        Ok(q)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    pub(crate) fn every_query() -> Vec<Query> {
        vec![
            Query::Get { key: b("k") },
            Query::StrLen { key: b("k") },
            Query::GetRange {
                key: b("k"),
                start: -3,
                end: i64::MAX,
            },
            Query::Type { key: b("k") },
            Query::Ttl {
                key: b("k"),
                kind: TtlKind::PexpireTime,
            },
            Query::Exists {
                keys: vec![b("a"), b("a")],
            },
            Query::MGet {
                keys: vec![b("a"), b("")],
            },
            Query::DbSize,
            Query::HGet {
                key: b("h"),
                field: b("f"),
            },
            Query::HMGet {
                key: b("h"),
                fields: vec![b("f"), b("g")],
            },
            Query::HGetAll { key: b("h") },
            Query::HExists {
                key: b("h"),
                field: b("f"),
            },
            Query::HLen { key: b("h") },
            Query::HKeys { key: b("h") },
            Query::HVals { key: b("h") },
            Query::HStrLen {
                key: b("h"),
                field: b("f"),
            },
            Query::HScan {
                key: b("h"),
                cursor: 12,
                count: 10,
                novalues: true,
            },
            Query::Versions { keys: vec![b("w")] },
        ]
    }

    #[test]
    fn queries_roundtrip_and_garbage_is_an_error() {
        for q in every_query() {
            let enc = q.encode();
            assert_eq!(Query::decode(&enc), Ok(q));
            for len in 0..enc.len() {
                assert!(Query::decode(&enc.slice(..len)).is_err());
            }
            let mut trailing = enc.to_vec();
            trailing.push(0);
            assert_eq!(
                Query::decode(&Bytes::from(trailing)),
                Err(DecodeError::Trailing)
            );
        }
        assert_eq!(
            Query::decode(&Bytes::from_static(&[99])),
            Err(DecodeError::UnknownTag(99))
        );
    }
}
