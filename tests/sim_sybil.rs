//! Tier 4: Sybil floods against discovery, circuits and the DHT (`protocol-spec/10-directory.md#admission`,
//! `09-relay.md#path-selection`, `06-dht.md#routing-table`, `rationale.md#sybils`).
//! Each scenario prints its seed; replay one with `UMBRA_SIM_SEED=<seed>`.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::seed;
use umbra::app::echo::{Echo, EchoState};
use umbra::crypto::keys::{IdentityKey, NodeId};
use umbra::crypto::rng::UmbraRng;
use umbra::dht::routing::Group;
use umbra::dht::{DhtConfig, Goal, LookupOutcome};
use umbra::directory::{Admission, Directory};
use umbra::node::NodeConfig;
use umbra::sim::dht_world::{DhtWorld, Hostility};
use umbra::sim::{AppId, NetModel, World, reader_addr};
use umbra::time::Time;
use umbra::wire::dht_msg::{Record, RecordKind};

fn secs(s: u64) -> Time {
    Time::ZERO + Duration::from_secs(s)
}

/// Address `k` of the attacker's network `net` (one IPv4 /16 each, `172.16+net.0.0/16`).
fn sybil_addr(net: usize, k: usize) -> SocketAddr {
    let ip = 0xac10_0000u32 + ((net as u32) << 16) + 1 + k as u32;
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), 4000)
}

struct CircuitRun {
    /// Sybils admitted per honest relay's directory (mean).
    admitted: f64,
    /// Fresh readers whose guards include a Sybil.
    sybil_guards: usize,
    /// Echo sessions done, of all.
    done: usize,
    all: usize,
}

/// `honest` relays and 20 readers run for a while; then 10 × `honest` Sybil relays join
/// from `networks` /16 networks of the attacker's, each advertising the largest bandwidth
/// there is, and flood their descriptors; once listed they black-hole everything (they go
/// silent). 20 fresh readers then start from a directory file a relay wrote (first-seen
/// times included), and every reader runs an echo session through a circuit.
fn circuits_under_a_flood(s: u64, honest: usize, networks: usize) -> CircuitRun {
    let mut w = World::with_config(s, honest, 20, NetModel::default(), |c: &mut NodeConfig| {
        c.directory.relay_interval = Duration::from_secs(60);
        c.directory.reader_interval = Duration::from_secs(120);
        c.directory.guard_min_age = Duration::from_secs(3600);
    });
    w.run_until(secs(10));
    let mut rng = UmbraRng::from_u64(s ^ 0x5b11);
    let sybils = 10 * honest;
    let mut sybil_ids = Vec::with_capacity(sybils);
    for k in 0..sybils {
        let contacts = [
            rng.below(honest as u64) as usize,
            rng.below(honest as u64) as usize,
        ];
        let i = w.add_relay_at(
            &contacts,
            sybil_addr(k % networks, k / networks),
            Some(u32::MAX),
        );
        sybil_ids.push(w.nodes()[i].node.node_id().unwrap());
    }
    let first_sybil = w.nodes().len() - sybils;
    w.run_until(secs(400));
    let is_sybil = |id: &NodeId| sybil_ids.contains(id);
    let admitted: usize = w.nodes()[..honest]
        .iter()
        .map(|n| {
            n.node
                .directory()
                .relays()
                .filter(|d| is_sybil(&d.node_id()))
                .count()
        })
        .sum();
    for i in first_sybil..first_sybil + sybils {
        w.partition(i);
    }
    // Fresh readers start from relay 0's directory file.
    let file = w.nodes()[0].node.directory().to_cache_text();
    let wall = w.wall_now();
    let mut readers: Vec<usize> = (honest..honest + 20).collect();
    let mut fresh = Vec::new();
    for k in 0..20 {
        let (dir, errors) = Directory::from_bootstrap(&file, wall);
        assert!(errors.is_empty(), "{errors:?}");
        let r = w.add_reader(reader_addr(1000 + k), dir);
        fresh.push(r);
        readers.push(r);
    }
    let ids: Vec<AppId> = readers
        .iter()
        .map(|r| w.spawn(*r, Box::new(Echo::new(2_000))))
        .collect();
    w.run_apps(&ids, secs(1000));
    let sybil_guards = fresh
        .iter()
        .filter(|r| w.nodes()[**r].node.guards().list().iter().any(is_sybil))
        .count();
    let done = ids
        .iter()
        .filter(|id| w.app::<Echo>(**id).unwrap().state == EchoState::Done)
        .count();
    CircuitRun {
        admitted: admitted as f64 / honest as f64,
        sybil_guards,
        done,
        all: ids.len(),
    }
}

