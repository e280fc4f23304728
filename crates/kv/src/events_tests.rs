//! The events each command produces (as a real Redis 7.0 notifies them; the server's
//! compat suite compares the same cases with redis-server byte for byte), and that a
//! watcher who mirrors key existence from the events alone always agrees with the map.

use std::collections::BTreeSet;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::command::{Command, ExpireCond, GetExTtl, Op, SetCond, SetTtl, When};
use crate::events::{Event, KeyEvent};
use crate::query::Query;
use crate::session::{encode_session_write, SessionTag};
use crate::store::KvStore;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

struct T {
    kv: KvStore,
    now: u64,
}

impl T {
    fn new() -> T {
        let mut kv = KvStore::new();
        kv.record_events(true);
        T { kv, now: 1_000_000 }
    }

    /// Applies `cmd` as the leader proposes it; the events it produced, as
    /// `"name key"` strings (`flush`, `message channel payload`).
    fn w(&mut self, cmd: Command) -> Vec<String> {
        let entry = Command::Timed {
            now_ms: self.now,
            cmd: Box::new(cmd),
        };
        self.kv.apply_entry(&entry.encode()).expect("decodes");
        self.kv.debug_check();
        self.kv.take_events().iter().map(shown).collect()
    }
}

fn shown(e: &Event) -> String {
    match e {
        Event::Key { kind, key } => format!("{} {}", kind.name(), String::from_utf8_lossy(key)),
        Event::Message { channel, message } => format!(
            "message {} {}",
            String::from_utf8_lossy(channel),
            String::from_utf8_lossy(message)
        ),
        Event::Flush => "flush".into(),
    }
}

fn set(k: &str, v: &str, cond: SetCond, ttl: SetTtl) -> Command {
    Command::Set {
        key: b(k),
        value: b(v),
        cond,
        ttl,
        get: false,
    }
}

fn plain(k: &str, v: &str) -> Command {
    set(k, v, SetCond::Always, SetTtl::Clear)
}

fn expire(k: &str, when: When, cond: ExpireCond) -> Command {
    Command::Expire {
        key: b(k),
        when,
        cond,
    }
}

