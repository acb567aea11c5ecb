//! Micro benchmarks of the protocol's hot operations, each beside the raw primitive it is
//! built on, so the overhead of Umbra's code is visible (`docs/performance.md#micro-benchmarks`).
//! Prints a table; run with `cargo bench --bench micro`. Each figure is the best of five
//! timed rounds after a warm-up (the machine is shared; the best round is the least
//! disturbed one).
#![allow(missing_docs, clippy::disallowed_methods, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Instant;

use umbra::crypto::aead::ChaChaPoly;
use umbra::crypto::hop;
use umbra::crypto::keys::{IdentityKey, LinkKeyBinding, LinkKeypair};
use umbra::crypto::layer::{ClientLayers, RelayLayer};
use umbra::crypto::noise::Randomness;
use umbra::crypto::primitives;
use umbra::crypto::rng::UmbraRng;
use umbra::link::{
    Established, HandshakeStep, Handshaking, LinkConfig, MAX_CELLS_PER_FRAME, RelayTarget,
};
use umbra::time::{Time, WallTime};
use umbra::wire::cell::{BODY_LEN, CELL_LEN, CircId, RELAY_PAYLOAD_LEN};
use umbra::wire::restrict::ChanMsg;

/// Nanoseconds per call of `f`: best of five rounds of `iters` calls.
fn ns(iters: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 + 1 {
        f();
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        best = best.min(t.elapsed().as_nanos() as f64 / f64::from(iters));
    }
    best
}

fn row(what: &str, ours: f64, raw_name: &str, raw: f64, bytes: Option<usize>) {
    let rate = bytes.map_or(String::new(), |b| format!("{:>7.2} GB/s", b as f64 / ours));
    println!(
        "{what:<40} {:>10.2} µs {rate:>12}   {raw_name:<34} {:>9.2} µs   x{:.2}",
        ours / 1e3,
        raw / 1e3,
        ours / raw
    );
}

fn hop_keys(rng: &mut UmbraRng, onion: &LinkKeypair) -> (hop::HopKeys, hop::HopKeys) {
    let (c, m1) = hop::client_start(&onion.public(), 1, Randomness::Seeded(rng.array())).unwrap();
    let (_, m2, server) = hop::server(onion, &m1, Randomness::Seeded(rng.array())).unwrap();
    (c.finish(&m2).unwrap(), server)
}

fn link_pair(
    rng: &mut UmbraRng,
    id: &IdentityKey,
    link: &LinkKeypair,
) -> (Established, Established) {
    let now = Time::ZERO;
    let target = RelayTarget {
        node_id: id.public().node_id(),
        link_key: link.public(),
    };
    let local = LinkKeypair::generate(rng);
    let mut d = Handshaking::dial(
        LinkConfig::default(),
        target,
        &local,
        None,
        Randomness::Seeded(rng.array()),
        now,
    )
    .unwrap();
    let l = Handshaking::accept(
        LinkConfig::default(),
        link,
        LinkKeyBinding::sign(id, &link.public()),
        Randomness::Seeded(rng.array()),
        now,
    )
    .unwrap();
    let HandshakeStep::Continue(mut l) = l.handle_bytes(now, &d.poll_transmit().unwrap()).unwrap()
    else {
        unreachable!()
    };
    let HandshakeStep::Done(mut de) = d.handle_bytes(now, &l.poll_transmit().unwrap()).unwrap()
    else {
        unreachable!()
    };
    let m3 = de.poll_transmit(now).unwrap().unwrap();
    let HandshakeStep::Done(le) = l.handle_bytes(now, &m3).unwrap() else {
        unreachable!()
    };
    (de, le)
}

