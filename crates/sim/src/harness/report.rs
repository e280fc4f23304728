//! Figures of a run, the verdict (correctness checks, tiers, linearizability)
//! and the printed report in the reference harness's exact format.

use super::client::ClientStats;
use super::config::{Benchmark, Scenario};
use super::history::LinResult;
use serde::Serialize;
use std::fmt::Write as _;

/// Everything the run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Leaders in the order the harness learned them (repeats collapsed).
    pub leaders: Vec<String>,
    /// Replicas that exited on their own or were marked dead.
    pub died: u64,
    /// Replicas the harness killed.
    pub killed: u64,
    /// Replica→replica messages (a broadcast counts N−1).
    pub total_msgs: u64,
    pub total_drops: u64,
    pub blocked: u64,
    /// Scheduled requests by the mix coin ("generated").
    pub generated_gets: u64,
    pub generated_puts: u64,
    #[serde(flatten)]
    pub client: ClientStats,
    pub latency_samples: usize,
    pub mean_latency: f64,
    pub median_latency: f64,
    /// Keys acknowledged to clients ("state stored").
    pub stored_keys: u64,
    pub packet_storm: bool,
    /// Extensions: deliveries made twice / held back.
    pub duplicated_deliveries: u64,
    pub delayed_deliveries: u64,
    pub paused: u64,
}

impl Stats {
    /// Mean and median (upper median, `sorted[n/2]`, as the reference).
    pub fn finalize(&mut self) {
        let l = &mut self.client.latencies;
        self.latency_samples = l.len();
        if !l.is_empty() {
            l.sort_by(f64::total_cmp);
            self.mean_latency = l.iter().sum::<f64>() / l.len() as f64;
            self.median_latency = l[l.len() / 2];
        }
    }

    /// fails + unanswered, gets and puts.
    pub fn failures(&self) -> u64 {
        self.client.failed_get
            + self.client.failed_put
            + self.client.unanswered_get
            + self.client.unanswered_put
    }
}

/// Tier of one metric: 0 below bonus, 1 below full, 2 below partial, 3 none.
pub fn tier(score: f64, b: &Benchmark) -> u8 {
    b.0.iter()
        .position(|t| score < t.value)
        .map_or(3, |i| i as u8)
}

/// Tiers of the four metrics (None where the scenario has no benchmark).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tiers {
    pub total_msgs: Option<u8>,
    pub failures: Option<u8>,
    pub duplicates: Option<u8>,
    pub median_latency: Option<u8>,
}

impl Tiers {
    pub fn as_array(&self) -> [Option<u8>; 4] {
        [
            self.total_msgs,
            self.failures,
            self.duplicates,
            self.median_latency,
        ]
    }
}

/// The outcome of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub name: String,
    /// The seed of the harness's RNG (give it to `--seed` to replay the
    /// harness's choices).
    pub seed: u64,
    pub scenario: Scenario,
    pub stats: Stats,
    /// `*** Simulator Error` lines printed during the run.
    pub simulator_errors: Vec<String>,
    /// Failed correctness checks (without the `Error: ` prefix).
    pub correctness_errors: Vec<String>,
    pub linearizability: Option<LinResult>,
    pub passed: bool,
    /// Graded only when every correctness check passed.
    pub tiers: Option<Tiers>,
    /// The run was cut short by Ctrl-C / SIGTERM.
    pub interrupted: bool,
    pub wall_secs: f64,
    /// The harness's own latency on this schedule (`--floor`), measured with a
    /// stand-in replica that answers at once with no replication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_floor: Option<super::floor::LatencyFloor>,
    /// Every client logical operation (left out of the JSON report: the
    /// trace has the datagrams).
    #[serde(skip)]
    pub history: super::history::History,
}

