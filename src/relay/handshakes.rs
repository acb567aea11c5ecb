//! CREATEs wait their turn for the CPU (`protocol-spec/09-relay.md#handshakes`).
//!
//! Answering a CREATE costs the relay a hop handshake (two X25519 operations and a hash),
//! the most expensive thing an anonymous peer can make it do. So CREATEs are not answered on
//! arrival but queued per source (a relay by identity, anyone else by network) and answered
//! round-robin across sources while a CPU budget pays for them: a token bucket of CPU
//! microseconds, refilled at `cpu_percent` of one core, each handshake costing its measured
//! cost (the runtime measures it at start; link handshakes the node accepts are charged to
//! the same budget). A CREATE that would wait longer than the bound (1.75 s, Tor's
//! `MaxOnionQueueDelay`) is refused with `DESTROY` reason `OVERLOADED`; when the queue is
//! full, a CREATE from a source with fewer queued takes the place of the newest CREATE of the
//! source with most, so one address flooding the relay is refused, not everyone else.
//! Anonymous sources are also held to a rate of CREATEs (per second, with a burst), as Tor's
//! DoS subsystem holds clients; relays are not (they carry many readers' circuits, and their
//! share of the table bounds them).
//! This module also answers a CREATE whose turn came (`Switch::answer_create`).
//! Not in this module: the table, its shares (`shares`) or timers (`timers`).

use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{Entry, Next, PrevKind, RelayError, Source, Switch};
#[cfg(feature = "sim")]
use super::{Observation, RelayAction};
use crate::crypto::hop;
use crate::crypto::layer::RelayLayer;
use crate::crypto::noise::Randomness;
use crate::ids::LinkId;
use crate::limits::TokenBucket;
use crate::time::Time;
use crate::wire::cell::{CircId, MAX_LAYERS};
use crate::wire::restrict::{ChanMsg, CreateBody, CreatedBody, DestroyReason, HandshakeType};

/// The longest a CREATE may wait to be answered (Tor's `MaxOnionQueueDelay`).
pub const MAX_HANDSHAKE_DELAY: Duration = Duration::from_millis(1750);
/// The queue holds at least this many, whatever the estimate (Tor: 50).
const MIN_QUEUE: usize = 50;
/// CPU microseconds the budget may bank: a tenth of a second of its rate, at least one
/// handshake.
const BANK: u64 = 10;

/// A CREATE waiting to be answered.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub link: LinkId,
    pub prev: super::PrevKind,
    pub source: Source,
    pub circ_id: CircId,
    pub body: CreateBody,
    pub at: Time,
}

/// Why a CREATE was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// The queue would take longer than the bound.
    Overloaded,
    /// The source sends CREATEs faster than its rate.
    Rate,
}

/// Counters of the handshake queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandshakeStats {
    /// CREATEs answered after waiting their turn.
    pub answered: u64,
    /// CREATEs refused because the queue was full (`OVERLOADED`).
    pub refused_overloaded: u64,
    /// CREATEs refused because their source passed its rate.
    pub refused_rate: u64,
    /// CREATEs waiting now.
    pub queued: usize,
    /// The longest wait of an answered CREATE, microseconds.
    pub max_wait_us: u64,
}

/// The queue and the budget.
#[derive(Debug)]
pub(super) struct Handshakes {
    cost_us: u64,
    cpu: TokenBucket,
    capacity: usize,
    queues: BTreeMap<Source, VecDeque<Pending>>,
    /// Every queued `(link, circuit id)`.
    index: BTreeSet<(LinkId, CircId)>,
    /// Sources by queued count, for "the source with most".
    sizes: BTreeSet<(usize, Source)>,
    /// Round-robin order of sources with something queued.
    turn: VecDeque<Source>,
    rates: BTreeMap<Source, TokenBucket>,
    rate: (u32, u32),
    stats: HandshakeStats,
}

