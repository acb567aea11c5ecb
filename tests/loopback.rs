//! Tier 5: real processes on loopback (`protocol-spec/09-relay.md`). Five `umbra relay`
//! processes and an `umbra probe` reader build a 3-hop circuit over real TCP and echo
//! 10 MiB, checking every byte. Every wait is bounded; every process is stopped by PID.

// A process-level test: it waits on real processes, so it reads the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{Procs, free_addr, tempdir};
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn umbra() -> Command {
    Command::new(env!("CARGO_BIN_EXE_umbra"))
}

fn wait_listening(addr: SocketAddr, deadline: Instant) {
    while Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("relay on {addr} did not start listening in time");
}

fn start_relays(dir: &Path, n: usize) -> (Procs, PathBuf) {
    let mut addrs = Vec::new();
    let mut list = String::new();
    for i in 1..=n {
        let addr = free_addr(&format!("127.{i}.0.1"));
        // Each relay runs from its own configuration file.
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
        let out = umbra()
            .args(["relay", "--init-only", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        list.push_str(&std::fs::read_to_string(dir.join(format!("r{i}/descriptor"))).unwrap());
        addrs.push(addr);
    }
    let bootstrap = dir.join("relays.txt");
    std::fs::write(&bootstrap, list).unwrap();
    let mut procs = Procs(Vec::new());
    for i in 0..addrs.len() {
        let child = umbra()
            .args(["relay", "--config"])
            .arg(dir.join(format!("r{}.toml", i + 1)))
            .arg("--bootstrap")
            .arg(&bootstrap)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        procs.0.push(child);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for a in &addrs {
        wait_listening(*a, deadline);
    }
    (procs, bootstrap)
}

#[test]
fn five_relay_processes_echo_ten_mib_through_three_hops() {
    let dir = tempdir("loopback");
    let (_relays, bootstrap) = start_relays(&dir, 5);
    let mut probe = umbra()
        .args([
            "probe",
            "--echo",
            "10485760",
            "--timeout",
            "90",
            "--bootstrap",
        ])
        .arg(&bootstrap)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = probe.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = probe.kill();
            panic!("probe did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    let mut err = String::new();
    probe
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    probe
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    eprintln!("{out}{err}");
    assert!(status.success(), "probe failed:\n{out}\n{err}");
    assert!(out.contains("through 3 hops"), "{out}");
    assert!(out.contains("echoed 10485760 bytes intact"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn probe_with_an_unreachable_guard_set_fails_cleanly() {
    // A bootstrap list whose relays are not running: the probe must fail with a message,
    // not hang or panic.
    let dir = tempdir("loopback-dead");
    let addr = free_addr("127.9.0.1");
    let out = umbra()
        .args(["relay", "--init-only", "--data-dir"])
        .arg(dir.join("r"))
        .args(["--listen", &addr.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = umbra()
        .args(["probe", "--echo", "1000", "--timeout", "20", "--bootstrap"])
        .arg(dir.join("r/descriptor"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FAILED"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
