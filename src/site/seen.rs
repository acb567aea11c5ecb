//! A node's memory of the manifests it has seen (`protocol-spec/07-sites.md#memory`,
//! `#rollback-and-equivocation`): the highest sequence per site, the first manifest of that
//! sequence, and proofs of equivocation.
//!
//! [`SiteTracker`] decides: a lower sequence than one seen is refused; a second manifest with
//! a sequence seen is kept as proof and the first stays in use. It is sans-IO and keeps a
//! journal of what changed ([`SiteTracker::take_changes`]) that the runtime writes to the
//! node's store as [`SeenVersion`] and [`EquivocationProof`] records, and reads back with
//! [`SiteTracker::restore`] and [`SiteTracker::restore_proof`] when the node starts, so a
//! restart never lets a node accept an older manifest than one it saw.
//!
//! Two tiers, both bounded: the version (sequence and digest, about 100 bytes) of up to
//! [`TRACKED_SITES`] sites, and the first manifest itself for the [`TRACKED_MANIFESTS`]
//! most recently used of them within [`TRACKED_BYTES`]. A site whose manifest was dropped
//! still refuses rollback; a second manifest with its sequence is then refused outright
//! ([`SiteError::Equivocated`]), since the first one can no longer be served or proven.
//! Not in this module: the database (`crate::runtime::store`), storers' memory
//! (`crate::dht::highwater`).

use std::collections::{BTreeMap, BTreeSet};

use super::SiteError;
use super::address::SiteAddress;
use super::manifest::{self, Verified};
use crate::time::WallTime;
use crate::wire::seen::{EquivocationProof, SeenVersion};

/// Two different manifests signed by one site key with the same sequence: proof the key
/// holder equivocated (`07-sites.md#rollback-and-equivocation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Equivocation {
    /// The site.
    pub site: SiteAddress,
    /// The sequence both carry.
    pub seq: u64,
    /// The manifest seen first (kept in use).
    pub first: Vec<u8>,
    /// The other.
    pub second: Vec<u8>,
}

impl Equivocation {
    /// The stored record (`07-sites.md#memory`).
    pub fn record(&self) -> EquivocationProof {
        EquivocationProof {
            first: self.first.clone(),
            second: self.second.clone(),
        }
    }

    /// Check a stored or received proof: two different manifests, both signed by one site
    /// key, with one sequence.
    pub fn check(p: &EquivocationProof) -> Result<Equivocation, SiteError> {
        let a = manifest::parse(&p.first)?;
        let site = a.claimed_site();
        let a = a.verify_signature(&site)?;
        let b = manifest::parse(&p.second)?.verify_signature(&site)?;
        if a.manifest().seq != b.manifest().seq || p.first == p.second {
            return Err(SiteError::Memory);
        }
        Ok(Equivocation {
            site,
            seq: a.manifest().seq,
            first: p.first.clone(),
            second: p.second.clone(),
        })
    }
}

/// What [`SiteTracker::observe`] concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// A higher sequence than before (or the first seen): use it.
    Newer,
    /// The same manifest as before.
    Same,
    /// Same sequence, different manifest: recorded as equivocation; the first one stays.
    Equivocation,
}

/// Sites whose highest version a tracker remembers at most (least recently observed
/// forgotten first).
pub const TRACKED_SITES: usize = 131_072;
/// Sites whose first manifest a tracker keeps at most (for the first-seen rule and proofs).
pub const TRACKED_MANIFESTS: usize = 4096;
/// Bytes of first manifests a tracker keeps at most.
pub const TRACKED_BYTES: usize = 64 << 20;
/// Equivocation proofs kept at most (the oldest forgotten first).
pub const TRACKED_PROOFS: usize = 256;

#[derive(Debug, Clone)]
struct Seen {
    seq: u64,
    digest: [u8; 32],
    /// The first manifest of `seq`; empty once dropped to stay within the bounds.
    first: Vec<u8>,
    used: u64,
}

/// What changed since the last [`SiteTracker::take_changes`], for the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenChanges {
    /// Per site key: the record to keep, or `None` to forget it.
    pub versions: Vec<([u8; 32], Option<SeenVersion>)>,
    /// New proofs.
    pub proofs: Vec<EquivocationProof>,
}

