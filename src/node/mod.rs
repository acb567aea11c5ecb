//! The sans-IO node: links, circuits and the relay switch composed (`protocol-spec/09-relay.md`).
//!
//! `Node::handle(now, Input)`, `Node::handle_timeout(now)`, `poll_output()`, `poll_timeout()`.
//! The node owns one seeded RNG and every protocol part; the parts never call each other —
//! the node routes cells between link sessions, the reader's circuits (`circuit/`) and the
//! relay switch (`relay/`), opens links when a circuit or an EXTEND needs one, and retries
//! failed builds on fresh paths. Maps whose order reaches outputs are ordered maps.
//!
//! Not in this module: sockets, clocks, tasks (the runtime and the simulator drive it).

mod content;
mod discovery;
mod exit_load;
mod independent;
mod links;
mod routing;
mod shaping;

/// What the application above the node hears: circuits built, failed or closed, streams
/// opened, fed and ended. Apps and drivers name it so, never through the circuit machine.
pub use crate::circuit::{CircuitFailure, ClientEvent as NodeEvent};
#[cfg(feature = "sim")]
pub use content::DhtObserved;
pub use content::SiteValidator;
pub use shaping::{
    ACCOUNTING_STATE, MAX_HELD_DHT_PER_LINK, MAX_HELD_PER_CIRCUIT, ShapingStats, Traffic,
};

use core::net::SocketAddr;
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use crate::circuit::{CircuitError, ClientCircuits, ClientEvent, HopSpec};
use crate::crypto::keys::{IdentityKey, LinkKeyBinding, LinkKeypair, NodeId};
use crate::crypto::replay::ReplayCache;
use crate::crypto::rng::UmbraRng;
use crate::directory::Directory;
use crate::directory::path::{Guards, PathError, select_path};
use crate::directory::sync::{DirStats, DirectorySync, SyncConfig};
use crate::ids::{CircHandle, ConnectId, LinkId, StreamHandle};
use crate::link::{LinkConfig, LinkError};
use crate::relay::{CircKey, RelayError, RelayLimits, RelayStats, Switch};
#[cfg(feature = "sim")]
use crate::relay::{Misbehaviour, Observation};
use crate::time::{Time, WallTime};
use crate::wire::restrict::{CellError, DestroyReason};

use links::{LinkEntry, Purpose};

/// A relay's long-term keys.
#[derive(Debug, Clone)]
pub struct RelayKeys {
    /// Ed25519 identity.
    pub identity: IdentityKey,
    /// Static link key (Noise XK).
    pub link: LinkKeypair,
    /// Onion key (hop handshake).
    pub onion: LinkKeypair,
}

/// Node settings.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Link timers.
    pub link: LinkConfig,
    /// Relay limits.
    pub relay_limits: RelayLimits,
    /// How long one circuit build may take.
    pub build_timeout: Duration,
    /// Build attempts per requested circuit (each on a fresh path).
    pub build_attempts: u32,
    /// Wall-clock time at `Time::ZERO`, for validity windows.
    pub wall_at_zero: WallTime,
    /// Keep an observation log (simulator privacy checks; `sim` feature only).
    #[cfg(feature = "sim")]
    pub record_observations: bool,
    /// DHT parameters (relays).
    pub dht: crate::dht::DhtConfig,
    /// Bytes of others' records a relay stores at most.
    pub store_quota: u64,
    /// Relay discovery (`10-directory.md#timing`).
    pub directory: SyncConfig,
    /// Bandwidth and memory limits (`09-relay.md#bandwidth`).
    pub limits: crate::limits::Limits,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            link: LinkConfig::default(),
            relay_limits: RelayLimits::default(),
            build_timeout: Duration::from_secs(10),
            build_attempts: 5,
            wall_at_zero: WallTime(0),
            #[cfg(feature = "sim")]
            record_observations: false,
            dht: crate::dht::DhtConfig::default(),
            store_quota: 1 << 30,
            directory: SyncConfig::default(),
            limits: crate::limits::Limits::default(),
        }
    }
}

