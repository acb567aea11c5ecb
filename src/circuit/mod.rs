//! Reader-side circuits (`protocol-spec/04-circuits.md`, `05-streams.md`).
//!
//! Telescoping build: CREATE to the guard, then EXTEND through the circuit, one hop at a
//! time, with the Noise NK hop handshake; the reader stays anonymous and each relay is
//! authenticated by the onion key in its descriptor. Then streams to a service at the last
//! hop, with window flow control per circuit and per stream. Every cell is sealed in the
//! layers of the hops it crosses; any layer failure tears the circuit down.
//!
//! The state machine is sans-IO: methods take `now` and queue [`ClientAction`]s (cells to send
//! on a link, events for the application). Not in this module: choosing paths, opening links
//! or retrying (the node decides), and relay-side processing (`relay/`).

use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::crypto::CryptoError;
use crate::crypto::hop::{ClientHop, client_start};
use crate::crypto::keys::{NodeId, X25519Public};
use crate::crypto::layer::{ClientLayers, LayerError};
use crate::crypto::noise::Randomness;
use crate::crypto::rng::UmbraRng;
use crate::flow::{
    CIRC_INCREMENT, CIRC_WINDOW, FlowError, RecvWindow, STREAM_INCREMENT, STREAM_WINDOW, SendWindow,
};
use crate::ids::{CircHandle, LinkId, StreamHandle};
use crate::time::Time;
use crate::wire::cell::{BODY_LEN, CircId, RELAY_PAYLOAD_LEN};
use crate::wire::relay_msg::{MAX_DATA, RelayContext, RelayMsg, RelayMsgError};
use crate::wire::restrict::{ChanMsg, CreateBody, CreatedBody, DestroyReason, HandshakeType};

/// One hop of a path, as the reader knows it from the relay's descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopSpec {
    /// The relay.
    pub node_id: NodeId,
    /// Its onion key.
    pub onion_key: X25519Public,
}

/// Why a circuit failed or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CircuitFailure {
    /// The build did not finish in time (`04-circuits.md#build`).
    #[error("circuit build timed out")]
    Timeout,
    /// A hop or the link tore it down.
    #[error("destroyed by the network (reason {})", .0.0)]
    Destroyed(DestroyReason),
    /// The link under it closed.
    #[error("the link closed")]
    LinkClosed,
    /// A layer failed: tampering, replay, or a broken hop.
    #[error("layer failure: {0}")]
    Layer(LayerError),
    /// A hop handshake failed.
    #[error("hop handshake failed: {0}")]
    Handshake(CryptoError),
    /// A relay message was refused.
    #[error("bad relay message: {0}")]
    Message(RelayMsgError),
    /// A flow-control rule was broken.
    #[error("flow control: {0}")]
    Flow(FlowError),
    /// No path could be chosen from the directory.
    #[error("no usable path in the directory")]
    NoPath,
    /// A message arrived that the circuit's state does not allow.
    #[error("unexpected {0}")]
    Unexpected(&'static str),
}

/// What the application hears.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The circuit is open through every hop of `path`.
    Built {
        /// The circuit.
        circ: CircHandle,
        /// Its relays, guard first.
        path: Vec<NodeId>,
    },
    /// The circuit failed; `hop` is the relay being added when it failed, if any.
    Failed {
        /// The circuit.
        circ: CircHandle,
        /// Why.
        failure: CircuitFailure,
        /// The relay being reached.
        hop: Option<NodeId>,
    },
    /// The circuit was closed after it was built.
    Closed {
        /// The circuit.
        circ: CircHandle,
        /// Why.
        failure: CircuitFailure,
    },
    /// A stream opened.
    StreamOpened {
        /// The stream.
        stream: StreamHandle,
    },
    /// Data on a stream.
    StreamData {
        /// The stream.
        stream: StreamHandle,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A stream ended.
    StreamEnded {
        /// The stream.
        stream: StreamHandle,
        /// The peer's reason code.
        reason: u8,
    },
}

