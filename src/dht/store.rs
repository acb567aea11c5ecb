//! Record storage (`protocol-spec/06-dht.md#store`): the [`RecordStore`] trait and an
//! in-memory implementation with a quota, pinned records that are never evicted, and
//! least-recently-used eviction of the rest. The on-disk store (redb) implements the same
//! trait in the runtime.

use std::collections::BTreeMap;

use super::highwater::HighWater;
use crate::time::WallTime;
use crate::wire::dht_msg::{Record, RecordKind};

/// Bytes a record costs in a store's quota besides its value: its key, kind, version and
/// the store's own index and bookkeeping (`06-dht.md#store`; measured with redb at about
/// 242 bytes a record).
pub const RECORD_OVERHEAD: u64 = 256;

/// The longest a storer keeps a block past the `STORE` that brought it (`06-dht.md#lifetime`):
/// the lifetime `umbra publish` gives a site.
pub const MAX_BLOCK_LIFETIME: u64 = 30 * 24 * 3600;

/// Until when a storer keeps a record (`06-dht.md#lifetime`): a manifest until its own signed
/// `expires` (`signed`); a block until the `expires` its `STORE` asked for, at most
/// [`MAX_BLOCK_LIFETIME`] from `now`. `None`: the asked time has passed (refused).
pub fn keep_until(
    kind: RecordKind,
    signed: WallTime,
    asked: WallTime,
    now: WallTime,
) -> Option<WallTime> {
    if asked <= now {
        return None;
    }
    Some(if kind == RecordKind::MANIFEST {
        signed
    } else {
        signed
            .min(asked)
            .min(WallTime(now.0.saturating_add(MAX_BLOCK_LIFETIME)))
    })
}

/// What a record of `value_len` bytes costs in a quota.
pub fn record_cost(value_len: usize) -> u64 {
    value_len as u64 + RECORD_OVERHEAD
}

/// What validation learned about a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordInfo {
    /// When it expires.
    pub expires: WallTime,
    /// Its sequence (manifests; 0 for blocks).
    pub seq: u64,
    /// BLAKE3 of the value (tells two values apart).
    pub digest: [u8; 32],
}

/// The outcome of a put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored (new or newer).
    Stored,
    /// Already held.
    Same,
}

/// What [`RecordStore::commit`] did with the writes so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// They are durable now.
    Done,
    /// They are being made durable as batch `n`, off the caller's thread; the driver reports
    /// the outcome through [`RecordStore::durable`] (`06-dht.md#store`).
    Started(u64),
}

/// Why a put was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Over quota even after evicting everything evictable.
    #[error("storage quota reached")]
    Quota,
    /// A lower sequence than the record held (`07-sites.md#rollback-and-equivocation`).
    #[error("older than the record held")]
    Older,
    /// Same sequence, different value: equivocation; the first stays.
    #[error("equivocation: same sequence, different value")]
    Equivocation,
    /// The backing store failed.
    #[error("storage failure")]
    Backend,
}

/// Where a node keeps records.
pub trait RecordStore: Send + std::fmt::Debug {
    /// The record of `kind` under `key`, if held and not expired at `now`.
    fn get(&mut self, kind: RecordKind, key: &[u8; 32], now: WallTime) -> Option<Record>;
    /// Keep a validated record; `pinned` records are never evicted.
    fn put(
        &mut self,
        record: &Record,
        info: RecordInfo,
        pinned: bool,
    ) -> Result<PutOutcome, StoreError>;
    /// What validation learned about the record of `kind` under `key`, if held and not
    /// expired at `now` (no read of the value).
    fn info(&self, kind: RecordKind, key: &[u8; 32], now: WallTime) -> Option<RecordInfo>;
    /// Whether `put` may return before its record is durable; then a put may be
    /// acknowledged only after [`RecordStore::commit`] returned `Ok` (`06-dht.md#store`).
    fn deferred(&self) -> bool {
        false
    }
    /// Make every write so far durable, in one transaction: at once, or as a batch whose
    /// outcome comes back later through [`RecordStore::durable`].
    fn commit(&mut self) -> Result<Commit, StoreError> {
        Ok(Commit::Done)
    }
    /// Batch `batch` (and every batch before it) is durable (`ok`) or failed; a failed
    /// batch's writes are kept for the next commit.
    fn durable(&mut self, _batch: u64, _ok: bool) {}
    /// Writes waiting for [`RecordStore::commit`].
    fn pending(&self) -> usize {
        0
    }
    /// Drop expired records.
    fn expire(&mut self, now: WallTime);
    /// Every held (kind, key), for republishing.
    fn keys(&self) -> Vec<(RecordKind, [u8; 32])>;
    /// Bytes used.
    fn used(&self) -> u64;
    /// Records held.
    fn count(&self) -> usize;
    /// Keep a small named piece of node state (peers, guards); stores without persistence
    /// may ignore it.
    fn put_state(&mut self, _name: &str, _value: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }
    /// A named piece of node state kept earlier.
    fn get_state(&self, _name: &str) -> Option<Vec<u8>> {
        None
    }
}

