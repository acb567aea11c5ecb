//! The on-disk store: `redb` (`protocol-spec/06-dht.md#store`).
//!
//! [`RedbStore`] implements the DHT's [`RecordStore`]: puts collect in a batch that reads
//! see at once; a commit applies the batch in one ACID transaction (and one sync), either
//! at once or, in a relay, on the background committer ([`super::committer`]) while the owner
//! task goes on. The DHT acknowledges a put only once its batch is durable, so a `kill -9`
//! never loses an acknowledged record. A second table keeps small node state (the reader's
//! guards). The policy (quota, LRU, pinning, expiry, versions remembered) is the DHT's one
//! [`RecordIndex`], kept in memory and rebuilt from the file when the store opens.
//! Not in this module: validation (the DHT validates before it stores).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::committer::{Batch, Committer, Durable, GONE, RECORDS};
use super::seen_store::{PROOFS, SEEN, SEEN_PROOFS, read_all, write_proof};
use crate::dht::highwater::Proofs;
use crate::dht::record_index::{Admission, RecordIndex, Removed};
use crate::dht::store::{Commit, PutOutcome, RecordInfo, RecordStore, StoreError};
use crate::time::WallTime;
use crate::wire::dht_msg::{Record, RecordKind};
use crate::wire::seen::EquivocationProof;
use crate::wire::{Reader, Writer};

const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");

/// Records and node state in one redb file.
pub struct RedbStore {
    db: Arc<Database>,
    /// Every decision of policy (quota, LRU, pinning, expiry, versions remembered).
    index: RecordIndex,
    /// Writes since the last commit, applied in one transaction by [`RecordStore::commit`];
    /// reads see them at once.
    batch: Batch,
    /// Batches handed to the committer and not yet reported durable, oldest first; reads
    /// see them too.
    in_flight: VecDeque<(u64, Arc<Batch>)>,
    next_batch: u64,
    committer: Option<Committer>,
    /// A storer's proofs of equivocation, as in the `proofs` table.
    proofs: Proofs,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RedbStore({} records, {} bytes)",
            self.index.count(),
            self.index.used()
        )
    }
}

fn db_key(kind: RecordKind, key: &[u8; 32]) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[0] = kind.0;
    k[1..].copy_from_slice(key);
    k
}

fn encode(info: &RecordInfo, pinned: bool, value: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_capacity(value.len() + 64);
    w.u64(info.expires.0)
        .u64(info.seq)
        .bytes(&info.digest)
        .u8(u8::from(pinned))
        .bytes(value);
    w.into_vec()
}

fn decode(bytes: &[u8]) -> Option<(RecordInfo, bool, Vec<u8>)> {
    let mut r = Reader::new(bytes);
    let expires = WallTime(r.u64().ok()?);
    let seq = r.u64().ok()?;
    let digest = r.array().ok()?;
    let pinned = r.u8().ok()? == 1;
    Some((
        RecordInfo {
            expires,
            seq,
            digest,
        },
        pinned,
        r.rest().to_vec(),
    ))
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open store {path}: {message}")]
pub struct OpenError {
    /// The file.
    pub path: String,
    /// What redb said.
    pub message: String,
}

impl crate::error::HasKind for OpenError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::LocalIo
    }
}

/// Create `dir` (and its parents) readable by its owner only; an existing `dir` is set to
/// 0700. Parents that already exist are left as they are.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Create `path` as an empty file of mode 0600 if it does not exist; an existing one is set
/// to 0600.
pub fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        }
        Err(e) => Err(e),
    }
}

/// Make sure the store's tables exist.
fn create_tables(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        txn.open_table(RECORDS)?;
        txn.open_table(STATE)?;
        txn.open_table(GONE)?;
        txn.open_table(SEEN)?;
        txn.open_table(SEEN_PROOFS)?;
        txn.open_table(PROOFS)?;
    }
    txn.commit()?;
    Ok(())
}

