//! The HTTP admin endpoint (`src/admin/`): its routes' answers, the admin credential on
//! write routes, and the limits it keeps against slow or greedy clients. In-process
//! clusters on loopback ports; requests as raw bytes, so each limit is hit exactly.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::Cluster;
use server::admin_client::AdminClient;
use server::config::Secret;

const TOKEN: &str = "an-admin-token-for-tests-0123";
const SETTLE: Duration = Duration::from_secs(10);

/// Sends `raw`, reads until the server closes: (status code, head, body). Code 0 if the
/// server closed without answering.
fn exchange(addr: SocketAddr, raw: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect admin");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out).into_owned();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (code, head.to_string(), body.to_string())
}

fn post(addr: SocketAddr, path: &str, auth: Option<&str>) -> (u16, String, String) {
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let req = format!("POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\n\r\n");
    exchange(addr, req.as_bytes())
}

/// With an admin token configured, a write route needs it — from loopback too — as a
/// bearer token or as HTTP Basic `admin:<token>`; read routes stay open. Each refusal
/// is a 401 with `WWW-Authenticate`, and a metric by reason.
#[test]
fn write_routes_need_the_admin_token_once_one_is_configured() {
    let c = Cluster::start(3, |cfg| cfg.admin_token = Some(Secret::new(TOKEN)));
    let leader = c.wait_leader(SETTLE);
    let addr = c.node(leader).admin_addr;

    let (code, head, body) = post(addr, "/transfer-leader", None);
    assert_eq!(code, 401, "{head}\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );
    assert!(body.contains("RAFTKV_ADMIN_TOKEN"), "{body}");
    let (code, _, _) = post(
        addr,
        "/transfer-leader",
        Some("Bearer not-the-token-at-all"),
    );
    assert_eq!(code, 401);
    // The membership routes are write routes too; listing the members is a read.
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    for (method, path) in [
        ("POST", "/members".to_string()),
        ("POST", "/members/join".to_string()),
        ("POST", format!("/members/{follower}/promote")),
        ("DELETE", format!("/members/{follower}")),
    ] {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\n\r\n{{}}"
        );
        let (code, head, body) = exchange(addr, req.as_bytes());
        assert_eq!(code, 401, "{method} {path}: {head}\n{body}");
    }
    assert_eq!(common::http_get(addr, "/members").0, 200);
    let m = c.node(leader).node.metrics.clone();
    assert_eq!(m.admin_refused.reason("no_credential"), 5);
    assert_eq!(m.admin_refused.reason("bad_credential"), 1);
    assert_eq!(
        c.status(leader).role,
        "leader",
        "a refused request moved nothing"
    );
    let (_, metrics) = common::http_get(addr, "/metrics");
    assert!(
        metrics.contains("raftkv_admin_requests_refused_total{reason=\"bad_credential\"} 1"),
        "{metrics}"
    );

    // Reads need nothing.
    assert_eq!(common::http_get(addr, "/status").0, 200);

    // The CLI's client with the token: the transfer happens.
    let client = AdminClient::new(None, Some(Secret::new(TOKEN)));
    let admin: Vec<String> = (1..=3).map(|i| c.node(i).admin_addr.to_string()).collect();
    let target = leader % 3 + 1;
    let answer =
        server::cli::transfer_leader_with(&admin, Some(target), &client).expect("transfer");
    assert!(
        answer.contains(&format!("\"leader\": {target}")),
        "{answer}"
    );
    assert_eq!(c.wait_leader(SETTLE), target);
    // Without the token the CLI stops at the first refusal and says why.
    let err =
        server::cli::transfer_leader_with(&admin, Some(leader), &AdminClient::new(None, None))
            .unwrap_err()
            .to_string();
    assert!(err.contains("refused (401)"), "{err}");

    // HTTP Basic with user `admin`.
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{TOKEN}"));
    let (code, _, body) = post(
        c.node(target).admin_addr,
        &format!("/transfer-leader?to={leader}"),
        Some(&format!("Basic {basic}")),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(c.wait_leader(SETTLE), leader);
}

/// The routes answer as they did before the move to axum: JSON status with the cluster
/// ID, 404 with a hint, 405 for a wrong method, 400 for a bad parameter.
#[test]
fn routes_answer_as_documented() {
    let c = Cluster::start(1, |_| {});
    c.wait_leader(SETTLE);
    let addr = c.node(1).admin_addr;
    let (code, body) = common::http_get(addr, "/status");
    assert_eq!(code, 200);
    let s: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        s["cluster_id"].as_str(),
        Some(c.node(1).identity.current().unwrap().to_string().as_str())
    );
    let (code, body) = common::http_get(addr, "/nope");
    assert_eq!(
        (code, body.as_str()),
        (
            404,
            "not found: try /status, /metrics, /health or /members\n"
        )
    );
    assert_eq!(common::http_get(addr, "/transfer-leader").0, 405);
    assert_eq!(post(addr, "/status", None).0, 405);
    let (code, _, body) = post(addr, "/transfer-leader?to=x", None);
    assert_eq!((code, body.as_str()), (400, "not a node ID: \"x\"\n"));
    let (code, _, body) = post(addr, "/transfer-leader?who=2", None);
    assert_eq!(
        (code, body.as_str()),
        (400, "the only parameter is to=ID\n")
    );
    // A one-node cluster has nobody to hand over to: a 409 with the reason.
    let (code, _, body) = post(addr, "/transfer-leader", None);
    assert_eq!(code, 409, "{body}");
}

