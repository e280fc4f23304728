//! The record of every client *logical operation* (retries after redirect or
//! fail are the same operation) and its linearizability check.
//!
//! Times are nanoseconds since the harness started the run: an operation is
//! invoked at its first send and completes at the final `ok`. One that never
//! got an `ok` is indeterminate: it may or may not have taken effect.

use lincheck as lc;
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum OpCall {
    Get,
    Put(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum OpRet {
    /// A get's answer; `None` is the `""` a never-written key reads as.
    Value(Option<String>),
    Done,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpRecord {
    /// The client's numeric ID (its four hex digits).
    pub client: u64,
    pub key: String,
    pub call: OpCall,
    pub ret: Option<OpRet>,
    pub invoke_ns: u64,
    pub complete_ns: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct History {
    pub ops: Vec<OpRecord>,
}

/// The outcome of the linearizability check, in reportable form.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum LinResult {
    Linearizable,
    NotLinearizable {
        violation: String,
    },
    /// The checker gave up (budget); counts as a failure.
    Unknown {
        key: String,
        reason: String,
    },
}

impl LinResult {
    pub fn is_ok(&self) -> bool {
        matches!(self, LinResult::Linearizable)
    }
}

/// Converts seconds since the start of the run to nanoseconds.
pub fn secs_to_ns(s: f64) -> u64 {
    (s.max(0.0) * 1e9).round() as u64
}

impl History {
    /// Records the first send of a logical operation; returns its index.
    pub fn invoke(&mut self, client: u64, key: &str, call: OpCall, now_s: f64) -> usize {
        self.ops.push(OpRecord {
            client,
            key: key.to_string(),
            call,
            ret: None,
            invoke_ns: secs_to_ns(now_s),
            complete_ns: None,
        });
        self.ops.len() - 1
    }

    /// Records the final `ok` of operation `idx`.
    pub fn complete(&mut self, idx: usize, ret: OpRet, now_s: f64) {
        if let Some(op) = self.ops.get_mut(idx) {
            op.ret = Some(ret);
            op.complete_ns = Some(secs_to_ns(now_s).max(op.invoke_ns));
        }
    }

    /// The history in the checker's terms.
    pub fn to_lincheck(&self) -> Vec<lc::Operation> {
        self.ops
            .iter()
            .enumerate()
            .map(|(i, op)| lc::Operation {
                id: i as u64,
                client: op.client,
                key: op.key.as_bytes().to_vec(),
                call: match &op.call {
                    OpCall::Get => lc::Call::Get,
                    OpCall::Put(v) => lc::Call::Put(v.as_bytes().to_vec()),
                },
                ret: op.ret.as_ref().map(|r| match r {
                    OpRet::Value(v) => lc::Ret::Value(v.as_ref().map(|s| s.as_bytes().to_vec())),
                    OpRet::Done => lc::Ret::Done,
                }),
                invoke_ns: op.invoke_ns,
                complete_ns: op.complete_ns,
            })
            .collect()
    }

    /// Checks the whole history (per key) within `budget`.
    pub fn check(&self, budget: Duration) -> LinResult {
        match lc::check(&self.to_lincheck(), budget) {
            lc::Verdict::Linearizable => LinResult::Linearizable,
            lc::Verdict::NotLinearizable(v) => LinResult::NotLinearizable {
                violation: v.to_string(),
            },
            lc::Verdict::Unknown { key, reason } => LinResult::Unknown {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_map_to_checker_operations() {
        let mut h = History::default();
        let p = h.invoke(0x15, "K", OpCall::Put("v".into()), 1.0);
        let g = h.invoke(0x15, "K", OpCall::Get, 2.0);
        let lost = h.invoke(0x16, "J", OpCall::Put("w".into()), 2.5);
        h.complete(p, OpRet::Done, 1.5);
        h.complete(g, OpRet::Value(Some("v".into())), 2.25);
        let ops = h.to_lincheck();
        assert_eq!(ops.len(), 3);
        assert!(matches!(&ops[0].call, lc::Call::Put(v) if v == b"v"));
        assert_eq!(ops[0].invoke_ns, 1_000_000_000);
        assert_eq!(ops[0].complete_ns, Some(1_500_000_000));
        assert!(matches!(&ops[1].ret, Some(lc::Ret::Value(Some(v))) if v == b"v"));
        assert!(ops[lost].ret.is_none());
        assert_eq!(ops[lost].complete_ns, None);
        assert_eq!(ops[2].client, 0x16);
    }
}
