//! Cells the bandwidth limits hold back, and the memory cap on them
//! (`protocol-spec/09-relay.md#bandwidth`, `09-relay.md#memory`).
//!
//! Every cell of a circuit, DHT or directory message passes its class's bucket
//! ([`crate::limits::Shaper`]) as it arrives and as it leaves. A cell the bucket cannot pay
//! for yet is held in its class's queue, in order, and released when the bucket has
//! refilled — the node's own class first — never dropped: a held cell is a SENDME not yet
//! earned, so the circuit windows stop its sender, which is how a limit pushes back. Bytes
//! read from sockets take from the inbound total; while it is in debt, and while the DHT
//! messages held from or to one link pass [`MAX_HELD_DHT_PER_LINK`], the driver reads
//! nothing more (from any link, or from that one: [`crate::node::Node::read_paused`]). So a
//! peer asking for records faster than `seeding` lets them out is read no faster than its
//! answers leave.
//!
//! Held cells are memory. When held cells and exit replies together pass the `memory` limit,
//! the circuits holding the oldest held cells are closed (`DESTROY` with `RESOURCE_LIMIT`)
//! until they are under three-quarters of it, as arti's memory quota reclaims oldest first;
//! a circuit holding more cells than its window allows is closed at once (an honest sender
//! cannot have sent them).
//!
//! With a monthly quota, every minute the pacer ([`crate::limits::period::Pacer`]) counts the
//! bytes read and written and sets the total rate to what spends the rest of the quota evenly
//! over the rest of the period; a relay keeps the period's state in its store (state
//! `accounting`) so a restart does not forget it (`09-relay.md#accounting`).
//! Not in this module: the buckets (`limits`), the protocol handling of a released cell
//! (`routing`), or handshakes.

use std::collections::{BTreeMap, VecDeque};

use super::Node;
use crate::ids::LinkId;
use crate::limits::period::{PACE_INTERVAL_SECS, Pacer, PeriodState};
use crate::limits::{Class, Direction, Limits, Shaper};
use crate::time::{Time, WallTime};
use crate::wire::cell::{CELL_LEN, CircId};
use crate::wire::restrict::{ChanMsg, DestroyReason};

/// What one held cell costs, in bucket bytes and memory.
const CELL: u64 = CELL_LEN as u64;
/// Held DHT and directory cells from or to one link past which that link is not read.
pub const MAX_HELD_DHT_PER_LINK: usize = 512;
/// Cells one circuit may have held in one direction: its window and room for the
/// non-DATA cells beside it (`05-streams.md#flow-control`). More breaks flow control.
pub const MAX_HELD_PER_CIRCUIT: usize = crate::flow::CIRC_WINDOW as usize + 500;
/// Held cells released as one batch: the wait for them sets the next wake-up, so a node
/// at its limit wakes at most `rate / (8 cells)` times a second.
const RELEASE_BATCH: u64 = 8 * CELL;

/// Bytes carried, by subsystem (the dashboard's bandwidth graph). Counted in whole cells on
/// links, both directions, as the limits' buckets pass them (`CREATE`, `CREATED`, `DESTROY`
/// and link cells are not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Cells of this node's own circuits (its reader and gateway).
    pub own: u64,
    /// Cells relayed for others' circuits.
    pub relayed: u64,
    /// DHT cells between relays.
    pub dht: u64,
    /// Bytes of held records served to other nodes (included in `dht` as cells).
    pub seeding: u64,
}

/// What the limits did (`/api/status`, `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShapingStats {
    /// Cells held now.
    pub held_cells: usize,
    /// Cells that were ever held.
    pub held_total: u64,
    /// Circuits closed because held data passed the memory limit.
    pub closed_for_memory: u64,
    /// Circuits closed for holding more cells than a window allows.
    pub closed_for_overrun: u64,
    /// Links the runtime dropped because their peer stopped reading and their socket queue
    /// passed its cap, or all queues together passed half of `memory`.
    pub links_dropped_unread: u64,
}

#[derive(Debug)]
struct Held {
    link: LinkId,
    msg: ChanMsg,
    at: Time,
}

