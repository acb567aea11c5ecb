//! Tier 4: circuits in the deterministic simulator (`protocol-spec/04-circuits.md`).
//! Each scenario prints its seed; replay one with `UMBRA_SIM_SEED=<seed>`.

mod common;

use common::seed;
use std::collections::BTreeSet;
use std::time::Duration;

use umbra::app::echo::{Echo, EchoState};
use umbra::node::NodeError;
use umbra::relay::{Misbehaviour, Observation, PrevKind, RelayError};
use umbra::sim::{AppId, NetModel, World};
use umbra::time::Time;

/// Start the echo app on reader `r`: `n` bytes through a fresh circuit.
fn echo(w: &mut World, r: usize, n: u64) -> AppId {
    w.spawn(r, Box::new(Echo::new(n)))
}

/// The echo apps `ids`, to read their results.
fn echoes<'a>(w: &'a World, ids: &[AppId]) -> Vec<&'a Echo> {
    ids.iter().map(|&id| w.app::<Echo>(id).unwrap()).collect()
}

fn secs(s: u64) -> Time {
    Time::ZERO + Duration::from_secs(s)
}

/// No relay saw both a reader's address (a circuit created from a reader) and the circuit's
/// destination (a service asked for on it).
fn assert_no_relay_saw_both_ends(world: &World) {
    let readers: BTreeSet<_> = world
        .nodes()
        .iter()
        .filter(|n| n.node.node_id().is_none())
        .map(|n| n.addr)
        .collect();
    for n in world.nodes() {
        let obs = n.node.observations();
        let from_reader: BTreeSet<_> = obs
            .iter()
            .filter(|o| {
                matches!(
                    o.what,
                    Observation::Created {
                        prev: PrevKind::Reader,
                        ..
                    }
                ) && readers.contains(&o.from)
            })
            .filter_map(|o| match o.what {
                Observation::Created { circ, .. } => Some(circ),
                _ => None,
            })
            .collect();
        for o in obs {
            if let Observation::Destination { circ, .. } = &o.what {
                assert!(
                    !from_reader.contains(circ),
                    "relay {} saw both the reader and the destination of {circ:?}",
                    n.addr
                );
                assert!(
                    !readers.contains(&o.from),
                    "relay {} saw a destination straight from a reader",
                    n.addr
                );
            }
        }
    }
}

#[test]
fn small_world_echo() {
    let mut w = World::new(seed(1), 12, 3, NetModel::default());
    let ids: Vec<AppId> = (12..15).map(|r| echo(&mut w, r, 20_000)).collect();
    w.run_apps(&ids, secs(60));
    let jobs = echoes(&w, &ids);
    for j in jobs.iter().copied() {
        assert_eq!(j.state, EchoState::Done, "{j:?}");
        assert_eq!(j.path.len(), 3);
    }
    assert_no_relay_saw_both_ends(&w);
}

#[test]
fn thousand_relays_hundred_readers_every_circuit_echoes() {
    let mut w = World::new(seed(2), 1000, 100, NetModel::default());
    let ids: Vec<AppId> = (1000..1100).map(|r| echo(&mut w, r, 8_000)).collect();
    w.run_apps(&ids, secs(120));
    let jobs = echoes(&w, &ids);
    let done = jobs.iter().filter(|j| j.state == EchoState::Done).count();
    assert_eq!(
        done,
        100,
        "{:?}",
        jobs.iter()
            .filter(|j| j.state != EchoState::Done)
            .collect::<Vec<_>>()
    );
    let mut build_ms: Vec<u128> = jobs
        .iter()
        .filter_map(|j| j.built_at.map(|b| (b - j.started).as_millis()))
        .collect();
    build_ms.sort_unstable();
    eprintln!(
        "circuit build (simulated): median {} ms, max {} ms, {} events",
        build_ms[50], build_ms[99], w.processed
    );
    assert_no_relay_saw_both_ends(&w);
}

