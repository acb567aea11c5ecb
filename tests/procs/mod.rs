//! Helpers for the tests that run the real `umbra` binary (feature `runtime`): a local
//! relay network from configuration files, bounded command runs, clean-up by PID.

// Process-level helpers wait on real processes, so they read the real clock.
#![allow(clippy::disallowed_methods, dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
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
    start_relays_extra(dir, n, net, (port, env), "")
}

/// [`start_relays_with`], with `extra` appended to each relay's configuration file.
pub fn start_relays_extra(
    dir: &Path,
    n: usize,
    net: usize,
    (port, env): (Option<u16>, &[(&str, &str)]),
    extra: &str,
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
                "[relay]\nlisten = \"{addr}\"\ndata_dir = \"{}\"\n{extra}",
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
    (spawn_relays(dir, &addrs, &bootstrap, env), bootstrap)
}

/// Start again the relays [`start_relays`] made in `dir` (at `addrs`, with their data), e.g.
/// after killing them; wait until all listen.
pub fn spawn_relays(
    dir: &Path,
    addrs: &[SocketAddr],
    bootstrap: &Path,
    env: &[(&str, &str)],
) -> Procs {
    let n = addrs.len();
    let mut procs = Procs(Vec::new());
    for i in 1..=n {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("r{i}.log")))
            .unwrap();
        let child = umbra()
            .args(["relay", "--config"])
            .arg(dir.join(format!("r{i}.toml")))
            .arg("--bootstrap")
            .arg(bootstrap)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        procs.0.push(child);
    }
    for a in addrs {
        wait_listening(*a, "a relay");
    }
    procs
}

/// Wait (at most 20 s) until something listens on `addr`.
pub fn wait_listening(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} on {addr} did not start listening in time"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Make a site key in `dir` and publish `site` with `umbra publish`; returns the site's
/// address label (without `.umbra`).
pub fn publish_site(dir: &Path, bootstrap: &Path, site: &Path) -> String {
    let key = dir.join(format!(
        "{}.key",
        site.file_name().unwrap_or_default().to_string_lossy()
    ));
    let (ok, _, err) = run(
        umbra().args(["keygen", "--out"]).arg(&key),
        Duration::from_secs(30),
    );
    assert!(ok, "keygen: {err}");
    let (ok, out, err) = run(
        umbra()
            .args(["publish", "--bootstrap"])
            .arg(bootstrap)
            .arg("--key")
            .arg(&key)
            .arg("--data-dir")
            .arg(key.with_extension("data"))
            .arg(site),
        Duration::from_secs(120),
    );
    assert!(ok, "publish: {err}");
    out.lines()
        .last()
        .unwrap()
        .trim()
        .trim_end_matches(".umbra")
        .to_string()
}

/// An HTTP response.
pub struct Resp {
    pub status: u16,
    pub headers: BTreeMap<String, Vec<String>>,
    pub body: Vec<u8>,
}

impl Resp {
    /// A header sent at most once (asserted), or "".
    pub fn header(&self, name: &str) -> &str {
        let v = self.headers.get(name).map(Vec::as_slice).unwrap_or(&[]);
        assert!(v.len() <= 1, "header {name} sent {} times", v.len());
        v.first().map_or("", String::as_str)
    }
}

/// One HTTP/1.1 request with `Connection: close`; `target` as sent on the request line.
pub fn request(
    gw: SocketAddr,
    method: &str,
    target: &str,
    host: &str,
    extra: &[(&str, &str)],
) -> Resp {
    let mut s = TcpStream::connect_timeout(&gw, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no reply head")
        + 4;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            headers
                .entry(k.trim().to_ascii_lowercase())
                .or_default()
                .push(v.trim().to_string());
        }
    }
    Resp {
        status,
        headers,
        body: raw[end..].to_vec(),
    }
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

/// Start `umbra run` with its gateway on `gw` and its data in `data_dir`; wait until the
/// gateway listens.
pub fn start_reader(bootstrap: &Path, gw: SocketAddr, data_dir: &Path) -> Procs {
    start_reader_with(bootstrap, gw, data_dir, &[])
}