/// The held cells of one node.
#[derive(Debug)]
pub(super) struct Shaping {
    pub(super) shaper: Shaper,
    memory: u64,
    queues: [[VecDeque<Held>; 4]; 2],
    /// Held cells per circuit end, each direction.
    per_circ: BTreeMap<(Direction, LinkId, CircId), usize>,
    /// Held DHT and directory cells per link, from it and to it.
    dht_held: BTreeMap<LinkId, usize>,
    /// The queue holding DHT and directory cells to a link, and how many: later ones to that
    /// link wait in the same queue, so fragments of two messages never interleave.
    dht_out: BTreeMap<LinkId, (Class, usize)>,
    stats: ShapingStats,
    /// The accounting period's pacer, its next run, and the bytes (read, written) it has
    /// counted.
    pacer: Option<Pacer>,
    next_pace: Time,
    paced: (u64, u64),
    /// Bytes handed to the driver for sockets.
    pub(super) written: u64,
}

/// The store state holding the accounting period (`09-relay.md#accounting`).
pub const ACCOUNTING_STATE: &str = "accounting";

impl Shaping {
    pub(super) fn new(limits: &Limits, (now, wall): (Time, WallTime)) -> Shaping {
        let pacer = limits.accounting.map(|a| Pacer::new(a, None, wall));
        let mut shaper = Shaper::new(limits, now);
        if let Some(p) = &pacer {
            shaper.pace(now, p.rate(wall));
        }
        Shaping {
            shaper,
            memory: limits.memory,
            queues: Default::default(),
            per_circ: BTreeMap::new(),
            dht_held: BTreeMap::new(),
            dht_out: BTreeMap::new(),
            stats: ShapingStats::default(),
            pacer,
            next_pace: now,
            paced: (0, 0),
            written: 0,
        }
    }

    fn queue(&mut self, dir: Direction, class: Class) -> &mut VecDeque<Held> {
        &mut self.queues[dir as usize][class as usize]
    }

    /// When the first held cell of any queue could be released.
    pub(super) fn poll_timeout(&self) -> Option<Time> {
        let mut at: Option<Time> = None;
        for dir in Direction::BOTH {
            for class in Class::ALL {
                if !self.queues[dir as usize][class as usize].is_empty() {
                    let t = self.shaper.ready_at(dir, class, RELEASE_BATCH);
                    // A batch may be more than a small class's burst: then one cell.
                    let t = if t == Time::NEVER {
                        self.shaper.ready_at(dir, class, CELL)
                    } else {
                        t
                    };
                    at = Some(at.map_or(t, |a| a.min(t)));
                }
            }
        }
        let read = self.shaper.read_paused_until();
        let cpu = self.shaper.cpu_paused_until();
        let pace = self.pacer.as_ref().map(|_| self.next_pace);
        [at, read, cpu, pace].into_iter().flatten().min()
    }

    fn forget(&mut self, dir: Direction, link: LinkId, msg: &ChanMsg) {
        self.stats.held_cells = self.stats.held_cells.saturating_sub(1);
        match msg {
            ChanMsg::Relay { circ_id, .. } => {
                let key = (dir, link, *circ_id);
                if let Some(n) = self.per_circ.get_mut(&key) {
                    *n -= 1;
                    if *n == 0 {
                        self.per_circ.remove(&key);
                    }
                }
            }
            _ => {
                if let Some(n) = self.dht_held.get_mut(&link) {
                    *n -= 1;
                    if *n == 0 {
                        self.dht_held.remove(&link);
                    }
                }
                if dir == Direction::Out {
                    if let Some((_, n)) = self.dht_out.get_mut(&link) {
                        *n -= 1;
                        if *n == 0 {
                            self.dht_out.remove(&link);
                        }
                    }
                }
            }
        }
    }

    /// Drop the held cells of a circuit end that is gone: they can no longer be delivered.
    fn purge(&mut self, link: LinkId, circ_id: CircId) {
        for dir in Direction::BOTH {
            if self.per_circ.remove(&(dir, link, circ_id)).is_none() {
                continue;
            }
            for q in &mut self.queues[dir as usize] {
                let before = q.len();
                q.retain(|h| {
                    !(h.link == link
                        && matches!(h.msg, ChanMsg::Relay { circ_id: c, .. } if c == circ_id))
                });
                self.stats.held_cells = self.stats.held_cells.saturating_sub(before - q.len());
            }
        }
    }

    /// Drop every held cell of a link that closed.
    pub(super) fn forget_link(&mut self, link: LinkId) {
        self.per_circ.retain(|(_, l, _), _| *l != link);
        self.dht_held.remove(&link);
        self.dht_out.remove(&link);
        for q in self.queues.iter_mut().flatten() {
            let before = q.len();
            q.retain(|h| h.link != link);
            self.stats.held_cells = self.stats.held_cells.saturating_sub(before - q.len());
        }
    }

