//! A storer's memory of manifest versions it no longer holds
//! (`protocol-spec/06-dht.md#store`, `07-sites.md#rollback-and-equivocation`).
//!
//! A store compares a new manifest with the one it holds: lower sequences are refused. Once
//! the held one is evicted (quota) or expires, that comparison has nothing to compare with,
//! and an attacker who floods the quota can re-store an old manifest and roll a site back.
//! So when a manifest leaves the store, its version (sequence and digest, 80 bytes) stays
//! here, and a later put is checked against it too. At most [`CAPACITY`] versions are kept,
//! the oldest forgotten first.
//! [`Proofs`] keeps the proofs of equivocation a storer caught.
//! Not in this module: records themselves, quotas, persistence (the stores do that).

use std::collections::{BTreeMap, BTreeSet};

use super::store::RecordInfo;
use crate::wire::seen::EquivocationProof;

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

/// Proofs a storer keeps at most (the oldest forgotten first).
pub const PROOFS: usize = 256;

/// A storer's proofs of equivocation (`protocol-spec/06-dht.md#store`): the manifest it held
/// and a second one with the same sequence it refused, both valid and signed by one key.
#[derive(Debug, Clone, Default)]
pub struct Proofs {
    list: Vec<EquivocationProof>,
}

impl Proofs {
    /// Keep `p` unless kept already; returns whether it is new, and the proof forgotten to
    /// make room, if any.
    pub fn add(&mut self, p: EquivocationProof) -> (bool, Option<EquivocationProof>) {
        if self.list.contains(&p) {
            return (false, None);
        }
        let gone = (self.list.len() >= PROOFS).then(|| self.list.remove(0));
        self.list.push(p);
        (true, gone)
    }

    /// The proofs, oldest first.
    pub fn list(&self) -> &[EquivocationProof] {
        &self.list
    }
}
