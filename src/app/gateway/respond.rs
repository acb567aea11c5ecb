//! Answering a request once its site's manifest is known
//! (`protocol-spec/08-gateway.md#fetching`): the file's head (redirects, 304, ranges, 416),
//! and the warning page for a site caught equivocating (`07-sites.md#memory`).
//! Not in this module: fetching blocks and streaming the body (`super`).

use super::reply::security_headers;
use super::{Body, GatewayCore, Head, Stage, page};
use crate::gateway::range::{self, Plan};
use crate::site::address::SiteAddress;
use crate::site::manifest::Verified;
use crate::site::{SeenChanges, SiteTracker};
use crate::wire::hex;

impl GatewayCore {
    /// The memory of manifests seen (`07-sites.md#memory`): the runtime restores it from
    /// the node's store at start.
    pub fn tracker_mut(&mut self) -> &mut SiteTracker {
        &mut self.tracker
    }

    /// What the memory of manifests seen changed, for the runtime to store.
    pub fn take_seen_changes(&mut self) -> SeenChanges {
        self.tracker.take_changes()
    }

    /// Start the response of a request whose site's files are known (its manifest, or its
    /// writers' merged view).
    pub(super) fn respond(&mut self, id: u64, m: &dyn SiteFiles) {
        let Some(r) = self.requests.get_mut(&id) else {
            return;
        };
        let mut path = r.path.clone();
        if path.is_empty() || path.ends_with('/') {
            path.push_str("index.html");
        }
        let Some(entry) = m.file(&path) else {
            let dir_index = format!("{path}/index.html");
            if m.file(&dir_index).is_some() {
                let mut headers = security_headers();
                headers.push(("location", format!("/{path}/")));
                self.requests.remove(&id);
                self.answer(id, page(301, headers, Vec::new()));
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
        if entry.media_type.starts_with("text/html") {
            let site = m.address();
            if let Some(seq) = self.tracker.equivocated(&site) {
                if self.warned.insert(site.0.to_bytes()) {
                    self.requests.remove(&id);
                    self.answer(id, equivocation_page(&site, seq, &path));
                    return;
                }
            }
        }
        let etag = format!("\"{}\"", hex::encode(&entry.hash[..16]));
        let mut headers = security_headers();
        let media = if entry
            .media_type
            .bytes()
            .all(|b| b.is_ascii_graphic() || b == b' ')
        {
            entry.media_type.to_string()
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
            self.requests.remove(&id);
            self.answer(id, page(304, headers, Vec::new()));
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
                self.requests.remove(&id);
                self.answer(id, page(416, headers, "range not satisfiable\n"));
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
            self.requests.remove(&id);
            self.answer(id, page(plan.status, headers, Vec::new()));
            return;
        }
        r.stage = Stage::Streaming {
            blocks: entry.blocks.to_vec(),
            plan,
            next: plan.first_block,
            head: Some(Head {
                status: plan.status,
                headers,
                body: Body::Stream { len: plan.len },
            }),
        };
    }
}

/// One file of a site, as a request needs it.
pub(super) struct FileMeta<'a> {
    size: u64,
    hash: &'a [u8; 32],
    media_type: &'a str,
    blocks: &'a [[u8; 32]],
}

/// What the gateway serves a site's files from.
pub(super) trait SiteFiles {
    /// The site.
    fn address(&self) -> SiteAddress;
    /// The file at `path`.
    fn file(&self, path: &str) -> Option<FileMeta<'_>>;
}

impl SiteFiles for Verified {
    fn address(&self) -> SiteAddress {
        self.manifest().address()
    }

    fn file(&self, path: &str) -> Option<FileMeta<'_>> {
        self.manifest().entry(path).map(|e| FileMeta {
            size: e.size,
            hash: &e.hash,
            media_type: &e.media_type,
            blocks: &e.blocks,
        })
    }
}

impl SiteFiles for super::writers::MergedSite {
    fn address(&self) -> SiteAddress {
        self.site
    }

    fn file(&self, path: &str) -> Option<FileMeta<'_>> {
        self.files.get(path).map(|f| FileMeta {
            size: f.size,
            hash: &f.hash,
            media_type: &f.media_type,
            blocks: &f.blocks,
        })
    }
}

/// The page a reader sees, once per run, on the first page of a site caught signing two
/// manifests with one sequence (`07-sites.md#memory`); following its link shows the first
/// version seen.
pub fn equivocation_page(site: &SiteAddress, seq: u64, path: &str) -> Head {
    use crate::gateway::escape_html;
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Warning: this site signed two versions</title><style>body{{font-family:\
         system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}}\
         h1{{font-size:1.4em;color:#a00}}</style></head><body>\
         <h1>Warning: this site signed two different versions</h1>\
         <p>The key of <code>{site}</code> signed two different versions of this site with \
         the same sequence number ({seq}). Umbra keeps both as proof and shows you the first \
         one it saw; it will never switch to the other.</p>\
         <p>The publisher's key may be in someone else's hands, or the publisher may be \
         showing different readers different pages. Trust what this site says less.</p>\
         <p><a href=\"/{path}\">Read the first version anyway</a></p>\
         <p style=\"color:#777\">HTTP 409 Conflict &middot; Umbra gateway</p></body></html>\n",
        site = escape_html(&site.to_string()),
        path = escape_html(path),
    );
    let mut headers = security_headers();
    headers.push(("content-type", "text/html; charset=utf-8".into()));
    headers.push(("cache-control", "no-store".into()));
    headers.push(("x-umbra-warning", "equivocation".into()));
    page(409, headers, body)
}
