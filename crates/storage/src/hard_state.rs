//! The hard state file: two CRC-protected slots, written alternately.
//!
//! ```text
//! file "hardstate" = slot 0 at offset 0, slot 1 at offset 512 (1024 bytes)
//! slot = magic "RKHS" | version: u8 (= 1) | flags: u8 (bit 0: vote present) | 0u16
//!        | seq: u64 | term: u64 | vote: u64 | commit: u64 | crc: u32 = CRC32C(bytes 0..40)
//!        | synced: u64 | synced_crc: u32 = CRC32C(bytes 0..52)          (bytes 40..56)
//!        | known_commit: u64 | known_crc: u32 = CRC32C(bytes 0..64)     (bytes 56..68)
//! ```
//!
//! Recovery takes the valid slot with the highest `seq`. Slots sit in different 512-byte
//! sectors so a torn write of one cannot damage the other.
//!
//! `synced` (an extension after the original 44 bytes, with a CRC of its own over the
//! whole slot) is a lower bound of the log's synced prefix: every entry `<= synced` had
//! been `fdatasync`ed when the slot was written. Recovery uses it to tell a torn tail from
//! a corrupted synced record (file_store.rs). A slot without a valid extension — written
//! before it existed, or by an older binary — means `synced = 0` (nothing known), so files
//! stay readable both ways: older binaries check only bytes 0..44.
//!
//! `known_commit` (a second extension, with its own CRC over the whole slot) is the
//! highest index a leader told the node is committed (`raft::HardState::known_commit`).
//! A slot without it means 0, the value of a node that was never told anything.
//!
//! Protocol (why it is crash-safe):
//! - the slot holding the last *durable* state is never overwritten; every write goes to
//!   the other ("scratch") slot with a higher `seq`;
//! - a change of `term` or `vote` is written to the scratch slot and `fdatasync`ed; only
//!   then does the scratch slot become the durable one — so `save` returns with the new
//!   term/vote durable;
//! - a change of `commit` alone is written to the scratch slot *without* syncing (commit
//!   is a hint). If that write is torn, its CRC fails and recovery falls back to the
//!   durable slot, which has the same term and vote and an older commit;
//! - so is a rise of `known_commit`, unless it goes beyond the log's synced prefix: then
//!   the node is catching up and must keep refusing votes after a crash until its log
//!   reaches it, so the write is synced (before the caller appends the entries it goes
//!   with). A caught-up follower hears commit indexes its log already holds: no sync.
//!
//! This costs one `fdatasync` per term/vote change and none per commit advance (but for
//! a catching-up follower's), with no rename and no directory sync.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use raft::HardState;

use crate::codec::{get_u32, get_u64, put_u32, put_u64};
use crate::error::{Result, StorageError};
use crate::fsutil::{self, Faults};

pub(crate) const HARD_STATE_FILE: &str = "hardstate";
pub(crate) const SLOT_SIZE: u64 = 512;
/// The original slot (through the first CRC), with the `synced` extension, and with
/// the `known_commit` extension too.
pub(crate) const SLOT_USED: usize = 44;
const SLOT_EXTENDED: usize = 56;
const SLOT_EXTENDED_TWICE: usize = 68;
const MAGIC: &[u8; 4] = b"RKHS";
const VERSION: u8 = 1;

pub(crate) struct HardStateFile {
    path: PathBuf,
    file: File,
    /// What the durable slot holds.
    durable: HardState,
    /// The latest saved value (durable term/vote; commit possibly not yet durable).
    current: HardState,
    /// 0 or 1: the slot that must not be overwritten.
    durable_slot: u64,
    /// `seq` of the most recent slot write.
    seq: u64,
    /// The `synced` each slot holds (0 for none), as far as this process knows: the
    /// largest of them is what a crash could bring back.
    slot_synced: [u64; 2],
    /// `synced` of the slot recovery chose (what the log may rely on when it opens).
    recovered_synced: u64,
}

