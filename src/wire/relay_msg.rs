//! Messages inside onion layers (`protocol-spec/05-streams.md#relay-messages`).
//!
//! A relay message fills the 512-byte payload of a sealed RELAY cell:
//! `command u8 | stream_id u16 | length u16 | data[length] | zero padding`, with at most
//! [`MAX_DATA`] bytes of data. Commands are an open code space; each end parses only what it
//! may receive ([`RelayContext`]). Not in this module: layers, windows, or what to do with a
//! message.

use super::cell::RELAY_PAYLOAD_LEN;
use super::{DecodeError, Reader, Writer};
use crate::error::{ErrorKind, HasKind};

/// Header length: command, stream id, length.
pub const RELAY_HEADER_LEN: usize = 5;
/// Most data bytes one relay message carries.
pub const MAX_DATA: usize = RELAY_PAYLOAD_LEN - RELAY_HEADER_LEN;

/// A relay command: an open code space (`05-streams.md#relay-messages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelayCommand(pub u8);

impl RelayCommand {
    /// Extend the circuit by one hop (to the last hop).
    pub const EXTEND: RelayCommand = RelayCommand(1);
    /// The new hop's handshake answer (from the last hop).
    pub const EXTENDED: RelayCommand = RelayCommand(2);
    /// Open a stream to a service at this hop.
    pub const BEGIN: RelayCommand = RelayCommand(3);
    /// The stream is open.
    pub const CONNECTED: RelayCommand = RelayCommand(4);
    /// Stream data.
    pub const DATA: RelayCommand = RelayCommand(5);
    /// Close a stream.
    pub const END: RelayCommand = RelayCommand(6);
    /// Flow-control window increment (stream 0: the circuit's).
    pub const SENDME: RelayCommand = RelayCommand(7);
}

/// Which end is parsing (`05-streams.md#relay-contexts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayContext {
    /// A relay receiving from the reader.
    AtRelay,
    /// The reader receiving from a hop.
    AtReader,
}

/// Why a relay message was refused. The circuit is torn down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayMsgError {
    /// A command this version does not know.
    #[error("unknown relay command {0:?}")]
    Unknown(RelayCommand),
    /// A command the receiving end may not receive.
    #[error("relay command {command:?} not allowed {context:?}")]
    NotAllowed {
        /// The command.
        command: RelayCommand,
        /// Who received it.
        context: RelayContext,
    },
    /// The message does not decode.
    #[error("malformed relay message: {0}")]
    Decode(#[from] DecodeError),
}

impl HasKind for RelayMsgError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::PeerProtocolViolation
    }
}

/// A decoded relay message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayMsg {
    /// Extend to the relay `node_id` with a hop handshake.
    Extend {
        /// The relay to extend to (looked up in the hop's directory).
        node_id: [u8; 32],
        /// Hop handshake type (`03-cells.md#create`).
        handshake_type: u16,
        /// Hop handshake message 1.
        handshake: Vec<u8>,
    },
    /// The extension's hop handshake message 2.
    Extended {
        /// Hop handshake message 2.
        handshake: Vec<u8>,
    },
    /// Open stream `stream_id` to `service` at this hop.
    Begin {
        /// The stream.
        stream_id: u16,
        /// Service name (`05-streams.md#services`).
        service: Vec<u8>,
    },
    /// Stream `stream_id` is open.
    Connected {
        /// The stream.
        stream_id: u16,
    },
    /// Data on stream `stream_id`.
    Data {
        /// The stream.
        stream_id: u16,
        /// At most [`MAX_DATA`] bytes.
        data: Vec<u8>,
    },
    /// Stream `stream_id` is closed.
    End {
        /// The stream.
        stream_id: u16,
        /// Why (`05-streams.md#end-reasons`).
        reason: u8,
    },
    /// Window increment for stream `stream_id` (0: the circuit).
    Sendme {
        /// The stream, or 0.
        stream_id: u16,
    },
}

const MAX_HANDSHAKE: usize = MAX_DATA - 36;

