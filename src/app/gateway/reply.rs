//! What the gateway's core takes and gives (`protocol-spec/08-gateway.md#responses`):
//! requests by id, and answers as a head followed by body chunks.
//! Not in this module: deciding the answers (`super`).

use crate::gateway::{error_page, site_headers};
use crate::site::address::SiteAddress;

/// A request of the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// A browser's request for a file of a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRequest {
    /// The site.
    pub site: SiteAddress,
    /// Which view of it: a branch, one writer's line, or (default) the main view
    /// (`08-gateway.md#writers`).
    pub view: crate::site::writers::ViewSpec,
    /// The path within it.
    pub path: String,
    /// The `Range` header.
    pub range: Option<String>,
    /// The `If-None-Match` header.
    pub if_none_match: Option<String>,
    /// A HEAD request: no body.
    pub head: bool,
}

/// A response's status and headers, and how its body comes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// HTTP status.
    pub status: u16,
    /// Headers besides the length.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Body,
}

/// A response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// All of it at once.
    Full(Vec<u8>),
    /// `len` bytes in [`ReplyPart::Chunk`]s, in order, as blocks verify.
    Stream {
        /// Content length.
        len: u64,
    },
}

/// What the core answers a request with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyPart {
    /// The head (once, first).
    Head(Head),
    /// The next piece of a streamed body; the request is over when `len` bytes came.
    Chunk(Vec<u8>),
    /// The body cannot be completed (after the head): the transfer must fail visibly.
    Abort(String),
}

/// A head with a whole body.
pub fn page(status: u16, headers: Vec<(&'static str, String)>, body: impl Into<Vec<u8>>) -> Head {
    Head {
        status,
        headers,
        body: Body::Full(body.into()),
    }
}

/// An HTML error page for a site request.
pub fn site_error(status: u16, title: &str, detail: &str) -> Head {
    let mut headers = security_headers();
    headers.push(("content-type", "text/html; charset=utf-8".into()));
    headers.push(("cache-control", "no-store".into()));
    page(status, headers, error_page(status, title, detail))
}

pub(super) fn security_headers() -> Vec<(&'static str, String)> {
    site_headers()
        .iter()
        .map(|(k, v)| (*k, (*v).to_string()))
        .collect()
}
