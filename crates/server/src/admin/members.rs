//! The membership routes (raft's `reconfig.rs` does the consensus part; the driver's
//! `membership.rs` answers a change once it is complete):
//!
//! | route | what |
//! |---|---|
//! | `GET /members` | the configuration in force: each member's ID, peer address, voter or learner, match index and lag (known on the leader), and the leader |
//! | `POST /members` `{"id": N, "peer_addr": "host:port"}` | adds N as a learner |
//! | `POST /members/:id/promote` | makes learner `id` a voter (a joint configuration, left at once) |
//! | `DELETE /members/:id` | removes `id` (the leader first hands leadership over if it is the one) |
//! | `POST /members/join` `{"id": N, "peer_addr": "host:port"}` | what `raftkv serve --join` asks: adds N as a learner unless it is one, answers the cluster ID and every member's address; refused while N is still a voter |
//!
//! Any node takes any of them: a change goes to the leader as a client's write would.
//! Answers: `200` with the configuration once the change is complete; `409` with the
//! core's reason when it was refused (nothing changed; `"retry": true` when the same
//! request may succeed by itself shortly: another change completing, a new leader
//! committing its first entry); `503` when no leader could take
//! it (not executed, retry); `504` when the outcome is unknown (it may have happened:
//! check `GET /members`).

// Handlers return an early answer as `Err(Response)`: once per request, so its size
// does not matter.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use raft::{ConfChange, ConfChangeError, Membership, NodeId};
use serde::Deserialize;

use super::routes::json;
use super::AdminState;
use crate::reply::Reply;
use crate::status::Status;

/// The body of `POST /members` and `POST /members/join`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    pub id: NodeId,
    pub peer_addr: String,
}

fn error(code: StatusCode, msg: impl std::fmt::Display) -> Response {
    json(code, &serde_json::json!({ "error": msg.to_string() }))
}

fn parse_new(body: &[u8]) -> Result<NewMember, Response> {
    let m: NewMember = serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"id\": N, \"peer_addr\": \"host:port\"}}: {e}"),
        )
    })?;
    if m.id == 0 {
        return Err(error(StatusCode::BAD_REQUEST, "id must be positive"));
    }
    crate::config::check_peer_addr(&m.peer_addr).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    Ok(m)
}

/// The configuration as JSON: what every route answers on success.
pub fn membership_json(m: &Membership, leader: Option<NodeId>) -> serde_json::Value {
    let addrs = crate::members::addresses(m);
    let members: Vec<serde_json::Value> = m
        .members()
        .into_iter()
        .map(|id| {
            serde_json::json!({
                "id": id,
                "peer_addr": addrs.get(&id),
                "role": if m.is_voter(id) { "voter" } else { "learner" },
                "leader": leader == Some(id),
            })
        })
        .collect();
    serde_json::json!({ "members": members, "leader": leader, "joint": m.is_joint() })
}

/// Runs a change through the node (to the leader) and answers as the module docs say.
async fn change(st: &AdminState, changes: Vec<ConfChange>) -> Result<Membership, Response> {
    match st.node.change_membership(changes).await {
        Ok(Reply::Membership(m)) => Ok(m),
        Ok(Reply::MembershipRefused(e)) => Err(refused(e)),
        Ok(Reply::Unknown(why)) => Err(error(
            StatusCode::GATEWAY_TIMEOUT,
            format!("the outcome is unknown ({why}): check GET /members"),
        )),
        Ok(Reply::Fail(why)) => Err(error(StatusCode::SERVICE_UNAVAILABLE, why)),
        Ok(Reply::Redirect(_)) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no leader took the change (not executed): retry",
        )),
        Ok(other) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("unexpected answer {other:?}"),
        )),
        Err(e) => Err(error(
            StatusCode::GATEWAY_TIMEOUT,
            format!("{e}: check GET /members"),
        )),
    }
}

/// A refusal: `409` with the reason, and `"retry": true` when the same request may
/// succeed by itself shortly ([`ConfChangeError::is_transient`]: the CLI waits and
/// retries those, bounded).
fn refused(e: ConfChangeError) -> Response {
    json(
        StatusCode::CONFLICT,
        &serde_json::json!({ "error": e.to_string(), "retry": e.is_transient() }),
    )
}

async fn status(st: &AdminState) -> Result<Status, Response> {
    st.node
        .status()
        .await
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e))
}

