//! Noise through `snow`, with Umbra's resolver (`protocol-spec/02-link.md#noise`).
//!
//! Umbra runs exactly one Noise suite, `25519_ChaChaPoly_BLAKE2s`, with two patterns: XK for
//! links and NK for circuit hops. The resolver here differs from snow's default in two ways:
//!
//! - randomness is injected ([`Randomness`]): a seed from the node's RNG, or, for vectors
//!   only, a script of the exact ephemeral bytes (this is how golden vectors fix ephemerals
//!   without a test-only hook in the handshake);
//! - X25519 refuses an all-zero result (`02-link.md#handshake-policy`), which snow's
//!   default does not.
//!
//! Not in this module: framing, identity checks, timers (see `link/`).

use core::fmt;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};

/// The link pattern (`02-link.md#noise`).
pub const LINK_PATTERN: &str = "Noise_XK_25519_ChaChaPoly_BLAKE2s";
/// The circuit-hop pattern (`04-circuits.md#hop-handshake`).
pub const HOP_PATTERN: &str = "Noise_NK_25519_ChaChaPoly_BLAKE2s";
/// The largest Noise message (`02-link.md#framing`).
pub const MAX_MESSAGE_LEN: usize = 65_535;
/// The most a handshake message adds to its payload (ephemeral, encrypted static, tag).
const HANDSHAKE_OVERHEAD: usize = 32 + 48 + 16;
/// Length of a Noise AEAD tag.
pub const NOISE_TAG_LEN: usize = 16;

/// Why a Noise operation failed (coarse on purpose: snow's warning about leaking detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoiseFailure {
    /// A message failed to authenticate (tampered, replayed, wrong key).
    #[error("message failed to authenticate")]
    Decrypt,
    /// An X25519 result was all zeros.
    #[error("low-order X25519 key (all-zero shared secret)")]
    NonContributory,
    /// A message or key had the wrong size or shape.
    #[error("malformed message or key")]
    Input,
    /// The operation is not valid in the current handshake state.
    #[error("operation out of order for the handshake state")]
    State,
    /// The injected randomness ran out.
    #[error("randomness exhausted")]
    Rng,
    /// The protocol name names something Umbra does not implement.
    #[error("unsupported Noise protocol")]
    Unsupported,
}

fn map_err(e: snow::Error) -> NoiseFailure {
    match e {
        snow::Error::Decrypt => NoiseFailure::Decrypt,
        snow::Error::Dh => NoiseFailure::NonContributory,
        snow::Error::Input => NoiseFailure::Input,
        snow::Error::Rng => NoiseFailure::Rng,
        snow::Error::Pattern(_) | snow::Error::Init(_) => NoiseFailure::Unsupported,
        _ => NoiseFailure::State,
    }
}

/// Where a handshake's randomness comes from.
#[derive(Clone)]
pub enum Randomness {
    /// A ChaCha20 stream from this seed (drawn from the node's RNG).
    Seeded([u8; 32]),
    /// Exactly these bytes, then failure: the ephemeral keys of a vector.
    Scripted(Vec<u8>),
}

impl fmt::Debug for Randomness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Randomness::Seeded(_) => f.write_str("Seeded([secret])"),
            Randomness::Scripted(b) => write!(f, "Scripted({} bytes)", b.len()),
        }
    }
}

struct SeededRandom(ChaCha20Rng);

impl Random for SeededRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

struct ScriptedRandom {
    script: Vec<u8>,
    pos: usize,
}

impl Random for ScriptedRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        let src = self
            .script
            .get(self.pos..self.pos + dest.len())
            .ok_or(snow::Error::Rng)?;
        dest.copy_from_slice(src);
        self.pos += dest.len();
        Ok(())
    }
}

/// X25519 that refuses an all-zero result (`02-link.md#handshake-policy`).
#[derive(Default)]
struct StrictX25519 {
    privkey: [u8; 32],
    pubkey: [u8; 32],
}