impl SeenChanges {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty() && self.proofs.is_empty()
    }
}

/// Per-site memory of the highest manifest seen (`07-sites.md#rollback-and-equivocation`):
/// rollback refused, equivocation recorded and the first manifest of a sequence kept in
/// use. Bounded (see the module docs); a site forgotten entirely is checked again from
/// nothing.
#[derive(Debug, Clone, Default)]
pub struct SiteTracker {
    seen: BTreeMap<[u8; 32], Seen>,
    /// Every site by last use.
    order: BTreeSet<(u64, [u8; 32])>,
    /// Sites whose first manifest is held, by last use.
    held: BTreeSet<(u64, [u8; 32])>,
    bytes: usize,
    clock: u64,
    equivocations: Vec<Equivocation>,
    changed: BTreeSet<[u8; 32]>,
    new_proofs: Vec<EquivocationProof>,
}

impl SiteTracker {
    /// Nothing seen yet.
    pub fn new() -> Self {
        SiteTracker::default()
    }

    /// The highest sequence seen for a site.
    pub fn highest(&self, site: &SiteAddress) -> Option<u64> {
        self.seen.get(&site.0.to_bytes()).map(|s| s.seq)
    }

    /// Proofs of equivocation recorded so far (the latest [`TRACKED_PROOFS`]).
    pub fn equivocations(&self) -> &[Equivocation] {
        &self.equivocations
    }

    /// Whether `site` was caught equivocating (a proof is kept).
    pub fn equivocated(&self, site: &SiteAddress) -> Option<u64> {
        self.equivocations
            .iter()
            .rev()
            .find(|e| e.site == *site)
            .map(|e| e.seq)
    }

    /// Sites remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no site is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Consider a verified manifest: refuses a lower sequence than seen.
    pub fn observe(&mut self, m: &Verified) -> Result<Observed, SiteError> {
        let site = m.manifest().address();
        let key = site.0.to_bytes();
        let seq = m.manifest().seq;
        let digest = m.digest();
        let (held_seq, held_digest, held_first) = match self.seen.get(&key) {
            Some(s) => (s.seq, s.digest, !s.first.is_empty()),
            None => {
                self.insert(key, seq, digest, m.bytes().to_vec());
                self.changed.insert(key);
                return Ok(Observed::Newer);
            }
        };
        if seq < held_seq {
            return Err(SiteError::Rollback {
                seen: held_seq,
                got: seq,
            });
        }
        if seq > held_seq {
            self.insert(key, seq, digest, m.bytes().to_vec());
            self.changed.insert(key);
            return Ok(Observed::Newer);
        }
        if held_digest == digest {
            if !held_first {
                // Only the version was remembered: hold the manifest again.
                self.insert(key, seq, digest, m.bytes().to_vec());
                self.changed.insert(key);
            } else {
                self.touch(key);
            }
            return Ok(Observed::Same);
        }
        self.touch(key);
        // Only here is the held manifest copied: into the proof.
        let first = match self.seen.get(&key) {
            Some(s) if held_first => s.first.clone(),
            _ => return Err(SiteError::Equivocated { seq }),
        };
        let e = Equivocation {
            site,
            seq,
            first,
            second: m.bytes().to_vec(),
        };
        if self.keep_proof(e.clone()) {
            self.new_proofs.push(e.record());
        }
        Ok(Observed::Equivocation)
    }

    /// [`SiteTracker::observe`], and the manifest to use: `m` itself, or on equivocation
    /// the first manifest seen with that sequence (`07-sites.md#rollback-and-equivocation`),
    /// verified again at `now`.
    pub fn settle(
        &mut self,
        m: Verified,
        now: WallTime,
    ) -> Result<(Verified, Observed), SiteError> {
        let observed = self.observe(&m)?;
        if observed != Observed::Equivocation {
            return Ok((m, observed));
        }
        let site = m.manifest().address();
        let first = self
            .seen
            .get(&site.0.to_bytes())
            .map(|s| s.first.clone())
            .ok_or(SiteError::BadSignature)?;
        let v = manifest::parse(&first)?.verify(&site, now)?;
        Ok((v, observed))
    }

