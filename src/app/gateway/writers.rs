//! The gateway's reading of sites with many writers (`protocol-spec/08-gateway.md#writers`,
//! `11-writers.md#in-the-dht`): on a site's own stream, beside its manifest, the gateway asks
//! for the site's roster; a site with one is served from its writers' merged view (the
//! newest head of every writer's main line, each verified and admitted), a site without one
//! from its manifest as before. The merged view is used for the same time a manifest is,
//! then gathered again while the old one keeps serving.
//!
//! The gateway also answers `/.umbra/writers` on such a site's origin with a page of its own
//! (no script): the site's writers and lines, every conflict with each side, and the heads
//! refused. Not in this module: the merge (`site::writers`), answering file requests
//! (`respond.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::app::fetch::{FetchEvent, SiteFetch};
use crate::gateway::SiteOrigin;
use crate::site::address::SiteAddress;
use crate::site::writers::head::{FileRef, Head, SignedHead};
use crate::site::writers::merge::{HeadSet, View};
use crate::site::writers::roster::{Roster, SignedRoster};
use crate::site::writers::{LineId, ViewSpec};
use crate::time::Time;

/// A site's merged view, as the gateway serves it.
#[derive(Debug)]
pub struct MergedSite {
    /// The site.
    pub site: SiteAddress,
    /// Which view of it.
    pub spec: ViewSpec,
    /// The view (its conflicts, its lines).
    pub view: View,
    /// The served file of each path (the default winner, tombstones left out).
    pub files: BTreeMap<String, FileRef>,
}

/// What the gateway knows of a site's writers.
#[derive(Debug, Default)]
pub(super) struct SiteWriters {
    /// Whether the roster was asked for in the current round.
    asked: bool,
    /// `None`: not known yet; `Some(None)`: the site has no roster.
    roster: Option<Option<SignedRoster>>,
    heads: HeadSet,
    /// Lines and pinned heads asked for and not answered yet.
    pending_lines: BTreeSet<LineId>,
    pending_pins: BTreeSet<[u8; 32]>,
    /// The views asked for, each with what was last gathered for it and when.
    views: BTreeMap<ViewSpec, Option<(Arc<MergedSite>, Time)>>,
}

/// How a site is to be served.
pub(super) enum Serving {
    /// Not known yet: wait.
    Undecided,
    /// No roster: from its manifest.
    Manifest,
    /// From its writers' merged view.
    Merged(Arc<MergedSite>),
}

impl SiteWriters {
    /// How `spec` of `site` is served now; asks for the roster (again, after `ttl`) and the
    /// view's lines on `fetch`. Without a roster the main view is the manifest's, and any
    /// other view is read under the implicit roster (the site key's own lines).
    pub(super) fn serving(
        &mut self,
        now: Time,
        ttl: std::time::Duration,
        fetch: &mut SiteFetch,
        (site, spec): (SiteAddress, &ViewSpec),
    ) -> Serving {
        if let Some(Some((m, at))) = self.views.get(spec) {
            let m = m.clone();
            if now.saturating_since(*at) >= ttl && !self.asked {
                self.ask(fetch);
            }
            return Serving::Merged(m);
        }
        match &self.roster {
            Some(None) if spec.is_main() => Serving::Manifest,
            Some(r) => {
                if !self.views.contains_key(spec) {
                    let roster = effective(r.as_ref(), site);
                    self.views.insert(spec.clone(), None);
                    self.want(&roster, spec, fetch);
                    // Mid-round (the roster asked again), the round's answer settles it.
                    if !self.asked {
                        self.settle(now, site);
                    }
                    if let Some(Some((m, _))) = self.views.get(spec) {
                        return Serving::Merged(m.clone());
                    }
                }
                Serving::Undecided
            }
            None => {
                self.views.entry(spec.clone()).or_insert(None);
                if !self.asked {
                    self.ask(fetch);
                }
                Serving::Undecided
            }
        }
    }

    /// Whether the site may still turn out to have writers (a missing manifest is then no
    /// reason to fail it).
    pub(super) fn may_have_writers(&self) -> bool {
        !matches!(self.roster, Some(None))
    }

