//! The node's side of relay discovery (`protocol-spec/10-directory.md`): it carries
//! [`DirMsg`]s in `DIR` cells, answers a `SYNC` on the link it came in on, and keeps the DHT's
//! set of known relays equal to the directory.
//!
//! Not in this module: what to say and what to admit (`directory::sync`).

use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};

use super::links::Purpose;
use super::{Node, Waiter};
use crate::crypto::keys::NodeId;
use crate::directory::sync::DirSend;
use crate::ids::LinkId;
use crate::link::Peer;
use crate::time::Time;
use crate::wire::dir_msg::DirMsg;
use crate::wire::restrict::dir_fragments;

/// A link may have one `SYNC` answered this often (`10-directory.md#limits`).
pub(super) const SYNC_GAP: Duration = Duration::from_secs(4);
/// Descriptors a link may push per minute before the rest are ignored
/// (`10-directory.md#limits`).
pub(super) const PUSH_PER_MINUTE: u32 = 512;

/// What each link has asked of the directory lately (`10-directory.md#limits`).
#[derive(Debug, Default)]
pub(super) struct DirLimits {
    last_sync: BTreeMap<LinkId, Time>,
    pushed: BTreeMap<LinkId, (Time, u32)>,
}

impl DirLimits {
    fn may_sync(&mut self, link: LinkId, now: Time) -> bool {
        match self.last_sync.get(&link) {
            Some(&t) if now < t + SYNC_GAP => false,
            _ => {
                self.last_sync.insert(link, now);
                true
            }
        }
    }

    fn may_push(&mut self, link: LinkId, now: Time, count: usize) -> bool {
        let e = self.pushed.entry(link).or_insert((now, 0));
        if now >= e.0 + Duration::from_secs(60) {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(u32::try_from(count).unwrap_or(u32::MAX));
        e.1 <= PUSH_PER_MINUTE
    }

    pub(super) fn forget(&mut self, link: LinkId) {
        self.last_sync.remove(&link);
        self.pushed.remove(&link);
    }
}

impl Node {
    /// Send what discovery decided: relays over their own links, a reader over its
    /// anonymous guard link.
    pub(super) fn dir_send(&mut self, now: Time, sends: Vec<DirSend>) {
        let purpose = if self.keys.is_some() {
            Purpose::Relay
        } else {
            Purpose::Reader
        };
        for s in sends {
            let Ok(bytes) = s.msg.encode() else { continue };
            self.with_link(now, s.to, purpose, Waiter::Dir(dir_fragments(&bytes)));
        }
        self.apply_dir_changes(now);
    }

    /// Run discovery's timers.
    pub(super) fn dir_timeout(&mut self, now: Time) {
        if now < self.dirsync.poll_timeout() {
            return;
        }
        let wall = self.wall(now);
        let guard = if self.keys.is_some() {
            None
        } else {
            self.guards.refresh(
                self.dirsync.directory(),
                wall,
                self.cfg.directory.guard_min_age,
                &mut self.rng,
            );
            self.guards
                .current(self.dirsync.directory())
                .map(|d| d.node_id())
        };
        let linked: BTreeSet<NodeId> = self
            .links_to
            .keys()
            .filter(|(_, p)| *p == Purpose::Relay)
            .map(|(id, _)| *id)
            .collect();
        let sends = self
            .dirsync
            .handle_timeout(now, wall, &mut self.rng, guard, &linked);
        self.dir_send(now, sends);
        self.resume_builds();
    }

    /// Builds that waited for the first reconciliation start once it ended, either way.
    fn resume_builds(&mut self) {
        if !self.after_sync.is_empty() && !self.dirsync.learning() {
            self.retry.append(&mut self.after_sync);
        }
    }

    /// Keep the DHT's known relays equal to the directory; a relay whose directory grew from
    /// its contacts joins the DHT again through what it learned.
    pub(super) fn apply_dir_changes(&mut self, now: Time) {
        let (added, removed) = self.dirsync.take_changes();
        if added.is_empty() && removed.is_empty() {
            return;
        }
        let Some(d) = self.dht.as_mut() else { return };
        let before = d.known_count();
        for id in &removed {
            d.remove_known(id);
        }
        let dir = self.dirsync.directory();
        for id in &added {
            if let Some(desc) = dir.get(id) {
                d.add_known(*id, crate::directory::path::subnet(desc.addr.ip()));
            }
        }
        // A newcomer that started from one or two contacts: look itself up again now that
        // the directory is larger, so its routing table fills.
        if before <= 2 && d.known_count() > before + 2 {
            let seeds: Vec<NodeId> = added.iter().copied().take(8).collect();
            d.bootstrap(now, &seeds);
        }
    }

    pub(super) fn on_dir_fragment(
        &mut self,
        now: Time,
        link: LinkId,
        peer: Option<Peer>,
        first: bool,
        data: &[u8],
    ) {
        let dialled = self
            .links
            .get(&link)
            .and_then(|e| e.dialled)
            .map(|(id, _)| id);
        let Some(msg) = self.take_message(now, link, (true, first, data), DirMsg::decode) else {
            return;
        };
        let relay_peer = match peer {
            Some(Peer::Relay { identity, .. }) => Some(identity.node_id()),
            _ => None,
        };
        let wall = self.wall(now);
        match msg {
            DirMsg::Push { descriptors } => {
                // Only relays flood, and only to relays (`10-directory.md#messages`).
                let (Some(from), true) = (relay_peer, self.keys.is_some()) else {
                    self.dirsync.ignored();
                    return;
                };
                if !self.dir_limits.may_push(link, now, descriptors.len()) {
                    self.dirsync.ignored();
                    return;
                }
                self.dirsync.on_push(now, wall, from, &descriptors);
                self.apply_dir_changes(now);
            }
            DirMsg::Sync { id, digests } => {
                if self.keys.is_none() || !self.dir_limits.may_sync(link, now) {
                    self.dirsync.ignored();
                    return;
                }
                for answer in self.dirsync.on_sync(id, &digests) {
                    let Ok(bytes) = answer.encode() else { continue };
                    for cell in dir_fragments(&bytes) {
                        self.link_send(now, link, cell);
                    }
                }
            }
            DirMsg::Entries {
                id,
                more,
                descriptors,
            } => {
                let Some(from) = dialled.or(relay_peer) else {
                    self.dirsync.ignored();
                    return;
                };
                self.dirsync
                    .on_entries(now, wall, from, id, more, &descriptors);
                self.apply_dir_changes(now);
                self.resume_builds();
            }
        }
    }
}
