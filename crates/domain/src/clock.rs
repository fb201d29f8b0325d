//! Time as a value. Rules never read the system clock: the caller passes `now`, which lets
//! the router run on wall time and the simulator on a virtual clock with the same code.

use serde::{Deserialize, Serialize};
use std::ops::{Add, Sub};
use std::time::Duration;

/// Milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const EPOCH: Timestamp = Timestamp(0);

    pub fn from_millis(ms: i64) -> Self {
        Self(ms)
    }
    pub fn from_secs(s: i64) -> Self {
        Self(s.saturating_mul(1000))
    }
    pub fn as_millis(self) -> i64 {
        self.0
    }
    /// Time elapsed since `earlier`, zero if `earlier` is in the future.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0).max(0) as u64)
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(d.as_millis() as i64))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(d.as_millis() as i64))
    }
}

/// A source of `now` for the IO layer; rules take a `Timestamp`, never a `Clock`.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// Wall-clock time.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_millis() as i64)
    }
}

/// Another clock moved forward on demand: time keeps flowing, and a test jumps ahead by an
/// offer timeout instead of waiting for it.
#[derive(Debug, Default)]
pub struct ShiftedClock<C: Clock = SystemClock> {
    base: C,
    ahead_ms: std::sync::atomic::AtomicI64,
}

impl<C: Clock> ShiftedClock<C> {
    pub fn new(base: C) -> Self {
        Self {
            base,
            ahead_ms: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// From now on, `now()` is `by` later than the base clock says (cumulative).
    pub fn advance(&self, by: Duration) {
        self.ahead_ms
            .fetch_add(by.as_millis() as i64, std::sync::atomic::Ordering::SeqCst);
    }
}

impl<C: Clock> Clock for ShiftedClock<C> {
    fn now(&self) -> Timestamp {
        self.base.now() + Duration::from_millis(self.ahead_ms.load(std::sync::atomic::Ordering::SeqCst).max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(i64);
    impl Clock for Fixed {
        fn now(&self) -> Timestamp {
            Timestamp(self.0)
        }
    }

    #[test]
    fn a_shifted_clock_runs_ahead_of_its_base_by_what_was_advanced() {
        let c = ShiftedClock::new(Fixed(1_000));
        assert_eq!(c.now(), Timestamp(1_000));
        c.advance(Duration::from_secs(61));
        c.advance(Duration::from_millis(5));
        assert_eq!(c.now(), Timestamp(1_000 + 61_005));
    }
}
