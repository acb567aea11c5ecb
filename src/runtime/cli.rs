//! `umbra` command line.
//!
//! Subcommands: `interop` (the conformance kit), `keygen` (write a key file), and `demo`
//! (the newcomer's first command). Not in this module: what the commands compute.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use super::interop_cmd::interop_cmd;
use crate::interop::RunOptions;

/// Umbra: a node for an anonymous peer-to-peer web.
#[derive(Debug, Parser)]
#[command(
    name = "umbra",
    version,
    about,
    long_about = None,
    after_help = "Environment:\n  UMBRA_LOG=FILTER    which logs go to stderr, RUST_LOG syntax (default info; \
                  UMBRA_LOG=debug adds accepted links and peers' protocol errors)\n  \
                  UMBRA_NO_REDACT=1   show peer and site addresses in logs (local debugging only)"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check Umbra against every bundled test vector, or against one external vector file.
    ///
    /// Without --vectors, runs the public vectors Umbra relies on (the whole cacophony Noise
    /// file, RFC 7748, RFC 8439, RFC 8032, BLAKE3) and Umbra's own golden vectors. With
    /// --vectors, detects the file's format: cacophony or noise-c Noise vectors (every 25519
    /// suite: ChaChaPoly or AESGCM with BLAKE2s, BLAKE2b, SHA256 or SHA512, PSK patterns
    /// included; 448 is skipped), or Project Wycheproof (XDH, CHACHA20-POLY1305,
    /// XCHACHA20-POLY1305, EDDSA).
    ///
    /// With --peer, runs live conformance cases against a running relay of any
    /// implementation instead: each case opens its own link as a reader, does one valid or
    /// hostile thing and checks the answer the spec requires (interop/README.md#live-cases).
    ///
    /// Example: umbra interop --vectors wycheproof/testvectors_v1/x25519_test.json
    /// Example: umbra interop --peer 127.0.0.1:4000 --descriptor relay/descriptor --json r.json
    Interop(super::interop_cmd::InteropArgs),
    /// Write a new key file (mode 0600). Refuses to overwrite an existing file.
    ///
    /// Example: umbra keygen --kind identity --out ~/.local/share/umbra/identity.key
    Keygen {
        /// Which key: `identity` (Ed25519) or `link` (X25519 static).
        #[arg(long, default_value = "identity")]
        kind: String,
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Run a relay: accept links, carry circuits, run the echo service as an exit.
    ///
    /// Keys live in --data-dir (created on first run, mode 0600). The relay signs a fresh
    /// descriptor at every start and writes it to DATA_DIR/descriptor (one hex line), the
    /// format of a bootstrap list entry. With --init-only it stops there.
    ///
    /// Settings come from the `[relay]` section of --config (umbra.toml), overridden by flags.
    ///
    /// Example: umbra relay --config umbra.toml --bootstrap relays.txt
    /// Example: umbra relay --data-dir /var/lib/umbra --listen 0.0.0.0:4400 --bootstrap relays.txt
    Relay {
        /// The configuration file (TOML, section `[relay]`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Where keys and the descriptor live.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Address to listen on (also the address in the descriptor).
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Contacts to join through: one hex descriptor per line (one reachable relay is
        /// enough; the rest is learned from the network).
        #[arg(long, value_name = "FILE")]
        bootstrap: Option<PathBuf>,
        /// Create keys and write the descriptor, then exit.
        #[arg(long)]
        init_only: bool,
        /// Advertised bandwidth in KiB/s (path-selection weight; default 10000).
        #[arg(long)]
        bandwidth: Option<u32>,
        /// Most circuits carried at once (default 20000).
        #[arg(long)]
        max_circuits: Option<usize>,
        /// Also serve the dashboard (and a gateway) on this address; loopback only (any other
        /// address is refused: whoever can connect could use the node).
        #[arg(long, value_name = "ADDR")]
        gateway: Option<std::net::SocketAddr>,
        /// Limits (`[limits]` in --config; each flag overrides its key).
        #[command(flatten)]
        limits: super::limits_config::LimitFlags,
    },
    /// Create a data directory with keys and a commented umbra.toml (every default shown).
    ///
    /// Example: umbra init
    /// Example: umbra init --data-dir ./my-node
    Init {
        /// Where (default: $XDG_DATA_HOME/umbra, else ~/.local/share/umbra).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Join the network as a reader and serve the browser gateway and dashboard. To read
    /// anonymously, open sites with `umbra browse <address>.umbra` (a browser profile whose
    /// only way out is this gateway). http://<address>.localhost:8470/ works in any browser
    /// but is not anonymous against a hostile site (see the README); the dashboard is at
    /// http://localhost:8470/. Runs until Ctrl-C.
    ///
    /// Example: umbra run --bootstrap relays.txt
    Run {
        /// Contacts: one hex descriptor per line (the relay set is learned from them).
        #[arg(long, value_name = "FILE")]
        bootstrap: PathBuf,
        /// The configuration file (section `[gateway]`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Where the gateway listens (default 127.0.0.1:8470).
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Where the reader keeps its guards (default: $XDG_DATA_HOME/umbra).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Limits (`[limits]` in --config; each flag overrides its key).
        #[command(flatten)]
        limits: super::limits_config::LimitFlags,
    },
    /// Open a site (or the dashboard) in your browser in the leak-proof reading mode: a
    /// browser profile of its own whose only way out is the gateway as HTTP proxy (loopback
    /// bypass removed, WebRTC and connection hints through the proxy, which refuses them).
    /// No page of a site can then make the browser contact any other server. Needs a
    /// running gateway (umbra run or umbra demo). Chromium, Chrome and Firefox are supported.
    ///
    /// Example: umbra browse <address>.umbra
    /// Example: umbra browse --gateway 127.0.0.1:8471 --dry-run
    Browse {
        /// The site's address (`<address>`, `<address>.umbra`); the dashboard without it.
        site: Option<String>,
        /// The gateway's address.
        #[arg(long, value_name = "ADDR", default_value = super::config::DEFAULT_GATEWAY)]
        gateway: std::net::SocketAddr,
        /// The browser to start (default: the first of chromium, google-chrome, firefox on PATH).
        #[arg(long, value_name = "PATH")]
        browser: Option<PathBuf>,
        /// Where the browser profile lives (default: $XDG_DATA_HOME/umbra).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Print the command line without starting the browser.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show what a running node (umbra run, umbra demo, umbra relay --gateway) is doing:
    /// roles, circuits, bandwidth, storage, what it serves.
    ///
    /// Example: umbra status
    /// Example: umbra status --gateway 127.0.0.1:8471 --json
    Status {
        /// The node's gateway address.
        #[arg(long, value_name = "ADDR", default_value = super::config::DEFAULT_GATEWAY)]
        gateway: std::net::SocketAddr,
        /// Print the raw JSON of /api/status.
        #[arg(long)]
        json: bool,
    },
    /// Pin a site in the running node (umbra run, or umbra relay with its dashboard): it is
    /// fetched whole now, kept whatever the cache's quota, stored again in the network
    /// where it lost copies, and checked for a new version about once an hour
    /// (protocol-spec/07-sites.md#pinning). Waits for the first check.
    ///
    /// Example: umbra pin <address>
    Pin {
        /// The site's address.
        address: String,
        /// The running node's gateway address.
        #[arg(long, value_name = "ADDR", default_value = super::config::DEFAULT_GATEWAY)]
        gateway: std::net::SocketAddr,
    },
    /// Unpin a site: the running node stops checking it, and its copy is released (evicted
    /// by use again, like any cached record).
    Unpin {
        /// The site's address.
        address: String,
        /// The running node's gateway address.
        #[arg(long, value_name = "ADDR", default_value = super::config::DEFAULT_GATEWAY)]
        gateway: std::net::SocketAddr,
    },
    /// List the running node's pins: the version held, its size, when it was last checked,
    /// the fewest copies the network had, and the last failure.
    Pins {
        /// The running node's gateway address.
        #[arg(long, value_name = "ADDR", default_value = super::config::DEFAULT_GATEWAY)]
        gateway: std::net::SocketAddr,
        /// Print the raw JSON of /api/pins.
        #[arg(long)]
        json: bool,
    },
    /// Measure a local network end to end: start relay processes on loopback, then time
    /// circuit builds, one and eight streams through 3 hops, the CPU per MB carried, sites
    /// of 100 files through the gateway (cold and cached), and relay memory and handshake
    /// cost with 10,000 idle circuits. Prints a table; `--json` also writes the figures.
    /// Use a release build: `cargo run --release -- bench`.
    ///
    /// Example: umbra bench --json bench.json
    Bench {
        /// Relay processes to start.
        #[arg(long, default_value_t = 8)]
        relays: usize,
        /// MiB to send through one stream (the 8-stream run sends the same in all).
        #[arg(long, default_value_t = 256)]
        bulk_mib: u64,
        /// Idle circuits to hold for the memory figure (0 skips it).
        #[arg(long, default_value_t = 10_000)]
        idle_circuits: usize,
        /// Skip the gateway part.
        #[arg(long)]
        no_gateway: bool,
        /// Also write the figures as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Also measure circuits and a stream with the guard link through Tor, using the
        /// `[tor]` section of this umbra.toml (feature `tor`), beside the same direct.
        #[arg(long, value_name = "FILE")]
        tor_first_hop: Option<PathBuf>,
        /// Put every relay on this port (each on its own address): Tor exits accept only
        /// some ports.
        #[arg(long, value_name = "PORT")]
        relay_port: Option<u16>,
        /// Also build circuits while relay 1 (a directory member, with its own keys) floods
        /// relay 2 with STOREs as fast as relay 2 reads them. With --relays 3 every circuit
        /// passes through relay 2.
        #[arg(long)]
        store_flood: bool,
        /// Instead, measure the limits with relay processes: a CREATE flood at 10x a
        /// relay's handshake capacity (cpu_percent = 50) while honest circuits build, and
        /// --idle-circuits circuits whose readers stop reading (memory = 64 MiB).
        #[arg(long)]
        limits: bool,
    },
    /// Build a 3-hop circuit through the relays of a bootstrap list and echo bytes through
    /// it, checking every byte.
    ///
    /// Example: umbra probe --bootstrap relays.txt --echo 10485760
    Probe {
        /// Contacts: one hex descriptor per line.
        #[arg(long, value_name = "FILE")]
        bootstrap: PathBuf,
        /// How many bytes to echo.
        #[arg(long, default_value_t = 1 << 20)]
        echo: u64,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// umbra.toml to read `[tor]` from (the guard link through Tor).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// List the relays learned from the network: start from the contacts and the cached
    /// directory, reconcile once with a guard (protocol-spec/10-directory.md), print each
    /// verified relay (id, address, family, bandwidth, age, expiry, flags G/M/E), cache them.
    ///
    /// Example: umbra relays --bootstrap relays.txt --json
    Relays {
        /// Contacts: one hex descriptor per line (one reachable relay is enough).
        #[arg(long, value_name = "FILE")]
        bootstrap: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Seconds to wait for an answer (then print what is known and exit 1).
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// umbra.toml to read `[reader]` and `[directory]` from.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Where the directory cache lives (default: the reader's data directory).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Sign a folder as a site and store it in the network through a circuit. Prints the
    /// site's address. Relays keep it 30 days; publish again before then (blocks the network
    /// still holds are kept without sending them again; new ones are sent).
    ///
    /// Example: umbra publish ./my-site --key site.key --bootstrap relays.txt
    Publish {
        /// The folder (dotfiles are skipped).
        dir: PathBuf,
        /// The site's key (`umbra keygen --kind identity --out site.key`).
        #[arg(long, value_name = "KEYFILE")]
        key: PathBuf,
        /// The relay list.
        #[arg(long, value_name = "FILE")]
        bootstrap: PathBuf,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Let the site expire this many days after this publish unless published again.
        /// Default: never; storers keep it and renew its blocks while they hold it, so it
        /// outlives its publisher, and readers refuse older versions by sequence.
        #[arg(long, value_name = "DAYS")]
        lifetime_days: Option<u64>,
        /// The configuration file (section `[reader]`: data_dir).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Where the publisher's guards are kept across runs, as for `fetch` and `run`
        /// (default: `[reader] data_dir`, else the XDG data directory).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Publishing as one writer of a site with many (protocol-spec/11-writers.md).
        #[command(flatten)]
        writer: super::writers_args::AsWriter,
    },
    /// Fetch a site, or one file of it, through a circuit; every block is verified before
    /// anything is written, and nothing partial is ever left at OUT. The manifest is checked
    /// against two witness exits in other networks, so one exit cannot serve an old version
    /// (protocol-spec/07-sites.md#freshness).
    ///
    /// Example: umbra fetch <address>.umbra/index.html -o index.html --bootstrap relays.txt
    Fetch {
        /// `ADDRESS[.umbra][/PATH]`.
        target: String,
        /// The configuration file (section `[reader]`: cache, cache_quota_mib, data_dir).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Where the block cache lives (default: $XDG_DATA_HOME/umbra).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Do not read or write the local block cache, nor the memory of manifests seen
        /// (without it, this fetch cannot tell an older version from the one seen before).
        #[arg(long)]
        no_cache: bool,
        /// Where to write: a directory for a whole site, a file for one path.
        #[arg(short = 'o', long, value_name = "OUT")]
        out: Option<PathBuf>,
        /// Refuse a site (or path) whose files add up to more than this many bytes, checked
        /// on its manifest before any block is fetched.
        #[arg(long, value_name = "BYTES", default_value_t = crate::app::site_files::DEFAULT_MAX_BYTES)]
        max_bytes: u64,
        /// The relay list.
        #[arg(long, value_name = "FILE")]
        bootstrap: PathBuf,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Reading a branch or one writer of a site with many (protocol-spec/11-writers.md).
        #[command(flatten)]
        view: super::writers_args::ViewChoice,
    },
    /// List a site's writers, or add and revoke them with the site key
    /// (protocol-spec/11-writers.md).
    ///
    /// Example: umbra writers <address> --bootstrap relays.txt
    ///
    /// Example: umbra writers add --key site.key --writer <pubkey> --prefix /blog/ --bootstrap relays.txt
    Writers(super::writers_args::WritersArgs),
    /// A site's history as its writers' newest manifests hold it: each line with its
    /// sequence and what it merged, refused manifests, and every conflict with each side.
    ///
    /// Example: umbra log <address> --bootstrap relays.txt
    Log(super::writers_args::LogArgs),
    /// Write numbered records to a store and print `ack N` after each durable commit (the
    /// crash-safety test kills this process mid-write).
    ///
    /// Example: umbra store-writer --db /tmp/s.redb --count 1000
    #[command(hide = true)]
    StoreWriter {
        /// The store file.
        #[arg(long)]
        db: PathBuf,
        /// How many records.
        #[arg(long, default_value_t = 1000)]
        count: u32,
        /// Commit on the background committer, as a relay does, in batches of this many
        /// records (0: commit each record on the calling thread).
        #[arg(long, default_value_t = 0)]
        batch: u32,
    },
    /// The newcomer's first command: checks Umbra against its test vectors, starts a local
    /// network of relays on loopback, publishes a sample site into it, and serves it to your
    /// browser through the gateway. Prints the URL to open; Ctrl-C stops everything.
    ///
    /// Example: cargo run --release -- demo
    /// Example: umbra demo --relays 12 --port 9000 --keep
    Demo {
        /// How many relays to start.
        #[arg(long, default_value_t = 8)]
        relays: usize,
        /// The gateway's port on 127.0.0.1 (a free one is used if it is taken).
        #[arg(long, default_value_t = 8470)]
        port: u16,
        /// Bytes echoed through a first 3-hop circuit as a check (0: skip).
        #[arg(long, default_value_t = 1 << 20)]
        echo: u64,
        /// Keep the temporary directory (bootstrap list) after stopping.
        #[arg(long)]
        keep: bool,
        /// Stop this many seconds after the site is ready instead of waiting for Ctrl-C.
        #[arg(long, value_name = "SECS")]
        exit_after: Option<u64>,
    },
}

/// Parse the command line and run it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs redact peer and site addresses unless the operator turns that off for local
    // debugging (`UMBRA_NO_REDACT=1`); `UMBRA_LOG` filters them (`runtime::log`).
    if std::env::var_os("UMBRA_NO_REDACT").is_some_and(|v| v == "1") {
        crate::redact::set_redaction(false);
    }
    super::log::init();
    match cli.command {
        Command::Interop(args) => super::interop_cmd::run(args),
        Command::Keygen { kind, out } => super::keygen_cmd::keygen_cmd(&kind, &out),
        Command::Relay {
            config,
            data_dir,
            listen,
            bootstrap,
            init_only,
            bandwidth,
            max_circuits,
            gateway,
            limits,
        } => {
            let Ok(file) = load_config("relay", config.as_deref()) else {
                return ExitCode::from(2);
            };
            let Some(limits) = limits_of("relay", &file, &limits) else {
                return ExitCode::from(2);
            };
            let dht = file.dht.to_config();
            let directory = file.directory.to_config();
            let mut cfg = file.relay;
            cfg.data_dir = data_dir.or(cfg.data_dir);
            cfg.listen = listen.or(cfg.listen);
            cfg.bootstrap = bootstrap.or(cfg.bootstrap);
            cfg.bandwidth_kib = bandwidth.unwrap_or(cfg.bandwidth_kib);
            cfg.max_circuits = max_circuits.unwrap_or(cfg.max_circuits);
            super::relay_cmd::relay(&cfg, (dht, directory, limits), init_only, gateway)
        }
        Command::Publish {
            dir,
            key,
            bootstrap,
            timeout,
            lifetime_days,
            config,
            data_dir,
            writer,
        } => {
            let Ok(file) = load_config("publish", config.as_deref()) else {
                return ExitCode::from(2);
            };
            // Guards protect the publisher as they protect a reader: kept even with the
            // block cache off (`09-relay.md#guards`).
            let state = file.reader.state(data_dir);
            super::site_cmd::publish(
                &dir,
                &key,
                &bootstrap,
                timeout,
                lifetime_days,
                state,
                writer,
            )
        }
        Command::Fetch {
            target,
            config,
            data_dir,
            no_cache,
            out,
            max_bytes,
            bootstrap,
            timeout,
            view,
        } => {
            let Ok(file) = load_config("fetch", config.as_deref()) else {
                return ExitCode::from(2);
            };
            let reader = file.reader;
            let cache = (reader.cache && !no_cache)
                .then(|| reader.state(data_dir))
                .flatten();
            super::site_cmd::fetch(&target, out, max_bytes, &bootstrap, timeout, cache, view)
        }
        Command::Writers(args) => super::writers_args::writers_cmd(args),
        Command::Log(args) => super::writers_args::log_cmd(args),
        Command::StoreWriter { db, count, batch } => {
            super::store_writer::store_writer(&db, count, batch)
        }
        Command::Bench {
            relays,
            bulk_mib,
            idle_circuits,
            no_gateway,
            json,
            tor_first_hop,
            relay_port,
            store_flood,
            limits,
        } => done(
            "bench",
            super::bench::bench(&super::bench::BenchOptions {
                relays,
                bulk_mib,
                idle_circuits,
                skip_gateway: no_gateway,
                json,
                tor_first_hop,
                relay_port,
                store_flood,
                limits,
            })
            .map(|()| true),
        ),
        Command::Relays {
            bootstrap,
            json,
            timeout,
            config,
            data_dir,
        } => {
            let Ok(file) = load_config("relays", config.as_deref()) else {
                return ExitCode::from(2);
            };
            let dir = file.reader.state_base(data_dir);
            let directory = file.directory.to_config();
            super::relays_cmd::relays(&bootstrap, json, timeout, &dir, directory)
        }
        Command::Probe {
            bootstrap,
            echo,
            timeout,
            config,
        } => {
            let Ok(file) = load_config("probe", config.as_deref()) else {
                return ExitCode::from(2);
            };
            let tor_dir = file.reader.state_base(None);
            super::relay_cmd::probe(&bootstrap, echo, timeout, (&file.tor, &tor_dir))
        }
        Command::Demo {
            relays,
            port,
            echo,
            keep,
            exit_after,
        } => {
            println!("1. Self-check: the conformance kit every node passes.");
            let check = interop_cmd(None, RunOptions::default(), false);
            if check != ExitCode::SUCCESS {
                return check;
            }
            println!("2. A local Umbra network on loopback, a published site, your gateway.");
            let opts = super::demo::DemoOptions {
                relays,
                gateway: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                echo,
                keep,
                exit_after,
            };
            done("demo", super::demo::demo(&opts).map(|c| c == 0))
        }
        Command::Init { data_dir } => match data_dir.or_else(super::config::default_data_dir) {
            Some(d) => done("init", super::node_cmd::init(&d).map(|()| true)),
            None => {
                eprintln!("umbra init: no home directory; pass --data-dir");
                ExitCode::from(2)
            }
        },
        Command::Run {
            bootstrap,
            config,
            listen,
            data_dir,
            limits,
        } => {
            let Ok(file) = load_config("run", config.as_deref()) else {
                return ExitCode::from(2);
            };
            let Some(limits) = limits_of("run", &file, &limits) else {
                return ExitCode::from(2);
            };
            let gw = file.gateway;
            let listen = listen.unwrap_or(gw.listen);
            // Guards are kept even with the block cache off: they protect the reader.
            let state = file.reader.state(data_dir.clone());
            let tor_dir = file.reader.state_base(data_dir.clone());
            done(
                "run",
                super::node_cmd::run(
                    (&bootstrap, file.directory.to_config(), limits),
                    listen,
                    gw.cache_quota_mib << 20,
                    state,
                    (&file.tor, &tor_dir),
                )
                .map(|()| true),
            )
        }
        Command::Browse {
            site,
            gateway,
            browser,
            data_dir,
            dry_run,
        } => {
            let Some(dir) = data_dir.or_else(super::config::default_data_dir) else {
                eprintln!("umbra browse: no home directory; pass --data-dir");
                return ExitCode::from(2);
            };
            done(
                "browse",
                super::browse::browse(gateway, site.as_deref(), browser.as_deref(), &dir, dry_run)
                    .map(|()| true)
                    .map_err(super::error::RuntimeError::from),
            )
        }
        Command::Pin { address, gateway } => done(
            "pin",
            super::pins_cmd::pin(gateway, &address).map(|()| true),
        ),
        Command::Unpin { address, gateway } => done(
            "unpin",
            super::pins_cmd::unpin(gateway, &address).map(|()| true),
        ),
        Command::Pins { gateway, json } => {
            done("pins", super::pins_cmd::list(gateway, json).map(|()| true))
        }
        Command::Status { gateway, json } => done(
            "status",
            super::node_cmd::status(gateway, json).map(|()| true),
        ),
    }
}

/// The configuration file, or defaults without one; an unusable file is reported.
fn load_config(what: &str, path: Option<&std::path::Path>) -> Result<super::config::Config, ()> {
    path.map(super::config::Config::load)
        .transpose()
        .map(Option::unwrap_or_default)
        .map_err(|e| eprintln!("umbra {what}: {e}"))
}

/// `[limits]` with the flags laid over it; an unusable setting is reported with its key.
fn limits_of(
    what: &str,
    file: &super::config::Config,
    flags: &super::limits_config::LimitFlags,
) -> Option<crate::limits::Limits> {
    let (section, from_flag) = file.limits.with_flags(flags);
    section
        .to_limits_from(&from_flag)
        .map_err(|e| eprintln!("umbra {what}: {e}"))
        .ok()
}

/// A command's exit code; its error, if any, is printed once (the command's own output, not
/// a log line), with its kind when `UMBRA_LOG` asks for debug detail.
pub(crate) fn done(what: &str, r: Result<bool, super::error::RuntimeError>) -> ExitCode {
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            tracing::debug!(kind = %crate::error::HasKind::kind(&e), "umbra {what} failed");
            eprintln!("umbra {what}: {e}");
            ExitCode::FAILURE
        }
    }
}
