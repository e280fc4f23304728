//! The random fault scheduler of the safety phase, and the heal that ends it.
//!
//! Every `fault_gap_mean_us` on average (exponential gaps) one fault starts, chosen by the
//! run's weights:
//! - **partition**, one of five shapes: symmetric split, isolated leader, one-way cut
//!   (one side hears the other but not back), bridge (two halves that only one node
//!   connects), random directed links; it replaces the partition in force and lasts
//!   0.1–15 s;
//! - **clog**: one link (or both directions of it) holds every message for 0.1–3 s;
//! - **crash**: a node (the leader one time in three) stops and loses everything not on
//!   disk; it restarts after 0–5 s (sometimes at once);
//! - **crash in sync**: the node's next fsync fails, as a power cut in the middle of it
//!   would: the node stops and restarts from what reached the disk — the synced state and
//!   a random prefix of the unsynced writes;
//! - **pause**: a node freezes for 0.05–4 s (GC, VM migration); its clock keeps running and
//!   its inputs queue up;
//! - **leader churn** (the conditions of Figure 8 in the Raft paper): for 1–6 s, every
//!   node that becomes leader is crashed (back within a second) or cut off (for 0.3–3 s),
//!   half the time at once (its first appends, still in flight, are lost) and otherwise
//!   within 300 ms, so terms pile up whose entries reached only a few logs;
//! - **leadership transfer**: the leader is asked to hand over to a random other voter
//!   (thesis §3.10), which may be down, paused, behind or cut off at the time;
//! - **membership change** (`membership.rs`): the leader is asked to add a learner,
//!   promote one, remove a follower or itself, or replace a voter in one change; or a
//!   removed node comes back with a fresh disk and is added again.

use super::clock::{MS, SEC};
use super::events::{Ev, FaultEv};
use super::world::World;

impl World {
    /// Starts the random faults (the safety phase).
    pub fn start_faults(&mut self) {
        self.faults_on = true;
        let at = self.now + self.rng.exp(self.p.fault_gap_mean_us);
        self.queue.push(at, Ev::Fault(FaultEv::Next));
    }

    /// Ends the safety phase: no new faults, the network becomes reliable, every crashed
    /// node restarts and every paused one resumes.
    pub fn heal_all(&mut self) {
        self.faults_on = false;
        self.net.make_reliable();
        let now = self.now;
        self.trace.note(now, "heal: faults end");
        for i in 0..self.n() {
            self.machines[i].faults.clear();
            if self.machines[i].paused {
                self.resume_node(i);
            }
            // A spare no membership change added stays off.
            if !self.machines[i].is_up() && self.machines[i].started {
                self.start_node(i);
            }
        }
    }

    pub(super) fn fault_event(&mut self, f: FaultEv) {
        match f {
            FaultEv::Next => {
                if !self.faults_on {
                    return;
                }
                self.random_fault();
                let at = self.now + self.rng.exp(self.p.fault_gap_mean_us);
                self.queue.push(at, Ev::Fault(FaultEv::Next));
            }
            FaultEv::Heal(id) => {
                if self.net.partition_id == id {
                    self.log_fault("partition heals".to_string());
                    self.net.heal();
                }
            }
            FaultEv::Unclog { from, to, id } => self.net.unclog(from, to, id),
            FaultEv::Restart { node, incarnation } => {
                let m = &self.machines[node];
                if !m.is_up() && m.incarnation == incarnation {
                    self.start_node(node);
                }
            }
            FaultEv::Depose {
                node,
                incarnation,
                term,
            } => self.depose(node, incarnation, term),
            FaultEv::Resume { node, incarnation } => {
                let m = &self.machines[node];
                if m.paused && m.incarnation == incarnation {
                    self.resume_node(node);
                }
            }
        }
    }

    pub(super) fn log_fault(&mut self, what: String) {
        let now = self.now;
        self.trace.note(now, &what);
        if self.fault_log.len() < 10_000 {
            self.fault_log
                .push(format!("{:.3}s {what}", now as f64 / 1e6));
        }
    }