/// `GET /members`.
pub async fn list(State(st): State<Arc<AdminState>>) -> Response {
    let s = match status(&st).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let peers: BTreeMap<NodeId, &crate::status::PeerStatus> =
        s.peers.iter().map(|p| (p.id, p)).collect();
    let m = &s.membership;
    let leading = s.role == "leader";
    let mut rows = Vec::new();
    let ids = m
        .voters
        .iter()
        .chain(&m.voters_outgoing)
        .chain(&m.learners)
        .copied()
        .collect::<std::collections::BTreeSet<_>>();
    for id in ids {
        let (match_index, lag) = if id == s.id {
            (leading.then_some(s.last_index), leading.then_some(0))
        } else {
            peers
                .get(&id)
                .map_or((None, None), |p| (p.match_index, p.lag))
        };
        let voter = m.voters.contains(&id) || m.voters_outgoing.contains(&id);
        rows.push(serde_json::json!({
            "id": id,
            "peer_addr": m.addresses.get(&id).cloned().or_else(|| peers.get(&id).map(|p| p.addr.clone())),
            "role": if voter { "voter" } else { "learner" },
            "match_index": match_index,
            "lag": lag,
            "leader": s.leader == Some(id),
        }));
    }
    json(
        StatusCode::OK,
        &serde_json::json!({
            "node": s.id,
            "leader": s.leader,
            "term": s.term,
            "last_index": s.last_index,
            "membership_index": m.index,
            "committed": m.committed,
            "joint": !m.voters_outgoing.is_empty(),
            "removed": m.removed,
            "cluster_id": st.identity.current(),
            "members": rows,
        }),
    )
}

/// `POST /members`: adds a learner.
pub async fn add(State(st): State<Arc<AdminState>>, body: Bytes) -> Response {
    let new = match parse_new(&body) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let metadata = crate::members::metadata_of(&new.peer_addr);
    match change(
        &st,
        vec![ConfChange::AddLearner {
            id: new.id,
            metadata,
        }],
    )
    .await
    {
        Ok(m) => json(StatusCode::OK, &membership_json(&m, None)),
        Err(r) => r,
    }
}

/// `POST /members/:id/promote`.
pub async fn promote(State(st): State<Arc<AdminState>>, Path(id): Path<NodeId>) -> Response {
    match change(&st, vec![ConfChange::Promote { id }]).await {
        Ok(m) => json(StatusCode::OK, &membership_json(&m, None)),
        Err(r) => r,
    }
}

/// `DELETE /members/:id`.
pub async fn remove(State(st): State<Arc<AdminState>>, Path(id): Path<NodeId>) -> Response {
    match change(&st, vec![ConfChange::Remove { id }]).await {
        Ok(m) => json(StatusCode::OK, &membership_json(&m, None)),
        Err(r) => r,
    }
}

/// `POST /members/join` (module docs).
pub async fn join(State(st): State<Arc<AdminState>>, body: Bytes) -> Response {
    let new = match parse_new(&body) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let Some(cluster_id) = st.identity.current() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node has no cluster ID yet (its cluster is still bootstrapping): retry",
        );
    };
    let still_voter = |s: &Status| {
        s.membership.voters.contains(&new.id) || s.membership.voters_outgoing.contains(&new.id)
    };
    let voter_refusal = || {
        error(
            StatusCode::CONFLICT,
            format!(
                "node {id} is still a voter of this cluster: a node that starts on an empty data \
                 directory forgot its vote and its log, so it may not take that place. Remove \
                 it first (raftkv member remove {id}), then start it again with --join to add \
                 it back",
                id = new.id
            ),
        )
    };
    let s = match status(&st).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if still_voter(&s) {
        return voter_refusal();
    }
    let metadata = crate::members::metadata_of(&new.peer_addr);
    let step = if s.membership.learners.contains(&new.id) {
        // A learner coming back with an empty disk: harmless (it votes for nothing);
        // its address may have changed.
        ConfChange::SetMetadata {
            id: new.id,
            metadata,
        }
    } else {
        ConfChange::AddLearner {
            id: new.id,
            metadata,
        }
    };
    let m = match change(&st, vec![step]).await {
        Ok(m) => m,
        // Our view was behind the leader's: say what it is now.
        Err(r) if r.status() == StatusCode::CONFLICT => {
            let again = match status(&st).await {
                Ok(s) => s,
                Err(r) => return r,
            };
            if still_voter(&again) {
                return voter_refusal();
            }
            return r;
        }
        Err(r) => return r,
    };
    let s = status(&st).await.ok();
    json(
        StatusCode::OK,
        &serde_json::json!({
            "cluster_id": cluster_id,
            "leader": s.as_ref().and_then(|s| s.leader),
            "addresses": crate::members::addresses(&m),
            "membership": membership_json(&m, s.and_then(|s| s.leader)),
        }),
    )
}
