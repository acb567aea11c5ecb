//! A simulated accounting period: the real [`Pacer`] and [`Shaper`] driven second by second
//! through one month of simulated time (`protocol-spec/09-relay.md#accounting`), for
//! `umbra bench --limits` and the tests.
//!
//! Demand follows a day's cycle (±50% around its mean) at a chosen multiple of what the quota
//! allows on average; the node is down for a chosen share of the hours, picked from a seed,
//! and loses on each restart what it counted since the pacer last saved its state (one
//! minute at most), as a crash would. Nothing here reads a clock.
//! Not in this module: the pacer itself (`limits::period`).

use super::period::{Accounting, PACE_INTERVAL_SECS, Pacer, period_of};
use super::{Class, Direction, Limits, Shaper};
use crate::crypto::rng::UmbraRng;
use crate::time::{Time, WallTime};

/// What a month looked like.
#[derive(Debug, Clone, PartialEq)]
pub struct MonthReport {
    /// The quota, bytes.
    pub quota: u64,
    /// Bytes sent in the period.
    pub used: u64,
    /// Hours in the period.
    pub hours: u64,
    /// Hours the node was running.
    pub hours_running: u64,
    /// Hours the node was running and carried traffic all hour (never held to zero).
    pub hours_serving: u64,
    /// The lowest and highest rate the pacer set, bytes a second.
    pub rate_range: (u64, u64),
}

impl MonthReport {
    /// `used / quota`, in percent.
    pub fn used_percent(&self) -> f64 {
        self.used as f64 * 100.0 / self.quota as f64
    }

    /// `hours_serving / hours`, in percent.
    pub fn serving_percent(&self) -> f64 {
        self.hours_serving as f64 * 100.0 / self.hours as f64
    }
}

/// Simulate the period starting at `start` (its first second) with `quota`, demand at
/// `demand` times the quota's mean rate, the node down for `down_percent` of the hours.
pub fn simulate(
    start: WallTime,
    quota: u64,
    demand: f64,
    down_percent: u64,
    seed: u64,
) -> MonthReport {
    let acct = Accounting {
        quota,
        start_day: 1,
    };
    let (p_start, p_end) = period_of(start, acct.start_day);
    let secs = p_end - p_start;
    let hours = secs / 3600;
    let mut rng = UmbraRng::from_u64(seed);
    let down: Vec<bool> = (0..hours).map(|_| rng.below(100) < down_percent).collect();
    let mean = quota as f64 / secs as f64;
    let limits = Limits {
        accounting: Some(acct),
        ..Limits::default()
    };
    let mut pacer = Pacer::new(acct, None, WallTime(p_start));
    let mut shaper = Shaper::new(&limits, Time::ZERO);
    shaper.pace(Time::ZERO, pacer.rate(WallTime(p_start)));
    let mut saved = pacer.state();
    let mut since_pace = 0u64;
    let mut used = 0u64;
    let mut report = MonthReport {
        quota,
        used: 0,
        hours,
        hours_running: 0,
        hours_serving: 0,
        rate_range: (u64::MAX, 0),
    };
    let mut carry = 0.0f64;
    for hour in 0..hours {
        let h = usize::try_from(hour).unwrap_or(usize::MAX);
        if down[h] {
            continue;
        }
        if h > 0 && down[h - 1] {
            // A restart: the pacer continues from its last saved state.
            pacer = Pacer::new(acct, Some(saved), WallTime(p_start + hour * 3600));
            since_pace = 0;
        }
        report.hours_running += 1;
        let mut starved = false;
        let phase = (hour % 24) as f64 / 24.0 * core::f64::consts::TAU;
        let want = demand * mean * (1.0 + 0.5 * phase.sin());
        for s in 0..3600 {
            let t = hour * 3600 + s;
            let now = Time::from_micros(t * 1_000_000);
            if t % PACE_INTERVAL_SECS == 0 {
                let wall = WallTime(p_start + t);
                pacer.record(wall, 0, since_pace);
                since_pace = 0;
                saved = pacer.state();
                let rate = pacer.rate(wall);
                report.rate_range = (report.rate_range.0.min(rate), report.rate_range.1.max(rate));
                shaper.pace(now, rate);
            }
            carry += want;
            let mut sent_this_second = 0u64;
            while carry >= 1.0 {
                let chunk = (carry as u64).min(16 << 10);
                if !shaper.admit(now, Direction::Out, Class::Own, chunk) {
                    break;
                }
                carry -= chunk as f64;
                sent_this_second += chunk;
            }
            // Demand not served waits at most a second (a reader gives up, a window stalls).
            carry = carry.min(want);
            used += sent_this_second;
            since_pace += sent_this_second;
            if shaper.total_rate() == Some(0) {
                starved = true;
            }
        }
        if !starved {
            report.hours_serving += 1;
        }
    }
    report.used = used;
    report
}

#[cfg(test)]
mod tests {
    use super::simulate;
    use crate::time::WallTime;

    #[test]
    fn a_quota_smaller_than_demand_lasts_the_month_and_is_spent() {
        // December 2026, 100 GiB, twice the demand the quota allows, up every hour.
        let r = simulate(WallTime(1_796_083_200), 100 << 30, 2.0, 0, 1);
        assert_eq!(r.hours, 31 * 24);
        assert!((r.used_percent() - 100.0).abs() <= 1.0, "{r:?}");
        assert!(r.serving_percent() >= 99.0, "{r:?}");
    }
}
