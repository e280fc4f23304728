//! Snapshot files: atomic saves, retention, verification, fallback and streaming.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use raft::{Membership, SnapshotMeta};
use storage::{FaultInjector, FileSnapshotStore, StorageError};

fn meta(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta {
        index,
        term,
        membership: Membership {
            voters: [1, 2, 3].into(),
            voters_outgoing: [1, 2, 4].into(),
            learners: [9].into(),
            metadata: [(9, bytes::Bytes::from_static(b"10.0.0.9:7100"))].into(),
        },
    }
}

fn data(index: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 * 7 + index) as u8).collect()
}

fn snap_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "snap"))
        .collect();
    v.sort();
    v
}

#[test]
fn save_then_load_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileSnapshotStore::open(tmp.path()).unwrap();
    assert_eq!(store.load_latest(1).unwrap(), None);
    let info = store.save(&meta(10, 2), &data(10, 5000)).unwrap();
    assert_eq!(info.data_len, 5000);
    let (m, d) = store.load_latest(11).unwrap().unwrap();
    assert_eq!((m, d), (meta(10, 2), data(10, 5000)));
    // Empty data is a valid snapshot too.
    store.save(&meta(12, 2), &[]).unwrap();
    assert_eq!(store.load_latest(1).unwrap().unwrap().1, Vec::<u8>::new());
}

#[test]
fn keeps_the_newest_two() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileSnapshotStore::open(tmp.path()).unwrap();
    for i in 1..=5 {
        store.save(&meta(i * 10, 1), &data(i, 100)).unwrap();
    }
    let files = snap_files(tmp.path());
    assert_eq!(files.len(), 2);
    assert_eq!(store.compaction_floor().unwrap(), Some(40));
    let listed: Vec<u64> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().meta.index)
        .collect();
    assert_eq!(listed, vec![50, 40]);
    let one = FileSnapshotStore::open(tmp.path().join("one"))
        .unwrap()
        .with_retain(1);
    one.save(&meta(1, 1), b"a").unwrap();
    one.save(&meta(2, 1), b"b").unwrap();
    assert_eq!(one.compaction_floor().unwrap(), Some(2));
}

#[test]
fn corrupt_newest_falls_back_only_if_the_log_covers_the_gap() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileSnapshotStore::open(tmp.path()).unwrap();
    store.save(&meta(100, 3), &data(100, 4000)).unwrap();
    let newest = store.save(&meta(200, 4), &data(200, 4000)).unwrap();
    let mut bytes = fs::read(&newest.path).unwrap();
    bytes[2000] ^= 1;
    fs::write(&newest.path, &bytes).unwrap();

    // The log starts at 150: the entries 101..150 exist nowhere. Refuse.
    let err = store.load_latest(150).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StorageError::Snapshot(_)), "{msg}");
    assert!(msg.contains("entries 101..150 are missing"), "{msg}");
    assert!(msg.contains("checksum"), "{msg}");

    // The corrupt file was set aside; restore it to try again with a longer log.
    let aside = PathBuf::from(format!("{}.corrupt", newest.path.display()));
    assert!(aside.exists());
    fs::rename(&aside, &newest.path).unwrap();
    let ((m, d), logs) = common::capture_logs(|| store.load_latest(101).unwrap().unwrap());
    assert_eq!((m.index, d), (100, data(100, 4000)));
    assert!(logs
        .iter()
        .any(|l| l.starts_with("WARN") && l.contains("corrupt snapshot")));
    assert_eq!(
        snap_files(tmp.path()).len(),
        1,
        "corrupt one no longer counts"
    );
}

#[test]
fn no_snapshot_for_a_compacted_log_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileSnapshotStore::open(tmp.path()).unwrap();
    assert!(matches!(
        store.load_latest(5),
        Err(StorageError::Snapshot(_))
    ));
}

#[test]
fn truncated_or_garbled_files_are_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileSnapshotStore::open(tmp.path()).unwrap();
    let info = store.save(&meta(7, 1), &data(7, 300)).unwrap();
    let full = fs::read(&info.path).unwrap();
    for cut in [0, 10, 40, full.len() / 2, full.len() - 1] {
        fs::write(&info.path, &full[..cut]).unwrap();
        let err = store.reader(7, 1).err().expect("must not open");
        assert!(
            matches!(err, StorageError::Corruption { .. }),
            "cut {cut}: {err}"
        );
    }
    // Every single-bit flip is caught by a full verification.
    for byte in (0..full.len()).step_by(7) {
        let mut bad = full.clone();
        bad[byte] ^= 0x04;
        fs::write(&info.path, &bad).unwrap();
        let ok = store.reader(7, 1).and_then(|r| r.verify()).is_ok();
        assert!(!ok, "flip at byte {byte} undetected");
    }
}

