//! One relay's republishing rounds, sans-IO (`protocol-spec/06-dht.md#republishing`,
//! `#renewal`, `#joining`): rounds start at each node's own random phase and go out in a
//! random order; a record another holder stored here during the interval is not sent again;
//! the holder of a manifest renews the blocks it lists every 10 days; a node whose contacts
//! all refused it joins again. The year-long consequence is `tests/sim_year.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use umbra::crypto::keys::{IdentityKey, NodeId};
use umbra::crypto::rng::UmbraRng;
use umbra::dht::store::MemoryStore;
use umbra::dht::{BLOCK_RENEWAL, Dht, DhtAction, DhtConfig, RecordValidator};
use umbra::node::SiteValidator;
use umbra::site::{NO_EXPIRY, build};
use umbra::time::{Time, WallTime};
use umbra::wire::dht_msg::{DhtMsg, Record, RecordKind};

const WALL: u64 = 1_800_000_000;

fn peers(n: u8) -> BTreeMap<NodeId, [u8; 4]> {
    (1..=n)
        .map(|b| {
            let mut x = [b; 32];
            x[31] = 0xAA;
            (NodeId(x), [4, b, 0, 0])
        })
        .collect()
}

/// A relay that knows 30 others and has not joined yet.
fn fresh() -> Dht {
    let mut d = Dht::new(
        NodeId([0x50; 32]),
        DhtConfig::default(),
        Box::new(MemoryStore::new(1 << 30)),
        Box::new(SiteValidator),
        Time::ZERO,
    );
    d.set_known(peers(30));
    d
}

/// A relay joined with the 30 it knows, its rounds drawn from `seed`.
fn relay(seed: u64) -> Dht {
    let mut d = fresh();
    d.seed_upkeep(UmbraRng::from_u64(seed), Time::ZERO);
    let all: Vec<NodeId> = peers(30).into_keys().collect();
    d.bootstrap(Time::ZERO, &all);
    let _ = targets(&mut d, Time::ZERO, WallTime(WALL));
    d
}

fn block(i: u32) -> Record {
    let value = i.to_le_bytes().to_vec();
    Record {
        kind: RecordKind::BLOCK,
        key: *blake3::hash(&value).as_bytes(),
        value,
    }
}

fn hold(d: &mut Dht, r: &Record) {
    let info = SiteValidator.validate(r, WallTime(WALL)).unwrap();
    d.store_mut().put(r, info, false).unwrap();
}

/// Answer every RPC `d` sends as its peers would (no closer nodes, stored), so contacts stay
/// in its table; the targets of the lookups it started (their `FIND_NODE`s), in order,
/// once each.
fn targets(d: &mut Dht, now: Time, wall: WallTime) -> Vec<[u8; 32]> {
    let mut out: Vec<[u8; 32]> = Vec::new();
    while let Some(a) = d.poll_action() {
        let DhtAction::Send { to, msg } = a else {
            continue;
        };
        let answer = match msg {
            DhtMsg::FindNode { id, target } => {
                if !out.contains(&target) {
                    out.push(target);
                }
                DhtMsg::Nodes { id, nodes: vec![] }
            }
            DhtMsg::FindValue { id, .. } | DhtMsg::FindSeq { id, .. } => {
                DhtMsg::Nodes { id, nodes: vec![] }
            }
            DhtMsg::Store { id, .. } | DhtMsg::Touch { id, .. } => DhtMsg::Stored { id, status: 0 },
            _ => continue,
        };
        d.handle_rpc(now, wall, to, answer);
    }
    out
}

/// Run `d`'s timers from `from` for `span`, the wall clock `wall0` at `from`; the lookup
/// targets it started.
fn run(d: &mut Dht, from: Time, span: Duration, wall0: u64) -> (Vec<[u8; 32]>, Time) {
    let mut now = from;
    let mut out = Vec::new();
    while now < from + span {
        let wall = WallTime(wall0 + (now - from).as_secs());
        d.handle_timeout(now, wall);
        out.extend(targets(d, now, wall));
        let next = d.poll_timeout().unwrap_or(Time::NEVER);
        now = next.max(now + Duration::from_millis(1));
    }
    (out, now)
}

#[test]
fn rounds_start_at_each_nodes_own_phase_in_random_order() {
    let interval = DhtConfig::default().republish_interval;
    let phases: Vec<Time> = (0..4).map(|s| relay(s).next_round()).collect();
    for p in &phases {
        assert!(
            *p < Time::ZERO + interval,
            "first round within the interval"
        );
    }
    let distinct: std::collections::BTreeSet<_> = phases.iter().collect();
    assert_eq!(
        distinct.len(),
        4,
        "nodes started together start rounds apart"
    );

    let mut d = relay(9);
    let blocks: Vec<Record> = (0..40).map(block).collect();
    for b in &blocks {
        hold(&mut d, b);
    }
    let start = d.next_round();
    let (order, _) = run(&mut d, start, interval, WALL);
    let keys: Vec<[u8; 32]> = order
        .into_iter()
        .filter(|t| blocks.iter().any(|b| b.key == *t))
        .collect();
    assert_eq!(keys.len(), 40, "every held record republished once");
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_ne!(keys, sorted, "a random order, not the store's key order");
}

