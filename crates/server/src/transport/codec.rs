//! The peer wire format: length-prefixed, versioned binary frames.
//!
//! ```text
//! frame   = length:u32 (big endian; bytes after this field, 2 ..= max_frame)
//!           version:u8 (= 4) kind:u8 body
//! kind    = 1 Hello       from:varint to:varint cluster:opt(u128 BE) bootstrap:u64 BE
//!                         seen_you:bool
//!         | 2 Raft        raft::Message
//!         | 3 ForwardReq  id:varint request
//!         | 4 ForwardResp id:varint reply
//! ```
//!
//! Integers are LEB128 varints, byte strings are `len:varint bytes`, booleans one byte
//! (0 or 1, anything else is an error), options a flag byte then the value. Every
//! `MessageBody` variant has a tag byte (see `encode_body`). The decoder never trusts a
//! length or count beyond the bytes actually present, never panics, and rejects trailing
//! bytes, so garbage is an error, not a huge allocation or a crash.

mod conf;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use driver::Request;
use kv::varint::put as put_varint;
use raft::{Entry, EntryKind, Membership, Message, MessageBody, NodeId, SnapshotMeta};

use crate::cluster_id::ClusterId;
use crate::reply::Reply;

/// 2: forwarded requests carry their exactly-once session. 3: `Hello` carries the
/// cluster identity and is answered by one. 4: `Hello` says whether the sender has seen
/// the receiver bound to its cluster (`seen_you`: a wiped member refuses to start).
pub const VERSION: u8 = 4;
/// The length prefix.
pub const LEN_BYTES: usize = 4;

