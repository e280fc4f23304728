//! Client threads: real RESP connections (the `redis` crate) to one node each, doing
//! GET/SET/CAS on a few contended register keys and INCR/GET on a counter key.
//!
//! Keys rotate every `epoch` (`e<k>-r0..r2`, `e<k>-c0`), which bounds each key's history
//! so lincheck's search stays small even in a long soak; every key is read again from
//! every node at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cluster::RESP_PORT;
use crate::history::{Op, Outcome, Record};
use crate::net::node_ip;

pub const REGISTER_KEYS: usize = 3;

/// The keys of epoch `e`: registers first, then the counter.
pub fn epoch_keys(e: u64) -> Vec<String> {
    let mut k: Vec<String> = (0..REGISTER_KEYS).map(|i| format!("e{e}-r{i}")).collect();
    k.push(format!("e{e}-c0"));
    k
}

pub fn is_counter(key: &str) -> bool {
    key.contains("-c")
}

#[derive(Clone)]
pub struct Shared {
    pub start: Instant,
    pub stop: Arc<AtomicBool>,
    pub epoch: Duration,
    pub op_timeout: Duration,
}

impl Shared {
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// One connection to one node; reconnects after anything that may leave it out of step.
pub struct Conn {
    node: usize,
    timeout: Duration,
    con: Option<redis::Connection>,
}

impl Conn {
    pub fn new(node: usize, timeout: Duration) -> Conn {
        Conn {
            node,
            timeout,
            con: None,
        }
    }

    fn connect(&mut self) -> Result<&mut redis::Connection, String> {
        if self.con.is_none() {
            let client =
                redis::Client::open(format!("redis://{}:{RESP_PORT}/", node_ip(self.node)))
                    .map_err(|e| e.to_string())?;
            let con = client
                .get_connection_with_timeout(Duration::from_millis(1000))
                .map_err(|e| e.to_string())?;
            con.set_read_timeout(Some(self.timeout))
                .map_err(|e| e.to_string())?;
            con.set_write_timeout(Some(self.timeout))
                .map_err(|e| e.to_string())?;
            self.con = Some(con);
        }
        Ok(self.con.as_mut().expect("just connected"))
    }

    /// Runs one op. `None` if no connection could be made (nothing was sent).
    pub fn exec(&mut self, key: &str, op: &Op) -> Option<Outcome> {
        let con = self.connect().ok()?;
        let mut cmd = match op {
            Op::Get => redis::cmd("GET"),
            Op::Set(_) => redis::cmd("SET"),
            Op::Cas { .. } => redis::cmd("CAS"),
            Op::Incr => redis::cmd("INCR"),
        };
        cmd.arg(key);
        match op {
            Op::Set(v) => {
                cmd.arg(v);
            }
            Op::Cas { expected, new } => {
                cmd.arg(expected).arg(new);
            }
            _ => {}
        }
        let outcome = match op {
            Op::Get => cmd.query::<Option<String>>(con).map(Outcome::Value),
            Op::Set(_) => cmd.query::<String>(con).map(|_| Outcome::Done),
            Op::Cas { .. } => cmd.query::<i64>(con).map(|n| Outcome::Swapped(n == 1)),
            Op::Incr => cmd.query::<i64>(con).map(Outcome::Int),
        };
        Some(match outcome {
            Ok(o) => o,
            Err(e) => {
                let o = classify(&e);
                if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
                    self.con = None;
                }
                o
            }
        })
    }
}

/// A redis error as failed ("not executed") or unknown.
pub fn classify(e: &redis::RedisError) -> Outcome {
    let text = e.to_string();
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
        return Outcome::Unknown(format!("io: {text}"));
    }
    classify_text(&text)
}

