//! Scripted control of a simulated cluster, for the classic Raft lab scenarios (tests in
//! `crates/sim/tests/simulate_lab.rs`). The same world as a random run — real core,
//! driver and store, invariants checked after every step — with a hand on the network
//! and the power switches instead of the random fault scheduler.
//!
//! Vocabulary follows the labs: `disconnect`/`connect` cut and restore every link of a
//! node; `crash`/`restart` power-cycle it (it keeps only what reached its disk); `start`
//! submits a command to one node; `one` drives a command to agreement; `n_committed`
//! counts the nodes that committed an index and checks they agree on it.

use bytes::Bytes;
use driver::Request;
use kv::Command;
use raft::{EntryKind, Index, Role};

use super::clock::{MS, SEC};
use super::params::Params;
use super::rng::SimRng;
use super::trace::Trace;
use super::world::World;

/// The key every lab command writes: a command is the value.
pub const LAB_KEY: &[u8] = b"lab";

pub struct Lab {
    pub w: World,
    connected: Vec<bool>,
    rotate: usize,
}

impl Lab {
    /// A quiet cluster of `n` nodes; nothing happens until time runs.
    pub fn new(n: usize, seed: u64) -> Lab {
        Lab::with_params(Params::quiet(seed, n))
    }

    pub fn with_params(p: Params) -> Lab {
        let n = p.nodes;
        let mut rng = SimRng::new(p.seed);
        let _ = rng.next_u64();
        Lab {
            w: World::new(p, rng, Trace::new()),
            connected: vec![true; n],
            rotate: 0,
        }
    }

    pub fn n(&self) -> usize {
        self.w.n()
    }

    /// Panics with the first invariant violation, if any.
    pub fn assert_ok(&self) {
        if let Some(f) = &self.w.failure {
            panic!("invariant violated at {} µs: {f}", self.w.now);
        }
    }

    pub fn run_ms(&mut self, ms: u64) {
        let until = self.w.now + ms * MS;
        self.w.run_until(until);
        self.assert_ok();
    }

    /// Runs until `pred` holds or `ms` pass; returns whether it held.
    pub fn run_until(&mut self, ms: u64, pred: impl FnMut(&World) -> bool) -> bool {
        let until = self.w.now + ms * MS;
        let ok = self.w.run_until_pred(until, pred);
        self.assert_ok();
        ok
    }

    // ----- network -----

    fn relink(&mut self) {
        let n = self.n();
        for a in 0..n {
            for b in 0..n {
                let cut = !(self.connected[a] && self.connected[b]);
                self.w.net.set_link(a, b, cut);
            }
        }
    }

    pub fn disconnect(&mut self, i: usize) {
        self.connected[i] = false;
        self.relink();
    }

    pub fn connect(&mut self, i: usize) {
        self.connected[i] = true;
        self.relink();
    }

    pub fn is_connected(&self, i: usize) -> bool {
        self.connected[i]
    }

    /// Lossy, reordering network (the labs' "unreliable"): 10 % loss, and one message in
    /// ten takes up to 2.2 s.
    pub fn set_unreliable(&mut self, unreliable: bool) {
        let net = &mut self.w.net;
        if unreliable {
            net.loss = 0.1;
            net.slow_p = 0.1;
            net.slow_max_us = 2_200 * MS;
        } else {
            net.loss = 0.0;
            net.slow_p = 0.0;
        }
    }

    // ----- power -----

    pub fn crash(&mut self, i: usize) {
        self.w.crash_node(i, 0, "lab crash");
    }

    pub fn restart(&mut self, i: usize) {
        if !self.w.machines[i].is_up() {
            self.w.start_node(i);
        }
        self.assert_ok();
    }

    pub fn is_up(&self, i: usize) -> bool {
        self.w.machines[i].is_up()
    }

    // ----- observation -----

    /// Leaders among connected, up nodes: (slot, term).
    pub fn connected_leaders(&self) -> Vec<(usize, u64)> {
        self.w
            .leaders()
            .into_iter()
            .filter(|&(i, _)| self.connected[i])
            .collect()
    }

    /// The labs' checkOneLeader: within ten rounds of 1–1.5 s, the connected nodes have a
    /// leader, and no term has two. Returns the leader of the newest term.
    pub fn check_one_leader(&mut self) -> usize {
        for _ in 0..10 {
            let ms = self.w.rng.range(1_000, 1_500);
            self.run_ms(ms);
            let leaders = self.connected_leaders();
            let mut terms: Vec<u64> = leaders.iter().map(|&(_, t)| t).collect();
            terms.sort_unstable();
            let before = terms.len();
            terms.dedup();
            assert_eq!(before, terms.len(), "two leaders in one term: {leaders:?}");
            if let Some(&(l, _)) = leaders.iter().max_by_key(|&&(_, t)| t) {
                return l;
            }
        }
        panic!("expected one leader, got none");
    }

