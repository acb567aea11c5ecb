//! `umbra bench --limits`: issue 15's figures that need real processes
//! (`protocol-spec/09-relay.md#handshakes`, `#memory`; `docs/performance.md#limits`).
//!
//! - (b) **A CREATE flood.** Relay 1 of three runs with `cpu_percent = 50`. One anonymous
//!   client floods it from its own address with CREATEs at ten times what the relay could
//!   answer with all of its CPU allowance (from the hop handshake cost measured here, the
//!   same measurement the relay makes). Meanwhile a reader from another address builds
//!   circuits one after another; with three relays every circuit passes relay 1. Measured:
//!   the share of honest circuits built (with a run without the flood beside it) and relay
//!   1's CPU from `/proc` over the flood. Run three times: with the per-address CREATE
//!   rate (the default); with it lifted, so only the CPU budget and the queue hold; and as
//!   the operator (`rate = 1 MiB/s`, `monthly = 100 GiB` as well), with the bytes
//!   relay 1 read against its pace.
//! - (c) **Readers that stop reading.** Relay 1 runs with `memory = "64 MiB"`. Readers on
//!   50 addresses build 10,000 one-hop circuits to it, open an `echo` stream on each, send
//!   it far more than `memory` altogether, and never read again. Measured: relay 1's peak
//!   RSS over its RSS while it held the circuits with their readers still reading (and over
//!   its RSS before any circuit), and what the relay closed to stay within.
//!
//! Not in this module: the links driven by hand (`raw_link.rs`, `stalled.rs`), the floods
//! (`flood.rs`), the simulated figures (a) and (d) (`benches/limits.rs`).

use crate::runtime::error::RuntimeError;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::flood::CreateFlood;
use super::http::Client;
use super::procs::{Network, Tune, cpu_seconds, free_port, rss_bytes};
use super::stalled::Stalled;
use super::{percentile, run_reader};
use crate::app::bench::CircuitBench;
use crate::directory::Descriptor;
use crate::runtime::driver::os_rng;

/// The CPU share relay 1 gets in (b).
const CPU_PERCENT: f64 = 50.0;
/// Honest circuits built one after another, with and without the flood.
const HONEST: usize = 100;
/// The flood runs at least this long, so relay 1's CPU is read over a steady state.
const FLOOD_SECS: f64 = 20.0;
/// Relay 1's memory limit in (c).
const MEMORY: u64 = 64 << 20;
/// Circuits per stalled reader link (within the per-link limit and the per-address burst).
const PER_LINK: usize = 200;
/// DATA cells each stalled reader sends on its circuit's echo stream.
const CELLS_PER_CIRCUIT: usize = 64;

/// Run (b) three times and (c); the figures as JSON.
pub fn limits(dir: &Path, circuits: usize) -> Result<Value, RuntimeError> {
    let cost = crate::runtime::calibrate::hop_handshake_cost(&mut os_rng());
    let cost_us = cost.as_secs_f64() * 1e6;
    // What the relay could answer with all of its CPU allowance, and ten times that.
    let capacity = CPU_PERCENT / 100.0 * 1e6 / cost_us;
    eprintln!(
        "[bench] a hop handshake costs {cost_us:.0} µs here: at {CPU_PERCENT}% of a core a \
         relay answers at most {capacity:.0} CREATEs/s; flooding at {:.0}/s",
        10.0 * capacity
    );
    let mut out = json!({
        "handshake_cost_us": cost_us,
        "create_capacity_per_s": capacity,
    });
    let cpu = format!("[limits]\ncpu_percent = {CPU_PERCENT}\n");
    // The operator: 1 MiB/s, half a core, 100 GiB a month (paced: ~44 KB/s).
    let operator = format!("{cpu}rate = \"1 MiB/s\"\nmonthly = \"100 GiB\"\n");
    for (key, limits, rate_on) in [
        ("create_flood", &cpu, true),
        ("create_flood_rate_lifted", &cpu, false),
        ("create_flood_operator", &operator, true),
    ] {
        eprintln!("[bench] (b) CREATE flood from one address: {key}");
        out[key] = create_flood(&dir.join(key), 10.0 * capacity, limits, rate_on)?;
    }
    if circuits > 0 {
        eprintln!("[bench] (c) {circuits} circuits whose readers stop reading");
        out["stalled_readers"] = stalled_readers(&dir.join("stalled"), circuits)?;
    }
    Ok(out)
}

