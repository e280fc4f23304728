//! The replica's event loop: one UDP socket, one thread, no busy waiting. It sleeps in
//! `ppoll` until a datagram arrives or the driver's next deadline, drains the socket (so
//! a burst of requests is proposed as one batch), then runs the driver.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use driver::{Node, ReqId, Transport};
use raft::{Message, MessageBody, NodeId};
use serde_json::Value;
use storage::MemLogStore;

use crate::answers::{Answers, ParkedAnswers};
use crate::client::{encode_reply, parse_request, Asker};
use crate::codec::{self, MAX_DATAGRAM, MAX_DESIGNATED_NAME};
use crate::ids::{format_id, parse_id, BROADCAST};
use crate::order::ReplyOrder;
use crate::tuning::Tuning;

/// Outgoing peer messages, encoded when the loop flushes.
#[derive(Default)]
pub struct Outbox {
    msgs: Vec<Message>,
}

impl Transport for Outbox {
    fn send(&mut self, msg: Message) {
        self.msgs.push(msg);
    }
}

pub struct Server {
    me: NodeId,
    peers: Vec<NodeId>,
    socket: UdpSocket,
    harness: SocketAddr,
    node: Node<Outbox, MemLogStore>,
    start: Instant,
    tick: Duration,
    askers: HashMap<ReqId, Asker>,
    next_req: ReqId,
    buf: Vec<u8>,
    /// Who answers which write (the chain's tail, see answers.rs).
    answers: Answers,
    /// Our `ok`s for writes designated to other replicas, until they report (answers.rs).
    parked: ParkedAnswers,
    /// When we last received a datagram from each peer (ticks).
    last_rx: HashMap<NodeId, u64>,
    /// Gets that arrived while we lead but may not yet know of a write another replica
    /// already acknowledged; each waits for our commit index to reach its index.
    gated_gets: VecDeque<GatedGet>,
    /// Holds a redirect or fail behind an earlier write of the same client and key
    /// (order.rs).
    order: ReplyOrder,
}

struct GatedGet {
    id: ReqId,
    req: driver::Request,
    tag: u64,
    index: raft::Index,
}

/// A chain's tail is designated to answer a write only if we heard from it this
/// recently (ticks of 100 µs): with rotated chains a living tail answers an append every
/// few hundred ms, and a dead one then strands at most a write or two on the fallback.
const TAIL_HEARD_TICKS: u64 = 4_000;

/// Gets waiting for the read gate; beyond this they are refused (`fail`).
const MAX_GATED_GETS: usize = 10_000;

/// Datagrams read per wake-up before the driver runs; bounds latency under a flood.
const MAX_BATCH: usize = 256;

impl Server {
    pub fn new(
        me: NodeId,
        peers: Vec<NodeId>,
        harness_port: u16,
        cfg: raft::Config,
        tuning: &Tuning,
    ) -> io::Result<Server> {
        let (opts, tick) = (tuning.node_options(), tuning.tick);
        let mut voters = peers.clone();
        voters.push(me);
        // The seed replica never restarts: its log lives in memory.
        let node = Node::open(
            cfg,
            raft::Membership::new(voters),
            Outbox::default(),
            MemLogStore::new(),
            opts,
        )
        .map_err(|e| io::Error::other(e.to_string()))?;
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_nonblocking(true)?;
        let harness: SocketAddr = ([127, 0, 0, 1], harness_port).into();
        let server = Server {
            me,
            peers,
            socket,
            harness,
            node,
            start: Instant::now(),
            tick,
            askers: HashMap::new(),
            next_req: 1,
            buf: vec![0; 65_536],
            answers: Answers::new(me, tuning.tail_answers),
            parked: ParkedAnswers::default(),
            last_rx: HashMap::new(),
            gated_gets: VecDeque::new(),
            order: ReplyOrder::default(),
        };
        // The harness learns our address from this; it must precede everything else.
        let hello = serde_json::json!({"src": format_id(me), "dst": BROADCAST, "leader": BROADCAST, "type": "hello"});
        server.send_raw(&serde_json::to_vec(&hello).expect("json"))?;
        Ok(server)
    }

    fn now_ticks(&self) -> u64 {
        (self.start.elapsed().as_nanos() / self.tick.as_nanos()) as u64
    }

