//! The one LEB128 varint of the project: log entries, session tags, snapshots and the peer
//! transport all read and write integers through here, with one rule.
//!
//! Layout: 7 bits a byte, low bits first, the high bit set on every byte but the last; at
//! most [`MAX_LEN`] bytes. The rule for the tenth byte: it may carry only the 64th bit
//! (value 0 or 1). Anything more would be bits beyond a `u64`, so it is refused rather
//! than silently dropped: two different byte strings never decode to the same number.

use bytes::BufMut;

/// The longest varint of a `u64`.
pub const MAX_LEN: usize = 10;

/// Why [`get`] could not read a varint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarintError {
    /// The input ended inside it.
    Truncated,
    /// Longer than ten bytes, or a tenth byte with bits beyond the 64th.
    Overlong,
}

/// Appends `v`.
pub fn put(buf: &mut impl BufMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Reads a varint at `*pos`, advancing `*pos` past every byte read (on error too).
pub fn get(data: &[u8], pos: &mut usize) -> Result<u64, VarintError> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let &byte = data.get(*pos).ok_or(VarintError::Truncated)?;
        *pos += 1;
        let bits = u64::from(byte & 0x7f);
        if shift == 63 && bits > 1 {
            return Err(VarintError::Overlong);
        }
        v |= bits << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(VarintError::Overlong)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put(&mut out, v);
        out
    }

    #[test]
    fn round_trips_at_every_length() {
        for v in [0, 1, 127, 128, 300, 1 << 35, u64::MAX >> 1, u64::MAX] {
            let bytes = encoded(v);
            assert!(bytes.len() <= MAX_LEN);
            let mut pos = 0;
            assert_eq!(get(&bytes, &mut pos), Ok(v));
            assert_eq!(pos, bytes.len());
        }
        assert_eq!(encoded(u64::MAX).len(), MAX_LEN);
    }

    #[test]
    fn a_tenth_byte_beyond_the_64th_bit_is_refused() {
        let mut bytes = vec![0xff; 9];
        bytes.push(0x01);
        assert_eq!(get(&bytes, &mut 0), Ok(u64::MAX));
        bytes[9] = 0x02; // a 65th bit
        assert_eq!(get(&bytes, &mut 0), Err(VarintError::Overlong));
        let eleven = [0xff; 11];
        assert_eq!(get(&eleven, &mut 0), Err(VarintError::Overlong));
    }

    #[test]
    fn truncated_input_is_an_error() {
        assert_eq!(get(&[], &mut 0), Err(VarintError::Truncated));
        assert_eq!(get(&[0x80, 0x80], &mut 0), Err(VarintError::Truncated));
    }
}
