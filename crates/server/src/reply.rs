//! The answer to one client request, as the server passes it around: between the node
//! loop and a client connection, and between nodes when a follower forwards a request.
//!
//! It mirrors [`driver::Response`] except that a failure carries an owned message (it may
//! have crossed the network, so it cannot be a `&'static str`).

use bytes::Bytes;
use driver::Response;
use raft::NodeId;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Value(Option<Bytes>),
    Done,
    Deleted(bool),
    Cas {
        swapped: bool,
        current: Option<Bytes>,
    },
    /// Only between nodes: "not the leader, try this one (or anyone, if `None`)". The node
    /// loop resolves redirects by forwarding; a client sees [`Reply::Fail`] if that fails.
    Redirect(Option<NodeId>),
    /// Not executed (safe to retry).
    Fail(String),
    /// The outcome is unknown: the request may have taken effect.
    Unknown(String),
    /// A scan's keys and values, in key order.
    Entries(Vec<(Bytes, Bytes)>),
    /// What a typed-model write or read answered (`driver::Response::Reply`).
    Kv(kv::Reply),
    /// A membership change completed: the configuration now in force.
    Membership(raft::Membership),
    /// A membership change refused (not executed), with the reason.
    MembershipRefused(raft::ConfChangeError),
}

impl From<Response> for Reply {
    fn from(r: Response) -> Reply {
        match r {
            Response::Value(v) => Reply::Value(v),
            Response::Done => Reply::Done,
            Response::Deleted(d) => Reply::Deleted(d),
            Response::Cas { swapped, current } => Reply::Cas { swapped, current },
            Response::Redirect(l) => Reply::Redirect(l),
            Response::Fail(why) => Reply::Fail(why.to_string()),
            Response::Unknown(why) => Reply::Unknown(why.to_string()),
            Response::Entries(kvs) => Reply::Entries(kvs),
            Response::Reply(r) => Reply::Kv(r),
            Response::MembershipChanged(m) => Reply::Membership(m),
            Response::MembershipRefused(e) => Reply::MembershipRefused(e),
        }
    }
}

impl Reply {
    /// Back into the driver's form (an answer that crossed the network). Failure reasons
    /// are static strings in the driver: a known one maps to itself, others to a fixed
    /// text, so a peer can never make us allocate for what it writes there.
    pub fn into_response(self) -> Response {
        match self {
            Reply::Value(v) => Response::Value(v),
            Reply::Done => Response::Done,
            Reply::Deleted(d) => Response::Deleted(d),
            Reply::Cas { swapped, current } => Response::Cas { swapped, current },
            Reply::Redirect(l) => Response::Redirect(l),
            Reply::Fail(why) => {
                Response::Fail(known_reason(&why).unwrap_or("ERR the leader refused the request"))
            }
            Reply::Unknown(why) => Response::Unknown(
                known_reason(&why)
                    .unwrap_or("TIMEOUT the leader failed the request; the outcome is unknown"),
            ),
            Reply::Entries(kvs) => Response::Entries(kvs),
            Reply::Kv(r) => Response::Reply(r),
            Reply::Membership(m) => Response::MembershipChanged(m),
            Reply::MembershipRefused(e) => Response::MembershipRefused(e),
        }
    }

    /// An answer that fits in a peer frame of `max_bytes`. Scan pages are bounded by
    /// their request's byte budget and a single value by `max_value_bytes`, but a value
    /// grown by APPEND, or an EXEC answering several large reads, can exceed a frame:
    /// such an answer becomes an error the client sees at once, never a frame dropped on
    /// the floor while the client waits out its timeout. It is only ever the answer to a
    /// request the leader executed, so the error says so: "not executed" would invite a
    /// resend that applies a write (an INCR in that EXEC, a GETDEL) a second time.
    pub fn fit_frame(self, max_bytes: usize) -> Reply {
        // Room for the frame header, the id and the length prefixes.
        let budget = max_bytes.saturating_sub(64);
        let too_big = match &self {
            Reply::Entries(kvs) => {
                kvs.iter()
                    .map(|(k, v)| k.len() + v.len() + 20)
                    .sum::<usize>()
                    > budget
            }
            Reply::Value(Some(v))
            | Reply::Cas {
                current: Some(v), ..
            } => v.len() + 32 > budget,
            Reply::Kv(r) => r.encode().len() + 32 > budget,
            _ => false,
        };
        if too_big {
            Reply::Fail(ANSWER_TOO_LARGE.into())
        } else {
            self
        }
    }
}

/// A forwarded answer too large for a peer frame: the request was executed.
pub const ANSWER_TOO_LARGE: &str = "ERR executed by the leader, but its answer is too large \
    to forward from it; connect to the leader to read such answers";

/// Interned failure reasons: the driver's are static strings, and a peer's answer
/// carries them as text. At most `MAX_REASONS` distinct ones of at most 200 bytes are
/// kept, so a misbehaving peer cannot make this grow.
fn known_reason(why: &str) -> Option<&'static str> {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    const MAX_REASONS: usize = 64;
    static SEEN: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    if why.len() > 200 {
        return None;
    }
    let mut seen = SEEN.get_or_init(Default::default).lock().ok()?;
    if let Some(s) = seen.get(why) {
        return Some(s);
    }
    if seen.len() >= MAX_REASONS {
        return None;
    }
    let s: &'static str = Box::leak(why.to_owned().into_boxed_str());
    seen.insert(s);
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A too-large answer is the answer to an executed request (here a CAS, a write):
    /// the error must not read as "not executed".
    #[test]
    fn a_too_large_answer_says_the_request_was_executed() {
        let big = Reply::Cas {
            swapped: true,
            current: Some(Bytes::from(vec![b'x'; 4096])),
        };
        let Reply::Fail(why) = big.fit_frame(1024) else {
            panic!("a 4 KiB answer fits a 1 KiB frame");
        };
        assert!(why.contains("executed"), "{why}");
        // And it survives the trip back through the follower's driver unchanged.
        let Response::Fail(back) = Reply::Fail(why.clone()).into_response() else {
            panic!("not a failure");
        };
        assert_eq!(back, why);
        let small = Reply::Value(Some(Bytes::from_static(b"v")));
        assert_eq!(small.clone().fit_frame(1024), small);
    }
}
