//! What each side of a link may receive (`protocol-spec/03-cells.md#contexts`).
//!
//! A raw [`Cell`] keeps any command. Before acting on it, the receiver parses it in its
//! [`LinkContext`] into a [`ChanMsg`]: commands the context may not receive, unknown
//! commands and circuit-id rule violations become typed [`CellError`]s. Not in this module:
//! what the receiver does about an error (close a circuit, ignore, close the link).

use core::fmt;

use super::cell::{BODY_LEN, Cell, CircId, Command};
use super::{DecodeError, Reader, Writer};
use crate::error::{ErrorKind, HasKind};

/// Which side of which kind of link is receiving (`03-cells.md#contexts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LinkContext {
    /// A reader receiving from its guard relay.
    ReaderFromRelay,
    /// A relay receiving from an anonymous reader.
    RelayFromReader,
    /// A relay receiving from another relay.
    RelayFromRelay,
}

impl LinkContext {
    /// Whether a cell with `command` may arrive in this context (`03-cells.md#contexts`).
    pub fn allows(self, command: Command) -> bool {
        match self {
            LinkContext::ReaderFromRelay => {
                command.is_known() && command != Command::CREATE && command != Command::DHT
            }
            LinkContext::RelayFromReader => {
                command.is_known() && command != Command::CREATED && command != Command::DHT
            }
            LinkContext::RelayFromRelay => command.is_known(),
        }
    }
}

impl fmt::Display for LinkContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkContext::ReaderFromRelay => "reader-from-relay",
            LinkContext::RelayFromReader => "relay-from-reader",
            LinkContext::RelayFromRelay => "relay-from-relay",
        })
    }
}

/// Why a cell was refused in its context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CellError {
    /// A command this version does not know (`03-cells.md#errors`).
    #[error("unknown command {command:?} on circuit id {circ_id}")]
    UnknownCommand {
        /// The command byte.
        command: Command,
        /// The circuit id it arrived on.
        circ_id: u32,
    },
    /// A known command the receiving context may not receive (`03-cells.md#contexts`).
    #[error("{command:?} may not be received in context {context}")]
    NotAllowed {
        /// The command.
        command: Command,
        /// The receiving context.
        context: LinkContext,
        /// The circuit id it arrived on.
        circ_id: u32,
    },
    /// A link-level command on a circuit, or a circuit command on circuit id 0
    /// (`03-cells.md#circuit-ids`).
    #[error("{command:?} used with the wrong kind of circuit id")]
    CircIdRule {
        /// The command.
        command: Command,
        /// The circuit id it arrived on.
        circ_id: u32,
    },
    /// The body did not decode.
    #[error("bad {command:?} body: {source}")]
    Body {
        /// The command.
        command: Command,
        /// The circuit id it arrived on.
        circ_id: u32,
        /// Why.
        source: DecodeError,
    },
}

/// What a receiver does with a cell that did not parse (`03-cells.md#errors`): the decode
/// result says what is wrong, this says what follows, and neither ever closes the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellAction {
    /// Drop the cell (circuit id 0: no circuit is named, and links may gain link-level
    /// commands later).
    Ignore,
    /// Close the circuit named, with `DESTROY` reason `PROTOCOL` to the sender, and keep
    /// the link.
    DestroyCircuit(CircId),
}

impl CellError {
    /// The circuit id of the cell refused.
    pub fn circ_id(&self) -> u32 {
        match self {
            CellError::UnknownCommand { circ_id, .. }
            | CellError::NotAllowed { circ_id, .. }
            | CellError::CircIdRule { circ_id, .. }
            | CellError::Body { circ_id, .. } => *circ_id,
        }
    }

    /// What the receiver does about it: a cell on a circuit closes that circuit, one on
    /// circuit id 0 is dropped.
    pub fn action(&self) -> CellAction {
        match CircId::new(self.circ_id()) {
            Some(c) => CellAction::DestroyCircuit(c),
            None => CellAction::Ignore,
        }
    }
}

impl HasKind for CellError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::PeerProtocolViolation
    }
}

/// Largest handshake message carried in CREATE (`03-cells.md#create`).
pub const MAX_CREATE_HANDSHAKE: usize = BODY_LEN - 4;
/// Largest DHT fragment carried in one cell (`03-cells.md#dht`).
pub const MAX_DHT_FRAGMENT: usize = BODY_LEN - 3;

/// Split a DHT message into cell fragments: the first starts with the message's `u32` length
/// (`03-cells.md#dht`).
pub fn dht_fragments(msg: &[u8]) -> Vec<ChanMsg> {
    fragments(msg, |first, data| ChanMsg::Dht { first, data })
}

