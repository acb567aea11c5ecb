//! The reader's first hop through real Tor (feature `tor`): a private C tor network on
//! loopback (`../shared/bench/tor-localnet/setup.sh`: 3 authorities, 5 relays, Debian's
//! `tor`), Umbra relays beside it, and readers whose guard links are Tor streams.
//!
//! Checks, with every wait bounded and every process stopped by PID:
//! - `umbra probe` with `[tor]` builds a 3-hop Umbra circuit and echoes 1 MB intact;
//! - `umbra run` with `[tor]` serves a published site through its gateway, byte-exact;
//! - the guard's own record: every link Umbra relays accepted from outside the Umbra
//!   network came from a socket owned by a Tor exit process, none from the reader's.
//!
//! `scripts/test` (which `.ci/run` calls) runs it inside `unshare -n` (a namespace with only
//! loopback). It fails, and says what to install, when `tor` is missing.

#![cfg(feature = "tor")]
#![allow(clippy::disallowed_methods)]

mod procs;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use procs::{
    Procs, free_addr, publish_site, request, run, start_relays_with, status, tempdir, umbra,
    wait_listening,
};

/// First port of the private Tor network (its web ports are BASE+400 and BASE+401).
const BASE: u16 = 16000;

struct TorNet {
    dir: PathBuf,
    scripts: PathBuf,
}

impl Drop for TorNet {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(self.scripts.join("teardown.sh"))
            .env("TORNET_DIR", &self.dir)
            .status();
    }
}

impl TorNet {
    fn pids(&self, prefix: &str) -> Vec<u32> {
        std::fs::read_to_string(self.dir.join("pids"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(role, _)| role.starts_with(prefix))
            .filter_map(|(_, pid)| pid.trim().parse().ok())
            .collect()
    }

    fn roles(&self) -> Vec<String> {
        let mut r: Vec<String> = (0..3).map(|i| format!("auth{i}")).collect();
        r.extend((0..5).map(|i| format!("relay{i}")));
        r
    }

    /// Wait until every authority and relay holds a consensus listing all 8 (exits refuse
    /// streams from relays they do not know yet: the shared reference's pitfall).
    fn wait_full_consensus(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let ready = self.roles().iter().all(|r| {
                std::fs::read_to_string(self.dir.join(r).join("cached-microdesc-consensus"))
                    .map(|c| c.lines().filter(|l| l.starts_with("r ")).count() >= 8)
                    .unwrap_or(false)
            });
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Tor relays did not all get the full consensus within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `[tor]` for this network, from the files setup.sh left.
    fn umbra_toml(&self, state: &Path) -> String {
        let read = |p: PathBuf| std::fs::read_to_string(&p).unwrap_or_default();
        let second = |p: PathBuf| {
            read(p)
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string()
        };
        let mut auths = Vec::new();
        for i in 0..3 {
            let cert = read(self.dir.join(format!("auth{i}/keys/authority_certificate")));
            let v3 = cert
                .lines()
                .find_map(|l| l.strip_prefix("fingerprint "))
                .expect("authority fingerprint")
                .trim()
                .to_string();
            auths.push(format!("\"{v3}\""));
        }
        let mut t = format!(
            "[tor]\nenabled = true\nbootstrap_timeout_secs = 180\nconnect_attempts = 10\n\
             state_dir = \"{}\"\n\n[tor.network]\nauthorities = [{}]\nallow_local_addrs = true\n\
             ipv4_subnet_family_prefix = 33\nipv6_subnet_family_prefix = 129\n",
            state.display(),
            auths.join(", ")
        );
        for r in self.roles() {
            let d = self.dir.join(&r);
            let orport = read(d.join("torrc"))
                .lines()
                .find_map(|l| l.strip_prefix("ORPort "))
                .expect("ORPort line")
                .trim()
                .to_string();
            t.push_str(&format!(
                "\n[[tor.network.fallbacks]]\nrsa_identity = \"{}\"\ned_identity = \"{}\"\norport = \"{orport}\"\n",
                second(d.join("fingerprint")),
                second(d.join("fingerprint-ed25519")),
            ));
        }
        t
    }
}

fn shared_bench() -> PathBuf {
    std::env::var_os("TORNET_BENCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/tor-localnet")
        })
}

