//! A node's pins, kept (`protocol-spec/07-sites.md#pinning`): the app that checks each
//! pinned site about once an hour ([`CHECK_EVERY`], jittered by ±[`JITTER`]), one at a time,
//! with a [`KeepSite`] — fetch the current version whole, keep the newest of it and the
//! copy held, restore what the network lost — and keeps the result pinned in its home
//! store ([`super::pins`]).
//!
//! A [`Pinner`] runs beside the gateway in `umbra run` and in `umbra relay` (alone, or
//! beside the dashboard): pins are added and removed through the running node
//! ([`Pinner::add`], [`Pinner::remove`]), and each check's outcome comes back through
//! [`Pinner::poll_done`]. A new pin is checked at once; a failed check is tried again after
//! [`RETRY_FAILED`]; checks of pins loaded at start are spread over their first minutes.
//! Not in this module: the HTTP API and the commands (`runtime`), the fetch and restore
//! ([`super::keep`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::App;
use super::keep::{KeepSite, KeepState, Kept};
use super::pins::{self, MAX_PINS, Pin, PinError};
use crate::dht::store::{RecordStore, StoreError};
use crate::node::{Node, NodeEvent};
use crate::redact::Sensitive;
use crate::site::address::SiteAddress;
use crate::time::Time;

/// How often a pinned site is checked for a new version and for lost records.
pub const CHECK_EVERY: Duration = Duration::from_secs(3600);
/// Each check moves by up to this much either way, so checks of one site by many nodes do
/// not fall together and no node's checks keep a fixed rhythm.
pub const JITTER: Duration = Duration::from_secs(15 * 60);
/// When a failed check is tried again.
pub const RETRY_FAILED: Duration = Duration::from_secs(10 * 60);
/// Pins loaded at start are checked within this long.
pub const START_SPREAD: Duration = Duration::from_secs(5 * 60);

/// Where the pins and their copies are kept.
#[derive(Clone)]
pub enum PinHome {
    /// The node's own DHT store (a relay): pinned records are served to readers and
    /// republished in the node's rounds.
    Dht,
    /// A store of its own (a reader's cache file).
    Store(Arc<Mutex<dyn RecordStore>>),
}

impl std::fmt::Debug for PinHome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PinHome::Dht => "PinHome::Dht",
            PinHome::Store(_) => "PinHome::Store",
        })
    }
}

impl PinHome {
    /// Run `f` on the store, then commit what it wrote (the DHT commits its own batches).
    /// `None`: the store is unavailable (no DHT, or a poisoned lock).
    fn with<R>(&self, node: &mut Node, f: impl FnOnce(&mut dyn RecordStore) -> R) -> Option<R> {
        match self {
            PinHome::Dht => node.with_dht_store(f),
            PinHome::Store(s) => {
                let mut guard = s.lock().ok()?;
                let r = f(&mut *guard);
                if let Err(e) = guard.commit() {
                    tracing::warn!("the pins' store could not commit: {e}");
                }
                Some(r)
            }
        }
    }

    /// [`PinHome::with`] for work that may fail; an unavailable store is a backend error.
    fn try_with<R>(
        &self,
        node: &mut Node,
        f: impl FnOnce(&mut dyn RecordStore) -> Result<R, PinError>,
    ) -> Result<R, PinError> {
        self.with(node, f)
            .unwrap_or(Err(PinError::Store(StoreError::Backend)))
    }
}

/// What one check of a pin came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckDone {
    /// The site.
    pub site: SiteAddress,
    /// The pin as it stands after the check (`error` says why it failed, if it did).
    pub pin: Pin,
    /// Blocks fetched, and blocks stored again whole, by this check (0 if it failed).
    pub fetched: usize,
    /// Blocks stored again whole.
    pub restored: usize,
}

/// A node's pins and their checks.
#[derive(Debug)]
pub struct Pinner {
    home: PinHome,
    pins: Vec<Pin>,
    due: BTreeMap<[u8; 32], Time>,
    running: Option<(SiteAddress, KeepSite)>,
    done: VecDeque<CheckDone>,
    /// Why the list kept could not be read at start (the node then starts with none).
    pub load_error: Option<String>,
}

impl Pinner {
    /// Pins kept in `home`; they are read when the app starts.
    pub fn new(home: PinHome) -> Pinner {
        Pinner {
            home,
            pins: Vec::new(),
            due: BTreeMap::new(),
            running: None,
            done: VecDeque::new(),
            load_error: None,
        }
    }

    /// The pins, in the order they were made.
    pub fn pins(&self) -> &[Pin] {
        &self.pins
    }

    /// The site being checked now.
    pub fn checking(&self) -> Option<SiteAddress> {
        self.running.as_ref().map(|(s, _)| *s)
    }

    /// Pin `site` (kept at once, checked at once). Pinning a site pinned already checks it
    /// now.
    pub fn add(&mut self, node: &mut Node, now: Time, site: SiteAddress) -> Result<(), PinError> {
        if !self.pins.iter().any(|p| p.site == site) {
            if self.pins.len() >= MAX_PINS {
                return Err(PinError::TooMany);
            }
            self.pins.push(Pin::new(site, node.wall(now)));
            if let Err(e) = self.save(node) {
                self.pins.retain(|p| p.site != site);
                return Err(e);
            }
        }
        self.due.insert(site.dht_key(), now);
        Ok(())
    }

