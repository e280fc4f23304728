//! Users and permissions on RESP (Redis's ACL model): NOAUTH without credentials, a
//! user's categories and key patterns enforced, users replicated through the log to
//! every node (and through snapshots and restarts), connections of a deleted user
//! closed. Byte-for-byte comparisons with Redis are in `tests/compat/acl.txt`; the texts
//! asserted here were checked against Redis 7.0.15.

mod common;

use std::time::{Duration, Instant};

use common::raw::RawConn;
use common::Cluster;
use server::config::Requirepass;
use server::resp::commands::table::{Spec, TABLE};

const NOAUTH: &str = "-NOAUTH Authentication required.\r\n";
const WRONGPASS: &str = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";

fn with_password(pw: &'static str) -> impl Fn(&mut server::config::Config) {
    move |c| c.requirepass = Some(Requirepass(server::password::hash(pw.as_bytes())))
}

/// Retries `f` until it returns true, up to 10 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A call of `spec` with the smallest argument count its arity allows (`x` for each).
fn minimal_call(spec: &Spec) -> Vec<String> {
    let mut args: Vec<String> = spec.name.split('|').map(str::to_uppercase).collect();
    let want = spec.arity.unsigned_abs() as usize;
    while args.len() < want {
        args.push("x".into());
    }
    args
}

