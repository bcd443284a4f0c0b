//! Capped exponential backoff with "equal jitter": the one retry delay of
//! the worker (failed fetches, the outbox), the bus (reconnects) and the
//! bridge (sources, OSC over TCP).
//!
//! The n-th delay is drawn uniformly from the upper half of
//! `min(cap, base · 2^(n−1))`: spread like full jitter, so many clients that
//! failed together do not retry together, but never 0, so a failure is never
//! retried at once. No dependency: the jitter comes from a xorshift seeded
//! from the clock and the counter of backoffs made.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Distinguishes backoffs made in the same clock tick.
static MADE: AtomicU64 = AtomicU64::new(0);

/// A retry delay that grows with each failure until [`Backoff::reset`].
#[derive(Debug, Clone)]
pub struct Backoff {
    /// The first step (the bridge's SSE source takes the server's `retry:`).
    pub base: Duration,
    /// The cap on a step.
    pub max: Duration,
    /// Failures since the last reset.
    attempt: u32,
    /// xorshift state.
    rng: u64,
}

impl Backoff {
    /// Starting at `base`, capped at `max` (at least `base`).
    pub fn new(base: Duration, max: Duration) -> Backoff {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| u64::from(since.subsec_nanos()) ^ since.as_secs());
        let seed = now ^ MADE.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Backoff { base, max: max.max(base), attempt: 0, rng: seed | 1 }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        let ceiling = ceiling(self.attempt, self.base, self.max);
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        upper_half(ceiling, self.rng)
    }

    /// After a success: the next delay is the first step again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// The delay after `failures` failures in a row (at least 1), for callers
/// that keep the count themselves (the worker keeps it in the store).
pub fn delay(failures: u32, base: Duration, cap: Duration) -> Duration {
    let mut backoff = Backoff::new(base, cap);
    backoff.attempt = failures.max(1) - 1;
    backoff.next_delay()
}

/// `min(cap, base · 2^(attempt−1))`.
fn ceiling(attempt: u32, base: Duration, cap: Duration) -> Duration {
    base.saturating_mul(1u32 << attempt.saturating_sub(1).min(30)).min(cap)
}

/// A draw from `[ceiling / 2, ceiling]`.
fn upper_half(ceiling: Duration, random: u64) -> Duration {
    let half = ceiling / 2;
    let span_ns = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
    if span_ns == 0 {
        return ceiling;
    }
    half + Duration::from_nanos(random % (span_ns + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_is_capped_and_stays_in_the_upper_half() {
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(5));
        let mut backoff = Backoff::new(base, cap);
        for attempt in 1u32..40 {
            let ceiling = ceiling(attempt, base, cap);
            let delay = backoff.next_delay();
            assert!(delay >= ceiling / 2 && delay <= ceiling, "attempt {attempt}: {delay:?} of {ceiling:?}");
        }
        backoff.reset();
        assert!(backoff.next_delay() <= base);
        for failures in 1u32..40 {
            let ceiling = ceiling(failures, Duration::from_secs(1), Duration::from_secs(60));
            let delay = delay(failures, Duration::from_secs(1), Duration::from_secs(60));
            assert!(delay >= ceiling / 2 && delay <= ceiling, "failures {failures}: {delay:?}");
        }
        assert_eq!(delay(3, Duration::ZERO, cap), Duration::ZERO);
    }

    #[test]
    fn draws_spread_and_backoffs_made_together_differ() {
        let draws: std::collections::HashSet<Duration> =
            (0..50).map(|_| delay(10, Duration::from_secs(1), Duration::from_secs(60))).collect();
        assert!(draws.len() > 10, "{draws:?}");
        let mut a = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
        assert_ne!(a.next_delay(), b.next_delay());
    }
}
