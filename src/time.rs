//! Injected time (`protocol-spec/README.md#determinism`).
//!
//! [`Time`] is a monotonic instant in microseconds since an arbitrary epoch chosen by the
//! driver (the runtime's start, or zero in the simulator). [`WallTime`] is seconds since the
//! Unix epoch, used only for validity windows of signed objects. Nothing in this module reads
//! a clock: `runtime/` and `sim/` are the only producers of these values.

use core::fmt;
use core::ops::{Add, Sub};
use core::time::Duration;

/// A monotonic instant, in microseconds since the driver's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(u64);

impl Time {
    /// The driver's epoch.
    pub const ZERO: Time = Time(0);
    /// An instant later than any real one (a timer that never fires).
    pub const NEVER: Time = Time(u64::MAX);

    /// An instant `micros` microseconds after the epoch.
    pub const fn from_micros(micros: u64) -> Time {
        Time(micros)
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at [`Time::NEVER`].
    pub fn saturating_add(self, d: Duration) -> Time {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Time(self.0.saturating_add(micros))
    }

    /// Time elapsed from `earlier` to `self` (zero if `earlier` is later).
    pub fn saturating_since(self, earlier: Time) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        self.saturating_add(d)
    }
}

impl Sub<Time> for Time {
    type Output = Duration;
    fn sub(self, earlier: Time) -> Duration {
        self.saturating_since(earlier)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// Wall-clock time in whole seconds since the Unix epoch, for validity windows only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WallTime(pub u64);

impl WallTime {
    /// Seconds since the Unix epoch.
    pub const fn as_secs(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::{Duration, Time};

    #[test]
    fn arithmetic_saturates() {
        let t = Time::from_micros(10);
        assert_eq!(t + Duration::from_micros(5), Time::from_micros(15));
        assert_eq!(Time::NEVER + Duration::from_secs(1), Time::NEVER);
        assert_eq!(t - Time::from_micros(20), Duration::ZERO);
        assert_eq!(Time::from_micros(1_500_000).to_string(), "1.500000s");
    }
}
