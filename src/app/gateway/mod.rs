//! The gateway's core, sans-IO (`protocol-spec/08-gateway.md#fetching`): what the reader's
//! gateway decides, with no tokio and no HTTP, so the simulator runs the same code as
//! `umbra run`.
//!
//! [`GatewayCore`] takes browser requests by id ([`GatewayCore::request`]), keeps one
//! [`ServiceSession`] (a circuit and `dht` stream; three failures in a row and it gives up) per
//! site (so an exit never links two sites a reader visits), multiplexes
//! manifest and block requests over it with the one fetch engine ([`SiteFetch`]), and answers
//! each request with [`ReplyPart`]s ([`GatewayCore::poll_reply`]): a head, then the body's
//! chunks in order as blocks verify, only as many as the request's room allows
//! ([`GatewayCore::room`]: a slow browser slows the fetch, it never buffers a whole file).
//! Verified blocks stay in an in-memory cache of bounded size. A plain
//! [`GatewaySnapshot`] feeds the dashboard.
//!
//! Not in this module: HTTP, channels and rendering (`runtime/gateway/`), the routing and
//! header rules (`crate::gateway`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

mod cache;
mod events;
mod reply;
mod respond;
mod snapshot;
mod writers;

pub use cache::BlockCache;
pub use reply::{Body, Head, ReplyPart, RequestId, SiteRequest, page, site_error};
pub use snapshot::{GRAPH_SECONDS, GatewayCounters, GatewaySnapshot, Sample};
pub use writers::MergedSite;

use super::App;
use super::fetch::SiteFetch;
use super::freshness::{Freshness, WITNESSES};
use super::session::{ServiceSession, SessionEvent};
use super::site_files::WITNESS_WAIT;
use crate::crypto::keys::NodeId;
use crate::gateway::range::Plan;
use crate::ids::{CircHandle, StreamHandle};
use crate::node::{Node, NodeEvent};
use crate::site::SiteTracker;
use crate::site::address::SiteAddress;
use crate::site::manifest::Verified;
use crate::site::writers::ViewSpec;
use crate::time::Time;

/// How long a fetched manifest is used before it is asked for again.
const MANIFEST_TTL: Duration = Duration::from_secs(30);
/// Blocks fetched ahead of the one a response is waiting for.
const READ_AHEAD: usize = 24;
/// Circuit failures in a row after which a site's waiting requests fail.
const MAX_CIRCUIT_FAILURES: u32 = 3;
/// Site circuits kept open at most; idle ones beyond this are closed first.
const MAX_SITE_CIRCUITS: usize = 16;
/// Sites whose verified manifest is remembered (so their cached pages stay readable
/// offline); the least recently used idle one is forgotten beyond this.
const MAX_SITES_KEPT: usize = 64;
/// A site circuit idle this long is closed.
const IDLE_CIRCUIT: Duration = Duration::from_secs(300);
/// Chunks the caller can take of a new body before it says otherwise ([`GatewayCore::room`]).
pub const INITIAL_ROOM: usize = 8;

#[derive(Debug)]
struct SiteConn {
    site: SiteAddress,
    /// The site's circuit and `dht` stream; its budget counts circuit failures in a row.
    session: ServiceSession,
    /// The session's handles as entered in the gateway's routing maps.
    routed: (Option<CircHandle>, Option<StreamHandle>),
    fetch: SiteFetch,
    manifest: Option<(Arc<Verified>, Time)>,
    refreshing: bool,
    last_used: Time,
    path: Vec<NodeId>,
    /// Witnesses of the current exit's first manifest (`07-sites.md#freshness`), and the
    /// exit they check.
    witness: Option<(Freshness, NodeId)>,
    /// The exit whose answers were checked by witnesses.
    checked: Option<NodeId>,
    /// A manifest from an exit not checked yet, held until its witnesses answered.
    unconfirmed: Option<(Box<Verified>, Time)>,
    /// The site's roster and writers' heads, when it has them (`11-writers.md`).
    writers: writers::SiteWriters,
}

#[derive(Debug)]
enum Stage {
    Manifest,
    Streaming {
        blocks: Vec<[u8; 32]>,
        plan: Plan,
        next: usize,
        /// The status and headers, held until the first block verified: a site that cannot
        /// deliver any of the file gets an error page, not a 200 with a broken body.
        head: Option<Head>,
    },
}

