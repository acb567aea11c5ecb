//! Each limit applies, in the real binary (issue 15 item 8; `protocol-spec/09-relay.md#bandwidth`,
//! `#handshakes`, `#memory`): `rate`, `burst`, `own`, `dht`, `seeding`, `cpu_percent` and
//! `memory`, each set on a loopback network's relays (or its reader, for `own`) and driven
//! past its limit, often by a peer the test plays by hand (`umbra::runtime::bench`'s raw
//! links and floods). Each test checks that the limit held (a lower bound of time, a
//! counter, a refusal), not how fast anything ran: the speed figures are
//! `umbra bench --limits`'s. `relayed`, `monthly` and the CREATE rate are in
//! `tests/limits_process.rs` and `tests/flood_process.rs`.

#![allow(clippy::disallowed_methods)]

mod procs;

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use procs::{
    Procs, directory_of, free_addr, probe, start_relays, start_relays_extra, status, tempdir,
    wait_listening,
};
use umbra::crypto::hop::client_start;
use umbra::crypto::noise::Randomness;
use umbra::crypto::rng::UmbraRng;
use umbra::directory::Descriptor;
use umbra::runtime::bench::flood::DhtFlood;
use umbra::runtime::bench::stalled::Stalled;
use umbra::runtime::raw_link::{As, RawLink};
use umbra::wire::cell::CircId;
use umbra::wire::dht_msg::{DhtMsg, MAX_MESSAGE, Record, RecordKind};
use umbra::wire::restrict::{
    ChanMsg, CreateBody, DestroyReason, DhtReassembler, HandshakeType, dht_fragments,
};

/// A class's burst when its rate is below 64 KiB/s (`limits::MIN_BURST`).
const BURST: u64 = 64 << 10;

/// Stop relay `i` of `relays` (1-based; the others keep their places), add `limits` to its
/// file, and start it again with its dashboard on: the dashboard's address.
fn restart_with(
    dir: &Path,
    relays: &mut Procs,
    i: usize,
    bootstrap: &Path,
    limits: &str,
) -> (Procs, SocketAddr) {
    let old = &mut relays.0[i - 1];
    let _ = old.kill();
    let _ = old.wait();
    let config = dir.join(format!("r{i}.toml"));
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(limits);
    std::fs::write(&config, text).unwrap();
    let gw = free_addr("127.0.0.1");
    let procs = procs::start_relay_with_gateway(dir, i, bootstrap, gw);
    wait_listening(relay(bootstrap, i).addr, "the relay");
    (procs, gw)
}

/// Relay `i`'s descriptor (relays of a network listen on 127.(net+i).0.1, in order).
fn relay(bootstrap: &Path, i: usize) -> Descriptor {
    let mut all: Vec<Descriptor> = directory_of(bootstrap)
        .relays()
        .map(|d| (**d).clone())
        .collect();
    all.sort_by_key(|d| d.addr);
    all.swap_remove(i - 1)
}

