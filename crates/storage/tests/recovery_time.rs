//! Recovery-time figure for the README. Ignored by default; run with
//! `cargo test -p storage --release -- --ignored --nocapture recovery_time`.

mod common;

use std::time::Instant;

use storage::{FileLogOptions, FileLogStore, LogStore};

#[test]
#[ignore = "a measurement, not a check: run explicitly in release mode"]
fn recovery_time() {
    const N: u64 = 100_000;
    const DATA: usize = 256;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");

    let t = Instant::now();
    {
        let (mut s, _) = FileLogStore::open(&dir, FileLogOptions::default()).unwrap();
        for lo in (1..=N).step_by(1000) {
            s.append(&common::entries(lo, lo + 1000, 1, DATA)).unwrap();
            s.sync().unwrap();
        }
    }
    let write = t.elapsed();

    // Cold-ish: the files were just written, so they sit in the page cache; this measures
    // scanning and checksumming, not the disk.
    let t = Instant::now();
    let (s, report) = FileLogStore::open(&dir, FileLogOptions::default()).unwrap();
    let recover = t.elapsed();
    assert_eq!(s.last_index(), N);

    let t = Instant::now();
    let all = s.entries(1, N + 1, u64::MAX).unwrap();
    let read = t.elapsed();
    assert_eq!(all.len() as u64, N);

    let mib = report.bytes as f64 / (1 << 20) as f64;
    eprintln!(
        "recovery_time: {N} entries x {DATA} B = {mib:.1} MiB in {} segment(s): \
         open+recover {:.1} ms ({:.0} MiB/s), read all back {:.1} ms, \
         write with a sync per 1000 entries {:.1} ms",
        report.segments,
        recover.as_secs_f64() * 1e3,
        mib / recover.as_secs_f64(),
        read.as_secs_f64() * 1e3,
        write.as_secs_f64() * 1e3,
    );
}
