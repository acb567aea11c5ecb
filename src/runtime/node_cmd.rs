//! `umbra init`, `umbra run` and `umbra status`: the everyday commands of a reader.
//!
//! `init` writes keys and a commented `umbra.toml`; `run` joins the network from the
//! bootstrap list as a reader with the gateway and dashboard; `status` prints the running
//! node's status API. Not in this module: the gateway itself (`gateway/`), relays
//! (`relay_cmd.rs`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::driver::{os_rng, wall_now};
use super::error::RuntimeError;
use super::gateway::status::StatusInfo;
use super::relay_cmd::{load_directory, save_directory};
use crate::app::pinner::{PinHome, Pinner};
use crate::crypto::keys::IdentityKey;
use crate::crypto::keystore;
use crate::node::{Node, NodeConfig};

/// `umbra init`: create `data_dir`, a site key, relay keys, and `umbra.toml`.
pub fn init(data_dir: &Path) -> Result<(), RuntimeError> {
    super::store::private_dir(data_dir).map_err(RuntimeError::on_file("create", data_dir))?;
    let config = data_dir.join("umbra.toml");
    if config.exists() {
        return Err(RuntimeError::Usage(format!(
            "{} exists; init never overwrites (move it away to start again)",
            config.display()
        )));
    }
    let site_key = data_dir.join("site.key");
    if !site_key.exists() {
        keystore::write_identity(&site_key, &IdentityKey::generate(&mut os_rng()))?;
    }
    super::relay_cmd::load_or_create(data_dir)?;
    std::fs::write(&config, super::config::template(data_dir))
        .map_err(RuntimeError::on_file("write", &config))?;
    println!("wrote {}", config.display());
    println!(
        "wrote keys in {} (site.key: your site's key; identity.key, link.key, onion.key: \
         for `umbra relay`)",
        data_dir.display()
    );
    println!("next:");
    println!(
        "  umbra run --config {} --bootstrap relays.txt      read sites in your browser",
        config.display()
    );
    println!(
        "  umbra publish --key {} --bootstrap relays.txt ./my-site",
        site_key.display()
    );
    Ok(())
}

/// `umbra run`: a reader with the gateway, until Ctrl-C. `state`: the reader's cache file
/// and quota (shared with `umbra fetch`), where its guards (`protocol-spec/09-relay.md#guards`)
/// and its memory of manifests seen (`07-sites.md#memory`) are kept across runs.
pub fn run(
    (bootstrap, directory, limits): (
        &Path,
        crate::directory::sync::SyncConfig,
        crate::limits::Limits,
    ),
    gateway: SocketAddr,
    cache_quota: u64,
    state: Option<(std::path::PathBuf, u64)>,
    (tor, data_dir): (&super::config::TorSection, &Path),
) -> Result<(), RuntimeError> {
    // The contacts, and the relays learned last time (`10-directory.md#cache`).
    let cache = data_dir.join("directory.txt");
    let dir = load_directory(Some(bootstrap), &cache)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RuntimeError::system("start the async runtime"))?;
    rt.block_on(async move {
        let (listener, port) = super::gateway::bind(gateway, false).await?;
        let cfg = NodeConfig {
            wall_at_zero: wall_now(),
            directory,
            limits,
            ..NodeConfig::default()
        };
        let relays = dir.relays().count();
        let (dialer, tor) = super::driver::Dialer::for_reader(tor, data_dir, false)?;
        if tor.is_some() {
            println!("umbra: guard links go through Tor (bootstrapping in the background)");
        }
        let mut node = Node::new(cfg, None, Arc::new(dir), os_rng());
        let state = super::site_cmd::open_cache("run", state);
        // Pins live in the cache file, exempt from its quota (`07-sites.md#pinning`).
        let pins = state.clone().map(|c| {
            let store: Arc<std::sync::Mutex<dyn crate::dht::store::RecordStore>> = c;
            Pinner::new(PinHome::Store(store))
        });
        if let Some(g) = state.as_ref().and_then(|c| c.lock().ok()?.load_guards()) {
            node.set_guards(g);
        }
        // The accounting period a reader kept when it last stopped (`09-relay.md#accounting`).
        let saved = state
            .as_ref()
            .and_then(|c| c.lock().ok()?.read_state(crate::node::ACCOUNTING_STATE))
            .and_then(|b| crate::limits::period::PeriodState::decode(&b).ok());
        if let Some(s) = saved {
            node.restore_accounting(crate::time::Time::ZERO, s);
        }
        println!("umbra: reader with {relays} known relays (it learns the rest from the network)");
        println!("dashboard: http://localhost:{port}/");
        println!("sites:     http://<address>.localhost:{port}/  (or HTTP proxy {gateway} and http://<address>.umbra/)");
        let info = StatusInfo {
            roles: vec!["reader", "gateway"],
            port,
            store_quota: 0,
            cache_quota,
            started: crate::time::Time::ZERO,
            tor,
        };
        let shutdown = async {
            super::driver::stop_signal().await;
        };
        let epoch = Instant::now();
        let mut node = super::gateway::run_with_gateway(
            super::driver::Driver::new(node, epoch).with_dialer(dialer),
            None,
            (listener, port),
            (info, state.clone(), pins),
            shutdown,
        )
        .await;
        node.flush_accounting(crate::time::Time::from_micros(
            u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX),
        ));
        if let Some(s) = state.as_ref().and_then(|c| c.lock().ok()) {
            let _ = s.save_guards(node.guards());
            if let Some(p) = node.accounting() {
                let _ = s.write_state(crate::node::ACCOUNTING_STATE, &p.state().encode());
            }
        }
        if std::fs::create_dir_all(data_dir).is_ok() {
            save_directory(node.directory(), &cache);
        }
        println!("\nstopped");
        Ok(())
    })
}

