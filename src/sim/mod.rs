//! The deterministic network simulator (`protocol-spec/README.md#determinism`).
//!
//! A single-threaded discrete-event [`World`] over real [`Node`]s: a `(time, sequence)`
//! event queue, a seeded network model (per-link latency, bandwidth, loss as retransmission
//! delay, partitions, churn), and hostile-node hooks ([`Misbehaviour`]). Everything random
//! comes from the world's seed, so a run is replayed exactly from it. Readers run the same
//! [`App`]s as the tokio driver ([`World::spawn`]): the world hands each node's events to the
//! apps on it and calls their `tick` after every batch of work. Not in this module:
//! scenarios and assertions (they live in `tests/`), or any real I/O.

mod arrivals;
pub mod dht_world;
pub mod queue;

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::app::App;
use crate::crypto::keys::NodeId;
use crate::crypto::rng::UmbraRng;
use crate::directory::Directory;
use crate::ids::{ConnectId, LinkId};
use crate::node::{Input, Node, NodeConfig, Output, RelayKeys};
use crate::relay::Misbehaviour;
use crate::time::{Time, WallTime};
use queue::{EventQueue, TimerSlot};

/// The network model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetModel {
    /// Smallest one-way latency of a link.
    pub latency_min: Duration,
    /// Largest one-way latency of a link.
    pub latency_max: Duration,
    /// Bytes per second each link carries.
    pub bandwidth: u64,
    /// Probability that one delivery is delayed by a retransmission timeout.
    pub loss: f64,
    /// The retransmission delay.
    pub rto: Duration,
}

impl Default for NetModel {
    fn default() -> Self {
        NetModel {
            latency_min: Duration::from_millis(5),
            latency_max: Duration::from_millis(80),
            bandwidth: 10_000_000,
            loss: 0.0,
            rto: Duration::from_millis(200),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Deliver { to: usize, input: Input },
    Timer { node: usize, generation: u64 },
}

#[derive(Debug, Clone, Copy)]
struct LinkEnd {
    peer: usize,
    peer_link: LinkId,
    latency: Duration,
    /// Deliveries on this direction stay in order.
    last_delivery: Time,
}

/// One simulated node.
#[derive(Debug)]
pub struct SimNode {
    /// The real node.
    pub node: Node,
    /// Its address.
    pub addr: SocketAddr,
    /// Whether it is running.
    pub up: bool,
    /// The apps running on it (indices into the world's apps).
    apps: Vec<usize>,
    keys: Option<RelayKeys>,
    /// Extra delay on everything this node sends (a hostile or congested node).
    pub extra_delay: Duration,
    timer: TimerSlot,
}

/// The simulated world.
#[derive(Debug)]
pub struct World {
    queue: EventQueue<Event>,
    nodes: Vec<SimNode>,
    by_addr: BTreeMap<SocketAddr, usize>,
    links: BTreeMap<(usize, LinkId), LinkEnd>,
    next_link: u64,
    rng: UmbraRng,
    net: NetModel,
    cfg: NodeConfig,
    partitioned: BTreeSet<usize>,
    directory: Arc<Directory>,
    /// Every app spawned, by [`AppId`].
    apps: Apps,
    /// Events processed.
    pub processed: u64,
}

/// The world's apps (shown by count).
#[derive(Default)]
struct Apps(Vec<Box<dyn App>>);

impl std::fmt::Debug for Apps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} apps", self.0.len())
    }
}

/// An app spawned on a node of the [`World`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppId(pub usize);

/// The wall clock at a world's start (Unix seconds); descriptors are valid from then.
pub use dht_world::WALL_START;

impl World {
    /// A world of `relays` relays (every role) and `readers` readers, from `seed`.
    pub fn new(seed: u64, relays: usize, readers: usize, net: NetModel) -> World {
        World::with_config(seed, relays, readers, net, |_| {})
    }