pub fn classify_text(text: &str) -> Outcome {
    let upper = text.to_ascii_uppercase();
    if upper.contains("TIMEOUT") || upper.contains("OUTCOME IS UNKNOWN") {
        Outcome::Unknown(text.to_string())
    } else if upper.contains("CLUSTERDOWN") || upper.contains("TRYAGAIN") {
        Outcome::Failed(text.to_string())
    } else {
        // Anything else might have happened or not: the safe reading is "unknown".
        Outcome::Unknown(text.to_string())
    }
}

/// Starts one client thread talking to `node`. Returns its records when stopped.
pub fn spawn_client(
    client: u64,
    node: usize,
    seed: u64,
    shared: Shared,
) -> JoinHandle<Vec<Record>> {
    std::thread::Builder::new()
        .name(format!("client{client}"))
        .spawn(move || client_loop(client, node, seed, shared))
        .expect("spawn client")
}

fn client_loop(client: u64, node: usize, seed: u64, sh: Shared) -> Vec<Record> {
    let mut rng = StdRng::seed_from_u64(seed ^ (client.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let mut conn = Conn::new(node, sh.op_timeout);
    let mut out = Vec::new();
    let mut seq = 0u64;
    // The last value this client saw per key: what its CAS expects.
    let mut seen: std::collections::HashMap<String, String> = Default::default();
    while !sh.stop.load(Ordering::Relaxed) {
        let e = sh.start.elapsed().as_nanos() as u64 / sh.epoch.as_nanos().max(1) as u64;
        let keys = epoch_keys(e);
        let key = if rng.gen_bool(0.25) {
            keys[REGISTER_KEYS].clone()
        } else {
            keys[rng.gen_range(0..REGISTER_KEYS)].clone()
        };
        seq += 1;
        let value = format!("c{client}-{seq}");
        let op = if is_counter(&key) {
            if rng.gen_bool(0.65) {
                Op::Incr
            } else {
                Op::Get
            }
        } else {
            let r: f64 = rng.gen();
            match seen.get(&key) {
                Some(exp) if r >= 0.7 => Op::Cas {
                    expected: exp.clone(),
                    new: value.clone(),
                },
                _ if r < 0.4 => Op::Get,
                _ => Op::Set(value.clone()),
            }
        };
        let invoke_ns = sh.now_ns();
        let Some(outcome) = conn.exec(&key, &op) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let complete_ns = sh.now_ns();
        match (&op, &outcome) {
            (Op::Get, Outcome::Value(Some(v))) => {
                seen.insert(key.clone(), v.clone());
            }
            (Op::Set(v), Outcome::Done) => {
                seen.insert(key.clone(), v.clone());
            }
            (Op::Cas { new, .. }, Outcome::Swapped(true)) => {
                seen.insert(key.clone(), new.clone());
            }
            _ => {}
        }
        let bad = matches!(outcome, Outcome::Failed(_) | Outcome::Unknown(_));
        out.push(Record {
            client,
            node,
            key,
            op,
            outcome,
            invoke_ns,
            complete_ns,
        });
        let pause = if bad {
            rng.gen_range(50..100)
        } else {
            rng.gen_range(2..12)
        };
        std::thread::sleep(Duration::from_millis(pause));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_replies_are_classified() {
        assert!(matches!(
            classify_text("TIMEOUT no answer in time; the outcome is unknown"),
            Outcome::Unknown(_)
        ));
        assert!(matches!(
            classify_text("CLUSTERDOWN no leader elected; try again"),
            Outcome::Failed(_)
        ));
        assert!(matches!(
            classify_text("TRYAGAIN too much contention on this key"),
            Outcome::Failed(_)
        ));
        assert!(matches!(
            classify_text("ERR something else"),
            Outcome::Unknown(_)
        ));
    }

    #[test]
    fn counters_and_registers_are_told_apart() {
        let k = epoch_keys(7);
        assert_eq!(k, ["e7-r0", "e7-r1", "e7-r2", "e7-c0"]);
        assert!(is_counter(&k[3]));
        assert!(!k[..3].iter().any(|k| is_counter(k)));
    }
}
