//! The processes `umbra bench` measures: relay processes started from configuration files,
//! `umbra publish` and `umbra run` for the gateway part, and their CPU time and memory read
//! from `/proc`. Children are killed and reaped when the [`Network`] is dropped.
//! Not in this module: the readers' measurements (`apps.rs`).

use crate::runtime::error::RuntimeError;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::http::Client;
use crate::directory::Directory;

/// Clock ticks per second of `/proc/PID/stat` (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// CPU seconds (user + system, all threads) process `pid` has used; 0 when unreadable.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let t = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / TICKS
}

/// (steal, total) CPU ticks of the whole machine so far (`/proc/stat`): time the hypervisor
/// gave this VM's CPUs to someone else. A bench phase with much steal ran on a machine that
/// was not all ours, and its figures are marked so.
pub fn steal_ticks() -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let Some(line) = stat.lines().next() else {
        return (0, 0);
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal guest guest_nice
    (f.get(7).copied().unwrap_or(0), f.iter().take(8).sum())
}

/// Percent of the machine's CPU time stolen between two [`steal_ticks`] readings.
pub fn steal_percent(a: (u64, u64), b: (u64, u64)) -> f64 {
    let total = b.1.saturating_sub(a.1);
    if total == 0 {
        return 0.0;
    }
    b.0.saturating_sub(a.0) as f64 * 100.0 / total as f64
}

/// Resident memory of process `pid`, in bytes; 0 when unreadable.
pub fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

fn exe() -> Result<PathBuf, RuntimeError> {
    std::env::current_exe()
        .map_err(|e| RuntimeError::Bench(format!("cannot find the umbra binary: {e}")))
}

pub fn free_port(ip: &str) -> Result<SocketAddr, RuntimeError> {
    std::net::TcpListener::bind(format!("{ip}:0"))
        .and_then(|l| l.local_addr())
        .map_err(|e| RuntimeError::Bench(format!("no free port on {ip}: {e}")))
}

