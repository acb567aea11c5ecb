//! The relay switch (`protocol-spec/09-relay.md`, `04-circuits.md`).
//!
//! Maps (link, circuit id) on the reader's side to (link, circuit id) towards the next hop,
//! answers CREATE with the hop handshake, turns EXTEND into a CREATE to the next relay,
//! opens its own layer of every forward cell and seals its layer onto every backward cell,
//! and runs the exit services (`exit`) when it is the last hop. Limits bound circuits per
//! link and per relay; under pressure each source gets a share (`shares`), idle circuits
//! expire (`timers`), and a replayed hop message 1 is refused before any Diffie-Hellman. A
//! bad cell closes that circuit — DESTROY in both directions — and nothing else.
//!
//! Sans-IO: methods take `now` and queue [`RelayAction`]s. Not in this module: links,
//! dialling (the node opens the link a [`RelayAction::Extend`] asks for), or the directory.

mod error;
pub mod exit;
mod handshakes;
mod shares;
mod timers;

use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::crypto::keys::{LinkKeypair, NodeId};
use crate::crypto::layer::{Forward, RelayLayer};
use crate::crypto::replay::ReplayCache;
use crate::crypto::rng::UmbraRng;
use crate::ids::LinkId;
use crate::time::Time;
use crate::wire::cell::{BODY_LEN, CircId, MAX_LAYERS, RELAY_PAYLOAD_LEN};
use crate::wire::relay_msg::{RelayContext, RelayMsg, RelayMsgError};
use crate::wire::restrict::{ChanMsg, CreateBody, CreatedBody, DestroyReason, HandshakeType};
pub use error::RelayError;
use exit::ExitCirc;
pub use handshakes::{HandshakeStats, MAX_HANDSHAKE_DELAY};
use shares::Shares;
pub use shares::Source;

/// One end of a circuit at this relay.
pub type CircKey = (LinkId, CircId);

/// Who is on the link a CREATE came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrevKind {
    /// An anonymous reader: the circuit's first hop is here.
    Reader,
    /// Another relay.
    Relay,
}

/// Limits a relay operator sets (`09-relay.md#limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayLimits {
    /// Circuits through this relay.
    pub max_circuits: usize,
    /// Circuits per reader link (links from relays are bounded by the table and shares).
    pub max_circuits_per_link: usize,
    /// How long an EXTEND may take (link set-up plus CREATED).
    pub extend_timeout: Duration,
    /// A circuit with no cell for this long is closed (`09-relay.md#idle-circuits`).
    pub idle_timeout: Duration,
    /// The same, once the table is three-quarters full.
    pub pressure_idle_timeout: Duration,
    /// What one hop handshake costs this machine (the runtime measures it at start).
    pub handshake_cost: Duration,
    /// Percent of one core CREATEs and link handshakes may use (`[limits] cpu_percent`).
    pub cpu_percent: u32,
    /// CREATEs a second one anonymous source (an address, a /64) may send...
    pub creates_per_sec: u32,
    /// ...after a burst of this many.
    pub create_burst: u32,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            max_circuits: 20_000,
            max_circuits_per_link: 2_000,
            extend_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(900),
            pressure_idle_timeout: Duration::from_secs(30),
            handshake_cost: Duration::from_micros(250),
            cpu_percent: 100,
            creates_per_sec: 20,
            create_burst: 400,
        }
    }
}

/// Test and simulation hooks: ways a hostile relay misbehaves on forward RELAY cells. Only
/// in builds with the `sim` feature (tests turn it on; a release relay cannot have it).
#[cfg(feature = "sim")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Misbehaviour {
    /// Flip a bit of every n-th forwarded RELAY cell (0: never).
    pub tamper_every: u32,
    /// Drop every n-th forwarded RELAY cell (0: never).
    pub drop_every: u32,
    /// Send every n-th forwarded RELAY cell twice (0: never).
    pub replay_every: u32,
}

/// What a relay saw, for the simulator's privacy invariants (`sim` feature only).
#[cfg(feature = "sim")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A circuit was created from the previous hop.
    Created {
        /// The circuit here.
        circ: CircKey,
        /// Who the previous hop is.
        prev: PrevKind,
    },
    /// A stream asked for a service: the circuit's destination.
    Destination {
        /// The circuit here.
        circ: CircKey,
        /// The service.
        service: Vec<u8>,
    },
}

