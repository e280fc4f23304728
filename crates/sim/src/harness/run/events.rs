//! Firing what is due: client requests, held-back datagrams and the
//! scripted events (kills, partitions, pauses).

use super::queue::Due;
use super::Sim;
use crate::harness::client::ClientCtx;
use crate::harness::config::{EventKind, PauseTarget, ResumeTarget};
use crate::harness::network::{choose_majority, BROADCAST};
use rand::seq::IteratorRandom;
use rand::Rng;

impl Sim<'_> {
    pub(super) fn fire(&mut self, what: Due) {
        match what {
            Due::Request { get } => {
                let c = self.rng.gen_range(0..self.clients.len());
                let mut ctx = ClientCtx {
                    rng: &mut self.rng,
                    living: &self.living,
                    now_s: self.start.elapsed().as_secs_f64(),
                    stats: &mut self.stats.client,
                    history: &mut self.history,
                    errors: &mut self.errors,
                };
                let out = self.clients[c].create_request(get, &mut ctx);
                let from = self.clients[c].id.clone();
                self.send_request(&from, out);
            }
            Due::Delayed { to, raw } => {
                let from = self.rids[to].clone();
                self.deliver(&from, to, &raw);
            }
            Due::Event(ev) => self.event(ev),
        }
    }

    pub(super) fn forget_leader(&mut self) {
        self.leader = BROADCAST.to_string();
        for c in &mut self.clients {
            c.forget();
        }
    }

    pub(super) fn known_leader(&self) -> Option<String> {
        (self.leader != BROADCAST && self.rid_index.contains_key(&self.leader))
            .then(|| self.leader.clone())
    }

    pub(super) fn kill(&mut self, id: &str) {
        if self.living.remove(id) {
            self.stats.killed += 1;
            self.paused.remove(id);
            if let Some(&j) = self.rid_index.get(id) {
                self.cluster.procs[j].kill();
            }
        }
    }

    pub(super) fn event(&mut self, ev: EventKind) {
        match ev {
            EventKind::KillLeader => {
                if self.leader != BROADCAST {
                    if let Some(l) = self.known_leader() {
                        self.kill(&l);
                    }
                    self.forget_leader();
                }
            }
            EventKind::KillNonLeader => {
                if self.living.len() > 1 {
                    let leader = self.leader.clone();
                    let victim = self
                        .living
                        .iter()
                        .filter(|r| **r != leader)
                        .choose(&mut self.rng)
                        .cloned();
                    if let Some(v) = victim {
                        self.kill(&v);
                    }
                } else {
                    self.error(format!(
                        "*** Simulator Error - too few living replicas to kill another ({})",
                        self.living.len()
                    ));
                }
            }
            EventKind::PartEasy => {
                let leader = self.known_leader();
                if leader.is_none() {
                    self.forget_leader();
                }
                let p = choose_majority(&self.rids, leader.as_deref(), &mut self.rng);
                self.partition = Some(p);
            }
            EventKind::PartHard => {
                self.forget_leader();
                let p = choose_majority(&self.rids, None, &mut self.rng);
                self.partition = Some(p);
            }
            EventKind::PartEnd => self.partition = None,
            EventKind::Pause(target) => {
                let candidates = |s: &Self| -> Vec<String> {
                    s.living
                        .iter()
                        .filter(|r| !s.paused.contains(*r))
                        .cloned()
                        .collect()
                };
                let victim = match target {
                    PauseTarget::Leader => {
                        self.known_leader().filter(|l| candidates(self).contains(l))
                    }
                    PauseTarget::NonLeader => {
                        let leader = self.leader.clone();
                        candidates(self)
                            .into_iter()
                            .filter(|r| *r != leader)
                            .choose(&mut self.rng)
                    }
                    PauseTarget::Replica(id) => Some(id).filter(|r| candidates(self).contains(r)),
                };
                if let Some(v) = victim {
                    if let Some(&j) = self.rid_index.get(&v) {
                        self.cluster.procs[j].pause();
                        self.paused.insert(v);
                        self.stats.paused += 1;
                    }
                }
            }
            EventKind::Resume(target) => {
                let which: Vec<String> = match target {
                    ResumeTarget::All => self.paused.iter().cloned().collect(),
                    ResumeTarget::Replica(id) => {
                        self.paused.iter().filter(|r| **r == id).cloned().collect()
                    }
                };
                for id in which {
                    if let Some(&j) = self.rid_index.get(&id) {
                        self.cluster.procs[j].resume();
                    }
                    self.paused.remove(&id);
                }
            }
        }
    }
}
