//! The peer codec's membership pieces: a forwarded `Request::ChangeMembership`, and the
//! two answers (`Reply::Membership`, `Reply::MembershipRefused`).
//!
//! ```text
//! change   = count, then per step: tag (1 add-learner, 2 promote, 3 remove,
//!            4 set-metadata) | id | metadata bytes (tags 1 and 4 only)
//! refusal  = tag (ConfChangeError variant, see below) | its fields
//! ```

use std::collections::BTreeSet;

use bytes::BytesMut;
use raft::{ConfChange, ConfChangeError, Membership};

use super::{put_bytes, put_ids, put_opt_id, put_varint, CodecError, Reader};

const C_ADD_LEARNER: u8 = 1;
const C_PROMOTE: u8 = 2;
const C_REMOVE: u8 = 3;
const C_SET_METADATA: u8 = 4;

pub(super) fn encode_changes(changes: &[ConfChange], out: &mut BytesMut) {
    put_varint(out, changes.len() as u64);
    for c in changes {
        match c {
            ConfChange::AddLearner { id, metadata } => {
                out.extend_from_slice(&[C_ADD_LEARNER]);
                put_varint(out, *id);
                put_bytes(out, metadata);
            }
            ConfChange::Promote { id } => {
                out.extend_from_slice(&[C_PROMOTE]);
                put_varint(out, *id);
            }
            ConfChange::Remove { id } => {
                out.extend_from_slice(&[C_REMOVE]);
                put_varint(out, *id);
            }
            ConfChange::SetMetadata { id, metadata } => {
                out.extend_from_slice(&[C_SET_METADATA]);
                put_varint(out, *id);
                put_bytes(out, metadata);
            }
        }
    }
}

pub(super) fn decode_changes(r: &mut Reader) -> Result<Vec<ConfChange>, CodecError> {
    // A step takes at least two bytes: its tag and an id.
    let n = r.count("membership change", 2)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let tag = r.u8("membership change step")?;
        let id = r.varint("membership change step")?;
        out.push(match tag {
            C_ADD_LEARNER => ConfChange::AddLearner {
                id,
                metadata: r.bytes("member metadata")?,
            },
            C_PROMOTE => ConfChange::Promote { id },
            C_REMOVE => ConfChange::Remove { id },
            C_SET_METADATA => ConfChange::SetMetadata {
                id,
                metadata: r.bytes("member metadata")?,
            },
            tag => {
                return Err(CodecError::UnknownTag {
                    what: "membership change step",
                    tag,
                })
            }
        });
    }
    Ok(out)
}

pub(super) fn encode_membership(m: &Membership, out: &mut BytesMut) {
    put_bytes(out, &m.encode());
}

pub(super) fn decode_membership(r: &mut Reader) -> Result<Membership, CodecError> {
    let blob = r.bytes("membership")?;
    Membership::decode(&blob).ok_or(CodecError::Membership)
}

pub(super) fn encode_refusal(e: &ConfChangeError, out: &mut BytesMut) {
    use ConfChangeError::*;
    let (tag, id) = match e {
        NotLeader { .. } => (1, None),
        Transferring { to } => (2, Some(*to)),
        TermNotCommitted => (3, None),
        InProgress { index } => (4, Some(*index)),
        Empty => (5, None),
        Duplicate(id) => (6, Some(*id)),
        AlreadyMember(id) => (7, Some(*id)),
        NotAMember(id) => (8, Some(*id)),
        NotALearner(id) => (9, Some(*id)),
        NotCaughtUp(id) => (14, Some(*id)),
        NoVoters => (10, None),
        WouldLoseQuorum { .. } => (11, None),
        TooLarge => (12, None),
        Busy => (13, None),
        Settling => (15, None),
    };
    out.extend_from_slice(&[tag]);
    if let Some(id) = id {
        put_varint(out, id);
    }
    match e {
        NotLeader { leader } => put_opt_id(out, *leader),
        WouldLoseQuorum { healthy } => put_ids(out, healthy),
        _ => {}
    }
}

pub(super) fn decode_refusal(r: &mut Reader) -> Result<ConfChangeError, CodecError> {
    use ConfChangeError::*;
    let what = "membership refusal";
    Ok(match r.u8(what)? {
        1 => NotLeader {
            leader: r.opt_id(what)?,
        },
        2 => Transferring {
            to: r.varint(what)?,
        },
        3 => TermNotCommitted,
        4 => InProgress {
            index: r.varint(what)?,
        },
        5 => Empty,
        6 => Duplicate(r.varint(what)?),
        7 => AlreadyMember(r.varint(what)?),
        8 => NotAMember(r.varint(what)?),
        9 => NotALearner(r.varint(what)?),
        10 => NoVoters,
        11 => WouldLoseQuorum {
            healthy: r.id_set(what)?.into_iter().collect::<BTreeSet<_>>(),
        },
        12 => TooLarge,
        13 => Busy,
        14 => NotCaughtUp(r.varint(what)?),
        15 => Settling,
        tag => return Err(CodecError::UnknownTag { what, tag }),
    })
}
