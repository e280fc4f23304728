//! Closed-loop clients. Each has at most one operation outstanding: it sends it to the
//! node it last got an answer from (sometimes to a random node, as a load balancer
//! would); every node routes (a follower forwards to its leader). Writes carry an
//! exactly-once session (client, seq), so an answer "outcome unknown" or a timeout is
//! retried with the same session at another node; after the retries the operation is
//! recorded indeterminate (it may or may not have taken effect). An answer "not
//! executed" (`Response::Fail`) is taken at its word: the operation is recorded failed,
//! left out of the history, and the end-of-run check proves it never took effect.
//!
//! Every operation goes into the history that lincheck checks. Values are unique per
//! write, so a read names the write it saw.

use bytes::Bytes;
use driver::{ReqId, Request, Response};
use lincheck::{Call, Ret};

use super::events::Ev;
use super::params::Params;
use super::world::World;

/// One operation as the client saw it; times are global µs.
#[derive(Clone, Debug)]
pub struct OpRec {
    pub client: usize,
    pub key: Vec<u8>,
    pub call: Call,
    pub invoke: u64,
    /// `None`: indeterminate (timed out, or the node failed it).
    pub ret: Option<(u64, Ret)>,
    /// Answered "not executed": left out of the history; must not take effect.
    pub failed: bool,
}

/// Sends of one operation after the first (outcome unknown, or no answer in time).
const MAX_CLIENT_RETRIES: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Random operations while clients are active.
    Normal,
    /// Puts to the probe key until one is acknowledged (the liveness check).
    Probe,
    /// A get of every key, in order (the final state, after convergence).
    FinalReads,
    Idle,
}

#[derive(Clone, Debug)]
pub struct Client {
    pub mode: Mode,
    /// The operation in progress (index into `Clients::ops`).
    op: Option<usize>,
    /// The request id of its current attempt; answers to older attempts are ignored.
    req_id: ReqId,
    attempts: u64,
    /// Retries of the current operation (see `MAX_CLIENT_RETRIES`).
    retries: u32,
    leader_guess: Option<usize>,
    redirects_in_a_row: u32,
    /// What this client last learned each key holds (for CAS expectations).
    last_seen: Vec<Option<Vec<u8>>>,
    writes: u64,
    final_next: usize,
    /// Identifies the one wake-up that counts (see `Ev::ClientWake`).
    wake_token: u64,
}

pub struct Clients {
    pub list: Vec<Client>,
    pub ops: Vec<OpRec>,
    pub keys: Vec<Vec<u8>>,
    /// Normal clients start new operations only while this is true.
    pub active: bool,
    pub probe_key: Vec<u8>,
    /// When the probe write was acknowledged.
    pub probe_acked_at: Option<u64>,
    pub probe_started_at: Option<u64>,
    /// When the final reads finished.
    pub final_done_at: Option<u64>,
    /// Unchecked TTL writes sent (see `ttl_write`): their request ids.
    pub ttl_writes: u64,
    think_mean_us: u64,
    op_timeout_us: u64,
    random_node_p: f64,
}

impl Clients {
    /// `p.clients` normal clients plus one special client (probe and final reads).
    pub fn new(p: &Params) -> Clients {
        let keys: Vec<Vec<u8>> = (0..p.keys).map(|k| format!("k{k}").into_bytes()).collect();
        let client = |mode| Client {
            mode,
            op: None,
            req_id: 0,
            attempts: 0,
            retries: 0,
            leader_guess: None,
            redirects_in_a_row: 0,
            last_seen: vec![None; keys.len()],
            writes: 0,
            final_next: 0,
            wake_token: 0,
        };
        let mut list: Vec<Client> = (0..p.clients).map(|_| client(Mode::Normal)).collect();
        list.push(client(Mode::Idle));
        Clients {
            list,
            ops: Vec::new(),
            keys,
            active: false,
            probe_key: b"probe".to_vec(),
            probe_acked_at: None,
            probe_started_at: None,
            final_done_at: None,
            ttl_writes: 0,
            think_mean_us: p.think_mean_us,
            op_timeout_us: p.op_timeout_us,
            random_node_p: p.random_node_p,
        }
    }

    pub fn special(&self) -> usize {
        self.list.len() - 1
    }

