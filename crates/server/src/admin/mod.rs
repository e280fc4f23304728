//! The HTTP admin endpoint: `GET /status` (JSON), `GET /metrics` (Prometheus text),
//! `GET /health`, `POST /transfer-leader`, the membership routes (`members.rs`); HTTPS
//! when TLS is configured.
//!
//! axum routes (`routes.rs`), served by hyper's HTTP/1.1 connection driver from our own
//! accept loop, which keeps the limits of a surface anyone on the network may reach:
//! - at most [`MAX_CONNECTIONS`] connections at once (one more is closed unanswered);
//! - the TLS handshake within [`HEAD_TIMEOUT`], and each request head within it too
//!   (hyper's header read timeout), at most [`MAX_HEAD`] bytes (`431` beyond);
//! - one request per connection (`Connection: close`), so an idle client holds no slot;
//! - a write request's body is read only once its credential passed (`auth.rs`), within
//!   [`BODY_TIMEOUT`] and at most [`MAX_BODY`] bytes (`413` beyond).

pub mod auth;
pub mod members;
pub mod render;
pub mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::cluster_id::ClusterIdentity;
use crate::handle::NodeHandle;
use crate::tls::Tls;
use auth::AdminAuthority;

pub use render::render_metrics;

/// Request heads larger than this are answered `431` (hyper's smallest buffer limit).
pub const MAX_HEAD: usize = 8 << 10;
/// The TLS handshake (if any) and the request head must each arrive within this.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Admin connections at once; one more is closed unanswered.
pub const MAX_CONNECTIONS: usize = 64;
/// The largest write-request body read.
pub const MAX_BODY: usize = 64 << 10;
/// A write request's body must arrive within this.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the handlers share.
pub struct AdminState {
    pub node: NodeHandle,
    pub identity: Arc<ClusterIdentity>,
    /// Who may write; `None`: loopback clients only (`auth.rs`).
    pub auth: Option<Arc<dyn AdminAuthority>>,
}

/// The routes with the layers every request goes through. The layers apply to the
/// routes added before them, so new routes go into `routes::routes`, never here.
pub fn app(state: Arc<AdminState>) -> Router {
    routes::routes()
        .layer(middleware::from_fn_with_state(state.clone(), guard_writes))
        .with_state(state)
}

/// Every method but GET and HEAD is a write: its credential is checked (`auth.rs`) and
/// only then its body read, within the limits.
async fn guard_writes(State(st): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let Err(r) = auth::authorize_write(st.auth.as_deref(), req.headers(), client) {
        st.node.metrics.admin_refused.inc(r.reason);
        tracing::warn!(
            client = ?client,
            method = %req.method(),
            path = req.uri().path(),
            reason = r.reason,
            "refusing an admin write request"
        );
        let mut resp = routes::text(r.status, r.message);
        if r.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"raftkv admin\""),
            );
        }
        return resp;
    }
    let (parts, body) = req.into_parts();
    let too_large = || {
        routes::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body exceeds {MAX_BODY} bytes\n"),
        )
    };
    // A declared length over the limit is refused before a byte of it is read.
    if body.size_hint().lower() > MAX_BODY as u64 {
        return too_large();
    }
    let read = http_body_util::Limited::new(body, MAX_BODY).collect();
    let body = match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Ok(Err(e)) => return routes::text(StatusCode::BAD_REQUEST, format!("bad body: {e}\n")),
        Err(_) => {
            return routes::text(
                StatusCode::REQUEST_TIMEOUT,
                format!("the body did not arrive within {BODY_TIMEOUT:?}\n"),
            )
        }
    };
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// Serves admin requests; HTTPS only when `tls` is given.
pub async fn accept_loop(listener: TcpListener, state: Arc<AdminState>, tls: Option<Arc<Tls>>) {
    let app = app(state.clone());
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%addr, "refusing an admin connection: {MAX_CONNECTIONS} are open");
                    continue;
                };
                let app = app.clone();
                let tls = tls.clone();
                let state = state.clone();
                tokio::spawn(async move {
                    serve_connection(stream, addr, app, tls.as_deref(), &state).await;
                    drop(slot);
                });
            }
            Err(e) => {
                tracing::warn!("admin accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    addr: SocketAddr,
    app: Router,
    tls: Option<&Tls>,
    state: &AdminState,
) {
    // The client's address, for the loopback rule of the write routes.
    let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(addr));
        let app = app.clone();
        // A router never fails (`Infallible`): errors are answers.
        async move { app.oneshot(req.map(Body::new)).await }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .keep_alive(false);
    let result = match tls {
        None => http.serve_connection(TokioIo::new(stream), svc).await,
        Some(tls) => {
            match tokio::time::timeout(HEAD_TIMEOUT, tls.public_acceptor().accept(stream)).await {
                Ok(Ok(s)) => http.serve_connection(TokioIo::new(s), svc).await,
                Ok(Err(e)) => {
                    state.node.metrics.client_tls_refused.inc();
                    tracing::warn!(%addr, "refusing an admin client: TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    state.node.metrics.client_tls_refused.inc();
                    tracing::warn!(%addr, "refusing an admin client: no TLS handshake within {HEAD_TIMEOUT:?}");
                    return;
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%addr, "admin connection ended: {e}");
    }
}
