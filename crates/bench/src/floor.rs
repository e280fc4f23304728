//! `kvbench floor`: the hardware floor under a durable, replicated write on this machine —
//! one `fdatasync` of a small append, and one loopback TCP round trip — measured the way
//! a commit pays them, so raftkv's single-client commit latency can be set against them
//! (the goal: within 2× of one fsync plus one round trip).

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use hdrhistogram::Histogram;

/// Bytes per append: about one 16-byte key, 256-byte value write with framing.
const RECORD: usize = 320;

pub struct Floor {
    pub fsync: Histogram<u64>,
    pub rtt: Histogram<u64>,
}

/// `samples` appends each followed by `fdatasync`, in a temporary file under `dir`; and
/// `samples` ping-pongs of `RECORD` bytes over a loopback TCP connection (Nagle off, as
/// raftkv's peer and client sockets).
pub fn measure(dir: &Path, samples: usize) -> Result<Floor, String> {
    let mut fsync =
        Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static bounds are valid");
    let file =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let f = OpenOptions::new()
        .write(true)
        .open(file.path())
        .map_err(|e| e.to_string())?;
    let record = [0x5au8; RECORD];
    for i in 0..samples {
        let t = Instant::now();
        f.write_all_at(&record, (i * RECORD) as u64)
            .map_err(|e| e.to_string())?;
        f.sync_data().map_err(|e| e.to_string())?;
        fsync.saturating_record(t.elapsed().as_nanos() as u64);
    }

    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; RECORD];
        loop {
            if s.read_exact(&mut buf).is_err() {
                return Ok(());
            }
            s.write_all(&buf)?;
        }
    });
    let mut c = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    c.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut rtt =
        Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static bounds are valid");
    let mut buf = [0u8; RECORD];
    for _ in 0..samples {
        let t = Instant::now();
        c.write_all(&record).map_err(|e| e.to_string())?;
        c.read_exact(&mut buf).map_err(|e| e.to_string())?;
        rtt.saturating_record(t.elapsed().as_nanos() as u64);
    }
    drop(c);
    let _ = echo.join();
    Ok(Floor { fsync, rtt })
}

/// The report `kvbench floor` prints.
pub fn describe(f: &Floor) -> String {
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e3;
    let floor = us(&f.fsync, 0.5) + us(&f.rtt, 0.5);
    format!(
        "fdatasync of a {RECORD}-byte append: p50 {:.0} µs, p99 {:.0} µs ({} samples)\n\
         loopback TCP round trip ({RECORD} bytes): p50 {:.0} µs, p99 {:.0} µs\n\
         floor (fsync p50 + round trip p50): {floor:.0} µs; goal for raftkv's single-client \
         commit p50: within 2× = {:.0} µs",
        us(&f.fsync, 0.5),
        us(&f.fsync, 0.99),
        f.fsync.len(),
        us(&f.rtt, 0.5),
        us(&f.rtt, 0.99),
        2.0 * floor
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_both_and_describes_them() {
        let dir = tempfile::tempdir().unwrap();
        let f = measure(dir.path(), 20).unwrap();
        assert_eq!(f.fsync.len(), 20);
        assert_eq!(f.rtt.len(), 20);
        assert!(f.rtt.min() > 0);
        let text = describe(&f);
        assert!(
            text.contains("fdatasync") && text.contains("within 2×"),
            "{text}"
        );
    }
}
