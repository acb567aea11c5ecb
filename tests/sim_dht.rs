//! Tier 4: the DHT at scale (`protocol-spec/06-dht.md`): lookup rounds as the network grows,
//! availability of published sites under 20% churn after the publishers left, and lookups
//! through lying and silent nodes. Each scenario prints its seed; replay with UMBRA_SIM_SEED.

mod common;
mod dht_sites;

use common::seed;
use dht_sites::{fetch, make_sites, publish, records};
use std::time::Duration;

use umbra::crypto::rng::UmbraRng;
use umbra::dht::routing::distance;
use umbra::dht::{DhtConfig, Goal, LookupOutcome};
use umbra::sim::dht_world::{DhtWorld, Hostility};
use umbra::time::Time;
use umbra::wire::dht_msg::RecordKind;

fn at(secs: u64) -> Time {
    Time::ZERO + Duration::from_secs(secs)
}

fn median(v: &mut [u32]) -> u32 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Median rounds of `n` random node lookups in a world of `size`, and how many of the true
/// 20 closest nodes the lookups found on average.
fn lookup_rounds(seed: u64, size: usize, n: usize) -> (u32, f64) {
    let mut w = DhtWorld::new(seed, size, DhtConfig::default());
    w.join_all(4);
    w.run_until(at(120));
    let mut rng = UmbraRng::from_u64(seed ^ 1);
    let ids: Vec<_> = (0..n)
        .map(|_| {
            let from = rng.below(size as u64) as usize;
            let target: [u8; 32] = rng.array();
            (from, target, w.start(from, target, Goal::Nodes))
        })
        .collect();
    let keys: Vec<_> = ids.iter().map(|(f, _, l)| (*f, *l)).collect();
    w.run_lookups(&keys, at(600));
    let mut rounds = Vec::new();
    let mut found = 0usize;
    for (from, target, l) in &ids {
        let (LookupOutcome::Nodes(nodes), r) = &w.done[&(*from, *l)] else {
            panic!("lookup did not finish")
        };
        rounds.push(*r);
        let mut truth: Vec<[u8; 32]> = (0..size).map(|i| node_id_of(&w, i)).collect();
        truth.sort_by_key(|id| distance(id, target));
        truth.truncate(20);
        found += nodes.iter().filter(|n| truth.contains(&n.0)).count();
    }
    (median(&mut rounds), found as f64 / n as f64)
}

fn node_id_of(w: &DhtWorld, i: usize) -> [u8; 32] {
    w.id(i).0
}

#[test]
fn lookup_rounds_grow_as_log_n() {
    let s = seed(21);
    let (r500, f500) = lookup_rounds(s, 500, 100);
    let (r5000, f5000) = lookup_rounds(s, 5000, 100);
    eprintln!(
        "median lookup rounds: {r500} at 500 nodes, {r5000} at 5,000 nodes; true closest found: {f500:.1}/20, {f5000:.1}/20"
    );
    // Ten times the nodes adds about log2(10) ≈ 3.3 bits of distance; with k-buckets of 20
    // each round resolves several bits, so rounds grow by at most ~2.
    assert!(
        r5000 <= r500 + 2,
        "rounds grew from {r500} to {r5000}: not logarithmic"
    );
    assert!(
        f64::from(r5000) <= (5000f64).log2(),
        "{r5000} rounds exceed log2(N)"
    );
    assert!(
        f500 >= 18.0 && f5000 >= 18.0,
        "lookups miss the true closest nodes"
    );
}

