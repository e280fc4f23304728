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

/// Step 3 (module docs): waits until this learner's log is within `PROMOTE_LAG`
/// entries of the commit index it knows, then asks for its promotion, retrying while
/// the cluster cannot take it yet. Returns once this node votes (or was removed).
pub async fn promote_when_caught_up(node: NodeHandle, me: NodeId) {
    let mut said = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(s) = node.status().await else {
            return; // shutting down
        };
        if s.membership.voters.contains(&me) {
            tracing::info!("this node is a voter");
            return;
        }
        let learner = s.membership.learners.contains(&me);
        let caught_up = learner
            && s.leader.is_some()
            && s.commit_index > 0
            && s.applied_index + PROMOTE_LAG >= s.commit_index;
        if !caught_up {
            if said.elapsed() > Duration::from_secs(10) {
                said = Instant::now();
                tracing::info!(
                    applied = s.applied_index,
                    commit = s.commit_index,
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
