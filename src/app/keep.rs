//! Keeping a pinned site whole and alive (`protocol-spec/07-sites.md#pinning`): the engine
//! of a pin, run by [`super::pinner::Pinner`] for each check of a pin.
//!
//! [`KeepSite`] works on one `dht` stream through a circuit ([`ServiceSession`]), in two
//! steps:
//!
//! 1. **Fetch whole.** It fetches the site's current manifest and every block it lists,
//!    each verified (the one fetch engine, [`Fetcher`]). Blocks of the copy already held are
//!    taken from it, so a check of an unchanged site moves only the manifest, and a new
//!    version moves only its new blocks.
//! 2. **Keep it in the network.** It hands the copy to the publisher's [`Uploader`] with
//!    every block "known": each block gets a `REFRESH`, and is sent whole only if fewer than
//!    [`super::publish::REFRESH_MIN_COPIES`] storers still hold it; then the manifest is
//!    stored again. The signed manifest is the publisher's own: no key is needed.
//!
//! When the network lost the site (not found) or holds only an older version than the copy
//! held, the held copy is what goes back. The result ([`Kept`]) is the copy the caller keeps.
//! Not in this module: where pins and their blocks are kept ([`super::pins`]), and when a
//! pin is checked ([`super::pinner`]).

use std::collections::{BTreeMap, BTreeSet};

use super::App;
use super::fetch::TransferError;
use super::publish::Uploader;
use super::session::{self, OnSession, ServiceSession, SessionEvent};
use super::site_files::Fetcher;
use crate::node::{Node, NodeEvent};
use crate::site::address::SiteAddress;
use crate::site::manifest;
use crate::site::{Built, SiteTracker};
use crate::time::Time;

/// Circuits one keep may use.
pub const CIRCUITS: u32 = 4;

/// A copy of a site: its signed manifest and every block it lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// The manifest's sequence.
    pub seq: u64,
    /// The signed manifest's wire bytes.
    pub manifest: Vec<u8>,
    /// Every block the manifest lists, by hash.
    pub blocks: BTreeMap<[u8; 32], Vec<u8>>,
}

/// What a finished keep did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The copy to keep: the newest version found, or the one held.
    pub copy: Copy,
    /// Blocks fetched from the network (not held before).
    pub fetched: usize,
    /// Blocks the network had too few copies of, stored again whole (the manifest is
    /// always stored again).
    pub restored: usize,
    /// Fewest storers any record of the site reached.
    pub min_copies: u8,
}

/// Where a keep is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepState {
    /// Building a circuit and opening the stream.
    Connecting,
    /// Fetching the current version.
    Fetching,
    /// Refreshing and storing again what the network lost.
    Restoring,
    /// Done.
    Done(Box<Kept>),
    /// Gave up (why).
    Failed(String),
}

/// The keep app: fetch `site` whole, then keep it stored in the network.
pub struct KeepSite {
    site: SiteAddress,
    held: Option<Copy>,
    tracker: SiteTracker,
    session: ServiceSession,
    fetcher: Option<Fetcher>,
    uploader: Option<(Uploader, Copy, usize)>,
    /// Where it is.
    pub state: KeepState,
    /// The last failure that made it start over on a fresh circuit.
    pub last_error: Option<String>,
}

impl std::fmt::Debug for KeepSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeepSite")
            .field("state", &self.state)
            .field("held", &self.held.as_ref().map(|h| h.seq))
            .finish_non_exhaustive()
    }
}

impl KeepSite {
    /// Keep `site`; `held`: the copy this node already keeps, if any.
    pub fn new(site: SiteAddress, held: Option<Copy>) -> KeepSite {
        KeepSite {
            site,
            held,
            tracker: SiteTracker::new(),
            session: ServiceSession::new(b"dht", CIRCUITS),
            fetcher: None,
            uploader: None,
            state: KeepState::Connecting,
            last_error: None,
        }
    }

    /// The memory of manifests seen the fetch checks against (`07-sites.md#memory`).
    pub fn tracker_mut(&mut self) -> &mut SiteTracker {
        &mut self.tracker
    }

    /// Whether `event` is this keep's (its circuit or stream).
    pub fn concerns(&self, event: &NodeEvent) -> bool {
        self.session.concerns(event)
    }

    /// Stop: close the circuit; the keep hears nothing more.
    pub fn abandon(&mut self, node: &mut Node, now: Time) {
        self.state = KeepState::Failed("stopped".into());
        self.session.finish(node, now);
    }

    fn over(&self) -> bool {
        matches!(self.state, KeepState::Done(_) | KeepState::Failed(_))
    }

