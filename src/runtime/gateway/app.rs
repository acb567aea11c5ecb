//! The gateway's side of the node owner task (`protocol-spec/08-gateway.md#fetching`).
//!
//! [`GatewayApp`] is the driver's [`App`]: it takes browser requests queued by the HTTP
//! server, keeps one circuit and `dht` stream per site (so an exit never links two sites a
//! reader visits), multiplexes manifest and block requests over it with
//! [`SiteFetch`], and streams each response's blocks, in order, as they verify, into the
//! response body (a bounded channel: a slow browser slows the fetch, it never buffers a
//! whole file). Verified blocks stay in an in-memory cache of bounded size. Not in this
//! module: HTTP (see `gateway/mod.rs`), the dashboard's rendering (`status.rs`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::status::{Sample, StatusInfo};
use crate::app::App;
use crate::app::fetch::{FetchEvent, SiteFetch};
use crate::crypto::keys::NodeId;
use crate::gateway::range::{self, Plan};
use crate::gateway::{error_page, site_headers};
use crate::ids::{CircHandle, StreamHandle};
use crate::node::{Node, NodeEvent};
use crate::site::SiteTracker;
use crate::site::address::SiteAddress;
use crate::site::manifest::Verified;
use crate::time::Time;
use crate::wire::hex;

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
/// Chunks buffered between the gateway and one browser connection.
const BODY_CHUNKS: usize = 8;

/// A response body chunk, or the error that aborts the response.
pub type Chunk = Result<Bytes, std::io::Error>;

/// A response from the owner task.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Headers besides the length.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: ReplyBody,
}

/// A response body.
#[derive(Debug)]
pub enum ReplyBody {
    /// All of it at once.
    Full(Bytes),
    /// Streamed as blocks verify; `len` bytes in all.
    Stream {
        /// The chunks.
        rx: mpsc::Receiver<Chunk>,
        /// Content length.
        len: u64,
    },
}

/// What the HTTP server asks of the owner task.
#[derive(Debug)]
pub enum GwRequest {
    /// A file of a site.
    Site(Box<SiteAsk>),
    /// The status document (JSON).
    Status(oneshot::Sender<String>),
    /// Prometheus text metrics.
    Metrics(oneshot::Sender<String>),
}

/// A browser's request for a file of a site.
#[derive(Debug)]
pub struct SiteAsk {
    /// The site.
    pub site: SiteAddress,
    /// The path within it.
    pub path: String,
    /// The `Range` header.
    pub range: Option<String>,
    /// The `If-None-Match` header.
    pub if_none_match: Option<String>,
    /// A HEAD request: no body.
    pub head: bool,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Reply>,
}

