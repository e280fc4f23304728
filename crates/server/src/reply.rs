//! The answer to one client request, as the server passes it around: between the node
//! loop and a client connection, and between nodes when a follower forwards a request.
//!
//! It mirrors [`node::Response`] except that a failure carries an owned message (it may
//! have crossed the network, so it cannot be a `&'static str`).

use bytes::Bytes;
use node::Response;
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
    Fail(String),
    /// A scan's keys and values, in key order.
    Entries(Vec<(Bytes, Bytes)>),
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
            Response::Entries(kvs) => Reply::Entries(kvs),
        }
    }
}
