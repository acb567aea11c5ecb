//! Circuits independent of others (`protocol-spec/07-sites.md#freshness`): a reader that asks
//! a second exit whether the first told it the newest version of a site needs that exit to be
//! run by someone else. Part of [`super::Node`]; see its docs.
//! Not in this module: path selection itself (`crate::directory::path`), what the circuits
//! are used for (`crate::app::freshness`).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{BuildState, Node};
use crate::crypto::keys::NodeId;
use crate::directory::Descriptor;
use crate::directory::path::compatible;
use crate::ids::CircHandle;
use crate::time::Time;

impl Node {
    /// Request a 3-hop circuit none of whose relays is, or shares a /16 network or a family
    /// with, a relay of `unlike` (the exits of other circuits). [`super::NodeEvent::Built`]
    /// or [`super::NodeEvent::Failed`] follows (`NoPath` if no such circuit can be made).
    pub fn build_circuit_unlike(&mut self, now: Time, unlike: &[NodeId]) -> CircHandle {
        let dir = self.dirsync.directory();
        let others: Vec<Arc<Descriptor>> = unlike
            .iter()
            .filter_map(|id| dir.get(id).cloned())
            .collect();
        let mut avoid: BTreeSet<NodeId> = unlike.iter().copied().collect();
        avoid.extend(
            dir.relays()
                .filter(|d| others.iter().any(|o| !compatible(o, d)))
                .map(|d| d.node_id()),
        );
        let handle = CircHandle(self.next_circ);
        self.next_circ += 1;
        self.builds
            .insert(handle, BuildState { attempts: 0, avoid });
        self.start_build(now, handle);
        self.pump(now);
        handle
    }
}
