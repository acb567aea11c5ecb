//! Tier 4: content in the simulator (`protocol-spec/06-dht.md`, `07-sites.md`): publish
//! through circuits, publishers leave, churn, fetch through circuits, every byte verified;
//! privacy invariants over the DHT nodes' observation logs.

mod common;

use common::seed;
use std::collections::BTreeSet;
use std::time::Duration;

use umbra::app::publish::{Publish, PublishState};
use umbra::app::site_files::{FetchSite, FetchState};
use umbra::crypto::keys::IdentityKey;
use umbra::crypto::rng::UmbraRng;
use umbra::dht::DhtConfig;
use umbra::sim::{AppId, NetModel, World};
use umbra::site::address::SiteAddress;
use umbra::time::Time;

/// Start fetching `site` on reader `r`.
fn fetch(w: &mut World, r: usize, site: SiteAddress) -> AppId {
    w.spawn(r, Box::new(FetchSite::site(site)))
}

/// Start the publish app on reader `r`: the site of `key` made of `files`.
fn publish(w: &mut World, r: usize, key: IdentityKey, files: Vec<(String, Vec<u8>)>) -> AppId {
    w.spawn(r, Box::new(Publish::new(key, files, 86_400)))
}

/// Every publish app of `ids` finished with its site stored.
fn assert_published(w: &World, ids: &[AppId]) {
    for &id in ids {
        let p = w.app::<Publish>(id).unwrap();
        assert!(
            matches!(p.state, PublishState::Done(_)),
            "publish: {:?} ({:?})",
            p.state,
            p.last_error
        );
    }
}

/// The fetch apps `ids`, to read their results.
fn fetches_of<'a>(w: &'a World, ids: &[AppId]) -> Vec<&'a FetchSite> {
    ids.iter()
        .map(|&id| w.app::<FetchSite>(id).unwrap())
        .collect()
}

fn at(secs: u64) -> Time {
    Time::ZERO + Duration::from_secs(secs)
}

fn site_files(rng: &mut UmbraRng, n: usize) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![(
        "index.html".to_string(),
        format!("<h1>site {n}</h1>").into_bytes(),
    )];
    let len = 1000 + rng.below(70_000) as usize;
    let mut big = vec![0u8; len];
    rng.fill(&mut big);
    files.push((format!("data/{n}.bin"), big));
    files
}

/// No DHT node saw a reader's address, and none saw a publisher's.
fn assert_dht_privacy(w: &World, readers: &BTreeSet<std::net::SocketAddr>) {
    let mut seen = 0;
    for n in w.nodes() {
        for o in n.node.dht_observations() {
            seen += 1;
            assert!(
                !readers.contains(&o.from),
                "a DHT node saw a reader's address asking for a key"
            );
        }
    }
    assert!(seen > 0, "no DHT traffic observed: the check tests nothing");
}

#[test]
fn publish_leave_fetch_small_world() {
    let s = seed(11);
    let mut w = World::new(s, 80, 12, NetModel::default());
    w.enable_dht(DhtConfig::default(), 4);
    w.run_until(at(30));
    let mut rng = UmbraRng::from_u64(s);
    let mut sites = Vec::new();
    let mut jobs = Vec::new();
    for p in 0..4usize {
        let key = IdentityKey::generate(&mut rng);
        let files = site_files(&mut rng, p);
        sites.push((SiteAddress(key.public()), files.clone()));
        jobs.push(publish(&mut w, 80 + p, key, files));
    }
    w.run_apps(&jobs, at(300));
    assert_published(&w, &jobs);
    // Publishers leave; other readers fetch every site.
    let fetches: Vec<AppId> = sites
        .iter()
        .enumerate()
        .map(|(i, (addr, _))| fetch(&mut w, 84 + i, *addr))
        .collect();
    w.run_apps(&fetches, at(600));
    let fetched = fetches_of(&w, &fetches);
    for (j, (_, files)) in fetched.iter().zip(&sites) {
        assert_eq!(j.state, FetchState::Done, "fetch: {:?}", j.last_error);
        let mut want = files.clone();
        want.sort();
        let mut got = j.contents().unwrap();
        got.sort();
        assert_eq!(got, want, "fetched files differ from the published ones");
    }
    let readers: BTreeSet<_> = (80..92).map(|i| w.nodes()[i].addr).collect();
    assert_dht_privacy(&w, &readers);
}

#[test]
fn full_stack_publish_leave_churn_fetch() {
    let s = seed(13);
    let relays = 150;
    let mut w = World::new(s, relays, 30, NetModel::default());
    w.enable_dht(
        DhtConfig {
            republish_interval: Duration::from_secs(300),
            ..DhtConfig::default()
        },
        4,
    );
    w.run_until(at(30));
    let mut rng = UmbraRng::from_u64(s);
    let mut sites = Vec::new();
    let mut jobs = Vec::new();
    for p in 0..10usize {
        let key = IdentityKey::generate(&mut rng);
        let files = site_files(&mut rng, p);
        sites.push((SiteAddress(key.public()), files.clone()));
        jobs.push(publish(&mut w, relays + p, key, files));
    }
    w.run_apps(&jobs, at(400));
    assert_published(&w, &jobs);
    // Publishers leave; 20% of relays leave over 30 minutes; storers republish every 5.
    let mut order: Vec<usize> = (0..relays).collect();
    for i in (1..relays).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let base = w.now();
    for (k, v) in order.iter().take(relays / 5).enumerate() {
        w.run_until(base + Duration::from_secs((k as u64 + 1) * 1800 / (relays as u64 / 5)));
        w.kill(*v);
    }
    w.run_until(base + Duration::from_secs(1900));
    let t0 = w.now();
    let fetches: Vec<AppId> = sites
        .iter()
        .enumerate()
        .map(|(i, (addr, _))| fetch(&mut w, relays + 10 + i, *addr))
        .collect();
    w.run_apps(&fetches, t0 + Duration::from_secs(600));
    let fetched = fetches_of(&w, &fetches);
    for (j, (_, files)) in fetched.iter().zip(&sites) {
        assert_eq!(
            j.state,
            FetchState::Done,
            "fetch after churn: {:?}",
            j.last_error
        );
        let mut want = files.clone();
        want.sort();
        let mut got = j.contents().unwrap();
        got.sort();
        assert_eq!(got, want);
    }
    let readers: BTreeSet<_> = (relays..relays + 30).map(|i| w.nodes()[i].addr).collect();
    assert_dht_privacy(&w, &readers);
}
