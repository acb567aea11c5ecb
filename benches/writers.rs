//! `cargo bench --bench writers`: sites with many writers against issue 16's targets
//! (`protocol-spec/11-writers.md`), printed as a table for `docs/performance.md`.
//!
//! - **Merge time**: the view of 8 writers' heads of 10,000 paths each (9-byte paths, one
//!   block each, so each signed head fits the 1 MiB cap), on one core (the view is computed
//!   on one thread): every path written by all 8 concurrently (80,000
//!   candidates, 10,000 eight-way conflicts: the most work a view can take), and the same
//!   after one writer merged everything (7 of 8 entries dominated per path). Median of 11
//!   runs; parsing and verifying the 8 signed manifests is timed apart.
//! - **Size**: the bytes of a writer manifest with no entries, per line of its vector, and
//!   per entry (one path of 24 bytes, one block), from real encodings.
//! - **Sync state**: what a node holds to sync a site (a sequence per line): after 10 and
//!   after 1,000 publishes by each of 8 writers. It does not grow with history.
//!
//! Not in this file: the figures that need processes or the network.

#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use umbra::crypto::hash::hash;
use umbra::crypto::keys::IdentityKey;
use umbra::site::address::SiteAddress;
use umbra::site::writers::LineId;
use umbra::site::writers::head::{self, FileRef, Head, HeadEntry, SignedHead, Value, Vector};
use umbra::site::writers::merge::{HeadSet, View};
use umbra::site::writers::roster::{Roster, RosterWriter};
use umbra::site::writers::stage::{Intent, next_head};
use umbra::time::WallTime;

const WRITERS: usize = 8;
const PATHS: usize = 10_000;

fn key(i: usize) -> IdentityKey {
    IdentityKey::from_secret_bytes(hash(format!("bench writer {i}").as_bytes()))
}

fn site() -> IdentityKey {
    IdentityKey::from_secret_bytes(hash(b"bench site"))
}

/// Short paths: 10,000 entries of one block each must fit the 1 MiB manifest cap.
fn path(i: usize) -> String {
    format!("d{:02}/{i:05}", i % 100)
}

fn file(tag: usize) -> FileRef {
    let h = hash(&tag.to_be_bytes());
    FileRef {
        size: 2_000,
        hash: h,
        media_type: "text/html".into(),
        blocks: vec![h],
    }
}

/// Writer `w`'s head of `PATHS` entries at `seq`, each written in context `ctx`.
fn head_of(w: usize, seq: u64, ctx: Vector, tag: usize) -> SignedHead {
    let k = key(w);
    let mut vector = ctx.clone();
    vector.raise(LineId::of(&k.public(), ""), seq);
    let mut entries: Vec<HeadEntry> = (0..PATHS)
        .map(|i| HeadEntry {
            path: path(i),
            ctx: 0,
            value: Value::File(file(tag * PATHS + i)),
        })
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let h = Head {
        site: site().public(),
        writer: k.public(),
        branch: String::new(),
        seq,
        roster: 1,
        published: WallTime(1),
        expires: WallTime(u64::MAX),
        prev: [0; 32],
        vector,
        contexts: vec![ctx],
        entries,
        branches: Vec::new(),
    };
    let bytes = h.sign(&k).expect("sign");
    head::parse(&bytes, &SiteAddress(site().public())).expect("parse")
}

fn own(w: usize, seq: u64) -> Vector {
    let mut v = Vector::default();
    v.raise(LineId::of(&key(w).public(), ""), seq);
    v
}

fn median_ms(mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..11)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn roster() -> Roster {
    let mut writers: Vec<RosterWriter> = (0..WRITERS)
        .map(|w| RosterWriter {
            key: key(w).public(),
            prefixes: vec![String::new()],
            cutoff: None,
        })
        .collect();
    writers.sort_by_key(|w| w.key.to_bytes());
    Roster {
        site: site().public(),
        seq: 1,
        published: WallTime(1),
        writers,
    }
}