/// Split a directory message into `DIR` cell fragments, framed as DHT messages are
/// (`03-cells.md#dir`).
pub fn dir_fragments(msg: &[u8]) -> Vec<ChanMsg> {
    fragments(msg, |first, data| ChanMsg::Dir { first, data })
}

fn fragments(msg: &[u8], cell: impl Fn(bool, Vec<u8>) -> ChanMsg) -> Vec<ChanMsg> {
    let mut all = Vec::with_capacity(4 + msg.len());
    all.extend_from_slice(&u32::try_from(msg.len()).unwrap_or(u32::MAX).to_be_bytes());
    all.extend_from_slice(msg);
    all.chunks(MAX_DHT_FRAGMENT)
        .enumerate()
        .map(|(i, c)| cell(i == 0, c.to_vec()))
        .collect()
}

/// Reassembles DHT messages from the fragments of one link, in order (`03-cells.md#dht`).
#[derive(Debug, Default)]
pub struct DhtReassembler {
    partial: Option<(usize, Vec<u8>)>,
}

impl DhtReassembler {
    /// Whether a message has started and not yet ended.
    pub fn is_partial(&self) -> bool {
        self.partial.is_some()
    }

    /// Add a fragment; returns a whole message when one completes. `max` bounds the
    /// announced length.
    pub fn push(
        &mut self,
        first: bool,
        data: &[u8],
        max: usize,
    ) -> Result<Option<Vec<u8>>, DecodeError> {
        if first {
            if self.partial.is_some() {
                return Err(DecodeError::InvalidValue {
                    field: "dht fragment: new message before the last ended",
                });
            }
            let mut r = Reader::new(data);
            let len = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
            if len > max {
                return Err(DecodeError::LengthOutOfRange {
                    field: "dht message",
                    len,
                    max,
                });
            }
            self.partial = Some((len, Vec::with_capacity(len.min(64 * 1024))));
            return self.extend(r.rest());
        }
        if self.partial.is_none() {
            return Err(DecodeError::InvalidValue {
                field: "dht fragment: continuation without a start",
            });
        }
        self.extend(data)
    }

    fn extend(&mut self, data: &[u8]) -> Result<Option<Vec<u8>>, DecodeError> {
        let Some((len, buf)) = self.partial.as_mut() else {
            return Ok(None);
        };
        if buf.len() + data.len() > *len {
            return Err(DecodeError::TrailingBytes {
                count: buf.len() + data.len() - *len,
            });
        }
        buf.extend_from_slice(data);
        if buf.len() == *len {
            return Ok(self.partial.take().map(|(_, b)| b));
        }
        Ok(None)
    }
}

/// Largest handshake message carried in CREATED (`03-cells.md#created`).
pub const MAX_CREATED_HANDSHAKE: usize = BODY_LEN - 2;

/// The hop-handshake types a CREATE may name (an open code space, `03-cells.md#create`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandshakeType(pub u16);

impl HandshakeType {
    /// `Noise_NK_25519_ChaChaPoly_BLAKE2s` (`04-circuits.md#hop-handshake`).
    pub const NOISE_NK_V1: HandshakeType = HandshakeType(1);
}

/// Body of CREATE (`03-cells.md#create`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateBody {
    /// Which hop handshake.
    pub handshake_type: HandshakeType,
    /// The handshake's first message.
    pub handshake: Vec<u8>,
}

/// Body of CREATED (`03-cells.md#created`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedBody {
    /// The handshake's second message.
    pub handshake: Vec<u8>,
}

/// Why a circuit is torn down; an open code space carried in DESTROY
/// (`03-cells.md#destroy`). Coarse on purpose: the precise error stays local.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DestroyReason(pub u8);

impl DestroyReason {
    /// No reason given.
    pub const NONE: DestroyReason = DestroyReason(0);
    /// A protocol violation (a malformed, forbidden or failed-authentication cell).
    pub const PROTOCOL: DestroyReason = DestroyReason(1);
    /// A resource limit was reached.
    pub const RESOURCE_LIMIT: DestroyReason = DestroyReason(2);
    /// The next hop could not be reached.
    pub const UNREACHABLE: DestroyReason = DestroyReason(3);
    /// The circuit's owner closed it.
    pub const FINISHED: DestroyReason = DestroyReason(4);
    /// A timer ran out.
    pub const TIMEOUT: DestroyReason = DestroyReason(5);
    /// The relay's handshake queue is full: try another relay (`09-relay.md#handshakes`).
    pub const OVERLOADED: DestroyReason = DestroyReason(6);
}

