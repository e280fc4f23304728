//! Pub/sub, keyspace notifications and the watch across nodes (in-process clusters):
//! messages published on one node reach subscribers on another in log order; a
//! subscriber that does not read is cut off at its output limit while the others go on;
//! a watch from an index the node no longer holds is refused, and one that falls behind
//! is closed with the same error.

mod common;

use std::os::fd::AsRawFd;
use std::time::Duration;

use bytes::Bytes;
use common::raw::RawConn;
use common::{http_get, Cluster};
use server::resp::codec::Value;

fn bulk(v: &Value) -> Vec<u8> {
    match v {
        Value::Bulk(Some(b)) => b.to_vec(),
        other => panic!("not a bulk string: {other:?}"),
    }
}

/// A message's elements, whether it came as an array (RESP2) or a push (RESP3).
fn parts(v: Value) -> Vec<Value> {
    match v {
        Value::Array(Some(p)) | Value::Push(p) => p,
        other => panic!("not a message: {other:?}"),
    }
}

fn metric(c: &Cluster, id: u64, name: &str) -> u64 {
    let (_, body) = http_get(c.node(id).admin_addr, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

#[test]
fn a_subscriber_on_a_follower_gets_what_another_node_writes_in_log_order() {
    let c = Cluster::start(3, |_| {});
    let leader = c.wait_leader(Duration::from_secs(10));
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    let other = (1..=3).find(|&i| i != leader && i != follower).unwrap();

    let mut sub = RawConn::connect(c.client_addr(follower));
    // Keyspace notifications are per node, as in Redis Cluster: on the subscriber's.
    sub.call(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    for cmd in [
        &["HELLO", "3"][..],
        &["SUBSCRIBE", "news"],
        &["PSUBSCRIBE", "__keyevent@0__:*"],
    ] {
        sub.call(cmd);
    }
    // Writes and publishes through a third node, pipelined: one log order.
    let mut w = RawConn::connect(c.client_addr(other));
    w.send(&["SET", "k", "1"]);
    w.send(&["PUBLISH", "news", "after the set"]);
    w.send(&["DEL", "k"]);
    w.send(&["PUBLISH", "news", "after the del"]);
    for _ in 0..4 {
        w.read();
    }
    let mut got = Vec::new();
    for _ in 0..4 {
        let p = parts(sub.read().1);
        got.push(String::from_utf8_lossy(&bulk(p.last().unwrap())).into_owned());
    }
    assert_eq!(got, ["k", "after the set", "k", "after the del"]);
    // PUBSUB answers for the node it is asked on.
    let mut f = RawConn::connect(c.client_addr(follower));
    let mut o = RawConn::connect(c.client_addr(other));
    assert_eq!(
        f.call(&["PUBSUB", "NUMSUB", "news"]),
        parts_of(&["news"], 1)
    );
    assert_eq!(
        o.call(&["PUBSUB", "NUMSUB", "news"]),
        parts_of(&["news"], 0)
    );
    assert_eq!(f.call(&["PUBSUB", "NUMPAT"]), Value::Int(1));
}

fn parts_of(names: &[&str], n: i64) -> Value {
    Value::Array(Some(
        names
            .iter()
            .flat_map(|c| {
                [
                    Value::Bulk(Some(Bytes::copy_from_slice(c.as_bytes()))),
                    Value::Int(n),
                ]
            })
            .collect(),
    ))
}

/// Shrinks the socket's receive buffer, so a client that does not read stops the
/// server's writes after a few KiB instead of megabytes.
fn small_receive_buffer(c: &RawConn) {
    receive_buffer(c, 4096);
}

fn receive_buffer(c: &RawConn, size: libc::c_int) {
    // SAFETY: a valid socket, a valid pointer to a c_int of the given length.
    let rc = unsafe {
        libc::setsockopt(
            c.stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt SO_RCVBUF");
}

#[test]
fn a_subscriber_that_does_not_read_is_disconnected_at_the_output_limit_and_counted() {
    let c = Cluster::start(1, |cfg| {
        // Above a pipelined burst (256 publishes apply in one batch: 4 MiB), far below
        // what the slow one is sent.
        cfg.events.output.hard_bytes = 8 << 20;
        cfg.events.output.soft_bytes = 8 << 20;
    });
    c.wait_leader(Duration::from_secs(10));
    let addr = c.client_addr(1);
    let mut slow = RawConn::connect(addr);
    small_receive_buffer(&slow);
    slow.call(&["SUBSCRIBE", "flood"]);
    // A subscriber that reads as it goes: it must not be cut off.
    let mut fast = RawConn::connect(addr);
    fast.call(&["SUBSCRIBE", "flood"]);
    let reader = std::thread::spawn(move || {
        for _ in 0..2400 {
            let p = parts(fast.read().1);
            assert_eq!(bulk(&p[0]), b"message");
        }
        fast // still subscribed
    });
    // 2,400 messages of 16 KiB: 38 MiB, far more than the slow one's socket buffers and
    // its 8 MiB output limit.
    let payload = "x".repeat(16 << 10);
    let mut publisher = RawConn::connect(addr);
    for _ in 0..2400 {
        publisher.send(&["PUBLISH", "flood", &payload]);
    }
    let receivers: Vec<Value> = (0..2400).map(|_| publisher.read().1).collect();
    let _fast = reader
        .join()
        .expect("the reading subscriber got every message");
    assert_eq!(
        metric(&c, 1, "raftkv_pubsub_output_limit_disconnects_total"),
        1
    );
    // The node went on serving, and counted the slow one out once it was gone.
    assert_eq!(receivers.first(), Some(&Value::Int(2)));
    assert_eq!(receivers.last(), Some(&Value::Int(1)));
    let Value::Bulk(Some(list)) = publisher.call(&["CLIENT", "LIST"]) else {
        panic!("CLIENT LIST")
    };
    let list = String::from_utf8_lossy(&list).into_owned();
    assert_eq!(list.matches(" flags=P ").count(), 1, "{list}");
    drop(slow);
}

#[test]
fn a_watch_from_an_index_no_longer_held_is_refused_and_one_that_falls_behind_is_closed() {
    let c = Cluster::start(1, |cfg| cfg.events.ring_bytes = 1 << 20);
    c.wait_leader(Duration::from_secs(10));
    let addr = c.client_addr(1);
    // A watch that does not read while the writes go on.
    let mut w = RawConn::connect(addr);
    let raw = w.raw(&["RAFTKV.WATCH", "k", "FROM", "1"]);
    assert!(raw.starts_with("*4\r\n$5\r\nwatch\r\n"), "{raw}");

    // 1 KiB keys, 500 per entry: the ring (1 MiB) holds about two entries, and 80
    // entries' events (40 MiB) are more than the socket buffers between the node and
    // the watch can hold.
    let mut writer = RawConn::connect(addr);
    let key = |e: usize, i: usize| format!("k{e:03}{i:03}{}", "p".repeat(1000));
    let entries = 80;
    for e in 0..entries {
        let mut args = vec!["MSET".to_string()];
        for i in 0..500 {
            args.push(key(e, i));
            args.push("v".into());
        }
        writer.send(&args);
    }
    for _ in 0..entries {
        assert_eq!(writer.read().1, Value::Simple("OK".into()));
    }
    // From the start: gone.
    let mut late = RawConn::connect(addr);
    let v = late.call(&["RAFTKV.WATCH", "k", "FROM", "1"]);
    let Value::Error(e) = v else { panic!("{v:?}") };
    assert!(e.starts_with("TRIMMED the events from index 1 "), "{e}");
    // From the oldest held: served.
    let oldest = metric(&c, 1, "raftkv_events_oldest_index");
    assert!(oldest > 2, "{oldest}");
    let v = late.call(&["RAFTKV.WATCH", "k", "FROM", &oldest.to_string()]);
    assert_eq!(parts(v)[2], Value::Int(oldest as i64));
    let p = parts(late.read().1);
    assert_eq!(p[2], Value::Int(oldest as i64));

    // The watch that did not read fell behind and was closed: it gets what was sent
    // before (and the error, if it reads in time), then EOF; resuming after the last
    // entry it got is refused the same way.
    let mut last = 0;
    loop {
        match w.try_read() {
            Ok((_, Value::Error(e))) => assert!(e.starts_with("TRIMMED "), "{e}"),
            Ok((_, v)) => {
                let Value::Int(i) = parts(v)[2] else {
                    panic!("an event")
                };
                last = i;
            }
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
                break;
            }
        }
    }
    assert!(last < oldest as i64, "it fell behind: {last} < {oldest}");
    assert_eq!(metric(&c, 1, "raftkv_watch_trimmed_disconnects_total"), 1);
    let mut again = RawConn::connect(addr);
    let from = (last + 1).to_string();
    let v = again.call(&["RAFTKV.WATCH", "k", "FROM", &from]);
    assert!(
        matches!(&v, Value::Error(e) if e.starts_with("TRIMMED ")),
        "{v:?}"
    );
}
