//! Property tests of the on-disk decoders (WAL records and segments, hard state, snapshot
//! files): seeded random bytes and mutations of valid encodings (bit flips, truncations,
//! splices, length-field edits), each with its checksums recomputed half the time so the
//! code behind the checksum checks is reached too. No input may panic; what decodes must
//! re-encode to the same bytes or value. The coverage-guided version of these is in
//! `fuzz/` (same properties, AFL++).

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use mutate::{check, Format};
use raft::{Entry, EntryKind, HardState, Membership, SnapshotMeta};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use storage::fuzzing::{
    decode_hard_state_slot, encode_entry_record, encode_hard_state_slot, peek_entry_record,
    read_entry_record, valid_entry_at, HARD_STATE_SLOT_SIZE,
};
use storage::{FileLogStore, FileSnapshotStore, LogStore};

// ---- mutation ----

/// Mutations for the on-disk formats: their lengths and counts are little-endian
/// integers of 1, 2, 4 or 8 bytes.
struct LittleEndianFields;

impl Format for LittleEndianFields {
    fn extreme_field(&self, rng: &mut StdRng, v: &mut Vec<u8>) {
        let width = [1, 2, 4, 8][rng.gen_range(0..4)];
        let value: u64 = match rng.gen_range(0..6) {
            0 => 0,
            1 => 1,
            2 => u32::MAX as u64,
            3 => u64::MAX,
            4 => 1 << rng.gen_range(0..64),
            _ => rng.gen(),
        };
        let at = rng.gen_range(0..v.len());
        for (k, b) in value.to_le_bytes()[..width].iter().enumerate() {
            if let Some(slot) = v.get_mut(at + k) {
                *slot = *b;
            }
        }
    }
}

fn mutate(rng: &mut StdRng, valid: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    mutate::mutate(rng, valid, others, &LittleEndianFields)
}

// ---- checksum fix-ups (the writers' computations, over mutated bytes) ----

fn get_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn fix_records(buf: &mut [u8], mut at: usize) {
    while let Some(len) = get_u32(buf, at) {
        let end = at + 9 + len as usize;
        if end > buf.len() {
            return;
        }
        let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[at..at + 4]), &buf[at + 8..end]);
        put_u32(buf, at + 4, crc);
        at = end;
    }
}

fn fix_prefix_crc(buf: &mut [u8], body: usize) {
    if buf.len() >= body + 4 {
        let crc = crc32c::crc32c(&buf[..body]);
        put_u32(buf, body, crc);
    }
}

fn fix_snapshot(buf: &mut [u8]) {
    if let Some(m_len) = get_u32(buf, 28) {
        fix_prefix_crc(buf, 32 + m_len as usize);
        let start = 32 + m_len as usize + 4;
        if buf.len() >= start + 16 {
            let t = buf.len() - 16;
            put_u32(buf, t + 8, crc32c::crc32c(&buf[start..t]));
            put_u32(buf, t + 12, crc32c::crc32c(&buf[t..t + 12]));
        }
    }
}

// ---- helpers ----

fn entry(index: u64, term: u64, kind: EntryKind, data: &[u8]) -> Entry {
    Entry {
        term,
        index,
        kind,
        data: Bytes::copy_from_slice(data),
    }
}

fn sample_entries(first: u64) -> Vec<Entry> {
    vec![
        entry(first, 1, EntryKind::Noop, b""),
        entry(first + 1, 1, EntryKind::Normal, b"P\x01kv"),
        entry(first + 2, 2, EntryKind::ConfChange, b"\x01\x02"),
        entry(first + 3, 3, EntryKind::Normal, &[0xab; 40]),
    ]
}

/// A fresh directory, on tmpfs when there is one (these tests open hundreds of stores).
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

fn default_hard_state_file() -> Vec<u8> {
    let mut f = encode_hard_state_slot(&HardState::default(), 1);
    f.resize(2 * HARD_STATE_SLOT_SIZE, 0);
    f
}

/// Opens the log in `dir`; if it opens, every entry reads back in order.
fn open_and_read(dir: &Path) -> Option<FileLogStore> {
    let (store, report) = FileLogStore::open(dir, Default::default()).ok()?;
    let (first, last) = (store.first_index(), store.last_index());
    assert_eq!((report.first_index, report.last_index), (first, last));
    if last >= first {
        let entries = store
            .entries(first, last + 1, u64::MAX)
            .expect("reads back");
        assert_eq!(entries.len() as u64, last - first + 1);
        for (k, e) in entries.iter().enumerate() {
            assert_eq!(e.index, first + k as u64);
            assert_eq!(store.term(e.index).unwrap(), Some(e.term));
        }
    }
    Some(store)
}

// ---- WAL records ----

