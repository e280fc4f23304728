//! Virtual time. The simulator keeps one global clock in microseconds; every node reads
//! its own local clock in ticks of 1 ms, which runs at the node's own rate (skew, in parts
//! per million) from its own offset. A paused node's clock keeps running: when it resumes
//! it sees the time it lost, as a process that was stopped would.

/// Simulated microseconds per node tick.
pub const TICK_US: u64 = 1_000;
/// Simulated microseconds per second.
pub const SEC: u64 = 1_000_000;
/// Simulated microseconds per millisecond.
pub const MS: u64 = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// Local microseconds at global time zero.
    pub offset_us: u64,
    /// Rate error in parts per million: +20 000 runs 2 % fast.
    pub skew_ppm: i64,
}

impl Clock {
    pub fn exact() -> Clock {
        Clock {
            offset_us: 0,
            skew_ppm: 0,
        }
    }

    pub fn local_us(&self, global_us: u64) -> u64 {
        let g = i128::from(global_us);
        let drift = g * i128::from(self.skew_ppm) / 1_000_000;
        (i128::from(self.offset_us) + g + drift).max(0) as u64
    }

    /// The node's clock reading, in ticks, at global time `global_us`.
    pub fn ticks(&self, global_us: u64) -> u64 {
        self.local_us(global_us) / TICK_US
    }

    /// The earliest global time at which the node's clock reads at least `tick`.
    pub fn global_for_tick(&self, tick: u64) -> u64 {
        if tick == u64::MAX {
            return u64::MAX;
        }
        let want = i128::from(tick) * i128::from(TICK_US) - i128::from(self.offset_us);
        if want <= 0 {
            return 0;
        }
        let rate = 1_000_000 + i128::from(self.skew_ppm);
        let mut g = ((want * 1_000_000 + rate - 1) / rate).max(0) as u64;
        // Integer rounding may leave us a microsecond off either way.
        while g > 0 && self.ticks(g - 1) >= tick {
            g -= 1;
        }
        while self.ticks(g) < tick {
            g += 1;
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_is_exact_for_skewed_clocks() {
        for skew in [-20_000, -7, 0, 13, 20_000] {
            let c = Clock {
                offset_us: 123_456,
                skew_ppm: skew,
            };
            for tick in [0, 1, 124, 125, 999, 60_000, 1_000_003] {
                let g = c.global_for_tick(tick);
                assert!(c.ticks(g) >= tick);
                assert!(g == 0 || c.ticks(g - 1) < tick, "skew {skew} tick {tick}");
            }
        }
    }

    #[test]
    fn fast_clock_gains_time() {
        let fast = Clock {
            offset_us: 0,
            skew_ppm: 20_000,
        };
        assert_eq!(fast.ticks(SEC), 1_020);
        assert_eq!(Clock::exact().ticks(SEC), 1_000);
    }
}
