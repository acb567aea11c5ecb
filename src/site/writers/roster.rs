//! Rosters (`protocol-spec/11-writers.md#roster`): the site key's signed list of who may
//! write where, sequence-numbered like a manifest (a node never goes back to a lower one).
//!
//! The site key itself is always a writer of the whole site and is never listed. A site
//! without a roster has the [`Roster::implicit`] one: the site key alone, sequence 0.
//! Revocation is a cut-off sequence per writer, with the digest of the writer's last main-line
//! manifest at or below it, so every node holding the roster refuses the same manifests and
//! uses the same last head, whatever the clocks say.
//!
//! Not in this module: storing or fetching rosters (`app/`), merging heads ([`super::merge`]).

use crate::crypto::hash;
use crate::crypto::keys::{IdentityKey, IdentityPublic, Signature};
use crate::site::SiteError;
use crate::site::address::SiteAddress;
use crate::site::manifest::{MAX_MANIFEST, MAX_PATH, check_path};
use crate::time::WallTime;
use crate::wire::{Reader, Writer};

use super::head::{Head, SignedHead};
use super::{MAX_PREFIXES, MAX_WRITERS, WriterError};

/// Roster format version.
pub const ROSTER_VERSION: u8 = 1;
/// The signature label of rosters (`00-overview.md#signatures`).
pub const ROSTER_LABEL: &str = "roster";

/// Where a revoked writer stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoff {
    /// The last sequence of the writer's still accepted (0: none).
    pub seq: u64,
    /// BLAKE3 of the writer's main-line manifest with that sequence (zeros when `seq` is 0 or
    /// the writer's last manifest at or below the cut-off was not on its main line).
    pub head: [u8; 32],
}

/// One writer of a roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterWriter {
    /// The writer's public key.
    pub key: IdentityPublic,
    /// Path prefixes it may write under: `""` is the whole site, `dir/` a directory, anything
    /// else one exact path.
    pub prefixes: Vec<String>,
    /// Set once the writer is revoked.
    pub cutoff: Option<Cutoff>,
}

/// A roster's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    /// The site's key (it signs the roster).
    pub site: IdentityPublic,
    /// Sequence number: higher replaces lower.
    pub seq: u64,
    /// When it was signed (informational; no check depends on it).
    pub published: WallTime,
    /// The writers besides the site key, sorted by key, unique.
    pub writers: Vec<RosterWriter>,
}

/// What a roster lets one key do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant<'a> {
    /// Its prefixes (`None`: the whole site, for the site key).
    pub prefixes: Option<&'a [String]>,
    /// Its cut-off, if revoked.
    pub cutoff: Option<Cutoff>,
}

impl Grant<'_> {
    /// Whether the grant covers `path`.
    pub fn covers(&self, path: &str) -> bool {
        self.prefixes
            .is_none_or(|ps| ps.iter().any(|p| prefix_covers(p, path)))
    }
}

/// Whether `prefix` covers `path` (`11-writers.md#roster`).
pub fn prefix_covers(prefix: &str, path: &str) -> bool {
    prefix.is_empty() || path == prefix || (prefix.ends_with('/') && path.starts_with(prefix))
}

/// Check a prefix: `""`, a path, or a path followed by `/`.
pub fn check_prefix(prefix: &str) -> Result<(), WriterError> {
    if prefix.is_empty() {
        return Ok(());
    }
    check_path(prefix.strip_suffix('/').unwrap_or(prefix))?;
    Ok(())
}

impl Roster {
    /// The roster of a site that never signed one: the site key alone, sequence 0.
    pub fn implicit(site: IdentityPublic) -> Roster {
        Roster {
            site,
            seq: 0,
            published: WallTime(0),
            writers: Vec::new(),
        }
    }

