//! The HTTP gateway and dashboard server (`protocol-spec/08-gateway.md`).
//!
//! A hyper HTTP/1.1 server on a loopback socket. Each request is routed by
//! [`crate::gateway::route`]: site files go to the node owner task as [`GwRequest`]s and come
//! back as streamed replies; the dashboard's files are served from memory and its API asks
//! the owner task for a snapshot. Everything refused gets an error page. Not in this module:
//! the routing rules and headers (`crate::gateway`), fetching (`app.rs`), the status
//! document (`status.rs`).

pub mod app;
pub mod pins_api;
pub mod status;

use super::error::RuntimeError;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use self::app::{GatewayApp, GwRequest, Reply, ReplyBody, SiteAsk, StreamBody, page, site_error};
use self::pins_api::{ControlHead, PinAsk};
use self::status::StatusInfo;
use super::driver::{Driver, Waker};
use crate::gateway::{
    Refusal, RequestHead, Route, dashboard_headers, error_page, refusal_page, route, shell,
};
use crate::node::Node;

/// Browser connections open at once; more are closed on accept (`08-gateway.md#host-checks`).
pub const MAX_CONNECTIONS: usize = 256;
/// How long a connection may take to send a request head, and may sit idle between requests.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a browser request may wait for its first byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a pin request waits for the first check before it is answered 202.
const PIN_WAIT: Duration = Duration::from_secs(10 * 60);

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

struct Ctx {
    port: u16,
    tx: mpsc::UnboundedSender<GwRequest>,
    waker: Waker,
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

fn to_response(reply: Reply, waker: &Waker) -> Response<Body> {
    let body = match reply.body {
        ReplyBody::Full(b) => full(b),
        ReplyBody::Stream { rx, len } => StreamBody {
            rx,
            waker: waker.clone(),
            remaining: len,
        }
        .boxed_unsync(),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() =
        hyper::StatusCode::from_u16(reply.status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    let headers = resp.headers_mut();
    for (k, v) in reply.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(HeaderName::from_static(k), v);
        }
    }
    resp
}

fn dashboard_reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut headers: Vec<(&'static str, String)> = dashboard_headers()
        .iter()
        .map(|(k, v)| (*k, (*v).to_string()))
        .collect();
    headers.push(("content-type", content_type.to_string()));
    page(status, headers, body)
}

async fn ask<T>(ctx: &Ctx, make: impl FnOnce(oneshot::Sender<T>) -> GwRequest) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    ctx.tx.send(make(tx)).ok()?;
    ctx.waker.wake();
    tokio::time::timeout(REQUEST_TIMEOUT, rx).await.ok()?.ok()
}

async fn dashboard(ctx: &Ctx, path: &str) -> Reply {
    match path {
        "/" | "/index.html" => {
            dashboard_reply(200, "text/html; charset=utf-8", status::DASHBOARD_HTML)
        }
        "/dashboard.js" => {
            dashboard_reply(200, "text/javascript; charset=utf-8", status::DASHBOARD_JS)
        }
        "/dashboard.css" => dashboard_reply(200, "text/css; charset=utf-8", status::DASHBOARD_CSS),
        "/api/status" => match ask(ctx, GwRequest::Status).await {
            Some(doc) => dashboard_reply(200, "application/json", doc),
            None => dashboard_reply(503, "text/plain", "the node is not answering\n"),
        },
        "/metrics" => match ask(ctx, GwRequest::Metrics).await {
            Some(doc) => dashboard_reply(200, "text/plain; version=0.0.4", doc),
            None => dashboard_reply(503, "text/plain", "the node is not answering\n"),
        },
        "/api/pins" => {
            let (status, doc) = ask(ctx, |r| GwRequest::Pins(PinAsk::List(r)))
                .await
                .unwrap_or_else(|| pins_api::error(503, "the node is not answering"));
            dashboard_reply(status, "application/json", doc)
        }
        _ => dashboard_reply(
            404,
            "text/html; charset=utf-8",
            error_page(404, "Not found", "The dashboard has no such page."),
        ),
    }
}