impl RedbStore {
    /// Open (or create) the store at `path`, holding at most `quota` bytes of others' records.
    pub fn open(path: &Path, quota: u64) -> Result<RedbStore, OpenError> {
        let err = |e: &dyn std::fmt::Display| OpenError {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        // What a reader fetched is its reading history: the directory is the user's alone
        // (0700) and the file is created 0600 before redb opens it.
        if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private_dir(d).map_err(|e| err(&e))?;
        }
        // An empty file holds nothing (an earlier version, killed between creating the file
        // and initialising it, left one): it is made anew like a missing one.
        let empty = std::fs::metadata(path).is_ok_and(|m| m.len() == 0);
        if !path.exists() || empty {
            // A new store is made whole under a temporary name and renamed into place, so a
            // process killed while creating it (a relay stopped during its first start)
            // leaves no half-made file that the next start could not open.
            let tmp = path.with_extension("redb.new");
            let _ = std::fs::remove_file(&tmp);
            private_file(&tmp).map_err(|e| err(&e))?;
            let db = Database::create(&tmp).map_err(|e| err(&e))?;
            create_tables(&db).map_err(|e| err(&e))?;
            drop(db);
            std::fs::rename(&tmp, path).map_err(|e| err(&e))?;
        }
        private_file(path).map_err(|e| err(&e))?;
        let db = Database::create(path).map_err(|e| err(&e))?;
        create_tables(&db).map_err(|e| err(&e))?;
        let mut index = RecordIndex::new(quota);
        {
            let r = db.begin_read().map_err(|e| err(&e))?;
            let t = r.open_table(RECORDS).map_err(|e| err(&e))?;
            for item in t.iter().map_err(|e| err(&e))? {
                let (k, v) = item.map_err(|e| err(&e))?;
                let (k, v) = (k.value(), v.value());
                let (Some(kind), Ok(key)) = (k.first(), <[u8; 32]>::try_from(&k[1..])) else {
                    continue;
                };
                let Some((info, pinned, value)) = decode(v) else {
                    continue;
                };
                index.load((RecordKind(*kind), key), info, pinned, value.len());
            }
        }
        {
            let r = db.begin_read().map_err(|e| err(&e))?;
            let t = r.open_table(GONE).map_err(|e| err(&e))?;
            for item in t.iter().map_err(|e| err(&e))? {
                let (k, v) = item.map_err(|e| err(&e))?;
                if let (Ok(key), Some((info, _, _))) =
                    (<[u8; 32]>::try_from(k.value()), decode(v.value()))
                {
                    index.load_remembered(key, info);
                }
            }
        }
        let mut proofs = Proofs::default();
        for (_, v) in read_all(&db, PROOFS) {
            if let Ok(p) = EquivocationProof::decode(&v) {
                proofs.add(p);
            }
        }
        Ok(RedbStore {
            db: Arc::new(db),
            index,
            batch: Batch::default(),
            in_flight: VecDeque::new(),
            next_batch: 1,
            committer: None,
            proofs,
        })
    }

    /// Commit on a background thread from now on: [`RecordStore::commit`] hands the batch
    /// over and returns [`Commit::Started`]; the outcomes arrive on the returned channel,
    /// for the driver to feed to the node.
    pub fn commit_in_background(&mut self) -> std::io::Result<Durable> {
        let (c, durable) = Committer::start(self.db.clone())?;
        self.committer = Some(c);
        Ok(durable)
    }

    /// The encoded record under `k` in the newest write not yet durable, if any.
    fn unwritten(&self, k: &[u8; 33]) -> Option<&Option<Vec<u8>>> {
        self.batch.records.get(k).or_else(|| {
            self.in_flight
                .iter()
                .rev()
                .find_map(|(_, b)| b.records.get(k))
        })
    }

    /// The database (for the tables of `super::seen_store`).
    pub(super) fn db(&self) -> &Database {
        &self.db
    }