impl StrictX25519 {
    fn derive(&mut self) {
        let s = x25519_dalek::StaticSecret::from(self.privkey);
        self.pubkey = x25519_dalek::PublicKey::from(&s).to_bytes();
    }
}

impl Dh for StrictX25519 {
    fn name(&self) -> &'static str {
        "25519"
    }
    fn pub_len(&self) -> usize {
        32
    }
    fn priv_len(&self) -> usize {
        32
    }
    fn set(&mut self, privkey: &[u8]) {
        let n = privkey.len().min(32);
        self.privkey = [0u8; 32];
        self.privkey[..n].copy_from_slice(&privkey[..n]);
        self.derive();
    }
    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        rng.try_fill_bytes(&mut self.privkey)?;
        self.derive();
        Ok(())
    }
    fn pubkey(&self) -> &[u8] {
        &self.pubkey
    }
    fn privkey(&self) -> &[u8] {
        &self.privkey
    }
    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        let peer: [u8; 32] = pubkey
            .get(..32)
            .and_then(|s| s.try_into().ok())
            .ok_or(snow::Error::Input)?;
        let shared =
            super::primitives::x25519(&self.privkey, &peer).map_err(|_| snow::Error::Dh)?;
        out.get_mut(..32)
            .ok_or(snow::Error::Input)?
            .copy_from_slice(&shared);
        Ok(())
    }
}

/// Noise's `ChaChaPoly` cipher (Noise spec §12.4: nonce = 4 zero bytes ‖ 64-bit little-endian
/// counter) on [`super::aead::ChaChaPoly`], the implementation layers use too.
struct NoiseChaChaPoly {
    key: super::aead::ChaChaPoly,
}

impl Default for NoiseChaChaPoly {
    fn default() -> Self {
        NoiseChaChaPoly {
            key: super::aead::ChaChaPoly::new(&[0; 32]),
        }
    }
}

fn noise_nonce(n: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&n.to_le_bytes());
    nonce
}

impl Cipher for NoiseChaChaPoly {
    fn name(&self) -> &'static str {
        "ChaChaPoly"
    }
    fn set(&mut self, key: &[u8; 32]) {
        self.key = super::aead::ChaChaPoly::new(key);
    }
    fn encrypt(&self, nonce: u64, authtext: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
        let len = plaintext.len();
        // snow sizes `out` for the message and its tag before calling; anything else is a
        // caller bug, answered with an empty result that snow turns into an error.
        let Some((body, tag_slot)) = out
            .get_mut(..len + NOISE_TAG_LEN)
            .map(|o| o.split_at_mut(len))
        else {
            return 0;
        };
        body.copy_from_slice(plaintext);
        match self.key.seal(noise_nonce(nonce), authtext, body) {
            Ok(tag) => {
                tag_slot.copy_from_slice(&tag);
                len + NOISE_TAG_LEN
            }
            Err(_) => {
                body.fill(0);
                0
            }
        }
    }
    fn decrypt(
        &self,
        nonce: u64,
        authtext: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, snow::Error> {
        let len = ciphertext
            .len()
            .checked_sub(NOISE_TAG_LEN)
            .ok_or(snow::Error::Decrypt)?;
        let (body, tag) = ciphertext.split_at(len);
        let tag: &[u8; NOISE_TAG_LEN] = tag.try_into().map_err(|_| snow::Error::Decrypt)?;
        let out = out.get_mut(..len).ok_or(snow::Error::Decrypt)?;
        out.copy_from_slice(body);
        self.key
            .open(noise_nonce(nonce), authtext, out, tag)
            .map_err(|_| snow::Error::Decrypt)?;
        Ok(len)
    }
}

struct UmbraResolver {
    randomness: Randomness,
    /// Resolve AES-GCM, BLAKE2b and SHA-2 too (vectors only).
    other_suites: bool,
}

