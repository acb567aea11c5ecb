//! Content between real processes (`protocol-spec/07-sites.md`): relays with redb stores,
//! `umbra publish` of a folder, then `umbra fetch` by another process; the fetched tree
//! must equal the source byte for byte. And the store survives `kill -9` without losing an
//! acknowledged record. Every wait is bounded; every process is stopped by PID.

// A process-level test: it waits on real processes, so it reads the real clock.
#![allow(clippy::disallowed_methods)]

mod procs;

use procs::{publish_site, run, start_relays, tempdir, umbra};
use std::io::{BufRead, BufReader};

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

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
    let (_relays, bootstrap) = start_relays(&dir, 6, 20);
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

    let cache = dir.join("reader-data");
    let publisher = dir.join("publisher-data");
    let publish = || {
        let mut c = umbra();
        c.arg("publish")
            .arg(&site)
            .arg("--key")
            .arg(&key)
            .arg("--data-dir")
            .arg(&publisher)
            .arg("--bootstrap")
            .arg(&bootstrap);
        run(&mut c, Duration::from_secs(120))
    };
    let fetch = |target: &str, out: Option<&Path>| {
        let mut c = umbra();
        c.arg("fetch").arg("--data-dir").arg(&cache).arg(target);
        if let Some(o) = out {
            c.arg("-o").arg(o);
        }
        c.arg("--bootstrap").arg(&bootstrap);
        run(&mut c, Duration::from_secs(120))
    };

    let (ok, out, err) = publish();
    assert!(ok, "publish failed:\n{out}\n{err}");
    let address = out.trim().to_string();
    assert!(address.ends_with(".umbra"), "{out}");

    let fetched = dir.join("fetched");
    let (ok, out, err) = fetch(&address, Some(&fetched));
    assert!(ok, "fetch failed:\n{out}\n{err}");
    assert_eq!(
        tree(&fetched),
        tree(&site),
        "fetched tree differs from the source"
    );

    // The reader and the publisher kept their guards for the next run (issue 14: the
    // publisher used to pick new guards every time).
    for data in [&cache, &publisher] {
        let store = umbra_store_open(&data.join("cache.redb"));
        let guards = store.read_state("guards").expect("guards saved");
        assert_eq!(guards.len() % 32, 0);
        assert!(!guards.is_empty());
    }

    // One file by path.
    let one = dir.join("style.css");
    let (ok, out, err) = fetch(&format!("{address}/css/style.css"), Some(&one));
    assert!(ok, "{out}\n{err}");
    assert_eq!(std::fs::read(&one).unwrap(), b"h1 { color: teal }");

    // Change one file and publish again (9 blocks: 1 + 1 + 7 of the big file). The 8 the
    // previous manifest listed are refreshed (their storers keep them as long as the new
    // manifest, `06-dht.md#lifetime`) instead of sent again; only the changed one is sent.
    std::fs::write(
        site.join("index.html"),
        "<html><body><h1>Hello again</h1></body></html>",
    )
    .unwrap();
    let (ok, out, err) = publish();
    assert!(ok, "{out}\n{err}");
    assert!(err.contains("3 files, 9 blocks"), "{err}");
    assert!(err.contains("8 known to the network"), "{err}");
    assert!(err.contains("8 of 9 blocks were still held"), "{err}");
    let again = dir.join("again");
    let (ok, _, err) = fetch(&address, Some(&again));
    assert!(ok, "{err}");
    assert_eq!(tree(&again), tree(&site));
    assert!(
        err.contains("came from the local cache"),
        "unchanged blocks were fetched again:\n{err}"
    );

    // A typo in the address is caught before anything is sent.
    let mut typo = address.clone();
    typo.replace_range(3..4, if &address[3..4] == "a" { "b" } else { "a" });
    let (ok, _, err) = fetch(&typo, None);
    assert!(!ok);
    assert!(
        err.contains("checksum") || err.contains("public key"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn store_loses_no_acknowledged_record_on_kill_9() {
    // Each record committed on its own, then (as a relay does) batches on the background
    // committer, acknowledged once reported durable.
    for batch in ["0", "64"] {
        kill_9_while_writing(batch);
    }
}

fn kill_9_while_writing(batch: &str) {
    let dir = tempdir(&format!("kill9-{batch}"));
    let db = dir.join("store.redb");
    for round in 0..3 {
        let mut child = umbra()
            .arg("store-writer")
            .arg("--db")
            .arg(&db)
            .args(["--count", "100000", "--batch", batch])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acked = None;
        let stop_after = 30 + round * 140;
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
            let (r, _) = umbra::runtime::store_writer::numbered_record(i);
            let got = umbra::dht::store::RecordStore::get(
                &mut store,
                r.kind,
                &r.key,
                umbra::time::WallTime(0),
            );
            assert_eq!(
                got.as_ref().map(|g| &g.value),
                Some(&r.value),
                "acknowledged record {i} lost (round {round}, batch {batch})"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn umbra_store_open(path: &Path) -> umbra::runtime::store::RedbStore {
    umbra::runtime::store::RedbStore::open(path, u64::MAX).unwrap()
}

/// Peak resident memory of `pid` while it runs (sampled every 5 ms), in KiB.
fn peak_rss_kib(child: &mut std::process::Child) -> u64 {
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(procs::rss_kib(child.id()));
        std::thread::sleep(Duration::from_millis(5));
    }
    peak
}

/// Issue 12, findings 11 and 12: a manifest that lists one 32 KiB block 3,000 times (a
/// 98 MB site from one block) is refused past `--max-bytes` before any block is fetched,
/// leaving nothing behind, and otherwise written block by block, never whole in memory.
#[test]
fn fetch_streams_a_site_that_repeats_one_block_and_caps_its_size() {
    let dir = tempdir("expand");
    let (_relays, bootstrap) = start_relays(&dir, 5, 40);
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    let block: Vec<u8> = (0..32 * 1024u32).map(|i| (i % 251) as u8).collect();
    for i in 0..3_000 {
        std::fs::write(site.join(format!("f{i:04}.bin")), &block).unwrap();
    }
    let address = publish_site(&dir, &bootstrap, &site);
    let fetch = |out: &Path, extra: &[&str]| {
        let mut c = umbra();
        c.args(["fetch", "--no-cache"])
            .arg(&address)
            .arg("-o")
            .arg(out)
            .args(extra)
            .arg("--bootstrap")
            .arg(&bootstrap)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    };
    // Past the cap: a clean error, and nothing left in the target's folder.
    let capped = dir.join("out").join("capped");
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let (ok, _, err) = run(
        &mut fetch(&capped, &["--max-bytes", "50000000"]),
        Duration::from_secs(120),
    );
    assert!(!ok);
    assert!(err.contains("more than the limit"), "{err}");
    assert_eq!(std::fs::read_dir(dir.join("out")).unwrap().count(), 0);
    // Within the default cap: 98,304,000 bytes written, while the process stays small.
    let whole = dir.join("out").join("whole");
    let mut child = fetch(&whole, &[]).spawn().unwrap();
    let peak = peak_rss_kib(&mut child);
    let status = child.wait().unwrap();
    assert!(status.success());
    let total: u64 = std::fs::read_dir(&whole)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    eprintln!(
        "fetched {total} bytes with a peak RSS of {} MiB",
        peak / 1024
    );
    assert_eq!(total, 3_000 * 32 * 1024);
    assert!(peak < 64 * 1024, "fetch peaked at {} MiB", peak / 1024);
    let _ = std::fs::remove_dir_all(&dir);
}