/// The limits: a request head over 8 KiB gets 431; a head or a body that does not arrive
/// within 5 s closes the connection (the body with 408); a body over 64 KiB gets 413
/// without being read; at most 64 connections are open at once, the 65th is closed
/// unanswered, and the endpoint serves again once they go.
#[test]
fn the_admin_endpoint_keeps_its_limits() {
    let c = Cluster::start(1, |_| {});
    c.wait_leader(SETTLE);
    let addr = c.node(1).admin_addr;

    let big = format!(
        "GET /status HTTP/1.1\r\nHost: x\r\nX-Fill: {}\r\n\r\n",
        "a".repeat(9 << 10)
    );
    assert_eq!(exchange(addr, big.as_bytes()).0, 431);

    let huge = format!(
        "POST /transfer-leader HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        1 << 20
    );
    let (code, _, body) = exchange(addr, huge.as_bytes());
    assert_eq!(code, 413, "{body}");

    // The two slow clients in parallel: each waits out the same 5 s.
    let slow_head = std::thread::spawn(move || {
        let started = Instant::now();
        let (code, _, _) = exchange(addr, b"GET /status HTTP/1.1\r\nHost: x\r\n");
        (code, started.elapsed())
    });
    let slow_body = std::thread::spawn(move || {
        let started = Instant::now();
        let r = exchange(
            addr,
            b"POST /transfer-leader HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
        );
        (r.0, started.elapsed())
    });
    let (code, took) = slow_head.join().unwrap();
    assert_eq!(code, 0, "an unfinished head was answered");
    assert!(took < Duration::from_secs(8), "{took:?}");
    let (code, took) = slow_body.join().unwrap();
    assert_eq!(code, 408);
    assert!(took < Duration::from_secs(8), "{took:?}");

    // 64 idle connections fill the slots (accepted in the order they were opened), so
    // the 65th is closed unanswered.
    let idle: Vec<TcpStream> = (0..64).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let (code, _, _) = exchange(addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(code, 0, "a 65th connection was served");
    drop(idle);
    let deadline = Instant::now() + SETTLE;
    while common::try_http_get(addr, "/health").map(|r| r.0) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "the endpoint does not serve again"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// With TLS the admin endpoint speaks HTTPS only: the CLI's client reaches it with the
/// cluster CA (`raftkv transfer-leader --cacert`), and fails without it.
#[test]
fn the_cli_reaches_an_https_admin_endpoint_with_the_ca() {
    let certs = tempfile::tempdir().unwrap();
    server::tls::certs::generate(certs.path(), 3, &[]).expect("certs");
    let dir = certs.path().to_path_buf();
    let c = Cluster::start(3, move |cfg| {
        cfg.tls = Some(server::config::TlsFiles::in_dir(&dir, cfg.id))
    });
    let leader = c.wait_leader(SETTLE);
    let admin: Vec<String> = (1..=3).map(|i| c.node(i).admin_addr.to_string()).collect();
    let plain = AdminClient::new(None, None);
    assert!(server::cli::transfer_leader_with(&admin, None, &plain).is_err());
    assert_eq!(c.status(leader).role, "leader");
    let ca = server::config::TlsFiles::in_dir(certs.path(), 1).ca;
    let tls = server::cli::ClientTls::from_ca_file(&ca).unwrap();
    let answer =
        server::cli::transfer_leader_with(&admin, None, &AdminClient::new(Some(tls), None))
            .expect("transfer over HTTPS");
    assert!(answer.contains("\"leader\""), "{answer}");
    assert_ne!(c.wait_leader(SETTLE), leader);
}
