//! `--trace FILE`: every datagram as a JSON line — `t` (seconds since the
//! replicas were launched), `dir` (`in`: a replica sent it to the harness;
//! `out`: the harness delivered it, or decided not to, to a replica),
//! `from`, `to`, `dropped` (with `why` when true) and `raw`.

use serde_json::json;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

pub struct Trace {
    out: BufWriter<File>,
}

impl Trace {
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Trace {
            out: BufWriter::new(File::create(path)?),
        })
    }

    /// Writes one record; a write error ends tracing silently rather than
    /// disturbing the run.
    pub fn record(
        &mut self,
        t: f64,
        dir: &str,
        from: &str,
        to: &str,
        why_dropped: Option<&str>,
        raw: &[u8],
    ) {
        let mut rec = json!({
            "t": (t * 1e6).round() / 1e6,
            "dir": dir,
            "from": from,
            "to": to,
            "dropped": why_dropped.is_some(),
            "raw": String::from_utf8_lossy(raw),
        });
        if let Some(why) = why_dropped {
            rec["why"] = json!(why);
        }
        let _ = writeln!(self.out, "{rec}");
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.out.flush()
    }
}
