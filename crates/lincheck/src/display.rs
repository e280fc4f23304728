//! `Display` for [`Violation`]: the witness as a timeline, one op per line.
//!
//! ```text
//! key "k" is not linearizable (3 ops):
//! <explanation>
//!   op  client  invoke  complete  call     returned  timeline
//!   #1  c1      +0ns    +10ns     put "a"  ok        [=====]
//!   #3  c2      +5ns    ?         put "b"  ?            [=====================>
//! ```
//!
//! Times are relative to the earliest invocation shown. The timeline column
//! scales every op onto the same axis so overlaps are visible at a glance;
//! `>` marks an op that was never acknowledged (it may take effect any time
//! after its invocation, or never). A hand-made `Violation` with
//! inconsistent times renders clamped rather than panicking.

use std::fmt;

use crate::format;
use crate::history::Operation;
use crate::verdict::Violation;

/// Width of the timeline column, in characters.
const TIMELINE_WIDTH: usize = 40;

const HEADER: [&str; 7] = [
    "op", "client", "invoke", "complete", "call", "returned", "timeline",
];

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "key {} is not linearizable ({} ops):",
            format::bytes(&self.key),
            self.ops.len()
        )?;
        writeln!(f, "{}", self.explanation)?;
        let t0 = self.ops.iter().map(|o| o.invoke_ns).min().unwrap_or(0);
        let axis = Axis::new(&self.ops, t0);
        let rows: Vec<[String; 7]> = self
            .ops
            .iter()
            .map(|op| {
                [
                    format!("#{}", op.id),
                    format!("c{}", op.client),
                    format::offset(op.invoke_ns.saturating_sub(t0)),
                    op.complete_ns
                        .map_or_else(|| "?".to_string(), |c| format::offset(c.saturating_sub(t0))),
                    format::call(&op.call),
                    format::ret(op.ret.as_ref()),
                    axis.bar(op),
                ]
            })
            .collect();
        let mut widths = HEADER.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        write_row(f, &HEADER.map(str::to_string), &widths)?;
        for row in &rows {
            write_row(f, row, &widths)?;
        }
        Ok(())
    }
}

fn write_row(f: &mut fmt::Formatter<'_>, cells: &[String; 7], widths: &[usize; 7]) -> fmt::Result {
    let line: Vec<String> = cells
        .iter()
        .zip(widths)
        .map(|(cell, &w)| format!("{cell:<w$}"))
        .collect();
    writeln!(f, "  {}", line.join("  ").trim_end())
}

/// Maps times onto timeline columns `0..TIMELINE_WIDTH`.
struct Axis {
    t0: u64,
    /// Nanoseconds from `t0` to the last known event; at least 1.
    span: u64,
}

impl Axis {
    fn new(ops: &[Operation], t0: u64) -> Self {
        let last = ops
            .iter()
            .map(|o| o.complete_ns.unwrap_or(o.invoke_ns))
            .max()
            .unwrap_or(t0);
        Axis {
            t0,
            span: last.saturating_sub(t0).max(1),
        }
    }

    fn column(&self, t: u64) -> usize {
        let scaled = u128::from(t.saturating_sub(self.t0).min(self.span))
            * (TIMELINE_WIDTH as u128 - 1)
            / u128::from(self.span);
        scaled as usize
    }

    fn bar(&self, op: &Operation) -> String {
        let start = self.column(op.invoke_ns);
        let mut bar = " ".repeat(start);
        match op.complete_ns {
            Some(c) => {
                let end = self.column(c).max(start);
                if end == start {
                    bar.push('|');
                } else {
                    bar.push('[');
                    bar.push_str(&"=".repeat(end - start - 1));
                    bar.push(']');
                }
            }
            None => {
                bar.push('[');
                bar.push_str(&"=".repeat(TIMELINE_WIDTH - 1 - start));
                bar.push('>');
            }
        }
        bar
    }
}