/// What the switch asks of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayAction {
    /// Send a message on a link.
    Send {
        /// The link.
        link: LinkId,
        /// The message.
        msg: ChanMsg,
    },
    /// Open (or reuse) a link to `target`, then call [`Switch::attach_next`] or
    /// [`Switch::extend_failed`] for `from`.
    Extend {
        /// The circuit asking.
        from: CircKey,
        /// The relay to reach.
        target: NodeId,
    },
    /// Record an observation (`sim` feature only).
    #[cfg(feature = "sim")]
    Observe(Observation),
    /// Bytes for a node-run service (`dht`) on a stream of a circuit ending here.
    ServiceData {
        /// The circuit.
        circ: CircKey,
        /// The stream.
        stream_id: u16,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A circuit ending here closed: forget its service streams.
    CircuitGone {
        /// The circuit.
        circ: CircKey,
    },
}

#[derive(Debug)]
enum Next {
    None,
    Pending {
        handshake: Vec<u8>,
        deadline: Time,
    },
    Attached {
        key: CircKey,
        awaiting_created: Option<Time>,
    },
}

#[derive(Debug)]
struct Entry {
    layer: RelayLayer,
    next: Next,
    exit: Option<ExitCirc>,
    source: Source,
    /// Creation order, for "oldest first" within a source.
    seq: u64,
    /// The last cell in either direction.
    last_active: Time,
}

/// Counters of a relay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Circuits created here.
    pub created: u64,
    /// Cells forwarded towards the exit.
    pub forwarded: u64,
    /// Cells forwarded towards the reader.
    pub backwarded: u64,
    /// Circuits torn down because of an error.
    pub torn_down: u64,
    /// Forward cells whose layer failed here (tampering caught).
    pub layer_failures: u64,
    /// Cells altered by this relay's simulated misbehaviour (always 0 without the `sim` feature).
    pub tampered: u64,
    /// CREATEs refused as replays of a hop message 1.
    pub replays: u64,
    /// Circuits closed to give a smaller source its share of a full table.
    pub evicted: u64,
    /// Circuits closed for being idle.
    pub expired: u64,
}

/// The relay switch.
#[derive(Debug)]
pub struct Switch {
    me: NodeId,
    onion: LinkKeypair,
    limits: RelayLimits,
    circuits: BTreeMap<CircKey, Entry>,
    by_next: BTreeMap<CircKey, CircKey>,
    per_link: BTreeMap<LinkId, usize>,
    /// The highest circuit id each link's peer created (`03-cells.md#circuit-ids`).
    created_high: BTreeMap<LinkId, u32>,
    shares: Shares,
    hop_replay: ReplayCache,
    /// EXTEND and CREATED deadlines; stale entries are skipped when they fall due.
    deadlines: BTreeSet<(Time, CircKey)>,
    next_sweep: Time,
    next_seq: u64,
    /// Bytes queued towards readers by exit services, all circuits together.
    service_queued: usize,
    /// CREATEs waiting for the CPU budget.
    handshakes: handshakes::Handshakes,
    /// Errors of CREATEs answered from the queue.
    errors: Vec<RelayError>,
    actions: VecDeque<RelayAction>,
    rng: UmbraRng,
    #[cfg(feature = "sim")]
    misbehaviour: Misbehaviour,
    #[cfg(feature = "sim")]
    forward_count: u64,
    stats: RelayStats,
}

impl Switch {
    /// A switch for the relay `me` with onion key `onion`.
    pub fn new(me: NodeId, onion: LinkKeypair, limits: RelayLimits, rng: UmbraRng) -> Self {
        Switch {
            me,
            onion,
            limits,
            circuits: BTreeMap::new(),
            by_next: BTreeMap::new(),
            per_link: BTreeMap::new(),
            created_high: BTreeMap::new(),
            shares: Shares::default(),
            hop_replay: ReplayCache::for_handshakes(),
            deadlines: BTreeSet::new(),
            next_sweep: Time::ZERO,
            next_seq: 0,
            service_queued: 0,
            handshakes: handshakes::Handshakes::new(
                limits.handshake_cost,
                limits.cpu_percent,
                (limits.creates_per_sec, limits.create_burst),
            ),
            errors: Vec::new(),
            actions: VecDeque::new(),
            rng,
            #[cfg(feature = "sim")]
            misbehaviour: Misbehaviour::default(),
            #[cfg(feature = "sim")]
            forward_count: 0,
            stats: RelayStats::default(),
        }
    }

