//! A deliberately simple — and, on request, deliberately *bad* — replica for
//! the harness's integration tests. It is not Raft: replica 0000 is always
//! the leader and answers every request from its own map (so histories are
//! linearizable); it broadcasts one `append` per put so the harness sees
//! replica traffic; the others redirect to it.
//!
//! `FAKE_MODE` selects a misbehaviour:
//! - `good`: none;
//! - `wrong`: the leader answers every get with a value nobody wrote;
//! - `malformed`: the leader also sends undecodable JSON, a bad source
//!   address and a message to an unknown destination;
//! - `exit`: replica 0001 exits on its own after one second;
//! - `nohello`: replica 0002 never says hello;
//! - `flood`: replica 0001 broadcasts without pause from 0.5 s on.
//!
//! Usage (as the harness runs it): `fakereplica <port> <id> <other ids…>`.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: fakereplica <port> <id> <others...>");
        std::process::exit(2);
    }
    let port: u16 = args[1].parse().expect("port");
    let id = args[2].clone();
    let mode = std::env::var("FAKE_MODE").unwrap_or_else(|_| "good".into());
    let harness = format!("127.0.0.1:{port}");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(50))).ok();
    let send = |v: &Value| {
        let _ = sock.send_to(v.to_string().as_bytes(), &harness);
    };
    let leader = "0000";
    if !(mode == "nohello" && id == "0002") {
        send(&json!({"src": id, "dst": "FFFF", "leader": "FFFF", "type": "hello"}));
    }
    println!("replica {id} up in mode {mode}");

    let started = Instant::now();
    if mode == "flood" && id == "0001" {
        // Late enough that every peer has said hello (else the harness would
        // mark them dead), then a packet storm.
        std::thread::sleep(Duration::from_millis(500));
        loop {
            send(&json!({"src": id, "dst": "FFFF", "leader": leader, "type": "append"}));
        }
    }
    let mut store: HashMap<String, String> = HashMap::new();
    let mut served = 0u64;
    let mut buf = [0u8; 65536];
    loop {
        if mode == "exit" && id == "0001" && started.elapsed() > Duration::from_secs(1) {
            eprintln!("replica {id} exiting on purpose");
            std::process::exit(3);
        }
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let Ok(msg) = serde_json::from_slice::<Value>(&buf[..n]) else {
            continue;
        };
        let ty = msg["type"].as_str().unwrap_or("");
        if ty != "get" && ty != "put" {
            continue; // appends from the leader: nothing to do
        }
        let mut reply = json!({
            "src": id, "dst": msg["src"], "leader": leader, "MID": msg["MID"],
        });
        if id != leader {
            reply["type"] = json!("redirect");
            send(&reply);
            continue;
        }
        let key = msg["key"].as_str().unwrap_or("").to_string();
        reply["type"] = json!("ok");
        if ty == "put" {
            store.insert(key, msg["value"].as_str().unwrap_or("").to_string());
            send(&json!({"src": id, "dst": "FFFF", "leader": leader, "type": "append"}));
        } else if mode == "wrong" {
            reply["value"] = json!("not-what-anyone-wrote");
        } else {
            reply["value"] = json!(store.get(&key).cloned().unwrap_or_default());
        }
        send(&reply);
        served += 1;
        if mode == "malformed" && served % 10 == 0 {
            let _ = sock.send_to(b"{this is not json", &harness);
            send(&json!({"src": "XYZ", "dst": "0001", "leader": leader, "type": "append"}));
            send(&json!({"src": id, "dst": "ABCD", "leader": leader, "type": "append"}));
        }
    }
}
