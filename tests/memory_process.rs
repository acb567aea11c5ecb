//! Issue 14 item 5, with the real binary: a reader's memory of the manifests it saw lives in
//! its store (`protocol-spec/07-sites.md#memory`), so no restart lets it take an older
//! manifest than one it saw.
//!
//! One site key publishes to two separate networks: version 1 to network A, then version 2
//! to network B. A fresh reader takes version 1 from A (so A really serves an older, still
//! valid manifest). The reader with a data directory fetches version 2 from B; then, run
//! after run, network A can no longer roll it back: `umbra fetch` refuses, and so does
//! `umbra run`'s gateway in a new process. Then a reader whose store holds a proof of
//! equivocation reports it everywhere (`/api/status`, `/metrics`, `umbra status`) and shows
//! the warning page.

mod procs;

use std::time::Duration;

use procs::{free_addr, request, run, start_reader, start_relays, tempdir, umbra};

#[test]
fn a_restarted_reader_never_accepts_an_older_manifest_than_one_it_saw() {
    let dir = tempdir("memory");
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::create_dir_all(dir.join("b")).unwrap();
    let (_a, net_a) = start_relays(&dir.join("a"), 4, 100);
    let (_b, net_b) = start_relays(&dir.join("b"), 4, 110);
    let key = dir.join("site.key");
    let (ok, _, err) = run(
        umbra().args(["keygen", "--out"]).arg(&key),
        Duration::from_secs(30),
    );
    assert!(ok, "{err}");
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    let publish = |net: &std::path::Path, text: &str, data: &str| {
        std::fs::write(site.join("index.html"), text).unwrap();
        let (ok, out, err) = run(
            umbra()
                .arg("publish")
                .arg(&site)
                .arg("--key")
                .arg(&key)
                .arg("--data-dir")
                .arg(dir.join(data))
                .arg("--bootstrap")
                .arg(net),
            Duration::from_secs(120),
        );
        assert!(ok, "publish: {out}\n{err}");
        out.trim().to_string()
    };
    let address = publish(&net_a, "<h1>version one</h1>", "pub-a");
    // Sequences are seconds of the clock: the second publish is a higher one.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(publish(&net_b, "<h1>version two</h1>", "pub-b"), address);

    let fetch = |net: &std::path::Path, data: Option<&std::path::Path>, out: &str| {
        let mut c = umbra();
        c.arg("fetch").arg(format!("{address}/index.html"));
        match data {
            Some(d) => c.arg("--data-dir").arg(d),
            None => c.arg("--no-cache"),
        };
        c.arg("-o").arg(dir.join(out)).arg("--bootstrap").arg(net);
        run(&mut c, Duration::from_secs(120))
    };
    // Network A serves version 1 to a reader with no memory.
    let (ok, _, err) = fetch(&net_a, None, "fresh.html");
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("fresh.html")).unwrap(),
        "<h1>version one</h1>"
    );
    // The reader sees version 2 on network B ...
    let reader = dir.join("reader");
    let (ok, _, err) = fetch(&net_b, Some(&reader), "two.html");
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("two.html")).unwrap(),
        "<h1>version two</h1>"
    );
    // ... and in a new process network A cannot take it back.
    let (ok, _, err) = fetch(&net_a, Some(&reader), "rolled.html");
    assert!(!ok, "an older manifest was accepted after a restart");
    assert!(err.contains("rollback refused"), "{err}");
    assert!(!dir.join("rolled.html").exists());

    // Nor can it through `umbra run`'s gateway, another process on the same data.
    let gw = free_addr("127.0.0.1");
    let reader_proc = start_reader(&net_a, gw, &reader);
    let label = address.trim_end_matches(".umbra");
    let host = format!("{label}.localhost:{}", gw.port());
    let r = request(gw, "GET", "/index.html", &host, &[]);
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert_ne!(r.status, 200, "{body}");
    assert!(!body.contains("version one"), "{body}");
    assert!(body.contains("rollback refused"), "{body}");
    drop(reader_proc);

    // A reader whose store holds a proof that the site's key signed two manifests with one
    // sequence (as its gateway would have kept it): every report names the site, and the
    // browser's first page of it is the warning page.
    let witness = dir.join("witness");
    {
        let k = umbra::crypto::keystore::read_identity(&key).unwrap();
        let version = |text: &str| {
            let b = umbra::site::build(
                &k,
                &[("index.html".into(), text.as_bytes().to_vec())],
                5,
                umbra::time::WallTime(1_000),
                u32::MAX as u64,
            )
            .unwrap();
            umbra::site::manifest::parse(&b.manifest)
                .unwrap()
                .verify_signature(&b.parsed.address())
                .unwrap()
        };
        let store =
            umbra::runtime::store::RedbStore::open(&witness.join("cache.redb"), 1 << 20).unwrap();
        let mut t = umbra::site::SiteTracker::new();
        t.observe(&version("one story")).unwrap();
        t.observe(&version("another story")).unwrap();
        store.save_seen(&t.take_changes()).unwrap();
    }
    let gw = free_addr("127.0.0.1");
    let _witness_proc = start_reader(&net_b, gw, &witness);
    let host = format!("{label}.localhost:{}", gw.port());
    let status = request(
        gw,
        "GET",
        "/api/status",
        &format!("localhost:{}", gw.port()),
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    let e = &v["equivocations"][0];
    assert_eq!(e["seen_as"], "reader", "{v}");
    assert_eq!(e["seq"], 5, "{v}");
    // The directory, as the dashboard shows it: how many relays, how fresh.
    assert!(v["directory"]["relays"].as_u64().unwrap() >= 4, "{v}");
    assert!(v["directory"].get("last_sync_secs_ago").is_some(), "{v}");
    assert!(metrics_has_directory(gw), "{v}");
    let metrics = request(
        gw,
        "GET",
        "/metrics",
        &format!("localhost:{}", gw.port()),
        &[],
    );
    let metrics = String::from_utf8_lossy(&metrics.body).into_owned();
    assert!(
        metrics.contains("umbra_equivocation_proofs{seen_as=\"reader\"} 1"),
        "{metrics}"
    );
    let (ok, out, err) = run(
        umbra().args(["status", "--gateway", &gw.to_string()]),
        Duration::from_secs(30),
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("WARNING: site") && out.contains("sequence 5"),
        "{out}"
    );
    let warned = request(gw, "GET", "/", &host, &[]);
    assert_eq!(warned.status, 409);
    assert_eq!(warned.header("x-umbra-warning"), "equivocation");
    let after = request(gw, "GET", "/index.html", &host, &[]);
    assert_eq!(after.status, 200);
    assert_eq!(after.body, b"<h1>version two</h1>");
    let _ = std::fs::remove_dir_all(&dir);
}

fn metrics_has_directory(gw: std::net::SocketAddr) -> bool {
    let m = request(
        gw,
        "GET",
        "/metrics",
        &format!("localhost:{}", gw.port()),
        &[],
    );
    String::from_utf8_lossy(&m.body).contains("umbra_directory_relays ")
}
