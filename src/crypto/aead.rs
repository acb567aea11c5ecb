//! ChaCha20-Poly1305 (RFC 8439) for every hot path: link frames (through the Noise cipher in
//! [`super::noise`]), sealed layers ([`super::layer`]) and the conformance kit's AEAD
//! vectors ([`super::primitives`]), so the vectors check the code that carries traffic.
//!
//! Backed by `ring`'s assembly implementation: measured on this project's CPU it seals a
//! 565-byte cell 2.3× and a 64 KiB link frame 2.7× faster than the portable RustCrypto
//! crates (`docs/performance.md#crypto`). The wire format is RFC 8439's, unchanged.
//! Not in this module: nonces' meaning (the callers build them) or key derivation.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};

/// Length of the key.
pub const KEY_LEN: usize = 32;
/// Length of the nonce.
pub const NONCE_LEN: usize = 12;
/// Length of the tag.
pub const TAG_LEN: usize = 16;

/// Sealing or opening failed: the tag did not verify (or, for sealing, a message beyond
/// RFC 8439's 2³⁸-byte limit, which no caller can produce).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AeadFailure;

/// One ChaCha20-Poly1305 key, ready for any number of messages.
#[derive(Clone)]
pub struct ChaChaPoly(LessSafeKey);

impl core::fmt::Debug for ChaChaPoly {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ChaChaPoly([secret])")
    }
}

impl ChaChaPoly {
    /// A key.
    pub fn new(key: &[u8; KEY_LEN]) -> ChaChaPoly {
        // A 32-byte key is exactly what CHACHA20_POLY1305 takes, so this cannot fail; the
        // fallback exists only to keep the type total without `unwrap`.
        let unbound =
            UnboundKey::new(&CHACHA20_POLY1305, key).unwrap_or_else(|_| unreachable_key_length());
        ChaChaPoly(LessSafeKey::new(unbound))
    }

    /// Encrypt `in_out` in place and return the tag.
    pub fn seal(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], AeadFailure> {
        let tag = self
            .0
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out)
            .map_err(|_| AeadFailure)?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Verify `tag` and decrypt `in_out` in place. On failure `in_out` holds no plaintext.
    pub fn open(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AeadFailure> {
        let tag = Tag::from(*tag);
        match self.0.open_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            tag,
            in_out,
            0..,
        ) {
            Ok(_) => Ok(()),
            Err(_) => {
                in_out.fill(0);
                Err(AeadFailure)
            }
        }
    }
}

#[cold]
fn unreachable_key_length() -> UnboundKey {
    // `UnboundKey::new` only fails on a wrong key length, and `KEY_LEN` is the right one.
    // Abort rather than panic: this is a programming error, not input.
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::{ChaChaPoly, TAG_LEN};

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let k = ChaChaPoly::new(&[9; 32]);
        let mut buf = *b"sealed layers and link frames";
        let tag = k.seal([1; 12], b"ad", &mut buf).unwrap();
        assert_ne!(&buf, b"sealed layers and link frames");
        let mut copy = buf;
        k.open([1; 12], b"ad", &mut copy, &tag).unwrap();
        assert_eq!(&copy, b"sealed layers and link frames");
        // wrong nonce, wrong ad, flipped tag: all refused, and no plaintext left behind
        let mut c = buf;
        assert!(k.open([2; 12], b"ad", &mut c, &tag).is_err());
        assert_eq!(c, [0; 29]);
        let mut c = buf;
        assert!(k.open([1; 12], b"xx", &mut c, &tag).is_err());
        let mut bad = tag;
        bad[TAG_LEN - 1] ^= 1;
        let mut c = buf;
        assert!(k.open([1; 12], b"ad", &mut c, &bad).is_err());
    }
}
