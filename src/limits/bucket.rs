//! A token bucket refilled on demand from injected time (`protocol-spec/09-relay.md#bandwidth`).
//!
//! Tokens are bytes. The bucket is refilled when it is asked, from the time elapsed since it
//! was last asked, as Tor does since its ticket 25373: there is no refill tick to be late or
//! to make bursts. Arithmetic is integral (bytes and microseconds, with the remainder of each
//! refill carried), so a bucket asked a million times a second gains exactly `rate` bytes a
//! second. A bucket may be taken into debt by a charge it cannot refuse (bytes already read
//! from a socket); it then admits nothing until the debt is repaid.
//! Not in this module: which traffic takes from which bucket (`limits::Shaper`).

use crate::time::Time;

const MICROS: u128 = 1_000_000;

/// A token bucket of bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    tokens: i64,
    /// Byte-microseconds of refill not yet a whole byte.
    carry: u128,
    last: Time,
}

impl TokenBucket {
    /// A full bucket refilled at `rate` bytes a second, holding at most `burst` bytes.
    pub fn new(rate: u64, burst: u64, now: Time) -> TokenBucket {
        let burst = burst.max(1);
        TokenBucket {
            rate,
            burst,
            tokens: i64::try_from(burst).unwrap_or(i64::MAX),
            carry: 0,
            last: now,
        }
    }

    /// Bytes a second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Whether the bucket was in debt when last asked.
    pub fn in_debt(&self) -> bool {
        self.tokens < 0
    }

    fn refill(&mut self, now: Time) {
        if now <= self.last {
            return;
        }
        let elapsed = u128::from(now.as_micros() - self.last.as_micros());
        self.last = now;
        let room = i128::from(self.burst) - i128::from(self.tokens);
        if room <= 0 {
            self.carry = 0;
            return;
        }
        let gained = u128::from(self.rate) * elapsed + self.carry;
        let whole = gained / MICROS;
        if whole >= room.unsigned_abs() {
            self.tokens = i64::try_from(self.burst).unwrap_or(i64::MAX);
            self.carry = 0;
        } else {
            // `whole < room <= burst + debt`, so it fits.
            self.tokens += i64::try_from(whole).unwrap_or(i64::MAX);
            self.carry = gained % MICROS;
        }
    }

    /// Bytes available at `now` (negative: debt).
    pub fn available(&mut self, now: Time) -> i64 {
        self.refill(now);
        self.tokens
    }

    /// Take `n` bytes if the bucket holds them at `now`.
    pub fn try_take(&mut self, now: Time, n: u64) -> bool {
        self.refill(now);
        match i64::try_from(n) {
            Ok(n) if self.tokens >= n => {
                self.tokens -= n;
                true
            }
            _ => false,
        }
    }

    /// Take `n` bytes whatever the bucket holds (it may go into debt).
    pub fn charge(&mut self, now: Time, n: u64) {
        self.refill(now);
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.tokens = self.tokens.saturating_sub(n);
    }

    /// The earliest time at which the bucket holds `n` bytes: at or before the last time it
    /// was asked if it held them then; never, if `n` is more than the burst or the rate is
    /// zero. Refill is linear until the burst, so this needs no `now`.
    pub fn ready_at(&self, n: u64) -> Time {
        let need = i128::from(n) - i128::from(self.tokens);
        if need <= 0 {
            return self.last;
        }
        if n > self.burst || self.rate == 0 {
            return Time::NEVER;
        }
        let micros = (need.unsigned_abs() * MICROS).saturating_sub(self.carry);
        let micros = micros.div_ceil(u128::from(self.rate));
        self.last.saturating_add(core::time::Duration::from_micros(
            u64::try_from(micros).unwrap_or(u64::MAX),
        ))
    }

    /// Change the rate from `now` on (the accounting pacer does this); tokens already held
    /// stay, up to the burst.
    pub fn set_rate(&mut self, now: Time, rate: u64) {
        self.refill(now);
        self.rate = rate;
    }
}

#[cfg(test)]
mod tests {
    use super::TokenBucket;
    use crate::time::Time;

    fn at(ms: u64) -> Time {
        Time::from_micros(ms * 1000)
    }

    #[test]
    fn refills_exactly_the_rate_however_often_it_is_asked() {
        let mut b = TokenBucket::new(1000, 500, at(0));
        assert!(b.try_take(at(0), 500));
        assert!(!b.try_take(at(0), 1));
        // Asked every microsecond for a second: exactly 1000 bytes, capped by the burst.
        let mut taken = 0;
        for us in 1..=1_000_000u64 {
            if b.try_take(Time::from_micros(us), 1) {
                taken += 1;
            }
        }
        assert_eq!(taken, 1000);
        assert_eq!(b.available(at(1000)), 0);
        assert_eq!(b.available(at(10_000)), 500, "capped by the burst");
    }

    #[test]
    fn debt_blocks_until_repaid_and_ready_at_says_when() {
        let mut b = TokenBucket::new(1000, 1000, at(0));
        b.charge(at(0), 3000);
        assert_eq!(b.available(at(0)), -2000);
        assert_eq!(b.ready_at(100), at(2100));
        assert!(!b.try_take(at(1000), 1));
        assert_eq!(b.ready_at(100), at(2100), "the same whenever it is asked");
        assert!(!b.try_take(at(2099), 100));
        assert!(b.try_take(at(2100), 100));
        assert_eq!(b.ready_at(2000), Time::NEVER, "more than the burst");
    }

    #[test]
    fn a_new_rate_applies_from_now() {
        let mut b = TokenBucket::new(1000, 10_000, at(0));
        b.charge(at(0), 10_000);
        b.set_rate(at(1000), 4000);
        assert_eq!(b.available(at(2000)), 5000);
    }
}
