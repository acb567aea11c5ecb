//! The relay directory, minimal (`protocol-spec/09-relay.md#descriptors`).
//!
//! Relays publish signed, expiring descriptors: identity, address, link key, onion key,
//! bandwidth, family and roles. A descriptor is parsed into [`Unverified`] and becomes a
//! [`Verified`] only through a signature and validity check at a given wall time. The
//! [`Directory`] holds verified descriptors; [`path`] selects 3-hop paths from it.
//!
//! Admission ([`Admission`]) caps how many relays one /16 network or one family may place
//! in a directory (`10-directory.md#admission`). Not in this module: how descriptors travel
//! ([`sync`] floods and reconciles them; the node carries the messages).

pub mod path;
pub mod sync;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::crypto::CryptoError;
use crate::crypto::keys::{IdentityKey, IdentityPublic, NodeId, Signature, X25519Public};
use crate::error::{ErrorKind, HasKind};
use crate::time::WallTime;
use crate::wire::{DecodeError, Reader, Writer, hex};

/// The signature label of descriptors (`00-overview.md#signatures`).
pub const DESCRIPTOR_LABEL: &str = "descriptor";
/// Descriptor format version.
pub const DESCRIPTOR_VERSION: u8 = 1;
/// The signature label of a family's membership certificate (`09-relay.md#families`).
pub const FAMILY_LABEL: &str = "family member";

/// The family key's certificate that the relay `identity` belongs to its family
/// (`09-relay.md#families`): its signature over the relay's identity key.
pub fn family_cert(family_key: &IdentityKey, identity: &IdentityPublic) -> [u8; 64] {
    family_key.sign(FAMILY_LABEL, &identity.to_bytes()).0
}

/// Roles a relay offers (`09-relay.md#descriptors`): bit flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Roles(pub u8);

impl Roles {
    /// May be a middle hop.
    pub const RELAY: Roles = Roles(1);
    /// May be the last hop (runs services: echo, later DHT lookups).
    pub const EXIT: Roles = Roles(2);
    /// May be a reader's first hop.
    pub const GUARD: Roles = Roles(4);
    /// Every role.
    pub const ALL: Roles = Roles(7);

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Roles) -> bool {
        self.0 & other.0 == other.0
    }
}

/// A relay's descriptor (`09-relay.md#descriptors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// The relay's identity.
    pub identity: IdentityPublic,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its Noise link static key.
    pub link_key: X25519Public,
    /// Its hop-handshake onion key.
    pub onion_key: X25519Public,
    /// Advertised bandwidth, KiB/s (path-selection weight).
    pub bandwidth: u32,
    /// The family's public key (zero: none). Relays with the same family never share a path.
    pub family: [u8; 32],
    /// The family key's signature over this relay's identity ([`family_cert`]); on the
    /// wire only when `family` is not zero. The relay's own signature covers it, so a
    /// family is declared by both sides: the family key admits the relay, the relay names
    /// the family.
    pub family_cert: Option<[u8; 64]>,
    /// Roles offered.
    pub roles: Roles,
    /// When it was signed.
    pub published: WallTime,
    /// When it stops being valid.
    pub expires: WallTime,
}

impl Descriptor {
    /// The relay's node id.
    pub fn node_id(&self) -> NodeId {
        self.identity.node_id()
    }

    fn encode_unsigned(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(200);
        w.u8(DESCRIPTOR_VERSION).bytes(&self.identity.to_bytes());
        match self.addr.ip() {
            IpAddr::V4(a) => w.u8(4).bytes(&a.octets()),
            IpAddr::V6(a) => w.u8(6).bytes(&a.octets()),
        };
        w.u16(self.addr.port())
            .bytes(&self.link_key.0)
            .bytes(&self.onion_key.0)
            .u32(self.bandwidth)
            .bytes(&self.family);
        if self.family != [0; 32] {
            w.bytes(&self.family_cert.unwrap_or([0; 64]));
        }
        w.u8(self.roles.0).u64(self.published.0).u64(self.expires.0);
        w.into_vec()
    }

    /// Sign with the relay's identity key; returns the wire encoding
    /// (`09-relay.md#descriptors`). Fails if `key` is not this descriptor's identity.
    pub fn sign(&self, key: &IdentityKey) -> Result<Vec<u8>, DirectoryError> {
        if key.public() != self.identity {
            return Err(DirectoryError::WrongSigner);
        }
        let mut out = self.encode_unsigned();
        let sig = key.sign(DESCRIPTOR_LABEL, &out);
        out.extend_from_slice(&sig.0);
        Ok(out)
    }
}

