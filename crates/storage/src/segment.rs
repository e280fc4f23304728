//! One segment file of the WAL: a header, then entry records with consecutive indexes.
//!
//! ```text
//! header (32 bytes) = magic "RKVWAL01" | first_index: u64 | prev_term: u64
//!                     | version: u32 (= 1) | crc: u32 = CRC32C(bytes 0..28)
//! then records (record.rs), the k-th holding entry first_index + k
//! ```
//!
//! File name: `{first_index:020}.seg`, so lexical order is index order.
//!
//! Invariants (kept by `file_store.rs`, checked by recovery):
//! - a segment holds exactly the live entries `first_index ..= last_index()`, no stale
//!   bytes: truncation shrinks the file (`ftruncate` + `fdatasync`) instead of writing
//!   markers;
//! - `prev_term` is the term of entry `first_index - 1` (0 for index 0), so the log's cut
//!   point survives deleting every earlier segment;
//! - segments are created complete (header written and synced under a `.tmp` name, then
//!   renamed), so a file with the final name always has a valid header;
//! - a segment is synced before it stops being the last one, so only the last segment can
//!   have a torn tail.

use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use raft::{Entry, Index, Term};

use crate::codec::{get_u32, get_u64, put_u32, put_u64};
use crate::error::{Result, StorageError};
use crate::fsutil::{self, Faults};
use crate::record::{self, BadRecord, MIN_ENTRY_RECORD};

pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"RKVWAL01";
pub(crate) const SEGMENT_HEADER: u64 = 32;
const SEGMENT_VERSION: u32 = 1;

pub(crate) struct Segment {
    pub first_index: Index,
    pub prev_term: Term,
    pub path: PathBuf,
    file: File,
    /// `offsets[k]` is where the record of entry `first_index + k` starts.
    offsets: Vec<u64>,
    /// `terms[k]` is the term of entry `first_index + k`.
    terms: Vec<Term>,
    /// End of the valid content: header plus whole records. Appends go here.
    len: u64,
}

/// The first bad record found while scanning a segment on open.
pub(crate) struct BadTail {
    pub offset: u64,
    pub reason: BadRecord,
    /// Offset of a valid entry record found after the bad one, if any: proof that the bad
    /// bytes are not a torn tail.
    pub valid_after: Option<u64>,
    /// Size of the file; `file_len - offset` bytes would be dropped by truncation.
    pub file_len: u64,
}

impl Segment {
    pub fn file_name(first_index: Index) -> String {
        format!("{first_index:020}.seg")
    }

    /// The first index encoded in a segment file name, if it is one.
    pub fn parse_name(name: &str) -> Option<Index> {
        let digits = name.strip_suffix(".seg")?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    fn encode_header(first_index: Index, prev_term: Term) -> Vec<u8> {
        let mut h = Vec::with_capacity(SEGMENT_HEADER as usize);
        h.extend_from_slice(SEGMENT_MAGIC);
        put_u64(&mut h, first_index);
        put_u64(&mut h, prev_term);
        put_u32(&mut h, SEGMENT_VERSION);
        let crc = crc32c::crc32c(&h);
        put_u32(&mut h, crc);
        h
    }

    /// Creates an empty segment durably: header written and synced under a temporary
    /// name, renamed into place, directory synced.
    pub fn create(
        dir: &Path,
        first_index: Index,
        prev_term: Term,
        faults: &Faults,
    ) -> Result<Self> {
        let name = Self::file_name(first_index);
        let header = Self::encode_header(first_index, prev_term);
        let path = fsutil::write_file_atomically(dir, &name, &header, faults)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StorageError::io("open", &path, e))?;
        Ok(Segment {
            first_index,
            prev_term,
            path,
            file,
            offsets: Vec::new(),
            terms: Vec::new(),
            len: SEGMENT_HEADER,
        })
    }