    /// Read a state value (guards, settings).
    pub fn read_state(&self, name: &str) -> Option<Vec<u8>> {
        let r = self.db.begin_read().ok()?;
        let t = r.open_table(STATE).ok()?;
        t.get(name).ok()?.map(|v| v.value().to_vec())
    }

    /// Write a state value, durably.
    pub fn write_state(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|_| StoreError::Backend)?;
        {
            let mut t = txn.open_table(STATE).map_err(|_| StoreError::Backend)?;
            t.insert(name, value).map_err(|_| StoreError::Backend)?;
        }
        txn.commit().map_err(|_| StoreError::Backend)
    }

    /// The reader's guards kept by [`RedbStore::save_guards`] (`09-relay.md#guards`).
    pub fn load_guards(&self) -> Option<crate::directory::path::Guards> {
        let saved = self.read_state("guards")?;
        let list = saved
            .chunks_exact(32)
            .filter_map(|c| <[u8; 32]>::try_from(c).ok())
            .map(crate::crypto::keys::NodeId)
            .collect();
        Some(crate::directory::path::Guards::from_list(list))
    }

    /// Keep the reader's guards for the next run.
    pub fn save_guards(&self, guards: &crate::directory::path::Guards) -> Result<(), StoreError> {
        let ids: Vec<u8> = guards.list().iter().flat_map(|g| g.0).collect();
        self.write_state("guards", &ids)
    }

    /// Records the index dropped leave the file in the next batch; a manifest's version
    /// stays in `GONE`, committed with the removal.
    fn delete(&mut self, removed: &[Removed]) {
        for r in removed {
            let (kind, key) = r.key;
            self.batch.records.insert(db_key(kind, &key), None);
            if r.remembered {
                self.batch
                    .gone
                    .insert(key, Some(encode(&r.info, false, &[])));
            }
            if let Some(forgotten) = r.forgotten {
                self.batch.gone.insert(forgotten, None);
            }
        }
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        let _ = RecordStore::commit(self);
        if let Some(c) = self.committer.as_mut() {
            c.finish();
        }
    }
}

impl RecordStore for RedbStore {
    fn deferred(&self) -> bool {
        true
    }

    fn commit(&mut self) -> Result<Commit, StoreError> {
        if self.batch.is_empty() {
            // Nothing new; a refresh acknowledged now must still wait for the writes before it.
            return Ok(self
                .in_flight
                .back()
                .map_or(Commit::Done, |(n, _)| Commit::Started(*n)));
        }
        let Some(c) = self.committer.as_ref() else {
            self.batch.write(&self.db)?;
            self.batch = Batch::default();
            return Ok(Commit::Done);
        };
        let n = self.next_batch;
        let batch = Arc::new(std::mem::take(&mut self.batch));
        if !c.send(n, batch.clone()) {
            self.batch = Arc::unwrap_or_clone(batch);
            return Err(StoreError::Backend);
        }
        self.next_batch += 1;
        self.in_flight.push_back((n, batch));
        Ok(Commit::Started(n))
    }

    fn durable(&mut self, batch: u64, ok: bool) {
        while self.in_flight.front().is_some_and(|(n, _)| *n <= batch) {
            let Some((_, done)) = self.in_flight.pop_front() else {
                break;
            };
            if ok {
                continue;
            }
            // Keep a failed batch's writes for the next commit, unless a later write to the
            // same key supersedes them.
            done.keep_under(&mut self.batch, self.in_flight.iter().map(|(_, b)| &**b));
        }
    }

    fn pending(&self) -> usize {
        self.batch.records.len()
    }

    fn info(&self, kind: RecordKind, key: &[u8; 32], now: WallTime) -> Option<RecordInfo> {
        self.index.info(&(kind, *key), now)
    }

