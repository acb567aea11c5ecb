//! Site addresses (`protocol-spec/07-sites.md#address`).
//!
//! `base32(public key [32] || checksum [2] || version [1])`, lowercase RFC 4648 alphabet,
//! no padding: exactly 56 characters, then `.umbra`. The checksum catches typos; the
//! version byte lets addresses evolve.

use core::fmt;

use crate::crypto::hash;
use crate::crypto::keys::IdentityPublic;

/// The address version this implementation writes and reads.
pub const ADDRESS_VERSION: u8 = 1;
/// Length of the base32 part.
pub const ADDRESS_LEN: usize = 56;
/// The top-level suffix.
pub const SUFFIX: &str = ".umbra";

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Why an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Not 56 base32 characters (before `.umbra`).
    #[error("a site address has 56 characters before .umbra (got {0})")]
    Length(usize),
    /// A character outside `a-z2-7`.
    #[error("character {0:?} is not in the address alphabet a-z, 2-7")]
    Character(char),
    /// The checksum does not match: a typo.
    #[error("checksum mismatch: the address has a typo")]
    Checksum,
    /// An address version this node does not know.
    #[error("unknown address version {0}")]
    Version(u8),
    /// The key is not a valid Ed25519 point.
    #[error("the address does not hold a valid public key")]
    Key,
}

impl crate::error::HasKind for AddressError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::MalformedInput
    }
}

/// A site's address: its Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SiteAddress(pub IdentityPublic);

fn checksum(key: &[u8; 32], version: u8) -> [u8; 2] {
    let mut m = Vec::with_capacity(54);
    m.extend_from_slice(b"umbra-site-address-v1");
    m.extend_from_slice(key);
    m.push(version);
    let h = hash::hash(&m);
    [h[0], h[1]]
}

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in bytes {
        acc = (acc << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

impl SiteAddress {
    /// The 56-character form without the suffix.
    pub fn encode(&self) -> String {
        let key = self.0.to_bytes();
        let mut raw = Vec::with_capacity(35);
        raw.extend_from_slice(&key);
        raw.extend_from_slice(&checksum(&key, ADDRESS_VERSION));
        raw.push(ADDRESS_VERSION);
        base32(&raw)
    }

    /// Parse `<56 chars>` or `<56 chars>.umbra` (case-insensitive).
    pub fn parse(s: &str) -> Result<SiteAddress, AddressError> {
        let lower = s.trim().to_ascii_lowercase();
        let body = lower.strip_suffix(SUFFIX).unwrap_or(&lower);
        if body.len() != ADDRESS_LEN {
            return Err(AddressError::Length(body.chars().count()));
        }
        let mut raw = Vec::with_capacity(35);
        let (mut acc, mut bits) = (0u32, 0u32);
        for c in body.chars() {
            let v = ALPHABET
                .iter()
                .position(|a| char::from(*a) == c)
                .ok_or(AddressError::Character(c))?;
            acc = (acc << 5) | u32::try_from(v).unwrap_or(0);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                raw.push(((acc >> bits) & 0xff) as u8);
            }
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&raw[..32]);
        let version = raw[34];
        if version != ADDRESS_VERSION {
            // Checked after the checksum would be friendlier for typos, but the checksum's
            // input includes the version; an unknown version cannot be checked.
            return Err(AddressError::Version(version));
        }
        if raw[32..34] != checksum(&key, version) {
            return Err(AddressError::Checksum);
        }
        IdentityPublic::from_bytes(&key)
            .map(SiteAddress)
            .map_err(|_| AddressError::Key)
    }

    /// The DHT key of this site's manifest (`06-dht.md#records`).
    pub fn dht_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        hash::derive_key("umbra site dht key v1", &self.0.to_bytes(), &mut out);
        out
    }
}

impl fmt::Display for SiteAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{SUFFIX}", self.encode())
    }
}

impl fmt::Debug for SiteAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SiteAddress({}…)", &self.encode()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::{AddressError, SiteAddress};
    use crate::crypto::keys::IdentityKey;

    #[test]
    fn round_trip_and_typos() {
        let k = IdentityKey::from_secret_bytes([3; 32]).public();
        let a = SiteAddress(k);
        let s = a.to_string();
        assert_eq!(s.len(), 56 + 6);
        assert_eq!(SiteAddress::parse(&s).unwrap(), a);
        assert_eq!(SiteAddress::parse(&s.to_uppercase()).unwrap(), a);
        assert_eq!(SiteAddress::parse(&s[..56]).unwrap(), a);
        // One changed character is caught by the checksum (or makes the key invalid).
        let mut typo: Vec<char> = s.chars().collect();
        typo[10] = if typo[10] == 'a' { 'b' } else { 'a' };
        let typo: String = typo.into_iter().collect();
        assert!(matches!(
            SiteAddress::parse(&typo),
            Err(AddressError::Checksum | AddressError::Key)
        ));
        assert_eq!(
            SiteAddress::parse("abc.umbra"),
            Err(AddressError::Length(3))
        );
        assert!(matches!(
            SiteAddress::parse(&format!("{}1.umbra", &s[..55])),
            Err(AddressError::Character('1'))
        ));
    }
}