fn class_bytes(gw: SocketAddr, class: &str, dir: &str) -> u64 {
    status(gw)["limits"]["classes"][class][dir]["bytes"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_total_rate_slows_circuits_and_loses_nothing() {
    // `rate` bounds everything a relay reads: a 1 MiB echo makes every relay read 2 MiB (on
    // the way out and back).
    procs::echo_is_held_back("limits-rate", 240, "[limits]\nrate = \"128 KiB/s\"\n");
}

/// Send `n` CREATEs with fresh handshakes to `target` from each address of `srcs`, all
/// before reading any answer; the answers refused `OVERLOADED`.
fn overloaded(target: &Descriptor, srcs: &[&str], n: u32) -> usize {
    let mut rng = UmbraRng::from_u64(u64::from(n));
    let mut links: Vec<RawLink> = srcs
        .iter()
        .map(|src| RawLink::open(Some(src.parse::<IpAddr>().unwrap()), As::Reader, target).unwrap())
        .collect();
    for link in &mut links {
        let creates: Vec<ChanMsg> = (1..=n)
            .map(|k| ChanMsg::Create {
                circ_id: CircId::new(0x8000_0000 | k).unwrap(),
                body: CreateBody {
                    handshake_type: HandshakeType::NOISE_NK_V1,
                    handshake: client_start(&target.onion_key, 1, Randomness::Seeded(rng.array()))
                        .unwrap()
                        .1,
                },
            })
            .collect();
        link.send(&creates).unwrap();
    }
    let mut refused = 0;
    for link in &mut links {
        let mut answers = 0;
        while answers < n {
            match link.recv().unwrap() {
                ChanMsg::Created { .. } => answers += 1,
                ChanMsg::Destroy { reason, .. } => {
                    answers += 1;
                    if reason == DestroyReason::OVERLOADED {
                        refused += 1;
                    }
                }
                _ => {}
            }
        }
    }
    refused
}

#[test]
fn a_cpu_budget_refuses_the_creates_it_cannot_pay_for() {
    // 1,900 CREATEs at once (under the per-link circuit limit), the per-address rate lifted:
    // at the default budget (3/4 of a core) a relay queues them all, as the queue holds what
    // 1.75 s of the budget answers. At `cpu_percent = 5` it holds 1/20 of that, and it reads
    // more slowly; twice 1,900 at once, and many are refused OVERLOADED.
    let dir = tempdir("limits-cpu");
    let (mut relays, bootstrap) = start_relays_extra(
        &dir,
        3,
        250,
        (None, &[]),
        "creates_per_sec = 100000\ncreate_burst = 100000\n",
    );
    let (_r1, gw) = restart_with(
        &dir,
        &mut relays,
        1,
        &bootstrap,
        "[limits]\ncpu_percent = 5\n",
    );
    let at_default = overloaded(&relay(&bootstrap, 2), &["127.0.0.21"], 1_900);
    assert_eq!(
        at_default, 0,
        "a relay at the default budget refused CREATEs"
    );
    let at_five = overloaded(&relay(&bootstrap, 1), &["127.0.0.22", "127.0.0.23"], 1_900);
    eprintln!("2 x 1,900 CREATEs at once: {at_five} refused OVERLOADED at cpu_percent = 5");
    assert!(
        at_five >= 300,
        "only {at_five} refused at cpu_percent = 5: the budget did not apply"
    );
    let h = &status(gw)["limits"]["handshakes"];
    assert!(
        h["refused_overloaded"].as_u64().unwrap() >= at_five as u64,
        "{h}"
    );
    // The relay still builds honest circuits.
    assert!(probe(&bootstrap, 10_000).contains("intact"));
}

#[test]
fn a_memory_limit_drops_readers_that_stop_reading() {
    // Three readers, each with 200 echo circuits, send 120 cells a circuit and never read
    // (37 MB to be echoed). Relay 1's `memory = 16 MiB` allows 8 MiB queued for all sockets:
    // it drops the links holding most. Relay 2, at the default 512 MiB, keeps them all.
    let dir = tempdir("limits-memory");
    let (mut relays, bootstrap) = start_relays(&dir, 3, 30);
    let (_r1, gw1) = restart_with(
        &dir,
        &mut relays,
        1,
        &bootstrap,
        "[limits]\nmemory = \"16 MiB\"\n",
    );
    let (_r2, gw2) = restart_with(&dir, &mut relays, 2, &bootstrap, "");
    let load = |i: usize, net: u8| {
        let target = relay(&bootstrap, i);
        let mut readers: Vec<Stalled> = (1..=3u8)
            .map(|k| Stalled::open(IpAddr::from([127, 0, net, k]), &target, 200).unwrap())
            .collect();
        for r in &mut readers {
            assert_eq!(r.circuits(), 200);
            // An error here is the relay dropping the link: what relay 1 may do.
            let _ = r.send_echoes(120);
        }
        readers
    };
    let dropped = |gw| {
        status(gw)["limits"]["links_dropped_unread"]
            .as_u64()
            .unwrap()
    };
    let _held = load(2, 32);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        dropped(gw2),
        0,
        "relay 2 dropped a reader within its default memory"
    );
    let _dropped_readers = load(1, 31);
    let deadline = Instant::now() + Duration::from_secs(30);
    while dropped(gw1) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        dropped(gw1) >= 1,
        "relay 1 holds 37 MB for readers that do not read: the memory limit did not apply"
    );
    let m = procs::request(gw1, "GET", "/metrics", &gw1.to_string(), &[]);
    assert!(
        String::from_utf8_lossy(&m.body).contains("umbra_links_dropped_unread_total"),
        "no metric"
    );
    // It keeps serving everyone else.
    assert!(probe(&bootstrap, 100_000).contains("intact"));
}

