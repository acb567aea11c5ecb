//! `umbra demo`: a whole network on one machine, and a site to read in the browser.
//!
//! Starts `--relays` relays (each on its own 127.N.0.1 address, so path selection's /16 rule
//! holds) with in-memory stores, writes their bootstrap list, checks a 3-hop circuit with an
//! echo, publishes the bundled sample site through a circuit, and runs a reader with the
//! gateway. Prints the URL to open and how other `umbra` commands join the network. Ctrl-C
//! stops everything and removes the temporary directory unless `--keep`. Not in this
//! module: any protocol logic.

use super::error::RuntimeError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::driver::{Driver, os_rng, wall_now};
use super::gateway::status::StatusInfo;
use super::relay_cmd::signed_descriptor;
use crate::app::NoApp;
use crate::app::echo::Echo;
use crate::crypto::keys::{IdentityKey, LinkKeypair};
use crate::directory::Directory;
use crate::node::{Node, NodeConfig, RelayKeys};
use crate::wire::hex;

/// The bundled sample site's files (`assets/demo-site/`, plus a generated large page).
pub fn sample_site() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (
            "index.html".into(),
            include_bytes!("../../assets/demo-site/index.html").to_vec(),
        ),
        (
            "about.html".into(),
            include_bytes!("../../assets/demo-site/about.html").to_vec(),
        ),
        (
            "style.css".into(),
            include_bytes!("../../assets/demo-site/style.css").to_vec(),
        ),
        (
            "app.js".into(),
            include_bytes!("../../assets/demo-site/app.js").to_vec(),
        ),
        (
            "images/umbra.png".into(),
            include_bytes!("../../assets/demo-site/images/umbra.png").to_vec(),
        ),
    ];
    files.push(("library/index.html".into(), library_page()));
    files
}

/// A page of about 1.5 MiB (48 blocks): large enough that the browser shows it while later
/// blocks are still being fetched and verified.
fn library_page() -> Vec<u8> {
    let mut page = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>The library</title><link rel=\"stylesheet\" href=\"../style.css\"></head><body>\
         <header><h1>The library</h1></header><main><p id=\"library-intro\">Two thousand \
         entries, streamed to your browser block by block as each block's hash checks out.</p>\n",
    );
    let words = [
        "relay",
        "circuit",
        "manifest",
        "block",
        "signature",
        "storer",
        "guard",
        "exit",
        "layer",
        "lookup",
        "bucket",
        "publisher",
        "reader",
        "gateway",
        "origin",
        "address",
    ];
    for i in 0..2000u32 {
        let mut text = String::new();
        for j in 0..100u32 {
            let w = words[((i.wrapping_mul(31) ^ j.wrapping_mul(17)) % 16) as usize];
            text.push_str(w);
            text.push(' ');
        }
        page.push_str(&format!(
            "<article id=\"entry-{i}\"><h2>Entry {i}</h2><p>{text}</p></article>\n"
        ));
    }
    page.push_str("<p id=\"library-end\">End of the library.</p></main></body></html>\n");
    page.into_bytes()
}

/// The demo's options.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Relays to start.
    pub relays: usize,
    /// The gateway's address (a free port is used if it is taken).
    pub gateway: std::net::SocketAddr,
    /// Bytes echoed through a first circuit as a check (0: skip).
    pub echo: u64,
    /// Keep the temporary directory.
    pub keep: bool,
    /// Stop after this many seconds once ready (tests); `None`: run until Ctrl-C.
    pub exit_after: Option<u64>,
}

fn temp_dir() -> Result<PathBuf, RuntimeError> {
    let base = std::env::temp_dir().join(format!("umbra-demo-{}", std::process::id()));
    std::fs::create_dir_all(&base).map_err(RuntimeError::on_file("create", &base))?;
    Ok(base)
}

/// Run the demo. Returns the exit code.
pub fn demo(opts: &DemoOptions) -> Result<i32, RuntimeError> {
    let rt = super::relay_cmd::runtime()?;
    let dir_path = temp_dir()?;
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&rt, run(opts, &dir_path));
    if opts.keep {
        println!("kept {}", dir_path.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir_path);
    }
    result
}

