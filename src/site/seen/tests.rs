//! The tracker's decisions, its bounds, and its memory across a restart.

use super::{Observed, SeenChanges, SiteTracker, TRACKED_MANIFESTS};
use crate::crypto::keys::IdentityKey;
use crate::site::SiteError;
use crate::site::address::SiteAddress;
use crate::site::build;
use crate::site::manifest::{Verified, parse};
use crate::time::WallTime;
use crate::wire::seen::{EquivocationProof, SeenVersion};

/// The record the tracker keeps for `m` while it holds the manifest.
fn version_of(m: &Verified) -> SeenVersion {
    SeenVersion {
        seq: m.manifest().seq,
        digest: m.digest(),
        manifest: m.bytes().to_vec(),
    }
}

fn key(i: u64) -> IdentityKey {
    IdentityKey::from_secret_bytes(crate::crypto::hash::hash(&i.to_le_bytes()))
}

fn version(k: &IdentityKey, seq: u64, content: &[u8]) -> Verified {
    let b = build(
        k,
        &[("a".into(), content.to_vec())],
        seq,
        WallTime(1000),
        3600,
    )
    .unwrap();
    parse(&b.manifest)
        .unwrap()
        .verify(&SiteAddress(k.public()), WallTime(1001))
        .unwrap()
}

/// A new tracker fed what `old` wrote to its store.
fn restarted(writes: &[SeenChanges]) -> SiteTracker {
    let mut t = SiteTracker::new();
    let mut versions = std::collections::BTreeMap::new();
    let mut proofs = Vec::new();
    for c in writes {
        for (k, v) in &c.versions {
            versions.insert(*k, v.clone());
        }
        proofs.extend(c.proofs.iter().cloned());
    }
    for (k, v) in versions {
        let Some(v) = v else { continue };
        let site = SiteAddress(crate::crypto::keys::IdentityPublic::from_bytes(&k).unwrap());
        let bytes = v.encode();
        t.restore(&site, SeenVersion::decode(&bytes).unwrap())
            .unwrap();
    }
    for p in proofs {
        t.restore_proof(&EquivocationProof::decode(&p.encode()).unwrap())
            .unwrap();
    }
    t
}

#[test]
fn rollback_refused_equivocation_recorded() {
    let k = key(1);
    let addr = SiteAddress(k.public());
    let v = |seq, c: &[u8]| version(&k, seq, c);
    let mut t = SiteTracker::new();
    assert_eq!(t.observe(&v(2, b"x")), Ok(Observed::Newer));
    assert_eq!(t.observe(&v(2, b"x")), Ok(Observed::Same));
    assert_eq!(
        t.observe(&v(1, b"old")),
        Err(SiteError::Rollback { seen: 2, got: 1 })
    );
    assert_eq!(t.observe(&v(2, b"other")), Ok(Observed::Equivocation));
    assert_eq!(t.equivocations().len(), 1);
    assert_eq!(t.equivocated(&addr), Some(2));
    // The first manifest of sequence 2 stays the one in use.
    let (used, o) = t.settle(v(2, b"third"), WallTime(1001)).unwrap();
    assert_eq!(o, Observed::Equivocation);
    assert_eq!(used.bytes(), v(2, b"x").bytes());
    assert_eq!(t.equivocations().len(), 2);
    assert_eq!(t.observe(&v(3, b"new")), Ok(Observed::Newer));
    assert_eq!(t.highest(&addr), Some(3));
}

#[test]
fn a_restarted_tracker_refuses_what_the_old_one_refused_and_keeps_its_proofs() {
    let k = key(2);
    let addr = SiteAddress(k.public());
    let mut t = SiteTracker::new();
    let mut writes = Vec::new();
    t.observe(&version(&k, 5, b"five")).unwrap();
    t.observe(&version(&k, 5, b"evil five")).unwrap();
    writes.push(t.take_changes());
    assert!(t.take_changes().is_empty(), "the journal empties");
    assert_eq!(writes[0].versions.len(), 1);
    assert_eq!(writes[0].proofs.len(), 1);

    let mut r = restarted(&writes);
    assert_eq!(r.highest(&addr), Some(5));
    assert_eq!(
        r.observe(&version(&k, 4, b"four")),
        Err(SiteError::Rollback { seen: 5, got: 4 })
    );
    assert_eq!(r.equivocated(&addr), Some(5));
    // The first of sequence 5 is still the one used after the restart.
    let (used, _) = r
        .settle(version(&k, 5, b"evil five"), WallTime(1001))
        .unwrap();
    assert_eq!(used.bytes(), version(&k, 5, b"five").bytes());
    // With no memory, the old version would have been taken: what the store holds matters.
    assert_eq!(
        restarted(&[]).observe(&version(&k, 4, b"four")),
        Ok(Observed::Newer)
    );
}

#[test]
fn forged_or_mismatched_records_are_refused_on_restore() {
    let k = key(3);
    let addr = SiteAddress(k.public());
    let m = version(&k, 3, b"x");
    let mut good = version_of(&m);
    let mut t = SiteTracker::new();
    // Another site's manifest filed under this one.
    let other = version_of(&version(&key(4), 3, b"x"));
    assert_eq!(t.restore(&addr, other), Err(SiteError::WrongKey));
    // A version that does not match its manifest.
    good.seq = 9;
    assert_eq!(t.restore(&addr, good.clone()), Err(SiteError::Memory));
    good.seq = 3;
    let mut flipped = good.clone();
    let n = flipped.manifest.len();
    flipped.manifest[n - 1] ^= 1;
    assert_eq!(t.restore(&addr, flipped), Err(SiteError::BadSignature));
    assert!(t.is_empty(), "nothing refused was kept");
    // A proof of two identical manifests, or of two sequences, proves nothing.
    let same = EquivocationProof {
        first: m.bytes().to_vec(),
        second: m.bytes().to_vec(),
    };
    assert_eq!(t.restore_proof(&same), Err(SiteError::Memory));
    let two_seqs = EquivocationProof {
        first: m.bytes().to_vec(),
        second: version(&k, 4, b"y").bytes().to_vec(),
    };
    assert_eq!(t.restore_proof(&two_seqs), Err(SiteError::Memory));
    assert!(t.equivocations().is_empty());
    t.restore(&addr, good).unwrap();
    assert_eq!(t.highest(&addr), Some(3));
}

#[test]
fn the_tracker_is_bounded_and_keeps_versions_after_dropping_manifests() {
    let mut t = SiteTracker::new();
    let n = TRACKED_MANIFESTS as u64 + 10;
    for i in 0..n {
        t.observe(&version(&key(100 + i), 2, b"x")).unwrap();
    }
    assert_eq!(t.len(), n as usize, "every version is still remembered");
    let changes = t.take_changes();
    let dropped: Vec<_> = changes
        .versions
        .iter()
        .filter(|(_, v)| v.as_ref().is_some_and(|v| v.manifest.is_empty()))
        .collect();
    assert_eq!(dropped.len(), 10, "the oldest manifests were dropped");
    // The oldest site: its manifest is gone, its version is not.
    let k = key(100);
    assert_eq!(
        t.observe(&version(&k, 1, b"x")),
        Err(SiteError::Rollback { seen: 2, got: 1 })
    );
    assert_eq!(
        t.observe(&version(&k, 2, b"other")),
        Err(SiteError::Equivocated { seq: 2 })
    );
    assert_eq!(t.observe(&version(&k, 2, b"x")), Ok(Observed::Same));
}