/// What the circuit machine asks of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAction {
    /// Send a message on a link.
    Send {
        /// The link.
        link: LinkId,
        /// The message.
        msg: ChanMsg,
    },
    /// Tell the application.
    Event(ClientEvent),
}

/// Errors of the application-facing calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CircuitError {
    /// No such circuit (closed or never existed).
    #[error("no such circuit")]
    NoCircuit,
    /// The circuit is not built yet.
    #[error("circuit not built yet")]
    NotBuilt,
    /// No such stream.
    #[error("no such stream")]
    NoStream,
    /// Too many streams on the circuit.
    #[error("stream ids exhausted")]
    StreamsExhausted,
    /// The path is empty or longer than the layers allow.
    #[error("bad path length {0}")]
    BadPath(usize),
    /// A local encoding failure (a bug).
    #[error("internal encoding failure")]
    Internal,
}

impl crate::error::HasKind for CircuitError {
    fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            CircuitError::NoCircuit
            | CircuitError::NotBuilt
            | CircuitError::NoStream
            | CircuitError::BadPath(_) => ErrorKind::BadApiUsage,
            CircuitError::StreamsExhausted => ErrorKind::ResourceLimit,
            CircuitError::Internal => ErrorKind::Internal,
        }
    }
}

#[derive(Debug)]
struct ClientStream {
    opened: bool,
    send: SendWindow,
    recv: RecvWindow,
    outq: VecDeque<Vec<u8>>,
    queued: usize,
}

#[derive(Debug)]
struct ClientCirc {
    link: LinkId,
    circ_id: CircId,
    path: Vec<HopSpec>,
    layers: ClientLayers,
    pending: Option<ClientHop>,
    deadline: Time,
    send: SendWindow,
    recv: RecvWindow,
    streams: BTreeMap<u16, ClientStream>,
    next_stream: u16,
}

/// A message for `stream_id`, which is not open: fine if the reader opened it (ids increase
/// from 1, so it is closed and the message was in flight), a violation if it never did
/// (`05-streams.md#closing`).
fn closed(c: &ClientCirc, stream_id: u16, never: &'static str) -> Result<(), CircuitFailure> {
    if stream_id != 0 && stream_id < c.next_stream {
        Ok(())
    } else {
        Err(CircuitFailure::Unexpected(never))
    }
}

impl ClientCirc {
    fn built(&self) -> bool {
        self.pending.is_none() && self.layers.len() == self.path.len()
    }
    fn last_hop(&self) -> u8 {
        u8::try_from(self.layers.len()).unwrap_or(u8::MAX)
    }
}

/// All reader-side circuits of a node.
#[derive(Debug)]
pub struct ClientCircuits {
    circs: BTreeMap<CircHandle, ClientCirc>,
    /// Build deadlines, earliest first; an entry whose circuit was built or closed meanwhile
    /// is dropped when its time comes (so the next deadline is O(log n), not a scan).
    deadlines: BTreeSet<(Time, CircHandle)>,
    by_link: BTreeMap<(LinkId, CircId), CircHandle>,
    actions: VecDeque<ClientAction>,
    build_timeout: Duration,
    rng: UmbraRng,
}

impl ClientCircuits {
    /// No circuits; builds time out after `build_timeout`.
    pub fn new(build_timeout: Duration, rng: UmbraRng) -> Self {
        ClientCircuits {
            circs: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            by_link: BTreeMap::new(),
            actions: VecDeque::new(),
            build_timeout,
            rng,
        }
    }

    /// The next action for the node.
    pub fn poll_action(&mut self) -> Option<ClientAction> {
        self.actions.pop_front()
    }

    /// Whether the circuit with this id on this link is ours.
    pub fn owns(&self, link: LinkId, circ_id: CircId) -> bool {
        self.by_link.contains_key(&(link, circ_id))
    }

