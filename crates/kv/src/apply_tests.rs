//! Every command's apply and every query's answer, against Redis 7's documented replies.

use bytes::Bytes;

use crate::command::{Command, ExpireCond, GetExTtl, Op, SetCond, SetTtl, When};
use crate::query::{Query, TtlKind};
use crate::reply::{Reply, NOT_INTEGER, OVERFLOW, WRONGTYPE};
use crate::store::{KvStore, Outcome};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(b(s))
}

fn err(s: &str) -> Reply {
    Reply::Error(s.to_string())
}

/// A store and a clock: every command is applied as the leader would propose it.
struct T {
    kv: KvStore,
    now: u64,
}

impl T {
    fn new() -> T {
        T {
            kv: KvStore::new(),
            now: 1_000_000,
        }
    }

    fn w(&mut self, cmd: Command) -> Reply {
        let entry = Command::Timed {
            now_ms: self.now,
            cmd: Box::new(cmd),
        };
        // Through the bytes, as the log carries it.
        let outcome = self.kv.apply_entry(&entry.encode()).expect("decodes");
        self.kv.debug_check();
        match outcome {
            Outcome::Reply(r) => r,
            other => panic!("not a reply: {other:?}"),
        }
    }

    fn r(&self, q: Query) -> Reply {
        self.kv.query(&q, self.kv.read_time(self.now))
    }

    fn set(&mut self, k: &str, v: &str) -> Reply {
        self.w(set(k, v, SetCond::Always, SetTtl::Clear, false))
    }

    fn get(&self, k: &str) -> Reply {
        self.r(Query::Get { key: b(k) })
    }

    fn pttl(&self, k: &str) -> Reply {
        self.r(Query::Ttl {
            key: b(k),
            kind: TtlKind::Pttl,
        })
    }

    fn hset(&mut self, k: &str, pairs: &[(&str, &str)]) -> Reply {
        self.w(Command::HSet {
            key: b(k),
            pairs: pairs.iter().map(|(f, v)| (b(f), b(v))).collect(),
            hmset: false,
        })
    }
}

fn set(k: &str, v: &str, cond: SetCond, ttl: SetTtl, get: bool) -> Command {
    Command::Set {
        key: b(k),
        value: b(v),
        cond,
        ttl,
        get,
    }
}

#[test]
fn set_options() {
    let mut t = T::new();
    assert_eq!(t.set("k", "v"), Reply::Ok);
    assert_eq!(
        t.w(set("k", "w", SetCond::IfAbsent, SetTtl::Clear, false)),
        Reply::Nil
    );
    assert_eq!(
        t.w(set("new", "w", SetCond::IfPresent, SetTtl::Clear, false)),
        Reply::Nil
    );
    assert_eq!(t.get("new"), Reply::Nil);
    // GET answers the old value (nil if none), whether or not the condition held.
    assert_eq!(
        t.w(set("k", "w", SetCond::IfPresent, SetTtl::Clear, true)),
        bulk("v")
    );
    assert_eq!(
        t.w(set("k", "x", SetCond::IfAbsent, SetTtl::Clear, true)),
        bulk("w")
    );
    assert_eq!(t.get("k"), bulk("w"));
    assert_eq!(
        t.w(set("fresh", "1", SetCond::Always, SetTtl::Clear, true)),
        Reply::Nil
    );
    // SETNX answers 1/0.
    assert_eq!(
        t.w(Command::SetNx {
            key: b("k"),
            value: b("z")
        }),
        Reply::Int(0)
    );
    assert_eq!(
        t.w(Command::SetNx {
            key: b("nx"),
            value: b("z")
        }),
        Reply::Int(1)
    );
    // SET GET on a hash is WRONGTYPE and changes nothing; SET without GET replaces it.
    t.hset("h", &[("f", "v")]);
    assert_eq!(
        t.w(set("h", "s", SetCond::Always, SetTtl::Clear, true)),
        err(WRONGTYPE)
    );
    assert_eq!(
        t.r(Query::Type { key: b("h") }),
        Reply::Status("hash".into())
    );
    assert_eq!(t.set("h", "s"), Reply::Ok);
    assert_eq!(
        t.r(Query::Type { key: b("h") }),
        Reply::Status("string".into())
    );
}

