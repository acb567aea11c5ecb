//! A storer's memory of manifest versions it no longer holds
//! (`protocol-spec/06-dht.md#store`, `07-sites.md#rollback-and-equivocation`).
//!
//! A store compares a new manifest with the one it holds: lower sequences are refused. Once
//! the held one is evicted (quota) or expires, that comparison has nothing to compare with,
//! and an attacker who floods the quota can re-store an old manifest and roll a site back.
//! So when a manifest leaves the store, its version (sequence and digest, 80 bytes) stays
//! here, and a later put is checked against it too. At most [`CAPACITY`] versions are kept,
//! the oldest forgotten first.
//! Not in this module: records themselves, quotas, persistence (the stores do that).

use std::collections::{BTreeMap, BTreeSet};

use super::store::RecordInfo;

/// Versions remembered at most (about 10 MiB).
pub const CAPACITY: usize = 131_072;

/// Versions of manifests no longer held, by key.
#[derive(Debug, Clone, Default)]
pub struct HighWater {
    versions: BTreeMap<[u8; 32], (RecordInfo, u64)>,
    order: BTreeSet<(u64, [u8; 32])>,
    clock: u64,
}

impl HighWater {
    /// The manifest under `key` left the store: remember its version (the higher one, if
    /// one is remembered already). Returns the key forgotten to make room, if any.
    pub fn remember(&mut self, key: [u8; 32], info: RecordInfo) -> Option<[u8; 32]> {
        if let Some((held, _)) = self.versions.get(&key) {
            if held.seq >= info.seq {
                return None;
            }
        }
        self.clock += 1;
        if let Some((_, at)) = self.versions.insert(key, (info, self.clock)) {
            self.order.remove(&(at, key));
        }
        self.order.insert((self.clock, key));
        if self.versions.len() > CAPACITY {
            let (_, gone) = self.order.pop_first()?;
            self.versions.remove(&gone);
            return Some(gone);
        }
        None
    }

    /// The version remembered for `key`.
    pub fn get(&self, key: &[u8; 32]) -> Option<&RecordInfo> {
        self.versions.get(key).map(|(i, _)| i)
    }
}
