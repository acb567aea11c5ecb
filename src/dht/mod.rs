//! Sans-IO Kademlia (`protocol-spec/06-dht.md`).
//!
//! [`Dht`] owns the routing table, the record store and the running lookups. It never
//! sends: it queues [`DhtAction::Send`] for a node id, and the node decides how the RPC
//! travels (always over a relay link; readers' requests reach it only through the exit's
//! `dht` service). Records are validated through a [`RecordValidator`] the node supplies
//! (manifest signatures live in `site/`). For manifests a lookup asks every one of the k
//! closest nodes which version it holds (sequence and digest, a few bytes), then fetches
//! one whole copy, highest claim first, and keeps the highest valid sequence: one node lying
//! "not found" or serving an old version cannot hide the current one, and a lookup moves
//! one copy of a manifest, not k.
//!
//! Not in this module: links, cells, circuits, or site verification.

pub mod highwater;
pub mod lookup;
pub mod pacing;
pub mod record_index;
pub mod routing;
mod stats;
pub mod store;
mod storing;
mod upkeep;

pub use stats::DhtStats;
pub use upkeep::BLOCK_RENEWAL;

use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::crypto::keys::NodeId;
use crate::time::{Time, WallTime};
use crate::wire::dht_msg::{DhtMsg, MAX_NODES, Record, RecordKind};
use lookup::Lookup;
use routing::RoutingTable;
use store::{RecordInfo, RecordStore};

/// DHT parameters (`06-dht.md#parameters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhtConfig {
    /// Bucket size and lookup width.
    pub k: usize,
    /// Requests in flight per lookup.
    pub alpha: usize,
    /// Storers per record (`rationale.md#replication`).
    pub replication: usize,
    /// How long an RPC may take.
    pub rpc_timeout: Duration,
    /// How often held records are pushed to the current closest nodes.
    pub republish_interval: Duration,
}

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            k: 20,
            alpha: 3,
            replication: 8,
            rpc_timeout: Duration::from_secs(5),
            republish_interval: Duration::from_secs(3600),
        }
    }
}

/// Why a record is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordRefusal {
    /// It does not verify (signature, hash, key, format).
    #[error("invalid record")]
    Invalid,
    /// It expired.
    #[error("expired record")]
    Expired,
    /// An unknown kind.
    #[error("unknown record kind")]
    Kind,
}

/// Validates records (the node supplies one backed by `site/`).
pub trait RecordValidator: Send + std::fmt::Debug {
    /// Check a record at `now`.
    fn validate(&self, record: &Record, now: WallTime) -> Result<RecordInfo, RecordRefusal>;

    /// The keys of the blocks a held record keeps alive: a manifest's blocks, which its
    /// holders renew (`06-dht.md#renewal`). None by default.
    fn references(&self, _record: &Record) -> Vec<[u8; 32]> {
        Vec::new()
    }
}

/// How long a stored record may wait for its batch's commit (and its acknowledgement).
pub const COMMIT_DELAY: Duration = Duration::from_millis(20);
/// Records that make a batch commit at once.
pub const COMMIT_BATCH: usize = 256;

/// A running lookup's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LookupId(pub u64);

/// What a lookup is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Goal {
    /// The k closest nodes.
    Nodes,
    /// A record of this kind.
    Value(RecordKind),
    /// Store this record on the `replication` closest nodes, until the time given
    /// (`06-dht.md#lifetime`).
    Store(Record, WallTime),
    /// Make the `replication` closest nodes that hold the record of this kind under the
    /// target keep it until the time given; the outcome counts those that did.
    Refresh(RecordKind, WallTime),
}

/// How a lookup ended (an outcome, not an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupOutcome {
    /// The closest nodes that answered.
    Nodes(Vec<NodeId>),
    /// A valid record (for manifests: the highest sequence among the closest nodes).
    Found(Record),
    /// No valid record.
    NotFound,
    /// A store or refresh ended: how many storers accepted the record (status 0), and how
    /// many refused it because they hold a higher sequence or another record with the same
    /// one (status 3, `06-dht.md#store`).
    Stored {
        /// Storers that accepted it.
        copies: u8,
        /// Storers that hold something newer (or equivocal).
        superseded: u8,
    },
}