fn main() {
    let mut rng = UmbraRng::from_u64(7);
    println!(
        "{:<40} {:>13} {:>12}   {:<34} {:>12}   overhead",
        "operation", "Umbra", "", "raw primitive", ""
    );

    // Sealed layers, one hop's share, against one AEAD call over the same region.
    let onion = LinkKeypair::generate(&mut rng);
    let mut client = ClientLayers::new();
    for _ in 1..=3u8 {
        client.push(&hop_keys(&mut rng, &onion).0).unwrap();
    }
    let payload = [0x42u8; RELAY_PAYLOAD_LEN];
    let aead = ChaChaPoly::new(&[3; 32]);
    let mut region = vec![0u8; BODY_LEN - 16];
    let raw_seal = ns(200_000, || {
        black_box(aead.seal([0; 12], &[], black_box(&mut region)).unwrap());
    });
    let seal3 = ns(100_000, || {
        black_box(client.seal_forward(3, black_box(&payload)).unwrap());
    });
    row(
        "layers: reader seals 3 hops (one cell)",
        seal3,
        "3 x ChaCha20-Poly1305 seal, 544 B",
        3.0 * raw_seal,
        Some(3 * RELAY_PAYLOAD_LEN),
    );
    // A relay opens its layer: measured on a fresh cell per call (the counter must match),
    // sealed outside the timed region.
    let n = 50_000u32;
    let (c, s) = hop_keys(&mut rng, &onion);
    let mut one = ClientLayers::new();
    one.push(&c).unwrap();
    let mut r1 = RelayLayer::new(1, &s).unwrap();
    let mut cells: Vec<[u8; BODY_LEN]> = (0..n)
        .map(|_| one.seal_forward(1, &payload).unwrap())
        .collect();
    let t = Instant::now();
    for c in &mut cells {
        black_box(r1.open_forward(c).unwrap());
    }
    let open1 = t.elapsed().as_nanos() as f64 / f64::from(n);
    let mut tag = [0u8; 16];
    let raw_open = ns(200_000, || {
        let _ = aead.open([0; 12], &[], black_box(&mut region), black_box(&tag));
        tag[0] = tag[0].wrapping_add(1);
    });
    row(
        "layers: relay opens its layer (one cell)",
        open1,
        "ChaCha20-Poly1305 open, 544 B (bad tag)",
        raw_open,
        Some(RELAY_PAYLOAD_LEN),
    );

    // Hop handshake, both sides, against the X25519 operations it needs (3 per side).
    let x = ns(2_000, || {
        black_box(primitives::x25519(&[5; 32], &onion.public().0).unwrap());
    });
    let client_side = ns(2_000, || {
        let (c, m1) = hop::client_start(&onion.public(), 1, Randomness::Seeded([1; 32])).unwrap();
        black_box((c, m1));
    });
    let (c0, m1) = hop::client_start(&onion.public(), 1, Randomness::Seeded([1; 32])).unwrap();
    let relay_side = ns(2_000, || {
        black_box(hop::server(&onion, &m1, Randomness::Seeded([2; 32])).unwrap());
    });
    let (_, m2, _) = hop::server(&onion, &m1, Randomness::Seeded([2; 32])).unwrap();
    let finish = ns(2_000, || {
        let c = hop::client_start(&onion.public(), 1, Randomness::Seeded([1; 32]))
            .unwrap()
            .0;
        black_box(c.finish(&m2).unwrap());
    }) - client_side;
    drop(c0);
    row(
        "hop handshake: reader side",
        client_side + finish,
        "3 x X25519",
        3.0 * x,
        None,
    );
    row(
        "hop handshake: relay side",
        relay_side,
        "3 x X25519",
        3.0 * x,
        None,
    );
    println!(
        "{:<40} {:>10.0} /s (one core)",
        "  relay hop handshakes per second",
        1e9 / relay_side
    );

    // Link handshake (XK, 3 messages, identity binding), both sides together.
    let id = IdentityKey::generate(&mut rng);
    let link = LinkKeypair::generate(&mut rng);
    let mut lrng = UmbraRng::from_u64(9);
    let hs = ns(500, || {
        black_box(link_pair(&mut lrng, &id, &link));
    });
    let sig = id.sign_raw(b"binding");
    let ed = ns(2_000, || {
        black_box(id.public().verify_raw(b"binding", black_box(&sig))).unwrap();
    });
    row(
        "link handshake, both sides",
        hs,
        "7 x X25519 + 1 Ed25519 verify",
        7.0 * x + ed,
        None,
    );

    // Link transport: a full frame of cells sealed, framed, opened and parsed.
    let (mut a, mut b) = link_pair(&mut lrng, &id, &link);
    let msg = ChanMsg::Relay {
        circ_id: CircId::new(7).unwrap(),
        body: Box::new([0x11; BODY_LEN]),
    };
    let frame_bytes = MAX_CELLS_PER_FRAME * CELL_LEN;
    let transport = ns(5_000, || {
        for _ in 0..MAX_CELLS_PER_FRAME {
            a.send_msg(&msg).unwrap();
        }
        let bytes = a.poll_transmit(Time::ZERO).unwrap().unwrap();
        b.handle_bytes(Time::ZERO, &bytes).unwrap();
        while let Some(m) = b.poll_msg() {
            black_box(m.unwrap());
        }
    });
    let mut frame = vec![0u8; frame_bytes];
    let raw_frame = ns(5_000, || {
        let t = aead.seal([0; 12], &[], &mut frame).unwrap();
        let _ = aead.open([0; 12], &[], &mut frame, &t);
    });
    row(
        &format!("link: {MAX_CELLS_PER_FRAME} cells sent and received"),
        transport,
        "ChaCha20-Poly1305 seal + open, 64 KiB",
        raw_frame,
        Some(frame_bytes),
    );

    // Manifest verification (100 files) and block hashing.
    let key = IdentityKey::generate(&mut rng);
    let files: Vec<(String, Vec<u8>)> = (0..100)
        .map(|i| (format!("f{i:03}.bin"), vec![i as u8; 4096]))
        .collect();
    let now = WallTime(1_800_000_000);
    let built = umbra::site::build(&key, &files, 1, now, 86_400).unwrap();
    let address = built.parsed.address();
    let verify = ns(2_000, || {
        let u = umbra::site::manifest::parse(black_box(&built.manifest)).unwrap();
        black_box(u.verify(&address, now).unwrap());
    });
    let msig = key.sign_raw(&built.manifest);
    let raw_verify = ns(2_000, || {
        black_box(key.public().verify_raw(&built.manifest, black_box(&msig))).unwrap();
    });
    row(
        &format!("manifest: parse + verify ({} B)", built.manifest.len()),
        verify,
        "Ed25519 verify of the same bytes",
        raw_verify,
        None,
    );
    let block = vec![0x77u8; umbra::site::manifest::BLOCK_SIZE];
    let h = umbra::crypto::hash::hash(&block);
    let check = ns(5_000, || {
        black_box(umbra::site::verify_block(&h, black_box(&block))).unwrap();
    });
    let raw_hash = ns(5_000, || {
        black_box(blake3::hash(black_box(&block)));
    });
    row(
        "block: hash check (32 KiB)",
        check,
        "BLAKE3, 32 KiB",
        raw_hash,
        Some(block.len()),
    );
}
