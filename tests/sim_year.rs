//! Tier 4: sites outlive their publishers (`protocol-spec/06-dht.md#republishing`,
//! `#renewal`; `rationale.md#a-year-without-publishers`). A simulated year of 1,000 relays
//! whose whole population is replaced: 100 sites published once at the start, never again,
//! must still be fully readable on day 365, with every relay's descriptor renewed by the
//! directory code while it runs. The same year with republishing switched off loses them,
//! so the scenario cannot pass without it. Prints the availability curve; replay with
//! UMBRA_SIM_SEED.

mod common;
mod dht_sites;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::seed;
use dht_sites::{Site, fetch, make_sites, publish, records};
use umbra::crypto::keys::{IdentityKey, LinkKeypair, NodeId};
use umbra::crypto::rng::UmbraRng;
use umbra::dht::DhtConfig;
use umbra::directory::path::subnet;
use umbra::directory::sync::{DirectorySync, SyncConfig};
use umbra::directory::{Admission, Descriptor, Directory, Roles};
use umbra::sim::dht_world::DhtWorld;
use umbra::site::NO_EXPIRY;
use umbra::time::{Time, WallTime};

const DAY: u64 = 86_400;
/// Relays at any time.
const RELAYS: usize = 1000;
/// How often the test drives the directories: relays renew when due, the shared view
/// expires what was not renewed, and every DHT node learns and forgets relays.
const STEP: u64 = 6 * 3600;
/// Days on which every site is fetched (the availability curve).
const SAMPLES: [u64; 13] = [1, 30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 330, 365];

fn at_secs(s: u64) -> Time {
    Time::ZERO + Duration::from_secs(s)
}

/// A relay's address: a /16 of its own, so the admission caps never bite.
fn addr_of(n: usize) -> SocketAddr {
    let ip = Ipv4Addr::new(11 + (n / 256) as u8, (n % 256) as u8, 0, 1);
    SocketAddr::new(ip.into(), 9000)
}

/// One relay's directory side: its own descriptor, signed again by [`DirectorySync`] when
/// half its lifetime has passed, exactly as a running relay does.
struct Relay {
    node: usize,
    id: NodeId,
    sync: DirectorySync,
    /// Seconds into the year it started and stopped.
    born: u64,
    died: Option<u64>,
}

/// The year: the DHT world, the relays, and the directory every node converges to (the
/// flooding and reconciliation that carry descriptors are measured in
/// `tests/sim_directory.rs`; here a renewed descriptor reaches the shared view at once).
struct Year {
    w: DhtWorld,
    rng: UmbraRng,
    relays: Vec<Relay>,
    shared: DirectorySync,
    cfg: SyncConfig,
    born: usize,
    /// Live relays missing from the shared directory, summed over steps (must stay 0).
    lapses: u64,
}

impl Year {
    fn new(s: u64, dht: DhtConfig) -> Year {
        let cfg = SyncConfig {
            // Relays here only renew; reconciliation is not simulated.
            relay_interval: Duration::from_secs(1000 * DAY),
            reader_interval: Duration::from_secs(1000 * DAY),
            admission: Admission::UNLIMITED,
            // Twelve days rather than the default three, so that a year of signatures and
            // checks stays short; a relay renews at half its lifetime either way, and a relay
            // that stopped leaves every directory when its descriptor expires.
            lifetime: Duration::from_secs(12 * DAY),
            ..SyncConfig::default()
        };
        let w = DhtWorld::new(s, 0, dht);
        let shared = DirectorySync::new(cfg, false, Directory::new(), Time::ZERO);
        let mut y = Year {
            w,
            rng: UmbraRng::from_u64(s ^ 0x5eed),
            relays: Vec::new(),
            shared,
            cfg,
            born: 0,
            lapses: 0,
        };
        for _ in 0..RELAYS {
            y.spawn(0);
        }
        y.step_directories();
        y
    }

    /// A new relay starts now: it signs its descriptor, the directory admits it, every node
    /// learns it, and its DHT joins from `seeds` nodes.
    fn spawn(&mut self, seeds: usize) {
        let key = IdentityKey::generate(&mut self.rng);
        let wall = self.w.wall();
        let now = self.w.now();
        let addr = addr_of(self.born);
        self.born += 1;
        let desc = Descriptor {
            identity: key.public(),
            addr,
            link_key: LinkKeypair::generate(&mut self.rng).public(),
            onion_key: LinkKeypair::generate(&mut self.rng).public(),
            bandwidth: 5000,
            family: [0; 32],
            family_cert: None,
            roles: Roles::ALL,
            published: wall,
            expires: WallTime(wall.0 + self.cfg.lifetime.as_secs()),
        };
        let id = desc.node_id();
        let mut sync = DirectorySync::new(self.cfg, true, Directory::new(), now);
        sync.set_own(now, wall, key, desc).expect("own descriptor");
        let node = self.w.add_node(id, subnet(addr.ip()), seeds);
        let born = now.as_micros() / 1_000_000;
        self.relays.push(Relay {
            node,
            id,
            sync,
            born,
            died: None,
        });
        self.announce(self.relays.len() - 1);
        // A new descriptor floods to every relay within seconds (`tests/sim_directory.rs`).
        self.apply_changes();
    }

