//! Measures what decides the cell size (protocol-spec/rationale.md#cell-size): the cost of
//! one ChaCha20 pass and one ChaCha20-Poly1305 seal over a range of payload lengths.
//! Prints a table; run with `cargo bench --bench cell_size`.
#![allow(missing_docs, clippy::disallowed_methods)]

use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use std::hint::black_box;
use std::time::Instant;

fn time_per_op(len: usize, iters: u32, mut f: impl FnMut(&mut [u8])) -> f64 {
    let mut buf = vec![0x5au8; len];
    // warm up
    for _ in 0..iters / 10 {
        f(&mut buf);
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..iters {
            f(black_box(&mut buf));
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(iters);
        best = best.min(ns);
    }
    best
}

fn main() {
    let key = [7u8; 32];
    let nonce = [1u8; 12];
    let aead = ChaCha20Poly1305::new(&key.into());
    println!(
        "{:>6} {:>12} {:>10} {:>14} {:>10}",
        "bytes", "chacha20 ns", "GB/s", "chachapoly ns", "GB/s"
    );
    for len in [256usize, 509, 512, 565, 1024, 2048, 4096, 16384, 65535] {
        let iters = (20_000_000 / len) as u32;
        let raw = time_per_op(len, iters, |b| {
            let mut c = chacha20::ChaCha20::new(&key.into(), &nonce.into());
            c.apply_keystream(b);
        });
        let sealed = time_per_op(len, iters, |b| {
            let tag = aead
                .encrypt_in_place_detached(&nonce.into(), b"", b)
                .map(|t| t[0]);
            black_box(tag).ok();
        });
        println!(
            "{:>6} {:>12.0} {:>10.2} {:>14.0} {:>10.2}",
            len,
            raw,
            len as f64 / raw,
            sealed,
            len as f64 / sealed
        );
    }
}