/// Why a descriptor was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// It does not decode.
    #[error("malformed descriptor: {0}")]
    Decode(#[from] DecodeError),
    /// Unknown format version.
    #[error("unknown descriptor version {0}")]
    Version(u8),
    /// A key in it is invalid.
    #[error("bad key in descriptor: {0}")]
    Key(CryptoError),
    /// The signature does not verify.
    #[error("descriptor signature does not verify")]
    BadSignature,
    /// It names a family whose key did not sign its membership (`09-relay.md#families`).
    #[error("the family key did not certify this relay as a member")]
    BadFamily,
    /// Outside its validity window at the given time.
    #[error(
        "descriptor not valid at this time (published {published}, expires {expires}, now {now})"
    )]
    NotValidNow {
        /// Published.
        published: u64,
        /// Expires.
        expires: u64,
        /// The time checked.
        now: u64,
    },
    /// Signing with a key that is not the descriptor's identity.
    #[error("signing key is not the descriptor's identity")]
    WrongSigner,
    /// The relay's /16 network (IPv4) or /32 (IPv6) already holds its cap of relays
    /// (`10-directory.md#admission`).
    #[error("its network already has {cap} relays in the directory")]
    SubnetFull {
        /// The cap.
        cap: usize,
    },
    /// Its family already holds its cap of relays (`10-directory.md#admission`).
    #[error("its family already has {cap} relays in the directory")]
    FamilyFull {
        /// The cap.
        cap: usize,
    },
    /// The directory holds its most relays (`10-directory.md#admission`).
    #[error("the directory is full ({cap} relays)")]
    Full {
        /// The cap.
        cap: usize,
    },
}

impl HasKind for DirectoryError {
    fn kind(&self) -> ErrorKind {
        match self {
            DirectoryError::BadSignature | DirectoryError::BadFamily => ErrorKind::SignatureInvalid,
            DirectoryError::NotValidNow { .. } => ErrorKind::Expired,
            DirectoryError::WrongSigner => ErrorKind::BadApiUsage,
            DirectoryError::SubnetFull { .. }
            | DirectoryError::FamilyFull { .. }
            | DirectoryError::Full { .. } => ErrorKind::ResourceLimit,
            _ => ErrorKind::MalformedInput,
        }
    }
}

/// A parsed descriptor whose signature and validity are not yet checked.
#[derive(Debug, Clone)]
pub struct Unverified {
    desc: Descriptor,
    signed: Vec<u8>,
    signature: Signature,
}

/// A descriptor whose signature verified and which was valid when checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified(Descriptor, Arc<[u8]>);

impl Verified {
    /// The descriptor.
    pub fn descriptor(&self) -> &Descriptor {
        &self.0
    }

    /// Its signed wire encoding.
    pub fn wire(&self) -> &[u8] {
        &self.1
    }
}

/// Parse a descriptor's wire encoding (no checks beyond the format).
pub fn parse(bytes: &[u8]) -> Result<Unverified, DirectoryError> {
    let mut r = Reader::new(bytes);
    let version = r.u8()?;
    if version != DESCRIPTOR_VERSION {
        return Err(DirectoryError::Version(version));
    }
    let identity = IdentityPublic::from_bytes(&r.array()?).map_err(DirectoryError::Key)?;
    let ip = match r.u8()? {
        4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)),
        6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)),
        _ => {
            return Err(DecodeError::InvalidValue {
                field: "address family",
            }
            .into());
        }
    };
    let addr = SocketAddr::new(ip, r.u16()?);
    let link_key = X25519Public(r.array()?);
    let onion_key = X25519Public(r.array()?);
    let bandwidth = r.u32()?;
    let family: [u8; 32] = r.array()?;
    let family_cert = if family == [0; 32] {
        None
    } else {
        Some(r.array()?)
    };
    let roles = Roles(r.u8()?);
    let published = WallTime(r.u64()?);
    let expires = WallTime(r.u64()?);
    let signed_len = r.consumed();
    let signature = Signature(r.array()?);
    r.finish()?;
    Ok(Unverified {
        desc: Descriptor {
            identity,
            addr,
            link_key,
            onion_key,
            bandwidth,
            family,
            family_cert,
            roles,
            published,
            expires,
        },
        signed: bytes[..signed_len].to_vec(),
        signature,
    })
}

impl Unverified {
    /// The descriptor as it claims to be (not yet checked).
    pub fn claimed(&self) -> &Descriptor {
        &self.desc
    }

