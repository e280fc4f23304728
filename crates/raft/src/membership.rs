//! Cluster membership: voters, learners, the outgoing voter set during joint consensus,
//! and each member's opaque metadata; its binary form (the payload of a `ConfChange`
//! entry, and what snapshots carry); and the rule a change of configuration must obey.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use bytes::Bytes;

use crate::types::NodeId;

/// Who votes and who only listens. During a joint configuration (thesis §4.3),
/// decisions need a majority of `voters` *and* a majority of `voters_outgoing`.
///
/// Invariants (checked by [`Membership::validate`], and by the decoder): no node is both
/// a learner and a voter; `voters` is non-empty whenever anything else is (an entirely
/// empty membership means "unknown": a node that has not learned its cluster yet);
/// `metadata` names members only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    /// The voters (of the incoming half, during a joint configuration).
    pub voters: BTreeSet<NodeId>,
    /// Non-empty only while a joint configuration is in force.
    pub voters_outgoing: BTreeSet<NodeId>,
    /// Receive the log but never vote nor count towards a quorum.
    pub learners: BTreeSet<NodeId>,
    /// Opaque bytes per member, carried with the configuration through the log and
    /// snapshots and never interpreted by the core (the server keeps each member's peer
    /// address here, so a node learns where new members are from the log).
    pub metadata: BTreeMap<NodeId, Bytes>,
}

/// Tag of the first (and so far only) form of an encoded membership in a `ConfChange`
/// entry: the entry's payload is this byte, then [`Membership::encode`].
const CONF_ENTRY_FORMAT: u8 = 1;

impl Membership {
    /// A plain configuration of `voters` with no learners.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Membership {
        Membership {
            voters: voters.into_iter().collect(),
            ..Membership::default()
        }
    }

    /// Whether nothing is known: no voters (a node waiting to learn its cluster).
    pub fn is_unknown(&self) -> bool {
        self.voters.is_empty()
    }

    /// Whether a joint configuration (old and new voters both deciding) is in force.
    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }

    /// Every node that votes in either half of a joint configuration.
    pub fn all_voters(&self) -> BTreeSet<NodeId> {
        self.voters.union(&self.voters_outgoing).copied().collect()
    }

    /// Whether `id` votes in either half.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.voters_outgoing.contains(&id)
    }

    /// Whether `id` receives the log (a voter of either half, or a learner).
    pub fn is_member(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.learners.contains(&id)
    }

    /// Every node that receives the log: voters of both halves and learners.
    pub fn members(&self) -> BTreeSet<NodeId> {
        let mut all = self.all_voters();
        all.extend(self.learners.iter().copied());
        all
    }

    /// Whether `id` alone makes a quorum (every voter of both halves is `id`).
    pub fn is_sole_voter(&self, id: NodeId) -> bool {
        !self.voters.is_empty() && self.all_voters().iter().all(|&v| v == id)
    }

    /// The same configuration with only the voters and learners (no metadata): what the
    /// quorum rules see.
    pub fn same_quorums(&self, other: &Membership) -> bool {
        self.voters == other.voters && self.voters_outgoing == other.voters_outgoing
    }

    /// Checks the invariants of the type (see the type's docs).
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.voters.is_empty() {
            return if self.voters_outgoing.is_empty()
                && self.learners.is_empty()
                && self.metadata.is_empty()
            {
                Ok(())
            } else {
                Err("a configuration with members needs at least one voter")
            };
        }
        if self.learners.iter().any(|&id| self.is_voter(id)) {
            return Err("a node is both a learner and a voter");
        }
        if self.metadata.keys().any(|&id| !self.is_member(id)) {
            return Err("metadata for a node that is no member");
        }
        Ok(())
    }

    /// The binary form, little-endian: three node sets in order `voters`,
    /// `voters_outgoing`, `learners`, each `count: u32` then the ids as `u64`,
    /// ascending; then, only if there is any metadata, `count: u32` and per member (by
    /// ascending id) `id: u64 | len: u32 | bytes`. A membership without metadata encodes
    /// exactly as before metadata existed, so older snapshot files still read.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        for set in [&self.voters, &self.voters_outgoing, &self.learners] {
            buf.extend_from_slice(&(set.len() as u32).to_le_bytes());
            for &id in set {
                buf.extend_from_slice(&id.to_le_bytes());
            }
        }
        if !self.metadata.is_empty() {
            buf.extend_from_slice(&(self.metadata.len() as u32).to_le_bytes());
            for (&id, bytes) in &self.metadata {
                buf.extend_from_slice(&id.to_le_bytes());
                buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                buf.extend_from_slice(bytes);
            }
        }
        buf
    }

    /// Inverse of [`Membership::encode`]: `None` unless `buf` is exactly one canonical
    /// encoding (sets strictly ascending, every byte used) of a valid membership.
    pub fn decode(buf: &[u8]) -> Option<Membership> {
        let mut r = Reader { buf, pos: 0 };
        let mut sets: [BTreeSet<NodeId>; 3] = Default::default();
        for set in &mut sets {
            let n = r.u32()? as usize;
            // Bound the count by the bytes left before allocating anything.
            if n > r.left() / 8 {
                return None;
            }
            let mut prev = None;
            for _ in 0..n {
                let id = r.u64()?;
                if prev.is_some_and(|p| p >= id) {
                    return None;
                }
                prev = Some(id);
                set.insert(id);
            }
        }
        let [voters, voters_outgoing, learners] = sets;
        let mut metadata = BTreeMap::new();
        if r.left() > 0 {
            let n = r.u32()? as usize;
            if n == 0 || n > r.left() / 12 {
                return None; // an empty section is not canonical
            }
            let mut prev = None;
            for _ in 0..n {
                let id = r.u64()?;
                if prev.is_some_and(|p| p >= id) {
                    return None;
                }
                prev = Some(id);
                let len = r.u32()? as usize;
                let bytes = r.take(len)?;
                metadata.insert(id, Bytes::copy_from_slice(bytes));
            }
        }
        if r.left() != 0 {
            return None;
        }
        let m = Membership {
            voters,
            voters_outgoing,
            learners,
            metadata,
        };
        m.validate().ok()?;
        Some(m)
    }

    /// The payload of a `ConfChange` entry carrying this configuration.
    pub fn to_entry_data(&self) -> Bytes {
        let mut data = Vec::with_capacity(1 + 40);
        data.push(CONF_ENTRY_FORMAT);
        data.extend_from_slice(&self.encode());
        Bytes::from(data)
    }

    /// The configuration a `ConfChange` entry's payload carries; `None` if it is not one
    /// (an append holding such an entry is refused whole, see `hostile.rs`).
    pub fn from_entry_data(data: &[u8]) -> Option<Membership> {
        match data.split_first() {
            Some((&CONF_ENTRY_FORMAT, rest)) => {
                Membership::decode(rest).filter(|m| !m.is_unknown())
            }
            _ => None,
        }
    }
}

