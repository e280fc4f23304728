//! The node's clock: milliseconds on CLOCK_BOOTTIME.
//!
//! Leases (and every other timer of the core) are measured on this clock. `Instant` is
//! CLOCK_MONOTONIC, which stops while the host is suspended: a leader whose host slept
//! through its lease would wake up believing it still held it, while the others elected
//! a new leader — a stale read. CLOCK_BOOTTIME keeps counting through a suspend, so a
//! lease that expired during the sleep is seen as expired on wake-up.

/// Milliseconds since [`BootClock::start`], counting suspended time.
pub struct BootClock {
    origin_ms: u64,
}

impl BootClock {
    pub fn start() -> BootClock {
        BootClock {
            origin_ms: boottime_ms(),
        }
    }

    pub fn now_ms(&self) -> u64 {
        boottime_ms().saturating_sub(self.origin_ms)
    }
}

/// CLOCK_BOOTTIME in milliseconds (monotonic, includes suspend).
pub fn boottime_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_BOOTTIME exists on every Linux
    // since 2.6.39.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_BOOTTIME) failed");
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_forward_like_the_monotonic_clock() {
        let c = BootClock::start();
        let t0 = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let ms = c.now_ms();
        let mono = t0.elapsed().as_millis() as u64;
        assert!(
            ms >= 29 && ms <= mono + 2,
            "boottime {ms} ms vs monotonic {mono} ms"
        );
    }
}