    /// The site's roster and its main view, when it has writers (for the dashboard).
    pub(super) fn summary(&self) -> Option<(&Roster, Arc<MergedSite>)> {
        let Some(Some(r)) = &self.roster else {
            return None;
        };
        let main = self.views.get(&ViewSpec::default())?.as_ref()?;
        Some((&r.roster, main.0.clone()))
    }

    fn ask(&mut self, fetch: &mut SiteFetch) {
        self.asked = true;
        fetch.want_roster();
    }

    /// Ask for the lines of `spec` under `roster`, and the revoked writers' pinned heads.
    fn want(&mut self, roster: &Roster, spec: &ViewSpec, fetch: &mut SiteFetch) {
        for l in roster.lines_of(spec) {
            if self.pending_lines.insert(l) {
                fetch.want_line(l);
            }
        }
        for d in roster.pins() {
            if self.pending_pins.insert(d) {
                fetch.want_history(d);
            }
        }
    }

    /// A fetch event about writers; false if it is not one.
    pub(super) fn on_event(
        &mut self,
        now: Time,
        site: SiteAddress,
        ev: &FetchEvent,
        fetch: &mut SiteFetch,
    ) -> bool {
        match ev {
            FetchEvent::Roster(r) => {
                let roster = match r {
                    Ok(r) => r.as_deref().cloned(),
                    // A roster that does not verify counts as none: the manifest decides.
                    Err(_) => None,
                };
                if roster.is_none() {
                    // No roster (any more): the main view is the manifest's.
                    self.views.remove(&ViewSpec::default());
                }
                let effective = effective(roster.as_ref(), site);
                let specs: Vec<ViewSpec> = self.views.keys().cloned().collect();
                for spec in &specs {
                    self.want(&effective, spec, fetch);
                }
                self.roster = Some(roster);
            }
            FetchEvent::Head(l, r) => {
                self.pending_lines.remove(l);
                if let Ok(Some(h)) = r {
                    self.heads.insert(SignedHead::clone(h));
                }
            }
            FetchEvent::History(d, r) => {
                self.pending_pins.remove(d);
                if let Ok(Some(h)) = r {
                    self.heads.insert_history(SignedHead::clone(h));
                }
            }
            FetchEvent::Manifest(Ok(v)) => {
                // The site key's main line, when it publishes version-1 manifests; the
                // gateway keeps it as the manifest too.
                self.heads.insert(SignedHead {
                    head: Head::from_v1(v.manifest()),
                    bytes: v.bytes().to_vec(),
                });
                self.settle(now, site);
                return false;
            }
            _ => return false,
        }
        self.settle(now, site);
        true
    }

    /// Once the roster and every line asked for have answered: each view asked for.
    fn settle(&mut self, now: Time, site: SiteAddress) {
        let Some(r) = &self.roster else { return };
        if !self.pending_lines.is_empty() || !self.pending_pins.is_empty() {
            return;
        }
        let roster = effective(r.as_ref(), site);
        for (spec, slot) in &mut self.views {
            let view = self.heads.view_of(&roster, spec);
            let files = view
                .files()
                .map(|(p, f)| (p.to_string(), f.clone()))
                .collect();
            let m = MergedSite {
                site,
                spec: spec.clone(),
                view,
                files,
            };
            *slot = Some((Arc::new(m), now));
        }
        self.asked = false;
    }
}

/// The roster a site's views are read under: its own, else the implicit one.
fn effective(r: Option<&SignedRoster>, site: SiteAddress) -> Roster {
    r.map_or_else(|| Roster::implicit(site.0), |r| r.roster.clone())
}

/// The path of the writers page on a site's origin (`08-gateway.md#writers`).
pub const WRITERS_PAGE: &str = ".umbra/writers";