/// Fetch `path` from the gateway at `addr` (plain HTTP/1.1 on loopback).
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), RuntimeError> {
    http_request(addr, "GET", path, Duration::from_secs(10))
}

/// Ask the gateway at `addr` `method path`, waiting at most `wait` for the answer. A
/// control request (not GET) carries the header that only local programs can send
/// (`08-gateway.md#control`).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    wait: Duration,
) -> Result<(u16, String), RuntimeError> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(
        RuntimeError::connect(format_args!("a node at {addr} (is `umbra run` running?)")),
    )?;
    let _ = s.set_read_timeout(Some(wait));
    let control = if method == "GET" {
        ""
    } else {
        "X-Umbra-Control: 1\r\nContent-Length: 0\r\n"
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost:{}\r\n{control}Connection: close\r\n\r\n",
        addr.port()
    )
    .map_err(RuntimeError::connect(addr))?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)
        .map_err(RuntimeError::connect(addr))?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let bad = |detail: &str| RuntimeError::BadAnswer {
        what: "the node's gateway",
        detail: detail.to_string(),
    };
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no end of the HTTP head"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("malformed status line"))?;
    Ok((status, body.to_string()))
}

pub(crate) fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// `umbra status`'s limits lines (`09-relay.md#bandwidth`).
fn print_limits(l: &serde_json::Value) {
    let n = |p: &str| l.pointer(p).and_then(serde_json::Value::as_u64);
    let limit = |p: &str| n(p).map_or("none".to_string(), |r| format!("{}/s", bytes(r)));
    let classes: Vec<String> = ["own", "relayed", "dht", "seeding"]
        .iter()
        .map(|c| {
            format!(
                "{c} {} in, {} out (limit {})",
                bytes(n(&format!("/classes/{c}/in/bytes")).unwrap_or(0)),
                bytes(n(&format!("/classes/{c}/out/bytes")).unwrap_or(0)),
                limit(&format!("/classes/{c}/out/limit"))
            )
        })
        .collect();
    println!(
        "limits:     total {} each way; {}",
        limit("/total/rate"),
        classes.join("; ")
    );
    println!(
        "            {} cells waiting ({} of {} memory); circuits closed: {} for memory, {} \
         for overrunning their window; {} links dropped unread",
        n("/held_cells").unwrap_or(0),
        bytes(n("/memory/held_bytes").unwrap_or(0)),
        bytes(n("/memory/limit").unwrap_or(0)),
        n("/closed_for_memory").unwrap_or(0),
        n("/closed_for_overrun").unwrap_or(0),
        n("/links_dropped_unread").unwrap_or(0)
    );
    if l["accounting"].is_object() {
        println!(
            "accounting: {} of {} used this period (in {}, out {}), paced at {}/s",
            bytes(
                n("/accounting/used_in")
                    .unwrap_or(0)
                    .max(n("/accounting/used_out").unwrap_or(0))
            ),
            bytes(n("/accounting/quota").unwrap_or(0)),
            bytes(n("/accounting/used_in").unwrap_or(0)),
            bytes(n("/accounting/used_out").unwrap_or(0)),
            bytes(n("/accounting/pace_bytes_per_sec").unwrap_or(0))
        );
    }
    if l["handshakes"].is_object() {
        println!(
            "handshakes: {} CREATEs answered, {} waiting, {} refused overloaded, {} over their \
             source's rate; CPU budget {}% of a core",
            n("/handshakes/answered").unwrap_or(0),
            n("/handshakes/queued").unwrap_or(0),
            n("/handshakes/refused_overloaded").unwrap_or(0),
            n("/handshakes/refused_rate").unwrap_or(0),
            n("/cpu_percent").unwrap_or(100)
        );
    }
}