    /// Start building `handle` over `link` (already open to `path[0]`) with `circ_id`
    /// (`04-circuits.md#build`): sends CREATE to the guard.
    pub fn launch(
        &mut self,
        now: Time,
        handle: CircHandle,
        link: LinkId,
        circ_id: CircId,
        path: Vec<HopSpec>,
    ) -> Result<(), CircuitError> {
        if path.is_empty() || path.len() > crate::wire::cell::MAX_LAYERS {
            return Err(CircuitError::BadPath(path.len()));
        }
        let (hop, msg1) =
            match client_start(&path[0].onion_key, 1, Randomness::Seeded(self.rng.array())) {
                Ok(x) => x,
                Err(e) => {
                    self.actions
                        .push_back(ClientAction::Event(ClientEvent::Failed {
                            circ: handle,
                            failure: CircuitFailure::Handshake(e),
                            hop: Some(path[0].node_id),
                        }));
                    return Ok(());
                }
            };
        self.actions.push_back(ClientAction::Send {
            link,
            msg: ChanMsg::Create {
                circ_id,
                body: CreateBody {
                    handshake_type: HandshakeType::NOISE_NK_V1,
                    handshake: msg1,
                },
            },
        });
        self.by_link.insert((link, circ_id), handle);
        self.deadlines.insert((now + self.build_timeout, handle));
        self.circs.insert(
            handle,
            ClientCirc {
                link,
                circ_id,
                path,
                layers: ClientLayers::new(),
                pending: Some(hop),
                deadline: now + self.build_timeout,
                send: SendWindow::new(CIRC_WINDOW, CIRC_INCREMENT),
                recv: RecvWindow::new(CIRC_WINDOW, CIRC_INCREMENT),
                streams: BTreeMap::new(),
                next_stream: 1,
            },
        );
        Ok(())
    }

    /// CREATED arrived on `link`/`circ_id`.
    pub fn handle_created(&mut self, now: Time, link: LinkId, circ_id: CircId, body: &CreatedBody) {
        let Some(&handle) = self.by_link.get(&(link, circ_id)) else {
            return;
        };
        let r = self.on_hop_answer(now, handle, &body.handshake, true);
        if let Err(f) = r {
            self.fail(handle, f, true);
        }
    }

    fn on_hop_answer(
        &mut self,
        now: Time,
        handle: CircHandle,
        msg2: &[u8],
        first: bool,
    ) -> Result<(), CircuitFailure> {
        let c = self
            .circs
            .get_mut(&handle)
            .ok_or(CircuitFailure::Unexpected("answer for a closed circuit"))?;
        if first != c.layers.is_empty() {
            return Err(CircuitFailure::Unexpected(if first {
                "CREATED after the first hop"
            } else {
                "EXTENDED before CREATED"
            }));
        }
        let hop = c
            .pending
            .take()
            .ok_or(CircuitFailure::Unexpected("hop answer without a handshake"))?;
        let keys = hop.finish(msg2).map_err(CircuitFailure::Handshake)?;
        c.layers.push(&keys).map_err(CircuitFailure::Layer)?;
        if c.built() {
            let path = c.path.iter().map(|h| h.node_id).collect();
            self.actions
                .push_back(ClientAction::Event(ClientEvent::Built {
                    circ: handle,
                    path,
                }));
            return Ok(());
        }
        // EXTEND to the next hop, addressed to the current last hop (`04-circuits.md#build`).
        let k = c.layers.len();
        let next = c.path[k];
        let (hop, msg1) = client_start(
            &next.onion_key,
            u8::try_from(k + 1).unwrap_or(u8::MAX),
            Randomness::Seeded(self.rng.array()),
        )
        .map_err(CircuitFailure::Handshake)?;
        c.pending = Some(hop);
        let _ = now;
        let msg = RelayMsg::Extend {
            node_id: next.node_id.0,
            handshake_type: HandshakeType::NOISE_NK_V1.0,
            handshake: msg1,
        };
        let last = c.last_hop();
        self.send_relay(handle, last, &msg)
    }

    fn send_relay(
        &mut self,
        handle: CircHandle,
        target: u8,
        msg: &RelayMsg,
    ) -> Result<(), CircuitFailure> {
        let payload = msg
            .encode()
            .map_err(|_| CircuitFailure::Unexpected("unencodable relay message"))?;
        self.send_payload(handle, target, &payload)
    }

