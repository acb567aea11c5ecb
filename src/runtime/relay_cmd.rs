//! `umbra relay` and `umbra probe`: start a node on the tokio driver.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::driver::{Driver, os_rng, wall_now};
use super::error::RuntimeError;
use crate::app::App;
use crate::app::echo::Echo;
use crate::app::pinner::{PinHome, Pinner};
use crate::crypto::keys::{IdentityKey, LinkKeypair};
use crate::crypto::keystore;
use crate::directory::{Descriptor, Directory, Roles};
use crate::node::{Node, NodeConfig, RelayKeys};
use crate::relay::RelayLimits;
use crate::wire::hex;

/// How long a relay's descriptor is valid.
const DESCRIPTOR_LIFETIME: u64 = 3 * 24 * 3600;

pub(crate) fn load_or_create(dir: &Path) -> Result<RelayKeys, RuntimeError> {
    super::store::private_dir(dir).map_err(RuntimeError::on_file("create", dir))?;
    let mut rng = os_rng();
    let id_path = dir.join("identity.key");
    let link_path = dir.join("link.key");
    let onion_path = dir.join("onion.key");
    if !id_path.exists() {
        keystore::write_identity(&id_path, &IdentityKey::generate(&mut rng))?;
    }
    if !link_path.exists() {
        keystore::write_static(&link_path, &LinkKeypair::generate(&mut rng))?;
    }
    if !onion_path.exists() {
        keystore::write_static(&onion_path, &LinkKeypair::generate(&mut rng))?;
    }
    Ok(RelayKeys {
        identity: keystore::read_identity(&id_path)?,
        link: keystore::read_static(&link_path)?,
        onion: keystore::read_static(&onion_path)?,
    })
}

/// Sign a descriptor for `keys` at `addr`, valid from `now` for [`DESCRIPTOR_LIFETIME`];
/// returns the wire encoding and the verified descriptor.
pub(crate) fn signed_descriptor(
    keys: &RelayKeys,
    addr: std::net::SocketAddr,
    bandwidth: u32,
    now: crate::time::WallTime,
) -> Result<(Vec<u8>, crate::directory::Verified), RuntimeError> {
    signed_descriptor_for(keys, addr, bandwidth, now, (DESCRIPTOR_LIFETIME, None))
}

/// [`signed_descriptor`] valid for `lifetime` seconds.
pub(crate) fn signed_descriptor_for(
    keys: &RelayKeys,
    addr: std::net::SocketAddr,
    bandwidth: u32,
    now: crate::time::WallTime,
    (lifetime, family): (u64, Option<&crate::crypto::keys::IdentityKey>),
) -> Result<(Vec<u8>, crate::directory::Verified), RuntimeError> {
    let desc = Descriptor {
        identity: keys.identity.public(),
        addr,
        link_key: keys.link.public(),
        onion_key: keys.onion.public(),
        bandwidth,
        family: family.map_or([0; 32], |f| f.public().to_bytes()),
        family_cert: family.map(|f| crate::directory::family_cert(f, &keys.identity.public())),
        roles: Roles::ALL,
        published: now,
        expires: crate::time::WallTime(now.0 + lifetime),
    };
    let signed = desc.sign(&keys.identity)?;
    let verified = crate::directory::parse(&signed).and_then(|u| u.verify(now))?;
    Ok((signed, verified))
}

/// The bootstrap contacts and, when `cache` exists, the directory learned last time
/// (`10-directory.md#cache`), every line verified again.
pub(crate) fn load_directory(
    bootstrap: Option<&Path>,
    cache: &Path,
) -> Result<Directory, RuntimeError> {
    let mut dir = match bootstrap {
        Some(p) => load_bootstrap(p)?,
        None => Directory::new(),
    };
    if let Ok(text) = std::fs::read_to_string(cache) {
        let (cached, errors) = Directory::from_bootstrap(&text, wall_now());
        if !errors.is_empty() {
            tracing::debug!(
                "{}: {} cached descriptors skipped (expired or bad)",
                cache.display(),
                errors.len()
            );
        }
        dir.merge(cached);
    }
    Ok(dir)
}

/// Save the directory the node learned (`10-directory.md#cache`): written to a temporary
/// file and renamed, so a crash never leaves half a cache.
pub(crate) fn save_directory(dir: &Directory, cache: &Path) {
    let tmp = cache.with_extension("txt.new");
    let text = format!(
        "# umbra: relays learned from the network, kept between runs (10-directory.md#cache)\n{}",
        dir.to_cache_text()
    );
    let r = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, cache));
    if let Err(e) = r {
        tracing::warn!(
            "could not save the directory cache {}: {e}",
            cache.display()
        );
    }
}

