//! The status document (`/api/status`), Prometheus metrics (`/metrics`) and the dashboard's
//! static files (`protocol-spec/08-gateway.md#dashboard`).
//!
//! Node ids are shown shortened and site addresses shortened, as logs redact them: the
//! dashboard is for seeing what the node does, not a record of whom it talked to. Not in
//! this module: collecting the figures (the node and the gateway core's
//! [`GatewaySnapshot`]).

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::app::gateway::{GatewaySnapshot, Sample};
use crate::crypto::keys::NodeId;
use crate::node::Node;
use crate::site::address::SiteAddress;
use crate::time::Time;

/// The dashboard page.
pub const DASHBOARD_HTML: &str = include_str!("../../../assets/dashboard/index.html");
/// The dashboard's script.
pub const DASHBOARD_JS: &str = include_str!("../../../assets/dashboard/dashboard.js");
/// The dashboard's style sheet.
pub const DASHBOARD_CSS: &str = include_str!("../../../assets/dashboard/dashboard.css");

/// Fixed facts about this node for the status document.
#[derive(Debug, Clone)]
pub struct StatusInfo {
    /// Its roles: `reader`, `gateway`, `relay`, `storer`.
    pub roles: Vec<&'static str>,
    /// The gateway's port.
    pub port: u16,
    /// Bytes the record store may use (relays).
    pub store_quota: u64,
    /// Bytes the gateway's block cache may use.
    pub cache_quota: u64,
    /// When it started.
    pub started: Time,
    /// The Tor first hop, when `[tor]` is on.
    pub tor: Option<crate::runtime::tor_status::TorStatusHandle>,
}

/// A node id as shown: its first 4 hex digits.
pub fn short_id(id: &NodeId) -> String {
    format!("{:02x}{:02x}…", id.0[0], id.0[1])
}

/// A site address as shown: first 6 and last 4 characters.
pub fn short_site(site: &SiteAddress) -> String {
    let a = site.encode();
    format!("{}…{}.umbra", &a[..6], &a[a.len() - 4..])
}