/// What the driver tells the node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// A TCP connection opened: `outbound` names the request for links the node asked for.
    LinkOpened {
        /// The driver's name for it.
        link: LinkId,
        /// The peer's address.
        peer: SocketAddr,
        /// The node's request, for outbound links.
        outbound: Option<ConnectId>,
    },
    /// Bytes arrived on a link.
    LinkBytes {
        /// The link.
        link: LinkId,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// The peer closed the link (or it broke).
    LinkClosed {
        /// The link.
        link: LinkId,
    },
    /// A requested connection failed.
    ConnectFailed {
        /// The request.
        request: ConnectId,
    },
    /// The record store's batch `batch` (and every one before it) became durable (`ok`) or
    /// failed: the driver committed it off the owner task (`06-dht.md#store`).
    StoreDurable {
        /// The batch the store's commit named.
        batch: u64,
        /// Whether it is durable.
        ok: bool,
    },
}

/// What the node asks of the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Open a TCP connection; answer with `LinkOpened { outbound: Some(request) }` or
    /// `ConnectFailed`.
    Connect {
        /// The request.
        request: ConnectId,
        /// Where.
        addr: SocketAddr,
    },
    /// Write bytes to a link.
    Send {
        /// The link.
        link: LinkId,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Close a link.
    Close {
        /// The link.
        link: LinkId,
    },
    /// Something the application hears.
    Event(NodeEvent),
}

/// A failure the node handled (closing what it affected), kept for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A link session failed and was closed.
    #[error("{link}: {error}")]
    Link {
        /// The link.
        link: LinkId,
        /// Why.
        error: LinkError,
    },
    /// A cell was refused; its circuit was closed.
    #[error("{link}: {error}")]
    Cell {
        /// The link.
        link: LinkId,
        /// Why.
        error: CellError,
    },
    /// The relay switch refused something; its circuit was closed.
    #[error("relay: {0}")]
    Relay(RelayError),
    /// No path could be built.
    #[error("path selection: {0}")]
    Path(PathError),
    /// A circuit could not be started.
    #[error("circuit: {0}")]
    Circuit(CircuitError),
}

impl crate::error::HasKind for NodeError {
    fn kind(&self) -> crate::error::ErrorKind {
        match self {
            NodeError::Link { error, .. } => crate::error::HasKind::kind(error),
            NodeError::Cell { error, .. } => crate::error::HasKind::kind(error),
            NodeError::Relay(e) => crate::error::HasKind::kind(e),
            NodeError::Path(e) => crate::error::HasKind::kind(e),
            NodeError::Circuit(e) => crate::error::HasKind::kind(e),
        }
    }
}

/// What a relay's observation log holds: the observation and the previous hop's address
/// (`sim` feature only).
#[cfg(feature = "sim")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// What was seen.
    pub what: Observation,
    /// The address of the link it came from.
    pub from: SocketAddr,
}

#[derive(Debug, Clone)]
enum Waiter {
    Launch(CircHandle, Vec<HopSpec>),
    Extend(CircKey),
    /// The cells of one DHT message and their class (`VALUE` answers are seeding).
    Dht(
        NodeId,
        Vec<crate::wire::restrict::ChanMsg>,
        crate::limits::Class,
    ),
    Dir(Vec<crate::wire::restrict::ChanMsg>),
}

#[derive(Debug, Clone, Default)]
struct BuildState {
    attempts: u32,
    avoid: BTreeSet<NodeId>,
}

const MAX_ERRORS: usize = 4096;

/// The sans-IO node.
#[derive(Debug)]
pub struct Node {
    cfg: NodeConfig,
    rng: UmbraRng,
    keys: Option<RelayKeys>,
    binding: Option<LinkKeyBinding>,
    me: Option<NodeId>,
    dirsync: DirectorySync,
    dir_limits: discovery::DirLimits,
    guards: Guards,
    links: BTreeMap<LinkId, LinkEntry>,
    /// Link timers (`02-link.md#timers`), earliest first: each link's deadline as last armed.
    /// A link's true deadline only moves later as it sends and receives, so an entry is a
    /// lower bound: when it comes, the link's timers run and it is armed again.
    link_timers: BTreeSet<(Time, LinkId)>,
    link_armed: BTreeMap<LinkId, Time>,
    /// Link message 1 ephemerals recently answered (`02-link.md#replay`).
    link_replay: ReplayCache,
    links_to: BTreeMap<(NodeId, Purpose), LinkId>,
    connecting: BTreeMap<(NodeId, Purpose), ConnectId>,
    connects: BTreeMap<ConnectId, (NodeId, Purpose)>,
    waiting: BTreeMap<(NodeId, Purpose), Vec<Waiter>>,
    next_connect: u64,
    switch: Option<Switch>,
    client: ClientCircuits,
    builds: BTreeMap<CircHandle, BuildState>,
    next_circ: u64,
    outputs: VecDeque<Output>,
    dirty: BTreeSet<LinkId>,
    #[cfg(feature = "sim")]
    observations: Vec<Observed>,
    errors: VecDeque<NodeError>,
    error_count: u64,
    retry: Vec<CircHandle>,
    /// Builds waiting for the first reconciliation (`10-directory.md#timing`): the contacts
    /// alone were too few for a path.
    after_sync: Vec<CircHandle>,
    dht: Option<crate::dht::Dht>,
    content: content::ContentState,
    shaping: shaping::Shaping,
}

