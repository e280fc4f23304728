//! `kvsim harness all`: the 17 scenarios in the reference order (simple,
//! unreliable, crash, partition, advanced; numeric order within), the
//! scenario directory lookup, and the per-scenario descriptions.

use super::config::{EventKind, Scenario};
use super::report::ScenarioReport;
use super::run::{run_scenario, HarnessOptions, INTERRUPTED};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Scenario groups in the order `all` runs them, with their headings. The
/// first five are the reference's; `harder` is ours (crates/sim/scenarios:
/// `kvsim harness --config-dir crates/sim/scenarios all`).
pub const GROUPS: [(&str, &str); 6] = [
    ("simple", "Basic tests:"),
    ("unreliable", "Unreliable network tests:"),
    ("crash", "Crash failure tests:"),
    ("partition", "Partition tests:"),
    ("advanced", "Advanced tests:"),
    ("harder", "Harder tests (ours):"),
];

/// Environment variable naming the scenario directory.
pub const CONFIG_DIR_ENV: &str = "KVSIM_CONFIG_DIR";

/// One scenario of the suite.
#[derive(Debug, Clone)]
pub struct SuiteEntry {
    pub group: usize,
    pub path: PathBuf,
    pub name: String,
}

/// Finds the scenario directory: the flag, then `$KVSIM_CONFIG_DIR`, then
/// `shared/sim-configs` in the current directory or any ancestor (the repo
/// lives beside `shared/`, so from anywhere inside it the walk finds
/// `../shared/sim-configs` relative to the repo root).
pub fn resolve_config_dir(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(f) = flag {
        return Some(f.to_path_buf());
    }
    if let Some(e) = std::env::var_os(CONFIG_DIR_ENV).filter(|e| !e.is_empty()) {
        return Some(PathBuf::from(e));
    }
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .map(|a| a.join("shared").join("sim-configs"))
        .find(|p| p.is_dir())
}

/// `CONFIG` may be a path, or a scenario name (`simple-1` or `simple-1.json`)
/// looked up in the scenario directory.
pub fn resolve_config(arg: &str, dir: Option<&Path>) -> Result<PathBuf, String> {
    let p = Path::new(arg);
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    let Some(dir) = dir else {
        return Err(format!(
            "{arg}: no such file, and no scenario directory (use --config-dir or ${CONFIG_DIR_ENV})"
        ));
    };
    let file = if arg.ends_with(".json") {
        arg.to_string()
    } else {
        format!("{arg}.json")
    };
    let cand = dir.join(file);
    if cand.is_file() {
        Ok(cand)
    } else {
        Err(format!(
            "{arg}: no such file or scenario in {}",
            dir.display()
        ))
    }
}

/// The suite found in `dir`: files named `<group>-<n>.json`, in order.
pub fn list_suite(dir: &Path) -> std::io::Result<Vec<SuiteEntry>> {
    let mut found: Vec<(usize, u64, SuiteEntry)> = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        let Some(stem) = path
            .extension()
            .filter(|x| *x == "json")
            .and(path.file_stem())
            .and_then(|s| s.to_str())
        else {
            continue;
        };
        let Some((g, n)) = stem.rsplit_once('-') else {
            continue;
        };
        let (Some(group), Ok(n)) = (
            GROUPS.iter().position(|(name, _)| *name == g),
            n.parse::<u64>(),
        ) else {
            continue;
        };
        found.push((
            group,
            n,
            SuiteEntry {
                group,
                name: stem.to_string(),
                path: path.clone(),
            },
        ));
    }
    found.sort_by_key(|(g, n, _)| (*g, *n));
    Ok(found.into_iter().map(|(_, _, e)| e).collect())
}

fn percent(f: f64) -> String {
    let p = (f * 1000.0).round() / 10.0;
    if p.fract() == 0.0 {
        format!("{}", p as i64)
    } else {
        format!("{p}")
    }
}

fn count_phrase(n: usize, one: &str) -> String {
    format!("{n} {one}{}", if n == 1 { "" } else { "s" })
}

/// A one-line description derived from the scenario, e.g.
/// `10% drops, 2 hard partitions and 1 leader failure, 20% read`.
pub fn describe(sc: &Scenario) -> String {
    let drops = if sc.drops == 0.0 {
        "No drops".to_string()
    } else {
        format!("{}% drops", percent(sc.drops))
    };
    let count = |f: fn(&EventKind) -> bool| sc.events.iter().filter(|e| f(&e.kind)).count();
    let kinds: [(usize, &str); 5] = [
        (
            count(|k| matches!(k, EventKind::KillNonLeader)),
            "replica failure",
        ),
        (
            count(|k| matches!(k, EventKind::KillLeader)),
            "leader failure",
        ),
        (
            count(|k| matches!(k, EventKind::PartEasy)),
            "easy partition",
        ),
        (
            count(|k| matches!(k, EventKind::PartHard)),
            "hard partition",
        ),
        (count(|k| matches!(k, EventKind::Pause(_))), "pause"),
    ];
    let parts: Vec<String> = kinds
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| count_phrase(*n, what))
        .collect();
    let faults = if parts.is_empty() {
        "no failures".to_string()
    } else {
        parts.join(" and ")
    };
    format!("{drops}, {faults}, {}% read", percent(sc.mix))
}