#[test]
fn a_record_another_holder_stored_is_not_republished_this_round() {
    let interval = DhtConfig::default().republish_interval;
    let mut d = relay(1);
    let (theirs, mine) = (block(1), block(2));
    hold(&mut d, &mine);
    let other = *peers(30).keys().next().unwrap();
    d.handle_rpc(
        Time::ZERO,
        WallTime(WALL),
        other,
        DhtMsg::Store {
            id: 7,
            record: theirs.clone(),
            expires: WALL + 86_400,
        },
    );
    let _ = targets(&mut d, Time::ZERO, WallTime(WALL));
    let start = d.next_round();
    let (first, end) = run(&mut d, start, interval, WALL);
    assert!(first.contains(&mine.key), "its own record goes out");
    assert!(
        !first.contains(&theirs.key),
        "the record another holder just stored went out again"
    );
    assert_eq!(d.stats().republish_skipped, 1);
    // Nobody stored it during the next interval: this holder takes over.
    let (second, _) = run(&mut d, end, interval, WALL + 3600);
    assert!(second.contains(&theirs.key), "a holder takes over");
}

#[test]
fn a_manifest_holder_renews_its_blocks_every_ten_days() {
    let interval = DhtConfig::default().republish_interval;
    let key = IdentityKey::generate(&mut UmbraRng::from_u64(4));
    let files = vec![("big.bin".to_string(), vec![7u8; 80_000])];
    let built = build(&key, &files, 1, WallTime(WALL), NO_EXPIRY).unwrap();
    let manifest = Record {
        kind: RecordKind::MANIFEST,
        key: built.parsed.address().dht_key(),
        value: built.manifest.clone(),
    };
    assert_eq!(built.parsed.expires, WallTime(u64::MAX), "never expires");
    let block_keys: Vec<[u8; 32]> = built.blocks.keys().copied().collect();
    assert_eq!(
        block_keys.len(),
        2,
        "80,000 bytes of one value: two distinct blocks"
    );
    let mut d = relay(2);
    hold(&mut d, &manifest);
    let renewed = |t: &[[u8; 32]]| block_keys.iter().filter(|k| t.contains(k)).count();

    let start = d.next_round();
    let (first, end) = run(&mut d, start, interval, WALL);
    assert_eq!(renewed(&first), 2, "a new holder renews at its first round");
    assert_eq!(d.stats().renewals, 2);
    let (second, _) = run(&mut d, end, interval, WALL + 3600);
    assert_eq!(renewed(&second), 0, "not again within 10 days");
    let later = end + Duration::from_secs(BLOCK_RENEWAL);
    let (third, end) = run(&mut d, later, interval, WALL + BLOCK_RENEWAL);
    assert_eq!(renewed(&third), 2, "again after 10 days");

    // Another holder republished the manifest here: it renews, this one does not.
    let other = *peers(30).keys().next().unwrap();
    let wall = WallTime(WALL + 2 * BLOCK_RENEWAL);
    d.handle_rpc(
        end,
        wall,
        other,
        DhtMsg::Store {
            id: 9,
            record: manifest,
            expires: u64::MAX,
        },
    );
    let _ = targets(&mut d, end, wall);
    let (fourth, _) = run(&mut d, end, interval, wall.0);
    assert_eq!(
        renewed(&fourth),
        0,
        "renewed by the holder that republished it"
    );
}

#[test]
fn a_node_whose_contacts_refused_it_joins_again() {
    let mut d = fresh();
    let seeds: Vec<NodeId> = peers(30).keys().take(2).copied().collect();
    d.bootstrap(Time::ZERO, &seeds);
    // Neither contact knows the newcomer yet: no answer, both fail, the table is empty.
    let mut now = Time::ZERO;
    while now < Time::ZERO + Duration::from_secs(60) {
        d.handle_timeout(now, WallTime(WALL));
        while d.poll_action().is_some() {}
        now = now + Duration::from_secs(1);
    }
    assert!(d.table().is_empty());
    let mut asked = 0;
    while now < Time::ZERO + Duration::from_secs(11 * 60) {
        d.handle_timeout(now, WallTime(WALL));
        while let Some(a) = d.poll_action() {
            if matches!(
                a,
                DhtAction::Send {
                    msg: DhtMsg::FindNode { .. },
                    ..
                }
            ) {
                asked += 1;
            }
        }
        now = now + Duration::from_secs(1);
    }
    assert!(d.stats().rejoins >= 1, "it joined again");
    assert!(asked >= 3, "from relays of its directory ({asked} asked)");
}