/// Relay 1's `/api/status`.
fn relay_status(gw: SocketAddr) -> Result<Value, RuntimeError> {
    Client::connect(gw, gw.to_string())?.json("/api/status")
}

/// Three relays in `dir`, relay 1 with `limits` and its dashboard (the per-address CREATE
/// rate at its default if `rate_on`): the network, relay 1, its pid and its dashboard.
fn three_relays(
    dir: &Path,
    limits: String,
    rate_on: bool,
) -> Result<(Network, Descriptor, u32, SocketAddr), RuntimeError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| RuntimeError::Bench(format!("cannot create {}: {e}", dir.display())))?;
    let gw = free_port("127.0.0.1")?;
    let tune = Tune {
        limits,
        default_create_rate: rate_on,
        gateway: Some(gw),
    };
    let net = Network::start_tuned(dir, 3, None, &tune)?;
    let target = net.relay(1)?;
    let pid = net
        .relay_pids()
        .first()
        .copied()
        .ok_or_else(|| RuntimeError::Bench("no relay 1".into()))?;
    Ok((net, target, pid, gw))
}

/// (b): honest circuits before and during a flood of `per_sec` CREATEs, relay 1 with
/// `limits`.
fn create_flood(
    dir: &Path,
    per_sec: f64,
    limits: &str,
    rate_on: bool,
) -> Result<Value, RuntimeError> {
    let (net, target, pid, gw) = three_relays(dir, limits.to_string(), rate_on)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RuntimeError::Bench(format!("cannot start the runtime: {e}")))?;

    let mut calm = CircuitBench::new(5, HONEST, 0, 1);
    run_reader(&rt, &net, &mut calm, 120)?;

    let flood = CreateFlood::start(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)), target, per_sec)?;
    // Let the flood reach the relay's queue before anything is read.
    std::thread::sleep(Duration::from_secs(2));
    let read0 = relay_status(gw)?["limits"]["total"]["read"].as_f64();
    let (cpu0, t0) = (cpu_seconds(pid), Instant::now());
    let mut busy = CircuitBench::new(0, HONEST, 0, 1);
    run_reader(&rt, &net, &mut busy, 300)?;
    let rest = FLOOD_SECS - t0.elapsed().as_secs_f64();
    if rest > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(rest));
    }
    let status = relay_status(gw)?;
    let (cpu1, secs) = (cpu_seconds(pid), t0.elapsed().as_secs_f64());
    // A flood blocked on a relay that reads little may take a while to stop: after the window.
    let report = flood.stop()?;
    let total = &status["limits"]["total"];
    let read = total["read"]
        .as_f64()
        .zip(read0)
        .map(|(b, a)| (b - a) / secs.max(1e-9));
    let h = &status["limits"]["handshakes"];
    let built = |b: &CircuitBench| b.sequential_ms.len();
    Ok(json!({
        "per_address_rate": rate_on,
        "flood_target_per_s": per_sec,
        "flood_sent_per_s": report.sent as f64 / report.secs.max(1e-9),
        "flood_links_opened": report.links,
        "honest_built_without_flood": built(&calm),
        "honest_built_under_flood": built(&busy),
        "honest_tried": HONEST,
        "honest_build_median_ms_without_flood": percentile(&calm.sequential_ms, 50.0),
        "honest_build_median_ms_under_flood": percentile(&busy.sequential_ms, 50.0),
        "honest_build_p99_ms_under_flood": percentile(&busy.sequential_ms, 99.0),
        "relay_cpu_percent": (cpu1 - cpu0) / secs.max(1e-9) * 100.0,
        "relay_cpu_percent_limit": CPU_PERCENT,
        "cpu_window_s": secs,
        "relay_read_bytes_per_s": read,
        "relay_total_rate_now": total["rate"],
        "answered": h["answered"],
        "refused_rate": h["refused_rate"],
        "refused_overloaded": h["refused_overloaded"],
        "max_wait_ms": h["max_wait_ms"],
    }))
}

