//! The storer's side of the DHT (`protocol-spec/06-dht.md#store`, `#lifetime`): `STORE`
//! (validate, keep until the time asked within the lifetime rules) and `TOUCH` (keep a held
//! record longer), each answered `STORED` only once the store made it durable.
//! Not in this module: lookups (`super`), the record store itself (`super::store`).

use super::store::{self, RecordInfo, RecordStore, StoreError};
use super::{COMMIT_BATCH, COMMIT_DELAY, Dht, DhtAction};
use crate::crypto::keys::NodeId;
use crate::time::{Time, WallTime};
use crate::wire::dht_msg::{DhtMsg, Record, RecordKind};
use crate::wire::seen::EquivocationProof;

/// `STORED` statuses (`06-dht.md#rpcs`).
mod status {
    pub const STORED: u8 = 0;
    pub const INVALID: u8 = 1;
    pub const NOT_STORED: u8 = 2;
    pub const OLDER: u8 = 3;
    pub const NOT_HELD: u8 = 4;
}

impl Dht {
    /// A `STORE` from `from`: kept until `expires` within the lifetime rules.
    pub(super) fn on_store(
        &mut self,
        now: Time,
        wall: WallTime,
        from: NodeId,
        id: u32,
        record: &Record,
        expires: WallTime,
    ) {
        self.stats.rpcs_in += 1;
        let checked = self.validator.validate(record, wall).ok().and_then(|info| {
            store::keep_until(record.kind, info.expires, expires, wall).map(|until| RecordInfo {
                expires: until,
                ..info
            })
        });
        let st = match checked {
            None => {
                self.stats.invalid_records += 1;
                status::INVALID
            }
            Some(info) => self.put_status(wall, record, info),
        };
        if st == status::STORED {
            self.stored_by_other(record.kind, record.key, now);
        }
        self.answer_store(now, from, id, st);
    }

    /// A `TOUCH` from `from`: keep the record held under `key` until `expires` (a block at
    /// most 30 days from now; a manifest lives by its own expiry and is only confirmed).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_touch(
        &mut self,
        now: Time,
        wall: WallTime,
        from: NodeId,
        id: u32,
        kind: RecordKind,
        key: [u8; 32],
        expires: WallTime,
    ) {
        self.stats.rpcs_in += 1;
        // The time it may be kept, ignoring what is held: a block's is capped at 30 days.
        let asked = store::keep_until(kind, WallTime(u64::MAX), expires, wall);
        let st = match (self.store.info(kind, &key, wall), asked) {
            (None, _) => status::NOT_HELD,
            (Some(_), None) => status::INVALID,
            // A manifest lives by its own signed expiry: only confirmed.
            (Some(_), Some(_)) if kind.is_versioned() => status::STORED,
            // Longer, never shorter.
            (Some(held), Some(until)) if until <= held.expires => status::STORED,
            (Some(held), Some(until)) => match self.store.get(kind, &key, wall) {
                Some(record) => self.put_status(
                    wall,
                    &record,
                    RecordInfo {
                        expires: until,
                        ..held
                    },
                ),
                None => status::NOT_HELD,
            },
        };
        self.answer_store(now, from, id, st);
    }

    fn put_status(&mut self, wall: WallTime, record: &Record, info: RecordInfo) -> u8 {
        match self.store.put(record, info, false) {
            Ok(_) => status::STORED,
            Err(StoreError::Quota | StoreError::Backend) => status::NOT_STORED,
            Err(StoreError::Equivocation) => {
                // Both are valid and signed by one key: kept as proof, the first stays in
                // use (`06-dht.md#store`).
                if let Some(held) = self.store.get(record.kind, &record.key, wall) {
                    let proof = EquivocationProof {
                        first: held.value,
                        second: record.value.clone(),
                    };
                    if self.store.keep_proof(proof) {
                        self.stats.proofs_kept += 1;
                    }
                }
                status::OLDER
            }
            Err(StoreError::Older) => status::OLDER,
        }
    }

    /// Work on the store from the node itself (a relay's pins): the writes are committed
    /// at once, like a batch of stores.
    pub fn with_store<R>(&mut self, f: impl FnOnce(&mut dyn RecordStore) -> R) -> R {
        let r = f(self.store.as_mut());
        self.commit();
        r
    }

    /// Answer a `STORE` or `TOUCH`: "stored" only once durable, so with a deferred store
    /// the answer waits for its batch's commit (`06-dht.md#store`).
    fn answer_store(&mut self, now: Time, from: NodeId, id: u32, st: u8) {
        if st == status::STORED && self.store.deferred() {
            if self.unacked.is_empty() {
                self.commit_at = now + COMMIT_DELAY;
            }
            self.unacked.push((from, id));
            if self.store.pending() >= COMMIT_BATCH {
                self.commit();
            }
        } else {
            self.actions.push_back(DhtAction::Send {
                to: from,
                msg: DhtMsg::Stored { id, status: st },
            });
        }
    }
}
