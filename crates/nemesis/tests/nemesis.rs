//! End-to-end runs of `raftkv-nemesis` against the release `raftkv`.
//!
//! They need root (network namespaces, nftables), `nft`, and `target/release/raftkv`
//! (scripts/test.sh builds it first). Without them a test says so and returns, except
//! under CI (`CI` set), where a missing prerequisite is a failure: CI runs as root.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// One cluster at a time: the machine has two cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn raftkv() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("release/raftkv");
    // SAFETY: geteuid has no preconditions.
    let root_user = unsafe { libc::geteuid() } == 0;
    let nft = Command::new("sh")
        .args(["-c", "command -v nft"])
        .output()
        .is_ok_and(|o| o.status.success());
    let missing: Vec<&str> = [
        (!root_user).then_some("root"),
        (!nft).then_some("nft (apt-get install nftables)"),
        (!bin.exists()).then_some("target/release/raftkv (cargo build --release -p server)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return Some(bin);
    }
    if std::env::var_os("CI").is_some() {
        panic!("nemesis test prerequisites missing under CI: {missing:?}");
    }
    eprintln!("SKIPPED: nemesis tests need {missing:?}");
    None
}

fn nemesis(args: &[&str]) -> (i32, serde_json::Value, String) {
    let bin = raftkv().expect("checked");
    let json = std::env::temp_dir().join(format!(
        "nemesis-test-{}-{}.json",
        std::process::id(),
        args.join("_").replace(['/', ' ', ','], "")
    ));
    // A failing run keeps its data dir: put it where this test removes it.
    let data = json.with_extension("data");
    let out = Command::new(env!("CARGO_BIN_EXE_raftkv-nemesis"))
        .arg("--data")
        .arg(&data)
        .arg("--raftkv")
        .arg(&bin)
        .arg("--json")
        .arg(&json)
        .args(args)
        .output()
        .expect("run raftkv-nemesis");
    let stdout =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let report = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    let _ = std::fs::remove_file(&json);
    let _ = std::fs::remove_dir_all(&data);
    (out.status.code().unwrap_or(-1), report, stdout)
}

/// With `read_mode = stale` a follower (or a deposed leader) answers from its own state
/// machine: under partitions the nemesis must catch a stale read.
#[test]
fn stale_reads_are_caught_as_a_linearizability_violation() {
    if raftkv().is_none() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (code, report, out) = nemesis(&[
        "--read-mode",
        "stale",
        "--duration",
        "25",
        "--nodes",
        "3",
        "--seed",
        "7",
        "--faults",
        "isolate-leader,partition,one-way",
        "--recovery-limit-ms",
        "0",
    ]);
    println!("{out}");
    assert_eq!(code, 1, "a stale-read run must FAIL");
    assert_eq!(
        report["linearizability"], "NOT linearizable",
        "the failure must be a linearizability violation"
    );
    assert!(report["violation"].as_str().is_some_and(|v| !v.is_empty()));
    assert!(out.contains("VERDICT: FAIL"));
}

/// Without faults the whole pipeline (namespaces, clients, convergence, final reads,
/// lincheck) must come out clean.
#[test]
fn a_run_without_faults_passes() {
    if raftkv().is_none() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (code, report, out) = nemesis(&["--duration", "12", "--nodes", "3", "--faults", "none"]);
    println!("{out}");
    assert_eq!(code, 0, "a fault-free run must PASS");
    assert_eq!(report["pass"], true);
    assert_eq!(report["linearizability"], "linearizable");
    let ok = report["ops"]["all"]["ok"].as_u64().unwrap_or(0);
    assert!(ok > 500, "the clients did work: {ok} ops ok");
    // Nothing of the run is left behind.
    let leftovers: Vec<String> = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("rkn") && n.contains('-'))
        .filter(|n| {
            nemesis::net::prefix_pid(n)
                .is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "namespaces left behind: {leftovers:?}"
    );
}