impl Handshakes {
    /// A queue for handshakes costing `cost` each, `cpu_percent` of a core, and `rate` CREATEs
    /// a second with a burst per anonymous source.
    pub(super) fn new(cost: Duration, cpu_percent: u32, rate: (u32, u32)) -> Handshakes {
        let cost_us = u64::try_from(cost.as_micros()).unwrap_or(u64::MAX).max(1);
        // Three-quarters of the node's CPU budget: the rest reads, relays and answers.
        let per_sec = (u64::from(cpu_percent.clamp(1, 100)) * 10_000 * 3 / 4).max(1);
        let delay_us = u64::try_from(MAX_HANDSHAKE_DELAY.as_micros()).unwrap_or(u64::MAX);
        let capacity = usize::try_from(delay_us.saturating_mul(per_sec) / 1_000_000 / cost_us)
            .unwrap_or(usize::MAX)
            .max(MIN_QUEUE);
        Handshakes {
            cost_us,
            cpu: TokenBucket::new(per_sec, (per_sec / BANK).max(cost_us), Time::ZERO),
            capacity,
            queues: BTreeMap::new(),
            index: BTreeSet::new(),
            sizes: BTreeSet::new(),
            turn: VecDeque::new(),
            rates: BTreeMap::new(),
            rate,
            stats: HandshakeStats::default(),
        }
    }

    fn count(&self, s: &Source) -> usize {
        self.queues.get(s).map_or(0, VecDeque::len)
    }

    fn set_count(&mut self, s: Source, before: usize, after: usize) {
        if before > 0 {
            self.sizes.remove(&(before, s));
        }
        if after > 0 {
            self.sizes.insert((after, s));
        }
    }

    /// Queue `p`; a CREATE pushed out to make room for it is returned to be refused.
    pub(super) fn push(&mut self, now: Time, p: Pending) -> Result<Option<Pending>, Refused> {
        if let Source::Net(_) = p.source {
            let (per_sec, burst) = self.rate;
            if self.rates.len() > 4 * self.capacity {
                // Forget sources whose bucket refilled: a full bucket is a fresh one.
                self.rates
                    .retain(|_, b| b.available(now) < i64::from(burst.max(1)));
            }
            let bucket = self.rates.entry(p.source).or_insert_with(|| {
                TokenBucket::new(u64::from(per_sec), u64::from(burst.max(1)), now)
            });
            if !bucket.try_take(now, 1) {
                self.stats.refused_rate += 1;
                return Err(Refused::Rate);
            }
        }
        let mut evicted = None;
        if self.stats.queued >= self.capacity {
            let mine = self.count(&p.source);
            match self.sizes.last().copied() {
                Some((most, big)) if big != p.source && most > mine + 1 => {
                    evicted = self.remove_newest(big);
                }
                _ => {
                    self.stats.refused_overloaded += 1;
                    return Err(Refused::Overloaded);
                }
            }
            self.stats.refused_overloaded += 1;
        }
        let s = p.source;
        let before = self.count(&s);
        if before == 0 {
            self.turn.push_back(s);
        }
        self.index.insert((p.link, p.circ_id));
        self.queues.entry(s).or_default().push_back(p);
        self.set_count(s, before, before + 1);
        self.stats.queued += 1;
        Ok(evicted)
    }

    fn remove_newest(&mut self, s: Source) -> Option<Pending> {
        let q = self.queues.get_mut(&s)?;
        let before = q.len();
        let p = q.pop_back()?;
        self.index.remove(&(p.link, p.circ_id));
        if q.is_empty() {
            self.queues.remove(&s);
            self.turn.retain(|t| *t != s);
        }
        self.set_count(s, before, before - 1);
        self.stats.queued -= 1;
        Some(p)
    }