fn shell_reply(
    status: u16,
    headers: Vec<(&'static str, String)>,
    ty: &str,
    body: impl Into<Bytes>,
) -> Reply {
    let mut headers = headers;
    headers.push(("content-type", ty.to_string()));
    page(status, headers, body)
}

async fn handle(req: Request<Incoming>, ctx: Arc<Ctx>) -> Result<Response<Body>, Infallible> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let target = req.uri().to_string();
    let (host, fetch_dest, accept) = (header("host"), header("sec-fetch-dest"), header("accept"));
    let head = RequestHead {
        method: req.method().as_str(),
        target: &target,
        host: host.as_deref(),
        fetch_dest: fetch_dest.as_deref(),
        accept: accept.as_deref(),
    };
    if matches!(head.method, "POST" | "DELETE") {
        return Ok(to_response(
            pins_control(&ctx, &req, &head).await,
            &ctx.waker,
        ));
    }
    // RFC 9112 §3.2: a request with more than one Host is answered 400.
    let routed = if req.headers().get_all("host").iter().count() > 1 {
        Route::Refused(Refusal::DuplicateHost)
    } else {
        route(&head, ctx.port)
    };
    let reply = match routed {
        Route::Refused(r) => {
            let (status, title, detail) = refusal_page(&r);
            dashboard_reply(
                status,
                "text/html; charset=utf-8",
                error_page(status, title, &detail),
            )
        }
        Route::Dashboard { path } => dashboard(&ctx, &path).await,
        Route::ToShell { origin, target } => {
            let mut headers = shell::shell_headers(&origin, ctx.port);
            headers.push((
                "location",
                format!("{}{target}", shell::view_origin(&origin, ctx.port)),
            ));
            headers.push(("vary", "Sec-Fetch-Dest, Accept".into()));
            page(303, headers, Bytes::new())
        }
        Route::Shell { origin, target } => shell_reply(
            200,
            shell::shell_headers(&origin, ctx.port),
            "text/html; charset=utf-8",
            shell::shell_page(&origin, ctx.port, &target),
        ),
        Route::ShellFile { name } => match name.as_str() {
            "shell.js" => dashboard_reply(200, "text/javascript; charset=utf-8", shell::SHELL_JS),
            "shell.css" => dashboard_reply(200, "text/css; charset=utf-8", shell::SHELL_CSS),
            _ => dashboard_reply(
                404,
                "text/html; charset=utf-8",
                error_page(404, "Not found", "The gateway has no such file."),
            ),
        },
        Route::Site {
            origin,
            path,
            proxied,
        } => {
            // Any of the site's own origins may frame it: its frame pages, and the frame
            // after a link from one view of the site to another (`08-gateway.md#writers`).
            let ancestor = (!proxied).then(|| shell::site_subdomains(&origin.site, ctx.port));
            let head = req.method() == hyper::Method::HEAD;
            let (range, if_none_match) = (header("range"), header("if-none-match"));
            let mut reply = match ask(&ctx, |reply| {
                GwRequest::Site(Box::new(SiteAsk {
                    site: origin.site,
                    view: origin.view,
                    path,
                    range,
                    if_none_match,
                    head,
                    reply,
                }))
            })
            .await
            {
                Some(r) => r,
                None => site_error(
                    504,
                    "Site did not answer in time",
                    "The network did not deliver this site's manifest within a minute. \
                     Try again; if it keeps failing, too few of its storers may be online.",
                ),
            };
            reply.headers.push((
                "content-security-policy",
                shell::site_csp(ancestor.as_deref()),
            ));
            reply
        }
    };
    Ok(to_response(reply, &ctx.waker))
}

