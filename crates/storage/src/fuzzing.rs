//! The crate-private decoders, exposed for the fuzz targets (`fuzz/`) and the property
//! tests. Thin wrappers: each calls the real decoder or encoder and nothing else, so what
//! is fuzzed is what recovery runs. Not part of the crate's API.

use raft::{Entry, HardState, Index};

use crate::{hard_state, record};

/// Reads the WAL record at `buf[at..]` (frame and checksum) and decodes it as an entry;
/// also returns the bytes it occupies. `Err` is the reason recovery would report.
pub fn read_entry_record(buf: &[u8], at: usize) -> Result<(Entry, usize), String> {
    let rec = record::read_record(buf, at).map_err(|b| b.describe())?;
    let entry = record::decode_entry(&rec).map_err(|b| b.describe())?;
    Ok((entry, rec.len))
}

/// The cheap look recovery takes at a record: `(index, term)` without copying the data.
pub fn peek_entry_record(buf: &[u8], at: usize) -> Result<(Index, u64), String> {
    let rec = record::read_record(buf, at).map_err(|b| b.describe())?;
    record::peek_entry(&rec).map_err(|b| b.describe())
}

/// Whether a valid entry record with an index in `min_index ..= max_index` starts at
/// `buf[at..]` (recovery's scan after a bad record).
pub fn valid_entry_at(buf: &[u8], at: usize, min_index: Index, max_index: Index) -> bool {
    record::valid_entry_at(buf, at, min_index, max_index)
}

/// Appends `entry`'s WAL record to `buf`.
pub fn encode_entry_record(entry: &Entry, buf: &mut Vec<u8>) {
    record::encode_entry(entry, buf)
}

/// Decodes one hard state slot: `(seq, state)` (the synced-point extension is checked
/// and dropped; [`decode_hard_state_slot_synced`] returns it).
pub fn decode_hard_state_slot(slot: &[u8]) -> Result<(u64, HardState), String> {
    hard_state::decode_slot(slot).map(|(seq, hs, _)| (seq, hs))
}

/// Decodes one hard state slot: `(seq, state, synced)` (0: no synced point recorded).
pub fn decode_hard_state_slot_synced(slot: &[u8]) -> Result<(u64, HardState, u64), String> {
    hard_state::decode_slot(slot)
}

/// Encodes one hard state slot with no synced point recorded.
pub fn encode_hard_state_slot(hs: &HardState, seq: u64) -> Vec<u8> {
    hard_state::encode_slot(hs, seq, 0)
}

/// Bytes of one hard state slot, and where slot 1 starts in the file.
pub const HARD_STATE_SLOT_USED: usize = hard_state::SLOT_USED;
pub const HARD_STATE_SLOT_SIZE: usize = hard_state::SLOT_SIZE as usize;
