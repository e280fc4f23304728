//! End-to-end runs of the harness against `fakereplica`, a tiny replica that
//! is deliberately bad on request (src/bin/fakereplica.rs). Each run is a
//! real 7-second scenario: real processes, real UDP, real clock.

use sim::harness::{
    run_scenario, Benchmark, Event, EventKind, HarnessOptions, LinResult, OpCall, PauseTarget,
    Reorder, ResumeTarget, Scenario,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A wrapper script that starts the fake replica in `mode`: the harness
/// runs `PATH <port> <id> <others…>` and passes no environment of its own.
fn fake(dir: &Path, mode: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("fake-{mode}.sh"));
    let script = format!(
        "#!/bin/sh\nFAKE_MODE={mode} exec '{}' \"$@\"\n",
        env!("CARGO_BIN_EXE_fakereplica")
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Lifetime 5 s, 3 replicas, 50 requests, 1 s before and after.
fn short_scenario() -> Scenario {
    let mut sc = Scenario::new("short", 5, 3, 50);
    sc.mix = 0.2;
    sc.start_wait = 1.0;
    sc.end_wait = 1.0;
    // With 8 clients the first gets often find no key yet: not the point here.
    sc.tests.maximum_get_generation_fail_fraction = 1.0;
    let b = &mut sc.tests.benchmarks;
    b.total_msgs = Some(Benchmark::new(50.0, 100.0, 200.0));
    b.failures = Some(Benchmark::new(1.0, 2.0, 3.0));
    b.duplicates = Some(Benchmark::new(0.0, 1.0, 2.0));
    b.median_latency = Some(Benchmark::new(0.001, 0.05, 0.5));
    sc
}

fn opts(replica: PathBuf, seed: u64) -> HarnessOptions {
    HarnessOptions {
        replica,
        silence: true,
        seed: Some(seed),
        trace: None,
        lincheck_budget: Duration::from_secs(10),
        echo: false,
        floor: None,
    }
}

#[test]
fn a_good_replica_passes_and_seeds_reproduce_choices() {
    let dir = tempfile::tempdir().unwrap();
    let sc = short_scenario();
    let mut o = opts(fake(dir.path(), "good"), 42);
    o.trace = Some(dir.path().join("trace.jsonl"));
    let r = run_scenario(&sc, &o).unwrap();
    assert!(r.passed, "{}\n{:?}", r.render(), r.simulator_errors);
    assert_eq!(r.linearizability, Some(LinResult::Linearizable));
    assert_eq!(r.stats.client.incorrect, 0);
    assert_eq!(r.stats.died, 0);
    assert_eq!(r.stats.generated_gets + r.stats.generated_puts, 50);
    assert_eq!(r.history.ops.len(), 50);
    assert!(r.tiers.is_some());
    assert!(r.render().contains("All correctness tests passed\n"));
    assert!(r.wall_secs >= 7.0, "runs start_wait + lifetime + end_wait");
    let trace = std::fs::read_to_string(dir.path().join("trace.jsonl")).unwrap();
    assert!(trace.lines().count() > 100);
    assert!(trace
        .lines()
        .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));

    // The same seed makes the same choices: same clients, keys and calls.
    let again = run_scenario(&sc, &opts(fake(dir.path(), "good"), 42)).unwrap();
    let shape = |h: &sim::harness::History| {
        h.ops
            .iter()
            .map(|o| (o.client, o.key.clone(), o.call.clone()))
            .collect::<Vec<(u64, String, OpCall)>>()
    };
    assert_eq!(shape(&r.history), shape(&again.history));
}

#[test]
fn wrong_values_fail_the_run_and_the_linearizability_check() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(&short_scenario(), &opts(fake(dir.path(), "wrong"), 1)).unwrap();
    assert!(!r.passed);
    assert!(r.stats.client.incorrect > 0);
    assert!(matches!(
        r.linearizability,
        Some(LinResult::NotLinearizable { .. })
    ));
    let text = r.render();
    assert!(text.contains("Error: incorrect responses to get() or replicas died"));
    assert!(text.contains("Error: the client history is not linearizable"));
    assert!(!text.contains("## Performance Tests"));
    // It kept going to the end and answered the rest.
    assert!(r.wall_secs >= 7.0);
    assert_eq!(r.stats.client.unanswered_put, 0);
}

#[test]
fn malformed_messages_are_counted_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(&short_scenario(), &opts(fake(dir.path(), "malformed"), 2)).unwrap();
    assert!(!r.passed);
    let errs = r.simulator_errors.join("\n");
    assert!(errs.contains("Unable to decode JSON message"), "{errs}");
    assert!(errs.contains("Incorrect source format"), "{errs}");
    assert!(errs.contains("Unknown destination"), "{errs}");
    assert!(r.stats.client.incorrect >= 3);
    assert_eq!(
        r.stats.client.unanswered_get + r.stats.client.unanswered_put,
        0
    );
    assert!(r.stats.stored_keys > 0);
}

#[test]
fn a_replica_that_exits_or_never_says_hello_has_died() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(&short_scenario(), &opts(fake(dir.path(), "exit"), 3)).unwrap();
    assert_eq!((r.stats.died, r.stats.killed), (1, 0));
    assert!(!r.passed);
    assert!(r
        .simulator_errors
        .iter()
        .any(|e| e.contains("Replica 0001 quit unexpectedly")));
    assert!(r.stats.stored_keys > 0, "the others kept serving");

    let r = run_scenario(&short_scenario(), &opts(fake(dir.path(), "nohello"), 3)).unwrap();
    assert_eq!(r.stats.died, 1);
    assert!(r
        .simulator_errors
        .iter()
        .any(|e| e.contains("before its hello")));
    assert!(r.render().contains("Replicas that died/were killed: 1/0\n"));
}

