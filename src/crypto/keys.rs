//! Identities and link keys (`protocol-spec/00-overview.md#identities`).
//!
//! - [`IdentityKey`] / [`IdentityPublic`]: Ed25519; signs descriptors, link-key bindings and
//!   (later) sites. Signatures are domain-separated by a context label
//!   (`00-overview.md#signatures`) and verified strictly (canonical `S`, no small-order keys).
//! - [`NodeId`] = BLAKE3(identity public key).
//! - [`LinkKeypair`] / [`X25519Public`]: the static X25519 key of a Noise link.
//! - [`LinkKeyBinding`]: an identity's signature over its link key (`02-link.md#binding`).
//!
//! Not in this module: storing keys (see [`super::keystore`]).

use core::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use super::CryptoError;
use super::hash;
use super::rng::UmbraRng;

/// An Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// The bytes an identity signs for `label` and `message` (`00-overview.md#signatures`):
/// `"umbra-sig-v1" || u8(len(label)) || label || message`.
fn signed_bytes(label: &str, message: &[u8]) -> Vec<u8> {
    let label = label.as_bytes();
    let mut out = Vec::with_capacity(13 + label.len() + message.len());
    out.extend_from_slice(b"umbra-sig-v1");
    // Labels are short compile-time constants; a longer one is cut to its length byte.
    out.push(u8::try_from(label.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(label.get(..usize::from(u8::MAX)).unwrap_or(label));
    out.extend_from_slice(message);
    out
}

/// An Ed25519 identity key (secret).
#[derive(Clone)]
pub struct IdentityKey(SigningKey);

impl IdentityKey {
    /// A fresh identity from the injected RNG.
    pub fn generate(rng: &mut UmbraRng) -> Self {
        IdentityKey(SigningKey::from_bytes(&rng.array()))
    }

    /// The identity whose RFC 8032 secret key (seed) is `secret`.
    pub fn from_secret_bytes(secret: [u8; 32]) -> Self {
        IdentityKey(SigningKey::from_bytes(&secret))
    }

    /// The RFC 8032 secret key (for the keystore only).
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public half.
    pub fn public(&self) -> IdentityPublic {
        IdentityPublic(self.0.verifying_key())
    }

    /// Sign `message` under the context `label` (`00-overview.md#signatures`).
    pub fn sign(&self, label: &str, message: &[u8]) -> Signature {
        Signature(self.0.sign(&signed_bytes(label, message)).to_bytes())
    }

    /// Plain RFC 8032 Ed25519 over `message`, with no Umbra context (vectors only).
    pub fn sign_raw(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentityKey([secret])")
    }
}

/// An Ed25519 identity public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdentityPublic(VerifyingKey);

impl IdentityPublic {
    /// Parse a 32-byte encoded point; fails for bytes that are not a point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, CryptoError> {
        VerifyingKey::from_bytes(bytes)
            .map(IdentityPublic)
            .map_err(|_| CryptoError::BadPublicKey { what: "Ed25519" })
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// This identity's [`NodeId`].
    pub fn node_id(&self) -> NodeId {
        NodeId(hash::hash(&self.to_bytes()))
    }

    /// Verify a signature made with [`IdentityKey::sign`] under `label`
    /// (`00-overview.md#signatures`).
    pub fn verify(&self, label: &str, message: &[u8], sig: &Signature) -> Result<(), CryptoError> {
        self.verify_raw(&signed_bytes(label, message), sig)
    }

    /// Strict RFC 8032 verification of `message` with no Umbra context: refuses non-canonical
    /// `S` and small-order `R` or `A`.
    pub fn verify_raw(&self, message: &[u8], sig: &Signature) -> Result<(), CryptoError> {
        let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
        self.0
            .verify_strict(message, &sig)
            .map_err(|_| CryptoError::BadSignature)
    }
}

impl PartialOrd for IdentityPublic {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Ordered by the 32-byte encoding.
impl Ord for IdentityPublic {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.to_bytes().cmp(&other.to_bytes())
    }
}

impl std::hash::Hash for IdentityPublic {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.to_bytes().hash(state);
    }
}

impl fmt::Debug for IdentityPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityPublic({})", self.node_id())
    }
}

/// A node's address in the overlay: BLAKE3 of its identity public key
/// (`00-overview.md#identities`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub [u8; 32]);