    /// Operations still waiting for an answer.
    pub fn outstanding(&self) -> usize {
        self.list.iter().filter(|c| c.op.is_some()).count()
    }

    pub fn stats(&self) -> (usize, usize, usize) {
        let ok = self.ops.iter().filter(|o| o.ret.is_some()).count();
        (self.ops.len(), ok, self.ops.len() - ok)
    }
}

fn req_id(client: usize, attempt: u64) -> ReqId {
    ((client as u64 + 1) << 48) | (attempt & ((1 << 48) - 1))
}

impl World {
    /// Schedules client `c`'s next wake-up, replacing any pending one.
    fn wake_client_at(&mut self, c: usize, at: u64) {
        let cl = &mut self.clients.list[c];
        cl.wake_token += 1;
        let token = cl.wake_token;
        self.queue.push(at, Ev::ClientWake { client: c, token });
    }

    /// Starts every normal client (staggered over their think time).
    pub fn start_clients(&mut self) {
        self.clients.active = true;
        for c in 0..self.clients.list.len() {
            if self.clients.list[c].mode == Mode::Normal {
                let at = self.now + self.rng.exp(self.clients.think_mean_us);
                self.wake_client_at(c, at);
            }
        }
    }

    /// Normal clients finish what they are doing and start nothing new.
    pub fn stop_clients(&mut self) {
        self.clients.active = false;
    }

    /// The special client starts writing the probe key until a write is acknowledged.
    pub fn start_probe(&mut self) {
        let c = self.clients.special();
        self.clients.list[c].mode = Mode::Probe;
        self.clients.probe_started_at = Some(self.now);
        self.wake_client_at(c, self.now);
    }

    /// The special client reads every key once, in order.
    pub fn start_final_reads(&mut self) {
        let c = self.clients.special();
        let cl = &mut self.clients.list[c];
        cl.mode = Mode::FinalReads;
        cl.final_next = 0;
        self.wake_client_at(c, self.now);
    }

    pub(super) fn client_wake(&mut self, c: usize, token: u64) {
        if self.clients.list[c].wake_token != token {
            return;
        }
        if self.clients.list[c].op.is_some() {
            // A retry after a backoff.
            self.client_send(c);
            return;
        }
        let mode = self.clients.list[c].mode;
        let (key, call) = match mode {
            Mode::Idle => return,
            Mode::Normal if !self.clients.active => return,
            Mode::Normal => {
                if self.rng.chance(0.1) {
                    self.ttl_write();
                }
                self.random_op(c)
            }
            Mode::Probe => {
                if self.clients.probe_acked_at.is_some() {
                    return;
                }
                let v = self.fresh_value(c);
                (self.clients.probe_key.clone(), Call::Put(v))
            }
            Mode::FinalReads => {
                let next = self.clients.list[c].final_next;
                if next >= self.clients.keys.len() {
                    self.clients.final_done_at.get_or_insert(self.now);
                    return;
                }
                (self.clients.keys[next].clone(), Call::Get)
            }
        };
        let op = self.clients.ops.len();
        self.clients.ops.push(OpRec {
            client: c,
            key,
            call,
            invoke: self.now,
            ret: None,
            failed: false,
        });
        self.clients.list[c].op = Some(op);
        self.clients.list[c].retries = 0;
        let at = self.now + self.clients.op_timeout_us;
        self.queue.push(at, Ev::ClientTimeout { client: c, op });
        self.client_send(c);
    }

    /// An unchecked write with a short time to live, on keys apart from the checked ones
    /// (`ttl/0`..`ttl/3`): deadlines, lazy and active expiry run under every fault, and
    /// the end-of-run checks compare the replicas' whole state, deadlines included.
    fn ttl_write(&mut self) {
        use kv::{Command, ExpireCond, SetCond, SetTtl, When};
        let node = self.random_member();
        let key = Bytes::from(format!("ttl/{}", self.rng.below(4)));
        let ttl_ms = 1 + self.rng.below(300) as u64;
        let cmd = match self.rng.below(4) {
            0 => Command::Expire {
                key,
                when: When::InMs(ttl_ms),
                cond: ExpireCond::Gt,
            },
            1 => Command::Persist { key },
            _ => Command::Set {
                key,
                value: Bytes::from_static(b"x"),
                cond: SetCond::Always,
                ttl: SetTtl::Expire(When::InMs(ttl_ms)),
                get: false,
            },
        };
        self.clients.ttl_writes += 1;
        let req_id = (super::world::TTL_CLIENT << 48) | self.clients.ttl_writes;
        let at = self.now + self.net.client_delay(&mut self.rng);
        self.queue.push(
            at,
            Ev::ToNode {
                node,
                req_id,
                req: Request::Write(cmd),
                session: None,
            },
        );
    }