/// The status document.
pub fn status_json(info: &StatusInfo, node: &mut Node, now: Time, g: &GatewaySnapshot) -> String {
    let traffic = node.traffic();
    let series = |f: fn(&Sample) -> u64| -> Vec<u64> { g.samples.iter().map(f).collect() };
    let serving: Vec<Value> = node
        .held_sites(now, 50)
        .into_iter()
        .map(|(site, seq)| json!({ "address": short_site(&site), "seq": seq }))
        .collect();
    let (used, records) = node
        .dht()
        .map_or((0, 0), |d| (d.store().used(), d.store().count()));
    let relay = node.relay_stats().map(|s| {
        json!({
            "circuits": node.relay_circuits(),
            "created": s.created,
            "cells_forwarded": s.forwarded,
            "cells_backwarded": s.backwarded,
            "torn_down": s.torn_down,
            "layer_failures": s.layer_failures,
            "replays_refused": s.replays,
            "evicted": s.evicted,
            "expired_idle": s.expired,
        })
    });
    let (exit_lookups, exit_queued) = node.exit_load();
    let dht = node.dht().map(|d| {
        let s = d.stats();
        json!({
            "contacts": d.table().len(),
            "rpcs_in": s.rpcs_in,
            "rpcs_out": s.rpcs_out,
            "lookups": s.lookups,
            "invalid_records": s.invalid_records,
            "refused_unknown": s.refused_unknown,
            "paced": s.paced,
            "commits": s.commits,
            "equivocations": s.equivocations,
            "republished": s.republished,
            "republish_skipped": s.republish_skipped,
            "blocks_renewed": s.renewals,
            "rejoins": s.rejoins,
            "exit_lookups": exit_lookups,
            "exit_queued_bytes": exit_queued,
        })
    });
    let mut equivocations: Vec<Value> = g
        .equivocated
        .iter()
        .map(|(site, seq)| json!({ "site": short_site(site), "seq": seq, "seen_as": "reader" }))
        .collect();
    equivocations.extend(
        storer_proofs(node).iter().map(
            |(site, seq)| json!({ "site": short_site(site), "seq": seq, "seen_as": "storer" }),
        ),
    );
    let writers: Vec<Value> = g
        .writers
        .iter()
        .map(|w| {
            json!({
                "site": short_site(&w.site),
                "roster": w.roster,
                "writers": w.writers.iter().map(|(k, prefixes, cutoff)| json!({
                    "key": crate::wire::hex::encode(&k.to_bytes()[..8]),
                    "prefixes": prefixes,
                    "cutoff": cutoff,
                })).collect::<Vec<_>>(),
                "lines": w.lines,
                "conflicts": w.conflicts,
                "refused": w.refused,
                "branches": w.branches,
            })
        })
        .collect();
    let stats = node.directory_stats();
    let wall = node.wall(now);
    let directory = json!({
        "relays": node.directory().len(),
        "learning": node.directory_learning(),
        "last_sync_secs_ago": stats.last_sync.map(|t| wall.0.saturating_sub(t.0)),
        "admitted": stats.admitted,
        "refused_bad": stats.refused_bad,
        "refused_caps": stats.refused_caps,
        "expired": stats.expired,
        "renewals": stats.renewals,
    });
    let circuits: Vec<Value> = g
        .circuits
        .iter()
        .map(|hops| {
            json!({ "purpose": "site", "hops": hops.iter().map(short_id).collect::<Vec<_>>() })
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "roles": info.roles,
        "node_id": node.node_id().map(|id| short_id(&id)),
        "uptime_secs": now.saturating_since(info.started).as_secs(),
        "links": node.link_count(),
        "circuits": { "own": circuits, "relayed": node.relay_circuits() },
        "bandwidth": {
            "totals": {
                "own": traffic.own,
                "relayed": traffic.relayed,
                "dht": traffic.dht,
                "seeding": traffic.seeding,
            },
            "series": {
                "own": series(|s| s.own),
                "relayed": series(|s| s.relayed),
                "dht": series(|s| s.dht),
                "seeding": series(|s| s.seeding),
            },
        },
        "storage": {
            "store_used": used,
            "store_quota": info.store_quota,
            "records": records,
            "cache_used": g.cache_used,
            "cache_quota": info.cache_quota,
        },
        "serving": { "sites": serving },
        "gateway": {
            "port": info.port,
            "requests": g.counters.requests,
            "errors": g.counters.errors,
            "bytes_out": g.counters.bytes_out,
            "site_circuits": g.sites_open,
            "circuits_built": g.counters.circuits_built,
            "equivocations": g.counters.equivocations,
            "stale_exits": g.counters.stale_exits,
        },
        "relay": relay,
        "limits": limits_json(node, now),
        "dht": dht,
        "directory": directory,
        "equivocations": equivocations,
        "writers": writers,
        "tor": info.tor.as_ref().map(|t| t.json()),
    })
    .to_string()
}