async fn run(opts: &DemoOptions, tmp: &std::path::Path) -> Result<i32, RuntimeError> {
    let now = wall_now();
    let mut rng = os_rng();
    let mut dir = Directory::new();
    let mut nodes = Vec::new();
    let mut bootstrap = String::new();
    for i in 1..=opts.relays.clamp(3, 200) {
        let ip = format!("127.{i}.0.1");
        let listener = tokio::net::TcpListener::bind(format!("{ip}:0"))
            .await
            .map_err(RuntimeError::listen(&ip))?;
        let addr = listener.local_addr().map_err(RuntimeError::listen(&ip))?;
        let keys = RelayKeys {
            identity: IdentityKey::generate(&mut rng),
            link: LinkKeypair::generate(&mut rng),
            onion: LinkKeypair::generate(&mut rng),
        };
        let (signed, verified) = signed_descriptor(&keys, addr, 10_000, now)?;
        bootstrap.push_str(&hex::encode(&signed));
        bootstrap.push('\n');
        dir.insert(verified);
        nodes.push((keys, listener));
    }
    let bootstrap_path = tmp.join("bootstrap.txt");
    std::fs::write(&bootstrap_path, &bootstrap)
        .map_err(RuntimeError::on_file("write", &bootstrap_path))?;
    println!(
        "started {} relays on loopback (each also stores records for the network)",
        nodes.len()
    );
    let dir = Arc::new(dir);
    let epoch = Instant::now();
    for (keys, listener) in nodes {
        let cfg = NodeConfig {
            wall_at_zero: wall_now(),
            ..NodeConfig::default()
        };
        let seeds: Vec<_> = dir.relays().map(|d| d.node_id()).collect();
        let mut node = Node::new(cfg, Some(keys), dir.clone(), os_rng());
        node.enable_dht(crate::time::Time::ZERO, None);
        node.dht_bootstrap(crate::time::Time::ZERO, &seeds);
        tokio::task::spawn_local(async move {
            Driver::new(node, epoch)
                .run(Some(listener), &mut NoApp, std::future::pending())
                .await;
        });
    }
    let reader_cfg = || NodeConfig {
        wall_at_zero: wall_now(),
        ..NodeConfig::default()
    };
    if opts.echo > 0 {
        let node = Node::new(reader_cfg(), None, dir.clone(), os_rng());
        let mut app = Echo::new(opts.echo);
        let _ = Driver::new(node, Instant::now())
            .run(None, &mut app, tokio::time::sleep(Duration::from_secs(60)))
            .await;
        if super::probe::report(&app, false) != 0 {
            return Err(RuntimeError::Network {
                what: "the echo through a 3-hop circuit",
                why: "it did not complete".into(),
            });
        }
    }
    let started = Instant::now();
    let site_key = IdentityKey::generate(&mut rng);
    let files = sample_site();
    let count = files.len();
    let site = super::site_cmd::publish_files((*dir).clone(), site_key, files, 120).await?;
    println!(
        "published the sample site ({count} files) in {} ms",
        started.elapsed().as_millis()
    );
    let (listener, port) = super::gateway::bind(opts.gateway, true).await?;
    let host = opts.gateway.ip();
    let origin = crate::gateway::site_origin(&site, port);
    println!();
    println!("Open the demo site:   {origin}/");
    println!("The dashboard:        http://localhost:{port}/");
    println!(
        "Read it anonymously:  umbra browse --gateway {host}:{port} {site}   (a browser profile that reaches only this gateway)"
    );
    println!();
    println!(
        "This network's bootstrap list is {}",
        bootstrap_path.display()
    );
    println!("Join it from another terminal:");
    println!(
        "  umbra keygen --kind identity --out my-site.key && umbra publish --bootstrap {} --key my-site.key ./my-folder",
        bootstrap_path.display()
    );
    println!(
        "  umbra fetch --bootstrap {} {site}/index.html",
        bootstrap_path.display()
    );
    println!(
        "  umbra run --bootstrap {} --listen 127.0.0.1:8471",
        bootstrap_path.display()
    );
    println!("A site published into this network opens at http://<its address>.localhost:{port}/");
    println!(
        "Press Ctrl-C to stop{}.",
        if opts.keep {
            ""
        } else {
            " (temporary files are removed)"
        }
    );
    println!("ready");
    let node = Node::new(reader_cfg(), None, dir.clone(), os_rng());
    let info = StatusInfo {
        roles: vec!["reader", "gateway"],
        port,
        store_quota: 0,
        cache_quota: 128 << 20,
        started: crate::time::Time::ZERO,
        tor: None,
    };
    let exit_after = opts.exit_after;
    let shutdown = async move {
        match exit_after {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => {
                super::driver::stop_signal().await;
            }
        }
    };
    super::gateway::run_with_gateway(
        Driver::new(node, Instant::now()),
        None,
        (listener, port),
        (info, None, None),
        shutdown,
    )
    .await;
    println!("\nstopped");
    Ok(0)
}
