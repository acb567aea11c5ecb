//! Signed sites (`protocol-spec/07-sites.md`).
//!
//! - [`address`]: `<56 chars>.umbra` addresses with checksum and version.
//! - [`manifest`]: the signed, sequence-numbered file map; `Unverified` → `Verified`.
//! - [`seen`]: [`SiteTracker`], never go back to a lower sequence; keep proof of
//!   equivocation; the records a node stores to remember across restarts.
//! - [`writers`]: sites with many writers: rosters, writer manifests, the merged view.
//! - [`build`]: cut files into blocks and sign a manifest (the publisher's side).
//!
//! Not in this module: the DHT, storage, or transport (the node and the exit's `dht`
//! service move records; see `dht/`).

pub mod address;
pub mod manifest;
pub mod seen;
pub mod writers;

pub use seen::{Equivocation, Observed, SeenChanges, SiteTracker};

use std::collections::BTreeMap;

use crate::crypto::hash;
use crate::crypto::keys::IdentityKey;
use crate::error::{ErrorKind, HasKind};
use crate::time::WallTime;
use crate::wire::DecodeError;

use manifest::{BLOCK_SIZE, Entry, Manifest};

/// Why a manifest, block or site operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SiteError {
    /// The bytes do not decode.
    #[error("malformed manifest: {0}")]
    Decode(#[from] DecodeError),
    /// Unknown manifest version.
    #[error("unknown manifest version {0}")]
    Version(u8),
    /// Over a limit (`07-sites.md#limits`).
    #[error("manifest over the size or entry limits")]
    TooLarge,
    /// A path breaks the rules (`07-sites.md#paths`).
    #[error("bad path in manifest")]
    BadPath,
    /// Entries not strictly sorted by path.
    #[error("manifest entries not sorted and unique")]
    Unsorted,
    /// A block list does not match the file size.
    #[error("block count does not match the file size")]
    BlockCount,
    /// A media type is empty or not printable ASCII.
    #[error("bad media type")]
    BadMediaType,
    /// Signed by another key than the site's.
    #[error("manifest is not for this site's key")]
    WrongKey,
    /// The signature does not verify.
    #[error("manifest signature does not verify")]
    BadSignature,
    /// Expired.
    #[error("manifest expired at {expires} (now {now})")]
    Expired {
        /// Expiry.
        expires: u64,
        /// The time checked.
        now: u64,
    },
    /// Published in the future.
    #[error("manifest published in the future")]
    NotYetValid,
    /// A lower sequence than one already seen (`07-sites.md#rollback-and-equivocation`).
    #[error("rollback refused: sequence {got} is lower than {seen}")]
    Rollback {
        /// The highest sequence seen.
        seen: u64,
        /// The sequence offered.
        got: u64,
    },
    /// A second manifest with a sequence seen, after the first was dropped from memory: it
    /// can be neither used nor proven (`07-sites.md#memory`).
    #[error("the site signed two manifests with sequence {seq}; the first is no longer held")]
    Equivocated {
        /// The sequence.
        seq: u64,
    },
    /// A stored record of what was seen does not match its manifest (`07-sites.md#memory`).
    #[error("a stored record of a seen manifest does not match it")]
    Memory,
    /// A block's hash is not the one expected.
    #[error("block hash mismatch")]
    BlockHash,
}

impl HasKind for SiteError {
    fn kind(&self) -> ErrorKind {
        match self {
            SiteError::BadSignature | SiteError::WrongKey => ErrorKind::SignatureInvalid,
            SiteError::Expired { .. } | SiteError::NotYetValid => ErrorKind::Expired,
            SiteError::BlockHash => ErrorKind::CryptoFailure,
            _ => ErrorKind::MalformedInput,
        }
    }
}

/// Check that `block` is the block whose hash is `expected`.
pub fn verify_block(expected: &[u8; 32], block: &[u8]) -> Result<(), SiteError> {
    if block.len() > BLOCK_SIZE || !hash::ct_eq_32(&hash::hash(block), expected) {
        return Err(SiteError::BlockHash);
    }
    Ok(())
}

/// The media type served for a path, by extension (`07-sites.md#media-types`).
pub fn media_type(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "xml" => "application/xml",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        _ => "application/octet-stream",
    }
}