/// The correctness checks, in the reference's order. Each returned line is
/// printed after `Error: `.
pub fn correctness_errors(sc: &Scenario, st: &Stats, lin: Option<&LinResult>) -> Vec<String> {
    let t = &sc.tests;
    let c = &st.client;
    let mut errs = Vec::new();
    if c.incorrect > 0 || st.died > 0 {
        errs.push(format!(
            "incorrect responses to get() or replicas died ({} incorrect, {} died)",
            c.incorrect, st.died
        ));
    }
    if st.stored_keys == 0 {
        errs.push("No state stored in replicas".to_string());
    }
    if c.unanswered_get as f64 > st.generated_gets as f64 * t.maximum_get_fail_fraction {
        errs.push(format!(
            "insufficient get() requests answered ({} > {} * {:.2})",
            c.unanswered_get, st.generated_gets, t.maximum_get_fail_fraction
        ));
    }
    if c.unanswered_put as f64 > st.generated_puts as f64 * t.maximum_put_fail_fraction {
        errs.push(format!(
            "insufficient put() requests answered ({} > {} * {:.2})",
            c.unanswered_put, st.generated_puts, t.maximum_put_fail_fraction
        ));
    }
    if c.gets_not_generated as f64
        > st.generated_gets as f64 * t.maximum_get_generation_fail_fraction
    {
        errs.push(format!(
            "insufficient get() requests were generated because insufficient put()s were accepted ({} > {} * {:.2})",
            c.gets_not_generated, st.generated_gets, t.maximum_get_generation_fail_fraction
        ));
    }
    let min_msgs = sc.requests as f64
        * sc.replicas as f64
        * (1.0 - sc.mix)
        * (1.0 - t.maximum_appends_batched_fraction);
    if (st.total_msgs as f64) < min_msgs {
        errs.push("too few messages between the replicas".to_string());
    }
    match lin {
        Some(LinResult::NotLinearizable { .. }) => {
            errs.push("the client history is not linearizable".to_string())
        }
        Some(LinResult::Unknown { key, reason }) => errs.push(format!(
            "linearizability could not be decided for key {key}: {reason}"
        )),
        _ => {}
    }
    errs
}

/// The four performance metrics as (label, score, printed score, benchmark).
fn metrics<'a>(
    sc: &'a Scenario,
    st: &Stats,
) -> [(&'static str, f64, String, Option<&'a Benchmark>); 4] {
    let b = &sc.tests.benchmarks;
    [
        (
            "Total Messages Between Replicas",
            st.total_msgs as f64,
            st.total_msgs.to_string(),
            b.total_msgs.as_ref(),
        ),
        (
            "Total Failures and Unanswered Requests",
            st.failures() as f64,
            st.failures().to_string(),
            b.failures.as_ref(),
        ),
        (
            "Duplicate Responses to Clients",
            st.client.duplicates as f64,
            st.client.duplicates.to_string(),
            b.duplicates.as_ref(),
        ),
        (
            "Median Response Latency to Clients",
            st.median_latency,
            format!("{:.4}", st.median_latency),
            b.median_latency.as_ref(),
        ),
    ]
}

/// Tiers of the four metrics.
pub fn tiers(sc: &Scenario, st: &Stats) -> Tiers {
    let [m, f, d, l] = metrics(sc, st).map(|(_, score, _, b)| b.map(|b| tier(score, b)));
    Tiers {
        total_msgs: m,
        failures: f,
        duplicates: d,
        median_latency: l,
    }
}

const RESULTS: [&str; 4] = [
    "Bonus!",
    "Full credit",
    "Partial credit, needs improvement",
    "No credit",
];

