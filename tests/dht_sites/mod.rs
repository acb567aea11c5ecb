//! Sites for the DHT simulations (`tests/sim_dht.rs`, `tests/sim_year.rs`): build them,
//! publish their records from random nodes, fetch and verify them whole.

use std::time::Duration;

use umbra::crypto::keys::IdentityKey;
use umbra::crypto::rng::UmbraRng;
use umbra::dht::{Goal, LookupOutcome};
use umbra::sim::dht_world::DhtWorld;
use umbra::site::address::SiteAddress;
use umbra::site::{Built, build, manifest, verify_block};
use umbra::time::WallTime;
use umbra::wire::dht_msg::{Record, RecordKind};

/// A site built for the simulations: its address and its records.
pub struct Site {
    /// Its address.
    pub addr: SiteAddress,
    /// Its manifest and blocks.
    pub built: Built,
}

/// `n` sites of two files (a small page and a blob of up to 60 kB), manifests valid for
/// `lifetime` seconds from the world's start.
pub fn make_sites(rng: &mut UmbraRng, n: usize, lifetime: u64) -> Vec<Site> {
    (0..n)
        .map(|i| {
            let key = IdentityKey::generate(rng);
            let mut big = vec![0u8; 1000 + rng.below(60_000) as usize];
            rng.fill(&mut big);
            let files = vec![
                ("index.html".to_string(), format!("site {i}").into_bytes()),
                ("blob.bin".to_string(), big),
            ];
            let built = build(
                &key,
                &files,
                1,
                WallTime(umbra::sim::dht_world::WALL_START),
                lifetime,
            )
            .unwrap();
            Site {
                addr: built.parsed.address(),
                built,
            }
        })
        .collect()
}

/// The site's records: its blocks, then its manifest.
pub fn records(site: &Site) -> Vec<Record> {
    let mut r: Vec<Record> = site
        .built
        .blocks
        .iter()
        .map(|(h, b)| Record {
            kind: RecordKind::BLOCK,
            key: *h,
            value: b.clone(),
        })
        .collect();
    r.push(Record {
        kind: RecordKind::MANIFEST,
        key: site.addr.dht_key(),
        value: site.built.manifest.clone(),
    });
    r
}

/// Publish every record of every site from a random (up) node, as an exit would.
pub fn publish(
    w: &mut DhtWorld,
    rng: &mut UmbraRng,
    sites: &[Site],
    pick: &dyn Fn(&mut UmbraRng) -> usize,
) -> usize {
    let mut keys = Vec::new();
    for s in sites {
        for r in records(s) {
            let from = pick(rng);
            keys.push((
                from,
                w.start(from, r.key, Goal::Store(r, WallTime(u64::MAX))),
            ));
        }
    }
    let deadline = w.now() + Duration::from_secs(300);
    w.run_lookups(&keys, deadline);
    keys.iter()
        .filter(|k| matches!(w.done.get(k), Some((LookupOutcome::Stored { copies, .. }, _)) if *copies > 0))
        .count()
}

/// Fetch a site from node `from`: manifest, verify, then every block, verify. Returns the
/// finish time if every byte verified.
pub fn fetch(w: &mut DhtWorld, from: usize, site: &Site) -> Option<Duration> {
    let start = w.now();
    let key = site.addr.dht_key();
    let l = w.start(from, key, Goal::Value(RecordKind::MANIFEST));
    w.run_lookups(&[(from, l)], start + Duration::from_secs(120));
    let Some((LookupOutcome::Found(rec), _)) = w.done.get(&(from, l)).cloned() else {
        return None;
    };
    let v = manifest::parse(&rec.value)
        .ok()?
        .verify(&site.addr, w.wall())
        .ok()?;
    let blocks: Vec<[u8; 32]> = v
        .manifest()
        .entries
        .iter()
        .flat_map(|e| e.blocks.iter().copied())
        .collect();
    let ls: Vec<_> = blocks
        .iter()
        .map(|h| (from, w.start(from, *h, Goal::Value(RecordKind::BLOCK))))
        .collect();
    w.run_lookups(&ls, start + Duration::from_secs(240));
    for (h, k) in blocks.iter().zip(&ls) {
        let Some((LookupOutcome::Found(b), _)) = w.done.get(k) else {
            return None;
        };
        verify_block(h, &b.value).ok()?;
    }
    Some(w.now() - start)
}
