//! `raftkv serve --join ADMIN_ADDR`: a new node on an empty data directory joins a
//! running cluster.
//!
//! 1. Before the node starts ([`prepare`]): it asks the member at `ADMIN_ADDR` (its HTTP
//!    admin address; HTTPS with the node's CA when TLS is configured; the admin
//!    credential from `RAFTKV_ADMIN_TOKEN`) to add it (`POST /members/join`). That
//!    member adds it as a learner (through the leader), or refuses — while the node's ID
//!    is still a voter of the cluster, with what to do (remove it, then join again): a
//!    node on an empty data directory forgot its vote and its log. The answer carries
//!    the cluster ID, which the node records as its identity (`cluster_id/file.rs`), and
//!    every member's peer address, recorded as hints in its `membership` file
//!    (`members/file.rs`) with an unknown bootstrap membership: it learns the
//!    configuration from the leader (a snapshot or the log), and grants no vote until
//!    it has.
//! 2. The node starts; the leader, which dials it as soon as the learner's entry is
//!    appended, brings it up to date (a snapshot, then the log).
//! 3. Once its log is within [`PROMOTE_LAG`](crate::members::PROMOTE_LAG) entries of
//!    the commit index the leader sends it, it asks for its own promotion
//!    ([`promote_when_caught_up`], unless `--learner`), through its own node (a learner
//!    forwards the change to the leader as any request).
//!
//! A data directory that already belongs to a cluster (an identity or membership file,
//! or a log) ignores `--join`: it restarts as the member it is.

use std::time::{Duration, Instant};

use axum::http::Method;
use raft::{ConfChange, ConfChangeError, NodeId};

use crate::admin_client::AdminClient;
use crate::cluster_id::{file as identity_file, ClusterId};
use crate::config::Config;
use crate::handle::NodeHandle;
use crate::members::file::{self as members_file, MembershipFile};
use crate::members::PROMOTE_LAG;
use crate::reply::Reply;
use crate::status::{MembershipStatus, Status};

/// How long the join request is retried while the member has no leader (`503`).
const JOIN_PATIENCE: Duration = Duration::from_secs(60);

/// Step 1 (module docs). `Ok(false)`: the data directory already belongs to a cluster,
/// `--join` is ignored. Blocking: call it before the runtime starts.
pub fn prepare(cfg: &Config, admin_addr: &str, client: &AdminClient) -> Result<bool, String> {
    if identity_file::read(&cfg.data_dir)?.is_some()
        || members_file::read(&cfg.data_dir)?.is_some()
        || crate::members::has_data(&cfg.data_dir)
    {
        tracing::info!(
            data_dir = %cfg.data_dir.display(),
            "--join ignored: this data directory already belongs to a cluster; restarting as its member"
        );
        return Ok(false);
    }
    let body = serde_json::json!({ "id": cfg.id, "peer_addr": cfg.peer_addr });
    let deadline = Instant::now() + JOIN_PATIENCE;
    let answer = loop {
        let result = client.request(admin_addr, Method::POST, "/members/join", Some(&body));
        match result {
            Ok((200, text)) => break text,
            Ok((503, text)) | Ok((504, text)) if Instant::now() < deadline => {
                tracing::info!(
                    "joining through {admin_addr}: not yet ({}); retrying",
                    text.trim()
                );
            }
            Ok((code @ (401 | 403), text)) => {
                return Err(format!(
                    "{admin_addr} refused to add this node ({code}: {}): joining needs the \
                     cluster's admin credential in RAFTKV_ADMIN_TOKEN",
                    text.trim()
                ))
            }
            Ok((code, text)) => {
                let v: serde_json::Value =
                    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()));
                let why = v["error"].as_str().map(String::from).unwrap_or(text);
                return Err(format!(
                    "{admin_addr} refused to add node {} ({code}): {why}",
                    cfg.id
                ));
            }
            Err(e) if Instant::now() < deadline => {
                tracing::info!("joining through {admin_addr}: {e}; retrying");
            }
            Err(e) => return Err(format!("cannot reach {admin_addr} to join: {e}")),
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let v: serde_json::Value =
        serde_json::from_str(&answer).map_err(|e| format!("bad answer from {admin_addr}: {e}"))?;
    let cluster_id: ClusterId = v["cluster_id"]
        .as_str()
        .ok_or_else(|| format!("{admin_addr} sent no cluster ID"))?
        .parse()?;
    let hints = v["addresses"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, a)| Some((k.parse::<NodeId>().ok()?, a.as_str()?.to_string())))
        .filter(|(id, _)| *id != cfg.id)
        .collect();
    // The membership file first: with it, a crash before the identity is written still
    // refuses to start as a new cluster (the data directory is no longer empty).
    members_file::write(
        &cfg.data_dir,
        &MembershipFile {
            membership: raft::Membership::default(),
            hints,
        },
    )?;
    identity_file::write(
        &cfg.data_dir,
        &identity_file::IdentityFile {
            member_id: cfg.id,
            cluster_id,
        },
    )?;
    tracing::info!(
        %cluster_id,
        through = admin_addr,
        "joined cluster {cluster_id} as a learner; catching up from the leader"
    );
    Ok(true)
}