pub(crate) fn load_bootstrap(path: &Path) -> Result<Directory, RuntimeError> {
    let text = std::fs::read_to_string(path).map_err(RuntimeError::on_file("read", path))?;
    let (dir, errors) = Directory::from_bootstrap(&text, wall_now());
    for (line, e) in &errors {
        tracing::warn!("{}:{line}: descriptor skipped: {e}", path.display());
    }
    if dir.is_empty() {
        return Err(RuntimeError::Usage(format!(
            "{}: no valid relay descriptor",
            path.display()
        )));
    }
    Ok(dir)
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, RuntimeError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RuntimeError::system("start the async runtime"))
}

/// `umbra relay`.
pub fn relay(
    cfg: &super::config::RelayConfig,
    (dht, directory, spend): (
        crate::dht::DhtConfig,
        crate::directory::sync::SyncConfig,
        crate::limits::Limits,
    ),
    init_only: bool,
    gateway: Option<std::net::SocketAddr>,
) -> ExitCode {
    let (Some(data_dir), Some(listen)) = (cfg.data_dir.as_deref(), cfg.listen) else {
        eprintln!(
            "umbra relay: both a data directory and a listen address are needed \
             (--data-dir, --listen, or [relay] in --config)"
        );
        return ExitCode::from(2);
    };
    let cost = super::calibrate::hop_handshake_cost(&mut os_rng());
    let limits = RelayLimits {
        max_circuits: cfg.max_circuits,
        max_circuits_per_link: cfg.max_circuits_per_link,
        handshake_cost: cost,
        cpu_percent: spend.cpu_percent,
        creates_per_sec: cfg.creates_per_sec,
        create_burst: cfg.create_burst,
        ..RelayLimits::default()
    };
    let result = relay_inner(
        data_dir,
        listen,
        cfg.bootstrap.as_deref(),
        (init_only, cfg.family_key.as_deref()),
        (advertised(cfg.bandwidth_kib, &spend), limits, spend),
        (dht, cfg.store_quota_mib << 20, directory),
        gateway,
    );
    super::cli::done("relay", result.map(|()| true))
}

/// The bandwidth a relay advertises (KiB/s, its path-selection weight): what its operator
/// said, but never more than its `relayed` limit, else its total `rate`
/// (`09-relay.md#bandwidth`), so readers do not send it more than it will carry.
/// With a monthly quota, never more than the quota's mean rate (`09-relay.md#accounting`).
fn advertised(bandwidth_kib: u32, limits: &crate::limits::Limits) -> u32 {
    let month = limits
        .accounting
        .map(|a| (a.quota as f64 / (30.44 * 86_400.0)) as u64);
    [limits.relayed.or(limits.rate), month]
        .into_iter()
        .flatten()
        .map(|rate| u32::try_from((rate >> 10).max(1)).unwrap_or(u32::MAX))
        .fold(bandwidth_kib, u32::min)
}