/// A reply with a whole body.
pub fn page(status: u16, headers: Vec<(&'static str, String)>, body: impl Into<Bytes>) -> Reply {
    Reply {
        status,
        headers,
        body: ReplyBody::Full(body.into()),
    }
}

/// An HTML error page for a site request.
pub fn site_error(status: u16, title: &str, detail: &str) -> Reply {
    let mut headers = security_headers();
    headers.push(("content-type", "text/html; charset=utf-8".into()));
    headers.push(("cache-control", "no-store".into()));
    page(status, headers, error_page(status, title, detail))
}

fn security_headers() -> Vec<(&'static str, String)> {
    site_headers()
        .iter()
        .map(|(k, v)| (*k, (*v).to_string()))
        .collect()
}

/// Verified blocks by hash, least recently used dropped first beyond the quota.
#[derive(Debug, Default)]
pub struct BlockCache {
    blocks: BTreeMap<[u8; 32], (Bytes, u64)>,
    order: BTreeMap<u64, [u8; 32]>,
    used: u64,
    quota: u64,
    stamp: u64,
}

impl BlockCache {
    /// An empty cache of `quota` bytes.
    pub fn new(quota: u64) -> BlockCache {
        BlockCache {
            quota,
            ..BlockCache::default()
        }
    }

    fn get(&mut self, h: &[u8; 32]) -> Option<Bytes> {
        self.stamp += 1;
        let stamp = self.stamp;
        let (data, old) = self.blocks.get_mut(h)?;
        self.order.remove(old);
        *old = stamp;
        self.order.insert(stamp, *h);
        Some(data.clone())
    }

    fn contains(&self, h: &[u8; 32]) -> bool {
        self.blocks.contains_key(h)
    }

    fn put(&mut self, h: [u8; 32], data: Bytes) {
        if self.blocks.contains_key(&h) {
            return;
        }
        self.stamp += 1;
        self.used += data.len() as u64;
        self.order.insert(self.stamp, h);
        self.blocks.insert(h, (data, self.stamp));
        while self.used > self.quota {
            let Some((_, old)) = self.order.pop_first() else {
                break;
            };
            if let Some((d, _)) = self.blocks.remove(&old) {
                self.used -= d.len() as u64;
            }
        }
    }

    /// Bytes held.
    pub fn used(&self) -> u64 {
        self.used
    }
}

#[derive(Debug)]
struct SiteConn {
    site: SiteAddress,
    circ: Option<CircHandle>,
    stream: Option<StreamHandle>,
    ready: bool,
    fetch: SiteFetch,
    manifest: Option<(Arc<Verified>, Time)>,
    refreshing: bool,
    failures: u32,
    last_used: Time,
    path: Vec<NodeId>,
}

#[derive(Debug)]
enum Stage {
    Manifest,
    Streaming {
        blocks: Vec<[u8; 32]>,
        plan: Plan,
        next: usize,
        tx: mpsc::Sender<Chunk>,
        /// The status and headers, held until the first block verified: a site that cannot
        /// deliver any of the file gets an error page, not a 200 with a broken body.
        head: Option<Reply>,
    },
}

#[derive(Debug)]
struct Active {
    site: [u8; 32],
    path: String,
    range: Option<String>,
    if_none_match: Option<String>,
    head: bool,
    reply: Option<oneshot::Sender<Reply>>,
    stage: Stage,
}

/// Counters for the dashboard and `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
pub struct GatewayCounters {
    /// Site requests received.
    pub requests: u64,
    /// Site requests answered with an error status.
    pub errors: u64,
    /// Body bytes sent to browsers.
    pub bytes_out: u64,
    /// Site circuits built.
    pub circuits_built: u64,
    /// Sites caught signing two manifests with one sequence (the first stays in use).
    pub equivocations: u64,
}

/// The gateway application.
#[derive(Debug)]
pub struct GatewayApp {
    rx: mpsc::UnboundedReceiver<GwRequest>,
    conns: BTreeMap<[u8; 32], SiteConn>,
    by_circ: BTreeMap<CircHandle, [u8; 32]>,
    by_stream: BTreeMap<StreamHandle, [u8; 32]>,
    requests: BTreeMap<u64, Active>,
    next_request: u64,
    cache: BlockCache,
    tracker: SiteTracker,
    counters: GatewayCounters,
    info: StatusInfo,
    samples: VecDeque<Sample>,
    last_sample: Option<(Time, crate::node::Traffic)>,
    last_housekeeping: Time,
}

impl GatewayApp {
    /// A gateway taking requests from `rx`, caching `info.cache_quota` bytes of blocks.
    pub fn new(rx: mpsc::UnboundedReceiver<GwRequest>, info: StatusInfo) -> Self {
        GatewayApp {
            rx,
            conns: BTreeMap::new(),
            by_circ: BTreeMap::new(),
            by_stream: BTreeMap::new(),
            requests: BTreeMap::new(),
            next_request: 1,
            cache: BlockCache::new(info.cache_quota),
            tracker: SiteTracker::new(),
            counters: GatewayCounters::default(),
            info,
            samples: VecDeque::new(),
            last_sample: None,
            last_housekeeping: Time::ZERO,
        }
    }

    fn conn(&mut self, now: Time, site: SiteAddress) -> [u8; 32] {
        let key = site.0.to_bytes();
        let c = self.conns.entry(key).or_insert_with(|| SiteConn {
            site,
            circ: None,
            stream: None,
            ready: false,
            fetch: SiteFetch::new(site),
            manifest: None,
            refreshing: false,
            failures: 0,
            last_used: now,
            path: Vec::new(),
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
        let open = self.conns.values().filter(|c| c.circ.is_some()).count();
        let mut excess_circuits = open.saturating_sub(MAX_SITE_CIRCUITS);
        let mut excess_sites = self.conns.len().saturating_sub(MAX_SITES_KEPT);
        for (used, key) in idle {
            let Some(c) = self.conns.get_mut(&key) else {
                continue;
            };
            if c.circ.is_some()
                && (excess_circuits > 0 || now.saturating_since(used) > IDLE_CIRCUIT)
            {
                excess_circuits = excess_circuits.saturating_sub(1);
                drop_circuit(c, &mut self.by_circ, &mut self.by_stream, node, now);
            }
            if excess_sites > 0 {
                excess_sites -= 1;
                self.conns.remove(&key);
            }
        }
    }

    fn take_requests(&mut self, node: &mut Node, now: Time) {
        while let Ok(r) = self.rx.try_recv() {
            match r {
                GwRequest::Site(ask) => {
                    let SiteAsk {
                        site,
                        path,
                        range,
                        if_none_match,
                        head,
                        reply,
                    } = *ask;
                    self.counters.requests += 1;
                    let key = self.conn(now, site);
                    let id = self.next_request;
                    self.next_request += 1;
                    self.requests.insert(
                        id,
                        Active {
                            site: key,
                            path,
                            range,
                            if_none_match,
                            head,
                            reply: Some(reply),
                            stage: Stage::Manifest,
                        },
                    );
                }
                GwRequest::Status(reply) => {
                    let doc = self.status_json(node, now);
                    let _ = reply.send(doc);
                }
                GwRequest::Metrics(reply) => {
                    let text = self.metrics(node, now);
                    let _ = reply.send(text);
                }
            }
        }
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
        if let Some(reply) = r.reply.take() {
            let _ = reply.send(site_error(status, title, detail));
        } else if let Stage::Streaming { tx, .. } = r.stage {
            // Headers went out already: abort the body so the browser sees a failed
            // transfer, never a silently short file.
            let _ = tx.try_send(Err(std::io::Error::other(detail.to_string())));
        }
    }

    fn on_circuit_lost(&mut self, node: &mut Node, now: Time, key: [u8; 32], why: &str) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        drop_circuit(c, &mut self.by_circ, &mut self.by_stream, node, now);
        c.fetch.reset();
        c.failures += 1;
        if c.failures < MAX_CIRCUIT_FAILURES {
            // `flush` builds the next circuit if anything is still wanted.
            return;
        }
        // The network is unreachable for this site. What the reader already verified stays
        // usable: the manifest (until it expires) and every cached block. Only requests
        // that need the network fail; the next request that does tries circuits again.
        c.failures = 0;
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

    fn on_fetch_event(&mut self, now: Time, key: [u8; 32], ev: FetchEvent) {
        match ev {
            FetchEvent::Manifest(Ok(m)) => {
                if let Some(c) = self.conns.get_mut(&key) {
                    c.manifest = Some((Arc::new(*m), now));
                    c.refreshing = false;
                }
            }
            FetchEvent::Manifest(Err(e)) => {
                let stale = self.conns.get_mut(&key).and_then(|c| {
                    c.refreshing = false;
                    c.manifest.as_mut().map(|(_, at)| *at = now)
                });
                if stale.is_none() {
                    let (status, title) = match e {
                        crate::app::fetch::TransferError::SiteNotFound => (404, "Site not found"),
                        _ => (502, "Site refused"),
                    };
                    let detail = match e {
                        crate::app::fetch::TransferError::SiteNotFound => {
                            "No node of the network holds this site. It may never have been \
                             published, or its publisher let it expire."
                                .to_string()
                        }
                        other => format!("The site's manifest could not be used: {other}."),
                    };
                    self.fail_site(&key, status, title, &detail);
                }
            }
            FetchEvent::Block(h, Ok(data)) => self.cache.put(h, Bytes::from(data)),
            FetchEvent::Block(h, Err(e)) => {
                let ids: Vec<u64> = self
                    .requests
                    .iter()
                    .filter(|(_, r)| match &r.stage {
                        Stage::Streaming { blocks, .. } => r.site == key && blocks.contains(&h),
                        Stage::Manifest => false,
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.fail_request(id, 502, "Block unavailable", &e.to_string());
                }
            }
        }
    }

    /// Start the response of a request whose site's manifest is known.
    fn respond(&mut self, id: u64, m: &Verified) {
        let Some(r) = self.requests.get_mut(&id) else {
            return;
        };
        let mut path = r.path.clone();
        if path.is_empty() || path.ends_with('/') {
            path.push_str("index.html");
        }
        let Some(entry) = m.manifest().entry(&path) else {
            let dir_index = format!("{path}/index.html");
            if m.manifest().entry(&dir_index).is_some() {
                let mut headers = security_headers();
                headers.push(("location", format!("/{path}/")));
                let reply = page(301, headers, Bytes::new());
                if let Some(tx) = r.reply.take() {
                    let _ = tx.send(reply);
                }
                self.requests.remove(&id);
                return;
            }
            self.fail_request(
                id,
                404,
                "Not in this site",
                &format!("The site has no file at /{path}."),
            );
            return;
        };
        let etag = format!("\"{}\"", hex::encode(&entry.hash[..16]));
        let mut headers = security_headers();
        let media = if entry
            .media_type
            .bytes()
            .all(|b| b.is_ascii_graphic() || b == b' ')
        {
            entry.media_type.clone()
        } else {
            "application/octet-stream".to_string()
        };
        headers.push(("etag", etag.clone()));
        headers.push(("accept-ranges", "bytes".into()));
        headers.push(("cache-control", "no-cache".into()));
        if r.if_none_match
            .as_deref()
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
        {
            if let Some(tx) = r.reply.take() {
                let _ = tx.send(page(304, headers, Bytes::new()));
            }
            self.requests.remove(&id);
            return;
        }
        let plan = Plan::new(range::parse(r.range.as_deref(), entry.size), entry.size);
        headers.push((
            "content-type",
            if plan.status == 416 {
                "text/plain".into()
            } else {
                media
            },
        ));
        match plan.status {
            416 => {
                headers.push(("content-range", format!("bytes */{}", entry.size)));
                if let Some(tx) = r.reply.take() {
                    let _ = tx.send(page(416, headers, "range not satisfiable\n"));
                }
                self.requests.remove(&id);
                return;
            }
            206 => headers.push((
                "content-range",
                format!(
                    "bytes {}-{}/{}",
                    plan.start,
                    plan.start + plan.len - 1,
                    entry.size
                ),
            )),
            _ => {}
        }
        if r.head || plan.len == 0 {
            headers.push(("content-length", plan.len.to_string()));
            if let Some(tx) = r.reply.take() {
                let _ = tx.send(page(plan.status, headers, Bytes::new()));
            }
            self.requests.remove(&id);
            return;
        }
        let (tx, rx) = mpsc::channel(BODY_CHUNKS);
        r.stage = Stage::Streaming {
            blocks: entry.blocks.clone(),
            plan,
            next: plan.first_block,
            tx,
            head: Some(Reply {
                status: plan.status,
                headers,
                body: ReplyBody::Stream { rx, len: plan.len },
            }),
        };
    }

    /// Move every request as far as it can go; ask for what it needs next.
    fn advance(&mut self, now: Time, wall: crate::time::WallTime) {
        let ids: Vec<u64> = self.requests.keys().copied().collect();
        for id in ids {
            let Some(r) = self.requests.get_mut(&id) else {
                continue;
            };
            if r.reply.as_ref().is_some_and(oneshot::Sender::is_closed) {
                // The browser went away before the answer.
                self.requests.remove(&id);
                continue;
            }
            let site = r.site;
            if matches!(r.stage, Stage::Manifest) {
                let Some(c) = self.conns.get_mut(&site) else {
                    continue;
                };
                if c.manifest
                    .as_ref()
                    .is_some_and(|(m, _)| m.manifest().expires <= wall)
                {
                    // A manifest kept while offline is never used past its signed expiry.
                    c.manifest = None;
                }
                let usable = match &c.manifest {
                    Some((m, at)) if now.saturating_since(*at) < MANIFEST_TTL || c.refreshing => {
                        Some(m.clone())
                    }
                    _ => None,
                };
                match usable {
                    // Responding starts the stream: fall through to ask for its blocks now.
                    Some(m) => self.respond(id, &m),
                    None => {
                        c.refreshing = true;
                        c.fetch.want_manifest();
                        continue;
                    }
                }
            }
            let Some(r) = self.requests.get_mut(&id) else {
                continue;
            };
            let Active { stage, reply, .. } = r;
            let Stage::Streaming {
                blocks,
                plan,
                next,
                tx,
                head,
            } = stage
            else {
                continue;
            };
            if tx.is_closed() {
                self.requests.remove(&id);
                continue;
            }
            let end = plan.end_block.min(blocks.len());
            if head.is_some() && blocks.get(*next).is_some_and(|h| self.cache.contains(h)) {
                if let (Some(h), Some(reply)) = (head.take(), reply.take()) {
                    let _ = reply.send(h);
                }
            }
            while head.is_none() && *next < end && tx.capacity() > 0 {
                let Some(data) = self.cache.get(&blocks[*next]) else {
                    break;
                };
                let part = data.slice(plan.slice(*next, data.len()));
                self.counters.bytes_out += part.len() as u64;
                let _ = tx.try_send(Ok(part));
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
        for (key, c) in &mut self.conns {
            if c.circ.is_none() && c.fetch.outstanding() > 0 {
                let circ = node.build_circuit(now);
                c.circ = Some(circ);
                self.by_circ.insert(circ, *key);
            }
            if let (true, Some(s)) = (c.ready, c.stream) {
                let bytes = c.fetch.poll_send();
                if !bytes.is_empty() {
                    let _ = node.stream_send(now, s, &bytes);
                }
            }
        }
    }

    fn sample(&mut self, node: &Node, now: Time) {
        let t = node.traffic();
        let Some((at, last)) = self.last_sample else {
            self.last_sample = Some((now, t));
            return;
        };
        let secs = now.saturating_since(at).as_secs();
        if secs == 0 {
            return;
        }
        let per = |a: u64, b: u64| (a.saturating_sub(b)) / secs;
        let s = Sample {
            own: per(t.own, last.own),
            relayed: per(t.relayed, last.relayed),
            dht: per(t.dht, last.dht),
            seeding: per(t.seeding, last.seeding),
        };
        for _ in 0..secs.min(super::status::GRAPH_SECONDS as u64) {
            self.samples.push_back(s);
        }
        while self.samples.len() > super::status::GRAPH_SECONDS {
            self.samples.pop_front();
        }
        self.last_sample = Some((now, t));
    }

    fn open_circuits(&self) -> usize {
        self.conns.values().filter(|c| c.circ.is_some()).count()
    }

    fn status_json(&mut self, node: &mut Node, now: Time) -> String {
        self.sample(node, now);
        let circuits: Vec<(String, Vec<NodeId>)> = self
            .conns
            .values()
            .filter(|c| c.ready)
            .map(|c| ("site".to_string(), c.path.clone()))
            .collect();
        super::status::status_json(
            &self.info,
            node,
            now,
            &super::status::GatewayView {
                circuits,
                samples: &self.samples,
                counters: self.counters,
                cache_used: self.cache.used(),
                sites_open: self.open_circuits(),
            },
        )
    }

    fn metrics(&mut self, node: &mut Node, now: Time) -> String {
        self.sample(node, now);
        super::status::metrics(node, self.counters, self.cache.used(), self.open_circuits())
    }
}

impl App for GatewayApp {
    fn start(&mut self, node: &mut Node, now: Time) {
        self.sample(node, now);
    }

    fn on_event(&mut self, node: &mut Node, now: Time, event: NodeEvent) {
        match event {
            NodeEvent::Built { circ, path } => {
                let Some(key) = self.by_circ.get(&circ).copied() else {
                    return;
                };
                self.counters.circuits_built += 1;
                match node.open_stream(now, circ, b"dht") {
                    Ok(s) => {
                        self.by_stream.insert(s, key);
                        if let Some(c) = self.conns.get_mut(&key) {
                            c.stream = Some(s);
                            c.path = path;
                        }
                    }
                    Err(e) => self.on_circuit_lost(node, now, key, &e.to_string()),
                }
            }
            NodeEvent::StreamOpened { stream } => {
                if let Some(c) = self
                    .by_stream
                    .get(&stream)
                    .and_then(|k| self.conns.get_mut(k))
                {
                    c.ready = true;
                    c.failures = 0;
                }
            }
            NodeEvent::StreamData { stream, data } => {
                let Some(key) = self.by_stream.get(&stream).copied() else {
                    return;
                };
                let wall = node.wall(now);
                let Some(c) = self.conns.get_mut(&key) else {
                    return;
                };
                let proofs = self.tracker.equivocations().len();
                let site = c.site.encode();
                let r = c.fetch.on_data(&data, &mut self.tracker, wall);
                if self.tracker.equivocations().len() > proofs {
                    // Reported, never silently used (`07-sites.md#rollback-and-equivocation`).
                    self.counters.equivocations += 1;
                    eprintln!(
                        "umbra: site {} signed two different manifests with one sequence; \
                         keeping the first one seen",
                        crate::redact::Sensitive(site)
                    );
                }
                if let Err(e) = r {
                    self.on_circuit_lost(node, now, key, &e.to_string());
                    return;
                }
                let mut events = Vec::new();
                while let Some(ev) = c.fetch.poll_event() {
                    events.push(ev);
                }
                for ev in events {
                    self.on_fetch_event(now, key, ev);
                }
            }
            NodeEvent::StreamEnded { stream, .. } => {
                if let Some(key) = self.by_stream.get(&stream).copied() {
                    self.on_circuit_lost(node, now, key, "the exit closed the stream");
                }
            }
            NodeEvent::Failed { circ, failure, .. } | NodeEvent::Closed { circ, failure } => {
                if let Some(key) = self.by_circ.get(&circ).copied() {
                    self.on_circuit_lost(node, now, key, &failure.to_string());
                }
            }
        }
    }

    fn tick(&mut self, node: &mut Node, now: Time) {
        self.take_requests(node, now);
        let wall = node.wall(now);
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
}

/// Close a site's circuit (its verified manifest stays).
fn drop_circuit(
    c: &mut SiteConn,
    by_circ: &mut BTreeMap<CircHandle, [u8; 32]>,
    by_stream: &mut BTreeMap<StreamHandle, [u8; 32]>,
    node: &mut Node,
    now: Time,
) {
    if let Some(circ) = c.circ.take() {
        by_circ.remove(&circ);
        node.close_circuit(now, circ);
    }
    if let Some(s) = c.stream.take() {
        by_stream.remove(&s);
    }
    c.ready = false;
}

/// The body of a streamed reply as an HTTP body; each chunk taken wakes the owner task so
/// it can send the next.
pub struct StreamBody {
    /// The chunks.
    pub rx: mpsc::Receiver<Chunk>,
    /// Wakes the owner task.
    pub waker: crate::runtime::driver::Waker,
    /// Bytes still to come.
    pub remaining: u64,
}

impl hyper::body::Body for StreamBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        match self.rx.poll_recv(cx) {
            std::task::Poll::Ready(Some(Ok(b))) => {
                self.remaining = self.remaining.saturating_sub(b.len() as u64);
                self.waker.wake();
                std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(b))))
            }
            std::task::Poll::Ready(Some(Err(e))) => std::task::Poll::Ready(Some(Err(e))),
            std::task::Poll::Ready(None) if self.remaining > 0 => {
                std::task::Poll::Ready(Some(Err(std::io::Error::other("the response ended early"))))
            }
            std::task::Poll::Ready(None) => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}
