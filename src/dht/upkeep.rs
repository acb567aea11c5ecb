//! The DHT's timers (`protocol-spec/06-dht.md#republishing`, `#renewal`, `#store`): RPC
//! deadlines, batch commits of the record store with their deferred acknowledgements, and
//! the republishing rounds: each node's rounds start at its own random phase, a round's
//! records go out in a random order spread over the interval, a record another holder
//! stored here during the last interval is not sent again, and the holder that republishes a
//! manifest renews the blocks it lists ([`BLOCK_RENEWAL`]) so a site outlives its publisher.
//! Not in this module: lookups and RPC handling (`super`).

use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::store::{Commit, MAX_BLOCK_LIFETIME};
use super::{Dht, DhtAction, Goal};
use crate::crypto::keys::NodeId;
use crate::crypto::rng::UmbraRng;
use crate::time::{Time, WallTime};
use crate::wire::dht_msg::{DhtMsg, RecordKind};

/// How often a node whose routing table holds fewer than k contacts (of the relays it
/// knows) joins again (`06-dht.md#joining`): a newcomer whose first contacts did not know
/// it yet, or a node whose contacts all left, recovers within this time.
pub const REFRESH: Duration = Duration::from_secs(600);

/// How often a holder of a manifest renews the blocks it lists (`06-dht.md#renewal`):
/// a third of a block's longest lifetime, so two renewals can be missed.
pub const BLOCK_RENEWAL: u64 = MAX_BLOCK_LIFETIME / 3;

/// One piece of a republishing round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    /// Store a held record on the closest nodes.
    Republish(RecordKind, [u8; 32]),
    /// Make the holders of a block a held manifest lists keep it until the time given.
    Renew([u8; 32], WallTime),
}

/// Republishing state (`06-dht.md#republishing`).
#[derive(Debug)]
pub(super) struct Republishing {
    /// When the next round starts.
    next_round: Time,
    /// This round's tasks still to do, one every `gap`.
    queue: VecDeque<Task>,
    gap: Duration,
    next_one: Time,
    /// Orders rounds and sets the phase; seeded from the node id until the node passes its
    /// own generator ([`Dht::seed_upkeep`]).
    rng: UmbraRng,
    /// When another node last stored each held record here (a holder need not republish
    /// what another republished during the interval, as in Kademlia).
    stored: BTreeMap<(RecordKind, [u8; 32]), Time>,
    /// When this node last renewed the blocks of each held manifest.
    renewed: BTreeMap<[u8; 32], WallTime>,
    /// When a short routing table is next filled again.
    next_refresh: Time,
}

impl Republishing {
    /// Rounds every `interval` from a phase drawn from `rng`: nodes started together do
    /// not republish together.
    pub(super) fn new(now: Time, interval: Duration, mut rng: UmbraRng) -> Republishing {
        Republishing {
            next_round: now + phase(&mut rng, interval),
            queue: VecDeque::new(),
            gap: Duration::ZERO,
            next_one: Time::NEVER,
            rng,
            stored: BTreeMap::new(),
            renewed: BTreeMap::new(),
            next_refresh: now + REFRESH,
        }
    }
}

/// A uniform time in `[0, interval)`.
fn phase(rng: &mut UmbraRng, interval: Duration) -> Duration {
    let us = u64::try_from(interval.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rng.below(us.max(1)))
}

/// Shuffle `v` in place (Fisher–Yates).
fn shuffle<T>(v: &mut [T], rng: &mut UmbraRng) {
    for i in (1..v.len()).rev() {
        let j = usize::try_from(rng.below(i as u64 + 1)).unwrap_or(0);
        v.swap(i, j);
    }
}

impl Dht {
    /// Pass the node's own generator for the republishing rounds and draw their phase again
    /// (`06-dht.md#republishing`); without it they are drawn from the node id.
    pub fn seed_upkeep(&mut self, rng: UmbraRng, now: Time) {
        self.upkeep = Republishing::new(now, self.cfg.republish_interval, rng);
    }

