//! Helpers shared by the test files (each test file uses some of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Every `.rs` file below `dir`, recursively.
pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The simulation seed: `UMBRA_SIM_SEED` if set, else `default`; printed so a failing run
/// can be replayed.
pub fn seed(default: u64) -> u64 {
    let s = std::env::var("UMBRA_SIM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    eprintln!("sim seed = {s} (replay with UMBRA_SIM_SEED={s})");
    s
}
