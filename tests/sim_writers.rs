//! Tier 4: sites with many writers in the simulator (`protocol-spec/11-writers.md`,
//! `06-dht.md#records`): a roster and writer manifests stored through circuits, then read
//! back by other readers through other circuits and merged; a revocation.
//!
//! Checks: storers take rosters (kind 3) and writer manifests (kind 4) and lookups find the
//! newest; a reader that heard nothing of the writers gets both writers' files and the
//! conflict between them, and the same view hash as another reader; after the site key
//! revokes writer B at its first manifest, B's second is refused by readers holding the new
//! roster, and its first (fetched by digest from history, since storers now hold the later
//! one under B's line) stays in the view.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::seed;
use umbra::app::writers::{Gather, Progress, Upload};
use umbra::crypto::keys::IdentityKey;
use umbra::crypto::rng::UmbraRng;
use umbra::dht::DhtConfig;
use umbra::sim::{AppId, NetModel, World};
use umbra::site::address::SiteAddress;
use umbra::site::writers::head::{self, SignedHead};
use umbra::site::writers::merge::HeadSet;
use umbra::site::writers::roster::{Cutoff, Roster, RosterWriter};
use umbra::site::writers::stage::{Intent, cut, next_head};
use umbra::site::writers::{LineId, line_dht_key, roster_dht_key};
use umbra::time::{Time, WallTime};
use umbra::wire::dht_msg::{Record, RecordKind};

fn at(secs: u64) -> Time {
    Time::ZERO + Duration::from_secs(secs)
}

struct Keys {
    site: IdentityKey,
    a: IdentityKey,
    b: IdentityKey,
}

fn roster(k: &Keys, seq: u64, cutoff_b: Option<Cutoff>) -> Roster {
    let mut writers = vec![
        RosterWriter {
            key: k.a.public(),
            prefixes: vec![String::new()],
            cutoff: None,
        },
        RosterWriter {
            key: k.b.public(),
            prefixes: vec!["b/".into()],
            cutoff: cutoff_b,
        },
    ];
    writers.sort_by_key(|w| w.key.to_bytes());
    Roster {
        site: k.site.public(),
        seq,
        published: WallTime(0),
        writers,
    }
}

fn upload_roster(w: &mut World, reader: usize, k: &Keys, r: &Roster) -> AppId {
    let record = Record {
        kind: RecordKind::ROSTER,
        key: roster_dht_key(&k.site.public()),
        value: r.sign(&k.site).unwrap(),
    };
    w.spawn(
        reader,
        Box::new(Upload::new(
            record,
            u64::MAX,
            &BTreeMap::new(),
            &BTreeSet::new(),
        )),
    )
}

/// Writer `key` publishes `files` at `seq` on its main line, having seen `seen`.
fn upload_head(
    w: &mut World,
    reader: usize,
    (key, site): (&IdentityKey, &IdentityKey),
    seq: u64,
    files: &[(&str, &[u8])],
    prev: Option<&SignedHead>,
    r: &Roster,
) -> (AppId, SignedHead) {
    let files: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(p, c)| (p.to_string(), c.to_vec()))
        .collect();
    let c = cut(&files).unwrap();
    let (refs, blocks) = (c.files, c.blocks);
    let intent = Intent {
        site: site.public(),
        writer: key.public(),
        branch: "",
        seq,
        published: WallTime(0),
        expires: WallTime(u64::MAX),
        files: &refs,
        delete: &BTreeSet::new(),
        branches: &std::collections::BTreeSet::new(),
        resolve: false,
    };
    let h = next_head(&intent, prev, &HeadSet::new(), r).unwrap();
    let bytes = h.sign(key).unwrap();
    let signed = head::parse(&bytes, &SiteAddress(site.public())).unwrap();
    let history = Record {
        kind: RecordKind::HISTORY,
        key: umbra::crypto::hash::hash(&bytes),
        value: bytes.clone(),
    };
    let record = Record {
        kind: RecordKind::WRITER,
        key: line_dht_key(&site.public(), &h.line()),
        value: bytes,
    };
    let id = w.spawn(
        reader,
        Box::new(Upload::with(
            record,
            u64::MAX,
            &blocks,
            &BTreeSet::new(),
            vec![history],
        )),
    );
    (id, signed)
}

fn done(w: &World, ids: &[AppId]) {
    for &id in ids {
        let state = w
            .app::<Upload>(id)
            .map(|u| u.state.clone())
            .or_else(|| w.app::<Gather>(id).map(|g| g.state.clone()));
        assert_eq!(state, Some(Progress::Done), "app {id:?}");
    }
}

