//! End-to-end: the real `3700kvstore` binary under our rebuilt course harness.
//! Short scenarios (a few seconds each), including a leader kill and a partition, with
//! the harness's correctness checks and the linearizability verdict asserted.

use sim::harness::{run_scenario, Event, EventKind, HarnessOptions, Scenario};

fn options(seed: u64) -> HarnessOptions {
    HarnessOptions {
        replica: env!("CARGO_BIN_EXE_3700kvstore").into(),
        silence: true,
        seed: Some(seed),
        echo: false,
        ..HarnessOptions::default()
    }
}

fn scenario(
    name: &str,
    requests: u64,
    mix: f64,
    drops: f64,
    events: Vec<(EventKind, f64)>,
) -> Scenario {
    // Room after the last event for an election (timeouts of 1-2 s) and for the requests
    // held meanwhile to be answered.
    let mut sc = Scenario::new(name, 8, 5, requests);
    sc.start_wait = 2.0;
    sc.end_wait = 5.0;
    sc.mix = mix;
    sc.drops = drops;
    sc.events = events
        .into_iter()
        .map(|(kind, time)| Event { kind, time })
        .collect();
    sc
}

fn assert_passes(sc: &Scenario, seed: u64) {
    let report = run_scenario(sc, &options(seed)).expect("harness runs");
    assert!(report.passed, "{}", report.render());
}

#[test]
fn writes_and_reads_through_a_healthy_cluster() {
    assert_passes(&scenario("e2e-simple", 120, 0.5, 0.0, vec![]), 11);
}

#[test]
fn survives_a_leader_kill_and_a_hard_partition_with_drops() {
    let events = vec![
        (EventKind::PartHard, 1.0),
        (EventKind::PartEnd, 2.5),
        (EventKind::KillLeader, 3.5),
    ];
    let sc = scenario("e2e-faults", 120, 0.3, 0.1, events);
    let report = run_scenario(&sc, &options(12)).expect("harness runs");
    // The strict criterion is linearizability of the whole history. The harness's own
    // per-client check can flag a linearizable run: a client whose put is still
    // unanswered (accepted by a leader that was then cut off, answered once that leader
    // learns the outcome) may read its new value before the put's `ok` arrives.
    let linearizable = report.linearizability.as_ref().is_some_and(|l| l.is_ok());
    assert!(linearizable, "{}", report.render());
    assert!(report.stats.died == 0, "{}", report.render());
}
