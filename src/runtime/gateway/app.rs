//! The bridge between the HTTP server and the gateway's core on the node owner task
//! (`protocol-spec/08-gateway.md#fetching`).
//!
//! The server queues [`GwRequest`]s; [`GatewayApp`], the driver's [`App`], hands each site
//! request to the sans-IO [`GatewayCore`] by id, carries the core's answers back (a head on a
//! oneshot channel, then body chunks on a bounded channel per response), tells the core how
//! many chunks each response's channel can take (a slow browser slows the fetch), and
//! cancels requests whose browser went away. All the gateway's decisions are in the core.
//! Not in this module: HTTP (`mod.rs`), the dashboard's rendering (`status.rs`).

use std::collections::BTreeMap;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::pins_api::PinsApi;
use super::status::StatusInfo;
use crate::app::App;
use crate::app::gateway::{self, Body, GatewayCore, Head, INITIAL_ROOM, ReplyPart, RequestId};
use crate::app::pinner::Pinner;
use crate::node::{Node, NodeEvent};
use crate::site::address::SiteAddress;
use crate::site::writers::ViewSpec;
use crate::time::Time;

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
    /// The pins API.
    Pins(super::pins_api::PinAsk),
}

/// A browser's request for a file of a site.
#[derive(Debug)]
pub struct SiteAsk {
    /// The site.
    pub site: SiteAddress,
    /// Which view of it (`08-gateway.md#writers`).
    pub view: ViewSpec,
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

/// A core's head with a whole body as a reply (a streamed one is opened by
/// [`GatewayApp::deliver`]).
fn whole(head: Head) -> Reply {
    let body = match head.body {
        Body::Full(b) => Bytes::from(b),
        Body::Stream { .. } => Bytes::new(),
    };
    Reply {
        status: head.status,
        headers: head.headers,
        body: ReplyBody::Full(body),
    }
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
    whole(gateway::site_error(status, title, detail))
}

/// Where a request's answer goes.
#[derive(Debug)]
enum Waiting {
    /// The head.
    Head(oneshot::Sender<Reply>),
    /// The body's chunks, `left` bytes still to come.
    Body { tx: mpsc::Sender<Chunk>, left: u64 },
}

/// The gateway application: the core, and the channels to the HTTP server.
#[derive(Debug)]
pub struct GatewayApp {
    core: GatewayCore,
    rx: mpsc::UnboundedReceiver<GwRequest>,
    info: StatusInfo,
    waiting: BTreeMap<RequestId, Waiting>,
    /// The store holding the reader's memory of manifests seen (`07-sites.md#memory`).
    memory: Option<crate::runtime::site_cmd::Cache>,
    /// The node's pins, if it keeps any (`07-sites.md#pinning`).
    pins: Option<PinsApi>,
}

impl GatewayApp {
    /// A gateway taking requests from `rx`, caching `info.cache_quota` bytes of blocks.
    /// `memory`: the store where what the gateway saw is kept across runs.
    pub fn new(
        rx: mpsc::UnboundedReceiver<GwRequest>,
        info: StatusInfo,
        memory: Option<crate::runtime::site_cmd::Cache>,
    ) -> Self {
        let mut core = GatewayCore::new(info.cache_quota);
        core.set_port(info.port);
        if let Some(store) = memory.as_ref().and_then(|m| m.lock().ok()) {
            let loaded = store.load_seen(core.tracker_mut());
            tracing::info!(
                "remembered {} sites' manifest versions and {} proofs of equivocation",
                loaded.versions,
                loaded.proofs
            );
        }
        GatewayApp {
            core,
            rx,
            info,
            waiting: BTreeMap::new(),
            memory,
            pins: None,
        }
    }

    /// Keep pins beside the gateway, with their API.
    pub fn with_pins(mut self, pinner: Pinner) -> Self {
        self.pins = Some(PinsApi::new(pinner));
        self
    }

    /// Write what the core's memory of manifests seen changed (a new version, a proof).
    fn save_seen(&mut self) {
        let changes = self.core.take_seen_changes();
        if changes.is_empty() {
            return;
        }
        if let Some(store) = self.memory.as_ref().and_then(|m| m.lock().ok()) {
            if let Err(e) = store.save_seen(&changes) {
                tracing::warn!("the manifests seen could not be saved: {e}");
            }
        }
    }

