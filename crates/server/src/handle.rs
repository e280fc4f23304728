//! The async side's way into the node loop: the [`Event`]s its channel carries and the
//! [`NodeHandle`] clients, peers and the admin endpoint send them with.
//!
//! A write sent through a handle carries an exactly-once session (client, seq), so the
//! loop may retry one whose outcome it does not know without applying it twice.

use std::sync::Arc;
use std::time::Duration;

use driver::Request;
use raft::{Message, NodeId};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::LoopMetrics;
use crate::reply::Reply;
use crate::status::Status;

/// Sequence numbers of one session: the next to hand out, and those still in flight.
#[derive(Debug)]
pub struct SessionSeqs {
    next: u64,
    in_flight: std::collections::BTreeSet<u64>,
}

impl Default for SessionSeqs {
    fn default() -> Self {
        SessionSeqs {
            next: 1,
            in_flight: Default::default(),
        }
    }
}

impl SessionSeqs {
    fn start(&mut self, client: u64) -> kv::SessionTag {
        let seq = self.next;
        self.next += 1;
        self.in_flight.insert(seq);
        let first_outstanding = *self.in_flight.first().expect("just inserted");
        kv::SessionTag {
            client,
            seq,
            first_outstanding,
        }
    }

    fn finish(&mut self, seq: u64) {
        self.in_flight.remove(&seq);
    }
}

/// A write's sequence number while its caller waits for the answer. Dropping it ends
/// the wait, whether the call returned or its future was dropped (a connection killed
/// with writes in flight: `ACL DELUSER`, `CLIENT KILL`). A number never ended would keep
/// the handle's lowest outstanding number, and with it the state machine's memory of
/// this session's outcomes, stuck for the life of the process: up to `SESSION_WINDOW`
/// outcomes (some carrying values) on every replica and in every snapshot.
struct InFlight<'a> {
    seqs: &'a std::sync::Mutex<SessionSeqs>,
    tag: kv::SessionTag,
}

impl<'a> InFlight<'a> {
    fn start(seqs: &'a std::sync::Mutex<SessionSeqs>, client: u64) -> Self {
        let tag = lock(seqs).start(client);
        InFlight { seqs, tag }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(self.seqs).finish(self.tag.seq);
    }
}

/// The sequence numbers' lock. Its holders only touch a `BTreeSet`, so a poisoned lock
/// (a panic elsewhere while holding it) leaves the set consistent: carry on with it.
fn lock(seqs: &std::sync::Mutex<SessionSeqs>) -> std::sync::MutexGuard<'_, SessionSeqs> {
    seqs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A session ID no other handle, on any node, in any run, will pick: hashed from the
/// process, the time and a per-process counter with the standard library's random keys.
fn fresh_session_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.finish()
}

pub enum Event {
    Peer(Message),
    Client {
        req: Request,
        reply: oneshot::Sender<Reply>,
        /// A write's exactly-once session (client, seq): retries reuse it.
        session: Option<kv::SessionTag>,
        /// A read to answer from this node's state machine as it is, without a leader
        /// round (a `READONLY` connection), whatever the node's read mode.
        local_read: bool,
    },
    /// A request a peer forwarded to us (we are, it thinks, the leader).
    Forwarded {
        from: NodeId,
        id: u64,
        req: Request,
        session: Option<kv::SessionTag>,
    },
    /// The answer to a request we forwarded, from the node that sent it.
    ForwardReply {
        from: NodeId,
        id: u64,
        reply: Reply,
    },
    Status(oneshot::Sender<Status>),
    /// Hand leadership to `to` (or, if `None`, to the most caught-up voter): answers the
    /// target once the transfer started, or why it could not.
    TransferLeader {
        to: Option<NodeId>,
        reply: oneshot::Sender<Result<NodeId, String>>,
    },
    /// A background snapshot save finished: process, so the node compacts its log.
    SnapshotSaved,
    Shutdown,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The loop had stopped before it took the request: not executed.
    #[error("node is shutting down")]
    Stopped,
    /// The loop stopped (shut down, or its storage failed) after it took the request
    /// and before answering it: a write may still commit (a follower had forwarded it,
    /// or the leader had proposed it), so the outcome is unknown.
    #[error("node stopped with the request in flight: the outcome is unknown")]
    StoppedInFlight,
    #[error("timed out: the outcome is unknown")]
    Timeout,
}

