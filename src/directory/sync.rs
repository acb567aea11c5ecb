//! Relay discovery: how a node learns the relay set from the network and keeps it fresh
//! (`protocol-spec/10-directory.md`).
//!
//! Sans-IO. [`DirectorySync`] owns the node's [`Directory`] and decides what to say: a relay
//! floods each descriptor new to it to a few relays (`PUSH`), signs its own descriptor again
//! before it expires and floods that, and every few minutes reconciles with one relay by
//! sending a summary (`SYNC`: one digest per bucket of node ids) and taking every descriptor
//! of the buckets that differ (`ENTRIES`). Readers only reconcile, with their guard. Every
//! descriptor is verified and admitted under [`Admission`] caps; expired ones leave.
//!
//! Not in this module: links and cells (the node carries [`DirMsg`]s in `DIR` cells and
//! answers on the link a `SYNC` came in on), the cache on disk (the runtime saves
//! [`Directory::to_cache_text`]).

use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};

use super::{Admission, Descriptor, Directory, DirectoryError, parse};
use crate::crypto::hash::Hasher;
use crate::crypto::keys::{IdentityKey, NodeId};
use crate::crypto::rng::UmbraRng;
use crate::time::{Time, WallTime};
use crate::wire::dir_msg::{BUCKETS, DIGEST_LEN, DirMsg, MAX_PUSH};

/// How a node keeps its directory (`10-directory.md#timing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncConfig {
    /// A relay reconciles with one random relay this often (±20%).
    pub relay_interval: Duration,
    /// A reader reconciles with its guard this often (±20%).
    pub reader_interval: Duration,
    /// Relays a new descriptor is pushed on to.
    pub fanout: usize,
    /// Lifetime of the descriptors a relay signs for itself.
    pub lifetime: Duration,
    /// What the directory admits.
    pub admission: Admission,
    /// How long this node must have known a relay before choosing it as a guard
    /// (`09-relay.md#guards`).
    pub guard_min_age: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            relay_interval: Duration::from_secs(600),
            reader_interval: Duration::from_secs(1800),
            fanout: 4,
            lifetime: Duration::from_secs(DEFAULT_LIFETIME_SECS),
            admission: Admission::default(),
            guard_min_age: Duration::from_secs(DEFAULT_GUARD_MIN_AGE_SECS),
        }
    }
}

/// The lifetime a relay gives its descriptor unless configured (3 days).
pub const DEFAULT_LIFETIME_SECS: u64 = 3 * 24 * 3600;
/// How long a relay must be known before it is chosen as a guard unless configured (8 days,
/// as a Tor relay waits for its Guard flag).
pub const DEFAULT_GUARD_MIN_AGE_SECS: u64 = 8 * 24 * 3600;
/// The shortest descriptor lifetime a relay uses (tests set short ones).
pub const MIN_LIFETIME_SECS: u64 = 10;

/// How long a relay gathers pushed descriptors before passing them on
/// (`10-directory.md#flooding`).
pub const FLUSH_DELAY: Duration = Duration::from_millis(500);

/// A `SYNC` answer not finished after this long is given up.
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// A directory message to send to a relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirSend {
    /// The relay.
    pub to: NodeId,
    /// The message.
    pub msg: DirMsg,
}

/// Counters (`umbra status`, the dashboard).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirStats {
    /// Descriptors admitted (new relays or renewals).
    pub admitted: u64,
    /// Descriptors refused: bad, forged or expired.
    pub refused_bad: u64,
    /// Descriptors refused by the admission caps.
    pub refused_caps: u64,
    /// Relays whose descriptors expired and left.
    pub expired: u64,
    /// Reconciliations finished (`ENTRIES` with `more` clear).
    pub syncs_done: u64,
    /// `SYNC`s answered.
    pub syncs_answered: u64,
    /// When the last reconciliation finished.
    pub last_sync: Option<WallTime>,
    /// Times this relay signed its descriptor again.
    pub renewals: u64,
    /// Directory messages ignored: not allowed from their sender, over a per-link limit
    /// (`10-directory.md#limits`), or an answer from nobody asked.
    pub ignored: u64,
}

/// A relay's own descriptor and the key that signs it again.
#[derive(Debug, Clone)]
struct Own {
    key: IdentityKey,
    desc: Descriptor,
    renew_at: Time,
}

