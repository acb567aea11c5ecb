//! Tier 4: content in the simulator (`protocol-spec/06-dht.md`, `07-sites.md`): publish
//! through circuits, publishers leave, churn, fetch through circuits, every byte verified;
//! privacy invariants over the DHT nodes' observation logs.

use std::collections::BTreeSet;
use std::time::Duration;

use umbra::crypto::keys::IdentityKey;
use umbra::crypto::rng::UmbraRng;
use umbra::dht::DhtConfig;
use umbra::sim::site_jobs::{SiteJob, SiteJobState, Work, run_site_jobs};
use umbra::sim::{NetModel, World};
use umbra::site::build;
use umbra::time::Time;

fn seed(default: u64) -> u64 {
    let s = std::env::var("UMBRA_SIM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    eprintln!("sim seed = {s} (replay with UMBRA_SIM_SEED={s})");
    s
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
        let built = build(&key, &files, 1, w.nodes()[80].node.wall(w.now()), 86_400).unwrap();
        sites.push((built.parsed.address(), files));
        jobs.push(SiteJob::start(
            &mut w,
            80 + p,
            Work::Publish(Box::new(built)),
        ));
    }
    run_site_jobs(&mut w, &mut jobs, at(300));
    for j in &jobs {
        assert_eq!(j.state, SiteJobState::Done, "publish: {j:?}");
    }
    // Publishers leave; other readers fetch every site.
    let mut fetches: Vec<SiteJob> = sites
        .iter()
        .enumerate()
        .map(|(i, (addr, _))| SiteJob::start(&mut w, 84 + i, Work::Fetch(*addr)))
        .collect();
    run_site_jobs(&mut w, &mut fetches, at(600));
    for (j, (_, files)) in fetches.iter().zip(&sites) {
        assert_eq!(j.state, SiteJobState::Done, "fetch: {:?}", j.last_error);
        let mut want = files.clone();
        want.sort();
        let mut got = j.files.clone();
        got.sort();
        assert_eq!(got, want, "fetched files differ from the published ones");
    }
    let readers: BTreeSet<_> = (80..92).map(|i| w.nodes()[i].addr).collect();
    assert_dht_privacy(&w, &readers);
}
