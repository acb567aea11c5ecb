//! The echo app (`protocol-spec/05-streams.md#services`, the `echo` service): build a
//! circuit, open an `echo` stream, send a payload as back-pressure allows and check every
//! byte that comes back. `umbra probe`, the demo's self-check, the bench and the
//! simulator's scenarios all run this one app.
//!
//! Not in this module: printing results (the CLI reads them), the driver.

use super::App;
use super::session::{ServiceSession, SessionEvent};
use crate::crypto::keys::NodeId;
use crate::node::{Node, NodeEvent};
use crate::time::Time;

/// Bytes the app keeps queued in the node at most.
pub const IN_FLIGHT: usize = 512 * 1024;
/// Bytes handed to the node at once.
const CHUNK: u64 = 64 * 1024;

/// The byte at offset `i` of the echo payload.
pub fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 9)) as u8
}

/// Where an echo is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EchoState {
    /// Waiting for the circuit.
    Building,
    /// Waiting for the stream to open.
    Opening,
    /// Sending and receiving.
    Echoing,
    /// Every byte came back intact.
    Done,
    /// The circuit or stream failed (why).
    Failed(String),
    /// A byte came back different (its offset): must never happen.
    Corrupted(u64),
}

/// One echo of `total` bytes over one circuit.
#[derive(Debug)]
pub struct Echo {
    total: u64,
    session: ServiceSession,
    sent: u64,
    /// Bytes that came back intact.
    pub received: u64,
    /// Where it is.
    pub state: EchoState,
    /// The circuit's relays, guard first, once built.
    pub path: Vec<NodeId>,
    /// When it started.
    pub started: Time,
    /// When the circuit was built.
    pub built_at: Option<Time>,
    /// When the stream opened.
    pub opened_at: Option<Time>,
    /// When it finished, either way.
    pub finished_at: Option<Time>,
}

impl Echo {
    /// Echo `total` bytes of [`pattern`] on one circuit.
    pub fn new(total: u64) -> Echo {
        Echo {
            total,
            session: ServiceSession::new(b"echo", 1),
            sent: 0,
            received: 0,
            state: EchoState::Building,
            path: Vec::new(),
            started: Time::ZERO,
            built_at: None,
            opened_at: None,
            finished_at: None,
        }
    }

    /// Bytes to echo.
    pub fn total(&self) -> u64 {
        self.total
    }

    fn over(&self) -> bool {
        matches!(
            self.state,
            EchoState::Done | EchoState::Failed(_) | EchoState::Corrupted(_)
        )
    }

    fn end(&mut self, node: &mut Node, now: Time, state: EchoState) {
        self.state = state;
        self.finished_at = Some(now);
        self.session.finish(node, now);
    }
}

impl App for Echo {
    fn start(&mut self, node: &mut Node, now: Time) {
        self.started = now;
        self.session.start(node, now);
    }

    fn on_event(&mut self, node: &mut Node, now: Time, event: NodeEvent) {
        if self.over() {
            return;
        }
        match self.session.on_event(node, now, event) {
            Some(SessionEvent::Built { path }) => {
                self.path = path;
                self.built_at = Some(now);
                self.state = EchoState::Opening;
            }
            Some(SessionEvent::Opened) => {
                self.opened_at = Some(now);
                self.state = EchoState::Echoing;
                self.tick(node, now);
            }
            Some(SessionEvent::Data(data)) => {
                let at = self.received;
                if let Some(k) = (0..data.len()).find(|&k| data[k] != pattern(at + k as u64)) {
                    self.end(node, now, EchoState::Corrupted(at + k as u64));
                    return;
                }
                self.received += data.len() as u64;
                if self.received >= self.total {
                    self.end(node, now, EchoState::Done);
                }
            }
            Some(SessionEvent::Retrying { why, .. } | SessionEvent::GaveUp { why }) => {
                self.end(node, now, EchoState::Failed(why));
            }
            None => {}
        }
    }

    fn tick(&mut self, node: &mut Node, now: Time) {
        if self.state != EchoState::Echoing {
            return;
        }
        while self.sent < self.total && self.session.queued(node) < IN_FLIGHT {
            let n = (self.total - self.sent).min(CHUNK);
            let chunk: Vec<u8> = (self.sent..self.sent + n).map(pattern).collect();
            if let Some(SessionEvent::GaveUp { why } | SessionEvent::Retrying { why, .. }) =
                self.session.send(node, now, &chunk)
            {
                self.end(node, now, EchoState::Failed(why));
                return;
            }
            self.sent += n;
        }
    }

    fn finished(&self) -> Option<i32> {
        match self.state {
            EchoState::Done => Some(0),
            EchoState::Failed(_) | EchoState::Corrupted(_) => Some(1),
            _ => None,
        }
    }
}
