//! A DHT-level simulator (`protocol-spec/06-dht.md`): thousands of real [`Dht`] engines
//! exchanging encoded RPCs with seeded latencies, churn and hostile nodes, without links
//! or circuits under them. Used for the scale questions — lookup rounds as the network
//! grows, availability under churn — where simulating a Noise handshake per relay pair
//! would cost minutes and test nothing the link tests do not. The full-stack [`super::World`]
//! covers the same paths end to end at a smaller scale.

use core::time::Duration;
use std::collections::BTreeMap;

use crate::crypto::keys::{IdentityKey, NodeId};
use crate::crypto::rng::UmbraRng;
use crate::dht::routing::{Group, distance};
use crate::dht::store::MemoryStore;
use crate::dht::{Dht, DhtAction, DhtConfig, Goal, LookupId, LookupOutcome};
use crate::node::SiteValidator;
use crate::time::{Time, WallTime};
use crate::wire::dht_msg::{DhtMsg, Record};

use super::queue::{EventQueue, TimerSlot};

/// How a hostile DHT node answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hostility {
    /// Honest.
    #[default]
    None,
    /// Answers every FIND_VALUE with junk (a record that does not verify), every FIND_SEQ
    /// with the highest sequence there is, and every FIND_NODE with far-away ids.
    Liar,
    /// Never answers.
    Silent,
    /// An eclipse attacker (one of many Sybils): answers every FIND_NODE, FIND_VALUE and
    /// FIND_SEQ with the fellow eclipsers closest to the key, accepts every STORE and keeps
    /// nothing, so that lookups which reach it are steered among the attackers.
    Eclipse,
}

#[derive(Debug)]
enum Ev {
    Deliver {
        to: usize,
        from: NodeId,
        bytes: Vec<u8>,
    },
    Unreachable {
        node: usize,
        to: NodeId,
    },
    Timer {
        node: usize,
        generation: u64,
    },
}

struct DhtNode {
    dht: Dht,
    id: NodeId,
    up: bool,
    hostility: Hostility,
    timer: TimerSlot,
}

/// The DHT-level world.
pub struct DhtWorld {
    queue: EventQueue<Ev>,
    nodes: Vec<DhtNode>,
    index: BTreeMap<NodeId, usize>,
    rng: UmbraRng,
    wall0: u64,
    /// Finished lookups: (node, lookup) → (outcome, rounds).
    pub done: BTreeMap<(usize, LookupId), (LookupOutcome, u32)>,
    /// Messages delivered.
    pub delivered: u64,
    /// The ids of the nodes with [`Hostility::Eclipse`].
    eclipsers: Vec<NodeId>,
    /// The parameters every node runs with (nodes added later too).
    cfg: DhtConfig,
    /// The relays every node knows (its directory), kept for nodes added later.
    known: BTreeMap<NodeId, Group>,
}

impl std::fmt::Debug for DhtWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DhtWorld({} nodes, t={})",
            self.nodes.len(),
            self.queue.now()
        )
    }
}

/// Wall-clock time at the world's start.
pub const WALL_START: u64 = 1_800_000_000;

impl DhtWorld {
    /// `n` DHT nodes from `seed`, each in its own network and knowing all the others.
    pub fn new(seed: u64, n: usize, cfg: DhtConfig) -> DhtWorld {
        let mut rng = UmbraRng::from_u64(seed);
        let members: Vec<(NodeId, Group)> = (0..n)
            .map(|i| {
                let id = IdentityKey::generate(&mut rng).public().node_id();
                (id, [4, (i >> 8) as u8, i as u8, 0])
            })
            .collect();
        let known = members.iter().copied().collect();
        DhtWorld::build(rng, &members, &known, cfg)
    }

    /// A world of `members` (node id and network group), every one of which knows the relays
    /// in `known` (its directory: honest nodes admitted what the directory's caps let in).
    pub fn with_members(
        seed: u64,
        members: &[(NodeId, Group)],
        known: &BTreeMap<NodeId, Group>,
        cfg: DhtConfig,
    ) -> DhtWorld {
        DhtWorld::build(UmbraRng::from_u64(seed), members, known, cfg)
    }