    /// The labs' checkNoLeader: no connected node is leader.
    pub fn check_no_leader(&self) {
        let leaders = self.connected_leaders();
        assert!(
            leaders.is_empty(),
            "expected no leader among connected nodes, got {leaders:?}"
        );
    }

    /// The labs' checkTerms: connected nodes agree on the term; returns it.
    pub fn check_terms(&self) -> u64 {
        let mut term = None;
        for i in 0..self.n() {
            if !self.connected[i] {
                continue;
            }
            if let Some(r) = self.w.machines[i].raft() {
                match term {
                    None => term = Some(r.term()),
                    Some(t) => assert_eq!(t, r.term(), "servers disagree on term"),
                }
            }
        }
        term.expect("no connected node")
    }

    pub fn term_of(&self, i: usize) -> u64 {
        self.w.machines[i].raft().map_or(0, |r| r.term())
    }

    pub fn role_of(&self, i: usize) -> Option<Role> {
        self.w.machines[i].raft().map(|r| r.role())
    }

    /// How many up nodes committed `index`, and the command there. Panics if two disagree.
    pub fn n_committed(&self, index: Index) -> (usize, Option<Vec<u8>>) {
        let mut count = 0;
        let mut cmd: Option<Vec<u8>> = None;
        for m in &self.w.machines {
            let Some(r) = m.raft() else { continue };
            if r.commit_index() < index {
                continue;
            }
            let e = r.log().entry(index).expect("committed entry in the log");
            let value = command_value(&e.kind, &e.data);
            if let (Some(a), Some(b)) = (&cmd, &value) {
                assert_eq!(a, b, "committed values at index {index} differ");
            }
            if value.is_some() {
                cmd = value;
            }
            count += 1;
        }
        (count, cmd)
    }

    /// The labs' Start: hands `value` to node `i`; `Some(index)` if it leads and accepted.
    pub fn start(&mut self, i: usize, value: &[u8]) -> Option<Index> {
        let leads = self.w.machines[i]
            .raft()
            .is_some_and(|r| r.role() == Role::Leader);
        if !leads {
            return None;
        }
        self.w.submit_direct(
            i,
            Request::Put {
                key: Bytes::from_static(LAB_KEY),
                value: Bytes::copy_from_slice(value),
            },
        );
        self.assert_ok();
        let r = self.w.machines[i].raft()?;
        let index = r.log().last_index();
        let e = r.log().entry(index)?;
        (command_value(&e.kind, &e.data).as_deref() == Some(value)).then_some(index)
    }

    /// The labs' one(): drives `value` to agreement on at least `expected` nodes within
    /// 20 s (trying every node in turn as the leader); panics if it cannot. With `retry`,
    /// a proposal that lost its slot is proposed again.
    pub fn one(&mut self, value: &[u8], expected: usize, retry: bool) -> Index {
        let deadline = self.w.now + 20 * SEC;
        while self.w.now < deadline {
            let mut index = None;
            for _ in 0..self.n() {
                self.rotate = (self.rotate + 1) % self.n();
                let i = self.rotate;
                if self.connected[i] && self.is_up(i) {
                    if let Some(ix) = self.start(i, value) {
                        index = Some(ix);
                        break;
                    }
                }
            }
            if let Some(ix) = index {
                let until = self.w.now + 2 * SEC;
                while self.w.now < until {
                    let (n, cmd) = self.n_committed(ix);
                    if n >= expected && cmd.as_deref() == Some(value) {
                        return ix;
                    }
                    self.run_ms(20);
                }
                if !retry {
                    panic!(
                        "one({}) failed to reach agreement on {expected} nodes",
                        String::from_utf8_lossy(value)
                    );
                }
            } else {
                self.run_ms(50);
            }
        }
        panic!(
            "one({}) failed to reach agreement on {expected} nodes within 20 s",
            String::from_utf8_lossy(value)
        );
    }

    /// Peer requests sent so far (the labs' RPC count).
    pub fn rpc_count(&self) -> u64 {
        self.w.net.stats.requests
    }
}

/// The value of a lab command (`Put` to [`LAB_KEY`]); `None` for no-ops and others.
pub fn command_value(kind: &EntryKind, data: &Bytes) -> Option<Vec<u8>> {
    if *kind != EntryKind::Normal {
        return None;
    }
    // A plain write comes stamped with its leader's clock (`Command::Timed`) when the
    // node has one.
    let cmd = match Command::decode(data) {
        Ok(Command::Timed { cmd, .. }) => *cmd,
        Ok(cmd) => cmd,
        Err(_) => return None,
    };
    match cmd {
        Command::Put { key, value } if key.as_ref() == LAB_KEY => Some(value.to_vec()),
        _ => None,
    }
}
