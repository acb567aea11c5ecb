//! Unit tests of rosters, writer manifests, admission, equivocation and the merge.

use std::collections::{BTreeMap, BTreeSet};

use crate::crypto::keys::IdentityKey;
use crate::site::address::SiteAddress;
use crate::site::build;
use crate::time::WallTime;

use super::head::{self, FileRef, Head, SignedHead};
use super::merge::{HeadSet, Inserted};
use super::roster::{self, Cutoff, Roster, RosterWriter};
use super::stage::{Intent, next_head};
use super::{LineId, WriterError};

fn key(b: u8) -> IdentityKey {
    IdentityKey::from_secret_bytes([b; 32])
}

fn file(content: &[u8]) -> FileRef {
    FileRef {
        size: content.len() as u64,
        hash: crate::crypto::hash::hash(content),
        media_type: "text/plain".into(),
        blocks: content
            .chunks(32 * 1024)
            .map(crate::crypto::hash::hash)
            .collect(),
    }
}

/// A roster of site key 1 with writers 2 (everywhere) and 3 (under `b/` only).
fn roster(seq: u64, cutoff3: Option<Cutoff>) -> Roster {
    let mut writers = vec![
        RosterWriter {
            key: key(2).public(),
            prefixes: vec![String::new()],
            cutoff: None,
        },
        RosterWriter {
            key: key(3).public(),
            prefixes: vec!["b/".into()],
            cutoff: cutoff3,
        },
    ];
    writers.sort_by_key(|w| w.key.to_bytes());
    Roster {
        site: key(1).public(),
        seq,
        published: WallTime(100),
        writers,
    }
}

fn addr() -> SiteAddress {
    SiteAddress(key(1).public())
}

/// Writer `w` publishes `files` on its main line at `seq`, having seen `seen`.
fn publish(
    w: u8,
    seq: u64,
    files: &[(&str, &[u8])],
    prev: Option<&SignedHead>,
    seen: &HeadSet,
    r: &Roster,
) -> SignedHead {
    let files: BTreeMap<String, FileRef> = files
        .iter()
        .map(|(p, c)| (p.to_string(), file(c)))
        .collect();
    let intent = Intent {
        site: key(1).public(),
        writer: key(w).public(),
        branch: "",
        seq,
        published: WallTime(100),
        expires: WallTime(u64::MAX),
        files: &files,
        delete: &BTreeSet::new(),
        branches: &std::collections::BTreeSet::new(),
        resolve: false,
    };
    let h = next_head(&intent, prev, seen, r).unwrap();
    let bytes = h.sign(&key(w)).unwrap();
    head::parse(&bytes, &addr()).unwrap()
}

#[test]
fn roster_round_trip_and_refusals() {
    let r = roster(3, None);
    let bytes = r.sign(&key(1)).unwrap();
    let s = roster::parse(&bytes, &addr()).unwrap();
    assert_eq!(s.roster, r);
    // Another key cannot sign it; another site's address refuses it; a flipped bit fails.
    assert!(r.sign(&key(2)).is_err());
    assert_eq!(
        roster::parse(&bytes, &SiteAddress(key(2).public())),
        Err(WriterError::WrongSite)
    );
    let mut bad = bytes.clone();
    bad[50] ^= 1;
    assert!(roster::parse(&bad, &addr()).is_err());
    // The site key listed, unsorted writers, no prefixes: refused.
    let mut listed = r.clone();
    listed.writers[0].key = key(1).public();
    assert!(matches!(
        listed.sign(&key(1)),
        Err(WriterError::BadRoster(_))
    ));
    let mut unsorted = r.clone();
    unsorted.writers.reverse();
    assert!(matches!(
        unsorted.sign(&key(1)),
        Err(WriterError::BadRoster(_))
    ));
    let mut bare = r.clone();
    bare.writers[0].prefixes.clear();
    assert!(matches!(bare.sign(&key(1)), Err(WriterError::BadRoster(_))));
    // Rollback and equivocation.
    let older = roster::parse(&roster(2, None).sign(&key(1)).unwrap(), &addr()).unwrap();
    assert!(matches!(
        roster::newer(Some(s.clone()), older),
        Err(WriterError::RosterRollback { held: 3, got: 2 })
    ));
    let mut twin = r.clone();
    twin.published = WallTime(101);
    let twin = roster::parse(&twin.sign(&key(1)).unwrap(), &addr()).unwrap();
    assert!(matches!(
        roster::newer(Some(s), twin),
        Err(WriterError::Equivocation { seq: 3, .. })
    ));
}