fn start_tor(dir: &Path) -> TorNet {
    for tool in ["tor", "tor-gencert"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            found,
            "`{tool}` is not installed: this test needs Debian's tor package \
             (apt-get install -y tor; `bash scripts/test` installs it)"
        );
    }
    let scripts = shared_bench();
    assert!(
        scripts.join("setup.sh").exists(),
        "no tor-localnet scripts at {} (set TORNET_BENCH)",
        scripts.display()
    );
    let net = TorNet {
        dir: dir.to_path_buf(),
        scripts: scripts.clone(),
    };
    let (ok, _, err) = run(
        Command::new("bash")
            .arg(scripts.join("setup.sh"))
            .env("TORNET_DIR", dir)
            .env("TORNET_BASE_PORT", BASE.to_string())
            .env("TORNET_STAGE2", "")
            .env("TORNET_OWNER_PID", std::process::id().to_string()),
        Duration::from_secs(300),
    );
    assert!(ok, "setup.sh failed: {err}");
    net
}

/// The local ports of TCP sockets on 127.0.0.1 that `pid` owns (from /proc).
fn local_ports_of(pid: u32) -> BTreeSet<u16> {
    let mut inodes = BTreeSet::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let t = target.to_string_lossy().into_owned();
                if let Some(i) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    inodes.insert(i.to_string());
                }
            }
        }
    }
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let mut ports = BTreeSet::new();
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 9 && inodes.contains(f[9]) {
            if let Some((_, port)) = f[1].split_once(':') {
                if let Ok(p) = u16::from_str_radix(port, 16) {
                    ports.insert(p);
                }
            }
        }
    }
    ports
}

/// Peer addresses the Umbra relays logged as accepted links.
fn accepted_peers(dir: &Path, relays: usize) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for i in 1..=relays {
        let log = std::fs::read_to_string(dir.join(format!("r{i}.log"))).unwrap_or_default();
        for l in log.lines() {
            if let Some((_, a)) = l.split_once("link accepted from ") {
                if let Ok(a) = a.trim().parse() {
                    out.push(a);
                }
            }
        }
    }
    out
}

