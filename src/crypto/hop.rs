//! The circuit-hop handshake (`protocol-spec/04-circuits.md#hop-handshake`).
//!
//! `Noise_NK_25519_ChaChaPoly_BLAKE2s`, one round trip carried in CREATE/CREATED (first hop)
//! or EXTEND/EXTENDED (later hops). The reader is anonymous (no static key); the relay is
//! authenticated by its onion key, which its signed descriptor carries. The reader tells the
//! relay its position in the circuit inside the encrypted payload of message 1. Layer keys
//! are the two raw keys of Noise `Split()` (`04-circuits.md#layer-keys`).
//!
//! Pure functions: `client_start` / `ClientHop::finish` / `server`, with the ephemeral coming
//! from the injected [`Randomness`] (a script of exact bytes for vectors).
//! Not in this module: cells, circuits, retries.

use super::CryptoError;
use super::keys::{LinkKeypair, X25519Public};
use super::noise::{HOP_PATTERN, HandshakeSpec, NoiseHandshake, Randomness};

/// Length of handshake message 1 (ephemeral, one payload byte, tag).
pub const HOP_MSG1_LEN: usize = 32 + 1 + 16;
/// Length of handshake message 2 (ephemeral, empty payload's tag).
pub const HOP_MSG2_LEN: usize = 32 + 16;

/// The hop handshake's prologue: `"umbra" 0x00 "hop" 0x00 version`.
pub fn hop_prologue() -> Vec<u8> {
    let mut p = Vec::with_capacity(11);
    p.extend_from_slice(crate::PROTOCOL_NAME.as_bytes());
    p.push(0);
    p.extend_from_slice(b"hop");
    p.push(0);
    p.push(crate::PROTOCOL_VERSION);
    p
}

/// The per-direction keys of one hop's onion layer.
#[derive(Clone, PartialEq, Eq)]
pub struct HopKeys {
    /// Reader → relay (sealed by the reader, opened by the hop).
    pub forward: [u8; 32],
    /// Relay → reader (sealed by the hop, opened by the reader).
    pub backward: [u8; 32],
}

impl core::fmt::Debug for HopKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("HopKeys([secret])")
    }
}

/// The reader's side of a hop handshake, waiting for message 2.
#[derive(Debug)]
pub struct ClientHop(NoiseHandshake);

fn spec<'a>(
    initiator: bool,
    prologue: &'a [u8],
    local: Option<&'a [u8; 32]>,
    remote: Option<&'a [u8; 32]>,
    randomness: Randomness,
) -> HandshakeSpec<'a> {
    HandshakeSpec {
        protocol: HOP_PATTERN,
        initiator,
        prologue,
        local_static: local,
        remote_static: remote,
        psks: &[],
        randomness,
    }
}

/// Start a hop handshake with the relay whose onion key is `onion_key`, telling it that it
/// is hop `hop_index` (1-based). Returns the state and message 1.
pub fn client_start(
    onion_key: &X25519Public,
    hop_index: u8,
    randomness: Randomness,
) -> Result<(ClientHop, Vec<u8>), CryptoError> {
    let prologue = hop_prologue();
    let mut hs = NoiseHandshake::new(&spec(true, &prologue, None, Some(&onion_key.0), randomness))?;
    let msg1 = hs.write_message(&[hop_index])?;
    Ok((ClientHop(hs), msg1))
}

impl ClientHop {
    /// Read message 2 and derive the layer keys.
    pub fn finish(mut self, msg2: &[u8]) -> Result<HopKeys, CryptoError> {
        if msg2.len() != HOP_MSG2_LEN {
            return Err(CryptoError::BadLength {
                what: "hop handshake message 2",
                len: msg2.len(),
            });
        }
        let payload = self.0.read_message(msg2)?;
        if !payload.is_empty() {
            return Err(CryptoError::BadLength {
                what: "hop handshake message 2 payload",
                len: payload.len(),
            });
        }
        let (forward, backward) = self.0.into_split_keys()?;
        Ok(HopKeys { forward, backward })
    }
}

/// The relay's side: read message 1 with the onion key, answer with message 2. Returns the
/// hop index the reader announced, message 2 and the layer keys.
pub fn server(
    onion: &LinkKeypair,
    msg1: &[u8],
    randomness: Randomness,
) -> Result<(u8, Vec<u8>, HopKeys), CryptoError> {
    if msg1.len() != HOP_MSG1_LEN {
        return Err(CryptoError::BadLength {
            what: "hop handshake message 1",
            len: msg1.len(),
        });
    }
    let prologue = hop_prologue();
    let mut hs = NoiseHandshake::new(&spec(
        false,
        &prologue,
        Some(onion.secret_bytes()),
        None,
        randomness,
    ))?;
    let payload = hs.read_message(msg1)?;
    let [hop_index] = payload[..] else {
        return Err(CryptoError::BadLength {
            what: "hop handshake message 1 payload",
            len: payload.len(),
        });
    };
    let msg2 = hs.write_message(&[])?;
    let (forward, backward) = hs.into_split_keys()?;
    Ok((hop_index, msg2, HopKeys { forward, backward }))
}

#[cfg(test)]
mod tests {
    use super::{HOP_MSG1_LEN, HOP_MSG2_LEN, client_start, server};
    use crate::crypto::CryptoError;
    use crate::crypto::keys::LinkKeypair;
    use crate::crypto::noise::{NoiseFailure, Randomness};

    #[test]
    fn both_sides_agree_and_wrong_onion_key_fails() {
        let onion = LinkKeypair::from_secret_bytes([5; 32]);
        let (c, m1) = client_start(&onion.public(), 2, Randomness::Seeded([1; 32])).unwrap();
        assert_eq!(m1.len(), HOP_MSG1_LEN);
        let (idx, m2, server_keys) = server(&onion, &m1, Randomness::Seeded([2; 32])).unwrap();
        assert_eq!(idx, 2);
        assert_eq!(m2.len(), HOP_MSG2_LEN);
        let client_keys = c.finish(&m2).unwrap();
        assert_eq!(client_keys, server_keys);
        assert_ne!(client_keys.forward, client_keys.backward);

        let other = LinkKeypair::from_secret_bytes([6; 32]);
        let err = server(&other, &m1, Randomness::Seeded([2; 32])).unwrap_err();
        assert_eq!(err, CryptoError::Noise(NoiseFailure::Decrypt));
        assert!(server(&onion, &m1[..40], Randomness::Seeded([2; 32])).is_err());
    }
}