    fn react(&mut self, node: &mut Node, now: Time, ev: SessionEvent) {
        match ev {
            SessionEvent::Built { .. } => {}
            SessionEvent::Opened => {
                if let Some((u, _, _)) = self.uploader.as_mut() {
                    u.resume();
                } else if let Some(f) = self.fetcher.as_mut() {
                    f.reset();
                } else {
                    let held = self.held.as_ref().map(|h| h.blocks.clone());
                    let mut f = Fetcher::new(self.site, None, node.wall(now));
                    if let Some(blocks) = held {
                        f = f.with_cache(Box::new(move |h| blocks.get(h).cloned()));
                    }
                    self.fetcher = Some(f);
                    self.state = KeepState::Fetching;
                }
                self.pump(node, now);
            }
            SessionEvent::Data(data) => {
                if self.uploader.is_some() {
                    self.on_upload(node, now, &data);
                } else {
                    self.on_fetch(node, now, &data);
                }
            }
            SessionEvent::Retrying { why, .. } => {
                self.last_error = Some(why);
                if self.uploader.is_none() {
                    self.fetcher = None;
                    self.state = KeepState::Connecting;
                }
            }
            SessionEvent::GaveUp { why } => {
                self.last_error = Some(why.clone());
                self.state = KeepState::Failed(why);
            }
        }
    }

    fn on_fetch(&mut self, node: &mut Node, now: Time, data: &[u8]) {
        let Some(f) = self.fetcher.as_mut() else {
            return;
        };
        f.on_data(data, &mut self.tracker);
        let copy = match f.take_result() {
            None => return self.pump(node, now),
            Some(Ok(_)) => f.manifest().map(|v| Copy {
                seq: v.manifest().seq,
                manifest: v.bytes().to_vec(),
                blocks: f.blocks().clone(),
            }),
            // The network lost the site: the held copy goes back.
            Some(Err(TransferError::SiteNotFound)) if self.held.is_some() => None,
            Some(Err(e)) => {
                self.fetcher = None;
                let ev = self.session.retry(node, now, e.to_string());
                return self.react(node, now, ev);
            }
        };
        let fetched = f.blocks().len().saturating_sub(f.from_cache);
        // The newest of what the network has and what is held.
        let keep = match (copy, self.held.take()) {
            (Some(c), Some(h)) if h.seq > c.seq => h,
            (Some(c), _) => c,
            (None, Some(h)) => h,
            (None, None) => {
                self.state = KeepState::Failed("the fetch kept no manifest".into());
                return self.session.finish(node, now);
            }
        };
        self.restore(node, now, keep, fetched);
    }

    /// Store `copy` in the network again where it has too few copies.
    fn restore(&mut self, node: &mut Node, now: Time, copy: Copy, fetched: usize) {
        let parsed = manifest::parse(&copy.manifest)
            .and_then(|u| u.verify_signature(&self.site))
            .map(|v| v.manifest().clone());
        let parsed = match parsed {
            Ok(p) => p,
            Err(e) => {
                self.state = KeepState::Failed(format!("the copy held is not valid: {e}"));
                return self.session.finish(node, now);
            }
        };
        let built = Built {
            manifest: copy.manifest.clone(),
            parsed,
            blocks: copy.blocks.clone(),
        };
        let known: BTreeSet<[u8; 32]> = copy.blocks.keys().copied().collect();
        self.uploader = Some((Uploader::new(&built, &known), copy, fetched));
        self.state = KeepState::Restoring;
        self.pump(node, now);
    }

    fn on_upload(&mut self, node: &mut Node, now: Time, data: &[u8]) {
        let Some((u, _, _)) = self.uploader.as_mut() else {
            return;
        };
        u.on_data(data);
        match u.result().cloned() {
            None => self.pump(node, now),
            Some(Ok(())) => {
                if let Some((u, copy, fetched)) = self.uploader.take() {
                    let restored = u.total - u.refreshed;
                    self.state = KeepState::Done(Box::new(Kept {
                        copy,
                        fetched,
                        restored: restored.saturating_sub(1),
                        min_copies: u.min_copies,
                    }));
                }
                self.session.finish(node, now);
            }
            // The network moved past the copy held: the next check fetches the newer one.
            Some(Err(e @ TransferError::Superseded)) => {
                self.state = KeepState::Failed(e.to_string());
                self.session.finish(node, now);
            }
            Some(Err(e)) => {
                if let Some((u, _, _)) = self.uploader.as_mut() {
                    u.clear_result();
                }
                let ev = self.session.retry(node, now, e.to_string());
                self.react(node, now, ev);
            }
        }
    }

    fn pump(&mut self, node: &mut Node, now: Time) {
        let bytes = match (self.uploader.as_mut(), self.fetcher.as_mut()) {
            (Some((u, _, _)), _) => u.poll_send(),
            (None, Some(f)) => f.poll_send(),
            (None, None) => return,
        };
        session::send(self, node, now, &bytes);
    }
}

impl App for KeepSite {
    fn start(&mut self, node: &mut Node, now: Time) {
        self.session.start(node, now);
    }

    fn on_event(&mut self, node: &mut Node, now: Time, event: NodeEvent) {
        session::feed(self, node, now, event);
    }

    fn tick(&mut self, _: &mut Node, _: Time) {}

    fn finished(&self) -> Option<i32> {
        match self.state {
            KeepState::Done(_) => Some(0),
            KeepState::Failed(_) => Some(1),
            _ => None,
        }
    }
}

impl OnSession for KeepSite {
    fn session(&mut self) -> &mut ServiceSession {
        &mut self.session
    }

    fn on_session(&mut self, node: &mut Node, now: Time, ev: SessionEvent) {
        self.react(node, now, ev);
    }

    fn is_over(&self) -> bool {
        self.over()
    }
}
