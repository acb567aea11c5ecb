//! Simulated readers publishing and fetching sites through circuits and the exits' `dht`
//! service (`protocol-spec/07-sites.md#publishing`). A job that loses its circuit starts
//! over on a new one, up to [`JOB_ATTEMPTS`] times.

use crate::ids::{CircHandle, StreamHandle};
use crate::node::NodeEvent;
use crate::site::address::SiteAddress;
use crate::site::transfer::{Fetcher, Publisher};
use crate::site::{Built, SiteTracker};
use crate::time::Time;

use super::World;

/// Circuits a job may use.
pub const JOB_ATTEMPTS: u32 = 4;

/// What a job does.
#[derive(Debug)]
pub enum Work {
    /// Publish a built site.
    Publish(Box<Built>),
    /// Fetch a site (every file).
    Fetch(SiteAddress),
}

#[derive(Debug)]
enum Proto {
    Publish(Box<Publisher>),
    Fetch(Box<Fetcher>),
}

/// Where a site job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteJobState {
    /// Building a circuit or opening the stream.
    Connecting,
    /// Talking to the exit.
    Running,
    /// Finished.
    Done,
    /// Gave up; why.
    Failed(String),
}

/// A publish or fetch by one simulated reader.
#[derive(Debug)]
pub struct SiteJob {
    /// The reader's node index.
    pub reader: usize,
    work: Work,
    proto: Option<Proto>,
    circ: CircHandle,
    stream: Option<StreamHandle>,
    cursor: usize,
    attempts: u32,
    /// The state.
    pub state: SiteJobState,
    /// When it started.
    pub started: Time,
    /// When it finished.
    pub finished: Option<Time>,
    /// For fetches: the files, verified.
    pub files: Vec<(String, Vec<u8>)>,
    tracker: SiteTracker,
    /// The last failure that caused a retry.
    pub last_error: Option<String>,
}

impl SiteJob {
    /// Start `work` on `reader`.
    pub fn start(world: &mut World, reader: usize, work: Work) -> SiteJob {
        let now = world.now();
        let cursor = world.nodes()[reader].events.len();
        let circ = world.node_mut(reader).build_circuit(now);
        world.after_command(reader);
        SiteJob {
            reader,
            work,
            proto: None,
            circ,
            stream: None,
            cursor,
            attempts: 1,
            state: SiteJobState::Connecting,
            started: now,
            finished: None,
            files: Vec::new(),
            tracker: SiteTracker::new(),
            last_error: None,
        }
    }

    fn over(&self) -> bool {
        matches!(self.state, SiteJobState::Done | SiteJobState::Failed(_))
    }

    fn retry(&mut self, world: &mut World, why: String) {
        self.last_error = Some(why.clone());
        if self.attempts >= JOB_ATTEMPTS {
            self.state = SiteJobState::Failed(why);
            self.finished = Some(world.now());
            return;
        }
        self.attempts += 1;
        let now = world.now();
        world.node_mut(self.reader).close_circuit(now, self.circ);
        self.circ = world.node_mut(self.reader).build_circuit(now);
        world.after_command(self.reader);
        self.stream = None;
        self.proto = None;
        self.state = SiteJobState::Connecting;
    }

    fn pump(&mut self, world: &mut World) {
        let (Some(stream), Some(proto)) = (self.stream, self.proto.as_mut()) else {
            return;
        };
        let bytes = match proto {
            Proto::Publish(p) => p.poll_send(),
            Proto::Fetch(f) => f.poll_send(),
        };
        if !bytes.is_empty() {
            let now = world.now();
            let _ = world.node_mut(self.reader).stream_send(now, stream, &bytes);
            world.after_command(self.reader);
        }
    }

    fn react(&mut self, world: &mut World) {
        let events: Vec<NodeEvent> = world.nodes()[self.reader].events[self.cursor..].to_vec();
        self.cursor += events.len();
        for ev in events {
            if self.over() {
                return;
            }
            let now = world.now();
            match ev {
                NodeEvent::Built { circ, .. } if circ == self.circ => {
                    match world.node_mut(self.reader).open_stream(now, circ, b"dht") {
                        Ok(s) => self.stream = Some(s),
                        Err(e) => self.retry(world, e.to_string()),
                    }
                    world.after_command(self.reader);
                }
                NodeEvent::Failed { circ, failure, .. } | NodeEvent::Closed { circ, failure }
                    if circ == self.circ =>
                {
                    self.retry(world, failure.to_string());
                }
                NodeEvent::StreamOpened { stream } if Some(stream) == self.stream => {
                    self.state = SiteJobState::Running;
                    self.proto = Some(match &self.work {
                        Work::Publish(b) => Proto::Publish(Box::new(Publisher::new(b))),
                        Work::Fetch(site) => Proto::Fetch(Box::new(Fetcher::new(
                            *site,
                            None,
                            world.nodes()[self.reader].node.wall(now),
                        ))),
                    });
                    self.pump(world);
                }
                NodeEvent::StreamData { stream, data } if Some(stream) == self.stream => {
                    let tracker = &mut self.tracker;
                    let outcome = match self.proto.as_mut() {
                        Some(Proto::Publish(p)) => {
                            p.on_data(&data);
                            p.result().map(|r| r.clone().map(|()| Vec::new()))
                        }
                        Some(Proto::Fetch(f)) => {
                            f.on_data(&data, tracker);
                            f.take_result()
                                .map(|r| r.and_then(|files| f.contents(&files)))
                        }
                        None => None,
                    };
                    match outcome {
                        Some(Ok(files)) => {
                            self.files = files;
                            self.state = SiteJobState::Done;
                            self.finished = Some(now);
                            world.node_mut(self.reader).close_circuit(now, self.circ);
                            world.after_command(self.reader);
                        }
                        Some(Err(e)) => self.retry(world, e.to_string()),
                        None => self.pump(world),
                    }
                }
                NodeEvent::StreamEnded { stream, reason } if Some(stream) == self.stream => {
                    self.retry(world, format!("stream ended ({reason})"));
                }
                _ => {}
            }
        }
    }
}

impl super::Job for SiteJob {
    fn poll(&mut self, world: &mut World) {
        self.react(world);
    }

    fn is_over(&self) -> bool {
        self.over()
    }
}