    fn send_payload(
        &mut self,
        handle: CircHandle,
        target: u8,
        payload: &[u8; RELAY_PAYLOAD_LEN],
    ) -> Result<(), CircuitFailure> {
        let c = self
            .circs
            .get_mut(&handle)
            .ok_or(CircuitFailure::Unexpected("closed circuit"))?;
        let body = c
            .layers
            .seal_forward(target, payload)
            .map_err(CircuitFailure::Layer)?;
        self.actions.push_back(ClientAction::Send {
            link: c.link,
            msg: ChanMsg::Relay {
                circ_id: c.circ_id,
                body: Box::new(body),
            },
        });
        Ok(())
    }

    /// A RELAY cell arrived on `link`/`circ_id`.
    pub fn handle_relay(
        &mut self,
        now: Time,
        link: LinkId,
        circ_id: CircId,
        body: &mut [u8; BODY_LEN],
    ) {
        let Some(&handle) = self.by_link.get(&(link, circ_id)) else {
            return;
        };
        if let Err(f) = self.on_relay(now, handle, body) {
            self.fail(handle, f, true);
        }
    }

    fn on_relay(
        &mut self,
        now: Time,
        handle: CircHandle,
        body: &mut [u8; BODY_LEN],
    ) -> Result<(), CircuitFailure> {
        let c = self
            .circs
            .get_mut(&handle)
            .ok_or(CircuitFailure::Unexpected("closed circuit"))?;
        let (hop, off) = c
            .layers
            .open_backward(body)
            .map_err(CircuitFailure::Layer)?;
        let msg = RelayMsg::decode(&body[off..off + RELAY_PAYLOAD_LEN], RelayContext::AtReader)
            .map_err(CircuitFailure::Message)?;
        let last = c.last_hop();
        match msg {
            RelayMsg::Extended { handshake } => {
                if hop != last || c.pending.is_none() {
                    return Err(CircuitFailure::Unexpected("EXTENDED"));
                }
                self.on_hop_answer(now, handle, &handshake, false)
            }
            _ if !c.built() || hop != last => Err(CircuitFailure::Unexpected(
                "stream message before the circuit is built",
            )),
            RelayMsg::Connected { stream_id } => {
                let Some(s) = c.streams.get_mut(&stream_id) else {
                    // Closed before its CONNECTED came (`05-streams.md#closing`).
                    return closed(c, stream_id, "CONNECTED for a stream never begun");
                };
                if s.opened {
                    return Err(CircuitFailure::Unexpected("second CONNECTED"));
                }
                s.opened = true;
                self.actions
                    .push_back(ClientAction::Event(ClientEvent::StreamOpened {
                        stream: StreamHandle {
                            circ: handle,
                            id: stream_id,
                        },
                    }));
                self.flush(handle)
            }
            RelayMsg::Data { stream_id, data } => {
                c.recv.receive().map_err(CircuitFailure::Flow)?;
                let Some(s) = c.streams.get_mut(&stream_id) else {
                    // In flight when the stream closed: dropped, its circuit credit returned.
                    closed(c, stream_id, "DATA for a stream never begun")?;
                    let circ_sendmes = c.recv.consume(1);
                    for _ in 0..circ_sendmes {
                        self.send_relay(handle, last, &RelayMsg::Sendme { stream_id: 0 })?;
                    }
                    return Ok(());
                };
                if !s.opened {
                    return Err(CircuitFailure::Unexpected("DATA before CONNECTED"));
                }
                s.recv.receive().map_err(CircuitFailure::Flow)?;
                // Delivered to the application: the credit goes back (`05-streams.md#flow-control`).
                let stream_sendmes = s.recv.consume(1);
                let circ_sendmes = c.recv.consume(1);
                self.actions
                    .push_back(ClientAction::Event(ClientEvent::StreamData {
                        stream: StreamHandle {
                            circ: handle,
                            id: stream_id,
                        },
                        data,
                    }));
                for _ in 0..stream_sendmes {
                    self.send_relay(handle, last, &RelayMsg::Sendme { stream_id })?;
                }
                for _ in 0..circ_sendmes {
                    self.send_relay(handle, last, &RelayMsg::Sendme { stream_id: 0 })?;
                }
                Ok(())
            }
            RelayMsg::End { stream_id, reason } => {
                if c.streams.remove(&stream_id).is_none() {
                    // Both ends closed it at once: nothing more to do.
                    return closed(c, stream_id, "END for a stream never begun");
                }
                self.actions
                    .push_back(ClientAction::Event(ClientEvent::StreamEnded {
                        stream: StreamHandle {
                            circ: handle,
                            id: stream_id,
                        },
                        reason,
                    }));
                Ok(())
            }
            RelayMsg::Sendme { stream_id: 0 } => {
                c.send.sendme().map_err(CircuitFailure::Flow)?;
                self.flush(handle)
            }
            RelayMsg::Sendme { stream_id } => {
                let Some(s) = c.streams.get_mut(&stream_id) else {
                    return closed(c, stream_id, "SENDME for a stream never begun");
                };
                s.send.sendme().map_err(CircuitFailure::Flow)?;
                self.flush(handle)
            }
            _ => Err(CircuitFailure::Unexpected("relay message")),
        }
    }