impl RelayMsg {
    /// The command of this message.
    pub fn command(&self) -> RelayCommand {
        match self {
            RelayMsg::Extend { .. } => RelayCommand::EXTEND,
            RelayMsg::Extended { .. } => RelayCommand::EXTENDED,
            RelayMsg::Begin { .. } => RelayCommand::BEGIN,
            RelayMsg::Connected { .. } => RelayCommand::CONNECTED,
            RelayMsg::Data { .. } => RelayCommand::DATA,
            RelayMsg::End { .. } => RelayCommand::END,
            RelayMsg::Sendme { .. } => RelayCommand::SENDME,
        }
    }

    /// Encode into a 512-byte payload.
    pub fn encode(&self) -> Result<[u8; RELAY_PAYLOAD_LEN], DecodeError> {
        let mut body = Writer::with_capacity(MAX_DATA);
        let stream_id = match self {
            RelayMsg::Extend {
                node_id,
                handshake_type,
                handshake,
            } => {
                body.bytes(node_id).u16(*handshake_type);
                body.u16_prefixed("extend.handshake", handshake, MAX_HANDSHAKE)?;
                0
            }
            RelayMsg::Extended { handshake } => {
                body.u16_prefixed("extended.handshake", handshake, MAX_HANDSHAKE)?;
                0
            }
            RelayMsg::Begin { stream_id, service } => {
                let len =
                    u8::try_from(service.len()).map_err(|_| DecodeError::LengthOutOfRange {
                        field: "begin.service",
                        len: service.len(),
                        max: 255,
                    })?;
                body.u8(len).bytes(service);
                *stream_id
            }
            RelayMsg::Connected { stream_id } | RelayMsg::Sendme { stream_id } => *stream_id,
            RelayMsg::Data { stream_id, data } => {
                if data.len() > MAX_DATA {
                    return Err(DecodeError::LengthOutOfRange {
                        field: "data",
                        len: data.len(),
                        max: MAX_DATA,
                    });
                }
                body.bytes(data);
                *stream_id
            }
            RelayMsg::End { stream_id, reason } => {
                body.u8(*reason);
                *stream_id
            }
        };
        let body = body.into_vec();
        let mut out = [0u8; RELAY_PAYLOAD_LEN];
        let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
        out[0] = self.command().0;
        out[1..3].copy_from_slice(&stream_id.to_be_bytes());
        out[3..5].copy_from_slice(&len.to_be_bytes());
        out.get_mut(RELAY_HEADER_LEN..RELAY_HEADER_LEN + body.len())
            .ok_or(DecodeError::LengthOutOfRange {
                field: "relay body",
                len: body.len(),
                max: MAX_DATA,
            })?
            .copy_from_slice(&body);
        Ok(out)
    }

    /// Encode a DATA message straight into a payload (the hot path: no intermediate buffer).
    pub fn encode_data(stream_id: u16, data: &[u8]) -> Option<[u8; RELAY_PAYLOAD_LEN]> {
        let len = u16::try_from(data.len())
            .ok()
            .filter(|l| usize::from(*l) <= MAX_DATA)?;
        let mut out = [0u8; RELAY_PAYLOAD_LEN];
        out[0] = RelayCommand::DATA.0;
        out[1..3].copy_from_slice(&stream_id.to_be_bytes());
        out[3..5].copy_from_slice(&len.to_be_bytes());
        out[RELAY_HEADER_LEN..RELAY_HEADER_LEN + data.len()].copy_from_slice(data);
        Some(out)
    }