#[test]
fn writers_publish_readers_merge_and_a_revocation_holds() {
    let s = seed(16);
    let relays = 60;
    let mut w = World::new(s, relays, 8, NetModel::default());
    w.enable_dht(DhtConfig::default(), 4);
    w.run_until(at(30));
    let mut rng = UmbraRng::from_u64(s);
    let k = Keys {
        site: IdentityKey::generate(&mut rng),
        a: IdentityKey::generate(&mut rng),
        b: IdentityKey::generate(&mut rng),
    };
    let addr = SiteAddress(k.site.public());
    let r1 = roster(&k, 1, None);
    let big: Vec<u8> = (0..80_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let j0 = upload_roster(&mut w, relays, &k, &r1);
    // A and B edit offline, each without the other: both write b/shared.
    let (j1, _a1) = upload_head(
        &mut w,
        relays + 1,
        (&k.a, &k.site),
        1,
        &[
            ("index.html", b"<p>a</p>"),
            ("big.bin", &big),
            ("b/shared", b"A"),
        ],
        None,
        &r1,
    );
    let (j2, b1) = upload_head(
        &mut w,
        relays + 2,
        (&k.b, &k.site),
        1,
        &[("b/mine", b"m"), ("b/shared", b"B")],
        None,
        &r1,
    );
    w.run_apps(&[j0, j1, j2], at(300));
    done(&w, &[j0, j1, j2]);

    // Two readers that heard nothing gather the site and merge it.
    let g1 = w.spawn(relays + 3, Box::new(Gather::new(addr, "", vec![])));
    let g2 = w.spawn(relays + 4, Box::new(Gather::new(addr, "", vec![])));
    w.run_apps(&[g1, g2], at(600));
    done(&w, &[g1, g2]);
    let views: Vec<_> = [g1, g2]
        .iter()
        .map(|&g| {
            let found = &w.app::<Gather>(g).unwrap().found;
            assert!(found.refused.is_empty(), "{:?}", found.refused);
            assert_eq!(found.roster.as_ref().map(|r| r.roster.seq), Some(1));
            found.heads.view(&found.roster_or_implicit(&addr), "")
        })
        .collect();
    let files: Vec<&str> = views[0].files().map(|(p, _)| p).collect();
    assert_eq!(files, ["b/mine", "b/shared", "big.bin", "index.html"]);
    assert_eq!(views[0].file("big.bin").map(|f| f.blocks.len()), Some(3));
    let conflicts: Vec<&str> = views[0].conflicts().map(|c| c.path.as_str()).collect();
    assert_eq!(conflicts, ["b/shared"]);
    assert_eq!(views[0].hash(), views[1].hash());

    // The site key revokes B at its first manifest; B publishes again anyway.
    let r2 = roster(
        &k,
        2,
        Some(Cutoff {
            seq: 1,
            head: b1.digest(),
        }),
    );
    let j3 = upload_roster(&mut w, relays + 5, &k, &r2);
    let (j4, _) = upload_head(
        &mut w,
        relays + 2,
        (&k.b, &k.site),
        2,
        &[("b/mine", b"taken over"), ("b/shared", b"B")],
        Some(&b1),
        &r1,
    );
    w.run_apps(&[j3, j4], at(900));
    done(&w, &[j3, j4]);
    // B's own line now holds sequence 2 at the storers; the reader refuses it.
    let g3 = w.spawn(
        relays + 6,
        Box::new(Gather::new(addr, "", vec![LineId::of(&k.b.public(), "")])),
    );
    w.run_apps(&[g3], at(1200));
    done(&w, &[g3]);
    let found = &w.app::<Gather>(g3).unwrap().found;
    assert_eq!(found.roster.as_ref().map(|r| r.roster.seq), Some(2));
    let held_b = found
        .heads
        .get(&LineId::of(&k.b.public(), ""))
        .map(|h| h.head.seq);
    assert_eq!(held_b, Some(2), "the storers serve B's newest manifest");
    let v = found.heads.view(&found.roster_or_implicit(&addr), "");
    assert_eq!(v.refused.len(), 1, "{:?}", v.refused);
    assert_eq!(v.refused[0].1.class(), "revoked");
    // B's later manifest is not served; its pinned last head, fetched from history, is.
    let served = v.file("b/mine").map(|f| f.hash);
    assert_eq!(
        served,
        Some(umbra::crypto::hash::hash(b"m")),
        "B's pinned manifest serves b/mine as B signed it before the cut-off"
    );
}