pub(crate) fn encode_slot(hs: &HardState, seq: u64, synced: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(SLOT_EXTENDED_TWICE);
    b.extend_from_slice(MAGIC);
    b.push(VERSION);
    b.push(u8::from(hs.vote.is_some()));
    b.extend_from_slice(&[0, 0]);
    put_u64(&mut b, seq);
    put_u64(&mut b, hs.term);
    put_u64(&mut b, hs.vote.unwrap_or(0));
    put_u64(&mut b, hs.commit);
    let crc = crc32c::crc32c(&b);
    put_u32(&mut b, crc);
    put_u64(&mut b, synced);
    let crc = crc32c::crc32c(&b);
    put_u32(&mut b, crc);
    debug_assert_eq!(b.len(), SLOT_EXTENDED);
    put_u64(&mut b, hs.known_commit);
    let crc = crc32c::crc32c(&b);
    put_u32(&mut b, crc);
    b
}

/// `(seq, state, synced)` from a slot's bytes, or why it is unusable. `synced` is 0 when
/// the slot has no valid extension.
pub(crate) fn decode_slot(b: &[u8]) -> Result<(u64, HardState, u64), String> {
    if b.len() < SLOT_USED {
        return Err(format!("slot has {} bytes", b.len()));
    }
    if &b[..4] != MAGIC {
        return Err("bad magic".into());
    }
    if get_u32(b, 40) != Some(crc32c::crc32c(&b[..40])) {
        return Err("checksum mismatch".into());
    }
    if b[4] != VERSION {
        return Err(format!("unsupported version {}", b[4]));
    }
    let seq = get_u64(b, 8).expect("length checked");
    let term = get_u64(b, 16).expect("length checked");
    let vote = get_u64(b, 24).expect("length checked");
    let commit = get_u64(b, 32).expect("length checked");
    let vote = (b[5] & 1 == 1).then_some(vote);
    let extension = |at: usize| match (get_u64(b, at), get_u32(b, at + 8)) {
        (Some(value), Some(crc)) if crc == crc32c::crc32c(&b[..at + 8]) => Some(value),
        _ => None,
    };
    let synced = extension(44);
    // The second extension counts only on top of the first (a slot is written whole).
    let known_commit = synced.and(extension(56)).unwrap_or(0);
    let hs = HardState {
        term,
        vote,
        commit,
        known_commit,
    };
    Ok((seq, hs, synced.unwrap_or(0)))
}

/// Whether saving `hs` over the durable `durable` must sync before returning, for a log
/// synced up to `synced` (see the module docs): a new term or vote, or a `known_commit`
/// the synced log does not reach.
pub(crate) fn needs_sync(durable: &HardState, hs: &HardState, synced: u64) -> bool {
    (hs.term, hs.vote) != (durable.term, durable.vote)
        || (hs.known_commit > durable.known_commit && hs.known_commit > synced)
}

impl HardStateFile {
    /// Creates the file with slot 0 holding the default hard state, atomically.
    pub fn create(dir: &Path, faults: &Faults) -> Result<Self> {
        let mut contents = encode_slot(&HardState::default(), 1, 0);
        contents.resize(2 * SLOT_SIZE as usize, 0);
        let path = fsutil::write_file_atomically(dir, HARD_STATE_FILE, &contents, faults)?;
        let file = Self::open_file(&path)?;
        Ok(HardStateFile {
            path,
            file,
            durable: HardState::default(),
            current: HardState::default(),
            durable_slot: 0,
            seq: 1,
            slot_synced: [0, 0],
            recovered_synced: 0,
        })
    }