/// What [`next_step`] reads of the node's status.
struct Progress<'a> {
    membership: &'a MembershipStatus,
    leader: Option<NodeId>,
    last_index: u64,
    applied_index: u64,
    known_commit: u64,
}

impl<'a> From<&'a Status> for Progress<'a> {
    fn from(s: &'a Status) -> Self {
        Progress {
            membership: &s.membership,
            leader: s.leader,
            last_index: s.last_index,
            applied_index: s.applied_index,
            known_commit: s.known_commit,
        }
    }
}

/// What a joining node does next, from its status.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// It votes: done.
    Voter,
    /// Ask the leader to promote it.
    AskPromotion,
    /// Not caught up yet (or it cannot tell yet).
    Wait,
}

/// The configuration in force counts only once the log reaches the commit index a
/// leader told this node: before, it may be one of an earlier life of this ID (a
/// replacement under its old ID replays the log, or installs a snapshot taken before
/// its removal, and meets configurations that name it a voter). Found by the nemesis:
/// such a node took itself for a voter, never asked, and stayed a learner.
fn next_step(s: &Progress, me: NodeId) -> Next {
    let current = s.known_commit > 0 && s.last_index >= s.known_commit;
    if !current {
        return Next::Wait;
    }
    if s.membership.voters.contains(&me) {
        return Next::Voter;
    }
    let caught_up = s.membership.learners.contains(&me)
        && s.leader.is_some()
        && s.applied_index + PROMOTE_LAG >= s.known_commit;
    if caught_up {
        Next::AskPromotion
    } else {
        Next::Wait
    }
}

/// Step 3 (module docs): waits until this learner's log is within `PROMOTE_LAG`
/// entries of the commit index the leader told it, then asks for its promotion,
/// retrying while the cluster cannot take it yet. Returns once this node votes.
pub async fn promote_when_caught_up(node: NodeHandle, me: NodeId) {
    let mut said = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(s) = node.status().await else {
            return; // shutting down
        };
        let next = next_step(&Progress::from(&s), me);
        if next == Next::Voter {
            tracing::info!("this node is a voter");
            return;
        }
        if next == Next::Wait {
            let learner = s.membership.learners.contains(&me);
            if said.elapsed() > Duration::from_secs(10) {
                said = Instant::now();
                tracing::info!(
                    applied = s.applied_index,
                    known_commit = s.known_commit,
                    learner,
                    "catching up before asking for promotion"
                );
            }
            continue;
        }
        match node
            .change_membership(vec![ConfChange::Promote { id: me }])
            .await
        {
            Ok(Reply::Membership(m)) if m.is_voter(me) => {
                tracing::info!(voters = ?m.voters, "promoted to voter");
                return;
            }
            Ok(Reply::MembershipRefused(ConfChangeError::NotALearner(_))) => {}
            Ok(Reply::MembershipRefused(e)) => {
                tracing::debug!("promotion not yet: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Ok(other) => tracing::debug!("promotion: {other:?}; retrying"),
            Err(e) => tracing::debug!("promotion: {e}; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(m: &MembershipStatus, last: u64, applied: u64, known: u64) -> Progress<'_> {
        Progress {
            membership: m,
            leader: Some(1),
            last_index: last,
            applied_index: applied,
            known_commit: known,
        }
    }

    /// Failed before (it answered `Voter`): a snapshot taken before this ID's removal
    /// names it a voter, and the log that re-adds it as a learner has not arrived yet.
    #[test]
    fn a_voter_of_a_configuration_behind_the_known_commit_is_no_voter_yet() {
        let old_life = MembershipStatus {
            voters: vec![1, 2, 3],
            ..MembershipStatus::default()
        };
        assert_eq!(
            next_step(&progress(&old_life, 20_001, 20_001, 37_619), 3),
            Next::Wait
        );
        assert_eq!(
            next_step(&progress(&old_life, 37_619, 37_000, 37_619), 3),
            Next::Voter
        );
    }

    #[test]
    fn a_learner_asks_once_its_log_reaches_the_known_commit() {
        let learner = MembershipStatus {
            voters: vec![1, 2],
            learners: vec![3],
            ..MembershipStatus::default()
        };
        assert_eq!(next_step(&progress(&learner, 0, 0, 0), 3), Next::Wait);
        assert_eq!(
            next_step(&progress(&learner, 500, 500, 9_000), 3),
            Next::Wait
        );
        let lagging_apply = progress(&learner, 9_000, 9_000 - PROMOTE_LAG - 1, 9_000);
        assert_eq!(next_step(&lagging_apply, 3), Next::Wait);
        let near = progress(&learner, 9_000, 9_000 - PROMOTE_LAG, 9_000);
        assert_eq!(next_step(&near, 3), Next::AskPromotion);
    }
}
