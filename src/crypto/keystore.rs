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
//! synced, then linked into place, which fails if the name exists: a key is never
//! overwritten, even by a race, and a crash never leaves half a key). Loading refuses, with
//! an error that says how to fix it, a file that the group or others can read or write, a
//! file owned by another user, and a file in a folder another user could replace it in
//! (writable by others without the sticky bit, writable by a group other than the user's
//! own, or owned by another user than the user or root).
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
    /// The name a key file gives this kind (`kind:` line).
    pub fn label(self) -> &'static str {
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
    /// The file, or the folder it is in, is not the user's alone.
    #[error("key file {path}: {why}; refusing to use it")]
    Unsafe {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        why: String,
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
            KeystoreError::Permissions { .. }
            | KeystoreError::Unsafe { .. }
            | KeystoreError::WrongKind { .. } => ErrorKind::Config,
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

/// A key file's text for `secret` of `kind`.
pub fn encode(kind: KeyKind, secret: &[u8; 32]) -> String {
    format!(
        "umbra-key v1\nkind: {}\nsecret: {}\n",
        kind.label(),
        hex::encode(secret)
    )
}

/// Parse a key file's text (`00-overview.md#key-files`): its kind and secret. `path` only
/// names the file in the error.
pub fn decode(path: &Path, text: &str) -> Result<(KeyKind, [u8; 32]), KeystoreError> {
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

/// Write a key file with mode 0600, atomically. Fails if `path` already exists, also when
/// it appears while this runs (the file is linked into place, never renamed over).
pub fn write_key(path: &Path, kind: KeyKind, secret: &[u8; 32]) -> Result<(), KeystoreError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Exclusive create: an existing file or symlink of this name is an error, never followed.
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io_err(&tmp))?;
    let written = f
        .write_all(encode(kind, secret).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io_err(&tmp));
    drop(f);
    let linked = written.and_then(|()| link_into_place(&tmp, path));
    let _ = fs::remove_file(&tmp);
    linked?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Give the written file `tmp` its name `path`, failing if `path` exists by then (a hard
/// link never replaces; a rename would).
fn link_into_place(tmp: &Path, path: &Path) -> Result<(), KeystoreError> {
    fs::hard_link(tmp, path).map_err(io_err(path))
}

/// The user this process runs as (Linux: the owner of /proc/self), if known.
#[cfg(unix)]
fn current_ids() -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").ok().map(|m| (m.uid(), m.gid()))
}

/// Refuse a key file another user owns, or one in a folder another user could replace it in.
#[cfg(unix)]
fn check_place(path: &Path, meta: &fs::Metadata) -> Result<(), KeystoreError> {
    use std::os::unix::fs::MetadataExt;
    let unsafe_ = |why: String| KeystoreError::Unsafe {
        path: path.to_path_buf(),
        why,
    };
    let Some((uid, gid)) = current_ids() else {
        return Ok(());
    };
    if meta.uid() != uid {
        return Err(unsafe_(format!(
            "it belongs to user {}, not to you (user {uid}); fix with `chown {uid} {}`",
            meta.uid(),
            path.display()
        )));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let d = fs::metadata(dir).map_err(io_err(dir))?;
    let mode = d.mode() & 0o7777;
    let sticky = mode & 0o1000 != 0;
    let why = if d.uid() != uid && d.uid() != 0 {
        Some(format!(
            "its folder {} belongs to user {}",
            dir.display(),
            d.uid()
        ))
    } else if mode & 0o002 != 0 && !sticky {
        Some(format!(
            "anyone can replace it: its folder {} has mode {mode:04o} (fix with `chmod o-w {}`)",
            dir.display(),
            dir.display()
        ))
    } else if mode & 0o020 != 0 && !sticky && d.gid() != gid {
        Some(format!(
            "group {} can replace it: its folder {} has mode {mode:04o} (fix with `chmod g-w {}`)",
            d.gid(),
            dir.display(),
            dir.display()
        ))
    } else {
        None
    };
    why.map_or(Ok(()), |w| Err(unsafe_(w)))
}

/// Read a key file of the given kind, refusing one that others can access or replace.
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
        check_place(path, &meta)?;
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

    #[cfg(unix)]
    #[test]
    fn another_users_file_or_an_open_folder_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempdir("place");
        let p = d.join("identity.key");
        write_identity(&p, &IdentityKey::from_secret_bytes([5; 32])).unwrap();
        assert!(read_identity(&p).is_ok());
        // A folder anyone can write to (no sticky bit): anyone could swap the key.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = read_identity(&p).unwrap_err();
        assert!(matches!(err, KeystoreError::Unsafe { .. }), "{err}");
        assert!(err.to_string().contains("chmod o-w"), "{err}");
        // With the sticky bit (like /tmp) others cannot replace it.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(read_identity(&p).is_ok());
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        // A file that belongs to another user (the tests run as root in CI; elsewhere the
        // chown itself is refused and this part cannot be shown).
        let chown = std::process::Command::new("chown")
            .arg("65534")
            .arg(&p)
            .status();
        if chown.is_ok_and(|s| s.success()) {
            let err = read_identity(&p).unwrap_err();
            assert!(err.to_string().contains("belongs to user 65534"), "{err}");
        } else {
            assert_ne!(
                super::current_ids().map(|i| i.0),
                Some(0),
                "root could not chown"
            );
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_key_is_never_overwritten_even_by_a_race() {
        let d = tempdir("race");
        let p = d.join("identity.key");
        // The race: another file appears at the name after the key was written to its
        // temporary. Putting the key in place fails instead of replacing that file.
        let tmp = d.join(".identity.key.tmp");
        std::fs::write(&tmp, "the new key").unwrap();
        std::fs::write(&p, "someone else's").unwrap();
        assert!(super::link_into_place(&tmp, &p).is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "someone else's");
        // And the whole write: refused, nothing left behind.
        std::fs::remove_file(&tmp).unwrap();
        assert!(write_identity(&p, &IdentityKey::from_secret_bytes([6; 32])).is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "someone else's");
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            1,
            "no temporary left"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