/// What a put must do given the record already held (`07-sites.md#rollback-and-equivocation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// Nothing held, or a higher sequence: write it.
    Write,
    /// The same record: only refresh (and pin, if asked).
    Same,
}

/// Check a put of a record no longer held against the version remembered for it
/// ([`super::highwater`]): lower sequences and equivocation are refused, anything else may
/// be written.
pub fn against_remembered(
    remembered: Option<&RecordInfo>,
    new: &RecordInfo,
) -> Result<(), StoreError> {
    replacement(remembered, new).map(|_| ())
}

/// Decide a put against the held record's info: a lower sequence is refused, the same
/// sequence with another value is equivocation (the first stays). Every store uses this.
pub fn replacement(held: Option<&RecordInfo>, new: &RecordInfo) -> Result<Replace, StoreError> {
    match held {
        None => Ok(Replace::Write),
        Some(h) if new.seq < h.seq => Err(StoreError::Older),
        Some(h) if new.seq == h.seq && new.digest != h.digest => Err(StoreError::Equivocation),
        Some(h) if new.seq == h.seq => Ok(Replace::Same),
        Some(_) => Ok(Replace::Write),
    }
}

#[derive(Debug, Clone)]
struct Held {
    record: Record,
    info: RecordInfo,
    pinned: bool,
    last_used: u64,
}

/// An in-memory store with a quota and LRU eviction.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    map: BTreeMap<(RecordKind, [u8; 32]), Held>,
    quota: u64,
    used: u64,
    clock: u64,
    /// Versions of manifests evicted or expired.
    gone: HighWater,
}

impl MemoryStore {
    /// A store holding at most `quota` bytes of values.
    pub fn new(quota: u64) -> Self {
        MemoryStore {
            map: BTreeMap::new(),
            quota,
            used: 0,
            clock: 0,
            gone: HighWater::default(),
        }
    }

    fn drop_record(&mut self, k: &(RecordKind, [u8; 32])) {
        if let Some(h) = self.map.remove(k) {
            self.used -= record_cost(h.record.value.len());
            if k.0 == RecordKind::MANIFEST {
                self.gone.remember(k.1, h.info);
            }
        }
    }

    fn evict_for(&mut self, need: u64) -> bool {
        while self.used + need > self.quota {
            let victim = self
                .map
                .iter()
                .filter(|(_, h)| !h.pinned)
                .min_by_key(|(_, h)| h.last_used)
                .map(|(k, _)| *k);
            match victim {
                Some(k) => self.drop_record(&k),
                None => return false,
            }
        }
        true
    }
}

impl RecordStore for MemoryStore {
    fn get(&mut self, kind: RecordKind, key: &[u8; 32], now: WallTime) -> Option<Record> {
        self.clock += 1;
        let clock = self.clock;
        let h = self.map.get_mut(&(kind, *key))?;
        if h.info.expires <= now {
            return None;
        }
        h.last_used = clock;
        Some(h.record.clone())
    }

    fn info(&self, kind: RecordKind, key: &[u8; 32], now: WallTime) -> Option<RecordInfo> {
        let h = self.map.get(&(kind, *key))?;
        (h.info.expires > now).then_some(h.info)
    }

    fn put(
        &mut self,
        record: &Record,
        info: RecordInfo,
        pinned: bool,
    ) -> Result<PutOutcome, StoreError> {
        self.clock += 1;
        let k = (record.kind, record.key);
        if !self.map.contains_key(&k) && k.0 == RecordKind::MANIFEST {
            against_remembered(self.gone.get(&k.1), &info)?;
        }
        if let Some(h) = self.map.get_mut(&k) {
            if replacement(Some(&h.info), &info)? == Replace::Same {
                // The same record again: pin it if asked, and keep it longer if asked, never
                // shorter (`06-dht.md#lifetime`).
                h.pinned |= pinned;
                h.info.expires = h.info.expires.max(info.expires);
                h.last_used = self.clock;
                return Ok(PutOutcome::Same);
            }
            let old = self
                .map
                .remove(&k)
                .map_or(0, |h| record_cost(h.record.value.len()));
            self.used -= old;
        }
        let need = record_cost(record.value.len());
        if !self.evict_for(need) {
            return Err(StoreError::Quota);
        }
        self.used += need;
        self.map.insert(
            k,
            Held {
                record: record.clone(),
                info,
                pinned,
                last_used: self.clock,
            },
        );
        Ok(PutOutcome::Stored)
    }

