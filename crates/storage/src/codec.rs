//! Little-endian byte helpers and the binary form of [`Membership`].
//!
//! All integers on disk are little-endian and fixed width. Decoders never panic on short
//! or hostile input: they return `None` and the caller reports corruption with a position.

use raft::Membership;

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

/// Membership, in the core's binary form ([`Membership::encode`]): three node sets in
/// order `voters`, `voters_outgoing`, `learners`, each `count: u32` followed by `count`
/// ids as `u64`, ascending; then, only when some member has metadata, the metadata
/// section. Without metadata this is byte for byte the form written before metadata
/// existed, so every snapshot file written before reads unchanged.
pub fn encode_membership(m: &Membership, buf: &mut Vec<u8>) {
    buf.extend_from_slice(&m.encode());
}

/// Decodes a whole buffer holding exactly one encoded membership (`None` if it is not
/// one, canonical and valid).
pub fn decode_membership_bytes(buf: &[u8]) -> Option<Membership> {
    Membership::decode(buf)
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
            metadata: Default::default(),
        };
        let mut buf = Vec::new();
        encode_membership(&m, &mut buf);
        assert_eq!(decode_membership_bytes(&buf), Some(m));
        for cut in 0..buf.len() {
            assert_eq!(decode_membership_bytes(&buf[..cut]), None);
        }
    }
}
