//! What the exit's `dht` service has running for readers, and its limits
//! (`protocol-spec/09-relay.md#limits`, `06-dht.md#exit-requests`).
//!
//! Every reader request becomes a DHT lookup that may end in a reply as large as the largest
//! record. Lookups are counted per circuit, per link the circuits arrived on, and for the
//! whole relay, and a request past any count, or while the replies already queued leave no
//! room, is refused `BUSY` before it is parsed further. Each count is a map entry, so
//! admission and clean-up cost no scan of the table.
//! Not in this module: the lookups themselves (`dht`) or the reply queues (`relay::exit`).

use std::collections::{BTreeMap, BTreeSet};

use crate::dht::LookupId;
use crate::ids::LinkId;
use crate::relay::CircKey;

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

/// Running exit lookups: who asked, and the counts.
#[derive(Debug, Default)]
pub(crate) struct ExitLoad {
    running: BTreeMap<LookupId, (CircKey, u16, u32)>,
    by_circ: BTreeMap<CircKey, BTreeSet<LookupId>>,
    per_link: BTreeMap<LinkId, usize>,
    /// Manifest lookups, by circuit.
    manifests: BTreeMap<CircKey, BTreeSet<LookupId>>,
    manifests_total: usize,
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

    /// `circ` closed: its lookups, to cancel.
    pub(crate) fn circuit_gone(&mut self, circ: CircKey) -> Vec<LookupId> {
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
