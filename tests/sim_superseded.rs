//! Tier 4: a `PUT` of a versioned record the network has moved past is refused, not
//! reported stored (`protocol-spec/06-dht.md#exit-requests`, `#store`; issue 17's finding 2).
//!
//! A site's manifest at sequence 10 is stored through one circuit. Then, through other
//! readers and exits: the same site at sequence 5 (a publisher whose clock went back), and
//! another manifest with sequence 10 (equivocation), are each answered `REFUSED` reason 4,
//! `SUPERSEDED`: the upload fails at once, saying so. Storing sequence 10's bytes again is
//! still a success (the same record extends its lifetime), and sequence 11 is stored. Before the fix, storers' "older" answers were counted as
//! copies and every one of these uploads was told it succeeded.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::seed;
use umbra::app::writers::{Progress, Upload};
use umbra::crypto::keys::IdentityKey;
use umbra::crypto::rng::UmbraRng;
use umbra::dht::DhtConfig;
use umbra::sim::{NetModel, World};
use umbra::site::address::SiteAddress;
use umbra::site::{Built, build};
use umbra::time::{Time, WallTime};
use umbra::wire::dht_msg::{Record, RecordKind};

fn at(secs: u64) -> Time {
    Time::ZERO + Duration::from_secs(secs)
}

fn manifest(key: &IdentityKey, seq: u64, text: &str) -> Built {
    build(
        key,
        &[("index.html".into(), text.as_bytes().to_vec())],
        seq,
        WallTime(umbra::sim::WALL_START),
        86_400 * 365,
    )
    .unwrap()
}

#[test]
fn a_put_the_network_has_moved_past_is_refused_as_superseded() {
    let s = seed(17);
    let relays = 40;
    let mut w = World::new(s, relays, 8, NetModel::default());
    w.enable_dht(DhtConfig::default(), 4);
    w.run_until(at(30));
    let key = IdentityKey::generate(&mut UmbraRng::from_u64(s));
    let addr = SiteAddress(key.public());
    let upload = |w: &mut World, reader: usize, b: &Built, until: u64| -> (Progress, u8) {
        let record = Record {
            kind: RecordKind::MANIFEST,
            key: addr.dht_key(),
            value: b.manifest.clone(),
        };
        let id = w.spawn(
            relays + reader,
            Box::new(Upload::new(record, u64::MAX, &b.blocks, &BTreeSet::new())),
        );
        w.run_apps(&[id], at(until));
        let u = w.app::<Upload>(id).unwrap();
        (u.state.clone(), u.min_copies)
    };
    let v10 = manifest(&key, 10, "ten");
    let (state, copies) = upload(&mut w, 0, &v10, 300);
    assert_eq!(state, Progress::Done);
    assert!(copies > 0);

    for (reader, b, what) in [
        (1, manifest(&key, 5, "five"), "an older sequence"),
        (
            2,
            manifest(&key, 10, "another ten"),
            "another manifest, same sequence",
        ),
    ] {
        let (state, copies) = upload(&mut w, reader, &b, 600 + 300 * reader as u64);
        match state {
            Progress::Failed(why) => assert!(why.contains("newer version"), "{what}: {why}"),
            other => panic!("{what}: the upload ended {other:?} with {copies} copies"),
        }
    }
    let (state, _) = upload(&mut w, 3, &v10, 1_800);
    assert_eq!(state, Progress::Done, "the same record again");
    let v11 = manifest(&key, 11, "eleven");
    let (state, copies) = upload(&mut w, 4, &v11, 2_100);
    assert_eq!(state, Progress::Done);
    assert!(copies > 0);
}
