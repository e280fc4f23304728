//! The admin routes and their handlers.
//!
//! To add a route, add it to [`routes`]: reads with `get`, writes with any other method —
//! every write is checked by `admin/auth.rs` before its handler runs (the layer in
//! `admin/mod.rs` applies to every route of this table), and its body is read under the
//! size and time limits there. Answers are JSON (`json`) or plain text.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;

use super::render::render_metrics;
use super::AdminState;

/// The route table (see the module docs).
pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/transfer-leader", post(transfer_leader))
        .route(
            "/members",
            get(super::members::list).post(super::members::add),
        )
        .route("/members/join", post(super::members::join))
        .route("/members/:id/promote", post(super::members::promote))
        .route("/members/:id", delete(super::members::remove))
        .fallback(not_found)
}

/// A JSON answer, pretty-printed with a final newline (read by people with curl too).
pub fn json(code: StatusCode, v: &impl serde::Serialize) -> Response {
    let body =
        serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")) + "\n";
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub fn text(code: StatusCode, body: impl Into<String>) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    json(
        StatusCode::SERVICE_UNAVAILABLE,
        &serde_json::json!({ "status": e.to_string() }),
    )
}

async fn not_found() -> Response {
    text(
        StatusCode::NOT_FOUND,
        "not found: try /status, /metrics, /health or /members\n",
    )
}

/// `GET /status`: the node's status, with its cluster ID (`null` until bound).
async fn status(State(st): State<Arc<AdminState>>) -> Response {
    match st.node.status().await {
        Ok(s) => {
            let mut v = serde_json::to_value(&s).unwrap_or_default();
            if let Some(obj) = v.as_object_mut() {
                obj.insert(
                    "cluster_id".into(),
                    serde_json::to_value(st.identity.current()).unwrap_or_default(),
                );
            }
            json(StatusCode::OK, &v)
        }
        Err(e) => unavailable(e),
    }
}

async fn metrics(State(st): State<Arc<AdminState>>) -> Response {
    match st.node.status().await {
        Ok(s) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            render_metrics(&s, &st.node.metrics),
        )
            .into_response(),
        Err(e) => unavailable(e),
    }
}

/// Healthy: the loop answers, the log store works, and a leader is known.
async fn health(State(st): State<Arc<AdminState>>) -> Response {
    let s = match st.node.status().await {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    let problem = match (&s.storage_failure, s.leader) {
        (Some(f), _) => Some(format!("storage failure: {f}")),
        (None, None) => Some("no leader".to_string()),
        (None, Some(_)) => None,
    };
    let body = serde_json::json!({
        "status": problem.as_deref().unwrap_or("ok"),
        "id": s.id, "role": s.role, "leader": s.leader, "term": s.term,
    });
    let code = if problem.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(code, &body)
}

/// How long `POST /transfer-leader` waits to see leadership move.
const TRANSFER_WAIT: Duration = Duration::from_secs(5);

/// `POST /transfer-leader[?to=ID]`: this node, if it leads, hands leadership to `ID` (or
/// to its most caught-up voter) and answers once it no longer leads.
async fn transfer_leader(State(st): State<Arc<AdminState>>, RawQuery(q): RawQuery) -> Response {
    let q = q.unwrap_or_default();
    let to = match q.strip_prefix("to=") {
        None if q.is_empty() => None,
        Some(id) => match id.parse::<u64>() {
            Ok(id) => Some(id),
            Err(_) => return text(StatusCode::BAD_REQUEST, format!("not a node ID: {id:?}\n")),
        },
        None => return text(StatusCode::BAD_REQUEST, "the only parameter is to=ID\n"),
    };
    match st.node.hand_over(to, TRANSFER_WAIT).await {
        Ok(leader) => json(StatusCode::OK, &serde_json::json!({ "leader": leader })),
        Err(e) => json(StatusCode::CONFLICT, &serde_json::json!({ "error": e })),
    }
}