    /// Read back a stored version of `site` (`07-sites.md#memory`): a held manifest must be
    /// signed by the site's key and match the version; its times are not checked (it was
    /// valid when seen). A higher version remembered already stays.
    pub fn restore(&mut self, site: &SiteAddress, v: SeenVersion) -> Result<(), SiteError> {
        if !v.manifest.is_empty() {
            let m = manifest::parse(&v.manifest)?.verify_signature(site)?;
            if m.manifest().seq != v.seq || m.digest() != v.digest {
                return Err(SiteError::Memory);
            }
        }
        let key = site.0.to_bytes();
        if self.seen.get(&key).is_some_and(|s| s.seq >= v.seq) {
            return Ok(());
        }
        self.insert(key, v.seq, v.digest, v.manifest);
        Ok(())
    }

    /// Read back a stored proof (checked: two different manifests signed by one key with
    /// one sequence).
    pub fn restore_proof(&mut self, p: &EquivocationProof) -> Result<(), SiteError> {
        self.keep_proof(Equivocation::check(p)?);
        Ok(())
    }

    /// What changed since the last call: the records to write or forget.
    pub fn take_changes(&mut self) -> SeenChanges {
        let versions = std::mem::take(&mut self.changed)
            .into_iter()
            .map(|k| {
                let rec = self.seen.get(&k).map(|s| SeenVersion {
                    seq: s.seq,
                    digest: s.digest,
                    manifest: s.first.clone(),
                });
                (k, rec)
            })
            .collect();
        SeenChanges {
            versions,
            proofs: std::mem::take(&mut self.new_proofs),
        }
    }

    /// Keep `e` unless kept already (the oldest forgotten beyond [`TRACKED_PROOFS`]);
    /// whether it is new.
    fn keep_proof(&mut self, e: Equivocation) -> bool {
        if self.equivocations.contains(&e) {
            return false;
        }
        if self.equivocations.len() >= TRACKED_PROOFS {
            self.equivocations.remove(0);
        }
        self.equivocations.push(e);
        true
    }

    fn touch(&mut self, key: [u8; 32]) {
        self.clock += 1;
        let clock = self.clock;
        if let Some(s) = self.seen.get_mut(&key) {
            self.order.remove(&(s.used, key));
            if self.held.remove(&(s.used, key)) {
                self.held.insert((clock, key));
            }
            s.used = clock;
            self.order.insert((clock, key));
        }
    }

    /// Keep `first` (possibly empty) as site `key`'s version, then stay within the bounds.
    fn insert(&mut self, key: [u8; 32], seq: u64, digest: [u8; 32], first: Vec<u8>) {
        self.forget(&key);
        self.clock += 1;
        let used = self.clock;
        self.order.insert((used, key));
        if !first.is_empty() {
            self.held.insert((used, key));
            self.bytes += first.len();
        }
        self.seen.insert(
            key,
            Seen {
                seq,
                digest,
                first,
                used,
            },
        );
        self.shrink(&key);
    }

    fn forget(&mut self, key: &[u8; 32]) -> Option<Seen> {
        let s = self.seen.remove(key)?;
        self.order.remove(&(s.used, *key));
        if self.held.remove(&(s.used, *key)) {
            self.bytes -= s.first.len();
        }
        Some(s)
    }

    /// Drop the least recently used manifests, then versions (never `keep`'s), until within
    /// the bounds; the store is told through the journal.
    fn shrink(&mut self, keep: &[u8; 32]) {
        while self.held.len() > TRACKED_MANIFESTS || self.bytes > TRACKED_BYTES {
            let Some(&(used, k)) = self.held.iter().find(|(_, k)| k != keep) else {
                break;
            };
            self.held.remove(&(used, k));
            if let Some(s) = self.seen.get_mut(&k) {
                self.bytes -= s.first.len();
                s.first = Vec::new();
            }
            self.changed.insert(k);
        }
        while self.seen.len() > TRACKED_SITES {
            let Some(&(_, k)) = self.order.iter().find(|(_, k)| k != keep) else {
                break;
            };
            self.forget(&k);
            self.changed.insert(k);
        }
    }
}

#[cfg(test)]
mod tests;