const KIND_HELLO: u8 = 1;
const KIND_RAFT: u8 = 2;
const KIND_FORWARD_REQ: u8 = 3;
const KIND_FORWARD_RESP: u8 = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// First frame on every connection, and the acceptor's answer to it: who is calling
    /// whom, and which cluster each belongs to (`cluster_id/`). The receiver refuses a
    /// connection from an unknown node, meant for another one, or of another cluster.
    Hello {
        from: NodeId,
        to: NodeId,
        /// The sender's cluster ID; `None` while it has none yet (bootstrap).
        cluster: Option<ClusterId>,
        /// The fingerprint of the sender's bootstrap member list.
        bootstrap: u64,
        /// The sender is bound and has seen `to` bound to the same cluster ID (it holds
        /// `to` in its `seen_members` file): an unbound `to` lost its data directory
        /// and must not adopt the ID (`cluster_id/`).
        seen_you: bool,
    },
    Raft(Message),
    /// A client request a follower passes to the leader; `id` is the follower's.
    ForwardReq {
        id: u64,
        req: Request,
        /// The write's exactly-once session, if it has one.
        session: Option<kv::SessionTag>,
    },
    /// The answer, sent back over the leader's own connection to the follower.
    ForwardResp {
        id: u64,
        reply: Reply,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("frame of {0} bytes is too short for a header")]
    TooShort(usize),
    #[error("unsupported frame version {0} (this node speaks {VERSION})")]
    Version(u8),
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("unknown {what} tag {tag}")]
    UnknownTag { what: &'static str, tag: u8 },
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("varint too long in {0}")]
    Varint(&'static str),
    #[error("{0} is not a boolean")]
    Bool(&'static str),
    #[error("{what}: count {count} exceeds the bytes left")]
    Count { what: &'static str, count: u64 },
    #[error("{0} bytes left over after the frame body")]
    Trailing(usize),
    /// An append that is not a slice of a Raft log (see [`check_append_run`]).
    #[error("append entry {position} (index {index}, term {term}) {why}")]
    BadAppend {
        position: usize,
        index: u64,
        term: u64,
        why: &'static str,
    },
    /// A snapshot's membership that is not a valid one (`raft::Membership::decode`).
    #[error("bad membership in a snapshot frame")]
    Membership,
    /// A typed-model command, query or reply inside the frame did not decode.
    #[error("bad {0} in the frame: {1}")]
    Payload(&'static str, kv::DecodeError),
}

// ----- encoding -----

/// Appends one whole frame (length prefix included) to `out`. Returns its size, or an
/// error (and leaves `out` as it was) if it would exceed `max_frame`.
pub fn encode_frame(
    frame: &Frame,
    max_frame: usize,
    out: &mut BytesMut,
) -> Result<usize, CodecError> {
    let start = out.len();
    out.put_u32(0); // patched below
    out.put_u8(VERSION);
    match frame {
        Frame::Hello {
            from,
            to,
            cluster,
            bootstrap,
            seen_you,
        } => {
            out.put_u8(KIND_HELLO);
            put_varint(out, *from);
            put_varint(out, *to);
            put_bool(out, cluster.is_some());
            if let Some(c) = cluster {
                out.put_u128(c.0);
            }
            out.put_u64(*bootstrap);
            put_bool(out, *seen_you);
        }
        Frame::Raft(msg) => {
            out.put_u8(KIND_RAFT);
            encode_message(msg, out);
        }
        Frame::ForwardReq { id, req, session } => {
            out.put_u8(KIND_FORWARD_REQ);
            put_varint(out, *id);
            encode_request(req, out);
            put_bool(out, session.is_some());
            if let Some(tag) = session {
                put_varint(out, tag.client);
                put_varint(out, tag.seq);
                put_varint(out, tag.first_outstanding);
            }
        }
        Frame::ForwardResp { id, reply } => {
            out.put_u8(KIND_FORWARD_RESP);
            put_varint(out, *id);
            encode_reply(reply, out);
        }
    }
    let len = out.len() - start - LEN_BYTES;
    if len > max_frame {
        out.truncate(start);
        return Err(CodecError::TooLarge {
            len,
            max: max_frame,
        });
    }
    out[start..start + LEN_BYTES].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(len + LEN_BYTES)
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.put_slice(b);
}

fn put_bool(out: &mut BytesMut, b: bool) {
    out.put_u8(u8::from(b));
}

fn put_opt_id(out: &mut BytesMut, id: Option<NodeId>) {
    match id {
        None => out.put_u8(0),
        Some(id) => {
            out.put_u8(1);
            put_varint(out, id);
        }
    }
}

/// A count, then the IDs.
fn put_ids<'a>(
    out: &mut BytesMut,
    ids: impl IntoIterator<Item = &'a NodeId, IntoIter: ExactSizeIterator>,
) {
    let ids = ids.into_iter();
    put_varint(out, ids.len() as u64);
    for &id in ids {
        put_varint(out, id);
    }
}

fn put_opt_bytes(out: &mut BytesMut, b: &Option<Bytes>) {
    match b {
        None => out.put_u8(0),
        Some(b) => {
            out.put_u8(1);
            put_bytes(out, b);
        }
    }
}

// Body tags of `MessageBody`.
const T_PRE_VOTE: u8 = 1;
const T_PRE_VOTE_RESP: u8 = 2;
const T_VOTE: u8 = 3;
const T_VOTE_RESP: u8 = 4;
const T_APPEND: u8 = 5;
const T_APPEND_RESP: u8 = 6;
const T_SNAPSHOT: u8 = 7;
const T_SNAPSHOT_RESP: u8 = 8;
const T_TIMEOUT_NOW: u8 = 9;
/// A snapshot chunk whose membership carries member metadata (peer addresses): the
/// membership goes as one `raft::Membership::encode` blob. Without metadata the older
/// `T_SNAPSHOT` form is sent, which every version reads.
const T_SNAPSHOT_META: u8 = 10;

fn encode_message(msg: &Message, out: &mut BytesMut) {
    put_varint(out, msg.from);
    put_varint(out, msg.to);
    put_varint(out, msg.term);
    match &msg.body {
        MessageBody::PreVote {
            last_index,
            last_term,
        } => {
            out.put_u8(T_PRE_VOTE);
            put_varint(out, *last_index);
            put_varint(out, *last_term);
        }
        MessageBody::PreVoteResp { granted, leader } => {
            out.put_u8(T_PRE_VOTE_RESP);
            put_bool(out, *granted);
            put_opt_id(out, *leader);
        }
        MessageBody::Vote {
            last_index,
            last_term,
            transfer,
        } => {
            out.put_u8(T_VOTE);
            put_varint(out, *last_index);
            put_varint(out, *last_term);
            put_bool(out, *transfer);
        }
        MessageBody::VoteResp { granted } => {
            out.put_u8(T_VOTE_RESP);
            put_bool(out, *granted);
        }
        MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            commit,
            stamp,
            leader,
            relay,
            relayed_by,
        } => {
            out.put_u8(T_APPEND);
            put_varint(out, *prev_index);
            put_varint(out, *prev_term);
            put_varint(out, *commit);
            put_varint(out, *stamp);
            put_varint(out, *leader);
            put_ids(out, relay);
            put_ids(out, relayed_by);
            put_varint(out, entries.len() as u64);
            for e in entries {
                put_varint(out, e.term);
                put_varint(out, e.index);
                out.put_u8(e.kind.as_u8());
                put_bytes(out, &e.data);
            }
        }
        MessageBody::AppendResp {
            success,
            index,
            hint_term,
            rejected,
            stamp,
            vouch,
            vouch_index,
        } => {
            out.put_u8(T_APPEND_RESP);
            put_bool(out, *success);
            put_varint(out, *index);
            put_varint(out, *hint_term);
            put_varint(out, *rejected);
            put_varint(out, *stamp);
            put_ids(out, vouch);
            put_varint(out, *vouch_index);
        }
        MessageBody::Snapshot {
            meta,
            offset,
            data,
            done,
            stamp,
        } => {
            if meta.membership.metadata.is_empty() {
                out.put_u8(T_SNAPSHOT);
                put_varint(out, meta.index);
                put_varint(out, meta.term);
                for set in [
                    &meta.membership.voters,
                    &meta.membership.voters_outgoing,
                    &meta.membership.learners,
                ] {
                    put_ids(out, set);
                }
            } else {
                out.put_u8(T_SNAPSHOT_META);
                put_varint(out, meta.index);
                put_varint(out, meta.term);
                put_bytes(out, &meta.membership.encode());
            }
            put_varint(out, *offset);
            put_bytes(out, data);
            put_bool(out, *done);
            put_varint(out, *stamp);
        }
        MessageBody::SnapshotResp {
            index,
            next_offset,
            success,
            stamp,
        } => {
            out.put_u8(T_SNAPSHOT_RESP);
            put_varint(out, *index);
            put_varint(out, *next_offset);
            put_bool(out, *success);
            put_varint(out, *stamp);
        }
        MessageBody::TimeoutNow => out.put_u8(T_TIMEOUT_NOW),
    }
}

const R_GET: u8 = 1;
const R_PUT: u8 = 2;
const R_DELETE: u8 = 3;
const R_CAS: u8 = 4;
const R_SCAN: u8 = 5;
/// A typed-model write or read: `kv::Command::encode` / `kv::Query::encode` bytes.
const R_WRITE: u8 = 6;
const R_READ: u8 = 7;
/// A membership change (`conf.rs`).
const R_CHANGE_MEMBERSHIP: u8 = 8;

fn encode_request(req: &Request, out: &mut BytesMut) {
    match req {
        Request::Get { key } => {
            out.put_u8(R_GET);
            put_bytes(out, key);
        }
        Request::Put { key, value } => {
            out.put_u8(R_PUT);
            put_bytes(out, key);
            put_bytes(out, value);
        }
        Request::Delete { key } => {
            out.put_u8(R_DELETE);
            put_bytes(out, key);
        }
        Request::Cas { key, expected, new } => {
            out.put_u8(R_CAS);
            put_bytes(out, key);
            put_opt_bytes(out, expected);
            put_bytes(out, new);
        }
        Request::Scan {
            prefix,
            after,
            limit,
            max_bytes,
            keys_only,
        } => {
            out.put_u8(R_SCAN);
            put_bytes(out, prefix);
            put_opt_bytes(out, after);
            put_varint(out, u64::from(*limit));
            put_varint(out, u64::from(*max_bytes));
            put_bool(out, *keys_only);
        }
        Request::Write(cmd) => {
            out.put_u8(R_WRITE);
            put_bytes(out, &cmd.encode());
        }
        Request::Read(q) => {
            out.put_u8(R_READ);
            put_bytes(out, &q.encode());
        }
        Request::ChangeMembership(changes) => {
            out.put_u8(R_CHANGE_MEMBERSHIP);
            conf::encode_changes(changes, out);
        }
    }
}

const A_VALUE: u8 = 1;
const A_DONE: u8 = 2;
const A_DELETED: u8 = 3;
const A_CAS: u8 = 4;
const A_REDIRECT: u8 = 5;
const A_FAIL: u8 = 6;
const A_ENTRIES: u8 = 7;
const A_UNKNOWN: u8 = 8;
/// A typed-model answer: `kv::Reply::encode` bytes.
const A_KV: u8 = 9;
/// A membership change completed: the configuration in force (`conf.rs`).
const A_MEMBERSHIP: u8 = 10;
/// A membership change refused, with the core's reason (`conf.rs`).
const A_MEMBERSHIP_REFUSED: u8 = 11;

fn encode_reply(reply: &Reply, out: &mut BytesMut) {
    match reply {
        Reply::Value(v) => {
            out.put_u8(A_VALUE);
            put_opt_bytes(out, v);
        }
        Reply::Done => out.put_u8(A_DONE),
        Reply::Deleted(d) => {
            out.put_u8(A_DELETED);
            put_bool(out, *d);
        }
        Reply::Cas { swapped, current } => {
            out.put_u8(A_CAS);
            put_bool(out, *swapped);
            put_opt_bytes(out, current);
        }
        Reply::Redirect(l) => {
            out.put_u8(A_REDIRECT);
            put_opt_id(out, *l);
        }
        Reply::Fail(why) => {
            out.put_u8(A_FAIL);
            put_bytes(out, why.as_bytes());
        }
        Reply::Unknown(why) => {
            out.put_u8(A_UNKNOWN);
            put_bytes(out, why.as_bytes());
        }
        Reply::Entries(kvs) => {
            out.put_u8(A_ENTRIES);
            put_varint(out, kvs.len() as u64);
            for (k, v) in kvs {
                put_bytes(out, k);
                put_bytes(out, v);
            }
        }
        Reply::Kv(r) => {
            out.put_u8(A_KV);
            put_bytes(out, &r.encode());
        }
        Reply::Membership(m) => {
            out.put_u8(A_MEMBERSHIP);
            conf::encode_membership(m, out);
        }
        Reply::MembershipRefused(e) => {
            out.put_u8(A_MEMBERSHIP_REFUSED);
            conf::encode_refusal(e, out);
        }
    }
}

// ----- decoding -----

/// Decodes one complete frame: `buf` must hold exactly the length prefix and the body.
pub fn decode_frame(buf: &[u8], max_frame: usize) -> Result<Frame, CodecError> {
    if buf.len() < LEN_BYTES {
        return Err(CodecError::Truncated("length prefix"));
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    check_len(len, max_frame)?;
    let body = &buf[LEN_BYTES..];
    if body.len() < len {
        return Err(CodecError::Truncated("frame"));
    }
    if body.len() > len {
        return Err(CodecError::Trailing(body.len() - len));
    }
    decode_body(Bytes::copy_from_slice(body))
}

/// Checks a length prefix before anything is allocated for the body.
pub fn check_len(len: usize, max_frame: usize) -> Result<(), CodecError> {
    if len > max_frame {
        return Err(CodecError::TooLarge {
            len,
            max: max_frame,
        });
    }
    if len < 2 {
        return Err(CodecError::TooShort(len));
    }
    Ok(())
}

/// Decodes a frame body (what follows the length prefix). Byte strings in the result
/// share `body`'s buffer.
pub fn decode_body(body: Bytes) -> Result<Frame, CodecError> {
    let mut r = Reader { buf: body };
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(CodecError::Version(version));
    }
    let frame = match r.u8("kind")? {
        KIND_HELLO => Frame::Hello {
            from: r.varint("hello")?,
            to: r.varint("hello")?,
            cluster: if r.bool("hello cluster")? {
                Some(ClusterId(r.u128("hello cluster")?))
            } else {
                None
            },
            bootstrap: r.u64("hello bootstrap")?,
            seen_you: r.bool("hello seen_you")?,
        },
        KIND_RAFT => Frame::Raft(decode_message(&mut r)?),
        KIND_FORWARD_REQ => Frame::ForwardReq {
            id: r.varint("forward id")?,
            req: decode_request(&mut r)?,
            session: if r.bool("session")? {
                Some(kv::SessionTag {
                    client: r.varint("session client")?,
                    seq: r.varint("session seq")?,
                    first_outstanding: r.varint("session first outstanding")?,
                })
            } else {
                None
            },
        },
        KIND_FORWARD_RESP => Frame::ForwardResp {
            id: r.varint("forward id")?,
            reply: decode_reply(&mut r)?,
        },
        other => return Err(CodecError::UnknownKind(other)),
    };
    if r.buf.has_remaining() {
        return Err(CodecError::Trailing(r.buf.remaining()));
    }
    Ok(frame)
}

struct Reader {
    buf: Bytes,
}

impl Reader {
    fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        if !self.buf.has_remaining() {
            return Err(CodecError::Truncated(what));
        }
        Ok(self.buf.get_u8())
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, CodecError> {
        if self.buf.remaining() < 8 {
            return Err(CodecError::Truncated(what));
        }
        Ok(self.buf.get_u64())
    }

    fn u128(&mut self, what: &'static str) -> Result<u128, CodecError> {
        if self.buf.remaining() < 16 {
            return Err(CodecError::Truncated(what));
        }
        Ok(self.buf.get_u128())
    }

    fn varint(&mut self, what: &'static str) -> Result<u64, CodecError> {
        let mut used = 0;
        let v = kv::varint::get(&self.buf, &mut used).map_err(|e| match e {
            kv::varint::VarintError::Truncated => CodecError::Truncated(what),
            kv::varint::VarintError::Overlong => CodecError::Varint(what),
        });
        self.buf.advance(used.min(self.buf.len()));
        v
    }

    fn bool(&mut self, what: &'static str) -> Result<bool, CodecError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(CodecError::Bool(what)),
        }
    }

    fn bytes(&mut self, what: &'static str) -> Result<Bytes, CodecError> {
        let len = self.varint(what)?;
        if len > self.buf.remaining() as u64 {
            return Err(CodecError::Truncated(what));
        }
        Ok(self.buf.split_to(len as usize))
    }

    /// A count of items that take at least `min_bytes` each: bounded by what is left, so
    /// a forged count cannot make us reserve memory.
    fn count(&mut self, what: &'static str, min_bytes: usize) -> Result<usize, CodecError> {
        let count = self.varint(what)?;
        if count > (self.buf.remaining() / min_bytes) as u64 {
            return Err(CodecError::Count { what, count });
        }
        Ok(count as usize)
    }

    fn opt_id(&mut self, what: &'static str) -> Result<Option<NodeId>, CodecError> {
        Ok(if self.bool(what)? {
            Some(self.varint(what)?)
        } else {
            None
        })
    }

    fn opt_bytes(&mut self, what: &'static str) -> Result<Option<Bytes>, CodecError> {
        Ok(if self.bool(what)? {
            Some(self.bytes(what)?)
        } else {
            None
        })
    }

    fn id_set(
        &mut self,
        what: &'static str,
    ) -> Result<std::collections::BTreeSet<NodeId>, CodecError> {
        let n = self.count(what, 1)?;
        (0..n).map(|_| self.varint(what)).collect()
    }

    fn id_list(&mut self, what: &'static str) -> Result<Vec<NodeId>, CodecError> {
        let n = self.count(what, 1)?;
        (0..n).map(|_| self.varint(what)).collect()
    }
}

