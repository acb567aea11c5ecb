//! A node's memory of what it saw, in its redb store (`protocol-spec/07-sites.md#memory`):
//! the reader's highest manifest version per site and its proofs of equivocation (read into
//! a [`SiteTracker`] at start, written from its journal as it changes), and a storer's
//! proofs (the DHT's [`RecordStore::keep_proof`]).
//!
//! Records are the `crate::wire::seen` encodings: table `seen` maps a site key to a
//! [`SeenVersion`], `seen_proofs` (reader) and `proofs` (storer) map BLAKE3 of an encoded
//! [`EquivocationProof`] to it. A record that does not decode or verify is reported and
//! skipped; it never stops the node.
//! Not in this module: what the records mean (`crate::site::seen`), records of the DHT
//! (`super::store`).

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::store::RedbStore;
use crate::crypto::hash;
use crate::crypto::keys::IdentityPublic;
use crate::dht::store::StoreError;
use crate::site::address::SiteAddress;
use crate::site::{SeenChanges, SiteTracker};
use crate::wire::seen::{EquivocationProof, SeenVersion};

/// Site key → [`SeenVersion`].
pub(super) const SEEN: TableDefinition<&[u8], &[u8]> = TableDefinition::new("seen");
/// A reader's proofs: key → [`EquivocationProof`].
pub(super) const SEEN_PROOFS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("seen_proofs");
/// A storer's proofs.
pub(super) const PROOFS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("proofs");

/// What [`RedbStore::load_seen`] read back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeenLoaded {
    /// Site versions restored.
    pub versions: usize,
    /// Proofs restored.
    pub proofs: usize,
    /// Records skipped: they did not decode or verify.
    pub refused: usize,
}

fn backend<E>(_: E) -> StoreError {
    StoreError::Backend
}

/// Every (key, value) of `table` (none if it cannot be read).
pub(super) fn read_all(
    db: &Database,
    table: TableDefinition<&[u8], &[u8]>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let Ok(r) = db.begin_read() else {
        return Vec::new();
    };
    let Ok(t) = r.open_table(table) else {
        return Vec::new();
    };
    let Ok(iter) = t.iter() else {
        return Vec::new();
    };
    iter.filter_map(Result::ok)
        .map(|(k, v)| (k.value().to_vec(), v.value().to_vec()))
        .collect()
}

/// Write `proof` into `table`, durably.
pub(super) fn write_proof(
    db: &Database,
    table: TableDefinition<&[u8], &[u8]>,
    proof: &EquivocationProof,
) -> Result<(), StoreError> {
    let bytes = proof.encode();
    let txn = db.begin_write().map_err(backend)?;
    {
        let mut t = txn.open_table(table).map_err(backend)?;
        t.insert(&hash::hash(&bytes)[..], &bytes[..])
            .map_err(backend)?;
    }
    txn.commit().map_err(backend)
}

/// Remove `proof` from `table` (forgotten to make room); a failure leaves it there.
pub(super) fn remove_proof(
    db: &Database,
    table: TableDefinition<&[u8], &[u8]>,
    proof: &EquivocationProof,
) {
    let key = hash::hash(&proof.encode());
    if let Ok(txn) = db.begin_write() {
        if let Ok(mut t) = txn.open_table(table) {
            let _ = t.remove(&key[..]);
        }
        let _ = txn.commit();
    }
}

impl RedbStore {
    /// Read the reader's memory into `tracker`.
    pub fn load_seen(&self, tracker: &mut SiteTracker) -> SeenLoaded {
        let mut out = SeenLoaded::default();
        for (k, v) in read_all(self.db(), SEEN) {
            let site = <[u8; 32]>::try_from(&k[..])
                .ok()
                .and_then(|k| IdentityPublic::from_bytes(&k).ok())
                .map(SiteAddress);
            let restored = match (site, SeenVersion::decode(&v)) {
                (Some(site), Ok(rec)) => tracker.restore(&site, rec).is_ok(),
                _ => false,
            };
            if restored {
                out.versions += 1;
            } else {
                out.refused += 1;
            }
        }
        for (_, v) in read_all(self.db(), SEEN_PROOFS) {
            match EquivocationProof::decode(&v).map(|p| tracker.restore_proof(&p)) {
                Ok(Ok(())) => out.proofs += 1,
                _ => out.refused += 1,
            }
        }
        if out.refused > 0 {
            tracing::warn!(
                "{} records of seen manifests did not verify and were skipped",
                out.refused
            );
        }
        out
    }

