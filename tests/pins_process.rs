//! Issue 14 item 8, with the real binary: `umbra pin`, `umbra pins`, `umbra unpin` against a
//! running `umbra run` (`protocol-spec/07-sites.md#pinning`, `08-gateway.md#control`).
//!
//! A reader pins a site: it is fetched whole and kept in the reader's cache file, pinned.
//! No page can pin through the browser (an `Origin`, a site's host, or no control header is
//! refused). Then `umbra fetch` fills the same cache far past its quota: the pinned copy
//! stays whole while unpinned blocks are evicted. A restarted reader still lists the pin;
//! `umbra unpin` releases it.

mod procs;

use std::path::Path;
use std::time::Duration;

use procs::{free_addr, publish_site, request, run, start_reader, start_relays, tempdir, umbra};
use umbra::app::pins;
use umbra::dht::store::RecordStore;
use umbra::site::address::SiteAddress;
use umbra::time::WallTime;
use umbra::wire::dht_msg::RecordKind;

fn site_dir(dir: &Path, name: &str, files: &[(&str, Vec<u8>)]) -> std::path::PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    for (p, data) in files {
        std::fs::write(d.join(p), data).unwrap();
    }
    d
}

fn noise(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

fn pins_json(gw: std::net::SocketAddr) -> serde_json::Value {
    let (ok, out, err) = run(
        umbra().args(["pins", "--json", "--gateway", &gw.to_string()]),
        Duration::from_secs(30),
    );
    assert!(ok, "umbra pins: {err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn a_reader_pins_a_site_that_outlives_cache_pressure_and_restarts() {
    let dir = tempdir("pins");
    let (_relays, bootstrap) = start_relays(&dir, 6, 200);
    let pinned = site_dir(
        &dir,
        "pinned",
        &[
            ("index.html", b"<h1>pinned</h1>".to_vec()),
            ("data.bin", noise(300_000, 1)),
        ],
    );
    let address = publish_site(&dir, &bootstrap, &pinned);
    let other = site_dir(&dir, "other", &[("big.bin", noise(3 << 20, 2))]);
    let other_address = publish_site(&dir, &bootstrap, &other);

    // A reader whose cache may hold 1 MiB.
    let data = dir.join("reader");
    std::fs::create_dir_all(&data).unwrap();
    let config = data.join("umbra.toml");
    std::fs::write(&config, "[reader]\ncache_quota_mib = 1\n").unwrap();
    let gw = free_addr("127.0.0.1");
    let reader = start_reader(&bootstrap, gw, &data);

    let (ok, out, err) = run(
        umbra().args(["pin", &address, "--gateway", &gw.to_string()]),
        Duration::from_secs(300),
    );
    assert!(ok, "umbra pin: {out}\n{err}");
    assert!(out.contains("pinned: version"), "{out}");
    let list = pins_json(gw);
    let p = &list["pins"][0];
    assert_eq!(p["address"], address.as_str());
    assert!(p["seq"].is_u64(), "{list}");
    // index.html and 300,000 bytes in 32 KiB blocks: 1 + 10.
    assert_eq!(p["blocks"], 11, "{list}");
    assert_eq!(p["bytes"], 300_000 + 15, "{list}");
    assert!(p["error"].is_null(), "{list}");

    // What a page could send is refused.
    let target = format!("/api/pins/{other_address}");
    let host = format!("localhost:{}", gw.port());
    let site_host = format!("{other_address}.localhost:{}", gw.port());
    for (host, extra) in [
        (
            host.as_str(),
            vec![("X-Umbra-Control", "1"), ("Origin", "null")],
        ),
        (host.as_str(), vec![]),
        (site_host.as_str(), vec![("X-Umbra-Control", "1")]),
    ] {
        let r = request(gw, "POST", &target, host, &extra);
        assert_eq!(r.status, 403, "{host} {extra:?}");
    }
    assert_eq!(pins_json(gw)["pins"].as_array().unwrap().len(), 1);
    drop(reader);

    // `umbra fetch` fills the same cache with 3 MiB: far past its 1 MiB quota.
    let (ok, _, err) = run(
        umbra()
            .arg("fetch")
            .arg(&other_address)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .arg("-o")
            .arg(dir.join("other.out"))
            .arg("--bootstrap")
            .arg(&bootstrap),
        Duration::from_secs(300),
    );
    assert!(ok, "fetch: {err}");
    {
        let mut store =
            umbra::runtime::store::RedbStore::open(&data.join("cache.redb"), 1 << 20).unwrap();
        let site = SiteAddress::parse(&address).unwrap();
        let copy = pins::load_copy(&mut store, &site, WallTime(0)).expect("the pinned copy");
        assert_eq!(copy.blocks.len(), 11, "the pinned copy is whole");
        assert!(
            store.used() <= (1 << 20) + 300_100 + 12 * 1024,
            "unpinned blocks were evicted: {} bytes",
            store.used()
        );
        let unpinned = store
            .keys()
            .into_iter()
            .filter(|(k, h)| *k == RecordKind::BLOCK && !copy.blocks.contains_key(h))
            .count();
        assert!(unpinned < 96, "{unpinned} of the 96 fetched blocks left");
    }

    // A restarted reader still has the pin; unpinning releases it.
    let _reader = start_reader(&bootstrap, gw, &data);
    assert_eq!(pins_json(gw)["pins"][0]["address"], address.as_str());
    let unpin = |what: &str| {
        run(
            umbra().args(["unpin", what, "--gateway", &gw.to_string()]),
            Duration::from_secs(30),
        )
    };
    let (ok, _, err) = unpin(&address);
    assert!(ok, "unpin: {err}");
    assert!(pins_json(gw)["pins"].as_array().unwrap().is_empty());
    let (ok, _, err) = unpin(&address);
    assert!(!ok && err.contains("not pinned"), "{err}");
}