/// A `SYNC` sent and not yet wholly answered.
#[derive(Debug, Clone, Copy)]
struct Asked {
    peer: NodeId,
    deadline: Time,
    received: usize,
}

/// Relay discovery state (`10-directory.md`).
#[derive(Debug)]
pub struct DirectorySync {
    cfg: SyncConfig,
    relay: bool,
    dir: Directory,
    own: Option<Own>,
    announce: bool,
    /// Descriptors to pass on at `flush_at`, and who not to pass them to.
    outbox: Vec<Vec<u8>>,
    outbox_skip: BTreeSet<NodeId>,
    flush_at: Time,
    first_round: bool,
    next_sync: Time,
    next_expire: Time,
    next_id: u32,
    asked: BTreeMap<u32, Asked>,
    digests: Option<Box<[[u8; DIGEST_LEN]; BUCKETS]>>,
    added: BTreeSet<NodeId>,
    removed: BTreeSet<NodeId>,
    stats: DirStats,
}

/// A node id's bucket in a summary (`10-directory.md#summary`).
pub fn bucket(id: &NodeId) -> usize {
    usize::from(id.0[0] >> 2)
}

/// The summary of `dir` (`10-directory.md#summary`): for each bucket, the first 8 bytes of
/// BLAKE3 over `"umbra dir bucket v1" || (node id || published u64)*` in node-id order.
pub fn summary(dir: &Directory) -> Box<[[u8; DIGEST_LEN]; BUCKETS]> {
    let mut hashers: Vec<Hasher> = (0..BUCKETS)
        .map(|_| {
            let mut h = Hasher::new();
            h.update(b"umbra dir bucket v1");
            h
        })
        .collect();
    for d in dir.relays() {
        let id = d.node_id();
        if let Some(h) = hashers.get_mut(bucket(&id)) {
            h.update(&id.0);
            h.update(&d.published.0.to_be_bytes());
        }
    }
    let mut out = Box::new([[0; DIGEST_LEN]; BUCKETS]);
    for (o, h) in out.iter_mut().zip(hashers) {
        let full = h.finalize();
        o.copy_from_slice(&full[..DIGEST_LEN]);
    }
    out
}

fn jitter(rng: &mut UmbraRng, d: Duration) -> Duration {
    // ±20%, so that relays started together do not stay in step.
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let spread = us / 5;
    let off = rng.below(2 * spread + 1);
    Duration::from_micros((us - spread).saturating_add(off))
}

fn at_wall(now: Time, wall: WallTime, target: WallTime) -> Time {
    now + Duration::from_secs(target.0.saturating_sub(wall.0))
}

impl DirectorySync {
    /// Discovery for a node starting with `dir` (its bootstrap contacts or its cache);
    /// `relay`: it reconciles with relays and floods, else it only reconciles with its guard.
    /// The first reconciliation is due at once.
    pub fn new(cfg: SyncConfig, relay: bool, dir: Directory, now: Time) -> DirectorySync {
        DirectorySync {
            cfg,
            relay,
            dir,
            own: None,
            announce: false,
            outbox: Vec::new(),
            outbox_skip: BTreeSet::new(),
            flush_at: Time::NEVER,
            first_round: false,
            next_sync: now,
            next_expire: now,
            next_id: 1,
            asked: BTreeMap::new(),
            digests: None,
            added: BTreeSet::new(),
            removed: BTreeSet::new(),
            stats: DirStats::default(),
        }
    }

    /// The directory.
    pub fn directory(&self) -> &Directory {
        &self.dir
    }

    /// Replace the directory (a driver that read a new bootstrap list).
    pub fn replace(&mut self, dir: Directory) {
        let old: BTreeSet<NodeId> = self.dir.relays().map(|d| d.node_id()).collect();
        let new: BTreeSet<NodeId> = dir.relays().map(|d| d.node_id()).collect();
        self.added.extend(new.difference(&old));
        self.removed.extend(old.difference(&new));
        self.dir = dir;
        self.digests = None;
        self.next_expire = Time::ZERO;
    }

    /// Count a directory message the node ignored (`10-directory.md#limits`).
    pub fn ignored(&mut self) {
        self.stats.ignored += 1;
    }

    /// Counters.
    pub fn stats(&self) -> DirStats {
        self.stats
    }

