//! Content between real processes (`protocol-spec/07-sites.md`): relays with redb stores,
//! `umbra publish` of a folder, then `umbra fetch` by another process; the fetched tree
//! must equal the source byte for byte. And the store survives `kill -9` without losing an
//! acknowledged record. Every wait is bounded; every process is stopped by PID.

// A process-level test: it waits on real processes, so it reads the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{Procs, free_addr, tempdir};
use std::io::{BufRead, BufReader};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn umbra() -> Command {
    Command::new(env!("CARGO_BIN_EXE_umbra"))
}

fn start_relays(dir: &Path, n: usize) -> (Procs, PathBuf) {
    let mut addrs = Vec::new();
    let mut list = String::new();
    for i in 1..=n {
        let addr = free_addr(&format!("127.{}.0.1", 20 + i));
        let out = umbra()
            .args(["relay", "--init-only", "--data-dir"])
            .arg(dir.join(format!("r{i}")))
            .args(["--listen", &addr.to_string()])
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
    for (i, addr) in addrs.iter().enumerate() {
        procs.0.push(
            umbra()
                .args(["relay", "--data-dir"])
                .arg(dir.join(format!("r{}", i + 1)))
                .args(["--listen", &addr.to_string(), "--bootstrap"])
                .arg(&bootstrap)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for a in &addrs {
        while std::net::TcpStream::connect_timeout(a, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "relay {a} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Let the DHT joins settle.
    std::thread::sleep(Duration::from_millis(500));
    (procs, bootstrap)
}

fn run(cmd: &mut Command, limit: Duration) -> (bool, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (
                status.success(),
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

fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(root: &Path, d: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push((
                    p.strip_prefix(root).unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn publish_then_fetch_between_processes() {
    let dir = tempdir("content");
    let (_relays, bootstrap) = start_relays(&dir, 6);
    let site = dir.join("site");
    std::fs::create_dir_all(site.join("css")).unwrap();
    std::fs::write(
        site.join("index.html"),
        "<html><body><h1>Hello from Umbra</h1></body></html>",
    )
    .unwrap();
    std::fs::write(site.join("css/style.css"), "h1 { color: teal }").unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(site.join("big.bin"), &big).unwrap();
    let key = dir.join("site.key");
    assert!(
        umbra()
            .args(["keygen", "--out"])
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );

    let (ok, out, err) = run(
        umbra()
            .arg("publish")
            .arg(&site)
            .arg("--key")
            .arg(&key)
            .arg("--bootstrap")
            .arg(&bootstrap),
        Duration::from_secs(120),
    );
    assert!(ok, "publish failed:\n{out}\n{err}");
    let address = out.trim().to_string();
    assert!(address.ends_with(".umbra"), "{out}");

    let fetched = dir.join("fetched");
    let cache = dir.join("reader-data");
    let (ok, out, err) = run(
        umbra()
            .arg("fetch")
            .arg("--data-dir")
            .arg(&cache)
            .arg(&address)
            .arg("-o")
            .arg(&fetched)
            .arg("--bootstrap")
            .arg(&bootstrap),
        Duration::from_secs(120),
    );
    assert!(ok, "fetch failed:\n{out}\n{err}");
    assert_eq!(
        tree(&fetched),
        tree(&site),
        "fetched tree differs from the source"
    );

    // The reader kept its guards for the next run.
    {
        let store = umbra_store_open(&cache.join("cache.redb"));
        let guards = store.read_state("guards").expect("guards saved");
        assert_eq!(guards.len() % 32, 0);
        assert!(!guards.is_empty());
    }

    // One file by path.
    let one = dir.join("style.css");
    let (ok, out, err) = run(
        umbra()
            .arg("fetch")
            .arg("--data-dir")
            .arg(&cache)
            .arg(format!("{address}/css/style.css"))
            .arg("-o")
            .arg(&one)
            .arg("--bootstrap")
            .arg(&bootstrap),
        Duration::from_secs(120),
    );
    assert!(ok, "{out}\n{err}");
    assert_eq!(std::fs::read(&one).unwrap(), b"h1 { color: teal }");

    // Change one file and publish again: only its block is new.
    std::fs::write(
        site.join("index.html"),
        "<html><body><h1>Hello again</h1></body></html>",
    )
    .unwrap();
    let (ok, out, err) = run(
        umbra()
            .arg("publish")
            .arg(&site)
            .arg("--key")
            .arg(&key)
            .arg("--bootstrap")
            .arg(&bootstrap),
        Duration::from_secs(120),
    );
    assert!(ok, "{out}\n{err}");
    assert!(err.contains("1 new blocks"), "{err}");
    let again = dir.join("again");
    let (ok, _, err) = run(
        umbra()
            .arg("fetch")
            .arg("--data-dir")
            .arg(&cache)
            .arg(&address)
            .arg("-o")
            .arg(&again)
            .arg("--bootstrap")
            .arg(&bootstrap),
        Duration::from_secs(120),
    );
    assert!(ok, "{err}");
    assert_eq!(tree(&again), tree(&site));
    assert!(
        err.contains("came from the local cache"),
        "unchanged blocks were fetched again:\n{err}"
    );

    // A typo in the address is caught before anything is sent.
    let mut typo = address.clone();
    typo.replace_range(3..4, if &address[3..4] == "a" { "b" } else { "a" });
    let (ok, _, err) = run(
        umbra()
            .arg("fetch")
            .arg("--data-dir")
            .arg(&cache)
            .arg(&typo)
            .arg("--bootstrap")
            .arg(&bootstrap),
        Duration::from_secs(30),
    );
    assert!(!ok);
    assert!(
        err.contains("checksum") || err.contains("public key"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn store_loses_no_acknowledged_record_on_kill_9() {
    let dir = tempdir("kill9");
    let db = dir.join("store.redb");
    for round in 0..3 {
        let mut child = umbra()
            .arg("store-writer")
            .arg("--db")
            .arg(&db)
            .args(["--count", "100000"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acked = None;
        let stop_after = 30 + round * 40;
        for line in lines.by_ref() {
            let line = line.unwrap();
            let n: u32 = line.trim_start_matches("ack ").parse().unwrap();
            acked = Some(n);
            if n >= stop_after {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL: no chance to clean up
        let _ = child.wait();
        let acked = acked.expect("the writer acknowledged nothing");
        let mut store = umbra_store_open(&db);
        for i in 0..=acked {
            let (r, _) = umbra::runtime::store::numbered_record(i);
            let got = umbra::dht::store::RecordStore::get(
                &mut store,
                r.kind,
                &r.key,
                umbra::time::WallTime(0),
            );
            assert_eq!(
                got.as_ref().map(|g| &g.value),
                Some(&r.value),
                "acknowledged record {i} lost (round {round})"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn umbra_store_open(path: &Path) -> umbra::runtime::store::RedbStore {
    umbra::runtime::store::RedbStore::open(path, u64::MAX).unwrap()
}
