//! Site manifests (`protocol-spec/07-sites.md#manifest`).
//!
//! A manifest is the signed, sequence-numbered map `path → (size, BLAKE3 hash, media type,
//! blocks)` of one site. Parsing checks the format and the limits only; a manifest becomes
//! [`Verified`] only through [`Unverified::verify`] at a given time, with the site's key.

use crate::crypto::hash;
use crate::crypto::keys::{IdentityKey, IdentityPublic, Signature};
use crate::time::WallTime;
use crate::wire::{DecodeError, Reader, Writer};

use super::SiteError;
use super::address::SiteAddress;

/// Manifest format version.
pub const MANIFEST_VERSION: u8 = 1;
/// Block size: files are cut into blocks of this many bytes (`rationale.md#block-size`).
pub const BLOCK_SIZE: usize = 32 * 1024;
/// The largest encoded manifest (`07-sites.md#limits`).
pub const MAX_MANIFEST: usize = 1 << 20;
/// The most files in one site.
pub const MAX_ENTRIES: usize = 10_000;
/// The longest path, in bytes.
pub const MAX_PATH: usize = 1024;
/// The longest media type.
pub const MAX_MEDIA_TYPE: usize = 127;
/// The largest file (so a block list always fits the manifest limit in practice).
pub const MAX_FILE: u64 = 1 << 30;
/// The signature label of manifests (`00-overview.md#signatures`).
pub const MANIFEST_LABEL: &str = "manifest";

/// One file of a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path, `/`-separated (`07-sites.md#paths`).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the whole file.
    pub hash: [u8; 32],
    /// Media type served for it.
    pub media_type: String,
    /// BLAKE3 of each block, in order.
    pub blocks: Vec<[u8; 32]>,
}

/// A manifest's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The site's key.
    pub site: IdentityPublic,
    /// Sequence number: higher replaces lower.
    pub seq: u64,
    /// When it was signed.
    pub published: WallTime,
    /// When it stops being valid.
    pub expires: WallTime,
    /// Files, sorted by path, unique.
    pub entries: Vec<Entry>,
}

/// Check a path (`07-sites.md#paths`): relative, `/`-separated, no empty, `.` or `..`
/// segments, no backslashes or control characters.
pub fn check_path(p: &str) -> Result<(), SiteError> {
    let bad = p.is_empty()
        || p.len() > MAX_PATH
        || p.starts_with('/')
        || p.ends_with('/')
        || p.contains('\\')
        || p.chars().any(char::is_control)
        || p.split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..");
    if bad { Err(SiteError::BadPath) } else { Ok(()) }
}

/// How many blocks a file of `size` bytes has.
pub fn block_count(size: u64) -> u64 {
    size.div_ceil(BLOCK_SIZE as u64)
}

impl Manifest {
    fn encode_unsigned(&self) -> Result<Vec<u8>, SiteError> {
        let mut w = Writer::new();
        w.u8(MANIFEST_VERSION)
            .bytes(&self.site.to_bytes())
            .u64(self.seq)
            .u64(self.published.0)
            .u64(self.expires.0)
            .u32(u32::try_from(self.entries.len()).map_err(|_| SiteError::TooLarge)?);
        for e in &self.entries {
            w.u16_prefixed("path", e.path.as_bytes(), MAX_PATH)?;
            w.u64(e.size).bytes(&e.hash);
            let mt = u8::try_from(e.media_type.len())
                .ok()
                .filter(|l| usize::from(*l) <= MAX_MEDIA_TYPE)
                .ok_or(SiteError::BadMediaType)?;
            w.u8(mt).bytes(e.media_type.as_bytes());
            w.u32(u32::try_from(e.blocks.len()).map_err(|_| SiteError::TooLarge)?);
            for b in &e.blocks {
                w.bytes(b);
            }
        }
        Ok(w.into_vec())
    }

    /// Sign with the site's key; returns the wire encoding.
    pub fn sign(&self, key: &IdentityKey) -> Result<Vec<u8>, SiteError> {
        if key.public() != self.site {
            return Err(SiteError::WrongKey);
        }
        check_entries(&self.entries)?;
        let mut out = self.encode_unsigned()?;
        let sig = key.sign(MANIFEST_LABEL, &out);
        out.extend_from_slice(&sig.0);
        if out.len() > MAX_MANIFEST {
            return Err(SiteError::TooLarge);
        }
        Ok(out)
    }

    /// The site's address.
    pub fn address(&self) -> SiteAddress {
        SiteAddress(self.site)
    }

    /// The entry for `path`.
    pub fn entry(&self, path: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.entries[i])
    }
}

fn check_entries(entries: &[Entry]) -> Result<(), SiteError> {
    if entries.len() > MAX_ENTRIES {
        return Err(SiteError::TooLarge);
    }
    for (i, e) in entries.iter().enumerate() {
        check_path(&e.path)?;
        if i > 0 && entries[i - 1].path >= e.path {
            return Err(SiteError::Unsorted);
        }
        if e.size > MAX_FILE || e.blocks.len() as u64 != block_count(e.size) {
            return Err(SiteError::BlockCount);
        }
        if e.media_type.is_empty()
            || !e
                .media_type
                .bytes()
                .all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(SiteError::BadMediaType);
        }
    }
    Ok(())
}

