//! Sites with many writers, over the network (`protocol-spec/11-writers.md`): the two apps
//! every writer command is made of, run by `umbra writers`, `umbra publish --site`,
//! `umbra fetch --writer/--branch`, `umbra log` and the simulator alike.
//!
//! - [`Gather`] reads what the network holds of a site on one `dht` stream: its roster (none:
//!   the implicit one), the site key's version-1 manifest (its main line), then the newest
//!   head of the lines of one branch name of every writer the roster names, plus any lines
//!   asked for, and every revoked writer's pinned head by digest (history, kind 5); with
//!   [`Gather::with_history`], older manifests of each line along `prev`. Each answer is
//!   verified as it arrives ([`super::fetch::SiteFetch`]); heads go into a [`HeadSet`],
//!   whose view is the site's.
//! - [`Upload`] stores blocks (and any further records, such as a manifest's history copy)
//!   and then one last record (a writer manifest or a roster) through a circuit, as a
//!   publish does ([`super::publish::Uploader`]).
//!
//! A lost circuit resumes on a fresh one. Not in this module: building heads
//! (`site::writers::stage`), files, keys and printing (`runtime`).

use std::collections::{BTreeMap, BTreeSet};

use super::App;
use super::fetch::{FetchEvent, SiteFetch, TransferError};
use super::publish::{CIRCUITS, Uploader};
use super::session::{self, OnSession, ServiceSession, SessionEvent};
use crate::node::{Node, NodeEvent};
use crate::site::SiteTracker;
use crate::site::address::SiteAddress;
use crate::site::writers::LineId;
use crate::site::writers::head::{Head, SignedHead};
use crate::site::writers::merge::HeadSet;
use crate::site::writers::roster::{Roster, SignedRoster};
use crate::time::Time;
use crate::wire::dht_msg::Record;
use crate::wire::hex;

/// Where an app of this module is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Reaching the exit.
    Connecting,
    /// Asking or storing.
    Working,
    /// Finished.
    Done,
    /// Gave up (why).
    Failed(String),
}

/// What a site's writers have published, as the network holds it.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    /// The newest roster found (`None`: the site never signed one).
    pub roster: Option<SignedRoster>,
    /// The newest head of every line found.
    pub heads: HeadSet,
    /// Answers refused (forged, expired, malformed), with the reason.
    pub refused: Vec<String>,
}

impl Gathered {
    /// The roster in force: the newest found, else the implicit one of `site`.
    pub fn roster_or_implicit(&self, site: &SiteAddress) -> Roster {
        self.roster
            .as_ref()
            .map_or_else(|| Roster::implicit(site.0), |r| r.roster.clone())
    }
}

/// Read a site's roster and heads.
#[derive(Debug)]
pub struct Gather {
    site: SiteAddress,
    branch: String,
    extra: Vec<LineId>,
    session: ServiceSession,
    fetch: SiteFetch,
    tracker: SiteTracker,
    roster_known: bool,
    lines_asked: BTreeSet<LineId>,
    /// How many older manifests of each line to fetch (`umbra log --history`).
    depth: u32,
    history_left: BTreeMap<LineId, u32>,
    /// What was found so far.
    pub found: Gathered,
    /// Where it is.
    pub state: Progress,
}

impl Gather {
    /// Gather `site`'s roster and the lines of branch `branch` of its writers, and `extra`.
    pub fn new(site: SiteAddress, branch: &str, extra: Vec<LineId>) -> Gather {
        Gather {
            site,
            branch: branch.to_string(),
            extra,
            session: ServiceSession::new(b"dht", CIRCUITS),
            fetch: SiteFetch::new(site),
            tracker: SiteTracker::new(),
            roster_known: false,
            lines_asked: BTreeSet::new(),
            depth: 0,
            history_left: BTreeMap::new(),
            found: Gathered::default(),
            state: Progress::Connecting,
        }
    }

