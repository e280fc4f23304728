//! What a command or query answers: a small tree shaped like Redis's replies, so the
//! RESP layer turns it into bytes without knowing which command produced it, and so
//! the answer a transaction's commands gave can be kept in a session and a snapshot.

use bytes::{BufMut, Bytes};

use crate::command::DecodeError;
use crate::wire::{put_bytes, put_ivarint, put_uvarint, Reader, MAX_DEPTH};

/// One reply. Error texts are exactly Redis's, code included (`ERR ...`, `WRONGTYPE ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Ok,
    /// A status reply other than OK (`TYPE` answers `+string`).
    Status(String),
    /// A nil bulk string (`$-1` in RESP2, `_` in RESP3).
    Nil,
    /// A nil array (`*-1`): EXEC when a watched key changed.
    NilArray,
    Int(i64),
    Bulk(Bytes),
    Array(Vec<Reply>),
    /// Field-value pairs (HGETALL): a map in RESP3, a flat array in RESP2.
    Map(Vec<(Bytes, Bytes)>),
    Error(String),
}

/// Redis's text for an operation on a key of another type.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const NO_SUCH_KEY: &str = "ERR no such key";

impl Reply {
    pub fn error(text: &str) -> Reply {
        Reply::Error(text.to_string())
    }

    pub fn bulk_or_nil(v: Option<Bytes>) -> Reply {
        v.map_or(Reply::Nil, Reply::Bulk)
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = Vec::new();
        self.write(&mut buf);
        Bytes::from(buf)
    }

    /// The reply `encode` wrote into `data`; anything else is an error, never a panic.
    pub fn decode(data: &Bytes) -> Result<Reply, DecodeError> {
        let mut r = Reader::new(data, 0);
        let reply = Reply::read(&mut r, 0)?;
        r.finish()?;
        Ok(reply)
    }

    pub(crate) fn write(&self, buf: &mut impl BufMut) {
        match self {
            Reply::Ok => buf.put_u8(0),
            Reply::Status(s) => {
                buf.put_u8(1);
                put_bytes(buf, s.as_bytes());
            }
            Reply::Nil => buf.put_u8(2),
            Reply::NilArray => buf.put_u8(3),
            Reply::Int(i) => {
                buf.put_u8(4);
                put_ivarint(buf, *i);
            }
            Reply::Bulk(b) => {
                buf.put_u8(5);
                put_bytes(buf, b);
            }
            Reply::Array(items) => {
                buf.put_u8(6);
                put_uvarint(buf, items.len() as u64);
                for item in items {
                    item.write(buf);
                }
            }
            Reply::Map(pairs) => {
                buf.put_u8(7);
                put_uvarint(buf, pairs.len() as u64);
                for (k, v) in pairs {
                    put_bytes(buf, k);
                    put_bytes(buf, v);
                }
            }
            Reply::Error(e) => {
                buf.put_u8(8);
                put_bytes(buf, e.as_bytes());
            }
        }
    }

    pub(crate) fn read(r: &mut Reader, depth: usize) -> Result<Reply, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        let text = |r: &mut Reader| -> Result<String, DecodeError> {
            String::from_utf8(r.bytes()?.to_vec()).map_err(|_| DecodeError::BadField("text"))
        };
        Ok(match r.u8()? {
            0 => Reply::Ok,
            1 => Reply::Status(text(r)?),
            2 => Reply::Nil,
            3 => Reply::NilArray,
            4 => Reply::Int(r.ivarint()?),
            5 => Reply::Bulk(r.bytes()?),
            6 => {
                let n = r.count(1)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(Reply::read(r, depth + 1)?);
                }
                Reply::Array(items)
            }
            7 => {
                let n = r.count(2)?;
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    pairs.push((r.bytes()?, r.bytes()?));
                }
                Reply::Map(pairs)
            }
            8 => Reply::Error(text(r)?),
            tag => return Err(DecodeError::UnknownTag(tag)),
        })
    }
}