#[test]
fn without_credentials_every_command_but_auth_hello_and_quit_answers_noauth() {
    let c = Cluster::start(1, with_password("s3cret"));
    c.wait_leader(Duration::from_secs(10));
    let mut conn = RawConn::connect(c.client_addr(1));
    let mut checked = 0;
    for top in TABLE {
        let specs: Vec<&Spec> = if top.subs.is_empty() {
            vec![top]
        } else {
            top.subs.iter().collect()
        };
        for spec in specs {
            if spec.flags.contains(&"no_auth") {
                continue;
            }
            let args = minimal_call(spec);
            // A refused EXEC also discards the transaction (Redis's words).
            let want = match spec.name {
                "exec" => {
                    "-EXECABORT Transaction discarded because of: NOAUTH Authentication \
                           required.\r\n"
                }
                _ => NOAUTH,
            };
            assert_eq!(conn.raw(&args), want, "{args:?}");
            checked += 1;
        }
    }
    assert!(checked > 90, "only {checked} commands checked");
    // Unknown commands and wrong arities are answered first, as Redis does.
    assert!(conn.raw(&["NOSUCH"]).starts_with("-ERR unknown command"));
    assert_eq!(
        conn.raw(&["GET"]),
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    assert!(conn
        .raw(&["HELLO", "3"])
        .starts_with("-NOAUTH HELLO must be called with the client already authenticated"));
    assert_eq!(conn.raw(&["AUTH", "wrong"]), WRONGPASS);
    assert_eq!(conn.raw(&["AUTH", "default", "wrong"]), WRONGPASS);
    assert_eq!(conn.raw(&["GET", "k"]), NOAUTH);
    assert_eq!(conn.raw(&["AUTH", "s3cret"]), "+OK\r\n");
    assert_eq!(conn.raw(&["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(conn.raw(&["GET", "k"]), "$1\r\nv\r\n");
    // HELLO AUTH authenticates and switches the protocol in one (RESP2 too).
    let mut other = RawConn::connect(c.client_addr(1));
    assert!(other
        .raw(&["HELLO", "2", "AUTH", "default", "s3cret"])
        .starts_with("*14\r\n"));
    assert_eq!(other.raw(&["GET", "k"]), "$1\r\nv\r\n");
    let info = conn.raw(&["INFO", "stats"]);
    assert!(info.contains("acl_access_denied_auth:2\r\n"), "{info}");
    assert!(info.contains(&format!("raftkv_access_denied_noauth:{}\r\n", checked + 1)));
    // The same counters, for Prometheus.
    let (code, metrics) = common::http_get(c.node(1).admin_addr, "/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("raftkv_client_access_denied_total{reason=\"auth\"} 2\n"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "raftkv_client_access_denied_total{{reason=\"noauth\"}} {}\n",
        checked + 1
    )));
    // The leader made its bootstrap password the cluster's: one ACL entry.
    eventually("the users initialized from requirepass", || {
        let list = conn.raw(&["ACL", "LIST"]);
        list.contains(&format!(
            "user default on #{} ~* &* +@all",
            kv::acl::hash_hex(&server::password::hash(b"s3cret"))
        ))
    });
}

#[test]
fn a_users_categories_and_key_patterns_are_enforced() {
    let c = Cluster::start(1, |_| {});
    c.wait_leader(Duration::from_secs(10));
    let mut admin = RawConn::connect(c.client_addr(1));
    for (k, v) in [("k1", "1"), ("k2", "2"), ("secret", "s"), ("r1", "r")] {
        assert_eq!(admin.raw(&["SET", k, v]), "+OK\r\n");
    }
    let set = admin.raw(&[
        "ACL",
        "SETUSER",
        "alice",
        "on",
        ">pw",
        "~k*",
        "%R~r*",
        "+@read",
        "+set",
        "+rename",
        "-del",
        "+@transaction",
    ]);
    assert_eq!(set, "+OK\r\n");
    let mut alice = RawConn::connect(c.client_addr(1));
    assert_eq!(alice.raw(&["AUTH", "alice", "pw"]), "+OK\r\n");
    assert!(alice.raw(&["ACL", "WHOAMI"]).starts_with("-NOPERM"));
    let key_denied =
        "-NOPERM this user has no permissions to access one of the keys used as arguments\r\n";
    assert_eq!(alice.raw(&["GET", "k1"]), "$1\r\n1\r\n");
    assert_eq!(alice.raw(&["GET", "secret"]), key_denied);
    assert_eq!(alice.raw(&["MGET", "k1", "secret"]), key_denied);
    assert_eq!(alice.raw(&["SET", "k3", "v"]), "+OK\r\n");
    assert_eq!(alice.raw(&["SET", "r1", "v"]), key_denied);
    assert_eq!(alice.raw(&["GET", "r1"]), "$1\r\nr\r\n");
    assert_eq!(alice.raw(&["RENAME", "k3", "secret2"]), key_denied);
    assert_eq!(
        alice.raw(&["DEL", "k1"]),
        "-NOPERM this user has no permissions to run the 'del' command\r\n"
    );
    assert_eq!(
        alice.raw(&["FLUSHALL"]),
        "-NOPERM this user has no permissions to run the 'flushall' command\r\n"
    );
    // KEYS and SCAN show only the keys the user may read (raftkv's choice).
    let keys = alice.raw(&["KEYS", "*"]);
    assert!(keys.contains("k1") && keys.contains("r1"), "{keys}");
    assert!(!keys.contains("secret"), "{keys}");
    let scan = alice.raw(&["SCAN", "0", "COUNT", "100"]);
    assert!(!scan.contains("secret"), "{scan}");
    // Inside MULTI a refused command aborts the transaction, as in Redis.
    assert_eq!(alice.raw(&["MULTI"]), "+OK\r\n");
    assert_eq!(alice.raw(&["SET", "k1", "x"]), "+QUEUED\r\n");
    assert_eq!(alice.raw(&["SET", "secret", "x"]), key_denied);
    assert_eq!(
        alice.raw(&["EXEC"]),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    // A permission taken away between queueing and EXEC: that command fails, others run.
    assert_eq!(alice.raw(&["MULTI"]), "+OK\r\n");
    assert_eq!(alice.raw(&["SET", "k1", "y"]), "+QUEUED\r\n");
    assert_eq!(alice.raw(&["GET", "k1"]), "+QUEUED\r\n");
    assert_eq!(admin.raw(&["ACL", "SETUSER", "alice", "-set"]), "+OK\r\n");
    let exec = alice.raw(&["EXEC"]);
    assert!(
        exec.starts_with("*2\r\n-NOPERM ACLs rules changed between the moment the transaction")
            && exec.ends_with("$1\r\n1\r\n"),
        "{exec}"
    );
    assert_eq!(admin.raw(&["GET", "k1"]), "$1\r\n1\r\n");
    // A user switched off keeps its open connections (as in Redis), but cannot log in.
    assert_eq!(admin.raw(&["ACL", "SETUSER", "alice", "off"]), "+OK\r\n");
    assert_eq!(alice.raw(&["GET", "k1"]), "$1\r\n1\r\n");
    let mut late = RawConn::connect(c.client_addr(1));
    assert_eq!(late.raw(&["AUTH", "alice", "pw"]), WRONGPASS);
}

/// The ACL LIST line of `user` on node `id`, if it has one.
fn acl_line(c: &Cluster, id: u64, user: &str) -> Option<String> {
    let mut conn = RawConn::connect(c.client_addr(id));
    let list = conn.raw(&["ACL", "LIST"]);
    list.split("\r\n")
        .find(|l| l.starts_with(&format!("user {user} ")))
        .map(String::from)
}

#[test]
fn acl_changes_replicate_to_every_node_and_survive_snapshots_and_restarts() {
    let mut c = Cluster::start(3, |cfg| {
        cfg.snapshot.every_entries = 20;
        cfg.snapshot.keep_entries = 2;
    });
    let leader = c.wait_leader(Duration::from_secs(10));
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    let other = (1..=3).find(|&i| i != leader && i != follower).unwrap();

    // Made through a follower (forwarded to the leader), it holds on every node.
    let mut admin = RawConn::connect(c.client_addr(follower));
    let set = admin.raw(&["ACL", "SETUSER", "bob", "on", ">pw", "~b*", "+@all"]);
    assert_eq!(set, "+OK\r\n");
    for id in 1..=3 {
        eventually(&format!("bob on node {id}"), || {
            RawConn::connect(c.client_addr(id)).raw(&["AUTH", "bob", "pw"]) == "+OK\r\n"
        });
    }
    let line = acl_line(&c, follower, "bob").expect("bob listed");
    assert!(!line.contains("pw"), "a password in ACL LIST: {line}");

    // A connection of bob's on one node is closed when bob is deleted through another.
    let mut bob = RawConn::connect(c.client_addr(other));
    assert_eq!(bob.raw(&["AUTH", "bob", "pw"]), "+OK\r\n");
    assert_eq!(bob.raw(&["SET", "b1", "v"]), "+OK\r\n");
    assert_eq!(admin.raw(&["ACL", "DELUSER", "bob"]), ":1\r\n");
    bob.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    let closed = std::io::Read::read(&mut bob.stream, &mut buf);
    assert!(
        matches!(closed, Ok(0)) || closed.is_err(),
        "bob's connection stays open: {closed:?}"
    );

    // Users are in snapshots: enough writes to snapshot and compact, then a restart of
    // every node finds carol in the snapshot (the entry that made her is compacted).
    let set = admin.raw(&[
        "ACL", "SETUSER", "carol", "on", ">pw2", "%R~c*", "-@all", "+get",
    ]);
    assert_eq!(set, "+OK\r\n");
    for i in 0..60 {
        assert_eq!(admin.raw(&["SET", &format!("k{i}"), "v"]), "+OK\r\n");
    }
    for id in 1..=3 {
        c.wait_status(id, Duration::from_secs(10), |s| {
            s.snapshots_taken > 0 && s.first_index > 5
        });
    }
    let before = acl_line(&c, leader, "carol").expect("carol");
    c.stop_all();
    for id in 1..=3 {
        c.restart(id);
    }
    c.wait_leader(Duration::from_secs(10));
    for id in 1..=3 {
        assert_eq!(
            acl_line(&c, id, "carol").as_ref(),
            Some(&before),
            "node {id}"
        );
        assert_eq!(acl_line(&c, id, "bob"), None, "node {id}");
    }
    let mut carol = RawConn::connect(c.client_addr(other));
    assert_eq!(carol.raw(&["AUTH", "carol", "pw2"]), "+OK\r\n");
    assert_eq!(carol.raw(&["GET", "c1"]), "$-1\r\n");
    assert!(carol.raw(&["SET", "c1", "v"]).starts_with("-NOPERM"));
}
