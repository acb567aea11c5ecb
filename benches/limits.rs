//! `cargo bench --bench limits`: the limits against issue 15's targets, in the deterministic
//! simulator (simulated time: exact 10 s windows, no machine noise), printed as a table for
//! `docs/performance.md` (`protocol-spec/09-relay.md#bandwidth`, `#accounting`).
//!
//! (a) A relay limited to `relayed` = 1 MiB/s and `rate` = 4 MiB/s, with readers pushing
//!     echoes through it at many times that: the most it relayed in any 10 s window against
//!     `limit × 10 + burst`, and its own echo's speed with and without the flood.
//! (d) A month of the accounting pacer at twice the demand the quota allows, up every hour
//!     and down 5% of the hours: quota used, and hours served.
//!
//! CPU and memory under floods need real processes: `umbra bench --limits` (not in this
//! file). Options: `--seed N`.

use std::time::Duration;

use umbra::app::echo::{Echo, EchoState};
use umbra::limits::month::simulate;
use umbra::limits::{Class, Direction, Limits};
use umbra::sim::{AppId, NetModel, World};
use umbra::time::{Time, WallTime};

const RELAYED: u64 = 1 << 20;
const RATE: u64 = 4 << 20;
/// Relays; relay 0 carries the limits.
const RELAYS: usize = 4;
const READERS: usize = 8;

fn secs(s: u64) -> Time {
    Time::ZERO + Duration::from_secs(s)
}

fn world(seed: u64) -> World {
    world_with(seed, true)
}

fn world_with(seed: u64, limited: bool) -> World {
    // Fast links: what limits a circuit here is relay 0's buckets, not the network.
    let net = NetModel {
        bandwidth: 1_000_000_000,
        ..NetModel::default()
    };
    let mut w = World::new(seed, RELAYS, READERS, net);
    w.run_until(secs(2));
    if !limited {
        return w;
    }
    let now = w.now();
    w.node_mut(0).set_limits(
        now,
        Limits {
            relayed: Some(RELAYED),
            rate: Some(RATE),
            ..Limits::default()
        },
    );
    w
}

/// Relay 0's own echo of `bytes`: bytes a second, from stream open to the last byte back.
fn own_speed(w: &World, id: AppId) -> f64 {
    let e = w.app::<Echo>(id).expect("echo");
    assert_eq!(e.state, EchoState::Done, "relay 0's own echo: {e:?}");
    let secs = (e.finished_at.unwrap() - e.opened_at.unwrap()).as_secs_f64();
    e.total() as f64 / secs
}

fn part_a(seed: u64) -> Vec<(String, String, String)> {
    const OWN: u64 = 16 << 20;
    // What the flood asks of relay 0 when nothing limits it: its first 10 s.
    let mut w = world_with(seed, false);
    for r in RELAYS..RELAYS + READERS {
        w.spawn(r, Box::new(Echo::new(64 << 20)));
    }
    let t0 = w.now();
    w.run_until(t0 + Duration::from_secs(10));
    let demand = w.nodes()[0]
        .node
        .shaper()
        .usage(Direction::In, Class::Relayed)
        .bytes as f64
        / 10.0;

    // Relay 0's own echo alone.
    let mut w = world(seed);
    let own = w.spawn(0, Box::new(Echo::new(OWN)));
    w.run_apps(&[own], secs(120));
    let alone = own_speed(&w, own);

    // The same while every reader pushes 64 MiB echoes.
    let mut w = world(seed);
    for r in RELAYS..RELAYS + READERS {
        w.spawn(r, Box::new(Echo::new(64 << 20)));
    }
    w.run_until(secs(5));
    let own = w.spawn(0, Box::new(Echo::new(OWN)));
    let mut samples: Vec<[u64; 2]> = Vec::new();
    let start = w.now();
    for s in 1..=120u64 {
        w.run_until(start + Duration::from_secs(s));
        let sh = w.nodes()[0].node.shaper();
        samples.push([
            sh.usage(Direction::In, Class::Relayed).bytes,
            sh.usage(Direction::Out, Class::Relayed).bytes,
        ]);
    }
    let with_flood = own_speed(&w, own);
    let burst = Limits {
        relayed: Some(RELAYED),
        rate: Some(RATE),
        ..Limits::default()
    }
    .class_burst(RELAYED);
    let worst = |d: usize| {
        samples
            .windows(11)
            .map(|win| win[10][d] - win[0][d])
            .max()
            .unwrap_or(0)
    };
    let bound = RELAYED * 10 + burst;
    vec![
        (
            "(a) relayed in, worst 10 s window".into(),
            format!("{:.2} MiB", worst(0) as f64 / f64::from(1 << 20)),
            format!(
                "≤ {:.2} MiB (1 MiB/s × 10 s + 1% + burst)",
                bound as f64 * 1.01 / f64::from(1 << 20)
            ),
        ),
        (
            "(a) relayed out, worst 10 s window".into(),
            format!("{:.2} MiB", worst(1) as f64 / f64::from(1 << 20)),
            format!("≤ {:.2} MiB", bound as f64 * 1.01 / f64::from(1 << 20)),
        ),
        (
            "(a) the same flood at relay 0 with no limit, relayed in".into(),
            format!(
                "{:.1} MiB/s ({:.0}× the limit)",
                demand / f64::from(1 << 20),
                demand / RELAYED as f64
            ),
            "demand ≥ 10× the limit".into(),
        ),
        (
            "(a) relay 0's own echo, alone / under the flood".into(),
            format!(
                "{:.2} / {:.2} MiB/s ({:.0}%)",
                alone / f64::from(1 << 20),
                with_flood / f64::from(1 << 20),
                100.0 * with_flood / alone
            ),
            "own traffic keeps its speed (rate − relayed left to it)".into(),
        ),
    ]
}

fn part_d(seed: u64) -> Vec<(String, String, String)> {
    // December 2026, 100 GiB.
    let start = WallTime(1_796_083_200);
    let mut rows = Vec::new();
    for (down, label) in [(0, "up all month"), (5, "down 5% of hours")] {
        let r = simulate(start, 100 << 30, 2.0, down, seed);
        rows.push((
            format!("(d) month at 2× demand, {label}: quota used"),
            format!("{:.2}%", r.used_percent()),
            "100% ± 1%".into(),
        ));
        rows.push((
            format!("(d) month at 2× demand, {label}: hours served"),
            format!(
                "{:.1}% ({} of {})",
                r.serving_percent(),
                r.hours_serving,
                r.hours
            ),
            "≥ 90%".into(),
        ));
    }
    rows
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed = args
        .iter()
        .position(|a| a == "--seed")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let mut rows = part_a(seed);
    rows.extend(part_d(seed));
    println!("\n| measure (seed {seed}) | figure | target |");
    println!("|---|---|---|");
    for (m, f, t) in rows {
        println!("| {m} | {f} | {t} |");
    }
}
