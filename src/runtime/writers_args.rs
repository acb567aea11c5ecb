//! The command-line arguments of the writer commands (`umbra writers`, `umbra log`, and the
//! writer options of `umbra publish` and `umbra fetch`), and their dispatch
//! (`protocol-spec/11-writers.md`). Not in this module: what the commands do
//! ([`super::writers_cmd`]).

use std::process::ExitCode;

use super::error::RuntimeError;
use super::writers_cmd::{Edit, edit, list, log, parse_prefix, parse_writer};

/// `umbra publish`'s options for publishing as a writer.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AsWriter {
    /// Publish as a writer of this site (`umbra writers add` lists --key in its roster), on
    /// the writer's own line, instead of as the site itself.
    #[arg(long, value_name = "ADDRESS")]
    pub site: Option<String>,
    /// With --site: publish on this named branch (a DNS label: a-z 0-9 -, up to 63) instead
    /// of the writer's main line. A new branch is announced on the writer's main line, so
    /// readers find it: `umbra fetch --branch NAME`, or the gateway at
    /// http://NAME.branch.ADDRESS.localhost:PORT/. It joins the site's merged view only when
    /// a main line writes its files.
    #[arg(long, value_name = "NAME", requires = "site")]
    pub branch: Option<String>,
    /// With --site: resolve every conflict on the folder's paths in the folder's favour
    /// (without it, a conflict stays listed while this writer's side is unchanged).
    #[arg(long, requires = "site")]
    pub resolve: bool,
    /// With --site: send nothing; build the manifest from what this writer last knew (its
    /// data directory) and keep it there. The next publish without --offline continues from
    /// it, so edits made while partitioned are merged, and conflicts listed, on reconnecting.
    #[arg(long, requires = "site")]
    pub offline: bool,
}

/// `umbra fetch`'s options for reading a branch or one writer.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ViewChoice {
    /// Fetch the merged view of this branch name (every writer's line of that name)
    /// instead of the site's main view.
    #[arg(long, value_name = "NAME")]
    pub branch: Option<String>,
    /// Fetch only this writer's line (its main line, or --branch), as it wrote it: its public
    /// key (64 hex digits) or address form.
    #[arg(long, value_name = "PUBKEY")]
    pub writer: Option<String>,
}

impl ViewChoice {
    /// Whether the fetch reads through writers' heads rather than the site's manifest.
    pub fn chosen(&self) -> bool {
        self.branch.is_some() || self.writer.is_some()
    }
}

/// `umbra writers`: list a site's writers, or change them with the site key.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WritersArgs {
    /// List the writers of this site (its roster as the network holds it).
    #[arg(value_name = "ADDRESS")]
    pub address: Option<String>,
    /// The relay list.
    #[arg(long, value_name = "FILE")]
    pub bootstrap: Option<std::path::PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Add or revoke a writer.
    #[command(subcommand)]
    pub action: Option<WritersAction>,
}

/// Changes to a roster, signed with the site key.
#[derive(Debug, clap::Subcommand)]
pub enum WritersAction {
    /// Let a key write (under --prefix paths; default: the whole site).
    ///
    /// Example: umbra writers add --key site.key --writer 5f3a… --prefix /blog/ --bootstrap relays.txt
    Add {
        /// The site's key.
        #[arg(long, value_name = "KEYFILE")]
        key: std::path::PathBuf,
        /// The writer's public key (`umbra keygen --kind identity` prints it).
        #[arg(long, value_name = "PUBKEY")]
        writer: String,
        /// A path prefix it may write under (`/blog/`, or one file); repeat for several.
        #[arg(long, value_name = "PATH")]
        prefix: Vec<String>,
        /// The relay list.
        #[arg(long, value_name = "FILE")]
        bootstrap: std::path::PathBuf,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Revoke a writer: readers holding the new roster refuse its manifests past the newest
    /// one the network holds now (its cut-off), whatever the clocks say.
    ///
    /// Example: umbra writers revoke --key site.key --writer 5f3a… --bootstrap relays.txt
    Revoke {
        /// The site's key.
        #[arg(long, value_name = "KEYFILE")]
        key: std::path::PathBuf,
        /// The writer's public key.
        #[arg(long, value_name = "PUBKEY")]
        writer: String,
        /// The relay list.
        #[arg(long, value_name = "FILE")]
        bootstrap: std::path::PathBuf,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

/// `umbra log`: a site's writers' lines, merges and conflicts.
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// The site.
    #[arg(value_name = "ADDRESS")]
    pub address: String,
    /// The branch name to show (default: the main lines, the site's merged view).
    #[arg(long, value_name = "NAME", default_value = "")]
    pub branch: String,
    /// Also fetch and show up to N older manifests of each line (kept as history for 30
    /// days past their last store, `protocol-spec/11-writers.md#history`).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub history: u32,
    /// The relay list.
    #[arg(long, value_name = "FILE")]
    pub bootstrap: std::path::PathBuf,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

/// Run `umbra writers`.
pub fn writers_cmd(args: WritersArgs) -> ExitCode {
    let usage = |m: &str| {
        eprintln!("umbra writers: {m}");
        ExitCode::from(2)
    };
    match args.action {
        None => match (args.address, args.bootstrap) {
            (Some(a), Some(b)) => list(&a, &b, args.timeout),
            _ => usage("give ADDRESS and --bootstrap FILE to list, or `add`/`revoke`"),
        },
        Some(WritersAction::Add {
            key,
            writer: w,
            prefix,
            bootstrap,
            timeout,
        }) => {
            let prefixes: Result<Vec<String>, RuntimeError> =
                prefix.iter().map(|p| parse_prefix(p)).collect();
            match (parse_writer(&w), prefixes) {
                (Ok(w), Ok(p)) => edit(&key, Edit::Add(w, p), &bootstrap, timeout),
                (Err(e), _) | (_, Err(e)) => usage(&e.to_string()),
            }
        }
        Some(WritersAction::Revoke {
            key,
            writer: w,
            bootstrap,
            timeout,
        }) => match parse_writer(&w) {
            Ok(w) => edit(&key, Edit::Revoke(w), &bootstrap, timeout),
            Err(e) => usage(&e.to_string()),
        },
    }
}

/// Run `umbra log`.
pub fn log_cmd(args: LogArgs) -> ExitCode {
    log(
        &args.address,
        &args.branch,
        args.history,
        &args.bootstrap,
        args.timeout,
    )
}
