//! The harness's latency floor: a stand-in "replica" that answers every get and
//! put at once from its own map, with no replication and no replica-to-replica
//! traffic at all. Run under the same harness as a real replica (`kvsim harness
//! --floor`), its median latency is what the harness itself costs on this
//! machine — the forwarding loop, two process wake-ups, JSON both ways — so a
//! real replica's latency figures can be read against it. Nothing can be
//! faster than this and still answer.
//!
//! Every reply names the answering replica as leader, so each client sticks to
//! the first replica it reached and reads its own writes there (the harness's
//! per-client check holds; a floor run has no events, see `kvsim harness
//! --floor`). It is not a database: it forgets everything on exit and never
//! talks to its peers.
//!
//! Usage (as the harness runs it): `floorreplica <port> <id> <other ids…>`.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::UdpSocket;

/// A floor run is short; this only stops a runaway client from growing us forever.
const MAX_KEYS: usize = 1_000_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: floorreplica <port> <id> <other ids...>");
        std::process::exit(2);
    }
    let Ok(port) = args[1].parse::<u16>() else {
        eprintln!("floorreplica: bad port {:?}", args[1]);
        std::process::exit(2);
    };
    let id = args[2].clone();
    let harness = ("127.0.0.1", port);
    let sock = match UdpSocket::bind("127.0.0.1:0") {
        Ok(s) => s,
        Err(e) => {
            eprintln!("floorreplica: bind: {e}");
            std::process::exit(1);
        }
    };
    let send = |v: &Value| {
        let _ = sock.send_to(v.to_string().as_bytes(), harness);
    };
    // The harness learns our address from this; it must come first.
    send(&json!({"src": id, "dst": "FFFF", "leader": "FFFF", "type": "hello"}));

    let mut store: HashMap<String, String> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        // Blocking receive: one wake-up per datagram, as a well-built replica has.
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let Ok(msg) = serde_json::from_slice::<Value>(&buf[..n]) else {
            continue;
        };
        let ty = msg["type"].as_str().unwrap_or("");
        if ty != "get" && ty != "put" {
            continue;
        }
        let key = msg["key"].as_str().unwrap_or("").to_string();
        let mut reply = json!({
            "src": id, "dst": msg["src"], "leader": id, "MID": msg["MID"], "type": "ok",
        });
        if ty == "put" {
            let value = msg["value"].as_str().unwrap_or("").to_string();
            if store.len() < MAX_KEYS || store.contains_key(&key) {
                store.insert(key, value);
            } else {
                reply["type"] = json!("fail");
            }
        } else {
            reply["value"] = json!(store.get(&key).cloned().unwrap_or_default());
        }
        send(&reply);
    }
}