#[test]
fn string_and_key_commands_notify_as_redis_does() {
    let mut t = T::new();
    assert_eq!(t.w(plain("a", "1")), ["set a"]);
    assert_eq!(
        t.w(set(
            "a",
            "2",
            SetCond::Always,
            SetTtl::Expire(When::InMs(100_000))
        )),
        ["set a", "expire a"]
    );
    assert_eq!(t.w(set("a", "3", SetCond::Always, SetTtl::Keep)), ["set a"]);
    // A condition that does not hold: nothing happened, nothing is said.
    assert!(t
        .w(set("a", "4", SetCond::IfAbsent, SetTtl::Clear))
        .is_empty());
    assert!(t
        .w(Command::SetNx {
            key: b("a"),
            value: b("x")
        })
        .is_empty());
    assert_eq!(t.w(Command::GetDel { key: b("a") }), ["del a"]);
    assert!(t.w(Command::GetDel { key: b("a") }).is_empty());
    t.w(plain("a", "1"));
    let getex = |ttl| Command::GetEx { key: b("a"), ttl };
    assert!(t.w(getex(GetExTtl::Leave)).is_empty());
    assert_eq!(
        t.w(getex(GetExTtl::Expire(When::InMs(50_000)))),
        ["expire a"]
    );
    assert_eq!(t.w(getex(GetExTtl::Persist)), ["persist a"]);
    assert!(t.w(getex(GetExTtl::Persist)).is_empty(), "no TTL to remove");
    assert_eq!(t.w(getex(GetExTtl::Expire(When::AtMs(1)))), ["del a"]);
    t.w(plain("a", "1"));
    assert_eq!(
        t.w(expire("a", When::InMs(100_000), ExpireCond::Always)),
        ["expire a"]
    );
    assert!(t.w(expire("a", When::InMs(1), ExpireCond::Gt)).is_empty());
    // EXPIRE to a time already past deletes, as `del`.
    assert_eq!(
        t.w(expire("a", When::AtMs(1), ExpireCond::Always)),
        ["del a"]
    );
    t.w(plain("a", "1"));
    assert!(t.w(Command::Persist { key: b("a") }).is_empty());
    t.w(expire("a", When::InMs(100_000), ExpireCond::Always));
    assert_eq!(t.w(Command::Persist { key: b("a") }), ["persist a"]);
    t.w(plain("b", "1"));
    assert_eq!(
        t.w(Command::Del {
            keys: vec![b("a"), b("b"), b("nosuch")]
        }),
        ["del a", "del b"]
    );
    let pairs = |ks: &[&str]| ks.iter().map(|k| (b(k), b("1"))).collect();
    assert_eq!(
        t.w(Command::MSet {
            pairs: pairs(&["m1", "m2"])
        }),
        ["set m1", "set m2"]
    );
    assert_eq!(
        t.w(Command::MSetNx {
            pairs: pairs(&["m3", "m4"])
        }),
        ["set m3", "set m4"]
    );
    assert!(t
        .w(Command::MSetNx {
            pairs: pairs(&["m4", "m5"])
        })
        .is_empty());
    let incr = |by| Command::IncrBy { key: b("i"), by };
    assert_eq!(t.w(incr(1)), ["incrby i"]);
    assert_eq!(t.w(incr(-3)), ["incrby i"]);
    assert_eq!(t.w(incr(i64::MAX)), ["incrby i"]);
    assert!(
        t.w(incr(i64::MAX)).is_empty(),
        "an overflow changes nothing"
    );
    assert_eq!(
        t.w(Command::IncrByFloat {
            key: b("f"),
            by: b("1.5")
        }),
        ["incrbyfloat f"]
    );
    assert_eq!(
        t.w(Command::Append {
            key: b("s"),
            value: b("ab")
        }),
        ["append s"]
    );
    assert_eq!(
        t.w(Command::SetRange {
            key: b("s"),
            offset: 1,
            value: b("zz")
        }),
        ["setrange s"]
    );
    assert!(t
        .w(Command::SetRange {
            key: b("s2"),
            offset: 0,
            value: b("")
        })
        .is_empty());
    let rename = |from: &str, to: &str, nx| Command::Rename {
        from: b(from),
        to: b(to),
        nx,
    };
    assert_eq!(
        t.w(rename("s", "s3", false)),
        ["rename_from s", "rename_to s3"]
    );
    assert_eq!(
        t.w(rename("s3", "s4", true)),
        ["rename_from s3", "rename_to s4"]
    );
    assert!(t.w(rename("s4", "s4", false)).is_empty());
    let copy = |replace| Command::Copy {
        from: b("s4"),
        to: b("s5"),
        replace,
    };
    assert_eq!(t.w(copy(false)), ["copy_to s5"]);
    assert!(t.w(copy(false)).is_empty());
    assert_eq!(t.w(copy(true)), ["copy_to s5"]);
    assert_eq!(t.w(Command::FlushAll), ["flush"]);
    assert_eq!(
        t.w(Command::Publish {
            channel: b("ch"),
            message: b("hi")
        }),
        ["message ch hi"]
    );
}

#[test]
fn hash_commands_notify_as_redis_does() {
    let mut t = T::new();
    let hset = |pairs: &[(&str, &str)]| Command::HSet {
        key: b("h"),
        pairs: pairs.iter().map(|(f, v)| (b(f), b(v))).collect(),
        hmset: false,
    };
    assert_eq!(t.w(hset(&[("f", "1"), ("g", "2")])), ["hset h"]);
    assert_eq!(
        t.w(hset(&[("f", "3")])),
        ["hset h"],
        "an update is an hset too"
    );
    let hsetnx = |f: &str| Command::HSetNx {
        key: b("h"),
        field: b(f),
        value: b("1"),
    };
    assert!(t.w(hsetnx("f")).is_empty());
    assert_eq!(t.w(hsetnx("z")), ["hset h"]);
    assert_eq!(
        t.w(Command::HIncrBy {
            key: b("h"),
            field: b("f"),
            by: 2
        }),
        ["hincrby h"]
    );
    let hdel = |fs: &[&str]| Command::HDel {
        key: b("h"),
        fields: fs.iter().map(|f| b(f)).collect(),
    };
    assert_eq!(t.w(hdel(&["f"])), ["hdel h"]);
    assert!(t.w(hdel(&["nosuch"])).is_empty());
    assert_eq!(t.w(hdel(&["g", "z"])), ["hdel h", "del h"], "emptied: gone");
    // A failed command changes nothing and says nothing.
    t.w(plain("s", "x"));
    assert!(t
        .w(Command::HDel {
            key: b("s"),
            fields: vec![b("f")]
        })
        .is_empty());
}

