//! Tier 5: real processes on loopback (`protocol-spec/09-relay.md`). Five `umbra relay`
//! processes and an `umbra probe` reader build a 3-hop circuit over real TCP and echo
//! 10 MiB, checking every byte. Every wait is bounded; every process is stopped by PID.

// A process-level test: it waits on real processes, so it reads the real clock.
#![allow(clippy::disallowed_methods)]

mod procs;

use procs::{free_addr, start_relays, tempdir, umbra};
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn five_relay_processes_echo_ten_mib_through_three_hops() {
    let dir = tempdir("loopback");
    let (_relays, bootstrap) = start_relays(&dir, 5, 0);
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
