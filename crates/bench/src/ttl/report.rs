//! What the TTL runs show: the other traffic's latency with and without TTLs, and, with
//! TTLs, how far the keys held run ahead of the keys live (the expiry backlog) and what
//! the nodes' memory does.

use std::fmt::Write;

use serde::Serialize;

use super::sampler::Sample;
use super::{RunResult, TtlOpts};
use crate::report::markdown::{ms, ops};

#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub name: String,
    pub ttl: bool,
    pub ops_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub traffic_errors: u64,
    pub churn_target: f64,
    pub churn_achieved: f64,
    pub churn_errors: u64,
    /// On the leader, at the last sample.
    pub keys_end: u64,
    pub expires_end: u64,
    /// TTL runs: keys with a TTL held by the leader beyond those whose TTL has not run
    /// out (counted from when their write was sent: an upper bound), over the window.
    pub backlog_max: u64,
    pub backlog_mean: f64,
    /// Largest resident memory of any node: at the window's start, over it, at its end.
    pub rss_start_mib: f64,
    pub rss_max_mib: f64,
    pub rss_end_mib: f64,
    /// The leader's keys and values (`used_memory_dataset`), at the window's start and end.
    pub dataset_start_mib: f64,
    pub dataset_end_mib: f64,
    /// The three nodes' CPU during the traffic, in ms per thousand writes (churn and
    /// traffic writes together).
    pub cpu_ms_per_kwrite: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub runs: Vec<RunSummary>,
    /// Per round, the TTL run's p99 over the no-TTL run's (the two ran back to back, so
    /// they saw the same machine), and their median: the figure to read.
    pub p99_ratios: Vec<f64>,
    pub p99_ratio: Option<f64>,
    /// The same for the other traffic's throughput.
    pub throughput_ratios: Vec<f64>,
    pub load_before: Option<f64>,
    pub load_after: Option<f64>,
}

const MIB: f64 = (1 << 20) as f64;

/// Keys written with a TTL that are still live at `t`: sent by then, TTL not yet out.
pub fn expected_live(batches: &[(u64, u64)], ttl_ms: u64, t: u64) -> u64 {
    batches
        .iter()
        .filter(|(sent, _)| *sent <= t && sent + ttl_ms > t)
        .map(|(_, n)| n)
        .sum()
}

fn leader(s: &Sample) -> Option<&super::sampler::NodeSample> {
    s.nodes.iter().find(|n| n.leader)
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    Some(if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    })
}

impl Summary {
    pub fn of(
        opts: &TtlOpts,
        runs: &[RunResult],
        load_before: Option<f64>,
        load_after: Option<f64>,
    ) -> Summary {
        let ttl_ms = (opts.ttl_s * 1000.0) as u64;
        let summaries: Vec<RunSummary> = runs.iter().map(|r| summarise(r, ttl_ms)).collect();
        // Pairs by round: a machine whose load changes between rounds (another tenant)
        // moves both runs of a round alike, not the runs of different rounds.
        let rounds: std::collections::BTreeSet<usize> = runs.iter().map(|r| r.round).collect();
        let pair = |f: fn(&RunSummary) -> f64| -> Vec<f64> {
            rounds
                .iter()
                .filter_map(|&round| {
                    let of = |ttl: bool| {
                        runs.iter()
                            .zip(&summaries)
                            .find(|(r, _)| r.round == round && r.ttl == ttl)
                            .map(|(_, s)| f(s))
                    };
                    match (of(true), of(false)) {
                        (Some(t), Some(b)) if b > 0.0 => Some(t / b),
                        _ => None,
                    }
                })
                .collect()
        };
        let p99_ratios = pair(|s| s.p99_ms);
        let throughput_ratios = pair(|s| s.ops_s);
        Summary {
            runs: summaries,
            p99_ratio: median(p99_ratios.clone()),
            p99_ratios,
            throughput_ratios,
            load_before,
            load_after,
        }
    }
}