/// A site ready to publish: the signed manifest and every block by hash.
#[derive(Debug, Clone)]
pub struct Built {
    /// The signed manifest's wire bytes.
    pub manifest: Vec<u8>,
    /// The manifest's content.
    pub parsed: Manifest,
    /// Blocks by hash (each stored once however often it occurs).
    pub blocks: BTreeMap<[u8; 32], Vec<u8>>,
}

/// The lifetime of a manifest that never expires (`07-sites.md#manifest`): the default of
/// `umbra publish`, for a site that lives while storers keep it; sequences, not expiry,
/// refuse rollback.
pub const NO_EXPIRY: u64 = u64::MAX;

/// Cut `files` (path, content) into blocks and sign a manifest with sequence `seq`, valid
/// from `now` for `lifetime_secs` ([`NO_EXPIRY`]: for ever).
pub fn build(
    key: &IdentityKey,
    files: &[(String, Vec<u8>)],
    seq: u64,
    now: WallTime,
    lifetime_secs: u64,
) -> Result<Built, SiteError> {
    let mut entries = Vec::with_capacity(files.len());
    let mut blocks = BTreeMap::new();
    for (path, content) in files {
        manifest::check_path(path)?;
        let mut list = Vec::new();
        for chunk in content.chunks(BLOCK_SIZE) {
            let h = hash::hash(chunk);
            blocks.entry(h).or_insert_with(|| chunk.to_vec());
            list.push(h);
        }
        entries.push(Entry {
            path: path.clone(),
            size: content.len() as u64,
            hash: hash::hash(content),
            media_type: media_type(path).to_string(),
            blocks: list,
        });
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let parsed = Manifest {
        site: key.public(),
        seq,
        published: now,
        expires: WallTime(now.0.saturating_add(lifetime_secs)),
        entries,
    };
    let manifest = parsed.sign(key)?;
    Ok(Built {
        manifest,
        parsed,
        blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::manifest::{BLOCK_SIZE, check_path, parse};
    use super::{SiteError, build, verify_block};
    use crate::crypto::keys::IdentityKey;
    use crate::time::WallTime;

    fn files() -> Vec<(String, Vec<u8>)> {
        vec![
            ("index.html".into(), b"<h1>hi</h1>".to_vec()),
            (
                "img/big.bin".into(),
                (0..BLOCK_SIZE * 2 + 5).map(|i| i as u8).collect(),
            ),
            ("empty.txt".into(), vec![]),
        ]
    }

    #[test]
    fn build_parse_verify() {
        let k = IdentityKey::from_secret_bytes([1; 32]);
        let b = build(&k, &files(), 1, WallTime(1000), 3600).unwrap();
        assert_eq!(b.parsed.entries.len(), 3);
        assert_eq!(b.parsed.entry("img/big.bin").unwrap().blocks.len(), 3);
        assert_eq!(b.parsed.entry("empty.txt").unwrap().blocks.len(), 0);
        let addr = b.parsed.address();
        let v = parse(&b.manifest)
            .unwrap()
            .verify(&addr, WallTime(2000))
            .unwrap();
        assert_eq!(v.manifest(), &b.parsed);
        for (h, blk) in &b.blocks {
            verify_block(h, blk).unwrap();
        }
        assert_eq!(verify_block(&[0; 32], b"x"), Err(SiteError::BlockHash));
        // Expired, wrong key, bad signature.
        assert!(matches!(
            parse(&b.manifest).unwrap().verify(&addr, WallTime(4600)),
            Err(SiteError::Expired { .. })
        ));
        let other = IdentityKey::from_secret_bytes([2; 32]);
        assert_eq!(
            parse(&b.manifest)
                .unwrap()
                .verify(&super::address::SiteAddress(other.public()), WallTime(2000))
                .unwrap_err(),
            SiteError::WrongKey
        );
        let mut bad = b.manifest.clone();
        let n = bad.len();
        bad[n - 70] ^= 1;
        assert!(
            parse(&bad)
                .map(|u| u.verify(&addr, WallTime(2000)))
                .is_err()
                || parse(&bad).unwrap().verify(&addr, WallTime(2000)).is_err()
        );
    }

    #[test]
    fn paths_are_checked() {
        for bad in [
            "", "/abs", "a//b", "../x", "a/./b", "a\\b", "dir/", "a\u{0}b",
        ] {
            assert_eq!(check_path(bad), Err(SiteError::BadPath), "{bad:?}");
        }
        for good in ["index.html", "a/b/c.css", "ünï/çødé.txt"] {
            assert_eq!(check_path(good), Ok(()));
        }
    }
}
