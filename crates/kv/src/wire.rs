//! The byte-level reader and writer shared by the command, query and reply encodings.
//!
//! Integers are LEB128 varints (as in session entries and snapshots), signed integers
//! zigzag varints, byte strings `len:varint bytes`, booleans one byte (0 or 1). The reader treats
//! its input as untrusted: it never panics, never trusts a count beyond the bytes left, and reports what was wrong.

use bytes::{BufMut, Bytes};

use crate::command::DecodeError;
use crate::varint::{get as get_varint, put as put_varint};

/// Deepest nesting of commands (a transaction holds commands) and replies (an EXEC
/// array holds replies that hold arrays): bounds the decoder's recursion.
pub(crate) const MAX_DEPTH: usize = 4;

pub(crate) fn put_uvarint(buf: &mut impl BufMut, v: u64) {
    put_varint(buf, v);
}

pub(crate) fn put_ivarint(buf: &mut impl BufMut, v: i64) {
    put_varint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

pub(crate) fn put_bytes(buf: &mut impl BufMut, b: &[u8]) {
    put_varint(buf, b.len() as u64);
    buf.put_slice(b);
}

pub(crate) fn put_bool(buf: &mut impl BufMut, b: bool) {
    buf.put_u8(u8::from(b));
}

pub(crate) fn put_list(buf: &mut impl BufMut, items: &[Bytes]) {
    put_varint(buf, items.len() as u64);
    for item in items {
        put_bytes(buf, item);
    }
}

/// A cursor over untrusted bytes. Invariant: `pos <= data.len()`.
pub(crate) struct Reader<'a> {
    data: &'a Bytes,
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a Bytes, pos: usize) -> Reader<'a> {
        Reader {
            data,
            pos: pos.min(data.len()),
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let &b = self.data.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let v = get_varint(self.data, &mut self.pos).map_err(|_| DecodeError::Truncated)?;
        // One rule for the tenth byte, as in snapshots: only the 64th bit may be set.
        if self.pos - start == 10 && self.data[self.pos - 1] > 1 {
            return Err(DecodeError::BadVarint);
        }
        Ok(v)
    }

    pub(crate) fn ivarint(&mut self) -> Result<i64, DecodeError> {
        let z = self.uvarint()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    pub(crate) fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadField("boolean")),
        }
    }

    /// A count of items at least `min_len` bytes each: never more than the input holds.
    pub(crate) fn count(&mut self, min_len: usize) -> Result<usize, DecodeError> {
        let n = self.uvarint()?;
        if n > (self.remaining() / min_len.max(1)) as u64 {
            return Err(DecodeError::Truncated);
        }
        Ok(n as usize)
    }

    pub(crate) fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.count(1)?;
        let b = self.data.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(b)
    }

    pub(crate) fn list(&mut self) -> Result<Vec<Bytes>, DecodeError> {
        let n = self.count(1)?;
        (0..n).map(|_| self.bytes()).collect()
    }

    /// The rest of the input, as one byte string.
    pub(crate) fn rest(&mut self) -> Bytes {
        let b = self.data.slice(self.pos..);
        self.pos = self.data.len();
        b
    }

    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(DecodeError::Trailing)
        }
    }
}