    /// Make this relay misbehave (simulator and tests only).
    #[cfg(feature = "sim")]
    pub fn set_misbehaviour(&mut self, m: Misbehaviour) {
        self.misbehaviour = m;
    }

    /// Counters.
    pub fn stats(&self) -> RelayStats {
        self.stats
    }

    /// Circuits through this relay.
    pub fn circuits(&self) -> usize {
        self.circuits.len()
    }

    /// Bytes exit services have queued towards readers on `circ`.
    pub fn circuit_queued(&self, circ: CircKey) -> usize {
        self.circuits
            .get(&circ)
            .and_then(|e| e.exit.as_ref())
            .map_or(0, ExitCirc::queued)
    }

    /// Bytes exit services have queued towards readers, all circuits together.
    pub fn service_queued_total(&self) -> usize {
        self.service_queued
    }

    /// The next action for the node.
    pub fn poll_action(&mut self) -> Option<RelayAction> {
        self.actions.pop_front()
    }

    fn send(&mut self, link: LinkId, msg: ChanMsg) {
        self.actions.push_back(RelayAction::Send { link, msg });
    }

    fn destroy(&mut self, (link, circ_id): CircKey, reason: DestroyReason) {
        self.send(link, ChanMsg::Destroy { circ_id, reason });
    }

    /// A RELAY cell arrived on `link`/`circ_id`, in either direction.
    pub fn handle_relay(
        &mut self,
        now: Time,
        link: LinkId,
        circ_id: CircId,
        mut body: Box<[u8; BODY_LEN]>,
    ) -> Result<(), RelayError> {
        let key = (link, circ_id);
        if let Some(e) = self.circuits.get_mut(&key) {
            e.last_active = now;
            return self.forward(now, key, body);
        }
        if let Some(&prev) = self.by_next.get(&key) {
            let Some(e) = self.circuits.get_mut(&prev) else {
                return Err(RelayError::UnknownCircuit);
            };
            e.last_active = now;
            if let Err(err) = e.layer.seal_backward_relay(&mut body) {
                self.teardown(prev, DestroyReason::PROTOCOL);
                return Err(RelayError::Layer(err));
            }
            self.stats.backwarded += 1;
            self.send(
                prev.0,
                ChanMsg::Relay {
                    circ_id: prev.1,
                    body,
                },
            );
            return Ok(());
        }
        self.destroy(key, DestroyReason::PROTOCOL);
        Err(RelayError::UnknownCircuit)
    }

    fn forward(
        &mut self,
        now: Time,
        key: CircKey,
        mut body: Box<[u8; BODY_LEN]>,
    ) -> Result<(), RelayError> {
        let Some(e) = self.circuits.get_mut(&key) else {
            return Err(RelayError::UnknownCircuit);
        };
        let opened = e.layer.open_forward(&mut body);
        let result = match opened {
            Err(err) => {
                self.stats.layer_failures += 1;
                Err(RelayError::Layer(err))
            }
            Ok(Forward::Pass) => match &e.next {
                Next::Attached {
                    key: next,
                    awaiting_created: None,
                } => {
                    let next = *next;
                    self.pass_on(next, body);
                    Ok(())
                }
                _ => Err(RelayError::State("cell for a next hop that is not open")),
            },
            Ok(Forward::Deliver { offset }) => {
                let mut payload = [0u8; RELAY_PAYLOAD_LEN];
                payload.copy_from_slice(&body[offset..offset + RELAY_PAYLOAD_LEN]);
                self.deliver(now, key, &payload)
            }
        };
        if result.is_err() {
            self.teardown(key, DestroyReason::PROTOCOL);
        }
        result
    }

    fn pass_on(&mut self, next: CircKey, body: Box<[u8; BODY_LEN]>) {
        #[cfg(feature = "sim")]
        let Some(body) = self.misbehave(next, body) else {
            return;
        };
        self.stats.forwarded += 1;
        self.send(
            next.0,
            ChanMsg::Relay {
                circ_id: next.1,
                body,
            },
        );
    }

