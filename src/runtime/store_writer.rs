//! `umbra store-writer` (hidden): the crash-safety test's writer. It puts numbered records
//! into a [`RedbStore`] and prints `ack N` once record N is durable, committing each record
//! on the calling thread or in batches on the background committer, as a relay does; the
//! test kills it mid-write and checks that every acknowledged record survived.
//! Not in this module: the store (`super::store`).

use std::path::Path;

use super::store::RedbStore;
use crate::dht::store::{Commit, RecordInfo, RecordStore};
use crate::time::WallTime;
use crate::wire::dht_msg::{Record, RecordKind};

/// The record `store-writer` writes as number `i` (a block under its own hash).
pub fn numbered_record(i: u32) -> (Record, RecordInfo) {
    let value: Vec<u8> = (0..1000u32 + i % 3000)
        .map(|k| (k.wrapping_mul(7) ^ i) as u8)
        .collect();
    let key = crate::crypto::hash::hash(&value);
    (
        Record {
            kind: RecordKind::BLOCK,
            key,
            value,
        },
        RecordInfo {
            expires: WallTime(u64::MAX),
            seq: 0,
            digest: key,
        },
    )
}

/// `umbra store-writer`: put records one by one, printing `ack N` once record N is durable:
/// after each commit, or (`batch` > 0) after each batch of `batch` records the background
/// committer reports durable, as a relay acknowledges its STOREs.
pub fn store_writer(path: &Path, count: u32, batch: u32) -> std::process::ExitCode {
    let fail = std::process::ExitCode::FAILURE;
    let mut store = match RedbStore::open(path, u64::MAX) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return fail;
        }
    };
    let mut durable = match (batch > 0).then(|| store.commit_in_background()) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            eprintln!("{e}");
            return fail;
        }
    };
    let mut out = std::io::stdout().lock();
    let mut unacked = Vec::new();
    for i in 0..count {
        let (r, info) = numbered_record(i);
        if store.put(&r, info, false).is_err() {
            return fail;
        }
        unacked.push(i);
        if batch > 0 && i % batch != batch - 1 && i + 1 < count {
            continue;
        }
        match (store.commit(), durable.as_mut()) {
            (Ok(Commit::Done), _) => {}
            (Ok(Commit::Started(n)), Some(d)) => loop {
                match d.blocking_recv() {
                    Some((m, true)) if m >= n => break,
                    Some((_, true)) => {}
                    _ => return fail,
                }
            },
            _ => return fail,
        }
        use std::io::Write;
        for i in unacked.drain(..) {
            if writeln!(out, "ack {i}").is_err() {
                return fail;
            }
        }
        if out.flush().is_err() {
            return fail;
        }
    }
    std::process::ExitCode::SUCCESS
}
