//! `umbra interop --peer ADDR --descriptor FILE`: conformance cases against a live relay of
//! any implementation, as h2spec is for HTTP/2 (`interop/README.md#live-cases`).
//!
//! Each case opens its own link as an anonymous reader, does one thing (valid or hostile)
//! and checks the answer the spec requires, citing the section. The run prints one line a
//! case and `N passed, M failed, K skipped`, and can write a JSON report. Not in this
//! module: the cases ([`cases_link`], [`cases_cells`], [`cases_circuits`],
//! [`cases_streams`], [`cases_content`], [`cases_relay`], [`cases_extend`]), the link driven by hand ([`crate::runtime::raw_link`]).

pub mod cases_cells;
pub mod cases_circuits;
pub mod cases_content;
pub mod cases_extend;
pub mod cases_link;
pub mod cases_relay;
pub mod cases_streams;
pub mod conn;

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use crate::directory::{Descriptor, Directory};
use crate::error::{ErrorKind, HasKind};
use crate::runtime::error::RuntimeError;
use crate::time::WallTime;

/// Why a case failed: what the relay did instead of what the spec requires.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CaseFailure(pub String);

impl HasKind for CaseFailure {
    fn kind(&self) -> ErrorKind {
        ErrorKind::PeerProtocolViolation
    }
}

impl From<String> for CaseFailure {
    fn from(s: String) -> Self {
        CaseFailure(s)
    }
}

impl From<&str> for CaseFailure {
    fn from(s: &str) -> Self {
        CaseFailure(s.to_string())
    }
}

/// A check's result.
pub type Check<T = ()> = Result<T, CaseFailure>;

/// Fail a check with `why`.
pub fn fail<T>(why: impl Into<String>) -> Check<T> {
    Err(CaseFailure(why.into()))
}

/// The relay under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its descriptor (identity, link and onion keys).
    pub desc: Descriptor,
    /// The key directory (`identity.key`, `link.key`) of a relay the target's directory
    /// lists, for the cases that speak as a relay (`--as-relay`).
    pub as_relay: Option<std::path::PathBuf>,
}

/// What a case found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The relay did what the spec requires.
    Pass,
    /// It did not; the text says what it did instead.
    Fail(String),
    /// The case could not run here; the text says why.
    Skip(String),
}

/// One live case.
pub struct Case {
    /// A stable name, `area.what`.
    pub id: &'static str,
    /// The spec section it checks, `NN-file.md#anchor`.
    pub spec: &'static str,
    /// What it does and expects, in a line.
    pub what: &'static str,
    /// Run it against the target.
    pub run: fn(&Target) -> Verdict,
}

/// Every case, in the order an implementer would make them pass.
pub fn all_cases() -> Vec<Case> {
    let mut v = cases_link::cases();
    v.extend(cases_cells::cases());
    v.extend(cases_circuits::cases());
    v.extend(cases_streams::cases());
    v.extend(cases_content::cases());
    v.extend(cases_relay::cases());
    v.extend(cases_extend::cases());
    v
}

/// One case's outcome, for the report.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The case's id.
    pub id: &'static str,
    /// Its spec section.
    pub spec: &'static str,
    /// What it checks.
    pub what: &'static str,
    /// The verdict.
    pub verdict: Verdict,
    /// How long it took, in milliseconds.
    pub millis: u128,
}

/// Run the cases whose id starts with `only` (all when empty).
pub fn run(target: &Target, only: &str) -> Vec<Outcome> {
    all_cases()
        .into_iter()
        .filter(|c| c.id.starts_with(only))
        .map(|c| {
            let t = Instant::now();
            let verdict = (c.run)(target);
            Outcome {
                id: c.id,
                spec: c.spec,
                what: c.what,
                verdict,
                millis: t.elapsed().as_millis(),
            }
        })
        .collect()
}

/// The descriptor of `addr` in `text` (one hex descriptor a line, as a relay's `descriptor`
/// file or a bootstrap list), checked at `now`; the only one if the file has one.
pub fn descriptor_for(
    text: &str,
    addr: SocketAddr,
    now: WallTime,
) -> Result<Descriptor, RuntimeError> {
    let (dir, errors) = Directory::from_bootstrap(text, now);
    if let Some((line, e)) = errors.first() {
        return Err(RuntimeError::Usage(format!("line {line}: {e}")));
    }
    let relays: Vec<_> = dir.relays().collect();
    match relays
        .iter()
        .find(|d| d.addr == addr)
        .or(match relays.as_slice() {
            [only] => Some(only),
            _ => None,
        }) {
        Some(d) => Ok(Descriptor::clone(d)),
        None => Err(RuntimeError::Usage(format!(
            "no descriptor for {addr} among the file's {} relays",
            relays.len()
        ))),
    }
}

fn json_report(target: &Target, outcomes: &[Outcome]) -> serde_json::Value {
    let count = |f: fn(&Verdict) -> bool| outcomes.iter().filter(|o| f(&o.verdict)).count();
    serde_json::json!({
        "peer": target.addr.to_string(),
        "node_id": crate::wire::hex::encode(&target.desc.node_id().0),
        "passed": count(|v| *v == Verdict::Pass),
        "failed": count(|v| matches!(v, Verdict::Fail(_))),
        "skipped": count(|v| matches!(v, Verdict::Skip(_))),
        "cases": outcomes.iter().map(|o| {
            let (status, detail) = match &o.verdict {
                Verdict::Pass => ("passed", String::new()),
                Verdict::Fail(d) => ("failed", d.clone()),
                Verdict::Skip(d) => ("skipped", d.clone()),
            };
            serde_json::json!({
                "id": o.id,
                "spec": o.spec,
                "what": o.what,
                "status": status,
                "detail": detail,
                "ms": o.millis,
            })
        }).collect::<Vec<_>>(),
    })
}

/// `umbra interop --peer`: run the cases, print them, write the JSON report if asked; exit
/// 1 if any failed, 2 if the target could not be set up.
pub fn peer_cmd(
    (addr, descriptor, as_relay): (SocketAddr, &Path, Option<&Path>),
    only: &str,
    json: Option<&Path>,
    now: WallTime,
) -> ExitCode {
    let text = match std::fs::read_to_string(descriptor) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("umbra interop: cannot read {}: {e}", descriptor.display());
            return ExitCode::from(2);
        }
    };
    let desc = match descriptor_for(&text, addr, now) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("umbra interop: {}: {e}", descriptor.display());
            return ExitCode::from(2);
        }
    };
    // The relay is dialled at `--peer`, whatever address its descriptor gives.
    let desc = Descriptor { addr, ..desc };
    let target = Target {
        addr,
        desc,
        as_relay: as_relay.map(Path::to_path_buf),
    };
    let outcomes = run(&target, only);
    for o in &outcomes {
        match &o.verdict {
            Verdict::Pass => println!("  ok   {:<40} {}", o.id, o.spec),
            Verdict::Fail(d) => println!("  FAIL {:<40} {}: {d}", o.id, o.spec),
            Verdict::Skip(d) => println!("  skip {:<40} {}: {d}", o.id, o.spec),
        }
    }
    let report = json_report(&target, &outcomes);
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("umbra interop: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    let failed = report["failed"].as_u64().unwrap_or(0);
    println!(
        "{} passed, {failed} failed, {} skipped",
        report["passed"], report["skipped"]
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