/// `umbra status`: the running node's status, readable (or raw JSON).
pub fn status(addr: SocketAddr, json: bool) -> Result<(), RuntimeError> {
    let (code, body) = http_get(addr, "/api/status")?;
    if code != 200 {
        return Err(RuntimeError::BadAnswer {
            what: "the node",
            detail: format!("status {code}: {body}"),
        });
    }
    if json {
        println!("{body}");
        return Ok(());
    }
    let v: serde_json::Value = serde_json::from_str(&body)?;
    let n = |p: &str| {
        v.pointer(p)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let roles: Vec<&str> = v["roles"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r.as_str()).collect())
        .unwrap_or_default();
    println!("roles:      {}", roles.join(", "));
    if v["tor"].is_object() {
        println!(
            "tor:        {} {}%, {} guard link(s) through Tor, {} retried{}",
            v["tor"]["state"].as_str().unwrap_or("?"),
            n("/tor/percent"),
            n("/tor/links"),
            n("/tor/retries"),
            v["tor"]["last_error"]
                .as_str()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default()
        );
    }
    println!("uptime:     {} s, {} links", n("/uptime_secs"), n("/links"));
    let own = v["circuits"]["own"].as_array().cloned().unwrap_or_default();
    println!(
        "circuits:   {} own, {} relayed for others",
        own.len(),
        n("/circuits/relayed")
    );
    for c in own {
        let hops: Vec<&str> = c["hops"]
            .as_array()
            .map(|a| a.iter().filter_map(|h| h.as_str()).collect())
            .unwrap_or_default();
        println!(
            "            {} via {}",
            c["purpose"].as_str().unwrap_or("?"),
            hops.join(" → ")
        );
    }
    println!(
        "bandwidth:  own {}, relayed {}, DHT {}, seeding {}",
        bytes(n("/bandwidth/totals/own")),
        bytes(n("/bandwidth/totals/relayed")),
        bytes(n("/bandwidth/totals/dht")),
        bytes(n("/bandwidth/totals/seeding"))
    );
    print_limits(&v["limits"]);
    println!(
        "storage:    {} of {} ({} records); gateway cache {} of {}",
        bytes(n("/storage/store_used")),
        bytes(n("/storage/store_quota")),
        n("/storage/records"),
        bytes(n("/storage/cache_used")),
        bytes(n("/storage/cache_quota"))
    );
    let sites = v["serving"]["sites"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    println!("serving:    {} site manifests", sites.len());
    for s in sites {
        println!("            {}", s["address"].as_str().unwrap_or("?"));
    }
    println!(
        "gateway:    port {}, {} requests, {} errors, {} served",
        n("/gateway/port"),
        n("/gateway/requests"),
        n("/gateway/errors"),
        bytes(n("/gateway/bytes_out"))
    );
    println!(
        "directory:  {} relays{}",
        n("/directory/relays"),
        v.pointer("/directory/last_sync_secs_ago")
            .and_then(serde_json::Value::as_u64)
            .map(|s| format!(", last reconciled {s} s ago"))
            .unwrap_or_else(|| ", not reconciled yet".into())
    );
    for w in v["writers"].as_array().cloned().unwrap_or_default() {
        let count = |k: &str| w[k].as_u64().unwrap_or(0);
        println!(
            "writers:    {}: roster {}, {} writers besides the site key, {} lines, {} conflicts, \
             branches [{}]",
            w["site"].as_str().unwrap_or("?"),
            count("roster"),
            w["writers"].as_array().map_or(0, Vec::len),
            count("lines"),
            count("conflicts"),
            w["branches"]
                .as_array()
                .map(|b| b
                    .iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        );
    }
    let proofs = v["equivocations"].as_array().cloned().unwrap_or_default();
    if proofs.is_empty() {
        println!("equivocation: none seen");
    }
    for p in proofs {
        println!(
            "WARNING: site {} signed two manifests with sequence {} (seen as {}); the first \
             one stays in use",
            p["site"].as_str().unwrap_or("?"),
            p["seq"].as_u64().unwrap_or(0),
            p["seen_as"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}