    /// Counters.
    pub(super) fn stats(&self) -> ShapingStats {
        self.stats
    }
}

impl Node {
    /// The class of a message on `link`, if a bucket governs it (handshake, CREATE, CREATED
    /// and DESTROY cells never wait: they are few, and delaying a DESTROY holds resources).
    fn class_of(&self, link: LinkId, msg: &ChanMsg) -> Option<Class> {
        match msg {
            ChanMsg::Relay { circ_id, .. } if self.client.owns(link, *circ_id) => Some(Class::Own),
            ChanMsg::Relay { .. } => Some(Class::Relayed),
            ChanMsg::Dht { .. } | ChanMsg::Dir { .. } => Some(Class::Dht),
            _ => None,
        }
    }

    /// A message arrived on `link`: handle it now if its bucket pays, else hold it.
    pub(super) fn dispatch(
        &mut self,
        now: Time,
        link: LinkId,
        peer: Option<crate::link::Peer>,
        msg: ChanMsg,
    ) {
        if let ChanMsg::Destroy { circ_id, .. } = &msg {
            self.shaping.purge(link, *circ_id);
        }
        match self.class_of(link, &msg) {
            Some(class) if !self.pass(now, Direction::In, class) => {
                self.hold(now, Direction::In, class, link, msg);
            }
            _ => self.dispatch_now(now, link, peer, msg),
        }
    }

    /// Send `msg` on `link` as its class (DHT and directory messages: `Class::Dht`).
    pub(super) fn link_send(&mut self, now: Time, link: LinkId, msg: ChanMsg) {
        let class = self.class_of(link, &msg);
        self.link_send_as(now, link, msg, class);
    }

    /// Send `msg` on `link`, governed by `class` (`None`: never held).
    pub(super) fn link_send_as(
        &mut self,
        now: Time,
        link: LinkId,
        msg: ChanMsg,
        class: Option<Class>,
    ) {
        if let ChanMsg::Destroy { circ_id, .. } = &msg {
            self.shaping.purge(link, *circ_id);
        }
        // A DHT or directory message to a link with such cells held waits behind them, in
        // their queue: the fragments of two messages must not interleave (`03-cells.md#dht`).
        let behind = match &msg {
            ChanMsg::Dht { .. } | ChanMsg::Dir { .. } => self.shaping.dht_out.get(&link),
            _ => None,
        };
        if let (Some(_), Some(&(queue, _))) = (class, behind) {
            self.hold(now, Direction::Out, queue, link, msg);
            return;
        }
        match class {
            Some(class) if !self.pass(now, Direction::Out, class) => {
                self.hold(now, Direction::Out, class, link, msg);
            }
            _ => self.send_now(link, msg),
        }
    }

    /// Whether a cell of `class` may pass now: nothing of its class waits before it, and the
    /// buckets pay.
    fn pass(&mut self, now: Time, dir: Direction, class: Class) -> bool {
        self.shaping.queue(dir, class).is_empty()
            && self.shaping.shaper.admit(now, dir, class, CELL)
    }

    fn hold(&mut self, now: Time, dir: Direction, class: Class, link: LinkId, msg: ChanMsg) {
        let s = &mut self.shaping;
        s.stats.held_cells += 1;
        s.stats.held_total += 1;
        let overrun = match &msg {
            ChanMsg::Relay { circ_id, .. } => {
                let n = s.per_circ.entry((dir, link, *circ_id)).or_default();
                *n += 1;
                (*n > MAX_HELD_PER_CIRCUIT).then_some(*circ_id)
            }
            _ => {
                *s.dht_held.entry(link).or_default() += 1;
                if dir == Direction::Out {
                    s.dht_out.entry(link).or_insert((class, 0)).1 += 1;
                }
                None
            }
        };
        s.queue(dir, class).push_back(Held { link, msg, at: now });
        if let Some(circ_id) = overrun {
            self.shaping.stats.closed_for_overrun += 1;
            self.close_held_circuit(link, circ_id);
        }
        self.reclaim();
    }

