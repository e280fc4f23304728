//! The connection-level Redis surface on a one-node cluster, checked on the bytes the
//! server sends: HELLO and RESP3, CLIENT, INFO sections, READONLY, and the parser's cost
//! on a trickled command.

mod common;

use std::io::Write;
use std::time::Duration;

use bytes::BytesMut;
use common::raw::RawConn as Raw;
use common::Cluster;
use server::resp::codec::{encode_command, Value};

fn one_node() -> Cluster {
    let c = Cluster::start(1, |_| {});
    c.wait_leader(Duration::from_secs(10));
    c
}

fn text(v: &Value) -> String {
    match v {
        Value::Bulk(Some(b)) | Value::Verbatim(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Simple(s) | Value::Error(s) => s.clone(),
        other => panic!("not text: {other:?}"),
    }
}

fn map_get<'a>(v: &'a Value, key: &str) -> &'a Value {
    let Value::Map(pairs) = v else {
        panic!("not a map: {v:?}")
    };
    &pairs
        .iter()
        .find(|(k, _)| text(k) == key)
        .unwrap_or_else(|| panic!("no {key} in {v:?}"))
        .1
}

#[test]
fn hello_switches_the_protocol_of_this_connection_only() {
    let c = one_node();
    let addr = c.client_addr(1);
    let mut a = Raw::connect(addr);
    let mut b = Raw::connect(addr);
    assert_eq!(a.raw(&["GET", "missing"]), "$-1\r\n");

    let hello = a.call(&["HELLO", "3"]);
    let Value::Map(_) = &hello else {
        panic!("HELLO 3 answers a map: {hello:?}")
    };
    assert_eq!(text(map_get(&hello, "server")), "redis");
    assert_eq!(map_get(&hello, "proto"), &Value::Int(3));
    assert_eq!(text(map_get(&hello, "mode")), "standalone");
    assert_eq!(text(map_get(&hello, "role")), "master");
    assert_eq!(map_get(&hello, "modules"), &Value::Array(Some(vec![])));
    let id = a.call(&["CLIENT", "ID"]);
    assert_eq!(map_get(&hello, "id"), &id);

    // RESP3 forms on `a`; `b` still speaks RESP2.
    assert_eq!(a.raw(&["GET", "missing"]), "_\r\n");
    assert_eq!(
        a.raw(&["CONFIG", "GET", "appendonly"]),
        "%1\r\n$10\r\nappendonly\r\n$2\r\nno\r\n"
    );
    assert!(a
        .raw(&["INFO", "keyspace"])
        .starts_with("=16\r\ntxt:# Keyspace"));
    assert_eq!(b.raw(&["GET", "missing"]), "$-1\r\n");
    assert_eq!(
        b.raw(&["CONFIG", "GET", "appendonly"]),
        "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n"
    );

    // Refusals leave the protocol as it was.
    assert_eq!(
        a.raw(&["HELLO", "4"]),
        "-NOPROTO unsupported protocol version\r\n"
    );
    assert_eq!(
        a.raw(&["HELLO", "three"]),
        "-ERR Protocol version is not an integer or out of range\r\n"
    );
    assert_eq!(
        a.raw(&["HELLO", "2", "SETNAME"]),
        "-ERR Syntax error in HELLO option 'SETNAME'\r\n"
    );
    assert_eq!(
        a.raw(&["HELLO", "2", "AUTH", "bob", "secret"]),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(a.raw(&["GET", "missing"]), "_\r\n");

    // AUTH for the passwordless default user, and SETNAME, in one HELLO; back to RESP2.
    let (raw, hello) = {
        a.send(&["HELLO", "2", "AUTH", "default", "any", "SETNAME", "app-1"]);
        a.read()
    };
    assert!(
        raw.starts_with("*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n"),
        "{raw}"
    );
    let Value::Array(Some(flat)) = hello else {
        panic!("RESP2 HELLO is a flat array")
    };
    assert_eq!(flat[5], Value::Int(2));
    assert_eq!(a.raw(&["CLIENT", "GETNAME"]), "$5\r\napp-1\r\n");
    assert_eq!(a.raw(&["GET", "missing"]), "$-1\r\n");
}

#[test]
fn pipelined_hello_applies_from_its_own_reply_on() {
    let c = one_node();
    let mut a = Raw::connect(c.client_addr(1));
    let mut burst = BytesMut::new();
    for cmd in [
        &["GET", "k"][..],
        &["HELLO", "3"],
        &["GET", "k"],
        &["HELLO"],
    ] {
        encode_command(cmd, &mut burst);
    }
    a.stream.write_all(&burst).unwrap();
    assert_eq!(a.read().0, "$-1\r\n");
    assert!(a.read().0.starts_with("%7\r\n"));
    assert_eq!(a.read().0, "_\r\n");
    // HELLO with no version answers in the current one.
    let (raw, v) = a.read();
    assert!(raw.starts_with("%7\r\n"), "{raw}");
    assert_eq!(map_get(&v, "proto"), &Value::Int(3));
}

#[test]
fn client_subcommands() {
    let c = one_node();
    let addr = c.client_addr(1);
    let mut a = Raw::connect(addr);
    let mut b = Raw::connect(addr);
    let (Value::Int(ida), Value::Int(idb)) = (a.call(&["CLIENT", "ID"]), b.call(&["CLIENT", "ID"]))
    else {
        panic!("ids are integers")
    };
    assert!(ida > 0 && idb > 0 && ida != idb);

    assert_eq!(a.raw(&["CLIENT", "GETNAME"]), "$-1\r\n");
    assert_eq!(a.raw(&["CLIENT", "SETNAME", "worker-7"]), "+OK\r\n");
    assert_eq!(a.raw(&["CLIENT", "GETNAME"]), "$8\r\nworker-7\r\n");
    assert_eq!(
        a.raw(&["CLIENT", "SETNAME", "two words"]),
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
    );
    assert_eq!(a.raw(&["CLIENT", "GETNAME"]), "$8\r\nworker-7\r\n");
    // An empty name clears it.
    assert_eq!(b.raw(&["CLIENT", "SETNAME", ""]), "+OK\r\n");
    assert_eq!(b.raw(&["CLIENT", "GETNAME"]), "$-1\r\n");

    assert_eq!(
        a.raw(&["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]),
        "+OK\r\n"
    );
    assert_eq!(a.raw(&["CLIENT", "SETINFO", "lib-ver", "8.1.0"]), "+OK\r\n");
    assert_eq!(
        a.raw(&["CLIENT", "SETINFO", "colour", "blue"]),
        "-ERR Unrecognized option 'colour'\r\n"
    );

    let info = text(&a.call(&["CLIENT", "INFO"]));
    assert!(
        info.ends_with('\n') && info.lines().count() == 1,
        "{info:?}"
    );
    for field in [
        format!("id={ida} "),
        " name=worker-7 ".into(),
        " db=0 ".into(),
        " cmd=client|info ".into(),
        " resp=2 ".into(),
        " lib-name=redis-py ".into(),
        " lib-ver=8.1.0".into(),
    ] {
        assert!(info.contains(&field), "{field:?} not in {info:?}");
    }
    let fd = info
        .split(" fd=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(fd.parse::<i64>().unwrap() > 2, "a real descriptor: {info}");

    let list = text(&b.call(&["CLIENT", "LIST"]));
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains(&format!("id={ida} ")) && list.contains(&format!("id={idb} ")));
    let only_a = text(&b.call(&["CLIENT", "LIST", "ID", &ida.to_string()]));
    assert_eq!(only_a.lines().count(), 1);
    assert!(only_a.starts_with(&format!("id={ida} ")));
    assert_eq!(text(&b.call(&["CLIENT", "LIST", "TYPE", "pubsub"])), "");
    assert_eq!(
        b.raw(&["CLIENT", "LIST", "TYPE", "robot"]),
        "-ERR Unknown client type 'robot'\r\n"
    );
    assert_eq!(
        b.raw(&["CLIENT", "LIST", "ID", "x"]),
        "-ERR Invalid client ID\r\n"
    );
    assert_eq!(b.raw(&["CLIENT", "LIST", "junk"]), "-ERR syntax error\r\n");

    // Errors as Redis words them.
    assert_eq!(
        a.raw(&["CLIENT", "FLY"]),
        "-ERR unknown subcommand 'FLY'. Try CLIENT HELP.\r\n"
    );
    assert_eq!(
        a.raw(&["CLIENT", "SETNAME"]),
        "-ERR wrong number of arguments for 'client|setname' command\r\n"
    );
    assert_eq!(
        a.raw(&["CLIENT", "ID", "extra"]),
        "-ERR wrong number of arguments for 'client|id' command\r\n"
    );
    assert_eq!(
        a.raw(&["CLIENT"]),
        "-ERR wrong number of arguments for 'client' command\r\n"
    );

    // A closed connection leaves the list.
    drop(a);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let list = text(&b.call(&["CLIENT", "LIST"]));
        if list.lines().count() == 1 {
            assert!(list.starts_with(&format!("id={idb} ")));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{list}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn section_names(info: &str) -> Vec<String> {
    info.lines()
        .filter_map(|l| l.strip_prefix("# "))
        .map(str::to_string)
        .collect()
}

fn field<'a>(info: &'a str, name: &str) -> &'a str {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in {info}"))
}

#[test]
fn info_sections_with_real_values() {
    let c = one_node();
    let addr = c.client_addr(1);
    let mut a = Raw::connect(addr);
    let mut b = Raw::connect(addr);
    // Once it answered, the connection is registered.
    assert_eq!(b.call(&["PING"]), Value::Simple("PONG".into()));
    let info = text(&a.call(&["INFO"]));
    assert_eq!(
        section_names(&info),
        [
            "Server",
            "Clients",
            "Memory",
            "Persistence",
            "Stats",
            "Raft",
            "Keyspace"
        ]
    );
    assert!(
        info.contains("\r\n\r\n# Clients\r\n"),
        "sections are CRLF-separated"
    );
    assert_eq!(field(&info, "connected_clients"), "2");
    assert_eq!(field(&info, "tcp_port"), addr.port().to_string());
    assert_eq!(field(&info, "process_id"), std::process::id().to_string());
    assert_eq!(field(&info, "run_id").len(), 40);
    assert!(field(&info, "used_memory").parse::<u64>().unwrap() > 1 << 20);
    assert!(field(&info, "total_system_memory").parse::<u64>().unwrap() > 1 << 20);
    assert_eq!(field(&info, "role"), "leader");
    // An empty database has no keyspace line, as in Redis.
    assert!(info.ends_with("# Keyspace\r\n"), "{info}");

    assert_eq!(a.call(&["SET", "k", "v"]), Value::ok());
    let ks = text(&a.call(&["INFO", "KEYSPACE"]));
    assert_eq!(ks, "# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n");
    let two = text(&a.call(&["info", "clients", "server"]));
    assert_eq!(section_names(&two), ["Server", "Clients"]);
    let persistence = text(&a.call(&["INFO", "persistence"]));
    assert_eq!(field(&persistence, "loading"), "0");
    assert!(
        field(&persistence, "rdb_changes_since_last_save")
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(text(&a.call(&["INFO", "nosuchsection"])), "");
    assert_eq!(section_names(&text(&a.call(&["INFO", "all"]))).len(), 7);
}

/// `INFO keyspace` counts the keys with a TTL (`expires`) and their average remaining
/// TTL in ms (`avg_ttl`), as Redis does; PERSIST, DEL and SET (which clears a TTL)
/// take a key out of the count.
#[test]
fn info_keyspace_counts_keys_with_a_ttl() {
    let c = one_node();
    let mut a = Raw::connect(c.client_addr(1));
    let keyspace = |a: &mut Raw| {
        let ks = text(&a.call(&["INFO", "keyspace"]));
        let line = ks.lines().nth(1).unwrap_or("").to_string();
        let fields: Vec<(String, u64)> = line
            .strip_prefix("db0:")
            .unwrap_or_else(|| panic!("no db0 line: {ks:?}"))
            .split(',')
            .map(|f| {
                let (k, v) = f.split_once('=').expect("k=v");
                (k.to_string(), v.parse().expect("a number"))
            })
            .collect();
        let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["keys", "expires", "avg_ttl"], "{line}");
        (fields[0].1, fields[1].1, fields[2].1)
    };
    assert_eq!(a.call(&["SET", "plain", "v"]), Value::ok());
    assert_eq!(keyspace(&mut a), (1, 0, 0));
    assert_eq!(a.call(&["SET", "a", "v", "EX", "100"]), Value::ok());
    assert_eq!(a.call(&["SET", "b", "v", "PX", "300000"]), Value::ok());
    assert_eq!(a.call(&["HSET", "h", "f", "v"]), Value::Int(1));
    assert_eq!(a.call(&["EXPIRE", "h", "200"]), Value::Int(1));
    let (keys, expires, avg) = keyspace(&mut a);
    assert_eq!((keys, expires), (4, 3));
    // (100 + 300 + 200) / 3 s, less the few ms the test took.
    assert!((190_000..=200_000).contains(&avg), "avg_ttl={avg}");
    assert_eq!(a.call(&["PERSIST", "b"]), Value::Int(1));
    let (keys, expires, avg) = keyspace(&mut a);
    assert_eq!((keys, expires), (4, 2));
    assert!((140_000..=150_000).contains(&avg), "avg_ttl={avg}");
    assert_eq!(a.call(&["SET", "a", "w"]), Value::ok());
    assert_eq!(a.call(&["DEL", "h"]), Value::Int(1));
    assert_eq!(keyspace(&mut a), (3, 0, 0));
}

/// READONLY reads this node's state machine without a leader round: with the other two
/// nodes stopped there is no leader, yet a READONLY connection on the survivor reads
/// what it applied, while a default connection (and READWRITE) cannot.
#[test]
fn readonly_connections_read_locally_while_the_node_default_stays() {
    let mut c = Cluster::start(3, |cfg| {
        cfg.limits.request_timeout = Duration::from_millis(1500);
    });
    let leader = c.wait_leader(Duration::from_secs(10));
    let survivor = (1..=3).find(|&i| i != leader).unwrap();
    let mut w = Raw::connect(c.client_addr(leader));
    assert_eq!(w.call(&["SET", "k", "v1"]), Value::ok());
    let applied = c.status(leader).applied_index;
    c.wait_status(survivor, Duration::from_secs(10), |s| {
        s.applied_index >= applied
    });

    let mut ro = Raw::connect(c.client_addr(survivor));
    let mut rw = Raw::connect(c.client_addr(survivor));
    assert_eq!(ro.raw(&["READONLY"]), "+OK\r\n");
    assert!(text(&ro.call(&["CLIENT", "INFO"])).contains(" flags=r "));
    for id in (1..=3).filter(|&i| i != survivor) {
        c.stop(id);
    }
    let served_before = c.node(survivor).node.metrics.stale_reads.get();
    assert_eq!(ro.call(&["GET", "k"]), common::bulk("v1"));
    assert_eq!(
        ro.call(&["MGET", "k", "nope"]),
        Value::Array(Some(vec![common::bulk("v1"), Value::nil()]))
    );
    assert_eq!(ro.call(&["EXISTS", "k"]), Value::Int(1));
    assert_eq!(
        ro.call(&["KEYS", "*"]),
        Value::Array(Some(vec![common::bulk("k")]))
    );
    assert!(c.node(survivor).node.metrics.stale_reads.get() >= served_before + 4);
    // Writes still need the leader.
    assert!(matches!(ro.call(&["SET", "k", "v2"]), Value::Error(_)));
    // The other connection reads as the node's mode says: no leader, no answer.
    assert!(matches!(rw.call(&["GET", "k"]), Value::Error(_)));
    assert_eq!(ro.raw(&["READWRITE"]), "+OK\r\n");
    assert!(matches!(ro.call(&["GET", "k"]), Value::Error(_)));
    assert!(text(&ro.call(&["CLIENT", "INFO"])).contains(" flags=N "));
    assert_eq!(
        ro.raw(&["READONLY", "x"]),
        "-ERR wrong number of arguments for 'readonly' command\r\n"
    );
}

/// `ECHO a a a ...`: a command of `bytes` bytes, nearly all one-byte arguments (ECHO
/// refuses it at once, so timing it times the parse); and its argument count.
fn one_byte_args(bytes: usize) -> (Vec<u8>, usize) {
    let n = (bytes - 14) / 7 + 1;
    let mut cmd = format!("*{n}\r\n$4\r\nECHO\r\n").into_bytes();
    for _ in 1..n {
        cmd.extend_from_slice(b"$1\r\na\r\n");
    }
    (cmd, n)
}

/// CPU time this thread has used: unlike the wall clock, it does not count the time the
/// thread waited for a core, so other load on the machine does not distort a ratio.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Feeds `cmd` to a connection's parser `piece` bytes at a time, as reads would deliver
/// it; the CPU time until the command is parsed (best of `runs`).
fn parse_trickled(cmd: &[u8], args: usize, piece: usize, runs: usize) -> Duration {
    use server::resp::codec::CommandParser;
    (0..runs)
        .map(|_| {
            let mut parser = CommandParser::default();
            let mut buf = BytesMut::with_capacity(16 << 10);
            let started = thread_cpu_time();
            let mut parsed = None;
            for chunk in cmd.chunks(piece) {
                buf.extend_from_slice(chunk);
                if let Some(a) = parser.parse(&mut buf, 16 << 20).expect("valid command") {
                    parsed = Some(a.len());
                }
            }
            let took = thread_cpu_time() - started;
            assert_eq!(parsed, Some(args));
            took
        })
        .min()
        .expect("runs > 0")
}

/// Issue 14: a 7 MB command trickled a byte at a time parses in time linear in its size
/// (parsing from the start on every read made it quadratic: 49 times the 1 MB time).
#[test]
fn a_trickled_command_parses_in_linear_time() {
    let (small, small_args) = one_byte_args(1 << 20);
    let (big, big_args) = one_byte_args(7 << 20);
    let t1 = parse_trickled(&small, small_args, 1, 3);
    let t7 = parse_trickled(&big, big_args, 1, 3);
    let ratio = t7.as_secs_f64() / t1.as_secs_f64();
    eprintln!("parser, one byte at a time: 1 MiB {t1:?}, 7 MiB {t7:?}, ratio {ratio:.1}");
    // Linear is 7; quadratic is 49. Generous, so other load on the machine cannot fail it.
    assert!(ratio < 20.0, "7 MiB took {ratio:.1} times the 1 MiB time");
}

/// The same command over a connection, in small writes: the parser's state carries
/// across the server's reads (the server reads what has arrived, so how many reads it
/// takes is up to the network; the parser test above is the one that times).
#[test]
fn a_command_trickled_over_tcp_is_answered() {
    let c = Cluster::start(1, |cfg| cfg.limits.max_request_bytes = 16 << 20);
    c.wait_leader(Duration::from_secs(10));
    let mut conn = Raw::connect(c.client_addr(1));
    let (big, _) = one_byte_args(7 << 20);
    let started = std::time::Instant::now();
    for piece in big.chunks(512) {
        conn.stream.write_all(piece).unwrap();
    }
    assert_eq!(
        conn.read().0,
        "-ERR wrong number of arguments for 'echo' command\r\n"
    );
    eprintln!(
        "7 MiB in 512-byte writes answered in {:?}",
        started.elapsed()
    );
    // The connection goes on: an inline command split across writes, then a pipeline.
    for piece in [&b"PI"[..], b"NG\r", b"\n*1\r\n$4\r\nPI", b"NG\r\n"] {
        conn.stream.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(conn.read().0, "+PONG\r\n");
    assert_eq!(conn.read().0, "+PONG\r\n");
}

/// The items of an array or set reply.
fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(Some(items)) | Value::Set(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

/// COMMAND, COUNT, LIST, INFO and DOCS answer from one table: the one the dispatcher
/// routes by, so every command listed runs (none is "unknown") and every command that
/// runs is listed. (Entries equal to Redis's are in tests/compat/command.txt.)
#[test]
fn command_describes_every_command_that_runs() {
    let c = one_node();
    let mut a = Raw::connect(c.client_addr(1));
    let all = a.call(&["COMMAND"]);
    let count = a.call(&["COMMAND", "COUNT"]);
    assert_eq!(count, Value::Int(items(&all).len() as i64));
    assert!(items(&all).len() > 60, "{count:?}");
    let names: Vec<String> = items(&all).iter().map(|e| text(&items(e)[0])).collect();
    for name in &names {
        // Run each with too few arguments for most: an arity or syntax error, never
        // "unknown command" (QUIT, which closes, is answered by the connection itself).
        if name == "quit" {
            continue;
        }
        let mut b = Raw::connect(c.client_addr(1));
        let reply = b.raw(&[name]);
        assert!(!reply.contains("unknown command"), "{name}: {reply}");
    }
    for entry in items(&all) {
        let e = items(entry);
        assert_eq!(e.len(), 10, "{entry:?}");
        let Value::Int(arity) = e[1] else {
            panic!("arity: {entry:?}")
        };
        assert_ne!(arity, 0);
        assert!(items(&e[6]).iter().all(|c| text(c).starts_with('@')));
    }
    // Not a command of ours: no entry, and unknown when sent.
    assert_eq!(a.raw(&["COMMAND", "INFO", "lpush"]), "*1\r\n$-1\r\n");
    assert!(a.raw(&["LPUSH", "l", "x"]).contains("unknown command"));
    // CAS is ours: a write with one key.
    let cas = a.call(&["COMMAND", "INFO", "cas"]);
    let cas = items(&items(&cas)[0]);
    assert_eq!(text(&cas[0]), "cas");
    assert_eq!(cas[1], Value::Int(4));
    assert_eq!(
        (&cas[3], &cas[4], &cas[5]),
        (&Value::Int(1), &Value::Int(1), &Value::Int(1))
    );
    assert!(items(&cas[2]).contains(&Value::Simple("write".into())));

    // COMMAND LIST: every command and subcommand; the filters.
    let list: Vec<String> = items(&a.call(&["COMMAND", "LIST"]))
        .iter()
        .map(text)
        .collect();
    for n in &names {
        assert!(list.contains(n), "{n} not in COMMAND LIST");
    }
    assert!(list.contains(&"client|setname".to_string()));
    let hashes: Vec<String> = items(&a.call(&["COMMAND", "LIST", "FILTERBY", "ACLCAT", "hash"]))
        .iter()
        .map(text)
        .collect();
    assert!(hashes.contains(&"hgetall".into()) && !hashes.contains(&"get".into()));
    let h: Vec<String> = items(&a.call(&["COMMAND", "LIST", "FILTERBY", "PATTERN", "h*"]))
        .iter()
        .map(text)
        .collect();
    assert!(h.iter().all(|n| n.starts_with('h')) && h.contains(&"hello".into()));

    // CLIENT's subcommands are the ones raftkv answers, each with Redis's arity.
    let client = a.call(&["COMMAND", "INFO", "client"]);
    let subs = items(&items(&items(&client)[0])[9]);
    let sub_names: Vec<String> = subs.iter().map(|s| text(&items(s)[0])).collect();
    for want in [
        "client|id",
        "client|list",
        "client|setname",
        "client|setinfo",
    ] {
        assert!(sub_names.contains(&want.to_string()), "{sub_names:?}");
    }
    assert!(!sub_names.contains(&"client|kill".to_string()));
    for (sub, spec) in sub_names.iter().zip(subs) {
        if items(spec)[1] == Value::Int(-2) {
            continue; // CLIENT LIST: any number
        }
        let word = &sub["client|".len()..];
        let reply = a.raw(&["CLIENT", word, "a", "b", "c", "d"]);
        assert!(
            reply.contains(&format!("wrong number of arguments for '{sub}'")),
            "{sub}: {reply}"
        );
    }

    // COMMAND DOCS: a map, one (empty) entry per known command; a map in RESP3.
    assert_eq!(
        a.raw(&["COMMAND", "DOCS", "get", "nosuch"]),
        "*2\r\n$3\r\nget\r\n*0\r\n"
    );
    a.call(&["HELLO", "3"]);
    assert_eq!(
        a.raw(&["COMMAND", "DOCS", "get"]),
        "%1\r\n$3\r\nget\r\n%0\r\n"
    );
    let docs = a.call(&["COMMAND", "DOCS"]);
    let Value::Map(docs) = docs else {
        panic!("DOCS: {docs:?}")
    };
    assert_eq!(docs.len(), names.len());
    // RESP3 types: flags, categories, tips and key specs are sets.
    let get = a.raw(&["COMMAND", "INFO", "get"]);
    assert!(
        get.starts_with("*1\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n"),
        "{get}"
    );
}