impl Node {
    /// A node; `keys` makes it a relay as well as a reader.
    pub fn new(
        cfg: NodeConfig,
        keys: Option<RelayKeys>,
        directory: Arc<Directory>,
        mut rng: UmbraRng,
    ) -> Node {
        let client = ClientCircuits::new(cfg.build_timeout, rng.fork());
        let switch = keys.as_ref().map(|k| {
            Switch::new(
                k.identity.public().node_id(),
                k.onion.clone(),
                cfg.relay_limits,
                rng.fork(),
            )
        });
        let binding = keys
            .as_ref()
            .map(|k| LinkKeyBinding::sign(&k.identity, &k.link.public()));
        let me = keys.as_ref().map(|k| k.identity.public().node_id());
        let directory = Arc::unwrap_or_clone(directory);
        let own = me.and_then(|id| directory.get(&id)).map(|d| (**d).clone());
        let mut dirsync = DirectorySync::new(cfg.directory, keys.is_some(), directory, Time::ZERO);
        if let (Some(k), Some(own)) = (keys.as_ref(), own) {
            // The relay signs its descriptor again before it expires (`10-directory.md#renewal`).
            let _ = dirsync.set_own(Time::ZERO, cfg.wall_at_zero, k.identity.clone(), own);
        }
        let _ = dirsync.take_changes();
        let shaping = shaping::Shaping::new(&cfg.limits, (Time::ZERO, cfg.wall_at_zero));
        Node {
            cfg,
            rng,
            keys,
            binding,
            me,
            dirsync,
            dir_limits: discovery::DirLimits::default(),
            guards: Guards::new(),
            links: BTreeMap::new(),
            link_timers: BTreeSet::new(),
            link_armed: BTreeMap::new(),
            link_replay: ReplayCache::for_handshakes(),
            links_to: BTreeMap::new(),
            connecting: BTreeMap::new(),
            connects: BTreeMap::new(),
            waiting: BTreeMap::new(),
            next_connect: 1,
            switch,
            client,
            builds: BTreeMap::new(),
            next_circ: 1,
            outputs: VecDeque::new(),
            dirty: BTreeSet::new(),
            #[cfg(feature = "sim")]
            observations: Vec::new(),
            errors: VecDeque::new(),
            error_count: 0,
            retry: Vec::new(),
            after_sync: Vec::new(),
            dht: None,
            content: content::ContentState::default(),
            shaping,
        }
    }

    /// Make this relay a DHT node with `store` (default: an in-memory store of
    /// `store_quota` bytes). Call before [`Node::dht_bootstrap`].
    pub fn enable_dht(
        &mut self,
        now: Time,
        store: Option<Box<dyn crate::dht::store::RecordStore>>,
    ) {
        let Some(me) = self.me else { return };
        let store = store
            .unwrap_or_else(|| Box::new(crate::dht::store::MemoryStore::new(self.cfg.store_quota)));
        let mut dht = crate::dht::Dht::new(
            me,
            self.cfg.dht,
            store,
            Box::new(content::SiteValidator),
            now,
        );
        dht.seed_upkeep(self.rng.fork(), now);
        dht.set_known(
            self.directory()
                .relays()
                .map(|d| (d.node_id(), crate::directory::path::subnet(d.addr.ip())))
                .collect(),
        );
        self.dht = Some(dht);
        self.restore_accounting_from_store(now);
    }

    /// This relay's node id (`None` for a reader).
    pub fn node_id(&self) -> Option<NodeId> {
        self.me
    }

    /// Replace the directory (a driver that read a new bootstrap list).
    pub fn set_directory(&mut self, now: Time, directory: Directory) {
        self.dirsync.replace(directory);
        self.apply_dir_changes(now);
    }

