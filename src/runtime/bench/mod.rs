//! `umbra bench`: the end-to-end benchmark on loopback (`docs/performance.md`).
//!
//! Starts `--relays` relay processes (this same binary, each on its own 127.N.0.1), then
//! measures with real readers on the real driver in this process: 3-hop circuit build time
//! and rate, one stream and eight parallel streams through 3 hops, the CPU every process
//! spent per MB carried, a site of 100 small files through the gateway (`umbra run` and
//! `umbra publish` processes) cold and cached, and relay memory and handshake cost while
//! readers hold 10,000 idle circuits. Prints a table and writes JSON. Every wait is bounded;
//! every process is killed and the temporary directory removed at the end.
//! Not in this module: protocol logic, or C tor (`benches/compare-tor.sh` runs both).

pub mod flood;
mod http;
mod limits;
mod procs;
pub mod stalled;

use crate::runtime::error::RuntimeError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use self::procs::{Network, rss_bytes, steal_percent, steal_ticks};
use super::driver::{Dialer, Driver, os_rng, wall_now};
use crate::app::App;
use crate::app::bench::{BulkBench, CircuitBench, IdleCircuits, IdleCounts};
use crate::node::{Node, NodeConfig};

/// What `umbra bench` runs.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Relay processes to start.
    pub relays: usize,
    /// MiB sent through one stream (the parallel run moves the same total).
    pub bulk_mib: u64,
    /// Circuits held idle for the memory figure (0 skips it).
    pub idle_circuits: usize,
    /// Skip the gateway part.
    pub skip_gateway: bool,
    /// Where to write the JSON results.
    pub json: Option<PathBuf>,
    /// Also measure with the reader's guard links through Tor, with `[tor]` from this file.
    pub tor_first_hop: Option<PathBuf>,
    /// Every relay on this port (on its own address) instead of a free one: Tor exits
    /// accept only some ports.
    pub relay_port: Option<u16>,
    /// Also build circuits while relay 1 floods relay 2 with `STORE`s.
    pub store_flood: bool,
    /// Measure the limits instead (`limits.rs`): a CREATE flood and stalled readers.
    pub limits: bool,
}

const MB: f64 = 1e6;
/// Repetitions of each bulk transfer.
const BULK_RUNS: usize = 3;