/// The writers page of a merged site: which view it is, the lines merged (each linked to its
/// own origin), the writers' named branches (each linked to its merged view), conflicts with
/// every side, refused heads. `port` is the gateway's, for the links between the site's
/// origins (`08-gateway.md#writers`).
pub fn writers_page(m: &MergedSite, port: u16) -> super::Head {
    use crate::gateway::escape_html as esc;
    use crate::site::writers::head::Value;
    use crate::wire::hex;
    let short = |b: &[u8]| hex::encode(&b[..8.min(b.len())]);
    let url = |view: ViewSpec| esc(&SiteOrigin { site: m.site, view }.url(port));
    let which = match (&m.spec.writer, m.spec.branch.as_str()) {
        (None, "") => "the site's main view".to_string(),
        (None, b) => format!("the merged view of branch <code>{}</code>", esc(b)),
        (Some(w), "") => format!("writer <code>{}</code>'s main line", short(&w.to_bytes())),
        (Some(w), b) => format!(
            "writer <code>{}</code>'s branch <code>{}</code>",
            short(&w.to_bytes()),
            esc(b)
        ),
    };
    let mut body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Writers of this site</title><style>body{{font-family:system-ui,sans-serif;\
         max-width:50em;margin:2em auto;padding:0 1em;color:#222}}code{{font-size:.9em}}\
         td,th{{padding:.2em .6em;text-align:left}}</style></head><body>\
         <h1>Writers of this site</h1><p>This is {which} (<a href=\"{main}/\">the main view</a>). \
         Umbra serves it from its writers' merged view (protocol-spec/11-writers.md): each \
         path's default winner is served; every conflict is listed here with each side.</p>\
         <h2>Lines merged</h2><table><tr><th>writer</th><th>branch</th><th>sequence</th>\
         </tr>",
        main = url(ViewSpec::default()),
    );
    for l in &m.view.lines {
        let line = url(ViewSpec {
            branch: l.branch.clone(),
            writer: Some(l.writer),
        });
        body.push_str(&format!(
            "<tr><td><a href=\"{line}/\"><code>{}</code></a></td><td>{}</td><td>{}</td></tr>",
            short(&l.writer.to_bytes()),
            if l.branch.is_empty() {
                "main".to_string()
            } else {
                esc(&l.branch)
            },
            l.seq
        ));
    }
    body.push_str("</table>");
    let mut branches: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for l in &m.view.lines {
        for b in &l.branches {
            branches
                .entry(b.as_str())
                .or_default()
                .push(short(&l.writer.to_bytes()));
        }
    }
    if !branches.is_empty() {
        body.push_str("<h2>Branches</h2><ul>");
        for (b, who) in branches {
            let view = url(ViewSpec {
                branch: b.to_string(),
                writer: None,
            });
            body.push_str(&format!(
                "<li><a href=\"{view}/\"><code>{}</code></a>: written by <code>{}</code></li>",
                esc(b),
                who.join("</code>, <code>")
            ));
        }
        body.push_str("</ul>");
    }
    let conflicts: Vec<_> = m.view.conflicts().collect();
    body.push_str(&format!("<h2>Conflicts: {}</h2>", conflicts.len()));
    for c in conflicts {
        body.push_str(&format!("<h3><code>/{}</code></h3><ul>", esc(&c.path)));
        for (i, side) in c.candidates.iter().enumerate() {
            let who = m
                .view
                .line(&side.line)
                .map_or_else(String::new, |l| short(&l.writer.to_bytes()));
            let what = match &side.value {
                Value::File(f) => format!("{} bytes, BLAKE3 {}", f.size, short(&f.hash)),
                Value::Tombstone => "deleted".to_string(),
            };
            body.push_str(&format!(
                "<li>{} writer <code>{who}</code> at sequence {}: {what}</li>",
                if i == 0 { "served:" } else { "also:" },
                side.dot
            ));
        }
        body.push_str("</ul>");
    }
    if !m.view.refused.is_empty() {
        body.push_str("<h2>Refused</h2><ul>");
        for (line, e) in &m.view.refused {
            body.push_str(&format!(
                "<li>line <code>{}</code>: {}</li>",
                line.short(),
                esc(&e.to_string())
            ));
        }
        body.push_str("</ul>");
    }
    body.push_str("</body></html>\n");
    let mut headers = super::reply::security_headers();
    headers.push(("content-type", "text/html; charset=utf-8".into()));
    headers.push(("cache-control", "no-store".into()));
    super::page(200, headers, body)
}