    fn random_fault(&mut self) {
        let m = self.p.mix;
        let weights = [
            m.partition,
            m.clog,
            m.crash,
            m.crash_in_sync,
            m.pause,
            m.churn,
            m.transfer,
            m.membership,
        ];
        let total: u32 = weights.iter().sum();
        if total == 0 {
            return;
        }
        let mut roll = self.rng.range(0, u64::from(total)) as u32;
        let mut kind = 0;
        for (k, &w) in weights.iter().enumerate() {
            if roll < w {
                kind = k;
                break;
            }
            roll -= w;
        }
        match kind {
            0 => self.random_partition(),
            1 => self.random_clog(),
            2 => self.random_crash(),
            3 => self.random_sync_crash(),
            4 => self.random_pause(),
            6 => self.random_transfer(),
            7 => self.random_membership_change(),
            _ => {
                let dur = self.rng.range(SEC, 6 * SEC);
                self.churn_until = self.now + dur;
                self.log_fault(format!("leader churn for {} ms", dur / MS));
            }
        }
    }

    /// Called when node `i` is seen leading `term`: under churn, schedule its fall.
    pub(super) fn maybe_churn(&mut self, i: usize, term: u64) {
        if !self.faults_on || self.now >= self.churn_until || term <= self.churn_term {
            return;
        }
        self.churn_term = term;
        let incarnation = self.machines[i].incarnation;
        // Half the time at once (its first appends, in flight, are lost with it), else
        // within 300 ms (some of its entries reach a few followers).
        let delay = if self.rng.chance(0.5) {
            self.rng.range(0, 3 * MS)
        } else {
            self.rng.range(0, 300 * MS)
        };
        let at = self.now + delay;
        self.queue.push(
            at,
            Ev::Fault(FaultEv::Depose {
                node: i,
                incarnation,
                term,
            }),
        );
    }

    fn depose(&mut self, i: usize, incarnation: u32, term: u64) {
        let m = &self.machines[i];
        let leads = m.incarnation == incarnation
            && m.raft()
                .is_some_and(|r| r.role() == raft::Role::Leader && r.term() == term);
        if !leads || !self.faults_on {
            return;
        }
        if self.rng.chance(0.5) {
            let delay = self.rng.range(0, SEC);
            self.log_fault(format!("churn: crash leader {i} of term {term}"));
            self.crash_node(i, 0, "leader churn");
            self.schedule_restart(i, delay);
        } else {
            let n = self.n();
            let mut cut = Vec::new();
            for j in (0..n).filter(|&j| j != i) {
                cut.push((i, j));
                cut.push((j, i));
            }
            let dur = self.rng.range(300 * MS, 3 * SEC);
            let id = self.net.partition(&cut, format!("churn: isolate {i}"));
            self.log_fault(format!("churn: isolate leader {i} of term {term}"));
            self.queue
                .push(self.now + dur, Ev::Fault(FaultEv::Heal(id)));
        }
    }

    fn random_partition(&mut self) {
        let n = self.n();
        let mut order: Vec<usize> = (0..n).collect();
        self.rng.shuffle(&mut order);
        let mut cut = Vec::new();
        let both = |cut: &mut Vec<(usize, usize)>, a: &[usize], b: &[usize]| {
            for &x in a {
                for &y in b {
                    cut.push((x, y));
                    cut.push((y, x));
                }
            }
        };
        let desc = match self.rng.below(5) {
            0 => {
                let k = self.rng.range(1, n as u64) as usize;
                let (a, b) = order.split_at(k);
                both(&mut cut, a, b);
                format!("split {a:?} | {b:?}")
            }
            1 => {
                let x = self.leader().unwrap_or(order[0]);
                let rest: Vec<usize> = (0..n).filter(|&y| y != x).collect();
                both(&mut cut, &[x], &rest);
                format!("isolate {x} (leader: {:?})", self.leader())
            }
            2 => {
                let k = self.rng.range(1, n as u64) as usize;
                let (a, b) = order.split_at(k);
                for &x in a {
                    for &y in b {
                        cut.push((x, y));
                    }
                }
                format!("one-way {a:?} -/-> {b:?}")
            }
            3 => {
                let bridge = order[0];
                let rest = &order[1..];
                let k = rest.len() / 2;
                let (a, b) = rest.split_at(k.max(1).min(rest.len()));
                both(&mut cut, a, b);
                format!("bridge {a:?} <-{bridge}-> {b:?}")
            }
            _ => {
                for x in 0..n {
                    for y in 0..n {
                        if x != y && self.rng.chance(0.3) {
                            cut.push((x, y));
                        }
                    }
                }
                format!("random links cut {cut:?}")
            }
        };
        let dur = self.rng.exp(3 * SEC).clamp(100 * MS, 15 * SEC);
        let id = self.net.partition(&cut, desc.clone());
        self.log_fault(format!("partition {desc} for {} ms", dur / MS));
        self.queue
            .push(self.now + dur, Ev::Fault(FaultEv::Heal(id)));
    }

