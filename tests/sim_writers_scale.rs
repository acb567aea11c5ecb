//! Tier 4: many writers at scale, in the DHT simulator (`protocol-spec/11-writers.md`,
//! issue 16 item 8): 1,000 relays; three writers each make 1,000 edits while partitioned
//! from each other and from the network (ten offline publishes of 100 edits), 100 paths
//! edited by all three; on reconnecting each stores its newest manifest.
//!
//! - Every one of 60 readers (random relays looking up the roster and the three lines)
//!   computes a byte-identical view hash; all 100 conflicting paths are listed with all
//!   three sides; every edit of every final manifest is in the view (none dropped).
//! - The site key then revokes writer 2 at its newest manifest; writer 2 keeps publishing
//!   (five more manifests, which storers take: they check signatures, not rosters). Of 60
//!   readers, every one that holds the new roster refuses them all: none accepts or would
//!   serve a manifest of writer 2 past its cut-off.
//!
//! Replay with UMBRA_SIM_SEED.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::seed;
use umbra::crypto::hash::hash;
use umbra::crypto::keys::IdentityKey;
use umbra::crypto::rng::UmbraRng;
use umbra::dht::{DhtConfig, Goal, LookupOutcome};
use umbra::sim::dht_world::DhtWorld;
use umbra::site::address::SiteAddress;
use umbra::site::writers::head::{self, FileRef, SignedHead};
use umbra::site::writers::merge::{HeadSet, View};
use umbra::site::writers::roster::{self, Cutoff, Roster, RosterWriter};
use umbra::site::writers::stage::{Intent, next_head};
use umbra::site::writers::{LineId, line_dht_key, roster_dht_key};
use umbra::time::{Time, WallTime};
use umbra::wire::dht_msg::{Record, RecordKind};

const RELAYS: usize = 1000;
const WRITERS: usize = 3;
const EDITS: usize = 1000;
const SHARED: usize = 100;
const READERS: usize = 60;

fn at(secs: u64) -> Time {
    Time::ZERO + Duration::from_secs(secs)
}

fn file(tag: &str) -> FileRef {
    let h = hash(tag.as_bytes());
    FileRef {
        size: tag.len() as u64,
        hash: h,
        media_type: "text/plain".into(),
        blocks: vec![h],
    }
}

/// Writer `i`'s edit `e`: one of the 100 paths all three edit, or one of its own.
fn edit(i: usize, e: usize) -> (String, FileRef) {
    let path = if e < SHARED {
        format!("shared/{e:03}")
    } else {
        format!("w{i}/{e:04}")
    };
    (path, file(&format!("writer {i} edit {e}")))
}

struct Writer {
    key: IdentityKey,
    files: BTreeMap<String, FileRef>,
    prev: Option<SignedHead>,
    seq: u64,
}

impl Writer {
    /// Publish the folder as it is now, having seen only its own line.
    fn publish(&mut self, site: &IdentityKey, r: &Roster, wall: WallTime) -> SignedHead {
        self.seq += 1;
        let intent = Intent {
            site: site.public(),
            writer: self.key.public(),
            branch: "",
            seq: self.seq,
            published: wall,
            expires: WallTime(u64::MAX),
            files: &self.files,
            delete: &BTreeSet::new(),
            branches: &std::collections::BTreeSet::new(),
            resolve: false,
        };
        let h = next_head(&intent, self.prev.as_ref(), &HeadSet::new(), r).unwrap();
        let s = head::parse(&h.sign(&self.key).unwrap(), &SiteAddress(site.public())).unwrap();
        self.prev = Some(s.clone());
        s
    }
}

fn store(w: &mut DhtWorld, rng: &mut UmbraRng, records: Vec<Record>) {
    let ids: Vec<_> = records
        .into_iter()
        .map(|r| {
            let from = rng.below(RELAYS as u64) as usize;
            (
                from,
                w.start(from, r.key, Goal::Store(r, WallTime(u64::MAX))),
            )
        })
        .collect();
    let deadline = w.now() + Duration::from_secs(300);
    w.run_lookups(&ids, deadline);
    // Stored, or (a writer's manifests sent at once) refused by storers already holding a
    // later one of the same line (`06-dht.md#store`).
    for k in &ids {
        assert!(
            matches!(w.done.get(k), Some((LookupOutcome::Stored { copies, superseded }, _))
                if *copies > 0 || *superseded > 0),
            "a record was not stored"
        );
    }
}

/// What a reader at relay `from` makes of the site: the roster it found and its view.
fn read(w: &mut DhtWorld, from: usize, site: &SiteAddress, lines: &[LineId]) -> (Roster, View) {
    let mut asks = vec![(
        from,
        w.start(
            from,
            roster_dht_key(&site.0),
            Goal::Value(RecordKind::ROSTER),
        ),
    )];
    for l in lines {
        asks.push((
            from,
            w.start(
                from,
                line_dht_key(&site.0, l),
                Goal::Value(RecordKind::WRITER),
            ),
        ));
    }
    let deadline = w.now() + Duration::from_secs(120);
    w.run_lookups(&asks, deadline);
    let found = |k| match w.done.get(k) {
        Some((LookupOutcome::Found(r), _)) => Some(r.value.clone()),
        _ => None,
    };
    let roster = found(&asks[0])
        .and_then(|b| roster::parse(&b, site).ok())
        .map_or_else(|| Roster::implicit(site.0), |r| r.roster);
    let mut set = HeadSet::new();
    for k in &asks[1..] {
        if let Some(b) = found(k)
            && let Ok(h) = head::parse(&b, site)
        {
            set.insert(h);
        }
    }
    let view = set.view(&roster, "");
    (roster, view)
}