    /// The next CREATE to answer, if the budget pays for it now (round-robin by source).
    pub(super) fn pop(&mut self, now: Time) -> Option<Pending> {
        if self.stats.queued == 0 || !self.cpu.try_take(now, self.cost_us) {
            return None;
        }
        let s = self.turn.pop_front()?;
        let q = self.queues.get_mut(&s)?;
        let before = q.len();
        let p = q.pop_front()?;
        self.index.remove(&(p.link, p.circ_id));
        if q.is_empty() {
            self.queues.remove(&s);
        } else {
            self.turn.push_back(s);
        }
        self.set_count(s, before, before - 1);
        self.stats.queued -= 1;
        self.stats.answered += 1;
        let waited = u64::try_from((now - p.at).as_micros()).unwrap_or(u64::MAX);
        self.stats.max_wait_us = self.stats.max_wait_us.max(waited);
        Some(p)
    }

    /// Work done outside the queue (a link handshake accepted) costing `handshakes` hop
    /// handshakes' worth of CPU.
    pub(super) fn charge(&mut self, now: Time, handshakes: u64) {
        self.cpu
            .charge(now, handshakes.saturating_mul(self.cost_us));
    }

    /// When the budget next pays for a queued CREATE.
    pub(super) fn poll_timeout(&self) -> Option<Time> {
        (self.stats.queued > 0).then(|| self.cpu.ready_at(self.cost_us))
    }

    /// Drop what waits from `link` (it closed), or only `circ_id` on it.
    pub(super) fn purge(&mut self, link: LinkId, circ_id: Option<CircId>) {
        let sources: Vec<Source> = self.queues.keys().copied().collect();
        for s in sources {
            let Some(q) = self.queues.get_mut(&s) else {
                continue;
            };
            let before = q.len();
            let index = &mut self.index;
            q.retain(|p| {
                let gone = p.link == link && circ_id.is_none_or(|c| c == p.circ_id);
                if gone {
                    index.remove(&(p.link, p.circ_id));
                }
                !gone
            });
            let after = q.len();
            if after == before {
                continue;
            }
            if after == 0 {
                self.queues.remove(&s);
                self.turn.retain(|t| *t != s);
            }
            self.set_count(s, before, after);
            self.stats.queued -= before - after;
        }
    }

    pub(super) fn stats(&self) -> HandshakeStats {
        self.stats
    }
}

impl Switch {
    /// CREATE arrived (`04-circuits.md#create`) from `source` on `link`, from a previous hop
    /// of kind `prev`: refused at once past a limit, else queued for the CPU and answered in
    /// turn (`handshakes`). `peer_dialled`: the peer dialled the link (its ids have the top
    /// bit set).
    pub fn handle_create(
        &mut self,
        now: Time,
        link: LinkId,
        (prev, source): (PrevKind, Source),
        circ_id: CircId,
        body: &CreateBody,
        peer_dialled: bool,
    ) -> Result<(), RelayError> {
        let key = (link, circ_id);
        // `03-cells.md#circuit-ids`: the sender's parity, and above every id it created here.
        let high = self.created_high.get(&link).copied().unwrap_or(0);
        let refused = if circ_id.is_dialler_allocated() != peer_dialled {
            Some(RelayError::CircIdParity)
        } else if circ_id.get() <= high {
            Some(RelayError::ReusedCircuit)
        } else {
            None
        };
        if let Some(e) = refused {
            // An id still open closes with it (`03-cells.md#errors`), one DESTROY each way.
            let open = self.circuits.contains_key(&key);
            self.teardown(key, DestroyReason::PROTOCOL);
            self.handshakes.purge(link, Some(circ_id));
            if !open {
                self.destroy(key, DestroyReason::PROTOCOL);
            }
            return Err(e);
        }
        self.created_high.insert(link, circ_id.get());
        let on_link = self.per_link.get(&link).copied().unwrap_or(0);
        // The per-link limit is for readers' links; a link from a relay carries many readers'
        // circuits and is bounded by the table and its share (`09-relay.md#limits`).
        let link_full = prev == PrevKind::Reader && on_link >= self.limits.max_circuits_per_link;
        let table_full = self.circuits.len() >= self.limits.max_circuits
            && self.shares.victim_for(&source).is_none();
        if link_full || table_full {
            self.destroy(key, DestroyReason::RESOURCE_LIMIT);
            return Err(RelayError::Limit);
        }
        let pending = Pending {
            link,
            prev,
            source,
            circ_id,
            body: body.clone(),
            at: now,
        };
        match self.handshakes.push(now, pending) {
            Err(Refused::Overloaded) => {
                self.destroy(key, DestroyReason::OVERLOADED);
                return Err(RelayError::Overloaded);
            }
            Err(Refused::Rate) => {
                self.destroy(key, DestroyReason::RESOURCE_LIMIT);
                return Err(RelayError::CreateRate);
            }
            Ok(Some(pushed_out)) => {
                self.destroy(
                    (pushed_out.link, pushed_out.circ_id),
                    DestroyReason::OVERLOADED,
                );
            }
            Ok(None) => {}
        }
        self.answer_queued(now)
    }

