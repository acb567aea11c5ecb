//! The record store's background committer (`protocol-spec/06-dht.md#store`): a thread that
//! applies [`Batch`]es of writes to the redb file, one transaction (and one sync) each, in
//! the order they were handed over, and reports each outcome to the owner task through a
//! channel the driver listens on. The owner task never waits for a disk.
//! Not in this module: what a batch holds and the quota (`super::store`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use redb::{Database, TableDefinition};
use tokio::sync::mpsc;

use crate::dht::store::StoreError;

/// Records, by `kind || key`: the encoded record, or `None` to remove it.
pub(super) const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
/// Versions of manifests no longer held: key → expires, seq, digest.
pub(super) const GONE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("gone");

/// Writes applied together in one transaction; `None` removes.
#[derive(Debug, Default, Clone)]
pub(super) struct Batch {
    pub records: BTreeMap<[u8; 33], Option<Vec<u8>>>,
    pub gone: BTreeMap<[u8; 32], Option<Vec<u8>>>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.gone.is_empty()
    }

    /// Apply the batch in one write transaction, committed (synced) before returning.
    pub fn write(&self, db: &Database) -> Result<(), StoreError> {
        let txn = db.begin_write().map_err(|_| StoreError::Backend)?;
        {
            let mut t = txn.open_table(RECORDS).map_err(|_| StoreError::Backend)?;
            apply(&mut t, &self.records)?;
            let mut g = txn.open_table(GONE).map_err(|_| StoreError::Backend)?;
            apply(&mut g, &self.gone)?;
        }
        txn.commit().map_err(|_| StoreError::Backend)
    }

    /// This failed batch's writes, kept in `pending` for the next commit, except those a
    /// `later` batch (or `pending` itself) already superseded.
    pub fn keep_under<'a>(&self, pending: &mut Batch, later: impl Iterator<Item = &'a Batch>) {
        let later: Vec<&Batch> = later.collect();
        keep(
            &self.records,
            &mut pending.records,
            later.iter().map(|b| &b.records),
        );
        keep(&self.gone, &mut pending.gone, later.iter().map(|b| &b.gone));
    }
}

type Writes<const N: usize> = BTreeMap<[u8; N], Option<Vec<u8>>>;

fn apply<const N: usize>(
    t: &mut redb::Table<&[u8], &[u8]>,
    writes: &Writes<N>,
) -> Result<(), StoreError> {
    for (k, v) in writes {
        match v {
            Some(v) => t.insert(&k[..], &v[..]).map(|_| ()),
            None => t.remove(&k[..]).map(|_| ()),
        }
        .map_err(|_| StoreError::Backend)?;
    }
    Ok(())
}

fn keep<'a, const N: usize>(
    failed: &Writes<N>,
    pending: &mut Writes<N>,
    later: impl Iterator<Item = &'a Writes<N>> + Clone,
) {
    for (k, v) in failed {
        if !pending.contains_key(k) && !later.clone().any(|b| b.contains_key(k)) {
            pending.insert(*k, v.clone());
        }
    }
}

/// Outcomes of background commits, `(batch, durable)`, in commit order: the driver feeds
/// each to the node as `Input::StoreDurable`.
pub type Durable = mpsc::UnboundedReceiver<(u64, bool)>;

/// The committing thread and the way to it.
pub(super) struct Committer {
    tx: Option<std_mpsc::Sender<(u64, Arc<Batch>)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Committer {
    /// Start the thread that writes batches to `db`.
    pub fn start(db: Arc<Database>) -> std::io::Result<(Committer, Durable)> {
        let (tx, rx) = std_mpsc::channel::<(u64, Arc<Batch>)>();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("umbra-store".into())
            .spawn(move || {
                while let Ok((n, batch)) = rx.recv() {
                    let ok = batch.write(&db).is_ok();
                    // The owner task may be gone at shutdown; the batch is durable anyway.
                    let _ = done_tx.send((n, ok));
                }
            })?;
        Ok((
            Committer {
                tx: Some(tx),
                thread: Some(thread),
            },
            done_rx,
        ))
    }

    /// Hand batch `n` over; false if the thread is gone.
    pub fn send(&self, n: u64, batch: Arc<Batch>) -> bool {
        self.tx.as_ref().is_some_and(|t| t.send((n, batch)).is_ok())
    }

    /// Wait until every batch handed over is written.
    pub fn finish(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
