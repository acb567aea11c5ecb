//! The `umbra` binary as a user runs it (feature `runtime`).

use std::process::Command;

fn umbra(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_umbra"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or("")
}

#[test]
fn interop_runs_every_bundled_vector() {
    let (code, out) = umbra(&["interop"]);
    assert_eq!(code, 0, "{out}");
    let last = last_line(&out);
    assert!(last.ends_with("passed, 0 failed, 475 skipped"), "{last}");
    assert!(
        out.contains("skipped 472: only the 25519 DH function is implemented (not 448)"),
        "{out}"
    );
}

#[test]
fn interop_external_file_reports_truthfully_and_fails_on_failure() {
    let (code, out) = umbra(&[
        "interop",
        "--vectors",
        "tests/data/wycheproof-x25519-sample.json",
    ]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(last_line(&out), "3 passed, 1 failed, 1 skipped");
    assert!(out.contains("curve448"), "{out}");
    let (code, out) = umbra(&["interop", "--vectors", "tests/data/noise-c-sample.json"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(last_line(&out), "3 passed, 0 failed, 1 skipped");
    let (code, out) = umbra(&["interop", "--vectors", "Cargo.toml"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not valid JSON"), "{out}");
}

#[test]
fn keygen_writes_private_files_and_never_overwrites() {
    let dir = std::env::temp_dir().join(format!("umbra-cli-keygen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("id.key");
    let k = key.to_str().unwrap();
    let (code, out) = umbra(&["keygen", "--out", k]);
    assert_eq!(code, 0, "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let (code, out) = umbra(&["keygen", "--out", k]);
    assert_ne!(code, 0, "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_names_every_command_with_an_example() {
    for cmd in [
        "interop", "keygen", "demo", "relay", "probe", "publish", "fetch", "init", "run", "status",
        "browse", "writers", "log",
    ] {
        let (code, out) = umbra(&[cmd, "--help"]);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains("Example:"),
            "{cmd} --help has no example:\n{out}"
        );
    }
}

#[test]
fn demo_runs_a_local_network_echoes_through_three_hops_and_publishes_the_site() {
    let (code, out) = umbra(&[
        "demo",
        "--relays",
        "5",
        "--echo",
        "300000",
        "--port",
        "0",
        "--exit-after",
        "0",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("passed, 0 failed"), "{out}");
    assert!(out.contains("through 3 hops"), "{out}");
    assert!(out.contains("echoed 300000 bytes intact"), "{out}");
    assert!(out.contains("published the sample site"), "{out}");
    assert!(out.contains(".localhost:"), "{out}");
    assert!(out.contains("ready"), "{out}");
}

#[test]
fn init_writes_keys_and_a_config_that_parses_and_never_overwrites() {
    let dir = std::env::temp_dir().join(format!("umbra-init-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let (code, out) = umbra(&["init", "--data-dir", d]);
    assert_eq!(code, 0, "{out}");
    for f in [
        "umbra.toml",
        "site.key",
        "identity.key",
        "link.key",
        "onion.key",
    ] {
        assert!(dir.join(f).exists(), "{f} missing:\n{out}");
    }
    let toml = std::fs::read_to_string(dir.join("umbra.toml")).unwrap();
    assert!(toml.contains("# listen = \"127.0.0.1:8470\""), "{toml}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the data directory is readable by others");
    }
    // The written file is accepted by the commands that read it.
    let (code, out) = umbra(&[
        "relay",
        "--config",
        dir.join("umbra.toml").to_str().unwrap(),
        "--listen",
        "127.0.0.1:1",
        "--init-only",
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = umbra(&["init", "--data-dir", d]);
    assert_ne!(code, 0, "init overwrote: {out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[allow(clippy::disallowed_methods)] // waits on a real process, so it reads the real clock
fn a_gateway_on_a_non_loopback_address_is_refused() {
    let dir = std::env::temp_dir().join(format!("umbra-loopback-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let (code, out) = umbra(&[
        "relay",
        "--data-dir",
        d,
        "--listen",
        "127.0.0.1:1",
        "--init-only",
    ]);
    assert_eq!(code, 0, "{out}");
    let bootstrap = dir.join("descriptor");
    // Bounded: a gateway that started anyway would serve until killed.
    let mut child = Command::new(env!("CARGO_BIN_EXE_umbra"))
        .args(["run", "--bootstrap"])
        .arg(&bootstrap)
        .args(["--data-dir", d, "--listen", "0.0.0.0:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
    let status = status.expect("umbra run served a gateway on 0.0.0.0 instead of refusing");
    assert!(!status.success(), "{err}");
    assert!(err.contains("loopback"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn status_without_a_node_says_what_to_start() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, out) = umbra(&["status", "--gateway", &format!("127.0.0.1:{port}")]);
    assert_ne!(code, 0);
    assert!(out.contains("umbra run"), "{out}");
}

/// `umbra bench --limits` at a small size (400 stalled circuits; the full run is documented
/// in `docs/performance.md#limits`): both CREATE floods and the stalled readers ran, and
/// every figure is in the table and the JSON. How the figures compare with their targets is
/// the bench's to show, not this test's.
#[test]
fn bench_limits_floods_a_relay_and_stalls_readers_and_writes_every_figure() {
    let json = std::env::temp_dir().join(format!("umbra-bench-limits-{}.json", std::process::id()));
    let (code, out) = umbra(&[
        "bench",
        "--limits",
        "--idle-circuits",
        "400",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("(b) CREATE flood, per-address rate on"),
        "{out}"
    );
    assert!(out.contains("peak over the baseline"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let l = &v["limits"];
    assert!(l["handshake_cost_us"].as_f64().unwrap() > 0.0, "{l}");
    for k in ["create_flood", "create_flood_rate_lifted"] {
        let f = &l[k];
        assert!(f["flood_sent_per_s"].as_f64().unwrap() > 0.0, "{f}");
        assert!(f["honest_built_under_flood"].as_u64().unwrap() > 0, "{f}");
        assert!(f["relay_cpu_percent"].as_f64().is_some(), "{f}");
    }
    // With the rate on, the flood is refused for it; lifted, the queue refuses it.
    assert!(
        l["create_flood"]["refused_rate"].as_u64().unwrap() > 0,
        "{l}"
    );
    let s = &l["stalled_readers"];
    assert_eq!(s["circuits"], 400, "{s}");
    assert!(s["rss_peak_bytes"].as_u64().unwrap() > 0, "{s}");
}

/// `umbra bench` end to end at a small size (the full run is `benches/compare-tor.sh`): every
/// figure the table and the JSON promise is present and plausible.
#[test]
fn bench_measures_a_local_network_and_writes_every_figure_as_json() {
    let json = std::env::temp_dir().join(format!("umbra-bench-test-{}.json", std::process::id()));
    let (code, out) = umbra(&[
        "bench",
        "--relays",
        "5",
        "--bulk-mib",
        "2",
        "--idle-circuits",
        "120",
        "--store-flood",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("3-hop circuit build, median"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let f = |path: &[&str]| {
        let mut cur = &v;
        for p in path {
            cur = &cur[*p];
        }
        cur.as_f64()
            .unwrap_or_else(|| panic!("{path:?} missing in {v}"))
    };
    assert!(f(&["circuit_build", "median_ms"]) > 0.0);
    assert_eq!(f(&["circuit_build", "samples"]), 50.0);
    assert_eq!(f(&["circuit_build", "failed"]), 0.0);
    for k in ["bulk_1_stream", "bulk_8_streams"] {
        assert!(f(&[k, "MBps"]) > 0.0, "{k}");
        assert!(f(&[k, "cpu_ms_per_MB"]) > 0.0, "{k}");
    }
    for site in ["small", "mib"] {
        for pass in ["cold", "cached"] {
            assert_eq!(f(&["gateway", site, pass, "files"]), 100.0);
            assert!(f(&["gateway", site, pass, "total_s"]) > 0.0);
        }
    }
    // Relay 1 flooded relay 2 with STOREs (issue 12, finding 4): circuits still built.
    assert!(f(&["store_flood", "stores_sent"]) > 0.0, "{v}");
    assert_eq!(f(&["store_flood", "samples"]), 30.0, "{v}");
    assert_eq!(f(&["store_flood", "circuits_failed"]), 0.0, "{v}");
    assert!(f(&["idle_circuits", "circuits_held"]) >= 100.0, "{v}");
    assert!(f(&["idle_circuits", "rss_bytes_per_relay_circuit"]) >= 0.0);
    assert!(
        f(&["idle_circuits", "relay_rss_bytes_after"]) > 0.0,
        "RSS was not read"
    );
    assert_eq!(f(&["idle_circuits", "circuits_failed"]), 0.0);
    assert!(f(&["idle_circuits", "hop_handshakes_per_relay_cpu_s"]) > 0.0);
}

/// Issue 14 item 3: `[relay] family_key` puts the relay in its operator's family: the
/// descriptor names the family's key and carries its certificate, and verifies.
#[test]
#[allow(clippy::disallowed_methods)] // the descriptor is signed for the real clock
fn a_relay_with_a_family_key_declares_its_family() {
    let dir = std::env::temp_dir().join(format!("umbra-family-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("family.key");
    let (code, out) = umbra(&["keygen", "--out", key.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let config = dir.join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "[relay]\nlisten = \"127.0.0.1:4999\"\ndata_dir = \"{}\"\nfamily_key = \"{}\"\n",
            dir.join("r").display(),
            key.display()
        ),
    )
    .unwrap();
    let (code, out) = umbra(&["relay", "--init-only", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let line = std::fs::read_to_string(dir.join("r/descriptor")).unwrap();
    let bytes = umbra::wire::hex::decode(line.trim()).unwrap();
    let now = umbra::time::WallTime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    let d = umbra::directory::parse(&bytes)
        .unwrap()
        .verify(now)
        .unwrap();
    let family = umbra::crypto::keystore::read_identity(&key).unwrap();
    assert_eq!(d.descriptor().family, family.public().to_bytes());
    assert!(d.descriptor().family_cert.is_some());
    let _ = std::fs::remove_dir_all(&dir);
}
