//! The simulated clients: request generation, the retry rule on redirect or
//! fail, and the per-reply checks the reference harness made.

use super::history::{History, OpCall, OpRet};
use super::network::BROADCAST;
use rand::rngs::StdRng;
use rand::Rng;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

const KEY_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const HEX: &[u8] = b"0123456789abcdef";

/// Counters kept by the clients (the reference's `Stats`, client part).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClientStats {
    /// Every get attempt sent, retries included.
    pub total_get: u64,
    /// Every put attempt sent, retries included.
    pub total_put: u64,
    pub failed_get: u64,
    pub failed_put: u64,
    /// Replies of type `redirect` or `fail` (both trigger a retry).
    pub redirects: u64,
    pub duplicates: u64,
    pub incorrect: u64,
    pub unanswered_get: u64,
    pub unanswered_put: u64,
    /// Scheduled gets that became puts because the client had no key.
    pub gets_not_generated: u64,
    /// One sample per reply: seconds from sending that attempt to the reply.
    pub latencies: Vec<f64>,
}

/// A request to put on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub dst: String,
    pub raw: String,
}

/// Everything a client needs from the harness for one step.
pub struct ClientCtx<'a> {
    pub rng: &'a mut StdRng,
    /// Replicas the harness believes alive (sorted: random picks are
    /// reproducible under a seed).
    pub living: &'a BTreeSet<String>,
    pub now_s: f64,
    pub stats: &'a mut ClientStats,
    pub history: &'a mut History,
    /// `*** Simulator Error` lines for the report.
    pub errors: &'a mut Vec<String>,
}

/// What a reply did.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyOutcome {
    /// Counted as an incorrect answer.
    Incorrect,
    /// A reply for an already completed MID.
    Duplicate,
    /// A redirect or fail: the same operation goes out again (None when no
    /// replica is alive to take it).
    Retry(Option<Outgoing>),
    /// An `ok` that completed the operation.
    Completed,
}

#[derive(Debug, Clone)]
struct Attempt {
    op: usize,
    get: bool,
    key: String,
    value: Option<String>,
    sent_s: f64,
}

/// One client.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    num: u64,
    /// The leader this client last heard of (`FFFF` if none).
    pub leader: String,
    pending: HashMap<String, Attempt>,
    /// Keys this client wrote successfully, with the last acknowledged value.
    items: BTreeMap<String, String>,
    completed: HashSet<String>,
}

fn rand_string(rng: &mut StdRng, alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

fn pick<'a, T>(rng: &mut StdRng, it: impl ExactSizeIterator<Item = &'a T>) -> Option<&'a T>
where
    T: 'a,
{
    let n = it.len();
    if n == 0 {
        return None;
    }
    let i = rng.gen_range(0..n);
    it.into_iter().nth(i)
}

impl Client {
    pub fn new(id: &str) -> Self {
        Client {
            id: id.to_string(),
            num: u64::from_str_radix(id, 16).unwrap_or(0),
            leader: BROADCAST.to_string(),
            pending: HashMap::new(),
            items: BTreeMap::new(),
            completed: HashSet::new(),
        }
    }

    /// Clients forget the leader after kill_leader and part_hard.
    pub fn forget(&mut self) {
        self.leader = BROADCAST.to_string();
    }

    /// Keys written successfully so far.
    pub fn stored(&self) -> usize {
        self.items.len()
    }

    /// Attempts sent and not yet answered.
    #[cfg(test)]
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// The leader it last heard of, if alive; else a random living replica
    /// (and the leader is forgotten, as the reference did).
    fn destination(&mut self, ctx: &mut ClientCtx) -> Option<String> {
        if self.leader == BROADCAST || !ctx.living.contains(&self.leader) {
            self.leader = BROADCAST.to_string();
            return pick(ctx.rng, ctx.living.iter()).cloned();
        }
        Some(self.leader.clone())
    }