    fn take_requests(&mut self, node: &mut Node, now: Time) {
        while let Ok(r) = self.rx.try_recv() {
            match r {
                GwRequest::Site(ask) => {
                    let SiteAsk {
                        site,
                        view,
                        path,
                        range,
                        if_none_match,
                        head,
                        reply,
                    } = *ask;
                    let req = gateway::SiteRequest {
                        site,
                        view,
                        path,
                        range,
                        if_none_match,
                        head,
                    };
                    let id = self.core.request(now, req);
                    self.waiting.insert(id, Waiting::Head(reply));
                }
                GwRequest::Status(reply) => {
                    let snapshot = self.core.snapshot(node, now);
                    let doc = super::status::status_json(&self.info, node, now, &snapshot);
                    let _ = reply.send(doc);
                }
                GwRequest::Metrics(reply) => {
                    let snapshot = self.core.snapshot(node, now);
                    let _ = reply.send(super::status::metrics(node, &snapshot));
                }
                GwRequest::Pins(ask) => match self.pins.as_mut() {
                    Some(p) => p.ask(node, now, ask),
                    None => ask.refuse(super::pins_api::error(
                        503,
                        "this node keeps no pins (a reader needs its cache file: \
                         [reader] cache = true)",
                    )),
                },
            }
        }
    }

    /// Tell the core how many chunks each response can take; forget the ones whose browser
    /// went away.
    fn update_rooms(&mut self) {
        let mut gone = Vec::new();
        for (id, w) in &self.waiting {
            match w {
                Waiting::Head(tx) if tx.is_closed() => gone.push(*id),
                Waiting::Body { tx, .. } if tx.is_closed() => gone.push(*id),
                Waiting::Body { tx, .. } => self.core.room(*id, tx.capacity()),
                Waiting::Head(_) => {}
            }
        }
        for id in gone {
            self.waiting.remove(&id);
            self.core.cancel(id);
        }
    }

    /// Carry the core's answers to the HTTP server.
    fn deliver(&mut self) {
        while let Some((id, part)) = self.core.poll_reply() {
            match (part, self.waiting.remove(&id)) {
                (ReplyPart::Head(h), Some(Waiting::Head(reply))) => match h.body {
                    Body::Full(_) => {
                        let _ = reply.send(whole(h));
                    }
                    Body::Stream { len } => {
                        let (tx, rx) = mpsc::channel(INITIAL_ROOM);
                        let _ = reply.send(Reply {
                            status: h.status,
                            headers: h.headers,
                            body: ReplyBody::Stream { rx, len },
                        });
                        self.waiting.insert(id, Waiting::Body { tx, left: len });
                    }
                },
                (ReplyPart::Chunk(c), Some(Waiting::Body { tx, left })) => {
                    let left = left.saturating_sub(c.len() as u64);
                    let _ = tx.try_send(Ok(Bytes::from(c)));
                    if left > 0 {
                        self.waiting.insert(id, Waiting::Body { tx, left });
                    }
                }
                (ReplyPart::Abort(why), Some(Waiting::Body { tx, .. })) => {
                    let _ = tx.try_send(Err(std::io::Error::other(why)));
                }
                (_, Some(w)) => {
                    self.waiting.insert(id, w);
                }
                (_, None) => {}
            }
        }
    }
}

impl App for GatewayApp {
    fn start(&mut self, node: &mut Node, now: Time) {
        self.core.start(node, now);
        if let Some(p) = self.pins.as_mut() {
            p.start(node, now);
        }
    }

    fn on_event(&mut self, node: &mut Node, now: Time, event: NodeEvent) {
        match self.pins.as_mut() {
            Some(p) if p.concerns(&event) => p.on_event(node, now, event),
            _ => {
                self.core.on_event(node, now, event);
                self.deliver();
            }
        }
    }

    fn tick(&mut self, node: &mut Node, now: Time) {
        self.take_requests(node, now);
        self.update_rooms();
        self.core.tick(node, now);
        self.deliver();
        self.save_seen();
        if let Some(p) = self.pins.as_mut() {
            p.tick(node, now);
        }
    }

    fn poll_timeout(&self) -> Option<Time> {
        let pins = self.pins.as_ref().and_then(PinsApi::poll_timeout);
        [self.core.poll_timeout(), pins].into_iter().flatten().min()
    }

    fn finished(&self) -> Option<i32> {
        // The gateway serves until the driver's shutdown future resolves.
        None
    }
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