    /// [`World::new`] with node settings changed by `adjust` (discovery intervals, DHT).
    pub fn with_config(
        seed: u64,
        relays: usize,
        readers: usize,
        net: NetModel,
        adjust: impl FnOnce(&mut NodeConfig),
    ) -> World {
        let mut rng = UmbraRng::from_u64(seed);
        let mut cfg = NodeConfig {
            wall_at_zero: WallTime(WALL_START),
            record_observations: true,
            ..NodeConfig::default()
        };
        adjust(&mut cfg);
        let mut dir = Directory::new();
        let mut relay_keys = Vec::with_capacity(relays);
        for i in 0..relays {
            let (keys, v) =
                arrivals::new_relay(&mut rng, relay_addr(i), WallTime(WALL_START), None);
            if let Some(v) = v {
                dir.insert(v);
            }
            relay_keys.push((keys, relay_addr(i)));
        }
        let directory = Arc::new(dir);
        let mut world = World {
            queue: EventQueue::default(),
            nodes: Vec::new(),
            by_addr: BTreeMap::new(),
            links: BTreeMap::new(),
            next_link: 1,
            rng,
            net,
            cfg,
            partitioned: BTreeSet::new(),
            directory,
            apps: Apps::default(),
            processed: 0,
        };
        for (keys, addr) in relay_keys {
            world.add_node(Some(keys), addr);
        }
        for i in 0..readers {
            world.add_node(None, reader_addr(i));
        }
        // Arm every node's timers (discovery's first round is due at once).
        for i in 0..world.nodes.len() {
            world.drain(i);
        }
        world
    }

    fn add_node(&mut self, keys: Option<RelayKeys>, addr: SocketAddr) -> usize {
        let rng = self.rng.fork();
        let node = Node::new(self.cfg.clone(), keys.clone(), self.directory.clone(), rng);
        self.push(node, addr, keys)
    }

    /// Make every node forget the relay set but its own descriptor and `contacts` random
    /// relays, as if each had started from a bootstrap file of `contacts` lines; discovery
    /// (`10-directory.md`) must teach them the rest.
    pub fn forget_directories(&mut self, contacts: usize) {
        let now = self.now();
        let ids: Vec<NodeId> = self.directory.relays().map(|d| d.node_id()).collect();
        for i in 0..self.nodes.len() {
            let own = self.nodes[i].node.node_id();
            let mut keep: BTreeSet<NodeId> = own.into_iter().collect();
            let want = (contacts + keep.len()).min(ids.len());
            while keep.len() < want {
                keep.insert(ids[self.rng.below(ids.len() as u64) as usize]);
            }
            let partial = self.directory.only(|id| keep.contains(id));
            self.nodes[i].node.set_directory(now, partial);
            self.drain(i);
        }
    }

    /// The current simulated time.
    pub fn now(&self) -> Time {
        self.queue.now()
    }

