//! Record storage (`protocol-spec/06-dht.md#store`): the [`RecordStore`] trait, the
//! replacement rule, and an in-memory implementation. Quota, least-recently-used eviction,
//! pinning, expiry and the memory of manifest versions are one policy,
//! [`super::record_index::RecordIndex`], which this store and the runtime's on-disk (redb)
//! store both use.

use std::collections::BTreeMap;

use super::highwater::Proofs;
use super::record_index::{Admission, RecordIndex, RecordKey, Removed};
use crate::time::WallTime;
use crate::wire::dht_msg::{Record, RecordKind};
use crate::wire::seen::EquivocationProof;

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
    Some(if kind.is_versioned() {
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

impl crate::error::HasKind for StoreError {
    fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            StoreError::Quota => ErrorKind::ResourceLimit,
            StoreError::Older | StoreError::Equivocation => ErrorKind::PeerProtocolViolation,
            StoreError::Backend => ErrorKind::LocalIo,
        }
    }
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
    /// Release a pinned record (`07-sites.md#pinning`): LRU and expiry apply to it again,
    /// and it is kept no longer than `expires`. Returns whether it was pinned here.
    fn unpin(&mut self, kind: RecordKind, key: &[u8; 32], expires: WallTime) -> bool;
    /// Keep proof that a manifest's key signed two values with one sequence: the one held
    /// and the one refused (`06-dht.md#store`). Returns whether it is new.
    fn keep_proof(&mut self, proof: EquivocationProof) -> bool;
    /// The proofs kept, oldest first.
    fn proofs(&self) -> &[EquivocationProof];
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

/// An in-memory store: values in a map, every decision by a [`RecordIndex`].
#[derive(Debug, Clone)]
pub struct MemoryStore {
    values: BTreeMap<RecordKey, Record>,
    index: RecordIndex,
    proofs: Proofs,
    state: BTreeMap<String, Vec<u8>>,
}

impl MemoryStore {
    /// A store holding at most `quota` bytes of records (pinned ones aside).
    pub fn new(quota: u64) -> Self {
        MemoryStore {
            values: BTreeMap::new(),
            index: RecordIndex::new(quota),
            proofs: Proofs::default(),
            state: BTreeMap::new(),
        }
    }

    fn drop_values(&mut self, removed: &[Removed]) {
        for r in removed {
            self.values.remove(&r.key);
        }
    }
}

impl RecordStore for MemoryStore {
    fn keep_proof(&mut self, proof: EquivocationProof) -> bool {
        self.proofs.add(proof).0
    }

    fn proofs(&self) -> &[EquivocationProof] {
        self.proofs.list()
    }

    fn get(&mut self, kind: RecordKind, key: &[u8; 32], now: WallTime) -> Option<Record> {
        self.index.touch(&(kind, *key), now)?;
        self.values.get(&(kind, *key)).cloned()
    }

    fn info(&self, kind: RecordKind, key: &[u8; 32], now: WallTime) -> Option<RecordInfo> {
        self.index.info(&(kind, *key), now)
    }

    fn put(
        &mut self,
        record: &Record,
        info: RecordInfo,
        pinned: bool,
    ) -> Result<PutOutcome, StoreError> {
        let k = (record.kind, record.key);
        match self.index.admit(k, info, pinned, record.value.len())? {
            Admission::Same | Admission::Extended { .. } => Ok(PutOutcome::Same),
            Admission::Write { evicted } => {
                self.drop_values(&evicted);
                self.values.insert(k, record.clone());
                Ok(PutOutcome::Stored)
            }
        }
    }

    fn put_state(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.state.insert(name.to_string(), value.to_vec());
        Ok(())
    }

    fn get_state(&self, name: &str) -> Option<Vec<u8>> {
        self.state.get(name).cloned()
    }

    fn unpin(&mut self, kind: RecordKind, key: &[u8; 32], expires: WallTime) -> bool {
        self.index.unpin(&(kind, *key), expires).is_some()
    }

    fn expire(&mut self, now: WallTime) {
        let gone = self.index.expire(now);
        self.drop_values(&gone);
    }

    fn keys(&self) -> Vec<(RecordKind, [u8; 32])> {
        self.index.keys()
    }

    fn used(&self) -> u64 {
        self.index.used()
    }

    fn count(&self) -> usize {
        self.index.count()
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

    /// The one policy (`dht::record_index`), for any store whose quota is 600 bytes (two
    /// 40-byte records and their overhead). Issue 13: the memory and redb stores diverged
    /// here (memory evicted, then refused, losing the record a refused put would have
    /// replaced; it refused pinned records over quota, redb kept them).
    pub(crate) fn one_policy(s: &mut dyn RecordStore) {
        let manifest = |seq: u64, len: usize, expires: u64| {
            (
                Record {
                    kind: RecordKind::MANIFEST,
                    key: [7; 32],
                    value: vec![seq as u8; len],
                },
                RecordInfo {
                    expires: WallTime(expires),
                    seq,
                    digest: [seq as u8; 32],
                },
            )
        };
        let (a, ai) = rec(1, 40);
        let (m1, i1) = manifest(1, 40, 100);
        s.put(&a, ai, true).unwrap();
        s.put(&m1, i1, false).unwrap();
        // A newer manifest that does not fit is refused before anything changes: the
        // version it would have replaced is still served.
        let (m2, i2) = manifest(2, 100, 100);
        assert_eq!(s.put(&m2, i2, false), Err(StoreError::Quota));
        assert_eq!(
            s.get(RecordKind::MANIFEST, &[7; 32], WallTime(0)),
            Some(m1.clone())
        );
        // The same record again only grows: pinned now, kept longer, never shorter.
        let longer = RecordInfo {
            expires: WallTime(500),
            ..i1
        };
        assert_eq!(s.put(&m1, longer, true), Ok(PutOutcome::Same));
        assert_eq!(s.put(&m1, i1, false), Ok(PutOutcome::Same));
        assert_eq!(
            s.info(RecordKind::MANIFEST, &[7; 32], WallTime(0))
                .map(|i| i.expires),
            Some(WallTime(500))
        );
        // A pinned record is kept past the quota (pins are the operator's own choice); an
        // unpinned one finds nothing to evict and is refused.
        let (b, bi) = rec(2, 40);
        assert_eq!(s.put(&b, bi, true), Ok(PutOutcome::Stored));
        assert!(s.used() > 600);
        let (c, ci) = rec(3, 1);
        assert_eq!(s.put(&c, ci, false), Err(StoreError::Quota));
        // Expiry drops records by their own time: the blocks at 100, the manifest at 500.
        s.expire(WallTime(100));
        assert_eq!(s.count(), 1);
        assert!(
            s.get(RecordKind::MANIFEST, &[7; 32], WallTime(100))
                .is_some()
        );
        s.expire(WallTime(500));
        assert_eq!((s.count(), s.used()), (0, 0));
    }

    #[test]
    fn memory_store_follows_the_one_policy() {
        one_policy(&mut MemoryStore::new(600));
    }

    #[test]
    fn memory_store_never_rolls_back_after_eviction() {
        no_rollback_after_eviction(&mut MemoryStore::new(600));
    }
}