/// The async side's way into the loop. Cheap to clone.
#[derive(Clone)]
pub struct NodeHandle {
    tx: mpsc::Sender<Event>,
    /// This handle's exactly-once session: every write it sends gets the next sequence
    /// number; the set holds those still awaiting an answer (its minimum tells the state
    /// machine which outcomes it may forget).
    session_client: u64,
    session_seqs: Arc<std::sync::Mutex<SessionSeqs>>,
    /// A safety net above the loop's own timeouts: a reply always comes before this.
    timeout: Duration,
    pub metrics: Arc<LoopMetrics>,
}

impl NodeHandle {
    pub fn new(tx: mpsc::Sender<Event>, timeout: Duration, metrics: Arc<LoopMetrics>) -> Self {
        NodeHandle {
            tx,
            session_client: fresh_session_id(),
            session_seqs: Arc::default(),
            timeout,
            metrics,
        }
    }

    /// Runs one request; waits for room in the channel (back-pressure on clients).
    pub async fn call(&self, req: Request) -> Result<Reply, CallError> {
        let (reply, rx) = oneshot::channel();
        // Writes carry a session, so the loop may retry one whose outcome it does not know
        // without ever applying it twice.
        // A membership change has no session: the core refuses a repeat of one anyway
        // (already a member, not a learner...), which would turn a done change into a
        // refusal; so it is never resent with one.
        let in_flight = (!req.is_read() && !matches!(req, Request::ChangeMembership(_)))
            .then(|| InFlight::start(&self.session_seqs, self.session_client));
        let session = in_flight.as_ref().map(|f| f.tag);
        self.send_and_wait(req, reply, rx, session, false).await
        // `in_flight` is dropped here, or wherever this future is: see `InFlight`.
    }

    /// Runs a read (GET, SCAN) on this node's state machine as it is now: no leader
    /// round, so it may be stale, and it is served while there is no leader. A write is
    /// refused with `Fail`.
    pub async fn read_local(&self, req: Request) -> Result<Reply, CallError> {
        if !req.is_read() {
            return Ok(Reply::Fail("only reads can be served locally".into()));
        }
        let (reply, rx) = oneshot::channel();
        self.send_and_wait(req, reply, rx, None, true).await
    }

