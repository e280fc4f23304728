//! One memory bound across every client connection (`limits.max_client_memory_bytes`).
//!
//! Each connection is already bounded on its own (its read buffer by `max_request_bytes`,
//! its commands read ahead by `max_pipeline` and `2 × max_request_bytes`), but ten
//! thousand connections each within their bounds could still hold far more than the
//! machine has. So the bytes a connection holds beyond a small free allowance — a read
//! buffer grown past [`FREE_BYTES`], every command parsed and not yet answered — are
//! also drawn from this one budget.
//!
//! A connection that cannot get its bytes within [`WAIT`] is closed with an error rather
//! than left waiting: connections that each hold half a command and wait for more could
//! otherwise wait on each other forever. Its bytes return to the budget, the others go
//! on. (Redis's `maxmemory-clients` evicts the biggest clients; closing whoever cannot
//! get memory in time is the simpler rule with the same guarantee: the total stays
//! bounded and the node keeps serving.)

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A read buffer this large costs nothing from the shared budget: an idle or ordinary
/// connection never touches it.
pub const FREE_BYTES: usize = 16 << 10;
/// How long a connection waits for bytes before it is closed.
pub const WAIT: Duration = Duration::from_secs(1);

/// The shared budget, in bytes.
pub struct ClientMemory {
    budget: Arc<Semaphore>,
    limit: usize,
}

impl ClientMemory {
    pub fn new(limit: usize) -> ClientMemory {
        let limit = limit.min(Semaphore::MAX_PERMITS);
        ClientMemory {
            budget: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held by connections now.
    pub fn used(&self) -> usize {
        self.limit - self.budget.available_permits()
    }

    /// `n` bytes from the budget, waiting at most [`WAIT`]; `None` if they did not come,
    /// and the caller closes its connection.
    pub async fn reserve(&self, n: usize) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(n.min(self.limit)).unwrap_or(u32::MAX);
        let acquire = self.budget.clone().acquire_many_owned(n);
        match tokio::time::timeout(WAIT, acquire).await {
            Ok(Ok(permit)) => Some(permit),
            _ => None,
        }
    }

    /// An empty holding to grow with [`ClientMemory::reserve`] and `merge`.
    pub fn none(&self) -> OwnedSemaphorePermit {
        self.budget
            .clone()
            .try_acquire_many_owned(0)
            .expect("zero permits are always available")
    }
}

/// What a connection's read buffer holds from the budget, kept equal to its capacity
/// beyond [`FREE_BYTES`].
pub struct BufferHolding {
    held: OwnedSemaphorePermit,
}

impl BufferHolding {
    pub fn new(memory: &ClientMemory) -> BufferHolding {
        BufferHolding {
            held: memory.none(),
        }
    }

    /// Matches the holding to a buffer of `capacity` bytes: gives back what it no longer
    /// needs, or waits for the growth. `false`: the budget stayed exhausted, close.
    pub async fn fit(&mut self, memory: &ClientMemory, capacity: usize) -> bool {
        let need = capacity.saturating_sub(FREE_BYTES);
        let held = self.held.num_permits();
        if need < held {
            drop(self.held.split(held - need));
        } else if need > held {
            match memory.reserve(need - held).await {
                Some(more) => self.held.merge(more),
                None => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_buffer_holding_follows_its_capacity_and_gives_back() {
        let m = ClientMemory::new(100 << 10);
        let mut h = BufferHolding::new(&m);
        assert!(h.fit(&m, FREE_BYTES).await);
        assert_eq!(m.used(), 0, "the free allowance costs nothing");
        assert!(h.fit(&m, FREE_BYTES + 50_000).await);
        assert_eq!(m.used(), 50_000);
        assert!(h.fit(&m, FREE_BYTES + 10_000).await);
        assert_eq!(m.used(), 10_000);
        drop(h);
        assert_eq!(m.used(), 0);
    }

    #[tokio::test]
    async fn an_exhausted_budget_refuses_after_the_wait() {
        let m = ClientMemory::new(1000);
        let hog = m.reserve(1000).await.expect("all of it");
        assert!(m.reserve(1).await.is_none());
        drop(hog);
        assert!(m.reserve(1000).await.is_some());
    }
}