/// What the limits allow and what they did (`09-relay.md#bandwidth`): bytes passed and the
/// limit per class and direction, the total, held cells and circuits closed, the accounting
/// period and its pace, and the handshake queue.
pub fn limits_json(node: &Node, now: Time) -> Value {
    use crate::limits::{Class, Direction};
    let shaper = node.shaper();
    let mut classes = serde_json::Map::new();
    for c in Class::ALL {
        let dir = |d| {
            let u = shaper.usage(d, c);
            json!({ "bytes": u.bytes, "limit": u.limit })
        };
        classes.insert(
            c.name().into(),
            json!({ "in": dir(Direction::In), "out": dir(Direction::Out) }),
        );
    }
    let s = node.shaping_stats();
    let limits = node.limits();
    let wall = node.wall(now);
    let accounting = node.accounting().map(|p| {
        let st = p.state();
        json!({
            "quota": p.accounting().quota,
            "period_start": st.start,
            "period_end": p.end(),
            "used_in": st.used[0],
            "used_out": st.used[1],
            "pace_bytes_per_sec": p.rate(wall),
        })
    });
    let handshakes = node.handshake_stats().map(|h| {
        json!({
            "answered": h.answered,
            "queued": h.queued,
            "refused_overloaded": h.refused_overloaded,
            "refused_rate": h.refused_rate,
            "max_wait_ms": h.max_wait_us / 1000,
        })
    });
    json!({
        "classes": classes,
        "total": {
            "rate": shaper.total_rate(),
            "configured_rate": limits.rate,
            "read": shaper.bytes_read(),
        },
        "held_cells": s.held_cells,
        "held_total": s.held_total,
        "closed_for_memory": s.closed_for_memory,
        "closed_for_overrun": s.closed_for_overrun,
        "links_dropped_unread": s.links_dropped_unread,
        "memory": { "limit": limits.memory, "held_bytes": s.held_cells as u64 * crate::wire::cell::CELL_LEN as u64 },
        "cpu_percent": limits.cpu_percent,
        "accounting": accounting,
        "handshakes": handshakes,
    })
}

/// The sites a storer holds proofs against, and their sequences (`06-dht.md#store`).
fn storer_proofs(node: &Node) -> Vec<(SiteAddress, u64)> {
    node.dht()
        .map(|d| {
            d.store()
                .proofs()
                .iter()
                .filter_map(|p| crate::site::manifest::parse(&p.first).ok())
                .map(|m| (m.claimed_site(), m.claimed_seq()))
                .collect()
        })
        .unwrap_or_default()
}

/// Prometheus text exposition of the node's counters.
pub fn metrics(node: &Node, snapshot: &GatewaySnapshot) -> String {
    let (g, cache_used, sites_open) = (snapshot.counters, snapshot.cache_used, snapshot.sites_open);
    let t = node.traffic();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {v}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        }
    };
    metric(
        "umbra_bytes_total",
        "counter",
        "Bytes carried, by subsystem.",
        &[
            ("subsystem=\"own\"", t.own),
            ("subsystem=\"relayed\"", t.relayed),
            ("subsystem=\"dht\"", t.dht),
            ("subsystem=\"seeding\"", t.seeding),
        ],
    );
    metric(
        "umbra_links",
        "gauge",
        "Open links.",
        &[("", node.link_count() as u64)],
    );
    metric(
        "umbra_relay_circuits",
        "gauge",
        "Circuits carried for others.",
        &[("", node.relay_circuits() as u64)],
    );
    metric(
        "umbra_gateway_requests_total",
        "counter",
        "Site requests received by the gateway.",
        &[("", g.requests)],
    );
    metric(
        "umbra_gateway_errors_total",
        "counter",
        "Site requests answered with an error.",
        &[("", g.errors)],
    );
    metric(
        "umbra_gateway_bytes_out_total",
        "counter",
        "Body bytes sent to browsers.",
        &[("", g.bytes_out)],
    );
    metric(
        "umbra_gateway_site_circuits",
        "gauge",
        "Sites with an open circuit.",
        &[("", sites_open as u64)],
    );
    metric(
        "umbra_cache_bytes",
        "gauge",
        "Bytes of verified blocks cached by the gateway.",
        &[("", cache_used)],
    );
    metric(
        "umbra_equivocation_proofs",
        "gauge",
        "Proofs kept of a site key signing two manifests with one sequence.",
        &[
            ("seen_as=\"reader\"", snapshot.equivocated.len() as u64),
            ("seen_as=\"storer\"", storer_proofs(node).len() as u64),
        ],
    );
    metric(
        "umbra_directory_relays",
        "gauge",
        "Relays in this node's verified directory.",
        &[("", node.directory().len() as u64)],
    );
    limit_metrics(node, &mut metric);
    if let Some(d) = node.dht() {
        metric(
            "umbra_store_bytes",
            "gauge",
            "Bytes of records held for the network.",
            &[("", d.store().used())],
        );
        metric(
            "umbra_dht_rpcs_total",
            "counter",
            "DHT RPCs.",
            &[
                ("direction=\"in\"", d.stats().rpcs_in),
                ("direction=\"out\"", d.stats().rpcs_out),
            ],
        );
        metric(
            "umbra_dht_upkeep_total",
            "counter",
            "Republishing rounds' work (06-dht.md#republishing, #renewal).",
            &[
                ("task=\"republished\"", d.stats().republished),
                ("task=\"skipped\"", d.stats().republish_skipped),
                ("task=\"block_renewed\"", d.stats().renewals),
            ],
        );
    }
    out
}

