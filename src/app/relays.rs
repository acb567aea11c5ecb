//! Learn the relay set from the network once (`protocol-spec/10-directory.md`): the app
//! behind `umbra relays`. It asks the node to reconcile with its guard now and finishes when
//! a reconciliation has ended, or fails when the node has nobody left to ask.
//!
//! Not in this module: printing the relays (the CLI), the reconciliation itself
//! (`directory::sync`).

use super::App;
use crate::node::{Node, NodeEvent};
use crate::time::Time;

/// Reconcile the directory once.
#[derive(Debug, Default)]
pub struct LearnRelays {
    done: Option<i32>,
}

impl LearnRelays {
    /// A fresh one.
    pub fn new() -> LearnRelays {
        LearnRelays::default()
    }
}

impl App for LearnRelays {
    fn start(&mut self, node: &mut Node, now: Time) {
        node.sync_directory_soon(now);
    }

    fn on_event(&mut self, _node: &mut Node, _now: Time, _event: NodeEvent) {}

    fn tick(&mut self, node: &mut Node, _now: Time) {
        if self.done.is_none() && node.directory_stats().syncs_done > 0 {
            self.done = Some(0);
        } else if self.done.is_none() && !node.directory_learning() {
            self.done = Some(1);
        }
    }

    fn finished(&self) -> Option<i32> {
        self.done
    }
}