#[test]
fn set_ttls_keepttl_and_expiry_at_the_entry_clock() {
    let mut t = T::new();
    t.w(set(
        "k",
        "v",
        SetCond::Always,
        SetTtl::Expire(When::InMs(10_000)),
        false,
    ));
    assert_eq!(t.pttl("k"), Reply::Int(10_000));
    assert_eq!(
        t.r(Query::Ttl {
            key: b("k"),
            kind: TtlKind::Ttl
        }),
        Reply::Int(10)
    );
    assert_eq!(
        t.r(Query::Ttl {
            key: b("k"),
            kind: TtlKind::PexpireTime
        }),
        Reply::Int(1_010_000)
    );
    assert_eq!(
        t.r(Query::Ttl {
            key: b("k"),
            kind: TtlKind::ExpireTime
        }),
        Reply::Int(1_010)
    );
    // KEEPTTL keeps it; a plain SET clears it.
    t.now += 4_000;
    t.w(set("k", "v2", SetCond::Always, SetTtl::Keep, false));
    assert_eq!(t.pttl("k"), Reply::Int(6_000));
    t.set("k", "v3");
    assert_eq!(t.pttl("k"), Reply::Int(-1));
    assert_eq!(t.pttl("absent"), Reply::Int(-2));
    // An absolute deadline already past: set, and gone at once.
    t.w(set(
        "past",
        "v",
        SetCond::Always,
        SetTtl::Expire(When::AtMs(5)),
        false,
    ));
    assert_eq!(t.get("past"), Reply::Nil);
    assert!(t.kv.entry(b"past").is_none(), "removed at apply");
    // Reads past the deadline see nothing, before any removal.
    t.w(set(
        "short",
        "v",
        SetCond::Always,
        SetTtl::Expire(When::InMs(100)),
        false,
    ));
    t.now += 100;
    assert_eq!(t.get("short"), Reply::Nil);
    assert_eq!(
        t.r(Query::Exists {
            keys: vec![b("short")]
        }),
        Reply::Int(0)
    );
    assert_eq!(t.r(Query::DbSize), Reply::Int(1));
    assert_eq!(t.kv.len(), 2, "still held until removed");
    // A write touching it treats it as absent.
    assert_eq!(
        t.w(set(
            "short",
            "again",
            SetCond::IfAbsent,
            SetTtl::Clear,
            false
        )),
        Reply::Ok
    );
}

#[test]
fn the_clock_never_goes_backwards() {
    let mut t = T::new();
    t.w(set(
        "k",
        "v",
        SetCond::Always,
        SetTtl::Expire(When::InMs(1_000)),
        false,
    ));
    // A new leader whose clock is 10 s behind: the apply keeps the later time, so the
    // deadline is not stretched and relative TTLs count from the later time.
    t.now -= 10_000;
    t.w(set(
        "j",
        "v",
        SetCond::Always,
        SetTtl::Expire(When::InMs(1_000)),
        false,
    ));
    assert_eq!(t.kv.clock_ms(), 1_000_000);
    assert_eq!(t.kv.entry(b"j").unwrap().deadline, Some(1_001_000));
    assert_eq!(t.kv.read_time(0), 1_000_000);
}

