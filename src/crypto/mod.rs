//! Cryptography: the only module that imports primitive crates (`protocol-spec/00-overview.md#identities`).
//!
//! - [`keys`]: Ed25519 identities, `NodeId`, X25519 link keys, the link-key binding.
//! - [`aead`]: ChaCha20-Poly1305 for link frames, layers and the kit (one implementation).
//! - [`hash`]: BLAKE3 helpers with Umbra's domain-separation labels.
//! - [`noise`]: the Noise parameters and a `snow` resolver that takes injected randomness
//!   and refuses all-zero X25519 results.
//! - [`primitives`]: raw primitive calls for the conformance kit (`umbra interop`).
//! - [`rng`]: the node's one seeded CSPRNG.
//! - [`replay`]: the replay cache for handshake first messages.
//! - [`keystore`]: key files on disk, written 0600, refused when others can read them.
//!
//! Not in this module: framing, sessions, or any decision about peers.

pub mod aead;
pub mod hash;
pub mod hop;
pub mod keys;
pub mod keystore;
pub mod layer;
pub mod noise;
pub mod primitives;
pub mod replay;
pub mod rng;

use crate::error::{ErrorKind, HasKind};

/// A cryptographic operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A public key is not a valid encoding (`00-overview.md#identities`).
    #[error("invalid {what} public key")]
    BadPublicKey {
        /// Which kind of key.
        what: &'static str,
    },
    /// A signature did not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// An AEAD tag did not verify (tampered, replayed or wrong key).
    #[error("authentication tag does not verify")]
    BadTag,
    /// X25519 gave the all-zero shared secret: the peer key has small order
    /// (`02-link.md#handshake-policy`).
    #[error("X25519 result is all zeros (low-order peer key)")]
    NonContributory,
    /// A key, nonce or message has the wrong length for the primitive.
    #[error("wrong length for {what}: {len}")]
    BadLength {
        /// Which input.
        what: &'static str,
        /// The length given.
        len: usize,
    },
    /// The injected randomness ran out (only a scripted test RNG can).
    #[error("randomness source exhausted")]
    RngExhausted,
    /// The Noise state machine refused an operation.
    #[error("noise: {0}")]
    Noise(#[from] noise::NoiseFailure),
}

impl HasKind for CryptoError {
    fn kind(&self) -> ErrorKind {
        match self {
            CryptoError::BadSignature => ErrorKind::SignatureInvalid,
            CryptoError::BadPublicKey { .. }
            | CryptoError::BadTag
            | CryptoError::NonContributory
            | CryptoError::Noise(_) => ErrorKind::CryptoFailure,
            CryptoError::BadLength { .. } => ErrorKind::MalformedInput,
            CryptoError::RngExhausted => ErrorKind::Internal,
        }
    }
}