/// [`start_reader`] with `extra` arguments to `umbra run` (e.g. `--config FILE`).
pub fn start_reader_with(
    bootstrap: &Path,
    gw: SocketAddr,
    data_dir: &Path,
    extra: &[&std::ffi::OsStr],
) -> Procs {
    let reader = umbra()
        .args(["run", "--bootstrap"])
        .arg(bootstrap)
        .args(["--listen", &gw.to_string(), "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start umbra run");
    let p = Procs(vec![reader]);
    wait_listening(gw, "the gateway");
    p
}

/// A running `umbra demo` and what it printed.
pub struct Demo {
    /// The demo process.
    pub procs: Procs,
    /// The demo site's URL, without the trailing `/`.
    pub site_url: String,
    /// The gateway's port.
    pub port: u16,
    /// The network's bootstrap list.
    pub bootstrap: PathBuf,
    /// Its later output lines.
    pub lines: std::sync::mpsc::Receiver<String>,
}

/// Start `umbra demo` on a free port; wait (bounded) for its `ready` line.
pub fn start_demo() -> Demo {
    let port = free_addr("127.0.0.1").port();
    let mut child = umbra()
        .args([
            "demo",
            "--relays",
            "6",
            "--echo",
            "0",
            "--port",
            &port.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start umbra demo");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(out)).map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let procs = Procs(vec![child]);
    let (mut site_url, mut bootstrap) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("umbra demo did not print `ready` within 120 s");
        if let Some(u) = line.strip_prefix("Open the demo site:") {
            site_url = Some(u.trim().trim_end_matches('/').to_string());
        }
        if let Some(p) = line.strip_prefix("This network's bootstrap list is ") {
            bootstrap = Some(PathBuf::from(p.trim()));
        }
        if line == "ready" {
            break;
        }
    }
    Demo {
        procs,
        site_url: site_url.expect("demo printed no site URL"),
        port,
        bootstrap: bootstrap.expect("demo printed no bootstrap list"),
        lines: rx,
    }
}

/// A TCP connection to `to` from the local address `src` (loopback has all of 127/8), with
/// a 20 s read timeout.
pub fn connect_from(src: &str, to: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
        sock.connect(to).await.unwrap().into_std().unwrap()
    });
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Resident memory of process `pid`, in KiB (from /proc).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The address relay `i` of [`start_relays`] in `dir` listens on.
pub fn relay_listen(dir: &Path, i: usize) -> SocketAddr {
    std::fs::read_to_string(dir.join(format!("r{i}.toml")))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("listen = "))
        .unwrap()
        .trim_matches('"')
        .parse()
        .unwrap()
}

/// The relays of a bootstrap list (one hex descriptor per line), checked at the real time.
pub fn directory_of(list: &Path) -> umbra::directory::Directory {
    let now = umbra::time::WallTime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    let (d, errors) =
        umbra::directory::Directory::from_bootstrap(&std::fs::read_to_string(list).unwrap(), now);
    assert!(errors.is_empty(), "{errors:?}");
    d
}

/// `umbra probe` through the relays of `bootstrap`, echoing `bytes`; panics with its output
/// unless every byte came back intact. Returns what it printed.
pub fn probe(bootstrap: &Path, bytes: usize) -> String {
    let (ok, out, err) = run(
        umbra()
            .args([
                "probe",
                "--echo",
                &bytes.to_string(),
                "--timeout",
                "60",
                "--bootstrap",
            ])
            .arg(bootstrap),
        Duration::from_secs(90),
    );
    assert!(ok, "an honest probe failed:\n{out}\n{err}");
    assert!(
        out.contains(&format!("echoed {bytes} bytes intact")),
        "{out}"
    );
    out
}

/// Three relays on `net` with `limits` in their files, and a 1 MiB echo through them, which
/// must come back intact; asserts it took at least 12 s (a limit of 128 KiB/s makes each
/// relay move 2 MiB each way at that rate; unlimited, it takes well under a second).
#[allow(dead_code)]
pub fn echo_is_held_back(name: &str, net: usize, limits: &str) {
    let dir = tempdir(name);
    let (_relays, bootstrap) = start_relays_extra(&dir, 3, net, (None, &[]), limits);
    let t = Instant::now();
    probe(&bootstrap, 1 << 20);
    let took = t.elapsed();
    eprintln!(
        "1 MiB echo through relays with {limits:?}: {:.1} s",
        took.as_secs_f64()
    );
    assert!(
        took >= Duration::from_secs(12),
        "a 1 MiB echo through relays with {limits:?} took {took:?}: the limit did not apply"
    );
}

/// Start relay `i` of the relays [`start_relays`] made in `dir` again, with its dashboard on
/// `gw`; its stderr goes to `gw<i>.log`. Waits until the dashboard listens.
#[allow(dead_code)]
pub fn start_relay_with_gateway(dir: &Path, i: usize, bootstrap: &Path, gw: SocketAddr) -> Procs {
    let log = std::fs::File::create(dir.join(format!("gw{i}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_umbra"))
        .args(["relay", "--config"])
        .arg(dir.join(format!("r{i}.toml")))
        .arg("--bootstrap")
        .arg(bootstrap)
        .arg("--gateway")
        .arg(gw.to_string())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let procs = Procs(vec![child]);
    wait_listening(gw, "the relay's dashboard");
    procs
}

/// The status document (`/api/status`) of the gateway or dashboard at `gw`.
pub fn status(gw: SocketAddr) -> serde_json::Value {
    let r = request(gw, "GET", "/api/status", &gw.to_string(), &[]);
    assert_eq!(r.status, 200);
    serde_json::from_slice(&r.body).unwrap()
}