impl ScenarioReport {
    /// The printed report, exactly as the reference harness printed it.
    pub fn render(&self) -> String {
        let st = &self.stats;
        let c = &st.client;
        let mut o = String::new();
        let _ = writeln!(o, "# Simulation Finished\n");
        let _ = writeln!(o, "## Useful Information and Statistics");
        let _ = writeln!(o, "Leaders: {}", st.leaders.join(" "));
        let _ = writeln!(
            o,
            "Replicas that died/were killed: {}/{}",
            st.died, st.killed
        );
        let _ = writeln!(o, "Total messages sent: {}", st.total_msgs);
        let _ = writeln!(o, "Total messages dropped: {}", st.total_drops);
        let _ = writeln!(o, "Total messages blocked by full sockets: {}", st.blocked);
        let _ = writeln!(
            o,
            "Total client get()/put() requests: {}/{}",
            c.total_get, c.total_put
        );
        let _ = writeln!(o, "Total duplicate responses: {}", c.duplicates);
        let _ = writeln!(
            o,
            "Total unanswered get()/put() requests: {}/{}",
            c.unanswered_get, c.unanswered_put
        );
        let _ = writeln!(o, "Total redirects: {}", c.redirects);
        let _ = writeln!(
            o,
            "Total get()/put() failures: {}/{}",
            c.failed_get, c.failed_put
        );
        let _ = writeln!(o, "Total get() with incorrect response: {}", c.incorrect);
        if st.latency_samples > 0 {
            let _ = writeln!(
                o,
                "Mean/Median query latency: {:.4}sec/{:.4}sec",
                st.mean_latency, st.median_latency
            );
        }
        if let Some(f) = &self.latency_floor {
            let _ = writeln!(
                o,
                "Latency floor of this harness (stand-in replica answering at once, no replication): {:.4}sec/{:.4}sec",
                f.mean_latency, f.median_latency
            );
        }
        let _ = writeln!(o, "\n## Correctness Checks");
        if self.correctness_errors.is_empty() {
            let _ = writeln!(o, "All correctness tests passed");
        } else {
            for e in &self.correctness_errors {
                let _ = writeln!(o, "Error: {e}");
            }
            if let Some(LinResult::NotLinearizable { violation }) = &self.linearizability {
                for line in violation.lines() {
                    let _ = writeln!(o, "    {line}");
                }
            }
            return o;
        }
        let _ = writeln!(o, "\n## Performance Tests");
        let _ = writeln!(
            o,
            "## <test metric>: <your score> <benchmark score>, <test result>"
        );
        for (label, score, shown, b) in metrics(&self.scenario, st) {
            let Some(b) = b else { continue };
            let t = tier(score, b) as usize;
            let cmp = if t < 3 {
                format!("< {}", b.0[t].text)
            } else {
                format!(">= {}", b.0[2].text)
            };
            let _ = writeln!(o, "{label}: {shown} {cmp}, {}", RESULTS[t]);
        }
        o
    }

