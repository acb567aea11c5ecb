//! The reader's applications, sans-IO, between [`crate::node`] and the two drivers (the tokio
//! runtime and the simulator): what a reader does with circuits (echo a payload, publish and
//! fetch sites), written once and run the same way by both. The place arti's circuit manager
//! has relative to its protocol crate.
//!
//! An [`App`] is driven by calls: `start` once, `on_event` for every [`NodeEvent`] of its
//! node, `tick` after every batch of work (to push data as back-pressure allows), and
//! `finished` to learn when it is over. [`session::ServiceSession`] is the one way apps reach
//! an exit service: a circuit, a named stream, and a retry on a fresh circuit within a budget.
//!
//! Not in this module: sockets, HTTP, files, the clock (`runtime`), the simulated network
//! (`sim`), and the protocol machines themselves (`node` and below).

use std::any::Any;
use std::collections::VecDeque;

use crate::node::{Node, NodeEvent};
use crate::time::Time;

pub mod bench;
pub mod echo;
pub mod fetch;
pub mod freshness;
pub mod gateway;
pub mod keep;
pub mod pinner;
pub mod pins;
pub mod publish;
pub mod relays;
pub mod session;
pub mod site_files;
pub mod writers;

/// An application on top of a node. `Any` lets a driver hand a finished app's results back
/// by type (the simulator's scenarios read them).
pub trait App: Any {
    /// The node was started; issue first commands.
    fn start(&mut self, node: &mut Node, now: Time);
    /// An event of the node.
    fn on_event(&mut self, node: &mut Node, now: Time, event: NodeEvent);
    /// Called after every batch of work: push data as back-pressure allows.
    fn tick(&mut self, node: &mut Node, now: Time);
    /// `Some(code)` when the application is finished (0: it did what it was for).
    fn finished(&self) -> Option<i32>;
    /// When the app wants a `tick` even if its node is idle (its own timers: a pin's next
    /// check). None by default.
    fn poll_timeout(&self) -> Option<Time> {
        None
    }
}

/// What a publish or fetch tells its user as it goes, in order: the CLI draws it (a plan, a
/// progress bar, a line when it starts over), the simulator may ignore it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// What a publish is about to upload (once, when the previous manifest is known).
    Plan(publish::UploadPlan),
    /// `done` of `total` steps (records stored, blocks verified).
    Progress {
        /// Steps done.
        done: usize,
        /// Steps in all.
        total: usize,
    },
    /// An attempt failed (why); the app starts over on a fresh circuit.
    Retrying(String),
}

/// An app's queue of [`Report`]s, and the progress last reported (so each change is
/// reported once).
#[derive(Debug, Default)]
pub struct Reports {
    queue: VecDeque<Report>,
    progress: Option<(usize, usize)>,
}

impl Reports {
    /// Report `r`.
    pub fn push(&mut self, r: Report) {
        self.queue.push_back(r);
    }

    /// Report the progress if it changed since the last report.
    pub fn progress(&mut self, now: Option<(usize, usize)>) {
        if now != self.progress {
            self.progress = now;
            if let Some((done, total)) = now {
                self.queue.push_back(Report::Progress { done, total });
            }
        }
    }

    /// The next report.
    pub fn poll(&mut self) -> Option<Report> {
        self.queue.pop_front()
    }
}

/// An application that does nothing (a relay).
#[derive(Debug, Default)]
pub struct NoApp;

impl App for NoApp {
    fn start(&mut self, _: &mut Node, _: Time) {}
    fn on_event(&mut self, _: &mut Node, _: Time, _: NodeEvent) {}
    fn tick(&mut self, _: &mut Node, _: Time) {}
    fn finished(&self) -> Option<i32> {
        None
    }
}
