//! The one record-store policy (`protocol-spec/06-dht.md#store`): what a storer keeps, for
//! how long, and what makes room. Both stores (the in-memory [`super::store::MemoryStore`]
//! and the runtime's redb store) keep their values in their own way and ask a
//! [`RecordIndex`] every question of policy, so they cannot diverge:
//!
//! - **replacement**: a lower sequence is refused, the same sequence with another value is
//!   equivocation (the first stays), the same record again only pins it or extends its
//!   lifetime, never shortens it ([`super::store::replacement`]);
//! - **memory of versions**: a manifest that leaves (evicted or expired) leaves its version
//!   behind ([`HighWater`]), and a later put of a lower one is refused;
//! - **quota**: every record costs its value plus [`RECORD_OVERHEAD`]; room is made by
//!   evicting the least recently used unpinned records; the decision is taken before
//!   anything changes, so a refused put leaves the store as it was (the record it would
//!   have replaced stays);
//! - **pinning**: pinned records are never evicted, and a pinned put is kept even when
//!   evicting every unpinned record would not make room (pins are the operator's own
//!   choice; the quota bounds what others store);
//! - **expiry**: a record is not served at or after its `expires`, and [`RecordIndex::expire`]
//!   drops it.
//!
//! Eviction and expiry use ordered sets (O(log n) per record). Not in this module: values,
//! persistence, validation (the DHT validates before it stores).
//!
//! [`RECORD_OVERHEAD`]: super::store::RECORD_OVERHEAD

use std::collections::{BTreeMap, BTreeSet};

use super::highwater::HighWater;
use super::store::{RecordInfo, Replace, StoreError, against_remembered, record_cost, replacement};
use crate::time::WallTime;
use crate::wire::dht_msg::RecordKind;

/// A record's kind and key.
pub type RecordKey = (RecordKind, [u8; 32]);

#[derive(Debug, Clone, Copy)]
struct Entry {
    info: RecordInfo,
    pinned: bool,
    cost: u64,
    last_used: u64,
}

/// A record leaving the store: the store drops its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    /// Which record.
    pub key: RecordKey,
    /// What it was.
    pub info: RecordInfo,
    /// Whether a manifest's version is now remembered for it (a store that persists the
    /// remembered versions writes `info` for it).
    pub remembered: bool,
    /// A manifest whose remembered version was forgotten to make room, if any.
    pub forgotten: Option<[u8; 32]>,
}

/// What a store must do with a put the index accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Held already, with this pin and lifetime: nothing to write.
    Same,
    /// Held already; its pin or lifetime grew to these (the value is unchanged): a store
    /// that persists them writes them.
    Extended {
        /// The record's info now.
        info: RecordInfo,
        /// Whether it is pinned now.
        pinned: bool,
    },
    /// Drop `evicted`, then write the record with this info (new, or a higher sequence).
    Write {
        /// The records evicted to make room.
        evicted: Vec<Removed>,
    },
}

/// The policy state of a record store: each record's info, pin, cost and recency, the
/// quota, and the versions of manifests no longer held.
#[derive(Debug, Clone)]
pub struct RecordIndex {
    entries: BTreeMap<RecordKey, Entry>,
    /// Unpinned records by last use, least recent first.
    lru: BTreeSet<(u64, RecordKey)>,
    /// Every record by expiry, soonest first.
    by_expiry: BTreeSet<(WallTime, RecordKey)>,
    quota: u64,
    used: u64,
    clock: u64,
    gone: HighWater,
}

impl RecordIndex {
    /// An empty index for a store of `quota` bytes.
    pub fn new(quota: u64) -> RecordIndex {
        RecordIndex {
            entries: BTreeMap::new(),
            lru: BTreeSet::new(),
            by_expiry: BTreeSet::new(),
            quota,
            used: 0,
            clock: 0,
            gone: HighWater::default(),
        }
    }

    /// A record found when a store opens (its recency starts at the oldest).
    pub fn load(&mut self, key: RecordKey, info: RecordInfo, pinned: bool, value_len: usize) {
        self.remove_entry(&key);
        self.add(key, info, pinned, record_cost(value_len), 0);
    }

    /// A remembered manifest version found when a store opens.
    pub fn load_remembered(&mut self, key: [u8; 32], info: RecordInfo) {
        self.gone.remember(key, info);
    }

    /// The record's info, if held and not expired at `now` (its recency is unchanged).
    pub fn info(&self, key: &RecordKey, now: WallTime) -> Option<RecordInfo> {
        let e = self.entries.get(key)?;
        (e.info.expires > now).then_some(e.info)
    }

