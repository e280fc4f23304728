//! `raftkv member list|add|promote|remove`: the membership commands, through the admin
//! routes (`admin/members.rs`) of the listed nodes, with the admin credential from
//! `RAFTKV_ADMIN_TOKEN` when set.
//!
//! Any node takes a change (it goes to the leader). The commands try the listed
//! addresses in turn while a node cannot be reached or has no leader (`503`), and stop
//! at the first definite answer: done, or refused with the reason (`409`). A refusal
//! marked `"retry"` (another change still in flight, a new leader that has not committed
//! an entry of its term yet, a leadership transfer under way) is not definite: the
//! command asks again every [`RETRY_EVERY`] for up to [`TRANSIENT_WAIT`], then fails
//! with that reason.
//!
//! `member add ID ADDR` adds a learner, waits until the leader reports it within
//! [`PROMOTE_LAG`] entries of its log, and promotes it (unless `--learner`). Run again
//! after an interruption, it picks up where it stopped (an existing learner at the same
//! address is waited for and promoted).

use std::time::{Duration, Instant};

use axum::http::Method;
use serde_json::Value;

use crate::admin_client::AdminClient;
use crate::cli::CliError;

pub use crate::members::PROMOTE_LAG;

/// How long a change refused for a passing reason (`"retry": true`) is retried.
pub const TRANSIENT_WAIT: Duration = Duration::from_secs(10);
/// The pause between two tries of such a change.
pub const RETRY_EVERY: Duration = Duration::from_millis(100);

/// [`first_answer`], asked again while the answer is a refusal that passes by itself
/// (module docs), for up to `wait`.
fn definite_answer(
    admin: &[String],
    client: &AdminClient,
    method: Method,
    path: &str,
    body: Option<&Value>,
    wait: Duration,
) -> Result<(String, u16, Value), CliError> {
    let deadline = Instant::now() + wait;
    loop {
        let (addr, code, v) = first_answer(admin, client, method.clone(), path, body)?;
        let passing = code == 409 && v["retry"].as_bool() == Some(true);
        if !passing || Instant::now() >= deadline {
            return Ok((addr, code, v));
        }
        std::thread::sleep(RETRY_EVERY);
    }
}

