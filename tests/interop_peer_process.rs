//! `umbra interop --peer` against a real `umbra relay` process (`interop/README.md#live-cases`):
//! every live case passes, each cites a spec section that exists, and the JSON report says
//! what the text says.

#![allow(clippy::disallowed_methods)]

mod procs;

use std::time::Duration;

use procs::{free_addr, relay_listen, run, spawn_relays, start_relays, tempdir, umbra};

#[test]
fn every_live_case_passes_against_umbra_relay_and_cites_its_section() {
    // Relay 1 runs; relay 2 only exists in relay 1's directory: its keys let the runner
    // speak as a listed relay (`--as-relay`), and no process answers for it.
    let dir = tempdir("interop-peer");
    let mut list = String::new();
    for i in 1..=2 {
        let addr = free_addr(&format!("127.61.0.{i}"));
        let config = dir.join(format!("r{i}.toml"));
        let data = dir.join(format!("r{i}"));
        std::fs::write(
            &config,
            format!(
                "[relay]\nlisten = \"{addr}\"\ndata_dir = \"{}\"\n",
                data.display()
            ),
        )
        .unwrap();
        let (ok, out, err) = run(
            umbra()
                .args(["relay", "--init-only", "--config"])
                .arg(&config),
            Duration::from_secs(30),
        );
        assert!(ok, "{out}\n{err}");
        list.push_str(&std::fs::read_to_string(data.join("descriptor")).unwrap());
    }
    let bootstrap = dir.join("relays.txt");
    std::fs::write(&bootstrap, list).unwrap();
    let addr = relay_listen(&dir, 1);
    let _relay = spawn_relays(&dir, &[addr], &bootstrap, &[]);
    let report = dir.join("report.json");
    let (ok, out, err) = run(
        umbra()
            .args(["interop", "--peer", &addr.to_string(), "--descriptor"])
            .arg(dir.join("r1").join("descriptor"))
            .arg("--as-relay")
            .arg(dir.join("r2"))
            .arg("--json")
            .arg(&report),
        Duration::from_secs(240),
    );
    assert!(ok, "{out}\n{err}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let cases = v["cases"].as_array().unwrap();
    let n = cases.len();
    assert!(n >= 100, "{n} cases");
    assert_eq!(
        out.lines().last().unwrap(),
        format!("{n} passed, 0 failed, 0 skipped"),
        "{out}"
    );
    assert_eq!(v["passed"], n);
    for c in cases {
        assert_eq!(c["status"], "passed", "{c}");
        // Each case cites a section of protocol-spec/ that exists.
        let spec = c["spec"].as_str().unwrap();
        let (file, anchor) = spec.split_once('#').unwrap();
        let text = std::fs::read_to_string(format!("protocol-spec/{file}"))
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        let headed = text.lines().any(|l| {
            l.strip_prefix("## ").is_some_and(|h| {
                h.to_lowercase().replace(' ', "-").replace(['`', ','], "") == anchor
            })
        });
        assert!(
            headed,
            "{} cites {spec}, which has no such section",
            c["id"]
        );
    }
    // Filtering by prefix runs only those cases.
    let (ok, out, _) = run(
        umbra()
            .args(["interop", "--peer", &addr.to_string(), "--descriptor"])
            .arg(dir.join("r1").join("descriptor"))
            .args(["--only", "streams."]),
        Duration::from_secs(120),
    );
    assert!(ok, "{out}");
    assert!(out.lines().all(|l| !l.starts_with("  ok   link.")), "{out}");
    assert!(
        out.lines()
            .last()
            .unwrap()
            .ends_with("passed, 0 failed, 0 skipped")
    );
    // Without --as-relay, the cases that speak as a listed relay are skipped, saying why.
    let (ok, out, _) = run(
        umbra()
            .args(["interop", "--peer", &addr.to_string(), "--descriptor"])
            .arg(dir.join("r1").join("descriptor"))
            .args(["--only", "relay."]),
        Duration::from_secs(120),
    );
    assert!(ok, "{out}");
    assert!(out.contains("skip relay.find-node"), "{out}");
    assert!(out.contains("needs --as-relay"), "{out}");
    assert_eq!(
        out.lines().last().unwrap(),
        "1 passed, 0 failed, 17 skipped",
        "{out}"
    );
}

#[test]
fn a_peer_that_is_not_the_descriptors_relay_fails_every_case_that_needs_it() {
    // The descriptor of one relay, the address of another: the link handshake's binding
    // check fails, so the run fails (exit 1) and says why.
    let dir = tempdir("interop-peer-wrong");
    let (_relays, _bootstrap) = start_relays(&dir, 2, 62);
    let other = relay_listen(&dir, 2);
    let (ok, out, _) = run(
        umbra()
            .args(["interop", "--peer", &other.to_string(), "--descriptor"])
            .arg(dir.join("r1").join("descriptor"))
            .args(["--only", "cells.unknown-command-on-id-0"]),
        Duration::from_secs(60),
    );
    assert!(!ok, "{out}");
    assert!(out.contains("FAIL cells.unknown-command-on-id-0"), "{out}");
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with("0 passed, 1 failed"),
        "{out}"
    );
}
