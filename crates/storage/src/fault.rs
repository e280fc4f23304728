//! Fault injection: a test hook that makes writes and syncs fail like a full or broken
//! disk would, without needing a small filesystem.
//!
//! A store holds an optional `Arc<FaultInjector>`; with none installed the hooks cost one
//! branch. The same injector can be shared by several stores (a simulated machine).

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug)]
pub struct FaultInjector {
    /// Bytes writes may still put down before failing with `ENOSPC`; `u64::MAX` = no limit.
    write_budget: AtomicU64,
    /// Number of upcoming syncs that fail with `EIO`.
    failing_syncs: AtomicU32,
}

impl Default for FaultInjector {
    fn default() -> Self {
        FaultInjector {
            write_budget: AtomicU64::new(u64::MAX),
            failing_syncs: AtomicU32::new(0),
        }
    }
}

impl FaultInjector {
    pub fn new() -> Arc<FaultInjector> {
        Arc::new(FaultInjector::default())
    }

    /// Lets writes put down `bytes` more bytes, then fail with `ENOSPC` (disk full). The
    /// write that crosses the limit is *partial*: it writes what fits, as a real short
    /// write followed by an error would.
    pub fn fail_writes_after(&self, bytes: u64) {
        self.write_budget.store(bytes, Ordering::SeqCst);
    }

    /// Makes the next `n` syncs (`fdatasync`/`fsync`) fail with `EIO`.
    pub fn fail_next_syncs(&self, n: u32) {
        self.failing_syncs.store(n, Ordering::SeqCst);
    }

    /// Removes every injected fault ("the operator freed some space").
    pub fn clear(&self) {
        self.write_budget.store(u64::MAX, Ordering::SeqCst);
        self.failing_syncs.store(0, Ordering::SeqCst);
    }

    /// Claims `len` bytes of the budget. Returns how many may be written; fewer than `len`
    /// means the write must stop there and fail with [`FaultInjector::disk_full`].
    pub(crate) fn claim_write(&self, len: usize) -> usize {
        let len = len as u64;
        let mut budget = self.write_budget.load(Ordering::SeqCst);
        loop {
            if budget == u64::MAX {
                return len as usize;
            }
            let granted = budget.min(len);
            match self.write_budget.compare_exchange(
                budget,
                budget - granted,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return granted as usize,
                Err(now) => budget = now,
            }
        }
    }

    /// True if this sync must fail (and consumes one failure).
    pub(crate) fn claim_sync_failure(&self) -> bool {
        self.failing_syncs
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    pub(crate) fn disk_full() -> io::Error {
        io::Error::from_raw_os_error(libc::ENOSPC)
    }

    pub(crate) fn sync_failed() -> io::Error {
        io::Error::from_raw_os_error(libc::EIO)
    }
}