    /// Every node, relays first (in creation order), then readers.
    pub fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }

    /// One node, mutably (to issue commands; call [`World::after_command`] afterwards).
    pub fn node_mut(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i].node
    }

    /// The index of the node with this node id.
    pub fn index_of(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.node.node_id() == Some(id))
    }

    /// Make every relay a DHT node and join each from `seeds` random relays
    /// (`06-dht.md#joining`); the joins run as the world runs.
    pub fn enable_dht(&mut self, cfg: crate::dht::DhtConfig, seeds: usize) {
        let now = self.queue.now();
        self.cfg.dht = cfg;
        let relays: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].keys.is_some())
            .collect();
        let ids: Vec<NodeId> = relays
            .iter()
            .filter_map(|i| self.nodes[*i].node.node_id())
            .collect();
        for &i in &relays {
            let picks: Vec<NodeId> = (0..seeds)
                .map(|_| ids[self.rng.below(ids.len() as u64) as usize])
                .collect();
            self.nodes[i].node.enable_dht(now, None);
            self.nodes[i].node.dht_bootstrap(now, &picks);
            self.drain(i);
        }
    }

    /// Make a relay misbehave.
    pub fn set_misbehaviour(&mut self, i: usize, m: Misbehaviour) {
        self.nodes[i].node.set_misbehaviour(m);
    }

    /// Delay everything node `i` sends by `extra` (a hostile delaying node).
    pub fn set_extra_delay(&mut self, i: usize, extra: Duration) {
        self.nodes[i].extra_delay = extra;
    }

    /// Drain a node's outputs after a command was issued to it directly.
    pub fn after_command(&mut self, i: usize) {
        self.drain(i);
    }

    /// Cut a node off: its links break and nobody can reach it until [`World::heal`].
    pub fn partition(&mut self, i: usize) {
        self.partitioned.insert(i);
        self.break_links(i);
    }

    /// Undo [`World::partition`].
    pub fn heal(&mut self, i: usize) {
        self.partitioned.remove(&i);
    }

    /// Stop a node (churn): its links break; it stays down until [`World::restart`].
    pub fn kill(&mut self, i: usize) {
        if !self.nodes[i].up {
            return;
        }
        self.nodes[i].up = false;
        self.break_links(i);
    }

    /// Start a stopped relay again with its keys and a fresh state.
    pub fn restart(&mut self, i: usize) {
        if self.nodes[i].up {
            return;
        }
        let rng = self.rng.fork();
        let keys = self.nodes[i].keys.clone();
        let with_dht = self.nodes[i].node.dht().is_some();
        self.nodes[i].node = Node::new(self.cfg.clone(), keys, self.directory.clone(), rng);
        if with_dht {
            let now = self.queue.now();
            self.nodes[i].node.enable_dht(now, None);
        }
        self.nodes[i].up = true;
        self.nodes[i].timer.reset();
    }

    fn break_links(&mut self, i: usize) {
        let mine: Vec<(usize, LinkId)> = self
            .links
            .keys()
            .filter(|(n, _)| *n == i)
            .copied()
            .collect();
        for key in mine {
            if let Some(end) = self.links.remove(&key) {
                self.links.remove(&(end.peer, end.peer_link));
                let t = self.queue.now() + end.latency;
                self.schedule(
                    t,
                    Event::Deliver {
                        to: end.peer,
                        input: Input::LinkClosed {
                            link: end.peer_link,
                        },
                    },
                );
                if self.nodes[i].up {
                    self.schedule(
                        self.queue.now(),
                        Event::Deliver {
                            to: i,
                            input: Input::LinkClosed { link: key.1 },
                        },
                    );
                }
            }
        }
    }

    fn schedule(&mut self, at: Time, ev: Event) {
        self.queue.schedule(at, ev);
    }

    fn latency(&mut self) -> Duration {
        let lo = self.net.latency_min.as_micros() as u64;
        let hi = self.net.latency_max.as_micros() as u64;
        Duration::from_micros(lo + self.rng.below(hi.saturating_sub(lo) + 1))
    }

    /// Start `app` on node `i`; its results are read back with [`World::app`].
    pub fn spawn(&mut self, i: usize, app: Box<dyn App>) -> AppId {
        let id = self.apps.0.len();
        self.apps.0.push(app);
        self.nodes[i].apps.push(id);
        let now = self.now();
        self.apps.0[id].start(&mut self.nodes[i].node, now);
        self.drain(i);
        AppId(id)
    }

    /// The app `id`, as the type it was spawned with.
    pub fn app<T: App>(&self, id: AppId) -> Option<&T> {
        let app: &dyn std::any::Any = self.apps.0.get(id.0)?.as_ref();
        app.downcast_ref::<T>()
    }

    /// The app `id`, to call it (then [`World::after_command`] on its node).
    pub fn app_mut<T: App>(&mut self, id: AppId) -> Option<&mut T> {
        let app: &mut dyn std::any::Any = self.apps.0.get_mut(id.0)?.as_mut();
        app.downcast_mut::<T>()
    }

    /// Call app `id` with its node (a command that needs the node: pin a site), then route
    /// what the node has to say. `None` if `id` is not a `T`.
    pub fn command<T: App, R>(
        &mut self,
        id: AppId,
        f: impl FnOnce(&mut T, &mut Node, Time) -> R,
    ) -> Option<R> {
        let i = self.nodes.iter().position(|n| n.apps.contains(&id.0))?;
        let now = self.now();
        let app: &mut dyn std::any::Any = self.apps.0.get_mut(id.0)?.as_mut();
        let r = f(app.downcast_mut::<T>()?, &mut self.nodes[i].node, now);
        self.drain(i);
        Some(r)
    }

    /// Whether app `id` finished, and how (`App::finished`).
    pub fn finished(&self, id: AppId) -> Option<i32> {
        self.apps.0.get(id.0).and_then(|a| a.finished())
    }

    /// Run until every app of `ids` finished or `deadline` passes.
    pub fn run_apps(&mut self, ids: &[AppId], deadline: Time) {
        loop {
            if ids.iter().all(|&id| self.finished(id).is_some()) || self.now() > deadline {
                return;
            }
            if !self.step() {
                return;
            }
        }
    }

    /// Route every output of node `i`, hand its events to its apps and let them push data
    /// (`tick`) until the node has nothing more to say, then re-arm its timer.
    fn drain(&mut self, i: usize) {
        let mut ticked = false;
        loop {
            let (any, events) = self.route(i);
            let now = self.now();
            for ev in &events {
                for k in 0..self.nodes[i].apps.len() {
                    let a = self.nodes[i].apps[k];
                    self.apps.0[a].on_event(&mut self.nodes[i].node, now, ev.clone());
                }
            }
            if !events.is_empty() {
                ticked = false;
            }
            if !ticked && !self.nodes[i].apps.is_empty() {
                for k in 0..self.nodes[i].apps.len() {
                    let a = self.nodes[i].apps[k];
                    self.apps.0[a].tick(&mut self.nodes[i].node, now);
                }
                ticked = true;
                continue;
            }
            if !any {
                break;
            }
        }
        let apps = self.nodes[i]
            .apps
            .iter()
            .map(|a| self.apps.0[*a].poll_timeout());
        let want = apps
            .chain([self.nodes[i].node.poll_timeout()])
            .flatten()
            .min();
        if let Some((t, generation)) = self.nodes[i].timer.rearm(want) {
            self.schedule(
                t,
                Event::Timer {
                    node: i,
                    generation,
                },
            );
        }
    }

    /// Route node `i`'s outputs to the network; whether there were any, and its events.
    fn route(&mut self, i: usize) -> (bool, Vec<crate::node::NodeEvent>) {
        let mut any = false;
        let mut events = Vec::new();
        while let Some(out) = self.nodes[i].node.poll_output() {
            any = true;
            match out {
                Output::Connect { request, addr } => self.connect(i, request, addr),
                Output::Send { link, bytes } => self.send(i, link, bytes),
                Output::Close { link } => {
                    if let Some(end) = self.links.remove(&(i, link)) {
                        self.links.remove(&(end.peer, end.peer_link));
                        let t = self.queue.now() + end.latency;
                        self.schedule(
                            t,
                            Event::Deliver {
                                to: end.peer,
                                input: Input::LinkClosed {
                                    link: end.peer_link,
                                },
                            },
                        );
                    }
                }
                Output::Event(ev) => events.push(ev),
            }
        }
        (any, events)
    }

    fn connect(&mut self, i: usize, request: ConnectId, addr: SocketAddr) {
        let latency = self.latency();
        let target = self.by_addr.get(&addr).copied().filter(|t| {
            self.nodes[*t].up
                && !self.partitioned.contains(t)
                && !self.partitioned.contains(&i)
                && *t != i
        });
        let Some(t) = target else {
            self.schedule(
                self.queue.now() + latency * 2,
                Event::Deliver {
                    to: i,
                    input: Input::ConnectFailed { request },
                },
            );
            return;
        };
        let a = LinkId(self.next_link);
        let b = LinkId(self.next_link + 1);
        self.next_link += 2;
        self.links.insert(
            (i, a),
            LinkEnd {
                peer: t,
                peer_link: b,
                latency,
                last_delivery: self.queue.now(),
            },
        );
        self.links.insert(
            (t, b),
            LinkEnd {
                peer: i,
                peer_link: a,
                latency,
                last_delivery: self.queue.now(),
            },
        );
        let (ia, ta) = (self.nodes[i].addr, self.nodes[t].addr);
        self.schedule(
            self.queue.now() + latency,
            Event::Deliver {
                to: t,
                input: Input::LinkOpened {
                    link: b,
                    peer: ia,
                    outbound: None,
                },
            },
        );
        self.schedule(
            self.queue.now() + latency * 2,
            Event::Deliver {
                to: i,
                input: Input::LinkOpened {
                    link: a,
                    peer: ta,
                    outbound: Some(request),
                },
            },
        );
    }

    fn send(&mut self, i: usize, link: LinkId, bytes: Vec<u8>) {
        let Some(end) = self.links.get(&(i, link)).copied() else {
            return;
        };
        let transfer =
            Duration::from_micros(bytes.len() as u64 * 1_000_000 / self.net.bandwidth.max(1));
        let mut at = self.queue.now() + end.latency + transfer + self.nodes[i].extra_delay;
        if self.net.loss > 0.0 && (self.rng.below(1_000_000) as f64) < self.net.loss * 1_000_000.0 {
            at = at + self.net.rto;
        }
        let at = at.max(end.last_delivery);
        if let Some(e) = self.links.get_mut(&(i, link)) {
            e.last_delivery = at;
        }
        self.schedule(
            at,
            Event::Deliver {
                to: end.peer,
                input: Input::LinkBytes {
                    link: end.peer_link,
                    bytes,
                },
            },
        );
    }

    /// Process one event; `false` when the queue is empty.
    pub fn step(&mut self) -> bool {
        let Some((at, ev)) = self.queue.pop() else {
            return false;
        };
        self.processed += 1;
        match ev {
            Event::Deliver { to, input } => {
                if !self.nodes[to].up {
                    return true;
                }
                // Bytes for a link that broke meanwhile are lost with it.
                if let Input::LinkBytes { link, .. } = &input {
                    if !self.links.contains_key(&(to, *link)) {
                        return true;
                    }
                }
                self.nodes[to].node.handle(at, input);
                self.drain(to);
            }
            Event::Timer { node, generation } => {
                let n = &mut self.nodes[node];
                if !n.up || !n.timer.fire(generation) {
                    return true;
                }
                n.node.handle_timeout(at);
                self.drain(node);
            }
        }
        true
    }

    /// Run until `deadline` or until the queue is empty.
    pub fn run_until(&mut self, deadline: Time) {
        while let Some(at) = self.queue.next_time() {
            if at > deadline {
                break;
            }
            self.step();
        }
        self.queue.advance_to(deadline);
    }
}

/// The address of relay `i`: each relay in its own /16 (`09-relay.md#path-selection`).
pub fn relay_addr(i: usize) -> SocketAddr {
    let i = u32::try_from(i).unwrap_or(0);
    let ip = Ipv4Addr::from(0x0a00_0001u32 + (i << 16));
    SocketAddr::new(IpAddr::V4(ip), 4000)
}

/// The address of reader `i`.
pub fn reader_addr(i: usize) -> SocketAddr {
    let i = u32::try_from(i).unwrap_or(0);
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0xc0a8_0000u32 + i)), 50_000)
}