    /// Apply the simulation's [`Misbehaviour`] to a forwarded cell: `None` if it is dropped.
    #[cfg(feature = "sim")]
    fn misbehave(
        &mut self,
        next: CircKey,
        mut body: Box<[u8; BODY_LEN]>,
    ) -> Option<Box<[u8; BODY_LEN]>> {
        self.forward_count += 1;
        let n = self.forward_count;
        let m = self.misbehaviour;
        if m.drop_every > 0 && n % u64::from(m.drop_every) == 0 {
            self.stats.tampered += 1;
            return None;
        }
        if m.tamper_every > 0 && n % u64::from(m.tamper_every) == 0 {
            let i = usize::try_from(n).unwrap_or(0) % (BODY_LEN - crate::wire::cell::TAG_LEN);
            body[i] ^= 0x01;
            self.stats.tampered += 1;
        }
        if m.replay_every > 0 && n % u64::from(m.replay_every) == 0 {
            self.stats.tampered += 1;
            self.send(
                next.0,
                ChanMsg::Relay {
                    circ_id: next.1,
                    body: body.clone(),
                },
            );
        }
        Some(body)
    }

    fn deliver(
        &mut self,
        now: Time,
        key: CircKey,
        payload: &[u8; RELAY_PAYLOAD_LEN],
    ) -> Result<(), RelayError> {
        let msg = RelayMsg::decode(payload, RelayContext::AtRelay).map_err(RelayError::Message)?;
        let Some(e) = self.circuits.get_mut(&key) else {
            return Err(RelayError::UnknownCircuit);
        };
        match msg {
            RelayMsg::Extend {
                node_id,
                handshake_type,
                handshake,
            } => {
                if !matches!(e.next, Next::None) || e.exit.is_some() {
                    return Err(RelayError::State(
                        "EXTEND on a circuit that already goes on or carries streams",
                    ));
                }
                if usize::from(e.layer.index()) >= MAX_LAYERS {
                    return Err(RelayError::State("EXTEND past the last possible hop"));
                }
                if handshake_type != HandshakeType::NOISE_NK_V1.0 {
                    return Err(RelayError::HandshakeType(handshake_type));
                }
                let target = NodeId(node_id);
                if target == self.me {
                    return Err(RelayError::ExtendToSelf);
                }
                let deadline = now + self.limits.extend_timeout;
                e.next = Next::Pending {
                    handshake,
                    deadline,
                };
                self.arm(deadline, key);
                self.actions
                    .push_back(RelayAction::Extend { from: key, target });
                Ok(())
            }
            other => {
                if !matches!(e.next, Next::None) {
                    return Err(RelayError::State("stream message at a middle hop"));
                }
                #[cfg(feature = "sim")]
                if let RelayMsg::Begin { service, .. } = &other {
                    let service = service.clone();
                    self.actions
                        .push_back(RelayAction::Observe(Observation::Destination {
                            circ: key,
                            service,
                        }));
                }
                let Some(e) = self.circuits.get_mut(&key) else {
                    return Err(RelayError::UnknownCircuit);
                };
                let mut replies = Vec::new();
                let mut delivered = Vec::new();
                let exit = e.exit.get_or_insert_with(ExitCirc::default);
                let before = exit.queued();
                let handled = exit.handle(other, &mut replies, &mut delivered);
                self.service_queued = (self.service_queued + exit.queued()).saturating_sub(before);
                handled?;
                for r in replies {
                    self.reply(key, &r)?;
                }
                for (stream_id, data) in delivered {
                    self.actions.push_back(RelayAction::ServiceData {
                        circ: key,
                        stream_id,
                        data,
                    });
                }
                Ok(())
            }
        }
    }

    /// Seal a message this hop originates and send it towards the reader.
    fn reply(&mut self, key: CircKey, msg: &RelayMsg) -> Result<(), RelayError> {
        let payload = msg
            .encode()
            .map_err(|e| RelayError::Message(RelayMsgError::Decode(e)))?;
        let Some(e) = self.circuits.get_mut(&key) else {
            return Err(RelayError::UnknownCircuit);
        };
        let body = e
            .layer
            .seal_backward_origin(&payload)
            .map_err(RelayError::Layer)?;
        self.send(
            key.0,
            ChanMsg::Relay {
                circ_id: key.1,
                body: Box::new(body),
            },
        );
        Ok(())
    }