    fn get(&mut self, kind: RecordKind, key: &[u8; 32], now: WallTime) -> Option<Record> {
        self.index.touch(&(kind, *key), now)?;
        let k = db_key(kind, key);
        let value = match self.unwritten(&k) {
            Some(Some(v)) => decode(v)?.2,
            Some(None) => return None,
            None => {
                let r = self.db.begin_read().ok()?;
                let t = r.open_table(RECORDS).ok()?;
                let v = t.get(&k[..]).ok()??;
                decode(v.value())?.2
            }
        };
        Some(Record {
            kind,
            key: *key,
            value,
        })
    }

    fn put(
        &mut self,
        record: &Record,
        info: RecordInfo,
        pinned: bool,
    ) -> Result<PutOutcome, StoreError> {
        let k = (record.kind, record.key);
        let (info, pinned, outcome) = match self.index.admit(k, info, pinned, record.value.len())? {
            Admission::Same => return Ok(PutOutcome::Same),
            // The same value, pinned now or kept longer: written again with its new info.
            Admission::Extended { info, pinned } => (info, pinned, PutOutcome::Same),
            Admission::Write { evicted } => {
                self.delete(&evicted);
                (info, pinned, PutOutcome::Stored)
            }
        };
        self.batch.records.insert(
            db_key(record.kind, &record.key),
            Some(encode(&info, pinned, &record.value)),
        );
        Ok(outcome)
    }

    fn unpin(&mut self, kind: RecordKind, key: &[u8; 32], expires: WallTime) -> bool {
        let Some(record) = self.get(kind, key, WallTime(0)) else {
            return false;
        };
        let Some(info) = self.index.unpin(&(kind, *key), expires) else {
            return false;
        };
        self.batch
            .records
            .insert(db_key(kind, key), Some(encode(&info, false, &record.value)));
        true
    }

    fn expire(&mut self, now: WallTime) {
        let gone = self.index.expire(now);
        self.delete(&gone);
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

    fn put_state(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write_state(name, value)
    }

    fn get_state(&self, name: &str) -> Option<Vec<u8>> {
        self.read_state(name)
    }

    fn keep_proof(&mut self, proof: EquivocationProof) -> bool {
        let (new, gone) = self.proofs.add(proof.clone());
        if new {
            // Durable at once: proofs are rare and small next to the records.
            if let Err(e) = write_proof(&self.db, PROOFS, &proof) {
                tracing::warn!("a proof of equivocation could not be written: {e}");
            }
            if let Some(g) = gone {
                super::seen_store::remove_proof(&self.db, PROOFS, &g);
            }
        }
        new
    }

    fn proofs(&self) -> &[EquivocationProof] {
        self.proofs.list()
    }
}

#[cfg(test)]
mod tests {
    use super::RedbStore;
    use crate::dht::store::{RecordInfo, RecordStore, StoreError};
    use crate::time::WallTime;
    use crate::wire::dht_msg::{Record, RecordKind};

    /// Issue 12, finding 4: commits leave the owner task. A batch handed to the committer is
    /// readable before it is durable, is reported durable through the channel, survives a
    /// reopen, and a batch reported failed is kept for the next commit.
    /// Site `key`'s manifest of sequence `seq`: `len` bytes, kept until `expires`.
    fn manifest(key: u8, seq: u64, len: usize, expires: u64) -> (Record, RecordInfo) {
        (
            Record {
                kind: RecordKind::MANIFEST,
                key: [key; 32],
                value: vec![seq as u8; len],
            },
            RecordInfo {
                expires: WallTime(expires),
                seq,
                digest: [seq as u8; 32],
            },
        )
    }

