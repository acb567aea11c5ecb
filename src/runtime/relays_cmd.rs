//! `umbra relays`: the relays this node learns from the network, verified
//! (`protocol-spec/10-directory.md`). A reader starts from the bootstrap contacts and the
//! cached directory, reconciles once with its guard, prints the directory (a table, or JSON
//! with `--json`) and saves it to the cache.
//!
//! Not in this module: the reconciliation (`directory::sync`, `app::relays`).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::driver::{Driver, os_rng, wall_now};
use super::error::RuntimeError;
use super::relay_cmd::{load_directory, save_directory};
use crate::app::App;
use crate::app::relays::LearnRelays;
use crate::directory::{Directory, Roles};
use crate::node::{Node, NodeConfig};
use crate::wire::hex;

fn roles(r: Roles) -> String {
    let mut s = String::new();
    for (flag, c) in [(Roles::GUARD, 'G'), (Roles::RELAY, 'M'), (Roles::EXIT, 'E')] {
        s.push(if r.contains(flag) { c } else { '-' });
    }
    s
}

fn span(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn family(f: &[u8; 32]) -> String {
    if *f == [0; 32] {
        "-".to_string()
    } else {
        hex::encode(&f[..6])
    }
}

/// Print `dir` as a table or as JSON.
fn print(dir: &Directory, json: bool) {
    let now = wall_now().0;
    if json {
        let list: Vec<serde_json::Value> = dir
            .relays()
            .map(|d| {
                let id = d.node_id();
                let seen = dir.first_seen(&id).map_or(now, |t| t.0);
                serde_json::json!({
                    "id": hex::encode(&id.0),
                    "address": d.addr.to_string(),
                    "family": (d.family != [0; 32]).then(|| hex::encode(&d.family)),
                    "bandwidth_kib": d.bandwidth,
                    "age_secs": now.saturating_sub(seen),
                    "published": d.published.0,
                    "expires": d.expires.0,
                    "flags": roles(d.roles),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_else(|_| "[]".into())
        );
        return;
    }
    println!(
        "{:<16}  {:<22}  {:<12}  {:>9}  {:>5}  {:>8}  flags",
        "id", "address", "family", "bw KiB/s", "age", "expires"
    );
    for d in dir.relays() {
        let id = d.node_id();
        let seen = dir.first_seen(&id).map_or(now, |t| t.0);
        println!(
            "{:<16}  {:<22}  {:<12}  {:>9}  {:>5}  {:>8}  {}",
            &hex::encode(&id.0)[..16],
            d.addr.to_string(),
            family(&d.family),
            d.bandwidth,
            span(now.saturating_sub(seen)),
            span(d.expires.0.saturating_sub(now)),
            roles(d.roles)
        );
    }
    println!("{} relays", dir.len());
}

/// `umbra relays`.
pub fn relays(
    bootstrap: &Path,
    json: bool,
    timeout: u64,
    data_dir: &Path,
    directory: crate::directory::sync::SyncConfig,
) -> ExitCode {
    let r = (|| -> Result<bool, RuntimeError> {
        let cache = data_dir.join("directory.txt");
        let dir = load_directory(Some(bootstrap), &cache)?;
        let rt = super::relay_cmd::runtime()?;
        rt.block_on(async move {
            let cfg = NodeConfig {
                wall_at_zero: wall_now(),
                directory,
                ..NodeConfig::default()
            };
            let node = Node::new(cfg, None, Arc::new(dir), os_rng());
            let mut app = LearnRelays::new();
            let limit = tokio::time::sleep(Duration::from_secs(timeout));
            let (_, node) = Driver::new(node, Instant::now())
                .run_keep(None, &mut app, limit)
                .await;
            let ok = app.finished() == Some(0);
            if !ok {
                tracing::warn!(
                    "no relay answered within {timeout} s: showing what the contacts and the cache hold"
                );
            }
            if std::fs::create_dir_all(data_dir).is_ok() {
                save_directory(node.directory(), &cache);
            }
            print(node.directory(), json);
            Ok(ok)
        })
    })();
    super::cli::done("relays", r)
}