#[test]
fn expire_family_with_conditions() {
    let mut t = T::new();
    let expire = |k: &str, when, cond| Command::Expire {
        key: b(k),
        when,
        cond,
    };
    assert_eq!(
        t.w(expire("absent", When::InMs(1), ExpireCond::Always)),
        Reply::Int(0)
    );
    t.set("k", "v");
    assert_eq!(
        t.w(expire("k", When::InMs(5_000), ExpireCond::Xx)),
        Reply::Int(0)
    );
    assert_eq!(
        t.w(expire("k", When::InMs(5_000), ExpireCond::Gt)),
        Reply::Int(0)
    );
    assert_eq!(
        t.w(expire("k", When::InMs(5_000), ExpireCond::Nx)),
        Reply::Int(1)
    );
    assert_eq!(
        t.w(expire("k", When::InMs(9_000), ExpireCond::Nx)),
        Reply::Int(0)
    );
    assert_eq!(
        t.w(expire("k", When::InMs(4_000), ExpireCond::Gt)),
        Reply::Int(0)
    );
    assert_eq!(
        t.w(expire("k", When::InMs(9_000), ExpireCond::Gt)),
        Reply::Int(1)
    );
    assert_eq!(
        t.w(expire("k", When::InMs(9_500), ExpireCond::Lt)),
        Reply::Int(0)
    );
    assert_eq!(
        t.w(expire("k", When::AtMs(1_003_000), ExpireCond::Lt)),
        Reply::Int(1)
    );
    assert_eq!(t.pttl("k"), Reply::Int(3_000));
    assert_eq!(t.w(Command::Persist { key: b("k") }), Reply::Int(1));
    assert_eq!(t.w(Command::Persist { key: b("k") }), Reply::Int(0));
    assert_eq!(
        t.w(expire("k", When::InMs(1), ExpireCond::Lt)),
        Reply::Int(1)
    );
    // A deadline in the past deletes the key, and answers 1.
    assert_eq!(
        t.w(expire("k", When::AtMs(1), ExpireCond::Always)),
        Reply::Int(1)
    );
    assert_eq!(t.get("k"), Reply::Nil);
    assert!(t.kv.is_empty());
}

#[test]
fn getex_getdel_getset() {
    let mut t = T::new();
    t.set("k", "v");
    let getex = |ttl| Command::GetEx { key: b("k"), ttl };
    assert_eq!(t.w(getex(GetExTtl::Expire(When::InMs(700)))), bulk("v"));
    assert_eq!(t.pttl("k"), Reply::Int(700));
    assert_eq!(t.w(getex(GetExTtl::Leave)), bulk("v"));
    assert_eq!(t.pttl("k"), Reply::Int(700));
    assert_eq!(t.w(getex(GetExTtl::Persist)), bulk("v"));
    assert_eq!(t.pttl("k"), Reply::Int(-1));
    assert_eq!(
        t.w(Command::GetEx {
            key: b("no"),
            ttl: GetExTtl::Persist
        }),
        Reply::Nil
    );
    assert_eq!(t.w(Command::GetDel { key: b("k") }), bulk("v"));
    assert_eq!(t.w(Command::GetDel { key: b("k") }), Reply::Nil);
    t.hset("h", &[("f", "v")]);
    assert_eq!(t.w(Command::GetDel { key: b("h") }), err(WRONGTYPE));
    assert_eq!(t.w(getex(GetExTtl::Leave)), Reply::Nil);
}

#[test]
fn counters_are_exact_and_checked() {
    let mut t = T::new();
    let incr = |k: &str, by| Command::IncrBy { key: b(k), by };
    assert_eq!(t.w(incr("n", 1)), Reply::Int(1));
    assert_eq!(t.w(incr("n", -11)), Reply::Int(-10));
    assert_eq!(t.get("n"), bulk("-10"));
    t.set("big", &i64::MAX.to_string());
    assert_eq!(t.w(incr("big", 1)), err(OVERFLOW));
    for bad in [
        "",
        " 1",
        "+1",
        "01",
        "1.0",
        "-0",
        "abc",
        "99999999999999999999",
    ] {
        t.set("s", bad);
        assert_eq!(t.w(incr("s", 1)), err(NOT_INTEGER), "{bad:?}");
    }
    t.hset("h", &[("f", "1")]);
    assert_eq!(t.w(incr("h", 1)), err(WRONGTYPE));
    // INCR keeps the deadline.
    t.w(set(
        "ttl",
        "5",
        SetCond::Always,
        SetTtl::Expire(When::InMs(900)),
        false,
    ));
    assert_eq!(t.w(incr("ttl", 1)), Reply::Int(6));
    assert_eq!(t.pttl("ttl"), Reply::Int(900));
    // INCRBYFLOAT.
    let fl = |k: &str, by: &str| Command::IncrByFloat {
        key: b(k),
        by: b(by),
    };
    t.set("f", "10.50");
    assert_eq!(t.w(fl("f", "0.1")), bulk("10.6"));
    assert_eq!(t.w(fl("f", "-5.0e3")), bulk("-4989.4"));
    assert_eq!(t.w(fl("g", "3")), bulk("3"));
    assert_eq!(t.w(fl("f", "x")), err("ERR value is not a valid float"));
    assert_eq!(
        t.w(fl("f", "inf")),
        err("ERR increment would produce NaN or Infinity")
    );
    assert_eq!(t.w(fl("h", "1")), err(WRONGTYPE));
}

