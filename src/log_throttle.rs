//! [`LogThrottle`]: at most one log line per period for a repeating
//! condition (an invalid bus message, an unreachable OSC host, a slow
//! broadcast), counting the lines it held back so the next one can say how
//! many there were. Shared by the gateway, the worker and the bridge.

use std::time::{Duration, Instant};

/// Lets one line through per `period`, counting what it held back.
#[derive(Debug)]
pub struct LogThrottle {
    /// Minimum time between two lines.
    period: Duration,
    /// When the last line was let through.
    last: Option<Instant>,
    /// Lines held back since.
    suppressed: u64,
}

impl LogThrottle {
    /// One line per `period`.
    pub fn new(period: Duration) -> LogThrottle {
        LogThrottle { period, last: None, suppressed: 0 }
    }

    /// `Some(n_suppressed)` when a line may be logged now (and the count
    /// starts over), `None` when this one is held back.
    pub fn check(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < self.period => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_with_the_count_held_back() {
        let mut throttle = LogThrottle::new(Duration::from_secs(3600));
        assert_eq!(throttle.check(), Some(0));
        assert_eq!(throttle.check(), None);
        assert_eq!(throttle.check(), None);
        throttle.last = Some(Instant::now() - Duration::from_secs(3601));
        assert_eq!(throttle.check(), Some(2));
    }
}
