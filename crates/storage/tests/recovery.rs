//! Recovery of the file store from torn writes, corruption and I/O failures.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use common::{capture_logs, entries};
use raft::HardState;
use storage::{FaultInjector, FileLogOptions, FileLogStore, LogStore, StorageError};

/// Data bytes per entry in these tests, so record `k` sits at a known offset.
const DATA: usize = 100;
/// On-disk bytes per record: 9 (frame) + 17 (index, term, kind) + data.
const RECORD: u64 = 26 + DATA as u64;
const SEGMENT_HEADER: u64 = 32;

/// Byte offset of entry `index` in a segment starting at `first`.
fn offset_of(first: u64, index: u64) -> u64 {
    SEGMENT_HEADER + (index - first) * RECORD
}

fn opts() -> FileLogOptions {
    FileLogOptions::default()
}

/// A log of `n` synced entries (term 1) in a fresh directory.
fn write_log(dir: &Path, n: u64, opts: FileLogOptions) {
    let (mut s, _) = FileLogStore::open(dir, opts).unwrap();
    s.append(&entries(1, n + 1, 1, DATA)).unwrap();
    s.sync().unwrap();
}

fn only_segment(dir: &Path) -> PathBuf {
    let segs = segments(dir);
    assert_eq!(segs.len(), 1);
    segs[0].clone()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

fn flip_bit(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x10;
    fs::write(path, bytes).unwrap();
}

fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn open_err(dir: &Path) -> StorageError {
    match FileLogStore::open(dir, opts()) {
        Ok(_) => panic!("open should fail"),
        Err(e) => e,
    }
}

#[test]
fn torn_final_record_is_cut_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_log(dir, 50, opts());
    let seg = only_segment(dir);
    let last = offset_of(1, 50);
    set_len(&seg, last + RECORD - 7);

    let (opened, logs) = capture_logs(|| FileLogStore::open(dir, opts()));
    let (s, report) = opened.unwrap();
    assert_eq!(s.last_index(), 49, "only the torn record is lost");
    let torn = report.torn_tail.expect("torn tail reported");
    assert_eq!((torn.file.clone(), torn.offset), (seg.clone(), last));
    assert_eq!(torn.dropped_bytes, RECORD - 7);
    let warning = logs
        .iter()
        .find(|l| l.starts_with("WARN") && l.contains("torn tail"))
        .unwrap_or_else(|| panic!("no warning in {logs:?}"));
    assert!(warning.contains(&seg.display().to_string()), "{warning}");
    assert!(warning.contains(&format!("offset={last}")), "{warning}");
    assert_eq!(s.entries(1, 50, u64::MAX).unwrap(), entries(1, 50, 1, DATA));
    assert_eq!(fs::metadata(&seg).unwrap().len(), last, "file cut back");

    // The log goes on, and the next open is clean.
    let mut s = s;
    s.append(&entries(50, 52, 1, DATA)).unwrap();
    s.sync().unwrap();
    drop(s);
    let (s, report) = FileLogStore::open(dir, opts()).unwrap();
    assert_eq!((s.last_index(), report.torn_tail), (51, None));
}

#[test]
fn garbage_after_the_last_record_is_cut() {
    for garbage in [vec![0u8; 4096], pseudo_random(3000), vec![0xff; 9]] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_log(dir, 20, opts());
        let seg = only_segment(dir);
        let end = fs::metadata(&seg).unwrap().len();
        OpenOptions::new()
            .append(true)
            .open(&seg)
            .unwrap()
            .write_all(&garbage)
            .unwrap();
        let (s, report) = FileLogStore::open(dir, opts()).unwrap();
        assert_eq!(s.last_index(), 20, "nothing valid lost");
        let torn = report.torn_tail.unwrap();
        assert_eq!(
            (torn.offset, torn.dropped_bytes),
            (end, garbage.len() as u64)
        );
    }
}

