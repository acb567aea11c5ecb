//! The link session typestate (`protocol-spec/02-link.md#handshake`, `#transport`).
//!
//! [`Handshaking`] → [`Established`], each consumed or driven by the caller with the time
//! passed in. See the module docs of [`crate::link`] for the contract.

use std::collections::VecDeque;

use super::frame::{FrameDecoder, encode_frame};
use super::{
    LinkConfig, LinkError, MAX_CELLS_PER_FRAME, MAX_HANDSHAKE_MSG, MAX_TRANSPORT_FRAME, Peer,
    RelayTarget, check_transport_frame_len, prologue,
};
use crate::crypto::keys::{LinkKeyBinding, LinkKeypair, X25519Public};
use crate::crypto::noise::{
    HandshakeSpec, LINK_PATTERN, NoiseHandshake, NoiseTransport, Randomness,
};
use crate::crypto::replay::ReplayCache;
use crate::time::Time;
use crate::wire::cell::{CELL_LEN, Cell, Command};
use crate::wire::restrict::{CellError, ChanMsg, LinkContext};
use crate::wire::{Readable, Reader};

/// Role byte in handshake message 3 (`02-link.md#handshake`): an anonymous reader.
const ROLE_READER: u8 = 0;
/// Role byte in handshake message 3: a relay, followed by its link-key binding.
const ROLE_RELAY: u8 = 1;

#[derive(Debug)]
enum Side {
    Dialler {
        target: RelayTarget,
        my_binding: Option<LinkKeyBinding>,
    },
    Listener {
        my_binding: LinkKeyBinding,
        got_msg1: bool,
    },
}

/// A link whose Noise handshake is in progress.
#[derive(Debug)]
pub struct Handshaking {
    noise: NoiseHandshake,
    side: Side,
    decoder: FrameDecoder,
    outbox: Vec<u8>,
    deadline: Time,
    config: LinkConfig,
}

/// The result of feeding bytes to a [`Handshaking`] session.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum HandshakeStep {
    /// More handshake messages are needed.
    Continue(Handshaking),
    /// The handshake finished; the peer is authenticated as far as its role allows.
    Done(Established),
}

impl Handshaking {
    /// Dial a relay: writes handshake message 1. `local` is this side's static key (fresh per
    /// link for a reader); `my_binding` proves a dialling relay's identity, `None` for a
    /// reader (`02-link.md#handshake`).
    pub fn dial(
        config: LinkConfig,
        target: RelayTarget,
        local: &LinkKeypair,
        my_binding: Option<LinkKeyBinding>,
        randomness: Randomness,
        now: Time,
    ) -> Result<Handshaking, LinkError> {
        let prologue = prologue();
        let mut noise = NoiseHandshake::new(&HandshakeSpec {
            protocol: LINK_PATTERN,
            initiator: true,
            prologue: &prologue,
            local_static: Some(local.secret_bytes()),
            remote_static: Some(&target.link_key.0),
            psks: &[],
            randomness,
        })
        .map_err(LinkError::Local)?;
        let msg1 = noise
            .write_message(&[])
            .map_err(LinkError::from_noise_read)?;
        let mut outbox = Vec::new();
        encode_frame(&msg1, &mut outbox)?;
        Ok(Handshaking {
            noise,
            side: Side::Dialler { target, my_binding },
            decoder: FrameDecoder::new(),
            outbox,
            deadline: now + config.handshake_timeout,
            config,
        })
    }

    /// Accept a link as a relay whose static key is `local`, bound to its identity by
    /// `my_binding` (`02-link.md#binding`).
    pub fn accept(
        config: LinkConfig,
        local: &LinkKeypair,
        my_binding: LinkKeyBinding,
        randomness: Randomness,
        now: Time,
    ) -> Result<Handshaking, LinkError> {
        let prologue = prologue();
        let noise = NoiseHandshake::new(&HandshakeSpec {
            protocol: LINK_PATTERN,
            initiator: false,
            prologue: &prologue,
            local_static: Some(local.secret_bytes()),
            remote_static: None,
            psks: &[],
            randomness,
        })
        .map_err(LinkError::Local)?;
        Ok(Handshaking {
            noise,
            side: Side::Listener {
                my_binding,
                got_msg1: false,
            },
            decoder: FrameDecoder::new(),
            outbox: Vec::new(),
            deadline: now + config.handshake_timeout,
            config,
        })
    }