impl CryptoResolver for UmbraResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(match &self.randomness {
            Randomness::Seeded(seed) => Box::new(SeededRandom(ChaCha20Rng::from_seed(*seed))),
            Randomness::Scripted(bytes) => Box::new(ScriptedRandom {
                script: bytes.clone(),
                pos: 0,
            }),
        })
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match choice {
            DHChoice::Curve25519 => Some(Box::new(StrictX25519::default())),
            _ => None,
        }
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        match choice {
            HashChoice::Blake2s => DefaultResolver.resolve_hash(choice),
            HashChoice::Blake2b | HashChoice::SHA256 | HashChoice::SHA512 if self.other_suites => {
                DefaultResolver.resolve_hash(choice)
            }
            _ => None,
        }
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        match choice {
            CipherChoice::ChaChaPoly => Some(Box::new(NoiseChaChaPoly::default())),
            CipherChoice::AESGCM if self.other_suites => DefaultResolver.resolve_cipher(choice),
            _ => None,
        }
    }
}

/// Whether a conformant Noise library can replay a vector of protocol `name` here, and why
/// not: the 25519 DH (strict, as Umbra's) with any cipher (`ChaChaPoly`, `AESGCM`) and hash
/// (`BLAKE2s`, `BLAKE2b`, `SHA256`, `SHA512`), any pattern and PSK modifier snow knows. Only
/// for vectors ([`NoiseHandshake::for_vectors`]): Umbra's protocol runs [`supports`] alone.
pub fn supports_in_vectors(name: &str) -> Result<(), &'static str> {
    let params: NoiseParams = name
        .parse()
        .map_err(|_| "pattern or modifier not supported")?;
    if params.dh != DHChoice::Curve25519 {
        return Err("only the 25519 DH function is implemented (not 448)");
    }
    Ok(())
}

/// Whether Umbra implements the Noise protocol `name` (suite and pattern), and why not.
pub fn supports(name: &str) -> Result<(), &'static str> {
    let params: NoiseParams = name
        .parse()
        .map_err(|_| "pattern or modifier not supported")?;
    if params.dh != DHChoice::Curve25519 {
        return Err("Umbra implements only the 25519 DH function");
    }
    if params.cipher != CipherChoice::ChaChaPoly {
        return Err("Umbra implements only the ChaChaPoly cipher");
    }
    if params.hash != HashChoice::Blake2s {
        return Err("Umbra implements only the BLAKE2s hash");
    }
    Ok(())
}

/// Everything needed to start one side of a Noise handshake.
#[derive(Debug, Clone)]
pub struct HandshakeSpec<'a> {
    /// Full protocol name, e.g. [`LINK_PATTERN`].
    pub protocol: &'a str,
    /// Whether this side sends the first message.
    pub initiator: bool,
    /// The prologue both sides must agree on.
    pub prologue: &'a [u8],
    /// This side's static secret, if the pattern has one.
    pub local_static: Option<&'a [u8; 32]>,
    /// The peer's static public key, if known in advance.
    pub remote_static: Option<&'a [u8; 32]>,
    /// Pre-shared keys by position (vectors only; Umbra's patterns use none).
    pub psks: &'a [(u8, [u8; 32])],
    /// Where the ephemeral comes from.
    pub randomness: Randomness,
}

/// A Noise handshake in progress.
pub struct NoiseHandshake(snow::HandshakeState);

impl fmt::Debug for NoiseHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoiseHandshake")
            .field("initiator", &self.0.is_initiator())
            .field("finished", &self.0.is_handshake_finished())
            .finish()
    }
}

impl NoiseHandshake {
    /// Start one side of a handshake.
    pub fn new(spec: &HandshakeSpec<'_>) -> Result<Self, NoiseFailure> {
        supports(spec.protocol).map_err(|_| NoiseFailure::Unsupported)?;
        Self::build(spec, false)
    }

    /// Start one side of a handshake of any suite [`supports_in_vectors`] accepts: for
    /// replaying other suites' vectors (`umbra interop --vectors`), never on the wire.
    pub fn for_vectors(spec: &HandshakeSpec<'_>) -> Result<Self, NoiseFailure> {
        supports_in_vectors(spec.protocol).map_err(|_| NoiseFailure::Unsupported)?;
        Self::build(spec, true)
    }