/// Whether a leader may go from configuration `prev` to `next` in one log entry
/// (thesis §4.3, joint consensus). The allowed steps are exactly the ones whose every
/// quorum overlaps every quorum of the step before, so two leaders cannot be elected
/// (or commit) on disjoint majorities across the step:
///
/// - entering a joint configuration: `next.voters_outgoing` is `prev.voters` (a plain
///   configuration), so a joint quorum holds a majority of the old voters;
/// - leaving it: `next` is plain and its voters are `prev`'s incoming half, which every
///   joint quorum holds a majority of;
/// - any change of learners or metadata that leaves the voters alone (no quorum moves);
/// - between two plain configurations, a change whose majorities all intersect (adding
///   or removing one voter: the single-server rule of §4.2). The core itself never
///   takes that step — every change of voters goes through a joint configuration — but
///   it is safe, so a follower does not refuse it.
///
/// An unknown `prev` (a node that has not learned its cluster yet) accepts anything.
pub fn is_valid_transition(prev: &Membership, next: &Membership) -> bool {
    if next.is_unknown() {
        return false;
    }
    if prev.is_unknown() || prev.same_quorums(next) {
        return true;
    }
    match (prev.is_joint(), next.is_joint()) {
        (false, true) => next.voters_outgoing == prev.voters,
        (true, false) => next.voters == prev.voters,
        (true, true) => false,
        (false, false) => majorities_intersect(&prev.voters, &next.voters),
    }
}

/// Whether every majority of `a` intersects every majority of `b`. Two disjoint
/// majorities would take, from the nodes in both, at least `need_a - |a \ b|` for `a`'s
/// and `need_b - |b \ a|` for `b`'s; they exist exactly when the shared nodes suffice.
pub fn majorities_intersect(a: &BTreeSet<NodeId>, b: &BTreeSet<NodeId>) -> bool {
    if a.is_empty() || b.is_empty() {
        return true; // an empty half constrains nothing (see `quorum.rs`)
    }
    let only_a = a.difference(b).count();
    let only_b = b.difference(a).count();
    let shared = a.intersection(b).count();
    let need_a = (a.len() / 2 + 1).saturating_sub(only_a);
    let need_b = (b.len() / 2 + 1).saturating_sub(only_b);
    need_a + need_b > shared
}

