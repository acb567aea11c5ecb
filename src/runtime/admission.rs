//! Which accepted connections a relay takes on (`protocol-spec/09-relay.md#connections`).
//!
//! Before a handshake byte is read, an inbound connection must fit three bounds: the
//! relay's total (a quarter of its file descriptors stay free for its own dials, files and
//! the gateway), a cap per source network (an IPv4 address, an IPv6 /64), and a rate of
//! new connections per source (a token bucket: each one costs the relay a link handshake,
//! three X25519 operations). A connection past a bound is closed at once: no buffer, no
//! task, no crypto. At most [`MAX_HANDSHAKING`] inbound links are in their handshake: a new
//! connection that fits the bounds past that makes the oldest of them give way, so sockets
//! that never finish a handshake cannot lock honest peers out (they can only be churned, at
//! each source's rate). Refusals and evictions are counted and logged at most once a minute.
//! Not in this module: the link handshake (`link`) or circuit limits (`relay`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::relay::Source;

/// Inbound connections from one source network at once.
pub const MAX_PER_SOURCE: usize = 64;
/// New inbound connections one source may open at once (burst)...
pub const RATE_BURST: f64 = 32.0;
/// ...and per second after that.
pub const RATE_PER_SEC: f64 = 8.0;
/// Inbound connections at most, whatever the descriptor limit.
pub const MAX_TOTAL: usize = 4096;
/// Inbound links still in their handshake at most; past it the oldest gives way
/// (`09-relay.md#handshakes`).
pub const MAX_HANDSHAKING: usize = 256;

/// Why a connection was closed unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The relay holds its most inbound connections.
    Total,
    /// This source holds [`MAX_PER_SOURCE`].
    PerSource,
    /// This source opened connections faster than the rate.
    Rate,
}

/// The admission state of one relay.
#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    total: usize,
    open: BTreeMap<Source, usize>,
    buckets: BTreeMap<Source, (f64, Instant)>,
    refused: [u64; 4],
    last_log: Option<Instant>,
}

impl Admission {
    /// Bounds for this process: [`MAX_TOTAL`], or three-quarters of the descriptor limit
    /// if that is lower.
    pub fn new() -> Admission {
        let fds = descriptor_limit().unwrap_or(1024);
        Admission::with_total(MAX_TOTAL.min(fds.saturating_mul(3) / 4).max(16))
    }

    /// Bounds with a given total.
    pub fn with_total(max_total: usize) -> Admission {
        Admission {
            max_total,
            total: 0,
            open: BTreeMap::new(),
            buckets: BTreeMap::new(),
            refused: [0; 4],
            last_log: None,
        }
    }

    /// A connection from `ip` was accepted at `now`, with `handshaking` inbound links in
    /// their handshake: take it on (`true`: the oldest of those must give way), or say why
    /// not.
    pub fn admit(&mut self, ip: IpAddr, now: Instant, handshaking: usize) -> Result<bool, Refusal> {
        let source = Source::of_ip(ip);
        match self.check(source, now) {
            Ok(()) => {
                self.total += 1;
                *self.open.entry(source).or_default() += 1;
                let evict = handshaking >= MAX_HANDSHAKING;
                if evict {
                    self.refused[3] += 1;
                    self.log(now);
                }
                Ok(evict)
            }
            Err(e) => {
                self.refused[e as usize] += 1;
                self.log(now);
                Err(e)
            }
        }
    }

    fn check(&mut self, source: Source, now: Instant) -> Result<(), Refusal> {
        if self.total >= self.max_total {
            return Err(Refusal::Total);
        }
        if self.open.get(&source).copied().unwrap_or(0) >= MAX_PER_SOURCE {
            return Err(Refusal::PerSource);
        }
        // Forget full buckets of quiet sources before the map grows past the total.
        if self.buckets.len() > self.max_total {
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * RATE_PER_SEC < RATE_BURST
            });
        }
        let (tokens, at) = self.buckets.entry(source).or_insert((RATE_BURST, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * RATE_PER_SEC).min(RATE_BURST);
        *at = now;
        if *tokens < 1.0 {
            return Err(Refusal::Rate);
        }
        *tokens -= 1.0;
        Ok(())
    }

    /// A connection admitted from `ip` closed.
    pub fn release(&mut self, ip: IpAddr) {
        let source = Source::of_ip(ip);
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.open.get_mut(&source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.open.remove(&source);
            }
        }
    }

    /// Connections refused so far (total, per source, rate), and handshakes in progress
    /// that gave way to a newer connection.
    pub fn refused(&self) -> (u64, u64, u64, u64) {
        (
            self.refused[0],
            self.refused[1],
            self.refused[2],
            self.refused[3],
        )
    }

    fn log(&mut self, now: Instant) {
        if self
            .last_log
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(60))
        {
            return;
        }
        self.last_log = Some(now);
        let (t, s, r, h) = self.refused();
        tracing::warn!(
            "refusing inbound connections (so far: {t} at the total of {}, {s} at \
             {MAX_PER_SOURCE} per source, {r} over {RATE_PER_SEC}/s per source; {h} \
             handshakes gave way, {MAX_HANDSHAKING} being in progress); logged once a minute",
            self.max_total
        );
    }
}

impl Default for Admission {
    fn default() -> Self {
        Admission::new()
    }
}

/// The soft limit on open files, from /proc/self/limits.
fn descriptor_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{Admission, MAX_PER_SOURCE, RATE_BURST, Refusal};
    use std::time::{Duration, Instant};

    #[test]
    fn bounds_per_source_rate_and_total() {
        let t = Instant::now();
        let mut a = Admission::with_total(100);
        let ip = "10.0.0.9".parse().unwrap();
        for _ in 0..RATE_BURST as usize {
            assert_eq!(a.admit(ip, t, 0), Ok(false));
        }
        assert_eq!(a.admit(ip, t, 0), Err(Refusal::Rate));
        // Another source is not affected; time refills the bucket.
        assert_eq!(a.admit("10.0.0.1".parse().unwrap(), t, 0), Ok(false));
        let later = t + Duration::from_secs(10);
        for _ in 0..(MAX_PER_SOURCE - RATE_BURST as usize) {
            assert_eq!(a.admit(ip, later, 0), Ok(false));
        }
        assert_eq!(
            a.admit(ip, later + Duration::from_secs(10), 0),
            Err(Refusal::PerSource)
        );
        a.release(ip);
        assert_eq!(a.admit(ip, later + Duration::from_secs(10), 0), Ok(false));
        // The total.
        let mut b = Admission::with_total(2);
        assert_eq!(b.admit("10.0.0.1".parse().unwrap(), t, 0), Ok(false));
        assert_eq!(b.admit("10.0.0.2".parse().unwrap(), t, 0), Ok(false));
        assert_eq!(
            b.admit("10.0.0.3".parse().unwrap(), t, 0),
            Err(Refusal::Total)
        );
        assert_eq!(b.refused(), (1, 0, 0, 0));
        // Past the handshakes in progress, a connection that fits is taken, and the oldest
        // handshake gives way.
        let mut c = Admission::with_total(100);
        assert_eq!(
            c.admit("10.0.0.4".parse().unwrap(), t, super::MAX_HANDSHAKING),
            Ok(true)
        );
        assert_eq!(c.refused(), (0, 0, 0, 1));
    }
}