/// (c): `total` circuits whose readers send echoes and stop reading.
fn stalled_readers(dir: &Path, total: usize) -> Result<Value, RuntimeError> {
    let (_net, target, pid, gw) = three_relays(
        dir,
        format!("[limits]\nmemory = \"{} MiB\"\n", MEMORY >> 20),
        true,
    )?;
    let rss_base = rss_bytes(pid);
    let links = total.div_ceil(PER_LINK);
    if links > 254 {
        return Err(RuntimeError::Bench(format!(
            "--idle-circuits {total}: at most {} with --limits (one address per 200)",
            254 * PER_LINK
        )));
    }
    let mut readers = Vec::new();
    for i in 0..links {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 2, u8::try_from(i + 1).unwrap_or(255)));
        readers.push(Stalled::open(ip, &target, PER_LINK as u32)?);
    }
    let built: usize = readers.iter().map(Stalled::circuits).sum();
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle = rss_bytes(pid);
    eprintln!(
        "[bench] {built} circuits with an echo stream each; now every reader sends \
         {CELLS_PER_CIRCUIT} cells a circuit and stops reading"
    );
    let demand = (built * CELLS_PER_CIRCUIT * crate::wire::cell::CELL_LEN) as u64;
    let start = Instant::now();
    let (peak, dropped_writes) = std::thread::scope(|s| {
        let writers: Vec<_> = readers
            .iter_mut()
            .map(|r| s.spawn(move || r.send_echoes(CELLS_PER_CIRCUIT).is_ok()))
            .collect();
        // Sample relay 1's RSS while the readers write and for 15 s after the last wrote.
        let mut peak = rss_bytes(pid);
        let mut quiet_since: Option<Instant> = None;
        while start.elapsed() < Duration::from_secs(120) {
            peak = peak.max(rss_bytes(pid));
            if writers.iter().all(|w| w.is_finished()) {
                let q = *quiet_since.get_or_insert_with(Instant::now);
                if q.elapsed() > Duration::from_secs(15) {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let dropped = writers
            .into_iter()
            .map(|w| w.join().unwrap_or(false))
            .filter(|ok| !ok)
            .count();
        (peak, dropped)
    });
    let status = relay_status(gw)?;
    let l = &status["limits"];
    // The baseline is the relay holding the circuits before their readers stop reading:
    // `memory` bounds what is queued for others, not circuit state (which `max_circuits`
    // bounds, and which is reported here too).
    let over = peak.saturating_sub(rss_idle);
    Ok(json!({
        "circuits": built,
        "reader_links": links,
        "memory_limit": MEMORY,
        "demand_bytes": demand,
        "rss_base_bytes": rss_base,
        "rss_with_idle_circuits_bytes": rss_idle,
        "rss_peak_bytes": peak,
        "rss_peak_over_idle_bytes": over,
        "rss_peak_over_empty_bytes": peak.saturating_sub(rss_base),
        "rss_bytes_per_idle_circuit": rss_idle.saturating_sub(rss_base) as f64 / built.max(1) as f64,
        "bound_bytes": MEMORY + MEMORY / 10,
        "links_dropped_unread": l["links_dropped_unread"],
        "circuits_closed_for_memory": l["closed_for_memory"],
        "reader_writes_refused": dropped_writes,
        "relayed_circuits_after": status["circuits"]["relayed"],
    }))
}

/// The table of `umbra bench --limits`.
pub fn print(r: &Value) {
    let row = |name: &str, path: &[&str], unit: &str| {
        if let Some(x) = super::get_f(r, path) {
            println!("{name:<62} {x:>12.1} {unit}");
        }
    };
    println!(
        "umbra bench --limits: {} cores ({})",
        r["machine"]["cores"], r["machine"]["cpu"]
    );
    if let Some(steal) = super::get_f(r, &["machine", "steal_percent_whole_bench"]) {
        println!("CPU stolen by the hypervisor during the bench: {steal:.1}%");
    }
    row(
        "hop handshake cost, measured here",
        &["limits", "handshake_cost_us"],
        "µs",
    );
    row(
        "CREATEs a relay answers at 50% of a core (its capacity)",
        &["limits", "create_capacity_per_s"],
        "/s",
    );
    for (k, label) in [
        ("create_flood", "(b) CREATE flood, per-address rate on"),
        (
            "create_flood_rate_lifted",
            "(b) CREATE flood, per-address rate lifted",
        ),
        (
            "create_flood_operator",
            "(b) the same with rate 1 MiB/s and monthly 100 GiB as well",
        ),
    ] {
        println!("{label}");
        let f = |name: &str, key: &str, unit: &str| row(name, &["limits", k, key], unit);
        f(
            "  flood asked, CREATEs/s (10x capacity)",
            "flood_target_per_s",
            "/s",
        );
        f("  flood written, CREATEs/s", "flood_sent_per_s", "/s");
        f(
            "  honest circuits built without the flood (of 100)",
            "honest_built_without_flood",
            "",
        );
        f(
            "  honest circuits built under the flood (of 100)",
            "honest_built_under_flood",
            "",
        );
        f(
            "  honest build median without / under the flood",
            "honest_build_median_ms_without_flood",
            "ms",
        );
        f("", "honest_build_median_ms_under_flood", "ms");
        f(
            "  relay CPU under the flood (limit 50)",
            "relay_cpu_percent",
            "%",
        );
        f(
            "  relay read under the flood, bytes/s",
            "relay_read_bytes_per_s",
            "B/s",
        );
        f(
            "  relay's total rate at the end (pace)",
            "relay_total_rate_now",
            "B/s",
        );
        f("  CREATEs answered", "answered", "");
        f("  refused for the per-address rate", "refused_rate", "");
        f("  refused OVERLOADED", "refused_overloaded", "");
    }
    println!("(c) 10,000 circuits whose readers stop reading, memory = 64 MiB");
    let f = |name: &str, key: &str, unit: &str| {
        if let Some(x) = super::get_f(r, &["limits", "stalled_readers", key]) {
            if unit == "MiB" {
                println!("{name:<62} {:>12.1} MiB", x / f64::from(1u32 << 20));
            } else {
                println!("{name:<62} {x:>12.0} {unit}");
            }
        }
    };
    f("  circuits built", "circuits", "");
    f(
        "  bytes the readers made the relay echo",
        "demand_bytes",
        "MiB",
    );
    f("  relay RSS before any circuit", "rss_base_bytes", "MiB");
    f(
        "  relay RSS with the circuits held, readers reading (baseline)",
        "rss_with_idle_circuits_bytes",
        "MiB",
    );
    f(
        "  relay RSS peak once they stop reading",
        "rss_peak_bytes",
        "MiB",
    );
    f(
        "  peak over the baseline (bound: memory + 10% = 70.4 MiB)",
        "rss_peak_over_idle_bytes",
        "MiB",
    );
    f(
        "  peak over the relay with no circuit",
        "rss_peak_over_empty_bytes",
        "MiB",
    );
    f(
        "  RSS per circuit with an echo stream",
        "rss_bytes_per_idle_circuit",
        "B",
    );
    f("  links dropped unread", "links_dropped_unread", "");
    f(
        "  circuits closed for memory",
        "circuits_closed_for_memory",
        "",
    );
}
