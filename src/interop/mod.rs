//! The conformance kit (`interop/README.md`).
//!
//! Runs test vectors against Umbra's own code paths and reports `N passed, M failed,
//! K skipped`:
//!
//! - the public vectors bundled in `interop/vectors/public/` (cacophony entries for the Noise
//!   patterns Umbra uses, RFC 7748, RFC 8439, RFC 8032, BLAKE3), with their provenance;
//! - Umbra's own golden vectors in `interop/vectors/umbra/` (link handshake with fixed
//!   ephemerals, framing, cells), see [`golden`];
//! - one external file, whose format is detected ([`run_file`]): cacophony or noise-c Noise
//!   vectors, Project Wycheproof (`XDH`, `CHACHA20-POLY1305`, `XCHACHA20-POLY1305`, `EDDSA`),
//!   or any of the bundled formats.
//!
//! Runners are pure: they take the file's text. Not in this module: reading files or
//! printing (the CLI does that).

pub mod golden;
pub mod golden_circuits;
pub mod golden_content;
pub mod golden_destroy;
pub mod golden_directory;
pub mod golden_memory;
pub mod golden_pins;
pub mod golden_wire;
pub mod golden_writers;
pub mod noise;
pub mod rfc;
pub mod wycheproof;

use core::fmt;

use serde_json::Value;

use crate::error::{ErrorKind, HasKind};
use crate::wire::hex;

/// The outcome of one vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The implementation agreed with the vector.
    Passed,
    /// It did not; the text says how.
    Failed(String),
    /// The vector was not run; the text says why.
    Skipped(String),
}

/// One vector's name and outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// A name that finds the vector in its file.
    pub name: String,
    /// What happened.
    pub status: Status,
    /// For Wycheproof "acceptable" cases: what Umbra did (`Some(true)` = accepted).
    pub acceptable: Option<bool>,
}

/// The results of one vector file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The detected format.
    pub format: &'static str,
    /// Every case, in file order.
    pub cases: Vec<CaseResult>,
}

impl Summary {
    fn new(format: &'static str) -> Self {
        Summary {
            format,
            cases: Vec::new(),
        }
    }

    fn push(&mut self, name: impl Into<String>, status: Status) {
        self.cases.push(CaseResult {
            name: name.into(),
            status,
            acceptable: None,
        });
    }

    fn check(&mut self, name: impl Into<String>, result: Result<(), String>) {
        self.push(
            name,
            match result {
                Ok(()) => Status::Passed,
                Err(e) => Status::Failed(e),
            },
        );
    }

    /// Add every case of `other`.
    pub fn absorb(&mut self, other: Summary) {
        self.cases.extend(other.cases);
    }

    /// Cases that passed.
    pub fn passed(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| c.status == Status::Passed)
            .count()
    }

    /// Cases that failed.
    pub fn failed(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| matches!(c.status, Status::Failed(_)))
            .count()
    }

    /// Cases skipped.
    pub fn skipped(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| matches!(c.status, Status::Skipped(_)))
            .count()
    }
}

impl fmt::Display for Summary {
    /// The closing line: `N passed, M failed, K skipped`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed(),
            self.failed(),
            self.skipped()
        )
    }
}

/// Why a vector file could not be run at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InteropError {
    /// The file is not JSON.
    #[error("not valid JSON (line {line}, column {column})")]
    Json {
        /// Where parsing stopped.
        line: usize,
        /// Where parsing stopped.
        column: usize,
    },
    /// The JSON is not a vector format Umbra knows.
    #[error(
        "unrecognised vector format: expected cacophony or noise-c Noise vectors, Wycheproof, \
         RFC 7748/8439/8032 or BLAKE3 vectors as bundled, or an Umbra golden file"
    )]
    UnknownFormat,
}

impl HasKind for InteropError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::MalformedInput
    }
}

/// A bundled vector file: its path under `interop/vectors/` and its text.
#[derive(Debug, Clone, Copy)]
pub struct Bundled {
    /// Path relative to the repository's `interop/vectors/`.
    pub path: &'static str,
    /// The file's text, embedded at build time.
    pub text: &'static str,
}