fn pseudo_random(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Cutting the last segment at *any* byte inside its last records must recover a prefix
/// of the log: the crash-consistency property torn tails rely on.
#[test]
fn every_cut_point_recovers_a_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let master = tmp.path().join("master");
    write_log(&master, 12, opts());
    let seg_name = only_segment(&master).file_name().unwrap().to_owned();
    let full = fs::read(master.join(&seg_name)).unwrap();
    let hardstate = fs::read(master.join("hardstate")).unwrap();
    let from = offset_of(1, 10) as usize;
    for cut in from..=full.len() {
        let dir = tmp.path().join(format!("cut{cut}"));
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join(&seg_name), &full[..cut]).unwrap();
        fs::write(dir.join("hardstate"), &hardstate).unwrap();
        let (s, _) = FileLogStore::open(&dir, opts()).unwrap();
        let whole = (cut as u64 - SEGMENT_HEADER) / RECORD;
        assert_eq!(s.last_index(), whole, "cut at {cut}");
        drop(s);
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn bit_flip_mid_segment_refuses_to_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_log(dir, 50, opts());
    let seg = only_segment(dir);
    // In the data of entry 10; entries 11..50 after it are intact.
    let at = offset_of(1, 10);
    flip_bit(&seg, at + 40);
    let err = open_err(dir);
    let msg = err.to_string();
    assert!(
        matches!(err, StorageError::Corruption { offset, .. } if offset == at),
        "{msg}"
    );
    assert!(msg.contains(&seg.display().to_string()), "{msg}");
    assert!(msg.contains(&format!("offset {at}")), "{msg}");
    // Refusing to start must not have modified anything.
    assert_eq!(fs::metadata(&seg).unwrap().len(), offset_of(1, 51));
}

#[test]
fn flipped_length_field_mid_segment_is_not_mistaken_for_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_log(dir, 30, opts());
    let seg = only_segment(dir);
    // The high byte of entry 5's length: the record now "runs past the end of the file".
    let at = offset_of(1, 5);
    let mut bytes = fs::read(&seg).unwrap();
    bytes[at as usize + 3] = 0x7f;
    fs::write(&seg, bytes).unwrap();
    let msg = open_err(dir).to_string();
    assert!(msg.contains(&format!("offset {at}")), "{msg}");
    assert!(msg.contains("followed by a valid record"), "{msg}");
}

#[test]
fn bad_record_in_an_earlier_segment_refuses_to_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // About 8 records per segment.
    let small = FileLogOptions {
        max_segment_bytes: SEGMENT_HEADER + 8 * RECORD,
        ..opts()
    };
    write_log(dir, 40, small.clone());
    let segs = segments(dir);
    assert_eq!(segs.len(), 5);
    // The *last* record of the first segment: a torn tail if it were the last segment.
    let at = offset_of(1, 8);
    set_len(&segs[0], at + 5);
    let msg = open_err(dir).to_string();
    assert!(msg.contains(&segs[0].display().to_string()), "{msg}");
    assert!(msg.contains(&format!("offset {at}")), "{msg}");
    assert!(msg.contains("not the last"), "{msg}");
}

#[test]
fn corrupt_segment_header_or_missing_segment_refuses_to_open() {
    let tmp = tempfile::tempdir().unwrap();
    let small = FileLogOptions {
        max_segment_bytes: SEGMENT_HEADER + 8 * RECORD,
        ..opts()
    };

    let dir = tmp.path().join("header");
    write_log(&dir, 40, small.clone());
    let segs = segments(&dir);
    flip_bit(&segs[2], 12);
    let msg = open_err(&dir).to_string();
    assert!(
        msg.contains(&segs[2].display().to_string()) && msg.contains("offset 0"),
        "{msg}"
    );

    let dir = tmp.path().join("gap");
    write_log(&dir, 40, small);
    let segs = segments(&dir);
    fs::remove_file(&segs[2]).unwrap();
    let msg = open_err(&dir).to_string();
    assert!(msg.contains(&segs[3].display().to_string()), "{msg}");
    assert!(msg.contains("previous segment ends at 16"), "{msg}");
}

#[test]
fn missing_hard_state_with_a_log_refuses_to_open() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path(), 3, opts());
    fs::remove_file(tmp.path().join("hardstate")).unwrap();
    let msg = open_err(tmp.path()).to_string();
    assert!(
        msg.contains("hardstate") && msg.contains("missing"),
        "{msg}"
    );
}