    /// Relay `r`'s current descriptor reaches the shared directory.
    fn announce(&mut self, r: usize) {
        let (now, wall) = (self.w.now(), self.w.wall());
        let rel = &self.relays[r];
        if let Some(wire) = rel.sync.directory().wire(&rel.id) {
            self.shared.on_push(now, wall, rel.id, &[wire.to_vec()]);
        }
    }

    /// Renew what is due, expire what was not renewed, and tell every node.
    fn step_directories(&mut self) {
        let (now, wall) = (self.w.now(), self.w.wall());
        let none = Default::default();
        for r in 0..self.relays.len() {
            if !self.w.is_up(self.relays[r].node) {
                continue;
            }
            let rel = &mut self.relays[r];
            if rel.sync.poll_timeout() <= now {
                let before = rel.sync.stats().renewals;
                rel.sync
                    .handle_timeout(now, wall, &mut self.rng, None, &none);
                if rel.sync.stats().renewals > before {
                    self.announce(r);
                }
            }
        }
        self.shared
            .handle_timeout(now, wall, &mut self.rng, None, &none);
        self.apply_changes();
        let dir = self.shared.directory();
        self.lapses += self
            .relays
            .iter()
            .filter(|r| self.w.is_up(r.node) && dir.get(&r.id).is_none())
            .count() as u64;
    }

    /// Every DHT node learns the relays that joined the directory and forgets those that
    /// left it.
    fn apply_changes(&mut self) {
        let (added, removed) = self.shared.take_changes();
        for id in added {
            if let Some(d) = self.shared.directory().get(&id) {
                let g = subnet(d.addr.ip());
                self.w.learn(id, g);
            }
        }
        for id in removed {
            self.w.forget(&id);
        }
    }

    fn live(&self) -> Vec<usize> {
        (0..self.w.len()).filter(|i| self.w.is_up(*i)).collect()
    }

    /// Fully readable sites, each fetched from a random live relay that has run for a day
    /// (a newcomer's routing table fills as others look it up).
    fn readable(&mut self, sites: &[Site]) -> usize {
        let now = self.w.now().as_micros() / 1_000_000;
        let live: Vec<usize> = self
            .relays
            .iter()
            .filter(|r| self.w.is_up(r.node) && r.born + DAY <= now.max(DAY))
            .map(|r| r.node)
            .collect();
        let mut ok = 0;
        for site in sites {
            let from = live[self.rng.below(live.len() as u64) as usize];
            if fetch(&mut self.w, from, site).is_some() {
                ok += 1;
            } else if std::env::var("UMBRA_SIM_DIAG").is_ok() {
                let h: Vec<(u8, usize)> = records(site)
                    .iter()
                    .map(|r| (r.kind.0, self.w.holders(r.kind, &r.key)))
                    .collect();
                let mut outs = Vec::new();
                for r in records(site) {
                    let goal = umbra::dht::Goal::Value(r.kind);
                    let t0 = self.w.now();
                    let l = self.w.start(from, r.key, goal);
                    self.w
                        .run_lookups(&[(from, l)], t0 + Duration::from_secs(300));
                    let o = self.w.done.get(&(from, l)).map(|(o, rounds)| {
                        (matches!(o, umbra::dht::LookupOutcome::Found(_)), *rounds)
                    });
                    outs.push((o, (self.w.now() - t0).as_secs()));
                }
                eprintln!("    unreadable: holders {h:?} lookups {outs:?} from {from}");
            }
        }
        ok
    }
}

/// Outcome of a year.
struct Run {
    /// (day, sites fully readable).
    curve: Vec<(u64, usize)>,
    /// Relays that ever ran, and of the first 1,000 how many were still up at the end.
    born: usize,
    originals_left: usize,
    /// Of the relays that ran at least 30 days, the fewest renewals per descriptor lifetime
    /// they ran for (at least 1: never lapsed).
    min_renewal_rate: f64,
    lapses: u64,
    /// Relays every node knows at the end.
    known_at_end: usize,
    messages: u64,
    /// DHT counters of the relays up at the end.
    stats: umbra::dht::DhtStats,
}

