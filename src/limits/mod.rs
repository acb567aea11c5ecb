//! What an operator lets the node spend, and the buckets that enforce it
//! (`protocol-spec/09-relay.md#bandwidth`).
//!
//! Traffic is split into four classes, each with its own token bucket in each direction:
//! circuits carried for others (`relayed`), the DHT, directory and storage service (`dht`),
//! held records served to other nodes (`seeding`) and the node's own circuits (`own`). Every
//! class's outbound cells also take from one total bucket (`rate`); inbound, the total is
//! the bytes read from sockets, charged as they arrive, and a total in debt stops reading.
//! A class without a limit is bounded by the total only. A cell a bucket cannot pay for
//! waits (the node holds it: `node::shaping`) and is never dropped; the circuit windows
//! then stop its sender.
//! Not in this module: holding and releasing cells (`node::shaping`), parsing settings
//! (`runtime::limits_config`), or the accounting period (`limits::period`).

pub mod bucket;
pub mod month;
pub mod period;

use crate::time::Time;
pub use bucket::TokenBucket;

/// A traffic class (`09-relay.md#bandwidth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// The node's own circuits: its reader, gateway and publisher. Served first.
    Own = 0,
    /// DHT, directory and storage messages between relays (replication and republishing
    /// included).
    Dht = 1,
    /// Held records served to other nodes (`VALUE` answers).
    Seeding = 2,
    /// Cells of circuits carried for others.
    Relayed = 3,
}

impl Class {
    /// Every class, in the order held cells are released (own first).
    pub const ALL: [Class; 4] = [Class::Own, Class::Dht, Class::Seeding, Class::Relayed];

    /// The name used in settings, status and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Class::Own => "own",
            Class::Dht => "dht",
            Class::Seeding => "seeding",
            Class::Relayed => "relayed",
        }
    }
}

/// A direction of traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Received.
    In = 0,
    /// Sent.
    Out = 1,
}

impl Direction {
    /// Both directions.
    pub const BOTH: [Direction; 2] = [Direction::In, Direction::Out];

    /// `"in"` or `"out"`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// The smallest bucket: 64 KiB, about 128 cells.
pub const MIN_BURST: u64 = 64 << 10;

/// What the operator allows (`[limits]` in `umbra.toml`; `09-relay.md#bandwidth`). Rates
/// are bytes a second in each direction; `None` is no limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Everything together.
    pub rate: Option<u64>,
    /// Bytes the total may send at once after a quiet spell. Default: twice the rate.
    pub burst: Option<u64>,
    /// Circuits carried for others.
    pub relayed: Option<u64>,
    /// DHT, directory, storage and replication service.
    pub dht: Option<u64>,
    /// Serving held records to others.
    pub seeding: Option<u64>,
    /// The node's own reading and publishing.
    pub own: Option<u64>,
    /// The accounting period's quota, if any.
    pub accounting: Option<period::Accounting>,
    /// Percent of one core the node may spend on handshakes (1–100 per core).
    pub cpu_percent: u32,
    /// Bytes of queued cells and buffers at most.
    pub memory: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rate: None,
            burst: None,
            relayed: None,
            dht: None,
            seeding: None,
            own: None,
            accounting: None,
            cpu_percent: 100,
            memory: 512 << 20,
        }
    }
}

impl Limits {
    /// The limit of `class`, if any.
    pub fn of(&self, class: Class) -> Option<u64> {
        match class {
            Class::Own => self.own,
            Class::Dht => self.dht,
            Class::Seeding => self.seeding,
            Class::Relayed => self.relayed,
        }
    }

    /// The total's burst: as set, else twice the rate; at least [`MIN_BURST`].
    pub fn total_burst(&self) -> u64 {
        let rate = self.rate.unwrap_or(0);
        self.burst.unwrap_or(rate.saturating_mul(2)).max(MIN_BURST)
    }

    /// A class's burst: one second of its rate, at most the total's burst, at least
    /// [`MIN_BURST`].
    pub fn class_burst(&self, rate: u64) -> u64 {
        rate.min(self.total_burst()).max(MIN_BURST)
    }
}

/// Bytes passed so far and the limit, for one class and direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Use {
    /// Bytes passed.
    pub bytes: u64,
    /// Bytes a second allowed (`None`: no limit of its own).
    pub limit: Option<u64>,
}

