//! Recomputes the checksums of fuzzed bytes in place, as the writers compute them (the
//! layouts are in each format's module docs), so mutated inputs get past the checksum
//! checks. Where a length field points past the end, the bytes are left alone.

fn get_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// WAL records from `at` on: `len: u32 | crc: u32 | type: u8 | payload[len]`, with
/// `crc = CRC32C(len bytes ‖ type ‖ payload)`.
pub fn records(buf: &mut [u8], mut at: usize) {
    while let Some(len) = get_u32(buf, at) {
        let Some(end) = at.checked_add(9).and_then(|h| h.checked_add(len as usize)) else {
            return;
        };
        if end > buf.len() {
            return;
        }
        let crc = crc32c::crc32c(&buf[at..at + 4]);
        let crc = crc32c::crc32c_append(crc, &buf[at + 8..end]);
        put_u32(buf, at + 4, crc);
        at = end;
    }
}

/// A segment header: CRC32C of bytes 0..28 at 28.
pub fn segment_header(buf: &mut [u8]) {
    if buf.len() >= 32 {
        let crc = crc32c::crc32c(&buf[..28]);
        put_u32(buf, 28, crc);
    }
}

/// A hard state slot at `at`: CRC32C of its bytes 0..40 at 40.
pub fn hard_state_slot(buf: &mut [u8], at: usize) {
    if buf.len() >= at + 44 {
        let crc = crc32c::crc32c(&buf[at..at + 40]);
        put_u32(buf, at + 40, crc);
    }
}

/// A snapshot header: 32 fixed bytes (the last 4 the membership length), the membership,
/// then CRC32C of everything before it.
pub fn snapshot_header(buf: &mut [u8]) {
    let Some(m_len) = get_u32(buf, 28) else {
        return;
    };
    let body = 32 + m_len as usize;
    if buf.len() >= body + 4 {
        let crc = crc32c::crc32c(&buf[..body]);
        put_u32(buf, body, crc);
    }
}

/// A snapshot trailer (the last 16 bytes: `data_len: u64 | data_crc: u32 |
/// trailer_crc: u32`). With `data`, `data_crc` is first set to the CRC of the bytes
/// between the header (as its membership length says) and the trailer.
pub fn snapshot_trailer(buf: &mut [u8], data: bool) {
    if buf.len() < 16 {
        return;
    }
    let t = buf.len() - 16;
    if data {
        if let Some(m_len) = get_u32(buf, 28) {
            let start = 32 + m_len as usize + 4;
            if start <= t {
                let crc = crc32c::crc32c(&buf[start..t]);
                put_u32(buf, t + 8, crc);
            }
        }
    }
    let crc = crc32c::crc32c(&buf[t..t + 12]);
    put_u32(buf, t + 12, crc);
}