#[test]
fn string_commands() {
    let mut t = T::new();
    let append = |k: &str, v: &str| Command::Append {
        key: b(k),
        value: b(v),
    };
    assert_eq!(t.w(append("k", "Hello")), Reply::Int(5));
    assert_eq!(t.w(append("k", " World")), Reply::Int(11));
    assert_eq!(t.r(Query::StrLen { key: b("k") }), Reply::Int(11));
    assert_eq!(t.r(Query::StrLen { key: b("none") }), Reply::Int(0));
    let range = |s, e| Query::GetRange {
        key: b("k"),
        start: s,
        end: e,
    };
    assert_eq!(t.r(range(0, 3)), bulk("Hell"));
    assert_eq!(t.r(range(-3, -1)), bulk("rld"));
    assert_eq!(t.r(range(0, -1)), bulk("Hello World"));
    assert_eq!(t.r(range(10, 100)), bulk("d"));
    assert_eq!(t.r(range(5, 3)), bulk(""));
    assert_eq!(t.r(range(-1, -3)), bulk(""));
    let setrange = |k: &str, off, v: &str| Command::SetRange {
        key: b(k),
        offset: off,
        value: b(v),
    };
    assert_eq!(t.w(setrange("k", 6, "Redis")), Reply::Int(11));
    assert_eq!(t.get("k"), bulk("Hello Redis"));
    assert_eq!(t.w(setrange("pad", 3, "x")), Reply::Int(4));
    assert_eq!(t.get("pad"), Reply::Bulk(Bytes::from_static(b"\0\0\0x")));
    assert_eq!(t.w(setrange("empty", 3, "")), Reply::Int(0));
    assert_eq!(t.get("empty"), Reply::Nil);
    assert_eq!(
        t.w(setrange("k", 512 << 20, "x")),
        err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    );
    t.hset("h", &[("f", "v")]);
    assert_eq!(t.w(append("h", "x")), err(WRONGTYPE));
    assert_eq!(t.r(Query::StrLen { key: b("h") }), err(WRONGTYPE));
    assert_eq!(t.get("h"), err(WRONGTYPE));
    // MGET answers nil for other types.
    assert_eq!(
        t.r(Query::MGet {
            keys: vec![b("k"), b("h"), b("none")]
        }),
        Reply::Array(vec![bulk("Hello Redis"), Reply::Nil, Reply::Nil])
    );
}

