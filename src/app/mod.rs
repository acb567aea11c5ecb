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

use crate::node::{Node, NodeEvent};
use crate::time::Time;

pub mod bench;
pub mod echo;
pub mod fetch;
pub mod gateway;
pub mod publish;
pub mod session;
pub mod site_files;

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