    pub fn run(mut self) -> io::Result<()> {
        loop {
            // Time first: the core stamps what it does next with the current tick (lease
            // checks, retransmission timers), so it must never act on a stale clock.
            let now = self.now_ticks();
            self.node.tick(now);
            self.drain_socket();
            self.node.process();
            // Gets released by commits of this round need a round of their own.
            while self.release_gated_gets() {
                self.node.process();
            }
            self.answer_committed();
            self.flush();
            let deadline = (self.node.next_deadline())
                .min(self.parked.next_deadline())
                .min(self.order.next_deadline());
            let wait = deadline.saturating_sub(self.now_ticks());
            if wait > 0 {
                let wait = self.tick.saturating_mul(wait.min(u32::MAX as u64) as u32);
                wait_readable(&self.socket, wait)?;
            }
        }
    }

    fn drain_socket(&mut self) {
        for _ in 0..MAX_BATCH {
            match self.socket.recv(&mut self.buf) {
                Ok(n) => {
                    let datagram = self.buf[..n].to_vec();
                    self.handle_datagram(&datagram);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("{}: recv error: {e}", format_id(self.me));
                    return;
                }
            }
        }
    }

    fn handle_datagram(&mut self, raw: &[u8]) {
        if let Err(why) = self.try_handle(raw) {
            let shown = String::from_utf8_lossy(&raw[..raw.len().min(200)]).into_owned();
            eprintln!("{}: ignoring datagram ({why}): {shown}", format_id(self.me));
        }
    }

    fn try_handle(&mut self, raw: &[u8]) -> Result<(), String> {
        let v: Value = serde_json::from_slice(raw).map_err(|e| format!("bad JSON: {e}"))?;
        let o = v.as_object().ok_or("not a JSON object")?;
        let ty = o
            .get("type")
            .and_then(Value::as_str)
            .ok_or("type missing")?;
        let src = o.get("src").and_then(Value::as_str).ok_or("src missing")?;
        if ty == "get" || ty == "put" {
            let (asker, req) = parse_request(o, ty)?;
            if let driver::Request::Put { key, value } = &req {
                if !codec::put_fits_in_datagram(key, value) {
                    // It could never be replicated in one datagram: refuse it up front.
                    let raw = encode_reply(
                        self.me,
                        self.node.leader(),
                        &asker,
                        &driver::Response::Fail("too large"),
                    );
                    self.send_raw(&raw).map_err(|e| format!("send: {e}"))?;
                    return Err("put too large to replicate; answered fail".into());
                }
            }
            let id = self.next_req;
            self.next_req += 1;
            // Retries of one logical request share client and key: the tag lets the
            // driver notice a client bouncing between a dead leader and us.
            let key = o.get("key").and_then(Value::as_str).unwrap_or("");
            let tag = affinity_tag(&asker.client, key);
            self.order.request(id, &asker.client, key, !req.is_read());
            let (client, mid) = (asker.client.clone(), asker.mid.clone());
            self.askers.insert(id, asker);
            if req.is_read() {
                self.submit_get(id, req, tag);
                return Ok(());
            }
            let before = self.node.raft().log().last_index();
            self.node.submit_tagged(self.now_ticks(), id, req, tag);
            self.note_proposal(before, id, &client, &mid);
            return Ok(());
        }
        let from = parse_id(src).ok_or("src is not a replica ID")?;
        if !self.peers.contains(&from) {
            return Err(format!("message from unknown replica {src}"));
        }
        self.last_rx.insert(from, self.now_ticks());
        match ty {
            // The leader asks whether we answered the writes designated to us.
            "aq?" => {
                let leader = self.node.leader();
                let v = serde_json::json!({"src": format_id(self.me), "dst": src,
                    "leader": crate::ids::format_leader(leader), "type": "aqr",
                    "aq": self.answers.resolved_upto()});
                self.send_raw(&serde_json::to_vec(&v).expect("json"))
                    .map_err(|e| format!("send: {e}"))?;
                return Ok(());
            }
            "aqr" | "ar" => {
                if let Some(r) = o.get("aq") {
                    let r = r.as_u64().ok_or("field aq is not an index")?;
                    self.parked.report(from, r);
                }
                if ty == "aqr" {
                    return Ok(());
                }
            }
            _ => {}
        }
        let msg = codec::decode(o, ty, from, self.me)?;
        let vouched = self.chain_vouch(&msg);
        if let MessageBody::Append {
            prev_index,
            entries,
            ..
        } = &msg.body
        {
            if let Some(last) = entries.last() {
                let ds = codec::decode_designations(o, prev_index + 1, last.index)?;
                self.answers.learn(ds);
            }
        }
        self.node.step(self.now_ticks(), msg);
        if let Some((term, leader, last)) = vouched {
            // The append came down a chain that, with us, makes a quorum: if we now hold
            // its last entry, of the leader's term, in that term, it is committed.
            let raft = self.node.raft();
            if raft.term() == term
                && raft.leader() == Some(leader)
                && raft.log().term(last) == Some(term)
            {
                self.answer_up_to(last);
            }
        }
        Ok(())
    }

