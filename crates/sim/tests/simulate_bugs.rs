//! The simulator catches real bugs: each planted bug (test-only switches in the core and
//! the driver) must make some seed fail within the first 1,000. The seed count it took is
//! printed (`cargo test -p sim --test simulate_bugs -- --nocapture`) and recorded in
//! SIMULATE.md.

use sim::simulate::{run_batch, BatchOptions, RunReport};

/// Seeds each planted bug gets: 1,000, except the rarest (see
/// `finds_forward_reply_matched_by_id_only`).
fn seed_budget(bug: &str) -> u64 {
    if bug == "forward-reply-by-id-only" {
        2000
    } else {
        1000
    }
}

fn find(bug: &str) -> RunReport {
    let seeds = seed_budget(bug);
    let mut opts = BatchOptions::new(0, seeds);
    opts.bugs.enable(bug).unwrap();
    opts.stop_at_first_failure = true;
    let batch = run_batch(&opts, |_| {});
    let found = batch
        .first_failure()
        .unwrap_or_else(|| panic!("planted bug {bug} not found in {seeds} seeds"))
        .clone();
    println!(
        "planted bug {bug}: found by seed {} ({} seeds), {} nodes: {}\n  reproduce: {}",
        found.seed,
        found.seed + 1,
        found.nodes,
        found
            .failure
            .as_deref()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or(""),
        found.repro()
    );
    found
}

fn failure(r: &RunReport) -> &str {
    r.failure.as_deref().unwrap_or("")
}

#[test]
fn finds_local_reads_without_lease_or_read_index() {
    let r = find("unsafe-local-reads");
    assert!(failure(&r).contains("not linearizable"), "{}", failure(&r));
}

#[test]
fn finds_commit_of_old_term_entry_by_counting_replicas() {
    let r = find("commit-old-term-by-count");
    assert!(
        failure(&r).contains("commit rule")
            || failure(&r).contains("leader completeness")
            || failure(&r).contains("safety"),
        "{}",
        failure(&r)
    );
}

#[test]
fn finds_vote_granted_without_log_check() {
    let r = find("vote-without-log-check");
    assert!(!failure(&r).starts_with("panic"), "{}", failure(&r));
}

#[test]
fn finds_acknowledgement_before_persist() {
    let r = find("ack-before-persist");
    assert!(!failure(&r).starts_with("panic"), "{}", failure(&r));
}

#[test]
fn finds_entry_applied_twice() {
    let r = find("apply-twice");
    assert!(!failure(&r).starts_with("panic"), "{}", failure(&r));
}

/// The deposed leader's crash (issue 10): found only since nodes take inputs in batches
/// between Readys, as the server does (150,000 seeds of one-input Readys missed it).
#[test]
fn finds_read_round_after_step_down() {
    let r = find("read-round-after-step-down");
    assert!(
        failure(&r).contains("no entry found for key"),
        "{}",
        failure(&r)
    );
}

/// Routing (issue 10): a forward's answer taken from any node by id alone, with ids
/// that restart in every process, answers a new request with an old request's result.
/// It takes a follower restarting while an answer to it is on its way, and is the
/// rarest to show: about one seed in 400 (11 of seeds 0..5270). Since plain writes
/// carry the leader's clock (their entries are longer, so every run's timing moved), the
/// first is seed 1270, so this one gets 2,000 seeds, not 1,000.
#[test]
fn finds_forward_reply_matched_by_id_only() {
    let r = find("forward-reply-by-id-only");
    assert!(!failure(&r).starts_with("panic"), "{}", failure(&r));
}

/// Routing: a write resent to a new leader without its session applies twice.
#[test]
fn finds_retry_without_session() {
    let r = find("retry-without-session");
    assert!(!failure(&r).starts_with("panic"), "{}", failure(&r));
}

/// Routing: "not executed" said of a write that an earlier send may have executed.
#[test]
fn finds_redirect_answered_for_an_executed_write() {
    let r = find("redirect-for-executed-write");
    assert!(
        failure(&r).contains("not executed") || failure(&r).contains("linearizab"),
        "{}",
        failure(&r)
    );
}

/// Two voters switched in one step (no joint configuration, and followers take it):
/// the overlap invariant sees the step's two disjoint quorums the first time one is
/// appended. (Without that check, 1,000 seeds show only one liveness failure: the
/// damage needs a partition between the two quorums at that moment.)
#[test]
fn finds_voters_switched_without_joint_consensus() {
    let r = find("conf-change-without-joint");
    assert!(
        failure(&r).contains("configurations overlap"),
        "{}",
        failure(&r)
    );
}

/// The same seed with the bug off passes: what failed was the bug, not the seed.
#[test]
fn the_failing_seeds_pass_without_the_bugs() {
    let mut seeds = Vec::new();
    for bug in sim::simulate::BUG_NAMES {
        let mut opts = BatchOptions::new(0, seed_budget(bug));
        opts.bugs.enable(bug).unwrap();
        opts.stop_at_first_failure = true;
        let batch = run_batch(&opts, |_| {});
        if let Some(f) = batch.first_failure() {
            seeds.push(f.seed);
        }
    }
    seeds.sort_unstable();
    seeds.dedup();
    for seed in seeds {
        let r = sim::simulate::run_seed(sim::simulate::RunOptions::new(seed));
        assert!(
            r.passed(),
            "seed {seed} fails without bugs: {:?}",
            r.failure
        );
    }
}
