//! `umbra interop`: its arguments; run the conformance kit's vectors (bundled, or one file)
//! and print what passed, failed and was skipped, or with `--peer` hand over to the live
//! cases. Not in this module: the checks themselves (`crate::interop`), the live cases
//! (`runtime::conformance`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::interop::{self, RunOptions, Status, Summary};

fn print_details(s: &Summary, verbose: bool) {
    let mut skips: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut accepted, mut rejected) = (0, 0);
    for c in &s.cases {
        match &c.status {
            Status::Failed(why) => println!("    FAIL {}: {why}", c.name),
            Status::Skipped(why) => {
                *skips.entry(why.as_str()).or_default() += 1;
                if verbose {
                    println!("    skip {}: {why}", c.name);
                }
            }
            Status::Passed => {
                if verbose {
                    println!("    ok   {}", c.name);
                }
            }
        }
        match c.acceptable {
            Some(true) => accepted += 1,
            Some(false) => rejected += 1,
            None => {}
        }
    }
    for (why, n) in skips {
        println!("    skipped {n}: {why}");
    }
    if accepted + rejected > 0 {
        println!(
            "    acceptable cases: {accepted} accepted, {rejected} rejected by Umbra's policy"
        );
    }
}

/// `umbra interop`: the vectors of `vectors`, or every bundled file; exit 1 if any failed.
pub fn interop_cmd(vectors: Option<PathBuf>, opts: RunOptions, verbose: bool) -> ExitCode {
    let mut total = Summary::default();
    match vectors {
        Some(path) => {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("umbra interop: cannot read {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            };
            match interop::run_file(&text, opts) {
                Ok(s) => {
                    println!("{}: {} ({s})", path.display(), s.format);
                    print_details(&s, verbose);
                    total.absorb(s);
                }
                Err(e) => {
                    eprintln!("umbra interop: {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
        }
        None => {
            for (path, result) in interop::run_bundled(opts) {
                match result {
                    Ok(s) => {
                        println!("  {path:<40} {:<28} {s}", s.format);
                        print_details(&s, verbose);
                        total.absorb(s);
                    }
                    Err(e) => {
                        println!("  {path:<40} FAIL: {e}");
                        total.cases.push(interop::CaseResult {
                            name: path.to_string(),
                            status: Status::Failed(e.to_string()),
                            acceptable: None,
                        });
                    }
                }
            }
        }
    }
    println!("{total}");
    if total.failed() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `umbra interop`'s arguments.
#[derive(Debug, clap::Args)]
pub struct InteropArgs {
    /// Run one external vector file instead of the bundled set.
    #[arg(long, value_name = "FILE", conflicts_with = "peer")]
    pub vectors: Option<PathBuf>,
    /// Run the live cases against the relay listening here.
    #[arg(long, value_name = "ADDR", requires = "descriptor")]
    pub peer: Option<std::net::SocketAddr>,
    /// The relay's descriptor: its `descriptor` file, or a bootstrap list naming it.
    #[arg(long, value_name = "FILE")]
    pub descriptor: Option<PathBuf>,
    /// With --peer: the key folder (identity.key, link.key) of a relay the peer's directory
    /// lists, for the cases that speak as a relay (the DHT's RPCs); skipped without it.
    #[arg(long, value_name = "DIR", requires = "peer")]
    pub as_relay: Option<PathBuf>,
    /// With --peer: only the cases whose id starts with this (`link.`, `streams.`).
    #[arg(long, value_name = "PREFIX", default_value = "")]
    pub only: String,
    /// With --peer: also write the report as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also run slow vectors (RFC 7748's one-million-iteration X25519, about a minute).
    #[arg(long)]
    pub slow: bool,
    /// List every case, not only failures and skip reasons.
    #[arg(long, short)]
    pub verbose: bool,
}

/// `umbra interop`: the live cases with `--peer`, else the vectors.
pub fn run(args: InteropArgs) -> ExitCode {
    match (args.peer, args.descriptor) {
        (Some(addr), Some(desc)) => crate::runtime::conformance::peer_cmd(
            (addr, &desc, args.as_relay.as_deref()),
            &args.only,
            args.json.as_deref(),
            crate::runtime::driver::wall_now(),
        ),
        _ => interop_cmd(args.vectors, RunOptions { slow: args.slow }, args.verbose),
    }
}
