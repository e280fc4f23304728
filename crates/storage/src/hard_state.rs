//! The hard state file: two CRC-protected slots, written alternately.
//!
//! ```text
//! file "hardstate" = slot 0 at offset 0, slot 1 at offset 512 (1024 bytes)
//! slot = magic "RKHS" | version: u8 (= 1) | flags: u8 (bit 0: vote present) | 0u16
//!        | seq: u64 | term: u64 | vote: u64 | commit: u64 | crc: u32 = CRC32C(bytes 0..40)
//! ```
//!
//! Recovery takes the valid slot with the highest `seq`. Slots sit in different 512-byte
//! sectors so a torn write of one cannot damage the other.
//!
//! Protocol (why it is crash-safe):
//! - the slot holding the last *durable* state is never overwritten; every write goes to
//!   the other ("scratch") slot with a higher `seq`;
//! - a change of `term` or `vote` is written to the scratch slot and `fdatasync`ed; only
//!   then does the scratch slot become the durable one — so `save` returns with the new
//!   term/vote durable;
//! - a change of `commit` alone is written to the scratch slot *without* syncing (commit
//!   is a hint). If that write is torn, its CRC fails and recovery falls back to the
//!   durable slot, which has the same term and vote and an older commit.
//!
//! This costs one `fdatasync` per term/vote change and none per commit advance, with no
//! rename and no directory sync.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use raft::HardState;

use crate::codec::{get_u32, get_u64, put_u32, put_u64};
use crate::error::{Result, StorageError};
use crate::fsutil::{self, Faults};

pub(crate) const HARD_STATE_FILE: &str = "hardstate";
pub(crate) const SLOT_SIZE: u64 = 512;
pub(crate) const SLOT_USED: usize = 44;
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
}

pub(crate) fn encode_slot(hs: &HardState, seq: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(SLOT_USED);
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
    b
}

/// `(seq, state)` from a slot's bytes, or why it is unusable.
pub(crate) fn decode_slot(b: &[u8]) -> Result<(u64, HardState), String> {
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
    Ok((seq, HardState { term, vote, commit }))
}

impl HardStateFile {
    /// Creates the file with slot 0 holding the default hard state, atomically.
    pub fn create(dir: &Path, faults: &Faults) -> Result<Self> {
        let mut contents = encode_slot(&HardState::default(), 1);
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
        let (best_slot, seq, hs) = match (slot(0), slot(1)) {
            (Ok((s0, h0)), Ok((s1, h1))) => {
                if s1 > s0 {
                    (1, s1, h1)
                } else {
                    (0, s0, h0)
                }
            }
            (Ok((s0, h0)), Err(_)) => (0, s0, h0),
            (Err(_), Ok((s1, h1))) => (1, s1, h1),
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
    pub fn save(&mut self, hs: &HardState, faults: &Faults) -> Result<()> {
        if *hs == self.current {
            return Ok(());
        }
        let scratch = 1 - self.durable_slot;
        let seq = self.seq + 1;
        let bytes = encode_slot(hs, seq);
        fsutil::write_all_at(&self.file, &self.path, &bytes, scratch * SLOT_SIZE, faults)?;
        self.seq = seq;
        let needs_sync = (hs.term, hs.vote) != (self.durable.term, self.durable.vote);
        if needs_sync {
            fsutil::sync_data(&self.file, &self.path, faults)?;
            self.durable_slot = scratch;
            self.durable = *hs;
        }
        self.current = *hs;
        Ok(())
    }
}