/// The buckets of one node.
#[derive(Debug, Clone)]
pub struct Shaper {
    total: [Option<TokenBucket>; 2],
    class: [[Option<TokenBucket>; 4]; 2],
    used: [[u64; 4]; 2],
    read: u64,
    configured_rate: Option<u64>,
    /// CPU microseconds, refilled at `cpu_percent` of one core (below 100 only).
    cpu: Option<TokenBucket>,
}

impl Shaper {
    /// Buckets for `limits`, full at `now`.
    pub fn new(limits: &Limits, now: Time) -> Shaper {
        let total = limits
            .rate
            .map(|r| TokenBucket::new(r, limits.total_burst(), now));
        let class = |c: Class| {
            limits
                .of(c)
                .map(|r| TokenBucket::new(r, limits.class_burst(r), now))
        };
        let per_class = [
            class(Class::Own),
            class(Class::Dht),
            class(Class::Seeding),
            class(Class::Relayed),
        ];
        Shaper {
            total: [total.clone(), total],
            class: [per_class.clone(), per_class],
            used: [[0; 4]; 2],
            read: 0,
            configured_rate: limits.rate,
            cpu: (limits.cpu_percent < 100).then(|| {
                let per_sec = u64::from(limits.cpu_percent.max(1)) * 10_000;
                TokenBucket::new(per_sec, per_sec / 10, now)
            }),
        }
    }

    /// Take `cost` bytes for a message of `class` going `dir`, if its class bucket (and,
    /// outbound, the total) hold them; `false` takes nothing.
    pub fn admit(&mut self, now: Time, dir: Direction, class: Class, cost: u64) -> bool {
        let (d, c) = (dir as usize, class as usize);
        let need = i64::try_from(cost).unwrap_or(i64::MAX);
        let class_ok = self.class[d][c]
            .as_mut()
            .is_none_or(|b| b.available(now) >= need);
        let total_ok = dir == Direction::In
            || self.total[d]
                .as_mut()
                .is_none_or(|b| b.available(now) >= need);
        if !(class_ok && total_ok) {
            return false;
        }
        if let Some(b) = self.class[d][c].as_mut() {
            b.charge(now, cost);
        }
        if dir == Direction::Out {
            if let Some(b) = self.total[d].as_mut() {
                b.charge(now, cost);
            }
        }
        self.used[d][c] += cost;
        true
    }

    /// When a message of `class` going `dir` costing `cost` could next be admitted
    /// (`Time::ZERO`: it could have been all along).
    pub fn ready_at(&self, dir: Direction, class: Class, cost: u64) -> Time {
        let d = dir as usize;
        let class_at = self.class[d][class as usize]
            .as_ref()
            .map_or(Time::ZERO, |b| b.ready_at(cost));
        let total_at = match dir {
            Direction::In => Time::ZERO,
            Direction::Out => self.total[d]
                .as_ref()
                .map_or(Time::ZERO, |b| b.ready_at(cost)),
        };
        class_at.max(total_at)
    }

    /// `bytes` were read from a socket: they take from the inbound total, into debt if need be.
    pub fn charge_read(&mut self, now: Time, bytes: u64) {
        self.read += bytes;
        if let Some(b) = self.total[Direction::In as usize].as_mut() {
            b.charge(now, bytes);
        }
    }

    /// Until when reading must stop (the inbound total was in debt when last charged), if it
    /// must; a time at or before now means it may read again.
    pub fn read_paused_until(&self) -> Option<Time> {
        let b = self.total[Direction::In as usize].as_ref()?;
        b.in_debt().then(|| b.ready_at(0))
    }

    /// The process spent `micros` of CPU: it takes from the CPU budget, into debt if need be.
    pub fn charge_cpu(&mut self, now: Time, micros: u64) {
        if let Some(b) = self.cpu.as_mut() {
            b.charge(now, micros);
        }
    }

    /// Until when the process must stop reading (it spent more CPU than `cpu_percent`
    /// allows), if it must.
    pub fn cpu_paused_until(&self) -> Option<Time> {
        let b = self.cpu.as_ref()?;
        b.in_debt().then(|| b.ready_at(0))
    }