#[test]
fn key_commands() {
    let mut t = T::new();
    t.set("a", "1");
    t.w(set(
        "b",
        "2",
        SetCond::Always,
        SetTtl::Expire(When::InMs(5_000)),
        false,
    ));
    assert_eq!(
        t.w(Command::Del {
            keys: vec![b("a"), b("a"), b("zz")]
        }),
        Reply::Int(1)
    );
    let rename = |f: &str, to: &str, nx| Command::Rename {
        from: b(f),
        to: b(to),
        nx,
    };
    assert_eq!(t.w(rename("nope", "x", false)), err("ERR no such key"));
    assert_eq!(t.w(rename("b", "c", false)), Reply::Ok);
    assert_eq!(t.get("b"), Reply::Nil);
    assert_eq!(
        t.pttl("c"),
        Reply::Int(5_000),
        "the deadline moves with the key"
    );
    assert_eq!(t.w(rename("c", "c", false)), Reply::Ok);
    t.set("d", "4");
    assert_eq!(t.w(rename("c", "d", true)), Reply::Int(0));
    assert_eq!(t.w(rename("c", "e", true)), Reply::Int(1));
    let copy = |f: &str, to: &str, replace| Command::Copy {
        from: b(f),
        to: b(to),
        replace,
    };
    assert_eq!(t.w(copy("e", "d", false)), Reply::Int(0));
    assert_eq!(t.w(copy("e", "d", true)), Reply::Int(1));
    assert_eq!(t.get("d"), bulk("2"));
    assert_eq!(t.pttl("d"), Reply::Int(5_000));
    assert_eq!(t.w(copy("none", "x", false)), Reply::Int(0));
    assert_eq!(
        t.w(copy("d", "d", false)),
        err("ERR source and destination objects are the same")
    );
    assert_eq!(
        t.r(Query::Type { key: b("none") }),
        Reply::Status("none".into())
    );
    assert_eq!(
        t.w(Command::MSetNx {
            pairs: vec![(b("m1"), b("1")), (b("d"), b("x"))]
        }),
        Reply::Int(0)
    );
    assert_eq!(
        t.get("m1"),
        Reply::Nil,
        "MSETNX sets nothing if any key exists"
    );
    assert_eq!(
        t.w(Command::MSetNx {
            pairs: vec![(b("m1"), b("1")), (b("m2"), b("2"))]
        }),
        Reply::Int(1)
    );
    assert_eq!(
        t.w(Command::MSet {
            pairs: vec![(b("m1"), b("x")), (b("d"), b("y"))]
        }),
        Reply::Ok
    );
    assert_eq!(t.pttl("d"), Reply::Int(-1), "MSET clears deadlines");
    assert_eq!(t.r(Query::DbSize), Reply::Int(4));
    assert_eq!(t.w(Command::FlushAll), Reply::Ok);
    assert_eq!(t.r(Query::DbSize), Reply::Int(0));
    assert_eq!(t.kv.size_bytes(), 0);
}

#[test]
fn hashes() {
    let mut t = T::new();
    assert_eq!(t.hset("h", &[("a", "1"), ("b", "2")]), Reply::Int(2));
    assert_eq!(t.hset("h", &[("a", "x"), ("c", "3")]), Reply::Int(1));
    let hget = |f: &str| Query::HGet {
        key: b("h"),
        field: b(f),
    };
    assert_eq!(t.r(hget("a")), bulk("x"));
    assert_eq!(t.r(hget("zz")), Reply::Nil);
    assert_eq!(
        t.r(Query::HMGet {
            key: b("h"),
            fields: vec![b("a"), b("q")]
        }),
        Reply::Array(vec![bulk("x"), Reply::Nil])
    );
    assert_eq!(
        t.r(Query::HGetAll { key: b("h") }),
        Reply::Map(vec![(b("a"), b("x")), (b("b"), b("2")), (b("c"), b("3"))])
    );
    assert_eq!(t.r(Query::HLen { key: b("h") }), Reply::Int(3));
    assert_eq!(
        t.r(Query::HKeys { key: b("h") }),
        Reply::Array(vec![bulk("a"), bulk("b"), bulk("c")])
    );
    assert_eq!(
        t.r(Query::HVals { key: b("h") }),
        Reply::Array(vec![bulk("x"), bulk("2"), bulk("3")])
    );
    assert_eq!(
        t.r(Query::HExists {
            key: b("h"),
            field: b("b")
        }),
        Reply::Int(1)
    );
    assert_eq!(
        t.r(Query::HStrLen {
            key: b("h"),
            field: b("a")
        }),
        Reply::Int(1)
    );
    let hsetnx = |f: &str| Command::HSetNx {
        key: b("h"),
        field: b(f),
        value: b("n"),
    };
    assert_eq!(t.w(hsetnx("a")), Reply::Int(0));
    assert_eq!(
        t.r(hget("a")),
        bulk("x"),
        "HSETNX on an existing field keeps it"
    );
    assert_eq!(t.w(hsetnx("d")), Reply::Int(1));
    let hincr = |f: &str, by| Command::HIncrBy {
        key: b("h"),
        field: b(f),
        by,
    };
    assert_eq!(t.w(hincr("b", 5)), Reply::Int(7));
    assert_eq!(t.w(hincr("new", -2)), Reply::Int(-2));
    assert_eq!(t.w(hincr("a", 1)), err("ERR hash value is not an integer"));
    t.w(hincr("big", i64::MAX));
    assert_eq!(t.w(hincr("big", 1)), err(OVERFLOW));
    assert_eq!(t.r(Query::HLen { key: b("h") }), Reply::Int(6));
    // HSCAN pages in field order.
    let hscan = |cursor, count| Query::HScan {
        key: b("h"),
        cursor,
        count,
        novalues: false,
    };
    assert_eq!(
        t.r(hscan(0, 2)),
        Reply::Array(vec![
            bulk("2"),
            Reply::Array(vec![bulk("a"), bulk("x"), bulk("b"), bulk("7")])
        ])
    );
    let Reply::Array(last) = t.r(hscan(4, 10)) else {
        panic!()
    };
    assert_eq!(last[0], bulk("0"));
    assert_eq!(
        t.w(Command::HDel {
            key: b("h"),
            fields: vec![b("a"), b("a"), b("zz")]
        }),
        Reply::Int(1)
    );
    // Removing the last field removes the key.
    t.hset("small", &[("f", "v")]);
    t.w(Command::HDel {
        key: b("small"),
        fields: vec![b("f")],
    });
    assert_eq!(
        t.r(Query::Exists {
            keys: vec![b("small")]
        }),
        Reply::Int(0)
    );
    // Wrong types, both ways.
    t.set("s", "v");
    assert_eq!(t.hset("s", &[("f", "v")]), err(WRONGTYPE));
    assert_eq!(
        t.r(Query::HGet {
            key: b("s"),
            field: b("f")
        }),
        err(WRONGTYPE)
    );
    assert_eq!(t.get("s"), bulk("v"), "a refused HSET leaves the string");
    assert_eq!(t.r(Query::HGetAll { key: b("none") }), Reply::Map(vec![]));
    // HMSET answers OK.
    assert_eq!(
        t.w(Command::HSet {
            key: b("h2"),
            pairs: vec![(b("f"), b("v"))],
            hmset: true
        }),
        Reply::Ok
    );
}

