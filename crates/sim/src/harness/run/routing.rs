//! Checking and routing what replicas send: to replicas through the faulty
//! network, or to the clients.

use super::queue::Due;
use super::{pollfd, Sim};
use crate::harness::client::{ClientCtx, Outgoing, ReplyOutcome};
use crate::harness::network::{connected, valid_addr, Fate, BROADCAST};
use serde_json::{Map, Value};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// How long a delivery waits for a full socket before it counts as blocked.
const BLOCKED_WAIT_MS: i32 = 10;

impl Sim<'_> {
    pub(super) fn trace(&mut self, dir: &str, from: &str, to: &str, why: Option<&str>, raw: &[u8]) {
        let t = self.now();
        if let Some(tr) = self.trace.as_mut() {
            tr.record(t, dir, from, to, why, raw);
        }
    }

    pub(super) fn incorrect(&mut self, what: &str, raw: &[u8]) {
        self.stats.client.incorrect += 1;
        self.error(format!(
            "*** Simulator Error - {what}: {}",
            String::from_utf8_lossy(raw)
        ));
    }

    /// Decodes, checks and routes one datagram read from replica `i`'s socket.
    pub(super) fn on_datagram(&mut self, i: usize, from: SocketAddr, raw: &[u8]) {
        let sender = self.rids[i].clone();
        let parsed: Option<Value> = serde_json::from_slice(raw).ok();
        let dst_hint = parsed
            .as_ref()
            .and_then(|v| v.get("dst"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        self.trace("in", &sender, &dst_hint, None, raw);
        let Some(v) = parsed else {
            return self.incorrect("Unable to decode JSON message", raw);
        };
        let Value::Object(msg) = v else {
            return self.incorrect("Message is not a dictionary", raw);
        };
        if ["src", "dst", "leader", "type"]
            .iter()
            .any(|k| !msg.contains_key(*k))
        {
            return self.incorrect("Message is missing a required field", raw);
        }
        if !valid_addr(&msg["leader"]) {
            return self.incorrect("Incorrect leader format", raw);
        }
        if !valid_addr(&msg["dst"]) {
            return self.incorrect("Incorrect destination format", raw);
        }
        if !valid_addr(&msg["src"]) {
            return self.incorrect("Incorrect source format", raw);
        }
        let src = msg["src"].as_str().unwrap_or_default().to_string();
        let dst = msg["dst"].as_str().unwrap_or_default().to_string();
        let leader = msg["leader"].as_str().unwrap_or_default().to_string();

        // The hello tells us where the replica listens; it is not routed.
        if msg["type"] == "hello" {
            self.addrs[i] = Some(from);
            return;
        }

        // Learn the leader, only from the majority side while partitioned.
        // `FFFF` says the sender does not know one: nothing to learn (the
        // reference's report shows no FFFF in its Leaders line either).
        if leader != BROADCAST
            && self
                .partition
                .as_ref()
                .is_none_or(|p| p.majority.contains(&src))
        {
            if self.stats.leaders.last() != Some(&leader) {
                self.stats.leaders.push(leader.clone());
            }
            self.leader = leader;
        }

        if let Some(&j) = self.rid_index.get(&dst) {
            self.stats.total_msgs += 1;
            self.route(&src, j, raw);
        } else if dst == BROADCAST {
            self.stats.total_msgs += self.rids.len().saturating_sub(1) as u64;
            for j in 0..self.rids.len() {
                if self.rids[j] != src {
                    self.route(&src, j, raw);
                }
            }
        } else if let Some(&c) = self.client_index.get(&dst) {
            self.reply_to_client(c, raw, &msg);
        } else {
            self.incorrect("Unknown destination", raw);
        }
    }

    /// A replica→replica delivery through the faulty network.
    pub(super) fn route(&mut self, src: &str, j: usize, raw: &[u8]) {
        let to = self.rids[j].clone();
        let cut = !connected(self.partition.as_ref(), src, &to);
        match self.faults.decide(cut, &mut self.rng) {
            Fate::Partitioned | Fate::Dropped => {
                self.stats.total_drops += 1;
                let why = if cut { "partition" } else { "drop" };
                self.trace("out", src, &to, Some(why), raw);
            }
            Fate::Deliver { copies, delay_s } => {
                if copies > 1 {
                    self.stats.duplicated_deliveries += 1;
                }
                for _ in 0..copies {
                    if delay_s > 0.0 {
                        self.stats.delayed_deliveries += 1;
                        let at = self.now() + delay_s;
                        self.push(
                            at,
                            Due::Delayed {
                                to: j,
                                raw: raw.to_vec(),
                            },
                        );
                    } else {
                        self.deliver(src, j, raw);
                    }
                }
            }
        }
    }

    /// Sends `raw` to replica `j`. Nothing goes to a replica that is not
    /// alive; one whose hello has not arrived yet is marked dead for the
    /// rest of the run.
    pub(super) fn deliver(&mut self, from: &str, j: usize, raw: &[u8]) -> bool {
        let to = self.rids[j].clone();
        if !self.living.contains(&to) {
            self.trace("out", from, &to, Some("dead"), raw);
            return false;
        }
        let Some(addr) = self.addrs[j] else {
            self.living.remove(&to);
            self.error(format!(
                "*** Simulator Error - Replica {to} was sent a message before its hello; it counts as dead"
            ));
            self.trace("out", from, &to, Some("no hello"), raw);
            return false;
        };
        let sock = &self.sockets[j];
        let mut res = sock.send_to(raw, addr);
        if matches!(&res, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            let mut fd = [pollfd(sock.as_raw_fd(), libc::POLLOUT)];
            // SAFETY: poll on one valid pollfd we own.
            unsafe { libc::poll(fd.as_mut_ptr(), 1, BLOCKED_WAIT_MS) };
            res = sock.send_to(raw, addr);
        }
        match res {
            Ok(_) => {
                self.trace("out", from, &to, None, raw);
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.stats.blocked += 1;
                self.trace("out", from, &to, Some("blocked"), raw);
                false
            }
            Err(e) => {
                self.error(format!(
                    "*** Simulator Error - Unable to send to replica {to}: {e}"
                ));
                self.trace("out", from, &to, Some("error"), raw);
                false
            }
        }
    }

    pub(super) fn send_request(&mut self, from: &str, out: Option<Outgoing>) {
        let Some(out) = out else { return };
        if let Some(&j) = self.rid_index.get(&out.dst) {
            self.deliver(from, j, out.raw.as_bytes());
        }
    }

    pub(super) fn reply_to_client(&mut self, c: usize, raw: &[u8], msg: &Map<String, Value>) {
        let text = String::from_utf8_lossy(raw).into_owned();
        let mut ctx = ClientCtx {
            rng: &mut self.rng,
            living: &self.living,
            now_s: self.start.elapsed().as_secs_f64(),
            stats: &mut self.stats.client,
            history: &mut self.history,
            errors: &mut self.errors,
        };
        if let ReplyOutcome::Retry(out) = self.clients[c].deliver(&text, msg, &mut ctx) {
            let from = self.clients[c].id.clone();
            self.send_request(&from, out);
        }
    }
}