#[test]
fn streams_in_chunks_between_two_stores() {
    let tmp = tempfile::tempdir().unwrap();
    let leader = FileSnapshotStore::open(tmp.path().join("leader")).unwrap();
    let follower = FileSnapshotStore::open(tmp.path().join("follower")).unwrap();
    let payload = data(42, 100_000);
    leader.save(&meta(42, 5), &payload).unwrap();

    let reader = leader.latest_reader().unwrap().unwrap();
    let info = reader.info().clone();
    let mut writer = follower.writer(reader.meta()).unwrap();
    let mut offset = 0;
    loop {
        let chunk = reader.read_chunk(offset, 16 * 1024).unwrap();
        if chunk.is_empty() {
            break;
        }
        writer.write_chunk(offset, &chunk).unwrap();
        // A retransmitted chunk is ignored.
        writer.write_chunk(offset, &chunk).unwrap();
        offset += chunk.len() as u64;
    }
    assert_eq!(writer.written(), payload.len() as u64);
    let got = writer.finish(Some((info.data_len, info.data_crc))).unwrap();
    assert_eq!(got.data_crc, info.data_crc);
    let (m, d) = follower.load_latest(1).unwrap().unwrap();
    assert_eq!((m, d), (meta(42, 5), payload));
    assert!(reader.read_chunk(info.data_len + 5, 10).unwrap().is_empty());
}

#[test]
fn writer_refuses_gaps_and_mismatched_transfers() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileSnapshotStore::open(tmp.path()).unwrap();
    let mut w = store.writer(&meta(9, 1)).unwrap();
    w.write_chunk(0, b"hello ").unwrap();
    assert!(matches!(
        w.write_chunk(10, b"x"),
        Err(StorageError::Snapshot(_))
    ));
    assert!(matches!(
        w.write_chunk(3, b"lo world"),
        Err(StorageError::Snapshot(_))
    ));
    w.write_chunk(6, b"world").unwrap();
    let err = w.finish(Some((11, 0xdead_beef))).unwrap_err();
    assert!(err.to_string().contains("transfer mismatch"), "{err}");
    // Nothing installed, no temporary file left behind.
    assert_eq!(store.load_latest(1).unwrap(), None);
    assert!(fs::read_dir(tmp.path()).unwrap().all(|e| !e
        .unwrap()
        .path()
        .to_string_lossy()
        .ends_with(".tmp")));
    // An abandoned writer cleans up too.
    let w = store.writer(&meta(10, 1)).unwrap();
    drop(w);
    assert!(snap_files(tmp.path()).is_empty());
}

#[test]
fn disk_full_during_save_leaves_the_previous_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let faults = FaultInjector::new();
    let store = FileSnapshotStore::open(tmp.path())
        .unwrap()
        .with_faults(faults.clone());
    store.save(&meta(5, 1), &data(5, 1000)).unwrap();
    faults.fail_writes_after(500);
    assert!(store.save(&meta(6, 1), &data(6, 1000)).unwrap_err().is_io());
    faults.clear();
    faults.fail_next_syncs(1);
    assert!(store.save(&meta(7, 1), &data(7, 1000)).unwrap_err().is_io());
    let (m, _) = store.load_latest(1).unwrap().unwrap();
    assert_eq!(m.index, 5);
    assert_eq!(snap_files(tmp.path()).len(), 1);
}

/// Two saves at once (the server's background save of a snapshot the node took and the
/// synchronous save of one received from the leader) both prune: neither may fail because
/// the other already deleted an old file, and retention still holds afterwards.
#[test]
fn concurrent_saves_never_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(FileSnapshotStore::open(tmp.path()).unwrap());
    let rounds = 300u64;
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..rounds {
                    let index = 10 + 2 * i + t; // distinct names, interleaved
                    if let Err(e) = store.save(&meta(index, 1), &data(index, 64)) {
                        return Err(format!("thread {t}, save of index {index}: {e}"));
                    }
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let files = snap_files(tmp.path());
    assert_eq!(files.len(), 2, "retention broken: {files:?}");
    let (m, _) = store.load_latest(1).unwrap().unwrap();
    assert_eq!(m.index, 10 + 2 * (rounds - 1) + 1);
}