    /// Unpin `site`: its records are released, its check stopped. Whether it was pinned.
    pub fn remove(
        &mut self,
        node: &mut Node,
        now: Time,
        site: SiteAddress,
    ) -> Result<bool, PinError> {
        let before = self.pins.len();
        self.pins.retain(|p| p.site != site);
        if self.pins.len() == before {
            return Ok(false);
        }
        self.due.remove(&site.dht_key());
        if self.running.as_ref().is_some_and(|(s, _)| *s == site) {
            if let Some((_, mut keep)) = self.running.take() {
                keep.abandon(node, now);
            }
        }
        self.save(node)?;
        let wall = node.wall(now);
        self.home
            .try_with(node, |s| pins::drop_copy(s, &site, wall))?;
        Ok(true)
    }

    /// The outcome of the next check that ended.
    pub fn poll_done(&mut self) -> Option<CheckDone> {
        self.done.pop_front()
    }

    /// Whether `event` belongs to the check running now.
    pub fn concerns(&self, event: &NodeEvent) -> bool {
        self.running
            .as_ref()
            .is_some_and(|(_, k)| k.concerns(event))
    }

    fn save(&self, node: &mut Node) -> Result<(), PinError> {
        self.home.try_with(node, |s| pins::save_list(s, &self.pins))
    }

    /// When the next check falls: `CHECK_EVERY` ± `JITTER`.
    fn next_check(node: &mut Node, now: Time) -> Time {
        let spread = 2 * JITTER.as_secs();
        let secs = CHECK_EVERY.as_secs() - JITTER.as_secs() + node.random_below(spread + 1);
        now + Duration::from_secs(secs)
    }

    /// Start the check that is due first, if one is due and none runs.
    fn start_due(&mut self, node: &mut Node, now: Time) {
        if self.running.is_some() {
            return;
        }
        let Some((&key, _)) = self
            .due
            .iter()
            .filter(|(_, t)| **t <= now)
            .min_by_key(|(_, t)| **t)
        else {
            return;
        };
        self.due.remove(&key);
        let Some(site) = self
            .pins
            .iter()
            .map(|p| p.site)
            .find(|s| s.dht_key() == key)
        else {
            return;
        };
        let wall = node.wall(now);
        let held = self
            .home
            .with(node, |s| pins::load_copy(s, &site, wall))
            .flatten();
        let mut keep = KeepSite::new(site, held);
        keep.start(node, now);
        self.running = Some((site, keep));
    }

    /// Take the running check's outcome, if it ended.
    fn finish_check(&mut self, node: &mut Node, now: Time) {
        let ended = self
            .running
            .as_ref()
            .is_some_and(|(_, k)| matches!(k.state, KeepState::Done(_) | KeepState::Failed(_)));
        if !ended {
            return;
        }
        let Some((site, keep)) = self.running.take() else {
            return;
        };
        let wall = node.wall(now);
        let outcome = match keep.state {
            KeepState::Done(kept) => {
                let Kept {
                    copy,
                    fetched,
                    restored,
                    min_copies,
                } = *kept;
                self.home
                    .try_with(node, |s| pins::save_copy(s, &site, &copy, wall))
                    .map(|()| (copy, fetched, restored, min_copies))
                    .map_err(|e| e.to_string())
            }
            KeepState::Failed(why) => Err(why),
            _ => return,
        };
        let Some(pin) = self.pins.iter_mut().find(|p| p.site == site) else {
            return;
        };
        let (fetched, restored) = match outcome {
            Ok((copy, fetched, restored, copies)) => {
                pin.checked = Some(wall);
                pin.seq = Some(copy.seq);
                pin.blocks = u32::try_from(copy.blocks.len()).unwrap_or(u32::MAX);
                pin.bytes = copy.blocks.values().map(|b| b.len() as u64).sum();
                pin.copies = copies;
                pin.error = None;
                self.due.insert(site.dht_key(), Self::next_check(node, now));
                (fetched, restored)
            }
            Err(why) => {
                tracing::warn!("pin of {}: check failed: {why}", Sensitive(site.encode()));
                pin.error = Some(why);
                self.due.insert(site.dht_key(), now + RETRY_FAILED);
                (0, 0)
            }
        };
        let pin = pin.clone();
        if let Err(e) = self.save(node) {
            tracing::warn!("the pins list could not be saved: {e}");
        }
        self.done.push_back(CheckDone {
            site,
            pin,
            fetched,
            restored,
        });
    }
}

impl App for Pinner {
    fn start(&mut self, node: &mut Node, now: Time) {
        match self.home.with(node, |s| pins::load_list(s)) {
            Some(Ok(list)) => self.pins = list,
            Some(Err(e)) => {
                tracing::warn!("the pins list kept could not be read ({e}); starting with none");
                self.load_error = Some(e.to_string());
            }
            None => self.load_error = Some("the store holding the pins is unavailable".into()),
        }
        let spread = START_SPREAD.as_secs();
        for p in &self.pins {
            let at = now + Duration::from_secs(node.random_below(spread + 1));
            self.due.insert(p.site.dht_key(), at);
        }
        self.start_due(node, now);
    }

    fn on_event(&mut self, node: &mut Node, now: Time, event: NodeEvent) {
        if let Some((_, keep)) = self.running.as_mut() {
            keep.on_event(node, now, event);
        }
        self.finish_check(node, now);
        self.start_due(node, now);
    }

    fn tick(&mut self, node: &mut Node, now: Time) {
        if let Some((_, keep)) = self.running.as_mut() {
            keep.tick(node, now);
        }
        self.finish_check(node, now);
        self.start_due(node, now);
    }

    fn finished(&self) -> Option<i32> {
        None
    }

    fn poll_timeout(&self) -> Option<Time> {
        if self.running.is_some() {
            return None;
        }
        self.due.values().min().copied()
    }
}