#[test]
fn a_key_past_its_deadline_expires_before_what_touches_it() {
    let mut t = T::new();
    let ttl = |ms| SetTtl::Expire(When::InMs(ms));
    for k in ["b", "c", "d", "f", "g"] {
        t.w(set(k, "1", SetCond::Always, ttl(30)));
    }
    t.now += 100;
    assert_eq!(t.w(plain("b", "2")), ["expired b", "set b"]);
    assert_eq!(
        t.w(Command::IncrBy { key: b("c"), by: 1 }),
        ["expired c", "incrby c"]
    );
    // RENAME of an expired key: it expires, and the rename fails.
    assert_eq!(
        t.w(Command::Rename {
            from: b("d"),
            to: b("e"),
            nx: false
        }),
        ["expired d"]
    );
    assert_eq!(t.w(Command::Del { keys: vec![b("f")] }), ["expired f"]);
    // Active expiry: the leader's batch; a key refreshed since stays.
    t.w(set("h", "1", SetCond::Always, ttl(30)));
    t.now += 100;
    t.w(expire("h", When::InMs(100_000), ExpireCond::Always));
    assert_eq!(
        t.w(Command::ExpireKeys {
            keys: vec![b("g"), b("h"), b("nosuch")]
        }),
        ["expired g"]
    );
    // SET with a deadline already past: set, expire, and at once expired.
    assert_eq!(
        t.w(set(
            "n",
            "1",
            SetCond::Always,
            SetTtl::Expire(When::AtMs(1))
        )),
        ["set n", "expire n", "expired n"]
    );
}

#[test]
fn a_transaction_notifies_each_command_in_order_and_a_duplicate_nothing() {
    let mut t = T::new();
    let multi = Command::Multi {
        watched: vec![],
        ops: vec![
            Op::Write(plain("a", "1")),
            Op::Read(Query::Get { key: b("a") }),
            Op::Write(Command::Del { keys: vec![b("a")] }),
        ],
    };
    assert_eq!(t.w(multi), ["set a", "del a"]);
    let tag = SessionTag {
        client: 7,
        seq: 1,
        first_outstanding: 1,
    };
    let entry = encode_session_write(tag, &plain("s", "1"));
    t.kv.apply_entry(&entry).expect("applies");
    assert_eq!(t.kv.take_events().len(), 1);
    t.kv.apply_entry(&entry).expect("a duplicate answers");
    assert!(t.kv.take_events().is_empty(), "applied once, notified once");
}

#[test]
fn a_store_that_does_not_record_produces_nothing() {
    let mut kv = KvStore::new();
    kv.apply(plain("a", "1"));
    assert!(kv.take_events().is_empty());
}

