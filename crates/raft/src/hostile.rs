//! Defences against a peer that misbehaves — a bug, or a stolen identity (issue 14).
//! These checks hold with or without an authenticated transport: the core must not let
//! one bad member break the cluster, and it must keep serving after refusing.
//!
//! Every refusal is counted in [`crate::CoreStats`] so the driver can log and export it.
//!
//! # The term rule
//!
//! A message is dropped, never adopted and never persisted, when its term is above
//! [`MAX_TERM`] or more than [`MAX_TERM_JUMP`] above ours. Each term costs an election,
//! so no honest peer gets 2³² terms ahead of a node that can hear it, nor near 2⁶⁴; a
//! forged `u64::MAX` would otherwise stick (terms are durable) and make `term + 1` wrap.
//! And since no term above `MAX_TERM` is ever adopted, `term + 1` cannot overflow for a
//! node that started below it; a node restored with a larger term refuses to campaign.

use crate::membership::Membership;
use crate::message::{Message, MessageBody};
use crate::types::{EntryKind, Index, NodeId, Term};

/// The largest term a node adopts or campaigns for. Far beyond any real cluster's
/// terms, and far enough below `u64::MAX` that `term + 1` never wraps.
pub(crate) const MAX_TERM: Term = u64::MAX / 2;

/// How far above ours a message's term may be. A partitioned node without Pre-Vote
/// gains one term per election timeout: 2³² of them take years.
pub(crate) const MAX_TERM_JUMP: Term = 1 << 32;

/// Whether `term`, carried by a peer's message, is one an honest peer could have.
pub(crate) fn plausible_term(ours: Term, term: Term) -> bool {
    term <= MAX_TERM && term <= ours.saturating_add(MAX_TERM_JUMP)
}

/// The next term to campaign in, if we may raise ours.
pub(crate) fn next_term(ours: Term) -> Option<Term> {
    ours.checked_add(1).filter(|&t| t <= MAX_TERM)
}

/// Whether an append's entries are a well-formed suffix: contiguous from
/// `prev_index + 1`, terms never decreasing from `prev_term`, none above the message's
/// term (a leader of term T holds no entry of a later term). A malformed append is
/// refused whole; merging it would corrupt the log (or trip its assertions).
pub(crate) fn well_formed_append(msg: &Message) -> bool {
    let MessageBody::Append {
        prev_index,
        prev_term,
        entries,
        ..
    } = &msg.body
    else {
        return true;
    };
    if *prev_term > msg.term {
        return false;
    }
    let mut expected_index = prev_index.checked_add(1);
    let mut min_term = *prev_term;
    for e in entries {
        if Some(e.index) != expected_index || e.term < min_term || e.term > msg.term {
            return false;
        }
        // A configuration entry that does not decode would leave the log unreadable at
        // restart.
        if e.kind == EntryKind::ConfChange && Membership::from_entry_data(&e.data).is_none() {
            return false;
        }
        expected_index = e.index.checked_add(1);
        min_term = e.term;
    }
    true
}

/// Whether a snapshot's membership may become ours (at the snapshot's index; the
/// receiver's commit index is below it). Memberships change now, so "the same as ours"
/// no longer works: a follower far behind legitimately receives one its log never held.
/// What no legitimate leader sends is a membership that makes the receiver the sole
/// voter when no configuration of its log does: a configuration with one voter commits
/// only on that voter's own log, so the receiver would already hold it (or a later
/// one). Such a snapshot — from a buggy or hostile peer — would have the node elect
/// itself alone (split brain) and is refused, as is one that is not even well formed.
/// An unknown (empty) membership means the sender did not know it: ours stays.
pub(crate) fn acceptable_membership<'a>(
    me: NodeId,
    mut ours: impl Iterator<Item = (Index, &'a Membership)>,
    theirs: &Membership,
) -> bool {
    if theirs.is_unknown() {
        return true;
    }
    if theirs.validate().is_err() {
        return false;
    }
    !theirs.is_sole_voter(me) || ours.any(|(_, m)| m.is_sole_voter(me))
}