    /// Write what the tracker changed, durably, in one transaction.
    pub fn save_seen(&self, changes: &SeenChanges) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let txn = self.db().begin_write().map_err(backend)?;
        {
            let mut t = txn.open_table(SEEN).map_err(backend)?;
            for (k, v) in &changes.versions {
                match v {
                    Some(v) => t.insert(&k[..], &v.encode()[..]).map(|_| ()),
                    None => t.remove(&k[..]).map(|_| ()),
                }
                .map_err(backend)?;
            }
            let mut p = txn.open_table(SEEN_PROOFS).map_err(backend)?;
            for proof in &changes.proofs {
                let bytes = proof.encode();
                p.insert(&hash::hash(&bytes)[..], &bytes[..])
                    .map_err(backend)?;
            }
        }
        txn.commit().map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::{SEEN, SeenLoaded};
    use crate::crypto::keys::IdentityKey;
    use crate::runtime::store::RedbStore;
    use crate::site::address::SiteAddress;
    use crate::site::manifest::parse;
    use crate::site::{SiteError, SiteTracker, build};
    use crate::time::WallTime;
    use redb::ReadableTable;

    fn version(k: &IdentityKey, seq: u64, c: &[u8]) -> crate::site::manifest::Verified {
        let b = build(k, &[("a".into(), c.to_vec())], seq, WallTime(1000), 3600).unwrap();
        parse(&b.manifest)
            .unwrap()
            .verify(&SiteAddress(k.public()), WallTime(1001))
            .unwrap()
    }

    #[test]
    fn a_reopened_store_remembers_the_highest_version_and_the_proofs() {
        let dir = std::env::temp_dir().join(format!("umbra-seen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("cache.redb");
        let k = IdentityKey::from_secret_bytes([7; 32]);
        let addr = SiteAddress(k.public());
        {
            let store = RedbStore::open(&path, 1 << 20).unwrap();
            let mut t = SiteTracker::new();
            assert_eq!(store.load_seen(&mut t), SeenLoaded::default());
            t.observe(&version(&k, 5, b"five")).unwrap();
            t.observe(&version(&k, 5, b"other five")).unwrap();
            store.save_seen(&t.take_changes()).unwrap();
        }
        let store = RedbStore::open(&path, 1 << 20).unwrap();
        let mut t = SiteTracker::new();
        let loaded = store.load_seen(&mut t);
        assert_eq!(
            loaded,
            SeenLoaded {
                versions: 1,
                proofs: 1,
                refused: 0
            }
        );
        assert_eq!(
            t.observe(&version(&k, 4, b"four")),
            Err(SiteError::Rollback { seen: 5, got: 4 })
        );
        assert_eq!(t.equivocated(&addr), Some(5));

        // A record changed on disk (a flipped byte in the manifest) is skipped, reported.
        {
            let txn = store.db().begin_write().unwrap();
            {
                let mut tab = txn.open_table(SEEN).unwrap();
                let mut v = tab
                    .get(&addr.0.to_bytes()[..])
                    .unwrap()
                    .unwrap()
                    .value()
                    .to_vec();
                let n = v.len();
                v[n - 1] ^= 1;
                tab.insert(&addr.0.to_bytes()[..], &v[..]).unwrap();
            }
            txn.commit().unwrap();
        }
        let mut t = SiteTracker::new();
        assert_eq!(store.load_seen(&mut t).refused, 1);
        assert!(t.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_storers_proofs_survive_a_reopen() {
        use crate::dht::store::RecordStore;
        let dir = std::env::temp_dir().join(format!("umbra-proofs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("store.redb");
        let k = IdentityKey::from_secret_bytes([8; 32]);
        let proof = crate::wire::seen::EquivocationProof {
            first: version(&k, 2, b"a").bytes().to_vec(),
            second: version(&k, 2, b"b").bytes().to_vec(),
        };
        {
            let mut store = RedbStore::open(&path, 1 << 20).unwrap();
            assert!(store.keep_proof(proof.clone()));
            assert!(!store.keep_proof(proof.clone()), "kept once");
        }
        let store = RedbStore::open(&path, 1 << 20).unwrap();
        assert_eq!(store.proofs(), &[proof][..]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