/// What the DHT asks of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhtAction {
    /// Send an RPC to a relay.
    Send {
        /// The relay.
        to: NodeId,
        /// The message.
        msg: DhtMsg,
    },
    /// A lookup finished.
    Done {
        /// Which.
        id: LookupId,
        /// How.
        outcome: LookupOutcome,
        /// Sequential rounds of requests it took.
        rounds: u32,
    },
}

/// Storers' answers to one store: accepted, and refused as superseded.
#[derive(Debug, Clone, Copy, Default)]
struct StoreCount {
    copies: u8,
    superseded: u8,
}

#[derive(Debug)]
struct Active {
    lookup: Lookup,
    goal: Goal,
    best: Option<(Record, RecordInfo)>,
    /// A store under way: the storers not answered yet, and the answers so far.
    storing: Option<(BTreeSet<NodeId>, StoreCount)>,
    /// Manifest lookups: the versions close nodes said they hold (node, seq, digest), in the
    /// order they arrived (`06-dht.md#manifest-lookups`).
    claims: Vec<(NodeId, u64, [u8; 32])>,
    /// The node a whole manifest is being fetched from.
    fetching: Option<NodeId>,
}

impl Active {
    fn is_manifest(&self) -> bool {
        matches!(self.goal, Goal::Value(k) if k.is_versioned())
    }

    /// The node to fetch a whole manifest from next: the highest claimed sequence above the
    /// one held, the first to claim it on a tie.
    fn next_claim(&self) -> Option<NodeId> {
        let have = self.best.as_ref().map(|(_, i)| i.seq);
        let mut pick: Option<&(NodeId, u64, [u8; 32])> = None;
        for c in &self.claims {
            if have.is_some_and(|h| c.1 <= h) {
                continue;
            }
            if pick.is_none_or(|p| c.1 > p.1) {
                pick = Some(c);
            }
        }
        pick.map(|c| c.0)
    }
}

/// The DHT engine of one relay.
#[derive(Debug)]
pub struct Dht {
    me: NodeId,
    cfg: DhtConfig,
    table: RoutingTable,
    store: Box<dyn RecordStore>,
    validator: Box<dyn RecordValidator>,
    known: BTreeMap<NodeId, routing::Group>,
    lookups: BTreeMap<LookupId, Active>,
    pending: BTreeMap<(NodeId, u32), (LookupId, Time)>,
    /// RPC deadlines, earliest first; an entry answered meanwhile is dropped when its time
    /// comes (the next deadline is O(log n), not a scan).
    rpc_deadlines: BTreeSet<(Time, NodeId, u32)>,
    next_rpc: u32,
    next_lookup: u64,
    actions: VecDeque<DhtAction>,
    upkeep: upkeep::Republishing,
    pacing: pacing::Pacing,
    /// Stores waiting for the store's next commit before they are acknowledged.
    unacked: Vec<(NodeId, u32)>,
    commit_at: Time,
    /// Stores whose batch the store is making durable off the owner task, by batch.
    in_flight: VecDeque<(u64, Vec<(NodeId, u32)>)>,
    stats: DhtStats,
}

impl Dht {
    /// A DHT node `me`.
    pub fn new(
        me: NodeId,
        cfg: DhtConfig,
        store: Box<dyn RecordStore>,
        validator: Box<dyn RecordValidator>,
        now: Time,
    ) -> Dht {
        Dht {
            me,
            cfg,
            table: RoutingTable::new(me, cfg.k),
            store,
            validator,
            known: BTreeMap::new(),
            lookups: BTreeMap::new(),
            pending: BTreeMap::new(),
            rpc_deadlines: BTreeSet::new(),
            next_rpc: 1,
            next_lookup: 1,
            actions: VecDeque::new(),
            upkeep: upkeep::Republishing::new(
                now,
                cfg.republish_interval,
                crate::crypto::rng::UmbraRng::from_seed(me.0),
            ),
            pacing: pacing::Pacing::default(),
            unacked: Vec::new(),
            commit_at: Time::NEVER,
            in_flight: VecDeque::new(),
            stats: DhtStats::default(),
        }
    }