    /// A relayed append we are the tail of, whose chain reaches a quorum with us:
    /// (term, leader, last index). See `answers.rs`.
    fn chain_vouch(&self, msg: &Message) -> Option<(raft::Term, NodeId, raft::Index)> {
        let MessageBody::Append {
            entries,
            leader,
            relay,
            relayed_by,
            ..
        } = &msg.body
        else {
            return None;
        };
        let last = entries.last()?.index;
        let mut holders: Vec<NodeId> = relayed_by.clone();
        holders.push(*leader);
        holders.push(self.me);
        holders.sort_unstable();
        holders.dedup();
        let voters = self.peers.len() + 1;
        let quorum = voters / 2 + 1;
        let known = holders
            .iter()
            .all(|id| *id == self.me || self.peers.contains(id));
        (relay.is_empty() && known && holders.len() >= quorum).then_some((msg.term, *leader, last))
    }

    /// After a put went to the driver: if we proposed it as leader, remember whom to
    /// answer, so the entry can carry it to its designated answerer.
    fn note_proposal(&mut self, before: raft::Index, id: ReqId, client: &str, mid: &str) {
        let raft = self.node.raft();
        let last = raft.log().last_index();
        if !raft.is_leader()
            || last != before + 1
            || client.len() > MAX_DESIGNATED_NAME
            || mid.len() > MAX_DESIGNATED_NAME
        {
            return;
        }
        let term = raft.term();
        if raft.log().term(last) == Some(term) {
            self.answers.proposed(last, term, id, client, mid);
        }
    }

    /// A get goes to the driver at once, unless we lead and some write we designated to
    /// another replica may have been acknowledged already without our knowing it
    /// committed: then it waits until our commit index covers that write.
    fn submit_get(&mut self, id: ReqId, req: driver::Request, tag: u64) {
        let raft = self.node.raft();
        let gate = self.answers.read_gate();
        if raft.is_leader() && (raft.commit_index() < gate || !self.gated_gets.is_empty()) {
            if self.gated_gets.len() >= MAX_GATED_GETS {
                self.reply_now(id, &driver::Response::Fail("busy: too many gets waiting"));
                return;
            }
            self.gated_gets.push_back(GatedGet {
                id,
                req,
                tag,
                index: gate,
            });
            return;
        }
        self.node.submit_tagged(self.now_ticks(), id, req, tag);
    }

    /// Hands the driver the gated gets whose gate opened (or that we no longer lead for:
    /// the driver redirects or holds them). Returns whether any went.
    fn release_gated_gets(&mut self) -> bool {
        let mut released = false;
        while let Some(g) = self.gated_gets.front() {
            let raft = self.node.raft();
            if raft.is_leader() && raft.commit_index() < g.index {
                break;
            }
            let g = self.gated_gets.pop_front().expect("front exists");
            self.node
                .submit_tagged(self.now_ticks(), g.id, g.req, g.tag);
            released = true;
        }
        released
    }

    /// Answers the writes designated to us that our commit index now covers.
    fn answer_committed(&mut self) {
        let commit = self.node.raft().commit_index();
        self.answer_up_to(commit);
    }

    fn answer_up_to(&mut self, commit: raft::Index) {
        let raft = self.node.raft();
        let log = raft.log();
        let due = self.answers.resolve(commit, |i| log.term(i));
        let leader = self.node.leader();
        for (client, mid) in due {
            let asker = Asker { client, mid };
            let raw = encode_reply(self.me, leader, &asker, &driver::Response::Done);
            if let Err(e) = self.send_raw(&raw) {
                eprintln!("{}: send error: {e}", format_id(self.me));
            }
        }
    }