/// Every bundled vector file, embedded so `umbra interop` runs anywhere.
pub const BUNDLED: &[Bundled] = &[
    Bundled {
        path: "public/cacophony.txt",
        text: include_str!("../../interop/vectors/public/cacophony.txt"),
    },
    Bundled {
        path: "public/rfc7748_x25519.json",
        text: include_str!("../../interop/vectors/public/rfc7748_x25519.json"),
    },
    Bundled {
        path: "public/rfc8439_chacha20_poly1305.json",
        text: include_str!("../../interop/vectors/public/rfc8439_chacha20_poly1305.json"),
    },
    Bundled {
        path: "public/rfc8032_ed25519.json",
        text: include_str!("../../interop/vectors/public/rfc8032_ed25519.json"),
    },
    Bundled {
        path: "public/blake3_test_vectors.json",
        text: include_str!("../../interop/vectors/public/blake3_test_vectors.json"),
    },
    Bundled {
        path: "umbra/link-handshake.json",
        text: include_str!("../../interop/vectors/umbra/link-handshake.json"),
    },
    Bundled {
        path: "umbra/framing.json",
        text: include_str!("../../interop/vectors/umbra/framing.json"),
    },
    Bundled {
        path: "umbra/cells.json",
        text: include_str!("../../interop/vectors/umbra/cells.json"),
    },
    Bundled {
        path: "umbra/hop-handshake.json",
        text: include_str!("../../interop/vectors/umbra/hop-handshake.json"),
    },
    Bundled {
        path: "umbra/layers.json",
        text: include_str!("../../interop/vectors/umbra/layers.json"),
    },
    Bundled {
        path: "umbra/site-address.json",
        text: include_str!("../../interop/vectors/umbra/site-address.json"),
    },
    Bundled {
        path: "umbra/manifests.json",
        text: include_str!("../../interop/vectors/umbra/manifests.json"),
    },
    Bundled {
        path: "umbra/dht-ids.json",
        text: include_str!("../../interop/vectors/umbra/dht-ids.json"),
    },
    Bundled {
        path: "umbra/dht-rpcs.json",
        text: include_str!("../../interop/vectors/umbra/dht-rpcs.json"),
    },
    Bundled {
        path: "umbra/seen-memory.json",
        text: include_str!("../../interop/vectors/umbra/seen-memory.json"),
    },
    Bundled {
        path: "umbra/pins-list.json",
        text: include_str!("../../interop/vectors/umbra/pins-list.json"),
    },
    Bundled {
        path: "umbra/directory.json",
        text: include_str!("../../interop/vectors/umbra/directory.json"),
    },
    Bundled {
        path: "umbra/writers.json",
        text: include_str!("../../interop/vectors/umbra/writers.json"),
    },
    Bundled {
        path: "umbra/relay-messages.json",
        text: include_str!("../../interop/vectors/umbra/relay-messages.json"),
    },
    Bundled {
        path: "umbra/fragments.json",
        text: include_str!("../../interop/vectors/umbra/fragments.json"),
    },
    Bundled {
        path: "umbra/key-files.json",
        text: include_str!("../../interop/vectors/umbra/key-files.json"),
    },
    Bundled {
        path: "umbra/flow-control.json",
        text: include_str!("../../interop/vectors/umbra/flow-control.json"),
    },
    Bundled {
        path: "umbra/destroy-reasons.json",
        text: include_str!("../../interop/vectors/umbra/destroy-reasons.json"),
    },
];

/// Options for a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Also run slow vectors (RFC 7748's one-million-iteration X25519).
    pub slow: bool,
}

