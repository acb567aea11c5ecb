//! Raw primitive calls (`interop/README.md`).
//!
//! The conformance kit checks Umbra's primitives against published vectors (RFC 7748,
//! RFC 8439, RFC 8032, Wycheproof). These functions expose exactly the operations those
//! vectors describe, with Umbra's policies applied (X25519 refuses all-zero results; Ed25519
//! verification is strict). Protocol code uses the higher-level types in [`super`].

use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305};

use super::CryptoError;

fn array<const N: usize>(what: &'static str, b: &[u8]) -> Result<[u8; N], CryptoError> {
    b.try_into()
        .map_err(|_| CryptoError::BadLength { what, len: b.len() })
}

/// X25519(scalar, u) per RFC 7748 (clamped scalar, top bit of `u` ignored), refusing the
/// all-zero result (`02-link.md#handshake-policy`).
pub fn x25519(scalar: &[u8; 32], u: &[u8; 32]) -> Result<[u8; 32], CryptoError> {
    let s = x25519_dalek::StaticSecret::from(*scalar);
    let shared = s.diffie_hellman(&x25519_dalek::PublicKey::from(*u));
    if !shared.was_contributory() {
        return Err(CryptoError::NonContributory);
    }
    Ok(shared.to_bytes())
}

/// X25519 of `scalar` and the base point 9.
pub fn x25519_base(scalar: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::x25519(*scalar, x25519_dalek::X25519_BASEPOINT_BYTES)
}

/// X25519 without the all-zero check: only for RFC 7748's iterated vector, whose
/// intermediate values are public and never zero.
pub fn x25519_unchecked(scalar: &[u8; 32], u: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::x25519(*scalar, *u)
}

/// AEAD_CHACHA20_POLY1305 seal (RFC 8439 §2.8): returns `ciphertext || tag`. The same
/// implementation ([`super::aead`]) seals link frames and layers.
pub fn chacha20poly1305_seal(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    msg: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let key: [u8; 32] = array("ChaCha20-Poly1305 key", key)?;
    let nonce: [u8; 12] = array("ChaCha20-Poly1305 nonce", nonce)?;
    let mut out = msg.to_vec();
    let tag = super::aead::ChaChaPoly::new(&key)
        .seal(nonce, aad, &mut out)
        .map_err(|_| CryptoError::BadLength {
            what: "ChaCha20-Poly1305 message",
            len: msg.len(),
        })?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// AEAD_CHACHA20_POLY1305 open of `ciphertext || tag`.
pub fn chacha20poly1305_open(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let key: [u8; 32] = array("ChaCha20-Poly1305 key", key)?;
    let nonce: [u8; 12] = array("ChaCha20-Poly1305 nonce", nonce)?;
    let len = sealed
        .len()
        .checked_sub(super::aead::TAG_LEN)
        .ok_or(CryptoError::BadTag)?;
    let (body, tag) = sealed.split_at(len);
    let tag: [u8; super::aead::TAG_LEN] = array("ChaCha20-Poly1305 tag", tag)?;
    let mut out = body.to_vec();
    super::aead::ChaChaPoly::new(&key)
        .open(nonce, aad, &mut out, &tag)
        .map_err(|_| CryptoError::BadTag)?;
    Ok(out)
}

/// XChaCha20-Poly1305 seal (24-byte nonce): returns `ciphertext || tag`.
pub fn xchacha20poly1305_seal(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    msg: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let key: [u8; 32] = array("XChaCha20-Poly1305 key", key)?;
    let nonce: [u8; 24] = array("XChaCha20-Poly1305 nonce", nonce)?;
    XChaCha20Poly1305::new(&key.into())
        .encrypt(&nonce.into(), Payload { msg, aad })
        .map_err(|_| CryptoError::BadLength {
            what: "XChaCha20-Poly1305 message",
            len: msg.len(),
        })
}

/// XChaCha20-Poly1305 open of `ciphertext || tag`.
pub fn xchacha20poly1305_open(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let key: [u8; 32] = array("XChaCha20-Poly1305 key", key)?;
    let nonce: [u8; 24] = array("XChaCha20-Poly1305 nonce", nonce)?;
    XChaCha20Poly1305::new(&key.into())
        .decrypt(&nonce.into(), Payload { msg: sealed, aad })
        .map_err(|_| CryptoError::BadTag)
}

/// XOR `data` with the ChaCha20 keystream (RFC 8439 §2.4) starting at block `counter`.
pub fn chacha20_xor(key: &[u8; 32], nonce: &[u8; 12], counter: u32, data: &mut [u8]) {
    let mut c = chacha20::ChaCha20::new(key.into(), nonce.into());
    c.seek(u64::from(counter) * 64);
    c.apply_keystream(data);
}

/// Poly1305 one-time MAC (RFC 8439 §2.5).
pub fn poly1305(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
    // `compute_unpadded` handles a final partial block the way RFC 8439 §2.5 specifies.
    poly1305::Poly1305::new(key.into())
        .compute_unpadded(msg)
        .into()
}

#[cfg(test)]
mod tests {
    use super::{chacha20poly1305_open, chacha20poly1305_seal, x25519};
    use crate::crypto::CryptoError;

    #[test]
    fn tampered_tag_is_refused() {
        let mut sealed = chacha20poly1305_seal(&[1; 32], &[2; 12], b"ad", b"hello").unwrap();
        assert_eq!(
            chacha20poly1305_open(&[1; 32], &[2; 12], b"ad", &sealed).unwrap(),
            b"hello"
        );
        sealed[5] ^= 1;
        assert_eq!(
            chacha20poly1305_open(&[1; 32], &[2; 12], b"ad", &sealed),
            Err(CryptoError::BadTag)
        );
        assert!(chacha20poly1305_open(&[1; 31], &[2; 12], b"ad", &sealed).is_err());
    }

    #[test]
    fn zero_point_is_refused() {
        assert_eq!(
            x25519(&[3; 32], &[0; 32]),
            Err(CryptoError::NonContributory)
        );
    }
}