#[test]
fn head_round_trip_and_v1_compatibility() {
    let r = roster(1, None);
    let a = publish(
        2,
        1,
        &[("index.html", b"hi"), ("x/y.txt", b"why")],
        None,
        &HeadSet::new(),
        &r,
    );
    assert_eq!(a.head.entries.len(), 2);
    assert_eq!(a.head.line(), LineId::of(&key(2).public(), ""));
    // Tampering breaks the signature; another site's address refuses it.
    let mut bad = a.bytes.clone();
    let n = bad.len();
    bad[n - 80] ^= 1;
    assert!(head::parse(&bad, &addr()).is_err());
    assert_eq!(
        head::parse(&a.bytes, &SiteAddress(key(2).public())),
        Err(WriterError::WrongSite)
    );
    // A version-1 manifest reads as the site key's main line.
    let v1 = build(
        &key(1),
        &[("index.html".into(), b"old".to_vec())],
        7,
        WallTime(100),
        1000,
    )
    .unwrap();
    let h = head::parse(&v1.manifest, &addr()).unwrap();
    assert_eq!(h.head.writer, key(1).public());
    assert_eq!((h.head.seq, h.head.branch.as_str()), (7, ""));
    let mut set = HeadSet::new();
    set.insert(h);
    let view = set.view(&Roster::implicit(key(1).public()), "");
    assert_eq!(view.file("index.html").map(|f| f.size), Some(3));
}

#[test]
fn oversized_and_inconsistent_vectors_are_typed_errors() {
    let r = roster(1, None);
    let a = publish(2, 1, &[("a", b"1")], None, &HeadSet::new(), &r);
    let mut h: Head = a.head.clone();
    for i in 0..300u32 {
        let mut l = [0; 32];
        l[..4].copy_from_slice(&i.to_be_bytes());
        h.vector.raise(LineId(l), 1);
    }
    assert_eq!(h.sign(&key(2)), Err(WriterError::VectorTooLarge));
    let mut h = a.head.clone();
    h.contexts[0].raise(LineId([9; 32]), 5);
    assert!(matches!(h.sign(&key(2)), Err(WriterError::BadVector(_))));
    let mut h = a.head.clone();
    h.vector = Default::default();
    assert!(matches!(h.sign(&key(2)), Err(WriterError::BadVector(_))));
    // An entry kind that is neither file nor tombstone (before the branch count byte).
    let mut bytes = a.bytes.clone();
    let at = bytes.len() - 64 - 1 - (8 + 32 + 1 + 10 + 4 + 32) - 1;
    bytes[at] = 9;
    assert!(matches!(
        head::parse(&bytes, &addr()),
        Err(WriterError::EntryKind(9))
    ));
}

#[test]
fn the_roster_admits_only_what_it_grants() {
    let r = roster(2, None);
    let seen = HeadSet::new();
    // Writer 3 may write only under b/.
    let files: BTreeMap<String, FileRef> = [("a.txt".to_string(), file(b"x"))].into();
    let intent = Intent {
        site: key(1).public(),
        writer: key(3).public(),
        branch: "",
        seq: 1,
        published: WallTime(1),
        expires: WallTime(u64::MAX),
        files: &files,
        delete: &BTreeSet::new(),
        branches: &std::collections::BTreeSet::new(),
        resolve: false,
    };
    assert!(matches!(
        next_head(&intent, None, &seen, &r),
        Err(WriterError::OutsidePrefix { .. })
    ));
    // A head signed outside its prefix is refused by whoever checks it.
    let mut forged = publish(3, 1, &[("b/ok.txt", b"ok")], None, &seen, &r).head;
    forged.entries[0].path = "index.html".into();
    let forged = head::parse(&forged.sign(&key(3)).unwrap(), &addr()).unwrap();
    assert!(matches!(
        r.admit(&forged.head),
        Err(WriterError::OutsidePrefix { .. })
    ));
    // Not a writer; a roster newer than the one held.
    let stranger = publish(
        4,
        1,
        &[],
        None,
        &seen,
        &Roster {
            writers: vec![RosterWriter {
                key: key(4).public(),
                prefixes: vec![String::new()],
                cutoff: None,
            }],
            ..Roster::implicit(key(1).public())
        },
    );
    assert!(matches!(
        r.admit(&stranger.head),
        Err(WriterError::NotAWriter { .. })
    ));
    let ahead = publish(2, 1, &[], None, &seen, &roster(5, None));
    assert!(matches!(
        r.admit(&ahead.head),
        Err(WriterError::UnknownRoster {
            claimed: 5,
            held: 2
        })
    ));
}