    /// Also fetch up to `n` older manifests of each line, following `prev`.
    pub fn with_history(mut self, n: u32) -> Gather {
        self.depth = n;
        self
    }

    fn on_roster(&mut self, r: Result<Option<Box<SignedRoster>>, TransferError>) {
        match r {
            Ok(r) => self.found.roster = r.map(|r| *r),
            Err(e) => self.found.refused.push(format!("roster: {e}")),
        }
        self.roster_known = true;
        // A revoked writer's pinned last head, in case its line moved past the cut-off.
        let roster = self.found.roster_or_implicit(&self.site);
        for d in roster.pins() {
            self.fetch.want_history(d);
        }
        let mut lines = roster.lines(&self.branch);
        lines.extend(self.extra.iter().copied());
        for l in lines {
            if self.lines_asked.insert(l) {
                self.fetch.want_line(l);
            }
        }
    }

    fn on_fetch_event(&mut self, ev: FetchEvent) {
        match ev {
            FetchEvent::Roster(r) => self.on_roster(r),
            FetchEvent::Manifest(Ok(v)) => {
                self.found.heads.insert(SignedHead {
                    head: Head::from_v1(v.manifest()),
                    bytes: v.bytes().to_vec(),
                });
            }
            FetchEvent::Manifest(Err(TransferError::SiteNotFound))
            | FetchEvent::Head(_, Ok(None)) => {}
            FetchEvent::Manifest(Err(e)) => self.found.refused.push(format!("site manifest: {e}")),
            FetchEvent::Head(_, Ok(Some(h))) => {
                if self.depth > 0 && h.head.prev != [0; 32] {
                    self.history_left.insert(h.head.line(), self.depth - 1);
                    self.fetch.want_history(h.head.prev);
                }
                self.found.heads.insert(*h);
            }
            FetchEvent::Head(l, Err(e)) => {
                self.found.refused.push(format!("line {}: {e}", l.short()));
            }
            FetchEvent::History(_, Ok(Some(h))) => {
                if let Some(depth) = self.history_left.get(&h.head.line()).copied()
                    && depth > 0
                    && h.head.prev != [0; 32]
                {
                    self.history_left.insert(h.head.line(), depth - 1);
                    self.fetch.want_history(h.head.prev);
                }
                self.found.heads.insert_history(*h);
            }
            FetchEvent::History(d, Ok(None)) => {
                self.found
                    .refused
                    .push(format!("history {}: not found", hex::encode(&d[..8])));
            }
            FetchEvent::History(d, Err(e)) => {
                self.found
                    .refused
                    .push(format!("history {}: {e}", hex::encode(&d[..8])));
            }
            FetchEvent::Block(..) => {}
        }
    }

    fn react(&mut self, node: &mut Node, now: Time, ev: SessionEvent) {
        match ev {
            SessionEvent::Built { .. } => {}
            SessionEvent::Opened => {
                self.state = Progress::Working;
                if !self.roster_known {
                    self.fetch.want_roster();
                    self.fetch.want_manifest();
                }
                self.pump(node, now);
            }
            SessionEvent::Data(data) => {
                let wall = node.wall(now);
                if let Err(e) = self.fetch.on_data(&data, &mut self.tracker, wall) {
                    self.fetch.reset();
                    let ev = self.session.retry(node, now, e.to_string());
                    return self.react(node, now, ev);
                }
                while let Some(ev) = self.fetch.poll_event() {
                    self.on_fetch_event(ev);
                }
                if self.roster_known && self.fetch.outstanding() == 0 {
                    self.state = Progress::Done;
                    self.session.finish(node, now);
                } else {
                    self.pump(node, now);
                }
            }
            SessionEvent::Retrying { .. } => {
                self.fetch.reset();
                self.state = Progress::Connecting;
            }
            SessionEvent::GaveUp { why } => self.state = Progress::Failed(why),
        }
    }

    fn pump(&mut self, node: &mut Node, now: Time) {
        let bytes = self.fetch.poll_send();
        session::send(self, node, now, &bytes);
    }
}