    /// When the next republishing round starts.
    pub fn next_round(&self) -> Time {
        self.upkeep.next_round
    }

    /// Another node stored a held record here: this node need not republish it this round.
    pub(super) fn stored_by_other(&mut self, kind: RecordKind, key: [u8; 32], now: Time) {
        self.upkeep.stored.insert((kind, key), now);
    }

    /// The earliest RPC deadline or republish time.
    pub fn poll_timeout(&self) -> Option<Time> {
        // Possibly the deadline of an RPC answered since: one early wake-up.
        let rpc = self.rpc_deadlines.first().map(|(t, _, _)| *t);
        let one = (!self.upkeep.queue.is_empty()).then_some(self.upkeep.next_one);
        let commit = (!self.unacked.is_empty()).then_some(self.commit_at);
        let next = [rpc, one, commit, Some(self.upkeep.next_round)]
            .into_iter()
            .flatten()
            .min();
        // The table is counted only when a refresh would be the next thing due (this runs
        // after every RPC).
        match next {
            Some(t) if t <= self.upkeep.next_refresh => Some(t),
            _ if self.table_short() => Some(self.upkeep.next_refresh),
            next => next,
        }
    }

    /// Commit the store's batch. The acknowledgements that waited for it go out now if the
    /// store committed at once (status 2, "not stored", if it failed), or when the driver
    /// reports the batch durable ([`Dht::durable`]).
    pub(super) fn commit(&mut self) {
        let acks = std::mem::take(&mut self.unacked);
        match self.store.commit() {
            Ok(Commit::Done) => self.acknowledge(acks, 0),
            Ok(Commit::Started(batch)) => {
                if !acks.is_empty() {
                    self.in_flight.push_back((batch, acks));
                }
            }
            Err(_) => self.acknowledge(acks, 2),
        }
        self.stats.commits += 1;
    }

    /// The store's batch `batch` (and every one before it) became durable, or failed: send
    /// the acknowledgements that waited for it.
    pub fn durable(&mut self, batch: u64, ok: bool) {
        self.store.durable(batch, ok);
        while self.in_flight.front().is_some_and(|(b, _)| *b <= batch) {
            if let Some((_, acks)) = self.in_flight.pop_front() {
                self.acknowledge(acks, if ok { 0 } else { 2 });
            }
        }
    }

    fn acknowledge(&mut self, acks: Vec<(NodeId, u32)>, status: u8) {
        for (to, id) in acks {
            self.actions.push_back(DhtAction::Send {
                to,
                msg: DhtMsg::Stored { id, status },
            });
        }
    }

    /// Stores acknowledged only once their batch is durable.
    pub fn unacknowledged(&self) -> usize {
        self.unacked.len() + self.in_flight.iter().map(|(_, a)| a.len()).sum::<usize>()
    }

    /// Tasks of this republishing round not yet done.
    pub fn republish_backlog(&self) -> usize {
        self.upkeep.queue.len()
    }

    /// Time out RPCs; republish held records and renew blocks when due
    /// (`06-dht.md#republishing`).
    pub fn handle_timeout(&mut self, now: Time, wall: WallTime) {
        if !self.unacked.is_empty() && now >= self.commit_at {
            self.commit();
        }
        while let Some(&(t, to, rpc)) = self.rpc_deadlines.first() {
            if t > now {
                break;
            }
            self.rpc_deadlines.pop_first();
            // Only if still unanswered, and this is its deadline (ids wrap).
            let late = self.pending.get(&(to, rpc)).filter(|(_, d)| *d == t);
            if let Some(&(lid, _)) = late {
                self.pending.remove(&(to, rpc));
                self.table.failed(to);
                self.fail_rpc(now, lid, to);
            }
        }
        if now >= self.upkeep.next_refresh {
            self.upkeep.next_refresh = now + REFRESH;
            if self.table_short() {
                self.rejoin(now);
            }
        }
        if now >= self.upkeep.next_round {
            self.start_round(now, wall);
        }
        let mut started = 0;
        while self.upkeep.next_one <= now && started < 16 {
            let Some(task) = self.upkeep.queue.pop_front() else {
                break;
            };
            started += 1;
            self.upkeep.next_one = self.upkeep.next_one + self.upkeep.gap;
            match task {
                Task::Republish(kind, key) => {
                    // With the lifetime it has here, never longer (`06-dht.md#lifetime`).
                    let held = self.store.info(kind, &key, wall);
                    if let (Some(info), Some(record)) = (held, self.store.get(kind, &key, wall)) {
                        self.stats.republished += 1;
                        self.start(now, wall, key, Goal::Store(record, info.expires));
                    }
                }
                Task::Renew(key, until) => {
                    self.stats.renewals += 1;
                    self.start(now, wall, key, Goal::Refresh(RecordKind::BLOCK, until));
                }
            }
        }
    }

