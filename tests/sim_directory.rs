//! Tier 4: relay discovery in the simulator (`protocol-spec/10-directory.md`).
//! Each scenario prints its seed; replay one with `UMBRA_SIM_SEED=<seed>`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::seed;
use umbra::app::echo::{Echo, EchoState};
use umbra::crypto::keys::NodeId;
use umbra::node::NodeConfig;
use umbra::sim::{AppId, NetModel, World};
use umbra::time::Time;

fn secs(s: u64) -> Time {
    Time::ZERO + Duration::from_secs(s)
}

fn short_intervals(c: &mut NodeConfig) {
    c.directory.relay_interval = Duration::from_secs(60);
    c.directory.reader_interval = Duration::from_secs(120);
}

/// Each node's share of the relays that exist (`relays` of them): (smallest, median).
fn breadth(w: &World, range: std::ops::Range<usize>, relays: usize) -> (f64, f64) {
    let mut shares: Vec<f64> = w.nodes()[range]
        .iter()
        .map(|n| n.node.directory().len() as f64 / relays as f64)
        .collect();
    shares.sort_by(f64::total_cmp);
    (shares[0], shares[shares.len() / 2])
}

/// 300 relays and 60 readers, each started from a bootstrap list of three contacts: relays
/// flood and reconcile, readers reconcile with their guard, and every node ends with the
/// whole relay set — the same view for every reader, so a reader's paths cannot
/// fingerprint it (`rationale.md#relay-discovery`). Prints the breadth of the views over
/// time. Without discovery every view stays at 3 or 4 relays.
#[test]
fn every_node_learns_the_whole_relay_set_from_three_contacts() {
    let (relays, readers) = (300, 60);
    let mut w = World::with_config(
        seed(31),
        relays,
        readers,
        NetModel::default(),
        short_intervals,
    );
    w.forget_directories(3);
    let (_, m0) = breadth(&w, relays..relays + readers, relays);
    assert!(
        m0 <= 4.0 / relays as f64,
        "readers start from their contacts"
    );
    println!("time   relays: min  median   readers: min  median");
    for t in [5, 30, 60, 120, 240, 360] {
        w.run_until(secs(t));
        let (rmin, rmed) = breadth(&w, 0..relays, relays);
        let (dmin, dmed) = breadth(&w, relays..relays + readers, relays);
        println!(
            "{t:>4} s        {:>5.1}%  {:>5.1}%           {:>5.1}%  {:>5.1}%",
            rmin * 100.0,
            rmed * 100.0,
            dmin * 100.0,
            dmed * 100.0
        );
    }
    for (i, n) in w.nodes().iter().enumerate() {
        assert_eq!(
            n.node.directory().len(),
            relays,
            "node {i} knows {} of {relays} relays after 6 minutes",
            n.node.directory().len()
        );
        let s = n.node.directory_stats();
        assert_eq!(s.refused_bad, 0, "node {i}: {s:?}");
    }
    // Every reader holds the same set.
    let sets: BTreeSet<Vec<NodeId>> = w.nodes()[relays..]
        .iter()
        .map(|n| n.node.directory().relays().map(|d| d.node_id()).collect())
        .collect();
    assert_eq!(sets.len(), 1, "readers' views differ");
    // And their circuits use relays they never had in a file.
    let ids: Vec<AppId> = (relays..relays + readers)
        .map(|r| w.spawn(r, Box::new(Echo::new(2_000))))
        .collect();
    w.run_apps(&ids, secs(420));
    let mut used = BTreeSet::new();
    for &id in &ids {
        let e = w.app::<Echo>(id).unwrap();
        assert_eq!(e.state, EchoState::Done, "{:?}", e.state);
        used.extend(e.path.iter().copied());
    }
    println!(
        "{} distinct relays carried the readers' circuits",
        used.len()
    );
    assert!(used.len() > 60, "only {} relays used", used.len());
}

/// A relay started with one contact is admitted by it, flooded to the relays and learnt by
/// readers that never had it in a file within one reader interval; readers then build
/// circuits through it.
#[test]
fn a_relay_started_with_one_contact_is_used_by_readers_that_never_had_it() {
    let (relays, readers) = (40, 30);
    let mut w = World::with_config(
        seed(32),
        relays,
        readers,
        NetModel::default(),
        short_intervals,
    );
    w.run_until(secs(10));
    let new = w.add_relay(&[0]);
    let id = w.nodes()[new].node.node_id().unwrap();
    let start = w.now();
    let mut relays_at = None;
    let mut most_at = None;
    let mut readers_at = None;
    while w.now() < start + Duration::from_secs(240) && readers_at.is_none() {
        let t = w.now() + Duration::from_secs(1);
        w.run_until(t);
        let knows = |n: &umbra::sim::SimNode| n.node.directory().get(&id).is_some();
        let known = w.nodes()[..relays].iter().filter(|n| knows(n)).count();
        if most_at.is_none() && known * 10 >= relays * 9 {
            most_at = Some(w.now() - start);
        }
        if relays_at.is_none() && known == relays {
            relays_at = Some(w.now() - start);
        }
        if w.nodes()[relays..relays + readers].iter().all(knows) {
            readers_at = Some(w.now() - start);
        }
    }
    let most_at = most_at.expect("90% of relays learn the newcomer");
    let relays_at = relays_at.expect("every relay learns the newcomer");
    let readers_at = readers_at.expect("every reader learns the newcomer");
    println!(
        "newcomer known by 90% of relays after {most_at:?}, every relay after {relays_at:?}, \
         every reader after {readers_at:?}"
    );
    // Flooding, not the 60 s reconciliation, carries it to most relays at once.
    assert!(most_at < Duration::from_secs(5), "{most_at:?}");
    // Reconciliation reaches the rest within one relay interval (60 s + 20%), and the
    // readers within one reader interval (120 s + 20%) after that.
    assert!(relays_at <= Duration::from_secs(73), "{relays_at:?}");
    assert!(
        readers_at <= Duration::from_secs(73 + 145),
        "{readers_at:?}"
    );
    // It learnt the whole set from its one contact.
    assert_eq!(w.nodes()[new].node.directory().len(), relays + 1);
    // Readers' circuits go through it.
    let mut through = 0;
    for round in 0..4u64 {
        let ids: Vec<AppId> = (relays..relays + readers)
            .map(|r| w.spawn(r, Box::new(Echo::new(1_000))))
            .collect();
        let until = w.now() + Duration::from_secs(60);
        w.run_apps(&ids, until);
        for &a in &ids {
            let e = w.app::<Echo>(a).unwrap();
            assert_eq!(e.state, EchoState::Done, "round {round}: {:?}", e.state);
            through += usize::from(e.path.contains(&id));
        }
    }
    println!(
        "{through} of {} circuits went through the newcomer",
        4 * readers
    );
    assert!(through > 0);
    assert!(w.nodes()[new].node.relay_stats().unwrap().created > 0);
}
