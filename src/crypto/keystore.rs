//! Key files on disk (`protocol-spec/00-overview.md#key-files`).
//!
//! A key file is a short text file:
//!
//! ```text
//! umbra-key v1
//! kind: identity-ed25519
//! secret: <64 hex digits>
//! ```
//!
//! Files are created with mode 0600 (written to a temporary file in the same directory,
//! synced, then renamed, so a crash never leaves half a key). Loading refuses a file that
//! the group or others can read or write, with an error that says how to fix it.
//!
//! Not in this module: where key files live (the CLI and config decide).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::keys::{IdentityKey, LinkKeypair};
use crate::error::{ErrorKind, HasKind};
use crate::wire::hex;

/// What kind of key a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyKind {
    /// An Ed25519 identity ([`IdentityKey`]).
    IdentityEd25519,
    /// An X25519 static key ([`LinkKeypair`]).
    StaticX25519,
}

impl KeyKind {
    fn label(self) -> &'static str {
        match self {
            KeyKind::IdentityEd25519 => "identity-ed25519",
            KeyKind::StaticX25519 => "static-x25519",
        }
    }

    fn from_label(s: &str) -> Option<KeyKind> {
        match s {
            "identity-ed25519" => Some(KeyKind::IdentityEd25519),
            "static-x25519" => Some(KeyKind::StaticX25519),
            _ => None,
        }
    }
}

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeystoreError {
    /// The file can be read or written by users other than its owner.
    #[error(
        "key file {path} has mode {mode:04o}: group or others can access it; \
         refusing to use it (fix with `chmod 600 {path}`)"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not a key file of this format.
    #[error("key file {path} is malformed at line {line}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The first bad line (1-based).
        line: usize,
    },
    /// The file holds another kind of key.
    #[error("key file {path} holds a {found:?} key, not a {wanted:?} key")]
    WrongKind {
        /// The file.
        path: PathBuf,
        /// What it holds.
        found: KeyKind,
        /// What was asked for.
        wanted: KeyKind,
    },
    /// Reading or writing failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl HasKind for KeystoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            KeystoreError::Permissions { .. } | KeystoreError::WrongKind { .. } => {
                ErrorKind::Config
            }
            KeystoreError::Malformed { .. } => ErrorKind::MalformedInput,
            KeystoreError::Io { .. } => ErrorKind::LocalIo,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeystoreError + '_ {
    move |source| KeystoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn encode(kind: KeyKind, secret: &[u8; 32]) -> String {
    format!(
        "umbra-key v1\nkind: {}\nsecret: {}\n",
        kind.label(),
        hex::encode(secret)
    )
}

fn decode(path: &Path, text: &str) -> Result<(KeyKind, [u8; 32]), KeystoreError> {
    let bad = |line| KeystoreError::Malformed {
        path: path.to_path_buf(),
        line,
    };
    let mut lines = text.lines();
    if lines.next() != Some("umbra-key v1") {
        return Err(bad(1));
    }
    let kind = lines
        .next()
        .and_then(|l| l.strip_prefix("kind: "))
        .and_then(KeyKind::from_label)
        .ok_or_else(|| bad(2))?;
    let secret: [u8; 32] = lines
        .next()
        .and_then(|l| l.strip_prefix("secret: "))
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad(3))?;
    if lines.any(|l| !l.trim().is_empty()) {
        return Err(bad(4));
    }
    Ok((kind, secret))
}

/// Write a key file with mode 0600, atomically. Fails if `path` already exists.
pub fn write_key(path: &Path, kind: KeyKind, secret: &[u8; 32]) -> Result<(), KeystoreError> {
    if path.exists() {
        return Err(KeystoreError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        });
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp"));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = fs::remove_file(&tmp);
    let mut f = opts.open(&tmp).map_err(io_err(&tmp))?;
    f.write_all(encode(kind, secret).as_bytes())
        .map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Read a key file of the given kind, refusing one that others can access.
pub fn read_key(path: &Path, wanted: KeyKind) -> Result<[u8; 32], KeystoreError> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeystoreError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    let (found, secret) = decode(path, &text)?;
    if found != wanted {
        return Err(KeystoreError::WrongKind {
            path: path.to_path_buf(),
            found,
            wanted,
        });
    }
    Ok(secret)
}

/// Write an identity key file.
pub fn write_identity(path: &Path, key: &IdentityKey) -> Result<(), KeystoreError> {
    write_key(path, KeyKind::IdentityEd25519, &key.secret_bytes())
}

/// Read an identity key file.
pub fn read_identity(path: &Path) -> Result<IdentityKey, KeystoreError> {
    read_key(path, KeyKind::IdentityEd25519).map(IdentityKey::from_secret_bytes)
}

/// Write a static X25519 key file.
pub fn write_static(path: &Path, key: &LinkKeypair) -> Result<(), KeystoreError> {
    write_key(path, KeyKind::StaticX25519, key.secret_bytes())
}

/// Read a static X25519 key file.
pub fn read_static(path: &Path) -> Result<LinkKeypair, KeystoreError> {
    read_key(path, KeyKind::StaticX25519).map(LinkKeypair::from_secret_bytes)
}

#[cfg(test)]
mod tests {
    use super::{KeyKind, KeystoreError, read_identity, read_static, write_identity, write_static};
    use crate::crypto::keys::{IdentityKey, LinkKeypair};
    use crate::crypto::rng::UmbraRng;
    use std::path::PathBuf;

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("umbra-keystore-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trip_with_0600() {
        let d = tempdir("rt");
        let mut rng = UmbraRng::from_u64(3);
        let id = IdentityKey::generate(&mut rng);
        let p = d.join("identity.key");
        write_identity(&p, &id).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_eq!(read_identity(&p).unwrap().public(), id.public());
        assert!(write_identity(&p, &id).is_err(), "never overwrites a key");
        let lk = LinkKeypair::generate(&mut rng);
        let q = d.join("link.key");
        write_static(&q, &lk).unwrap();
        assert_eq!(read_static(&q).unwrap().public(), lk.public());
        assert!(matches!(
            read_identity(&q),
            Err(KeystoreError::WrongKind {
                found: KeyKind::StaticX25519,
                ..
            })
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempdir("perm");
        let p = d.join("identity.key");
        write_identity(&p, &IdentityKey::from_secret_bytes([4; 32])).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_identity(&p).unwrap_err();
        assert!(matches!(
            err,
            KeystoreError::Permissions { mode: 0o644, .. }
        ));
        assert!(err.to_string().contains("chmod 600"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn malformed_files_are_typed() {
        let d = tempdir("bad");
        let p = d.join("k");
        std::fs::write(&p, "umbra-key v1\nkind: identity-ed25519\nsecret: zz\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(matches!(
            read_identity(&p),
            Err(KeystoreError::Malformed { line: 3, .. })
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
