//! What the gateway makes of the answers on a site's stream (`protocol-spec/08-gateway.md#fetching`):
//! verified manifests and blocks, rosters and writers' heads, and failures, each moving the
//! site's requests on or failing them. Part of [`GatewayCore`]; not in this module: asking
//! (`mod.rs`), answering (`respond.rs`).

use std::sync::Arc;

use super::{GatewayCore, Stage};
use crate::app::fetch::{FetchEvent, TransferError};
use crate::node::Node;
use crate::time::Time;

impl GatewayCore {
    /// Bytes from site `key`'s exit: the fetch protocol's answers.
    pub(super) fn on_data(&mut self, node: &mut Node, now: Time, key: [u8; 32], data: &[u8]) {
        let wall = node.wall(now);
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        let proofs = self.tracker.equivocations().len();
        let site = c.site.encode();
        let r = c.fetch.on_data(data, &mut self.tracker, wall);
        if self.tracker.equivocations().len() > proofs {
            // Reported, never silently used (`07-sites.md#rollback-and-equivocation`).
            self.counters.equivocations += 1;
            tracing::warn!(
                "site {} signed two different manifests with one sequence; \
                 keeping the first one seen",
                crate::redact::Sensitive(site)
            );
        }
        if let Err(e) = r {
            self.retry(node, now, key, e.to_string());
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

    /// One verified answer (or failure) for site `key`.
    pub(super) fn on_fetch_event(&mut self, now: Time, key: [u8; 32], ev: FetchEvent) {
        // Rosters, writers' heads and history (and a copy of each manifest) for the site's
        // merged view (`11-writers.md#in-the-dht`).
        if let Some(c) = self.conns.get_mut(&key)
            && c.writers.on_event(now, c.site, &ev, &mut c.fetch)
        {
            return;
        }
        match ev {
            FetchEvent::Manifest(Ok(m)) => {
                if let Some(c) = self.conns.get_mut(&key) {
                    if c.witness.is_some() {
                        c.unconfirmed = Some((m, now));
                    } else {
                        c.manifest = Some((Arc::new(*m), now));
                        c.refreshing = false;
                    }
                }
            }
            FetchEvent::Manifest(Err(e)) => {
                let mut writers = false;
                let stale = self.conns.get_mut(&key).and_then(|c| {
                    c.refreshing = false;
                    writers = c.writers.may_have_writers();
                    c.manifest.as_mut().map(|(_, at)| *at = now)
                });
                // A site that may have writers is decided by its roster, not its manifest.
                if stale.is_none() && !writers {
                    let (status, title) = match e {
                        TransferError::SiteNotFound => (404, "Site not found"),
                        _ => (502, "Site refused"),
                    };
                    let detail = match e {
                        TransferError::SiteNotFound => {
                            "No node of the network holds this site. It may never have been \
                             published, or its publisher let it expire."
                                .to_string()
                        }
                        other => format!("The site's manifest could not be used: {other}."),
                    };
                    self.fail_site(&key, status, title, &detail);
                }
            }
            FetchEvent::Block(h, Ok(data)) => self.cache.put(h, Arc::from(data)),
            // Taken by the site's writers above.
            FetchEvent::Roster(_) | FetchEvent::Head(..) | FetchEvent::History(..) => {}
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
}