    /// Sends one attempt of operation `op`; counts it and remembers its MID.
    fn send_attempt(
        &mut self,
        ctx: &mut ClientCtx,
        op: usize,
        get: bool,
        key: String,
        value: Option<String>,
    ) -> Option<Outgoing> {
        if get {
            ctx.stats.total_get += 1;
        } else {
            ctx.stats.total_put += 1;
        }
        let mut mid = rand_string(ctx.rng, KEY_CHARS, 16);
        while self.pending.contains_key(&mid) || self.completed.contains(&mid) {
            mid = rand_string(ctx.rng, KEY_CHARS, 16);
        }
        let dst = self.destination(ctx);
        let q = |s: &str| Value::String(s.to_string()).to_string();
        let raw = dst.as_ref().map(|dst| {
            let mut raw = format!(
                "{{\"src\": {}, \"dst\": {}, \"leader\": {}, \"type\": {}, \"MID\": {}, \"key\": {}",
                q(&self.id),
                q(dst),
                q(&self.leader),
                q(if get { "get" } else { "put" }),
                q(&mid),
                q(&key)
            );
            if let Some(v) = &value {
                raw.push_str(&format!(", \"value\": {}", q(v)));
            }
            raw.push('}');
            raw
        });
        // With no living replica the attempt cannot go out; it stays
        // outstanding and ends up unanswered.
        self.pending.insert(
            mid,
            Attempt {
                op,
                get,
                key,
                value,
                sent_s: ctx.now_s,
            },
        );
        Some(Outgoing {
            dst: dst?,
            raw: raw?,
        })
    }

    /// Creates a new logical operation: a get of one of this client's keys
    /// when `get` (else a put, counting a get that could not be generated),
    /// or a put of a new key (probability ½) or of an existing one.
    pub fn create_request(&mut self, get: bool, ctx: &mut ClientCtx) -> Option<Outgoing> {
        if get {
            if let Some(key) = pick(ctx.rng, self.items.keys()).cloned() {
                let op = ctx.history.invoke(self.num, &key, OpCall::Get, ctx.now_s);
                return self.send_attempt(ctx, op, true, key, None);
            }
            ctx.stats.gets_not_generated += 1;
        }
        let key = if self.items.is_empty() || ctx.rng.gen::<f64>() > 0.5 {
            rand_string(ctx.rng, KEY_CHARS, 32)
        } else {
            pick(ctx.rng, self.items.keys())
                .cloned()
                .unwrap_or_default()
        };
        let value = rand_string(ctx.rng, HEX, 32);
        let op = ctx
            .history
            .invoke(self.num, &key, OpCall::Put(value.clone()), ctx.now_s);
        self.send_attempt(ctx, op, false, key, Some(value))
    }

    /// Handles a reply addressed to this client.
    pub fn deliver(
        &mut self,
        raw: &str,
        msg: &Map<String, Value>,
        ctx: &mut ClientCtx,
    ) -> ReplyOutcome {
        let Some(mid_v) = msg.get("MID") else {
            ctx.errors.push(format!(
                "*** Simulator Error - Message missing mid field: {raw}"
            ));
            ctx.stats.incorrect += 1;
            return ReplyOutcome::Incorrect;
        };
        let ty = msg.get("type").and_then(Value::as_str).unwrap_or("");
        if !matches!(ty, "ok" | "fail" | "redirect") {
            ctx.errors.push(format!(
                "*** Simulator Error - Unknown message type sent to client: {raw}"
            ));
            ctx.stats.incorrect += 1;
            return ReplyOutcome::Incorrect;
        }
        // A non-string MID can never match one we sent.
        let mid = mid_v
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| mid_v.to_string());
        if self.completed.contains(&mid) {
            ctx.stats.duplicates += 1;
            return ReplyOutcome::Duplicate;
        }
        let Some(att) = self.pending.remove(&mid) else {
            ctx.errors.push(format!(
                "*** Simulator Error - client received an unexpected MID: {raw}"
            ));
            ctx.stats.incorrect += 1;
            return ReplyOutcome::Incorrect;
        };
        if let Some(l) = msg.get("leader").and_then(Value::as_str) {
            self.leader = l.to_string();
        }
        ctx.stats.latencies.push((ctx.now_s - att.sent_s).max(0.0));

        if ty != "ok" {
            if ty == "fail" {
                if att.get {
                    ctx.stats.failed_get += 1;
                } else {
                    ctx.stats.failed_put += 1;
                }
            }
            ctx.stats.redirects += 1;
            let out = self.send_attempt(ctx, att.op, att.get, att.key, att.value);
            return ReplyOutcome::Retry(out);
        }

