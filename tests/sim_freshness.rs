//! Tier 4: stale answers from hostile exits (issue 14 item 6, `protocol-spec/07-sites.md#freshness`),
//! full stack in the simulator. A site is published twice; a share f of the relays are
//! hostile exits that kept version 1 and serve it to anyone who asks, whatever the network
//! holds. Fresh readers (no memory of the site) fetch it, with the exit alone and with the
//! default witnesses; the test prints the share of fetches that returned version 1, for
//! f = 0.1, 0.2, 0.3. Replay with UMBRA_SIM_SEED; print with `--nocapture`.

mod common;

use common::seed;
use std::time::Duration;

use umbra::app::freshness::WITNESSES;
use umbra::app::gateway::{Body, GatewayCore, ReplyPart, SiteRequest};
use umbra::app::publish::{Publish, PublishState};
use umbra::app::site_files::{FetchSite, FetchState};
use umbra::crypto::keys::IdentityKey;
use umbra::crypto::rng::UmbraRng;
use umbra::dht::DhtConfig;
use umbra::sim::{AppId, NetModel, World};
use umbra::site::address::SiteAddress;
use umbra::time::Time;
use umbra::wire::dht_msg::RecordKind;

const RELAYS: usize = 100;
const READERS: usize = 20;
const FETCHES: usize = 200;

fn publish(w: &mut World, r: usize, key: &IdentityKey, files: &[(String, Vec<u8>)]) {
    let id = w.spawn(
        r,
        Box::new(Publish::new(key.clone(), files.to_vec(), 86_400)),
    );
    let deadline = w.now() + Duration::from_secs(300);
    w.run_apps(&[id], deadline);
    let p = w.app::<Publish>(id).unwrap();
    assert!(
        matches!(p.state, PublishState::Done(_)),
        "{:?}",
        p.last_error
    );
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    fresh: usize,
    stale: usize,
    failed: usize,
    caught: u32,
}

/// `FETCHES` fetches by fresh readers, `witnesses` each.
fn fetch_many(
    w: &mut World,
    site: SiteAddress,
    witnesses: usize,
    v1: &[(String, Vec<u8>)],
    v2: &[(String, Vec<u8>)],
) -> Tally {
    let mut t = Tally::default();
    for round in 0..FETCHES / READERS {
        let ids: Vec<AppId> = (0..READERS)
            .map(|r| {
                let app = FetchSite::site(site).with_witnesses(witnesses);
                w.spawn(RELAYS + r, Box::new(app))
            })
            .collect();
        let deadline = w.now() + Duration::from_secs(600);
        w.run_apps(&ids, deadline);
        for id in ids {
            let f = w.app::<FetchSite>(id).unwrap();
            t.caught += f.stale_exits;
            if f.state != FetchState::Done {
                t.failed += 1;
                continue;
            }
            let mut got = f.contents().unwrap();
            got.sort();
            match got {
                g if g == v2 => t.fresh += 1,
                g if g == v1 => t.stale += 1,
                g => panic!("round {round}: neither version: {g:?}"),
            }
        }
    }
    t
}

/// A world with a site published twice; version 1's manifest record, kept.
fn two_versions(s: u64) -> (World, SiteAddress, UmbraRng, umbra::wire::dht_msg::Record) {
    let mut w = World::new(s, RELAYS, READERS + 1, NetModel::default());
    w.enable_dht(DhtConfig::default(), 4);
    w.run_until(Time::ZERO + Duration::from_secs(30));
    let mut rng = UmbraRng::from_u64(s);
    let key = IdentityKey::generate(&mut rng);
    let site = SiteAddress(key.public());
    let [v1, v2] = versions();
    let publisher = RELAYS + READERS;
    publish(&mut w, publisher, &key, &v1);
    // Version 1's manifest, as a hostile exit would have kept it.
    let now = w.now();
    let old = (0..RELAYS)
        .find_map(|i| {
            let n = w.node_mut(i);
            let wall = n.wall(now);
            n.with_dht_store(|st| st.get(RecordKind::MANIFEST, &site.dht_key(), wall))
                .flatten()
        })
        .expect("a storer holds version 1");
    w.run_until(w.now() + Duration::from_secs(2));
    publish(&mut w, publisher, &key, &v2);
    (w, site, rng, old)
}

/// Relays `0..RELAYS` in a random order.
fn shuffled(rng: &mut UmbraRng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..RELAYS).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    order
}

fn versions() -> [Vec<(String, Vec<u8>)>; 2] {
    [
        vec![("index.html".to_string(), b"<h1>version one</h1>".to_vec())],
        vec![("index.html".to_string(), b"<h1>version two</h1>".to_vec())],
    ]
}

