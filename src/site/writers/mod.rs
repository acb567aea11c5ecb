//! Sites with many writers (`protocol-spec/11-writers.md`).
//!
//! - [`roster`]: the site key's signed list of writers, their path prefixes and revocation
//!   cut-offs; [`roster::Roster::implicit`] is the roster of a single-writer site.
//! - [`head`]: a writer's signed, sequence-numbered manifest of one line (a branch): its own
//!   entries (files or tombstones), each with the causal context it was written in, the
//!   version vector it had seen, and the digest of the line's previous manifest (history).
//!   A version-1 site manifest reads as the site key's main line.
//! - [`merge`]: the join of heads (newest per line; equal sequences kept as proof of
//!   equivocation) and the view computed from it: causally dominated entries dropped,
//!   concurrent ones listed as conflicts with a deterministic winner, one view hash.
//! - [`stage`]: a writer's next head from its previous one, what it has seen and its files.
//!
//! Everything here is pure: no clock, no randomness, no I/O. Not in this module: moving
//! rosters and heads through the DHT, publishing and fetching (`app/`).

pub mod head;
pub mod merge;
pub mod roster;
pub mod stage;

use crate::crypto::hash;
use crate::crypto::keys::IdentityPublic;
use crate::error::{ErrorKind, HasKind};
use crate::wire::DecodeError;

use super::SiteError;

/// The most lines one manifest's vector may name (`11-writers.md#limits`).
pub const MAX_LINES: usize = 256;
/// The most writers in a roster.
pub const MAX_WRITERS: usize = 256;
/// The most path prefixes of one writer.
pub const MAX_PREFIXES: usize = 16;
/// The longest branch name, in bytes (a DNS label: every branch has its own gateway origin,
/// `08-gateway.md#writers`).
pub const MAX_BRANCH: usize = 63;
/// The most named branches one writer manifest lists (`11-writers.md#branches`).
pub const MAX_BRANCHES: usize = 32;
/// The most distinct causal contexts in one manifest (never more than its entries).
pub const MAX_CONTEXTS: usize = 10_000;

/// A line of history: one writer's branch. `BLAKE3 derive_key("umbra line id v1",
/// writer key || u8 len || branch)` (`11-writers.md#lines`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LineId(pub [u8; 32]);

impl LineId {
    /// The line of `writer`'s branch `branch` (`""` is the writer's main line).
    pub fn of(writer: &IdentityPublic, branch: &str) -> LineId {
        let mut m = Vec::with_capacity(33 + branch.len());
        m.extend_from_slice(&writer.to_bytes());
        m.push(branch.len().min(255) as u8);
        m.extend_from_slice(branch.as_bytes());
        let mut out = [0; 32];
        hash::derive_key("umbra line id v1", &m, &mut out);
        LineId(out)
    }

    /// The first 8 bytes in hex, for logs and `umbra log`.
    pub fn short(&self) -> String {
        crate::wire::hex::encode(&self.0[..8])
    }
}

/// The DHT key of a site's roster: `BLAKE3 derive_key("umbra roster dht key v1", site key)`
/// (`06-dht.md#records`).
pub fn roster_dht_key(site: &IdentityPublic) -> [u8; 32] {
    let mut out = [0; 32];
    hash::derive_key("umbra roster dht key v1", &site.to_bytes(), &mut out);
    out
}

/// The DHT key of a line's newest writer manifest: `BLAKE3 derive_key("umbra line dht key
/// v1", site key || line id)` (`06-dht.md#records`).
pub fn line_dht_key(site: &IdentityPublic, line: &LineId) -> [u8; 32] {
    let mut m = [0u8; 64];
    m[..32].copy_from_slice(&site.to_bytes());
    m[32..].copy_from_slice(&line.0);
    let mut out = [0; 32];
    hash::derive_key("umbra line dht key v1", &m, &mut out);
    out
}

/// The site a roster or writer manifest claims (bytes 1..33), unchecked.
pub fn claimed_site(bytes: &[u8]) -> Option<crate::site::address::SiteAddress> {
    let key: [u8; 32] = bytes.get(1..33)?.try_into().ok()?;
    IdentityPublic::from_bytes(&key)
        .ok()
        .map(crate::site::address::SiteAddress)
}

/// Check a branch name: `""` (the main line), or a DNS label: 1 to 63 bytes of `a–z 0–9 -`,
/// not starting or ending with `-` (`11-writers.md#lines`), so that every branch has an
/// origin of its own at the gateway. `view` is reserved: it is the label of the gateway's
/// frame page (`08-gateway.md#origins`).
pub fn check_branch(name: &str) -> Result<(), WriterError> {
    let ok = name.is_empty()
        || (name.len() <= MAX_BRANCH
            && name != "view"
            && !name.starts_with('-')
            && !name.ends_with('-')
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
    if ok {
        Ok(())
    } else {
        Err(WriterError::BadBranch)
    }
}

/// Which view of a site a reader asks for: the merged view of a branch name over every
/// writer (`writer: None`; `""` is the site's main view), or one writer's line
/// (`11-writers.md#merge`, `08-gateway.md#writers`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ViewSpec {
    /// The branch name (`""`: main).
    pub branch: String,
    /// One writer's line only.
    pub writer: Option<IdentityPublic>,
}

