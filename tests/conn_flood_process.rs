//! Connection floods against a real relay process (issue 12, findings 6 and 7;
//! `protocol-spec/09-relay.md#connections`): thousands of idle sockets from many sources,
//! and one source opening connections as fast as it can. The relay keeps its memory, keeps
//! each source to its share and rate, lets at most 256 sit in their handshake (the oldest
//! giving way to a newcomer), and honest circuits through it still build.

#![allow(clippy::disallowed_methods)]

mod procs;

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use procs::{
    connect_from, directory_of, probe, relay_listen, rss_kib, start_relays, start_relays_with,
    tempdir,
};
use umbra::runtime::raw_link::{As, RawLink};

/// How many of `socks` the relay has not closed.
fn still_open(socks: &[TcpStream]) -> usize {
    socks
        .iter()
        .filter(|s| {
            s.set_nonblocking(true).unwrap();
            let mut b = [0u8; 1];
            matches!((&**s).read(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock)
        })
        .count()
}

#[test]
fn idle_sockets_and_connection_floods_are_bounded() {
    let dir = tempdir("conn-flood");
    let (relays, bootstrap) = start_relays(&dir, 3, 170);
    let target = relay_listen(&dir, 1);
    let pid = relays.0[0].id();
    probe(&bootstrap, 100_000);
    std::thread::sleep(Duration::from_millis(500));
    let rss0 = rss_kib(pid);

    // 1. The finding: 2,430 idle sockets (from 76 addresses, 32 each, which is each
    // source's burst), holding nothing but a connection.
    let mut idle = Vec::new();
    for src in 1..=76 {
        for _ in 0..32 {
            idle.push(connect_from(&format!("127.0.50.{src}"), target));
        }
    }
    idle.truncate(2_430);
    std::thread::sleep(Duration::from_secs(1));
    let held = still_open(&idle);
    let grown = rss_kib(pid).saturating_sub(rss0) / 1024;
    eprintln!(
        "{held} of {} idle sockets held; relay RSS +{grown} MiB",
        idle.len()
    );
    assert!(
        grown < 64,
        "2,430 idle sockets grew the relay by {grown} MiB"
    );
    // At most 256 sit in their handshake; a newcomer's handshake still completes, the
    // oldest silent socket giving way to it (`09-relay.md#handshakes`).
    assert!(held <= 256, "{held} silent sockets held in their handshake");
    let desc = directory_of(&bootstrap)
        .relays()
        .find(|d| d.addr == target)
        .map(|d| (**d).clone())
        .unwrap();
    RawLink::open(Some("127.0.51.1".parse().unwrap()), As::Reader, &desc)
        .expect("256 silent sockets locked an honest handshake out");
    // Honest circuits still build while they are held.
    probe(&bootstrap, 100_000);
    drop(idle);
    std::thread::sleep(Duration::from_secs(1));
    let kept = rss_kib(pid).saturating_sub(rss0) / 1024;
    eprintln!("after they closed: relay RSS +{kept} MiB");
    assert!(
        kept < 64,
        "the relay kept {kept} MiB after the sockets closed"
    );

    // 2. One source opening 200 connections at once: its burst, then nothing more, and
    // never more than 64 open at once.
    let t = Instant::now();
    let flood: Vec<TcpStream> = (0..200)
        .map(|_| connect_from("127.0.60.1", target))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let open = still_open(&flood);
    eprintln!(
        "one source, 200 connections in {:.2} s: {open} kept",
        t.elapsed().as_secs_f64()
    );
    assert!(open <= 64, "{open} connections from one source");
    assert!(open >= 16, "the burst itself was refused ({open})");
    probe(&bootstrap, 100_000);
}

#[test]
fn refusals_and_failed_accepts_are_logged_once_a_minute() {
    let dir = tempdir("conn-log");
    let (mut relays, bootstrap) = start_relays(&dir, 3, 180);
    // Relay 1 again, with 64 descriptors: a flood from many sources exhausts them.
    let mut r1 = relays.0.remove(0);
    let _ = r1.kill();
    let _ = r1.wait();
    let log = dir.join("r1-low.log");
    let _low = procs::Procs(vec![
        std::process::Command::new("sh")
            .arg("-c")
            .arg("ulimit -n 64 && exec \"$0\" relay --config \"$1\" --bootstrap \"$2\"")
            .arg(env!("CARGO_BIN_EXE_umbra"))
            .arg(dir.join("r1.toml"))
            .arg(&bootstrap)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    ]);
    let target = relay_listen(&dir, 1);
    procs::wait_listening(target, "the relay with 64 descriptors");
    let mut socks = Vec::new();
    for src in 1..=20 {
        for _ in 0..20 {
            socks.push(connect_from(&format!("127.0.70.{src}"), target));
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines = text
        .lines()
        .filter(|l| l.contains("refusing inbound") || l.contains("accept failed"))
        .count();
    eprintln!("{} connections; log:\n{text}", socks.len());
    assert!(lines >= 1, "the refusals were not reported at all");
    assert!(lines <= 2, "{lines} log lines for one flood");
    // The default filter is `info`: 400 accepted connections, no debug line about them.
    assert!(!text.contains("link accepted"), "{text}");
}

/// Issue 13: a relay's logs go through `tracing`, filtered by `UMBRA_LOG` (RUST_LOG syntax)
/// and redacted: at `debug` the relays log each accepted link, never the peer's address.
#[test]
fn logs_follow_umbra_log_and_never_show_a_peer_address() {
    let dir = tempdir("conn-tracing");
    let (_relays, bootstrap) = start_relays_with(&dir, 3, 190, None, &[("UMBRA_LOG", "debug")]);
    probe(&bootstrap, 10_000);
    std::thread::sleep(Duration::from_millis(300));
    let mut accepted = 0;
    for i in 1..=3 {
        let text = std::fs::read_to_string(dir.join(format!("r{i}.log"))).unwrap();
        for l in text.lines().filter(|l| l.contains("link accepted from")) {
            accepted += 1;
            assert!(l.contains("DEBUG"), "{l}");
            assert!(l.ends_with("link accepted from [redacted]"), "{l}");
        }
        assert!(!text.contains("127."), "a relay logged an address:\n{text}");
    }
    assert!(accepted >= 1, "no relay logged an accepted link at debug");
}