    /// Set the total's rate in both directions from `now` (the accounting pacer): at most
    /// the configured rate.
    pub fn pace(&mut self, now: Time, rate: u64) {
        let rate = self.configured_rate.map_or(rate, |r| r.min(rate));
        for d in Direction::BOTH {
            match self.total[d as usize].as_mut() {
                Some(b) => b.set_rate(now, rate),
                None => {
                    self.total[d as usize] = Some(TokenBucket::new(
                        rate,
                        rate.saturating_mul(2).max(MIN_BURST),
                        now,
                    ));
                }
            }
        }
    }

    /// The inbound total's rate now (`None`: unlimited).
    pub fn total_rate_in(&self) -> Option<u64> {
        self.total[Direction::In as usize]
            .as_ref()
            .map(TokenBucket::rate)
    }

    /// The most one socket read should take: a twentieth of a second of the inbound total's
    /// rate, within [`MIN_READ`] and `max` (`max` with no total).
    pub fn read_quantum(&self, max: usize) -> usize {
        match self.total_rate_in() {
            Some(rate) => usize::try_from(rate / 20)
                .unwrap_or(max)
                .clamp(MIN_READ, max.max(MIN_READ)),
            None => max,
        }
    }

    /// The outbound total's rate now (`None`: unlimited; the pacer sets both directions
    /// alike).
    pub fn total_rate(&self) -> Option<u64> {
        self.total[Direction::Out as usize]
            .as_ref()
            .map(TokenBucket::rate)
    }

    /// Bytes passed and the limit of `class` going `dir`.
    pub fn usage(&self, dir: Direction, class: Class) -> Use {
        Use {
            bytes: self.used[dir as usize][class as usize],
            limit: self.class[dir as usize][class as usize]
                .as_ref()
                .map(TokenBucket::rate),
        }
    }

    /// Bytes read from sockets so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }
}

/// The least one socket read takes while the inbound total is limited.
pub const MIN_READ: usize = 2048;

#[cfg(test)]
mod tests {
    use super::{Class, Direction, Limits, MIN_READ, Shaper};
    use crate::time::Time;

    #[test]
    fn a_limited_total_reads_a_twentieth_of_a_second_at_a_time() {
        let max = 64 << 10;
        let unlimited = Shaper::new(&Limits::default(), Time::ZERO);
        assert_eq!(unlimited.read_quantum(max), max);
        let paced = |rate: u64| {
            let limits = Limits {
                rate: Some(rate),
                ..Limits::default()
            };
            Shaper::new(&limits, Time::ZERO).read_quantum(max)
        };
        assert_eq!(paced(1 << 20), (1 << 20) / 20);
        assert_eq!(paced(20_000), MIN_READ, "never below one small read");
        assert_eq!(paced(100 << 20), max, "never above the buffer");
    }

    #[test]
    fn a_class_limit_holds_that_class_only_and_the_total_holds_all_outbound() {
        let limits = Limits {
            rate: Some(1 << 20),
            burst: Some(1 << 20),
            relayed: Some(128 << 10),
            ..Limits::default()
        };
        let now = Time::ZERO;
        let mut s = Shaper::new(&limits, now);
        let mut relayed = 0;
        while s.admit(now, Direction::Out, Class::Relayed, 512) {
            relayed += 512;
        }
        assert_eq!(relayed, 128 << 10, "relayed stops at its own burst");
        // Own traffic still passes, up to what the total has left.
        let mut own = 0;
        while s.admit(now, Direction::Out, Class::Own, 512) {
            own += 512;
        }
        assert_eq!(own, (1 << 20) - (128 << 10));
        // Inbound classes do not take from the outbound total.
        assert!(s.admit(now, Direction::In, Class::Own, 512));
        assert_eq!(s.usage(Direction::Out, Class::Relayed).bytes, 128 << 10);
        assert_eq!(
            s.usage(Direction::Out, Class::Relayed).limit,
            Some(128 << 10)
        );
    }

    #[test]
    fn reads_in_debt_pause_reading_until_repaid() {
        let limits = Limits {
            rate: Some(100 << 10),
            burst: Some(100 << 10),
            ..Limits::default()
        };
        let mut s = Shaper::new(&limits, Time::ZERO);
        s.charge_read(Time::ZERO, 50 << 10);
        assert_eq!(s.read_paused_until(), None);
        s.charge_read(Time::ZERO, 100 << 10);
        assert_eq!(s.read_paused_until(), Some(Time::from_micros(500_000)));
        assert!(
            Shaper::new(&Limits::default(), Time::ZERO)
                .read_paused_until()
                .is_none()
        );
    }
}