/// A pins control request (`08-gateway.md#control`): answered when the node did it (a pin:
/// when its first check ended, or after [`PIN_WAIT`] with 202).
async fn pins_control(ctx: &Ctx, req: &Request<Incoming>, head: &RequestHead<'_>) -> Reply {
    let control = ControlHead {
        method: head.method,
        target: head.target,
        host: head.host,
        control: req
            .headers()
            .get("x-umbra-control")
            .is_some_and(|v| v.as_bytes() == b"1"),
        origin: req.headers().contains_key("origin"),
    };
    let (status, doc) = match pins_api::control(&control, ctx.port) {
        Err((status, why)) => pins_api::error(status, &why),
        Ok((add, site)) => {
            let (tx, rx) = oneshot::channel();
            let ask = if add {
                PinAsk::Add(site, tx)
            } else {
                PinAsk::Remove(site, tx)
            };
            if ctx.tx.send(GwRequest::Pins(ask)).is_err() {
                pins_api::error(503, "the node is not answering")
            } else {
                ctx.waker.wake();
                match tokio::time::timeout(PIN_WAIT, rx).await {
                    Ok(Ok(answer)) => answer,
                    Ok(Err(_)) => pins_api::error(503, "the node is not answering"),
                    Err(_) => (202, "{\"pending\":true}".to_string()),
                }
            }
        }
    };
    dashboard_reply(status, "application/json", doc)
}

/// Accept browser connections on `listener` until the task is dropped.
pub fn spawn_server(
    listener: TcpListener,
    port: u16,
    tx: mpsc::UnboundedSender<GwRequest>,
    waker: Waker,
) {
    let ctx = Arc::new(Ctx { port, tx, waker });
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        let mut last_error_log = None::<std::time::Instant>;
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // Out of descriptors, say: logged at most once a minute.
                    if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                        tracing::warn!("gateway: accept failed: {e} (logged once a minute)");
                        last_error_log = Some(std::time::Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // At the cap, a new connection is closed at once: memory and descriptors stay
            // bounded, and idle ones free their slot within HEADER_TIMEOUT.
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(req, ctx.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    // Applies to the first request's head and to every idle wait between
                    // requests: slow or idle connections are closed.
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                drop(slot);
            });
        }
    });
}

/// The gateway serves this machine only: anyone who can connect could use the node's
/// circuits, its fetch proxy and its dashboard (a `Host` header is the client's to choose).
fn check_loopback(addr: SocketAddr) -> Result<(), RuntimeError> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    Err(RuntimeError::Usage(format!(
        "the gateway must listen on a loopback address (127.0.0.1 or [::1]), not {}: \
         whoever can connect to it could browse through your node and read your dashboard",
        addr
    )))
}

/// Bind the gateway's listener: `addr`, or, when `fallback` and that port is taken, any free
/// port on the same address. Returns the listener and its port.
pub async fn bind(addr: SocketAddr, fallback: bool) -> Result<(TcpListener, u16), RuntimeError> {
    check_loopback(addr)?;
    let l = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) if fallback => {
            tracing::warn!("port {} is taken ({e}); using a free port", addr.port());
            TcpListener::bind(SocketAddr::new(addr.ip(), 0))
                .await
                .map_err(RuntimeError::listen(addr.ip()))?
        }
        Err(e) => return Err(RuntimeError::listen(addr)(e)),
    };
    let port = l.local_addr().map_err(RuntimeError::listen(addr))?.port();
    Ok((l, port))
}

/// Run `driver`'s node with the gateway on `gateway` (and, for relays, accepting links on
/// `relay_listener`) until `shutdown` resolves; hands the node back.
pub async fn run_with_gateway(
    driver: Driver,
    relay_listener: Option<TcpListener>,
    (gateway, port): (TcpListener, u16),
    (info, memory, pins): (
        StatusInfo,
        Option<crate::runtime::site_cmd::Cache>,
        Option<crate::app::pinner::Pinner>,
    ),
    shutdown: impl std::future::Future<Output = ()>,
) -> Node {
    let (tx, rx) = mpsc::unbounded_channel();
    spawn_server(gateway, port, tx, driver.waker());
    let mut app = GatewayApp::new(rx, info, memory);
    if let Some(p) = pins {
        app = app.with_pins(p);
    }
    driver.run_keep(relay_listener, &mut app, shutdown).await.1
}