#[test]
fn hard_state_survives_a_torn_slot_and_refuses_two() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a = HardState {
        term: 1,
        vote: Some(3),
        commit: 0,
        known_commit: 0,
    };
    let b = HardState {
        term: 2,
        vote: None,
        commit: 0,
        known_commit: 0,
    };
    {
        let (mut s, _) = FileLogStore::open(dir, opts()).unwrap();
        s.save_hard_state(&a).unwrap(); // slot 1
        s.save_hard_state(&b).unwrap(); // slot 0
    }
    let hs = dir.join("hardstate");
    let (s, _) = FileLogStore::open(dir, opts()).unwrap();
    assert_eq!(s.hard_state(), b);
    drop(s);
    flip_bit(&hs, 20); // the term in slot 0
    let (s, _) = FileLogStore::open(dir, opts()).unwrap();
    assert_eq!(s.hard_state(), a, "falls back to the older, intact slot");
    drop(s);
    flip_bit(&hs, 512 + 20);
    let msg = open_err(dir).to_string();
    assert!(msg.contains("both hard state slots"), "{msg}");
}

#[test]
fn commit_hint_is_clamped_to_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let (mut s, _) = FileLogStore::open(dir, opts()).unwrap();
        s.append(&entries(1, 11, 1, DATA)).unwrap();
        // Durable (term changes) with commit 10, but the entries are never synced...
        s.save_hard_state(&HardState {
            term: 1,
            vote: Some(1),
            commit: 10,
            known_commit: 0,
        })
        .unwrap();
        s.sync().unwrap();
    }
    // ...and here most of them are lost.
    set_len(&only_segment(dir), offset_of(1, 4) + 3);
    let (s, report) = FileLogStore::open(dir, opts()).unwrap();
    assert_eq!(s.last_index(), 3);
    assert_eq!(report.hard_state.commit, 3);
    assert_eq!(s.hard_state().vote, Some(1));
}

#[test]
fn leftover_temp_files_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_log(dir, 3, opts());
    fs::write(dir.join("00000000000000000004.seg.tmp"), b"half a hea").unwrap();
    let (s, report) = FileLogStore::open(dir, opts()).unwrap();
    assert_eq!(report.removed_temp_files.len(), 1);
    assert_eq!(s.last_index(), 3);
    assert!(!dir.join("00000000000000000004.seg.tmp").exists());
}

#[test]
fn a_second_store_on_the_same_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (_s, _) = FileLogStore::open(tmp.path(), opts()).unwrap();
    assert!(matches!(
        FileLogStore::open(tmp.path(), opts()),
        Err(StorageError::Locked(_))
    ));
}

fn with_faults(faults: &std::sync::Arc<FaultInjector>, max_segment_bytes: u64) -> FileLogOptions {
    FileLogOptions {
        max_segment_bytes,
        faults: Some(faults.clone()),
    }
}

#[test]
fn disk_full_mid_append_fails_the_store_without_lying() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let faults = FaultInjector::new();
    let (mut s, _) = FileLogStore::open(dir, with_faults(&faults, 1 << 20)).unwrap();
    s.append(&entries(1, 11, 1, DATA)).unwrap();
    s.sync().unwrap();

    // Room for two and a half more records.
    faults.fail_writes_after(2 * RECORD + RECORD / 2);
    let err = s.append(&entries(11, 21, 1, DATA)).unwrap_err();
    assert!(err.is_io(), "{err}");
    assert!(err.to_string().contains("No space left"), "{err}");
    // The batch went down in one write that failed: none of it is claimed.
    assert_eq!(s.last_index(), 10);
    assert_eq!(s.entries(1, 11, u64::MAX).unwrap(), entries(1, 11, 1, DATA));
    // Failed: writes are refused even after space comes back; reads still work.
    faults.clear();
    for r in [
        s.append(&entries(11, 12, 1, DATA)),
        s.sync(),
        s.save_hard_state(&HardState {
            term: 5,
            vote: None,
            commit: 0,
            known_commit: 0,
        }),
        s.compact(3),
    ] {
        assert!(matches!(r, Err(StorageError::Failed(_))), "{r:?}");
    }
    assert!(s.failure().unwrap().contains("No space left"));
    drop(s);

    // Recovery sees exactly the synced log: the partial write was cut back.
    let (s, report) = FileLogStore::open(dir, opts()).unwrap();
    assert_eq!(s.last_index(), 10);
    assert_eq!(report.torn_tail, None);
}