#[test]
fn a_reader_reaches_its_guard_through_tor_and_moves_data_intact() {
    let dir = tempdir("tor-first-hop");
    let tor = start_tor(&dir.join("tornet"));
    let t0 = Instant::now();
    tor.wait_full_consensus(Duration::from_secs(150));
    eprintln!(
        "tor network ready {:.1} s after setup.sh",
        t0.elapsed().as_secs_f64()
    );

    // Umbra relays on the port the Tor exits accept, each on its own 127.N.0.1.
    const N: usize = 5;
    let (relays, bootstrap) = start_relays_with(
        &dir,
        N,
        90,
        Some(BASE + 400),
        &[("UMBRA_LOG", "1"), ("UMBRA_NO_REDACT", "1")],
    );
    let cfg = dir.join("umbra.toml");
    std::fs::write(&cfg, tor.umbra_toml(&dir.join("arti"))).unwrap();

    // Direct first, for the cost comparison, then through Tor.
    let (ok, direct, err) = run(
        umbra()
            .args(["probe", "--echo", "1000000", "--bootstrap"])
            .arg(&bootstrap),
        Duration::from_secs(60),
    );
    assert!(ok, "direct probe: {direct}{err}");
    let (ok, out, err) = run(
        umbra()
            .args([
                "probe",
                "--echo",
                "1000000",
                "--timeout",
                "240",
                "--bootstrap",
            ])
            .arg(&bootstrap)
            .arg("--config")
            .arg(&cfg),
        Duration::from_secs(300),
    );
    assert!(ok, "probe through Tor failed:\n{out}\n{err}");
    assert!(out.contains("echoed 1000000 bytes intact"), "{out}");
    assert!(out.contains("through 3 hops"), "{out}");
    assert!(
        out.contains("guard link(s) through Tor") && !out.contains(": 0 guard link(s)"),
        "{out}"
    );
    assert!(err.contains("Tor bootstrap 100%"), "{err}");
    eprintln!("direct:\n{direct}through Tor:\n{out}");

    // The bench's variant: the same measurements with and without the Tor first hop.
    let json = dir.join("bench.json");
    let (ok, table, err) = run(
        umbra()
            .args([
                "bench",
                "--relays",
                "5",
                "--bulk-mib",
                "8",
                "--idle-circuits",
                "0",
            ])
            .args(["--no-gateway", "--relay-port", &(BASE + 401).to_string()])
            .arg("--tor-first-hop")
            .arg(&cfg)
            .arg("--json")
            .arg(&json),
        Duration::from_secs(400),
    );
    assert!(ok, "bench --tor-first-hop:\n{table}\n{err}");
    eprintln!("{table}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for k in ["direct", "through_tor"] {
        for f in ["first_circuit_ms", "circuit_median_ms", "MBps"] {
            assert!(
                v["tor_first_hop"][k][f].as_f64().is_some_and(|x| x > 0.0),
                "{k}.{f} missing: {v}"
            );
        }
    }

    // A site published directly, read by a reader whose guard links go through Tor.
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    let page: Vec<u8> = (0..150_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(
        site.join("index.html"),
        b"<!doctype html><p>through tor</p>",
    )
    .unwrap();
    std::fs::write(site.join("data.bin"), &page).unwrap();
    let label = publish_site(&dir, &bootstrap, &site);
    let gw = free_addr("127.0.0.1");
    let run_log = std::fs::File::create(dir.join("run.log")).unwrap();
    let reader = umbra()
        .args(["run", "--bootstrap"])
        .arg(&bootstrap)
        .args(["--listen", &gw.to_string(), "--data-dir"])
        .arg(dir.join("reader"))
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(run_log)
        .spawn()
        .unwrap();
    let reader_pid = reader.id();
    let _reader = Procs(vec![reader]);
    wait_listening(gw, "the gateway");
    // The gateway gives a site a minute; a young private Tor network can take about that long
    // to hand a new client a usable directory (CI saw 57 s). Wait for the reader's own report
    // that Tor is ready (bounded by its bootstrap_timeout_secs) so the minute is the fetch's.
    let t0 = Instant::now();
    loop {
        let tor = status(gw)["tor"].clone();
        match tor["state"].as_str() {
            Some("ready") => break,
            Some("failed") => panic!("the reader's Tor bootstrap failed: {tor}"),
            _ if t0.elapsed() > Duration::from_secs(200) => {
                panic!("the reader's Tor did not bootstrap within 200 s: {tor}")
            }
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
    eprintln!(
        "reader's Tor ready {:.1} s after start",
        t0.elapsed().as_secs_f64()
    );
    let host = format!("{label}.localhost:{}", gw.port());
    let r = request(gw, "GET", "/data.bin", &host, &[]);
    let (status, body) = (r.status, r.body);
    let log = std::fs::read_to_string(dir.join("run.log")).unwrap_or_default();
    assert_eq!(status, 200, "gateway through Tor: {log}");
    assert!(
        body == page,
        "the site's file arrived altered ({} bytes)",
        body.len()
    );
    let r = request(
        gw,
        "GET",
        "/api/status",
        &format!("localhost:{}", gw.port()),
        &[],
    );
    let status_json = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        status_json.contains("\"tor\":{") && status_json.contains("\"state\":\"ready\""),
        "{status_json}"
    );

    // The guard's record: links from outside the Umbra relays came from Tor exits.
    let exits: Vec<u32> = tor
        .pids("relay0")
        .into_iter()
        .chain(tor.pids("relay1"))
        .collect();
    assert_eq!(exits.len(), 2, "the two Tor exits' PIDs");
    let exit_ports: BTreeSet<u16> = exits.iter().flat_map(|&p| local_ports_of(p)).collect();
    let reader_ports = local_ports_of(reader_pid);
    let umbra_ports: BTreeSet<u16> = relays
        .0
        .iter()
        .flat_map(|c| local_ports_of(c.id()))
        .collect();
    let peers = accepted_peers(&dir, N);
    let live: Vec<&SocketAddr> = peers
        .iter()
        .filter(|p| !umbra_ports.contains(&p.port()))
        .filter(|p| exit_ports.contains(&p.port()) || reader_ports.contains(&p.port()))
        .collect();
    assert!(
        live.iter().any(|p| exit_ports.contains(&p.port())),
        "no open guard link from a Tor exit; accepted {peers:?}, exit ports {exit_ports:?}"
    );
    assert!(
        !live.iter().any(|p| reader_ports.contains(&p.port())),
        "a guard link came straight from the reader: {live:?}"
    );
    drop(relays);
}