    fn build(spec: &HandshakeSpec<'_>, other_suites: bool) -> Result<Self, NoiseFailure> {
        let params: NoiseParams = spec.protocol.parse().map_err(map_err)?;
        let resolver = Box::new(UmbraResolver {
            randomness: spec.randomness.clone(),
            other_suites,
        });
        let mut b = snow::Builder::with_resolver(params, resolver)
            .prologue(spec.prologue)
            .map_err(map_err)?;
        if let Some(s) = spec.local_static {
            b = b.local_private_key(s).map_err(map_err)?;
        }
        if let Some(r) = spec.remote_static {
            b = b.remote_public_key(r).map_err(map_err)?;
        }
        for (pos, psk) in spec.psks {
            b = b.psk(*pos, psk).map_err(map_err)?;
        }
        let hs = if spec.initiator {
            b.build_initiator()
        } else {
            b.build_responder()
        }
        .map_err(map_err)?;
        Ok(NoiseHandshake(hs))
    }

    /// Write the next handshake message carrying `payload`.
    pub fn write_message(&mut self, payload: &[u8]) -> Result<Vec<u8>, NoiseFailure> {
        // A handshake message adds at most an ephemeral (32), an encrypted static (48) and
        // the payload's tag (16) to the payload.
        let mut buf = vec![0u8; (payload.len() + HANDSHAKE_OVERHEAD).min(MAX_MESSAGE_LEN)];
        let n = self.0.write_message(payload, &mut buf).map_err(map_err)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Read the peer's next handshake message; returns its payload.
    pub fn read_message(&mut self, message: &[u8]) -> Result<Vec<u8>, NoiseFailure> {
        // The payload is never longer than the message.
        let mut buf = vec![0u8; message.len()];
        let n = self.0.read_message(message, &mut buf).map_err(map_err)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Whether every handshake message has been exchanged.
    pub fn is_finished(&self) -> bool {
        self.0.is_handshake_finished()
    }

    /// The peer's static public key, once known.
    pub fn remote_static(&self) -> Option<[u8; 32]> {
        self.0.get_remote_static().and_then(|s| s.try_into().ok())
    }

    /// The handshake hash `h`.
    pub fn handshake_hash(&self) -> Vec<u8> {
        self.0.get_handshake_hash().to_vec()
    }

    /// The two raw cipher keys of Noise `Split()` (initiator→responder, responder→initiator),
    /// for protocols that run their own AEAD on them (the onion layers, `04-circuits.md#layer-keys`).
    /// Fails unless the handshake finished.
    pub fn into_split_keys(mut self) -> Result<([u8; 32], [u8; 32]), NoiseFailure> {
        if !self.0.is_handshake_finished() {
            return Err(NoiseFailure::State);
        }
        Ok(self.0.dangerously_get_raw_split())
    }

    /// Switch to transport mode (consumes the handshake).
    pub fn into_transport(self) -> Result<NoiseTransport, NoiseFailure> {
        self.0
            .into_transport_mode()
            .map(NoiseTransport)
            .map_err(map_err)
    }
}

/// A finished Noise session: two cipher states with implicit nonces.
pub struct NoiseTransport(snow::TransportState);

impl fmt::Debug for NoiseTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoiseTransport")
            .field("sending_nonce", &self.0.sending_nonce())
            .field("receiving_nonce", &self.0.receiving_nonce())
            .finish()
    }
}

impl NoiseTransport {
    /// Encrypt `payload` and append it to `out` as one frame: a big-endian u16 length, then
    /// the message (`02-link.md#framing`), sealed straight into `out`.
    pub fn write_framed(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), NoiseFailure> {
        let len = u16::try_from(payload.len() + NOISE_TAG_LEN).map_err(|_| NoiseFailure::Input)?;
        let start = out.len();
        out.extend_from_slice(&len.to_be_bytes());
        self.write(payload, out)
            .inspect_err(|_| out.truncate(start))
    }