/// A watcher that knows only the events keeps the set of keys the store holds: every
/// way a key appears or goes is an event, in the order it happened.
#[test]
fn a_mirror_built_from_events_alone_holds_the_keys_the_store_holds() {
    for seed in 0..200u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut t = T::new();
        let mut mirror: BTreeSet<Bytes> = BTreeSet::new();
        for step in 0..300 {
            t.now += rng.gen_range(0..40);
            let cmd = random_command(&mut rng, &t);
            let desc = format!("{cmd:?}");
            let entry = Command::Timed {
                now_ms: t.now,
                cmd: Box::new(cmd),
            };
            t.kv.apply_entry(&entry.encode()).expect("decodes");
            for e in t.kv.take_events() {
                match e {
                    Event::Key { kind, key } => {
                        match kind {
                            KeyEvent::Del | KeyEvent::Expired | KeyEvent::RenameFrom => {
                                assert!(mirror.remove(&key), "seed {seed} step {step}: {kind:?} of an absent key after {desc}");
                            }
                            KeyEvent::Expire | KeyEvent::Persist | KeyEvent::HDel => {
                                assert!(mirror.contains(&key), "seed {seed} step {step}: {kind:?} of an absent key after {desc}");
                            }
                            _ => {
                                mirror.insert(key);
                            }
                        }
                    }
                    Event::Flush => mirror.clear(),
                    Event::Message { .. } => {}
                }
            }
            let held: BTreeSet<Bytes> = t.kv.entries().keys().cloned().collect();
            assert_eq!(mirror, held, "seed {seed} step {step}, after {desc}");
        }
    }
}

fn random_command(rng: &mut StdRng, t: &T) -> Command {
    let key = |rng: &mut StdRng| b(["a", "b", "c", "d"][rng.gen_range(0..4)]);
    let when = |rng: &mut StdRng| match rng.gen_range(0..3) {
        0 => When::InMs(rng.gen_range(1..60)),
        1 => When::AtMs(t.now.saturating_sub(20) + rng.gen_range(0..60)),
        _ => When::InMs(100_000),
    };
    match rng.gen_range(0..17) {
        0 => Command::Put {
            key: key(rng),
            value: b("1"),
        },
        1 => Command::Set {
            key: key(rng),
            value: b("v"),
            cond: [SetCond::Always, SetCond::IfAbsent, SetCond::IfPresent][rng.gen_range(0..3)],
            ttl: match rng.gen_range(0..3) {
                0 => SetTtl::Clear,
                1 => SetTtl::Keep,
                _ => SetTtl::Expire(when(rng)),
            },
            get: rng.gen_bool(0.3),
        },
        2 => Command::Del {
            keys: vec![key(rng), key(rng)],
        },
        3 => Command::Expire {
            key: key(rng),
            when: when(rng),
            cond: [
                ExpireCond::Always,
                ExpireCond::Nx,
                ExpireCond::Xx,
                ExpireCond::Gt,
                ExpireCond::Lt,
            ][rng.gen_range(0..5)],
        },
        4 => Command::Persist { key: key(rng) },
        5 => Command::GetEx {
            key: key(rng),
            ttl: match rng.gen_range(0..3) {
                0 => GetExTtl::Leave,
                1 => GetExTtl::Persist,
                _ => GetExTtl::Expire(when(rng)),
            },
        },
        6 => Command::Rename {
            from: key(rng),
            to: key(rng),
            nx: rng.gen_bool(0.5),
        },
        7 => Command::Copy {
            from: key(rng),
            to: key(rng),
            replace: rng.gen_bool(0.5),
        },
        8 => Command::HSet {
            key: key(rng),
            pairs: vec![(b(["f", "g"][rng.gen_range(0..2)]), b("1"))],
            hmset: false,
        },
        9 => Command::HDel {
            key: key(rng),
            fields: vec![b(["f", "g"][rng.gen_range(0..2)])],
        },
        10 => Command::IncrBy {
            key: key(rng),
            by: 1,
        },
        11 => Command::Append {
            key: key(rng),
            value: b("x"),
        },
        12 => Command::MSetNx {
            pairs: vec![(key(rng), b("1")), (key(rng), b("2"))],
        },
        13 => Command::GetDel { key: key(rng) },
        14 => Command::ExpireKeys {
            keys: t.kv.expired_keys(t.now, 3),
        },
        15 if rng.gen_bool(0.1) => Command::FlushAll,
        _ => Command::Multi {
            watched: vec![],
            ops: vec![
                Op::Write(Command::SetNx {
                    key: key(rng),
                    value: b("1"),
                }),
                Op::Write(Command::HIncrBy {
                    key: key(rng),
                    field: b("f"),
                    by: 1,
                }),
            ],
        },
    }
}