    /// Send queued stream data while the windows allow, round-robin over streams.
    fn flush(&mut self, handle: CircHandle) -> Result<(), CircuitFailure> {
        loop {
            let Some(c) = self.circs.get_mut(&handle) else {
                return Ok(());
            };
            let target = c.last_hop();
            let mut sent_any = false;
            let ids: Vec<u16> = c.streams.keys().copied().collect();
            for id in ids {
                let Some(c) = self.circs.get_mut(&handle) else {
                    return Ok(());
                };
                if c.send.available() == 0 {
                    return Ok(());
                }
                let Some(s) = c.streams.get_mut(&id) else {
                    continue;
                };
                if !s.opened || s.send.available() == 0 {
                    continue;
                }
                let Some(chunk) = s.outq.pop_front() else {
                    continue;
                };
                s.queued -= chunk.len();
                s.send.take();
                c.send.take();
                let payload = RelayMsg::encode_data(id, &chunk)
                    .ok_or(CircuitFailure::Unexpected("oversized chunk"))?;
                self.send_payload(handle, target, &payload)?;
                sent_any = true;
            }
            if !sent_any {
                return Ok(());
            }
        }
    }

    /// Open a stream to `service` at the last hop (`05-streams.md#begin`).
    pub fn open_stream(
        &mut self,
        circ: CircHandle,
        service: &[u8],
    ) -> Result<StreamHandle, CircuitError> {
        let c = self.circs.get_mut(&circ).ok_or(CircuitError::NoCircuit)?;
        if !c.built() {
            return Err(CircuitError::NotBuilt);
        }
        let id = c.next_stream;
        if id == u16::MAX {
            return Err(CircuitError::StreamsExhausted);
        }
        c.next_stream += 1;
        c.streams.insert(
            id,
            ClientStream {
                opened: false,
                send: SendWindow::new(STREAM_WINDOW, STREAM_INCREMENT),
                recv: RecvWindow::new(STREAM_WINDOW, STREAM_INCREMENT),
                outq: VecDeque::new(),
                queued: 0,
            },
        );
        let last = c.last_hop();
        let r = self.send_relay(
            circ,
            last,
            &RelayMsg::Begin {
                stream_id: id,
                service: service.to_vec(),
            },
        );
        if let Err(f) = r {
            self.fail(circ, f, true);
            return Err(CircuitError::NoCircuit);
        }
        Ok(StreamHandle { circ, id })
    }