    /// What `key` may do under this roster (`None`: it is not a writer).
    pub fn grant(&self, key: &IdentityPublic) -> Option<Grant<'_>> {
        if *key == self.site {
            return Some(Grant {
                prefixes: None,
                cutoff: None,
            });
        }
        self.writers
            .binary_search_by(|w| w.key.to_bytes().cmp(&key.to_bytes()))
            .ok()
            .map(|i| Grant {
                prefixes: Some(&self.writers[i].prefixes),
                cutoff: self.writers[i].cutoff,
            })
    }

    /// The lines a reader gathers for branch `branch`: the site key's and every listed
    /// writer's (`11-writers.md#in-the-dht`).
    pub fn lines(&self, branch: &str) -> Vec<super::LineId> {
        std::iter::once(self.site)
            .chain(self.writers.iter().map(|w| w.key))
            .map(|w| super::LineId::of(&w, branch))
            .collect()
    }

    /// The lines a reader gathers for the view `spec`: every writer's line of its branch, or
    /// the one writer's line.
    pub fn lines_of(&self, spec: &super::ViewSpec) -> Vec<super::LineId> {
        match &spec.writer {
            Some(w) => vec![super::LineId::of(w, &spec.branch)],
            None => self.lines(&spec.branch),
        }
    }

    /// The digests of revoked writers' pinned last heads, fetched from history
    /// (`11-writers.md#history`).
    pub fn pins(&self) -> Vec<[u8; 32]> {
        self.writers
            .iter()
            .filter_map(|w| w.cutoff)
            .map(|c| c.head)
            .filter(|d| *d != [0; 32])
            .collect()
    }

    /// Check that `head` may be used under this roster: same site, its writer listed, written
    /// under this roster or an older one, not past the writer's cut-off, every entry inside
    /// the writer's prefixes. The head's signature was checked when it was parsed.
    pub fn admit(&self, head: &Head) -> Result<(), WriterError> {
        if head.site != self.site {
            return Err(WriterError::WrongSite);
        }
        let grant = self
            .grant(&head.writer)
            .ok_or_else(|| WriterError::NotAWriter {
                writer: crate::wire::hex::encode(&head.writer.to_bytes()[..8]),
                roster: self.seq,
            })?;
        if head.roster > self.seq {
            return Err(WriterError::UnknownRoster {
                claimed: head.roster,
                held: self.seq,
            });
        }
        if let Some(c) = grant.cutoff
            && head.seq > c.seq
        {
            return Err(WriterError::Revoked {
                seq: head.seq,
                cutoff: c.seq,
            });
        }
        if let Some(e) = head.entries.iter().find(|e| !grant.covers(&e.path)) {
            return Err(WriterError::OutsidePrefix {
                path: e.path.clone(),
            });
        }
        Ok(())
    }

    /// [`Roster::admit`], plus, for a revoked writer's main-line manifest at exactly its
    /// cut-off, that it is the one the roster pinned (`11-writers.md#admission`, step 4).
    pub fn admit_signed(&self, h: &SignedHead) -> Result<(), WriterError> {
        self.admit(&h.head)?;
        if let Some(c) = self.grant(&h.head.writer).and_then(|g| g.cutoff)
            && h.head.branch.is_empty()
            && h.head.seq == c.seq
            && c.head != [0; 32]
            && h.digest() != c.head
        {
            return Err(WriterError::Revoked {
                seq: h.head.seq,
                cutoff: c.seq,
            });
        }
        Ok(())
    }

    fn check(&self) -> Result<(), WriterError> {
        if self.writers.len() > MAX_WRITERS {
            return Err(WriterError::BadRoster("more than 256 writers"));
        }
        for (i, w) in self.writers.iter().enumerate() {
            if w.key == self.site {
                return Err(WriterError::BadRoster("the site key is listed as a writer"));
            }
            if i > 0 && self.writers[i - 1].key.to_bytes() >= w.key.to_bytes() {
                return Err(WriterError::BadRoster("writers not sorted and unique"));
            }
            if w.prefixes.is_empty() || w.prefixes.len() > MAX_PREFIXES {
                return Err(WriterError::BadRoster("a writer needs 1 to 16 prefixes"));
            }
            for p in &w.prefixes {
                check_prefix(p)?;
            }
        }
        Ok(())
    }

    fn encode_unsigned(&self) -> Result<Vec<u8>, WriterError> {
        self.check()?;
        let mut w = Writer::new();
        w.u8(ROSTER_VERSION)
            .bytes(&self.site.to_bytes())
            .u64(self.seq)
            .u64(self.published.0)
            .u16(self.writers.len() as u16);
        for rw in &self.writers {
            w.bytes(&rw.key.to_bytes());
            match rw.cutoff {
                Some(c) => w.u8(1).u64(c.seq).bytes(&c.head),
                None => w.u8(0),
            };
            w.u8(rw.prefixes.len() as u8);
            for p in &rw.prefixes {
                w.u16_prefixed("prefix", p.as_bytes(), MAX_PATH)?;
            }
        }
        Ok(w.into_vec())
    }

    /// Sign with the site key; returns the wire encoding.
    pub fn sign(&self, key: &IdentityKey) -> Result<Vec<u8>, WriterError> {
        if key.public() != self.site {
            return Err(SiteError::WrongKey.into());
        }
        let mut out = self.encode_unsigned()?;
        let sig = key.sign(ROSTER_LABEL, &out);
        out.extend_from_slice(&sig.0);
        Ok(out)
    }
}

