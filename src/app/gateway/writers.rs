//! The gateway's reading of sites with many writers (`protocol-spec/08-gateway.md#writers`,
//! `11-writers.md#in-the-dht`): on a site's own stream, beside its manifest, the gateway asks
//! for the site's roster; a site with one is served from its writers' merged view (the
//! newest head of every writer's main line, each verified and admitted), a site without one
//! from its manifest as before. The merged view is used for the same time a manifest is,
//! then gathered again while the old one keeps serving.
//!
//! Not in this module: the merge (`site::writers`), answering requests (`respond.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::app::fetch::{FetchEvent, SiteFetch};
use crate::site::address::SiteAddress;
use crate::site::writers::LineId;
use crate::site::writers::head::{FileRef, Head, SignedHead};
use crate::site::writers::merge::{HeadSet, View};
use crate::site::writers::roster::{Roster, SignedRoster};
use crate::time::Time;

/// A site's merged view, as the gateway serves it.
#[derive(Debug)]
pub struct MergedSite {
    /// The site.
    pub site: SiteAddress,
    /// The view (its conflicts, its lines).
    pub view: View,
    /// The served file of each path (the default winner, tombstones left out).
    pub files: BTreeMap<String, FileRef>,
}

/// What the gateway knows of a site's writers.
#[derive(Debug, Default)]
pub(super) struct SiteWriters {
    /// Whether the roster was asked for in the current round.
    asked: bool,
    /// `None`: not known yet; `Some(None)`: the site has no roster.
    roster: Option<Option<SignedRoster>>,
    heads: HeadSet,
    /// Lines and pinned heads asked for and not answered yet.
    pending_lines: BTreeSet<LineId>,
    pending_pins: BTreeSet<[u8; 32]>,
    merged: Option<(Arc<MergedSite>, Time)>,
}

/// How a site is to be served.
pub(super) enum Serving {
    /// Not known yet: wait.
    Undecided,
    /// No roster: from its manifest.
    Manifest,
    /// From its writers' merged view.
    Merged(Arc<MergedSite>),
}

impl SiteWriters {
    /// How the site is served now; asks for the roster (again, after `ttl`) on `fetch`.
    pub(super) fn serving(
        &mut self,
        now: Time,
        ttl: std::time::Duration,
        fetch: &mut SiteFetch,
    ) -> Serving {
        if let Some((m, at)) = &self.merged {
            let m = m.clone();
            if now.saturating_since(*at) >= ttl && !self.asked {
                self.ask(fetch);
            }
            return Serving::Merged(m);
        }
        match &self.roster {
            Some(None) => Serving::Manifest,
            _ => {
                if !self.asked {
                    self.ask(fetch);
                }
                Serving::Undecided
            }
        }
    }

    /// Whether the site may still turn out to have writers (a missing manifest is then no
    /// reason to fail it).
    pub(super) fn may_have_writers(&self) -> bool {
        !matches!(self.roster, Some(None))
    }

    fn ask(&mut self, fetch: &mut SiteFetch) {
        self.asked = true;
        fetch.want_roster();
    }

    /// A fetch event about writers; false if it is not one.
    pub(super) fn on_event(
        &mut self,
        now: Time,
        site: SiteAddress,
        ev: &FetchEvent,
        fetch: &mut SiteFetch,
    ) -> bool {
        match ev {
            FetchEvent::Roster(r) => {
                let roster = match r {
                    Ok(r) => r.as_deref().cloned(),
                    // A roster that does not verify counts as none: the manifest decides.
                    Err(_) => None,
                };
                if let Some(r) = &roster {
                    let writers = std::iter::once(r.roster.site)
                        .chain(r.roster.writers.iter().map(|w| w.key));
                    for w in writers {
                        let l = LineId::of(&w, "");
                        if self.pending_lines.insert(l) {
                            fetch.want_line(l);
                        }
                    }
                    for d in r
                        .roster
                        .writers
                        .iter()
                        .filter_map(|w| w.cutoff)
                        .map(|c| c.head)
                    {
                        if d != [0; 32] && self.pending_pins.insert(d) {
                            fetch.want_history(d);
                        }
                    }
                } else {
                    // No roster (any more): the site is served from its manifest.
                    self.merged = None;
                    self.asked = false;
                }
                self.roster = Some(roster);
            }
            FetchEvent::Head(l, r) => {
                self.pending_lines.remove(l);
                if let Ok(Some(h)) = r {
                    self.heads.insert(SignedHead::clone(h));
                }
            }
            FetchEvent::History(d, r) => {
                self.pending_pins.remove(d);
                if let Ok(Some(h)) = r {
                    self.heads.insert_history(SignedHead::clone(h));
                }
            }
            FetchEvent::Manifest(Ok(v)) => {
                // The site key's main line, when it publishes version-1 manifests; the
                // gateway keeps it as the manifest too.
                self.heads.insert(SignedHead {
                    head: Head::from_v1(v.manifest()),
                    bytes: v.bytes().to_vec(),
                });
                self.settle(now, site);
                return false;
            }
            _ => return false,
        }
        self.settle(now, site);
        true
    }

    /// Once the roster and every line asked for have answered: the merged view.
    fn settle(&mut self, now: Time, site: SiteAddress) {
        let Some(Some(r)) = &self.roster else { return };
        if !self.pending_lines.is_empty() || !self.pending_pins.is_empty() {
            return;
        }
        let roster: &Roster = &r.roster;
        let view = self.heads.view(roster, "");
        let files = view
            .files()
            .map(|(p, f)| (p.to_string(), f.clone()))
            .collect();
        self.merged = Some((Arc::new(MergedSite { site, view, files }), now));
        self.asked = false;
    }
}