#[test]
fn transactions_apply_atomically_and_watch_aborts() {
    let mut t = T::new();
    t.set("w", "1");
    let Reply::Array(v) = t.r(Query::Versions {
        keys: vec![b("w"), b("none")],
    }) else {
        panic!()
    };
    let (Reply::Int(vw), Reply::Int(vn)) = (&v[0], &v[1]) else {
        panic!()
    };
    assert_eq!(*vn, 0);
    let multi = |watched: Vec<(Bytes, u64)>| Command::Multi {
        watched,
        ops: vec![
            Op::Write(Command::IncrBy { key: b("w"), by: 1 }),
            Op::Write(Command::HSet {
                key: b("w"),
                pairs: vec![(b("f"), b("v"))],
                hmset: false,
            }),
            Op::Read(Query::Get { key: b("w") }),
            Op::Const(Reply::Error("ERR syntax error".into())),
        ],
    };
    // Run-time errors are per command; the rest applies.
    assert_eq!(
        t.w(multi(vec![(b("w"), *vw as u64), (b("none"), 0)])),
        Reply::Array(vec![
            Reply::Int(2),
            err(WRONGTYPE),
            bulk("2"),
            err("ERR syntax error")
        ])
    );
    // The watched key changed since: nil, and nothing applied.
    assert_eq!(t.w(multi(vec![(b("w"), *vw as u64)])), Reply::NilArray);
    assert_eq!(t.get("w"), bulk("2"));
    // A key that expired counts as changed.
    t.w(Command::Expire {
        key: b("w"),
        when: When::InMs(10),
        cond: ExpireCond::Always,
    });
    let Reply::Array(v) = t.r(Query::Versions { keys: vec![b("w")] }) else {
        panic!()
    };
    let Reply::Int(before) = v[0] else { panic!() };
    t.now += 10;
    assert_eq!(t.w(multi(vec![(b("w"), before as u64)])), Reply::NilArray);
}