    fn fresh_value(&mut self, c: usize) -> Vec<u8> {
        let cl = &mut self.clients.list[c];
        cl.writes += 1;
        format!("c{c}-{}", cl.writes).into_bytes()
    }

    fn random_op(&mut self, c: usize) -> (Vec<u8>, Call) {
        let k = self.rng.below(self.clients.keys.len());
        let key = self.clients.keys[k].clone();
        let roll = self.rng.below(100);
        let call = if roll < 40 {
            Call::Get
        } else if roll < 70 {
            Call::Put(self.fresh_value(c))
        } else if roll < 90 {
            // Expect what we last saw (a swap is likely) or, now and then, absence.
            let expected = if self.rng.chance(0.2) {
                None
            } else {
                self.clients.list[c].last_seen[k].clone()
            };
            let new = self.fresh_value(c);
            Call::Cas { expected, new }
        } else {
            Call::Delete
        };
        (key, call)
    }

    /// Sends (or re-sends) the client's current operation.
    fn client_send(&mut self, c: usize) {
        let Some(op) = self.clients.list[c].op else {
            return;
        };
        let random = self.rng.chance(self.clients.random_node_p);
        let node = match self.clients.list[c].leader_guess {
            Some(l) if !random => l,
            _ => self.random_member(),
        };
        let cl = &mut self.clients.list[c];
        cl.attempts += 1;
        cl.req_id = req_id(c, cl.attempts);
        let req_id = cl.req_id;
        let rec = &self.clients.ops[op];
        let key = Bytes::copy_from_slice(&rec.key);
        let req = match &rec.call {
            Call::Get => Request::Get { key },
            Call::Put(v) => Request::Put {
                key,
                value: Bytes::copy_from_slice(v),
            },
            Call::Delete => Request::Delete { key },
            Call::Cas { expected, new } => Request::Cas {
                key,
                expected: expected.as_deref().map(Bytes::copy_from_slice),
                new: Bytes::copy_from_slice(new),
            },
        };
        // One session per client; the operation's index is its sequence number, and the
        // only one outstanding (so the state machine may forget the client's older ones).
        let session = (!req.is_read()).then(|| kv::SessionTag {
            client: c as u64 + 1,
            seq: op as u64 + 1,
            first_outstanding: op as u64 + 1,
        });
        let at = self.now + self.net.client_delay(&mut self.rng);
        self.queue.push(
            at,
            Ev::ToNode {
                node,
                req_id,
                req,
                session,
            },
        );
    }