/// Store blocks, then one last record.
#[derive(Debug)]
pub struct Upload {
    session: ServiceSession,
    uploader: Uploader,
    /// Where it is.
    pub state: Progress,
    /// Fewest storers any record reached, once done.
    pub min_copies: u8,
}

impl Upload {
    /// Store `blocks` (those in `known` only if too few storers still hold them) and `also`,
    /// then `last`, each kept until `expires`.
    pub fn new(
        last: Record,
        expires: u64,
        blocks: &BTreeMap<[u8; 32], Vec<u8>>,
        known: &BTreeSet<[u8; 32]>,
    ) -> Upload {
        Upload::with(last, expires, blocks, known, Vec::new())
    }

    /// [`Upload::new`], with more records stored before `last` (a writer manifest's history
    /// copy, `11-writers.md#history`).
    pub fn with(
        last: Record,
        expires: u64,
        blocks: &BTreeMap<[u8; 32], Vec<u8>>,
        known: &BTreeSet<[u8; 32]>,
        also: Vec<Record>,
    ) -> Upload {
        let uploader = also.into_iter().fold(
            Uploader::with_last(last, expires, blocks, known),
            Uploader::also,
        );
        Upload {
            session: ServiceSession::new(b"dht", CIRCUITS),
            uploader,
            state: Progress::Connecting,
            min_copies: 0,
        }
    }

    /// Records stored so far, and in all.
    pub fn progress(&self) -> (usize, usize) {
        (self.uploader.done, self.uploader.total)
    }

    fn react(&mut self, node: &mut Node, now: Time, ev: SessionEvent) {
        match ev {
            SessionEvent::Built { .. } => {}
            SessionEvent::Opened => {
                self.uploader.resume();
                self.state = Progress::Working;
                self.pump(node, now);
            }
            SessionEvent::Data(data) => {
                self.uploader.on_data(&data);
                match self.uploader.result().cloned() {
                    Some(Ok(())) => {
                        self.min_copies = self.uploader.min_copies;
                        self.state = Progress::Done;
                        self.session.finish(node, now);
                    }
                    // Another circuit would be told the same: the network holds a newer version.
                    Some(Err(e @ TransferError::Superseded)) => {
                        self.state = Progress::Failed(e.to_string());
                        self.session.finish(node, now);
                    }
                    Some(Err(e)) => {
                        self.uploader.clear_result();
                        let ev = self.session.retry(node, now, e.to_string());
                        self.react(node, now, ev);
                    }
                    None => self.pump(node, now),
                }
            }
            SessionEvent::Retrying { .. } => self.state = Progress::Connecting,
            SessionEvent::GaveUp { why } => self.state = Progress::Failed(why),
        }
    }

    fn pump(&mut self, node: &mut Node, now: Time) {
        let bytes = self.uploader.poll_send();
        session::send(self, node, now, &bytes);
    }
}

macro_rules! service_app {
    ($t:ty) => {
        impl App for $t {
            fn start(&mut self, node: &mut Node, now: Time) {
                self.session.start(node, now);
            }

            fn on_event(&mut self, node: &mut Node, now: Time, event: NodeEvent) {
                session::feed(self, node, now, event);
            }

            fn tick(&mut self, _: &mut Node, _: Time) {}

            fn finished(&self) -> Option<i32> {
                match self.state {
                    Progress::Done => Some(0),
                    Progress::Failed(_) => Some(1),
                    _ => None,
                }
            }
        }

        impl OnSession for $t {
            fn session(&mut self) -> &mut ServiceSession {
                &mut self.session
            }

            fn on_session(&mut self, node: &mut Node, now: Time, ev: SessionEvent) {
                self.react(node, now, ev);
            }

            fn is_over(&self) -> bool {
                matches!(self.state, Progress::Done | Progress::Failed(_))
            }
        }
    };
}

service_app!(Gather);
service_app!(Upload);