/// 40 honest relays against 400 Sybils from four /16 networks: each directory admits 8 per
/// network (32), the attacker's networks weigh as two relays each at twice the median
/// bandwidth whatever they claim, guards come from relays known for the guard age, and a
/// build that meets a silent relay retries without it. At least 90% of honest circuits
/// build and carry their echo.
#[test]
fn ten_times_as_many_sybils_leave_nine_in_ten_circuits_working() {
    let s = seed(41);
    let r = circuits_under_a_flood(s, 40, 4);
    println!(
        "40 honest relays, 400 Sybils in 4 /16s: {:.1} Sybils admitted per directory; \
         {} of 20 fresh readers chose a Sybil guard; {}/{} echo sessions done",
        r.admitted, r.sybil_guards, r.done, r.all
    );
    assert!(r.admitted <= 32.0, "caps let {} in", r.admitted);
    assert_eq!(r.sybil_guards, 0, "a Sybil became a fresh reader's guard");
    assert!(
        r.done * 10 >= r.all * 9,
        "only {}/{} circuits worked",
        r.done,
        r.all
    );
}

/// DHT lookups under a flood (`06-dht.md#routing-table`, `10-directory.md#admission`):
/// `honest` relays and 10 × as many Sybils from `networks` /16s, admitted `per_subnet` per
/// network, with ids spread over the key space (the flood that broke I2P's floodfills), that
/// steer every lookup among themselves and drop what they are asked to store. 100 records
/// are stored from honest relays; returns the share found by lookups from honest relays.
fn dht_under_a_flood(s: u64, honest: usize, networks: usize, per_subnet: usize) -> f64 {
    let mut rng = UmbraRng::from_u64(s);
    let mut members: Vec<(NodeId, Group)> = (0..honest)
        .map(|i| {
            let id = IdentityKey::generate(&mut rng).public().node_id();
            (id, [4, 10 + (i >> 8) as u8, i as u8, 0])
        })
        .collect();
    // The directory's admission (`Directory::check_caps`): the first `per_subnet` relays of
    // a network get in, the rest of the flood is refused and never known.
    let sybils = 10 * honest;
    let mut in_network = BTreeMap::new();
    for k in 0..sybils {
        let net = k % networks;
        let n = in_network.entry(net).or_insert(0usize);
        if *n >= per_subnet {
            continue;
        }
        *n += 1;
        let mut id = [0u8; 32];
        rng.fill(&mut id);
        members.push((NodeId(id), [4, 172, 16 + net as u8, 0]));
    }
    let known: BTreeMap<NodeId, Group> = members.iter().copied().collect();
    let mut w = DhtWorld::with_members(s ^ 1, &members, &known, DhtConfig::default());
    for i in honest..members.len() {
        w.set_hostility(i, Hostility::Eclipse);
    }
    w.join_all(4);
    w.run_until(secs(120));
    let records: Vec<Record> = (0..100)
        .map(|_| {
            let mut value = vec![0u8; 2000];
            rng.fill(&mut value);
            Record {
                kind: RecordKind::BLOCK,
                key: umbra::crypto::hash::hash(&value),
                value,
            }
        })
        .collect();
    let stores: Vec<_> = records
        .iter()
        .map(|r| {
            let from = rng.below(honest as u64) as usize;
            let goal = Goal::Store(r.clone(), umbra::time::WallTime(u64::MAX));
            (from, w.start(from, r.key, goal))
        })
        .collect();
    let deadline = w.now() + Duration::from_secs(300);
    w.run_lookups(&stores, deadline);
    let gets: Vec<_> = records
        .iter()
        .map(|r| {
            let from = rng.below(honest as u64) as usize;
            (from, w.start(from, r.key, Goal::Value(RecordKind::BLOCK)))
        })
        .collect();
    let deadline = w.now() + Duration::from_secs(300);
    w.run_lookups(&gets, deadline);
    let found = gets
        .iter()
        .zip(&records)
        .filter(|(k, r)| matches!(w.done.get(k), Some((LookupOutcome::Found(f), _)) if f.value == r.value))
        .count();
    found as f64 / records.len() as f64
}

/// 300 honest relays against 3,000 Sybils from 16 /16 networks: admission lets 128 in,
/// buckets hold at most two of one network and a lookup's window one, and lookups for
/// honest records succeed at least 95% of the time. With the admission cap lifted (every Sybil known) the same flood
/// hides most records: the cap is what holds.
#[test]
fn ten_times_as_many_sybils_leave_honest_records_found() {
    let s = seed(42);
    let capped = dht_under_a_flood(s, 300, 16, Admission::default().per_subnet);
    let uncapped = dht_under_a_flood(s, 300, 16, usize::MAX);
    println!(
        "300 honest relays, 3000 Sybils in 16 /16s: {:.1}% of honest records found with the \
         admission cap, {:.1}% without",
        capped * 100.0,
        uncapped * 100.0
    );
    assert!(capped >= 0.95, "only {:.1}% found", capped * 100.0);
    assert!(
        uncapped < 0.95,
        "the flood without caps should hide records ({:.1}% found): the scenario tests nothing",
        uncapped * 100.0
    );
}