    /// Answer the queued CREATEs the CPU budget pays for now; the first error is returned,
    /// later ones kept for [`Switch::take_errors`].
    pub(super) fn answer_queued(&mut self, now: Time) -> Result<(), RelayError> {
        let mut result = Ok(());
        while let Some(p) = self.handshakes.pop(now) {
            if let Err(e) = self.answer_create(now, p) {
                if result.is_ok() {
                    result = Err(e);
                } else if self.errors.len() < 64 {
                    self.errors.push(e);
                }
            }
        }
        result
    }

    /// Errors of CREATEs answered from the queue, since the last call.
    pub fn take_errors(&mut self) -> Vec<RelayError> {
        std::mem::take(&mut self.errors)
    }

    /// A link handshake was accepted: it takes from the same CPU budget as CREATEs.
    pub fn charge_link_handshake(&mut self, now: Time) {
        self.handshakes.charge(now, 2);
    }

    /// The handshake queue's counters.
    pub fn handshake_stats(&self) -> HandshakeStats {
        self.handshakes.stats()
    }

    /// Answer a CREATE whose turn came (`04-circuits.md#create`).
    fn answer_create(&mut self, now: Time, p: Pending) -> Result<(), RelayError> {
        let Pending {
            link,
            prev,
            source,
            circ_id,
            body,
            ..
        } = p;
        let key = (link, circ_id);
        // A full table: the largest source gives way to a smaller one (`09-relay.md#shares`).
        let victim = if self.circuits.len() >= self.limits.max_circuits {
            match self.shares.victim_for(&source) {
                Some(v) => Some(v),
                None => {
                    self.destroy(key, DestroyReason::RESOURCE_LIMIT);
                    return Err(RelayError::Limit);
                }
            }
        } else {
            None
        };
        let refuse = |s: &mut Self, e: RelayError| {
            s.destroy(key, DestroyReason::PROTOCOL);
            Err(e)
        };
        if body.handshake_type != HandshakeType::NOISE_NK_V1 {
            return refuse(self, RelayError::HandshakeType(body.handshake_type.0));
        }
        if self.hop_replay.seen(now, &body.handshake) {
            self.stats.replays += 1;
            return refuse(self, RelayError::Replayed);
        }
        let (index, msg2, keys) = match hop::server(
            &self.onion,
            &body.handshake,
            Randomness::Seeded(self.rng.array()),
        ) {
            Ok(x) => x,
            Err(e) => return refuse(self, RelayError::Handshake(e)),
        };
        self.hop_replay.insert(now, &body.handshake);
        // `04-circuits.md#hop-index`: a reader's link carries hop 1, a relay's link hops 2..=3.
        let index_ok = match prev {
            PrevKind::Reader => index == 1,
            PrevKind::Relay => index >= 2 && usize::from(index) <= MAX_LAYERS,
        };
        if !index_ok {
            return refuse(self, RelayError::HopIndex(index));
        }
        let layer = match RelayLayer::new(index, &keys) {
            Ok(l) => l,
            Err(e) => return refuse(self, RelayError::Layer(e)),
        };
        if let Some(v) = victim {
            self.stats.evicted += 1;
            self.remove(v, DestroyReason::RESOURCE_LIMIT, true, true);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.shares.add(source, seq, key);
        self.circuits.insert(
            key,
            Entry {
                layer,
                next: Next::None,
                exit: None,
                source,
                seq,
                last_active: now,
            },
        );
        *self.per_link.entry(link).or_default() += 1;
        self.stats.created += 1;
        self.send(
            link,
            ChanMsg::Created {
                circ_id,
                body: CreatedBody { handshake: msg2 },
            },
        );
        #[cfg(feature = "sim")]
        self.actions
            .push_back(RelayAction::Observe(Observation::Created {
                circ: key,
                prev,
            }));
        #[cfg(not(feature = "sim"))]
        let _ = prev;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Handshakes, Pending, Refused};
    use crate::ids::LinkId;
    use crate::relay::{PrevKind, Source};
    use crate::time::Time;
    use crate::wire::cell::CircId;
    use crate::wire::restrict::{CreateBody, HandshakeType};
    use core::time::Duration;

    fn pending(net: u8, n: u32, at: Time) -> Pending {
        let mut a = [0u8; 16];
        a[15] = net;
        Pending {
            link: LinkId(u64::from(net)),
            prev: PrevKind::Reader,
            source: Source::Net(a),
            circ_id: CircId::new(0x8000_0000 | n).unwrap(),
            body: CreateBody {
                handshake_type: HandshakeType::NOISE_NK_V1,
                handshake: Vec::new(),
            },
            at,
        }
    }

    #[test]
    fn a_flooding_source_is_refused_and_others_are_answered_in_turn() {
        // 1 ms per handshake at 10% of a core, three-quarters of it for handshakes: 75 a
        // second, 131 queued at most (what 1.75 s answers).
        let mut h = Handshakes::new(Duration::from_millis(1), 10, (1000, 10_000));
        let t0 = Time::ZERO;
        let mut refused = 0;
        for n in 0..1000 {
            if h.push(t0, pending(1, n, t0)).is_err() {
                refused += 1;
            }
        }
        assert_eq!(h.stats().queued, 131);
        assert_eq!(refused, 869);
        // Others still get in: each takes the place of the flood's newest.
        for net in 2..12u8 {
            let evicted = h.push(t0, pending(net, 0, t0)).unwrap();
            assert_eq!(evicted.map(|p| p.link), Some(LinkId(1)));
        }
        // Answered round-robin: the ten others within the first 20 answers.
        let mut others = 0;
        let mut t = t0;
        for _ in 0..20 {
            t = t + Duration::from_millis(10);
            while let Some(p) = h.pop(t) {
                if p.link != LinkId(1) {
                    others += 1;
                }
            }
        }
        assert_eq!(others, 10);
        // The budget holds: 200 ms at 75 a second answered ~15 plus the bank.
        assert!(h.stats().answered <= 32, "{:?}", h.stats());
    }

    #[test]
    fn an_anonymous_source_past_its_rate_is_refused() {
        let mut h = Handshakes::new(Duration::from_micros(100), 100, (2, 5));
        let t0 = Time::ZERO;
        let ok = (0..10)
            .filter(|&n| h.push(t0, pending(1, n, t0)).is_ok())
            .count();
        assert_eq!(ok, 5);
        assert_eq!(h.push(t0, pending(1, 99, t0)).unwrap_err(), Refused::Rate);
        let later = t0 + Duration::from_millis(500);
        assert!(h.push(later, pending(1, 100, later)).is_ok());
    }
}