#[test]
fn a_dht_limit_holds_a_store_flood_to_its_rate() {
    // Relay 2 (a directory member, with its own keys) sends relay 1 STOREs as fast as
    // relay 1 reads them; relay 1's `dht = 64 KiB/s` passes at most a second's worth more
    // than 64 KiB a second, holding the rest and reading no more from that link.
    let dir = tempdir("limits-dht");
    let (mut relays, bootstrap) = start_relays(&dir, 3, 50);
    let (_r1, gw) = restart_with(
        &dir,
        &mut relays,
        1,
        &bootstrap,
        "[limits]\ndht = \"64 KiB/s\"\n",
    );
    let before = class_bytes(gw, "dht", "in");
    let t = Instant::now();
    let flood = DhtFlood::stores(&dir.join("r2"), &relay(&bootstrap, 1)).unwrap();
    std::thread::sleep(Duration::from_secs(6));
    let (sent, _) = flood.stop().unwrap();
    let passed = class_bytes(gw, "dht", "in") - before;
    let secs = t.elapsed().as_secs_f64();
    let bound = (65_536.0 * secs) as u64 + BURST + 4096;
    eprintln!("{sent} STOREs sent; {passed} DHT bytes passed in {secs:.1} s (bound {bound})");
    assert!(passed > 0, "no DHT traffic counted");
    // What the flood could write at all: the bound, 512 held cells, and the sockets' kernel
    // buffers (loopback: at most ~10 MB). Unlimited, relay 1 reads hundreds of MB.
    assert!(
        sent * 514 <= bound + (16 << 20),
        "relay 1 read {sent} STOREs in {secs:.1} s: it did not stop reading at its limit"
    );
    assert!(
        passed <= bound,
        "{passed} DHT bytes passed in {secs:.1} s at 64 KiB/s: the limit did not apply"
    );
    assert!(status(gw)["limits"]["held_total"].as_u64().unwrap() > 0);
}

