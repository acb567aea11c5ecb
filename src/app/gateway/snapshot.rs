//! What the gateway shows on the dashboard and in `/metrics`
//! (`protocol-spec/08-gateway.md#dashboard`): counters, the bandwidth history and a plain
//! snapshot the runtime renders.
//! Not in this module: rendering (`runtime/gateway/status.rs`).

use super::GatewayCore;
use crate::crypto::keys::{IdentityPublic, NodeId};
use crate::node::Node;
use crate::site::address::SiteAddress;
use crate::time::Time;

/// Seconds of bandwidth history kept for the graph.
pub const GRAPH_SECONDS: usize = 120;

/// Bytes per second by subsystem, over one second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// Own circuits.
    pub own: u64,
    /// Relayed for others.
    pub relayed: u64,
    /// DHT traffic.
    pub dht: u64,
    /// Records served to others.
    pub seeding: u64,
}

/// What the gateway shows on the dashboard and in `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySnapshot {
    /// Its sites' circuits: their hops, guard first.
    pub circuits: Vec<Vec<NodeId>>,
    /// Bandwidth history, oldest first.
    pub samples: Vec<Sample>,
    /// Request counters.
    pub counters: GatewayCounters,
    /// Bytes in the block cache.
    pub cache_used: u64,
    /// Sites with an open circuit.
    pub sites_open: usize,
    /// Sites the reader caught signing two manifests with one sequence, and the sequence
    /// (`07-sites.md#memory`); proofs are kept in the tracker and the node's store.
    pub equivocated: Vec<(SiteAddress, u64)>,
    /// Sites read this run that have writers (`11-writers.md`), as last gathered.
    pub writers: Vec<SiteWritersInfo>,
}

/// A site with writers, as the dashboard lists it (`08-gateway.md#dashboard`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteWritersInfo {
    /// The site.
    pub site: SiteAddress,
    /// Its roster's sequence.
    pub roster: u64,
    /// Each listed writer: key, path prefixes (`""`: the whole site), and its cut-off
    /// sequence if revoked. The site key, always a writer, is not listed.
    pub writers: Vec<(IdentityPublic, Vec<String>, Option<u64>)>,
    /// Lines merged into the main view.
    pub lines: usize,
    /// Paths in conflict in the main view.
    pub conflicts: usize,
    /// Heads refused.
    pub refused: usize,
    /// Named branches the writers list.
    pub branches: Vec<String>,
}

/// Counters for the dashboard and `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
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
    /// Exits caught serving an older version than a witness saw (`07-sites.md#freshness`).
    pub stale_exits: u64,
}

impl GatewayCore {
    pub(super) fn sample(&mut self, node: &Node, now: Time) {
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
        for _ in 0..secs.min(GRAPH_SECONDS as u64) {
            self.samples.push_back(s);
        }
        while self.samples.len() > GRAPH_SECONDS {
            self.samples.pop_front();
        }
        self.last_sample = Some((now, t));
    }

    pub(super) fn open_circuits(&self) -> usize {
        self.conns
            .values()
            .filter(|c| c.session.is_active())
            .count()
    }

    /// What the dashboard and `/metrics` show, sampled now.
    pub fn snapshot(&mut self, node: &Node, now: Time) -> GatewaySnapshot {
        self.sample(node, now);
        GatewaySnapshot {
            circuits: self
                .conns
                .values()
                .filter(|c| c.session.is_open())
                .map(|c| c.path.clone())
                .collect(),
            samples: self.samples.iter().copied().collect(),
            counters: self.counters,
            cache_used: self.cache.used(),
            sites_open: self.open_circuits(),
            equivocated: self
                .tracker
                .equivocations()
                .iter()
                .map(|e| (e.site, e.seq))
                .collect(),
            writers: self
                .conns
                .values()
                .filter_map(|c| {
                    let (roster, main) = c.writers.summary()?;
                    let mut branches: Vec<String> = main
                        .view
                        .lines
                        .iter()
                        .flat_map(|l| l.branches.iter().cloned())
                        .collect();
                    branches.sort();
                    branches.dedup();
                    Some(SiteWritersInfo {
                        site: c.site,
                        roster: roster.seq,
                        writers: roster
                            .writers
                            .iter()
                            .map(|w| (w.key, w.prefixes.clone(), w.cutoff.map(|c| c.seq)))
                            .collect(),
                        lines: main.view.lines.len(),
                        conflicts: main.view.conflicts().count(),
                        refused: main.view.refused.len(),
                        branches,
                    })
                })
                .collect(),
        }
    }
}