/// Run one vector file's text, detecting its format.
pub fn run_file(text: &str, opts: RunOptions) -> Result<Summary, InteropError> {
    let v: Value = serde_json::from_str(text).map_err(|e| InteropError::Json {
        line: e.line(),
        column: e.column(),
    })?;
    if v.get("testGroups").is_some() {
        return Ok(wycheproof::run(&v));
    }
    if let Some(kind) = v.get("umbra_vectors").and_then(Value::as_str) {
        return golden::run(kind, &v).ok_or(InteropError::UnknownFormat);
    }
    if let Some(first) = v
        .get("vectors")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        if first.get("protocol_name").is_some() {
            return Ok(noise::run(&v, noise::Shape::Cacophony));
        }
        if first.get("name").is_some() && first.get("pattern").is_some() {
            return Ok(noise::run(&v, noise::Shape::NoiseC));
        }
    }
    if v.get("single_step").is_some() && v.get("diffie_hellman").is_some() {
        return Ok(rfc::rfc7748(&v, opts));
    }
    if v.get("aead_chacha20_poly1305").is_some() {
        return Ok(rfc::rfc8439(&v));
    }
    if v.get("algorithm").and_then(Value::as_str) == Some("Ed25519") {
        return Ok(rfc::rfc8032(&v));
    }
    if v.get("cases").is_some() && v.get("context_string").is_some() {
        return Ok(rfc::blake3(&v));
    }
    Err(InteropError::UnknownFormat)
}

/// Run every bundled file; returns each file's path and summary.
pub fn run_bundled(opts: RunOptions) -> Vec<(&'static str, Result<Summary, InteropError>)> {
    BUNDLED
        .iter()
        .map(|b| (b.path, run_file(b.text, opts)))
        .collect()
}

/// An array field of a JSON object (empty when absent or not an array).
pub(crate) fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A case's `name`, or `?`.
pub(crate) fn name_of(v: &Value) -> &str {
    v.get("name").and_then(Value::as_str).unwrap_or("?")
}

/// The fixed inputs of Umbra's golden vectors: BLAKE3 `derive_key` of a label.
pub(crate) fn fixed_input(label: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    crate::crypto::hash::derive_key("umbra golden vectors v1", label.as_bytes(), &mut out);
    out
}

/// The provenance line of Umbra's golden vector files.
pub(crate) const GOLDEN_PROVENANCE: &str = "Generated by Umbra's src/interop/ (golden.rs, golden_circuits.rs) from the fixed inputs in this file; \
     regenerate only deliberately (UMBRA_REGENERATE_VECTORS=1 cargo test --test vectors) and review the diff.";

/// A hex string field of a JSON object.
pub(crate) fn hex_field(v: &Value, key: &str) -> Result<Vec<u8>, String> {
    let s = v
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing string field `{key}`"))?;
    hex::decode(s).map_err(|_| format!("field `{key}` is not hex"))
}

/// An optional hex field (absent or null gives `None`).
pub(crate) fn opt_hex_field(v: &Value, key: &str) -> Result<Option<Vec<u8>>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => hex_field(v, key).map(Some),
    }
}

/// A fixed-size hex field.
pub(crate) fn hex_array<const N: usize>(v: &Value, key: &str) -> Result<[u8; N], String> {
    let b = hex_field(v, key)?;
    b.as_slice()
        .try_into()
        .map_err(|_| format!("field `{key}` has {} bytes, expected {N}", b.len()))
}

/// An integer field given as a number or a decimal string.
pub(crate) fn int_field(v: &Value, key: &str) -> Result<u64, String> {
    match v.get(key) {
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| format!("field `{key}` is not a u64")),
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| format!("field `{key}` is not an integer")),
        _ => Err(format!("missing integer field `{key}`")),
    }
}

/// A name for case `i` of a list: its `name` field if it has one.
pub(crate) fn case_name(prefix: &str, v: &Value, i: usize) -> String {
    match v.get("name").and_then(Value::as_str) {
        Some(n) => format!("{prefix}/{n}"),
        None => format!("{prefix}/#{i}"),
    }
}

/// Compare two byte strings, describing the first difference.
pub(crate) fn expect_eq(what: &str, got: &[u8], want: &[u8]) -> Result<(), String> {
    if got == want {
        return Ok(());
    }
    Err(format!(
        "{what} differs: got {} bytes {}…, want {} bytes {}…",
        got.len(),
        hex::encode(&got[..got.len().min(16)]),
        want.len(),
        hex::encode(&want[..want.len().min(16)])
    ))
}
