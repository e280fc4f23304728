//! Commands carried in log entries, and their compact binary encoding.
//!
//! Layout: one tag byte, then length-prefixed fields (LEB128 varint lengths). For short
//! ASCII keys and values the encoding is itself printable-ish UTF-8, which keeps the seed
//! replica's JSON datagrams small.

use bytes::{BufMut, Bytes, BytesMut};

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
}

const TAG_PUT: u8 = b'P';
const TAG_DELETE: u8 = b'D';
const TAG_CAS: u8 = b'C';
const TAG_CAS_ABSENT: u8 = b'c';

impl Command {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        match self {
            Command::Put { key, value } => {
                buf.put_u8(TAG_PUT);
                put_field(&mut buf, key);
                buf.put_slice(value);
            }
            Command::Delete { key } => {
                buf.put_u8(TAG_DELETE);
                buf.put_slice(key);
            }
            Command::Cas { key, expected, new } => match expected {
                Some(expected) => {
                    buf.put_u8(TAG_CAS);
                    put_field(&mut buf, key);
                    put_field(&mut buf, expected);
                    buf.put_slice(new);
                }
                None => {
                    buf.put_u8(TAG_CAS_ABSENT);
                    put_field(&mut buf, key);
                    buf.put_slice(new);
                }
            },
        }
        buf.freeze()
    }

    pub fn decode(data: &Bytes) -> Result<Command, DecodeError> {
        let (&tag, _) = data.split_first().ok_or(DecodeError::Empty)?;
        let mut pos = 1;
        match tag {
            TAG_PUT => {
                let key = take_field(data, &mut pos)?;
                Ok(Command::Put {
                    key,
                    value: data.slice(pos..),
                })
            }
            TAG_DELETE => Ok(Command::Delete {
                key: data.slice(pos..),
            }),
            TAG_CAS => {
                let key = take_field(data, &mut pos)?;
                let expected = take_field(data, &mut pos)?;
                Ok(Command::Cas {
                    key,
                    expected: Some(expected),
                    new: data.slice(pos..),
                })
            }
            TAG_CAS_ABSENT => {
                let key = take_field(data, &mut pos)?;
                Ok(Command::Cas {
                    key,
                    expected: None,
                    new: data.slice(pos..),
                })
            }
            other => Err(DecodeError::UnknownTag(other)),
        }
    }

    pub fn key(&self) -> &Bytes {
        match self {
            Command::Put { key, .. } | Command::Delete { key } | Command::Cas { key, .. } => key,
        }
    }
}

fn put_field(buf: &mut BytesMut, field: &[u8]) {
    let mut len = field.len() as u64;
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            buf.put_u8(byte);
            break;
        }
        buf.put_u8(byte | 0x80);
    }
    buf.put_slice(field);
}

fn take_field(data: &Bytes, pos: &mut usize) -> Result<Bytes, DecodeError> {
    let mut len: u64 = 0;
    let mut shift = 0;
    loop {
        let &byte = data.get(*pos).ok_or(DecodeError::Truncated)?;
        *pos += 1;
        if shift >= 64 {
            return Err(DecodeError::Truncated);
        }
        len |= u64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let end = pos
        .checked_add(len as usize)
        .ok_or(DecodeError::Truncated)?;
    if end > data.len() {
        return Err(DecodeError::Truncated);
    }
    let field = data.slice(*pos..end);
    *pos = end;
    Ok(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(c: Command) {
        assert_eq!(Command::decode(&c.encode()), Ok(c));
    }

    #[test]
    fn commands_roundtrip() {
        roundtrip(Command::Put {
            key: Bytes::from("k"),
            value: Bytes::from("v"),
        });
        roundtrip(Command::Put {
            key: Bytes::from(vec![7u8; 300]),
            value: Bytes::new(),
        });
        roundtrip(Command::Delete {
            key: Bytes::from("gone"),
        });
        roundtrip(Command::Cas {
            key: Bytes::from("k"),
            expected: None,
            new: Bytes::from("n"),
        });
        roundtrip(Command::Cas {
            key: Bytes::from("k"),
            expected: Some(Bytes::from("o")),
            new: Bytes::from("n"),
        });
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