fn relay_inner(
    data_dir: &Path,
    listen: std::net::SocketAddr,
    bootstrap: Option<&Path>,
    (init_only, family_key): (bool, Option<&Path>),
    (bandwidth, limits, spend): (u32, RelayLimits, crate::limits::Limits),
    (dht, store_quota, directory): (
        crate::dht::DhtConfig,
        u64,
        crate::directory::sync::SyncConfig,
    ),
    gateway: Option<std::net::SocketAddr>,
) -> Result<(), RuntimeError> {
    let keys = load_or_create(data_dir)?;
    let family = family_key
        .map(crate::crypto::keystore::read_identity)
        .transpose()?;
    let now = wall_now();
    let (signed, own) = signed_descriptor_for(
        &keys,
        listen,
        bandwidth,
        now,
        (directory.lifetime.as_secs(), family.as_ref()),
    )?;
    let desc_path = data_dir.join("descriptor");
    std::fs::write(&desc_path, format!("{}\n", hex::encode(&signed)))
        .map_err(RuntimeError::on_file("write", &desc_path))?;
    println!(
        "relay {} descriptor written to {}",
        keys.identity.public().node_id(),
        desc_path.display()
    );
    if init_only {
        return Ok(());
    }
    let cache = data_dir.join("directory.txt");
    let mut dir = load_directory(bootstrap, &cache)?;
    dir.insert(own);
    let rt = runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(RuntimeError::listen(listen))?;
        let epoch = Instant::now();
        let cfg = NodeConfig {
            wall_at_zero: wall_now(),
            relay_limits: limits,
            limits: spend,
            dht,
            store_quota,
            directory,
            ..NodeConfig::default()
        };
        let mut store =
            super::store::RedbStore::open(&data_dir.join("store.redb"), cfg.store_quota)?;
        // Commits (and their syncs) run off the owner task (`06-dht.md#store`).
        let durable = store
            .commit_in_background()
            .map_err(RuntimeError::system("start the store's committer"))?;
        let mut seeds: Vec<_> = dir.relays().map(|d| d.node_id()).collect();
        let mut node = Node::new(cfg, Some(keys), Arc::new(dir), os_rng());
        node.enable_dht(crate::time::Time::ZERO, Some(Box::new(store)));
        // Rejoin from the contacts saved at the last shutdown, as well as the bootstrap list.
        seeds.extend(
            node.saved_peers()
                .into_iter()
                .filter(|p| node.directory().get(p).is_some()),
        );
        seeds.sort_unstable();
        seeds.dedup();
        node.dht_bootstrap(crate::time::Time::ZERO, &seeds);
        println!("relay listening on {listen}");
        let shutdown = async {
            super::driver::stop_signal().await;
        };
        let driver = Driver::new(node, epoch).with_durable(durable);
        let mut node = match gateway {
            Some(addr) => {
                let (gw, port) = super::gateway::bind(addr, false).await?;
                println!("dashboard: http://localhost:{port}/");
                let info = super::gateway::status::StatusInfo {
                    roles: vec!["relay", "storer", "exit", "reader", "gateway"],
                    port,
                    store_quota,
                    cache_quota: 64 << 20,
                    started: crate::time::Time::ZERO,
                    tor: None,
                };
                // The gateway's memory of manifests seen: its own file, since the node's
                // store is the storer's (`07-sites.md#memory`).
                let memory = super::site_cmd::open_cache(
                    "relay gateway",
                    Some((data_dir.join("gateway.redb"), 0)),
                );
                super::gateway::run_with_gateway(
                    driver,
                    Some(listener),
                    (gw, port),
                    (info, memory, Some(Pinner::new(PinHome::Dht))),
                    shutdown,
                )
                .await
            }
            None => {
                // Pins kept in the relay's store are checked without a dashboard too.
                let mut pins = Pinner::new(PinHome::Dht);
                driver.run_keep(Some(listener), &mut pins, shutdown).await.1
            }
        };
        node.flush_accounting(crate::time::Time::from_micros(
            u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX),
        ));
        node.save_peers();
        save_directory(node.directory(), &cache);
        println!(
            "relay stopped; {} DHT contacts saved",
            node.saved_peers().len()
        );
        Ok(())
    })
}

/// `umbra probe`.
pub fn probe(
    bootstrap: &Path,
    bytes: u64,
    timeout: u64,
    (tor, data_dir): (&super::config::TorSection, &Path),
) -> ExitCode {
    let result = (|| -> Result<i32, RuntimeError> {
        let dir = load_bootstrap(bootstrap)?;
        let rt = runtime()?;
        rt.block_on(async move {
            let (dialer, tor_status) = super::driver::Dialer::for_reader(tor, data_dir, false)?;
            let epoch = Instant::now();
            let cfg = NodeConfig {
                wall_at_zero: wall_now(),
                ..NodeConfig::default()
            };
            let node = Node::new(cfg, None, Arc::new(dir), os_rng());
            let mut app = Echo::new(bytes);
            let limit = tokio::time::sleep(Duration::from_secs(timeout));
            let _ = Driver::new(node, epoch)
                .with_dialer(dialer)
                .run(None, &mut app, limit)
                .await;
            if let Some(t) = tor_status {
                let t = t.get();
                println!(
                    "Tor first hop: {} guard link(s) through Tor, {} retried",
                    t.links, t.retries
                );
            }
            if app.finished().is_none() {
                eprintln!("umbra probe: timed out after {timeout} s");
            }
            Ok(super::probe::report(&app, app.finished().is_none()))
        })
    })();
    super::cli::done("probe", result.map(|code| code == 0))
}
