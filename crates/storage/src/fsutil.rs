//! File-system primitives with the error context (operation + path) and the fault hooks
//! every write goes through. Nothing here knows about formats.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Result, StorageError};
use crate::fault::FaultInjector;

/// Shared handle to the optional fault injector.
pub(crate) type Faults = Option<Arc<FaultInjector>>;

/// `pwrite` of all of `buf` at `offset`. With a fault injector, may write a prefix and
/// then fail with `ENOSPC`, like a filesystem running out of space mid-write.
pub(crate) fn write_all_at(
    file: &File,
    path: &Path,
    buf: &[u8],
    offset: u64,
    faults: &Faults,
) -> Result<()> {
    let allowed = faults
        .as_ref()
        .map_or(buf.len(), |f| f.claim_write(buf.len()));
    file.write_all_at(&buf[..allowed], offset)
        .map_err(|e| StorageError::io("write", path, e))?;
    if allowed < buf.len() {
        return Err(StorageError::io("write", path, FaultInjector::disk_full()));
    }
    Ok(())
}

/// `fdatasync`: the file's data and the metadata needed to read it back (its size).
pub(crate) fn sync_data(file: &File, path: &Path, faults: &Faults) -> Result<()> {
    if faults.as_ref().is_some_and(|f| f.claim_sync_failure()) {
        return Err(StorageError::io(
            "fdatasync",
            path,
            FaultInjector::sync_failed(),
        ));
    }
    file.sync_data()
        .map_err(|e| StorageError::io("fdatasync", path, e))
}

/// `fsync` of a directory: makes file creations, renames and deletions in it durable.
/// Without it a crash can forget a renamed file although its contents were synced.
pub(crate) fn sync_dir(dir: &Path, faults: &Faults) -> Result<()> {
    #[cfg(test)]
    tests::SYNCED_DIRS.with(|s| s.borrow_mut().push(dir.to_path_buf()));
    if faults.as_ref().is_some_and(|f| f.claim_sync_failure()) {
        return Err(StorageError::io(
            "fsync dir",
            dir,
            FaultInjector::sync_failed(),
        ));
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("fsync dir", dir, e))
}

/// Writes `name` in `dir` atomically: `name.tmp` is written and synced, renamed over
/// `name`, then the directory is synced. A crash leaves either the old file or the new one
/// (plus possibly a stray `.tmp`, removed on open).
pub(crate) fn write_file_atomically(
    dir: &Path,
    name: &str,
    contents: &[u8],
    faults: &Faults,
) -> Result<PathBuf> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| StorageError::io("create", &tmp, e))?;
    write_all_at(&file, &tmp, contents, 0, faults)?;
    sync_data(&file, &tmp, faults)?;
    drop(file);
    fs::rename(&tmp, &path).map_err(|e| StorageError::io("rename", &tmp, e))?;
    sync_dir(dir, faults)?;
    Ok(path)
}

pub(crate) fn remove_file(path: &Path) -> Result<()> {
    fs::remove_file(path).map_err(|e| StorageError::io("unlink", path, e))
}

/// `unlink` where a file already gone (`ENOENT`) is success: what a delete is for holds.
pub(crate) fn remove_file_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(StorageError::io("unlink", path, e))
        }
        _ => Ok(()),
    }
}

/// Creates `dir` (and missing parents) if needed, so that the new directories survive a
/// crash: a directory's entry lives in its parent, so the parent of *every* directory
/// created here is synced (for `data/node1/log` under an existing `data`: `data` and
/// `data/node1`). Syncing only the immediate parent would leave `node1`'s own entry in
/// `data` to chance: a power loss after the first start could take the whole directory,
/// hard state included, although every file in it was synced. Files created in `dir`
/// later are made durable by their own directory sync (`write_file_atomically`).
pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    // The missing levels, deepest first.
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.as_os_str().is_empty() && !at.is_dir() {
        missing.push(at);
        match at.parent() {
            Some(parent) => at = parent,
            None => break,
        }
    }
    for new in missing.iter().rev() {
        match fs::create_dir(new) {
            Ok(()) => {}
            // Created meanwhile by someone else: theirs to sync, but syncing again is
            // harmless and keeps the rule simple.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && new.is_dir() => {}
            Err(e) => return Err(StorageError::io("mkdir", *new, e)),
        }
    }
    for new in &missing {
        let parent = new
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        sync_dir(parent, &None)?;
    }
    Ok(())
}

/// Takes an exclusive `flock` on `dir/lock_name`, so two stores never write the same files.
/// The lock lives as long as the returned file.
pub(crate) fn lock_dir(dir: &Path, lock_name: &str) -> Result<File> {
    let path = dir.join(lock_name);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StorageError::io("open", &path, e))?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(StorageError::Locked(dir.to_path_buf()));
        }
        return Err(StorageError::io("flock", &path, err));
    }
    // The pid is informational only (for an operator wondering who holds the lock).
    let _ = file.set_len(0);
    let _ = writeln!(file, "{}", std::process::id());
    Ok(file)
}

/// Names in `dir` ending in `.tmp`: leftovers of an interrupted atomic write.
pub(crate) fn remove_temp_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io("readdir", dir, e))? {
        let entry = entry.map_err(|e| StorageError::io("readdir", dir, e))?;
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "tmp") {
            remove_file(&path)?;
            removed.push(path);
        }
    }
    if !removed.is_empty() {
        sync_dir(dir, &None)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::path::PathBuf;

    use super::*;

    thread_local! {
        /// Test seam: every directory `sync_dir` was asked to sync on this thread.
        pub(super) static SYNCED_DIRS: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
    }

    fn synced_during(f: impl FnOnce()) -> Vec<PathBuf> {
        SYNCED_DIRS.with(|s| s.borrow_mut().clear());
        f();
        SYNCED_DIRS.with(|s| s.borrow_mut().drain(..).collect())
    }

    /// A new nested data directory (`data/node1/log` under an existing root): the entry of
    /// every directory created lives in its parent, so every parent that gained one must
    /// be synced, not only the immediate one, or a power loss after the first start can
    /// take the whole data directory (and the hard state in it) away.
    #[test]
    fn ensure_dir_syncs_every_new_directory_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let leaf = root.join("data").join("node1").join("log");
        let synced = synced_during(|| ensure_dir(&leaf).unwrap());
        assert!(leaf.is_dir());
        for parent in [
            root.to_path_buf(),
            root.join("data"),
            root.join("data").join("node1"),
        ] {
            assert!(
                synced.contains(&parent),
                "{} holds a new directory's entry but was not synced (synced: {synced:?})",
                parent.display()
            );
        }
        // Existing directories are left alone: nothing new to make durable.
        let synced = synced_during(|| ensure_dir(&leaf).unwrap());
        assert_eq!(synced, Vec::<PathBuf>::new());
        // Only the levels that are new: `log2` next to `log` syncs `node1` only.
        let sibling = root.join("data").join("node1").join("log2");
        let synced = synced_during(|| ensure_dir(&sibling).unwrap());
        assert_eq!(synced, vec![root.join("data").join("node1")]);
    }
}