    /// Queue `data` on a stream; it is sent as the windows allow.
    pub fn send(&mut self, stream: StreamHandle, data: &[u8]) -> Result<(), CircuitError> {
        let c = self
            .circs
            .get_mut(&stream.circ)
            .ok_or(CircuitError::NoCircuit)?;
        let s = c
            .streams
            .get_mut(&stream.id)
            .ok_or(CircuitError::NoStream)?;
        for chunk in data.chunks(MAX_DATA) {
            s.outq.push_back(chunk.to_vec());
            s.queued += chunk.len();
        }
        if let Err(f) = self.flush(stream.circ) {
            self.fail(stream.circ, f, true);
        }
        Ok(())
    }

    /// Bytes queued on a stream and not yet sent (for back-pressure to the data source).
    pub fn queued(&self, stream: StreamHandle) -> usize {
        self.circs
            .get(&stream.circ)
            .and_then(|c| c.streams.get(&stream.id))
            .map_or(0, |s| s.queued)
    }

    /// Close a stream (sends END).
    pub fn close_stream(&mut self, stream: StreamHandle) -> Result<(), CircuitError> {
        let c = self
            .circs
            .get_mut(&stream.circ)
            .ok_or(CircuitError::NoCircuit)?;
        c.streams.remove(&stream.id).ok_or(CircuitError::NoStream)?;
        let last = c.last_hop();
        if let Err(f) = self.send_relay(
            stream.circ,
            last,
            &RelayMsg::End {
                stream_id: stream.id,
                reason: 0,
            },
        ) {
            self.fail(stream.circ, f, true);
        }
        Ok(())
    }

    /// Close a circuit (sends DESTROY).
    pub fn close(&mut self, circ: CircHandle) {
        self.fail(
            circ,
            CircuitFailure::Destroyed(DestroyReason::FINISHED),
            true,
        );
    }

    /// DESTROY arrived for `link`/`circ_id`.
    pub fn handle_destroy(&mut self, link: LinkId, circ_id: CircId, reason: DestroyReason) {
        if let Some(&h) = self.by_link.get(&(link, circ_id)) {
            self.fail(h, CircuitFailure::Destroyed(reason), false);
        }
    }

    /// The link closed: every circuit on it is gone.
    pub fn link_closed(&mut self, link: LinkId) {
        let gone: Vec<CircHandle> = self
            .by_link
            .iter()
            .filter(|((l, _), _)| *l == link)
            .map(|(_, h)| *h)
            .collect();
        for h in gone {
            self.fail(h, CircuitFailure::LinkClosed, false);
        }
    }

    fn fail(&mut self, handle: CircHandle, failure: CircuitFailure, send_destroy: bool) {
        let Some(c) = self.circs.remove(&handle) else {
            return;
        };
        self.by_link.remove(&(c.link, c.circ_id));
        if send_destroy {
            let reason = match failure {
                CircuitFailure::Destroyed(r) => r,
                CircuitFailure::Timeout => DestroyReason::TIMEOUT,
                _ => DestroyReason::PROTOCOL,
            };
            self.actions.push_back(ClientAction::Send {
                link: c.link,
                msg: ChanMsg::Destroy {
                    circ_id: c.circ_id,
                    reason,
                },
            });
        }
        let event = if c.built() {
            ClientEvent::Closed {
                circ: handle,
                failure,
            }
        } else {
            ClientEvent::Failed {
                circ: handle,
                failure,
                hop: c.path.get(c.layers.len()).map(|h| h.node_id),
            }
        };
        self.actions.push_back(ClientAction::Event(event));
    }

    /// The earliest build deadline (possibly of a circuit built since: one early wake-up).
    pub fn poll_timeout(&self) -> Option<Time> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// Fail builds past their deadline (`04-circuits.md#build`).
    pub fn handle_timeout(&mut self, now: Time) {
        while let Some(&(t, h)) = self.deadlines.first() {
            if t > now {
                break;
            }
            self.deadlines.pop_first();
            if self
                .circs
                .get(&h)
                .is_some_and(|c| !c.built() && c.deadline <= now)
            {
                self.fail(h, CircuitFailure::Timeout, true);
            }
        }
    }
}
