//! The pins control API of a running node (`protocol-spec/08-gateway.md#control`,
//! `07-sites.md#pinning`): `GET /api/pins`, `POST /api/pins/<address>` (answered when the
//! first check ended), `DELETE /api/pins/<address>`.
//!
//! A control request (POST, DELETE) is served only when it names the dashboard's own host
//! and carries `X-Umbra-Control: 1`, and never when it carries an `Origin`: a page a browser
//! shows cannot send such a request without a CORS preflight, which the gateway refuses, so
//! no site can pin or unpin through the reader's browser. [`PinsApi`] runs on the node owner
//! task, beside the gateway's core.
//! Not in this module: the checks (`crate::app::pinner`), the commands (`pins_cmd.rs`).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::app::App;
use crate::app::pinner::{CheckDone, Pinner};
use crate::app::pins::Pin;
use crate::node::{Node, NodeEvent};
use crate::site::address::SiteAddress;
use crate::time::Time;

/// An answer: HTTP status and JSON body.
pub type Answer = (u16, String);

/// A request of the pins API, for the owner task.
#[derive(Debug)]
pub enum PinAsk {
    /// Pin a site; answered when its first check ended.
    Add(SiteAddress, oneshot::Sender<Answer>),
    /// Unpin a site.
    Remove(SiteAddress, oneshot::Sender<Answer>),
    /// The list.
    List(oneshot::Sender<Answer>),
}

impl PinAsk {
    /// Answer it with `answer` at once (no pins here).
    pub fn refuse(self, answer: Answer) {
        let (PinAsk::Add(_, r) | PinAsk::Remove(_, r) | PinAsk::List(r)) = self;
        let _ = r.send(answer);
    }
}

/// A control request, as the HTTP server sees it.
#[derive(Debug, Clone, Copy)]
pub struct ControlHead<'a> {
    /// The method.
    pub method: &'a str,
    /// The request target.
    pub target: &'a str,
    /// The `Host` header.
    pub host: Option<&'a str>,
    /// Whether `X-Umbra-Control: 1` is present.
    pub control: bool,
    /// Whether an `Origin` header is present.
    pub origin: bool,
}

/// What a control request asks, or why it is refused (status, reason).
pub fn control(req: &ControlHead<'_>, port: u16) -> Result<(bool, SiteAddress), (u16, String)> {
    let add = match req.method {
        "POST" => true,
        "DELETE" => false,
        m => return Err((405, format!("method {m} is not served here"))),
    };
    let ours = [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ];
    if !req
        .host
        .is_some_and(|h| ours.iter().any(|o| o.eq_ignore_ascii_case(h)))
    {
        return Err((
            403,
            "control requests go to the dashboard's own host".into(),
        ));
    }
    if !req.control || req.origin {
        return Err((
            403,
            "control requests come from local programs (umbra pin), not from pages".into(),
        ));
    }
    let Some(addr) = req.target.strip_prefix("/api/pins/") else {
        return Err((404, "no such control request".into()));
    };
    SiteAddress::parse(addr)
        .map(|s| (add, s))
        .map_err(|e| (400, e.to_string()))
}

/// A JSON error answer.
pub fn error(status: u16, why: &str) -> Answer {
    (status, json!({ "error": why }).to_string())
}

fn pin_json(p: &Pin, checking: bool) -> Value {
    let mut v = p.to_json();
    v["checking"] = Value::Bool(checking);
    v
}

/// The pins of a running node and the requests waiting for a check.
#[derive(Debug)]
pub struct PinsApi {
    pinner: Pinner,
    waiting: BTreeMap<[u8; 32], Vec<oneshot::Sender<Answer>>>,
}

impl PinsApi {
    /// The API over `pinner`.
    pub fn new(pinner: Pinner) -> PinsApi {
        PinsApi {
            pinner,
            waiting: BTreeMap::new(),
        }
    }

    /// The pins, for the status document.
    pub fn pinner(&self) -> &Pinner {
        &self.pinner
    }