#[derive(Debug)]
struct Active {
    site: [u8; 32],
    view: ViewSpec,
    path: String,
    range: Option<String>,
    if_none_match: Option<String>,
    head: bool,
    /// Whether the head went out.
    answered: bool,
    /// Body chunks the caller can take now.
    room: usize,
    stage: Stage,
}

/// The gateway's core.
#[derive(Debug)]
pub struct GatewayCore {
    conns: BTreeMap<[u8; 32], SiteConn>,
    by_circ: BTreeMap<CircHandle, [u8; 32]>,
    by_stream: BTreeMap<StreamHandle, [u8; 32]>,
    requests: BTreeMap<u64, Active>,
    next_request: u64,
    cache: BlockCache,
    tracker: SiteTracker,
    /// Sites caught equivocating whose warning page the reader was shown this run.
    warned: BTreeSet<[u8; 32]>,
    counters: GatewayCounters,
    samples: VecDeque<Sample>,
    out: VecDeque<(RequestId, ReplyPart)>,
    last_sample: Option<(Time, crate::node::Traffic)>,
    last_housekeeping: Time,
    /// The port the browser reaches the gateway on, for links between a site's origins.
    port: u16,
}

impl GatewayCore {
    /// A gateway caching `cache_quota` bytes of verified blocks.
    pub fn new(cache_quota: u64) -> Self {
        GatewayCore {
            conns: BTreeMap::new(),
            by_circ: BTreeMap::new(),
            by_stream: BTreeMap::new(),
            requests: BTreeMap::new(),
            next_request: 1,
            cache: BlockCache::new(cache_quota),
            tracker: SiteTracker::new(),
            warned: BTreeSet::new(),
            counters: GatewayCounters::default(),
            samples: VecDeque::new(),
            out: VecDeque::new(),
            last_sample: None,
            last_housekeeping: Time::ZERO,
            port: 8470,
        }
    }

    /// The port browsers reach the gateway on (links between a site's origins name it).
    pub fn set_port(&mut self, port: u16) {
        self.port = port;
    }

    fn conn(&mut self, now: Time, site: SiteAddress) -> [u8; 32] {
        let key = site.0.to_bytes();
        let c = self.conns.entry(key).or_insert_with(|| SiteConn {
            site,
            session: ServiceSession::new(b"dht", MAX_CIRCUIT_FAILURES),
            routed: (None, None),
            fetch: SiteFetch::new(site),
            manifest: None,
            refreshing: false,
            last_used: now,
            path: Vec::new(),
            witness: None,
            checked: None,
            unconfirmed: None,
            writers: writers::SiteWriters::default(),
        });
        c.last_used = now;
        key
    }

    /// Close idle site circuits (idle too long, or the least recently used beyond
    /// [`MAX_SITE_CIRCUITS`]); forget idle sites beyond [`MAX_SITES_KEPT`].
    fn close_idle(&mut self, node: &mut Node, now: Time) {
        let busy: BTreeSet<[u8; 32]> = self.requests.values().map(|r| r.site).collect();
        let mut idle: Vec<(Time, [u8; 32])> = self
            .conns
            .iter()
            .filter(|(k, c)| !busy.contains(*k) && c.fetch.outstanding() == 0)
            .map(|(k, c)| (c.last_used, *k))
            .collect();
        idle.sort();
        let open = self
            .conns
            .values()
            .filter(|c| c.session.is_active())
            .count();
        let mut excess_circuits = open.saturating_sub(MAX_SITE_CIRCUITS);
        let mut excess_sites = self.conns.len().saturating_sub(MAX_SITES_KEPT);
        for (used, key) in idle {
            let Some(c) = self.conns.get_mut(&key) else {
                continue;
            };
            if c.session.is_active()
                && (excess_circuits > 0 || now.saturating_since(used) > IDLE_CIRCUIT)
            {
                excess_circuits = excess_circuits.saturating_sub(1);
                c.session.close(node, now);
            }
            let forget = excess_sites > 0;
            if forget {
                excess_sites -= 1;
                c.session.close(node, now);
            }
            self.reroute(key);
            if forget {
                self.conns.remove(&key);
            }
        }
    }