    /// Whether the routing table holds fewer than k of the other relays known.
    fn table_short(&self) -> bool {
        let others = self
            .known
            .len()
            .saturating_sub(usize::from(self.known.contains_key(&self.me)));
        self.table.len() < self.cfg.k.min(others)
    }

    /// Join again from up to 8 random known relays (`06-dht.md#joining`).
    fn rejoin(&mut self, now: Time) {
        let n = self.known.len() as u64;
        let seeds: Vec<NodeId> = (0..8)
            .filter_map(|_| {
                let i = usize::try_from(self.upkeep.rng.below(n)).ok()?;
                self.known.keys().nth(i).copied()
            })
            .collect();
        self.stats.rejoins += 1;
        self.bootstrap(now, &seeds);
    }

    /// A round starts every interval: drop what expired, then queue every held record not
    /// stored here by another node during the last interval and, for each such manifest, its
    /// blocks if this node has not renewed them for [`BLOCK_RENEWAL`]; the tasks go out in a random order, evenly
    /// spread over the interval, never all at once (a relay holding many would stall every
    /// other relay, and holders of one record would republish it together).
    fn start_round(&mut self, now: Time, wall: WallTime) {
        let interval = self.cfg.republish_interval;
        self.upkeep.next_round = now + interval;
        self.store.expire(wall);
        self.commit();
        let keys = self.store.keys();
        let manifests: BTreeSet<[u8; 32]> = keys
            .iter()
            .filter(|(kind, _)| kind.is_versioned())
            .map(|(_, key)| *key)
            .collect();
        let up = &mut self.upkeep;
        up.stored.retain(|_, t| now.saturating_since(*t) < interval);
        up.renewed.retain(|key, _| manifests.contains(key));
        let mut tasks = Vec::with_capacity(keys.len());
        let mut renewing = BTreeSet::new();
        for (kind, key) in keys {
            if self.upkeep.stored.contains_key(&(kind, key)) {
                // Another holder republished it, and renews its blocks.
                self.stats.republish_skipped += 1;
                continue;
            }
            tasks.push(Task::Republish(kind, key));
            let due = self
                .upkeep
                .renewed
                .get(&key)
                .is_none_or(|t| wall.0.saturating_sub(t.0) >= BLOCK_RENEWAL);
            if !kind.is_versioned() || !due {
                continue;
            }
            let held = self.store.info(kind, &key, wall);
            if let (Some(info), Some(record)) = (held, self.store.get(kind, &key, wall)) {
                let until = WallTime(
                    info.expires
                        .0
                        .min(wall.0.saturating_add(MAX_BLOCK_LIFETIME)),
                );
                for block in self.validator.references(&record) {
                    if renewing.insert(block) {
                        tasks.push(Task::Renew(block, until));
                    }
                }
                self.upkeep.renewed.insert(key, wall);
            }
        }
        shuffle(&mut tasks, &mut self.upkeep.rng);
        let n = u32::try_from(tasks.len()).unwrap_or(u32::MAX);
        self.upkeep.gap = interval / n.saturating_add(1);
        self.upkeep.next_one = now;
        self.upkeep.queue = tasks.into();
    }
}
