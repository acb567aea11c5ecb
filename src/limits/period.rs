//! The accounting period: a monthly quota paced to last the whole period
//! (`protocol-spec/09-relay.md#accounting`).
//!
//! A period starts at 00:00 UTC on the operator's start day (1–28) of each month. Bytes are
//! counted in each direction; the quota applies to each direction separately, as Tor's
//! `AccountingMax` does. Instead of running at full speed and then hibernating (Tor's cliff:
//! a relay off half the month), the node's total rate is set, every minute, to what is left
//! of the quota divided by what is left of the period: a node with more demand than quota
//! runs all month at the rate that spends the quota exactly by its end. The state (period
//! start and bytes used) is encoded for the node's store so a restart does not forget it.
//! Not in this module: the buckets the rate is applied to (`limits::Shaper`) or the store.

use crate::time::WallTime;

/// How often the pacer sets the rate again.
pub const PACE_INTERVAL_SECS: u64 = 60;

/// The operator's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accounting {
    /// Bytes per period, in each direction.
    pub quota: u64,
    /// Day of the month the period starts (1–28).
    pub start_day: u8,
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

const DAY: i64 = 86_400;

/// The period holding `wall`: (start, end) in seconds since the Unix epoch.
pub fn period_of(wall: WallTime, start_day: u8) -> (u64, u64) {
    let start_day = u32::from(start_day.clamp(1, 28));
    let secs = i64::try_from(wall.as_secs()).unwrap_or(i64::MAX);
    let (y, m, d) = civil_from_days(secs.div_euclid(DAY));
    let (sy, sm) = if d >= start_day {
        (y, m)
    } else if m == 1 {
        (y - 1, 12)
    } else {
        (y, m - 1)
    };
    let (ey, em) = if sm == 12 { (sy + 1, 1) } else { (sy, sm + 1) };
    let start = days_from_civil(sy, sm, start_day) * DAY;
    let end = days_from_civil(ey, em, start_day) * DAY;
    (
        u64::try_from(start).unwrap_or(0),
        u64::try_from(end).unwrap_or(0),
    )
}

/// Why a stored accounting state was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Not 25 bytes of version 1.
    #[error("accounting state: {0} bytes, expected 25 of version 1")]
    Malformed(usize),
}

impl crate::error::HasKind for StateError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::MalformedInput
    }
}

/// Bytes used in the period that started at `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodState {
    /// The period's start, seconds since the Unix epoch.
    pub start: u64,
    /// Bytes received and sent.
    pub used: [u64; 2],
}

impl PeriodState {
    /// `1 || start u64 || in u64 || out u64`, big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(25);
        v.push(1);
        v.extend_from_slice(&self.start.to_be_bytes());
        v.extend_from_slice(&self.used[0].to_be_bytes());
        v.extend_from_slice(&self.used[1].to_be_bytes());
        v
    }

    /// The inverse of [`PeriodState::encode`].
    pub fn decode(b: &[u8]) -> Result<PeriodState, StateError> {
        if b.len() != 25 || b[0] != 1 {
            return Err(StateError::Malformed(b.len()));
        }
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[1 + 8 * i..9 + 8 * i]);
            u64::from_be_bytes(w)
        };
        Ok(PeriodState {
            start: word(0),
            used: [word(1), word(2)],
        })
    }
}

/// The pacer of one node.
#[derive(Debug, Clone)]
pub struct Pacer {
    acct: Accounting,
    state: PeriodState,
    end: u64,
}

impl Pacer {
    /// A pacer at `wall`, continuing `saved` if it is of the current period.
    pub fn new(acct: Accounting, saved: Option<PeriodState>, wall: WallTime) -> Pacer {
        let (start, end) = period_of(wall, acct.start_day);
        let state = match saved {
            Some(s) if s.start == start => s,
            _ => PeriodState {
                start,
                used: [0, 0],
            },
        };
        Pacer { acct, state, end }
    }

    /// Count bytes received and sent; a new period starts afresh.
    pub fn record(&mut self, wall: WallTime, received: u64, sent: u64) {
        if wall.as_secs() >= self.end {
            *self = Pacer::new(self.acct, None, wall);
        }
        self.state.used[0] += received;
        self.state.used[1] += sent;
    }

    /// Bytes a second that spend what is left of the quota, in the direction that used
    /// most, evenly over what is left of the period; 0 once the quota is spent.
    pub fn rate(&self, wall: WallTime) -> u64 {
        let used = self.state.used[0].max(self.state.used[1]);
        let left = self.acct.quota.saturating_sub(used);
        let secs = self.end.saturating_sub(wall.as_secs()).max(1);
        left / secs
    }

    /// The state to save.
    pub fn state(&self) -> PeriodState {
        self.state
    }

    /// The quota.
    pub fn accounting(&self) -> Accounting {
        self.acct
    }

    /// When the period ends, seconds since the Unix epoch.
    pub fn end(&self) -> u64 {
        self.end
    }
}

#[cfg(test)]
mod tests {
    use super::{Accounting, Pacer, PeriodState, StateError, civil_from_days, period_of};
    use crate::time::WallTime;

    #[test]
    fn periods_follow_the_calendar() {
        // 2026-12-03 12:00 UTC = 1_796_299_200.
        assert_eq!(civil_from_days(1_796_299_200 / 86_400), (2026, 12, 3));
        let (s, e) = period_of(WallTime(1_796_299_200), 1);
        assert_eq!(civil_from_days(s as i64 / 86_400), (2026, 12, 1));
        assert_eq!(civil_from_days(e as i64 / 86_400), (2027, 1, 1));
        let (s, e) = period_of(WallTime(1_796_299_200), 15);
        assert_eq!(civil_from_days(s as i64 / 86_400), (2026, 11, 15));
        assert_eq!(civil_from_days(e as i64 / 86_400), (2026, 12, 15));
        // January, before the start day: the period began in December.
        let (s, _) = period_of(WallTime(1_798_761_600 + 86_400), 10);
        assert_eq!(civil_from_days(s as i64 / 86_400), (2026, 12, 10));
    }

    #[test]
    fn the_rate_spreads_what_is_left_and_a_new_period_starts_afresh() {
        let acct = Accounting {
            quota: 30 * 86_400 * 1000,
            start_day: 1,
        };
        let (start, end) = period_of(WallTime(1_796_299_200), 1);
        let mut p = Pacer::new(acct, None, WallTime(start));
        assert_eq!(p.rate(WallTime(start)), acct.quota / (end - start));
        p.record(WallTime(start), 0, acct.quota / 2);
        let half = WallTime(end - (end - start) / 4);
        assert_eq!(p.rate(half), (acct.quota / 2) / ((end - start) / 4));
        p.record(half, 0, acct.quota);
        assert_eq!(p.rate(half), 0, "spent: nothing until the period ends");
        p.record(WallTime(end), 0, 0);
        assert_eq!(p.state().start, end);
        assert_eq!(p.state().used, [0, 0]);
        // A saved state of this period is continued, of an older one dropped.
        let saved = PeriodState {
            start,
            used: [5, 7],
        };
        let back = PeriodState::decode(&saved.encode()).unwrap();
        assert_eq!(
            Pacer::new(acct, Some(back), WallTime(start + 9)).state(),
            saved
        );
        assert_eq!(
            Pacer::new(acct, Some(back), WallTime(end)).state().used,
            [0, 0]
        );
        assert_eq!(PeriodState::decode(&[1, 2]), Err(StateError::Malformed(2)));
    }
}
