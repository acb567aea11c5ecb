//! Services at the last hop (`protocol-spec/05-streams.md#services`).
//!
//! A circuit's last hop answers BEGIN for the services it runs: `echo` sends every byte back
//! and `discard` drops every byte (the diagnostics the simulator, the loopback tests and
//! `umbra bench` measure circuits with), `dht` carries content requests. Flow control is end to end: the exit returns credit (SENDME) only
//! after it has sent the echoed bytes on, so a reader that stops reading stops the echo and
//! nothing is buffered without bound. Not in this module: layers or cells.

use std::collections::{BTreeMap, VecDeque};

use crate::flow::{
    CIRC_INCREMENT, CIRC_WINDOW, FlowError, RecvWindow, STREAM_INCREMENT, STREAM_WINDOW, SendWindow,
};
use crate::wire::relay_msg::RelayMsg;

/// The echo service's name.
pub const ECHO: &[u8] = b"echo";
/// The discard service's name: reads and drops every byte, returning credit at once (the
/// one-direction throughput check, `05-streams.md#services`).
pub const DISCARD: &[u8] = b"discard";
/// The content service's name: DHT lookups and stores for the reader (`06-dht.md#exit-requests`).
pub const DHT: &[u8] = b"dht";

/// A service at the last hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Send every byte back.
    Echo,
    /// Drop every byte.
    Discard,
    /// Content requests, answered by the node.
    Dht,
}

/// Bytes a circuit's service streams may have queued towards the reader together
/// (`09-relay.md#limits`): two whole replies of the largest record.
pub const MAX_SERVICE_QUEUE: usize = 2 * crate::wire::dht_msg::MAX_MESSAGE;

/// Streams open at once on one circuit (`09-relay.md#limits`); a BEGIN beyond is answered
/// with END reason [`end_reason::LIMIT`].
pub const MAX_STREAMS_PER_CIRCUIT: usize = 16;

/// END reasons (`05-streams.md#end-reasons`).
pub mod end_reason {
    /// Normal close.
    pub const DONE: u8 = 0;
    /// The service does not exist here.
    pub const NO_SERVICE: u8 = 1;
    /// Too many streams on this circuit.
    pub const LIMIT: u8 = 2;
}

