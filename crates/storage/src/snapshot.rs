//! [`FileSnapshotStore`]: CRC-checked snapshot files, written atomically, read or streamed in
//! chunks.
//!
//! ```text
//! file "snap-{index:020}-{term:020}.snap"
//! header  = magic "RKVSNAP1" | version: u32 (= 1) | index: u64 | term: u64
//!           | membership_len: u32 | membership (codec.rs) | header_crc: u32
//!           header_crc = CRC32C(all header bytes before it)
//! data    = the state machine's bytes, opaque here
//! trailer = data_len: u64 | data_crc: u32 | trailer_crc: u32      (16 bytes)
//!           data_crc = CRC32C(data), trailer_crc = CRC32C(data_len ‖ data_crc)
//! ```
//!
//! The header is checked on its own so a reader can serve chunks without reading the
//! whole file first; `data_crc` is what a receiver checks end to end after a transfer.
//!
//! Writes go to `*.tmp`, are `fdatasync`ed, renamed into place and the directory synced:
//! a snapshot file with its final name is complete. Only the newest `retain` snapshots
//! (default 2) are kept. Saves may run concurrently (the server saves the snapshots it
//! takes on a background thread while a snapshot from the leader may be installed): the
//! step that changes the set of files — rename, directory sync, prune — runs under a lock
//! shared by the store and its writers, and a file already gone counts as deleted. A snapshot found corrupt is renamed `*.corrupt` (kept for
//! inspection, ignored from then on).
//!
//! # Choosing the snapshot to restart from
//!
//! [`FileSnapshotStore::load_latest`] takes the log's first index and returns the newest
//! snapshot that verifies *and* that the log continues: `log_first_index <= index + 1`.
//! So a corrupt newest snapshot falls back to the previous one only if the log still holds
//! every entry after the previous one; otherwise it is an error (a gap nobody can fill
//! locally: the node must be repaired from a peer). Compacting the log only up to
//! [`FileSnapshotStore::compaction_floor`] — the oldest retained snapshot — keeps that
//! fallback possible.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use raft::{Index, SnapshotMeta, Term};

use crate::codec::{self, get_u32, get_u64, put_u32, put_u64};
use crate::error::{Result, StorageError};
use crate::fault::FaultInjector;
use crate::fsutil::{self, Faults};

const MAGIC: &[u8; 8] = b"RKVSNAP1";
/// Distinct from the log's `LOCK`, so sharing one directory (not recommended) still works.
const LOCK_FILE: &str = "SNAPLOCK";
const VERSION: u32 = 1;
const TRAILER: u64 = 16;
/// Bytes of the fixed header fields before the membership.
const HEADER_FIXED: usize = 8 + 4 + 8 + 8 + 4;
/// Chunk size used when verifying a whole file.
const VERIFY_CHUNK: u64 = 1 << 20;

/// A stored snapshot's description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub meta: SnapshotMeta,
    pub data_len: u64,
    /// CRC32C of the data: send it with the last chunk so the receiver can check the
    /// transfer end to end.
    pub data_crc: u32,
    pub path: PathBuf,
}

pub struct FileSnapshotStore {
    dir: PathBuf,
    retain: usize,
    faults: Faults,
    /// Serializes what changes the set of snapshot files (a writer's rename + prune,
    /// setting a corrupt file aside): two saves at once must not both prune.
    files: Arc<Mutex<()>>,
    _lock: File,
}

fn file_name(index: Index, term: Term) -> String {
    format!("snap-{index:020}-{term:020}.snap")
}

fn parse_name(name: &str) -> Option<(Index, Term)> {
    let rest = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
    let (i, t) = rest.split_once('-')?;
    if i.len() != 20 || t.len() != 20 {
        return None;
    }
    Some((i.parse().ok()?, t.parse().ok()?))
}

fn encode_header(meta: &SnapshotMeta) -> Vec<u8> {
    let mut m = Vec::new();
    codec::encode_membership(&meta.membership, &mut m);
    let mut h = Vec::with_capacity(HEADER_FIXED + m.len() + 4);
    h.extend_from_slice(MAGIC);
    put_u32(&mut h, VERSION);
    put_u64(&mut h, meta.index);
    put_u64(&mut h, meta.term);
    put_u32(&mut h, m.len() as u32);
    h.extend_from_slice(&m);
    let crc = crc32c::crc32c(&h);
    put_u32(&mut h, crc);
    h
}

