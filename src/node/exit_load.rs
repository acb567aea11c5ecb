//! What the exit's `dht` service has running for readers, and its limits
//! (`protocol-spec/09-relay.md#limits`, `06-dht.md#exit-requests`).
//!
//! Every reader request becomes a DHT lookup that may end in a reply as large as the largest
//! record. Lookups are counted per circuit, per link the circuits arrived on, and for the
//! whole relay, and a request past any count, or while the replies already queued leave no
//! room, is refused `BUSY` before it is parsed further. Lookups are also rated: each
//! circuit, and the relay as a whole, may start only so many a second (token buckets), so a
//! reader whose lookups end at once cannot make the exit run lookups without pause (each
//! one costs the DHT a dozen messages, themselves held to `[limits] dht`). Each count is a
//! map entry, so admission and clean-up cost no scan of the table.
//! Not in this module: the lookups themselves (`dht`) or the reply queues (`relay::exit`).

use std::collections::{BTreeMap, BTreeSet};

use crate::dht::LookupId;
use crate::ids::LinkId;
use crate::limits::TokenBucket;
use crate::relay::CircKey;
use crate::time::Time;

/// Lookups one circuit may have running (readers pipeline up to 32 block requests).
pub(crate) const MAX_PER_CIRCUIT: usize = 32;
/// Manifest lookups one circuit may have running (each may hold a 1 MiB record).
pub(crate) const MAX_MANIFESTS_PER_CIRCUIT: usize = 2;
/// Lookups the circuits of one link may have running together.
pub(crate) const MAX_PER_LINK: usize = 256;
/// Lookups the relay runs for readers at once.
pub(crate) const MAX_PER_RELAY: usize = 512;
/// Manifest lookups the relay runs for readers at once.
pub(crate) const MAX_MANIFESTS_PER_RELAY: usize = 32;
/// Bytes of replies the relay's exit streams may have queued before new requests wait.
pub(crate) const MAX_RELAY_QUEUED: usize = 64 << 20;
/// Lookups one circuit may start a second, after a burst (a reader opening a large site
/// asks for hundreds of blocks at once).
pub(crate) const RATE_PER_CIRCUIT: (u64, u64) = (100, 400);
/// Lookups the relay starts a second for all readers, after a burst.
pub(crate) const RATE_PER_RELAY: (u64, u64) = (1000, 2000);

/// Running exit lookups: who asked, and the counts.
#[derive(Debug, Default)]
pub(crate) struct ExitLoad {
    running: BTreeMap<LookupId, (CircKey, u16, u32)>,
    by_circ: BTreeMap<CircKey, BTreeSet<LookupId>>,
    per_link: BTreeMap<LinkId, usize>,
    /// Manifest lookups, by circuit.
    manifests: BTreeMap<CircKey, BTreeSet<LookupId>>,
    manifests_total: usize,
    /// Lookups started, rated per circuit and for the relay.
    rates: BTreeMap<CircKey, TokenBucket>,
    relay_rate: Option<TokenBucket>,
}

impl ExitLoad {
    /// Whether a new request on `circ` (for a manifest: `manifest`) stays within the
    /// lookup counts.
    pub(crate) fn has_room(&self, circ: CircKey, manifest: bool) -> bool {
        let manifests_ok = !manifest
            || (self.manifests_total < MAX_MANIFESTS_PER_RELAY
                && self.manifests.get(&circ).map_or(0, BTreeSet::len) < MAX_MANIFESTS_PER_CIRCUIT);
        manifests_ok
            && self.running.len() < MAX_PER_RELAY
            && self.by_circ.get(&circ).map_or(0, BTreeSet::len) < MAX_PER_CIRCUIT
            && self.per_link.get(&circ.0).copied().unwrap_or(0) < MAX_PER_LINK
    }