    /// Check the signature and that `now` is inside the validity window.
    pub fn verify(self, now: WallTime) -> Result<Verified, DirectoryError> {
        self.desc
            .identity
            .verify(DESCRIPTOR_LABEL, &self.signed, &self.signature)
            .map_err(|_| DirectoryError::BadSignature)?;
        if let Some(cert) = self.desc.family_cert {
            IdentityPublic::from_bytes(&self.desc.family)
                .and_then(|f| {
                    f.verify(
                        FAMILY_LABEL,
                        &self.desc.identity.to_bytes(),
                        &Signature(cert),
                    )
                })
                .map_err(|_| DirectoryError::BadFamily)?;
        }
        let (published, expires) = (self.desc.published.0, self.desc.expires.0);
        if now.0 < published.saturating_sub(600) || now.0 >= expires {
            return Err(DirectoryError::NotValidNow {
                published,
                expires,
                now: now.0,
            });
        }
        let mut wire = self.signed;
        wire.extend_from_slice(&self.signature.0);
        Ok(Verified(self.desc, wire.into()))
    }
}

/// What a directory admits (`10-directory.md#admission`): caps per network and per family,
/// so that one operator or one hosting network cannot fill it. Relays already in keep their
/// place while they renew: a newcomer from a full network is refused, which favours
/// long-lived relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Relays per /16 (IPv4) or /32 (IPv6) network.
    pub per_subnet: usize,
    /// Relays per declared family.
    pub per_family: usize,
    /// Relays in all.
    pub max_relays: usize,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            per_subnet: 8,
            per_family: 64,
            max_relays: 50_000,
        }
    }
}

impl Admission {
    /// No caps (a directory built from a trusted file, and tests).
    pub const UNLIMITED: Admission = Admission {
        per_subnet: usize::MAX,
        per_family: usize::MAX,
        max_relays: usize::MAX,
    };
}

#[derive(Debug, Clone)]
struct Entry {
    desc: Arc<Descriptor>,
    wire: Arc<[u8]>,
    first_seen: WallTime,
}

/// Verified descriptors by node id, with their wire encodings and when each was first seen.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    entries: BTreeMap<NodeId, Entry>,
    per_subnet: BTreeMap<[u8; 4], usize>,
    per_family: BTreeMap<[u8; 32], usize>,
    /// [`Directory::network_median_bandwidth`], computed on first use after a change.
    network_median: std::sync::OnceLock<u64>,
}

impl Directory {
    /// An empty directory.
    pub fn new() -> Self {
        Directory::default()
    }

    /// Add or replace a relay's descriptor (a newer `published` wins), without caps.
    pub fn insert(&mut self, v: Verified) {
        let _ = self.admit(v, WallTime(0), &Admission::UNLIMITED);
    }

    /// Add or replace a relay's descriptor under `caps`, first seen at `now` if new. Returns
    /// whether the directory changed (an older or equal `published` changes nothing).
    pub fn admit(
        &mut self,
        v: Verified,
        now: WallTime,
        caps: &Admission,
    ) -> Result<bool, DirectoryError> {
        let Verified(d, wire) = v;
        let id = d.node_id();
        let (first_seen, old) = match self.entries.get(&id) {
            Some(old) if old.desc.published >= d.published => return Ok(false),
            Some(old) => (old.first_seen, Some(old.desc.clone())),
            None => (now, None),
        };
        // A newcomer, or a relay that moved to another network or family, must fit there
        // (a relay that moved is counted where it is now, as a newcomer would be).
        let moved = old.as_ref().is_none_or(|o| {
            path::subnet(o.addr.ip()) != path::subnet(d.addr.ip()) || o.family != d.family
        });
        if moved {
            self.fits(&d, caps, old.as_deref())?;
            self.remove(&id);
            *self
                .per_subnet
                .entry(path::subnet(d.addr.ip()))
                .or_default() += 1;
            if d.family != [0; 32] {
                *self.per_family.entry(d.family).or_default() += 1;
            }
        }
        self.entries.insert(
            id,
            Entry {
                desc: Arc::new(d),
                wire,
                first_seen,
            },
        );
        self.network_median = std::sync::OnceLock::new();
        Ok(true)
    }

    /// Whether a relay not yet held would fit under `caps` (checked before its signature,
    /// so a flood from a full network costs no signature checks).
    pub fn check_caps(&self, d: &Descriptor, caps: &Admission) -> Result<(), DirectoryError> {
        self.fits(d, caps, None)
    }