    /// Bring the routing maps in line with site `key`'s session handles.
    fn reroute(&mut self, key: [u8; 32]) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        let handles = (c.session.circuit(), c.session.stream());
        if handles == c.routed {
            return;
        }
        if let Some(old) = c.routed.0 {
            self.by_circ.remove(&old);
        }
        if let Some(old) = c.routed.1 {
            self.by_stream.remove(&old);
        }
        if let Some(new) = handles.0 {
            self.by_circ.insert(new, key);
        }
        if let Some(new) = handles.1 {
            self.by_stream.insert(new, key);
        }
        c.routed = handles;
    }

    /// A browser's request; its answer comes out of [`GatewayCore::poll_reply`].
    pub fn request(&mut self, now: Time, req: SiteRequest) -> RequestId {
        self.counters.requests += 1;
        let key = self.conn(now, req.site);
        let id = self.next_request;
        self.next_request += 1;
        self.requests.insert(
            id,
            Active {
                site: key,
                view: req.view,
                path: req.path,
                range: req.range,
                if_none_match: req.if_none_match,
                head: req.head,
                answered: false,
                room: INITIAL_ROOM,
                stage: Stage::Manifest,
            },
        );
        RequestId(id)
    }

    /// The caller can take `chunks` chunks of request `id`'s body now (before its head too;
    /// [`INITIAL_ROOM`] until said).
    pub fn room(&mut self, id: RequestId, chunks: usize) {
        if let Some(r) = self.requests.get_mut(&id.0) {
            r.room = chunks;
        }
    }

    /// The browser went away: forget request `id`.
    pub fn cancel(&mut self, id: RequestId) {
        self.requests.remove(&id.0);
    }

    /// Requests not yet fully answered.
    pub fn pending(&self) -> usize {
        self.requests.len()
    }

    /// The next piece of an answer.
    pub fn poll_reply(&mut self) -> Option<(RequestId, ReplyPart)> {
        self.out.pop_front()
    }

    fn answer(&mut self, id: u64, head: Head) {
        self.out.push_back((RequestId(id), ReplyPart::Head(head)));
    }

    fn fail_site(&mut self, key: &[u8; 32], status: u16, title: &str, detail: &str) {
        let ids: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, r)| &r.site == key)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.fail_request(id, status, title, detail);
        }
    }

    fn fail_request(&mut self, id: u64, status: u16, title: &str, detail: &str) {
        let Some(mut r) = self.requests.remove(&id) else {
            return;
        };
        self.counters.errors += 1;
        if !r.answered {
            r.answered = true;
            self.answer(id, site_error(status, title, detail));
        } else {
            // Headers went out already: abort the body so the browser sees a failed
            // transfer, never a silently short file.
            self.out
                .push_back((RequestId(id), ReplyPart::Abort(detail.to_string())));
        }
    }

    /// What site `key`'s session reports.
    fn on_session(&mut self, node: &mut Node, now: Time, key: [u8; 32], ev: SessionEvent) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        match ev {
            SessionEvent::Built { path } => {
                self.counters.circuits_built += 1;
                // A new exit: its first manifest is checked against witnesses unlike it.
                let exit = path.last().copied();
                if let Some(exit) = exit.filter(|e| Some(*e) != c.checked) {
                    if let Some((mut w, _)) = c.witness.take() {
                        w.close(node, now);
                    }
                    let w = Freshness::start(node, now, c.site, exit, WITNESSES);
                    c.witness = Some((w, exit));
                }
                c.path = path;
            }
            SessionEvent::Opened => c.session.succeeded(),
            SessionEvent::Data(data) => self.on_data(node, now, key, &data),
            SessionEvent::Retrying { .. } => {
                // The session is building the next circuit; the fetch asks again for
                // everything outstanding once its stream opens.
                c.fetch.reset();
                if c.fetch.outstanding() == 0 {
                    c.session.close(node, now);
                }
            }
            SessionEvent::GaveUp { why } => self.unreachable(now, key, &why),
        }
        self.reroute(key);
    }

    /// The fetch protocol failed on site `key`'s circuit: try a fresh one.
    fn retry(&mut self, node: &mut Node, now: Time, key: [u8; 32], why: String) {
        if let Some(c) = self.conns.get_mut(&key) {
            let ev = c.session.retry(node, now, why);
            self.on_session(node, now, key, ev);
        }
    }

    /// Site `key`'s last circuits all failed: the network is unreachable for this site.
    /// What the reader already verified stays usable: the manifest (until it expires) and
    /// every cached block. Only requests that need the network fail; the next request that
    /// does tries circuits again.
    fn unreachable(&mut self, now: Time, key: [u8; 32], why: &str) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        c.refreshing = false;
        c.fetch = SiteFetch::new(c.site);
        let has_manifest = c.manifest.is_some();
        if let Some((_, at)) = c.manifest.as_mut() {
            *at = now;
        }
        let site = c.site;
        let cache = &self.cache;
        let stuck: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, r)| r.site == key)
            .filter(|(_, r)| match &r.stage {
                Stage::Manifest => !has_manifest,
                Stage::Streaming {
                    blocks, plan, next, ..
                } => blocks[*next..plan.end_block.min(blocks.len())]
                    .iter()
                    .any(|h| !cache.contains(h)),
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stuck {
            self.fail_request(
                id,
                502,
                "Site unreachable",
                &format!(
                    "Umbra could not reach {site} through {MAX_CIRCUIT_FAILURES} circuits in a \
                     row ({why}). The network may be partitioned or too few relays are online."
                ),
            );
        }
    }

    /// Move every request as far as it can go; ask for what it needs next.
    fn advance(&mut self, now: Time, wall: crate::time::WallTime) {
        let ids: Vec<u64> = self.requests.keys().copied().collect();
        for id in ids {
            let Some(r) = self.requests.get_mut(&id) else {
                continue;
            };
            let site = r.site;
            if matches!(r.stage, Stage::Manifest) {
                let Some(c) = self.conns.get_mut(&site) else {
                    continue;
                };
                // A site with writers is served from their merged view; the manifest is
                // asked for meanwhile, for a site that turns out to have none.
                let spec = (c.site, &r.view);
                let merged = match c.writers.serving(now, MANIFEST_TTL, &mut c.fetch, spec) {
                    writers::Serving::Merged(m) => Some(m),
                    writers::Serving::Undecided => {
                        if c.manifest.is_none() && c.unconfirmed.is_none() && !c.refreshing {
                            c.refreshing = true;
                            c.fetch.want_manifest();
                        }
                        continue;
                    }
                    writers::Serving::Manifest => None,
                };
                if let Some(m) = merged {
                    if self
                        .requests
                        .get(&id)
                        .is_some_and(|r| r.path == writers::WRITERS_PAGE)
                    {
                        self.requests.remove(&id);
                        self.answer(id, writers::writers_page(&m, self.port));
                        continue;
                    }
                    // Responding starts the stream: fall through to ask for its blocks now.
                    self.respond(id, &*m);
                } else {
                    if c.manifest
                        .as_ref()
                        .is_some_and(|(m, _)| m.manifest().expires <= wall)
                    {
                        // A manifest kept while offline is never used past its signed expiry.
                        c.manifest = None;
                    }
                    let usable = match &c.manifest {
                        Some((m, at))
                            if now.saturating_since(*at) < MANIFEST_TTL || c.refreshing =>
                        {
                            Some(m.clone())
                        }
                        _ => None,
                    };
                    match usable {
                        // Responding starts the stream: fall through to ask for its blocks.
                        Some(m) => self.respond(id, &*m),
                        // A manifest held for its witnesses is not asked for again meanwhile.
                        None if c.unconfirmed.is_some() => continue,
                        None => {
                            c.refreshing = true;
                            c.fetch.want_manifest();
                            continue;
                        }
                    }
                }
            }
            let Some(r) = self.requests.get_mut(&id) else {
                continue;
            };
            let Active {
                stage,
                answered,
                room,
                ..
            } = r;
            let Stage::Streaming {
                blocks,
                plan,
                next,
                head,
            } = stage
            else {
                continue;
            };
            let end = plan.end_block.min(blocks.len());
            if head.is_some() && blocks.get(*next).is_some_and(|h| self.cache.contains(h)) {
                if let Some(h) = head.take() {
                    *answered = true;
                    self.out.push_back((RequestId(id), ReplyPart::Head(h)));
                }
            }
            while head.is_none() && *next < end && *room > 0 {
                let Some(data) = self.cache.get(&blocks[*next]) else {
                    break;
                };
                let part = data[plan.slice(*next, data.len())].to_vec();
                self.counters.bytes_out += part.len() as u64;
                self.out.push_back((RequestId(id), ReplyPart::Chunk(part)));
                *room -= 1;
                *next += 1;
            }
            if *next >= end {
                self.requests.remove(&id);
                continue;
            }
            let ahead: Vec<[u8; 32]> = blocks[*next..end.min(*next + READ_AHEAD)]
                .iter()
                .filter(|h| !self.cache.contains(h))
                .copied()
                .collect();
            if let Some(c) = self.conns.get_mut(&site) {
                c.last_used = now;
                for h in ahead {
                    if !c.fetch.is_wanted(&h) {
                        c.fetch.want_block(h);
                    }
                }
            }
        }
    }

    fn flush(&mut self, node: &mut Node, now: Time) {
        let keys: Vec<[u8; 32]> = self.conns.keys().copied().collect();
        for key in keys {
            let Some(c) = self.conns.get_mut(&key) else {
                continue;
            };
            if !c.session.is_active() && c.fetch.outstanding() > 0 {
                c.session.start(node, now);
            }
            let lost = if c.session.is_open() {
                let bytes = c.fetch.poll_send();
                c.session.send(node, now, &bytes)
            } else {
                None
            };
            self.reroute(key);
            if let Some(ev) = lost {
                self.on_session(node, now, key, ev);
            }
        }
    }

    /// Settle the manifests held for witnesses that answered (or did not in time): the
    /// newest verified version is used; an exit that served an older one is left for a
    /// fresh circuit, and the newer version is remembered so it cannot be rolled back.
    fn confirm(&mut self, node: &mut Node, now: Time) {
        let keys: Vec<[u8; 32]> = self.conns.keys().copied().collect();
        for key in keys {
            let Some(c) = self.conns.get_mut(&key) else {
                continue;
            };
            let Some((w, exit)) = c.witness.as_mut() else {
                continue;
            };
            let timed_out = c
                .unconfirmed
                .as_ref()
                .is_some_and(|(_, at)| now >= *at + WITNESS_WAIT);
            if !w.is_done() && !timed_out {
                continue;
            }
            w.close(node, now);
            let newest = w.newest().cloned();
            c.checked = Some(*exit);
            c.witness = None;
            // What a witness saw is remembered: an exit answering later cannot go below it.
            if let Some(v) = &newest {
                let _ = self.tracker.observe(v);
            }
            let Some((m, _)) = c.unconfirmed.take() else {
                continue;
            };
            c.refreshing = false;
            match newest.filter(|v| v.manifest().seq > m.manifest().seq) {
                None => c.manifest = Some((Arc::new(*m), now)),
                Some(v) => {
                    self.counters.stale_exits += 1;
                    c.manifest = Some((Arc::new(v), now));
                    let why = "the exit served an older version than a witness saw".to_string();
                    self.retry(node, now, key, why);
                }
            }
        }
    }
}