    #[test]
    fn background_commits_are_readable_at_once_and_durable_when_reported() {
        use crate::dht::store::Commit;
        let dir = std::env::temp_dir().join(format!("umbra-bg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("store.redb");
        let mut s = RedbStore::open(&path, u64::MAX).unwrap();
        let mut durable = s.commit_in_background().unwrap();
        let (a, ai) = super::super::store_writer::numbered_record(1);
        let (b, bi) = super::super::store_writer::numbered_record(2);
        s.put(&a, ai, false).unwrap();
        let Commit::Started(n) = s.commit().unwrap() else {
            panic!("a background store committed on the caller's thread")
        };
        assert_eq!(s.get(a.kind, &a.key, WallTime(0)).unwrap(), a);
        assert_eq!(durable.blocking_recv(), Some((n, true)));
        s.durable(n, true);
        assert_eq!(s.get(a.kind, &a.key, WallTime(0)).unwrap(), a);
        // Nothing new: no batch to write.
        assert_eq!(s.commit(), Ok(Commit::Done));
        s.put(&b, bi, false).unwrap();
        let Commit::Started(m) = s.commit().unwrap() else {
            panic!("not started")
        };
        assert_eq!(durable.blocking_recv(), Some((m, true)));
        // Told it failed, the store keeps the batch's writes for the next commit.
        s.durable(m, false);
        assert_eq!(s.pending(), 1);
        let Commit::Started(k) = s.commit().unwrap() else {
            panic!("not started")
        };
        assert!(k > m);
        drop(s);
        let mut s = RedbStore::open(&path, u64::MAX).unwrap();
        assert_eq!(s.get(a.kind, &a.key, WallTime(0)).unwrap(), a);
        assert_eq!(s.get(b.kind, &b.key, WallTime(0)).unwrap(), b);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A relay killed while creating its store left a half-made file; the next start must
    /// still open (the flood test's relay, stopped during its first start, could not).
    #[test]
    fn a_store_killed_while_being_created_opens_next_time() {
        let dir = std::env::temp_dir().join(format!("umbra-half-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.redb");
        // What a kill during creation leaves now: a partial file under the temporary name.
        std::fs::write(path.with_extension("redb.new"), b"redb\0partial").unwrap();
        let mut s = RedbStore::open(&path, 600).unwrap();
        let (m, mi) = manifest(3, 1, 10, 100);
        s.put(&m, mi, false).unwrap();
        drop(s);
        let mut s = RedbStore::open(&path, 600).unwrap();
        assert_eq!(s.get(m.kind, &m.key, WallTime(0)), Some(m));
        assert!(!path.with_extension("redb.new").exists());
        // An empty file (left by an earlier version killed between creating the file and
        // initialising it) holds nothing: it opens as a new store.
        std::fs::write(&path, b"").unwrap();
        assert!(RedbStore::open(&path, 600).is_ok());
        // A store that holds data and is damaged is reported, never replaced.
        std::fs::write(&path, b"not a database").unwrap();
        assert!(RedbStore::open(&path, 600).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn store_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("umbra-private-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("data/cache.redb");
        drop(RedbStore::open(&path, 100).unwrap());
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("data")), 0o700);
        assert_eq!(mode(&path), 0o600);
        // An existing world-readable file and directory are tightened on open.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.join("data"), std::fs::Permissions::from_mode(0o755)).unwrap();
        drop(RedbStore::open(&path, 100).unwrap());
        assert_eq!(mode(&dir.join("data")), 0o700);
        assert_eq!(mode(&path), 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn redb_store_follows_the_one_policy_and_keeps_what_it_decided_across_a_reopen() {
        let dir = std::env::temp_dir().join(format!("umbra-policy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("store.redb");
        let mut s = RedbStore::open(&path, 600).unwrap();
        let (m, mi) = manifest(8, 1, 10, 100);
        s.put(&m, mi, false).unwrap();
        crate::dht::store::tests::one_policy(&mut s);
        // A pin and a longer lifetime given to a record already held are written too.
        let later = RecordInfo {
            expires: WallTime(900),
            ..mi
        };
        s.put(&m, later, true).unwrap();
        drop(s);
        let mut s = RedbStore::open(&path, 0).unwrap();
        assert_eq!(
            s.info(m.kind, &m.key, WallTime(0)).map(|i| i.expires),
            Some(WallTime(900))
        );
        let (b, bi) = (
            Record {
                kind: RecordKind::BLOCK,
                key: [2; 32],
                value: vec![2],
            },
            RecordInfo {
                expires: WallTime(100),
                seq: 0,
                digest: [2; 32],
            },
        );
        // Quota 0 now: the pinned manifest stays, an unpinned block is refused.
        assert_eq!(s.put(&b, bi, false), Err(StoreError::Quota));
        assert!(s.get(m.kind, &m.key, WallTime(0)).is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn redb_store_never_rolls_back_after_eviction_or_restart() {
        let dir = std::env::temp_dir().join(format!("umbra-gone-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("store.redb");
        let mut s = RedbStore::open(&path, 600).unwrap();
        crate::dht::store::tests::no_rollback_after_eviction(&mut s);
        // A restart remembers the versions of manifests it no longer holds.
        let (r, i) = manifest(9, 2, 30, 5000);
        s.expire(WallTime(10_000));
        drop(s);
        let mut s = RedbStore::open(&path, 600).unwrap();
        assert_eq!(s.put(&r, i, false), Err(StoreError::Older));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn survives_reopen_with_quota_and_pinning() {
        let dir = std::env::temp_dir().join(format!("umbra-redb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.redb");
        let rec = |k: u8, n: usize| {
            (
                Record {
                    kind: RecordKind::BLOCK,
                    key: [k; 32],
                    value: vec![k; n],
                },
                RecordInfo {
                    expires: WallTime(1000),
                    seq: 0,
                    digest: [k; 32],
                },
            )
        };
        {
            // Two 40-byte records and their overhead fit; a third does not.
            let mut s = RedbStore::open(&path, 600).unwrap();
            let (a, ai) = rec(1, 40);
            let (b, bi) = rec(2, 40);
            let (c, ci) = rec(3, 40);
            s.put(&a, ai, true).unwrap();
            s.put(&b, bi, false).unwrap();
            s.put(&c, ci, false).unwrap(); // evicts b
            assert!(s.get(RecordKind::BLOCK, &[2; 32], WallTime(0)).is_none());
            let (d, di) = rec(4, 90);
            assert_eq!(s.put(&d, di, false), Err(StoreError::Quota));
            s.write_state("guards", b"xyz").unwrap();
        }
        let mut s = RedbStore::open(&path, 600).unwrap();
        assert_eq!(s.used(), 2 * (40 + crate::dht::store::RECORD_OVERHEAD));
        assert_eq!(
            s.get(RecordKind::BLOCK, &[1; 32], WallTime(0))
                .unwrap()
                .value,
            vec![1; 40]
        );
        assert_eq!(
            s.get(RecordKind::BLOCK, &[3; 32], WallTime(0))
                .unwrap()
                .value,
            vec![3; 40]
        );
        assert_eq!(s.read_state("guards").unwrap(), b"xyz");
        // Unpinned (`07-sites.md#pinning`), record 1 is evicted by use again, and that
        // survives a reopen.
        assert!(s.unpin(RecordKind::BLOCK, &[1; 32], WallTime(900)));
        assert!(
            !s.unpin(RecordKind::BLOCK, &[1; 32], WallTime(900)),
            "not pinned now"
        );
        s.commit().unwrap();
        drop(s);
        let mut s = RedbStore::open(&path, 600).unwrap();
        s.get(RecordKind::BLOCK, &[3; 32], WallTime(0)).unwrap();
        let (e, ei) = rec(5, 40);
        s.put(&e, ei, false).unwrap(); // evicts 1, the least recently used
        assert!(s.get(RecordKind::BLOCK, &[1; 32], WallTime(0)).is_none());
        assert!(s.get(RecordKind::BLOCK, &[3; 32], WallTime(0)).is_some());
        s.expire(WallTime(1000));
        assert_eq!(s.used(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
