//! WAL record framing and the entry payload.
//!
//! ```text
//! record  = len: u32 | crc: u32 | type: u8 | payload: [u8; len]
//!           crc = CRC32C(len bytes ‖ type ‖ payload)
//! entry   = index: u64 | term: u64 | kind: u8 | data: [u8; len - 17]     (type 1)
//! ```
//!
//! The checksum covers the length too: a flipped bit in `len` that still lands inside the
//! file is caught by the CRC; one that points past the end makes the record "incomplete",
//! and recovery then looks for valid records further on to tell a torn tail from
//! corruption (see `segment.rs`).

use bytes::Bytes;
use raft::{Entry, EntryKind, Index};

use crate::codec::{get_u32, get_u64, put_u32, put_u64};

/// Bytes before the payload.
pub(crate) const RECORD_HEADER: usize = 9;
/// Fixed part of an entry payload (index, term, kind).
pub(crate) const ENTRY_FIXED: usize = 17;
/// The smallest well-formed entry record.
pub(crate) const MIN_ENTRY_RECORD: usize = RECORD_HEADER + ENTRY_FIXED;

/// Record types. Only entries exist today; the tag leaves room for more (a reader
/// refuses unknown types rather than skipping them).
pub(crate) const TYPE_ENTRY: u8 = 1;

/// The on-disk size of `entry`'s record.
pub(crate) fn entry_record_len(entry: &Entry) -> usize {
    MIN_ENTRY_RECORD + entry.data.len()
}

/// Appends `entry`'s record to `buf`.
pub(crate) fn encode_entry(entry: &Entry, buf: &mut Vec<u8>) {
    let payload_len = ENTRY_FIXED + entry.data.len();
    let start = buf.len();
    put_u32(buf, payload_len as u32);
    put_u32(buf, 0); // CRC, filled in below
    buf.push(TYPE_ENTRY);
    put_u64(buf, entry.index);
    put_u64(buf, entry.term);
    buf.push(entry.kind.as_u8());
    buf.extend_from_slice(&entry.data);
    let crc = record_crc(&buf[start..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// CRC over a whole record's bytes, skipping the CRC field itself.
fn record_crc(record: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&record[0..4]);
    crc32c::crc32c_append(crc, &record[8..])
}

/// Why bytes at some offset are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BadRecord {
    /// The header or payload runs past the end of the data: a write that did not finish.
    Incomplete,
    /// Complete but the checksum or framing is wrong.
    Checksum,
    /// Checksum fine but the contents make no sense (unknown type, bad entry kind, short
    /// payload). Such bytes were written by us wrongly or by someone else: never torn.
    Malformed(String),
}

impl BadRecord {
    pub fn describe(&self) -> String {
        match self {
            BadRecord::Incomplete => "incomplete record".into(),
            BadRecord::Checksum => "record checksum mismatch".into(),
            BadRecord::Malformed(why) => format!("malformed record: {why}"),
        }
    }
}

/// A framed record found in a buffer.
pub(crate) struct RawRecord<'a> {
    pub rtype: u8,
    pub payload: &'a [u8],
    /// Total bytes the record occupies (header + payload).
    pub len: usize,
}

/// Reads the record starting at `buf[at..]`, checking its frame and checksum.
pub(crate) fn read_record(buf: &[u8], at: usize) -> Result<RawRecord<'_>, BadRecord> {
    let rest = &buf[at.min(buf.len())..];
    if rest.len() < RECORD_HEADER {
        return Err(BadRecord::Incomplete);
    }
    let payload_len = get_u32(rest, 0).expect("header present") as usize;
    let total = RECORD_HEADER
        .checked_add(payload_len)
        .ok_or(BadRecord::Incomplete)?;
    if rest.len() < total {
        return Err(BadRecord::Incomplete);
    }
    let stored = get_u32(rest, 4).expect("header present");
    if stored != record_crc(&rest[..total]) {
        return Err(BadRecord::Checksum);
    }
    Ok(RawRecord {
        rtype: rest[8],
        payload: &rest[RECORD_HEADER..total],
        len: total,
    })
}

/// Decodes an entry record's payload. `data` is copied out of `payload` into one
/// `Bytes` per entry.
pub(crate) fn decode_entry(rec: &RawRecord<'_>) -> Result<Entry, BadRecord> {
    if rec.rtype != TYPE_ENTRY {
        return Err(BadRecord::Malformed(format!(
            "unknown record type {}",
            rec.rtype
        )));
    }
    let p = rec.payload;
    if p.len() < ENTRY_FIXED {
        return Err(BadRecord::Malformed(format!(
            "entry payload of {} bytes",
            p.len()
        )));
    }
    let kind = EntryKind::from_u8(p[16])
        .ok_or_else(|| BadRecord::Malformed(format!("unknown entry kind {}", p[16])))?;
    Ok(Entry {
        index: get_u64(p, 0).expect("length checked"),
        term: get_u64(p, 8).expect("length checked"),
        kind,
        data: Bytes::copy_from_slice(&p[ENTRY_FIXED..]),
    })
}

/// Cheap look at an entry record's index and term without copying the data.
pub(crate) fn peek_entry(rec: &RawRecord<'_>) -> Result<(Index, u64), BadRecord> {
    if rec.rtype != TYPE_ENTRY || rec.payload.len() < ENTRY_FIXED {
        return Err(BadRecord::Malformed("not an entry record".into()));
    }
    if EntryKind::from_u8(rec.payload[16]).is_none() {
        return Err(BadRecord::Malformed(format!(
            "unknown entry kind {}",
            rec.payload[16]
        )));
    }
    Ok((
        get_u64(rec.payload, 0).expect("length checked"),
        get_u64(rec.payload, 8).expect("length checked"),
    ))
}

/// True if a valid entry record with an index in `min_index ..= max_index` starts at
/// `buf[at..]`. Used after a bad record to decide whether anything valid follows it. The
/// cheap checks (type, length, index range) run before the checksum so a scan over
/// megabytes of garbage stays linear.
pub(crate) fn valid_entry_at(buf: &[u8], at: usize, min_index: Index, max_index: Index) -> bool {
    let Some(rest) = buf.get(at..) else {
        return false;
    };
    if rest.len() < MIN_ENTRY_RECORD || rest[8] != TYPE_ENTRY {
        return false;
    }
    let payload_len = get_u32(rest, 0).expect("length checked") as usize;
    if payload_len < ENTRY_FIXED || RECORD_HEADER + payload_len > rest.len() {
        return false;
    }
    let index = get_u64(rest, RECORD_HEADER).expect("length checked");
    if index < min_index || index > max_index {
        return false;
    }
    read_record(buf, at).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, data: &'static [u8]) -> Entry {
        Entry {
            index,
            term: 7,
            kind: EntryKind::Normal,
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn round_trip_and_every_truncation_is_incomplete() {
        let e = entry(42, b"hello");
        let mut buf = Vec::new();
        encode_entry(&e, &mut buf);
        assert_eq!(buf.len(), entry_record_len(&e));
        let rec = read_record(&buf, 0).unwrap();
        assert_eq!(decode_entry(&rec).unwrap(), e);
        for cut in 0..buf.len() {
            assert_eq!(
                read_record(&buf[..cut], 0).err(),
                Some(BadRecord::Incomplete)
            );
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut buf = Vec::new();
        encode_entry(&entry(3, b"abc"), &mut buf);
        for bit in 0..buf.len() * 8 {
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(read_record(&bad, 0).is_err(), "bit {bit} undetected");
        }
    }
}
