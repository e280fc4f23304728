//! End-of-run checks: convergence, the state machine against a replay of the committed
//! log, acknowledged writes against the log, and linearizability of the history.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kv::{Command, KvStore, Outcome};
use lincheck::{Call, Operation, Ret, Verdict};
use raft::EntryKind;

use super::world::World;

/// A store's whole state: its snapshot, which is canonical (equal bytes, equal state),
/// so keys, values, types, deadlines, versions, the clock and sessions are all compared.
/// Replicas that applied the same index must agree on all of it: that is how the
/// simulator checks that every replica expires the same keys at the same index.
pub fn kv_contents(kv: &KvStore) -> Vec<u8> {
    kv.encode_snapshot()
}

/// All members of the leader's configuration up, none paused, with one commit index
/// that every one has applied, that covers the leader's whole log, and with equal state
/// machines. Machines that are no members (removed, or spares never added) are left
/// out: nothing is sent to them.
pub fn converged(w: &World) -> bool {
    let Some(l) = w.leader() else { return false };
    let Some(lr) = w.machines[l].raft() else {
        return false;
    };
    let target = lr.commit_index();
    if target != lr.log().last_index() {
        return false;
    }
    let mut first: Option<Vec<u8>> = None;
    for m in w.member_slots().into_iter().map(|i| &w.machines[i]) {
        let (Some(node), false) = (&m.node, m.paused) else {
            return false;
        };
        let log = node.raft().log();
        if log.committed != target || log.applied != target || log.last_index() != target {
            return false;
        }
        if node.raft().leader() != Some(l as u64 + 1) {
            return false;
        }
        let contents = kv_contents(node.kv());
        match &first {
            None => first = Some(contents),
            Some(f) if *f != contents => return false,
            Some(_) => {}
        }
    }
    true
}

/// A converged cluster: the log's Put/CAS entries against the acknowledged writes, and
/// every node's state machine against a replay of the committed log.
pub fn check_final_state(w: &World) -> Result<(), String> {
    let l = w.leader().ok_or("no leader at the end")?;
    let node = w.machines[l].node.as_ref().ok_or("leader down")?;
    let committed = node.raft().log().committed;
    let log = w.inv.committed_log();
    if (log.len() as u64) < committed {
        return Err(format!(
            "the leader's commit index {committed} is beyond the {} entries seen committed",
            log.len()
        ));
    }
    let mut replay = KvStore::new();
    // (key, value written) → how many committed entries wrote it, and whether a CAS swapped.
    let mut writes: BTreeMap<(Bytes, Bytes), (u32, bool)> = BTreeMap::new();
    let mut sessions_seen: std::collections::BTreeSet<(u64, u64)> = Default::default();
    for e in &log[..committed as usize] {
        let index = e.index;
        if e.kind != EntryKind::Normal {
            continue;
        }
        let (tag, cmd) =
            kv::session::decode_entry(&e.data).map_err(|err| format!("entry {index}: {err}"))?;
        // A session write proposed twice (a retry) applies once: only its first copy
        // counts, as the state machine's session table decides.
        if let Some(tag) = tag {
            if !sessions_seen.insert((tag.client, tag.seq)) {
                replay.apply_entry(&e.data).ok();
                continue;
            }
        }
        // A plain write comes stamped with its leader's clock (`Command::Timed`).
        let plain = match &cmd {
            Command::Timed { cmd, .. } => cmd.as_ref(),
            cmd => cmd,
        };
        let written = match plain {
            Command::Put { key, value } => Some((key.clone(), value.clone())),
            Command::Cas { key, new, .. } => Some((key.clone(), new.clone())),
            // Typed-model writes are the unchecked TTL writes, on keys apart.
            _ => None,
        };
        let _ = cmd;
        let outcome = replay
            .apply_entry(&e.data)
            .map_err(|err| format!("entry {index}: {err}"))?;
        if let Some(kv) = written {
            let swapped = matches!(outcome, Outcome::Done | Outcome::Cas { swapped: true, .. });
            let slot = writes.entry(kv).or_default();
            slot.0 += 1;
            slot.1 |= swapped;
        }
    }
    let expected = kv_contents(&replay);
    let members = w.member_slots();
    for (i, m) in w.machines.iter().enumerate() {
        let Some(n) = m.node.as_ref() else {
            if members.contains(&i) {
                return Err(format!("member {} is down at the end", m.id));
            }
            continue;
        };
        if members.contains(&i) && kv_contents(n.kv()) != expected {
            return Err(format!(
                "node {}: state machine differs from a replay of the committed log",
                m.id
            ));
        }
        // Removed nodes too: their logs must still match everyone's.
        w.inv.full_pass(n.raft())?;
    }
    w.check_member_answers()?;
    for op in &w.clients.ops {
        // What the client was told: Some(true) = the write took effect.
        let (value, told) = match (&op.call, &op.ret) {
            (Call::Put(v), r) => (v, r.as_ref().map(|_| true)),
            (Call::Cas { new, .. }, Some((_, Ret::Cas(swapped)))) => (new, Some(*swapped)),
            (Call::Cas { new, .. }, _) => (new, None),
            _ => continue,
        };
        let key = (
            Bytes::copy_from_slice(&op.key),
            Bytes::copy_from_slice(value),
        );
        let (count, took_effect) = writes.get(&key).copied().unwrap_or((0, false));
        let what = || {
            format!(
                "{} of {:?} to {:?} (client {}, invoked at {} µs)",
                if matches!(op.call, Call::Put(_)) {
                    "put"
                } else {
                    "cas"
                },
                String::from_utf8_lossy(value),
                String::from_utf8_lossy(&op.key),
                op.client,
                op.invoke
            )
        };
        if count > 1 {
            return Err(format!("{} is in the committed log {count} times", what()));
        }
        if op.failed && count > 0 && took_effect {
            return Err(format!(
                "{} was answered \"not executed\" but is in the committed log",
                what()
            ));
        }
        match told {
            Some(true) if !took_effect => {
                return Err(format!(
                    "acknowledged {} vanished: no committed entry makes it take effect",
                    what()
                ))
            }
            Some(false) if took_effect => {
                return Err(format!(
                    "{} was answered \"not swapped\" but swaps in a replay of the committed log",
                    what()
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The history in lincheck's form (times in simulated µs).
pub fn history(w: &World) -> Vec<Operation> {
    w.clients
        .ops
        .iter()
        .enumerate()
        // An operation answered "not executed" did not happen.
        .filter(|(_, op)| !op.failed)
        .map(|(id, op)| Operation {
            id: id as u64,
            client: op.client as u64,
            key: op.key.clone(),
            call: op.call.clone(),
            ret: op.ret.as_ref().map(|(_, r)| r.clone()),
            invoke_ns: op.invoke,
            complete_ns: op.ret.as_ref().map(|(t, _)| *t),
        })
        .collect()
}

pub fn check_linearizable(w: &World, budget: Duration) -> Result<(), String> {
    match lincheck::check(&history(w), budget) {
        Verdict::Linearizable => Ok(()),
        Verdict::NotLinearizable(v) => Err(format!("not linearizable: {v}")),
        Verdict::Unknown { key, reason } => Err(format!(
            "linearizability unknown on key {:?}: {reason}",
            String::from_utf8_lossy(&key)
        )),
    }
}