/// Why the exit refused a message; the circuit is torn down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExitError {
    /// Flow control was violated.
    #[error("flow control: {0}")]
    Flow(#[from] FlowError),
    /// A message for a stream that does not exist, or BEGIN for one that does.
    #[error("stream state violation: {0}")]
    Stream(&'static str),
    /// A service reply would pass the circuit's queue limit (`09-relay.md#limits`); the
    /// reply is not queued, the circuit stays.
    #[error("service queue full")]
    QueueFull,
}

impl crate::error::HasKind for ExitError {
    fn kind(&self) -> crate::error::ErrorKind {
        match self {
            ExitError::Flow(e) => crate::error::HasKind::kind(e),
            ExitError::Stream(_) => crate::error::ErrorKind::PeerProtocolViolation,
            ExitError::QueueFull => crate::error::ErrorKind::ResourceLimit,
        }
    }
}

#[derive(Debug)]
struct ExitStream {
    service: Service,
    send: SendWindow,
    recv: RecvWindow,
    pending: VecDeque<Vec<u8>>,
}

/// The exit side of one circuit's streams.
#[derive(Debug)]
pub struct ExitCirc {
    send: SendWindow,
    recv: RecvWindow,
    streams: BTreeMap<u16, ExitStream>,
    /// The highest stream id begun: ids increase and are never reused, so one at or below
    /// it that is not open is closed (`05-streams.md#closing`).
    highest: u16,
    /// Bytes in every stream's `pending`.
    queued: usize,
}

impl Default for ExitCirc {
    fn default() -> Self {
        ExitCirc {
            send: SendWindow::new(CIRC_WINDOW, CIRC_INCREMENT),
            recv: RecvWindow::new(CIRC_WINDOW, CIRC_INCREMENT),
            streams: BTreeMap::new(),
            highest: 0,
            queued: 0,
        }
    }
}

impl ExitCirc {
    /// Cells of echo data waiting for window.
    pub fn pending_cells(&self) -> usize {
        self.streams.values().map(|s| s.pending.len()).sum()
    }

    /// Bytes queued towards the reader on all streams.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Handle a stream message; the replies (to seal backward, in order) go into `out`, and
    /// data for node-run services into `delivered` as (stream, bytes).
    pub fn handle(
        &mut self,
        msg: RelayMsg,
        out: &mut Vec<RelayMsg>,
        delivered: &mut Vec<(u16, Vec<u8>)>,
    ) -> Result<(), ExitError> {
        match msg {
            RelayMsg::Begin { stream_id, service } => {
                if stream_id <= self.highest {
                    return Err(ExitError::Stream(
                        "BEGIN for stream 0 or an id not above every id begun",
                    ));
                }
                self.highest = stream_id;
                if self.streams.len() >= MAX_STREAMS_PER_CIRCUIT {
                    out.push(RelayMsg::End {
                        stream_id,
                        reason: end_reason::LIMIT,
                    });
                    return Ok(());
                }
                let service = match &service[..] {
                    ECHO => Service::Echo,
                    DISCARD => Service::Discard,
                    DHT => Service::Dht,
                    _ => {
                        out.push(RelayMsg::End {
                            stream_id,
                            reason: end_reason::NO_SERVICE,
                        });
                        return Ok(());
                    }
                };
                self.streams.insert(
                    stream_id,
                    ExitStream {
                        service,
                        send: SendWindow::new(STREAM_WINDOW, STREAM_INCREMENT),
                        recv: RecvWindow::new(STREAM_WINDOW, STREAM_INCREMENT),
                        pending: VecDeque::new(),
                    },
                );
                out.push(RelayMsg::Connected { stream_id });
            }
            RelayMsg::Data { stream_id, data } => {
                self.recv.receive()?;
                let Some(s) = self.streams.get_mut(&stream_id) else {
                    // In flight when the stream closed: dropped, its circuit credit returned.
                    self.closed(stream_id, "DATA for a stream never begun")?;
                    for _ in 0..self.recv.consume(1) {
                        out.push(RelayMsg::Sendme { stream_id: 0 });
                    }
                    return Ok(());
                };
                s.recv.receive()?;
                match s.service {
                    Service::Echo => {
                        self.queued += data.len();
                        s.pending.push_back(data);
                    }
                    Service::Discard | Service::Dht => {
                        // Consumed at once (dropped, or taken by the node): credit now.
                        for _ in 0..s.recv.consume(1) {
                            out.push(RelayMsg::Sendme { stream_id });
                        }
                        for _ in 0..self.recv.consume(1) {
                            out.push(RelayMsg::Sendme { stream_id: 0 });
                        }
                        if s.service == Service::Dht {
                            delivered.push((stream_id, data));
                        }
                    }
                }
            }
            // Not answered: END closes both directions at once.
            RelayMsg::End { stream_id, .. } => match self.streams.remove(&stream_id) {
                Some(s) => self.queued -= s.pending.iter().map(Vec::len).sum::<usize>(),
                None => self.closed(stream_id, "END for a stream never begun")?,
            },
            RelayMsg::Sendme { stream_id: 0 } => self.send.sendme()?,
            RelayMsg::Sendme { stream_id } => match self.streams.get_mut(&stream_id) {
                Some(s) => s.send.sendme()?,
                None => self.closed(stream_id, "SENDME for a stream never begun")?,
            },
            _ => return Err(ExitError::Stream("not a stream message")),
        }
        self.flush(out);
        Ok(())
    }

    /// A message for `stream_id`, which is not open: fine if it was begun (and is closed, the
    /// message was in flight), a violation if it never was.
    fn closed(&self, stream_id: u16, never: &'static str) -> Result<(), ExitError> {
        if stream_id != 0 && stream_id <= self.highest {
            Ok(())
        } else {
            Err(ExitError::Stream(never))
        }
    }

    /// Queue bytes a node-run service sends on `stream_id`; refused past the circuit's
    /// queue limit.
    pub fn service_send(
        &mut self,
        stream_id: u16,
        data: &[u8],
        out: &mut Vec<RelayMsg>,
    ) -> Result<(), ExitError> {
        let s = self
            .streams
            .get_mut(&stream_id)
            .ok_or(ExitError::Stream("reply on a closed stream"))?;
        if self.queued + data.len() > MAX_SERVICE_QUEUE {
            return Err(ExitError::QueueFull);
        }
        for chunk in data.chunks(crate::wire::relay_msg::MAX_DATA) {
            s.pending.push_back(chunk.to_vec());
        }
        self.queued += data.len();
        self.flush(out);
        Ok(())
    }

    /// Send what the windows allow; for echo, return credit for what went out.
    fn flush(&mut self, out: &mut Vec<RelayMsg>) {
        let mut progress = true;
        while progress && self.send.available() > 0 {
            progress = false;
            for (&stream_id, s) in self.streams.iter_mut() {
                if self.send.available() == 0 {
                    break;
                }
                if s.send.available() == 0 {
                    continue;
                }
                let Some(data) = s.pending.pop_front() else {
                    continue;
                };
                self.queued -= data.len();
                s.send.take();
                self.send.take();
                out.push(RelayMsg::Data { stream_id, data });
                if s.service == Service::Echo {
                    for _ in 0..s.recv.consume(1) {
                        out.push(RelayMsg::Sendme { stream_id });
                    }
                    for _ in 0..self.recv.consume(1) {
                        out.push(RelayMsg::Sendme { stream_id: 0 });
                    }
                }
                progress = true;
            }
        }
    }
}