    /// A node-run service sends `data` on `stream_id` of circuit `circ`.
    pub fn service_send(
        &mut self,
        circ: CircKey,
        stream_id: u16,
        data: &[u8],
    ) -> Result<(), RelayError> {
        let Some(e) = self.circuits.get_mut(&circ) else {
            return Err(RelayError::UnknownCircuit);
        };
        let Some(exit) = e.exit.as_mut() else {
            return Err(RelayError::State("no streams on this circuit"));
        };
        let mut replies = Vec::new();
        let before = exit.queued();
        let sent = exit.service_send(stream_id, data, &mut replies);
        self.service_queued = (self.service_queued + exit.queued()).saturating_sub(before);
        sent?;
        for r in replies {
            self.reply(circ, &r)?;
        }
        Ok(())
    }

    /// The node opened a link for `from`'s EXTEND and allocated `next` on it: send CREATE.
    pub fn attach_next(&mut self, now: Time, from: CircKey, next: CircKey) {
        let Some(e) = self.circuits.get_mut(&from) else {
            // The circuit died meanwhile: release the id on the next link.
            return;
        };
        let Next::Pending { handshake, .. } = std::mem::replace(&mut e.next, Next::None) else {
            return;
        };
        let deadline = now + self.limits.extend_timeout;
        e.next = Next::Attached {
            key: next,
            awaiting_created: Some(deadline),
        };
        self.arm(deadline, from);
        self.by_next.insert(next, from);
        let create = ChanMsg::Create {
            circ_id: next.1,
            body: CreateBody {
                handshake_type: HandshakeType::NOISE_NK_V1,
                handshake,
            },
        };
        self.send(next.0, create);
    }

    /// The target of `from`'s EXTEND is unknown or unreachable.
    pub fn extend_failed(&mut self, from: CircKey, reason: DestroyReason) {
        self.teardown(from, reason);
    }

    /// CREATED arrived from a next hop.
    pub fn handle_created(
        &mut self,
        link: LinkId,
        circ_id: CircId,
        body: &CreatedBody,
    ) -> Result<(), RelayError> {
        let key = (link, circ_id);
        let Some(&prev) = self.by_next.get(&key) else {
            self.destroy(key, DestroyReason::PROTOCOL);
            return Err(RelayError::UnknownCircuit);
        };
        let ok = matches!(
            self.circuits.get(&prev).map(|e| &e.next),
            Some(Next::Attached {
                awaiting_created: Some(_),
                ..
            })
        );
        if !ok {
            self.teardown(prev, DestroyReason::PROTOCOL);
            return Err(RelayError::State("CREATED that was not awaited"));
        }
        if let Some(Entry {
            next: Next::Attached {
                awaiting_created, ..
            },
            ..
        }) = self.circuits.get_mut(&prev)
        {
            *awaiting_created = None;
        }
        let r = self.reply(
            prev,
            &RelayMsg::Extended {
                handshake: body.handshake.clone(),
            },
        );
        if r.is_err() {
            self.teardown(prev, DestroyReason::PROTOCOL);
        }
        r
    }

    /// DESTROY arrived on `link`/`circ_id`: tear down and pass it on.
    pub fn handle_destroy(&mut self, link: LinkId, circ_id: CircId, reason: DestroyReason) {
        let key = (link, circ_id);
        self.handshakes.purge(link, Some(circ_id));
        if self.circuits.contains_key(&key) {
            self.remove(key, reason, false, true);
        } else if let Some(&prev) = self.by_next.get(&key) {
            self.remove(prev, reason, true, false);
        }
    }

    /// A bad cell or a failure: close the circuit in both directions.
    fn teardown(&mut self, key: CircKey, reason: DestroyReason) {
        if self.circuits.contains_key(&key) {
            self.stats.torn_down += 1;
            self.remove(key, reason, true, true);
        }
    }

    fn remove(&mut self, key: CircKey, reason: DestroyReason, tell_prev: bool, tell_next: bool) {
        let Some(e) = self.circuits.remove(&key) else {
            return;
        };
        self.shares.remove(e.source, e.seq, key);
        if let Some(x) = &e.exit {
            self.service_queued = self.service_queued.saturating_sub(x.queued());
        }
        if e.exit.is_some() {
            self.actions
                .push_back(RelayAction::CircuitGone { circ: key });
        }
        if let Some(n) = self.per_link.get_mut(&key.0) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_link.remove(&key.0);
            }
        }
        if tell_prev {
            self.destroy(key, reason);
        }
        if let Next::Attached { key: next, .. } = e.next {
            self.by_next.remove(&next);
            if tell_next {
                self.destroy(next, reason);
            }
        }
    }
}
