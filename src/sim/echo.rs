//! An echo client for simulated readers: build a circuit, open an `echo` stream, send a
//! payload, check every byte that comes back. Used by the scenarios in `tests/`.

use crate::crypto::keys::NodeId;
use crate::ids::{CircHandle, StreamHandle};
use crate::node::NodeEvent;
use crate::time::Time;

use super::World;

/// Where an echo job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for the circuit.
    Building,
    /// Waiting for CONNECTED.
    Opening,
    /// Sent; receiving the echo.
    Echoing,
    /// Every byte came back intact.
    Done,
    /// The circuit failed or closed.
    Failed(String),
    /// A byte came back different: must never happen.
    Corrupted,
}

/// One echo exchange by one reader.
#[derive(Debug, Clone)]
pub struct EchoJob {
    /// The reader's node index.
    pub reader: usize,
    payload: Vec<u8>,
    /// The circuit.
    pub circ: CircHandle,
    stream: Option<StreamHandle>,
    received: usize,
    /// The state.
    pub state: JobState,
    cursor: usize,
    /// The circuit's relays, once built.
    pub path: Vec<NodeId>,
    /// When it started.
    pub started: Time,
    /// When the circuit was built.
    pub built_at: Option<Time>,
    /// When it finished.
    pub finished_at: Option<Time>,
}

impl EchoJob {
    /// Start: ask `reader` for a circuit.
    pub fn start(world: &mut World, reader: usize, payload: Vec<u8>) -> EchoJob {
        let now = world.now();
        let cursor = world.nodes()[reader].events.len();
        let circ = world.node_mut(reader).build_circuit(now);
        world.after_command(reader);
        EchoJob {
            reader,
            payload,
            circ,
            stream: None,
            received: 0,
            state: JobState::Building,
            cursor,
            path: Vec::new(),
            started: now,
            built_at: None,
            finished_at: None,
        }
    }

    fn over(&self) -> bool {
        matches!(
            self.state,
            JobState::Done | JobState::Failed(_) | JobState::Corrupted
        )
    }

    fn react(&mut self, world: &mut World) {
        let now = world.now();
        let events: Vec<NodeEvent> = world.nodes()[self.reader].events[self.cursor..].to_vec();
        self.cursor += events.len();
        for ev in events {
            if self.over() {
                return;
            }
            match ev {
                NodeEvent::Built { circ, path } if circ == self.circ => {
                    self.path = path;
                    self.built_at = Some(now);
                    match world.node_mut(self.reader).open_stream(now, circ, b"echo") {
                        Ok(s) => {
                            self.stream = Some(s);
                            self.state = JobState::Opening;
                        }
                        Err(e) => self.state = JobState::Failed(e.to_string()),
                    }
                    world.after_command(self.reader);
                }
                NodeEvent::Failed { circ, failure, .. } | NodeEvent::Closed { circ, failure }
                    if circ == self.circ =>
                {
                    self.state = JobState::Failed(failure.to_string());
                    self.finished_at = Some(now);
                }
                NodeEvent::StreamOpened { stream } if Some(stream) == self.stream => {
                    self.state = JobState::Echoing;
                    let r = world
                        .node_mut(self.reader)
                        .stream_send(now, stream, &self.payload);
                    world.after_command(self.reader);
                    if let Err(e) = r {
                        self.state = JobState::Failed(e.to_string());
                    }
                }
                NodeEvent::StreamData { stream, data } if Some(stream) == self.stream => {
                    let end = self.received + data.len();
                    if self.payload.get(self.received..end) != Some(&data[..]) {
                        self.state = JobState::Corrupted;
                        return;
                    }
                    self.received = end;
                    if self.received == self.payload.len() {
                        self.state = JobState::Done;
                        self.finished_at = Some(now);
                        world.node_mut(self.reader).close_circuit(now, self.circ);
                        world.after_command(self.reader);
                    }
                }
                NodeEvent::StreamEnded { stream, reason } if Some(stream) == self.stream => {
                    self.state = JobState::Failed(format!("stream ended ({reason})"));
                }
                _ => {}
            }
        }
    }
}

impl super::Job for EchoJob {
    fn poll(&mut self, world: &mut World) {
        self.react(world);
    }

    fn is_over(&self) -> bool {
        self.over()
    }
}