    /// Lookup `lookup` runs for request `req` on `circ`'s stream `stream`.
    pub(crate) fn insert(
        &mut self,
        lookup: LookupId,
        circ: CircKey,
        stream: u16,
        req: u32,
        manifest: bool,
    ) {
        self.running.insert(lookup, (circ, stream, req));
        self.by_circ.entry(circ).or_default().insert(lookup);
        *self.per_link.entry(circ.0).or_default() += 1;
        if manifest {
            self.manifests.entry(circ).or_default().insert(lookup);
            self.manifests_total += 1;
        }
    }

    /// Lookup `lookup` finished: who asked, if anyone still waits.
    pub(crate) fn finish(&mut self, lookup: LookupId) -> Option<(CircKey, u16, u32)> {
        let (circ, stream, req) = self.running.remove(&lookup)?;
        if let Some(set) = self.by_circ.get_mut(&circ) {
            set.remove(&lookup);
            if set.is_empty() {
                self.by_circ.remove(&circ);
            }
        }
        if let Some(set) = self.manifests.get_mut(&circ) {
            if set.remove(&lookup) {
                self.manifests_total -= 1;
            }
            if set.is_empty() {
                self.manifests.remove(&circ);
            }
        }
        if let Some(n) = self.per_link.get_mut(&circ.0) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_link.remove(&circ.0);
            }
        }
        Some((circ, stream, req))
    }

    /// Take one lookup from `circ`'s rate and the relay's, if both have one at `now`.
    pub(crate) fn take_rate(&mut self, now: Time, circ: CircKey) -> bool {
        let relay = self
            .relay_rate
            .get_or_insert_with(|| TokenBucket::new(RATE_PER_RELAY.0, RATE_PER_RELAY.1, now));
        let mine = self
            .rates
            .entry(circ)
            .or_insert_with(|| TokenBucket::new(RATE_PER_CIRCUIT.0, RATE_PER_CIRCUIT.1, now));
        if mine.available(now) < 1 || relay.available(now) < 1 {
            return false;
        }
        mine.charge(now, 1);
        relay.charge(now, 1);
        true
    }

    /// `circ` closed: its lookups, to cancel.
    pub(crate) fn circuit_gone(&mut self, circ: CircKey) -> Vec<LookupId> {
        self.rates.remove(&circ);
        let ids: Vec<LookupId> = self
            .by_circ
            .get(&circ)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for id in &ids {
            self.finish(*id);
        }
        ids
    }

    /// Lookups running.
    pub(crate) fn len(&self) -> usize {
        self.running.len()
    }
}

#[cfg(test)]
mod tests {
    use super::{ExitLoad, RATE_PER_CIRCUIT, RATE_PER_RELAY};
    use crate::ids::LinkId;
    use crate::time::Time;
    use crate::wire::cell::CircId;

    fn circ(n: u32) -> crate::relay::CircKey {
        (LinkId(u64::from(n)), CircId::new(0x8000_0000 | n).unwrap())
    }

    #[test]
    fn lookups_are_rated_per_circuit_and_for_the_relay() {
        let mut l = ExitLoad::default();
        let t0 = Time::ZERO;
        let burst = RATE_PER_CIRCUIT.1 as usize;
        let started = (0..1000).filter(|_| l.take_rate(t0, circ(1))).count();
        assert_eq!(started, burst, "a circuit's burst, then nothing at once");
        let t1 = t0 + core::time::Duration::from_secs(1);
        let more = (0..1000).filter(|_| l.take_rate(t1, circ(1))).count();
        assert_eq!(more, RATE_PER_CIRCUIT.0 as usize, "a second's rate later");
        // Many circuits together stop at the relay's burst (full again a second later, less
        // the 100 circuit 1 took).
        let all = (2..100u32)
            .map(|c| (0..1000).filter(|_| l.take_rate(t1, circ(c))).count())
            .sum::<usize>();
        assert_eq!(all + RATE_PER_CIRCUIT.0 as usize, RATE_PER_RELAY.1 as usize);
        // A closed circuit's rate is forgotten.
        l.circuit_gone(circ(1));
        assert!(!l.rates.contains_key(&circ(1)));
    }
}