/// A cell parsed in its context (`03-cells.md#contexts`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChanMsg {
    /// Link keepalive.
    Padding,
    /// The peer switches its sending key after this frame.
    Rekey,
    /// Open a hop on a new circuit.
    Create {
        /// The circuit.
        circ_id: CircId,
        /// The body.
        body: CreateBody,
    },
    /// The answer to CREATE.
    Created {
        /// The circuit.
        circ_id: CircId,
        /// The body.
        body: CreatedBody,
    },
    /// A sealed onion cell; the body is opaque here.
    Relay {
        /// The circuit.
        circ_id: CircId,
        /// The sealed body.
        body: Box<[u8; BODY_LEN]>,
    },
    /// A fragment of a DHT message (`03-cells.md#dht`).
    Dht {
        /// Whether this fragment starts a message.
        first: bool,
        /// The fragment's bytes.
        data: Vec<u8>,
    },
    /// A fragment of a directory message (`03-cells.md#dir`): the same framing as DHT.
    Dir {
        /// Whether this fragment starts a message.
        first: bool,
        /// The fragment's bytes.
        data: Vec<u8>,
    },
    /// Tear a circuit down.
    Destroy {
        /// The circuit.
        circ_id: CircId,
        /// Why.
        reason: DestroyReason,
    },
}

impl ChanMsg {
    /// Parse `cell` as a message `context` may receive.
    pub fn parse(cell: &Cell, context: LinkContext) -> Result<ChanMsg, CellError> {
        let command = cell.command;
        if !command.is_known() {
            return Err(CellError::UnknownCommand {
                command,
                circ_id: cell.circ_id,
            });
        }
        if !context.allows(command) {
            return Err(CellError::NotAllowed {
                command,
                context,
                circ_id: cell.circ_id,
            });
        }
        let circ = CircId::new(cell.circ_id);
        let body_err = |source| CellError::Body {
            command,
            circ_id: cell.circ_id,
            source,
        };
        let circ_id = match (command.is_link_level(), circ) {
            (true, None) => {
                return match command {
                    Command::PADDING => Ok(ChanMsg::Padding),
                    Command::DHT | Command::DIR => {
                        let mut r = Reader::new(&cell.body);
                        let first = r.u8().map_err(body_err)? & 1 == 1;
                        let data = r
                            .u16_prefixed("dht.data", MAX_DHT_FRAGMENT)
                            .map_err(body_err)?
                            .to_vec();
                        if command == Command::DIR {
                            Ok(ChanMsg::Dir { first, data })
                        } else {
                            Ok(ChanMsg::Dht { first, data })
                        }
                    }
                    _ => Ok(ChanMsg::Rekey),
                };
            }
            (false, Some(c)) => c,
            _ => {
                return Err(CellError::CircIdRule {
                    command,
                    circ_id: cell.circ_id,
                });
            }
        };
        let mut r = Reader::new(&cell.body);
        Ok(match command {
            Command::CREATE => {
                let handshake_type = HandshakeType(r.u16().map_err(body_err)?);
                let handshake = r
                    .u16_prefixed("create.handshake", MAX_CREATE_HANDSHAKE)
                    .map_err(body_err)?
                    .to_vec();
                ChanMsg::Create {
                    circ_id,
                    body: CreateBody {
                        handshake_type,
                        handshake,
                    },
                }
            }
            Command::CREATED => {
                let handshake = r
                    .u16_prefixed("created.handshake", MAX_CREATED_HANDSHAKE)
                    .map_err(body_err)?
                    .to_vec();
                ChanMsg::Created {
                    circ_id,
                    body: CreatedBody { handshake },
                }
            }
            Command::RELAY => ChanMsg::Relay {
                circ_id,
                body: Box::new(cell.body),
            },
            Command::DESTROY => ChanMsg::Destroy {
                circ_id,
                reason: DestroyReason(r.u8().map_err(body_err)?),
            },
            _ => {
                return Err(CellError::UnknownCommand {
                    command,
                    circ_id: cell.circ_id,
                });
            }
        })
    }