    /// The relays of the node's directory with their network groups
    /// (`06-dht.md#who-takes-part`): only they are served, admitted to the routing table, or
    /// followed in answers. Contacts that left the directory leave the table.
    pub fn set_known(&mut self, known: BTreeMap<NodeId, routing::Group>) {
        self.table.retain(|n| known.contains_key(n));
        self.known = known;
    }

    /// A relay of network `group` joined the directory, or moved to that network
    /// (`06-dht.md#who-takes-part`): a contact that moved leaves the routing table, to come
    /// back with its new network when next seen.
    pub fn add_known(&mut self, id: NodeId, group: routing::Group) {
        if self.known.insert(id, group).is_some_and(|g| g != group) {
            self.table.retain(|n| *n != id);
        }
    }

    /// A relay left the directory: it leaves the routing table too.
    pub fn remove_known(&mut self, id: &NodeId) {
        self.known.remove(id);
        self.table.retain(|n| n != id);
    }

    /// How many relays are known.
    pub fn known_count(&self) -> usize {
        self.known.len()
    }

    /// Counters.
    pub fn stats(&self) -> DhtStats {
        self.stats
    }

    /// The routing table.
    pub fn table(&self) -> &RoutingTable {
        &self.table
    }

    /// The record store.
    pub fn store(&self) -> &dyn RecordStore {
        self.store.as_ref()
    }

    /// The record store, mutably.
    pub fn store_mut(&mut self) -> &mut dyn RecordStore {
        self.store.as_mut()
    }

    /// The next action.
    pub fn poll_action(&mut self) -> Option<DhtAction> {
        self.actions.pop_front()
    }

    /// Join: learn `seeds` and look up our own id (`06-dht.md#joining`).
    pub fn bootstrap(&mut self, now: Time, seeds: &[NodeId]) -> LookupId {
        for s in seeds {
            if let Some(g) = self.known.get(s).filter(|_| *s != self.me) {
                self.table.seen(*s, *g);
            }
        }
        let me = self.me.0;
        self.start(now, WallTime(0), me, Goal::Nodes)
    }

    /// Start a lookup for `target`.
    /// A value lookup starts from the record this node holds itself, if any: a block held is
    /// the answer; a manifest held is the one to beat (`06-dht.md#lookups`).
    pub fn start(&mut self, now: Time, wall: WallTime, target: [u8; 32], goal: Goal) -> LookupId {
        let id = LookupId(self.next_lookup);
        self.next_lookup += 1;
        let seeds = self.table.closest_with_groups(&target, self.cfg.k);
        let lookup = Lookup::new(target, &seeds, self.cfg.k, self.cfg.alpha);
        // Held records were validated when stored; their version is in the store's index.
        let best = match &goal {
            Goal::Value(kind) => self
                .store
                .info(*kind, &target, wall)
                .and_then(|info| Some((self.store.get(*kind, &target, wall)?, info))),
            _ => None,
        };
        self.lookups.insert(
            id,
            Active {
                lookup,
                goal,
                best,
                storing: None,
                claims: Vec::new(),
                fetching: None,
            },
        );
        self.drive(now, id);
        id
    }

    fn send(&mut self, now: Time, to: NodeId, lookup: LookupId, make: impl FnOnce(u32) -> DhtMsg) {
        let rpc = self.next_rpc;
        self.next_rpc = self.next_rpc.wrapping_add(1).max(1);
        let deadline = now + self.cfg.rpc_timeout;
        self.pending.insert((to, rpc), (lookup, deadline));
        self.rpc_deadlines.insert((deadline, to, rpc));
        self.stats.rpcs_out += 1;
        self.actions
            .push_back(DhtAction::Send { to, msg: make(rpc) });
    }