#[test]
fn disk_full_across_segments_keeps_what_was_fully_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let faults = FaultInjector::new();
    // Four records per segment.
    let (mut s, _) =
        FileLogStore::open(dir, with_faults(&faults, SEGMENT_HEADER + 4 * RECORD)).unwrap();
    // 4 records fill segment 1; the new segment's header takes 32 bytes; then 2 records.
    faults.fail_writes_after(4 * RECORD + SEGMENT_HEADER + 2 * RECORD + 10);
    let err = s.append(&entries(1, 11, 1, DATA)).unwrap_err();
    assert!(err.is_io(), "{err}");
    assert_eq!(
        s.last_index(),
        4,
        "only the fully written segment is claimed"
    );
    assert_eq!(s.entries(1, 5, u64::MAX).unwrap().len(), 4);
    drop(s);
    let (s, _) = FileLogStore::open(dir, opts()).unwrap();
    assert!(s.last_index() <= 4);
    assert_eq!(
        s.entries(1, s.last_index() + 1, u64::MAX).unwrap(),
        entries(1, s.last_index() + 1, 1, DATA)
    );
}

#[test]
fn failed_sync_fails_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let faults = FaultInjector::new();
    let (mut s, _) = FileLogStore::open(dir, with_faults(&faults, 1 << 20)).unwrap();
    s.append(&entries(1, 6, 1, DATA)).unwrap();
    faults.fail_next_syncs(1);
    let err = s.sync().unwrap_err();
    assert!(
        err.is_io() && err.to_string().contains("fdatasync"),
        "{err}"
    );
    assert!(matches!(s.sync(), Err(StorageError::Failed(_))));
    drop(s);
    let (s, _) = FileLogStore::open(dir, opts()).unwrap();
    assert!(s.last_index() <= 5);
}

#[test]
fn failed_hard_state_save_keeps_the_old_one_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let faults = FaultInjector::new();
    let old = HardState {
        term: 3,
        vote: Some(1),
        commit: 0,
        known_commit: 0,
    };
    let (mut s, _) = FileLogStore::open(dir, with_faults(&faults, 1 << 20)).unwrap();
    s.save_hard_state(&old).unwrap();
    faults.fail_writes_after(20); // a torn slot write
    let new = HardState {
        term: 4,
        vote: Some(2),
        commit: 0,
        known_commit: 0,
    };
    assert!(s.save_hard_state(&new).unwrap_err().is_io());
    assert_eq!(s.hard_state(), old, "never claims what it failed to save");
    drop(s);
    let (s, _) = FileLogStore::open(dir, opts()).unwrap();
    assert_eq!(s.hard_state(), old);
}

#[test]
fn disk_full_after_a_truncation_claims_neither_old_nor_new_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let faults = FaultInjector::new();
    let (mut s, _) = FileLogStore::open(dir, with_faults(&faults, 4 * RECORD)).unwrap();
    s.append(&entries(1, 21, 1, DATA)).unwrap();
    s.sync().unwrap();
    faults.fail_writes_after(0);
    assert!(s.append(&entries(6, 9, 2, DATA)).unwrap_err().is_io());
    assert_eq!((s.last_index(), s.last_term()), (5, 1));
    drop(s);
    let (s, _) = FileLogStore::open(dir, opts()).unwrap();
    assert_eq!(s.entries(1, 6, u64::MAX).unwrap(), entries(1, 6, 1, DATA));
    assert_eq!(s.last_index(), 5);
}

fn hs(term: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote: Some(1),
        commit,
        known_commit: 0,
    }
}