fn main() {
    let row = |name: &str, v: f64, unit: &str| println!("{name:<66} {v:>10.2} {unit}");
    println!("cargo bench --bench writers: {WRITERS} writers x {PATHS} paths");
    // All concurrent: each writer wrote every path having seen nobody.
    let concurrent: Vec<SignedHead> = (0..WRITERS).map(|w| head_of(w, 1, own(w, 1), w)).collect();
    // Merged: writer 0 saw everyone's first heads and wrote every path again.
    let mut all = Vector::default();
    for w in 1..WRITERS {
        all.raise(LineId::of(&key(w).public(), ""), 1);
    }
    all.raise(LineId::of(&key(0).public(), ""), 2);
    let mut merged = concurrent.clone();
    merged[0] = head_of(0, 2, all, 99);

    let refs: Vec<&SignedHead> = concurrent.iter().collect();
    let mut view = View::default();
    let ms = median_ms(|| view = View::of(&refs));
    assert_eq!(view.conflicts().count(), PATHS);
    row("merge, every path an 8-way conflict (view only)", ms, "ms");
    let ms = median_ms(|| {
        let _ = View::of(&refs).hash();
    });
    row("  view and its hash", ms, "ms");
    let refs: Vec<&SignedHead> = merged.iter().collect();
    let ms = median_ms(|| view = View::of(&refs));
    assert_eq!(view.conflicts().count(), 0);
    row(
        "merge after one writer merged all (7 of 8 dominated)",
        ms,
        "ms",
    );
    let bytes: Vec<Vec<u8>> = merged.iter().map(|h| h.bytes.clone()).collect();
    let addr = SiteAddress(site().public());
    let r = roster();
    let ms = median_ms(|| {
        let mut set = HeadSet::new();
        for b in &bytes {
            set.insert(head::parse(b, &addr).expect("parse"));
        }
        let _ = set.view(&r, "");
    });
    row(
        "  parse and verify the 8 manifests, then the view",
        ms,
        "ms",
    );
    let mb: usize = bytes.iter().map(Vec::len).sum();
    row("  the 8 signed manifests", mb as f64 / 1e6, "MB");

    // Sizes from real encodings.
    let size = |n: usize, lines: usize| {
        let k = key(0);
        let mut v = own(0, 5);
        for l in 1..lines {
            v.raise(LineId::of(&key(l).public(), ""), 3);
        }
        let mut entries: Vec<HeadEntry> = (0..n)
            .map(|i| HeadEntry {
                path: format!("blog/post-{i:06}.html"),
                ctx: 0,
                value: Value::File(file(i)),
            })
            .collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Head {
            site: site().public(),
            writer: k.public(),
            branch: String::new(),
            seq: 5,
            roster: 1,
            published: WallTime(1),
            expires: WallTime(u64::MAX),
            prev: [7; 32],
            vector: v.clone(),
            contexts: vec![v],
            entries,
            branches: Vec::new(),
        }
        .sign(&k)
        .expect("sign")
        .len()
    };
    let empty = size(0, 1);
    row(
        "writer manifest, no entries, one line",
        empty as f64,
        "bytes",
    );
    row(
        "  per further line in its vector",
        (size(0, 9) - empty) as f64 / 8.0,
        "bytes",
    );
    row(
        "  per entry (22-byte path, one block, 9-byte media type)",
        (size(1000, 1) - size(0, 1)) as f64 / 1000.0,
        "bytes",
    );

    // Sync state: a node's state of a site is a sequence per line, however long the history.
    let state_after = |publishes: u64| {
        let r = roster();
        let mut set = HeadSet::new();
        let mut prev: Vec<Option<SignedHead>> = vec![None; WRITERS];
        for seq in 1..=publishes {
            for (w, p) in prev.iter_mut().enumerate() {
                let files: BTreeMap<String, FileRef> =
                    [(format!("w{w}/f{}", seq % 7), file(seq as usize))].into();
                let intent = Intent {
                    site: site().public(),
                    writer: key(w).public(),
                    branch: "",
                    seq,
                    published: WallTime(1),
                    expires: WallTime(u64::MAX),
                    files: &files,
                    delete: &BTreeSet::new(),
                    branches: &std::collections::BTreeSet::new(),
                    resolve: false,
                };
                let h = next_head(&intent, p.as_ref(), &set, &r).expect("next head");
                let s = head::parse(&h.sign(&key(w)).expect("sign"), &addr).expect("parse");
                set.insert(s.clone());
                *p = Some(s);
            }
        }
        set.state().len() * 40
    };
    row(
        "sync state, 8 writers after 10 publishes each",
        state_after(10) as f64,
        "bytes",
    );
    row(
        "sync state, 8 writers after 1,000 publishes each",
        state_after(1000) as f64,
        "bytes",
    );
}