    /// Bytes to write to the stream, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.outbox.is_empty()).then(|| std::mem::take(&mut self.outbox))
    }

    /// When the handshake times out.
    pub fn poll_timeout(&self) -> Time {
        self.deadline
    }

    /// Check the handshake deadline (`02-link.md#timers`).
    pub fn handle_timeout(&self, now: Time) -> Result<(), LinkError> {
        if now >= self.deadline {
            return Err(LinkError::HandshakeTimeout);
        }
        Ok(())
    }

    /// The stream ended during the handshake.
    pub fn finish(&self) -> Result<(), LinkError> {
        self.decoder.finish()?;
        Err(LinkError::Protocol {
            what: "stream closed during the handshake",
        })
    }

    /// Feed bytes read from the stream.
    pub fn handle_bytes(self, now: Time, bytes: &[u8]) -> Result<HandshakeStep, LinkError> {
        self.handle_bytes_guarded(now, bytes, None)
    }

    /// [`Handshaking::handle_bytes`], and on a listener, refuse a message 1 whose ephemeral
    /// `replay` remembers before doing any Diffie-Hellman for it; remember it once it
    /// authenticates (`02-link.md#replay`).
    pub fn handle_bytes_guarded(
        mut self,
        now: Time,
        bytes: &[u8],
        mut replay: Option<&mut ReplayCache>,
    ) -> Result<HandshakeStep, LinkError> {
        self.handle_timeout(now)?;
        self.decoder.push(bytes);
        loop {
            let Some(msg) = self.decoder.next_frame(1, MAX_HANDSHAKE_MSG)? else {
                return Ok(HandshakeStep::Continue(self));
            };
            let first = matches!(
                self.side,
                Side::Listener {
                    got_msg1: false,
                    ..
                }
            );
            if first {
                if let Some(r) = replay.as_deref_mut() {
                    if r.seen(now, msg) {
                        return Err(LinkError::Replayed);
                    }
                }
            }
            let payload = self
                .noise
                .read_message(msg)
                .map_err(LinkError::from_noise_read)?;
            if first {
                if let Some(r) = replay.as_deref_mut() {
                    r.insert(now, msg);
                }
            }
            match &mut self.side {
                Side::Dialler { target, my_binding } => {
                    // Message 2: the relay proves its identity signed the key we dialled.
                    let peer = check_relay_binding(&payload, target)?;
                    let mut p3 = Vec::with_capacity(1 + LinkKeyBinding::LEN);
                    match my_binding {
                        None => p3.push(ROLE_READER),
                        Some(b) => {
                            p3.push(ROLE_RELAY);
                            p3.extend_from_slice(&b.to_bytes());
                        }
                    }
                    let context = if my_binding.is_some() {
                        LinkContext::RelayFromRelay
                    } else {
                        LinkContext::ReaderFromRelay
                    };
                    let msg3 = self
                        .noise
                        .write_message(&p3)
                        .map_err(LinkError::from_noise_read)?;
                    encode_frame(&msg3, &mut self.outbox)?;
                    return self.finish_into(peer, context, now);
                }
                Side::Listener {
                    my_binding,
                    got_msg1,
                } if !*got_msg1 => {
                    // Message 1 carries no payload (`02-link.md#handshake`).
                    if !payload.is_empty() {
                        return Err(LinkError::Protocol {
                            what: "payload in handshake message 1",
                        });
                    }
                    *got_msg1 = true;
                    let msg2 = self
                        .noise
                        .write_message(&my_binding.to_bytes())
                        .map_err(LinkError::from_noise_read)?;
                    encode_frame(&msg2, &mut self.outbox)?;
                }
                Side::Listener { .. } => {
                    // Message 3: the dialler's role, and a relay's binding.
                    let remote = self.noise.remote_static().map(X25519Public).ok_or(
                        LinkError::Protocol {
                            what: "no static key in message 3",
                        },
                    )?;
                    let (peer, context) = parse_dialler_role(&payload, remote)?;
                    return self.finish_into(peer, context, now);
                }
            }
        }
    }

    fn finish_into(
        self,
        peer: Peer,
        context: LinkContext,
        now: Time,
    ) -> Result<HandshakeStep, LinkError> {
        let transport = self.noise.into_transport().map_err(LinkError::Local)?;
        let mut est = Established {
            transport,
            peer,
            context,
            config: self.config,
            decoder: self.decoder,
            outbox: self.outbox,
            pending: Vec::new(),
            received: VecDeque::new(),
            last_sent: now,
            last_recv: now,
            last_rekey: now,
            frames_since_rekey: 0,
            rekey_due: false,
            stats: LinkStats::default(),
            plain_buf: Vec::new(),
        };
        // Transport frames may have arrived right behind the last handshake message.
        if est.decoder.buffered() > 0 {
            est.handle_bytes(now, &[])?;
        }
        Ok(HandshakeStep::Done(est))
    }
}

