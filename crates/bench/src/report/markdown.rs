//! The markdown table: per workload, throughput and p99 of each system per client count,
//! and raftkv's ratio to etcd and to Redis. Then every sample in full.

use std::fmt::Write;

use super::{utc_string, Report, Sample};
use crate::drivers::Target;

/// `a / b` as `2.00×`, or `—` when either side is missing or zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a > 0.0 && b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".to_string(),
    }
}

/// Operations per second with thousands separators: `12,345`.
pub fn ops(x: f64) -> String {
    let n = x.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Microseconds shown as milliseconds with three significant figures.
pub fn ms(us: f64) -> String {
    let m = us / 1000.0;
    if m >= 100.0 {
        format!("{m:.0}")
    } else if m >= 10.0 {
        format!("{m:.1}")
    } else if m >= 1.0 {
        format!("{m:.2}")
    } else {
        format!("{m:.3}")
    }
}

fn cell(s: Option<&Sample>, f: impl Fn(&Sample) -> String) -> String {
    s.map(f).unwrap_or_else(|| "—".to_string())
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let p = &report.params;
    let _ = writeln!(out, "# kvbench results\n");
    let _ = writeln!(
        out,
        "{} run, started {}, {:.0} s wall clock, {} cores. Each cell: {} s warm-up, then {} s \
         measured; closed-loop clients; {} keys of {} B, values of {} B.\n",
        p.label(),
        utc_string(report.started_unix),
        report.wall_s,
        report.cores,
        p.warmup_s,
        p.duration_s,
        p.shape.keyspace,
        p.shape.key_size,
        p.shape.value_size,
    );
    if let (Some(a), Some(b)) = (report.load_before, report.load_after) {
        let busy = a.max(b) > report.cores as f64;
        let _ = writeln!(
            out,
            "Load average (1 min): {a:.2} before, {b:.2} after.{}\n",
            if busy {
                " Above the core count: other work shared the machine, so absolute figures \
                 are noisy; ratios within a cell hold better, since systems alternate."
            } else {
                ""
            }
        );
    }
    for s in &report.systems {
        let what = match &s.skipped {
            Some(why) => format!("**not measured**: {why}"),
            None => s.setup.clone(),
        };
        let _ = writeln!(out, "- **{}** ({}): {}", s.system.title(), s.version, what);
    }
    let _ = writeln!(
        out,
        "\nThroughput ratios above 1× mean raftkv does more operations per second; p99 ratios \
         below 1× mean raftkv's slowest 1% are faster. `—`: a side was not measured.\n"
    );

    let systems = [Target::Raftkv, Target::Etcd, Target::Redis];
    for &w in &p.workloads {
        let _ = writeln!(out, "## {}\n", w.title());
        let mut head = String::from("| clients |");
        let mut rule = String::from("|---:|");
        for t in systems {
            let _ = write!(head, " {} ops/s |", t.title());
            rule.push_str("---:|");
        }
        head.push_str(" raftkv/etcd | raftkv/Redis |");
        rule.push_str("---:|---:|");
        for t in systems {
            let _ = write!(head, " {} p99 ms |", t.title());
            rule.push_str("---:|");
        }
        head.push_str(" raftkv/etcd p99 | raftkv/Redis p99 |");
        rule.push_str("---:|---:|");
        let _ = writeln!(out, "{head}\n{rule}");
        for &c in &p.clients {
            let get = |t| report.sample(t, w, c);
            let tput = |t| get(t).map(|s| s.throughput);
            let p99 = |t| get(t).map(|s| s.p99_us);
            let mut row = format!("| {c} |");
            for t in systems {
                let _ = write!(row, " {} |", cell(get(t), |s| ops(s.throughput)));
            }
            let _ = write!(
                row,
                " {} | {} |",
                ratio(tput(Target::Raftkv), tput(Target::Etcd)),
                ratio(tput(Target::Raftkv), tput(Target::Redis))
            );
            for t in systems {
                let _ = write!(row, " {} |", cell(get(t), |s| ms(s.p99_us)));
            }
            let _ = write!(
                row,
                " {} | {} |",
                ratio(p99(Target::Raftkv), p99(Target::Etcd)),
                ratio(p99(Target::Raftkv), p99(Target::Redis))
            );
            let _ = writeln!(out, "{row}");
        }
        out.push('\n');
    }

    let _ = writeln!(out, "## Every sample\n");
    let _ = writeln!(
        out,
        "| system | workload | clients | ops/s | mean ms | p50 ms | p99 ms | p99.9 ms | max ms | errors | read misses |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut samples: Vec<&Sample> = report.samples.iter().collect();
    samples.sort_by_key(|s| (s.workload, s.clients, s.system));
    for s in samples {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.system.title(),
            s.workload,
            s.clients,
            ops(s.throughput),
            ms(s.mean_us),
            ms(s.p50_us),
            ms(s.p99_us),
            ms(s.p999_us),
            ms(s.max_us),
            s.errors,
            s.misses
        );
    }
    let errs: Vec<&Sample> = report
        .samples
        .iter()
        .filter(|s| s.first_error.is_some())
        .collect();
    if !errs.is_empty() {
        let _ = writeln!(out, "\n## Errors\n");
        for s in errs {
            let _ = writeln!(
                out,
                "- {} {} ×{}: {}",
                s.system.title(),
                s.workload,
                s.clients,
                s.first_error.as_deref().unwrap_or_default()
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(ops(1234567.4), "1,234,567");
        assert_eq!(ops(999.0), "999");
        assert_eq!(ms(412.0), "0.412");
        assert_eq!(ms(12_345.0), "12.3");
        assert_eq!(ratio(Some(3.0), Some(2.0)), "1.50×");
        assert_eq!(ratio(None, Some(2.0)), "—");
    }
}