    pub(super) fn response_arrives(&mut self, node: usize, req_id: ReqId, resp: Response) {
        let c = (req_id >> 48) as usize - 1;
        let Some(cl) = self.clients.list.get(c) else {
            return;
        };
        let Some(op) = cl.op else { return };
        if cl.req_id != req_id {
            return; // an answer to an earlier attempt
        }
        let now = self.now;
        self.trace.event(now, "answer", &[req_id], || {
            format!("client {c} gets {resp:?} for {req_id:#x}")
        });
        let call = self.clients.ops[op].call.clone();
        let ret = match (&call, resp) {
            (_, Response::Redirect(to)) => {
                let cl = &mut self.clients.list[c];
                cl.redirects_in_a_row += 1;
                cl.leader_guess = to.map(|id| id as usize - 1);
                if to.is_some() && cl.redirects_in_a_row <= 3 {
                    self.client_send(c);
                } else {
                    // Nobody knows a leader (or we keep bouncing): back off, then retry.
                    cl.redirects_in_a_row = 0;
                    if to.is_none() {
                        cl.leader_guess = None;
                    }
                    let at = now + self.rng.range(10_000, 100_000);
                    self.wake_client_at(c, at);
                }
                return;
            }
            (_, Response::Fail(_)) if self.clients.list[c].retries > 0 => {
                // An earlier attempt (unknown outcome, or no answer) may have executed:
                // this attempt's "not executed" says nothing about that one.
                self.clients.list[c].leader_guess = None;
                self.finish_op(c, op, None);
                return;
            }
            (_, Response::Fail(_)) => {
                self.clients.ops[op].failed = true;
                self.clients.list[c].leader_guess = None;
                self.finish_op(c, op, None);
                return;
            }
            (_, Response::Unknown(_)) => {
                if self.retry_elsewhere(c) {
                    return;
                }
                None
            }
            (Call::Get, Response::Value(v)) => Some(Ret::Value(v.map(|b| b.to_vec()))),
            (Call::Put(_), Response::Done) => Some(Ret::Done),
            (Call::Delete, Response::Deleted(_)) => Some(Ret::Done),
            (Call::Cas { .. }, Response::Cas { swapped, current }) => {
                let k = self.key_index(&self.clients.ops[op].key);
                if let Some(k) = k {
                    self.clients.list[c].last_seen[k] = if swapped {
                        match &call {
                            Call::Cas { new, .. } => Some(new.clone()),
                            _ => None,
                        }
                    } else {
                        current.map(|b| b.to_vec())
                    };
                }
                Some(Ret::Cas(swapped))
            }
            (call, resp) => {
                self.fail(format!(
                    "client {c}: answer {resp:?} does not fit request {call:?}"
                ));
                return;
            }
        };
        if let Some(ret) = &ret {
            let k = self.key_index(&self.clients.ops[op].key);
            if let Some(k) = k {
                let seen = &mut self.clients.list[c].last_seen[k];
                match (&call, ret) {
                    (Call::Get, Ret::Value(v)) => *seen = v.clone(),
                    (Call::Put(v), _) => *seen = Some(v.clone()),
                    (Call::Delete, _) => *seen = None,
                    _ => {}
                }
            }
        }
        // The node that answered serves requests: keep talking to it.
        if ret.is_some() {
            self.clients.list[c].leader_guess = Some(node);
        }
        self.finish_op(c, op, ret.map(|r| (now, r)));
    }

    /// A random member of the cluster, as a client that keeps its list of endpoints up
    /// to date picks one (removed nodes and spares never added are not on it). Without
    /// membership changes: any machine, drawn as before they existed.
    fn random_member(&mut self) -> usize {
        let members = self.member_slots();
        members[self.rng.below(members.len())]
    }

    fn key_index(&self, key: &[u8]) -> Option<usize> {
        self.clients.keys.iter().position(|k| k == key)
    }

    pub(super) fn client_timeout(&mut self, c: usize, op: usize) {
        if self.clients.list[c].op != Some(op) {
            return;
        }
        let now = self.now;
        self.trace
            .event(now, "timeout", &[c as u64, op as u64], || {
                format!("client {c} gives up on op {op}")
            });
        if self.retry_elsewhere(c) {
            let at = now + self.clients.op_timeout_us;
            self.queue.push(at, Ev::ClientTimeout { client: c, op });
            return;
        }
        self.clients.list[c].leader_guess = None;
        self.finish_op(c, op, None);
    }

    /// Sends the current operation again, with the same session, to another node after
    /// a short back-off; false once its retries are used up.
    fn retry_elsewhere(&mut self, c: usize) -> bool {
        let cl = &mut self.clients.list[c];
        if cl.retries >= MAX_CLIENT_RETRIES {
            return false;
        }
        cl.retries += 1;
        cl.leader_guess = None;
        let at = self.now + self.rng.range(10_000, 100_000);
        self.wake_client_at(c, at);
        true
    }

    fn finish_op(&mut self, c: usize, op: usize, ret: Option<(u64, Ret)>) {
        let acked = ret.is_some();
        self.clients.ops[op].ret = ret;
        let cl = &mut self.clients.list[c];
        cl.op = None;
        cl.redirects_in_a_row = 0;
        let think = match cl.mode {
            Mode::Probe => {
                if acked {
                    self.clients.probe_acked_at = Some(self.now);
                    return;
                }
                self.rng.range(1_000, 20_000)
            }
            Mode::FinalReads => {
                if acked {
                    cl.final_next += 1;
                }
                1_000
            }
            _ => self.rng.exp(self.clients.think_mean_us),
        };
        let at = self.now + think;
        self.wake_client_at(c, at);
    }
}