/// Check message 2's payload: a binding by the dialled identity over the dialled key
/// (`02-link.md#binding`).
fn check_relay_binding(payload: &[u8], target: &RelayTarget) -> Result<Peer, LinkError> {
    let bytes: &[u8; LinkKeyBinding::LEN] =
        payload.try_into().map_err(|_| LinkError::Malformed {
            what: "binding in handshake message 2",
        })?;
    let binding = LinkKeyBinding::from_bytes(bytes).map_err(LinkError::from_binding)?;
    if binding.identity.node_id() != target.node_id {
        return Err(LinkError::WrongIdentity);
    }
    binding
        .verify(&target.link_key)
        .map_err(LinkError::from_binding)?;
    Ok(Peer::Relay {
        identity: binding.identity,
        link_key: target.link_key,
    })
}

/// Parse message 3's payload (`02-link.md#handshake`).
fn parse_dialler_role(
    payload: &[u8],
    remote: X25519Public,
) -> Result<(Peer, LinkContext), LinkError> {
    let mut r = Reader::new(payload);
    let role = r.u8().map_err(|_| LinkError::Malformed {
        what: "empty handshake message 3",
    })?;
    match role {
        ROLE_READER => {
            r.finish().map_err(|_| LinkError::Malformed {
                what: "trailing bytes in handshake message 3",
            })?;
            Ok((Peer::Reader, LinkContext::RelayFromReader))
        }
        ROLE_RELAY => {
            let bytes = r
                .array::<{ LinkKeyBinding::LEN }>()
                .map_err(|_| LinkError::Malformed {
                    what: "binding in handshake message 3",
                })?;
            r.finish().map_err(|_| LinkError::Malformed {
                what: "trailing bytes in handshake message 3",
            })?;
            let binding = LinkKeyBinding::from_bytes(&bytes).map_err(LinkError::from_binding)?;
            binding.verify(&remote).map_err(LinkError::from_binding)?;
            Ok((
                Peer::Relay {
                    identity: binding.identity,
                    link_key: remote,
                },
                LinkContext::RelayFromRelay,
            ))
        }
        _ => Err(LinkError::Protocol {
            what: "unknown role in handshake message 3",
        }),
    }
}

/// Counters of an established link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames received.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Cells received (including link-level ones).
    pub cells_in: u64,
    /// Cells sent (including link-level ones).
    pub cells_out: u64,
    /// Unknown link-level cells ignored (`03-cells.md#errors`).
    pub ignored_unknown: u64,
    /// Times the sending key was switched.
    pub rekeys_out: u64,
    /// Times the receiving key was switched.
    pub rekeys_in: u64,
}

/// A link whose handshake finished: carries whole cells in Noise transport frames.
#[derive(Debug)]
pub struct Established {
    transport: NoiseTransport,
    peer: Peer,
    context: LinkContext,
    config: LinkConfig,
    decoder: FrameDecoder,
    outbox: Vec<u8>,
    pending: Vec<u8>,
    received: VecDeque<Result<ChanMsg, CellError>>,
    last_sent: Time,
    last_recv: Time,
    last_rekey: Time,
    frames_since_rekey: u64,
    rekey_due: bool,
    stats: LinkStats,
    plain_buf: Vec<u8>,
}

impl Established {
    /// Who is at the other end.
    pub fn peer(&self) -> Peer {
        self.peer
    }

    /// The context cells from the peer are parsed in (`03-cells.md#contexts`).
    pub fn context(&self) -> LinkContext {
        self.context
    }

    /// Counters.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Queue a cell; it goes out with the next [`Established::poll_transmit`].
    pub fn send(&mut self, cell: &Cell) {
        cell.encode_into(&mut self.pending);
    }

    /// Encode and queue a message.
    pub fn send_msg(&mut self, msg: &ChanMsg) -> Result<(), LinkError> {
        let cell = msg.encode().map_err(|_| LinkError::Protocol {
            what: "message too large for a cell",
        })?;
        self.send(&cell);
        Ok(())
    }

    /// Cells queued but not yet sealed.
    pub fn queued_cells(&self) -> usize {
        self.pending.len() / CELL_LEN
    }