/// A year of `RELAYS` relays, each replaced once at a random time, 100 sites published
/// once at the start (manifests that never expire).
fn year(s: u64, dht: DhtConfig) -> Run {
    let mut y = Year::new(s, dht);
    y.w.join_all(4);
    y.w.run_until(at_secs(120));
    let mut rng = UmbraRng::from_u64(s ^ 7);
    let sites = make_sites(&mut rng, 100, NO_EXPIRY);
    let total: usize = sites.iter().map(|s| records(s).len()).sum();
    let up: Vec<usize> = y.live();
    let stored = publish(&mut y.w, &mut rng, &sites, &|r: &mut UmbraRng| {
        up[r.below(up.len() as u64) as usize]
    });
    assert_eq!(stored, total, "every record stored at the start");
    // Each first relay leaves once at a uniform time in the year, and a new one takes its
    // place: the whole population is replaced.
    let mut leave: Vec<(u64, usize)> = (0..RELAYS)
        .map(|r| (rng.below(365 * DAY - 2 * STEP) + STEP, r))
        .collect();
    leave.sort_unstable();
    let mut next_leave = leave.iter().peekable();
    let mut curve = Vec::new();
    let mut samples = SAMPLES.iter().peekable();
    let mut t = 0;
    while t < 365 * DAY {
        t += STEP;
        while let Some(&&(when, r)) = next_leave.peek() {
            if when > t {
                break;
            }
            next_leave.next();
            y.w.run_until(at_secs(when));
            let node = y.relays[r].node;
            y.relays[r].died = Some(when);
            y.w.kill(node);
            y.spawn(4);
        }
        y.w.run_until(at_secs(t));
        y.step_directories();
        if let Some(&&day) = samples.peek()
            && t >= day * DAY
        {
            samples.next();
            let ok = y.readable(&sites);
            eprintln!(
                "  day {day:>3}: {ok:>3}/100 sites fully readable ({} relays known)",
                y.w.known_count()
            );
            curve.push((day, ok));
        }
    }
    let lifetime = y.cfg.lifetime.as_secs() as f64;
    let min_renewal_rate = y
        .relays
        .iter()
        .filter_map(|r| {
            let ran = r.died.unwrap_or(365 * DAY) - r.born;
            (ran >= 30 * DAY).then(|| r.sync.stats().renewals as f64 * lifetime / ran as f64)
        })
        .fold(f64::INFINITY, f64::min);
    Run {
        curve,
        born: y.born,
        originals_left: (0..RELAYS).filter(|r| y.w.is_up(y.relays[*r].node)).count(),
        min_renewal_rate,
        lapses: y.lapses,
        known_at_end: y.w.known_count(),
        messages: y.w.delivered,
        stats: y.w.total_stats(),
    }
}

#[test]
fn a_year_of_churn_leaves_sites_published_once_readable() {
    let s = seed(365);
    let dht = DhtConfig {
        // Four days between rounds rather than the default hour: 11 relays leave between two
        // rounds instead of 0.1, which is harder for re-replication, and a simulated year
        // stays short.
        republish_interval: Duration::from_secs(4 * DAY),
        ..DhtConfig::default()
    };
    eprintln!("republishing on:");
    let on = year(s, dht);
    eprintln!(
        "  {} relays ran, {} of the first {RELAYS} still up at the end, {} known at the end; \
         fewest descriptor renewals per lifetime of a relay {:.2}; {} live relays missing from directories \
         (summed over 6-hour steps); {} messages",
        on.born, on.originals_left, on.known_at_end, on.min_renewal_rate, on.lapses, on.messages
    );
    eprintln!(
        "  relays up at the end: {} lookups, {} records republished, {} not republished \
         (another holder had), {} blocks renewed, {} rejoins",
        on.stats.lookups,
        on.stats.republished,
        on.stats.republish_skipped,
        on.stats.renewals,
        on.stats.rejoins
    );
    eprintln!("republishing off:");
    let off = year(
        s,
        DhtConfig {
            republish_interval: Duration::from_secs(100 * 365 * DAY),
            ..dht
        },
    );
    let last = |r: &Run| r.curve.last().map_or(0, |c| c.1);
    assert_eq!(on.originals_left, 0, "the whole population was replaced");
    assert!(
        on.born >= 2 * RELAYS,
        "{} relays ran, not every one replaced",
        on.born
    );
    assert_eq!(on.lapses, 0, "a live relay's descriptor lapsed");
    assert!(
        on.known_at_end <= RELAYS + RELAYS / 20,
        "{} relays known at the end: departed relays' descriptors did not expire",
        on.known_at_end
    );
    assert!(
        on.min_renewal_rate >= 1.0,
        "a relay renewed its descriptor less than once per lifetime"
    );
    assert!(
        last(&on) >= 99,
        "only {} of 100 sites readable on day 365 with republishing",
        last(&on)
    );
    assert!(
        last(&off) <= 10,
        "{} of 100 sites readable on day 365 without republishing: the scenario does not \
         test re-replication",
        last(&off)
    );
}
