//! The retransmission timeout, from measured round trips, as TCP computes it (RFC 6298).
//!
//! A leader samples one round trip per acknowledged append (the tick its stamp was issued
//! to the tick the answer came back) and retransmits after `SRTT + 4 · RTTVAR`, clamped to
//! the configured bounds. Values are kept in eighths of a tick so that the smoothing
//! (gains 1/8 and 1/4) loses little to integer division.

/// Smoothed round trip and its mean deviation. Invariant: both are `None` together
/// (no sample yet) — the timeout is then the configured maximum, as RFC 6298 §2.1 asks
/// for a conservative initial value.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RttEstimator {
    /// (SRTT, RTTVAR), both × 8.
    x8: Option<(u64, u64)>,
}

impl RttEstimator {
    /// The retransmission timeout in ticks, within `[min, max]` (`max` before any sample).
    pub(crate) fn rto(&self, min: u64, max: u64) -> u64 {
        match self.x8 {
            Some((srtt, rttvar)) => {
                (srtt.saturating_add(rttvar.saturating_mul(4)) / 8).clamp(min, max)
            }
            None => max,
        }
    }

    /// Folds in one measured round trip of `rtt_ticks` (RFC 6298 §2.2–2.3; RTTVAR is
    /// updated with the old SRTT, as the RFC orders).
    pub(crate) fn sample(&mut self, rtt_ticks: u64) {
        let rtt = rtt_ticks.saturating_mul(8);
        self.x8 = Some(match self.x8 {
            Some((srtt, rttvar)) => {
                let rttvar = rttvar - rttvar / 4 + srtt.abs_diff(rtt) / 4;
                (srtt - srtt / 8 + rtt / 8, rttvar)
            }
            None => (rtt, rtt / 2),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmeasured_timeout_is_the_maximum() {
        assert_eq!(RttEstimator::default().rto(2, 200), 200);
    }

    #[test]
    fn first_sample_gives_three_round_trips() {
        let mut r = RttEstimator::default();
        r.sample(10);
        // SRTT = 10, RTTVAR = 5: 10 + 4·5 = 30.
        assert_eq!(r.rto(1, 1000), 30);
    }

    #[test]
    fn steady_samples_converge_and_stay_in_bounds() {
        let mut r = RttEstimator::default();
        for _ in 0..200 {
            r.sample(4);
        }
        // The deviation decays towards zero, so the timeout approaches the round trip.
        assert!(r.rto(1, 1000) <= 5, "{}", r.rto(1, 1000));
        assert_eq!(r.rto(50, 1000), 50, "clamped to the minimum");
        r.sample(u64::MAX);
        assert_eq!(r.rto(1, 1000), 1000, "clamped to the maximum, no overflow");
    }
}