    /// Decrypt `message` into `out` (which must hold at least `message.len()` bytes);
    /// returns the payload's length. `out` is not cleared first: callers reuse one buffer.
    pub fn read_into(&mut self, message: &[u8], out: &mut [u8]) -> Result<usize, NoiseFailure> {
        let out = out.get_mut(..message.len()).ok_or(NoiseFailure::Input)?;
        self.0.read_message(message, out).map_err(map_err)
    }

    /// Encrypt `payload`, appending the message to `out`.
    pub fn write(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), NoiseFailure> {
        let start = out.len();
        out.resize(start + payload.len() + NOISE_TAG_LEN, 0);
        match self.0.write_message(payload, &mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(map_err(e))
            }
        }
    }

    /// Decrypt `message`, appending its payload to `out` (the vectors' form of
    /// [`NoiseTransport::read_into`], which links use).
    pub fn read(&mut self, message: &[u8], out: &mut Vec<u8>) -> Result<(), NoiseFailure> {
        let start = out.len();
        out.resize(start + message.len(), 0);
        match self.read_into(message, &mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// Switch the sending key (Noise `REKEY`).
    pub fn rekey_outgoing(&mut self) {
        self.0.rekey_outgoing();
    }

    /// Switch the receiving key (Noise `REKEY`).
    pub fn rekey_incoming(&mut self) {
        self.0.rekey_incoming();
    }

    /// Messages sent so far with the current key schedule.
    pub fn sending_nonce(&self) -> u64 {
        self.0.sending_nonce()
    }
}

#[cfg(test)]
mod tests {
    use super::{
        HandshakeSpec, LINK_PATTERN, NoiseFailure, NoiseHandshake, Randomness, supports,
        supports_in_vectors,
    };

    #[test]
    fn other_suites_run_for_vectors_and_never_on_umbras_path() {
        let spec = |protocol| HandshakeSpec {
            protocol,
            initiator: true,
            prologue: b"",
            local_static: None,
            remote_static: Some(&[9; 32]),
            psks: &[],
            randomness: Randomness::Seeded([1; 32]),
        };
        for p in [
            "Noise_NK_25519_AESGCM_SHA256",
            "Noise_NK_25519_ChaChaPoly_BLAKE2b",
            "Noise_NK_25519_AESGCM_SHA512",
        ] {
            assert!(supports_in_vectors(p).is_ok(), "{p}");
            assert_eq!(
                NoiseHandshake::new(&spec(p)).unwrap_err(),
                NoiseFailure::Unsupported,
                "{p}"
            );
            assert!(NoiseHandshake::for_vectors(&spec(p)).is_ok(), "{p}");
        }
        assert!(supports_in_vectors("Noise_NK_448_AESGCM_SHA256").is_err());
        assert!(NoiseHandshake::for_vectors(&spec("Noise_NK_448_AESGCM_SHA256")).is_err());
    }

    #[test]
    fn only_umbras_suite_is_supported() {
        assert!(supports(LINK_PATTERN).is_ok());
        assert!(supports("Noise_XK_25519_AESGCM_BLAKE2s").is_err());
        assert!(supports("Noise_XK_448_ChaChaPoly_BLAKE2s").is_err());
        assert!(supports("Noise_XK_25519_ChaChaPoly_SHA256").is_err());
        assert!(supports("Noise_QQ_25519_ChaChaPoly_BLAKE2s").is_err());
    }

    #[test]
    fn low_order_peer_key_is_refused() {
        // The all-zero u-coordinate has small order: every DH with it is zero.
        let zero = [0u8; 32];
        let mut hs = NoiseHandshake::new(&HandshakeSpec {
            protocol: "Noise_NK_25519_ChaChaPoly_BLAKE2s",
            initiator: true,
            prologue: b"",
            local_static: None,
            remote_static: Some(&zero),
            psks: &[],
            randomness: Randomness::Seeded([1; 32]),
        })
        .unwrap();
        assert_eq!(
            hs.write_message(b"").unwrap_err(),
            NoiseFailure::NonContributory
        );
    }
}
