//! Error classification shared by every module.
//!
//! Each module has its own typed, `#[non_exhaustive]` error enum with structured fields (no
//! `String` payloads). All of them implement [`HasKind`], which maps an error to an
//! [`ErrorKind`]: who failed and what the caller can do about it. The wire only ever carries
//! coarse reason codes; the precise variant stays local for logs and tests.
//!
//! Not in this module: the per-module enums themselves (they live beside the code that
//! raises them).

use core::fmt;

/// What kind of failure an error is, split by who failed and what a caller can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A peer sent something the protocol forbids: close what it affects, keep serving others.
    PeerProtocolViolation,
    /// A cryptographic check failed (bad tag, bad signature, wrong key).
    CryptoFailure,
    /// A signature did not verify or was not bound to the expected identity.
    SignatureInvalid,
    /// Something was valid once but is no longer (expired descriptor, stale record).
    Expired,
    /// A peer could not be reached.
    PeerUnreachable,
    /// A timer ran out.
    Timeout,
    /// A configured limit was reached.
    ResourceLimit,
    /// Local configuration or a local file is wrong (including key file permissions).
    Config,
    /// Reading or writing a local file failed.
    LocalIo,
    /// The caller used an API the wrong way.
    BadApiUsage,
    /// Input data (a vector file, a key file) is malformed.
    MalformedInput,
    /// An internal invariant broke: a bug in Umbra.
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::PeerProtocolViolation => "peer protocol violation",
            ErrorKind::CryptoFailure => "cryptographic check failed",
            ErrorKind::SignatureInvalid => "signature invalid",
            ErrorKind::Expired => "expired",
            ErrorKind::PeerUnreachable => "peer unreachable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::ResourceLimit => "resource limit reached",
            ErrorKind::Config => "configuration error",
            ErrorKind::LocalIo => "local I/O error",
            ErrorKind::BadApiUsage => "bad API usage",
            ErrorKind::MalformedInput => "malformed input",
            ErrorKind::Internal => "internal error (a bug in Umbra)",
        };
        f.write_str(s)
    }
}

/// Implemented by every error type in the crate.
pub trait HasKind {
    /// Classify this error.
    fn kind(&self) -> ErrorKind;
}

/// An internal invariant broke. Carries where, never a formatted string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("internal error at {location}: {what}")]
pub struct Bug {
    /// What invariant broke.
    pub what: &'static str,
    /// Where (`file:line`).
    pub location: &'static core::panic::Location<'static>,
}

impl Bug {
    /// Record a broken invariant at the caller's location.
    #[track_caller]
    pub fn new(what: &'static str) -> Self {
        Bug {
            what,
            location: core::panic::Location::caller(),
        }
    }
}

impl HasKind for Bug {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}