    /// The directory in use: what discovery has learned and kept (`10-directory.md`).
    pub fn directory(&self) -> &Directory {
        self.dirsync.directory()
    }

    /// Discovery's counters.
    pub fn directory_stats(&self) -> DirStats {
        self.dirsync.stats()
    }

    /// This relay's descriptor as last signed (it renews it, `10-directory.md#renewal`).
    pub fn own_descriptor(&self) -> Option<&crate::directory::Descriptor> {
        self.dirsync.own()
    }

    /// Whether the node is still learning the relay set for the first time
    /// (`10-directory.md#timing`).
    pub fn directory_learning(&self) -> bool {
        self.dirsync.learning()
    }

    /// Reconcile the directory at the next timeout instead of at the next interval.
    pub fn sync_directory_soon(&mut self, now: Time) {
        self.dirsync.sync_soon(now);
    }

    /// The wall-clock time at `now`.
    pub fn wall(&self, now: Time) -> WallTime {
        WallTime(self.cfg.wall_at_zero.0 + now.as_micros() / 1_000_000)
    }

    /// The reader's guards.
    pub fn guards(&self) -> &Guards {
        &self.guards
    }

    /// Restore a saved guard list.
    pub fn set_guards(&mut self, guards: Guards) {
        self.guards = guards;
    }

    /// Make this relay misbehave (simulator and tests only).
    #[cfg(feature = "sim")]
    pub fn set_misbehaviour(&mut self, m: Misbehaviour) {
        if let Some(s) = self.switch.as_mut() {
            s.set_misbehaviour(m);
        }
    }

    /// Relay counters (`None` for a reader).
    pub fn relay_stats(&self) -> Option<RelayStats> {
        self.switch.as_ref().map(Switch::stats)
    }

    /// Circuits through this relay.
    pub fn relay_circuits(&self) -> usize {
        self.switch.as_ref().map_or(0, Switch::circuits)
    }

    /// Open links.
    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    /// The observation log (empty unless `record_observations`).
    #[cfg(feature = "sim")]
    pub fn observations(&self) -> &[Observed] {
        &self.observations
    }

    /// Failures handled so far (the most recent [`MAX_ERRORS`]).
    pub fn errors(&self) -> impl Iterator<Item = &NodeError> {
        self.errors.iter()
    }

    /// How many failures were handled in all.
    pub fn error_count(&self) -> u64 {
        self.error_count
    }

    /// Take the failures recorded so far (for the runtime's log).
    pub fn drain_errors(&mut self) -> Vec<NodeError> {
        self.errors.drain(..).collect()
    }

    fn record(&mut self, e: NodeError) {
        self.error_count += 1;
        if self.errors.len() == MAX_ERRORS {
            self.errors.pop_front();
        }
        self.errors.push_back(e);
    }

    /// The next output for the driver.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Whether outputs are waiting.
    pub fn has_output(&self) -> bool {
        !self.outputs.is_empty()
    }