/// One admin call on the first node that gives a definite answer: `(address, code,
/// body)`. Unreachable nodes and `503`s are skipped; the last of them is the error if
/// no node answers definitely.
fn first_answer(
    admin: &[String],
    client: &AdminClient,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<(String, u16, Value), CliError> {
    let mut tried = Vec::new();
    for addr in admin {
        match client.request(addr, method.clone(), path, body) {
            Ok((503, text)) => tried.push(format!("{addr}: {}", text.trim())),
            Ok((code, text)) => {
                let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
                return Ok((addr.clone(), code, v));
            }
            Err(e) => tried.push(format!("{addr}: {e}")),
        }
    }
    Err(CliError::NoNode {
        tried: tried.join("; "),
    })
}

fn refusal(addr: &str, code: u16, v: &Value) -> CliError {
    let msg = v
        .get("error")
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(|| v.to_string());
    CliError::Protocol {
        addr: addr.to_string(),
        msg: format!("refused ({code}): {msg}"),
    }
}

/// `GET /members` from the leader if one of the listed nodes is it (only the leader
/// knows match indexes), else from the first node that answers.
pub fn members(admin: &[String], client: &AdminClient) -> Result<Value, CliError> {
    let mut first = None;
    let mut tried = Vec::new();
    for addr in admin {
        match client.request(addr, Method::GET, "/members", None) {
            Ok((200, text)) => {
                let v: Value = serde_json::from_str(&text).map_err(|e| CliError::Protocol {
                    addr: addr.clone(),
                    msg: format!("bad answer: {e}"),
                })?;
                if v["leader"].is_u64() && v["leader"] == v["node"] {
                    return Ok(v);
                }
                first.get_or_insert(v);
            }
            Ok((code, text)) => tried.push(format!("{addr}: {code} {}", text.trim())),
            Err(e) => tried.push(format!("{addr}: {e}")),
        }
    }
    first.ok_or(CliError::NoNode {
        tried: tried.join("; "),
    })
}

/// The member table (`raftkv member list`).
pub fn render(v: &Value) -> String {
    let mut lines = vec![format!(
        "{:>4}  {:<22} {:<8} {:>10} {:>8}  leader",
        "id", "peer address", "role", "match", "lag"
    )];
    let dash = |x: &Value| x.as_u64().map_or("-".to_string(), |n| n.to_string());
    for m in v["members"].as_array().into_iter().flatten() {
        lines.push(format!(
            "{:>4}  {:<22} {:<8} {:>10} {:>8}  {}",
            dash(&m["id"]),
            m["peer_addr"].as_str().unwrap_or("?"),
            m["role"].as_str().unwrap_or("?"),
            dash(&m["match_index"]),
            dash(&m["lag"]),
            if m["leader"].as_bool() == Some(true) {
                "*"
            } else {
                ""
            }
        ));
    }
    if v["joint"].as_bool() == Some(true) {
        lines.push("(a change of voters is in flight: joint configuration)".into());
    }
    if v["members"]
        .as_array()
        .is_some_and(|m| m.iter().all(|r| r["match_index"].is_null()))
    {
        lines.push("(match and lag are known on the leader only; list its admin address)".into());
    }
    lines.join("\n")
}

/// A change (`POST`/`DELETE`) on the first node that takes it; its answer body.
fn change(
    admin: &[String],
    client: &AdminClient,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, CliError> {
    let (addr, code, v) = definite_answer(admin, client, method, path, body, TRANSIENT_WAIT)?;
    if code == 200 {
        Ok(v)
    } else {
        Err(refusal(&addr, code, &v))
    }
}

pub fn promote(admin: &[String], client: &AdminClient, id: u64) -> Result<Value, CliError> {
    change(
        admin,
        client,
        Method::POST,
        &format!("/members/{id}/promote"),
        None,
    )
}

/// Removing the leader: it hands leadership over first (the driver does).
pub fn remove(admin: &[String], client: &AdminClient, id: u64) -> Result<Value, CliError> {
    change(
        admin,
        client,
        Method::DELETE,
        &format!("/members/{id}"),
        None,
    )
}

/// `raftkv member add` (module docs). `wait` bounds the catch-up.
pub fn add(
    admin: &[String],
    client: &AdminClient,
    id: u64,
    peer_addr: &str,
    learner: bool,
    wait: Duration,
) -> Result<Value, CliError> {
    let body = serde_json::json!({ "id": id, "peer_addr": peer_addr });
    let (addr, code, v) = definite_answer(
        admin,
        client,
        Method::POST,
        "/members",
        Some(&body),
        TRANSIENT_WAIT,
    )?;
    let added = match code {
        200 => v,
        // Run again after an interruption: an existing learner at this address goes on.
        409 if v["error"]
            .as_str()
            .is_some_and(|e| e.contains("already a member")) =>
        {
            let now = members(admin, client)?;
            let same =
                now["members"].as_array().into_iter().flatten().any(|m| {
                    m["id"] == id && m["role"] == "learner" && m["peer_addr"] == peer_addr
                });
            if !same {
                return Err(refusal(&addr, code, &v));
            }
            now
        }
        _ => return Err(refusal(&addr, code, &v)),
    };
    if learner {
        return Ok(added);
    }
    let deadline = Instant::now() + wait;
    loop {
        let v = members(admin, client)?;
        let row = v["members"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["id"] == id)
            .cloned();
        match row {
            Some(r) if r["role"] == "voter" => return Ok(v),
            // Caught up: it holds some of the leader's log, and not much less than all.
            Some(r)
                if r["match_index"].as_u64().is_some_and(|m| m > 0)
                    && r["lag"].as_u64().is_some_and(|lag| lag <= PROMOTE_LAG) =>
            {
                match promote(admin, client, id) {
                    Ok(v) => return Ok(v),
                    // Not healthy yet (still catching up), or another change in flight.
                    Err(e) if Instant::now() < deadline && e.to_string().contains("(409)") => {}
                    Err(e) => return Err(e),
                }
            }
            Some(_) => {}
            None => {
                return Err(CliError::Protocol {
                    addr: admin.join(","),
                    msg: format!("node {id} is no longer a member"),
                })
            }
        }
        if Instant::now() >= deadline {
            return Err(CliError::Protocol {
                addr: admin.join(","),
                msg: format!(
                    "node {id} did not catch up within {wait:?} (is it running? start it with \
                     --join); it stays a learner: `raftkv member add` again to wait on"
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::thread::JoinHandle;

    /// Reads one HTTP request (headers, then the body its content-length announces).
    fn read_request(s: &mut TcpStream) {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).unwrap();
            buf.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).unwrap();
    }

    /// An admin stand-in answering its connections, one each, with `answers` in turn;
    /// joined, it says how many it served.
    fn canned(answers: Vec<(u16, &'static str)>) -> (String, JoinHandle<usize>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let served = std::thread::spawn(move || {
            let n = answers.len();
            for (code, body) in answers {
                let (mut s, _) = l.accept().unwrap();
                read_request(&mut s);
                write!(
                    s,
                    "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
            n
        });
        (addr, served)
    }

    const IN_PROGRESS: &str = r#"{"error": "another membership change (entry 7) is still in progress; retry once it completes", "retry": true}"#;
    const DONE: &str = r#"{"members": [], "leader": 1, "joint": false}"#;

    /// A change refused because another is still in flight is asked again and made (the
    /// node started with `--join` changes its own learner's address while the operator
    /// runs `member add`: the membership test saw this refusal fail the command).
    /// Failed before the retry: the first refusal was the answer.
    #[test]
    fn a_refusal_that_passes_by_itself_is_retried() {
        let (addr, served) = canned(vec![(409, IN_PROGRESS), (409, IN_PROGRESS), (200, DONE)]);
        let client = AdminClient::new(None, None);
        let v = promote(&[addr], &client, 4).expect("promoted once the change completed");
        assert_eq!(v["leader"], 1);
        assert_eq!(served.join().unwrap(), 3);
    }

    /// A refusal that stands (here: not a learner) is the answer at once, with its reason.
    #[test]
    fn a_refusal_that_stands_is_not_retried() {
        let standing = r#"{"error": "node 4 is not a learner", "retry": false}"#;
        let (addr, served) = canned(vec![(409, standing)]);
        let client = AdminClient::new(None, None);
        let e = promote(&[addr], &client, 4).unwrap_err().to_string();
        assert!(e.contains("(409): node 4 is not a learner"), "{e}");
        assert_eq!(served.join().unwrap(), 1);
    }
}