#[test]
fn a_seeding_limit_holds_value_answers_to_its_rate() {
    // Relay 3 stores a 32 KiB block at relay 1, then asks for it 200 times at once: 6.4 MB
    // of answers. Relay 1's `seeding = 64 KiB/s` sends at most a second's worth more than
    // 64 KiB a second; unlimited, it sends 4 MiB at once (its per-relay pacing,
    // `06-dht.md#pacing`). The test plays relay 3 with its keys once the real one has
    // stopped, so that relay 1 answers on the test's link (a relay answers a peer on its
    // first link).
    let dir = tempdir("limits-seeding");
    let (mut relays, bootstrap) = start_relays(&dir, 3, 120);
    let (_r1, gw) = restart_with(
        &dir,
        &mut relays,
        1,
        &bootstrap,
        "[limits]\nseeding = \"64 KiB/s\"\n",
    );
    let third = &mut relays.0[2];
    let _ = third.kill();
    let _ = third.wait();
    std::thread::sleep(Duration::from_secs(1));
    let mut link = RawLink::open(None, As::Relay(&dir.join("r3")), &relay(&bootstrap, 1)).unwrap();
    let value = vec![7u8; 32 << 10];
    let key = umbra::crypto::hash::hash(&value);
    let store = DhtMsg::Store {
        id: 1,
        record: Record {
            kind: RecordKind::BLOCK,
            key,
            value,
        },
        expires: umbra::runtime::driver::wall_now().0 + 86_400,
    };
    link.send(&dht_fragments(&store.encode())).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let before = class_bytes(gw, "seeding", "out");
    let gets: Vec<ChanMsg> = (2..202)
        .flat_map(|id| {
            dht_fragments(
                &DhtMsg::FindValue {
                    id,
                    key,
                    kind: RecordKind::BLOCK,
                }
                .encode(),
            )
        })
        .collect();
    let t = Instant::now();
    link.send(&gets).unwrap();
    // Count the VALUE answers that arrive in 6 s.
    link.sock
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (mut values, mut dht, mut buf) = (0u64, DhtReassembler::default(), vec![0u8; 1 << 16]);
    while t.elapsed() < Duration::from_secs(6) {
        let n = match link.sock.read(&mut buf) {
            Ok(0) => panic!("relay 1 closed the link"),
            Ok(n) => n,
            Err(_) => continue,
        };
        for m in link.absorb(&buf[..n]).unwrap() {
            if let ChanMsg::Dht { first, data } = m {
                if let Some(whole) = dht.push(first, &data, MAX_MESSAGE).unwrap() {
                    if let Ok(DhtMsg::Value { .. }) = DhtMsg::decode(&whole) {
                        values += 1;
                    }
                }
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let counted = class_bytes(gw, "seeding", "out") - before;
    let bound = (65_536.0 * secs) as u64 + BURST + 40_000;
    eprintln!(
        "200 GETs of a 32 KiB block: {values} answers in {secs:.1} s, {counted} bytes counted \
         as seeding (bound {bound})"
    );
    assert!(values >= 1, "the block was never served");
    assert!(
        values * (32 << 10) <= bound,
        "{values} answers of 32 KiB in {secs:.1} s at 64 KiB/s: the limit did not apply"
    );
    assert!(
        counted <= bound,
        "{counted} bytes counted as seeding in {secs:.1} s"
    );
}

#[test]
fn a_burst_lets_a_short_transfer_through_a_low_rate_unheld() {
    // The same relays as `a_total_rate…` (128 KiB/s), with a 4 MiB burst: a 1 MiB echo moves
    // 2 MiB each way at each relay, within the burst, so nothing waits. With the default
    // burst (two seconds of the rate) cells wait, and the echo takes 12 s or more.
    let dir = tempdir("limits-burst");
    let (mut relays, bootstrap) = start_relays_extra(
        &dir,
        3,
        130,
        (None, &[]),
        "[limits]\nrate = \"128 KiB/s\"\nburst = \"4 MiB\"\n",
    );
    let (_r1, gw) = restart_with(&dir, &mut relays, 1, &bootstrap, "");
    probe(&bootstrap, 1 << 20);
    let s = status(gw);
    assert_eq!(s["limits"]["total"]["configured_rate"], 128 << 10, "{s}");
    assert_eq!(
        s["limits"]["held_total"], 0,
        "cells waited within the burst: it did not apply"
    );
}

#[test]
fn an_own_limit_holds_the_readers_own_fetches() {
    // A reader with `own = 64 KiB/s` fetches a 512 KiB file through its gateway: at least
    // 7 s beyond the first second's burst. Unlimited, well under one.
    let dir = tempdir("limits-own");
    let (_relays, bootstrap) = start_relays(&dir, 3, 80);
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    let body: Vec<u8> = (0..512u32 << 10)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(site.join("big.bin"), &body).unwrap();
    let address = procs::publish_site(&dir, &bootstrap, &site);
    let config = dir.join("reader.toml");
    std::fs::write(&config, "[limits]\nown = \"64 KiB/s\"\n").unwrap();
    let gw = free_addr("127.0.0.1");
    let _reader = procs::start_reader_with(
        &bootstrap,
        gw,
        &dir.join("reader"),
        &["--config".as_ref(), config.as_os_str()],
    );
    let t = Instant::now();
    let host = format!("{address}.localhost:{}", gw.port());
    let r = procs::request(gw, "GET", "/big.bin", &host, &[]);
    let took = t.elapsed();
    assert_eq!(r.status, 200);
    assert!(r.body == body, "the file came back altered");
    eprintln!(
        "512 KiB through a reader with own = 64 KiB/s: {:.1} s",
        took.as_secs_f64()
    );
    assert!(
        took >= Duration::from_secs(5),
        "512 KiB at own = 64 KiB/s took {took:?}: the limit did not apply"
    );
    let own = &status(gw)["limits"]["classes"]["own"]["in"];
    assert_eq!(own["limit"], 64 << 10, "{own}");
    assert!(own["bytes"].as_u64().unwrap() >= 512 << 10, "{own}");
}