    fn random_clog(&mut self) {
        let n = self.n();
        let from = self.rng.below(n);
        let to = (from + 1 + self.rng.below(n - 1)) % n;
        let dur = self.rng.range(100 * MS, 3 * SEC);
        let until = self.now + dur;
        let mut links = vec![(from, to)];
        if self.rng.chance(0.5) {
            links.push((to, from));
        }
        for (a, b) in links {
            let id = self.net.clog(a, b, until);
            self.queue
                .push(until, Ev::Fault(FaultEv::Unclog { from: a, to: b, id }));
        }
        self.log_fault(format!("clog {from}->{to} for {} ms", dur / MS));
    }

    fn pick_up_node(&mut self, prefer_leader: bool) -> Option<usize> {
        if prefer_leader && self.rng.chance(0.33) {
            if let Some(l) = self.leader() {
                return Some(l);
            }
        }
        let up: Vec<usize> = (0..self.n())
            .filter(|&i| self.machines[i].is_up())
            .collect();
        (!up.is_empty()).then(|| *self.rng.pick(&up))
    }

    pub fn schedule_restart(&mut self, i: usize, delay: u64) {
        let incarnation = self.machines[i].incarnation;
        self.queue.push(
            self.now + delay,
            Ev::Fault(FaultEv::Restart {
                node: i,
                incarnation,
            }),
        );
    }

    fn random_crash(&mut self) {
        let Some(i) = self.pick_up_node(true) else {
            return;
        };
        let delay = if self.rng.chance(0.2) {
            self.rng.range(0, 50 * MS)
        } else {
            self.rng.range(0, 5 * SEC)
        };
        self.log_fault(format!("crash {i}, restart in {} ms", delay / MS));
        self.crash_node(i, 0, "crash");
        self.schedule_restart(i, delay);
    }

    fn random_sync_crash(&mut self) {
        let Some(i) = self.pick_up_node(true) else {
            return;
        };
        self.log_fault(format!("arm a failing fsync on {i}"));
        self.machines[i].faults.fail_next_syncs(1);
    }

    /// Asks the leader (if one is up) to hand leadership to a random other voter.
    fn random_transfer(&mut self) {
        let Some(i) = self.leader() else {
            return;
        };
        if !self.machines[i].is_up() || self.machines[i].paused {
            return;
        }
        let others: Vec<usize> = (0..self.n()).filter(|&j| j != i).collect();
        let j = *self.rng.pick(&others);
        let t = self.local_now(i);
        let Some(node) = self.machines[i].node.as_mut() else {
            return;
        };
        let outcome = node.transfer_leader(t, j as raft::NodeId + 1);
        self.log_fault(format!("transfer leadership {i} -> {j}: {outcome:?}"));
        self.after_node(i);
    }

    fn random_pause(&mut self) {
        let Some(i) = self.pick_up_node(true) else {
            return;
        };
        if self.machines[i].paused {
            return;
        }
        let dur = self.rng.range(50 * MS, 4 * SEC);
        self.log_fault(format!("pause {i} for {} ms", dur / MS));
        self.pause_node(i);
        let incarnation = self.machines[i].incarnation;
        self.queue.push(
            self.now + dur,
            Ev::Fault(FaultEv::Resume {
                node: i,
                incarnation,
            }),
        );
    }
}