fn decode_message(r: &mut Reader) -> Result<Message, CodecError> {
    let from = r.varint("message header")?;
    let to = r.varint("message header")?;
    let term = r.varint("message header")?;
    let body = match r.u8("message tag")? {
        T_PRE_VOTE => MessageBody::PreVote {
            last_index: r.varint("PreVote")?,
            last_term: r.varint("PreVote")?,
        },
        T_PRE_VOTE_RESP => MessageBody::PreVoteResp {
            granted: r.bool("PreVoteResp")?,
            leader: r.opt_id("PreVoteResp")?,
        },
        T_VOTE => MessageBody::Vote {
            last_index: r.varint("Vote")?,
            last_term: r.varint("Vote")?,
            transfer: r.bool("Vote")?,
        },
        T_VOTE_RESP => MessageBody::VoteResp {
            granted: r.bool("VoteResp")?,
        },
        T_APPEND => {
            let prev_index = r.varint("Append")?;
            let prev_term = r.varint("Append")?;
            let commit = r.varint("Append")?;
            let stamp = r.varint("Append")?;
            let leader = r.varint("Append")?;
            let relay = r.id_list("Append relay")?;
            let relayed_by = r.id_list("Append relayed_by")?;
            // An entry takes at least 4 bytes: term, index, kind, data length.
            let n = r.count("Append entries", 4)?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let term = r.varint("entry")?;
                let index = r.varint("entry")?;
                let tag = r.u8("entry kind")?;
                let kind = EntryKind::from_u8(tag).ok_or(CodecError::UnknownTag {
                    what: "entry kind",
                    tag,
                })?;
                let data = r.bytes("entry data")?;
                entries.push(Entry {
                    term,
                    index,
                    kind,
                    data,
                });
            }
            check_append_run(term, prev_index, prev_term, &entries)?;
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
                stamp,
                leader,
                relay,
                relayed_by,
            }
        }
        T_APPEND_RESP => MessageBody::AppendResp {
            success: r.bool("AppendResp")?,
            index: r.varint("AppendResp")?,
            hint_term: r.varint("AppendResp")?,
            rejected: r.varint("AppendResp")?,
            stamp: r.varint("AppendResp")?,
            vouch: r.id_list("AppendResp vouch")?,
            vouch_index: r.varint("AppendResp")?,
        },
        tag @ (T_SNAPSHOT | T_SNAPSHOT_META) => {
            let index = r.varint("Snapshot")?;
            let term = r.varint("Snapshot")?;
            let membership = if tag == T_SNAPSHOT {
                Membership {
                    voters: r.id_set("Snapshot voters")?,
                    voters_outgoing: r.id_set("Snapshot outgoing voters")?,
                    learners: r.id_set("Snapshot learners")?,
                    metadata: Default::default(),
                }
            } else {
                let blob = r.bytes("Snapshot membership")?;
                Membership::decode(&blob).ok_or(CodecError::Membership)?
            };
            MessageBody::Snapshot {
                meta: SnapshotMeta {
                    index,
                    term,
                    membership,
                },
                offset: r.varint("Snapshot")?,
                data: r.bytes("Snapshot data")?,
                done: r.bool("Snapshot")?,
                stamp: r.varint("Snapshot")?,
            }
        }
        T_SNAPSHOT_RESP => MessageBody::SnapshotResp {
            index: r.varint("SnapshotResp")?,
            next_offset: r.varint("SnapshotResp")?,
            success: r.bool("SnapshotResp")?,
            stamp: r.varint("SnapshotResp")?,
        },
        T_TIMEOUT_NOW => MessageBody::TimeoutNow,
        tag => {
            return Err(CodecError::UnknownTag {
                what: "message",
                tag,
            })
        }
    };
    Ok(Message {
        from,
        to,
        term,
        body,
    })
}