    fn drive(&mut self, now: Time, id: LookupId) {
        let Some(a) = self.lookups.get_mut(&id) else {
            return;
        };
        if a.storing.is_some() {
            if a.storing
                .as_ref()
                .is_some_and(|(waiting, _)| waiting.is_empty())
            {
                self.finish(id);
            }
            return;
        }
        // A block found is final; a manifest waits for every close node (cross-check).
        let found_block = matches!(a.goal, Goal::Value(k) if !k.is_versioned()) && a.best.is_some();
        if found_block || a.lookup.is_done() {
            if matches!(a.goal, Goal::Store(..) | Goal::Refresh(..)) {
                let goal = a.goal.clone();
                let key = *a.lookup.target();
                let targets = a.lookup.closest_answered(self.cfg.replication);
                if targets.is_empty() {
                    self.finish(id);
                    return;
                }
                a.storing = Some((targets.iter().copied().collect(), StoreCount::default()));
                for t in targets {
                    let msg = |rpc| match &goal {
                        Goal::Store(record, expires) => DhtMsg::Store {
                            id: rpc,
                            record: record.clone(),
                            expires: expires.0,
                        },
                        Goal::Refresh(kind, expires) => DhtMsg::Touch {
                            id: rpc,
                            key,
                            kind: *kind,
                            expires: expires.0,
                        },
                        _ => DhtMsg::FindNode {
                            id: rpc,
                            target: key,
                        },
                    };
                    self.send(now, t, id, msg);
                }
                return;
            }
            // A manifest: fetch one whole copy at a time, highest claim first.
            if a.is_manifest() {
                if a.fetching.is_some() {
                    return;
                }
                if let Some(to) = a.next_claim() {
                    a.fetching = Some(to);
                    let key = *a.lookup.target();
                    let kind = match a.goal {
                        Goal::Value(k) => k,
                        _ => RecordKind::MANIFEST,
                    };
                    self.send(now, to, id, |rpc| DhtMsg::FindValue { id: rpc, key, kind });
                    return;
                }
            }
            self.finish(id);
            return;
        }
        let next = a.lookup.next_requests();
        let target = *a.lookup.target();
        let goal = a.goal.clone();
        for to in next {
            match &goal {
                Goal::Value(kind) if kind.is_versioned() => {
                    let kind = *kind;
                    self.send(now, to, id, |rpc| DhtMsg::FindSeq {
                        id: rpc,
                        key: target,
                        kind,
                    });
                }
                Goal::Value(kind) => {
                    let kind = *kind;
                    self.send(now, to, id, |rpc| DhtMsg::FindValue {
                        id: rpc,
                        key: target,
                        kind,
                    });
                }
                _ => self.send(now, to, id, |rpc| DhtMsg::FindNode { id: rpc, target }),
            }
        }
        if self.lookups.get(&id).is_some_and(|a| a.lookup.is_done()) {
            self.drive(now, id);
        }
    }

    /// Stop lookup `id` without an outcome (nobody waits for it any more); its answers
    /// that still arrive are ignored.
    pub fn cancel(&mut self, id: LookupId) {
        if self.lookups.remove(&id).is_some() {
            self.pending.retain(|_, (l, _)| *l != id);
        }
    }

    fn finish(&mut self, id: LookupId) {
        let Some(a) = self.lookups.remove(&id) else {
            return;
        };
        self.pending.retain(|_, (l, _)| *l != id);
        let outcome = match (&a.goal, a.best, a.storing) {
            (Goal::Store(..) | Goal::Refresh(..), _, count) => {
                let count = count.map(|(_, c)| c).unwrap_or_default();
                LookupOutcome::Stored {
                    copies: count.copies,
                    superseded: count.superseded,
                }
            }
            (Goal::Value(_), Some((r, _)), _) => LookupOutcome::Found(r),
            (Goal::Value(_), None, _) => LookupOutcome::NotFound,
            (Goal::Nodes, _, _) => LookupOutcome::Nodes(a.lookup.closest_answered(self.cfg.k)),
        };
        self.stats.lookups += 1;
        self.actions.push_back(DhtAction::Done {
            id,
            outcome,
            rounds: a.lookup.rounds,
        });
    }