/// What one suite entry came to.
pub type Outcome = Result<ScenarioReport, String>;

/// `trace.jsonl` → `trace.simple-1.jsonl`, one trace per scenario.
pub fn per_scenario_path(p: &Path, name: &str) -> PathBuf {
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = match p.extension() {
        Some(ext) => format!("{stem}.{name}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{name}"),
    };
    p.with_file_name(file)
}

fn run_entry(i: usize, e: &SuiteEntry, base: &HarnessOptions) -> (Option<Scenario>, Outcome) {
    let sc = match Scenario::from_file(&e.path) {
        Ok(s) => s,
        Err(err) => return (None, Err(err.to_string())),
    };
    let mut opts = base.clone();
    // Distinct but reproducible seeds per scenario.
    opts.seed = base.seed.map(|s| s.wrapping_add(i as u64));
    opts.trace = base.trace.as_ref().map(|t| per_scenario_path(t, &e.name));
    let out = run_scenario(&sc, &opts).map_err(|e| e.to_string());
    (Some(sc), out)
}

fn interruptible_sleep(d: Duration) {
    let end = Instant::now() + d;
    while !INTERRUPTED.load(Ordering::Relaxed) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// Runs the suite, `jobs` scenarios at a time, and hands each result to
/// `emit` in suite order as soon as it and all earlier ones are done. With
/// one job, waits `between` between scenarios (the reference waited 10 s).
pub fn run_suite(
    entries: &[SuiteEntry],
    opts: &HarnessOptions,
    jobs: usize,
    between: Duration,
    mut emit: impl FnMut(usize, &SuiteEntry, Option<&Scenario>, &Outcome),
) {
    if jobs <= 1 {
        for (i, e) in entries.iter().enumerate() {
            if INTERRUPTED.load(Ordering::Relaxed) {
                break;
            }
            if i > 0 {
                interruptible_sleep(between);
            }
            let (sc, out) = run_entry(i, e, opts);
            emit(i, e, sc.as_ref(), &out);
        }
        return;
    }
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        for _ in 0..jobs.min(entries.len()) {
            let tx = tx.clone();
            let next = &next;
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= entries.len() || INTERRUPTED.load(Ordering::Relaxed) {
                    break;
                }
                let r = run_entry(i, &entries[i], opts);
                if tx.send((i, r)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut done: Vec<Option<(Option<Scenario>, Outcome)>> = vec![None; entries.len()];
        let mut shown = 0;
        for (i, r) in rx {
            done[i] = Some(r);
            while let Some(Some((sc, out))) = done.get(shown) {
                emit(shown, &entries[shown], sc.as_ref(), out);
                shown += 1;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared_dir() -> Option<PathBuf> {
        let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/sim-configs");
        d.is_dir().then_some(d)
    }

    #[test]
    fn suite_order_is_reference_order() {
        let Some(dir) = shared_dir() else { return };
        let names: Vec<String> = list_suite(&dir)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(
            names,
            [
                "simple-1",
                "simple-2",
                "unreliable-1",
                "unreliable-2",
                "unreliable-3",
                "crash-1",
                "crash-2",
                "crash-3",
                "crash-4",
                "partition-1",
                "partition-2",
                "partition-3",
                "partition-4",
                "advanced-1",
                "advanced-2",
                "advanced-3",
                "advanced-4"
            ]
        );
    }

    #[test]
    fn numeric_order_within_a_group() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "crash-10", "harder-1", "crash-2", "simple-1", "other-1", "crash-x",
        ] {
            std::fs::write(dir.path().join(format!("{n}.json")), "{}").unwrap();
        }
        let names: Vec<String> = list_suite(dir.path())
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["simple-1", "crash-2", "crash-10", "harder-1"]);
    }

    #[test]
    fn descriptions() {
        let Some(dir) = shared_dir() else { return };
        let d = |n: &str| describe(&Scenario::from_file(&dir.join(format!("{n}.json"))).unwrap());
        assert_eq!(d("simple-1"), "No drops, no failures, 80% read");
        assert_eq!(d("unreliable-1"), "5% drops, no failures, 20% read");
        assert_eq!(d("crash-2"), "No drops, 2 replica failures, 20% read");
        assert_eq!(d("crash-3"), "No drops, 1 leader failure, 20% read");
        assert_eq!(d("partition-2"), "No drops, 2 easy partitions, 20% read");
        assert_eq!(
            d("advanced-1"),
            "10% drops, 1 leader failure and 2 hard partitions, 20% read"
        );
    }

    #[test]
    fn config_lookup() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("simple-1.json"), "{}").unwrap();
        let want = dir.path().join("simple-1.json");
        assert_eq!(resolve_config("simple-1", Some(dir.path())).unwrap(), want);
        assert_eq!(
            resolve_config("simple-1.json", Some(dir.path())).unwrap(),
            want
        );
        assert_eq!(resolve_config(want.to_str().unwrap(), None).unwrap(), want);
        assert!(resolve_config("simple-9", Some(dir.path())).is_err());
        assert_eq!(
            resolve_config_dir(Some(dir.path())).as_deref(),
            Some(dir.path())
        );
        assert_eq!(
            per_scenario_path(Path::new("/tmp/t.jsonl"), "crash-1"),
            Path::new("/tmp/t.crash-1.jsonl")
        );
    }
}
