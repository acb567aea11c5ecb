//! Why a command of the runtime failed: one typed error for the CLI's commands, the driver
//! and `umbra bench`, classified by the crate's [`HasKind`] like every other error. The CLI
//! prints it once, as `umbra <command>: <error>`, and exits non-zero.
//!
//! Not in this module: the errors of the protocol core (each beside its code), the logs of a
//! running node (`runtime::log`).

use std::path::{Path, PathBuf};

use crate::error::{ErrorKind, HasKind};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// A local file or directory could not be read, written or created.
    #[error("cannot {action} {}: {source}", path.display())]
    File {
        /// What was being done ("read", "write", "create").
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A local service (a node's gateway, a child process's socket) could not be reached.
    #[error("cannot reach {what}: {source}")]
    Connect {
        /// What was being reached.
        what: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The system refused a resource (the async runtime, a thread, a process).
    #[error("cannot {action}: {source}")]
    System {
        /// What was being started.
        action: &'static str,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file cannot be used.
    #[error(transparent)]
    Config(#[from] super::config::ConfigError),
    /// The store cannot be opened.
    #[error(transparent)]
    Store(#[from] super::store::OpenError),
    /// A key file cannot be used.
    #[error(transparent)]
    Keys(#[from] crate::crypto::keystore::KeystoreError),
    /// A key operation failed.
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    /// A descriptor cannot be used.
    #[error(transparent)]
    Directory(#[from] crate::directory::DirectoryError),
    /// A site address is mistyped.
    #[error(transparent)]
    Address(#[from] crate::site::address::AddressError),
    /// A fetch or publish could not use what the network answered.
    #[error(transparent)]
    Transfer(#[from] crate::app::fetch::TransferError),
    /// A link (`umbra bench`'s flood) failed.
    #[error(transparent)]
    Link(#[from] crate::link::LinkError),
    /// A roster or writer manifest cannot be made or used (`11-writers.md`).
    #[error(transparent)]
    Writers(#[from] crate::site::writers::WriterError),
    /// No browser could be started.
    #[error(transparent)]
    Browse(#[from] super::browse::BrowseError),
    /// The Tor first hop failed.
    #[cfg(feature = "tor")]
    #[error(transparent)]
    Tor(#[from] super::tor::TorError),
    /// JSON could not be read or written.
    #[error("bad JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The network did not do what the command needed (every attempt failed).
    #[error("{what} FAILED: {why}")]
    Network {
        /// What failed.
        what: &'static str,
        /// Why the last attempt failed, as the app reported it.
        why: String,
    },
    /// Something did not finish in time.
    #[error("{what} timed out after {secs} s")]
    Timeout {
        /// What.
        what: String,
        /// The limit.
        secs: u64,
    },
    /// The command cannot do what it was asked (an argument or input is unusable).
    #[error("{0}")]
    Usage(String),
    /// A measurement of `umbra bench` could not be taken (what went wrong, in its words).
    #[error("{0}")]
    Bench(String),
    /// A local peer (a node's API, a child process) answered something unusable.
    #[error("{what}: {detail}")]
    BadAnswer {
        /// Who answered.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl RuntimeError {
    /// A failed file operation on `path`.
    pub fn file(action: &'static str, path: &Path, source: std::io::Error) -> RuntimeError {
        RuntimeError::File {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// A `map_err` for a failed file operation on `path`.
    pub fn on_file(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| RuntimeError::File {
            action,
            path,
            source,
        }
    }

    /// A `map_err` for a failed system resource.
    pub fn system(action: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| RuntimeError::System { action, source }
    }

    /// A `map_err` for a socket that could not listen on `addr`.
    pub fn listen(addr: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Self {
        let addr = addr.to_string();
        move |source| RuntimeError::Listen { addr, source }
    }

    /// A `map_err` for a local service that could not be reached.
    pub fn connect(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.to_string();
        move |source| RuntimeError::Connect { what, source }
    }
}

impl HasKind for RuntimeError {
    fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::File { .. } | RuntimeError::System { .. } => ErrorKind::LocalIo,
            RuntimeError::Listen { .. } | RuntimeError::Usage(_) => ErrorKind::Config,
            RuntimeError::Connect { .. } | RuntimeError::Network { .. } => {
                ErrorKind::PeerUnreachable
            }
            RuntimeError::Config(e) => e.kind(),
            RuntimeError::Store(e) => e.kind(),
            RuntimeError::Keys(e) => e.kind(),
            RuntimeError::Crypto(e) => e.kind(),
            RuntimeError::Directory(e) => e.kind(),
            RuntimeError::Address(e) => e.kind(),
            RuntimeError::Transfer(e) => e.kind(),
            RuntimeError::Link(e) => e.kind(),
            RuntimeError::Writers(e) => e.kind(),
            RuntimeError::Browse(e) => e.kind(),
            #[cfg(feature = "tor")]
            RuntimeError::Tor(e) => e.kind(),
            RuntimeError::Json(_) => ErrorKind::MalformedInput,
            RuntimeError::Timeout { .. } => ErrorKind::Timeout,
            RuntimeError::BadAnswer { .. } => ErrorKind::PeerProtocolViolation,
            RuntimeError::Bench(_) => ErrorKind::PeerUnreachable,
        }
    }
}
