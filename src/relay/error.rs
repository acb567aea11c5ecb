//! Why the relay switch refused something (`protocol-spec/09-relay.md#bad-input`): one
//! typed error per rule, each closing only the circuit it concerns.
//! Not in this module: the rules themselves (`Switch`).

use super::exit::ExitError;
use crate::crypto::CryptoError;
use crate::crypto::layer::LayerError;
use crate::error::{ErrorKind, HasKind};
use crate::wire::relay_msg::RelayMsgError;

/// Why the switch refused something. The circuit concerned is closed; the link stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// A circuit id that is not open on this link (`03-cells.md#circuit-ids`).
    #[error("unknown circuit id")]
    UnknownCircuit,
    /// CREATE with a circuit id not above every id its sender created on this link: in
    /// use, or closed (`03-cells.md#circuit-ids`).
    #[error("circuit id not above every id created on this link")]
    ReusedCircuit,
    /// CREATE with the other side's circuit-id parity (`03-cells.md#circuit-ids`).
    #[error("circuit id of the wrong parity for who dialled the link")]
    CircIdParity,
    /// A limit was reached (`09-relay.md#limits`).
    #[error("circuit limit reached")]
    Limit,
    /// The handshake queue is full (`09-relay.md#handshakes`).
    #[error("handshake queue full")]
    Overloaded,
    /// The source sent CREATEs faster than its rate (`09-relay.md#handshakes`).
    #[error("CREATE rate of the source passed")]
    CreateRate,
    /// CREATE whose hop message 1 this relay answered recently (`04-circuits.md#replay`).
    #[error("replayed hop handshake")]
    Replayed,
    /// CREATE names a handshake this relay does not run.
    #[error("unknown handshake type {0}")]
    HandshakeType(u16),
    /// The hop handshake failed.
    #[error("hop handshake failed: {0}")]
    Handshake(CryptoError),
    /// The announced hop index is impossible for the link it came on (`04-circuits.md#hop-index`).
    #[error("hop index {0} impossible here")]
    HopIndex(u8),
    /// This hop's layer failed: tampering, replay, reordering (`04-circuits.md#sealed-layers`).
    #[error("layer failure: {0}")]
    Layer(LayerError),
    /// A relay message was refused.
    #[error("bad relay message: {0}")]
    Message(RelayMsgError),
    /// EXTEND to this relay itself (`04-circuits.md#extend`).
    #[error("EXTEND to itself")]
    ExtendToSelf,
    /// EXTEND to a relay not in the directory.
    #[error("EXTEND to an unknown relay")]
    ExtendUnknown,
    /// EXTEND on a circuit that already has a next hop, or a cell that must go on where
    /// there is no next hop.
    #[error("circuit state violation: {0}")]
    State(&'static str),
    /// An exit service refused a message.
    #[error("exit: {0}")]
    Exit(#[from] ExitError),
}

impl HasKind for RelayError {
    fn kind(&self) -> ErrorKind {
        match self {
            RelayError::Limit | RelayError::Overloaded | RelayError::CreateRate => {
                ErrorKind::ResourceLimit
            }
            RelayError::Layer(_) | RelayError::Handshake(_) => ErrorKind::CryptoFailure,
            _ => ErrorKind::PeerProtocolViolation,
        }
    }
}
