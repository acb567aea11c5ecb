//! Bandwidth limits in the deterministic simulator (`protocol-spec/09-relay.md#bandwidth`):
//! that they apply, hold cells back instead of dropping them, and leave the node's own
//! traffic alone. Speeds against the limits are measured by `umbra bench --limits`, not here.
//! Each scenario prints its seed; replay one with `UMBRA_SIM_SEED=<seed>`.

mod common;

use common::seed;
use std::time::Duration;

use umbra::app::echo::{Echo, EchoState};
use umbra::limits::{Class, Direction, Limits};
use umbra::sim::{AppId, NetModel, World};
use umbra::time::Time;

const RELAYED: u64 = 256 << 10;

fn secs(s: u64) -> Time {
    Time::ZERO + Duration::from_secs(s)
}

fn world(limits: Limits) -> World {
    // Three relays: every circuit passes all three.
    World::with_config(seed(151), 3, 4, NetModel::default(), |c| c.limits = limits)
}

/// Relayed bytes in at every relay, sampled each second until the echoes finish.
fn run(w: &mut World, ids: &[AppId], until: u64) -> Vec<Vec<u64>> {
    let mut samples = vec![Vec::new(); 3];
    for s in 1..=until {
        w.run_until(secs(s));
        for (i, v) in samples.iter_mut().enumerate() {
            let u = w.nodes()[i]
                .node
                .shaper()
                .usage(Direction::In, Class::Relayed);
            v.push(u.bytes);
        }
        if ids.iter().all(|&id| w.finished(id).is_some()) {
            break;
        }
    }
    samples
}

#[test]
fn a_relayed_limit_holds_cells_back_and_loses_none() {
    let limits = Limits {
        relayed: Some(RELAYED),
        ..Limits::default()
    };
    let burst = limits.class_burst(RELAYED);
    let mut w = world(limits);
    let ids: Vec<AppId> = (3..7)
        .map(|r| w.spawn(r, Box::new(Echo::new(2 << 20))))
        .collect();
    let samples = run(&mut w, &ids, 400);
    for &id in &ids {
        let e = w.app::<Echo>(id).unwrap();
        assert_eq!(e.state, EchoState::Done, "{e:?}");
        assert_eq!(e.received, 2 << 20);
    }
    // Every 10 s window at every relay: at most the limit, plus its burst.
    for (i, v) in samples.iter().enumerate() {
        for win in v.windows(11) {
            let carried = win[10] - win[0];
            assert!(
                carried <= RELAYED * 10 + burst,
                "relay {i} carried {carried} bytes in 10 s, limit {}",
                RELAYED * 10 + burst
            );
        }
    }
    let held: u64 = (0..3)
        .map(|i| w.nodes()[i].node.shaping_stats().held_total)
        .sum();
    assert!(held > 0, "the limit never held a cell");
    for i in 0..3 {
        let s = w.nodes()[i].node.shaping_stats();
        assert_eq!(s.held_cells, 0, "relay {i} still holds cells");
        assert_eq!(s.closed_for_overrun + s.closed_for_memory, 0);
    }
    // 4 × 2 MiB each way crossed every relay: 16 MiB in at 256 KiB/s takes ≥ 60 s.
    let took = samples[0].len();
    assert!(took >= 60, "done in {took} s: the limit did not apply");
    eprintln!("4 echoes of 2 MiB through relays limited to 256 KiB/s: {took} s (simulated)");
}

#[test]
fn without_limits_the_same_echoes_are_fast() {
    let mut w = world(Limits::default());
    let ids: Vec<AppId> = (3..7)
        .map(|r| w.spawn(r, Box::new(Echo::new(2 << 20))))
        .collect();
    let samples = run(&mut w, &ids, 400);
    for &id in &ids {
        assert_eq!(w.app::<Echo>(id).unwrap().state, EchoState::Done);
    }
    assert!(samples[0].len() < 30, "took {} s", samples[0].len());
    assert_eq!(w.nodes()[0].node.shaping_stats().held_total, 0);
}

#[test]
fn a_relay_never_puts_itself_on_its_own_circuits() {
    // Four relays: a path of three that may include relay 0 would do so three times in four.
    let mut w = World::new(seed(152), 4, 0, NetModel::default());
    w.run_until(secs(2));
    let me = w.nodes()[0].node.node_id().unwrap();
    for _ in 0..20 {
        let id = w.spawn(0, Box::new(Echo::new(1000)));
        let until = w.now() + Duration::from_secs(30);
        w.run_apps(&[id], until);
        let e = w.app::<Echo>(id).unwrap();
        assert_eq!(e.state, EchoState::Done, "{e:?}");
        assert!(
            !e.path.contains(&me),
            "relay 0's own circuit went through itself"
        );
    }
}

#[test]
fn past_the_memory_limit_the_circuits_holding_the_oldest_cells_are_closed() {
    // Relays held to 64 KiB/s with 256 KiB for held cells: four echoes keep 512 KiB each in
    // flight, more than the memory allows (`09-relay.md#memory`).
    let limits = Limits {
        relayed: Some(64 << 10),
        memory: 256 << 10,
        ..Limits::default()
    };
    let mut w = World::with_config(seed(153), 3, 4, NetModel::default(), |c| c.limits = limits);
    let ids: Vec<AppId> = (3..7)
        .map(|r| w.spawn(r, Box::new(Echo::new(8 << 20))))
        .collect();
    let cell = umbra::wire::cell::CELL_LEN as u64;
    let mut peak = 0u64;
    for s in 1..=60 {
        w.run_until(secs(s));
        for i in 0..3 {
            let held = w.nodes()[i].node.shaping_stats().held_cells as u64 * cell;
            peak = peak.max(held);
        }
    }
    let closed: u64 = (0..3)
        .map(|i| w.nodes()[i].node.shaping_stats().closed_for_memory)
        .sum();
    eprintln!("peak held {peak} B against 256 KiB; {closed} circuits closed for memory");
    assert!(closed > 0, "no circuit was closed for memory");
    assert!(
        peak <= (256 << 10) + cell,
        "held {peak} B past the 256 KiB limit"
    );
    // The closed circuits' echoes failed; nothing was corrupted.
    for &id in &ids {
        let e = w.app::<Echo>(id).unwrap();
        assert!(!matches!(e.state, EchoState::Corrupted(_)), "{e:?}");
    }
}