    /// An RPC arrived from relay `from` (`06-dht.md#rpcs`).
    pub fn handle_rpc(&mut self, now: Time, wall: WallTime, from: NodeId, msg: DhtMsg) {
        if from == self.me {
            return;
        }
        // Only directory relays take part (`06-dht.md#who-takes-part`): anyone else is
        // neither served nor admitted, whatever it sends.
        let Some(&group) = self.known.get(&from) else {
            self.stats.refused_unknown += 1;
            return;
        };
        // A request admits its sender; an answer only if it was asked for.
        let solicited = match &msg {
            DhtMsg::Nodes { id, .. } | DhtMsg::Value { id, .. } | DhtMsg::Stored { id, .. } => {
                self.pending.contains_key(&(from, *id))
            }
            _ => true,
        };
        if solicited {
            self.table.seen(from, group);
        }
        match msg {
            DhtMsg::FindNode { id, target } => {
                self.stats.rpcs_in += 1;
                let nodes = self.closest_for(&target, from);
                self.actions.push_back(DhtAction::Send {
                    to: from,
                    msg: DhtMsg::Nodes { id, nodes },
                });
            }
            DhtMsg::FindValue { id, key, kind } => {
                self.stats.rpcs_in += 1;
                // Whole records only as fast as the asker's bucket allows (`#pacing`).
                let record = match self.store.get(kind, &key, wall) {
                    Some(r) if self.pacing.take(from, r.value.len() as u64, now) => Some(r),
                    Some(_) => {
                        self.stats.paced += 1;
                        None
                    }
                    None => None,
                };
                let msg = match record {
                    Some(record) => {
                        self.stats.served_bytes += record.value.len() as u64;
                        DhtMsg::Value { id, record }
                    }
                    None => DhtMsg::Nodes {
                        id,
                        nodes: self.closest_for(&key, from),
                    },
                };
                self.actions.push_back(DhtAction::Send { to: from, msg });
            }
            DhtMsg::FindSeq { id, key, kind } => {
                self.stats.rpcs_in += 1;
                let msg = match self.store.info(kind, &key, wall) {
                    Some(info) => DhtMsg::Seq {
                        id,
                        seq: info.seq,
                        digest: info.digest,
                    },
                    None => DhtMsg::Nodes {
                        id,
                        nodes: self.closest_for(&key, from),
                    },
                };
                self.actions.push_back(DhtAction::Send { to: from, msg });
            }
            DhtMsg::Seq { id, seq, digest } => {
                let Some((lid, _)) = self.pending.remove(&(from, id)) else {
                    return;
                };
                if let Some(a) = self.lookups.get_mut(&lid) {
                    if a.is_manifest() && a.fetching.is_none() {
                        a.lookup.on_value(from);
                        // Two versions with one sequence: the first claimed is fetched first
                        // and kept; the conflict is counted (`07-sites.md#rollback-and-equivocation`).
                        if a.claims.iter().any(|c| c.1 == seq && c.2 != digest) {
                            self.stats.equivocations += 1;
                        }
                        a.claims.push((from, seq, digest));
                    } else {
                        a.lookup.on_failure(from);
                    }
                }
                self.drive(now, lid);
            }
            DhtMsg::Store {
                id,
                record,
                expires,
            } => self.on_store(now, wall, from, id, &record, WallTime(expires)),
            DhtMsg::Touch {
                id,
                key,
                kind,
                expires,
            } => self.on_touch(now, wall, from, id, kind, key, WallTime(expires)),
            DhtMsg::Nodes { id, nodes } => {
                let Some((lid, _)) = self.pending.remove(&(from, id)) else {
                    return;
                };
                let nodes: Vec<NodeId> = nodes
                    .into_iter()
                    .map(NodeId)
                    .filter(|n| *n != self.me)
                    .collect();
                let known = &self.known;
                if let Some(a) = self.lookups.get_mut(&lid) {
                    if a.fetching == Some(from) {
                        // It would not (or could no longer) give the whole record.
                        a.fetching = None;
                        a.claims.retain(|c| c.0 != from);
                    }
                    a.lookup.on_nodes(from, &nodes, |n| known.get(n).copied());
                }
                self.drive(now, lid);
            }
            DhtMsg::Value { id, record } => {
                let Some((lid, _)) = self.pending.remove(&(from, id)) else {
                    return;
                };
                let valid = self.validator.validate(&record, wall);
                let Some(a) = self.lookups.get_mut(&lid) else {
                    return;
                };
                let wanted = match (&a.goal, valid) {
                    (Goal::Value(kind), Ok(info))
                        if *kind == record.kind && &record.key == a.lookup.target() =>
                    {
                        Some(info)
                    }
                    _ => None,
                };
                // A whole manifest must be at least the version its sender claimed.
                let claimed = a.claims.iter().find(|c| c.0 == from).map(|c| (c.1, c.2));
                let wanted = wanted.filter(|info| match claimed {
                    Some((seq, digest)) => {
                        info.seq > seq || (info.seq == seq && info.digest == digest)
                    }
                    None => true,
                });
                if a.fetching == Some(from) {
                    a.fetching = None;
                    a.claims.retain(|c| c.0 != from);
                }
                match wanted {
                    Some(info) => {
                        a.lookup.on_value(from);
                        if a.best.as_ref().is_none_or(|(_, b)| info.seq > b.seq) {
                            a.best = Some((record, info));
                        }
                    }
                    None => {
                        // Junk: a forged or mismatched record. Ask someone else.
                        self.stats.invalid_records += 1;
                        a.lookup.on_failure(from);
                        self.table.failed(from);
                    }
                }
                self.drive(now, lid);
            }
            DhtMsg::Stored { id, status } => {
                let Some((lid, _)) = self.pending.remove(&(from, id)) else {
                    return;
                };
                if let Some(Active {
                    storing: Some((waiting, count)),
                    ..
                }) = self.lookups.get_mut(&lid)
                {
                    // Only an answer from a storer asked counts, once.
                    if waiting.remove(&from) {
                        match status {
                            0 => count.copies = count.copies.saturating_add(1),
                            3 => count.superseded = count.superseded.saturating_add(1),
                            _ => {}
                        }
                    }
                }
                self.drive(now, lid);
            }
        }
    }

    fn closest_for(&self, target: &[u8; 32], asker: NodeId) -> Vec<[u8; 32]> {
        self.table
            .closest(target, MAX_NODES + 1)
            .into_iter()
            .filter(|n| *n != asker)
            .take(MAX_NODES)
            .map(|n| n.0)
            .collect()
    }

    /// An RPC to `to` could not be sent (no link).
    pub fn unreachable(&mut self, now: Time, to: NodeId) {
        let keys: Vec<(NodeId, u32)> = self
            .pending
            .keys()
            .filter(|(n, _)| *n == to)
            .copied()
            .collect();
        self.table.failed(to);
        for k in keys {
            if let Some((lid, _)) = self.pending.remove(&k) {
                self.fail_rpc(now, lid, to);
            }
        }
    }

    fn fail_rpc(&mut self, now: Time, lid: LookupId, to: NodeId) {
        if let Some(a) = self.lookups.get_mut(&lid) {
            a.lookup.on_failure(to);
            if a.fetching == Some(to) {
                a.fetching = None;
            }
            a.claims.retain(|c| c.0 != to);
            if let Some((waiting, _)) = a.storing.as_mut() {
                waiting.remove(&to);
            }
        }
        self.drive(now, lid);
    }
}