/// Run the benchmark; prints the table, writes JSON if asked.
pub fn bench(opts: &BenchOptions) -> Result<(), RuntimeError> {
    let dir = std::env::temp_dir().join(format!("umbra-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| RuntimeError::Bench(format!("cannot create {}: {e}", dir.display())))?;
    let result = bench_in(opts, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let results = result?;
    if opts.limits {
        limits::print(&results);
    } else {
        print_table(&results);
    }
    if let Some(path) = &opts.json {
        let text = serde_json::to_string_pretty(&results)
            .map_err(|e| RuntimeError::Bench(e.to_string()))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| RuntimeError::Bench(format!("cannot write {}: {e}", path.display())))?;
        println!("JSON written to {}", path.display());
    }
    Ok(())
}

fn bench_in(opts: &BenchOptions, dir: &Path) -> Result<Value, RuntimeError> {
    if opts.limits {
        let steal = steal_ticks();
        let mut out = json!({
            "machine": machine(),
            "umbra": env!("CARGO_PKG_VERSION"),
            "limits": limits::limits(dir, opts.idle_circuits)?,
        });
        out["machine"]["steal_percent_whole_bench"] = json!(steal_percent(steal, steal_ticks()));
        return Ok(out);
    }
    let net = Network::start(dir, opts.relays, opts.relay_port)?;
    eprintln!(
        "[bench] {} relay processes listening; measuring",
        net.relay_pids().len()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RuntimeError::Bench(format!("cannot start the runtime: {e}")))?;
    let mut out = json!({
        "machine": machine(),
        "umbra": env!("CARGO_PKG_VERSION"),
        "relays": opts.relays,
    });

    eprintln!(
        "[bench] circuits: 100 to open the relays' links, 50 one after another, 400 with 32 in flight"
    );
    let steal_start = steal_ticks();
    let relay_cpu0 = net.relay_cpu();
    let mut circuits = CircuitBench::new(100, 50, 400, 32);
    run_reader(&rt, &net, &mut circuits, 120)?;
    let relay_cpu = net.relay_cpu() - relay_cpu0;
    let warm = &circuits.sequential_ms;
    let (c0, c1) = circuits
        .concurrent_span
        .ok_or_else(|| RuntimeError::Bench("no concurrent circuits were built".into()))?;
    let rate = circuits.concurrent_built as f64 / c1.saturating_since(c0).as_secs_f64().max(1e-9);
    let steal_circuits = steal_percent(steal_start, steal_ticks());
    out["circuit_build"] = json!({
                "median_ms": percentile(warm, 50.0),
        "p99_ms": percentile(warm, 99.0),
        "min_ms": percentile(warm, 0.0),
        "samples": warm.len(),
        "samples_ms": warm,
        "built_per_s_32_in_flight": rate,
        "failed": circuits.failed,
        "relay_cpu_s": relay_cpu,
        "steal_percent": steal_circuits,
    });

    let bytes = opts.bulk_mib << 20;
    for (key, streams) in [("bulk_1_stream", 1usize), ("bulk_8_streams", 8)] {
        // Three runs, each on fresh circuits: the median and the spread are reported, so
        // one disturbed run on a shared machine does not decide the figure.
        let mut runs = Vec::new();
        for rep in 1..=BULK_RUNS {
            eprintln!(
                "[bench] {streams} stream(s) through 3 hops, {} MiB in all (run {rep} of {BULK_RUNS})",
                opts.bulk_mib
            );
            let cpu0 = net.all_cpu();
            let steal0 = steal_ticks();
            let mut bulk = BulkBench::new(streams, bytes / streams as u64);
            let code = run_reader(&rt, &net, &mut bulk, 300)?;
            if code != 0 {
                return Err(RuntimeError::Bench(format!(
                    "bulk transfer failed: {}",
                    bulk.error.unwrap_or_default()
                )));
            }
            let cpu = net.all_cpu() - cpu0;
            let (s, e) = bulk
                .span
                .ok_or_else(|| RuntimeError::Bench("no transfer span".into()))?;
            let secs = e.saturating_since(s).as_secs_f64().max(1e-9);
            runs.push((
                bytes as f64 / secs / MB,
                cpu * 1e3 / (bytes as f64 / MB),
                steal_percent(steal0, steal_ticks()),
            ));
        }
        let mbps: Vec<f64> = runs.iter().map(|r| r.0).collect();
        let cpu: Vec<f64> = runs.iter().map(|r| r.1).collect();
        let steal: Vec<f64> = runs.iter().map(|r| r.2).collect();
        out[key] = json!({
            "bytes_per_run": bytes,
            "MBps": percentile(&mbps, 50.0),
            "MBps_runs": mbps,
            "cpu_ms_per_MB": percentile(&cpu, 50.0),
            "cpu_ms_per_MB_runs": cpu,
            "steal_percent_runs": steal,
        });
    }

    if !opts.skip_gateway {
        eprintln!("[bench] sites of 100 files through the gateway, cold and cached");
        out["gateway"] = net.gateway_fetches(dir)?;
    }

    if opts.store_flood {
        eprintln!("[bench] 30 circuits while relay 1 floods relay 2 with STOREs");
        out["store_flood"] = store_flood(&rt, &net, dir)?;
    }

    if opts.idle_circuits > 0 {
        eprintln!(
            "[bench] {} idle circuits held by {} readers",
            opts.idle_circuits,
            opts.idle_circuits.div_ceil(1_800).max(6)
        );
        out["idle_circuits"] = idle(&rt, &net, opts.idle_circuits)?;
    }
    if let Some(cfg) = &opts.tor_first_hop {
        out["tor_first_hop"] = tor_first_hop(&rt, &net, cfg, dir, bytes)?;
    }
    out["machine"]["steal_percent_whole_bench"] = json!(steal_percent(steal_start, steal_ticks()));
    Ok(out)
}

fn reader_node(net: &Network) -> Node {
    let cfg = NodeConfig {
        wall_at_zero: wall_now(),
        ..NodeConfig::default()
    };
    Node::new(cfg, None, net.directory(), os_rng())
}

/// Run `app` on a fresh reader until it finishes; at most `limit_s` seconds.
fn run_reader(
    rt: &tokio::runtime::Runtime,
    net: &Network,
    app: &mut dyn App,
    limit_s: u64,
) -> Result<i32, RuntimeError> {
    run_reader_via(rt, net, app, limit_s, Dialer::Direct)
}

/// [`run_reader`] with the reader's links dialled by `dialer`.
fn run_reader_via(
    rt: &tokio::runtime::Runtime,
    net: &Network,
    app: &mut dyn App,
    limit_s: u64,
    dialer: Dialer,
) -> Result<i32, RuntimeError> {
    let node = reader_node(net);
    let code = rt.block_on(async {
        Driver::new(node, Instant::now())
            .with_dialer(dialer)
            .run(None, app, tokio::time::sleep(Duration::from_secs(limit_s)))
            .await
    });
    if app.finished().is_none() {
        return Err(RuntimeError::Bench(format!(
            "a measurement did not finish within {limit_s} s"
        )));
    }
    Ok(code)
}

/// Readers (at least six, and enough that no reader link passes the per-link circuit limit)
/// hold `total` idle circuits; relay RSS and CPU are read before and after, and 30 circuits
/// are built one by one while they are held (the cost of a full table per event).
fn idle(rt: &tokio::runtime::Runtime, net: &Network, total: usize) -> Result<Value, RuntimeError> {
    let readers = total.div_ceil(1_800).max(6);
    let rss0: u64 = net.relay_pids().iter().map(|&p| rss_bytes(p)).sum();
    let cpu0 = net.relay_cpu();
    let counts = Arc::new(IdleCounts::default());
    let start = Instant::now();
    let per = total.div_ceil(readers);
    let (held_at, cpu_at, rss_after, max_rss, builds) = rt.block_on(async {
        let local = tokio::task::LocalSet::new();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        for _ in 0..readers {
            let node = reader_node(net);
            let counts = counts.clone();
            let mut rx = stop_rx.clone();
            local.spawn_local(async move {
                let mut app = IdleCircuits::new(per, 64, counts);
                Driver::new(node, Instant::now())
                    .run(None, &mut app, async move {
                        let _ = rx.wait_for(|s| *s).await;
                    })
                    .await
            });
        }
        local
            .run_until(async {
                let deadline = Instant::now() + Duration::from_secs(300);
                let mut last = (0, Instant::now());
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let n = counts.built.load(Ordering::Relaxed)
                        + counts.failed.load(Ordering::Relaxed);
                    if n != last.0 {
                        last = (n, Instant::now());
                    }
                    // Done when every circuit is built or failed, or nothing moved for 5 s.
                    if n >= per * readers
                        || last.1.elapsed() > Duration::from_secs(5)
                        || Instant::now() > deadline
                    {
                        break;
                    }
                }
                let held_at = last.1.saturating_duration_since(start);
                let cpu = net.relay_cpu() - cpu0;
                // Let allocators settle, then read memory while the circuits are held.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let rss: Vec<u64> = net.relay_pids().iter().map(|&p| rss_bytes(p)).collect();
                // Circuit builds while the idle circuits are held.
                let mut builds = CircuitBench::new(5, 30, 0, 1);
                let _ = Driver::new(reader_node(net), Instant::now())
                    .run(
                        None,
                        &mut builds,
                        tokio::time::sleep(Duration::from_secs(60)),
                    )
                    .await;
                let _ = stop_tx.send(true);
                tokio::time::sleep(Duration::from_millis(100)).await;
                (
                    held_at,
                    cpu,
                    rss.iter().sum::<u64>(),
                    rss.iter().copied().max().unwrap_or(0),
                    builds.sequential_ms,
                )
            })
            .await
    });
    let n = counts.built.load(Ordering::Relaxed);
    // Every circuit is held by three relays.
    let relay_circuits = 3 * n;
    let per_circuit = rss_after.saturating_sub(rss0) as f64 / relay_circuits.max(1) as f64;
    let base = rss0 as f64 / net.relay_pids().len().max(1) as f64;
    Ok(json!({
        "circuits_held": n,
        "circuits_failed": counts.failed.load(Ordering::Relaxed),
        "relay_circuit_states": relay_circuits,
        "build_seconds": held_at.as_secs_f64(),
        "relay_rss_bytes_before": rss0,
        "relay_rss_bytes_after": rss_after,
        "relay_rss_max_bytes": max_rss,
        "rss_bytes_per_relay_circuit": per_circuit,
        "relay_rss_base_bytes": base,
        "rss_MiB_for_10000_circuits_at_one_relay": (base + per_circuit * 10_000.0) / (1 << 20) as f64,
        "relay_cpu_s_building": cpu_at,
        "hop_handshakes_per_relay_cpu_s": relay_circuits as f64 / cpu_at.max(1e-9),
        "circuit_build_median_ms_while_held": percentile(&builds, 50.0),
        "circuit_build_samples_while_held": builds.len(),
    }))
}

/// Circuits built one by one while relay 1, a directory member, sends relay 2 `STORE`s of
/// 3-byte blocks as fast as relay 2 reads them (issue 12, finding 4). With three relays every
/// circuit passes through relay 2.
fn store_flood(
    rt: &tokio::runtime::Runtime,
    net: &Network,
    dir: &Path,
) -> Result<Value, RuntimeError> {
    let text = std::fs::read_to_string(dir.join("r2").join("descriptor"))
        .map_err(|e| RuntimeError::Bench(format!("cannot read relay 2's descriptor: {e}")))?;
    let (d, _) = crate::directory::Directory::from_bootstrap(&text, wall_now());
    let target = d
        .relays()
        .next()
        .ok_or_else(|| RuntimeError::Bench("relay 2's descriptor is invalid".into()))?
        .clone();
    let target_pid = net.relay_pids().get(1).copied().unwrap_or(0);
    let cpu0 = procs::cpu_seconds(target_pid);
    let flood = flood::DhtFlood::stores(&dir.join("r1"), &target)?;
    std::thread::sleep(Duration::from_secs(2));
    let mut builds = CircuitBench::new(5, 30, 0, 1);
    let built = run_reader(rt, net, &mut builds, 120);
    let (sent, secs) = flood.stop()?;
    built?;
    let cpu = procs::cpu_seconds(target_pid) - cpu0;
    Ok(json!({
        "stores_sent": sent,
        "stores_per_s": sent as f64 / secs.max(1e-9),
        "target_cpu_percent": cpu * 100.0 / secs.max(1e-9),
        "circuit_build_median_ms": percentile(&builds.sequential_ms, 50.0),
        "circuit_build_p99_ms": percentile(&builds.sequential_ms, 99.0),
        "circuits_failed": builds.failed,
        "samples": builds.sequential_ms.len(),
    }))
}

/// The same circuit and stream measurements with and without the Tor first hop, in this
/// run: the first circuit (it opens the guard link), 20 more on the open link, and one
/// stream (a quarter of `bytes`, at most 32 MiB: Tor is the slow part).
fn tor_first_hop(
    rt: &tokio::runtime::Runtime,
    net: &Network,
    cfg: &Path,
    dir: &Path,
    bytes: u64,
) -> Result<Value, RuntimeError> {
    let file = super::config::Config::load(cfg).map_err(|e| RuntimeError::Bench(e.to_string()))?;
    if !file.tor.enabled {
        return Err(RuntimeError::Bench(format!(
            "{}: [tor] enabled is not true",
            cfg.display()
        )));
    }
    let (tor, status) =
        rt.block_on(async { Dialer::for_reader(&file.tor, &dir.join("tor"), true) })?;
    eprintln!("[bench] Tor first hop: waiting for Tor to bootstrap");
    let t0 = Instant::now();
    let limit = Duration::from_secs(file.tor.bootstrap_timeout_secs.max(1));
    rt.block_on(async {
        loop {
            match status.as_ref().map(|s| s.get().state) {
                Some("ready") | None => return Ok(()),
                Some("failed") => {
                    return Err(RuntimeError::Bench("Tor failed to bootstrap".into()));
                }
                _ => {}
            }
            if t0.elapsed() > limit {
                return Err(RuntimeError::Bench("Tor did not bootstrap in time".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })?;
    let bootstrap_s = t0.elapsed().as_secs_f64();
    let stream_bytes = (bytes / 4).min(32 << 20);
    let mut out = json!({ "bootstrap_s": bootstrap_s, "stream_bytes": stream_bytes });
    for (key, dialer) in [("direct", Dialer::Direct), ("through_tor", tor)] {
        eprintln!("[bench] Tor first hop: circuits and one stream, {key}");
        let mut circuits = CircuitBench::new(0, 21, 0, 1);
        run_reader_via(rt, net, &mut circuits, 300, dialer.clone())?;
        let ms = &circuits.sequential_ms;
        let rest: Vec<f64> = ms.iter().skip(1).copied().collect();
        let mut bulk = BulkBench::new(1, stream_bytes);
        if run_reader_via(rt, net, &mut bulk, 600, dialer)? != 0 {
            return Err(RuntimeError::Bench(format!(
                "stream {key}: {}",
                bulk.error.unwrap_or_default()
            )));
        }
        let (s, e) = bulk
            .span
            .ok_or_else(|| RuntimeError::Bench("no transfer span".into()))?;
        out[key] = json!({
            "first_circuit_ms": ms.first(),
            "circuit_median_ms": percentile(&rest, 50.0),
            "MBps": stream_bytes as f64 / e.saturating_since(s).as_secs_f64().max(1e-9) / MB,
        });
    }
    if let Some(s) = status {
        out["tor_retries"] = json!(s.get().retries);
    }
    Ok(out)
}

fn percentile(xs: &[f64], p: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * (v.len() - 1) as f64).round() as usize;
    v.get(rank.min(v.len() - 1)).copied()
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    json!({ "cpu": cpu, "cores": cores, "unix_time": wall_now().0 })
}

fn get_f(v: &Value, path: &[&str]) -> Option<f64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_f64()
}

fn print_table(r: &Value) {
    // Phases that were skipped (`--no-gateway`, `--idle-circuits 0`) print no row.
    let row = |name: &str, path: &[&str], unit: &str| {
        if let Some(x) = get_f(r, path) {
            println!("{name:<58} {x:>12.2} {unit}");
        }
    };
    println!(
        "umbra bench: {} relays, {} cores ({})",
        r["relays"], r["machine"]["cores"], r["machine"]["cpu"]
    );
    if let Some(steal) = get_f(r, &["machine", "steal_percent_whole_bench"]) {
        println!(
            "CPU stolen by the hypervisor during the bench: {steal:.1}%{}",
            if steal > 2.0 {
                " -- the machine was shared; expect slower, noisier figures"
            } else {
                ""
            }
        );
    }
    row(
        "3-hop circuit build, median (one at a time)",
        &["circuit_build", "median_ms"],
        "ms",
    );
    row(
        "3-hop circuit build, p99",
        &["circuit_build", "p99_ms"],
        "ms",
    );
    row(
        "circuits built per second (32 in flight)",
        &["circuit_build", "built_per_s_32_in_flight"],
        "/s",
    );
    row(
        "one stream through 3 hops (median of 3 runs)",
        &["bulk_1_stream", "MBps"],
        "MB/s",
    );
    row(
        "  CPU of all processes per MB carried",
        &["bulk_1_stream", "cpu_ms_per_MB"],
        "ms",
    );
    row(
        "8 streams (8 circuits) through 3 hops, together (median)",
        &["bulk_8_streams", "MBps"],
        "MB/s",
    );
    row(
        "  CPU of all processes per MB carried",
        &["bulk_8_streams", "cpu_ms_per_MB"],
        "ms",
    );
    for (site, label) in [("small", "100 x 4 KiB"), ("mib", "100 files, 1 MiB")] {
        for pass in ["cold", "cached"] {
            row(
                &format!("gateway: {label}, one after another, {pass}"),
                &["gateway", site, pass, "total_s"],
                "s",
            );
            row(
                &format!("  per file, median ({pass})"),
                &["gateway", site, pass, "median_ms"],
                "ms",
            );
        }
    }
    for (k, label) in [("direct", "direct"), ("through_tor", "Tor first hop")] {
        row(
            &format!("{label}: first circuit (opens the guard link)"),
            &["tor_first_hop", k, "first_circuit_ms"],
            "ms",
        );
        row(
            &format!("{label}: circuit build on the open link, median"),
            &["tor_first_hop", k, "circuit_median_ms"],
            "ms",
        );
        row(
            &format!("{label}: one stream"),
            &["tor_first_hop", k, "MBps"],
            "MB/s",
        );
    }
    row(
        "STOREs per second, relay 1 flooding relay 2",
        &["store_flood", "stores_per_s"],
        "/s",
    );
    row(
        "  relay 2's CPU while flooded (one core = 100)",
        &["store_flood", "target_cpu_percent"],
        "%",
    );
    row(
        "  circuit build through relay 2, median, while flooded",
        &["store_flood", "circuit_build_median_ms"],
        "ms",
    );
    row(
        "  circuit build through relay 2, p99, while flooded",
        &["store_flood", "circuit_build_p99_ms"],
        "ms",
    );
    row(
        "  circuits that failed while flooded",
        &["store_flood", "circuits_failed"],
        "",
    );
    row(
        "idle circuits held (3 relays each)",
        &["idle_circuits", "circuits_held"],
        "",
    );
    row(
        "relay RSS per idle circuit",
        &["idle_circuits", "rss_bytes_per_relay_circuit"],
        "B",
    );
    row(
        "relay RSS for 10,000 idle circuits (derived)",
        &["idle_circuits", "rss_MiB_for_10000_circuits_at_one_relay"],
        "MiB",
    );
    row(
        "hop handshakes per relay CPU-second (one core)",
        &["idle_circuits", "hop_handshakes_per_relay_cpu_s"],
        "/s",
    );
    row(
        "circuit build, median, while the idle circuits are held",
        &["idle_circuits", "circuit_build_median_ms_while_held"],
        "ms",
    );
}