    /// Replies to a request of ours outside the driver (in the order order.rs keeps).
    fn reply_now(&mut self, id: ReqId, resp: &driver::Response) {
        let now = self.now_ticks();
        for (id, resp) in self.order.reply(id, resp.clone(), now) {
            self.send_reply(id, &resp);
        }
    }

    /// Sends the reply to request `id` (once: the asker is forgotten).
    fn send_reply(&mut self, id: ReqId, resp: &driver::Response) {
        let Some(asker) = self.askers.remove(&id) else {
            return;
        };
        let raw = encode_reply(self.me, self.node.leader(), &asker, resp);
        if let Err(e) = self.send_raw(&raw) {
            eprintln!("{}: send error: {e}", format_id(self.me));
        }
    }

    /// Sends everything the driver produced: peer messages, then client replies.
    fn flush(&mut self) {
        let leader = self.node.leader();
        let msgs = std::mem::take(&mut self.node.transport_mut().msgs);
        for msg in msgs {
            self.send_peer(msg, leader);
        }
        let now = self.now_ticks();
        for (id, resp) in self.node.take_responses() {
            let delegated = self.answers.take_delegated(id);
            if let (Some((index, designee)), driver::Response::Done) = (delegated, &resp) {
                // Its designated answerer (the chain's tail) sends the `ok`; ours waits
                // for its report, in case it died first.
                if self.parked.park(id, index, designee, now) {
                    continue;
                }
            }
            for (id, resp) in self.order.reply(id, resp, now) {
                self.send_reply(id, &resp);
            }
        }
        for (id, resp) in self.order.poll(now) {
            self.send_reply(id, &resp);
        }
        let due = self.parked.poll(now);
        for id in due.answer {
            self.reply_now(id, &driver::Response::Done);
        }
        for (designee, index) in due.ask {
            let v = serde_json::json!({"src": format_id(self.me), "dst": format_id(designee),
                "leader": crate::ids::format_leader(leader), "type": "aq?", "i": index});
            if let Err(e) = self.send_raw(&serde_json::to_vec(&v).expect("json")) {
                eprintln!("{}: send error: {e}", format_id(self.me));
            }
        }
    }

    fn send_peer(&mut self, msg: Message, leader: Option<NodeId>) {
        let raw = match &msg.body {
            MessageBody::Append { entries, relay, .. } if !entries.is_empty() => {
                let now = self.now_ticks();
                let tail_alive = relay.last().is_some_and(|t| {
                    self.last_rx
                        .get(t)
                        .is_some_and(|&at| now.saturating_sub(at) <= TAIL_HEARD_TICKS)
                });
                let ds = self.answers.outgoing(entries, relay, tail_alive);
                codec::encode_with_designations(&msg, leader, &ds, None)
            }
            MessageBody::AppendResp { .. } if self.answers.report().is_some() => {
                codec::encode_with_designations(&msg, leader, &[], self.answers.report())
            }
            _ => codec::encode(&msg, leader),
        };
        if raw.len() <= MAX_DATAGRAM {
            if let Err(e) = self.send_raw(&raw) {
                eprintln!("{}: send error: {e}", format_id(self.me));
            }
            return;
        }
        let single = matches!(&msg.body, MessageBody::Append { entries, .. } if entries.len() <= 1);
        if single {
            // Proposals are size-checked on entry, so this cannot happen; drop rather
            // than send a datagram the network would truncate.
            eprintln!(
                "{}: dropping oversized single-entry append ({} bytes)",
                format_id(self.me),
                raw.len()
            );
            return;
        }
        for part in codec::split_append(msg) {
            self.send_peer(part, leader);
        }
    }

    fn send_raw(&self, raw: &[u8]) -> io::Result<()> {
        loop {
            match self.socket.send_to(raw, self.harness) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A full socket buffer: the datagram is lost, like any other drop.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

fn affinity_tag(client: &str, key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (client, key).hash(&mut h);
    h.finish()
}

/// Sleeps until the socket is readable or `timeout` passes (microsecond precision).
fn wait_readable(socket: &UdpSocket, timeout: Duration) -> io::Result<()> {
    let mut fds = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one valid pollfd, a valid timespec, no signal mask.
    let rc = unsafe { libc::ppoll(&mut fds, 1, &ts, std::ptr::null()) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(())
}