fn summarise(r: &RunResult, ttl_ms: u64) -> RunSummary {
    let in_window: Vec<&Sample> = r
        .samples
        .iter()
        .filter(|s| s.at_ms >= r.window.0 && s.at_ms <= r.window.1)
        .collect();
    let rss_of = |s: &Sample| s.nodes.iter().map(|n| n.rss_bytes).max().unwrap_or(0) as f64 / MIB;
    let backlogs: Vec<u64> = if r.ttl {
        in_window
            .iter()
            .filter_map(|s| {
                let l = leader(s)?;
                Some(
                    l.expires
                        .saturating_sub(expected_live(&r.batches, ttl_ms, s.at_ms)),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let first = in_window.first();
    let last = r.samples.last();
    let t = &r.traffic;
    let secs = t.seconds + 2.0; // the CPU counts cover the warm-up too
    let writes = r.churn_achieved * secs + t.throughput * secs / 2.0;
    let cpu: f64 = r.node_cpu_s.iter().sum();
    RunSummary {
        name: format!("round {} {}", r.round, if r.ttl { "TTL" } else { "no TTL" }),
        ttl: r.ttl,
        ops_s: t.throughput,
        p50_ms: t.p50_us / 1000.0,
        p99_ms: t.p99_us / 1000.0,
        p999_ms: t.p999_us / 1000.0,
        traffic_errors: t.errors,
        churn_target: r.churn_rate,
        churn_achieved: r.churn_achieved,
        churn_errors: r.churn_errors,
        keys_end: last.and_then(leader).map_or(0, |l| l.keys),
        expires_end: last.and_then(leader).map_or(0, |l| l.expires),
        backlog_max: backlogs.iter().copied().max().unwrap_or(0),
        backlog_mean: if backlogs.is_empty() {
            0.0
        } else {
            backlogs.iter().sum::<u64>() as f64 / backlogs.len() as f64
        },
        rss_start_mib: first.map_or(0.0, |s| rss_of(s)),
        rss_max_mib: in_window.iter().map(|s| rss_of(s)).fold(0.0, f64::max),
        rss_end_mib: in_window.last().map_or(0.0, |s| rss_of(s)),
        dataset_start_mib: first
            .and_then(|s| leader(s))
            .map_or(0.0, |l| l.dataset_bytes as f64 / MIB),
        dataset_end_mib: in_window
            .last()
            .and_then(|s| leader(s))
            .map_or(0.0, |l| l.dataset_bytes as f64 / MIB),
        cpu_ms_per_kwrite: if writes > 0.0 {
            cpu * 1000.0 / (writes / 1000.0)
        } else {
            0.0
        },
    }
}

pub fn markdown(opts: &TtlOpts, s: &Summary, runs: &[RunResult]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# kvbench ttl: {} keys under a {} s TTL\n\n\
         Three raftkv nodes on loopback (fsync on, linearizable reads). Churn: {:.0} SET/s \
         of {}-byte values, each its own log entry (with TTLs: a new key each, live {} s; \
         without: the same writes over {} keys). Other traffic: {} closed-loop clients, \
         50/50 GET/SET on 100,000 other keys, {} s measured after one TTL of churn.\n",
        opts.keys,
        opts.ttl_s,
        opts.keys as f64 / opts.ttl_s,
        opts.value_size,
        opts.ttl_s,
        opts.keys,
        opts.clients,
        opts.duration_s
    );
    let _ = writeln!(
        o,
        "| run | traffic ops/s | p50 ms | p99 ms | p99.9 ms | churn/s (target) | keys held | TTL backlog max (mean) | RSS MiB start → end (max) | dataset MiB start → end | node CPU ms / 1k writes |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &s.runs {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {:.0} ({:.0}) | {} | {} | {:.0} → {:.0} ({:.0}) | {:.0} → {:.0} | {:.0} |",
            r.name,
            ops(r.ops_s),
            ms(r.p50_ms * 1000.0),
            ms(r.p99_ms * 1000.0),
            ms(r.p999_ms * 1000.0),
            r.churn_achieved,
            r.churn_target,
            r.keys_end,
            if r.ttl {
                format!("{} ({:.0})", r.backlog_max, r.backlog_mean)
            } else {
                "—".into()
            },
            r.rss_start_mib,
            r.rss_end_mib,
            r.rss_max_mib,
            r.dataset_start_mib,
            r.dataset_end_mib,
            r.cpu_ms_per_kwrite,
        );
    }
    if let Some(ratio) = s.p99_ratio {
        let each: Vec<String> = s.p99_ratios.iter().map(|r| format!("{r:.3}")).collect();
        let tput: Vec<String> = s
            .throughput_ratios
            .iter()
            .map(|r| format!("{r:.3}"))
            .collect();
        let _ = writeln!(
            o,
            "\nOther traffic's p99, TTL run / no-TTL run of the same round: {} — median \
             {ratio:.3} ({:+.1} %; the goal is within 10 %). Throughput, the same way: {}.",
            each.join(", "),
            (ratio - 1.0) * 100.0,
            tput.join(", ")
        );
    }
    let _ = writeln!(
        o,
        "Load average before and after: {:?} / {:?}.",
        s.load_before, s.load_after
    );
    let ttl_ms = (opts.ttl_s * 1000.0) as u64;
    if let Some(r) = runs.iter().find(|r| r.ttl) {
        let _ = writeln!(
            o,
            "\nThe first TTL run, every 10 s from the start of the churn (leader):\n\n\
             | s | keys live (sent < TTL ago) | keys with a TTL held | backlog | dataset MiB | RSS MiB per node |\n\
             |---|---|---|---|---|---|"
        );
        let t0 = r.samples.first().map_or(0, |s| s.at_ms);
        let mut next = 0;
        for smp in &r.samples {
            let secs = (smp.at_ms - t0) / 1000;
            if secs < next {
                continue;
            }
            next = secs + 10;
            let Some(l) = leader(smp) else { continue };
            let live = expected_live(&r.batches, ttl_ms, smp.at_ms);
            let rss: Vec<String> = smp
                .nodes
                .iter()
                .map(|n| format!("{:.0}", n.rss_bytes as f64 / MIB))
                .collect();
            let _ = writeln!(
                o,
                "| {secs} | {live} | {} | {} | {:.0} | {} |",
                l.expires,
                l.expires.saturating_sub(live),
                l.dataset_bytes as f64 / MIB,
                rss.join(" / ")
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_keys_are_those_sent_less_than_a_ttl_ago() {
        let b = [(1_000, 10), (2_000, 5), (3_500, 1)];
        assert_eq!(expected_live(&b, 2_000, 500), 0);
        assert_eq!(expected_live(&b, 2_000, 2_500), 15);
        assert_eq!(
            expected_live(&b, 2_000, 3_000),
            5,
            "the first batch's TTL ran out"
        );
        assert_eq!(expected_live(&b, 2_000, 3_600), 6);
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