    /// Whether `d` fits under `caps`, replacing `old` (the same relay's held descriptor, which
    /// then does not count against it).
    fn fits(
        &self,
        d: &Descriptor,
        caps: &Admission,
        old: Option<&Descriptor>,
    ) -> Result<(), DirectoryError> {
        if old.is_none() && self.entries.len() >= caps.max_relays {
            return Err(DirectoryError::Full {
                cap: caps.max_relays,
            });
        }
        let net = path::subnet(d.addr.ip());
        let same_net = old.is_some_and(|o| path::subnet(o.addr.ip()) == net);
        let in_net = self.per_subnet.get(&net).copied().unwrap_or(0) - usize::from(same_net);
        if in_net >= caps.per_subnet {
            return Err(DirectoryError::SubnetFull {
                cap: caps.per_subnet,
            });
        }
        if d.family == [0; 32] {
            return Ok(());
        }
        let same_family = old.is_some_and(|o| o.family == d.family);
        let in_family =
            self.per_family.get(&d.family).copied().unwrap_or(0) - usize::from(same_family);
        if in_family >= caps.per_family {
            return Err(DirectoryError::FamilyFull {
                cap: caps.per_family,
            });
        }
        Ok(())
    }

    /// Remove a relay; returns whether it was there.
    pub fn remove(&mut self, id: &NodeId) -> bool {
        let Some(e) = self.entries.remove(id) else {
            return false;
        };
        self.network_median = std::sync::OnceLock::new();
        let net = path::subnet(e.desc.addr.ip());
        if let Some(n) = self.per_subnet.get_mut(&net) {
            *n -= 1;
            if *n == 0 {
                self.per_subnet.remove(&net);
            }
        }
        if let Some(n) = self.per_family.get_mut(&e.desc.family) {
            *n -= 1;
            if *n == 0 {
                self.per_family.remove(&e.desc.family);
            }
        }
        true
    }

    /// A relay's descriptor.
    pub fn get(&self, id: &NodeId) -> Option<&Arc<Descriptor>> {
        self.entries.get(id).map(|e| &e.desc)
    }

    /// A relay's signed wire encoding.
    pub fn wire(&self, id: &NodeId) -> Option<&Arc<[u8]>> {
        self.entries.get(id).map(|e| &e.wire)
    }

    /// When this directory first saw the relay (its age, `10-directory.md#admission`).
    pub fn first_seen(&self, id: &NodeId) -> Option<WallTime> {
        self.entries.get(id).map(|e| e.first_seen)
    }

    /// Add every relay of `other` this directory does not hold, keeping `other`'s
    /// first-seen times (no caps: a trusted source such as the node's own cache).
    pub fn merge(&mut self, other: Directory) {
        for (id, e) in other.entries {
            if !self.entries.contains_key(&id) {
                let v = Verified((*e.desc).clone(), e.wire);
                let _ = self.admit(v, e.first_seen, &Admission::UNLIMITED);
            }
        }
    }

    /// The relays `keep` selects, as a directory of their own.
    pub fn only(&self, keep: impl Fn(&NodeId) -> bool) -> Directory {
        let mut out = Directory::new();
        for (id, e) in &self.entries {
            if keep(id) {
                out.insert(Verified((*e.desc).clone(), e.wire.clone()));
            }
        }
        out
    }

    /// Every relay, in node-id order.
    pub fn relays(&self) -> impl Iterator<Item = &Arc<Descriptor>> {
        self.entries.values().map(|e| &e.desc)
    }

