//! Tier 4: keeping a pinned site (`protocol-spec/07-sites.md#pinning`), full stack in the
//! simulator: a pin fetches the site whole through a circuit; when every storer lost it,
//! the pinned copy goes back into the network and other readers can fetch it again; a new
//! version is fetched with only its new blocks. Replay with UMBRA_SIM_SEED.

mod common;

use common::seed;
use std::time::Duration;

use umbra::app::keep::{Copy, KeepSite, KeepState, Kept};
use umbra::app::publish::{Publish, PublishState};
use umbra::app::site_files::{FetchSite, FetchState};
use umbra::crypto::keys::IdentityKey;
use umbra::crypto::rng::UmbraRng;
use umbra::dht::DhtConfig;
use umbra::sim::{AppId, NetModel, World};
use umbra::site::address::SiteAddress;
use umbra::time::Time;
use umbra::wire::dht_msg::RecordKind;

const RELAYS: usize = 60;

fn at(secs: u64) -> Time {
    Time::ZERO + Duration::from_secs(secs)
}

fn run_one(w: &mut World, id: AppId, secs: u64) {
    let deadline = w.now() + Duration::from_secs(secs);
    w.run_apps(&[id], deadline);
}

fn publish(w: &mut World, r: usize, key: &IdentityKey, files: &[(String, Vec<u8>)]) {
    let id = w.spawn(
        r,
        Box::new(Publish::new(key.clone(), files.to_vec(), 86_400)),
    );
    run_one(w, id, 300);
    let p = w.app::<Publish>(id).unwrap();
    assert!(
        matches!(p.state, PublishState::Done(_)),
        "{:?}",
        p.last_error
    );
}

fn keep(w: &mut World, r: usize, site: SiteAddress, held: Option<Copy>) -> Kept {
    let id = w.spawn(r, Box::new(KeepSite::new(site, held)));
    run_one(w, id, 600);
    let k = w.app::<KeepSite>(id).unwrap();
    match &k.state {
        KeepState::Done(kept) => (**kept).clone(),
        other => panic!("keep: {other:?} ({:?})", k.last_error),
    }
}

fn fetch(w: &mut World, r: usize, site: SiteAddress) -> Option<Vec<(String, Vec<u8>)>> {
    let id = w.spawn(r, Box::new(FetchSite::site(site)));
    run_one(w, id, 600);
    let f = w.app::<FetchSite>(id).unwrap();
    (f.state == FetchState::Done).then(|| {
        let mut c = f.contents().unwrap();
        c.sort();
        c
    })
}

/// Relays holding any record of `copy` lose everything they hold (restarted empty).
fn lose_everywhere(w: &mut World, site: SiteAddress, copy: &Copy) -> usize {
    let mut keys: Vec<(RecordKind, [u8; 32])> = copy
        .blocks
        .keys()
        .map(|k| (RecordKind::BLOCK, *k))
        .collect();
    keys.push((RecordKind::MANIFEST, site.dht_key()));
    let now = w.now();
    let holders: Vec<usize> = (0..RELAYS)
        .filter(|i| {
            let n = &w.nodes()[*i].node;
            let wall = n.wall(now);
            n.dht().is_some_and(|d| {
                keys.iter()
                    .any(|(k, key)| d.store().info(*k, key, wall).is_some())
            })
        })
        .collect();
    for &i in &holders {
        w.kill(i);
        w.restart(i);
    }
    holders.len()
}

#[test]
fn a_pinned_copy_brings_a_lost_site_back_and_follows_new_versions() {
    let s = seed(88);
    let mut w = World::new(s, RELAYS, 6, NetModel::default());
    w.enable_dht(DhtConfig::default(), 4);
    w.run_until(at(30));
    let mut rng = UmbraRng::from_u64(s);
    let key = IdentityKey::generate(&mut rng);
    let site = SiteAddress(key.public());
    let mut big = vec![0u8; 100_000];
    rng.fill(&mut big);
    let mut files = vec![
        ("index.html".to_string(), b"<h1>pinned</h1>".to_vec()),
        ("data.bin".to_string(), big),
    ];
    files.sort();
    let (publisher, pinner, reader) = (RELAYS, RELAYS + 1, RELAYS + 2);
    publish(&mut w, publisher, &key, &files);

    // The pin fetches the site whole; the network still held every record.
    let first = keep(&mut w, pinner, site, None);
    let blocks = first.copy.blocks.len();
    assert_eq!(
        blocks, 5,
        "index.html and 100,000 bytes of data.bin: 1 + 4 blocks"
    );
    assert_eq!(first.fetched, blocks, "fetched whole");
    assert_eq!(first.restored, 0, "nothing was missing");

    // Every storer loses it: nobody can read it now.
    let lost = lose_everywhere(&mut w, site, &first.copy);
    assert!(lost >= 8, "{lost} holders");
    w.run_until(w.now() + Duration::from_secs(60));
    assert_eq!(fetch(&mut w, reader, site), None, "the site is gone");

    // The pinned copy goes back; another reader fetches it intact.
    let back = keep(&mut w, pinner, site, Some(first.copy.clone()));
    assert_eq!(back.fetched, 0, "nothing to fetch: the network had nothing");
    assert_eq!(back.restored, blocks, "every block stored again whole");
    assert!(back.min_copies >= 1);
    assert_eq!(back.copy, first.copy);
    assert_eq!(fetch(&mut w, reader + 1, site), Some(files.clone()));

    // A new version: only its new block is fetched.
    assert_eq!(files[0].0, "data.bin");
    let v2 = vec![
        files[0].clone(),
        (
            "index.html".to_string(),
            b"<h1>pinned, version two</h1>".to_vec(),
        ),
    ];
    w.run_until(w.now() + Duration::from_secs(2));
    publish(&mut w, publisher, &key, &v2);
    let newer = keep(&mut w, pinner, site, Some(back.copy.clone()));
    assert!(newer.copy.seq > back.copy.seq, "the new version is kept");
    assert_eq!(newer.fetched, 1, "only the changed page was fetched");
    assert_eq!(newer.copy.blocks.len(), blocks);
}
