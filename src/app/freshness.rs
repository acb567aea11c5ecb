//! Freshness witnesses (`protocol-spec/07-sites.md#freshness`): a reader's defence against
//! an exit that serves an older version of a site than the network holds. Every manifest a
//! reader's fetch takes from one exit is checked against what [`WITNESSES`] other exits
//! return, each reached through its own circuit built *unlike* the first exit (no relay of
//! it shares a /16 network or a family with that exit, [`Node::build_circuit_unlike`]); the
//! highest verified sequence wins. A stale version then reaches the reader only if the first
//! exit and every witness lie together.
//!
//! A witness asks for the manifest only (one `GET` on its own `dht` stream) and keeps what
//! verifies against the site's key; a witness that fails, finds nothing or gives up counts
//! as having seen nothing. [`Freshness`] is done once every witness is.
//! Not in this module: what the fetch does with the answer ([`super::site_files`]).

use super::fetch::{FetchEvent, SiteFetch};
use super::session::{ServiceSession, SessionEvent};
use crate::crypto::keys::NodeId;
use crate::node::{Node, NodeEvent};
use crate::site::SiteTracker;
use crate::site::address::SiteAddress;
use crate::site::manifest::Verified;
use crate::time::Time;

/// Witnesses asked beside the exit a fetch uses.
pub const WITNESSES: usize = 2;
/// Circuits one witness may use.
const WITNESS_CIRCUITS: u32 = 2;

#[derive(Debug)]
struct Witness {
    session: ServiceSession,
    fetch: SiteFetch,
    tracker: SiteTracker,
    done: bool,
}

/// The witnesses of one manifest fetch.
#[derive(Debug)]
pub struct Freshness {
    witnesses: Vec<Witness>,
    newest: Option<Verified>,
}

impl Freshness {
    /// Ask `n` witnesses for `site`'s manifest, through circuits unlike `exit` (the exit the
    /// fetch itself uses).
    pub fn start(node: &mut Node, now: Time, site: SiteAddress, exit: NodeId, n: usize) -> Self {
        let witnesses = (0..n)
            .map(|_| {
                let mut session = ServiceSession::new(b"dht", WITNESS_CIRCUITS).unlike(vec![exit]);
                session.start(node, now);
                let mut fetch = SiteFetch::new(site);
                fetch.want_manifest();
                Witness {
                    session,
                    fetch,
                    tracker: SiteTracker::new(),
                    done: false,
                }
            })
            .collect();
        Freshness {
            witnesses,
            newest: None,
        }
    }

    /// Whether every witness answered or gave up.
    pub fn is_done(&self) -> bool {
        self.witnesses.iter().all(|w| w.done)
    }

    /// The newest verified manifest a witness returned.
    pub fn newest(&self) -> Option<&Verified> {
        self.newest.as_ref()
    }

    /// Whether `event` is a witness's.
    pub fn concerns(&self, event: &NodeEvent) -> bool {
        self.witnesses
            .iter()
            .any(|w| !w.done && w.session.concerns(event))
    }

    /// A node event of a witness.
    pub fn on_event(&mut self, node: &mut Node, now: Time, event: NodeEvent) {
        let Some(i) = self
            .witnesses
            .iter()
            .position(|w| !w.done && w.session.concerns(&event))
        else {
            return;
        };
        let Some(ev) = self.witnesses[i].session.on_event(node, now, event) else {
            return;
        };
        let wall = node.wall(now);
        let w = &mut self.witnesses[i];
        match ev {
            SessionEvent::Built { .. } => {}
            SessionEvent::Opened => {
                let bytes = w.fetch.poll_send();
                match w.session.send(node, now, &bytes) {
                    Some(SessionEvent::GaveUp { .. }) => w.done = true,
                    Some(_) => w.fetch.reset(),
                    None => {}
                }
            }
            SessionEvent::Data(data) => {
                let mut seen = None;
                let mut ended = w.fetch.on_data(&data, &mut w.tracker, wall).is_err();
                while let Some(ev) = w.fetch.poll_event() {
                    if let FetchEvent::Manifest(r) = ev {
                        ended = true;
                        seen = r.ok().map(|v| *v);
                    }
                }
                if ended {
                    w.done = true;
                    w.session.finish(node, now);
                } else {
                    let bytes = w.fetch.poll_send();
                    let _ = w.session.send(node, now, &bytes);
                }
                if let Some(v) = seen {
                    let newer = self
                        .newest
                        .as_ref()
                        .is_none_or(|n| v.manifest().seq > n.manifest().seq);
                    if newer {
                        self.newest = Some(v);
                    }
                }
            }
            SessionEvent::Retrying { .. } => w.fetch.reset(),
            SessionEvent::GaveUp { .. } => w.done = true,
        }
    }

    /// Stop every witness still running.
    pub fn close(&mut self, node: &mut Node, now: Time) {
        for w in self.witnesses.iter_mut().filter(|w| !w.done) {
            w.done = true;
            w.session.finish(node, now);
        }
    }
}