    /// How many relays.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drop descriptors expired at `now`; returns the relays dropped.
    pub fn expire(&mut self, now: WallTime) -> Vec<NodeId> {
        let gone: Vec<NodeId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.desc.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.remove(id);
        }
        gone
    }

    /// The earliest expiry of any descriptor held.
    pub fn earliest_expiry(&self) -> Option<WallTime> {
        self.relays().map(|d| d.expires).min()
    }

    /// The directory as a bootstrap list (`09-relay.md#bootstrap-list`), one hex descriptor
    /// per line preceded by `# first-seen <unix seconds>` (the node's cache format,
    /// `10-directory.md#cache`).
    pub fn to_cache_text(&self) -> String {
        let mut out = String::with_capacity(self.entries.len() * 400);
        for (id, e) in &self.entries {
            out.push_str(&format!("# first-seen {} {id}\n", e.first_seen.0));
            out.push_str(&hex::encode(&e.wire));
            out.push('\n');
        }
        out
    }

    /// Parse a bootstrap list: one hex descriptor per line, `#` comments
    /// (`09-relay.md#bootstrap-list`); a `# first-seen T` comment sets the next relay's age.
    /// Returns the directory and the per-line errors.
    pub fn from_bootstrap(text: &str, now: WallTime) -> (Directory, Vec<(usize, DirectoryError)>) {
        let mut dir = Directory::new();
        let mut errors = Vec::new();
        let mut seen = now;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("# first-seen ") {
                seen = rest
                    .split_whitespace()
                    .next()
                    .and_then(|t| t.parse().ok())
                    .map_or(now, |t: u64| WallTime(t.min(now.0)));
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let result = hex::decode(line)
                .map_err(DirectoryError::from)
                .and_then(|b| parse(&b))
                .and_then(|u| u.verify(now))
                .and_then(|v| dir.admit(v, seen, &Admission::UNLIMITED));
            if let Err(e) = result {
                errors.push((i + 1, e));
            }
            seen = now;
        }
        (dir, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::{Descriptor, Directory, DirectoryError, Roles, parse};
    use crate::crypto::keys::{IdentityKey, X25519Public};
    use crate::time::WallTime;
    use crate::wire::hex;

    fn desc(key: &IdentityKey) -> Descriptor {
        Descriptor {
            identity: key.public(),
            addr: "192.0.2.1:4000".parse().unwrap(),
            link_key: X25519Public([1; 32]),
            onion_key: X25519Public([2; 32]),
            bandwidth: 1000,
            family: [0; 32],
            family_cert: None,
            roles: Roles::ALL,
            published: WallTime(1000),
            expires: WallTime(5000),
        }
    }

    /// Issue 14 item 3: a family is declared by both sides (`09-relay.md#families`): the
    /// family key certifies the relay, the relay's signature covers the family it names.
    #[test]
    fn a_family_needs_the_family_keys_certificate() {
        let k = IdentityKey::from_secret_bytes([1; 32]);
        let family = IdentityKey::from_secret_bytes([9; 32]);
        let mut d = desc(&k);
        d.family = family.public().to_bytes();
        d.family_cert = Some(super::family_cert(&family, &k.public()));
        let v = parse(&d.sign(&k).unwrap())
            .unwrap()
            .verify(WallTime(2000))
            .unwrap();
        assert_eq!(v.descriptor().family, family.public().to_bytes());
        // Claiming an honest family without its key: refused.
        let thief = IdentityKey::from_secret_bytes([8; 32]);
        d.family_cert = Some(super::family_cert(&thief, &k.public()));
        assert_eq!(
            parse(&d.sign(&k).unwrap()).unwrap().verify(WallTime(2000)),
            Err(DirectoryError::BadFamily)
        );
        // A certificate made for another relay: refused.
        let other = IdentityKey::from_secret_bytes([2; 32]);
        d.family_cert = Some(super::family_cert(&family, &other.public()));
        assert_eq!(
            parse(&d.sign(&k).unwrap()).unwrap().verify(WallTime(2000)),
            Err(DirectoryError::BadFamily)
        );
        // A family that is not a key: refused.
        d.family = [0xff; 32];
        assert!(
            parse(&d.sign(&k).unwrap())
                .unwrap()
                .verify(WallTime(2000))
                .is_err()
        );
    }

    #[test]
    fn sign_parse_verify() {
        let k = IdentityKey::from_secret_bytes([1; 32]);
        let d = desc(&k);
        let bytes = d.sign(&k).unwrap();
        let v = parse(&bytes).unwrap().verify(WallTime(2000)).unwrap();
        assert_eq!(v.descriptor(), &d);
        assert!(matches!(
            parse(&bytes).unwrap().verify(WallTime(5000)),
            Err(DirectoryError::NotValidNow { .. })
        ));
        let mut bad = bytes.clone();
        bad[40] ^= 1;
        assert!(matches!(
            parse(&bad).unwrap().verify(WallTime(2000)),
            Err(DirectoryError::BadSignature)
        ));
        assert!(parse(&bytes[..bytes.len() - 1]).is_err());
        assert_eq!(
            d.sign(&IdentityKey::from_secret_bytes([2; 32])),
            Err(DirectoryError::WrongSigner)
        );
    }

    #[test]
    fn bootstrap_list_reports_bad_lines() {
        let k = IdentityKey::from_secret_bytes([1; 32]);
        let text = format!(
            "# relays\n{}\nzz\n",
            hex::encode(&desc(&k).sign(&k).unwrap())
        );
        let (dir, errors) = Directory::from_bootstrap(&text, WallTime(2000));
        assert_eq!(dir.len(), 1);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, 3);
    }
}