#[test]
fn ten_percent_relay_churn_circuits_complete_after_retries() {
    let s = seed(3);
    let mut w = World::new(
        s,
        1000,
        100,
        NetModel {
            loss: 0.01,
            ..NetModel::default()
        },
    );
    // Readers ask for circuits in four waves while 100 relays (10%) stop at random moments.
    let mut ids = Vec::new();
    let mut rng = umbra::crypto::rng::UmbraRng::from_u64(s ^ 0x5eed);
    let mut kill_at: Vec<(u64, usize)> = (0..100)
        .map(|_| (rng.below(20_000), rng.below(1000) as usize))
        .collect();
    kill_at.sort_unstable();
    let mut kills = kill_at.into_iter().peekable();
    for wave in 0..4u64 {
        for r in 1000..1100 {
            ids.push(echo(&mut w, r, 4_000));
        }
        let until = Time::ZERO + Duration::from_millis(5_000 * (wave + 1));
        while let Some(&(t, victim)) = kills.peek() {
            let at = Time::ZERO + Duration::from_millis(t);
            if at > until {
                break;
            }
            w.run_apps(&ids, at);
            w.kill(victim);
            kills.next();
        }
        w.run_apps(&ids, until);
    }
    w.run_apps(&ids, secs(200));
    let jobs = echoes(&w, &ids);
    let total = jobs.len();
    let built = jobs.iter().filter(|j| j.built_at.is_some()).count();
    let echoed = jobs.iter().filter(|j| j.state == EchoState::Done).count();
    eprintln!("churn: {built}/{total} circuits built after retries, {echoed} echoed completely");
    for j in jobs.iter().copied() {
        assert!(
            !matches!(j.state, EchoState::Corrupted(_)),
            "an altered byte reached the reader"
        );
        if j.built_at.is_some() && j.state != EchoState::Done {
            // Only churn may break a built circuit: its link or a hop went away.
            let EchoState::Failed(why) = &j.state else {
                panic!("{j:?} never finished")
            };
            assert!(
                why.contains("link closed") || why.contains("destroyed by the network (reason 3)"),
                "{j:?}"
            );
        }
    }
    assert!(
        built * 100 >= total * 99,
        "only {built} of {total} circuits were built"
    );
}

#[test]
fn tampering_relay_is_caught_at_the_next_hop() {
    let mut w = World::new(seed(4), 40, 30, NetModel::default());
    // Five hostile relays flip a bit in every RELAY cell they forward.
    let hostile: Vec<usize> = (0..5).collect();
    for &h in &hostile {
        w.set_misbehaviour(
            h,
            Misbehaviour {
                tamper_every: 1,
                ..Misbehaviour::default()
            },
        );
    }
    let ids: Vec<AppId> = (40..70).map(|r| echo(&mut w, r, 6_000)).collect();
    w.run_apps(&ids, secs(120));
    let jobs = echoes(&w, &ids);
    let tampered: u64 = hostile
        .iter()
        .map(|&h| w.nodes()[h].node.relay_stats().unwrap().tampered)
        .sum();
    assert!(
        tampered > 0,
        "no hostile relay forwarded anything: the scenario tests nothing"
    );
    let caught: u64 = w
        .nodes()
        .iter()
        .filter_map(|n| n.node.relay_stats())
        .map(|s| s.layer_failures)
        .sum();
    let late: u64 = w
        .nodes()
        .iter()
        .flat_map(|n| n.node.errors())
        .filter(|e| matches!(e, NodeError::Relay(RelayError::UnknownCircuit)))
        .count() as u64;
    eprintln!("tampered {tampered}, caught by a layer {caught}, arrived after teardown {late}");
    // Every altered cell failed its layer at the next hop, or arrived after that hop had
    // already torn the circuit down.
    assert!(caught + late >= tampered, "{caught} + {late} < {tampered}");
    assert!(caught >= 1);
    for j in jobs.iter().copied() {
        assert!(
            !matches!(j.state, EchoState::Corrupted(_)),
            "an altered byte reached the reader"
        );
        if j.state == EchoState::Done {
            // A completed circuit never forwarded through a hostile relay as guard or middle.
            for (i, hop) in j.path.iter().enumerate().take(2) {
                let idx = w.index_of(*hop).unwrap();
                assert!(
                    !hostile.contains(&idx),
                    "circuit through hostile hop {i} completed"
                );
            }
        }
    }
}

