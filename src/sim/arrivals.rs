//! Nodes that join a running [`World`]: relays started from a few contacts (placed where a
//! scenario wants them: an attacker's networks, with the bandwidth it claims) and readers
//! started from a directory file (`09-relay.md#bootstrap-list`). Not here: the world's event
//! loop and network model (`super`).

use core::net::SocketAddr;
use core::time::Duration;
use std::collections::BTreeSet;
use std::sync::Arc;

use super::queue::TimerSlot;
use super::{SimNode, WALL_START, World, relay_addr};
use crate::crypto::keys::{IdentityKey, LinkKeypair, NodeId};
use crate::crypto::rng::UmbraRng;
use crate::directory::{Descriptor, Directory, Roles};
use crate::node::{Node, RelayKeys};
use crate::time::WallTime;

impl World {
    /// Start a new relay whose directory holds only itself and the relays `contacts` (by
    /// index): discovery must make it known. Returns its index.
    pub fn add_relay(&mut self, contacts: &[usize]) -> usize {
        let n = self.nodes.len();
        self.add_relay_at(contacts, relay_addr(n), None)
    }

    /// [`World::add_relay`] at `addr`, advertising `bandwidth` KiB/s (`None`: a random
    /// honest figure).
    pub fn add_relay_at(
        &mut self,
        contacts: &[usize],
        addr: SocketAddr,
        bandwidth: Option<u32>,
    ) -> usize {
        let wall = self.wall_now();
        let (keys, v) = new_relay(&mut self.rng, addr, wall, bandwidth);
        let ids: BTreeSet<NodeId> = contacts
            .iter()
            .filter_map(|c| self.nodes.get(*c).and_then(|x| x.node.node_id()))
            .collect();
        let mut dir = self.directory.only(|x| ids.contains(x));
        if let Some(v) = v {
            dir.insert(v);
        }
        let with_dht = self.nodes.iter().any(|n| n.node.dht().is_some());
        let rng = self.rng.fork();
        let node = Node::new(self.cfg.clone(), Some(keys.clone()), Arc::new(dir), rng);
        let n = self.push(node, addr, Some(keys));
        let now = self.now();
        if with_dht {
            let seeds: Vec<NodeId> = ids.into_iter().collect();
            self.nodes[n].node.enable_dht(now, None);
            self.nodes[n].node.dht_bootstrap(now, &seeds);
        }
        self.drain(n);
        n
    }

    /// Start a new reader at `addr` whose directory is `directory` (a directory file
    /// another node wrote, first-seen times included). Returns its index.
    pub fn add_reader(&mut self, addr: SocketAddr, directory: Directory) -> usize {
        let rng = self.rng.fork();
        let node = Node::new(self.cfg.clone(), None, Arc::new(directory), rng);
        let n = self.push(node, addr, None);
        self.drain(n);
        n
    }

    /// Add `node` at `addr`; returns its index.
    pub(super) fn push(&mut self, node: Node, addr: SocketAddr, keys: Option<RelayKeys>) -> usize {
        let n = self.nodes.len();
        self.nodes.push(SimNode {
            node,
            addr,
            up: true,
            apps: Vec::new(),
            keys,
            extra_delay: Duration::ZERO,
            timer: TimerSlot::default(),
        });
        self.by_addr.insert(addr, n);
        n
    }

    /// The world's wall-clock time now.
    pub fn wall_now(&self) -> WallTime {
        WallTime(WALL_START + self.now().as_micros() / 1_000_000)
    }
}

/// A relay's keys and its descriptor signed at `wall`, valid for a day, advertising
/// `bandwidth` (`None`: 1,000 to 10,000 KiB/s at random, as honest relays in the world do).
pub(super) fn new_relay(
    rng: &mut UmbraRng,
    addr: SocketAddr,
    wall: WallTime,
    bandwidth: Option<u32>,
) -> (RelayKeys, Option<crate::directory::Verified>) {
    let keys = RelayKeys {
        identity: IdentityKey::generate(rng),
        link: LinkKeypair::generate(rng),
        onion: LinkKeypair::generate(rng),
    };
    let bandwidth = bandwidth.unwrap_or_else(|| 1000 + u32::try_from(rng.below(9000)).unwrap_or(0));
    let desc = Descriptor {
        identity: keys.identity.public(),
        addr,
        link_key: keys.link.public(),
        onion_key: keys.onion.public(),
        bandwidth,
        family: [0; 32],
        family_cert: None,
        roles: Roles::ALL,
        published: wall,
        expires: WallTime(wall.0 + 86_400),
    };
    let v = desc
        .sign(&keys.identity)
        .and_then(|b| crate::directory::parse(&b).and_then(|u| u.verify(wall)))
        .ok();
    (keys, v)
}
