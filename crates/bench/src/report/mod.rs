//! The results of a run, and the three files written from them: JSON (everything, for
//! tools), markdown (the table people read) and a PNG chart.

pub mod chart;
pub mod json;
pub mod markdown;

use std::path::{Path, PathBuf};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::drivers::Target;
use crate::workload::{DataShape, Workload};

/// One measured cell: one system, one workload, one client count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub system: Target,
    pub workload: Workload,
    pub clients: usize,
    /// Length of the measured window (warm-up excluded).
    pub seconds: f64,
    /// Operations completed inside the window.
    pub ops: u64,
    pub errors: u64,
    /// Reads that found no value.
    pub misses: u64,
    /// Operations per second over the window.
    pub throughput: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

/// Rounds to a thousandth so the figure survives a JSON round trip bit for bit and
/// nobody reads precision into the ninth digit of a latency.
fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Sample {
    #[allow(clippy::too_many_arguments)]
    pub fn from_histogram(
        system: Target,
        workload: Workload,
        clients: usize,
        window: Duration,
        hist: &Histogram<u64>,
        errors: u64,
        misses: u64,
        first_error: Option<String>,
    ) -> Sample {
        let secs = window.as_secs_f64();
        let us = |ns: u64| r3(ns as f64 / 1000.0);
        let empty = hist.is_empty();
        let q = |q: f64| {
            if empty {
                0.0
            } else {
                us(hist.value_at_quantile(q))
            }
        };
        Sample {
            system,
            workload,
            clients,
            seconds: r3(secs),
            ops: hist.len(),
            errors,
            misses,
            throughput: r3(hist.len() as f64 / secs.max(1e-9)),
            mean_us: if empty { 0.0 } else { r3(hist.mean() / 1000.0) },
            p50_us: q(0.50),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if empty { 0.0 } else { us(hist.max()) },
            first_error,
        }
    }
}

/// How a system was run, or why it was not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemInfo {
    pub system: Target,
    /// What the binary says of its version.
    pub version: String,
    /// How it was set up, in a sentence.
    pub setup: String,
    /// Set when the system was not measured, with the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The parameters every cell shared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub quick: bool,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub shape: DataShape,
    pub workloads: Vec<Workload>,
    pub clients: Vec<usize>,
}

/// A whole run: what was compared, how, on what, and every sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub kvbench_version: String,
    /// Start of the run, seconds since the Unix epoch (UTC).
    pub started_unix: u64,
    /// Wall-clock length of the whole run, setup included.
    pub wall_s: f64,
    pub cores: usize,
    /// One-minute load average before and after the run: how busy the machine was
    /// with things other than this benchmark (2 cores shared with other work).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_before: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_after: Option<f64>,
    pub params: Params,
    pub systems: Vec<SystemInfo>,
    pub samples: Vec<Sample>,
}

impl Report {
    pub fn sample(&self, system: Target, workload: Workload, clients: usize) -> Option<&Sample> {
        self.samples
            .iter()
            .find(|s| s.system == system && s.workload == workload && s.clients == clients)
    }

    /// Systems with at least one sample, in the fixed order raftkv, etcd, Redis.
    pub fn measured_systems(&self) -> Vec<Target> {
        [Target::Raftkv, Target::Etcd, Target::Redis]
            .into_iter()
            .filter(|t| self.samples.iter().any(|s| s.system == *t))
            .collect()
    }
}

/// The one-minute load average, from /proc/loadavg.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The file names inside a results directory.
pub const JSON_FILE: &str = "results.json";
pub const MARKDOWN_FILE: &str = "results.md";
pub const CHART_FILE: &str = "results.png";

/// Writes all three files into `dir` (created if needed) and returns their paths.
pub fn write_all(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let json_path = dir.join(JSON_FILE);
    json::write(report, &json_path)?;
    let md_path = dir.join(MARKDOWN_FILE);
    std::fs::write(&md_path, markdown::render(report))
        .map_err(|e| format!("{}: {e}", md_path.display()))?;
    let png_path = dir.join(CHART_FILE);
    chart::render(report, &png_path)?;
    Ok(vec![json_path, md_path, png_path])
}

/// `YYYY-MM-DD HH:MM:SS UTC` from Unix seconds (civil-from-days, no date crate needed).
pub fn utc_string(unix: u64) -> String {
    let (days, rem) = ((unix / 86_400) as i64, unix % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc() {
        assert_eq!(super::utc_string(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::utc_string(1_709_210_096), "2024-02-29 12:34:56 UTC");
    }
}