#[test]
fn two_thousand_nodes_hundred_sites_survive_twenty_percent_churn() {
    let s = seed(22);
    let n = 2000;
    let cfg = DhtConfig {
        republish_interval: Duration::from_secs(900),
        ..DhtConfig::default()
    };
    let mut w = DhtWorld::new(s, n, cfg);
    w.join_all(4);
    w.run_until(at(120));
    let mut rng = UmbraRng::from_u64(s ^ 7);
    let sites = make_sites(&mut rng, 100, 30 * 86_400);
    let total: usize = sites.iter().map(|s| records(s).len()).sum();
    let stored = publish(&mut w, &mut rng, &sites, &|r: &mut UmbraRng| {
        r.below(2000) as usize
    });
    assert_eq!(stored, total, "every record stored");
    // The publishers are gone now. Over the next hour 20% of nodes leave, one at a time,
    // while storers republish every 15 minutes.
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let leave = n / 5;
    let base = w.now();
    for (k, v) in order.iter().take(leave).enumerate() {
        w.run_until(base + Duration::from_secs((k as u64 + 1) * 3600 / leave as u64));
        w.kill(*v);
    }
    w.run_until(base + Duration::from_secs(3700));
    let alive: Vec<usize> = (0..n).filter(|i| w.is_up(*i)).collect();
    let mut ok = 0;
    let mut lat = Vec::new();
    for site in &sites {
        let from = alive[rng.below(alive.len() as u64) as usize];
        if let Some(d) = fetch(&mut w, from, site) {
            ok += 1;
            lat.push(d.as_millis() as u32);
        }
    }
    let mut rounds: Vec<u32> = w.done.values().map(|(_, r)| *r).collect();
    eprintln!(
        "{ok}/100 sites fully fetchable after 20% churn; median fetch {} ms; median lookup rounds {}; {} messages",
        median(&mut lat),
        median(&mut rounds),
        w.delivered
    );
    assert!(ok >= 99, "only {ok} of 100 sites fully fetchable");
}

#[test]
fn lying_and_silent_nodes_cannot_hide_records() {
    let s = seed(23);
    let n = 600;
    let mut w = DhtWorld::new(s, n, DhtConfig::default());
    // 10% answer every lookup with forged records and far-away nodes; 10% never answer.
    for i in 0..60 {
        w.set_hostility(i, Hostility::Liar);
    }
    for i in 60..120 {
        w.set_hostility(i, Hostility::Silent);
    }
    w.join_all(4);
    w.run_until(at(120));
    let mut rng = UmbraRng::from_u64(s ^ 9);
    let sites = make_sites(&mut rng, 20, 30 * 86_400);
    let honest = |r: &mut UmbraRng| 120 + r.below(480) as usize;
    publish(&mut w, &mut rng, &sites, &honest);
    let mut ok = 0;
    for site in &sites {
        let from = honest(&mut rng);
        ok += usize::from(fetch(&mut w, from, site).is_some());
    }
    assert_eq!(ok, 20, "a lying or silent minority hid a record");
}

#[test]
fn a_manifest_lookup_moves_one_whole_copy_not_k() {
    let s = seed(29);
    let n = 300;
    let mut w = DhtWorld::new(s, n, DhtConfig::default());
    w.join_all(4);
    w.run_until(at(120));
    let mut rng = UmbraRng::from_u64(s ^ 3);
    let sites = make_sites(&mut rng, 5, 30 * 86_400);
    let any = |r: &mut UmbraRng| r.below(300) as usize;
    publish(&mut w, &mut rng, &sites, &any);
    let served = |w: &DhtWorld| (0..n).map(|i| w.stats(i).served_bytes).sum::<u64>();
    for site in &sites {
        // A node far from the key (not a storer).
        let from = (0..n)
            .find(|&i| distance(&node_id_of(&w, i), &site.addr.dht_key())[0] > 0x40)
            .unwrap();
        let before = served(&w);
        let key = site.addr.dht_key();
        let l = w.start(from, key, Goal::Value(RecordKind::MANIFEST));
        let start = w.now();
        w.run_lookups(&[(from, l)], start + Duration::from_secs(120));
        let Some((LookupOutcome::Found(rec), _)) = w.done.get(&(from, l)).cloned() else {
            panic!("manifest not found");
        };
        let moved = served(&w) - before;
        eprintln!(
            "manifest of {} B: {moved} B of values moved for one lookup",
            rec.value.len()
        );
        assert_eq!(
            moved,
            rec.value.len() as u64,
            "one whole copy per lookup (the storers all hold it)"
        );
    }
}