fn encode_trailer(data_len: u64, data_crc: u32) -> Vec<u8> {
    let mut t = Vec::with_capacity(TRAILER as usize);
    put_u64(&mut t, data_len);
    put_u32(&mut t, data_crc);
    let crc = crc32c::crc32c(&t);
    put_u32(&mut t, crc);
    t
}

/// An open snapshot file whose header and trailer were checked. The data is checked by
/// [`SnapshotReader::verify`] (or end to end by the receiver).
pub struct SnapshotReader {
    file: File,
    info: SnapshotInfo,
    data_offset: u64,
}

impl SnapshotReader {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| StorageError::io("open", path, e))?;
        let file_len = file
            .metadata()
            .map_err(|e| StorageError::io("stat", path, e))?
            .len();
        let corrupt = |offset: u64, why: &str| StorageError::corruption(path, offset, why);
        let mut fixed = [0u8; HEADER_FIXED];
        if file_len < HEADER_FIXED as u64 + 4 + TRAILER {
            return Err(corrupt(0, "file too short for a snapshot"));
        }
        read_at(&file, path, &mut fixed, 0)?;
        if &fixed[..8] != MAGIC {
            return Err(corrupt(0, "bad snapshot magic"));
        }
        let m_len = get_u32(&fixed, HEADER_FIXED - 4).expect("fixed header") as u64;
        let header_len = HEADER_FIXED as u64 + m_len + 4;
        if header_len + TRAILER > file_len {
            return Err(corrupt(
                HEADER_FIXED as u64 - 4,
                "membership length past the end",
            ));
        }
        let mut header = vec![0u8; header_len as usize];
        read_at(&file, path, &mut header, 0)?;
        let body = header_len as usize - 4;
        if get_u32(&header, body) != Some(crc32c::crc32c(&header[..body])) {
            return Err(corrupt(0, "snapshot header checksum mismatch"));
        }
        let version = get_u32(&header, 8).expect("fixed header");
        if version != VERSION {
            return Err(corrupt(
                8,
                &format!("unsupported snapshot version {version}"),
            ));
        }
        let membership = codec::decode_membership_bytes(&header[HEADER_FIXED..body])
            .ok_or_else(|| corrupt(HEADER_FIXED as u64, "bad membership encoding"))?;
        let meta = SnapshotMeta {
            index: get_u64(&header, 12).expect("fixed header"),
            term: get_u64(&header, 20).expect("fixed header"),
            membership,
        };
        // The log after it would start at `index + 1`: at the maximum, nothing could.
        if meta.index == Index::MAX {
            return Err(corrupt(
                12,
                "snapshot index u64::MAX leaves no room for a log",
            ));
        }

        let trailer_at = file_len - TRAILER;
        let mut trailer = [0u8; TRAILER as usize];
        read_at(&file, path, &mut trailer, trailer_at)?;
        if get_u32(&trailer, 12) != Some(crc32c::crc32c(&trailer[..12])) {
            return Err(corrupt(trailer_at, "snapshot trailer checksum mismatch"));
        }
        let data_len = get_u64(&trailer, 0).expect("trailer");
        if header_len.checked_add(data_len) != Some(trailer_at) {
            return Err(corrupt(
                trailer_at,
                &format!(
                    "trailer says {data_len} data bytes, the file holds {}",
                    trailer_at - header_len
                ),
            ));
        }
        Ok(SnapshotReader {
            file,
            info: SnapshotInfo {
                meta,
                data_len,
                data_crc: get_u32(&trailer, 8).expect("trailer"),
                path: path.to_path_buf(),
            },
            data_offset: header_len,
        })
    }

    pub fn info(&self) -> &SnapshotInfo {
        &self.info
    }

    pub fn meta(&self) -> &SnapshotMeta {
        &self.info.meta
    }

    /// Up to `len` data bytes from `offset`: fewer at the end, none at or past it.
    pub fn read_chunk(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let end = offset.saturating_add(len as u64).min(self.info.data_len);
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; (end - offset) as usize];
        read_at(
            &self.file,
            &self.info.path,
            &mut buf,
            self.data_offset + offset,
        )?;
        Ok(buf)
    }

    /// Reads all the data, checking its CRC.
    pub fn read_all(&self) -> Result<Vec<u8>> {
        let data = self.read_chunk(0, self.info.data_len as usize)?;
        if crc32c::crc32c(&data) != self.info.data_crc {
            return Err(StorageError::corruption(
                &self.info.path,
                self.data_offset,
                "snapshot data checksum mismatch",
            ));
        }
        Ok(data)
    }

    /// Checks the data's CRC without holding it all in memory.
    pub fn verify(&self) -> Result<()> {
        let mut crc = 0;
        let mut at = 0;
        while at < self.info.data_len {
            let chunk = self.read_chunk(at, VERIFY_CHUNK as usize)?;
            crc = crc32c::crc32c_append(crc, &chunk);
            at += chunk.len() as u64;
        }
        if crc != self.info.data_crc {
            return Err(StorageError::corruption(
                &self.info.path,
                self.data_offset,
                "snapshot data checksum mismatch",
            ));
        }
        Ok(())
    }
}