    /// Seal queued cells into frames (`02-link.md#framing`) and return the bytes to write.
    pub fn poll_transmit(&mut self, now: Time) -> Result<Option<Vec<u8>>, LinkError> {
        let mut offset = 0;
        while offset < self.pending.len() || self.rekey_due {
            let take = (self.pending.len() - offset).min(MAX_CELLS_PER_FRAME * CELL_LEN);
            let mut plain_end = offset + take;
            // A due rekey rides on the last frame of this batch, or on a frame of its own.
            let with_rekey = (self.rekey_due
                && plain_end == self.pending.len()
                && take < MAX_CELLS_PER_FRAME * CELL_LEN)
                || self.frames_since_rekey + 1 >= self.config.rekey_after_frames;
            let mut frame_plain: Vec<u8>;
            let plain: &[u8] = if with_rekey {
                let mut t = take;
                if t == MAX_CELLS_PER_FRAME * CELL_LEN {
                    t -= CELL_LEN;
                    plain_end -= CELL_LEN;
                }
                frame_plain = self.pending[offset..offset + t].to_vec();
                Cell::with_content(0, Command::REKEY, &[])
                    .ok_or(LinkError::Protocol { what: "rekey cell" })?
                    .encode_into(&mut frame_plain);
                &frame_plain
            } else {
                &self.pending[offset..plain_end]
            };
            let cells = plain.len() / CELL_LEN;
            self.transport
                .write_framed(plain, &mut self.outbox)
                .map_err(LinkError::Local)?;
            self.stats.frames_out += 1;
            self.stats.cells_out += cells as u64;
            self.frames_since_rekey += 1;
            offset = plain_end;
            if with_rekey {
                // `02-link.md#rekey`: the key switches after the frame carrying REKEY.
                self.transport.rekey_outgoing();
                self.rekey_due = false;
                self.frames_since_rekey = 0;
                self.last_rekey = now;
                self.stats.rekeys_out += 1;
            }
        }
        self.pending.clear();
        if self.outbox.is_empty() {
            return Ok(None);
        }
        self.last_sent = now;
        Ok(Some(std::mem::take(&mut self.outbox)))
    }

    /// Feed bytes read from the stream. Decrypted cells are parsed in this link's context and
    /// wait in [`Established::poll_msg`]; link-level cells are handled here.
    pub fn handle_bytes(&mut self, now: Time, bytes: &[u8]) -> Result<(), LinkError> {
        self.decoder.push(bytes);
        // One decryption buffer per session, reused across calls (an error drops it; the
        // session ends then anyway).
        let mut plain = std::mem::take(&mut self.plain_buf);
        if plain.len() < MAX_TRANSPORT_FRAME {
            plain.resize(MAX_TRANSPORT_FRAME, 0);
        }
        while let Some(frame) = self.decoder.next_frame(0, MAX_TRANSPORT_FRAME)? {
            // `02-link.md#framing`: a transport frame holds whole cells.
            check_transport_frame_len(frame.len())?;
            let n = self
                .transport
                .read_into(frame, &mut plain)
                .map_err(LinkError::from_noise_read)?;
            let plain = &plain[..n];
            self.last_recv = now;
            self.stats.frames_in += 1;
            let ncells = plain.len() / CELL_LEN;
            let mut rekey_in = false;
            for (i, chunk) in plain.chunks_exact(CELL_LEN).enumerate() {
                self.stats.cells_in += 1;
                let cell =
                    Cell::decode_exact(chunk).map_err(|_| LinkError::Malformed { what: "cell" })?;
                if cell.circ_id == 0 && !cell.command.is_known() {
                    self.stats.ignored_unknown += 1;
                    continue;
                }
                match ChanMsg::parse(&cell, self.context) {
                    Ok(ChanMsg::Padding) => {}
                    Ok(ChanMsg::Rekey) => {
                        if i + 1 != ncells {
                            return Err(LinkError::Protocol {
                                what: "REKEY is not the last cell of its frame",
                            });
                        }
                        rekey_in = true;
                    }
                    other => self.received.push_back(other),
                }
            }
            if rekey_in {
                self.transport.rekey_incoming();
                self.stats.rekeys_in += 1;
            }
        }
        self.plain_buf = plain;
        Ok(())
    }

    /// The next message received, parsed in this link's context. An `Err` concerns one cell
    /// (and the circuit it names), not the link.
    pub fn poll_msg(&mut self) -> Option<Result<ChanMsg, CellError>> {
        self.received.pop_front()
    }

    /// The earliest time [`Established::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Time {
        let idle = self.last_recv + self.config.idle_timeout;
        let keepalive = self.last_sent + self.config.keepalive_interval;
        let rekey = self.last_rekey + self.config.rekey_interval;
        idle.min(keepalive).min(rekey)
    }

    /// Run the timers (`02-link.md#timers`): idle close, keepalive, rekey.
    pub fn handle_timeout(&mut self, now: Time) -> Result<(), LinkError> {
        if now >= self.last_recv + self.config.idle_timeout {
            return Err(LinkError::IdleTimeout);
        }
        if now >= self.last_rekey + self.config.rekey_interval {
            self.rekey_due = true;
        }
        if now >= self.last_sent + self.config.keepalive_interval
            && self.pending.is_empty()
            && !self.rekey_due
        {
            self.send(&Cell::padding());
        }
        Ok(())
    }

    /// The stream ended: an error if it ended inside a frame.
    pub fn finish(&self) -> Result<(), LinkError> {
        self.decoder.finish()
    }
}