/// A parsed manifest whose signature and validity are not yet checked.
#[derive(Debug, Clone)]
pub struct Unverified {
    manifest: Manifest,
    signed: Vec<u8>,
    signature: Signature,
    bytes: Vec<u8>,
}

/// A manifest whose signature verified, whose key was the expected one, and which was
/// valid when checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    manifest: Manifest,
    bytes: Vec<u8>,
}

impl Verified {
    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The signed wire bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// BLAKE3 of the wire bytes (tells two manifests apart).
    pub fn digest(&self) -> [u8; 32] {
        hash::hash(&self.bytes)
    }
}

/// Parse a manifest's wire bytes, checking format and limits (`07-sites.md#limits`).
pub fn parse(bytes: &[u8]) -> Result<Unverified, SiteError> {
    if bytes.len() > MAX_MANIFEST {
        return Err(SiteError::TooLarge);
    }
    let mut r = Reader::new(bytes);
    let version = r.u8()?;
    if version != MANIFEST_VERSION {
        return Err(SiteError::Version(version));
    }
    let site = IdentityPublic::from_bytes(&r.array()?).map_err(|_| SiteError::WrongKey)?;
    let seq = r.u64()?;
    let published = WallTime(r.u64()?);
    let expires = WallTime(r.u64()?);
    let count = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
    if count > MAX_ENTRIES {
        return Err(SiteError::TooLarge);
    }
    let mut entries = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let path = String::from_utf8(r.u16_prefixed("path", MAX_PATH)?.to_vec())
            .map_err(|_| SiteError::BadPath)?;
        let size = r.u64()?;
        let hash = r.array()?;
        let mt_len = usize::from(r.u8()?);
        if mt_len > MAX_MEDIA_TYPE {
            return Err(SiteError::BadMediaType);
        }
        let media_type =
            String::from_utf8(r.take(mt_len)?.to_vec()).map_err(|_| SiteError::BadMediaType)?;
        let n = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
        if n > r.remaining() / 32 {
            return Err(SiteError::Decode(DecodeError::Truncated {
                needed: n * 32,
                offset: r.consumed(),
            }));
        }
        let mut blocks = Vec::with_capacity(n);
        for _ in 0..n {
            blocks.push(r.array()?);
        }
        entries.push(Entry {
            path,
            size,
            hash,
            media_type,
            blocks,
        });
    }
    let signed_len = r.consumed();
    let signature = Signature(r.array()?);
    r.finish()?;
    check_entries(&entries)?;
    Ok(Unverified {
        manifest: Manifest {
            site,
            seq,
            published,
            expires,
            entries,
        },
        signed: bytes[..signed_len].to_vec(),
        signature,
        bytes: bytes.to_vec(),
    })
}

impl Unverified {
    /// The site key the manifest claims (unchecked).
    pub fn claimed_site(&self) -> SiteAddress {
        SiteAddress(self.manifest.site)
    }

    /// The sequence number the manifest claims (unchecked).
    pub fn claimed_seq(&self) -> u64 {
        self.manifest.seq
    }

    /// The blocks the manifest lists, in order (unchecked; for a storer that verified the
    /// manifest when it took it, `06-dht.md#renewal`).
    pub fn claimed_blocks(&self) -> Vec<[u8; 32]> {
        self.manifest
            .entries
            .iter()
            .flat_map(|e| e.blocks.iter().copied())
            .collect()
    }

    /// Check that `expected` signed it and that it is valid at `now` (`07-sites.md#manifest`).
    pub fn verify(self, expected: &SiteAddress, now: WallTime) -> Result<Verified, SiteError> {
        let v = self.verify_signature(expected)?;
        v.check_time(now)?;
        Ok(v)
    }

    /// Check only that `expected` signed it, whatever its times: for a manifest verified
    /// when it was seen and read back from the node's own memory (`07-sites.md#memory`).
    pub fn verify_signature(self, expected: &SiteAddress) -> Result<Verified, SiteError> {
        if self.manifest.site != expected.0 {
            return Err(SiteError::WrongKey);
        }
        self.manifest
            .site
            .verify(MANIFEST_LABEL, &self.signed, &self.signature)
            .map_err(|_| SiteError::BadSignature)?;
        Ok(Verified {
            manifest: self.manifest,
            bytes: self.bytes,
        })
    }
}

impl Verified {
    /// Whether it is valid at `now`: not expired, not published in the future.
    pub fn check_time(&self, now: WallTime) -> Result<(), SiteError> {
        if now.0 >= self.manifest.expires.0 {
            return Err(SiteError::Expired {
                expires: self.manifest.expires.0,
                now: now.0,
            });
        }
        if self.manifest.published.0 > now.0.saturating_add(600) {
            return Err(SiteError::NotYetValid);
        }
        Ok(())
    }
}
