//! The `redis` crate (redis-rs), as a Rust application uses it, against a one-node
//! raftkv: speaking RESP3 (`?protocol=resp3`: it opens with `HELLO 3`) and RESP2, plain
//! commands, map and set replies, pipelines with and without MULTI/EXEC, and WATCH.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::Cluster;
use redis::{Commands, Value};

fn one_node() -> Cluster {
    let c = Cluster::start(1, |_| {});
    c.wait_leader(Duration::from_secs(10));
    c
}

fn connect(c: &Cluster, query: &str) -> redis::Connection {
    let url = format!("redis://{}/{query}", c.client_addr(1));
    let client = redis::Client::open(url).expect("url");
    let conn = client
        .get_connection_with_timeout(Duration::from_secs(10))
        .expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    conn
}

fn client_field(conn: &mut redis::Connection, name: &str) -> String {
    let info: String = redis::cmd("CLIENT")
        .arg("INFO")
        .query(conn)
        .expect("CLIENT INFO");
    info.split_whitespace()
        .find_map(|f| f.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {info}"))
        .to_string()
}

#[test]
fn resp3_plain_commands_maps_and_pipelines() {
    let c = one_node();
    let mut r3 = connect(&c, "?protocol=resp3");
    assert_eq!(client_field(&mut r3, "resp"), "3");

    // Strings, with expiry.
    let () = r3.set("rs:k", "v").unwrap();
    let v: String = r3.get("rs:k").unwrap();
    assert_eq!(v, "v");
    let missing: Option<String> = r3.get("rs:missing").unwrap();
    assert_eq!(missing, None);
    // RESP3's null, not RESP2's nil bulk: redis-rs shows both as Nil.
    let raw: Value = redis::cmd("GET").arg("rs:missing").query(&mut r3).unwrap();
    assert_eq!(raw, Value::Nil);
    let () = r3.set_ex("rs:ttl", "v", 100).unwrap();
    let ttl: i64 = r3.ttl("rs:ttl").unwrap();
    assert!((99..=100).contains(&ttl), "{ttl}");
    let n: i64 = r3.incr("rs:n", 41).unwrap();
    assert_eq!(n, 41);

    // Hashes: HGETALL is a RESP3 map.
    let added: i64 = r3.hset("rs:h", "a", "1").unwrap();
    assert_eq!(added, 1);
    let () = r3.hset_multiple("rs:h", &[("b", "2")]).unwrap(); // HMSET: +OK
    let len: i64 = r3.hlen("rs:h").unwrap();
    assert_eq!(len, 2);
    let raw: Value = redis::cmd("HGETALL").arg("rs:h").query(&mut r3).unwrap();
    let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
    assert_eq!(
        raw,
        Value::Map(vec![(bulk("a"), bulk("1")), (bulk("b"), bulk("2"))])
    );
    let h: HashMap<String, i64> = r3.hgetall("rs:h").unwrap();
    assert_eq!(h, HashMap::from([("a".into(), 1), ("b".into(), 2)]));
    let empty: Value = redis::cmd("HGETALL").arg("rs:none").query(&mut r3).unwrap();
    assert_eq!(empty, Value::Map(vec![]));
    // INFO is a verbatim string in RESP3; redis-rs reads it as text.
    let info: String = redis::cmd("INFO").arg("keyspace").query(&mut r3).unwrap();
    assert!(info.contains("db0:keys="), "{info}");
    assert!(info.contains(",expires=1,"), "{info}");
    // COMMAND INFO: flags and categories are RESP3 sets.
    let raw: Value = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("get")
        .query(&mut r3)
        .unwrap();
    let Value::Array(entries) = raw else {
        panic!("{raw:?}")
    };
    let Value::Array(get) = &entries[0] else {
        panic!("{entries:?}")
    };
    assert_eq!(get[0], bulk("get"));
    assert_eq!(get[1], Value::Int(2));
    assert_eq!(
        get[2],
        Value::Set(vec![
            Value::SimpleString("readonly".into()),
            Value::SimpleString("fast".into())
        ])
    );

    // A pipeline without MULTI: one round trip, replies in order.
    let (set, incr, got, hash): (String, i64, String, HashMap<String, String>) = redis::pipe()
        .set("rs:p", 1)
        .incr("rs:p", 2)
        .get("rs:p")
        .hgetall("rs:h")
        .query(&mut r3)
        .unwrap();
    assert_eq!((set.as_str(), incr, got.as_str()), ("OK", 3, "3"));
    assert_eq!(hash["b"], "2");
    // An atomic pipeline: MULTI ... EXEC, one log entry.
    let (a, b, hash): (i64, i64, HashMap<String, String>) = redis::pipe()
        .atomic()
        .incr("rs:p", 1)
        .hincr("rs:h", "a", 10)
        .ignore()
        .hget("rs:h", "a")
        .hgetall("rs:h")
        .query(&mut r3)
        .unwrap();
    assert_eq!((a, b), (4, 11));
    assert_eq!(hash["a"], "11");
    // An error inside EXEC is that command's entry: the pipeline's query fails, the
    // other commands applied.
    let () = r3.set("rs:s", "x").unwrap();
    let failed: redis::RedisResult<(i64, String)> = redis::pipe()
        .atomic()
        .incr("rs:s", 1)
        .set("rs:after", "y")
        .query(&mut r3);
    assert!(failed.is_err(), "{failed:?}");
    let after: String = r3.get("rs:after").unwrap();
    assert_eq!(after, "y");

    // WATCH through redis-rs's transaction helper: retried until EXEC applies.
    let mut other = connect(&c, "?protocol=resp3");
    let mut tries = 0;
    let (v,): (i64,) = redis::transaction(&mut r3, &["rs:w"], |conn, pipe| {
        tries += 1;
        let cur: Option<i64> = conn.get("rs:w")?;
        if tries == 1 {
            // Another client writes the watched key: this EXEC answers nil.
            let () = other.set("rs:w", 100)?;
        }
        pipe.set("rs:w", cur.unwrap_or(0) + 1)
            .ignore()
            .get("rs:w")
            .query(conn)
    })
    .unwrap();
    assert_eq!((tries, v), (2, 101));

    // RESP2 on the same server: the same answers, HGETALL as a flat array.
    let mut r2 = connect(&c, "?protocol=resp2");
    assert_eq!(client_field(&mut r2, "resp"), "2");
    let raw: Value = redis::cmd("HGETALL").arg("rs:h").query(&mut r2).unwrap();
    assert_eq!(
        raw,
        Value::Array(vec![bulk("a"), bulk("11"), bulk("b"), bulk("2")])
    );
    let h: HashMap<String, String> = r2.hgetall("rs:h").unwrap();
    assert_eq!(h["b"], "2");
    let (n, got): (i64, String) = redis::pipe()
        .atomic()
        .incr("rs:p", 1)
        .get("rs:k")
        .query(&mut r2)
        .unwrap();
    assert_eq!((n, got.as_str()), (5, "v"));
}
