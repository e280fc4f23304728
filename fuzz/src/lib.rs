//! The fuzz targets of raftkv's decoders: one function per target, shared by the AFL++
//! harnesses (`src/bin/<target>.rs`), `replay` (runs saved inputs without AFL) and
//! `gen_corpus` (writes the seed corpus).
//!
//! Each target feeds the bytes to the real decoder and panics — which the fuzzer reports
//! as a crash — only when the decoder itself panics or a property fails:
//! - no panic, whatever the input (overflow checks are on in the fuzz build);
//! - where an encoder exists, decode → encode → decode gives the same value;
//! - where a decoder has a cheaper twin (recovery's `peek` next to `decode`), both agree.
//!
//! Hangs and huge allocations are caught by AFL's time limit and by its memory limit
//! (`scripts/fuzz.sh` runs with `-m 512`, so a length prefix claiming GiBs that the
//! decoder believes shows up as a crash).
//!
//! Checksums: a mutated input almost never carries a valid CRC32C, which would stop the
//! fuzzer at the checksum check. The targets over checksummed formats therefore take a
//! first *flags* byte saying which checksums to recompute before decoding (the same
//! computation as the writer's, over the fuzzed bytes), so both the checksum check and
//! everything behind it are explored.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use raft::{Entry, EntryKind, HardState};
use storage::LogStore;

pub mod crc_fix;

// The seed replica is a binary crate: its codec and request parsing are compiled in here
// from their sources, unchanged.
#[path = "../../crates/seed/src/answers.rs"]
#[allow(dead_code)]
mod answers;
#[path = "../../crates/seed/src/ids.rs"]
#[allow(dead_code)]
mod ids;
#[path = "../../crates/seed/src/client.rs"]
#[allow(dead_code)]
pub mod seed_client;
#[path = "../../crates/seed/src/codec.rs"]
#[allow(dead_code)]
pub mod seed_codec;

/// A fuzz target: panics on a finding.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of the harness binaries and corpus directories).
pub const TARGETS: &[(&str, Target)] = &[
    ("resp", resp),
    ("peer_frame", peer_frame),
    ("wal_record", wal_record),
    ("wal_segment", wal_segment),
    ("hard_state", hard_state),
    ("snapshot_file", snapshot_file),
    ("kv_snapshot", kv_snapshot),
    ("kv_entry", kv_entry),
    ("seed_json", seed_json),
    ("config", config),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|&(_, f)| f)
}

// ---------------------------------------------------------------------------------------
// RESP (crates/server/src/resp/codec.rs)

/// The request size limit the server would use with a small config: small enough that
/// the fuzzer reaches the limit checks.
const RESP_MAX_REQUEST: usize = 64 << 10;

/// Client commands (`parse_command`, as a connection runs it: command after command
/// until the buffer is used up or an error closes it), then the same bytes as replies
/// (`parse_reply`, what the CLI reads).
pub fn resp(data: &[u8]) {
    use server::resp::codec::{encode_command, parse_command, parse_reply, ProtoError};

    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match parse_command(&mut buf, RESP_MAX_REQUEST) {
            Ok(Some(args)) => {
                assert!(buf.len() < before, "a parsed command consumed nothing");
                // Round trip: the arguments, sent as a multibulk command, parse back equal.
                let mut enc = BytesMut::new();
                encode_command(&args, &mut enc);
                let again = parse_command(&mut enc, usize::MAX >> 1);
                assert_eq!(again, Ok(Some(args)), "command does not round-trip");
                assert!(enc.is_empty(), "re-encoded command left bytes over");
            }
            Ok(None) => break,
            Err(ProtoError::Recoverable { skip, .. }) => {
                assert!(
                    skip > 0 && skip <= buf.len(),
                    "recoverable error skips {skip} of {} bytes",
                    buf.len()
                );
                let _ = buf.split_to(skip);
            }
            Err(ProtoError::Fatal(_)) => break,
        }
    }

    let mut buf = BytesMut::from(data);
    while let Ok(Some(v)) = parse_reply(&mut buf) {
        // Encoding normalises (line breaks in simple strings become spaces), so the
        // property is: the encoding of what we decoded decodes to a fixpoint.
        let mut enc = BytesMut::new();
        v.encode(&mut enc);
        let mut copy = enc.clone();
        let v2 = parse_reply(&mut copy)
            .expect("encoded reply parses")
            .expect("encoded reply is complete");
        assert!(copy.is_empty(), "encoded reply left bytes over");
        let mut enc2 = BytesMut::new();
        v2.encode(&mut enc2);
        assert_eq!(enc, enc2, "reply encoding is not a fixpoint");
    }
}