    /// The record is being read: its info if held and not expired, and it becomes the most
    /// recently used.
    pub fn touch(&mut self, key: &RecordKey, now: WallTime) -> Option<RecordInfo> {
        self.clock += 1;
        let clock = self.clock;
        let e = self.entries.get_mut(key)?;
        if e.info.expires <= now {
            return None;
        }
        if !e.pinned {
            self.lru.remove(&(e.last_used, *key));
            self.lru.insert((clock, *key));
        }
        e.last_used = clock;
        Some(e.info)
    }

    /// Decide a put of a validated record of `value_len` bytes and apply it to the index;
    /// the store then does what the [`Admission`] says. A refusal changes nothing.
    pub fn admit(
        &mut self,
        key: RecordKey,
        info: RecordInfo,
        pinned: bool,
        value_len: usize,
    ) -> Result<Admission, StoreError> {
        self.clock += 1;
        let held = self.entries.get(&key).copied();
        if held.is_none() && key.0.is_versioned() {
            against_remembered(self.gone.get(&key.1), &info)?;
        }
        if let Some(h) = held {
            if replacement(Some(&h.info), &info)? == Replace::Same {
                let grown = RecordInfo {
                    expires: h.info.expires.max(info.expires),
                    ..h.info
                };
                let pin = h.pinned || pinned;
                self.remove_entry(&key);
                self.add(key, grown, pin, h.cost, self.clock);
                return Ok(if grown == h.info && pin == h.pinned {
                    Admission::Same
                } else {
                    Admission::Extended {
                        info: grown,
                        pinned: pin,
                    }
                });
            }
        }
        let cost = record_cost(value_len);
        let old = held.map_or(0, |h| h.cost);
        let mut free = self.quota.saturating_sub(self.used - old);
        let mut victims = Vec::new();
        for (_, k) in &self.lru {
            if cost <= free {
                break;
            }
            if *k == key {
                continue;
            }
            if let Some(e) = self.entries.get(k) {
                victims.push(*k);
                free += e.cost;
            }
        }
        if cost > free && !pinned {
            return Err(StoreError::Quota);
        }
        let evicted = victims.iter().filter_map(|k| self.remove(k)).collect();
        self.remove_entry(&key);
        self.add(key, info, pinned, cost, self.clock);
        Ok(Admission::Write { evicted })
    }

    /// Release a pinned record: it is evicted by use again, and kept no longer than
    /// `expires` (a pin held it beyond the lifetime a `STORE` gives). Returns the new info,
    /// or `None` if it is not held or not pinned.
    pub fn unpin(&mut self, key: &RecordKey, expires: WallTime) -> Option<RecordInfo> {
        let e = self.entries.get(key).copied().filter(|e| e.pinned)?;
        let info = RecordInfo {
            expires: e.info.expires.min(expires),
            ..e.info
        };
        self.clock += 1;
        self.remove_entry(key);
        self.add(*key, info, false, e.cost, self.clock);
        Some(info)
    }

    /// Whether the record is held pinned.
    pub fn is_pinned(&self, key: &RecordKey) -> bool {
        self.entries.get(key).is_some_and(|e| e.pinned)
    }

    /// Drop every record expired at `now`; the store drops their values.
    pub fn expire(&mut self, now: WallTime) -> Vec<Removed> {
        let mut out = Vec::new();
        while let Some((at, key)) = self.by_expiry.first().copied() {
            if at > now {
                break;
            }
            if let Some(r) = self.remove(&key) {
                out.push(r);
            } else {
                self.by_expiry.remove(&(at, key));
            }
        }
        out
    }

    /// Every record held.
    pub fn keys(&self) -> Vec<RecordKey> {
        self.entries.keys().copied().collect()
    }

    /// Bytes charged.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Records held.
    pub fn count(&self) -> usize {
        self.entries.len()
    }

    /// Take a record out, remembering a manifest's version.
    fn remove(&mut self, key: &RecordKey) -> Option<Removed> {
        let e = self.remove_entry(key)?;
        let remembered = key.0.is_versioned();
        let forgotten = if remembered {
            self.gone.remember(key.1, e.info)
        } else {
            None
        };
        Some(Removed {
            key: *key,
            info: e.info,
            remembered,
            forgotten,
        })
    }

    fn add(&mut self, key: RecordKey, info: RecordInfo, pinned: bool, cost: u64, used_at: u64) {
        if !pinned {
            self.lru.insert((used_at, key));
        }
        self.by_expiry.insert((info.expires, key));
        self.used += cost;
        self.entries.insert(
            key,
            Entry {
                info,
                pinned,
                cost,
                last_used: used_at,
            },
        );
    }

    fn remove_entry(&mut self, key: &RecordKey) -> Option<Entry> {
        let e = self.entries.remove(key)?;
        self.lru.remove(&(e.last_used, *key));
        self.by_expiry.remove(&(e.info.expires, *key));
        self.used -= e.cost;
        Some(e)
    }
}