    /// Release every held cell the buckets now pay for, own class first; with `all`, every
    /// held cell whatever the buckets say.
    pub(super) fn release_held(&mut self, now: Time, all: bool) {
        for dir in Direction::BOTH {
            for class in Class::ALL {
                while !self.shaping.queue(dir, class).is_empty()
                    && (all || self.shaping.shaper.admit(now, dir, class, CELL))
                {
                    let Some(h) = self.shaping.queue(dir, class).pop_front() else {
                        break;
                    };
                    self.shaping.forget(dir, h.link, &h.msg);
                    match dir {
                        Direction::In => {
                            let peer = self
                                .links
                                .get(&h.link)
                                .and_then(super::links::LinkEntry::peer);
                            if self.links.contains_key(&h.link) {
                                self.dispatch_now(now, h.link, peer, h.msg);
                            }
                        }
                        Direction::Out => self.send_now(h.link, h.msg),
                    }
                }
            }
        }
    }

    /// Apply `limits` from `now` on (cells held under the old ones are released first; the
    /// accounting period starts afresh).
    pub fn set_limits(&mut self, now: Time, limits: Limits) {
        self.release_held(now, true);
        let wall = self.wall(now);
        self.shaping = Shaping::new(&limits, (now, wall));
        self.cfg.limits = limits;
        self.pump(now);
    }

    /// Close the circuit one of whose ends is `link`/`circ_id` and drop what it holds.
    fn close_held_circuit(&mut self, link: LinkId, circ_id: CircId) {
        let ends = self
            .switch
            .as_mut()
            .and_then(|s| s.close_end((link, circ_id), DestroyReason::RESOURCE_LIMIT));
        self.shaping.purge(link, circ_id);
        for (l, c) in ends.into_iter().flatten() {
            self.shaping.purge(l, c);
        }
    }

    /// While held cells and exit replies pass the memory limit, close the circuit holding
    /// the oldest held relayed cell, down to three-quarters of the limit.
    fn reclaim(&mut self) {
        let used = |n: &Node| {
            (n.shaping.stats.held_cells as u64) * CELL
                + n.switch
                    .as_ref()
                    .map_or(0, |s| s.service_queued_total() as u64)
        };
        if used(self) <= self.shaping.memory {
            return;
        }
        let low = self.shaping.memory / 4 * 3;
        while used(self) > low {
            let q = &self.shaping.queues;
            let oldest = Direction::BOTH
                .iter()
                .filter_map(|&d| Some((d, q[d as usize][Class::Relayed as usize].front()?)))
                .min_by_key(|(_, h)| h.at)
                .and_then(|(d, h)| match h.msg {
                    ChanMsg::Relay { circ_id, .. } => Some((d, h.link, circ_id)),
                    _ => None,
                });
            let Some((dir, link, circ_id)) = oldest else {
                return;
            };
            self.shaping.stats.closed_for_memory += 1;
            let before = self.shaping.stats.held_cells;
            self.close_held_circuit(link, circ_id);
            if self.shaping.stats.held_cells >= before {
                // Nothing went with it: drop that cell itself, so the loop always ends.
                if let Some(h) = self.shaping.queue(dir, Class::Relayed).pop_front() {
                    self.shaping.forget(dir, h.link, &h.msg);
                }
            }
        }
    }

    /// Whether the driver should stop reading `link` for now: the inbound total or the CPU
    /// budget is in debt, or the DHT messages held from or to the link are many.
    pub fn read_paused(&self, now: Time, link: LinkId) -> bool {
        let shaper = &self.shaping.shaper;
        shaper.read_paused_until().is_some_and(|t| t > now)
            || shaper.cpu_paused_until().is_some_and(|t| t > now)
            || self.shaping.dht_held.get(&link).copied().unwrap_or(0) >= MAX_HELD_DHT_PER_LINK
    }

    /// The most a link should read from its socket at once: a twentieth of a second of the
    /// inbound total's rate (within 2 KiB and `max`), or `max` with no total. So while the
    /// total holds reading back, one link that always has bytes waiting takes a small share
    /// at each turn rather than a second of the budget, and the others are read between its
    /// reads (`09-relay.md#bandwidth`).
    pub fn read_quantum(&self, max: usize) -> usize {
        self.shaping.shaper.read_quantum(max)
    }