/// A roster whose signature verified under its site's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRoster {
    /// The roster.
    pub roster: Roster,
    /// Its wire bytes.
    pub bytes: Vec<u8>,
}

impl SignedRoster {
    /// BLAKE3 of the wire bytes.
    pub fn digest(&self) -> [u8; 32] {
        hash::hash(&self.bytes)
    }
}

/// Parse a roster and check it is `site`'s, signed by its key, within the limits.
pub fn parse(bytes: &[u8], site: &SiteAddress) -> Result<SignedRoster, WriterError> {
    if bytes.len() > MAX_MANIFEST {
        return Err(SiteError::TooLarge.into());
    }
    let mut r = Reader::new(bytes);
    let version = r.u8()?;
    if version != ROSTER_VERSION {
        return Err(WriterError::Version(version));
    }
    let key = IdentityPublic::from_bytes(&r.array()?).map_err(|_| SiteError::WrongKey)?;
    if key != site.0 {
        return Err(WriterError::WrongSite);
    }
    let seq = r.u64()?;
    let published = WallTime(r.u64()?);
    let count = usize::from(r.u16()?);
    if count > MAX_WRITERS {
        return Err(WriterError::BadRoster("more than 256 writers"));
    }
    let mut writers = Vec::with_capacity(count);
    for _ in 0..count {
        let wk = IdentityPublic::from_bytes(&r.array()?).map_err(|_| SiteError::WrongKey)?;
        let cutoff = match r.u8()? {
            0 => None,
            1 => Some(Cutoff {
                seq: r.u64()?,
                head: r.array()?,
            }),
            _ => return Err(WriterError::BadRoster("unknown writer flags")),
        };
        let n = usize::from(r.u8()?);
        if n > MAX_PREFIXES {
            return Err(WriterError::BadRoster("a writer needs 1 to 16 prefixes"));
        }
        let mut prefixes = Vec::with_capacity(n);
        for _ in 0..n {
            let p = r.u16_prefixed("prefix", MAX_PATH)?;
            prefixes.push(String::from_utf8(p.to_vec()).map_err(|_| SiteError::BadPath)?);
        }
        writers.push(RosterWriter {
            key: wk,
            prefixes,
            cutoff,
        });
    }
    let signed = r.consumed();
    let sig = Signature(r.array()?);
    r.finish()?;
    let roster = Roster {
        site: key,
        seq,
        published,
        writers,
    };
    roster.check()?;
    key.verify(ROSTER_LABEL, &bytes[..signed], &sig)
        .map_err(|_| SiteError::BadSignature)?;
    Ok(SignedRoster {
        roster,
        bytes: bytes.to_vec(),
    })
}

/// Keep the newer of two rosters of one site (`11-writers.md#roster`): a higher sequence
/// replaces a lower one; two different rosters with one sequence keep the one with the lower
/// digest, so every node converges, and are reported as equivocation by the caller.
pub fn newer(
    held: Option<SignedRoster>,
    offered: SignedRoster,
) -> Result<SignedRoster, WriterError> {
    let Some(held) = held else {
        return Ok(offered);
    };
    match offered.roster.seq.cmp(&held.roster.seq) {
        core::cmp::Ordering::Greater => Ok(offered),
        core::cmp::Ordering::Less => Err(WriterError::RosterRollback {
            held: held.roster.seq,
            got: offered.roster.seq,
        }),
        core::cmp::Ordering::Equal if held.bytes == offered.bytes => Ok(held),
        core::cmp::Ordering::Equal => {
            let (a, b) = (held.digest(), offered.digest());
            Err(WriterError::Equivocation {
                seq: held.roster.seq,
                digests: if a < b { [a, b] } else { [b, a] },
            })
        }
    }
}