// ---------------------------------------------------------------------------------------
// Peer frames (crates/server/src/transport/codec.rs)

const MAX_FRAME: usize = 1 << 20;

/// A whole frame (`decode_frame`), and the same bytes as a frame body (`decode_body`,
/// what the inbound reader calls after the length prefix). Whatever decodes re-encodes
/// to a frame that decodes equal.
pub fn peer_frame(data: &[u8]) {
    use server::transport::codec::{check_len, decode_body, decode_frame, encode_frame};

    let round_trip = |frame: server::transport::codec::Frame| {
        let mut out = BytesMut::new();
        let n = encode_frame(&frame, usize::MAX >> 1, &mut out).expect("re-encodes");
        assert_eq!(n, out.len());
        let back = decode_frame(&out, usize::MAX >> 1).expect("re-encoded frame decodes");
        assert_eq!(back, frame, "frame does not round-trip");
    };
    if let Ok(frame) = decode_frame(data, MAX_FRAME) {
        round_trip(frame);
    }
    if let Ok(frame) = decode_body(Bytes::copy_from_slice(data)) {
        round_trip(frame);
    }
    if data.len() >= 4 {
        let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let ok = check_len(len, MAX_FRAME).is_ok();
        assert_eq!(ok, (2..=MAX_FRAME).contains(&len));
    }
}

// ---------------------------------------------------------------------------------------
// WAL records (crates/storage/src/record.rs)

/// flags bit 0: recompute the CRC of every record before decoding.
pub fn wal_record(data: &[u8]) {
    use storage::fuzzing::{
        encode_entry_record, peek_entry_record, read_entry_record, valid_entry_at,
    };

    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut buf = rest.to_vec();
    if flags & 1 != 0 {
        crc_fix::records(&mut buf, 0);
    }
    // Record after record, as a segment scan reads them.
    let mut at = 0;
    while at < buf.len() {
        let decoded = read_entry_record(&buf, at);
        let peeked = peek_entry_record(&buf, at);
        match &decoded {
            Err(why) if !why.starts_with("malformed") => {
                // Framing or checksum: the recovery scan must not call it valid either
                // (a checksum-valid record with a bad kind does count as valid there:
                // proof that the bytes before it are not a torn tail).
                assert!(peeked.is_err(), "peek accepts what decode refuses");
                assert!(!valid_entry_at(&buf, at, 0, u64::MAX));
                break;
            }
            Ok((e, len)) => {
                assert_eq!(peeked, Ok((e.index, e.term)), "peek disagrees with decode");
                assert!(valid_entry_at(&buf, at, e.index, e.index));
                // The encoding is canonical: the entry re-encodes to exactly its bytes.
                let mut enc = Vec::new();
                encode_entry_record(e, &mut enc);
                assert_eq!(&enc[..], &buf[at..at + len], "record does not round-trip");
                at += len;
            }
            Err(_) => {
                assert!(peeked.is_err(), "peek accepts what decode refuses");
                break;
            }
        }
    }
    // The scan recovery runs after a bad record, from every offset.
    for at in 0..buf.len().min(256) {
        let _ = valid_entry_at(&buf, at, 1, 1 << 20);
    }
}

// ---------------------------------------------------------------------------------------
// Files: a scratch directory per process, on tmpfs when there is one.

fn scratch_dir(name: &str) -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("raftkv-fuzz-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn valid_hard_state_file(hs: &HardState) -> Vec<u8> {
    use storage::fuzzing::{encode_hard_state_slot, HARD_STATE_SLOT_SIZE};
    let mut file = encode_hard_state_slot(hs, 1);
    file.resize(2 * HARD_STATE_SLOT_SIZE, 0);
    file
}