#[test]
fn revocation_cuts_a_writer_off_at_its_sequence() {
    let r = roster(1, None);
    let mut set = HeadSet::new();
    let b1 = publish(3, 1, &[("b/one", b"1")], None, &set, &r);
    set.insert(b1.clone());
    let b2 = publish(
        3,
        2,
        &[("b/one", b"1"), ("b/two", b"2")],
        Some(&b1),
        &set,
        &r,
    );
    // The site key revokes writer 3 at sequence 1, pinning b1.
    let revoked = roster(
        2,
        Some(Cutoff {
            seq: 1,
            head: b1.digest(),
        }),
    );
    assert_eq!(
        revoked.admit(&b2.head),
        Err(WriterError::Revoked { seq: 2, cutoff: 1 })
    );
    assert_eq!(revoked.admit(&b1.head), Ok(()));
    let mut late = HeadSet::new();
    late.insert(b2.clone());
    let v = late.view(&revoked, "");
    assert!(v.file("b/two").is_none() && v.refused.len() == 1);
    // Another manifest at the cut-off is not the pinned one.
    let twin = publish(3, 1, &[("b/one", b"evil")], None, &HeadSet::new(), &r);
    let mut s = HeadSet::new();
    s.insert(twin);
    assert!(s.view(&revoked, "").file("b/one").is_none());
    let mut s = HeadSet::new();
    s.insert(b1);
    assert_eq!(s.view(&revoked, "").file("b/one"), Some(&file(b"1")));
}

#[test]
fn equivocation_keeps_a_proof_and_the_lower_digest() {
    let r = roster(1, None);
    let x = publish(2, 1, &[("a", b"x")], None, &HeadSet::new(), &r);
    let y = publish(2, 1, &[("a", b"y")], None, &HeadSet::new(), &r);
    let (mut s1, mut s2) = (HeadSet::new(), HeadSet::new());
    assert_eq!(s1.insert(x.clone()), Inserted::New);
    assert_eq!(s1.insert(y.clone()), Inserted::Equivocation);
    s2.insert(y);
    s2.insert(x);
    assert_eq!(s1, s2);
    assert_eq!(s1.proofs().count(), 1);
    // The same sequence on another branch of the writer is equivocation too.
    let files: BTreeMap<String, FileRef> = [("a".to_string(), file(b"z"))].into();
    let intent = Intent {
        site: key(1).public(),
        writer: key(2).public(),
        branch: "draft",
        seq: 1,
        published: WallTime(1),
        expires: WallTime(u64::MAX),
        files: &files,
        delete: &BTreeSet::new(),
        branches: &std::collections::BTreeSet::new(),
        resolve: false,
    };
    let d = next_head(&intent, None, &HeadSet::new(), &r).unwrap();
    let d = head::parse(&d.sign(&key(2)).unwrap(), &addr()).unwrap();
    assert_eq!(s1.insert(d), Inserted::Equivocation);
    assert_eq!(s1.proofs().count(), 2);
}