    fn build(
        mut rng: UmbraRng,
        members: &[(NodeId, Group)],
        known: &BTreeMap<NodeId, Group>,
        cfg: DhtConfig,
    ) -> DhtWorld {
        let ids: Vec<NodeId> = members.iter().map(|m| m.0).collect();
        let nodes = ids
            .iter()
            .map(|id| {
                let mut dht = Dht::new(
                    *id,
                    cfg,
                    Box::new(MemoryStore::new(1 << 30)),
                    Box::new(SiteValidator),
                    Time::ZERO,
                );
                dht.set_known(known.clone());
                dht.seed_upkeep(rng.fork(), Time::ZERO);
                DhtNode {
                    dht,
                    id: *id,
                    up: true,
                    hostility: Hostility::None,
                    timer: TimerSlot::default(),
                }
            })
            .collect();
        let index = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        DhtWorld {
            cfg,
            known: known.clone(),
            eclipsers: Vec::new(),
            queue: EventQueue::default(),
            nodes,
            index,
            rng,
            wall0: WALL_START,
            done: BTreeMap::new(),
            delivered: 0,
        }
    }

    /// The current time.
    pub fn now(&self) -> Time {
        self.queue.now()
    }

    /// Wall-clock time now.
    pub fn wall(&self) -> WallTime {
        WallTime(self.wall0 + self.queue.now().as_micros() / 1_000_000)
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s id.
    pub fn id(&self, i: usize) -> NodeId {
        self.nodes[i].id
    }

    /// Whether node `i` is up.
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].up
    }

    /// Make node `i` hostile.
    pub fn set_hostility(&mut self, i: usize, h: Hostility) {
        self.nodes[i].hostility = h;
        let id = self.nodes[i].id;
        self.eclipsers.retain(|e| *e != id);
        if h == Hostility::Eclipse {
            self.eclipsers.push(id);
        }
    }

    /// Stop node `i` for good (churn); its records are gone with it.
    pub fn kill(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.up = false;
        n.dht = Dht::new(
            n.id,
            self.cfg,
            Box::new(MemoryStore::new(0)),
            Box::new(SiteValidator),
            Time::ZERO,
        );
    }

    /// A new relay `id` of network `group` starts at the current time (churn): its
    /// directory is the world's, and it joins from `seeds` random nodes that are up.
    /// Others learn it only through [`DhtWorld::learn`]. Returns its index.
    pub fn add_node(&mut self, id: NodeId, group: Group, seeds: usize) -> usize {
        let now = self.queue.now();
        let mut dht = Dht::new(
            id,
            self.cfg,
            Box::new(MemoryStore::new(1 << 30)),
            Box::new(SiteValidator),
            now,
        );
        dht.set_known(self.known.clone());
        dht.add_known(id, group);
        dht.seed_upkeep(self.rng.fork(), now);
        let i = self.nodes.len();
        self.nodes.push(DhtNode {
            dht,
            id,
            up: true,
            hostility: Hostility::None,
            timer: TimerSlot::default(),
        });
        self.index.insert(id, i);
        let up: Vec<usize> = (0..i).filter(|j| self.nodes[*j].up).collect();
        let picks: Vec<NodeId> = (0..seeds.min(up.len()))
            .map(|_| self.nodes[up[self.rng.below(up.len() as u64) as usize]].id)
            .collect();
        self.nodes[i].dht.bootstrap(now, &picks);
        self.drain(i);
        i
    }

    /// Every node that is up learns relay `id` of network `group` (its descriptor reached
    /// their directories).
    pub fn learn(&mut self, id: NodeId, group: Group) {
        self.known.insert(id, group);
        for n in self.nodes.iter_mut().filter(|n| n.up) {
            n.dht.add_known(id, group);
        }
    }

    /// Every node that is up forgets relay `id` (its descriptor left their directories).
    pub fn forget(&mut self, id: &NodeId) {
        self.known.remove(id);
        for n in self.nodes.iter_mut().filter(|n| n.up) {
            n.dht.remove_known(id);
        }
    }

    /// How many nodes that are up hold the record of `kind` under `key` at the world's time.
    pub fn holders(&self, kind: crate::wire::dht_msg::RecordKind, key: &[u8; 32]) -> usize {
        let wall = self.wall();
        self.nodes
            .iter()
            .filter(|n| n.up && n.dht.store().info(kind, key, wall).is_some())
            .count()
    }

    /// The DHT counters of every node that ever ran, summed (a stopped node's are lost).
    pub fn total_stats(&self) -> crate::dht::DhtStats {
        let mut t = crate::dht::DhtStats::default();
        for n in &self.nodes {
            let s = n.dht.stats();
            t.lookups += s.lookups;
            t.rpcs_out += s.rpcs_out;
            t.republished += s.republished;
            t.republish_skipped += s.republish_skipped;
            t.renewals += s.renewals;
            t.rejoins += s.rejoins;
        }
        t
    }

    /// How many relays every node knows.
    pub fn known_count(&self) -> usize {
        self.known.len()
    }

    /// Join every node from `seeds` random others.
    pub fn join_all(&mut self, seeds: usize) {
        let n = self.nodes.len() as u64;
        for i in 0..self.nodes.len() {
            let picks: Vec<NodeId> = (0..seeds)
                .map(|_| self.nodes[self.rng.below(n) as usize].id)
                .collect();
            let now = self.queue.now();
            self.nodes[i].dht.bootstrap(now, &picks);
            self.drain(i);
        }
    }

    /// Node `i`'s DHT counters.
    pub fn stats(&self, i: usize) -> crate::dht::DhtStats {
        self.nodes[i].dht.stats()
    }

    /// Start a lookup at node `i`.
    pub fn start(&mut self, i: usize, target: [u8; 32], goal: Goal) -> LookupId {
        let now = self.queue.now();
        let wall = self.wall();
        let id = self.nodes[i].dht.start(now, wall, target, goal);
        self.drain(i);
        id
    }

    fn schedule(&mut self, at: Time, ev: Ev) {
        self.queue.schedule(at, ev);
    }

    fn latency(&mut self) -> Duration {
        Duration::from_millis(5 + self.rng.below(75))
    }

    fn drain(&mut self, i: usize) {
        while let Some(a) = self.nodes[i].dht.poll_action() {
            match a {
                DhtAction::Send { to, msg } => {
                    let lat = self.latency();
                    match self.index.get(&to).copied().filter(|t| self.nodes[*t].up) {
                        Some(t) => {
                            let from = self.nodes[i].id;
                            self.schedule(
                                self.queue.now() + lat,
                                Ev::Deliver {
                                    to: t,
                                    from,
                                    bytes: msg.encode(),
                                },
                            );
                        }
                        None => self
                            .schedule(self.queue.now() + lat * 2, Ev::Unreachable { node: i, to }),
                    }
                }
                DhtAction::Done {
                    id,
                    outcome,
                    rounds,
                } => {
                    self.done.insert((i, id), (outcome, rounds));
                }
            }
        }
        let want = self.nodes[i].dht.poll_timeout();
        if let Some((t, generation)) = self.nodes[i].timer.rearm(want) {
            self.schedule(
                t,
                Ev::Timer {
                    node: i,
                    generation,
                },
            );
        }
    }

    /// The eclipsers closest to `target`, as an eclipser would answer.
    fn eclipse_nodes(&self, target: &[u8; 32]) -> Vec<[u8; 32]> {
        let mut near: Vec<[u8; 32]> = self.eclipsers.iter().map(|e| e.0).collect();
        near.sort_by_key(|e| distance(e, target));
        near.truncate(crate::wire::dht_msg::MAX_NODES);
        near
    }

    fn eclipse_answer(&mut self, i: usize, from: NodeId, msg: &DhtMsg) {
        let reply = match msg {
            DhtMsg::FindNode { id, target } => DhtMsg::Nodes {
                id: *id,
                nodes: self.eclipse_nodes(target),
            },
            DhtMsg::FindValue { id, key, .. } | DhtMsg::FindSeq { id, key, .. } => DhtMsg::Nodes {
                id: *id,
                nodes: self.eclipse_nodes(key),
            },
            DhtMsg::Store { id, .. } => DhtMsg::Stored { id: *id, status: 0 },
            _ => return,
        };
        self.reply(i, from, reply);
    }

    fn reply(&mut self, i: usize, to: NodeId, reply: DhtMsg) {
        let lat = self.latency();
        if let Some(&t) = self.index.get(&to) {
            let me = self.nodes[i].id;
            self.schedule(
                self.queue.now() + lat,
                Ev::Deliver {
                    to: t,
                    from: me,
                    bytes: reply.encode(),
                },
            );
        }
    }

    fn hostile_answer(&mut self, i: usize, from: NodeId, msg: &DhtMsg) {
        let reply = match msg {
            DhtMsg::FindValue { id, key, kind } => {
                // A forged record under the key asked for.
                DhtMsg::Value {
                    id: *id,
                    record: Record {
                        kind: *kind,
                        key: *key,
                        value: vec![0xEE; 100],
                    },
                }
            }
            DhtMsg::FindNode { id, target } => {
                // The ids farthest from the target it can think of: other liars' ids, flipped.
                let far: Vec<[u8; 32]> = (0..5u8)
                    .map(|k| {
                        let mut x = *target;
                        x[0] ^= 0x80 | k;
                        x
                    })
                    .collect();
                DhtMsg::Nodes {
                    id: *id,
                    nodes: far,
                }
            }
            DhtMsg::Store { id, .. } => DhtMsg::Stored { id: *id, status: 0 },
            // Claims the highest version there can be (then serves junk for it).
            DhtMsg::FindSeq { id, .. } => DhtMsg::Seq {
                id: *id,
                seq: u64::MAX,
                digest: [0xEE; 32],
            },
            _ => return,
        };
        self.reply(i, from, reply);
    }

    /// Process one event; `false` when none is left.
    pub fn step(&mut self) -> bool {
        let Some((at, ev)) = self.queue.pop() else {
            return false;
        };
        match ev {
            Ev::Deliver { to, from, bytes } => {
                if !self.nodes[to].up {
                    return true;
                }
                self.delivered += 1;
                let Ok(msg) = DhtMsg::decode(&bytes) else {
                    return true;
                };
                match self.nodes[to].hostility {
                    Hostility::Silent => return true,
                    Hostility::Liar => {
                        self.hostile_answer(to, from, &msg);
                        return true;
                    }
                    Hostility::Eclipse => {
                        self.eclipse_answer(to, from, &msg);
                        return true;
                    }
                    Hostility::None => {}
                }
                let wall = self.wall();
                self.nodes[to].dht.handle_rpc(at, wall, from, msg);
                self.drain(to);
            }
            Ev::Unreachable { node, to } => {
                if self.nodes[node].up {
                    self.nodes[node].dht.unreachable(at, to);
                    self.drain(node);
                }
            }
            Ev::Timer { node, generation } => {
                let n = &mut self.nodes[node];
                if !n.up || !n.timer.fire(generation) {
                    return true;
                }
                let wall = WallTime(self.wall0 + at.as_micros() / 1_000_000);
                n.dht.handle_timeout(at, wall);
                self.drain(node);
            }
        }
        true
    }

    /// Run until `deadline`.
    pub fn run_until(&mut self, deadline: Time) {
        while let Some(at) = self.queue.next_time() {
            if at > deadline {
                break;
            }
            self.step();
        }
        self.queue.advance_to(deadline);
    }

    /// Run until every lookup in `ids` finished (or `deadline`).
    pub fn run_lookups(&mut self, ids: &[(usize, LookupId)], deadline: Time) {
        while !ids.iter().all(|k| self.done.contains_key(k)) {
            match self.queue.next_time() {
                Some(at) if at <= deadline => {
                    self.step();
                }
                _ => return,
            }
        }
    }
}