    async fn send_and_wait(
        &self,
        req: Request,
        reply: oneshot::Sender<Reply>,
        rx: oneshot::Receiver<Reply>,
        session: Option<kv::SessionTag>,
        local_read: bool,
    ) -> Result<Reply, CallError> {
        self.tx
            .send(Event::Client {
                req,
                reply,
                session,
                local_read,
            })
            .await
            .map_err(|_| CallError::Stopped)?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(CallError::StoppedInFlight),
            Err(_) => Err(CallError::Timeout),
        }
    }

    /// A membership change (driver's `Request::ChangeMembership`): answered
    /// `Reply::Membership` once complete, `Reply::MembershipRefused` with the reason.
    pub async fn change_membership(
        &self,
        changes: Vec<raft::ConfChange>,
    ) -> Result<Reply, CallError> {
        self.call(Request::ChangeMembership(changes)).await
    }

    pub async fn status(&self) -> Result<Status, CallError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Event::Status(tx))
            .await
            .map_err(|_| CallError::Stopped)?;
        match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(_)) => Err(CallError::Stopped),
            Err(_) => Err(CallError::Timeout),
        }
    }

    /// Starts a leadership transfer (raft's `transfer.rs`) and returns its target; the
    /// leader change itself follows within an election timeout, or the transfer is
    /// abandoned.
    pub async fn transfer_leader(&self, to: Option<NodeId>) -> Result<NodeId, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Event::TransferLeader { to, reply })
            .await
            .map_err(|_| CallError::Stopped.to_string())?;
        match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(CallError::Stopped.to_string()),
            Err(_) => Err(CallError::Timeout.to_string()),
        }
    }

    /// Hands leadership over (to `to`, or the most caught-up voter) and waits, at most
    /// `within`, until this node no longer leads and knows who does. Returns the node
    /// that leads then (`None` only if this node stepped down but heard from no new
    /// leader within `within`), or why it did not happen.
    ///
    /// This node steps down when the target's campaign (a higher term) reaches it, and
    /// learns the new leader only from its first append: returning at the step-down
    /// answered `{"leader": null}` under load (`transfer_leader_moves_leadership_...`
    /// in tests/cluster.rs failed so, once in six runs beside the flood test).
    pub async fn hand_over(
        &self,
        to: Option<NodeId>,
        within: Duration,
    ) -> Result<Option<NodeId>, String> {
        let deadline = tokio::time::Instant::now() + within;
        let target = self.transfer_leader(to).await?;
        let mut stepped_down = None;
        while tokio::time::Instant::now() < deadline {
            let s = self.status().await.map_err(|e| e.to_string())?;
            if s.role != "leader" {
                if s.leader.is_some() {
                    tracing::info!(target, leader = ?s.leader, "leadership handed over");
                    return Ok(s.leader);
                }
                stepped_down = Some(s.leader);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        match stepped_down {
            Some(leader) => {
                tracing::info!(
                    target,
                    "leadership handed over; no new leader heard from yet"
                );
                Ok(leader)
            }
            None => Err(format!(
                "leadership did not move to node {target} within {within:?}"
            )),
        }
    }

    pub fn sender(&self) -> mpsc::Sender<Event> {
        self.tx.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn put(key: &'static str) -> Request {
        Request::Put {
            key: Bytes::from_static(key.as_bytes()),
            value: Bytes::from_static(b"v"),
        }
    }

    /// The next write the loop receives, and its session tag. The event holds the reply's
    /// sender: the caller waits as long as the test keeps it.
    async fn next_write(rx: &mut mpsc::Receiver<Event>) -> (kv::SessionTag, Event) {
        match rx.recv().await {
            Some(
                e @ Event::Client {
                    session: Some(tag), ..
                },
            ) => (tag, e),
            _ => panic!("expected a client write with a session"),
        }
    }

    /// A write whose caller went away (its future dropped: the connection was killed)
    /// no longer counts as outstanding. Before, its number stayed the handle's lowest
    /// outstanding one for good: every later write carried it as `first_outstanding`,
    /// and the state machine kept every outcome of the session.
    #[tokio::test]
    async fn a_dropped_call_releases_its_sequence_number() {
        let (tx, mut rx) = mpsc::channel(8);
        let handle = NodeHandle::new(tx, Duration::from_secs(60), Arc::default());
        let abandoned = tokio::time::timeout(Duration::from_millis(10), handle.call(put("a")));
        let (gave_up, (first, _unanswered)) = tokio::join!(abandoned, next_write(&mut rx));
        assert!(gave_up.is_err(), "the caller gave up before any answer");
        let later = handle.clone();
        let waiting = tokio::spawn(async move { later.call(put("b")).await });
        let (second, _) = next_write(&mut rx).await;
        assert_eq!(second.seq, first.seq + 1);
        assert_eq!(
            second.first_outstanding, second.seq,
            "the abandoned write {} still counts as outstanding",
            first.seq
        );
        waiting.abort();
    }

    /// A loop that stops after taking a write (shut down, or its storage failed) cannot
    /// say whether it will commit: the caller must hear "unknown", not "shutting down",
    /// which reads as not executed. A loop already gone never took it: that one was not.
    #[tokio::test]
    async fn a_loop_stopping_with_a_write_in_flight_leaves_its_outcome_unknown() {
        let (tx, mut rx) = mpsc::channel(8);
        let handle = NodeHandle::new(tx, Duration::from_secs(60), Arc::default());
        let taken_then_dropped = async {
            let _ = next_write(&mut rx).await;
        };
        let (result, ()) = tokio::join!(handle.call(put("a")), taken_then_dropped);
        assert!(
            matches!(result, Err(CallError::StoppedInFlight)),
            "{result:?}"
        );
        drop(rx);
        let result = handle.call(put("b")).await;
        assert!(matches!(result, Err(CallError::Stopped)), "{result:?}");
    }

    /// A call that returns (here: its timeout) releases its number as before.
    #[tokio::test]
    async fn a_finished_call_releases_its_sequence_number() {
        let (tx, mut rx) = mpsc::channel(8);
        let handle = NodeHandle::new(tx, Duration::from_millis(10), Arc::default());
        let (result, (first, _unanswered)) =
            tokio::join!(handle.call(put("a")), next_write(&mut rx));
        assert!(matches!(result, Err(CallError::Timeout)));
        let later = handle.clone();
        let waiting = tokio::spawn(async move { later.call(put("b")).await });
        let (second, _) = next_write(&mut rx).await;
        assert_eq!(
            second.first_outstanding, second.seq,
            "{first:?} outstanding"
        );
        waiting.abort();
    }
}