    /// Opens and scans a segment. Returns the segment holding every valid record up to the
    /// first bad one, plus a description of the bad bytes if any. Deciding whether those
    /// are a torn tail (truncate) or corruption (refuse) is the caller's job: it depends on
    /// whether this is the last segment and on the hard state's synced point. A bad *header* is always an error: segments are
    /// created complete.
    pub fn recover(path: &Path, name_index: Index) -> Result<(Self, Option<BadTail>)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| StorageError::io("open", path, e))?;
        let mut buf = Vec::new();
        {
            use std::io::Read;
            (&file)
                .read_to_end(&mut buf)
                .map_err(|e| StorageError::io("read", path, e))?;
        }
        let header = buf
            .get(..SEGMENT_HEADER as usize)
            .ok_or_else(|| StorageError::corruption(path, 0, "segment header truncated"))?;
        if &header[..8] != SEGMENT_MAGIC {
            return Err(StorageError::corruption(path, 0, "bad segment magic"));
        }
        if get_u32(header, 28) != Some(crc32c::crc32c(&header[..28])) {
            return Err(StorageError::corruption(
                path,
                0,
                "segment header checksum mismatch",
            ));
        }
        let version = get_u32(header, 24).expect("header length checked");
        if version != SEGMENT_VERSION {
            return Err(StorageError::corruption(
                path,
                24,
                format!("unsupported segment version {version}"),
            ));
        }
        let first_index = get_u64(header, 8).expect("header length checked");
        let prev_term = get_u64(header, 16).expect("header length checked");
        if first_index != name_index || first_index == 0 {
            return Err(StorageError::corruption(
                path,
                8,
                format!("header says first index {first_index}, file name says {name_index}"),
            ));
        }

        let mut seg = Segment {
            first_index,
            prev_term,
            path: path.to_path_buf(),
            file,
            offsets: Vec::new(),
            terms: Vec::new(),
            len: SEGMENT_HEADER,
        };
        let mut at = SEGMENT_HEADER as usize;
        while at < buf.len() {
            let expected = seg.last_index() + 1;
            let step = record::read_record(&buf, at).and_then(|rec| {
                let (index, term) = record::peek_entry(&rec)?;
                if index != expected {
                    return Err(BadRecord::Malformed(format!(
                        "entry index {index}, expected {expected}"
                    )));
                }
                // No entry could follow it: every `index + 1` in the log would overflow.
                if index == Index::MAX {
                    return Err(BadRecord::Malformed(format!(
                        "entry index {index} leaves no room for another"
                    )));
                }
                if term < seg.last_term() {
                    return Err(BadRecord::Malformed(format!(
                        "entry {index} has term {term} below the previous term {}",
                        seg.last_term()
                    )));
                }
                Ok((rec.len, term))
            });
            match step {
                Ok((len, term)) => {
                    seg.offsets.push(at as u64);
                    seg.terms.push(term);
                    at += len;
                    seg.len = at as u64;
                }
                Err(reason) => {
                    let valid_after = scan_for_valid_entry(&buf, at, expected);
                    return Ok((
                        seg,
                        Some(BadTail {
                            offset: at as u64,
                            reason,
                            valid_after,
                            file_len: buf.len() as u64,
                        }),
                    ));
                }
            }
        }
        Ok((seg, None))
    }

    /// Index of the last entry; `first_index - 1` when empty.
    pub fn last_index(&self) -> Index {
        self.first_index + self.terms.len() as u64 - 1
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn last_term(&self) -> Term {
        self.terms.last().copied().unwrap_or(self.prev_term)
    }

    /// Bytes of valid content (header included).
    pub fn byte_len(&self) -> u64 {
        self.len
    }

    /// Term of `index`, for `first_index - 1 ..= last_index()`.
    pub fn term(&self, index: Index) -> Term {
        if index + 1 == self.first_index {
            self.prev_term
        } else {
            self.terms[(index - self.first_index) as usize]
        }
    }

    /// Bytes of entry `index`'s record, for flow control without reading it.
    pub fn record_len(&self, index: Index) -> u64 {
        let k = (index - self.first_index) as usize;
        let end = self.offsets.get(k + 1).copied().unwrap_or(self.len);
        end - self.offsets[k]
    }

    /// Writes already-encoded records for `entries` (consecutive, starting at
    /// `last_index() + 1`) at the end of the segment. In-memory state changes only after
    /// the whole write succeeded; on failure the file is cut back (best effort) so no
    /// partial record lingers in a file we keep using — the store is failed anyway.
    pub fn append(&mut self, encoded: &[u8], entries: &[Entry], faults: &Faults) -> Result<()> {
        debug_assert_eq!(
            entries.first().map(|e| e.index),
            Some(self.last_index() + 1)
        );
        if let Err(e) = fsutil::write_all_at(&self.file, &self.path, encoded, self.len, faults) {
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        let mut at = self.len;
        for e in entries {
            self.offsets.push(at);
            self.terms.push(e.term);
            at += record::entry_record_len(e) as u64;
        }
        debug_assert_eq!(at, self.len + encoded.len() as u64);
        self.len = at;
        Ok(())
    }

    pub fn sync(&self, faults: &Faults) -> Result<()> {
        fsutil::sync_data(&self.file, &self.path, faults)
    }

    /// Drops entries `index..` from the file: `ftruncate` then `fdatasync`, so the shorter
    /// size is durable before anything is written at the same offsets (otherwise a crash
    /// could mix new records with old ones).
    pub fn truncate_from(&mut self, index: Index, faults: &Faults) -> Result<()> {
        let k = (index - self.first_index) as usize;
        let new_len = self.offsets.get(k).copied().unwrap_or(self.len);
        self.file
            .set_len(new_len)
            .map_err(|e| StorageError::io("ftruncate", &self.path, e))?;
        self.offsets.truncate(k);
        self.terms.truncate(k);
        self.len = new_len;
        self.sync(faults)
    }

    /// Cuts the file at `len` (recovery dropping a torn tail) and syncs.
    pub fn truncate_bytes(&mut self, len: u64, faults: &Faults) -> Result<()> {
        debug_assert_eq!(len, self.len);
        self.file
            .set_len(len)
            .map_err(|e| StorageError::io("ftruncate", &self.path, e))?;
        self.sync(faults)
    }

    /// Reads entries `range` (within this segment) with one `pread`, checking every
    /// record's checksum: a bad record here means the disk changed under us.
    pub fn read(&self, range: Range<Index>) -> Result<Vec<Entry>> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let k0 = (range.start - self.first_index) as usize;
        let k1 = (range.end - self.first_index) as usize;
        let start = self.offsets[k0];
        let end = self.offsets.get(k1).copied().unwrap_or(self.len);
        let mut buf = vec![0u8; (end - start) as usize];
        self.file
            .read_exact_at(&mut buf, start)
            .map_err(|e| StorageError::io("read", &self.path, e))?;
        let mut out = Vec::with_capacity(k1 - k0);
        let mut at = 0usize;
        for index in range {
            let entry = record::read_record(&buf, at)
                .and_then(|rec| {
                    let e = record::decode_entry(&rec)?;
                    at += rec.len;
                    Ok(e)
                })
                .map_err(|bad| {
                    StorageError::corruption(&self.path, start + at as u64, bad.describe())
                })?;
            if entry.index != index {
                return Err(StorageError::corruption(
                    &self.path,
                    start + at as u64,
                    format!("read entry {} where {index} was expected", entry.index),
                ));
            }
            out.push(entry);
        }
        Ok(out)
    }
}

/// After a bad record at `bad`, looks for any valid entry record further on whose index
/// could belong to this log (from `expected` up to the most records the remaining bytes
/// could hold). Finding one proves the bad bytes are not a torn tail.
fn scan_for_valid_entry(buf: &[u8], bad: usize, expected: Index) -> Option<u64> {
    let max_index = expected.saturating_add((buf.len() - bad) as u64 / MIN_ENTRY_RECORD as u64);
    (bad + 1..buf.len().saturating_sub(MIN_ENTRY_RECORD - 1))
        .find(|&at| record::valid_entry_at(buf, at, expected, max_index))
        .map(|at| at as u64)
}