    /// Take a request.
    pub fn ask(&mut self, node: &mut Node, now: Time, ask: PinAsk) {
        match ask {
            PinAsk::Add(site, reply) => match self.pinner.add(node, now, site) {
                Ok(()) => self.waiting.entry(site.dht_key()).or_default().push(reply),
                Err(e) => {
                    let _ = reply.send(error(507, &e.to_string()));
                }
            },
            PinAsk::Remove(site, reply) => {
                let answer = match self.pinner.remove(node, now, site) {
                    Ok(true) => (200, json!({ "removed": true }).to_string()),
                    Ok(false) => (404, json!({ "removed": false }).to_string()),
                    Err(e) => error(500, &e.to_string()),
                };
                if let Some(w) = self.waiting.remove(&site.dht_key()) {
                    for r in w {
                        let _ = r.send(error(409, "unpinned before its first check ended"));
                    }
                }
                let _ = reply.send(answer);
            }
            PinAsk::List(reply) => {
                let _ = reply.send((200, self.list_json(node, now).to_string()));
            }
        }
    }

    /// The list as `/api/pins` gives it.
    pub fn list_json(&self, node: &Node, now: Time) -> Value {
        let checking = self.pinner.checking();
        let pins: Vec<Value> = self
            .pinner
            .pins()
            .iter()
            .map(|p| pin_json(p, checking == Some(p.site)))
            .collect();
        json!({
            "now": node.wall(now).0,
            "pins": pins,
            "load_error": self.pinner.load_error,
        })
    }

    /// Answer the requests whose check ended.
    fn answer_done(&mut self) {
        while let Some(CheckDone {
            site,
            pin,
            fetched,
            restored,
        }) = self.pinner.poll_done()
        {
            let Some(waiting) = self.waiting.remove(&site.dht_key()) else {
                continue;
            };
            let body = json!({
                "pin": pin_json(&pin, false),
                "fetched": fetched,
                "restored": restored,
                "error": pin.error,
            })
            .to_string();
            let status = if pin.error.is_some() { 502 } else { 200 };
            for r in waiting {
                let _ = r.send((status, body.clone()));
            }
        }
        // Requests whose client went away are forgotten.
        self.waiting.retain(|_, w| {
            w.retain(|r| !r.is_closed());
            !w.is_empty()
        });
    }

    /// Whether `event` belongs to a check.
    pub fn concerns(&self, event: &NodeEvent) -> bool {
        self.pinner.concerns(event)
    }

    /// The node started.
    pub fn start(&mut self, node: &mut Node, now: Time) {
        self.pinner.start(node, now);
    }

    /// A node event of a check.
    pub fn on_event(&mut self, node: &mut Node, now: Time, event: NodeEvent) {
        self.pinner.on_event(node, now, event);
        self.answer_done();
    }

    /// After a batch of work.
    pub fn tick(&mut self, node: &mut Node, now: Time) {
        self.pinner.tick(node, now);
        self.answer_done();
    }

    /// The next check's time.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.pinner.poll_timeout()
    }
}

#[cfg(test)]
mod tests {
    use super::{ControlHead, control};

    const SITE: &str = "/api/pins/";

    #[test]
    fn only_local_programs_may_pin_or_unpin() {
        let addr = {
            let key = crate::crypto::keys::IdentityKey::generate(
                &mut crate::crypto::rng::UmbraRng::from_u64(1),
            );
            crate::site::address::SiteAddress(key.public()).encode()
        };
        let target = format!("{SITE}{addr}");
        let ok = ControlHead {
            method: "POST",
            target: &target,
            host: Some("localhost:8470"),
            control: true,
            origin: false,
        };
        assert!(matches!(control(&ok, 8470), Ok((true, _))));
        let del = ControlHead {
            method: "DELETE",
            host: Some("127.0.0.1:8470"),
            ..ok
        };
        assert!(matches!(control(&del, 8470), Ok((false, _))));
        // What a page could send: an Origin, no control header, a site's host, another port.
        let refused = [
            ControlHead { origin: true, ..ok },
            ControlHead {
                control: false,
                ..ok
            },
            ControlHead {
                host: Some("abc.localhost:8470"),
                ..ok
            },
            ControlHead {
                host: Some("localhost:8471"),
                ..ok
            },
            ControlHead { host: None, ..ok },
        ];
        for r in refused {
            assert_eq!(control(&r, 8470).map_err(|e| e.0), Err(403), "{r:?}");
        }
        let put = ControlHead {
            method: "PUT",
            ..ok
        };
        assert_eq!(control(&put, 8470).map_err(|e| e.0), Err(405));
        let bad = ControlHead {
            target: "/api/pins/not-an-address",
            ..ok
        };
        assert_eq!(control(&bad, 8470).map_err(|e| e.0), Err(400));
        let other = ControlHead {
            target: "/api/status",
            ..ok
        };
        assert_eq!(control(&other, 8470).map_err(|e| e.0), Err(404));
    }
}