/// An append carries a slice of the sender's log, so its entries follow `prev_index`
/// one by one, their terms never go down (from `prev_term` on: terms grow along any Raft
/// log) and none is newer than the message's own term (a leader only holds entries of
/// its term or older). Anything else is a forgery or a bug in the sender; refusing it at
/// decode keeps it out of the core, where a gap or a falling term would corrupt the log.
pub fn check_append_run(
    msg_term: u64,
    prev_index: u64,
    prev_term: u64,
    entries: &[Entry],
) -> Result<(), CodecError> {
    let mut expected_index = prev_index;
    let mut last_term = prev_term;
    for (position, e) in entries.iter().enumerate() {
        let bad = |why| CodecError::BadAppend {
            position,
            index: e.index,
            term: e.term,
            why,
        };
        expected_index = expected_index
            .checked_add(1)
            .ok_or_else(|| bad("follows the last possible index"))?;
        if e.index != expected_index {
            return Err(bad("is out of sequence (entries must be contiguous)"));
        }
        if e.term < last_term {
            return Err(bad("has a lower term than the entry before it"));
        }
        if e.term > msg_term {
            return Err(bad("has a term above the message's"));
        }
        last_term = e.term;
    }
    Ok(())
}

fn decode_request(r: &mut Reader) -> Result<Request, CodecError> {
    Ok(match r.u8("request tag")? {
        R_GET => Request::Get {
            key: r.bytes("key")?,
        },
        R_PUT => Request::Put {
            key: r.bytes("key")?,
            value: r.bytes("value")?,
        },
        R_DELETE => Request::Delete {
            key: r.bytes("key")?,
        },
        R_CAS => Request::Cas {
            key: r.bytes("key")?,
            expected: r.opt_bytes("expected")?,
            new: r.bytes("new")?,
        },
        R_SCAN => Request::Scan {
            prefix: r.bytes("prefix")?,
            after: r.opt_bytes("after")?,
            limit: u32::try_from(r.varint("limit")?).unwrap_or(u32::MAX),
            max_bytes: u32::try_from(r.varint("max_bytes")?).unwrap_or(u32::MAX),
            keys_only: r.bool("keys_only")?,
        },
        R_WRITE => Request::Write(
            kv::Command::decode(&r.bytes("command")?)
                .map_err(|e| CodecError::Payload("command", e))?,
        ),
        R_READ => Request::Read(
            kv::Query::decode(&r.bytes("query")?).map_err(|e| CodecError::Payload("query", e))?,
        ),
        R_CHANGE_MEMBERSHIP => Request::ChangeMembership(conf::decode_changes(r)?),
        tag => {
            return Err(CodecError::UnknownTag {
                what: "request",
                tag,
            })
        }
    })
}