/// Run `umbra ARGS` to completion within `limit`; its stdout on success.
fn run_umbra(args: &[&std::ffi::OsStr], limit: Duration) -> Result<String, RuntimeError> {
    let mut child = Command::new(exe()?)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RuntimeError::Bench(format!("cannot start umbra: {e}")))?;
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            let out = child
                .wait_with_output()
                .map_err(|e| RuntimeError::Bench(e.to_string()))?;
            if !out.status.success() {
                return Err(RuntimeError::Bench(format!(
                    "umbra {:?} failed: {}",
                    args,
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RuntimeError::Bench(format!(
                "umbra {args:?} did not finish within {limit:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_listening(addr: SocketAddr, what: &str) -> Result<(), RuntimeError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            return Err(RuntimeError::Bench(format!(
                "{what} did not start listening in time"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Relay processes on loopback and the directory that lists them.
pub struct Network {
    relays: Vec<Child>,
    addrs: Vec<SocketAddr>,
    bootstrap: PathBuf,
    directory: Arc<Directory>,
}

/// How relay 1 differs from the others (`umbra bench --limits`).
#[derive(Debug, Default)]
pub struct Tune {
    /// TOML appended to relay 1's file (a `[limits]` section).
    pub limits: String,
    /// Relay 1 keeps the default per-address CREATE rate (the others lift it).
    pub default_create_rate: bool,
    /// Relay 1 serves its dashboard and `/api/status` here.
    pub gateway: Option<SocketAddr>,
}

impl Drop for Network {
    fn drop(&mut self) {
        for c in &mut self.relays {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Network {
    /// Start `n` relays, relay `i` on 127.(60+i).0.1 so that no two share a /16.
    pub fn start(dir: &Path, n: usize, port: Option<u16>) -> Result<Network, RuntimeError> {
        Network::start_tuned(dir, n, port, &Tune::default())
    }

    /// [`Network::start`] with relay 1 set up as `tune` says.
    pub fn start_tuned(
        dir: &Path,
        n: usize,
        port: Option<u16>,
        tune: &Tune,
    ) -> Result<Network, RuntimeError> {
        if !(3..=150).contains(&n) {
            return Err(RuntimeError::Bench(
                "--relays must be between 3 and 150".into(),
            ));
        }
        let mut list = String::new();
        let mut addrs = Vec::new();
        for i in 1..=n {
            let ip = format!("127.{}.0.1", 60 + i);
            let addr = match port {
                Some(p) => format!("{ip}:{p}")
                    .parse()
                    .map_err(|e| RuntimeError::Bench(format!("{ip}:{p}: {e}")))?,
                None => free_port(&ip)?,
            };
            let config = dir.join(format!("r{i}.toml"));
            let data = dir.join(format!("r{i}"));
            // Every reader of the bench comes from 127.0.0.1 and builds hundreds of circuits
            // a second, past the per-address CREATE rate meant for one address's readers
            // (`09-relay.md#handshakes`): lifted here, as for a relay behind a busy NAT.
            let mut text = format!(
                "[relay]\nlisten = \"{addr}\"\ndata_dir = \"{}\"\n",
                data.display()
            );
            if i > 1 || !tune.default_create_rate {
                text.push_str("creates_per_sec = 100000\ncreate_burst = 100000\n");
            }
            if i == 1 {
                text.push_str(&tune.limits);
            }
            std::fs::write(&config, text).map_err(|e| RuntimeError::Bench(e.to_string()))?;
            run_umbra(
                &[
                    "relay".as_ref(),
                    "--init-only".as_ref(),
                    "--config".as_ref(),
                    config.as_os_str(),
                ],
                Duration::from_secs(30),
            )?;
            list.push_str(
                &std::fs::read_to_string(data.join("descriptor"))
                    .map_err(|e| RuntimeError::Bench(e.to_string()))?,
            );
            addrs.push(addr);
        }
        let bootstrap = dir.join("relays.txt");
        std::fs::write(&bootstrap, &list).map_err(|e| RuntimeError::Bench(e.to_string()))?;
        let (directory, _) = Directory::from_bootstrap(&list, super::wall_now());
        let mut net = Network {
            relays: Vec::new(),
            addrs: addrs.clone(),
            bootstrap,
            directory: Arc::new(directory),
        };
        for i in 1..=n {
            let mut cmd = Command::new(exe()?);
            cmd.args(["relay", "--config"])
                .arg(dir.join(format!("r{i}.toml")))
                .arg("--bootstrap")
                .arg(&net.bootstrap);
            if let (1, Some(gw)) = (i, tune.gateway) {
                cmd.arg("--gateway").arg(gw.to_string());
            }
            let child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| RuntimeError::Bench(format!("cannot start a relay: {e}")))?;
            net.relays.push(child);
        }
        for a in &addrs {
            wait_listening(*a, "a relay")?;
        }
        if let Some(gw) = tune.gateway {
            wait_listening(gw, "relay 1's dashboard")?;
        }
        // Let the relays' DHT joins finish before anything is timed.
        std::thread::sleep(Duration::from_secs(2));
        Ok(net)
    }

    /// The relays' directory.
    pub fn directory(&self) -> Arc<Directory> {
        self.directory.clone()
    }

    /// Relay `i`'s descriptor (1-based).
    pub fn relay(&self, i: usize) -> Result<crate::directory::Descriptor, RuntimeError> {
        let addr = self
            .addrs
            .get(i.wrapping_sub(1))
            .ok_or_else(|| RuntimeError::Bench(format!("no relay {i}")))?;
        self.directory
            .relays()
            .find(|d| d.addr == *addr)
            .map(|d| (**d).clone())
            .ok_or_else(|| RuntimeError::Bench(format!("relay {i} is not in the directory")))
    }

    /// The relays' process ids.
    pub fn relay_pids(&self) -> Vec<u32> {
        self.relays.iter().map(Child::id).collect()
    }

    /// CPU seconds used by all relays so far.
    pub fn relay_cpu(&self) -> f64 {
        self.relay_pids().into_iter().map(cpu_seconds).sum()
    }

    /// CPU seconds used by all relays and this process so far.
    pub fn all_cpu(&self) -> f64 {
        self.relay_cpu() + cpu_seconds(std::process::id())
    }

    /// Publish two sites of 100 files with `umbra publish`, serve them with `umbra run`, and
    /// fetch every file one after another on one keep-alive connection, twice: cold (the
    /// gateway has never seen the site) and cached.
    pub fn gateway_fetches(&self, dir: &Path) -> Result<Value, RuntimeError> {
        let mut sites = Vec::new();
        for (name, size) in [("small", 4096usize), ("mib", (1 << 20) / 100)] {
            let site = dir.join(format!("site-{name}"));
            std::fs::create_dir_all(&site).map_err(|e| RuntimeError::Bench(e.to_string()))?;
            let mut files = Vec::new();
            for k in 0..100u32 {
                let body: Vec<u8> = (0..size as u32)
                    .map(|i| (i.wrapping_mul(2_654_435_761) ^ k.wrapping_mul(97)) as u8)
                    .collect();
                let fname = format!("f{k:03}.bin");
                std::fs::write(site.join(&fname), &body)
                    .map_err(|e| RuntimeError::Bench(e.to_string()))?;
                files.push((fname, body));
            }
            // Each site needs its own key: one key is one address.
            let key = dir.join(format!("{name}.key"));
            run_umbra(
                &["keygen".as_ref(), "--out".as_ref(), key.as_os_str()],
                Duration::from_secs(30),
            )?;
            let out = run_umbra(
                &[
                    "publish".as_ref(),
                    "--bootstrap".as_ref(),
                    self.bootstrap.as_os_str(),
                    "--key".as_ref(),
                    key.as_os_str(),
                    "--data-dir".as_ref(),
                    dir.join("publisher").as_os_str(),
                    site.as_os_str(),
                ],
                Duration::from_secs(120),
            )?;
            let address = out
                .lines()
                .last()
                .map(|l| l.trim().trim_end_matches(".umbra").to_string())
                .ok_or_else(|| RuntimeError::Bench("publish printed no address".into()))?;
            sites.push((name, address, files));
        }
        let gw = free_port("127.0.0.1")?;
        let mut reader = Command::new(exe()?)
            .args(["run", "--bootstrap"])
            .arg(&self.bootstrap)
            .args(["--listen", &gw.to_string(), "--data-dir"])
            .arg(dir.join("reader"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| RuntimeError::Bench(format!("cannot start umbra run: {e}")))?;
        let result = (|| {
            wait_listening(gw, "the gateway")?;
            let mut out = json!({});
            for (name, address, files) in &sites {
                let host = format!("{address}.localhost:{}", gw.port());
                let mut client = Client::connect(gw, host)?;
                for pass in ["cold", "cached"] {
                    let start = Instant::now();
                    let mut per = Vec::new();
                    let mut first = Vec::new();
                    for (fname, body) in files {
                        let t = client.get(&format!("/{fname}"), body)?;
                        per.push(t.total.as_secs_f64() * 1e3);
                        first.push(t.first_byte.as_secs_f64() * 1e3);
                    }
                    let total = start.elapsed().as_secs_f64();
                    out[*name][pass] = json!({
                        "files": files.len(),
                        "bytes": files.iter().map(|(_, b)| b.len()).sum::<usize>(),
                        "total_s": total,
                        "median_ms": super::percentile(&per, 50.0),
                        "max_ms": super::percentile(&per, 100.0),
                        "first_file_ms": per.first(),
                        "median_first_byte_ms": super::percentile(&first, 50.0),
                    });
                }
            }
            Ok(out)
        })();
        let _ = reader.kill();
        let _ = reader.wait();
        result
    }
}
