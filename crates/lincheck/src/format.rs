//! Short human-readable renderings shared by the explanation and `Display`.

use crate::history::{Call, Operation, Ret};

/// Values longer than this are cut, keeping a prefix and the length.
const MAX_SHOWN_BYTES: usize = 24;

/// Printable ASCII as a quoted string, anything else as hex.
pub(crate) fn bytes(b: &[u8]) -> String {
    let shown = &b[..b.len().min(MAX_SHOWN_BYTES)];
    let mut out = if shown.iter().all(|c| (0x20..0x7f).contains(c)) {
        let text: String = shown.iter().map(|&c| c as char).collect();
        format!("{text:?}")
    } else {
        let hex: String = shown.iter().map(|c| format!("{c:02x}")).collect();
        format!("0x{hex}")
    };
    if shown.len() < b.len() {
        out.push_str(&format!("..({} bytes)", b.len()));
    }
    out
}

/// A register value; `None` is the absent key.
pub(crate) fn value(v: Option<&[u8]>) -> String {
    v.map_or_else(|| "absent".to_string(), bytes)
}

pub(crate) fn call(c: &Call) -> String {
    match c {
        Call::Get => "get".to_string(),
        Call::Put(v) => format!("put {}", bytes(v)),
        Call::Delete => "delete".to_string(),
        Call::Cas { expected, new } => {
            format!("cas {} -> {}", value(expected.as_deref()), bytes(new))
        }
    }
}

/// `?` marks an indeterminate (never acknowledged) op.
pub(crate) fn ret(r: Option<&Ret>) -> String {
    match r {
        None => "?".to_string(),
        Some(Ret::Value(v)) => value(v.as_deref()),
        Some(Ret::Done) => "ok".to_string(),
        Some(Ret::Cas(swapped)) => swapped.to_string(),
    }
}

/// `#id c<client> <call> => <ret>`: one op on one line.
pub(crate) fn label(op: &Operation) -> String {
    format!(
        "#{} c{} {} => {}",
        op.id,
        op.client,
        call(&op.call),
        ret(op.ret.as_ref())
    )
}

/// A time relative to the first op, in the largest unit that keeps it >= 1.
pub(crate) fn offset(ns: u64) -> String {
    match ns {
        0..1_000 => format!("+{ns}ns"),
        1_000..1_000_000 => format!("+{}.{:03}us", ns / 1_000, ns % 1_000),
        1_000_000..1_000_000_000 => {
            format!("+{}.{:03}ms", ns / 1_000_000, ns / 1_000 % 1_000)
        }
        _ => format!("+{}.{:03}s", ns / 1_000_000_000, ns / 1_000_000 % 1_000),
    }
}