fn check_records(buf: &[u8]) {
    let mut at = 0;
    while at < buf.len() {
        let peeked = peek_entry_record(buf, at);
        match read_entry_record(buf, at) {
            Err(why) if !why.starts_with("malformed") => {
                // Framing or checksum: the recovery scan must not call it valid either.
                // (A checksum-valid record with a bad kind still counts as "something
                // valid follows": proof against a torn tail, which is the scan's job.)
                assert!(peeked.is_err());
                assert!(!valid_entry_at(buf, at, 0, u64::MAX));
                break;
            }
            Ok((e, len)) => {
                assert_eq!(peeked, Ok((e.index, e.term)));
                assert!(valid_entry_at(buf, at, e.index, e.index));
                let mut enc = Vec::new();
                encode_entry_record(&e, &mut enc);
                assert_eq!(&enc[..], &buf[at..at + len], "record does not round-trip");
                at += len;
            }
            Err(_) => {
                assert!(peeked.is_err());
                break;
            }
        }
    }
    for at in 0..buf.len().min(64) {
        let _ = valid_entry_at(buf, at, 1, 1 << 20);
    }
}

#[test]
fn wal_records_survive_random_and_mutated_input() {
    let mut valid = Vec::new();
    for first in [1, 1000, u64::MAX - 3] {
        let mut buf = Vec::new();
        for e in sample_entries(first) {
            encode_entry_record(&e, &mut buf);
        }
        valid.push(buf);
    }
    for v in &valid {
        check_records(v);
    }
    let mut rng = StdRng::seed_from_u64(0x5eed_0001);
    for _ in 0..20_000 {
        let base = &valid[rng.gen_range(0..valid.len())];
        let mut input = mutate(&mut rng, base, &valid);
        if rng.gen_bool(0.5) {
            fix_records(&mut input, 0);
        }
        check("wal record", &input, || check_records(&input));
    }
}

// ---- WAL segments and recovery ----

fn valid_segments() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for n in [0, 1, 4] {
        let dir = scratch();
        let (mut store, _) = FileLogStore::open(dir.path(), Default::default()).unwrap();
        if n > 0 {
            store.append(&sample_entries(1)[..n]).unwrap();
        }
        store.sync().unwrap();
        let path = store.segment_paths()[0].clone();
        drop(store);
        out.push(fs::read(path).unwrap());
    }
    out
}

fn check_segment(seg: &[u8]) {
    let first_index = seg
        .get(8..16)
        .map_or(1, |b| u64::from_le_bytes(b.try_into().unwrap()));
    let dir = scratch();
    fs::write(dir.path().join("hardstate"), default_hard_state_file()).unwrap();
    fs::write(dir.path().join(format!("{first_index:020}.seg")), seg).unwrap();
    let Some(mut store) = open_and_read(dir.path()) else {
        return;
    };
    let last = store.last_index();
    // Entry u64::MAX is refused by recovery (see the regression test below).
    let next = last + 1;
    if next == u64::MAX {
        return;
    }
    let term = store.last_term();
    store
        .append(&[entry(next, term, EntryKind::Normal, b"next")])
        .expect("append after recovery");
    store.sync().unwrap();
    drop(store);
    let again = open_and_read(dir.path()).expect("reopens after an append");
    assert_eq!(again.last_index(), next);
}

#[test]
fn wal_segment_recovery_survives_mutated_segments() {
    let valid = valid_segments();
    for v in &valid {
        check_segment(v);
    }
    let mut rng = StdRng::seed_from_u64(0x5eed_0002);
    for _ in 0..1500 {
        let base = &valid[rng.gen_range(0..valid.len())];
        let mut input = mutate(&mut rng, base, &valid);
        if rng.gen_bool(0.7) {
            fix_prefix_crc(&mut input, 28);
        }
        if rng.gen_bool(0.7) {
            fix_records(&mut input, 32);
        }
        check("wal segment", &input, || check_segment(&input));
    }
}

// ---- hard state ----

fn check_hard_state(file: &[u8]) {
    let slot =
        |i: usize| decode_hard_state_slot(file.get(i * HARD_STATE_SLOT_SIZE..).unwrap_or(&[]));
    let slots = [slot(0), slot(1)];
    for (seq, hs) in slots.iter().flatten() {
        let enc = encode_hard_state_slot(hs, *seq);
        assert_eq!(decode_hard_state_slot(&enc), Ok((*seq, *hs)));
    }
    let best = match (&slots[0], &slots[1]) {
        (Ok(a), Ok(b)) => Some(if b.0 > a.0 { b.1 } else { a.1 }),
        (Ok(a), Err(_)) => Some(a.1),
        (Err(_), Ok(b)) => Some(b.1),
        (Err(_), Err(_)) => None,
    };
    let dir = scratch();
    fs::write(dir.path().join("hardstate"), file).unwrap();
    match (best, FileLogStore::open(dir.path(), Default::default())) {
        (Some(hs), Ok((store, _))) => {
            assert_eq!(store.hard_state(), HardState { commit: 0, ..hs });
        }
        (None, Err(_)) => {}
        (Some(_), Err(e)) => panic!("a valid slot, but open failed: {e}"),
        (None, Ok(_)) => panic!("no valid slot, but open succeeded"),
    }
}

