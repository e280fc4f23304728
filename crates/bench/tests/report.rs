//! The report writer on recorded samples: no servers needed.
//!
//! `data/quick-etcd-redis.json` is the results.json of a real `kvbench compare --quick`
//! run on the development machine (raftkv not yet built then); the three-system report
//! is built here with round figures so every ratio in the table can be checked by hand.

use std::path::Path;

use bench::drivers::Target;
use bench::report::{self, json, markdown, Report, Sample, SystemInfo};
use bench::workload::Workload;

fn recorded() -> Report {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/quick-etcd-redis.json");
    json::read(&path).expect("the recorded run parses")
}

fn sample(system: Target, workload: Workload, clients: usize, tput: f64, p99_ms: f64) -> Sample {
    Sample {
        system,
        workload,
        clients,
        seconds: 3.0,
        ops: (tput * 3.0) as u64,
        errors: 0,
        misses: 0,
        throughput: tput,
        mean_us: p99_ms * 400.0,
        p50_us: p99_ms * 350.0,
        p99_us: p99_ms * 1000.0,
        p999_us: p99_ms * 1500.0,
        max_us: p99_ms * 2000.0,
        first_error: None,
    }
}

/// The recorded run plus raftkv samples with chosen figures.
fn three_systems() -> Report {
    let mut r = recorded();
    r.systems.retain(|s| s.system != Target::Raftkv);
    r.systems.insert(
        0,
        SystemInfo {
            system: Target::Raftkv,
            version: "raftkv 0.1.0".into(),
            setup: "3 nodes on loopback".into(),
            skipped: None,
        },
    );
    // Replace etcd and Redis too, with round numbers, so the expected ratios are exact.
    r.samples.clear();
    for w in Workload::ALL {
        for (c, k) in [(1usize, 1.0f64), (64, 10.0)] {
            r.samples
                .push(sample(Target::Raftkv, w, c, 12_000.0 * k, 2.0 * k));
            r.samples
                .push(sample(Target::Etcd, w, c, 6_000.0 * k, 8.0 * k));
            r.samples
                .push(sample(Target::Redis, w, c, 16_000.0 * k, 1.0 * k));
        }
    }
    r
}

/// The cells of the row for `clients` in the section headed `heading`.
fn row(md: &str, heading: &str, clients: usize) -> Vec<String> {
    let section = md
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("no section {heading:?} in:\n{md}"));
    let line = section
        .lines()
        .find(|l| l.starts_with(&format!("| {clients} |")))
        .unwrap_or_else(|| panic!("no row for {clients} clients in {heading:?}"));
    line.trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

#[test]
fn json_round_trips_exactly() {
    for r in [recorded(), three_systems()] {
        let text = json::to_string(&r);
        assert_eq!(json::from_str(&text).unwrap(), r);
    }
    // The recorded file is what the writer produces for it, byte for byte.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/quick-etcd-redis.json");
    let on_disk = std::fs::read_to_string(path).unwrap();
    assert_eq!(json::to_string(&recorded()) + "\n", on_disk);
}

#[test]
fn markdown_table_has_the_ratios() {
    let md = markdown::render(&three_systems());
    // clients | raftkv | etcd | Redis ops/s | raftkv/etcd | raftkv/Redis | 3 × p99 | 2 ratios
    let r = row(&md, "write-only", 64);
    assert_eq!(r[0], "64");
    assert_eq!(&r[1..4], ["120,000", "60,000", "160,000"]);
    assert_eq!(r[4], "2.00×", "raftkv/etcd throughput");
    assert_eq!(r[5], "0.75×", "raftkv/Redis throughput");
    assert_eq!(&r[6..9], ["20.0", "80.0", "10.0"]);
    assert_eq!(r[9], "0.25×", "raftkv/etcd p99");
    assert_eq!(r[10], "2.00×", "raftkv/Redis p99");

    let r = row(&md, "read-only", 1);
    assert_eq!(r[4], "2.00×");
    assert_eq!(r[6], "2.00");
}

#[test]
fn markdown_marks_a_missing_system() {
    let rec = recorded();
    assert!(rec.sample(Target::Raftkv, Workload::Write, 1).is_none());
    let md = markdown::render(&rec);
    assert!(md.contains("**not measured**"), "{md}");
    let r = row(&md, "write-only", 64);
    assert_eq!(r[1], "—");
    assert_eq!(r[4], "—");
    assert_eq!(r[5], "—");
    // etcd and Redis figures come through as recorded.
    let etcd = rec.sample(Target::Etcd, Workload::Write, 64).unwrap();
    assert_eq!(r[2], markdown::ops(etcd.throughput));
}

#[test]
fn writes_all_three_files_and_a_real_png() {
    for r in [recorded(), three_systems()] {
        let dir = tempfile::tempdir().unwrap();
        let files = report::write_all(&r, dir.path()).unwrap();
        assert_eq!(files.len(), 3);
        let back = json::read(&dir.path().join(report::JSON_FILE)).unwrap();
        assert_eq!(back, r);
        let md = std::fs::read_to_string(dir.path().join(report::MARKDOWN_FILE)).unwrap();
        assert!(md.starts_with("# kvbench results"));
        let png = std::fs::read(dir.path().join(report::CHART_FILE)).unwrap();
        assert!(
            png.len() > 10_000,
            "suspiciously small PNG: {} bytes",
            png.len()
        );
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height as rendered.
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 1500);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 900);
    }
}
