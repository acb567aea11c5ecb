//! Simulated readers fetching sites through circuits and the exits' `dht` service
//! (`protocol-spec/07-sites.md#fetching`), as an [`App`] the [`super::World`] runs; they
//! publish with [`crate::app::publish::Publish`]. A job that loses its circuit, or whose
//! exit refuses or forges, starts over on a fresh one through its [`ServiceSession`], up to
//! [`JOB_ATTEMPTS`] circuits.

use crate::app::App;
use crate::app::session::{ServiceSession, SessionEvent};
use crate::app::site_files::Fetcher;
use crate::node::{Node, NodeEvent};
use crate::site::SiteTracker;
use crate::site::address::SiteAddress;
use crate::time::Time;

/// Circuits a job may use.
pub const JOB_ATTEMPTS: u32 = 4;

/// What a job does.
#[derive(Debug)]
pub enum Work {
    /// Fetch a site (every file).
    Fetch(SiteAddress),
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

/// A fetch by one simulated reader.
#[derive(Debug)]
pub struct SiteJob {
    work: Work,
    proto: Option<Box<Fetcher>>,
    session: ServiceSession,
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
    /// A job doing `work`.
    pub fn new(work: Work) -> SiteJob {
        SiteJob {
            work,
            proto: None,
            session: ServiceSession::new(b"dht", JOB_ATTEMPTS),
            state: SiteJobState::Connecting,
            started: Time::ZERO,
            finished: None,
            files: Vec::new(),
            tracker: SiteTracker::new(),
            last_error: None,
        }
    }

    fn over(&self) -> bool {
        matches!(self.state, SiteJobState::Done | SiteJobState::Failed(_))
    }

    fn on_session(&mut self, node: &mut Node, now: Time, ev: SessionEvent) {
        match ev {
            SessionEvent::Built { .. } => {}
            SessionEvent::Opened => {
                self.state = SiteJobState::Running;
                let Work::Fetch(site) = &self.work;
                self.proto = Some(Box::new(Fetcher::new(*site, None, node.wall(now))));
                self.pump(node, now);
            }
            SessionEvent::Data(data) => {
                let tracker = &mut self.tracker;
                let outcome = self.proto.as_mut().and_then(|f| {
                    f.on_data(&data, tracker);
                    f.take_result()
                        .map(|r| r.and_then(|files| f.contents(&files)))
                });
                match outcome {
                    Some(Ok(files)) => {
                        self.files = files;
                        self.state = SiteJobState::Done;
                        self.finished = Some(now);
                        self.session.finish(node, now);
                    }
                    Some(Err(e)) => {
                        let ev = self.session.retry(node, now, e.to_string());
                        self.on_session(node, now, ev);
                    }
                    None => self.pump(node, now),
                }
            }
            SessionEvent::Retrying { why, .. } => {
                self.last_error = Some(why);
                self.proto = None;
                self.state = SiteJobState::Connecting;
            }
            SessionEvent::GaveUp { why } => {
                self.last_error = Some(why.clone());
                self.state = SiteJobState::Failed(why);
                self.finished = Some(now);
            }
        }
    }

    fn pump(&mut self, node: &mut Node, now: Time) {
        let Some(f) = self.proto.as_mut() else {
            return;
        };
        let bytes = f.poll_send();
        if let Some(ev) = self.session.send(node, now, &bytes) {
            self.on_session(node, now, ev);
        }
    }
}

impl App for SiteJob {
    fn start(&mut self, node: &mut Node, now: Time) {
        self.started = now;
        self.session.start(node, now);
    }

    fn on_event(&mut self, node: &mut Node, now: Time, event: NodeEvent) {
        if self.over() {
            return;
        }
        if let Some(ev) = self.session.on_event(node, now, event) {
            self.on_session(node, now, ev);
        }
    }

    fn tick(&mut self, _: &mut Node, _: Time) {}

    fn finished(&self) -> Option<i32> {
        match self.state {
            SiteJobState::Done => Some(0),
            SiteJobState::Failed(_) => Some(1),
            _ => None,
        }
    }
}