#[test]
fn hard_state_survives_mutated_files() {
    let mut valid = Vec::new();
    for (i, hs) in [
        HardState::default(),
        HardState {
            term: 5,
            vote: Some(2),
            commit: 9,
            known_commit: 0,
        },
        HardState {
            term: u64::MAX,
            vote: Some(u64::MAX),
            commit: u64::MAX,
            known_commit: 0,
        },
    ]
    .iter()
    .enumerate()
    {
        let mut f = encode_hard_state_slot(hs, 7);
        f.resize(HARD_STATE_SLOT_SIZE, 0);
        f.extend(encode_hard_state_slot(
            &HardState { term: 1, ..*hs },
            3 + i as u64 * 10,
        ));
        f.resize(2 * HARD_STATE_SLOT_SIZE, 0);
        valid.push(f);
    }
    let mut rng = StdRng::seed_from_u64(0x5eed_0003);
    for _ in 0..1000 {
        let base = &valid[rng.gen_range(0..valid.len())];
        let mut input = mutate(&mut rng, base, &valid);
        for at in [0, HARD_STATE_SLOT_SIZE] {
            if rng.gen_bool(0.6) {
                if let Some(slot) = input.get_mut(at..) {
                    fix_prefix_crc(slot, 40);
                }
            }
        }
        check("hard state", &input, || check_hard_state(&input));
    }
}

// ---- snapshot files ----

fn valid_snapshots() -> Vec<Vec<u8>> {
    let dir = scratch();
    let store = FileSnapshotStore::open(dir.path()).unwrap().with_retain(10);
    let mut out = Vec::new();
    for (index, term, membership, data) in [
        (5, 1, Membership::default(), &b""[..]),
        (
            10,
            2,
            Membership {
                voters: [1, 2, 3].into(),
                voters_outgoing: [4].into(),
                learners: [5].into(),
                metadata: Default::default(),
            },
            &b"RKVS\x01\x00\x00\x00"[..],
        ),
    ] {
        let meta = SnapshotMeta {
            index,
            term,
            membership,
        };
        let info = store.save(&meta, data).unwrap();
        out.push(fs::read(info.path).unwrap());
    }
    out
}