fn read_at(file: &File, path: &Path, buf: &mut [u8], offset: u64) -> Result<()> {
    file.read_exact_at(buf, offset)
        .map_err(|e| StorageError::io("read", path, e))
}

/// Receives a snapshot in chunks (from a leader, or from a local state machine dump) and
/// makes it durable on [`finish`](SnapshotWriter::finish). Dropped unfinished, it removes
/// its temporary file.
pub struct SnapshotWriter {
    dir: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    meta: SnapshotMeta,
    header_len: u64,
    written: u64,
    crc: u32,
    faults: Faults,
    retain: usize,
    /// The store's lock on its set of files (see [`FileSnapshotStore`]).
    files: Arc<Mutex<()>>,
}

/// Distinguishes temporary files of concurrent writers in one process.
static WRITER_SEQ: AtomicU64 = AtomicU64::new(0);

impl SnapshotWriter {
    /// Bytes of data received so far: the offset the next chunk must start at.
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// Appends a chunk. Chunks must arrive in order: `offset == written()`. A chunk lying
    /// wholly within what was already received is a retransmission and is ignored; a gap
    /// or a partial overlap is an error (the sender must restart from `written()`).
    pub fn write_chunk(&mut self, offset: u64, chunk: &[u8]) -> Result<()> {
        if offset + (chunk.len() as u64) <= self.written && offset < self.written {
            return Ok(());
        }
        if offset != self.written {
            return Err(StorageError::Snapshot(format!(
                "chunk at offset {offset} ({} bytes) but {} bytes received so far",
                chunk.len(),
                self.written
            )));
        }
        let file = self.file.as_ref().expect("open until finish");
        fsutil::write_all_at(
            file,
            &self.tmp,
            chunk,
            self.header_len + offset,
            &self.faults,
        )?;
        self.crc = crc32c::crc32c_append(self.crc, chunk);
        self.written += chunk.len() as u64;
        Ok(())
    }

    /// Seals the snapshot: trailer, `fdatasync`, rename into place, directory sync, then
    /// prunes old snapshots. With `expected = Some((len, crc))` (sent by the leader), a
    /// transfer that does not match is refused and nothing is installed.
    pub fn finish(mut self, expected: Option<(u64, u32)>) -> Result<SnapshotInfo> {
        if let Some((len, crc)) = expected {
            if (len, crc) != (self.written, self.crc) {
                return Err(StorageError::Snapshot(format!(
                    "transfer mismatch: expected {len} bytes with CRC {crc:#010x}, received \
                     {} bytes with CRC {:#010x}",
                    self.written, self.crc
                )));
            }
        }
        self.seal()?;
        self.commit()
    }