/// A log of `n` entries driven the way the node drives it, one `Ready` at a time
/// (append, hard state, sync), then one more `Ready` that only advances the commit
/// index: that hard state write records that entries `..= n` were synced.
fn write_acknowledged_log(dir: &Path, n: u64) {
    let (mut s, _) = FileLogStore::open(dir, opts()).unwrap();
    s.append(&entries(1, n + 1, 1, DATA)).unwrap();
    s.save_hard_state(&hs(1, 0)).unwrap();
    s.sync().unwrap();
    s.save_hard_state(&hs(1, n)).unwrap();
    s.sync().unwrap();
}

/// The final record was synced (and so possibly acknowledged) and the store knows it: a
/// bad checksum there is corruption, not a torn write, and open refuses, naming the file
/// and the offset, without touching the file. Same for a record cut short there.
#[test]
fn bad_final_record_below_the_synced_point_refuses_to_open() {
    let tmp = tempfile::tempdir().unwrap();

    let dir = tmp.path().join("flip");
    write_acknowledged_log(&dir, 20);
    let seg = only_segment(&dir);
    let at = offset_of(1, 20);
    flip_bit(&seg, at + 40);
    let err = open_err(&dir);
    let msg = err.to_string();
    assert!(
        matches!(err, StorageError::Corruption { offset, .. } if offset == at),
        "{msg}"
    );
    assert!(msg.contains(&seg.display().to_string()), "{msg}");
    assert!(msg.contains(&format!("offset {at}")), "{msg}");
    assert!(msg.contains("synced"), "{msg}");
    assert_eq!(fs::metadata(&seg).unwrap().len(), offset_of(1, 21));

    let dir = tmp.path().join("cut");
    write_acknowledged_log(&dir, 20);
    let seg = only_segment(&dir);
    set_len(&seg, at + RECORD - 5);
    let msg = open_err(&dir).to_string();
    assert!(msg.contains(&format!("offset {at}")), "{msg}");
    assert_eq!(fs::metadata(&seg).unwrap().len(), at + RECORD - 5);
}

/// Beyond the synced point a bad final record is a torn write, cut as ever.
#[test]
fn torn_tail_beyond_the_synced_point_is_cut() {
    for (cut_index, keeps) in [(22, 21), (21, 20)] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        {
            let (mut s, _) = FileLogStore::open(dir, opts()).unwrap();
            s.append(&entries(1, 21, 1, DATA)).unwrap();
            s.save_hard_state(&hs(1, 0)).unwrap();
            s.sync().unwrap();
            // Appended (and the hard state saved with them) but never synced.
            s.append(&entries(21, 23, 1, DATA)).unwrap();
            s.save_hard_state(&hs(1, 20)).unwrap();
        }
        let seg = only_segment(dir);
        let at = offset_of(1, cut_index);
        set_len(&seg, at + 11);
        let (s, report) = FileLogStore::open(dir, opts()).unwrap();
        assert_eq!(s.last_index(), keeps);
        let torn = report.torn_tail.expect("torn tail reported");
        assert_eq!((torn.offset, torn.dropped_bytes), (at, 11));
    }
}