fn check_snapshot(file: &[u8]) {
    let le = |at: usize| {
        file.get(at..at + 8)
            .map_or(1, |b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    let (index, term) = (le(12), le(20));
    let dir = scratch();
    let path: PathBuf = dir.path().join(format!("snap-{index:020}-{term:020}.snap"));
    fs::write(&path, file).unwrap();
    let store = FileSnapshotStore::open(dir.path()).unwrap();
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    if let Ok(info) = &listed[0] {
        let reader = store.reader(index, term).expect("a listed snapshot opens");
        let mut chunked = Vec::new();
        loop {
            let chunk = reader.read_chunk(chunked.len() as u64, 5).unwrap();
            if chunk.is_empty() {
                break;
            }
            chunked.extend_from_slice(&chunk);
        }
        assert_eq!(chunked.len() as u64, info.data_len);
        let all = reader.read_all();
        assert_eq!(all.is_ok(), reader.verify().is_ok());
        if let Ok(all) = all {
            let dir2 = scratch();
            let saved = FileSnapshotStore::open(dir2.path())
                .unwrap()
                .save(&info.meta, &all)
                .unwrap();
            assert_eq!(
                fs::read(saved.path).unwrap(),
                file,
                "does not re-save equal"
            );
        }
    }
    let _ = store.load_latest(0);
}

#[test]
fn snapshot_files_survive_mutation() {
    let valid = valid_snapshots();
    for v in &valid {
        check_snapshot(v);
    }
    let mut rng = StdRng::seed_from_u64(0x5eed_0004);
    for _ in 0..1500 {
        let base = &valid[rng.gen_range(0..valid.len())];
        let mut input = mutate(&mut rng, base, &valid);
        if rng.gen_bool(0.7) {
            fix_snapshot(&mut input);
        }
        check("snapshot file", &input, || check_snapshot(&input));
    }
}

// ---- regressions ----

fn segment_header(first_index: u64, prev_term: u64) -> Vec<u8> {
    let mut h = b"RKVWAL01".to_vec();
    h.extend_from_slice(&first_index.to_le_bytes());
    h.extend_from_slice(&prev_term.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    fix_prefix_crc_push(&mut h);
    h
}

fn fix_prefix_crc_push(h: &mut Vec<u8>) {
    let crc = crc32c::crc32c(h);
    h.extend_from_slice(&crc.to_le_bytes());
}

/// A segment named for index `u64::MAX` (a valid name: 20 digits) with bytes after its
/// header: recovery computed the end of its scan for valid records past `u64::MAX` and
/// overflowed (a panic in debug builds), and a record for entry `u64::MAX` made the next
/// expected index overflow. An entry `u64::MAX` is now corruption (no entry could follow
/// it: every `index + 1` of the log would overflow); an empty segment there still opens,
/// and a torn tail after its header is still cut off.
#[test]
fn segment_reaching_index_u64_max_is_corruption_not_overflow() {
    let name = format!("{:020}.seg", u64::MAX);
    let mut one = Vec::new();
    encode_entry_record(&entry(u64::MAX, 1, EntryKind::Normal, b"x"), &mut one);
    let mut two = one.clone();
    encode_entry_record(&entry(0, 1, EntryKind::Normal, b"y"), &mut two);
    let garbage = vec![0x5a; 40];
    for (what, body, opens) in [
        ("the header alone", Vec::new(), true),
        // A torn tail, cut off as usual.
        ("garbage after the header", garbage.clone(), true),
        ("entry u64::MAX", one.clone(), false),
        ("a record after the last entry", two, false),
        (
            "garbage after the last entry",
            [one, garbage].concat(),
            false,
        ),
    ] {
        let dir = scratch();
        fs::write(dir.path().join("hardstate"), default_hard_state_file()).unwrap();
        let mut seg = segment_header(u64::MAX, 0);
        seg.extend_from_slice(&body);
        fs::write(dir.path().join(&name), &seg).unwrap();
        let opened = catch_unwind(AssertUnwindSafe(|| {
            FileLogStore::open(dir.path(), Default::default()).map(|(s, _)| s.last_index())
        }))
        .unwrap_or_else(|_| panic!("{what}: recovery panicked"));
        match opened {
            Ok(last_index) => {
                assert!(opens, "{what}: opened");
                assert_eq!(last_index, u64::MAX - 1, "{what}");
            }
            Err(e) => {
                assert!(!opens, "{what}: {e}");
                assert!(
                    matches!(e, storage::StorageError::Corruption { .. }),
                    "{what}: {e}"
                );
            }
        }
    }
}

/// A snapshot file whose (checksum-valid) trailer claims `u64::MAX` data bytes: the
/// reader added that to the header length and overflowed (a panic in debug builds). It is
/// now corruption, like any other length mismatch.
#[test]
fn snapshot_trailer_claiming_u64_max_bytes_is_corruption_not_overflow() {
    let mut file = valid_snapshots().remove(1);
    let t = file.len() - 16;
    file[t..t + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    let crc = crc32c::crc32c(&file[t..t + 12]);
    file[t + 12..].copy_from_slice(&crc.to_le_bytes());
    let dir = scratch();
    fs::write(
        dir.path().join(format!("snap-{:020}-{:020}.snap", 10, 2)),
        &file,
    )
    .unwrap();
    let store = FileSnapshotStore::open(dir.path()).unwrap();
    let listed = catch_unwind(AssertUnwindSafe(|| store.list().unwrap()))
        .expect("reading the trailer panicked");
    match &listed[..] {
        [Err(e)] => assert!(e.to_string().contains("trailer says"), "{e}"),
        other => panic!("expected one corrupt snapshot, got {other:?}"),
    }
}

/// A snapshot file (checksums valid) whose header says index `u64::MAX`: restarting from
/// it computed `index + 1`, the log's first index after it, and overflowed (a panic in
/// debug builds). Like a WAL entry `u64::MAX`, it is now corruption: set aside, and the
/// next older snapshot is used.
#[test]
fn snapshot_at_index_u64_max_is_corruption_not_overflow() {
    let dir = scratch();
    let store = FileSnapshotStore::open(dir.path()).unwrap();
    let meta = |index| SnapshotMeta {
        index,
        term: 1,
        membership: Membership::default(),
    };
    store.save(&meta(7), b"older").unwrap();
    store.save(&meta(u64::MAX), b"newest").unwrap();
    let loaded = catch_unwind(AssertUnwindSafe(|| store.load_latest(1)))
        .expect("load_latest panicked")
        .expect("falls back to the older snapshot");
    assert_eq!(loaded, Some((meta(7), b"older".to_vec())));
}