    /// Encode as a cell. Fails only if a handshake is longer than its body allows.
    pub fn encode(&self) -> Result<Cell, DecodeError> {
        let mut w = Writer::with_capacity(BODY_LEN);
        let (circ_id, command) = match self {
            ChanMsg::Padding => (0, Command::PADDING),
            ChanMsg::Rekey => (0, Command::REKEY),
            ChanMsg::Dht { first, data } => {
                w.u8(u8::from(*first));
                w.u16_prefixed("dht.data", data, MAX_DHT_FRAGMENT)?;
                (0, Command::DHT)
            }
            ChanMsg::Dir { first, data } => {
                w.u8(u8::from(*first));
                w.u16_prefixed("dir.data", data, MAX_DHT_FRAGMENT)?;
                (0, Command::DIR)
            }
            ChanMsg::Create { circ_id, body } => {
                w.u16(body.handshake_type.0);
                w.u16_prefixed("create.handshake", &body.handshake, MAX_CREATE_HANDSHAKE)?;
                (circ_id.get(), Command::CREATE)
            }
            ChanMsg::Created { circ_id, body } => {
                w.u16_prefixed("created.handshake", &body.handshake, MAX_CREATED_HANDSHAKE)?;
                (circ_id.get(), Command::CREATED)
            }
            ChanMsg::Relay { circ_id, body } => {
                w.bytes(&body[..]);
                (circ_id.get(), Command::RELAY)
            }
            ChanMsg::Destroy { circ_id, reason } => {
                w.u8(reason.0);
                (circ_id.get(), Command::DESTROY)
            }
        };
        Cell::with_content(circ_id, command, w.as_slice()).ok_or(DecodeError::LengthOutOfRange {
            field: "cell.body",
            len: w.len(),
            max: BODY_LEN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{CellError, ChanMsg, CreateBody, DestroyReason, HandshakeType, LinkContext};
    use crate::wire::cell::{Cell, CircId, Command};

    fn circ(v: u32) -> CircId {
        CircId::new(v).unwrap()
    }

    #[test]
    fn each_context_refuses_what_it_may_not_receive() {
        let create = ChanMsg::Create {
            circ_id: circ(0x8000_0001),
            body: CreateBody {
                handshake_type: HandshakeType::NOISE_NK_V1,
                handshake: vec![1; 48],
            },
        }
        .encode()
        .unwrap();
        assert!(ChanMsg::parse(&create, LinkContext::RelayFromReader).is_ok());
        assert!(ChanMsg::parse(&create, LinkContext::RelayFromRelay).is_ok());
        assert_eq!(
            ChanMsg::parse(&create, LinkContext::ReaderFromRelay),
            Err(CellError::NotAllowed {
                command: Command::CREATE,
                context: LinkContext::ReaderFromRelay,
                circ_id: 0x8000_0001,
            })
        );
    }

    #[test]
    fn circ_id_rules() {
        let padding_on_circuit = Cell::with_content(7, Command::PADDING, &[]).unwrap();
        assert_eq!(
            ChanMsg::parse(&padding_on_circuit, LinkContext::RelayFromRelay),
            Err(CellError::CircIdRule {
                command: Command::PADDING,
                circ_id: 7,
            })
        );
        let destroy_on_link = Cell::with_content(0, Command::DESTROY, &[1]).unwrap();
        assert!(matches!(
            ChanMsg::parse(&destroy_on_link, LinkContext::RelayFromRelay),
            Err(CellError::CircIdRule { .. })
        ));
    }

    #[test]
    fn a_refused_cell_closes_the_circuit_it_names_and_never_the_link() {
        use super::CellAction;
        let on = |id: u32, command: Command| {
            let cell = Cell::with_content(id, command, &[]).unwrap();
            ChanMsg::parse(&cell, LinkContext::RelayFromReader)
                .unwrap_err()
                .action()
        };
        assert_eq!(on(0, Command(77)), CellAction::Ignore);
        assert_eq!(on(3, Command(77)), CellAction::DestroyCircuit(circ(3)));
        assert_eq!(on(0, Command::DHT), CellAction::Ignore);
        assert_eq!(on(0, Command::DESTROY), CellAction::Ignore);
        assert_eq!(on(7, Command::PADDING), CellAction::DestroyCircuit(circ(7)));
        assert_eq!(on(9, Command::CREATED), CellAction::DestroyCircuit(circ(9)));
    }

    #[test]
    fn unknown_command_is_typed() {
        let cell = Cell::with_content(3, Command(77), &[]).unwrap();
        assert_eq!(
            ChanMsg::parse(&cell, LinkContext::RelayFromRelay),
            Err(CellError::UnknownCommand {
                command: Command(77),
                circ_id: 3
            })
        );
    }

    #[test]
    fn oversized_handshake_length_is_refused() {
        let mut cell = Cell::with_content(1, Command::CREATED, &[]).unwrap();
        cell.body[0] = 0xff;
        cell.body[1] = 0xff;
        assert!(matches!(
            ChanMsg::parse(&cell, LinkContext::ReaderFromRelay),
            Err(CellError::Body { .. })
        ));
    }

    #[test]
    fn destroy_round_trips() {
        let msg = ChanMsg::Destroy {
            circ_id: circ(5),
            reason: DestroyReason::PROTOCOL,
        };
        let cell = msg.encode().unwrap();
        assert_eq!(
            ChanMsg::parse(&cell, LinkContext::ReaderFromRelay).unwrap(),
            msg
        );
    }
}