/// Opens the log in `dir` and checks what a recovered log promises: every entry in
/// `first..=last` reads back, with consecutive indexes and the terms `term()` gives.
fn open_and_read_log(dir: &Path) -> Option<(storage::FileLogStore, storage::RecoveryReport)> {
    let (store, report) = storage::FileLogStore::open(dir, Default::default()).ok()?;
    let (first, last) = (store.first_index(), store.last_index());
    assert_eq!((report.first_index, report.last_index), (first, last));
    assert!(
        store.hard_state().commit <= last,
        "commit not clamped to the log"
    );
    if last >= first {
        let entries = store
            .entries(first, last + 1, u64::MAX)
            .expect("a recovered log reads back");
        assert_eq!(entries.len() as u64, last - first + 1);
        for (k, e) in entries.iter().enumerate() {
            assert_eq!(e.index, first + k as u64);
            assert_eq!(store.term(e.index).expect("term"), Some(e.term));
        }
    }
    Some((store, report))
}

// ---------------------------------------------------------------------------------------
// WAL segments and recovery (crates/storage/src/segment.rs, file_store.rs)

/// The bytes become one segment file of a log directory (named after the first index its
/// header claims, so the name check passes), next to a valid hard state; then
/// `FileLogStore::open` recovers it. flags bit 0: fix the header CRC; bit 1: fix record
/// CRCs. A log that opens must read back whole, accept the next entry, and reopen to the
/// same content (recovery is idempotent: a torn tail, once cut, is gone).
pub fn wal_segment(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut seg = rest.to_vec();
    if flags & 1 != 0 {
        crc_fix::segment_header(&mut seg);
    }
    if flags & 2 != 0 {
        crc_fix::records(&mut seg, 32);
    }
    let first_index = seg
        .get(8..16)
        .map_or(1, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let dir = scratch_dir("wal");
    fs::write(
        dir.join("hardstate"),
        valid_hard_state_file(&HardState::default()),
    )
    .expect("write hardstate");
    fs::write(dir.join(format!("{first_index:020}.seg")), &seg).expect("write segment");

    let Some((mut store, report)) = open_and_read_log(&dir) else {
        return;
    };
    let last = store.last_index();
    if last + 1 == u64::MAX {
        // Recovery refuses an entry u64::MAX (nothing could follow it): don't write one.
        return;
    }
    let next = Entry {
        term: store.last_term(),
        index: last + 1,
        kind: EntryKind::Normal,
        data: Bytes::from_static(b"next"),
    };
    store.append(&[next]).expect("append after recovery");
    store.sync().expect("sync");
    drop(store);
    let (again, report2) = open_and_read_log(&dir).expect("reopens after an append");
    assert_eq!(again.last_index(), last + 1);
    assert_eq!(report2.first_index, report.first_index);
    assert!(report2.torn_tail.is_none(), "a torn tail survived recovery");
    drop(again);
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// Hard state (crates/storage/src/hard_state.rs)

/// The bytes are the hard state file. flags bit 0 / bit 1: fix slot 0's / slot 1's CRC.
/// Each slot decodes to a value that re-encodes and decodes equal; then the log opens
/// with the valid slot of the highest `seq` (or refuses if neither is valid).
pub fn hard_state(data: &[u8]) {
    use storage::fuzzing::{decode_hard_state_slot, encode_hard_state_slot, HARD_STATE_SLOT_SIZE};

    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut file = rest.to_vec();
    for slot in 0..2 {
        if flags & (1 << slot) != 0 {
            crc_fix::hard_state_slot(&mut file, slot * HARD_STATE_SLOT_SIZE);
        }
    }
    let slot =
        |i: usize| decode_hard_state_slot(file.get(i * HARD_STATE_SLOT_SIZE..).unwrap_or(&[]));
    let slots = [slot(0), slot(1)];
    for (seq, hs) in slots.iter().flatten() {
        let enc = encode_hard_state_slot(hs, *seq);
        assert_eq!(
            decode_hard_state_slot(&enc),
            Ok((*seq, *hs)),
            "slot does not round-trip"
        );
    }
    let best = match (&slots[0], &slots[1]) {
        (Ok(a), Ok(b)) => Some(if b.0 > a.0 { *b } else { *a }),
        (Ok(a), Err(_)) => Some(*a),
        (Err(_), Ok(b)) => Some(*b),
        (Err(_), Err(_)) => None,
    };

    let dir = scratch_dir("hs");
    fs::write(dir.join("hardstate"), &file).expect("write hardstate");
    let opened = storage::FileLogStore::open(&dir, Default::default());
    match (best, opened) {
        (Some((_, hs)), Ok((store, _))) => {
            // The log is empty, so commit is clamped to 0.
            let want = HardState { commit: 0, ..hs };
            assert_eq!(store.hard_state(), want, "open chose another slot");
        }
        (None, Err(_)) => {}
        (Some(_), Err(e)) => panic!("a valid slot, but open failed: {e}"),
        (None, Ok(_)) => panic!("no valid slot, but open succeeded"),
    }
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// Snapshot files (crates/storage/src/snapshot.rs)

/// The bytes become a snapshot file (named after the index and term its header claims).
/// flags bit 0: fix the header CRC; bit 1: fix the trailer (its CRC and, with bit 2, its
/// data CRC). The store lists it, reads it in chunks and whole, and a snapshot that reads
/// back whole re-saves to exactly the same file (the format is canonical).
pub fn snapshot_file(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut file = rest.to_vec();
    if flags & 1 != 0 {
        crc_fix::snapshot_header(&mut file);
    }
    if flags & 2 != 0 {
        crc_fix::snapshot_trailer(&mut file, flags & 4 != 0);
    }
    let le = |at: usize| {
        file.get(at..at + 8)
            .map_or(1, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    let (index, term) = (le(12), le(20));
    let dir = scratch_dir("snap");
    let name = format!("snap-{index:020}-{term:020}.snap");
    fs::write(dir.join(&name), &file).expect("write snapshot");

    let store = storage::FileSnapshotStore::open(&dir).expect("open snapshot dir");
    let listed = store.list().expect("list");
    assert_eq!(listed.len(), 1);
    if let Ok(info) = &listed[0] {
        let reader = store.reader(index, term).expect("a listed snapshot opens");
        assert_eq!(reader.info(), info);
        let mut chunked = Vec::new();
        loop {
            let chunk = reader.read_chunk(chunked.len() as u64, 7).expect("chunk");
            if chunk.is_empty() {
                break;
            }
            chunked.extend_from_slice(&chunk);
        }
        assert_eq!(chunked.len() as u64, info.data_len);
        assert!(reader
            .read_chunk(info.data_len.saturating_add(1), 10)
            .expect("past the end")
            .is_empty());
        let all = reader.read_all();
        assert_eq!(
            all.is_ok(),
            reader.verify().is_ok(),
            "read_all and verify disagree"
        );
        if let Ok(all) = all {
            assert_eq!(all, chunked);
            let dir2 = scratch_dir("snap2");
            let store2 = storage::FileSnapshotStore::open(&dir2).expect("open second dir");
            let saved = store2.save(&info.meta, &all).expect("save");
            let bytes = fs::read(&saved.path).expect("read saved");
            assert_eq!(bytes, file, "snapshot does not re-save to the same bytes");
            drop(store2);
            let _ = fs::remove_dir_all(&dir2);
        }
    }
    // What a restarting node does with it.
    let _ = store.load_latest(0);
    drop(store);
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// State-machine snapshots and log entries (crates/kv)

/// `KvStore::decode_snapshot`: what decodes re-encodes to a snapshot that decodes to the
/// same store and is a fixpoint. A format-2 input re-encodes no longer than itself (the
/// encoding is canonical; the decoder only tolerates over-long varints); a version-1
/// input is upgraded to format 2, which adds a kind byte and a version per key, so it may
/// grow.
pub fn kv_snapshot(data: &[u8]) {
    let Ok(store) = kv::KvStore::decode_snapshot(data) else {
        return;
    };
    let enc = store.encode_snapshot();
    // Byte 4, after the magic, is the format version; the current one is what
    // `encode_snapshot` writes there.
    if data.get(4) == enc.get(4) {
        assert!(
            enc.len() <= data.len(),
            "re-encoding is longer than the input"
        );
    }
    let again = kv::KvStore::decode_snapshot(&enc).expect("re-encoded snapshot decodes");
    assert_eq!(
        again.encode_snapshot(),
        enc,
        "snapshot encoding is not a fixpoint"
    );
    assert_eq!(again.len(), store.len());
    assert_eq!(again.size_bytes(), store.size_bytes());
    // A restored store goes on applying writes, session writes included, and still
    // encodes to a valid snapshot.
    let mut store = store;
    let cmd = kv::Command::Delete {
        key: Bytes::from_static(b"k"),
    };
    for client in [0, 1, u64::MAX] {
        let tag = kv::SessionTag {
            client,
            seq: 1,
            first_outstanding: 1,
        };
        store
            .apply_entry(&kv::encode_session_write(tag, &cmd))
            .expect("a valid entry applies");
    }
    kv::KvStore::decode_snapshot(&store.encode_snapshot()).expect("still encodes validly");
}

/// `session::decode_entry` (what every replica runs on each committed entry) and
/// `Command::decode`: what decodes re-encodes to bytes that decode equal.
pub fn kv_entry(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok((tag, cmd)) = kv::session::decode_entry(&bytes) {
        let enc = match tag {
            Some(tag) => kv::encode_session_write(tag, &cmd),
            None => cmd.encode(),
        };
        assert_eq!(
            kv::session::decode_entry(&enc),
            Ok((tag, cmd)),
            "entry does not round-trip"
        );
    }
    if let Ok(cmd) = kv::Command::decode(&bytes) {
        assert_eq!(kv::Command::decode(&cmd.encode()), Ok(cmd.clone()));
        // And the state machine applies it without panicking.
        let mut store = kv::KvStore::new();
        let _ = store.apply(cmd);
    }
    let mut store = kv::KvStore::new();
    let _ = store.apply_entry(&bytes);
}

// ---------------------------------------------------------------------------------------
// Seed JSON datagrams (crates/seed/src/codec.rs, client.rs)

/// A datagram as the seed replica's `try_handle` takes it apart: JSON object, `type`,
/// `src`; a client `get`/`put` goes to `parse_request`, anything else from a replica ID to
/// `codec::decode`. A decoded message re-encodes to a datagram that decodes equal.
pub fn seed_json(data: &[u8]) {
    use serde_json::Value;

    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Some(o) = v.as_object() else {
        return;
    };
    let (Some(ty), Some(src)) = (
        o.get("type").and_then(Value::as_str),
        o.get("src").and_then(Value::as_str),
    ) else {
        return;
    };
    if ty == "get" || ty == "put" {
        if let Ok((_, driver::Request::Put { key, value })) = seed_client::parse_request(o, ty) {
            let _ = seed_codec::put_fits_in_datagram(&key, &value);
        }
        return;
    }
    let Some(from) = ids::parse_id(src) else {
        return;
    };
    let me = 0x0001;
    let Ok(msg) = seed_codec::decode(o, ty, from, me) else {
        return;
    };
    let raw = seed_codec::encode(&msg, None);
    let v2: Value = serde_json::from_slice(&raw).expect("encoded datagram is JSON");
    let o2 = v2.as_object().expect("an object");
    let ty2 = o2["type"].as_str().expect("type");
    let back = seed_codec::decode(o2, ty2, from, me).expect("re-encoded message decodes");
    assert_eq!(back, msg, "seed message does not round-trip");
    for part in seed_codec::split_append(msg) {
        let _ = seed_codec::encode(&part, None);
    }
}

// ---------------------------------------------------------------------------------------
// Config (crates/server/src/config.rs)

/// The TOML config file (`parse_str`, then `Config::resolve` with no flags), and the
/// same text as a `--peers` list.
pub fn config(data: &[u8]) {
    use server::config::{parse_peer_list, parse_str, Config, Overrides};

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = parse_str(text) {
        if let Ok(cfg) = Config::resolve(file, &Overrides::default()) {
            assert!(cfg.id > 0);
            assert!(!cfg.peers.contains_key(&cfg.id));
            let _ = cfg.max_peer_frame_bytes();
            let _ = cfg.voters();
        }
    }
    let _ = parse_peer_list(text);
}

#[cfg(test)]
mod tests {
    /// A version-1 snapshot (strings only) is upgraded when re-encoded, and grows: the
    /// target must accept that (it asserted "not longer" for every input once).
    #[test]
    fn a_version_1_snapshot_may_grow_when_upgraded() {
        let mut v1 = b"RKVS\x01".to_vec();
        v1.extend_from_slice(&[1, 1, b'k', 1, b'v']); // one entry: "k" = "v"
        v1.extend_from_slice(&[0, 0]); // session clock, no sessions
        let store = kv::KvStore::decode_snapshot(&v1).expect("a valid version-1 snapshot");
        assert!(store.encode_snapshot().len() > v1.len(), "the upgrade grows");
        super::kv_snapshot(&v1);
    }
}