#[test]
fn dropping_replaying_and_delaying_relays_never_corrupt_and_spare_other_circuits() {
    let mut w = World::new(seed(5), 60, 40, NetModel::default());
    // Relays 0-2 drop every 3rd forwarded cell, 3-5 replay every 2nd, 6-8 delay all they
    // send by 3 s (longer than nothing: builds through them are slow but must not break).
    for h in 0..3 {
        w.set_misbehaviour(
            h,
            Misbehaviour {
                drop_every: 3,
                ..Misbehaviour::default()
            },
        );
    }
    for h in 3..6 {
        w.set_misbehaviour(
            h,
            Misbehaviour {
                replay_every: 2,
                ..Misbehaviour::default()
            },
        );
    }
    for h in 6..9 {
        w.set_extra_delay(h, Duration::from_secs(3));
    }
    let ids: Vec<AppId> = (60..100).map(|r| echo(&mut w, r, 30_000)).collect();
    w.run_apps(&ids, secs(180));
    let jobs = echoes(&w, &ids);
    let mut through_bad = 0;
    let mut clean_done = 0;
    let mut clean = 0;
    for j in jobs.iter().copied() {
        assert!(
            !matches!(j.state, EchoState::Corrupted(_)),
            "an altered byte reached the reader"
        );
        let forwards_through_hostile = j
            .path
            .iter()
            .take(2)
            .any(|h| w.index_of(*h).is_some_and(|i| i < 6));
        if j.built_at.is_some() && forwards_through_hostile {
            through_bad += 1;
            // 30 kB needs ~60 forward cells: a dropping or replaying hop is always caught.
            assert_ne!(
                j.state,
                EchoState::Done,
                "a circuit through a dropping/replaying relay completed: {j:?}"
            );
        } else if j.built_at.is_some() {
            clean += 1;
            clean_done += usize::from(j.state == EchoState::Done);
        }
    }
    eprintln!(
        "{through_bad} circuits crossed a dropping/replaying relay; {clean_done}/{clean} clean circuits echoed"
    );
    assert_eq!(clean_done, clean, "a circuit with honest forwarders failed");
    assert!(clean > 10);
    assert_no_relay_saw_both_ends(&w);
}

#[test]
fn partitioned_and_restarted_relays_are_routed_around_then_used_again() {
    let mut w = World::new(seed(6), 16, 8, NetModel::default());
    // Cut off a quarter of the relays: builds that pick them fail to connect and retry.
    let cut: Vec<usize> = (0..4).collect();
    for &i in &cut {
        w.partition(i);
    }
    let ids: Vec<AppId> = (16..20).map(|r| echo(&mut w, r, 5_000)).collect();
    w.run_apps(&ids, secs(120));
    let jobs = echoes(&w, &ids);
    for j in jobs.iter().copied() {
        assert_eq!(j.state, EchoState::Done, "{j:?}");
        for hop in &j.path {
            assert!(
                !cut.contains(&w.index_of(*hop).unwrap()),
                "a circuit went through a partitioned relay"
            );
        }
    }
    // Heal them, and stop and restart four others with fresh state: all of them carry
    // circuits again.
    for &i in &cut {
        w.heal(i);
    }
    for i in 4..8 {
        w.kill(i);
        w.restart(i);
    }
    let back: Vec<usize> = (0..8).collect();
    let ids: Vec<AppId> = (20..24)
        .flat_map(|r| [r, r])
        .map(|r| echo(&mut w, r, 5_000))
        .collect();
    let t = w.now();
    w.run_apps(&ids, t + Duration::from_secs(120));
    let jobs = echoes(&w, &ids);
    assert!(
        jobs.iter().all(|j| j.state == EchoState::Done),
        "{:?}",
        jobs.iter().map(|j| &j.state).collect::<Vec<_>>()
    );
    let carried: u64 = back
        .iter()
        .filter_map(|&i| w.nodes()[i].node.relay_stats())
        .map(|s| s.created)
        .sum();
    assert!(
        carried > 0,
        "healed and restarted relays carried no circuit"
    );
}