/// The limits' metrics (`09-relay.md#bandwidth`).
fn limit_metrics(node: &Node, metric: &mut impl FnMut(&str, &str, &str, &[(&str, u64)])) {
    use crate::limits::{Class, Direction};
    let shaper = node.shaper();
    let mut passed = Vec::new();
    let mut limits = Vec::new();
    for c in Class::ALL {
        for d in Direction::BOTH {
            let u = shaper.usage(d, c);
            let labels = format!("class=\"{}\",direction=\"{}\"", c.name(), d.name());
            passed.push((labels.clone(), u.bytes));
            if let Some(l) = u.limit {
                limits.push((labels, l));
            }
        }
    }
    fn pairs(v: &[(String, u64)]) -> Vec<(&str, u64)> {
        v.iter().map(|(l, n)| (l.as_str(), *n)).collect()
    }
    metric(
        "umbra_limited_bytes_total",
        "counter",
        "Bytes passed by each class's bucket, each direction (09-relay.md#bandwidth).",
        &pairs(&passed),
    );
    metric(
        "umbra_limit_bytes_per_second",
        "gauge",
        "Each class's limit, each direction.",
        &pairs(&limits),
    );
    if let Some(r) = shaper.total_rate() {
        metric(
            "umbra_total_limit_bytes_per_second",
            "gauge",
            "The total's rate now (the accounting pace, when paced).",
            &[("", r)],
        );
    }
    let s = node.shaping_stats();
    metric(
        "umbra_held_cells",
        "gauge",
        "Cells waiting for their bucket.",
        &[("", s.held_cells as u64)],
    );
    metric(
        "umbra_circuits_closed_total",
        "counter",
        "Circuits closed by the limits (09-relay.md#memory).",
        &[
            ("why=\"memory\"", s.closed_for_memory),
            ("why=\"overrun\"", s.closed_for_overrun),
        ],
    );
    metric(
        "umbra_links_dropped_unread_total",
        "counter",
        "Links dropped because their peer stopped reading (09-relay.md#memory).",
        &[("", s.links_dropped_unread)],
    );
    if let Some(p) = node.accounting() {
        let st = p.state();
        metric(
            "umbra_accounting_bytes",
            "gauge",
            "Bytes counted in the accounting period (09-relay.md#accounting).",
            &[
                ("direction=\"in\"", st.used[0]),
                ("direction=\"out\"", st.used[1]),
            ],
        );
        metric(
            "umbra_accounting_quota_bytes",
            "gauge",
            "The period's quota, each direction.",
            &[("", p.accounting().quota)],
        );
    }
    if let Some(h) = node.handshake_stats() {
        metric(
            "umbra_create_handshakes_total",
            "counter",
            "CREATEs by outcome (09-relay.md#handshakes).",
            &[
                ("outcome=\"answered\"", h.answered),
                ("outcome=\"overloaded\"", h.refused_overloaded),
                ("outcome=\"rate\"", h.refused_rate),
            ],
        );
        metric(
            "umbra_create_queue",
            "gauge",
            "CREATEs waiting for the CPU budget.",
            &[("", h.queued as u64)],
        );
    }
}
