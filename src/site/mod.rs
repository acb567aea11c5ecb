//! Signed sites (`protocol-spec/07-sites.md`).
//!
//! - [`address`]: `<56 chars>.umbra` addresses with checksum and version.
//! - [`manifest`]: the signed, sequence-numbered file map; `Unverified` → `Verified`.
//! - [`SiteTracker`]: never go back to a lower sequence; keep proof of equivocation.
//! - [`build`]: cut files into blocks and sign a manifest (the publisher's side).
//!
//! Not in this module: the DHT, storage, or transport (the node and the exit's `dht`
//! service move records; see `dht/`).

pub mod address;
pub mod manifest;

use std::collections::BTreeMap;

use crate::crypto::hash;
use crate::crypto::keys::IdentityKey;
use crate::error::{ErrorKind, HasKind};
use crate::time::WallTime;
use crate::wire::DecodeError;

use address::SiteAddress;
use manifest::{BLOCK_SIZE, Entry, Manifest, Verified};

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

/// Two different manifests signed by one site key with the same sequence: proof the key
/// holder equivocated (`07-sites.md#rollback-and-equivocation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Equivocation {
    /// The site.
    pub site: SiteAddress,
    /// The sequence both carry.
    pub seq: u64,
    /// One signed manifest.
    pub first: Vec<u8>,
    /// The other.
    pub second: Vec<u8>,
}

/// What [`SiteTracker::observe`] concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// A higher sequence than before (or the first seen): use it.
    Newer,
    /// The same manifest as before.
    Same,
    /// Same sequence, different manifest: recorded as equivocation; the first one stays.
    Equivocation,
}

/// Sites a tracker remembers at most (least recently observed forgotten first).
pub const TRACKED_SITES: usize = 4096;
/// Bytes of first manifests a tracker keeps at most (for equivocation proofs and the
/// first-seen rule); past it, the least recently observed sites are forgotten.
pub const TRACKED_BYTES: usize = 64 << 20;
/// Equivocation proofs kept at most.
pub const TRACKED_PROOFS: usize = 256;

#[derive(Debug, Clone)]
struct Seen {
    seq: u64,
    digest: [u8; 32],
    first: Vec<u8>,
    used: u64,
}

/// Per-site memory of the highest manifest seen (`07-sites.md#rollback-and-equivocation`):
/// rollback refused, equivocation recorded and the first manifest of a sequence kept in
/// use. Bounded: [`TRACKED_SITES`], [`TRACKED_BYTES`], [`TRACKED_PROOFS`]; a site forgotten
/// to stay within them is checked again from nothing.
#[derive(Debug, Clone, Default)]
pub struct SiteTracker {
    seen: BTreeMap<[u8; 32], Seen>,
    bytes: usize,
    clock: u64,
    equivocations: Vec<Equivocation>,
}

impl SiteTracker {
    /// Nothing seen yet.
    pub fn new() -> Self {
        SiteTracker::default()
    }

    /// The highest sequence seen for a site.
    pub fn highest(&self, site: &SiteAddress) -> Option<u64> {
        self.seen.get(&site.0.to_bytes()).map(|s| s.seq)
    }

    /// Proofs of equivocation recorded so far (the latest [`TRACKED_PROOFS`]).
    pub fn equivocations(&self) -> &[Equivocation] {
        &self.equivocations
    }

    /// Sites remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no site is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Consider a verified manifest: refuses a lower sequence than seen.
    pub fn observe(&mut self, m: &Verified) -> Result<Observed, SiteError> {
        let site = m.manifest().address();
        let key = site.0.to_bytes();
        let seq = m.manifest().seq;
        let digest = m.digest();
        self.clock += 1;
        let clock = self.clock;
        match self.seen.get_mut(&key) {
            Some(s) if seq < s.seq => Err(SiteError::Rollback {
                seen: s.seq,
                got: seq,
            }),
            Some(s) if seq == s.seq && s.digest == digest => {
                s.used = clock;
                Ok(Observed::Same)
            }
            Some(s) if seq == s.seq => {
                s.used = clock;
                let proof = Equivocation {
                    site,
                    seq,
                    first: s.first.clone(),
                    second: m.bytes().to_vec(),
                };
                if !self.equivocations.contains(&proof) {
                    if self.equivocations.len() >= TRACKED_PROOFS {
                        self.equivocations.remove(0);
                    }
                    self.equivocations.push(proof);
                }
                Ok(Observed::Equivocation)
            }
            _ => {
                let first = m.bytes().to_vec();
                self.bytes += first.len();
                if let Some(old) = self.seen.insert(
                    key,
                    Seen {
                        seq,
                        digest,
                        first,
                        used: clock,
                    },
                ) {
                    self.bytes -= old.first.len();
                }
                self.shrink(&key);
                Ok(Observed::Newer)
            }
        }
    }