    /// The scenario's line in the `all` summary.
    pub fn summary_line(&self, description: &str) -> String {
        let mut s = format!(
            "\t{description}\t[{}]",
            if self.passed { "PASS" } else { "FAIL" }
        );
        if let (true, Some(t)) = (self.passed, &self.tiers) {
            let shown: Vec<String> = t
                .as_array()
                .iter()
                .map(|x| x.map_or("-".to_string(), |v| v.to_string()))
                .collect();
            s.push_str(&format!("\tPerformance Tiers: {}", shown.join(" ")));
        }
        if let Some(f) = &self.latency_floor {
            s.push_str(&format!(
                "\tmedian {:.2} ms (floor {:.2} ms)",
                self.stats.median_latency * 1e3,
                f.median_latency * 1e3
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::config::Benchmarks;

    fn scenario() -> Scenario {
        let mut sc = Scenario::new("simple-2", 30, 5, 500);
        sc.mix = 0.2;
        sc.tests.benchmarks = Benchmarks {
            total_msgs: Some(Benchmark::new(2000.0, 3000.0, 4000.0)),
            failures: Some(Benchmark::new(1.0, 2.0, 3.0)),
            duplicates: Some(Benchmark::new(2.0, 4.0, 6.0)),
            median_latency: Some(Benchmark::new(0.001, 0.005, 0.05)),
        };
        sc.tests.benchmarks.total_msgs.as_mut().unwrap().0[1].text = "3000".into();
        sc.tests.benchmarks.failures.as_mut().unwrap().0[0].text = "1".into();
        sc.tests.benchmarks.duplicates.as_mut().unwrap().0[0].text = "2".into();
        sc
    }

    fn stats() -> Stats {
        let mut st = Stats {
            leaders: vec!["0003".into(), "0001".into()],
            killed: 1,
            total_msgs: 2210,
            total_drops: 131,
            generated_gets: 101,
            generated_puts: 399,
            stored_keys: 200,
            ..Stats::default()
        };
        st.client.total_get = 101;
        st.client.total_put = 412;
        st.client.redirects = 13;
        st.client.latencies = vec![0.0006, 0.0002, 0.0019, 0.0006, 0.0012];
        st.finalize();
        st
    }

    fn report(sc: Scenario, st: Stats, lin: Option<LinResult>) -> ScenarioReport {
        let errs = correctness_errors(&sc, &st, lin.as_ref());
        let passed = errs.is_empty();
        ScenarioReport {
            name: sc.name.clone(),
            seed: 1,
            tiers: passed.then(|| tiers(&sc, &st)),
            scenario: sc,
            stats: st,
            simulator_errors: vec![],
            correctness_errors: errs,
            linearizability: lin,
            passed,
            interrupted: false,
            wall_secs: 37.0,
            latency_floor: None,
            history: Default::default(),
        }
    }

    #[test]
    fn tiers_are_strictly_below_thresholds() {
        let b = Benchmark::new(0.0, 2.0, 5.0);
        assert_eq!(tier(0.0, &b), 1, "0 is not below a bonus of 0");
        assert_eq!(tier(1.0, &b), 1);
        assert_eq!(tier(2.0, &b), 2);
        assert_eq!(tier(4.9, &b), 2);
        assert_eq!(tier(5.0, &b), 3);
        let b = Benchmark::new(0.00015, 0.005, 0.05);
        assert_eq!(tier(0.0001, &b), 0);
    }

    #[test]
    fn passing_report_matches_the_reference_format() {
        let r = report(scenario(), stats(), Some(LinResult::Linearizable));
        let expected = "\
# Simulation Finished

## Useful Information and Statistics
Leaders: 0003 0001
Replicas that died/were killed: 0/1
Total messages sent: 2210
Total messages dropped: 131
Total messages blocked by full sockets: 0
Total client get()/put() requests: 101/412
Total duplicate responses: 0
Total unanswered get()/put() requests: 0/0
Total redirects: 13
Total get()/put() failures: 0/0
Total get() with incorrect response: 0
Mean/Median query latency: 0.0009sec/0.0006sec

## Correctness Checks
All correctness tests passed

## Performance Tests
## <test metric>: <your score> <benchmark score>, <test result>
Total Messages Between Replicas: 2210 < 3000, Full credit
Total Failures and Unanswered Requests: 0 < 1, Bonus!
Duplicate Responses to Clients: 0 < 2, Bonus!
Median Response Latency to Clients: 0.0006 < 0.001, Bonus!
";
        assert_eq!(r.render(), expected);
        assert_eq!(
            r.summary_line("No drops, no failures, 20% read"),
            "\tNo drops, no failures, 20% read\t[PASS]\tPerformance Tiers: 1 0 0 0"
        );
    }

    #[test]
    fn failing_report_lists_errors_and_skips_performance() {
        let mut st = stats();
        st.client.incorrect = 2;
        st.client.unanswered_put = 300;
        st.client.gets_not_generated = 20;
        st.total_msgs = 10;
        let lin = LinResult::NotLinearizable {
            violation: "key K: get -> v1\nput v2".into(),
        };
        let r = report(scenario(), st, Some(lin));
        assert!(!r.passed);
        let text = r.render();
        assert!(text.contains(
            "Error: incorrect responses to get() or replicas died (2 incorrect, 0 died)\n"
        ));
        assert!(text.contains("Error: insufficient put() requests answered (300 > 399 * 0.50)\n"));
        assert!(text.contains(
            "Error: insufficient get() requests were generated because insufficient put()s were accepted (20 > 101 * 0.10)\n"
        ));
        assert!(text.contains("Error: too few messages between the replicas\n"));
        assert!(text.contains(
            "Error: the client history is not linearizable\n    key K: get -> v1\n    put v2\n"
        ));
        assert!(!text.contains("Performance"));
        assert_eq!(r.summary_line("x"), "\tx\t[FAIL]");
    }

    #[test]
    fn no_credit_line_uses_the_partial_threshold() {
        let mut st = stats();
        st.total_msgs = 4000;
        st.median_latency = 0.02;
        let text = report(scenario(), st, None).render();
        assert!(text.contains("Total Messages Between Replicas: 4000 >= 4000.0, No credit\n"));
        assert!(text.contains(
            "Median Response Latency to Clients: 0.0200 < 0.05, Partial credit, needs improvement\n"
        ));
    }

    #[test]
    fn unknown_lin_verdict_fails() {
        let lin = LinResult::Unknown {
            key: "K".into(),
            reason: "budget".into(),
        };
        let r = report(scenario(), stats(), Some(lin));
        assert!(!r.passed);
        assert_eq!(
            r.correctness_errors,
            vec!["linearizability could not be decided for key K: budget".to_string()]
        );
    }
}
