//! Sans-IO Noise links (`protocol-spec/02-link.md`).
//!
//! A link is one TCP connection between two peers, encrypted with
//! `Noise_XK_25519_ChaChaPoly_BLAKE2s`. The dialler knows the relay's link key and identity in
//! advance (from its signed descriptor); the relay proves in handshake message 2 that its
//! identity signed that link key. A reader sends a fresh static key per link and stays
//! anonymous; a relay dialling a relay proves its identity the same way in message 3.
//!
//! The session is a typestate: [`Handshaking`] is consumed by value and becomes
//! [`Established`]. Both are driven by the caller: bytes in (`handle_bytes`), bytes out
//! (`poll_transmit`), and timers (`poll_timeout` / `handle_timeout`) with the time passed in.
//! Any error ends that session only; the caller closes the socket and keeps serving others.
//!
//! Not in this module: sockets, circuits, or which peer to dial.

pub mod frame;
pub mod session;

use core::time::Duration;

use crate::crypto::CryptoError;
use crate::crypto::keys::{IdentityPublic, NodeId, X25519Public};
use crate::crypto::noise::NoiseFailure;
use crate::error::{ErrorKind, HasKind};
use crate::wire::cell::CELL_LEN;
use crate::wire::restrict::CellError;

pub use session::{Established, HandshakeStep, Handshaking};

/// Largest handshake message (`02-link.md#handshake`): message 3 of a relay is 161 bytes.
pub const MAX_HANDSHAKE_MSG: usize = 256;
/// Most cells in one transport frame (`02-link.md#framing`).
pub const MAX_CELLS_PER_FRAME: usize =
    (crate::crypto::noise::MAX_MESSAGE_LEN - crate::crypto::noise::NOISE_TAG_LEN) / CELL_LEN;
/// Largest transport frame (`02-link.md#framing`).
pub const MAX_TRANSPORT_FRAME: usize =
    MAX_CELLS_PER_FRAME * CELL_LEN + crate::crypto::noise::NOISE_TAG_LEN;

/// Check a transport frame's length before decrypting it (`02-link.md#framing`): at least
/// one cell, at most [`MAX_TRANSPORT_FRAME`], and a whole number of cells plus the tag.
pub fn check_transport_frame_len(len: usize) -> Result<(), LinkError> {
    let tag = crate::crypto::noise::NOISE_TAG_LEN;
    if len > MAX_TRANSPORT_FRAME {
        return Err(LinkError::Oversized {
            len,
            max: MAX_TRANSPORT_FRAME,
        });
    }
    if len < CELL_LEN + tag || (len - tag) % CELL_LEN != 0 {
        return Err(LinkError::Malformed {
            what: "frame is not a whole number of cells",
        });
    }
    Ok(())
}

/// The Noise prologue (`02-link.md#prologue`): `"umbra" 0x00 "link" 0x00 version`.
pub fn prologue() -> Vec<u8> {
    let mut p = Vec::with_capacity(12);
    p.extend_from_slice(crate::PROTOCOL_NAME.as_bytes());
    p.push(0);
    p.extend_from_slice(b"link");
    p.push(0);
    p.push(crate::PROTOCOL_VERSION);
    p
}

/// Timer settings of a link (`02-link.md#timers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkConfig {
    /// The whole handshake must finish within this.
    pub handshake_timeout: Duration,
    /// Send a PADDING cell when nothing was sent for this long.
    pub keepalive_interval: Duration,
    /// Close the link when nothing was received for this long.
    pub idle_timeout: Duration,
    /// Switch the sending key at least this often.
    pub rekey_interval: Duration,
    /// Switch the sending key after this many frames.
    pub rekey_after_frames: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            handshake_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            rekey_interval: Duration::from_secs(15 * 60),
            rekey_after_frames: 1 << 20,
        }
    }
}

/// What the dialler knows about the relay it dials (from its signed descriptor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayTarget {
    /// The relay's node id.
    pub node_id: NodeId,
    /// The relay's static link key.
    pub link_key: X25519Public,
}

/// Who is at the other end of an established link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[allow(clippy::large_enum_variant)] // one per link; boxing would cost more than it saves
pub enum Peer {
    /// A relay whose identity signed its link key.
    Relay {
        /// Its identity.
        identity: IdentityPublic,
        /// Its link static key.
        link_key: X25519Public,
    },
    /// An anonymous reader (fresh static key, no identity).
    Reader,
}

/// Why a link session ended. Every variant ends that session only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The stream ended inside a frame (`02-link.md#framing`).
    #[error("stream ended inside a frame ({buffered} bytes buffered)")]
    Truncated {
        /// Bytes of the partial frame.
        buffered: usize,
    },
    /// A frame's length prefix exceeds the limit for the session state (`02-link.md#framing`).
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    Oversized {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A frame's shape is wrong: too short, or not a whole number of cells.
    #[error("malformed frame: {what}")]
    Malformed {
        /// What is wrong.
        what: &'static str,
    },
    /// A frame failed to authenticate: garbled, replayed, reordered, or the wrong key
    /// (`02-link.md#transport`).
    #[error("frame failed to authenticate")]
    Decrypt,
    /// The relay's identity did not sign the link key it used (`02-link.md#binding`).
    #[error("link key is not bound to the peer's identity")]
    UnboundLinkKey,
    /// The relay answered with another identity than the one dialled (`02-link.md#binding`).
    #[error("relay identity differs from the one dialled")]
    WrongIdentity,
    /// The peer's key is of low order (`02-link.md#handshake-policy`).
    #[error("low-order X25519 key")]
    NonContributory,
    /// The peer broke a link rule (`02-link.md#transport`).
    #[error("link protocol violation: {what}")]
    Protocol {
        /// Which rule.
        what: &'static str,
    },
    /// A link-level cell was refused.
    #[error("bad link-level cell: {0}")]
    Cell(#[from] CellError),
    /// A handshake message 1 the relay answered recently, sent again (`02-link.md#replay`).
    #[error("replayed handshake message 1")]
    Replayed,
    /// The handshake did not finish in time (`02-link.md#timers`).
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// Nothing was received for too long (`02-link.md#timers`).
    #[error("link idle for too long")]
    IdleTimeout,
    /// A local failure in the Noise state (nonce exhaustion, misuse).
    #[error("local noise failure: {0}")]
    Local(NoiseFailure),
}

impl LinkError {
    pub(crate) fn from_noise_read(e: NoiseFailure) -> LinkError {
        match e {
            NoiseFailure::Decrypt => LinkError::Decrypt,
            NoiseFailure::NonContributory => LinkError::NonContributory,
            NoiseFailure::Input => LinkError::Malformed {
                what: "handshake message of the wrong size",
            },
            other => LinkError::Local(other),
        }
    }

    pub(crate) fn from_binding(e: CryptoError) -> LinkError {
        match e {
            CryptoError::BadPublicKey { .. } => LinkError::Malformed {
                what: "identity key in binding",
            },
            _ => LinkError::UnboundLinkKey,
        }
    }
}

impl HasKind for LinkError {
    fn kind(&self) -> ErrorKind {
        match self {
            LinkError::Decrypt | LinkError::NonContributory => ErrorKind::CryptoFailure,
            LinkError::UnboundLinkKey | LinkError::WrongIdentity => ErrorKind::SignatureInvalid,
            LinkError::HandshakeTimeout | LinkError::IdleTimeout => ErrorKind::Timeout,
            LinkError::Local(_) => ErrorKind::Internal,
            _ => ErrorKind::PeerProtocolViolation,
        }
    }
}
