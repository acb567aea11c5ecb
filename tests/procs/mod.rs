//! Helpers for the tests that run the real `umbra` binary (feature `runtime`): a local
//! relay network from configuration files, bounded command runs, clean-up by PID.

// Process-level helpers wait on real processes, so they read the real clock.
#![allow(clippy::disallowed_methods, dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Child processes, killed (SIGKILL) and reaped when dropped.
pub struct Procs(pub Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The binary under test.
pub fn umbra() -> Command {
    Command::new(env!("CARGO_BIN_EXE_umbra"))
}

/// A fresh, empty temporary directory for one test.
pub fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("umbra-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A free port on `ip`.
pub fn free_addr(ip: &str) -> SocketAddr {
    std::net::TcpListener::bind(format!("{ip}:0"))
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Start `n` relays, relay `i` on 127.(`net` + i).0.1 (each in its own /16), each from its
/// own configuration file; wait until all listen. Returns the processes and the bootstrap list.
pub fn start_relays(dir: &Path, n: usize, net: usize) -> (Procs, PathBuf) {
    start_relays_with(dir, n, net, None, &[])
}

/// [`start_relays`], each relay on `port` when given (relays differ by address), with extra
/// environment variables; each relay's stderr goes to `r<i>.log` in `dir`.
pub fn start_relays_with(
    dir: &Path,
    n: usize,
    net: usize,
    port: Option<u16>,
    env: &[(&str, &str)],
) -> (Procs, PathBuf) {
    let mut addrs = Vec::new();
    let mut list = String::new();
    for i in 1..=n {
        let ip = format!("127.{}.0.1", net + i);
        let addr = match port {
            Some(p) => format!("{ip}:{p}").parse().unwrap(),
            None => free_addr(&ip),
        };
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
        list.push_str(&std::fs::read_to_string(data.join("descriptor")).unwrap());
        addrs.push(addr);
    }
    let bootstrap = dir.join("relays.txt");
    std::fs::write(&bootstrap, list).unwrap();
    let mut procs = Procs(Vec::new());
    for i in 1..=n {
        let log = std::fs::File::create(dir.join(format!("r{i}.log"))).unwrap();
        let child = umbra()
            .args(["relay", "--config"])
            .arg(dir.join(format!("r{i}.toml")))
            .arg("--bootstrap")
            .arg(&bootstrap)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        procs.0.push(child);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for a in &addrs {
        while std::net::TcpStream::connect_timeout(a, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "relay on {a} did not start listening in time"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    (procs, bootstrap)
}

/// Run a command to completion within `limit`: (success, stdout, stderr).
pub fn run(cmd: &mut Command, limit: Duration) -> (bool, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            return (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("command did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
