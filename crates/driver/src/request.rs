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
    /// Up to `limit` keys starting with `prefix`, in key order, after `after` if given,
    /// and no more once the page holds `max_bytes` of keys and values (the entry that
    /// reaches it is included, so a page is never empty while keys remain). More keys
    /// may follow when the page has `limit` entries or reached `max_bytes` (see
    /// [`scan_page_is_full`]). With `keys_only` the values come back empty.
    Scan {
        prefix: Bytes,
        after: Option<Bytes>,
        limit: u32,
        max_bytes: u32,
        keys_only: bool,
    },
    /// Any write of the typed model: proposed as one entry, stamped with the leader's
    /// wall clock (see `kv::expiry`), answered with [`Response::Reply`].
    Write(kv::Command),
    /// Any read of the typed model: served like `Get` (lease or ReadIndex), answered
    /// with [`Response::Reply`] at the node's read time.
    Read(kv::Query),
    /// A membership change (raft's `ConfChange` steps, applied together), answered with
    /// [`Response::MembershipChanged`] once complete, or
    /// [`Response::MembershipRefused`] with the reason (`membership.rs`).
    ChangeMembership(Vec<raft::ConfChange>),
}

/// Upper bound on keys one scan returns, whatever the caller asks.
pub const MAX_SCAN_LIMIT: u32 = 10_000;

/// Bytes of one entry in a scan page's byte budget.
pub fn scan_entry_bytes(key: &[u8], value: &[u8]) -> usize {
    key.len() + value.len()
}

/// Whether a scan page may have stopped short of the end (ask again after its last key).
pub fn scan_page_is_full(page: &[(Bytes, Bytes)], limit: u32, max_bytes: u32) -> bool {
    let bytes: usize = page.iter().map(|(k, v)| scan_entry_bytes(k, v)).sum();
    page.len() as u32 >= limit.min(MAX_SCAN_LIMIT) || bytes >= max_bytes as usize
}

impl Request {
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Request::Get { .. } | Request::Scan { .. } | Request::Read(_)
        )
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
    /// A membership change is complete: this configuration (plain, committed) is in
    /// force.
    MembershipChanged(raft::Membership),
    /// A membership change was refused, and nothing was appended: here is why.
    MembershipRefused(raft::ConfChangeError),
    /// What a [`Request::Write`] or [`Request::Read`] answered.
    Reply(kv::Reply),
    /// Not the leader: ask this one (or anyone, if `None`).
    Redirect(Option<NodeId>),
    /// The request was not executed and will not be (the reason is for logs and error
    /// replies): retrying it is safe.
    Fail(&'static str),
    /// Whether the request took effect is not known (it may have been applied, or may
    /// still be): a write must be retried only with its session.
    Unknown(&'static str),
}

impl Response {
    /// True when the answer promises the request did not take effect.
    pub fn not_executed(&self) -> bool {
        matches!(
            self,
            Response::Fail(_) | Response::Redirect(_) | Response::MembershipRefused(_)
        )
    }
}