#[test]
fn a_packet_storm_stops_the_run_early() {
    let dir = tempfile::tempdir().unwrap();
    let mut sc = short_scenario();
    sc.max_packets = 2000.0;
    let r = run_scenario(&sc, &opts(fake(dir.path(), "flood"), 4)).unwrap();
    assert!(r.stats.packet_storm);
    assert!(r.stats.total_msgs >= 2000);
    assert!(r.wall_secs < 5.0, "stopped at the storm, not at the end");
    assert!(r
        .simulator_errors
        .iter()
        .any(|e| e.contains("possible packet storm")));
}

#[test]
fn cli_all_runs_the_suite_in_order_and_summarises() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("configs");
    std::fs::create_dir(&cfg).unwrap();
    let short = r#"{"lifetime": 5, "replicas": 3, "requests": 50, "mix": 0.2,
        "start_wait": 1, "end_wait": 1, "tests": {"maximum_get_generation_fail_fraction": 1.0,
        "benchmarks": {"total_msgs": [50, 100, 200], "failures": [1, 2, 3],
                       "duplicates": [0, 1, 2], "median_latency": [0.001, 0.05, 0.5]}}}"#;
    std::fs::write(cfg.join("simple-1.json"), short).unwrap();
    // The fake's leader never changes, so killing it leaves nobody to answer.
    let crash = short.replace(
        r#""mix": 0.2,"#,
        r#""mix": 0.2, "events": [{"type": "kill_leader", "time": 1}],"#,
    );
    std::fs::write(cfg.join("crash-1.json"), crash).unwrap();
    let json = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_kvsim"))
        .args([
            "harness",
            "--silence",
            "--jobs",
            "2",
            "--seed",
            "9",
            "--replica",
        ])
        .arg(fake(dir.path(), "good"))
        .arg("--config-dir")
        .arg(&cfg)
        .arg("--json")
        .arg(&json)
        .arg("all")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert_eq!(lines[0], "Basic tests:");
    assert!(
        lines[1].starts_with("\tNo drops, no failures, 20% read\t[PASS]\tPerformance Tiers: "),
        "{stdout}"
    );
    assert_eq!(lines[2], "Crash failure tests:");
    assert_eq!(lines[3], "\tNo drops, 1 leader failure, 20% read\t[FAIL]");
    assert_eq!(lines[4], "Passed 1 out of 2 tests");
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(report["passed"], 1);
    assert_eq!(report["scenarios"][1]["report"]["stats"]["killed"], 1);
    assert_eq!(report["scenarios"][0]["report"]["seed"], 9);
}

#[test]
fn extensions_duplicate_reorder_pause_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"{"lifetime": 5, "replicas": 3, "request_rate": 10, "clients": 2, "mix": 0.2,
        "start_wait": 1, "end_wait": 1, "duplicate": 0.5,
        "reorder": {"probability": 0.5, "max_delay_ms": 20},
        "events": [{"type": "pause", "time": 1, "target": "0002"},
                   {"type": "resume", "time": 2}],
        "tests": {"maximum_get_generation_fail_fraction": 1.0}}"#;
    let sc = Scenario::from_json_str("ext", text).unwrap();
    assert_eq!(sc.requests, 50);
    assert_eq!(sc.clients, 2);
    assert_eq!(
        sc.reorder,
        Some(Reorder {
            probability: 0.5,
            max_delay_ms: 20.0
        })
    );
    assert_eq!(
        sc.events,
        vec![
            Event {
                time: 1.0,
                kind: EventKind::Pause(PauseTarget::Replica("0002".into()))
            },
            Event {
                time: 2.0,
                kind: EventKind::Resume(ResumeTarget::All)
            },
        ]
    );
    let r = run_scenario(&sc, &opts(fake(dir.path(), "good"), 5)).unwrap();
    assert!(r.passed, "{}\n{:?}", r.render(), r.simulator_errors);
    assert_eq!(r.stats.paused, 1);
    assert!(r.stats.duplicated_deliveries > 0);
    assert!(r.stats.delayed_deliveries > 0);
    let clients: std::collections::BTreeSet<u64> = r.history.ops.iter().map(|o| o.client).collect();
    assert_eq!(clients.len(), 2);
}

/// `--floor`: the schedule is run again against the stand-in replica, whose
/// median lands in the report (and its rendering) beside the real one. The
/// stand-in answers every request itself, so every attempt of the floor run is
/// one round trip through the harness: its samples are exactly the requests.
#[test]
fn the_floor_run_reports_the_stand_in_latency() {
    let dir = tempfile::tempdir().unwrap();
    let mut sc = short_scenario();
    sc.events = vec![Event {
        kind: EventKind::KillLeader,
        time: 2.0,
    }];
    let mut o = opts(fake(dir.path(), "good"), 11);
    o.floor = Some(env!("CARGO_BIN_EXE_floorreplica").into());
    let r = run_scenario(&sc, &o).unwrap();
    let f = r.latency_floor.expect("a floor was measured");
    assert_eq!(
        f.latency_samples, 50,
        "one answer per request, no redirects"
    );
    assert!(f.median_latency > 0.0 && f.median_latency < 0.05, "{f:?}");
    assert!(r.render().contains("Latency floor of this harness"));
    assert!(r.summary_line("d").contains("(floor "));
    // Without --floor, nothing is measured.
    o.floor = None;
    assert!(run_scenario(&short_scenario(), &o)
        .unwrap()
        .latency_floor
        .is_none());
}