fn decode_reply(r: &mut Reader) -> Result<Reply, CodecError> {
    Ok(match r.u8("reply tag")? {
        A_VALUE => Reply::Value(r.opt_bytes("value")?),
        A_DONE => Reply::Done,
        A_DELETED => Reply::Deleted(r.bool("deleted")?),
        A_CAS => Reply::Cas {
            swapped: r.bool("cas")?,
            current: r.opt_bytes("cas")?,
        },
        A_REDIRECT => Reply::Redirect(r.opt_id("redirect")?),
        A_FAIL => Reply::Fail(String::from_utf8_lossy(&r.bytes("fail")?).into_owned()),
        A_UNKNOWN => Reply::Unknown(String::from_utf8_lossy(&r.bytes("unknown")?).into_owned()),
        A_ENTRIES => {
            let n = r.varint("entries")?;
            // Not preallocated from the untrusted count: a short frame just runs out.
            let mut kvs = Vec::new();
            for _ in 0..n {
                kvs.push((r.bytes("entry key")?, r.bytes("entry value")?));
            }
            Reply::Entries(kvs)
        }
        A_KV => Reply::Kv(
            kv::Reply::decode(&r.bytes("kv reply")?)
                .map_err(|e| CodecError::Payload("reply", e))?,
        ),
        A_MEMBERSHIP => Reply::Membership(conf::decode_membership(r)?),
        A_MEMBERSHIP_REFUSED => Reply::MembershipRefused(conf::decode_refusal(r)?),
        tag => return Err(CodecError::UnknownTag { what: "reply", tag }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn msg(body: MessageBody) -> Frame {
        Frame::Raft(Message {
            from: 1,
            to: u64::MAX,
            term: 300,
            body,
        })
    }

    /// One frame of every kind and every message, request and reply variant.
    fn every_frame() -> Vec<Frame> {
        let entries = vec![
            Entry {
                term: 3,
                index: 10,
                kind: EntryKind::Noop,
                data: Bytes::new(),
            },
            Entry {
                term: 3,
                index: 11,
                kind: EntryKind::Normal,
                data: b("P\x01kvalue"),
            },
            Entry {
                term: 4,
                index: 12,
                kind: EntryKind::ConfChange,
                data: Bytes::from(vec![0xff; 300]),
            },
        ];
        let mut membership = Membership::new([1, 2, 3]);
        membership.voters_outgoing.insert(9);
        membership.learners.insert(u64::MAX);
        let mut with_addresses = membership.clone();
        with_addresses
            .metadata
            .insert(9, Bytes::from_static(b"10.0.0.9:7100"));
        vec![
            msg(MessageBody::Snapshot {
                meta: SnapshotMeta {
                    index: 7,
                    term: 2,
                    membership: with_addresses,
                },
                offset: 0,
                data: b("s"),
                done: false,
                stamp: 9,
            }),
            Frame::Hello {
                from: 1,
                to: 2,
                cluster: None,
                bootstrap: 0,
                seen_you: false,
            },
            Frame::Hello {
                from: u64::MAX,
                to: 3,
                cluster: Some(ClusterId(u128::MAX - 7)),
                bootstrap: u64::MAX,
                seen_you: true,
            },
            msg(MessageBody::PreVote {
                last_index: 5,
                last_term: 2,
            }),
            msg(MessageBody::PreVoteResp {
                granted: false,
                leader: Some(3),
            }),
            msg(MessageBody::PreVoteResp {
                granted: true,
                leader: None,
            }),
            msg(MessageBody::Vote {
                last_index: u64::MAX,
                last_term: 0,
                transfer: true,
            }),
            msg(MessageBody::VoteResp { granted: true }),
            msg(MessageBody::Append {
                prev_index: 9,
                prev_term: 3,
                entries,
                commit: 8,
                stamp: 77,
                leader: 1,
                relay: vec![2, 3],
                relayed_by: vec![4],
            }),
            msg(MessageBody::Append {
                prev_index: 0,
                prev_term: 0,
                entries: vec![],
                commit: 0,
                stamp: 0,
                leader: 0,
                relay: vec![],
                relayed_by: vec![],
            }),
            msg(MessageBody::AppendResp {
                success: false,
                index: 4,
                hint_term: 2,
                rejected: 9,
                stamp: 78,
                vouch: vec![2],
                vouch_index: 9,
            }),
            msg(MessageBody::Snapshot {
                meta: SnapshotMeta {
                    index: 100,
                    term: 5,
                    membership,
                },
                offset: 4096,
                data: b("chunk"),
                done: true,
                stamp: 1,
            }),
            msg(MessageBody::SnapshotResp {
                index: 100,
                next_offset: 8192,
                success: true,
                stamp: 2,
            }),
            msg(MessageBody::TimeoutNow),
            Frame::ForwardReq {
                id: 1,
                req: Request::Get { key: b("k") },
                session: None,
            },
            Frame::ForwardReq {
                id: 2,
                session: Some(kv::SessionTag {
                    client: u64::MAX,
                    seq: 7,
                    first_outstanding: 3,
                }),
                req: Request::Put {
                    key: b("k"),
                    value: Bytes::new(),
                },
            },
            Frame::ForwardReq {
                session: None,
                id: 3,
                req: Request::Delete { key: b("") },
            },
            Frame::ForwardReq {
                session: None,
                id: 4,
                req: Request::Cas {
                    key: b("k"),
                    expected: None,
                    new: b("n"),
                },
            },
            Frame::ForwardReq {
                session: None,
                id: 5,
                req: Request::Cas {
                    key: b("k"),
                    expected: Some(b("o")),
                    new: b("n"),
                },
            },
            Frame::ForwardReq {
                id: 40,
                req: Request::ChangeMembership(vec![
                    raft::ConfChange::AddLearner {
                        id: 4,
                        metadata: b("127.0.0.1:7104"),
                    },
                    raft::ConfChange::Promote { id: 5 },
                    raft::ConfChange::Remove { id: 1 },
                    raft::ConfChange::SetMetadata {
                        id: 2,
                        metadata: b(""),
                    },
                ]),
                session: None,
            },
            Frame::ForwardResp {
                id: 41,
                reply: Reply::Membership({
                    let mut m = Membership::new([1, 2]);
                    m.learners.insert(3);
                    m.metadata.insert(3, b("127.0.0.1:7103"));
                    m
                }),
            },
            Frame::ForwardResp {
                id: 42,
                reply: Reply::MembershipRefused(raft::ConfChangeError::WouldLoseQuorum {
                    healthy: [1, 3].into(),
                }),
            },
            Frame::ForwardResp {
                id: 43,
                reply: Reply::MembershipRefused(raft::ConfChangeError::NotLeader {
                    leader: Some(2),
                }),
            },
            Frame::ForwardResp {
                id: 44,
                reply: Reply::MembershipRefused(raft::ConfChangeError::InProgress { index: 9 }),
            },
            Frame::ForwardResp {
                id: 45,
                reply: Reply::MembershipRefused(raft::ConfChangeError::Settling),
            },
            Frame::ForwardResp {
                id: 6,
                reply: Reply::Value(None),
            },
            Frame::ForwardResp {
                id: 7,
                reply: Reply::Value(Some(b("v"))),
            },
            Frame::ForwardResp {
                id: 8,
                reply: Reply::Done,
            },
            Frame::ForwardResp {
                id: 9,
                reply: Reply::Deleted(true),
            },
            Frame::ForwardResp {
                id: 10,
                reply: Reply::Cas {
                    swapped: false,
                    current: Some(b("c")),
                },
            },
            Frame::ForwardResp {
                id: 11,
                reply: Reply::Redirect(Some(2)),
            },
            Frame::ForwardResp {
                id: 12,
                reply: Reply::Redirect(None),
            },
            Frame::ForwardResp {
                id: 13,
                reply: Reply::Fail("busy".into()),
            },
        ]
    }

    fn encode(f: &Frame) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_frame(f, MAX, &mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn every_variant_round_trips() {
        for f in every_frame() {
            let raw = encode(&f);
            assert_eq!(decode_frame(&raw, MAX).as_ref(), Ok(&f), "{f:?}");
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for f in every_frame() {
            let raw = encode(&f);
            for cut in 0..raw.len() {
                assert!(
                    decode_frame(&raw[..cut], MAX).is_err(),
                    "{f:?} cut at {cut}"
                );
                // Also with a length prefix that agrees with the cut body.
                if cut > LEN_BYTES + 2 {
                    let mut short = raw[..cut].to_vec();
                    let len = (cut - LEN_BYTES) as u32;
                    short[..4].copy_from_slice(&len.to_be_bytes());
                    assert!(
                        decode_frame(&short, MAX).is_err(),
                        "{f:?} body cut at {cut}"
                    );
                }
            }
        }
    }

    #[test]
    fn oversized_frames_are_refused() {
        let big = Frame::ForwardReq {
            session: None,
            id: 1,
            req: Request::Put {
                key: b("k"),
                value: Bytes::from(vec![0; 1000]),
            },
        };
        let mut out = BytesMut::from(&b"keep"[..]);
        assert!(matches!(
            encode_frame(&big, 100, &mut out),
            Err(CodecError::TooLarge { .. })
        ));
        assert_eq!(&out[..], b"keep", "a refused frame leaves the buffer alone");
        let raw = encode(&big);
        assert!(matches!(
            decode_frame(&raw, 100),
            Err(CodecError::TooLarge { .. })
        ));
        assert!(matches!(
            check_len(u32::MAX as usize, MAX),
            Err(CodecError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let bad: Vec<Vec<u8>> = vec![
            vec![0, 0, 0, 2, 2, 1],                // wrong version
            vec![0, 0, 0, 2, 1, 99],               // unknown kind
            vec![0, 0, 0, 1, 1],                   // too short
            vec![0, 0, 0, 5, 1, 2, 1, 1, 1],       // message header then no tag
            vec![0, 0, 0, 6, 1, 2, 1, 1, 1, 42],   // unknown message tag
            vec![0, 0, 0, 7, 1, 2, 1, 1, 1, 4, 2], // bool that is 2
            // Hello with an 11-byte varint.
            vec![
                0, 0, 0, 13, VERSION, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 1,
            ],
            // Append claiming 2^60 entries.
            vec![
                0, 0, 0, 22, 1, 2, 1, 1, 1, 5, 0, 0, 0, 0, 1, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80,
                0x80, 0x80, 0x80, 0x10,
            ],
            // Hello with a trailing byte.
            vec![
                0, 0, 0, 15, VERSION, 1, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
            // Hello whose cluster flag is 2.
            vec![0, 0, 0, 14, VERSION, 1, 1, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            // Hello whose seen_you is 2.
            vec![0, 0, 0, 14, VERSION, 1, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            // Hello without its seen_you byte (a version 3 body).
            vec![0, 0, 0, 13, VERSION, 1, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            // Hello with a cluster flag and 15 of the ID's 16 bytes.
            [
                vec![0, 0, 0, 29, VERSION, 1, 1, 2, 1],
                vec![0; 15],
                vec![0; 8],
                vec![0],
            ]
            .concat(),
            // Hello without its bootstrap fingerprint.
            vec![0, 0, 0, 5, VERSION, 1, 1, 2, 0],
        ];
        for raw in bad {
            assert!(decode_frame(&raw, MAX).is_err(), "{raw:?}");
        }
        // Deterministic pseudo-random bytes behind a valid header never panic.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for n in 0..2000usize {
            let len = n % 64 + 2;
            let mut raw = (len as u32).to_be_bytes().to_vec();
            raw.push(VERSION);
            for _ in 1..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                raw.push(x as u8);
            }
            let _ = decode_frame(&raw, MAX);
        }
    }

    /// A hostile or buggy sender's append: a gap, a repeated index, a term that goes
    /// down (within the entries or below `prev_term`), a term above the message's, an
    /// index past `u64::MAX`. Each is refused at decode, naming the entry.
    #[test]
    fn appends_that_are_not_a_log_slice_are_refused_at_decode() {
        let e = |index, term| Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data: b("x"),
        };
        let append = |prev_index, prev_term, entries| {
            msg(MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit: 0,
                stamp: 0,
                leader: 1,
                relay: vec![],
                relayed_by: vec![],
            })
        };
        let good = append(9, 3, vec![e(10, 3), e(11, 3), e(12, 300)]);
        assert_eq!(decode_frame(&encode(&good), MAX), Ok(good));
        let cases = [
            (append(9, 3, vec![e(10, 3), e(12, 3)]), 1, "out of sequence"),
            (append(9, 3, vec![e(10, 3), e(10, 3)]), 1, "out of sequence"),
            (append(9, 3, vec![e(11, 3)]), 0, "out of sequence"),
            (append(9, 3, vec![e(10, 4), e(11, 3)]), 1, "lower term"),
            (append(9, 5, vec![e(10, 4)]), 0, "lower term"),
            (append(9, 3, vec![e(10, 301)]), 0, "above the message"),
            (append(u64::MAX, 3, vec![e(0, 3)]), 0, "last possible index"),
        ];
        for (frame, at, why) in cases {
            match decode_frame(&encode(&frame), MAX) {
                Err(err @ CodecError::BadAppend { position, .. }) => {
                    assert_eq!(position, at, "{frame:?}");
                    assert!(err.to_string().contains(why), "{err} for {frame:?}");
                }
                other => panic!("{frame:?} decoded as {other:?}"),
            }
        }
    }
}
