//! One way for apps to reach an exit service (`protocol-spec/05-streams.md#services`): build
//! a circuit, open a stream to a named service at its last hop, hand the app what comes
//! back, and when the circuit or stream is lost start again on a fresh circuit, within a
//! budget of attempts. Every app that talks to an exit (echo, publish, fetch, the gateway)
//! uses it, so they all retry the same way.
//!
//! Not in this module: what is said on the stream (the app's protocol), path choice and
//! circuit building (`node`).

use crate::ids::{CircHandle, StreamHandle};
use crate::node::{Node, NodeEvent};
use crate::time::Time;

/// What a session tells its app about one node event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The circuit is built (through `path`, guard first); the stream is being opened.
    Built {
        /// The relays of the circuit.
        path: Vec<crate::crypto::keys::NodeId>,
    },
    /// The stream is open: start (or start over) the protocol on it.
    Opened,
    /// Bytes from the service.
    Data(Vec<u8>),
    /// The circuit or stream was lost; a fresh circuit is being built (attempt `attempt`).
    Retrying {
        /// Why the last attempt ended.
        why: String,
        /// The attempt now starting (2 for the first retry).
        attempt: u32,
    },
    /// The last attempt was lost too: the session is over.
    GaveUp {
        /// Why the last attempt ended.
        why: String,
    },
}

/// A circuit and a stream to one service, rebuilt when lost.
#[derive(Debug)]
pub struct ServiceSession {
    service: Vec<u8>,
    max_attempts: u32,
    attempts: u32,
    circ: Option<CircHandle>,
    stream: Option<StreamHandle>,
    open: bool,
    over: bool,
    /// Relays its circuits must be independent of (`07-sites.md#freshness`).
    unlike: Vec<crate::crypto::keys::NodeId>,
}

impl ServiceSession {
    /// A session to `service` that may use `max_attempts` circuits (at least one).
    pub fn new(service: &[u8], max_attempts: u32) -> ServiceSession {
        ServiceSession {
            service: service.to_vec(),
            max_attempts: max_attempts.max(1),
            attempts: 0,
            circ: None,
            stream: None,
            open: false,
            over: false,
            unlike: Vec::new(),
        }
    }

    /// Build every circuit unlike `relays`: none of its relays is one of them or shares a
    /// /16 network or a family with one ([`Node::build_circuit_unlike`]).
    pub fn unlike(mut self, relays: Vec<crate::crypto::keys::NodeId>) -> ServiceSession {
        self.unlike = relays;
        self
    }

    fn build(&self, node: &mut Node, now: Time) -> CircHandle {
        if self.unlike.is_empty() {
            node.build_circuit(now)
        } else {
            node.build_circuit_unlike(now, &self.unlike)
        }
    }

    /// Build the first circuit. After [`ServiceSession::close`] or after the session gave up,
    /// this starts it again with a whole budget.
    pub fn start(&mut self, node: &mut Node, now: Time) {
        self.close(node, now);
        self.over = false;
        self.attempts = 1;
        self.circ = Some(self.build(node, now));
    }

    /// Close the circuit without ending the session: it is idle until started again (the
    /// gateway closes circuits of sites nobody reads).
    pub fn close(&mut self, node: &mut Node, now: Time) {
        if let Some(c) = self.circ.take() {
            node.close_circuit(now, c);
        }
        self.stream = None;
        self.open = false;
    }

    /// The current circuit served: the budget counts failures in a row from here on, so a
    /// long-lived session (the gateway's per-site one) is not worn out by rare losses.
    pub fn succeeded(&mut self) {
        self.attempts = 1;
    }

    /// Whether a circuit is being built or used.
    pub fn is_active(&self) -> bool {
        self.circ.is_some() && !self.over
    }

    /// The stream, once asked for.
    pub fn stream(&self) -> Option<StreamHandle> {
        self.stream
    }

    /// The circuit being used.
    pub fn circuit(&self) -> Option<CircHandle> {
        self.circ
    }

    /// Whether the stream is open now.
    pub fn is_open(&self) -> bool {
        self.open && !self.over
    }