#[test]
fn three_writers_thousand_offline_edits_thousand_relays() {
    let s = seed(160);
    let mut w = DhtWorld::new(s, RELAYS, DhtConfig::default());
    w.join_all(4);
    w.run_until(at(120));
    let mut rng = UmbraRng::from_u64(s ^ 16);
    let site = IdentityKey::generate(&mut rng);
    let addr = SiteAddress(site.public());
    let mut writers: Vec<Writer> = (0..WRITERS)
        .map(|_| Writer {
            key: IdentityKey::generate(&mut rng),
            files: BTreeMap::new(),
            prev: None,
            seq: 0,
        })
        .collect();
    let mut roster_entries: Vec<RosterWriter> = writers
        .iter()
        .map(|x| RosterWriter {
            key: x.key.public(),
            prefixes: vec![String::new()],
            cutoff: None,
        })
        .collect();
    roster_entries.sort_by_key(|x| x.key.to_bytes());
    let r1 = Roster {
        site: site.public(),
        seq: 1,
        published: w.wall(),
        writers: roster_entries,
    };
    let lines: Vec<LineId> = writers
        .iter()
        .map(|x| LineId::of(&x.key.public(), ""))
        .collect();

    // Partitioned: each writer makes its 1,000 edits in ten offline publishes.
    let wall = w.wall();
    let mut finals = Vec::new();
    for (i, wr) in writers.iter_mut().enumerate() {
        let mut last = None;
        for batch in 0..10 {
            for e in batch * 100..(batch + 1) * 100 {
                let (p, f) = edit(i, e);
                wr.files.insert(p, f);
            }
            last = Some(wr.publish(&site, &r1, wall));
        }
        finals.push(last.unwrap());
    }
    // Reconnected: the roster and each writer's newest manifest are stored.
    let mut records = vec![Record {
        kind: RecordKind::ROSTER,
        key: roster_dht_key(&site.public()),
        value: r1.sign(&site).unwrap(),
    }];
    for h in &finals {
        records.push(Record {
            kind: RecordKind::WRITER,
            key: line_dht_key(&site.public(), &h.head.line()),
            value: h.bytes.clone(),
        });
    }
    store(&mut w, &mut rng, records);

    let mut hashes = BTreeSet::new();
    for _ in 0..READERS {
        let from = rng.below(RELAYS as u64) as usize;
        let (roster, view) = read(&mut w, from, &addr, &lines);
        assert_eq!(roster.seq, 1);
        assert!(view.refused.is_empty(), "{:?}", view.refused);
        assert_eq!(view.lines.len(), WRITERS, "a reader found every line");
        let conflicts: Vec<_> = view.conflicts().collect();
        assert_eq!(conflicts.len(), SHARED, "every conflicting path listed");
        assert!(conflicts.iter().all(|c| c.candidates.len() == WRITERS));
        // No edit dropped: every entry of every final manifest is a survivor of its path.
        let survivors: usize = view.paths.iter().map(|p| p.candidates.len()).sum();
        assert_eq!(survivors, WRITERS * EDITS);
        for h in &finals {
            let line = h.head.line();
            for e in &h.head.entries {
                assert!(
                    view.path(&e.path)
                        .is_some_and(|p| p.candidates.iter().any(|c| c.line == line)),
                    "{} of a writer dropped",
                    e.path
                );
            }
        }
        hashes.insert(view.hash());
    }
    assert_eq!(hashes.len(), 1, "every reader reaches the same view hash");
    eprintln!(
        "{READERS} readers, one view hash, {SHARED} conflicts listed, {} edits kept",
        WRITERS * EDITS
    );

    // The site key revokes writer 2 at its newest manifest; writer 2 keeps publishing.
    let cut = finals[2].clone();
    let mut r2 = r1.clone();
    r2.seq = 2;
    for x in &mut r2.writers {
        if x.key == writers[2].key.public() {
            x.cutoff = Some(Cutoff {
                seq: cut.head.seq,
                head: cut.digest(),
            });
        }
    }
    let mut records = vec![Record {
        kind: RecordKind::ROSTER,
        key: roster_dht_key(&site.public()),
        value: r2.sign(&site).unwrap(),
    }];
    for k in 0..5 {
        let (p, f) = edit(2, 5000 + k);
        writers[2].files.insert(p, f);
        let h = writers[2].publish(&site, &r1, wall);
        records.push(Record {
            kind: RecordKind::WRITER,
            key: line_dht_key(&site.public(), &h.head.line()),
            value: h.bytes.clone(),
        });
    }
    store(&mut w, &mut rng, records);
    let (mut holding, mut accepted) = (0, 0);
    for _ in 0..READERS {
        let from = rng.below(RELAYS as u64) as usize;
        let (roster, view) = read(&mut w, from, &addr, &lines);
        if roster.seq < 2 {
            continue;
        }
        holding += 1;
        let line = lines[2];
        if view
            .lines
            .iter()
            .any(|l| l.line == line && l.seq > cut.head.seq)
        {
            accepted += 1;
        }
        assert!(
            view.refused
                .iter()
                .any(|(l, e)| *l == line && e.class() == "revoked"),
            "the revoked writer's manifest was not refused: {:?}",
            view.refused
        );
        assert!(
            view.files().all(|(p, _)| !p.starts_with("w2/")),
            "a revoked manifest's file served"
        );
    }
    eprintln!(
        "{holding}/{READERS} readers hold the new roster; {accepted} accept a manifest past the cut-off"
    );
    assert!(
        holding * 100 >= READERS * 99,
        "only {holding} of {READERS} readers hold the new roster"
    );
    assert_eq!(accepted, 0);
}
