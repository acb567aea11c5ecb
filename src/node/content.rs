//! The node's content side (`protocol-spec/06-dht.md`): DHT RPCs over relay links, the
//! exit's `dht` service for readers, and the record validator backed by `site/`.
//! Part of [`super::Node`]; see its docs. This is the one place that decides how a DHT
//! request travels: readers' requests arrive only through a circuit's `dht` stream; the
//! DHT's own RPCs go over relay links.

#[cfg(feature = "sim")]
use core::net::SocketAddr;
use std::collections::BTreeMap;

use super::exit_load::{ExitLoad, MAX_RELAY_QUEUED};
use super::links::Purpose;
use super::{Node, NodeError, Waiter};
use crate::crypto::hash;
use crate::crypto::keys::NodeId;
use crate::dht::store::RecordInfo;
use crate::dht::{DhtAction, Goal, LookupOutcome, RecordRefusal, RecordValidator};
use crate::ids::LinkId;
use crate::link::Peer;
use crate::relay::exit::{ExitError, MAX_SERVICE_QUEUE};
use crate::relay::{CircKey, RelayError};
use crate::site::address::SiteAddress;
use crate::site::{manifest, verify_block, writers};
use crate::time::{Time, WallTime};
use crate::wire::dht_msg::{
    DhtMsg, ExitReply, ExitRequest, MAX_MESSAGE, Record, RecordKind, StreamFramer,
};
use crate::wire::restrict::dht_fragments;

/// Refusal codes in `REFUSED` (`06-dht.md#exit-requests`).
mod refusal {
    pub const INVALID: u8 = 1;
    pub const BUSY: u8 = 2;
    pub const NO_DHT: u8 = 3;
    pub const SUPERSEDED: u8 = 4;
}

/// Validates records with the site rules (`06-dht.md#records`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SiteValidator;

impl RecordValidator for SiteValidator {
    fn validate(&self, record: &Record, now: WallTime) -> Result<RecordInfo, RecordRefusal> {
        match record.kind {
            RecordKind::BLOCK => {
                verify_block(&record.key, &record.value).map_err(|_| RecordRefusal::Invalid)?;
                Ok(RecordInfo {
                    expires: WallTime(u64::MAX),
                    seq: 0,
                    digest: record.key,
                })
            }
            RecordKind::MANIFEST => {
                let u = manifest::parse(&record.value).map_err(|_| RecordRefusal::Invalid)?;
                let site = u.claimed_site();
                if site.dht_key() != record.key {
                    return Err(RecordRefusal::Invalid);
                }
                let v = u.verify(&site, now).map_err(|e| match e {
                    crate::site::SiteError::Expired { .. } => RecordRefusal::Expired,
                    _ => RecordRefusal::Invalid,
                })?;
                Ok(RecordInfo {
                    expires: v.manifest().expires,
                    seq: v.manifest().seq,
                    digest: hash::hash(&record.value),
                })
            }
            RecordKind::ROSTER => {
                let site = writers::claimed_site(&record.value).ok_or(RecordRefusal::Invalid)?;
                if writers::roster_dht_key(&site.0) != record.key {
                    return Err(RecordRefusal::Invalid);
                }
                let r = writers::roster::parse(&record.value, &site)
                    .map_err(|_| RecordRefusal::Invalid)?;
                Ok(RecordInfo {
                    expires: WallTime(u64::MAX),
                    seq: r.roster.seq,
                    digest: r.digest(),
                })
            }
            RecordKind::WRITER => {
                // Version 2 only: a version-1 manifest lives under kind 1.
                let site = writers::claimed_site(&record.value)
                    .filter(|_| record.value.first() == Some(&writers::head::HEAD_VERSION))
                    .ok_or(RecordRefusal::Invalid)?;
                let h = writers::head::parse(&record.value, &site)
                    .map_err(|_| RecordRefusal::Invalid)?;
                if writers::line_dht_key(&site.0, &h.head.line()) != record.key {
                    return Err(RecordRefusal::Invalid);
                }
                if now >= h.head.expires {
                    return Err(RecordRefusal::Expired);
                }
                if h.head.published.0 > now.0.saturating_add(600) {
                    return Err(RecordRefusal::Invalid);
                }
                Ok(RecordInfo {
                    expires: h.head.expires,
                    seq: h.head.seq,
                    digest: h.digest(),
                })
            }
            RecordKind::HISTORY => {
                // Any version-2 writer manifest, under the hash of its bytes.
                if !hash::ct_eq_32(&hash::hash(&record.value), &record.key) {
                    return Err(RecordRefusal::Invalid);
                }
                let site = writers::claimed_site(&record.value)
                    .filter(|_| record.value.first() == Some(&writers::head::HEAD_VERSION))
                    .ok_or(RecordRefusal::Invalid)?;
                let h = writers::head::parse(&record.value, &site)
                    .map_err(|_| RecordRefusal::Invalid)?;
                if now >= h.head.expires {
                    return Err(RecordRefusal::Expired);
                }
                Ok(RecordInfo {
                    expires: h.head.expires,
                    seq: 0,
                    digest: record.key,
                })
            }
            _ => Err(RecordRefusal::Kind),
        }
    }