impl ViewSpec {
    /// The site's main merged view.
    pub fn is_main(&self) -> bool {
        self.branch.is_empty() && self.writer.is_none()
    }
}

/// Why a roster, a writer manifest or a merge input was refused. Every variant is a
/// deterministic verdict on the bytes and the roster held, never on a clock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriterError {
    /// The bytes do not decode.
    #[error("malformed roster or writer manifest: {0}")]
    Decode(#[from] DecodeError),
    /// A site-level check failed (path, media type, block count, signature, size).
    #[error("{0}")]
    Site(#[from] SiteError),
    /// Unknown format version.
    #[error("unknown roster or writer manifest version {0}")]
    Version(u8),
    /// A branch name breaks the rules.
    #[error("bad branch name (at most 64 bytes of a-z 0-9 - _ . /)")]
    BadBranch,
    /// A vector or context names more lines than allowed, or a context table is too long.
    #[error("version vector over the limit of {MAX_LINES} lines or {MAX_CONTEXTS} contexts")]
    VectorTooLarge,
    /// A vector or context is inconsistent: lines unsorted or repeated, a context past the
    /// vector, an entry without its own line in its context.
    #[error("inconsistent version vector: {0}")]
    BadVector(&'static str),
    /// An entry kind other than 1 (file) and 2 (tombstone).
    #[error("unknown entry kind {0}")]
    EntryKind(u8),
    /// A roster with no writers, too many, or writers unsorted or repeated.
    #[error("bad roster: {0}")]
    BadRoster(&'static str),
    /// The writer is not in the roster held.
    #[error("writer {writer} is not in the site's roster (sequence {roster})")]
    NotAWriter {
        /// The writer's key, hex, first 8 bytes.
        writer: String,
        /// The roster sequence held.
        roster: u64,
    },
    /// The manifest was written under a roster newer than the one held: fetch the roster.
    #[error("manifest written under roster {claimed}, newer than the roster held ({held})")]
    UnknownRoster {
        /// The roster sequence the manifest names.
        claimed: u64,
        /// The roster sequence held.
        held: u64,
    },
    /// The writer was revoked at `cutoff` and this manifest is past it.
    #[error("writer revoked: sequence {seq} is past its cut-off {cutoff}")]
    Revoked {
        /// The manifest's sequence.
        seq: u64,
        /// The roster's cut-off for the writer.
        cutoff: u64,
    },
    /// An entry lies outside every prefix the roster gives its writer.
    #[error("path {path:?} is outside the writer's prefixes")]
    OutsidePrefix {
        /// The path.
        path: String,
    },
    /// A roster or manifest for another site.
    #[error("roster or manifest is for another site")]
    WrongSite,
    /// A roster sequence lower than the one held.
    #[error("roster rollback refused: sequence {got} is lower than {held}")]
    RosterRollback {
        /// The held sequence.
        held: u64,
        /// The offered sequence.
        got: u64,
    },
    /// One writer signed two different manifests with one sequence: the two digests are the
    /// proof (`11-writers.md#equivocation`).
    #[error("writer signed two manifests with sequence {seq}")]
    Equivocation {
        /// The sequence.
        seq: u64,
        /// BLAKE3 of each manifest, lower first.
        digests: [[u8; 32]; 2],
    },
}

impl WriterError {
    /// A short stable name of the error's class, as the vectors and `--json` output use it
    /// (`11-writers.md#writer-manifest`, `#admission`).
    pub fn class(&self) -> &'static str {
        match self {
            WriterError::Decode(_) => "decode",
            WriterError::Site(SiteError::BadSignature) => "bad-signature",
            WriterError::Site(SiteError::WrongKey) => "wrong-key",
            WriterError::Site(SiteError::TooLarge) => "too-large",
            WriterError::Site(SiteError::Decode(_)) => "decode",
            WriterError::Site(_) => "bad-entry",
            WriterError::Version(_) => "version",
            WriterError::BadBranch => "bad-branch",
            WriterError::VectorTooLarge => "vector-too-large",
            WriterError::BadVector(_) => "bad-vector",
            WriterError::EntryKind(_) => "entry-kind",
            WriterError::BadRoster(_) => "bad-roster",
            WriterError::NotAWriter { .. } => "not-a-writer",
            WriterError::UnknownRoster { .. } => "unknown-roster",
            WriterError::Revoked { .. } => "revoked",
            WriterError::OutsidePrefix { .. } => "outside-prefix",
            WriterError::WrongSite => "wrong-site",
            WriterError::RosterRollback { .. } => "roster-rollback",
            WriterError::Equivocation { .. } => "equivocation",
        }
    }
}

impl HasKind for WriterError {
    fn kind(&self) -> ErrorKind {
        match self {
            WriterError::Site(e) => e.kind(),
            WriterError::NotAWriter { .. }
            | WriterError::Revoked { .. }
            | WriterError::OutsidePrefix { .. }
            | WriterError::WrongSite => ErrorKind::SignatureInvalid,
            WriterError::Equivocation { .. } | WriterError::RosterRollback { .. } => {
                ErrorKind::PeerProtocolViolation
            }
            WriterError::UnknownRoster { .. } => ErrorKind::Expired,
            _ => ErrorKind::MalformedInput,
        }
    }
}

#[cfg(test)]
mod tests;
