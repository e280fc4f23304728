//! Client requests as the driver sees them, whatever protocol they came in on.

use bytes::Bytes;
use raft::NodeId;

/// Chosen by the server; comes back with the response.
pub type ReqId = u64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Get {
        key: Bytes,
    },
    Put {
        key: Bytes,
        value: Bytes,
    },
    Delete {
        key: Bytes,
    },
    Cas {
        key: Bytes,
        expected: Option<Bytes>,
        new: Bytes,
    },
    /// Up to `limit` keys starting with `prefix`, in key order, after `after` if given.
    Scan {
        prefix: Bytes,
        after: Option<Bytes>,
        limit: u32,
    },
}

/// Upper bound on keys one scan returns, whatever the caller asks.
pub const MAX_SCAN_LIMIT: u32 = 10_000;

impl Request {
    pub fn is_read(&self) -> bool {
        matches!(self, Request::Get { .. } | Request::Scan { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// A read's result (`None`: the key is absent).
    Value(Option<Bytes>),
    /// A write was committed and applied.
    Done,
    Deleted(bool),
    Cas {
        swapped: bool,
        current: Option<Bytes>,
    },
    /// A scan's keys and values, in key order.
    Entries(Vec<(Bytes, Bytes)>),
    /// Not the leader: ask this one (or anyone, if `None`).
    Redirect(Option<NodeId>),
    /// The request cannot be served (the reason is for logs and error replies).
    Fail(&'static str),
}