    /// Like [`SnapshotWriter::finish`], but reads the data back from the sealed file and
    /// lets `check` refuse it (a snapshot that does not decode) before it is put in place:
    /// a refused snapshot never becomes one a restart would load. Returns the data.
    pub fn finish_checked(
        mut self,
        check: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<(SnapshotInfo, Vec<u8>)> {
        self.seal()?;
        let mut data = vec![0u8; self.written as usize];
        let file = self.file.as_ref().expect("open until committed");
        read_at(file, &self.tmp, &mut data, self.header_len)?;
        if crc32c::crc32c(&data) != self.crc {
            return Err(StorageError::corruption(
                &self.tmp,
                self.header_len,
                "snapshot data read back does not match what was written",
            ));
        }
        check(&data)?;
        Ok((self.commit()?, data))
    }

    /// Writes the trailer and makes the temporary file durable.
    fn seal(&mut self) -> Result<()> {
        let file = self.file.as_ref().expect("open until committed");
        let trailer = encode_trailer(self.written, self.crc);
        let at = self.header_len + self.written;
        fsutil::write_all_at(file, &self.tmp, &trailer, at, &self.faults)?;
        fsutil::sync_data(file, &self.tmp, &self.faults)
    }

    /// Renames the sealed file into place, syncs the directory, prunes old snapshots.
    fn commit(mut self) -> Result<SnapshotInfo> {
        drop(self.file.take());
        let path = self.dir.join(file_name(self.meta.index, self.meta.term));
        // From the rename to the end of the prune, alone: a concurrent save's prune must
        // not list (and try to delete) files this one is deleting.
        let _files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let renamed = fs::rename(&self.tmp, &path);
        if let Err(e) = renamed {
            let _ = fs::remove_file(&self.tmp);
            return Err(StorageError::io("rename", &self.tmp, e));
        }
        fsutil::sync_dir(&self.dir, &self.faults)?;
        let info = SnapshotInfo {
            meta: self.meta.clone(),
            data_len: self.written,
            data_crc: self.crc,
            path,
        };
        prune(&self.dir, self.retain, &self.faults)?;
        Ok(info)
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Valid snapshot names in `dir`, newest first.
fn list(dir: &Path) -> Result<Vec<(Index, Term, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io("readdir", dir, e))? {
        let entry = entry.map_err(|e| StorageError::io("readdir", dir, e))?;
        if let Some((i, t)) = entry.file_name().to_str().and_then(parse_name) {
            found.push((i, t, entry.path()));
        }
    }
    found.sort_by_key(|&(i, t, _)| std::cmp::Reverse((i, t)));
    Ok(found)
}

/// Deletes all but the newest `retain` snapshots (oldest first). Called with the store's
/// file lock held; a file that is already gone counts as deleted all the same (the goal
/// of a delete is reached).
fn prune(dir: &Path, retain: usize, faults: &Faults) -> Result<()> {
    let all = list(dir)?;
    if all.len() <= retain {
        return Ok(());
    }
    for (_, _, path) in all[retain..].iter().rev() {
        fsutil::remove_file_if_exists(path)?;
    }
    fsutil::sync_dir(dir, faults)
}

impl FileSnapshotStore {
    /// Opens (creating if needed) the snapshot directory, locking it and removing
    /// temporary files of interrupted writes.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fsutil::ensure_dir(&dir)?;
        let lock = fsutil::lock_dir(&dir, LOCK_FILE)?;
        for tmp in fsutil::remove_temp_files(&dir)? {
            tracing::warn!(file = %tmp.display(), "removed unfinished snapshot");
        }
        Ok(FileSnapshotStore {
            dir,
            retain: 2,
            faults: None,
            files: Arc::default(),
            _lock: lock,
        })
    }

    /// How many snapshots to keep (at least 1; default 2 so a corrupt newest one can fall
    /// back to the previous).
    pub fn with_retain(mut self, retain: usize) -> Self {
        self.retain = retain.max(1);
        self
    }

    /// Test hook: see [`FaultInjector`].
    pub fn with_faults(mut self, faults: Arc<FaultInjector>) -> Self {
        self.faults = Some(faults);
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts receiving a snapshot for `meta`.
    pub fn writer(&self, meta: &SnapshotMeta) -> Result<SnapshotWriter> {
        let seq = WRITER_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!(
            "{}.{}.{seq}.tmp",
            file_name(meta.index, meta.term),
            std::process::id()
        ));
        // Readable too: `finish_checked` reads the data back before it is put in place.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| StorageError::io("create", &tmp, e))?;
        let header = encode_header(meta);
        let w = SnapshotWriter {
            dir: self.dir.clone(),
            tmp,
            file: Some(file),
            meta: meta.clone(),
            header_len: header.len() as u64,
            written: 0,
            crc: 0,
            faults: self.faults.clone(),
            retain: self.retain,
            files: Arc::clone(&self.files),
        };
        let file = w.file.as_ref().expect("just opened");
        fsutil::write_all_at(file, &w.tmp, &header, 0, &w.faults)?;
        Ok(w)
    }

    /// Saves a whole snapshot durably (write, `fdatasync`, rename, directory sync).
    pub fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<SnapshotInfo> {
        let mut w = self.writer(meta)?;
        w.write_chunk(0, data)?;
        w.finish(None)
    }

    /// Descriptions of the stored snapshots, newest first, with header and trailer
    /// checked (not the data). Unreadable files are listed as errors.
    pub fn list(&self) -> Result<Vec<Result<SnapshotInfo>>> {
        Ok(list(&self.dir)?
            .into_iter()
            .map(|(_, _, path)| SnapshotReader::open(&path).map(|r| r.info))
            .collect())
    }

    /// Opens the snapshot `(index, term)` for chunked reading.
    pub fn reader(&self, index: Index, term: Term) -> Result<SnapshotReader> {
        let path = self.dir.join(file_name(index, term));
        if !path.exists() {
            return Err(StorageError::Snapshot(format!(
                "no snapshot at index {index} term {term}"
            )));
        }
        SnapshotReader::open(&path)
    }

    /// The newest snapshot whose header and trailer check out, for streaming to a
    /// follower. (Its data is checked end to end by the receiver via `data_crc`.)
    pub fn latest_reader(&self) -> Result<Option<SnapshotReader>> {
        for (_, _, path) in list(&self.dir)? {
            match SnapshotReader::open(&path) {
                Ok(r) => return Ok(Some(r)),
                Err(StorageError::Corruption { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The index of the oldest retained snapshot: compact the log no further than this,
    /// so that [`load_latest`](Self::load_latest) can fall back to it.
    pub fn compaction_floor(&self) -> Result<Option<Index>> {
        Ok(list(&self.dir)?.last().map(|(i, _, _)| *i))
    }

    /// The snapshot to restart from, fully verified, given the log's first index. See the
    /// module docs for the rule. `Ok(None)`: no snapshot, and the log starts at index 1.
    pub fn load_latest(&self, log_first_index: Index) -> Result<Option<(SnapshotMeta, Vec<u8>)>> {
        let mut skipped: Vec<String> = Vec::new();
        for (index, _, path) in list(&self.dir)? {
            let loaded = SnapshotReader::open(&path).and_then(|r| {
                let data = r.read_all()?;
                Ok((r.info.meta, data))
            });
            match loaded {
                Ok((meta, data)) => {
                    if log_first_index > meta.index + 1 {
                        return Err(StorageError::Snapshot(format!(
                            "snapshot at index {} is usable but the log starts at \
                             {log_first_index}: entries {}..{log_first_index} are missing{}",
                            meta.index,
                            meta.index + 1,
                            describe_skipped(&skipped)
                        )));
                    }
                    return Ok(Some((meta, data)));
                }
                Err(e @ StorageError::Corruption { .. }) => {
                    tracing::warn!(file = %path.display(), error = %e, "corrupt snapshot set aside");
                    self.set_aside(&path)?;
                    skipped.push(format!("index {index}: {e}"));
                }
                Err(e) => return Err(e),
            }
        }
        if log_first_index > 1 {
            return Err(StorageError::Snapshot(format!(
                "no usable snapshot but the log starts at {log_first_index}{}",
                describe_skipped(&skipped)
            )));
        }
        Ok(None)
    }

    /// Renames a corrupt snapshot out of the way (`*.corrupt`), kept for inspection.
    fn set_aside(&self, path: &Path) -> Result<()> {
        let _files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let mut to = path.as_os_str().to_owned();
        to.push(".corrupt");
        fs::rename(path, &to).map_err(|e| StorageError::io("rename", path, e))?;
        fsutil::sync_dir(&self.dir, &self.faults)
    }
}

fn describe_skipped(skipped: &[String]) -> String {
    if skipped.is_empty() {
        String::new()
    } else {
        format!(" (corrupt newer snapshots: {})", skipped.join("; "))
    }
}