impl App for GatewayCore {
    fn start(&mut self, node: &mut Node, now: Time) {
        self.sample(node, now);
    }

    fn on_event(&mut self, node: &mut Node, now: Time, event: NodeEvent) {
        let key = match &event {
            NodeEvent::Built { circ, .. }
            | NodeEvent::Failed { circ, .. }
            | NodeEvent::Closed { circ, .. } => self.by_circ.get(circ),
            NodeEvent::StreamOpened { stream }
            | NodeEvent::StreamData { stream, .. }
            | NodeEvent::StreamEnded { stream, .. } => self.by_stream.get(stream),
        };
        let Some(key) = key.copied() else {
            let witness = self
                .conns
                .values_mut()
                .filter_map(|c| c.witness.as_mut())
                .find(|(w, _)| w.concerns(&event));
            if let Some((w, _)) = witness {
                w.on_event(node, now, event);
                self.confirm(node, now);
            }
            return;
        };
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        let ev = c.session.on_event(node, now, event);
        self.reroute(key);
        if let Some(ev) = ev {
            self.on_session(node, now, key, ev);
        }
    }

    fn tick(&mut self, node: &mut Node, now: Time) {
        let wall = node.wall(now);
        self.confirm(node, now);
        self.advance(now, wall);
        self.flush(node, now);
        if now.saturating_since(self.last_housekeeping) >= Duration::from_secs(1) {
            self.last_housekeeping = now;
            self.close_idle(node, now);
        }
    }

    fn finished(&self) -> Option<i32> {
        // The gateway serves until the driver's shutdown future resolves.
        None
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.conns
            .values()
            .filter(|c| c.witness.is_some())
            .filter_map(|c| c.unconfirmed.as_ref().map(|(_, at)| *at + WITNESS_WAIT))
            .min()
    }
}