        self.completed.insert(mid);
        if att.get {
            match msg.get("value") {
                None => {
                    ctx.errors.push(format!(
                        "*** Simulator Error - get() response missing the value of the key: {raw}"
                    ));
                    ctx.stats.incorrect += 1;
                }
                Some(v) => {
                    let got = v.as_str().map(str::to_string);
                    if got.as_deref() != self.items.get(&att.key).map(String::as_str) {
                        ctx.errors.push(format!(
                            "*** Simulator Error - client received an incorrect value for a key: {raw}"
                        ));
                        ctx.stats.incorrect += 1;
                    }
                    // Keys never written read as "": the checker's None. A
                    // non-string value is recorded as its JSON text so the
                    // checker sees a value nobody wrote.
                    let text = got.unwrap_or_else(|| v.to_string());
                    let ret = OpRet::Value(if text.is_empty() { None } else { Some(text) });
                    ctx.history.complete(att.op, ret, ctx.now_s);
                }
            }
        } else {
            ctx.history.complete(att.op, OpRet::Done, ctx.now_s);
            if let Some(v) = att.value {
                self.items.insert(att.key, v);
            }
        }
        ReplyOutcome::Completed
    }

    /// At the end of the run every outstanding attempt is unanswered.
    pub fn finalize(&self, stats: &mut ClientStats) {
        for a in self.pending.values() {
            if a.get {
                stats.unanswered_get += 1;
            } else {
                stats.unanswered_put += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    struct World {
        rng: StdRng,
        living: BTreeSet<String>,
        stats: ClientStats,
        history: History,
        errors: Vec<String>,
        now: f64,
    }

    impl World {
        fn new() -> Self {
            World {
                rng: StdRng::seed_from_u64(7),
                living: ["0000", "0001", "0002"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                stats: ClientStats::default(),
                history: History::default(),
                errors: Vec::new(),
                now: 1.0,
            }
        }
        fn ctx(&mut self) -> ClientCtx<'_> {
            ClientCtx {
                rng: &mut self.rng,
                living: &self.living,
                now_s: self.now,
                stats: &mut self.stats,
                history: &mut self.history,
                errors: &mut self.errors,
            }
        }
    }

    fn parse(raw: &str) -> Map<String, Value> {
        serde_json::from_str(raw).unwrap()
    }

    fn reply(
        req: &Outgoing,
        ty: &str,
        leader: &str,
        value: Option<&str>,
    ) -> (String, Map<String, Value>) {
        let m = parse(&req.raw);
        let mut r = serde_json::json!({
            "src": m["dst"], "dst": m["src"], "leader": leader, "type": ty, "MID": m["MID"],
        });
        if let Some(v) = value {
            r["value"] = Value::String(v.into());
        }
        let raw = r.to_string();
        (raw.clone(), parse(&raw))
    }

    #[test]
    fn get_without_keys_becomes_a_put() {
        let mut w = World::new();
        let mut c = Client::new("0013");
        let out = c.create_request(true, &mut w.ctx()).unwrap();
        let m = parse(&out.raw);
        assert_eq!(m["type"], "put");
        assert_eq!(m["key"].as_str().unwrap().len(), 32);
        assert_eq!(m["value"].as_str().unwrap().len(), 32);
        assert_eq!(m["leader"], "FFFF");
        assert!(w.living.contains(&out.dst));
        assert_eq!(w.stats.gets_not_generated, 1);
        assert_eq!(w.stats.total_put, 1);
    }

    #[test]
    fn redirect_retries_same_operation_to_named_leader() {
        let mut w = World::new();
        let mut c = Client::new("0013");
        let put = c.create_request(false, &mut w.ctx()).unwrap();
        let first = parse(&put.raw);
        w.now = 1.25;
        let (raw, msg) = reply(&put, "redirect", "0002", None);
        let ReplyOutcome::Retry(Some(again)) = c.deliver(&raw, &msg, &mut w.ctx()) else {
            panic!("no retry")
        };
        let second = parse(&again.raw);
        assert_eq!(again.dst, "0002");
        assert_eq!(second["leader"], "0002");
        assert_ne!(second["MID"], first["MID"]);
        assert_eq!(second["key"], first["key"]);
        assert_eq!(second["value"], first["value"]);
        assert_eq!(w.stats.redirects, 1);
        assert_eq!(w.stats.total_put, 2);
        assert_eq!(w.stats.latencies, vec![0.25]);
        // A fail naming an unknown leader goes to a random living replica.
        let (raw, msg) = reply(&again, "fail", "FFFF", None);
        let ReplyOutcome::Retry(Some(third)) = c.deliver(&raw, &msg, &mut w.ctx()) else {
            panic!("no retry")
        };
        assert!(w.living.contains(&third.dst));
        assert_eq!(w.stats.failed_put, 1);
        assert_eq!(w.stats.redirects, 2);
        // A dead leader is not used either.
        w.living.remove("0001");
        let (raw, msg) = reply(&third, "redirect", "0001", None);
        let ReplyOutcome::Retry(Some(fourth)) = c.deliver(&raw, &msg, &mut w.ctx()) else {
            panic!("no retry")
        };
        assert_ne!(fourth.dst, "0001");
        // Still one logical operation, completed by the final ok.
        w.now = 2.0;
        let (raw, msg) = reply(&fourth, "ok", "0000", None);
        assert_eq!(c.deliver(&raw, &msg, &mut w.ctx()), ReplyOutcome::Completed);
        assert_eq!(w.history.ops.len(), 1);
        assert_eq!(w.history.ops[0].invoke_ns, 1_000_000_000);
        assert_eq!(w.history.ops[0].complete_ns, Some(2_000_000_000));
        assert_eq!(c.stored(), 1);
        assert_eq!(c.leader, "0000");
    }

    #[test]
    fn get_checks_value_and_counts_duplicates() {
        let mut w = World::new();
        let mut c = Client::new("0013");
        let put = c.create_request(false, &mut w.ctx()).unwrap();
        let value = parse(&put.raw)["value"].as_str().unwrap().to_string();
        let (raw, msg) = reply(&put, "ok", "0000", None);
        c.deliver(&raw, &msg, &mut w.ctx());
        // Duplicate ok for the same MID.
        assert_eq!(c.deliver(&raw, &msg, &mut w.ctx()), ReplyOutcome::Duplicate);
        assert_eq!(w.stats.duplicates, 1);

        let get = c.create_request(true, &mut w.ctx()).unwrap();
        assert_eq!(parse(&get.raw)["type"], "get");
        assert_eq!(get.dst, "0000", "sends to the leader it heard of");
        let (raw, msg) = reply(&get, "ok", "0000", Some(&value));
        assert_eq!(c.deliver(&raw, &msg, &mut w.ctx()), ReplyOutcome::Completed);
        assert_eq!(w.stats.incorrect, 0);

        let get = c.create_request(true, &mut w.ctx()).unwrap();
        let (raw, msg) = reply(&get, "ok", "0000", Some("nope"));
        c.deliver(&raw, &msg, &mut w.ctx());
        assert_eq!(w.stats.incorrect, 1);
        assert_eq!(
            w.history.ops[2].ret,
            Some(OpRet::Value(Some("nope".into())))
        );
    }

    #[test]
    fn bad_replies_are_incorrect() {
        let mut w = World::new();
        let mut c = Client::new("0013");
        let put = c.create_request(false, &mut w.ctx()).unwrap();
        let (raw, mut msg) = reply(&put, "ok", "0000", None);
        msg.remove("MID");
        assert_eq!(c.deliver(&raw, &msg, &mut w.ctx()), ReplyOutcome::Incorrect);
        let (raw, mut msg) = reply(&put, "ok", "0000", None);
        msg.insert("MID".into(), Value::String("UNKNOWN".into()));
        assert_eq!(c.deliver(&raw, &msg, &mut w.ctx()), ReplyOutcome::Incorrect);
        let (raw, msg) = reply(&put, "append", "0000", None);
        assert_eq!(c.deliver(&raw, &msg, &mut w.ctx()), ReplyOutcome::Incorrect);
        assert_eq!(w.stats.incorrect, 3);
        assert_eq!(w.errors.len(), 3);
        // Unanswered at the end.
        c.finalize(&mut w.stats);
        assert_eq!(w.stats.unanswered_put, 1);
        assert_eq!(w.history.ops[0].ret, None);
    }

    #[test]
    fn no_living_replica_leaves_the_request_unanswered() {
        let mut w = World::new();
        w.living.clear();
        let mut c = Client::new("0013");
        assert!(c.create_request(false, &mut w.ctx()).is_none());
        assert_eq!(c.outstanding(), 1);
        c.finalize(&mut w.stats);
        assert_eq!(w.stats.unanswered_put, 1);
    }
}
