//! Limits in the real binary (`protocol-spec/09-relay.md#bandwidth`, `#accounting`,
//! `#handshakes`): bad settings are refused with their key named, and each limit applies.
//! How fast nodes run against their limits is measured by `umbra bench --limits`, not here;
//! these tests only check lower bounds and counters.

#![allow(clippy::disallowed_methods)]

mod procs;

use std::path::Path;
use std::time::{Duration, Instant};

use procs::{directory_of, free_addr, probe, run, start_relays_extra, status, tempdir, umbra};

/// `umbra relay --init-only` with `limits` as its `[limits]` section and `flags`: its exit
/// code and stderr.
fn relay_init(dir: &Path, limits: &str, flags: &[&str]) -> (Option<i32>, String) {
    let config = dir.join("bad.toml");
    std::fs::write(
        &config,
        format!(
            "[relay]\nlisten = \"127.0.0.1:1\"\ndata_dir = \"{}\"\n[limits]\n{limits}\n",
            dir.join("r").display()
        ),
    )
    .unwrap();
    let out = umbra()
        .args(["relay", "--init-only", "--config"])
        .arg(&config)
        .args(flags)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_limits_are_refused_with_the_key_named() {
    let dir = tempdir("limits-bad");
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "relayed = \"4 MB/z\"",
            &[],
            &["[limits] relayed", "unknown unit \"MB/z\""],
        ),
        ("rate = \"-1 MiB/s\"", &[], &["[limits] rate", "negative"]),
        (
            "dht = \"0 KiB/s\"",
            &[],
            &["[limits] dht", "zero would stop"],
        ),
        (
            "seeding = \"1 MiB\"",
            &[],
            &["[limits] seeding", "add \"/s\""],
        ),
        (
            "monthly = \"5 GiB/s\"",
            &[],
            &["[limits] monthly", "drop \"/s\""],
        ),
        (
            "monthly = \"0 GiB\"",
            &[],
            &["[limits] monthly", "zero would stop"],
        ),
        (
            "monthly = \"9 GiB\"\nperiod_start_day = 30",
            &[],
            &["period_start_day", "from 1 to 28"],
        ),
        (
            "cpu_percent = 0",
            &[],
            &["[limits] cpu_percent", "from 1 to 100"],
        ),
        (
            "memory = \"1 MiB\"",
            &[],
            &["[limits] memory", "at least 16 MiB"],
        ),
        (
            "burst = \"1 KiB\"",
            &[],
            &["[limits] burst", "at least 64 KiB"],
        ),
        ("", &["--relayed", "fast"], &["--relayed", "not a number"]),
        (
            "",
            &["--cpu-percent", "150"],
            &["--cpu-percent", "from 1 to 100"],
        ),
        (
            "relayed = \"1 MiB/s\"",
            &["--relayed", "0 B/s"],
            &["--relayed", "zero"],
        ),
        ("ratee = \"1 MiB/s\"", &[], &["ratee"]),
    ];
    for (limits, flags, expect) in cases {
        let (code, err) = relay_init(&dir, limits, flags);
        assert_eq!(code, Some(2), "{limits} {flags:?}: {err}");
        for e in *expect {
            assert!(err.contains(e), "{limits} {flags:?}: {err:?} lacks {e:?}");
        }
    }
    // And good ones pass, as flags of `umbra run` too (checked before it connects anywhere).
    let (code, err) = relay_init(&dir, "relayed = \"4 MiB/s\"\nmonthly = \"500 GiB\"", &[]);
    assert_eq!(code, Some(0), "{err}");
    let (ok, _, err) = run(
        umbra().args(["run", "--bootstrap", "/nonexistent", "--memory", "8 MiB"]),
        Duration::from_secs(20),
    );
    assert!(
        !ok && err.contains("--memory") && err.contains("16 MiB"),
        "{err}"
    );
}

#[test]
fn a_relayed_limit_slows_circuits_and_loses_nothing() {
    // Each relay may carry 128 KiB/s each way; a 1 MiB echo crosses each relay twice in each
    // direction (out and back).
    procs::echo_is_held_back("limits-relayed", 210, "[limits]\nrelayed = \"128 KiB/s\"\n");
}

#[test]
fn a_monthly_quota_is_advertised_paced_counted_and_kept_across_a_restart() {
    let dir = tempdir("limits-monthly");
    let (mut relays, bootstrap) =
        start_relays_extra(&dir, 3, 220, (None, &[]), "[limits]\nmonthly = \"1 TiB\"\n");
    // The descriptor advertises at most the quota's mean rate: 1 TiB a month is 408 KiB/s
    // (the default advertisement is 10,000).
    for d in directory_of(&bootstrap).relays() {
        assert!(d.bandwidth <= 408, "advertised {} KiB/s", d.bandwidth);
    }
    // Relay 1 again, with its dashboard: the period, the pace, the bytes counted.
    let mut first = relays.0.remove(0);
    let _ = first.kill();
    let _ = first.wait();
    let gw = free_addr("127.0.0.1");
    let r1 = procs::start_relay_with_gateway(&dir, 1, &bootstrap, gw);
    let s = status(gw);
    let a = &s["limits"]["accounting"];
    assert_eq!(a["quota"], 1u64 << 40, "{s}");
    assert!(a["pace_bytes_per_sec"].as_u64().unwrap() > 0, "{a}");
    // Traffic through relay 1, counted at its next pace (every minute).
    let out = probe(&bootstrap, 200_000);
    assert!(out.contains("intact"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(90);
    let used = loop {
        let used = status(gw)["limits"]["accounting"]["used_in"]
            .as_u64()
            .unwrap();
        if used > 0 || Instant::now() > deadline {
            break used;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    assert!(used > 0, "nothing counted in 90 s");
    // Killed (no chance to save on the way out) and started again: the count goes on.
    drop(r1);
    let gw2 = free_addr("127.0.0.1");
    let _r1 = procs::start_relay_with_gateway(&dir, 1, &bootstrap, gw2);
    let again = status(gw2)["limits"]["accounting"]["used_in"]
        .as_u64()
        .unwrap();
    assert!(
        again >= used,
        "after a restart {again} < {used}: the period was forgotten"
    );
    // `/metrics` carries it.
    let m = procs::request(gw2, "GET", "/metrics", &gw2.to_string(), &[]);
    let m = String::from_utf8_lossy(&m.body).into_owned();
    assert!(
        m.contains("umbra_accounting_quota_bytes 1099511627776"),
        "{m}"
    );
    assert!(
        m.contains("umbra_limited_bytes_total{class=\"relayed\",direction=\"in\"}"),
        "{m}"
    );
    // `umbra status` prints it.
    let (ok, out, err) = run(
        umbra().args(["status", "--gateway", &gw2.to_string()]),
        Duration::from_secs(20),
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("accounting:") && out.contains("1024.0 GiB"),
        "{out}"
    );
    assert!(
        out.contains("limits:") && out.contains("handshakes:"),
        "{out}"
    );
}