#[test]
fn witnesses_keep_hostile_exits_from_serving_old_versions() {
    let (mut w, site, mut rng, old) = two_versions(seed(61));
    let [v1, v2] = versions();

    // Hostile relays in a random order; each f takes the first f × RELAYS of them.
    let order = shuffled(&mut rng);
    let mut hostile = 0;
    println!("fresh readers fetching a site whose newest version is 2 ({FETCHES} fetches each)");
    println!(
        "  f     exit alone: stale  failed   with {WITNESSES} witnesses: stale  failed  caught"
    );
    let mut rows = Vec::new();
    for f in [0.1, 0.2, 0.3] {
        let want = (f * RELAYS as f64).round() as usize;
        for &i in &order[hostile..want] {
            w.node_mut(i).serve_stale(old.clone());
        }
        hostile = want;
        let alone = fetch_many(&mut w, site, 0, &v1, &v2);
        let with = fetch_many(&mut w, site, WITNESSES, &v1, &v2);
        let pct = |n: usize| 100.0 * n as f64 / FETCHES as f64;
        println!(
            "  {f:.1}   {:>17.1}% {:>6.1}%   {:>24.1}% {:>6.1}% {:>7}",
            pct(alone.stale),
            pct(alone.failed),
            pct(with.stale),
            pct(with.failed),
            with.caught
        );
        rows.push((f, alone, with));
    }
    for (f, alone, with) in rows {
        // The attack is real: alone, an exit's lie reaches readers.
        if f >= 0.3 {
            assert!(alone.stale * 10 >= FETCHES, "f = {f}: {alone:?}");
        }
        // With witnesses a stale version needs every witness to lie too: about f³.
        assert!(
            with.stale * 20 <= FETCHES,
            "f = {f}: {with:?} (at most 5% stale)"
        );
        assert!(
            with.failed * 10 <= FETCHES,
            "f = {f}: {with:?} (at most 10% failed)"
        );
        assert!(
            with.caught > 0 || f < 0.2,
            "f = {f}: no exit caught: {with:?}"
        );
    }
}

/// The first page fresh gateways serve, `FETCHES` of them: (version 2, version 1, neither).
fn gateways_read(w: &mut World, site: SiteAddress) -> (usize, usize, usize) {
    let [v1, v2] = versions();
    let (mut fresh, mut stale, mut failed) = (0, 0, 0);
    for _ in 0..FETCHES / READERS {
        let mut pending = Vec::new();
        for r in 0..READERS {
            let app = w.spawn(RELAYS + r, Box::new(GatewayCore::new(1 << 20)));
            let now = w.now();
            let core = w.app_mut::<GatewayCore>(app).unwrap();
            let req = SiteRequest {
                site,
                view: Default::default(),
                path: String::new(),
                range: None,
                if_none_match: None,
                head: false,
            };
            let id = core.request(now, req);
            core.room(id, 1 << 10);
            w.after_command(RELAYS + r);
            pending.push((app, id, Vec::new(), None::<u64>, false));
        }
        let deadline = w.now() + Duration::from_secs(300);
        loop {
            for (app, _, body, len, over) in pending.iter_mut() {
                let core = w.app_mut::<GatewayCore>(*app).unwrap();
                while let Some((_, part)) = core.poll_reply() {
                    match part {
                        ReplyPart::Head(h) => match h.body {
                            Body::Full(b) => {
                                *body = b;
                                *over = true;
                            }
                            Body::Stream { len: l } => *len = Some(l),
                        },
                        ReplyPart::Chunk(c) => body.extend_from_slice(&c),
                        ReplyPart::Abort(_) => *over = true,
                    }
                }
                if len.is_some_and(|l| body.len() as u64 >= l) {
                    *over = true;
                }
            }
            if pending.iter().all(|p| p.4) || w.now() > deadline || !w.step() {
                break;
            }
        }
        for (_, _, body, _, _) in pending {
            match body {
                b if b == v2[0].1 => fresh += 1,
                b if b == v1[0].1 => stale += 1,
                _ => failed += 1,
            }
        }
    }
    (fresh, stale, failed)
}

/// The same defence in the gateway `umbra run` drives: a site circuit's first manifest waits
/// for witnesses unlike its exit.
#[test]
fn the_gateway_checks_each_new_exit_against_witnesses() {
    let (mut w, site, mut rng, old) = two_versions(seed(62));
    for &i in &shuffled(&mut rng)[..RELAYS * 3 / 10] {
        w.node_mut(i).serve_stale(old.clone());
    }
    let (fresh, stale, failed) = gateways_read(&mut w, site);
    println!(
        "f = 0.3, {FETCHES} fresh gateways: {fresh} served version 2, {stale} version 1, \
         {failed} neither"
    );
    assert!(
        stale * 20 <= FETCHES,
        "{stale} stale of {FETCHES} (at most 5%)"
    );
    assert!(
        failed * 10 <= FETCHES,
        "{failed} failed of {FETCHES} (at most 10%)"
    );
}
