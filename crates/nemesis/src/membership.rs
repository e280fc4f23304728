//! The membership faults, through the nodes' admin routes as an operator would:
//! a leader transfer (`POST /transfer-leader?to=ID`), and a follower replaced
//! (`DELETE /members/ID`, stop, wipe, `raftkv serve --join`, promoted by itself).
//!
//! Each step is bounded by a timeout; a step that times out is a finding (the run FAILs
//! with the step's message), not noise.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::Rng;

use crate::admin::request;
use crate::cluster::{exit_summary, Cluster};
use crate::run::INTERRUPTED;

/// `DELETE /members/ID` until the configuration without it is committed.
pub const REMOVE_TIMEOUT: Duration = Duration::from_secs(30);
/// From the start with `--join` until it is a voter again in a committed, non-joint
/// configuration. The server's own join request retries for up to 60 s while there is
/// no leader; a catch-up of a few MB by snapshot and log takes seconds.
pub const REJOIN_TIMEOUT: Duration = Duration::from_secs(90);
/// One admin write: the server answers a transfer within 5 s and a membership change once
/// committed (or `504` after its own request timeout, 10 s by default).
const ADMIN_WRITE_TIMEOUT: Duration = Duration::from_secs(15);

/// The configuration as one node's `GET /members` shows it.
#[derive(Clone, Debug)]
pub struct MembersView {
    pub voters: BTreeSet<usize>,
    pub learners: BTreeSet<usize>,
    pub joint: bool,
    pub committed: bool,
}

impl MembersView {
    /// A committed configuration that is not joint: no change in flight.
    pub fn settled(&self) -> bool {
        self.committed && !self.joint
    }
}

/// Node `via`'s view of the configuration, if it answers.
pub fn members(c: &Cluster, via: usize) -> Option<MembersView> {
    let v = crate::admin::get_json(&c.admin_addr(via), "/members", Duration::from_secs(1))?;
    parse_members(&v)
}

fn parse_members(v: &serde_json::Value) -> Option<MembersView> {
    let mut view = MembersView {
        voters: BTreeSet::new(),
        learners: BTreeSet::new(),
        joint: v["joint"].as_bool()?,
        committed: v["committed"].as_bool()?,
    };
    for m in v["members"].as_array()? {
        let id = m["id"].as_u64()? as usize;
        match m["role"].as_str()? {
            "voter" => view.voters.insert(id),
            _ => view.learners.insert(id),
        };
    }
    Some(view)
}

/// A running node other than `not` to send a change through: the leader if known.
fn via(c: &Cluster, not: usize) -> Option<usize> {
    c.leader()
        .filter(|&l| l != not)
        .or_else(|| (1..=c.n).find(|&j| j != not && c.running(j)))
}

/// The leader hands leadership to a random other node. Returns the description; a
/// refusal is described, not an error (the server refuses for good reasons, e.g. a
/// transfer that did not complete within its 5 s).
pub fn transfer(c: &Cluster, rng: &mut impl Rng) -> String {
    let Some(l) = c
        .leader()
        .or_else(|| c.wait_leader(Duration::from_secs(10)))
    else {
        return "no leader known: no transfer".into();
    };
    let others: Vec<usize> = (1..=c.n)
        .filter(|&j| j != l && c.running(j) && !c.nodes[j - 1].paused)
        .collect();
    let Some(&t) = others.choose(rng) else {
        return format!("node {l} leads and no other node runs: no transfer");
    };
    let path = format!("/transfer-leader?to={t}");
    match request(
        &c.admin_addr(l),
        "POST",
        &path,
        None,
        Some(&c.admin_token),
        ADMIN_WRITE_TIMEOUT,
    ) {
        Ok((200, body)) => format!("leadership from node {l} to node {t}: {}", compact(&body)),
        Ok((code, body)) => format!(
            "transfer from node {l} to node {t} refused ({code}): {}",
            compact(&body)
        ),
        Err(e) => format!("transfer from node {l} to node {t}: no answer: {e}"),
    }
}

/// A JSON answer on one line (the server pretty-prints); other text trimmed.
fn compact(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .map_or_else(|_| body.trim().to_string(), |v| v.to_string())
}

/// Step 1 of a replacement: removes node `i` through another node and waits until a
/// settled configuration without it is in force.
pub fn remove(c: &Cluster, i: usize) -> Result<String, String> {
    let t0 = Instant::now();
    let mut last = String::from("no node to ask");
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err("interrupted".into());
        }
        if let Some(v) = via(c, i) {
            if let Some(m) = members(c, v) {
                if m.settled() && !m.voters.contains(&i) && !m.learners.contains(&i) {
                    return Ok(format!(
                        "removed through node {v} in {} ms",
                        t0.elapsed().as_millis()
                    ));
                }
            }
            match request(
                &c.admin_addr(v),
                "DELETE",
                &format!("/members/{i}"),
                None,
                Some(&c.admin_token),
                ADMIN_WRITE_TIMEOUT,
            ) {
                // Checked by the next turn's /members.
                Ok((200, _)) => last = format!("node {v} answered 200"),
                Ok((code, body)) => last = format!("node {v} answered {code}: {}", compact(&body)),
                Err(e) => last = e,
            }
        }
        if t0.elapsed() >= REMOVE_TIMEOUT {
            return Err(format!(
                "removing node {i} did not complete within {} s (last: {last})",
                REMOVE_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The last step of a replacement: node `i` (down, data dir wiped, `join_via` set) is
/// started with `--join` and must become a voter of a settled configuration, seen by
/// another node, and answer `/status` itself.
pub fn rejoin(c: &mut Cluster, i: usize) -> Result<String, String> {
    let through = c.nodes[i - 1].join_via.clone().unwrap_or_default();
    c.start(i, None)?;
    let t0 = Instant::now();
    let mut last = String::from("no answer");
    while t0.elapsed() < REJOIN_TIMEOUT {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err("interrupted".into());
        }
        if let Some(st) = c.exited(i) {
            return Err(format!(
                "node {i} started with --join {through} exited ({st}); its last log lines:\n{}",
                exit_summary(&c.log_path(i))
            ));
        }
        if let Some(v) = via(c, i) {
            match members(c, v) {
                Some(m) if m.settled() && m.voters.contains(&i) && c.status(i).is_some() => {
                    c.nodes[i - 1].join_via = None;
                    return Ok(format!(
                        "node {i} joined through {through} and is a voter again after {} ms",
                        t0.elapsed().as_millis()
                    ));
                }
                Some(m) => last = format!("node {v} sees {m:?}"),
                None => last = format!("node {v}: no answer to GET /members"),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!(
        "node {i}, started with --join {through} on an empty data dir, was not a voter again \
         within {} s (last: {last}); its last log lines:\n{}",
        REJOIN_TIMEOUT.as_secs(),
        exit_summary(&c.log_path(i))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_answers_parse() {
        let v = serde_json::json!({
            "committed": true, "joint": false,
            "members": [
                {"id": 1, "role": "voter"}, {"id": 2, "role": "voter"},
                {"id": 3, "role": "learner"}
            ]
        });
        let m = parse_members(&v).unwrap();
        assert!(m.settled());
        assert_eq!(m.voters, BTreeSet::from([1, 2]));
        assert_eq!(m.learners, BTreeSet::from([3]));
        assert!(parse_members(&serde_json::json!({"members": []})).is_none());
    }
}