/// A cursor for [`Membership::decode`].
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn set(ids: &[u64]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    fn sample() -> Membership {
        Membership {
            voters: set(&[1, 2, 4]),
            voters_outgoing: set(&[1, 2, 3]),
            learners: set(&[9]),
            metadata: [(4, Bytes::from_static(b"10.0.0.4:7100")), (9, Bytes::new())]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn encoding_round_trips_and_no_truncation_reads_back() {
        for m in [sample(), Membership::new([1, 2, 3]), Membership::default()] {
            let buf = m.encode();
            assert_eq!(Membership::decode(&buf), Some(m.clone()));
            // Cut exactly before the (optional) metadata section, what is left is the
            // same membership without metadata; anywhere else it does not decode. The
            // containers (snapshot header, log entry) carry lengths and checksums.
            let sets_end = 12 + 8 * (m.voters.len() + m.voters_outgoing.len() + m.learners.len());
            for cut in 0..buf.len() {
                let got = Membership::decode(&buf[..cut]);
                if cut == sets_end {
                    let mut bare = m.clone();
                    bare.metadata.clear();
                    assert_eq!(got, Some(bare).filter(|b| b.validate().is_ok()));
                } else {
                    assert_eq!(got, None, "cut at {cut}");
                }
            }
            let mut longer = buf.clone();
            longer.push(0);
            assert_eq!(Membership::decode(&longer), None);
        }
    }

    #[test]
    fn without_metadata_the_encoding_is_the_old_one() {
        // What storage wrote before metadata existed: three sets and nothing else.
        let old = [
            &1u32.to_le_bytes()[..],
            &7u64.to_le_bytes(),
            &0u32.to_le_bytes(),
            &0u32.to_le_bytes(),
        ]
        .concat();
        assert_eq!(Membership::new([7]).encode(), old);
        assert_eq!(Membership::decode(&old), Some(Membership::new([7])));
    }

    #[test]
    fn decoding_refuses_invalid_memberships() {
        let mut m = Membership::new([1, 2]);
        m.learners.insert(2);
        assert_eq!(Membership::decode(&m.encode()), None, "learner and voter");
        let mut m = Membership::new([1, 2]);
        m.metadata.insert(5, Bytes::new());
        assert_eq!(
            Membership::decode(&m.encode()),
            None,
            "metadata of a stranger"
        );
        let m = Membership {
            learners: set(&[3]),
            ..Membership::default()
        };
        assert_eq!(Membership::decode(&m.encode()), None, "learners, no voters");
    }

    #[test]
    fn entry_payload_round_trips_and_refuses_unknown_formats() {
        let m = sample();
        assert_eq!(Membership::from_entry_data(&m.to_entry_data()), Some(m));
        assert_eq!(Membership::from_entry_data(&[]), None);
        assert_eq!(
            Membership::from_entry_data(&Membership::default().to_entry_data()),
            None,
            "an entry never carries the unknown configuration"
        );
        let mut other = vec![2u8];
        other.extend_from_slice(&Membership::new([1]).encode());
        assert_eq!(Membership::from_entry_data(&other), None);
    }

    #[test]
    fn majority_intersection() {
        assert!(majorities_intersect(&set(&[1, 2, 3]), &set(&[1, 2, 3, 4])));
        assert!(majorities_intersect(&set(&[1, 2, 3]), &set(&[1, 2])));
        // Switching two voters at once: {1,3} and {2,4} are majorities of each.
        assert!(!majorities_intersect(&set(&[1, 2, 3]), &set(&[1, 2, 4])));
        assert!(!majorities_intersect(
            &set(&[1, 2, 3]),
            &set(&[1, 2, 3, 4, 5])
        ));
        assert!(!majorities_intersect(&set(&[1]), &set(&[2])));
    }

    #[test]
    fn transitions_joint_and_single_server_only() {
        let plain = Membership::new([1, 2, 3]);
        let joint = Membership {
            voters: set(&[1, 2, 4]),
            voters_outgoing: set(&[1, 2, 3]),
            ..Membership::default()
        };
        let left = Membership::new([1, 2, 4]);
        assert!(is_valid_transition(&plain, &joint));
        assert!(is_valid_transition(&joint, &left));
        assert!(
            !is_valid_transition(&plain, &left),
            "two voters in one step"
        );
        assert!(
            !is_valid_transition(&joint, &plain),
            "leaving to the old half"
        );
        let mut with_learner = plain.clone();
        with_learner.learners.insert(7);
        assert!(is_valid_transition(&plain, &with_learner));
        assert!(is_valid_transition(&plain, &Membership::new([1, 2, 3, 4])));
        assert!(is_valid_transition(&Membership::default(), &left));
        assert!(!is_valid_transition(&plain, &Membership::default()));
    }
}