    /// [`SiteTracker::observe`], and the manifest to use: `m` itself, or on equivocation
    /// the first manifest seen with that sequence (`07-sites.md#rollback-and-equivocation`),
    /// verified again at `now`.
    pub fn settle(
        &mut self,
        m: Verified,
        now: WallTime,
    ) -> Result<(Verified, Observed), SiteError> {
        let observed = self.observe(&m)?;
        if observed != Observed::Equivocation {
            return Ok((m, observed));
        }
        let site = m.manifest().address();
        let first = self
            .seen
            .get(&site.0.to_bytes())
            .map(|s| s.first.clone())
            .ok_or(SiteError::BadSignature)?;
        let v = manifest::parse(&first)?.verify(&site, now)?;
        Ok((v, observed))
    }

    /// Forget the least recently observed sites (never `keep`) until within the bounds.
    fn shrink(&mut self, keep: &[u8; 32]) {
        while self.seen.len() > TRACKED_SITES || self.bytes > TRACKED_BYTES {
            let oldest = self
                .seen
                .iter()
                .filter(|(k, _)| *k != keep)
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| *k);
            let Some(k) = oldest else { break };
            if let Some(s) = self.seen.remove(&k) {
                self.bytes -= s.first.len();
            }
        }
    }
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

/// Cut `files` (path, content) into blocks and sign a manifest with sequence `seq`, valid
/// from `now` for `lifetime_secs`.
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
        expires: WallTime(now.0 + lifetime_secs),
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
    use super::{Observed, SiteError, SiteTracker, build, verify_block};
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
    fn rollback_refused_equivocation_recorded() {
        let k = IdentityKey::from_secret_bytes([1; 32]);
        let addr = super::address::SiteAddress(k.public());
        let v = |seq, content: &[u8]| {
            let b = build(
                &k,
                &[("a".into(), content.to_vec())],
                seq,
                WallTime(1000),
                3600,
            )
            .unwrap();
            parse(&b.manifest)
                .unwrap()
                .verify(&addr, WallTime(1001))
                .unwrap()
        };
        let mut t = SiteTracker::new();
        assert_eq!(t.observe(&v(2, b"x")), Ok(Observed::Newer));
        assert_eq!(t.observe(&v(2, b"x")), Ok(Observed::Same));
        assert_eq!(
            t.observe(&v(1, b"old")),
            Err(SiteError::Rollback { seen: 2, got: 1 })
        );
        assert_eq!(t.observe(&v(2, b"other")), Ok(Observed::Equivocation));
        assert_eq!(t.equivocations().len(), 1);
        // The first manifest of sequence 2 stays the one in use.
        let first = v(2, b"x");
        let (used, o) = t.settle(v(2, b"third"), WallTime(1001)).unwrap();
        assert_eq!(o, Observed::Equivocation);
        assert_eq!(used.bytes(), first.bytes());
        assert_eq!(t.equivocations().len(), 2);
        assert_eq!(t.observe(&v(3, b"new")), Ok(Observed::Newer));
        assert_eq!(t.highest(&addr), Some(3));
    }

    #[test]
    fn the_tracker_is_bounded() {
        let mut t = SiteTracker::new();
        for i in 0..(super::TRACKED_SITES as u64 + 10) {
            let k = IdentityKey::from_secret_bytes(crate::crypto::hash::hash(&i.to_le_bytes()));
            let addr = super::address::SiteAddress(k.public());
            let b = build(&k, &[("a".into(), b"x".to_vec())], 1, WallTime(1000), 3600).unwrap();
            let m = parse(&b.manifest)
                .unwrap()
                .verify(&addr, WallTime(1001))
                .unwrap();
            t.observe(&m).unwrap();
        }
        assert_eq!(t.len(), super::TRACKED_SITES);
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
