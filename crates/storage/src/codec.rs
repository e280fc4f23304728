//! Little-endian byte helpers and the binary form of [`Membership`].
//!
//! All integers on disk are little-endian and fixed width. Decoders never panic on short
//! or hostile input: they return `None` and the caller reports corruption with a position.

use std::collections::BTreeSet;

use raft::{Membership, NodeId};

pub(crate) fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn get_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

pub(crate) fn get_u64(buf: &[u8], at: usize) -> Option<u64> {
    let bytes = buf.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// A cursor over a byte slice for the variable-length formats (membership, snapshot
/// header).
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub fn pos(&self) -> usize {
        self.pos
    }
    pub fn u32(&mut self) -> Option<u32> {
        let v = get_u32(self.buf, self.pos)?;
        self.pos += 4;
        Some(v)
    }
    pub fn u64(&mut self) -> Option<u64> {
        let v = get_u64(self.buf, self.pos)?;
        self.pos += 8;
        Some(v)
    }
}

/// Membership, as three node sets in order `voters`, `voters_outgoing`, `learners`, each
/// `count: u32` followed by `count` ids as `u64`, ascending.
pub fn encode_membership(m: &Membership, buf: &mut Vec<u8>) {
    for set in [&m.voters, &m.voters_outgoing, &m.learners] {
        put_u32(buf, set.len() as u32);
        for &id in set {
            put_u64(buf, id);
        }
    }
}

/// Inverse of [`encode_membership`]; `None` if the bytes are short or a set is not
/// strictly ascending (a canonical encoding has exactly one form).
pub(crate) fn decode_membership(r: &mut Reader<'_>) -> Option<Membership> {
    let mut sets: [BTreeSet<NodeId>; 3] = Default::default();
    for set in &mut sets {
        let n = r.u32()? as usize;
        // Bound the count by the bytes left before allocating anything.
        if n > (r.buf.len() - r.pos) / 8 {
            return None;
        }
        let mut prev = None;
        for _ in 0..n {
            let id = r.u64()?;
            if prev.is_some_and(|p| p >= id) {
                return None;
            }
            prev = Some(id);
            set.insert(id);
        }
    }
    let [voters, voters_outgoing, learners] = sets;
    Some(Membership {
        voters,
        voters_outgoing,
        learners,
    })
}

/// Decodes a whole buffer holding exactly one encoded membership.
pub fn decode_membership_bytes(buf: &[u8]) -> Option<Membership> {
    let mut r = Reader::new(buf);
    let m = decode_membership(&mut r)?;
    (r.pos() == buf.len()).then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_round_trip_and_rejects_truncation() {
        let m = Membership {
            voters: [1, 2, 3].into(),
            voters_outgoing: [3, 4].into(),
            learners: [9].into(),
        };
        let mut buf = Vec::new();
        encode_membership(&m, &mut buf);
        assert_eq!(decode_membership(&mut Reader::new(&buf)), Some(m));
        for cut in 0..buf.len() {
            assert_eq!(decode_membership(&mut Reader::new(&buf[..cut])), None);
        }
    }
}