    /// Count the bytes of the last minute into the accounting period and set the total rate
    /// for the rest of it; a relay saves the period's state in its store.
    pub(super) fn pace(&mut self, now: Time) {
        if self.shaping.pacer.is_none() || now < self.shaping.next_pace {
            return;
        }
        let wall = self.wall(now);
        let s = &mut self.shaping;
        s.next_pace = now + core::time::Duration::from_secs(PACE_INTERVAL_SECS);
        let (read, written) = (s.shaper.bytes_read(), s.written);
        let Some(p) = s.pacer.as_mut() else { return };
        p.record(wall, read - s.paced.0, written - s.paced.1);
        s.paced = (read, written);
        let rate = p.rate(wall);
        let state = p.state().encode();
        s.shaper.pace(now, rate);
        if let Some(d) = self.dht.as_mut() {
            let _ = d.with_store(|st| st.put_state(ACCOUNTING_STATE, &state));
        }
    }

    /// Count what was carried since the last pace into the accounting period now, and save
    /// it (a relay; a reader saves [`Node::accounting`] itself): called when the node stops.
    pub fn flush_accounting(&mut self, now: Time) {
        self.shaping.next_pace = now;
        self.pace(now);
    }

    /// Continue the accounting period of `state` (kept by an earlier run), if it is the
    /// current one.
    pub fn restore_accounting(&mut self, now: Time, state: PeriodState) {
        let wall = self.wall(now);
        if let Some(p) = self.shaping.pacer.as_mut() {
            *p = Pacer::new(p.accounting(), Some(state), wall);
            let rate = p.rate(wall);
            self.shaping.shaper.pace(now, rate);
        }
    }

    /// Continue the accounting period the DHT store kept, if any.
    pub(super) fn restore_accounting_from_store(&mut self, now: Time) {
        let saved = self
            .dht
            .as_mut()
            .and_then(|d| d.with_store(|s| s.get_state(ACCOUNTING_STATE)))
            .and_then(|b| PeriodState::decode(&b).ok());
        if let Some(state) = saved {
            self.restore_accounting(now, state);
        }
    }

    /// The accounting period's state, to keep (`None`: no quota).
    pub fn accounting(&self) -> Option<&Pacer> {
        self.shaping.pacer.as_ref()
    }

    /// The limits this node was started with.
    pub fn limits(&self) -> &Limits {
        &self.cfg.limits
    }

    /// The handshake queue's counters (relays).
    pub fn handshake_stats(&self) -> Option<crate::relay::HandshakeStats> {
        self.switch
            .as_ref()
            .map(crate::relay::Switch::handshake_stats)
    }

    /// The process spent `micros` of CPU since the last call (the driver measures it): past
    /// `cpu_percent` of a core, the driver reads no socket until the budget refills
    /// (`09-relay.md#handshakes`).
    pub fn charge_cpu(&mut self, now: Time, micros: u64) {
        self.shaping.shaper.charge_cpu(now, micros);
    }

    /// Links still in their handshake (the driver accepts no more past a cap).
    pub fn link_handshakes(&self) -> usize {
        self.links.values().filter(|e| !e.is_established()).count()
    }

    /// The inbound link that has been in its handshake longest (link ids grow with time),
    /// the one that gives way when too many are (`09-relay.md#handshakes`).
    pub fn oldest_inbound_handshake(&self) -> Option<LinkId> {
        self.links
            .iter()
            .find(|(_, e)| !e.is_established() && e.dialled.is_none())
            .map(|(id, _)| *id)
    }

    /// Bytes read from sockets take from the inbound total.
    pub(super) fn charge_read(&mut self, now: Time, bytes: usize) {
        self.shaping.shaper.charge_read(now, bytes as u64);
    }

    /// Bytes passed and limits, per class and direction.
    pub fn shaper(&self) -> &Shaper {
        &self.shaping.shaper
    }

    /// What the limits held and closed.
    pub fn shaping_stats(&self) -> ShapingStats {
        self.shaping.stats()
    }

    /// The runtime dropped a link whose peer stopped reading (`09-relay.md#memory`).
    pub fn note_link_dropped_unread(&mut self) {
        self.shaping.stats.links_dropped_unread += 1;
    }

    /// Bytes carried so far, by subsystem: the cells each class's buckets passed, both
    /// directions (held records served, in bytes, from the DHT's own count).
    pub fn traffic(&self) -> Traffic {
        let s = &self.shaping.shaper;
        let both = |c| s.usage(Direction::In, c).bytes + s.usage(Direction::Out, c).bytes;
        Traffic {
            own: both(Class::Own),
            relayed: both(Class::Relayed),
            dht: both(Class::Dht) + both(Class::Seeding),
            seeding: self.dht.as_ref().map_or(0, |d| d.stats().served_bytes),
        }
    }
}