    /// Relays that joined (or moved to another address) and that left, since the last call.
    pub fn take_changes(&mut self) -> (BTreeSet<NodeId>, BTreeSet<NodeId>) {
        (
            core::mem::take(&mut self.added),
            core::mem::take(&mut self.removed),
        )
    }

    fn me(&self) -> Option<NodeId> {
        self.own.as_ref().map(|o| o.desc.node_id())
    }

    /// This relay's own descriptor, signed by `key`: it is admitted, pushed to `fanout`
    /// relays at the next timeout, and signed again (with [`SyncConfig::lifetime`]) when half
    /// its lifetime has passed.
    pub fn set_own(
        &mut self,
        now: Time,
        wall: WallTime,
        key: IdentityKey,
        desc: Descriptor,
    ) -> Result<(), DirectoryError> {
        let half = desc.expires.0.saturating_sub(desc.published.0) / 2;
        let renew_at = at_wall(now, wall, WallTime(desc.published.0 + half));
        let old = self.own.replace(Own {
            key,
            desc,
            renew_at,
        });
        let signed = self.sign_own(now, wall);
        if signed.is_err() {
            self.own = old;
        }
        signed
    }

    /// Sign the relay's own descriptor as it now stands, admit it and announce it.
    fn sign_own(&mut self, now: Time, wall: WallTime) -> Result<(), DirectoryError> {
        let Some(o) = &self.own else { return Ok(()) };
        let v = parse(&o.desc.sign(&o.key)?)?.verify(wall)?;
        self.admit_verified(now, wall, v)?;
        self.announce = true;
        Ok(())
    }

    /// The relay's own descriptor as last signed.
    pub fn own(&self) -> Option<&Descriptor> {
        self.own.as_ref().map(|o| &o.desc)
    }

    /// Whether the node is still learning the relay set for the first time: no
    /// reconciliation has finished, and the first is due or waiting for its answer. A node
    /// whose contacts are too few for a path waits for it instead of failing.
    pub fn learning(&self) -> bool {
        self.stats.syncs_done == 0 && (!self.first_round || !self.asked.is_empty())
    }