    fn expire(&mut self, now: WallTime) {
        let gone: Vec<_> = self
            .map
            .iter()
            .filter(|(_, h)| h.info.expires <= now)
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            self.drop_record(&k);
        }
    }

    fn keys(&self) -> Vec<(RecordKind, [u8; 32])> {
        self.map.keys().copied().collect()
    }

    fn used(&self) -> u64 {
        self.used
    }

    fn count(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::{MemoryStore, PutOutcome, RecordInfo, RecordStore, StoreError};
    use crate::time::WallTime;
    use crate::wire::dht_msg::{Record, RecordKind};

    fn rec(key: u8, len: usize) -> (Record, RecordInfo) {
        (
            Record {
                kind: RecordKind::BLOCK,
                key: [key; 32],
                value: vec![key; len],
            },
            RecordInfo {
                expires: WallTime(100),
                seq: 0,
                digest: [key; 32],
            },
        )
    }

    #[test]
    fn quota_lru_and_pinning() {
        // Two 40-byte records and their overhead fit; a third does not.
        let mut s = MemoryStore::new(600);
        let (a, ai) = rec(1, 40);
        let (b, bi) = rec(2, 40);
        let (c, ci) = rec(3, 40);
        s.put(&a, ai, true).unwrap();
        s.put(&b, bi, false).unwrap();
        assert_eq!(s.put(&b, bi, false), Ok(PutOutcome::Same));
        s.put(&c, ci, false).unwrap(); // evicts b (a is pinned)
        assert!(s.get(RecordKind::BLOCK, &[1; 32], WallTime(0)).is_some());
        assert!(s.get(RecordKind::BLOCK, &[2; 32], WallTime(0)).is_none());
        let (d, di) = rec(4, 90);
        assert_eq!(s.put(&d, di, false), Err(StoreError::Quota));
        s.expire(WallTime(100));
        assert_eq!(s.used(), 0);
    }

    /// Issue 12, finding 4: 3-byte records are charged what they cost, not 3 bytes.
    #[test]
    fn tiny_records_are_charged_their_real_cost() {
        let mut s = MemoryStore::new(10 * 1024);
        let mut stored = 0;
        for k in 0..=255u8 {
            let (r, i) = rec(k, 3);
            if s.put(&r, i, false).is_ok() {
                stored += 1;
            }
        }
        assert!(s.used() <= 10 * 1024);
        assert_eq!(s.count(), (10 * 1024 / super::record_cost(3)) as usize);
        assert_eq!(stored, 256, "older records were evicted to make room");
    }

    #[test]
    fn sequences_only_go_up() {
        let mut s = MemoryStore::new(1000);
        let r = Record {
            kind: RecordKind::MANIFEST,
            key: [1; 32],
            value: vec![1],
        };
        let info = |seq, d| RecordInfo {
            expires: WallTime(100),
            seq,
            digest: [d; 32],
        };
        s.put(&r, info(2, 1), false).unwrap();
        assert_eq!(s.put(&r, info(1, 2), false), Err(StoreError::Older));
        assert_eq!(s.put(&r, info(2, 3), false), Err(StoreError::Equivocation));
        assert_eq!(s.put(&r, info(3, 4), false), Ok(PutOutcome::Stored));
    }

    /// The storer rule after eviction (`06-dht.md#store`), for any store whose quota is
    /// 600 bytes (two small records): a manifest pushed out by a flood of blocks cannot come
    /// back older.
    pub(crate) fn no_rollback_after_eviction(s: &mut dyn RecordStore) {
        let m = |seq: u64, d: u8| {
            (
                Record {
                    kind: RecordKind::MANIFEST,
                    key: [9; 32],
                    value: vec![d; 30],
                },
                RecordInfo {
                    expires: WallTime(1000),
                    seq,
                    digest: [d; 32],
                },
            )
        };
        let (v1, i1) = m(1, 1);
        let (v2, i2) = m(2, 2);
        s.put(&v1, i1, false).unwrap();
        s.put(&v2, i2, false).unwrap();
        // The flood: blocks until the manifest is evicted.
        for k in 10..20 {
            let (b, bi) = rec(k, 40);
            s.put(&b, bi, false).unwrap();
        }
        assert!(s.get(RecordKind::MANIFEST, &[9; 32], WallTime(0)).is_none());
        // The old version is still refused; the same one or a newer one is taken again.
        assert_eq!(s.put(&v1, i1, false), Err(StoreError::Older));
        let (other, oi) = m(2, 7);
        assert_eq!(s.put(&other, oi, false), Err(StoreError::Equivocation));
        assert_eq!(s.put(&v2, i2, false), Ok(PutOutcome::Stored));
        // Expiry forgets the record, not its version.
        s.expire(WallTime(1000));
        assert_eq!(s.put(&v1, i1, false), Err(StoreError::Older));
        let (v3, i3) = m(3, 3);
        assert_eq!(s.put(&v3, i3, false), Ok(PutOutcome::Stored));
    }

    #[test]
    fn memory_store_never_rolls_back_after_eviction() {
        no_rollback_after_eviction(&mut MemoryStore::new(600));
    }
}