impl NodeId {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for NodeId {
    /// The first 8 bytes in hex: enough to tell nodes apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// An X25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct X25519Public(pub [u8; 32]);

impl fmt::Debug for X25519Public {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "X25519Public({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// A static X25519 key pair for Noise links.
#[derive(Clone)]
pub struct LinkKeypair {
    secret: [u8; 32],
    public: X25519Public,
}

impl LinkKeypair {
    /// A fresh key pair from the injected RNG.
    pub fn generate(rng: &mut UmbraRng) -> Self {
        Self::from_secret_bytes(rng.array())
    }

    /// The key pair with this secret scalar (clamped when used).
    pub fn from_secret_bytes(secret: [u8; 32]) -> Self {
        let s = x25519_dalek::StaticSecret::from(secret);
        let public = X25519Public(x25519_dalek::PublicKey::from(&s).to_bytes());
        LinkKeypair { secret, public }
    }

    /// The public half.
    pub fn public(&self) -> X25519Public {
        self.public
    }

    /// The secret scalar (for Noise and the keystore only).
    pub fn secret_bytes(&self) -> &[u8; 32] {
        &self.secret
    }
}

impl fmt::Debug for LinkKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkKeypair({:?})", self.public)
    }
}

/// The signature label binding a link key to an identity (`02-link.md#binding`).
pub const LINK_BINDING_LABEL: &str = "link-key";

/// An identity's signature over a link static key (`02-link.md#binding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkKeyBinding {
    /// The identity that vouches for the link key.
    pub identity: IdentityPublic,
    /// Its signature over `LINK_BINDING_LABEL` and the link key.
    pub signature: Signature,
}

impl LinkKeyBinding {
    /// Length of the encoding: identity (32) and signature (64).
    pub const LEN: usize = 96;

    /// Bind `link` to `identity`.
    pub fn sign(identity: &IdentityKey, link: &X25519Public) -> Self {
        LinkKeyBinding {
            identity: identity.public(),
            signature: identity.sign(LINK_BINDING_LABEL, &link.0),
        }
    }

    /// Check that this binding vouches for `link`.
    pub fn verify(&self, link: &X25519Public) -> Result<(), CryptoError> {
        self.identity
            .verify(LINK_BINDING_LABEL, &link.0, &self.signature)
    }

    /// Encode as `identity || signature`.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..32].copy_from_slice(&self.identity.to_bytes());
        out[32..].copy_from_slice(&self.signature.0);
        out
    }

    /// Decode `identity || signature` (the signature is not checked here).
    pub fn from_bytes(bytes: &[u8; Self::LEN]) -> Result<Self, CryptoError> {
        let mut id = [0u8; 32];
        id.copy_from_slice(&bytes[..32]);
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&bytes[32..]);
        Ok(LinkKeyBinding {
            identity: IdentityPublic::from_bytes(&id)?,
            signature: Signature(sig),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{IdentityKey, LinkKeyBinding, LinkKeypair};
    use crate::crypto::CryptoError;
    use crate::crypto::rng::UmbraRng;

    #[test]
    fn signatures_are_domain_separated() {
        let mut rng = UmbraRng::from_u64(1);
        let id = IdentityKey::generate(&mut rng);
        let sig = id.sign("a", b"msg");
        assert_eq!(id.public().verify("a", b"msg", &sig), Ok(()));
        assert_eq!(
            id.public().verify("b", b"msg", &sig),
            Err(CryptoError::BadSignature)
        );
        assert_eq!(
            id.public().verify("a", b"msh", &sig),
            Err(CryptoError::BadSignature)
        );
        assert_eq!(
            id.public().verify_raw(b"msg", &sig),
            Err(CryptoError::BadSignature)
        );
    }

    #[test]
    fn binding_covers_exactly_one_link_key() {
        let mut rng = UmbraRng::from_u64(2);
        let id = IdentityKey::generate(&mut rng);
        let k1 = LinkKeypair::generate(&mut rng);
        let k2 = LinkKeypair::generate(&mut rng);
        let b = LinkKeyBinding::sign(&id, &k1.public());
        assert!(b.verify(&k1.public()).is_ok());
        assert!(b.verify(&k2.public()).is_err());
        let back = LinkKeyBinding::from_bytes(&b.to_bytes()).unwrap();
        assert_eq!(back, b);
    }

    #[test]
    fn node_id_is_blake3_of_the_public_key() {
        let id = IdentityKey::from_secret_bytes([9; 32]);
        let expect = crate::crypto::hash::hash(&id.public().to_bytes());
        assert_eq!(id.public().node_id().0, expect);
    }
}