    /// Opens the file if it exists: `Ok(None)` when absent.
    pub fn open(dir: &Path, faults: &Faults) -> Result<Option<Self>> {
        let path = dir.join(HARD_STATE_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let file = Self::open_file(&path)?;
        let mut buf = Vec::new();
        (&file)
            .read_to_end(&mut buf)
            .map_err(|e| StorageError::io("read", &path, e))?;
        let slot = |i: u64| {
            let start = (i * SLOT_SIZE) as usize;
            decode_slot(buf.get(start..).unwrap_or(&[]))
        };
        let synced_of = |i: u64| slot(i).map_or(0, |(_, _, synced)| synced);
        let slot_synced = [synced_of(0), synced_of(1)];
        let (best_slot, seq, hs, synced) = match (slot(0), slot(1)) {
            (Ok((s0, h0, y0)), Ok((s1, h1, y1))) => {
                if s1 > s0 {
                    (1, s1, h1, y1)
                } else {
                    (0, s0, h0, y0)
                }
            }
            (Ok((s0, h0, y0)), Err(_)) => (0, s0, h0, y0),
            (Err(_), Ok((s1, h1, y1))) => (1, s1, h1, y1),
            (Err(e0), Err(e1)) => {
                return Err(StorageError::corruption(
                    &path,
                    0,
                    format!("both hard state slots unusable (slot 0: {e0}; slot 1 at offset {SLOT_SIZE}: {e1})"),
                ))
            }
        };
        // What we read may have been in the page cache only (the process died, not the
        // machine). Sync it so the slot we now treat as durable really is.
        fsutil::sync_data(&file, &path, faults)?;
        Ok(Some(HardStateFile {
            path,
            file,
            durable: hs,
            current: hs,
            // The chosen slot may hold an unsynced commit-only write; treating it as the
            // durable slot is still right: its term/vote equal the older slot's, and the
            // next write goes to the other slot.
            durable_slot: best_slot,
            seq,
            slot_synced,
            recovered_synced: synced,
        }))
    }

    fn open_file(path: &Path) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| StorageError::io("open", path, e))
    }

    pub fn get(&self) -> HardState {
        self.current
    }

    /// The `synced` bound of the slot read on open (0: none known, or a fresh file).
    pub fn recovered_synced(&self) -> u64 {
        self.recovered_synced
    }

    /// Lowers the in-memory commit hint (recovery clamping it to the log). Not written:
    /// the stored value is only ever a hint.
    pub fn clamp_commit(&mut self, max: u64) {
        self.current.commit = self.current.commit.min(max);
    }

    /// Checks `hs` against Raft's rules for persistent state: the term never decreases and
    /// a vote, once cast in a term, never changes within it.
    pub fn validate(current: &HardState, hs: &HardState) -> Result<()> {
        if hs.term < current.term {
            return Err(StorageError::InvalidHardState(format!(
                "term goes back from {} to {}",
                current.term, hs.term
            )));
        }
        if hs.term == current.term && current.vote.is_some() && hs.vote != current.vote {
            return Err(StorageError::InvalidHardState(format!(
                "vote in term {} changes from {:?} to {:?}",
                hs.term, current.vote, hs.vote
            )));
        }
        Ok(())
    }

    /// Saves `hs` following the protocol in the module docs. The caller validated it.
    /// `synced` goes with it: every log entry `<= synced` must already be durable. Nothing
    /// is written when `hs` is unchanged (so `synced` then lags: it is only a lower bound).
    pub fn save(&mut self, hs: &HardState, synced: u64, faults: &Faults) -> Result<()> {
        if *hs == self.current {
            return Ok(());
        }
        self.write(hs, synced, needs_sync(&self.durable, hs, synced), faults)
    }

    /// Makes sure no slot claims more than `max` entries synced, durably (one
    /// `fdatasync`, only if one might): the log is about to rewrite entries after `max`
    /// (a truncation, a reset), and a torn write of those must still read as torn.
    pub fn lower_synced(&mut self, max: u64, faults: &Faults) -> Result<()> {
        if self.slot_synced.iter().all(|&s| s <= max) {
            return Ok(());
        }
        let hs = self.current;
        self.write(&hs, max, true, faults)?;
        // The other slot may still say more, but it has the lower `seq`: recovery takes
        // this one while it is valid; overwrite it too so a later bit flip here cannot
        // bring the old bound back.
        let other = 1 - self.durable_slot;
        if self.slot_synced[other as usize] > max {
            self.write(&hs, max, true, faults)?;
        }
        Ok(())
    }

    fn write(&mut self, hs: &HardState, synced: u64, sync: bool, faults: &Faults) -> Result<()> {
        let scratch = 1 - self.durable_slot;
        let seq = self.seq + 1;
        let bytes = encode_slot(hs, seq, synced);
        // Whatever happens next, the slot may now hold this `synced` (or be torn).
        self.slot_synced[scratch as usize] = self.slot_synced[scratch as usize].max(synced);
        fsutil::write_all_at(&self.file, &self.path, &bytes, scratch * SLOT_SIZE, faults)?;
        self.seq = seq;
        self.slot_synced[scratch as usize] = synced;
        if sync {
            fsutil::sync_data(&self.file, &self.path, faults)?;
            self.durable_slot = scratch;
            self.durable = *hs;
        }
        self.current = *hs;
        Ok(())
    }
}