    /// Decode a payload received in `context`.
    pub fn decode(payload: &[u8], context: RelayContext) -> Result<RelayMsg, RelayMsgError> {
        let mut r = Reader::new(payload);
        let command = RelayCommand(r.u8()?);
        let stream_id = r.u16()?;
        let len = usize::from(r.u16()?);
        if len > MAX_DATA {
            return Err(DecodeError::LengthOutOfRange {
                field: "relay length",
                len,
                max: MAX_DATA,
            }
            .into());
        }
        let body = r.take(len)?;
        // `05-streams.md#relay-messages`: the padding is zeros, and checked.
        if r.take(r.remaining())?.iter().any(|b| *b != 0) {
            return Err(DecodeError::InvalidValue {
                field: "relay padding",
            }
            .into());
        }
        let allowed = match context {
            RelayContext::AtRelay => matches!(
                command,
                RelayCommand::EXTEND
                    | RelayCommand::BEGIN
                    | RelayCommand::DATA
                    | RelayCommand::END
                    | RelayCommand::SENDME
            ),
            RelayContext::AtReader => matches!(
                command,
                RelayCommand::EXTENDED
                    | RelayCommand::CONNECTED
                    | RelayCommand::DATA
                    | RelayCommand::END
                    | RelayCommand::SENDME
            ),
        };
        if command.0 == 0 || command.0 > RelayCommand::SENDME.0 {
            return Err(RelayMsgError::Unknown(command));
        }
        if !allowed {
            return Err(RelayMsgError::NotAllowed { command, context });
        }
        let mut b = Reader::new(body);
        let msg = match command {
            RelayCommand::EXTEND => {
                let node_id = b.array::<32>()?;
                let handshake_type = b.u16()?;
                let handshake = b.u16_prefixed("extend.handshake", MAX_HANDSHAKE)?.to_vec();
                RelayMsg::Extend {
                    node_id,
                    handshake_type,
                    handshake,
                }
            }
            RelayCommand::EXTENDED => RelayMsg::Extended {
                handshake: b
                    .u16_prefixed("extended.handshake", MAX_HANDSHAKE)?
                    .to_vec(),
            },
            RelayCommand::BEGIN => {
                let n = usize::from(b.u8()?);
                RelayMsg::Begin {
                    stream_id,
                    service: b.take(n)?.to_vec(),
                }
            }
            RelayCommand::CONNECTED => RelayMsg::Connected { stream_id },
            RelayCommand::DATA => RelayMsg::Data {
                stream_id,
                data: b.rest().to_vec(),
            },
            RelayCommand::END => RelayMsg::End {
                stream_id,
                reason: b.u8()?,
            },
            _ => RelayMsg::Sendme { stream_id },
        };
        b.finish()?;
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_DATA, RelayCommand, RelayContext, RelayMsg, RelayMsgError};

    #[test]
    fn round_trips_and_contexts() {
        let msgs = [
            (
                RelayMsg::Extend {
                    node_id: [3; 32],
                    handshake_type: 1,
                    handshake: vec![9; 49],
                },
                RelayContext::AtRelay,
            ),
            (
                RelayMsg::Extended {
                    handshake: vec![8; 48],
                },
                RelayContext::AtReader,
            ),
            (
                RelayMsg::Begin {
                    stream_id: 4,
                    service: b"echo".to_vec(),
                },
                RelayContext::AtRelay,
            ),
            (RelayMsg::Connected { stream_id: 4 }, RelayContext::AtReader),
            (
                RelayMsg::Data {
                    stream_id: 4,
                    data: vec![7; MAX_DATA],
                },
                RelayContext::AtReader,
            ),
            (
                RelayMsg::End {
                    stream_id: 4,
                    reason: 2,
                },
                RelayContext::AtRelay,
            ),
            (RelayMsg::Sendme { stream_id: 0 }, RelayContext::AtRelay),
        ];
        for (m, ctx) in msgs {
            let p = m.encode().unwrap();
            assert_eq!(RelayMsg::decode(&p, ctx).unwrap(), m);
            let other = if ctx == RelayContext::AtRelay {
                RelayContext::AtReader
            } else {
                RelayContext::AtRelay
            };
            if !matches!(
                m,
                RelayMsg::Data { .. } | RelayMsg::End { .. } | RelayMsg::Sendme { .. }
            ) {
                assert!(matches!(
                    RelayMsg::decode(&p, other),
                    Err(RelayMsgError::NotAllowed { .. })
                ));
            }
        }
        assert_eq!(
            RelayMsg::encode_data(1, &[5; 10]).unwrap(),
            RelayMsg::Data {
                stream_id: 1,
                data: vec![5; 10]
            }
            .encode()
            .unwrap()
        );
        assert!(RelayMsg::encode_data(1, &[0; MAX_DATA + 1]).is_none());
        let mut p = [0u8; 512];
        p[0] = 99;
        assert_eq!(
            RelayMsg::decode(&p, RelayContext::AtRelay),
            Err(RelayMsgError::Unknown(RelayCommand(99)))
        );
        p[0] = 5;
        p[3] = 0xff;
        assert!(matches!(
            RelayMsg::decode(&p, RelayContext::AtRelay),
            Err(RelayMsgError::Decode(_))
        ));
    }
}