    /// When [`Node::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Time> {
        let links = self.link_timers.first().map(|(t, _)| *t);
        let client = self.client.poll_timeout();
        let relay = self.switch.as_ref().and_then(Switch::poll_timeout);
        let dht = self.dht.as_ref().and_then(crate::dht::Dht::poll_timeout);
        let dir = Some(self.dirsync.poll_timeout()).filter(|t| *t != Time::NEVER);
        let held = self.shaping.poll_timeout();
        [links, client, relay, dht, dir, held]
            .into_iter()
            .flatten()
            .min()
    }

    /// Run every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        self.pace(now);
        self.release_held(now, false);
        let mut due = Vec::new();
        while let Some(&(t, link)) = self.link_timers.first() {
            if t > now {
                break;
            }
            self.link_timers.pop_first();
            self.link_armed.remove(&link);
            due.push(link);
        }
        for &link in &due {
            let r = match self.links.get_mut(&link) {
                Some(e) => e.handle_timeout(now),
                None => continue,
            };
            match r {
                Ok(true) => {
                    self.dirty.insert(link);
                }
                Ok(false) => {}
                Err(error) => self.close_link(now, link, Some(error), true),
            }
        }
        self.client.handle_timeout(now);
        if let Some(s) = self.switch.as_mut() {
            s.handle_timeout(now);
            for e in s.take_errors() {
                self.record(NodeError::Relay(e));
            }
        }
        let wall = self.wall(now);
        if let Some(d) = self.dht.as_mut() {
            d.handle_timeout(now, wall);
        }
        self.dir_timeout(now);
        self.pump(now);
        // Armed after the pump: what it sent moved their keepalives on.
        for link in due {
            self.arm_link(link);
        }
    }

    /// (Re)arm `link`'s timer at its deadline now; a link gone or without timers is disarmed.
    pub(crate) fn arm_link(&mut self, link: LinkId) {
        if let Some(t) = self.link_armed.remove(&link) {
            self.link_timers.remove(&(t, link));
        }
        if let Some(t) = self.links.get(&link).and_then(LinkEntry::poll_timeout) {
            self.link_timers.insert((t, link));
            self.link_armed.insert(link, t);
        }
    }

    /// Feed one input.
    pub fn handle(&mut self, now: Time, input: Input) {
        match input {
            Input::LinkOpened {
                link,
                peer,
                outbound,
            } => self.on_link_opened(now, link, peer, outbound),
            Input::LinkBytes { link, bytes } => self.on_link_bytes(now, link, &bytes),
            Input::LinkClosed { link } => {
                let error = self.links.get(&link).and_then(LinkEntry::finish_error);
                self.close_link(now, link, error, false);
            }
            Input::ConnectFailed { request } => {
                if let Some(target) = self.connects.remove(&request) {
                    self.connecting.remove(&target);
                    self.fail_waiters(now, target);
                }
            }
            Input::StoreDurable { batch, ok } => {
                if let Some(d) = self.dht.as_mut() {
                    d.durable(batch, ok);
                }
            }
        }
        self.pump(now);
    }

    /// Request a 3-hop circuit; [`NodeEvent::Built`] or [`NodeEvent::Failed`] follows.
    pub fn build_circuit(&mut self, now: Time) -> CircHandle {
        let handle = CircHandle(self.next_circ);
        self.next_circ += 1;
        self.builds.insert(handle, BuildState::default());
        self.start_build(now, handle);
        self.pump(now);
        handle
    }

    /// Open a stream to `service` at the circuit's last hop.
    pub fn open_stream(
        &mut self,
        now: Time,
        circ: CircHandle,
        service: &[u8],
    ) -> Result<StreamHandle, CircuitError> {
        let r = self.client.open_stream(circ, service);
        self.pump(now);
        r
    }

    /// Queue data on a stream.
    pub fn stream_send(
        &mut self,
        now: Time,
        stream: StreamHandle,
        data: &[u8],
    ) -> Result<(), CircuitError> {
        let r = self.client.send(stream, data);
        self.pump(now);
        r
    }

    /// Bytes queued on a stream, not yet sent (back-pressure for the data source).
    pub fn stream_queued(&self, stream: StreamHandle) -> usize {
        self.client.queued(stream)
    }

    /// Close a stream.
    pub fn close_stream(&mut self, now: Time, stream: StreamHandle) -> Result<(), CircuitError> {
        let r = self.client.close_stream(stream);
        self.pump(now);
        r
    }

    /// Close a circuit.
    pub fn close_circuit(&mut self, now: Time, circ: CircHandle) {
        self.client.close(circ);
        self.pump(now);
    }

    fn start_build(&mut self, now: Time, handle: CircHandle) {
        let wall = self.wall(now);
        let dir = self.dirsync.directory();
        self.guards
            .refresh(dir, wall, self.cfg.directory.guard_min_age, &mut self.rng);
        if self.guards.current(dir).is_none() {
            // Every guard failed recently: try them again rather than choosing new ones.
            self.guards.clear_down();
        }
        // A relay never puts itself on its own circuits (`09-relay.md#path-selection`).
        let mut avoid = self
            .builds
            .get(&handle)
            .map(|b| b.avoid.clone())
            .unwrap_or_default();
        avoid.extend(self.me);
        if let Some(me) = self.me {
            self.guards.exclude(me);
        }
        match select_path(dir, &self.guards, &avoid, &mut self.rng) {
            Ok(path) => {
                let hops: Vec<HopSpec> = path
                    .iter()
                    .map(|d| HopSpec {
                        node_id: d.node_id(),
                        onion_key: d.onion_key,
                    })
                    .collect();
                let guard = path[0].node_id();
                self.with_link(now, guard, Purpose::Reader, Waiter::Launch(handle, hops));
            }
            Err(_) if self.dirsync.learning() => self.after_sync.push(handle),
            Err(e) => {
                self.record(NodeError::Path(e));
                self.builds.remove(&handle);
                self.outputs.push_back(Output::Event(NodeEvent::Failed {
                    circ: handle,
                    failure: CircuitFailure::NoPath,
                    hop: None,
                }));
            }
        }
    }

    /// Run `waiter` once a link of `purpose` to `target` is established, dialling if needed.
    fn with_link(&mut self, now: Time, target: NodeId, purpose: Purpose, waiter: Waiter) {
        if let Some(&link) = self.links_to.get(&(target, purpose)) {
            if self.links.get(&link).is_some_and(LinkEntry::is_established) {
                self.run_waiter(now, link, waiter);
                return;
            }
        }
        self.waiting
            .entry((target, purpose))
            .or_default()
            .push(waiter);
        if self.links_to.contains_key(&(target, purpose))
            || self.connecting.contains_key(&(target, purpose))
        {
            return;
        }
        let Some(desc) = self.dirsync.directory().get(&target).cloned() else {
            self.fail_waiters(now, (target, purpose));
            return;
        };
        let request = ConnectId(self.next_connect);
        self.next_connect += 1;
        self.connects.insert(request, (target, purpose));
        self.connecting.insert((target, purpose), request);
        self.outputs.push_back(Output::Connect {
            request,
            addr: desc.addr,
        });
    }

    fn run_waiter(&mut self, now: Time, link: LinkId, waiter: Waiter) {
        let Some(entry) = self.links.get_mut(&link) else {
            return;
        };
        let waiter = match waiter {
            Waiter::Dht(_, cells, class) => {
                for c in cells {
                    self.link_send_as(now, link, c, Some(class));
                }
                return;
            }
            Waiter::Dir(cells) => {
                for c in cells {
                    self.link_send(now, link, c);
                }
                return;
            }
            circuit => circuit,
        };
        let Some(circ_id) = entry.alloc_circ_id() else {
            // Every id of this link is used: new circuits go on a new link.
            let key = self
                .links_to
                .iter()
                .find(|(_, l)| **l == link)
                .map(|(k, _)| *k);
            if let Some(key) = key {
                self.links_to.remove(&key);
                self.with_link(now, key.0, key.1, waiter);
            }
            return;
        };
        match waiter {
            Waiter::Launch(handle, hops) => {
                if let Err(e) = self.client.launch(now, handle, link, circ_id, hops) {
                    self.record(NodeError::Circuit(e));
                }
            }
            Waiter::Extend(from) => {
                if let Some(s) = self.switch.as_mut() {
                    s.attach_next(now, from, (link, circ_id));
                }
            }
            // Sent above.
            Waiter::Dht(..) | Waiter::Dir(_) => {}
        }
    }

    fn fail_waiters(&mut self, _now: Time, target: (NodeId, Purpose)) {
        for w in self.waiting.remove(&target).unwrap_or_default() {
            match w {
                Waiter::Launch(handle, hops) => {
                    self.guards.mark_down(target.0);
                    self.outputs_client_failure(handle, hops.first().map(|h| h.node_id));
                }
                Waiter::Extend(from) => {
                    if let Some(s) = self.switch.as_mut() {
                        s.extend_failed(from, DestroyReason::UNREACHABLE);
                    }
                }
                Waiter::Dht(to, _, _) => {
                    if let Some(d) = self.dht.as_mut() {
                        d.unreachable(_now, to);
                    }
                }
                // Discovery asks another relay at its next interval.
                Waiter::Dir(_) => {}
            }
        }
    }

    fn outputs_client_failure(&mut self, circ: CircHandle, hop: Option<NodeId>) {
        self.on_client_event(ClientEvent::Failed {
            circ,
            failure: crate::circuit::CircuitFailure::LinkClosed,
            hop,
        });
    }

    fn on_client_event(&mut self, ev: ClientEvent) {
        match &ev {
            ClientEvent::Built { circ, .. } => {
                self.builds.remove(circ);
            }
            ClientEvent::Failed { circ, hop, .. } => {
                let max = self.cfg.build_attempts;
                if let Some(b) = self.builds.get_mut(circ) {
                    b.attempts += 1;
                    if let Some(h) = hop {
                        b.avoid.insert(*h);
                    }
                    if b.attempts < max {
                        // Retried on a fresh path by `pump` (no recursion here).
                        self.retry.push(*circ);
                        return;
                    }
                    self.builds.remove(circ);
                }
            }
            _ => {}
        }
        self.outputs.push_back(Output::Event(ev));
    }
}
