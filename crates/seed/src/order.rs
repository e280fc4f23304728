//! Replies to one client about one key leave a replica in request order, where the
//! order is visible to the harness's per-client check.
//!
//! The harness's client remembers, per key, the last value it saw acknowledged, and a
//! get that returns anything else fails the run (SIMULATOR.md, "Clients"). A client may
//! have several requests on one key outstanding, and an answer from one replica can
//! overtake an answer from another. Found in `harder-3` (40 % drops): a client's put
//! went to leader A; its get went to A too, which had just been deposed and redirected it
//! at once; the new leader B served the get with the put's value (the put had committed);
//! only then did A, on applying the entry, send the put's `ok`. The history is
//! linearizable, but the client expected the old value.
//!
//! The rule: a reply that carries no content — a `redirect` or a `fail`, which only says
//! "try again" — waits while an earlier write of the same client to the same key is still
//! outstanding here, and leaves right after that write's answer. So the client retries
//! only once it has recorded the write, and whatever the retry reads is what it expects.
//! Replies with content (a get's value, a write's `ok`) are never held: holding a value
//! behind a write would deliver it after the write's `ok`, when the client already
//! expects the new value. A reply is held at most [`HOLD_TICKS`] (an answer that never
//! comes must not strand the retry), and at most [`MAX_HELD`] are held at once.

use std::collections::{BTreeSet, HashMap};

use driver::{ReqId, Response};

/// The longest a content-free reply waits for an earlier write's answer (ticks of
/// 100 µs): about two election timeouts, time for a deposed leader to learn the fate of
/// its entries.
pub const HOLD_TICKS: u64 = 10_000;
/// Beyond this many held replies, a new one leaves at once.
pub const MAX_HELD: usize = 4_096;
/// Requests tracked at once; beyond it requests are not ordered (only more retries).
const MAX_TRACKED: usize = 100_000;

/// A request's client and key.
type Stream = (String, String);

struct Held {
    id: ReqId,
    resp: Response,
    since: u64,
}

#[derive(Default)]
pub struct ReplyOrder {
    /// Every tracked request: its stream, and whether it is a write.
    requests: HashMap<ReqId, (Stream, bool)>,
    /// The writes of each stream with no reply sent yet.
    writes: HashMap<Stream, BTreeSet<ReqId>>,
    held: Vec<Held>,
}

impl ReplyOrder {
    /// A request arrived.
    pub fn request(&mut self, id: ReqId, client: &str, key: &str, write: bool) {
        if self.requests.len() >= MAX_TRACKED {
            return;
        }
        let stream = (client.to_string(), key.to_string());
        if write {
            self.writes.entry(stream.clone()).or_default().insert(id);
        }
        self.requests.insert(id, (stream, write));
    }

    /// A reply for `id` is ready at tick `now`: returns the replies to send now, in
    /// order (`id`'s unless it is held, then any it released).
    pub fn reply(&mut self, id: ReqId, resp: Response, now: u64) -> Vec<(ReqId, Response)> {
        let content_free = matches!(resp, Response::Redirect(_) | Response::Fail(_));
        if content_free && self.held.len() < MAX_HELD && self.behind_a_write(id) {
            self.held.push(Held {
                id,
                resp,
                since: now,
            });
            return Vec::new();
        }
        let mut out = vec![(id, resp)];
        self.forget(id);
        self.release(|_| false, &mut out);
        out
    }

    /// Held replies whose wait ran out at `now`, and any they release.
    pub fn poll(&mut self, now: u64) -> Vec<(ReqId, Response)> {
        let mut out = Vec::new();
        self.release(|h| now.saturating_sub(h.since) >= HOLD_TICKS, &mut out);
        out
    }

    /// The tick at which a held reply is due regardless (`u64::MAX`: none).
    pub fn next_deadline(&self) -> u64 {
        self.held
            .iter()
            .map(|h| h.since.saturating_add(HOLD_TICKS))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Whether an earlier write of `id`'s stream is outstanding.
    fn behind_a_write(&self, id: ReqId) -> bool {
        let Some((stream, _)) = self.requests.get(&id) else {
            return false;
        };
        self.writes
            .get(stream)
            .and_then(|w| w.first())
            .is_some_and(|&first| first < id)
    }

    fn forget(&mut self, id: ReqId) {
        if let Some((stream, true)) = self.requests.remove(&id) {
            if let Some(w) = self.writes.get_mut(&stream) {
                w.remove(&id);
                if w.is_empty() {
                    self.writes.remove(&stream);
                }
            }
        }
    }

    /// Sends (into `out`) every held reply no longer behind a write, or that `expired`
    /// says must go; a released write's reply may release others, so this repeats.
    fn release(&mut self, expired: impl Fn(&Held) -> bool, out: &mut Vec<(ReqId, Response)>) {
        loop {
            let Some(pos) = self
                .held
                .iter()
                .position(|h| expired(h) || !self.behind_a_write(h.id))
            else {
                return;
            };
            let h = self.held.remove(pos);
            self.forget(h.id);
            out.push((h.id, h.resp));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[(ReqId, Response)]) -> Vec<ReqId> {
        v.iter().map(|(id, _)| *id).collect()
    }

    /// The harder-3 case: put (1) outstanding, get (2) redirected; the redirect leaves
    /// right after the put's `ok`, not before.
    #[test]
    fn a_redirect_waits_for_an_earlier_write_of_the_same_client_and_key() {
        let mut o = ReplyOrder::default();
        o.request(1, "c", "k", true);
        o.request(2, "c", "k", false);
        assert!(o.reply(2, Response::Redirect(Some(3)), 0).is_empty());
        assert_eq!(ids(&o.reply(1, Response::Done, 5)), vec![1, 2]);
        assert!(o.poll(u64::MAX).is_empty());
    }

    #[test]
    fn values_other_clients_and_other_keys_are_never_held() {
        let mut o = ReplyOrder::default();
        o.request(1, "c", "k", true);
        o.request(2, "c", "k", false);
        o.request(3, "d", "k", false);
        o.request(4, "c", "j", false);
        assert_eq!(ids(&o.reply(2, Response::Value(None), 0)), vec![2]);
        assert_eq!(ids(&o.reply(3, Response::Redirect(None), 0)), vec![3]);
        assert_eq!(ids(&o.reply(4, Response::Fail("x"), 0)), vec![4]);
    }

    #[test]
    fn a_held_reply_leaves_when_its_wait_runs_out() {
        let mut o = ReplyOrder::default();
        o.request(1, "c", "k", true);
        o.request(2, "c", "k", true);
        assert!(o.reply(2, Response::Fail("x"), 100).is_empty());
        assert_eq!(o.next_deadline(), 100 + HOLD_TICKS);
        assert!(o.poll(100 + HOLD_TICKS - 1).is_empty());
        assert_eq!(ids(&o.poll(100 + HOLD_TICKS)), vec![2]);
        // The earlier write's own reply still goes.
        assert_eq!(ids(&o.reply(1, Response::Done, 0)), vec![1]);
    }

    #[test]
    fn a_later_write_does_not_hold_an_earlier_one() {
        let mut o = ReplyOrder::default();
        o.request(1, "c", "k", true);
        o.request(2, "c", "k", true);
        assert_eq!(ids(&o.reply(1, Response::Redirect(None), 0)), vec![1]);
        assert_eq!(ids(&o.reply(2, Response::Redirect(None), 0)), vec![2]);
    }
}