    /// When [`DirectorySync::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Time {
        let renew = self.own.as_ref().map_or(Time::NEVER, |o| o.renew_at);
        let announce = if self.announce {
            Time::ZERO
        } else {
            Time::NEVER
        };
        let answer = self
            .asked
            .values()
            .map(|a| a.deadline)
            .min()
            .unwrap_or(Time::NEVER);
        self.next_sync
            .min(answer)
            .min(self.next_expire)
            .min(renew)
            .min(announce)
            .min(self.flush_at)
    }

    fn admit_verified(
        &mut self,
        now: Time,
        wall: WallTime,
        v: super::Verified,
    ) -> Result<bool, DirectoryError> {
        let id = v.descriptor().node_id();
        let expires = v.descriptor().expires;
        let addr = v.descriptor().addr;
        // A renewal that moved the relay counts as a change too: its network is what the
        // DHT's caps count (`06-dht.md#routing-table`).
        let moved = self.dir.get(&id).map(|d| d.addr != addr);
        let changed = self.dir.admit(v, wall, &self.cfg.admission)?;
        if changed {
            self.stats.admitted += 1;
            self.digests = None;
            self.next_expire = self.next_expire.min(at_wall(now, wall, expires));
            if moved != Some(false) {
                self.removed.remove(&id);
                self.added.insert(id);
            }
        }
        Ok(changed)
    }

    /// Check and admit one descriptor from the network; returns its wire bytes when it was
    /// new here (a new relay or a newer descriptor).
    fn take_one(&mut self, now: Time, wall: WallTime, bytes: &[u8]) -> Option<Vec<u8>> {
        let u = match parse(bytes) {
            Ok(u) => u,
            Err(_) => {
                self.stats.refused_bad += 1;
                return None;
            }
        };
        let claimed = u.claimed();
        if self.me() == Some(claimed.node_id()) {
            return None;
        }
        match self.dir.get(&claimed.node_id()) {
            // Nothing new: not even worth a signature check.
            Some(held) if held.published >= claimed.published => return None,
            Some(_) => {}
            None => {
                // A newcomer from a full network is refused before its signature is checked.
                if self.dir.check_caps(claimed, &self.cfg.admission).is_err() {
                    self.stats.refused_caps += 1;
                    return None;
                }
            }
        }
        let v = match u.verify(wall) {
            Ok(v) => v,
            Err(_) => {
                self.stats.refused_bad += 1;
                return None;
            }
        };
        let wire = v.wire().to_vec();
        match self.admit_verified(now, wall, v) {
            Ok(true) => Some(wire),
            Ok(false) => None,
            Err(_) => {
                self.stats.refused_caps += 1;
                None
            }
        }
    }

    /// `count` distinct random relays, none of them in `skip` nor this node; drawn first
    /// from `linked` (relays the node has a link with) when it holds enough.
    fn pick(
        &self,
        rng: &mut UmbraRng,
        count: usize,
        skip: &BTreeSet<NodeId>,
        linked: &BTreeSet<NodeId>,
    ) -> Vec<NodeId> {
        let me = self.me();
        let usable =
            |id: &NodeId| Some(*id) != me && !skip.contains(id) && self.dir.get(id).is_some();
        let near: Vec<NodeId> = linked.iter().copied().filter(|id| usable(id)).collect();
        let pool: Vec<NodeId> = if near.len() >= count {
            near
        } else {
            self.dir
                .relays()
                .map(|d| d.node_id())
                .filter(|id| usable(id))
                .collect()
        };
        let mut chosen = BTreeSet::new();
        let want = count.min(pool.len());
        while chosen.len() < want {
            let i = usize::try_from(rng.below(pool.len() as u64)).unwrap_or(0);
            if let Some(id) = pool.get(i) {
                chosen.insert(*id);
            }
        }
        chosen.into_iter().collect()
    }

    fn push_to(
        &self,
        rng: &mut UmbraRng,
        wires: Vec<Vec<u8>>,
        skip: &BTreeSet<NodeId>,
        linked: &BTreeSet<NodeId>,
    ) -> Vec<DirSend> {
        let mut out = Vec::new();
        if wires.is_empty() {
            return out;
        }
        for to in self.pick(rng, self.cfg.fanout, skip, linked) {
            for chunk in wires.chunks(MAX_PUSH) {
                out.push(DirSend {
                    to,
                    msg: DirMsg::Push {
                        descriptors: chunk.to_vec(),
                    },
                });
            }
        }
        out
    }

    /// Run what is due: expire, renew and announce this relay's descriptor, pass on what
    /// pushes brought, reconcile. `guard`: the relay a reader reconciles with (its first
    /// guard), when it has one; `linked`: relays the node has a link with, preferred for
    /// passing descriptors on so that a flood does not open links to everyone.
    pub fn handle_timeout(
        &mut self,
        now: Time,
        wall: WallTime,
        rng: &mut UmbraRng,
        guard: Option<NodeId>,
        linked: &BTreeSet<NodeId>,
    ) -> Vec<DirSend> {
        let none = BTreeSet::new();
        let mut out = Vec::new();
        if now >= self.flush_at {
            self.flush_at = Time::NEVER;
            let wires = core::mem::take(&mut self.outbox);
            let skip = core::mem::take(&mut self.outbox_skip);
            out.extend(self.push_to(rng, wires, &skip, linked));
        }
        if now >= self.next_expire {
            let gone = self.dir.expire(wall);
            if !gone.is_empty() {
                self.stats.expired += gone.len() as u64;
                self.digests = None;
                for id in gone {
                    self.added.remove(&id);
                    self.removed.insert(id);
                }
            }
            self.next_expire = self.dir.earliest_expiry().map_or(Time::NEVER, |e| {
                at_wall(now, wall, e).max(now + Duration::from_secs(1))
            });
        }
        let lifetime = self.cfg.lifetime.as_secs().max(MIN_LIFETIME_SECS);
        if let Some(o) = self.own.as_mut().filter(|o| o.renew_at <= now) {
            o.desc.published = wall;
            o.desc.expires = WallTime(wall.0 + lifetime);
            o.renew_at = now + jitter(rng, Duration::from_secs(lifetime / 2));
            if self.sign_own(now, wall).is_ok() {
                self.stats.renewals += 1;
            }
        }
        if self.announce {
            self.announce = false;
            let wire = self
                .me()
                .and_then(|id| self.dir.wire(&id))
                .map(|w| w.to_vec());
            if let Some(w) = wire {
                out.extend(self.push_to(rng, vec![w], &none, &none));
            }
        }
        self.asked.retain(|_, a| a.deadline > now);
        if now >= self.next_sync {
            self.first_round = true;
            let interval = if self.relay {
                self.cfg.relay_interval
            } else {
                self.cfg.reader_interval
            };
            self.next_sync = now + jitter(rng, interval);
            let peer = match guard.filter(|g| self.dir.get(g).is_some()) {
                Some(g) => Some(g),
                None => self.pick(rng, 1, &none, &none).first().copied(),
            };
            if let Some(peer) = peer {
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1).max(1);
                self.asked.insert(
                    id,
                    Asked {
                        peer,
                        deadline: now + SYNC_TIMEOUT,
                        received: 0,
                    },
                );
                out.push(DirSend {
                    to: peer,
                    msg: DirMsg::Sync {
                        id,
                        digests: self.summary(),
                    },
                });
            }
        }
        out
    }

    /// Reconcile now rather than at the next interval (a reader that has just chosen its
    /// guard, a test).
    pub fn sync_soon(&mut self, now: Time) {
        self.next_sync = self.next_sync.min(now);
    }

    fn summary(&mut self) -> Box<[[u8; DIGEST_LEN]; BUCKETS]> {
        if let Some(d) = &self.digests {
            return d.clone();
        }
        let d = summary(&self.dir);
        self.digests = Some(d.clone());
        d
    }

    /// A `PUSH` from relay `from`: admit what is new and, at a relay, queue it to be passed
    /// on within [`FLUSH_DELAY`] to `fanout` relays other than its senders (one `PUSH` then
    /// carries what several brought).
    pub fn on_push(&mut self, now: Time, wall: WallTime, from: NodeId, descriptors: &[Vec<u8>]) {
        let fresh: Vec<Vec<u8>> = descriptors
            .iter()
            .filter_map(|d| self.take_one(now, wall, d))
            .collect();
        if !self.relay || fresh.is_empty() {
            return;
        }
        self.outbox_skip.insert(from);
        for w in fresh {
            if let Ok(u) = parse(&w) {
                self.outbox_skip.insert(u.claimed().node_id());
            }
            self.outbox.push(w);
        }
        self.flush_at = self.flush_at.min(now + FLUSH_DELAY);
    }

    /// A `SYNC` with the asker's summary: the answers, every descriptor of each bucket that
    /// differs.
    pub fn on_sync(&mut self, id: u32, theirs: &[[u8; DIGEST_LEN]; BUCKETS]) -> Vec<DirMsg> {
        self.stats.syncs_answered += 1;
        let mine = self.summary();
        let wires: Vec<Vec<u8>> = self
            .dir
            .relays()
            .map(|d| d.node_id())
            .filter(|n| {
                let b = bucket(n);
                mine.get(b) != theirs.get(b)
            })
            .filter_map(|n| self.dir.wire(&n).map(|w| w.to_vec()))
            .collect();
        DirMsg::entries(id, wires)
    }

    /// Part of the answer to our `SYNC` `id`, from relay `from`. Answers nobody asked for
    /// are ignored; an answer longer than the directory may hold ends the reconciliation.
    pub fn on_entries(
        &mut self,
        now: Time,
        wall: WallTime,
        from: NodeId,
        id: u32,
        more: bool,
        descriptors: &[Vec<u8>],
    ) {
        let Some(asked) = self.asked.get_mut(&id).filter(|a| a.peer == from) else {
            self.stats.ignored += 1;
            return;
        };
        asked.received += descriptors.len();
        let over = asked.received > self.cfg.admission.max_relays.saturating_add(MAX_PUSH);
        for d in descriptors {
            self.take_one(now, wall, d);
        }
        if !more || over {
            self.asked.remove(&id);
            if !over {
                self.stats.syncs_done += 1;
                self.stats.last_sync = Some(wall);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{DirectorySync, SyncConfig};
    use crate::crypto::keys::{IdentityKey, LinkKeypair};
    use crate::crypto::rng::UmbraRng;
    use crate::directory::{Descriptor, Directory, Roles};
    use crate::time::{Time, WallTime};
    use crate::wire::dir_msg::DirMsg;
    use core::time::Duration;
    use std::collections::BTreeSet;

    /// `key`'s descriptor at 10.1.0.1, signed at `wall0` for 100 s.
    fn descriptor(key: &IdentityKey, rng: &mut UmbraRng, wall0: WallTime) -> Descriptor {
        Descriptor {
            identity: key.public(),
            addr: "10.1.0.1:4000".parse().unwrap(),
            link_key: LinkKeypair::generate(rng).public(),
            onion_key: LinkKeypair::generate(rng).public(),
            bandwidth: 10,
            family: [0; 32],
            family_cert: None,
            roles: Roles::ALL,
            published: wall0,
            expires: WallTime(wall0.0 + 100),
        }
    }

    /// A relay signs a new descriptor (with the configured lifetime) when half of the
    /// current one has passed, admits it and pushes it; before then it does not.
    #[test]
    fn a_relay_renews_its_descriptor_halfway_and_announces_it() {
        let mut rng = UmbraRng::from_u64(3);
        let key = IdentityKey::generate(&mut rng);
        let wall0 = WallTime(1_800_000_000);
        let desc = descriptor(&key, &mut rng, wall0);
        let other = IdentityKey::generate(&mut rng);
        let mut peer = desc.clone();
        peer.identity = other.public();
        peer.addr = "10.2.0.1:4000".parse().unwrap();
        let mut dir = Directory::new();
        dir.insert(
            crate::directory::parse(&peer.sign(&other).unwrap())
                .unwrap()
                .verify(wall0)
                .unwrap(),
        );
        let cfg = SyncConfig {
            lifetime: Duration::from_secs(40),
            ..SyncConfig::default()
        };
        let mut s = DirectorySync::new(cfg, true, dir, Time::ZERO);
        s.set_own(Time::ZERO, wall0, key, desc).unwrap();
        let none = BTreeSet::new();
        let at = |secs| {
            (
                Time::ZERO + Duration::from_secs(secs),
                WallTime(wall0.0 + secs),
            )
        };
        let (t, w) = at(0);
        let first = s.handle_timeout(t, w, &mut rng, None, &none);
        assert!(first.iter().any(|m| matches!(m.msg, DirMsg::Push { .. })));
        let (t, w) = at(49);
        let early = s.handle_timeout(t, w, &mut rng, None, &none);
        assert!(early.iter().all(|m| !matches!(m.msg, DirMsg::Push { .. })));
        assert_eq!(s.stats().renewals, 0);
        assert_eq!(s.poll_timeout().max(t), at(50).0, "renewal due halfway");
        let (t, w) = at(50);
        let sends = s.handle_timeout(t, w, &mut rng, None, &none);
        assert_eq!(s.stats().renewals, 1);
        let own = s.own().unwrap();
        assert_eq!((own.published, own.expires), (w, WallTime(w.0 + 40)));
        let me = own.node_id();
        assert_eq!(s.directory().get(&me).unwrap().published, w);
        assert!(sends.iter().any(|m| matches!(m.msg, DirMsg::Push { .. })));
        // The next renewal comes 20 s (±20%) later: before the new descriptor expires.
        assert!(s.poll_timeout() <= at(50 + 24).0);
    }

    /// A renewal that moved the relay to another address is reported as a change (the DHT
    /// counts networks); a renewal in place is not.
    #[test]
    fn a_relay_that_moved_is_reported_as_changed() {
        let mut rng = UmbraRng::from_u64(4);
        let key = IdentityKey::generate(&mut rng);
        let wall0 = WallTime(1_800_000_000);
        let desc = descriptor(&key, &mut rng, wall0);
        let mut s = DirectorySync::new(SyncConfig::default(), false, Directory::new(), Time::ZERO);
        let push = |s: &mut DirectorySync, d: &Descriptor, at: u64| {
            let wire = d.sign(&key).unwrap();
            s.on_push(Time::ZERO, WallTime(at), d.node_id(), &[wire]);
        };
        push(&mut s, &desc, wall0.0);
        assert_eq!(s.take_changes().0.len(), 1, "joined");
        let mut renewed = desc.clone();
        renewed.published = WallTime(wall0.0 + 10);
        push(&mut s, &renewed, wall0.0 + 10);
        assert!(s.take_changes().0.is_empty(), "renewed in place");
        let mut moved = renewed.clone();
        moved.published = WallTime(wall0.0 + 20);
        moved.addr = "10.9.0.1:4000".parse().unwrap();
        push(&mut s, &moved, wall0.0 + 20);
        let (added, removed) = s.take_changes();
        assert_eq!(added.len(), 1, "moved: reported again");
        assert!(removed.is_empty());
    }
}