    /// Circuits used so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Whether `event` is about this session's circuit or stream (an app sharing a node
    /// with others hands it only its own events).
    pub fn concerns(&self, event: &NodeEvent) -> bool {
        match event {
            NodeEvent::Built { circ, .. }
            | NodeEvent::Failed { circ, .. }
            | NodeEvent::Closed { circ, .. } => Some(*circ) == self.circ,
            NodeEvent::StreamOpened { stream }
            | NodeEvent::StreamData { stream, .. }
            | NodeEvent::StreamEnded { stream, .. } => Some(*stream) == self.stream,
        }
    }

    /// What `event` means for this session (`None`: not its business).
    pub fn on_event(
        &mut self,
        node: &mut Node,
        now: Time,
        event: NodeEvent,
    ) -> Option<SessionEvent> {
        if self.over {
            return None;
        }
        match event {
            NodeEvent::Built { circ, path } if Some(circ) == self.circ => {
                match node.open_stream(now, circ, &self.service) {
                    Ok(s) => {
                        self.stream = Some(s);
                        Some(SessionEvent::Built { path })
                    }
                    Err(e) => Some(self.lost(node, now, e.to_string())),
                }
            }
            NodeEvent::Failed { circ, failure, .. } | NodeEvent::Closed { circ, failure }
                if Some(circ) == self.circ =>
            {
                Some(self.lost(node, now, failure.to_string()))
            }
            NodeEvent::StreamOpened { stream } if Some(stream) == self.stream => {
                self.open = true;
                Some(SessionEvent::Opened)
            }
            NodeEvent::StreamData { stream, data } if Some(stream) == self.stream => {
                Some(SessionEvent::Data(data))
            }
            NodeEvent::StreamEnded { stream, reason } if Some(stream) == self.stream => {
                Some(self.lost(node, now, format!("stream ended (reason {reason})")))
            }
            _ => None,
        }
    }

    /// Send `bytes` on the open stream; an error (the stream is gone) ends this attempt.
    pub fn send(&mut self, node: &mut Node, now: Time, bytes: &[u8]) -> Option<SessionEvent> {
        let stream = self.stream.filter(|_| self.is_open())?;
        if bytes.is_empty() {
            return None;
        }
        match node.stream_send(now, stream, bytes) {
            Ok(()) => None,
            Err(e) => Some(self.lost(node, now, e.to_string())),
        }
    }

    /// Bytes queued in the node for the stream (back-pressure).
    pub fn queued(&self, node: &Node) -> usize {
        self.stream.map_or(0, |s| node.stream_queued(s))
    }

    /// The app's protocol failed on this circuit (a refusal, a forged record): start over
    /// on a fresh one if the budget allows.
    pub fn retry(&mut self, node: &mut Node, now: Time, why: String) -> SessionEvent {
        self.lost(node, now, why)
    }

    /// The app is done: close the circuit; the session hears nothing more.
    pub fn finish(&mut self, node: &mut Node, now: Time) {
        self.close(node, now);
        self.over = true;
    }

    fn lost(&mut self, node: &mut Node, now: Time, why: String) -> SessionEvent {
        self.close(node, now);
        if self.attempts >= self.max_attempts {
            self.over = true;
            return SessionEvent::GaveUp { why };
        }
        self.attempts += 1;
        self.circ = Some(self.build(node, now));
        SessionEvent::Retrying {
            why,
            attempt: self.attempts,
        }
    }
}

/// An app built on one [`ServiceSession`], reacting to what it reports.
pub trait OnSession {
    /// Its session.
    fn session(&mut self) -> &mut ServiceSession;
    /// React to what the session reports.
    fn on_session(&mut self, node: &mut Node, now: Time, ev: SessionEvent);
    /// Whether the app is over (it hears nothing more).
    fn is_over(&self) -> bool;
}

/// Hand a node event to `app`'s session and `app` what it makes of it.
pub fn feed<A: OnSession>(app: &mut A, node: &mut Node, now: Time, event: NodeEvent) {
    if app.is_over() {
        return;
    }
    if let Some(ev) = app.session().on_event(node, now, event) {
        app.on_session(node, now, ev);
    }
}

/// Send `bytes` on `app`'s stream; a lost stream is reported to `app`.
pub fn send<A: OnSession>(app: &mut A, node: &mut Node, now: Time, bytes: &[u8]) {
    if let Some(ev) = app.session().send(node, now, bytes) {
        app.on_session(node, now, ev);
    }
}