#[test]
fn concurrent_edits_conflict_and_a_later_write_resolves_them() {
    let r = roster(1, None);
    let empty = HeadSet::new();
    // Writers 2 and 3 start from nothing, each writes its own files and b/shared.
    let a1 = publish(
        2,
        1,
        &[("index.html", b"a"), ("b/shared", b"A")],
        None,
        &empty,
        &r,
    );
    let b1 = publish(
        3,
        1,
        &[("b/mine", b"m"), ("b/shared", b"B")],
        None,
        &empty,
        &r,
    );
    let mut reader = HeadSet::new();
    reader.insert(b1.clone());
    reader.insert(a1.clone());
    let v = reader.view(&r, "");
    assert_eq!(v.files().count(), 3);
    let conflicts: Vec<_> = v.conflicts().map(|c| c.path.clone()).collect();
    assert_eq!(conflicts, ["b/shared"]);
    // Each side is reachable on its own line.
    let side_a = reader.line_view(&r, &key(2).public(), "");
    let side_b = reader.line_view(&r, &key(3).public(), "");
    assert_eq!(side_a.file("b/shared"), Some(&file(b"A")));
    assert_eq!(side_b.file("b/shared"), Some(&file(b"B")));
    // Writer 2 republishes unchanged: the conflict stays (no silent resolution).
    let a2 = publish(
        2,
        2,
        &[("index.html", b"a"), ("b/shared", b"A")],
        Some(&a1),
        &reader,
        &r,
    );
    let mut r2 = reader.clone();
    r2.insert(a2.clone());
    assert_eq!(r2.view(&r, "").conflicts().count(), 1);
    // Writer 2 takes writer 3's side: one value left, no conflict, nothing else lost.
    let a3 = publish(
        2,
        3,
        &[("index.html", b"a"), ("b/shared", b"B")],
        Some(&a2),
        &r2,
        &r,
    );
    r2.insert(a3);
    let v = r2.view(&r, "");
    assert_eq!(v.conflicts().count(), 0);
    assert_eq!(v.file("b/shared"), Some(&file(b"B")));
    assert_eq!(v.files().count(), 3);
    // Writer 3's later edit, after seeing that, is not a conflict either.
    let b2 = publish(
        3,
        2,
        &[("b/mine", b"m"), ("b/shared", b"B2")],
        Some(&b1),
        &r2,
        &r,
    );
    r2.insert(b2);
    let v = r2.view(&r, "");
    assert_eq!(
        (v.conflicts().count(), v.file("b/shared")),
        (0, Some(&file(b"B2")))
    );
    // A writer's dropped file is deleted; another writer's files are untouched by it.
    let a4 = publish(
        2,
        4,
        &[],
        r2.get(&LineId::of(&key(2).public(), "")),
        &r2,
        &r,
    );
    r2.insert(a4);
    let v = r2.view(&r, "");
    assert!(v.file("index.html").is_none());
    assert_eq!(v.file("b/mine"), Some(&file(b"m")));
    // The view hash is the same whatever order heads arrive in.
    let mut again = HeadSet::new();
    for h in r2.heads().collect::<Vec<_>>().into_iter().rev() {
        again.insert(h.clone());
    }
    assert_eq!(again.view(&r, "").hash(), v.hash());
}

#[test]
fn branch_names_are_dns_labels_and_a_main_line_lists_its_writers_branches() {
    use super::check_branch;
    use super::stage::announce;
    for ok in ["", "draft", "v-2", "a", &"x".repeat(63)] {
        assert_eq!(check_branch(ok), Ok(()), "{ok}");
    }
    for bad in [
        "Draft",
        "a_b",
        "a.b",
        "a/b",
        "-a",
        "a-",
        "view",
        &"x".repeat(64),
    ] {
        assert_eq!(check_branch(bad), Err(WriterError::BadBranch), "{bad}");
    }
    let r = roster(1, None);
    let a1 = publish(2, 1, &[("a.txt", b"a")], None, &HeadSet::new(), &r);
    // Writer 2 announces its branch on its main line: same entries, same dots, a new sequence.
    let branches = BTreeSet::from(["draft".to_string(), "v-2".to_string()]);
    let intent = Intent {
        site: key(1).public(),
        writer: key(2).public(),
        branch: "",
        seq: 5,
        published: WallTime(200),
        expires: WallTime(u64::MAX),
        files: &BTreeMap::new(),
        delete: &BTreeSet::new(),
        branches: &branches,
        resolve: false,
    };
    let h = announce(&intent, Some(&a1), &r).unwrap();
    let signed = head::parse(&h.sign(&key(2)).unwrap(), &addr()).unwrap();
    assert_eq!(signed.head.branches, vec!["draft", "v-2"]);
    assert_eq!(signed.head.prev, a1.digest());
    assert_eq!(signed.head.entries, a1.head.entries);
    let mut set = HeadSet::new();
    set.insert(a1.clone());
    let before = set.view(&r, "");
    set.insert(signed.clone());
    let after = set.view(&r, "");
    assert_eq!(before.paths, after.paths, "an announcement changes no file");
    assert_eq!(after.lines[0].branches, vec!["draft", "v-2"]);
    // Not above the previous sequence; unsorted, repeated or bad names are refused.
    let stale = Intent { seq: 1, ..intent };
    assert!(announce(&stale, Some(&a1), &r).is_err());
    for list in [vec!["b", "a"], vec!["a", "a"], vec!["A"], vec![""]] {
        let mut bad = h.clone();
        bad.branches = list.iter().map(|s| s.to_string()).collect();
        assert_eq!(bad.sign(&key(2)), Err(WriterError::BadBranch), "{list:?}");
    }
    // A fresh writer's announcement is an empty main line.
    let fresh = announce(&Intent { seq: 7, ..intent }, None, &r).unwrap();
    assert!(fresh.entries.is_empty() && fresh.branches.len() == 2);
    assert!(head::parse(&fresh.sign(&key(2)).unwrap(), &addr()).is_ok());
}