#[test]
fn active_expiry_removes_only_keys_still_due() {
    let mut t = T::new();
    for k in ["a", "b", "c"] {
        t.w(set(
            k,
            "v",
            SetCond::Always,
            SetTtl::Expire(When::InMs(100)),
            false,
        ));
    }
    t.set("forever", "v");
    // The leader looks at 100 ms: "a" and "b" are due (bounded, earliest first)...
    let due = t.kv.expired_keys(t.now + 100, 2);
    assert_eq!(due, vec![b("a"), b("b")]);
    // ...but a refresh of "b" proposed at 50 ms was still in flight, and is ahead of
    // the expiry entry in the log.
    t.now += 50;
    assert_eq!(
        t.w(Command::Expire {
            key: b("b"),
            when: When::InMs(1_000),
            cond: ExpireCond::Always,
        }),
        Reply::Int(1)
    );
    t.now += 50;
    assert_eq!(t.w(Command::ExpireKeys { keys: due }), Reply::Int(1));
    assert_eq!(t.kv.expired_keys(t.now, 10), vec![b("c")]);
    assert_eq!(
        t.w(Command::ExpireKeys {
            keys: vec![b("c"), b("forever")]
        }),
        Reply::Int(1)
    );
    assert_eq!(t.kv.len(), 2);
    assert!(t.kv.expired_keys(t.now, 10).is_empty());
}

#[test]
fn legacy_commands_still_apply() {
    let mut kv = KvStore::new();
    assert_eq!(
        kv.apply(Command::Put {
            key: b("k"),
            value: b("v")
        }),
        Outcome::Done
    );
    assert_eq!(
        kv.apply(Command::Cas {
            key: b("k"),
            expected: Some(b("v")),
            new: b("w")
        }),
        Outcome::Cas {
            swapped: true,
            current: Some(b("v"))
        }
    );
    assert_eq!(kv.get(b"k"), Some(&b("w")));
    assert_eq!(
        kv.apply(Command::Delete { key: b("k") }),
        Outcome::Deleted(true)
    );
}

#[test]
fn keys_with_a_ttl_are_counted_with_their_average_ttl() {
    let mut t = T::new();
    let ex = |ms| SetTtl::Expire(When::InMs(ms));
    assert_eq!((t.kv.expiring(), t.kv.avg_ttl_ms(t.now)), (0, 0));
    t.set("plain", "v");
    t.w(set("a", "v", SetCond::Always, ex(10_000), false));
    t.w(set("b", "v", SetCond::Always, ex(30_000), false));
    assert_eq!((t.kv.expiring(), t.kv.avg_ttl_ms(t.now)), (2, 20_000));
    assert_eq!(t.kv.avg_ttl_ms(t.now + 5_000), 15_000);
    // A new deadline replaces the old one in the sum.
    t.w(Command::Expire {
        key: b("a"),
        when: When::InMs(50_000),
        cond: ExpireCond::Always,
    });
    assert_eq!((t.kv.expiring(), t.kv.avg_ttl_ms(t.now)), (2, 40_000));
    t.w(Command::Persist { key: b("b") });
    assert_eq!((t.kv.expiring(), t.kv.avg_ttl_ms(t.now)), (1, 50_000));
    t.set("a", "w"); // SET clears the TTL
    assert_eq!((t.kv.expiring(), t.kv.avg_ttl_ms(t.now)), (0, 0));
    t.w(set("c", "v", SetCond::Always, ex(1_000), false));
    // Past its deadline and not removed yet: counted, with no time left.
    assert_eq!((t.kv.expiring(), t.kv.avg_ttl_ms(t.now + 2_000)), (1, 0));
    t.w(Command::FlushAll);
    assert_eq!((t.kv.expiring(), t.kv.avg_ttl_ms(t.now)), (0, 0));
}

#[test]
fn acl_entries_change_the_users() {
    let mut kv = KvStore::new();
    let cmd = Command::Timed {
        now_ms: 5,
        cmd: Box::new(Command::Acl {
            op: crate::AclOp::SetUser {
                name: Bytes::from_static(b"alice"),
                rules: vec![Bytes::from_static(b"on")],
            },
            bootstrap: vec![],
        }),
    };
    let out = kv.apply_entry(&cmd.encode()).unwrap();
    assert_eq!(out, Outcome::Reply(Reply::Ok));
    assert_eq!(kv.acl_changes(), 1);
    assert!(kv.acl().users().unwrap().contains_key(&b"alice"[..]));
}