/// A truncation below the synced point (a new leader overwriting entries this node had
/// synced but not committed) lowers the synced point durably before the new entries are
/// written: a torn write of those is still a torn tail. Same after a snapshot reset.
#[test]
fn synced_point_follows_truncation_and_reset() {
    let tmp = tempfile::tempdir().unwrap();

    let dir = tmp.path().join("truncate");
    {
        let (mut s, _) = FileLogStore::open(&dir, opts()).unwrap();
        s.append(&entries(1, 21, 1, DATA)).unwrap();
        s.save_hard_state(&hs(1, 0)).unwrap();
        s.sync().unwrap();
        s.save_hard_state(&hs(1, 5)).unwrap(); // records: synced through 20
        s.save_hard_state(&hs(2, 5)).unwrap();
        s.append(&entries(10, 13, 2, DATA)).unwrap(); // replaces 10..=20
    }
    let seg = only_segment(&dir);
    set_len(&seg, offset_of(1, 12) + 20);
    let (s, report) = FileLogStore::open(&dir, opts()).unwrap();
    assert_eq!((s.last_index(), s.last_term()), (11, 2));
    assert_eq!(report.torn_tail.expect("torn").offset, offset_of(1, 12));
    drop(s);

    let dir = tmp.path().join("reset");
    {
        let (mut s, _) = FileLogStore::open(&dir, opts()).unwrap();
        s.append(&entries(1, 21, 1, DATA)).unwrap();
        s.save_hard_state(&hs(1, 0)).unwrap();
        s.sync().unwrap();
        s.save_hard_state(&hs(1, 20)).unwrap(); // records: synced through 20
        let meta = raft::SnapshotMeta {
            index: 5,
            term: 1,
            membership: Default::default(),
        };
        s.reset_to_snapshot(&meta).unwrap();
        s.append(&entries(6, 9, 2, DATA)).unwrap();
    }
    let seg = only_segment(&dir);
    set_len(&seg, offset_of(6, 8) + 20);
    let (s, report) = FileLogStore::open(&dir, opts()).unwrap();
    assert_eq!(s.last_index(), 7);
    assert_eq!(report.torn_tail.expect("torn").offset, offset_of(6, 8));
}

/// Hard state files written before the synced point was recorded (44-byte slots) still
/// open; with no synced point known, a bad final record is a torn tail, as before.
#[test]
fn hard_state_without_a_synced_point_still_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_acknowledged_log(dir, 20);
    // Rewrite the file in the original format: slot 0 only, 44 bytes, version 1.
    let mut slot = Vec::new();
    slot.extend_from_slice(b"RKHS");
    slot.extend_from_slice(&[1, 1, 0, 0]);
    for v in [7u64, 1, 1, 20] {
        slot.extend_from_slice(&v.to_le_bytes()); // seq, term, vote, commit
    }
    let crc = crc32c::crc32c(&slot);
    slot.extend_from_slice(&crc.to_le_bytes());
    let mut file = slot;
    file.resize(1024, 0);
    fs::write(dir.join("hardstate"), &file).unwrap();
    let seg = only_segment(dir);
    let at = offset_of(1, 20);
    flip_bit(&seg, at + 40);
    let (s, report) = FileLogStore::open(dir, opts()).unwrap();
    assert_eq!(s.hard_state(), hs(1, 19), "commit clamped to the log");
    assert_eq!(s.last_index(), 19);
    assert_eq!(report.torn_tail.expect("torn").offset, at);
}

/// A `known_commit` the synced log does not reach is synced before the save returns (a
/// crash must not lose it: raft's `HardState::known_commit`), and reads back after a
/// restart; one the log reaches is written lazily, like the commit hint.
#[test]
fn known_commit_beyond_the_synced_log_is_synced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let faults = FaultInjector::new();
    let mut s = ten_synced_entries(dir, &faults);
    let known = |known_commit| HardState {
        known_commit,
        ..hs(1, 0)
    };
    s.save_hard_state(&known(500)).unwrap();
    drop(s);
    let (s, _) = FileLogStore::open(dir, opts()).unwrap();
    assert_eq!(s.hard_state(), known(500));
    // A fresh store at the same point: the synced log ends at 10.
    let tmp = tempfile::tempdir().unwrap();
    let mut s = ten_synced_entries(tmp.path(), &faults);
    faults.fail_next_syncs(1);
    s.save_hard_state(&known(10)).unwrap();
    let err = s.save_hard_state(&known(11)).unwrap_err();
    assert!(
        err.is_io() && err.to_string().contains("fdatasync"),
        "{err}"
    );
}

/// A store in `dir` holding entries 1..=10, synced, with hard state `hs(1, 0)` saved.
fn ten_synced_entries(dir: &Path, faults: &std::sync::Arc<FaultInjector>) -> FileLogStore {
    let (mut s, _) = FileLogStore::open(dir, with_faults(faults, 1 << 20)).unwrap();
    s.append(&entries(1, 11, 1, DATA)).unwrap();
    s.sync().unwrap();
    s.save_hard_state(&hs(1, 0)).unwrap();
    s
}