    fn references(&self, record: &Record) -> Vec<[u8; 32]> {
        match record.kind {
            RecordKind::MANIFEST => {
                manifest::parse(&record.value).map_or_else(|_| Vec::new(), |u| u.claimed_blocks())
            }
            RecordKind::WRITER => writers::claimed_site(&record.value)
                .and_then(|site| writers::head::parse(&record.value, &site).ok())
                .map(|h| h.head.blocks())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// What a relay's DHT saw, for the simulator's privacy checks (`sim` feature only).
#[cfg(feature = "sim")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtObserved {
    /// The address of the relay that asked.
    pub from: SocketAddr,
    /// The key asked about or stored.
    pub key: [u8; 32],
}

/// Exit-side state of `dht` streams and the lookups run for them.
#[derive(Debug, Default)]
pub(crate) struct ContentState {
    framers: BTreeMap<(CircKey, u16), StreamFramer>,
    pub(crate) load: ExitLoad,
    /// Lookup rounds of finished lookups (for measurements).
    pub(crate) rounds: Vec<u32>,
    #[cfg(feature = "sim")]
    pub(crate) observed: Vec<DhtObserved>,
    /// A hostile exit's old manifests, served instead of what its lookups find (`sim` only).
    #[cfg(feature = "sim")]
    pub(crate) stale: BTreeMap<[u8; 32], Record>,
}

impl Node {
    /// Join the DHT from `seeds` (relays from the directory).
    pub fn dht_bootstrap(&mut self, now: Time, seeds: &[NodeId]) {
        if let Some(d) = self.dht.as_mut() {
            d.bootstrap(now, seeds);
        }
        self.pump(now);
    }

    /// Save the DHT's contacts in the record store (`peers`), to rejoin from them after a
    /// restart.
    pub fn save_peers(&mut self) {
        let Some(d) = self.dht.as_mut() else { return };
        let ids: Vec<u8> = d
            .table()
            .closest(&[0; 32], usize::MAX)
            .iter()
            .flat_map(|n| n.0)
            .collect();
        let _ = d.store_mut().put_state("peers", &ids);
    }

    /// Contacts saved by [`Node::save_peers`].
    pub fn saved_peers(&self) -> Vec<NodeId> {
        let Some(bytes) = self.dht.as_ref().and_then(|d| d.store().get_state("peers")) else {
            return Vec::new();
        };
        bytes
            .chunks_exact(32)
            .filter_map(|c| <[u8; 32]>::try_from(c).ok())
            .map(NodeId)
            .collect()
    }

    /// A number from the node's generator, below `n` (apps' jitter; `n` ≥ 1).
    pub fn random_below(&mut self, n: u64) -> u64 {
        self.rng.below(n.max(1))
    }

    /// Work on this relay's DHT record store (its pins, `07-sites.md#pinning`): records
    /// written here are served and republished like stored ones, and committed at once.
    /// `None` when the node has no DHT.
    pub fn with_dht_store<R>(
        &mut self,
        f: impl FnOnce(&mut dyn crate::dht::store::RecordStore) -> R,
    ) -> Option<R> {
        self.dht.as_mut().map(|d| d.with_store(f))
    }

    /// The DHT, if this node is a relay with one.
    pub fn dht(&self) -> Option<&crate::dht::Dht> {
        self.dht.as_ref()
    }

    /// The sites whose manifests this relay holds (what it seeds), with their sequence
    /// numbers; at most `limit`, in key order.
    pub fn held_sites(&mut self, now: Time, limit: usize) -> Vec<(SiteAddress, u64)> {
        let wall = self.wall(now);
        let Some(d) = self.dht.as_mut() else {
            return Vec::new();
        };
        let keys: Vec<[u8; 32]> = d
            .store()
            .keys()
            .into_iter()
            .filter(|(k, _)| *k == RecordKind::MANIFEST)
            .map(|(_, key)| key)
            .take(limit)
            .collect();
        keys.iter()
            .filter_map(|key| d.store_mut().get(RecordKind::MANIFEST, key, wall))
            // Stored records were validated (signature, expiry) by `SiteValidator` when they
            // were put; the store's `get` drops expired ones.
            .filter_map(|r| manifest::parse(&r.value).ok())
            .map(|u| (u.claimed_site(), u.claimed_seq()))
            .collect()
    }

    /// Lookups the exit runs for readers now, and bytes of replies queued towards readers
    /// (`09-relay.md#limits`).
    pub fn exit_load(&self) -> (usize, usize) {
        let queued = self.switch.as_ref().map_or(0, |s| s.service_queued_total());
        (self.content.load.len(), queued)
    }

    /// Rounds of every lookup this node finished.
    pub fn lookup_rounds(&self) -> &[u32] {
        &self.content.rounds
    }

    /// Make this exit hostile (`sim` only): asked for `old`'s manifest, it answers with
    /// `old`, a version it kept, whatever the network holds now (`07-sites.md#freshness`).
    #[cfg(feature = "sim")]
    pub fn serve_stale(&mut self, old: Record) {
        self.content.stale.insert(old.key, old);
    }

    /// Keys this relay's DHT was asked about, and by whom (empty unless `record_observations`).
    #[cfg(feature = "sim")]
    pub fn dht_observations(&self) -> &[DhtObserved] {
        &self.content.observed
    }

    pub(super) fn on_dht_fragment(
        &mut self,
        now: Time,
        link: LinkId,
        peer: Option<Peer>,
        first: bool,
        data: &[u8],
    ) {
        let Some(Peer::Relay { identity, .. }) = peer else {
            return;
        };
        #[cfg(feature = "sim")]
        let Some(from_addr) = self.links.get(&link).map(|e| e.peer_addr) else {
            return;
        };
        let Some(msg) = self.take_message(now, link, (false, first, data), DhtMsg::decode) else {
            return;
        };
        #[cfg(feature = "sim")]
        if self.cfg.record_observations {
            let key = match &msg {
                DhtMsg::FindNode { target, .. } => Some(*target),
                DhtMsg::FindValue { key, .. } => Some(*key),
                DhtMsg::Store { record, .. } => Some(record.key),
                _ => None,
            };
            if let Some(key) = key {
                self.content.observed.push(DhtObserved {
                    from: from_addr,
                    key,
                });
            }
        }
        let wall = self.wall(now);
        if let Some(d) = self.dht.as_mut() {
            d.handle_rpc(now, wall, identity.node_id(), msg);
        }
    }

    pub(super) fn on_dht_action(&mut self, now: Time, a: DhtAction) {
        match a {
            DhtAction::Send { to, msg } => {
                let class = match msg {
                    DhtMsg::Value { .. } => crate::limits::Class::Seeding,
                    _ => crate::limits::Class::Dht,
                };
                let cells = dht_fragments(&msg.encode());
                if self.dirsync.directory().get(&to).is_none() {
                    if let Some(d) = self.dht.as_mut() {
                        d.unreachable(now, to);
                    }
                    return;
                }
                self.with_link(now, to, Purpose::Relay, Waiter::Dht(to, cells, class));
            }
            DhtAction::Done {
                id,
                outcome,
                rounds,
            } => {
                self.content.rounds.push(rounds);
                let Some((circ, stream, req)) = self.content.load.finish(id) else {
                    return;
                };
                #[cfg(feature = "sim")]
                let outcome = match outcome {
                    LookupOutcome::Found(r) if r.kind == RecordKind::MANIFEST => {
                        LookupOutcome::Found(self.content.stale.get(&r.key).cloned().unwrap_or(r))
                    }
                    other => other,
                };
                let reply = match outcome {
                    LookupOutcome::Found(record) => ExitReply::Found { id: req, record },
                    // No storer took it and some hold something newer: the publisher is told
                    // so, not that it succeeded (`06-dht.md#exit-requests`).
                    LookupOutcome::Stored {
                        copies: 0,
                        superseded,
                    } if superseded > 0 => ExitReply::Refused {
                        id: req,
                        reason: refusal::SUPERSEDED,
                    },
                    LookupOutcome::Stored { copies, .. } => ExitReply::Stored { id: req, copies },
                    LookupOutcome::NotFound | LookupOutcome::Nodes(_) => {
                        ExitReply::NotFound { id: req }
                    }
                };
                self.service_reply(circ, stream, &reply);
            }
        }
    }

    /// Answer request `id` with `REFUSED` and `reason` (`06-dht.md#exit-requests`).
    fn refuse(&mut self, circ: CircKey, stream: u16, id: u32, reason: u8) {
        self.service_reply(circ, stream, &ExitReply::Refused { id, reason });
    }

    /// Queue `reply` on the stream. A reply that does not fit the circuit's queue
    /// (`09-relay.md#limits`) becomes `REFUSED` `BUSY`, which always fits.
    fn service_reply(&mut self, circ: CircKey, stream: u16, reply: &ExitReply) {
        let bytes = StreamFramer::frame(&reply.encode());
        let Some(s) = self.switch.as_mut() else {
            return;
        };
        let r = match s.service_send(circ, stream, &bytes) {
            Err(RelayError::Exit(ExitError::QueueFull)) => {
                let busy = ExitReply::Refused {
                    id: reply.id(),
                    reason: refusal::BUSY,
                };
                s.service_send(circ, stream, &StreamFramer::frame(&busy.encode()))
            }
            other => other,
        };
        if let Err(e) = r {
            self.record(NodeError::Relay(e));
        }
    }

    pub(super) fn on_service_data(&mut self, now: Time, circ: CircKey, stream: u16, data: &[u8]) {
        let framer = self.content.framers.entry((circ, stream)).or_default();
        framer.push(data);
        let mut requests = Vec::new();
        loop {
            match framer.next_message() {
                Ok(Some(m)) => requests.push(ExitRequest::decode(&m)),
                Ok(None) => break,
                Err(e) => {
                    requests.push(Err(e));
                    break;
                }
            }
        }
        for r in requests {
            let Ok(req) = r else {
                // A malformed request ends the stream's usefulness: refuse and forget it.
                self.content.framers.remove(&(circ, stream));
                self.refuse(circ, stream, 0, refusal::INVALID);
                return;
            };
            self.start_exit_request(now, circ, stream, req);
        }
    }

    fn start_exit_request(&mut self, now: Time, circ: CircKey, stream: u16, req: ExitRequest) {
        // Limits first, before any signature is checked (`09-relay.md#limits`).
        let (id, kind) = match &req {
            ExitRequest::Get { id, kind, .. } => (*id, *kind),
            ExitRequest::Put { id, record, .. } => (*id, record.kind),
            ExitRequest::Refresh { id, kind, .. } => (*id, *kind),
        };
        let (circ_queued, relay_queued) = self.switch.as_ref().map_or((0, 0), |s| {
            (s.circuit_queued(circ), s.service_queued_total())
        });
        let reply_room = MAX_SERVICE_QUEUE.saturating_sub(circ_queued) >= MAX_MESSAGE;
        let manifest = kind.is_versioned();
        if !self.content.load.has_room(circ, manifest)
            || !reply_room
            || relay_queued >= MAX_RELAY_QUEUED
            || !self.content.load.take_rate(now, circ)
        {
            self.refuse(circ, stream, id, refusal::BUSY);
            return;
        }
        let wall = self.wall(now);
        let (goal, key) = match req {
            ExitRequest::Get { key, .. } => (Goal::Value(kind), key),
            ExitRequest::Put {
                record, expires, ..
            } => {
                // Valid, and asked to live past now (`06-dht.md#lifetime`).
                let expires = WallTime(expires);
                let valid = SiteValidator.validate(&record, wall).ok().and_then(|info| {
                    crate::dht::store::keep_until(record.kind, info.expires, expires, wall)
                });
                if valid.is_none() {
                    return self.refuse(circ, stream, id, refusal::INVALID);
                }
                let key = record.key;
                (Goal::Store(record, expires), key)
            }
            ExitRequest::Refresh {
                kind, key, expires, ..
            } => {
                // Only the kinds a storer keeps, and a time still to come.
                let expires = WallTime(expires);
                let known =
                    kind == RecordKind::BLOCK || kind == RecordKind::HISTORY || kind.is_versioned();
                if !known || expires <= wall {
                    return self.refuse(circ, stream, id, refusal::INVALID);
                }
                (Goal::Refresh(kind, expires), key)
            }
        };
        let Some(d) = self.dht.as_mut() else {
            self.refuse(circ, stream, id, refusal::NO_DHT);
            return;
        };
        let lookup = d.start(now, wall, key, goal);
        self.content.load.insert(lookup, circ, stream, id, manifest);
    }

    pub(super) fn on_circuit_gone(&mut self, circ: CircKey) {
        let streams: Vec<(CircKey, u16)> = self
            .content
            .framers
            .range((circ, 0)..=(circ, u16::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in streams {
            self.content.framers.remove(&k);
        }
        let lookups = self.content.load.circuit_gone(circ);
        if let Some(d) = self.dht.as_mut() {
            for l in lookups {
                d.cancel(l);
            }
        }
    }
}
