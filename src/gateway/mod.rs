//! The browser gateway's decisions, without I/O (`protocol-spec/08-gateway.md`).
//!
//! Which origin a request is for ([`route`]: a site at `<address>.localhost:PORT`, the
//! dashboard at `localhost:PORT`, a proxied `http://<address>.umbra/` URL, or a refusal),
//! the headers that confine a site's pages to their own origin ([`site_headers`]), byte
//! ranges ([`range`]) and the error pages ([`error_page`]). [`fetch`] holds the per-site
//! request multiplexer that moves manifest and block requests over one `dht` stream.
//!
//! Not in this module: sockets and HTTP parsing (`runtime/gateway`), circuits (`node`),
//! manifest verification (`site`).

pub mod origin;
pub mod range;
pub mod shell;

use crate::site::address::{AddressError, SiteAddress};
pub use origin::SiteOrigin;
use shell::{ASSET_PREFIX, Destination, VIEW_LABEL, destination};

/// The suffix browsers send to loopback (RFC 6761 §6.3) that carries a site's address.
pub const LOCALHOST_SUFFIX: &str = ".localhost";
/// The suffix of site names in proxy mode.
pub const UMBRA_SUFFIX: &str = ".umbra";

/// What a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The dashboard and its API, at `path`.
    Dashboard {
        /// The decoded path, starting with `/`.
        path: String,
    },
    /// A site's frame page (`view.<address>.localhost`, see [`shell`]).
    Shell {
        /// The site and view.
        origin: SiteOrigin,
        /// The origin-form target the frame loads (path and query).
        target: String,
    },
    /// One of the frame page's own files (`/.umbra/shell.js`, `/.umbra/shell.css`).
    ShellFile {
        /// The file's name after the prefix.
        name: String,
    },
    /// A top-level navigation to a site's content origin: answered with a 303 to its frame
    /// page, so that a site is never the top-level document ([`shell`]).
    ToShell {
        /// The site and view.
        origin: SiteOrigin,
        /// The origin-form target (path and query).
        target: String,
    },
    /// A file of a site.
    Site {
        /// The site and view.
        origin: SiteOrigin,
        /// The decoded path within the site, without the leading `/` (empty: the index).
        path: String,
        /// Reached in proxy mode (`http://<address>.umbra/`).
        proxied: bool,
    },
    /// Refused: see the reason.
    Refused(Refusal),
}

/// Why a request is refused; each maps to one status and one error page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The Host is not one this gateway serves (DNS-rebinding defence).
    #[error("this gateway does not serve the host {0:?}")]
    UnknownHost(String),
    /// A proxied request for a clearnet URL: the gateway never contacts the clearnet.
    #[error("the gateway never contacts the clearnet (asked for {0:?})")]
    Clearnet(String),
    /// The name looked like a site address but is not one.
    #[error("{name:?} is not a valid site address: {error}")]
    BadAddress {
        /// The label as given.
        name: String,
        /// What is wrong with it.
        error: AddressError,
    },
    /// A method other than GET or HEAD (sites are read-only; CONNECT tunnels are refused).
    #[error("method {0} is not served")]
    Method(String),
    /// The path is not valid (bad percent-encoding, `..`, control characters).
    #[error("the path is not valid")]
    BadPath,
    /// A site origin naming a branch or writer that cannot be one
    /// ([`origin`]; `08-gateway.md#writers`).
    #[error("{name:?} does not name a view of a site: {why}")]
    BadView {
        /// The host labels as given.
        name: String,
        /// What is wrong with them.
        why: String,
    },
    /// More than one `Host` header (RFC 9112 §3.2).
    #[error("the request has more than one Host header")]
    DuplicateHost,
}

impl Refusal {
    /// The HTTP status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::UnknownHost(_) => 421,
            Refusal::Clearnet(_) => 403,
            Refusal::BadAddress { .. }
            | Refusal::BadView { .. }
            | Refusal::BadPath
            | Refusal::DuplicateHost => 400,
            Refusal::Method(_) => 405,
        }
    }
}

/// Split `host[:port]` (IPv6 literals in brackets); the host is lower-cased.
fn split_host(authority: &str) -> (String, Option<u16>) {
    let a = authority.trim();
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, p)) => (format!("[{h}]"), p.strip_prefix(':')),
            None => (a.to_string(), None),
        }
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (a.to_string(), None),
        }
    };
    let port = port.and_then(|p| p.parse::<u16>().ok());
    (host.trim_end_matches('.').to_ascii_lowercase(), port)
}

/// Decode `%XX` escapes of a URL path and strip the query and fragment. Refuses bad
/// escapes, non-UTF-8 results, control characters, and `.`/`..` segments.
pub fn decode_path(target: &str) -> Result<String, Refusal> {
    let raw = target.split(['?', '#']).next().unwrap_or("");
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(Refusal::BadPath)?;
            let s = std::str::from_utf8(hex).map_err(|_| Refusal::BadPath)?;
            out.push(u8::from_str_radix(s, 16).map_err(|_| Refusal::BadPath)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let s = String::from_utf8(out).map_err(|_| Refusal::BadPath)?;
    if s.chars().any(char::is_control)
        || s.split('/').any(|seg| seg == "." || seg == "..")
        || s.contains('\\')
    {
        return Err(Refusal::BadPath);
    }
    Ok(if s.starts_with('/') {
        s
    } else {
        format!("/{s}")
    })
}

fn site_label(labels: &str, path: &str, proxied: bool) -> Route {
    match SiteOrigin::parse(labels) {
        Ok(origin) => Route::Site {
            origin,
            path: path.trim_start_matches('/').to_string(),
            proxied,
        },
        Err(r) => Route::Refused(r),
    }
}

/// The parts of a request that decide where it goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestHead<'a> {
    /// The request method.
    pub method: &'a str,
    /// The request target, as in the request line.
    pub target: &'a str,
    /// The `Host` header (`None` when absent).
    pub host: Option<&'a str>,
    /// The `Sec-Fetch-Dest` header.
    pub fetch_dest: Option<&'a str>,
    /// The `Accept` header.
    pub accept: Option<&'a str>,
}

/// Decide what a request is for; `port` is the port the gateway listens on.
///
/// Served: `localhost`, `127.0.0.1` and `[::1]` (the dashboard), `<address>.localhost` (a
/// site's files; a top-level navigation there goes to the frame page instead),
/// `view.<address>.localhost` (the frame page), and in proxy mode absolute
/// `http://<address>.umbra/...` targets. The port in `Host` must be the gateway's own.
/// Everything else is refused, which is what stops a DNS rebinding page (`evil.example`
/// resolving to 127.0.0.1) from reading the gateway.
pub fn route(req: &RequestHead<'_>, port: u16) -> Route {
    let (method, target) = (req.method, req.target);
    if method != "GET" && method != "HEAD" {
        return Route::Refused(Refusal::Method(method.chars().take(16).collect()));
    }
    // Absolute form: the browser uses the gateway as an HTTP proxy.
    let scheme = target
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("http://"));
    if let Some(rest) = scheme.and_then(|_| target.get(7..)) {
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (name, authority_port) = split_host(authority);
        let Some(label) = name.strip_suffix(UMBRA_SUFFIX) else {
            // The gateway's own names through the proxy (a browser with the loopback bypass
            // removed sends them here too): served as if asked directly.
            let ours = authority_port == Some(port)
                && (matches!(name.as_str(), "localhost" | "127.0.0.1" | "[::1]")
                    || name.ends_with(LOCALHOST_SUFFIX));
            if ours {
                let direct = RequestHead {
                    target: path,
                    host: Some(authority),
                    ..*req
                };
                return route(&direct, port);
            }
            return Route::Refused(Refusal::Clearnet(name));
        };
        return match decode_path(path) {
            Ok(p) => site_label(label, &p, true),
            Err(r) => Route::Refused(r),
        };
    }
    if !target.starts_with('/') {
        // Other absolute forms (https://, ftp://) and authority form are never proxied.
        return Route::Refused(Refusal::Clearnet(target.chars().take(64).collect()));
    }
    let path = match decode_path(target) {
        Ok(p) => p,
        Err(r) => return Route::Refused(r),
    };
    let (name, host_port) = split_host(req.host.unwrap_or(""));
    // Proxy mode uses absolute targets only; an origin-form `.umbra` Host (any port) is not
    // a request this gateway serves.
    if host_port.unwrap_or(80) != port {
        return Route::Refused(Refusal::UnknownHost(name));
    }
    match name.as_str() {
        "localhost" | "127.0.0.1" | "[::1]" => Route::Dashboard { path },
        _ => {
            let Some(labels) = name.strip_suffix(LOCALHOST_SUFFIX) else {
                return Route::Refused(Refusal::UnknownHost(name));
            };
            // `view.<origin>` is that origin's frame page, unless the labels after `view.`
            // name no origin (a branch may not be called `view`, so this is unambiguous).
            let shell = labels
                .strip_prefix(VIEW_LABEL)
                .and_then(|r| r.strip_prefix('.'))
                .and_then(|r| SiteOrigin::parse(r).ok());
            if let Some(origin) = shell {
                return match path.strip_prefix(ASSET_PREFIX) {
                    Some(name) => Route::ShellFile {
                        name: name.to_string(),
                    },
                    None => Route::Shell {
                        origin,
                        target: target.to_string(),
                    },
                };
            }
            match site_label(labels, &path, false) {
                Route::Site { origin, .. }
                    if destination(req.fetch_dest, req.accept) == Destination::TopLevel =>
                {
                    Route::ToShell {
                        origin,
                        target: target.to_string(),
                    }
                }
                other => other,
            }
        }
    }
}

/// The origin a site is served at: `http://<address>.localhost:PORT`.
pub fn site_origin(site: &SiteAddress, port: u16) -> String {
    format!("http://{}{LOCALHOST_SUFFIX}:{port}", site.encode())
}

/// The Content-Security-Policy of the dashboard: its own script and API only, never framed.
pub const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Headers on every site response besides its Content-Security-Policy, which names the
/// origin that may frame it ([`shell::site_csp`]; `08-gateway.md#confinement`).
pub fn site_headers() -> [(&'static str, &'static str); 7] {
    [
        ("x-content-type-options", "nosniff"),
        // A clearnet server must never learn which site linked to it.
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        ("x-dns-prefetch-control", "off"),
        // The same URL answers a top-level navigation (303) and the frame's load (the file).
        ("vary", "Sec-Fetch-Dest, Accept"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=(), usb=(), serial=(), bluetooth=(), \
             payment=(), interest-cohort=()",
        ),
    ]
}

/// Headers on every dashboard response. CORP keeps clearnet pages from loading the
/// dashboard's files or API to learn that a gateway runs here (`08-gateway.md#confinement`).
pub fn dashboard_headers() -> [(&'static str, &'static str); 6] {
    [
        ("content-security-policy", DASHBOARD_CSP),
        ("cross-origin-resource-policy", "same-origin"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ]
}

/// Escape text for HTML.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The reason phrase of the statuses the gateway sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        421 => "Misdirected Request",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

/// A self-contained error page (no scripts, no external resources).
pub fn error_page(status: u16, title: &str, detail: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{status} {t}</title><style>body{{font-family:system-ui,sans-serif;\
         max-width:40em;margin:4em auto;padding:0 1em;color:#222}}h1{{font-size:1.4em}}\
         p.code{{color:#777}}</style></head><body><h1>{t}</h1><p>{d}</p>\
         <p class=\"code\">HTTP {status} {r} &middot; Umbra gateway</p></body></html>\n",
        t = escape_html(title),
        d = escape_html(detail),
        r = reason(status),
    )
}

/// The error page for a refusal: (status, title, detail).
pub fn refusal_page(r: &Refusal) -> (u16, &'static str, String) {
    let title = match r {
        Refusal::UnknownHost(_) => "Unknown host",
        Refusal::Clearnet(_) => "Clearnet request refused",
        Refusal::BadAddress { .. } => "Not a valid site address",
        Refusal::BadView { .. } => "Not a branch or writer of this site",
        Refusal::Method(_) => "Method not allowed",
        Refusal::BadPath => "Bad path",
        Refusal::DuplicateHost => "Bad request",
    };
    let detail = match r {
        Refusal::BadAddress { error, .. } => format!(
            "{error}. A site address is 56 letters a-z and digits 2-7; check it was copied \
             whole."
        ),
        other => other.to_string(),
    };
    (r.status(), title, detail)
}

#[cfg(test)]
mod tests {
    use super::{Refusal, RequestHead, Route, SiteOrigin, decode_path, route};
    use crate::crypto::keys::IdentityKey;
    use crate::crypto::rng::UmbraRng;
    use crate::site::address::SiteAddress;

    fn addr() -> SiteAddress {
        SiteAddress(IdentityKey::generate(&mut UmbraRng::from_seed([1; 32])).public())
    }

    fn req<'a>(method: &'a str, target: &'a str, host: Option<&'a str>) -> RequestHead<'a> {
        RequestHead {
            method,
            target,
            host,
            ..RequestHead::default()
        }
    }

    #[test]
    fn routes() {
        let a = addr();
        let host = format!("{}.localhost:8080", a.encode());
        assert_eq!(
            route(&req("GET", "/x/y.html?q=1", Some(&host)), 8080),
            Route::Site {
                origin: SiteOrigin::main(a),
                path: "x/y.html".into(),
                proxied: false
            }
        );
        assert_eq!(
            route(&req("GET", "/", Some("localhost:8080")), 8080),
            Route::Dashboard { path: "/".into() }
        );
        let proxied = format!("http://{}.umbra/a%20b.txt", a.encode());
        assert_eq!(
            route(&req("GET", &proxied, None), 8080),
            Route::Site {
                origin: SiteOrigin::main(a),
                path: "a b.txt".into(),
                proxied: true
            }
        );
    }

    #[test]
    fn top_level_navigations_go_to_the_frame_page() {
        let a = addr();
        let host = format!("{}.localhost:8080", a.encode());
        let nav = RequestHead {
            fetch_dest: Some("document"),
            ..req("GET", "/x.html?q", Some(&host))
        };
        assert_eq!(
            route(&nav, 8080),
            Route::ToShell {
                origin: SiteOrigin::main(a),
                target: "/x.html?q".into()
            }
        );
        let framed = RequestHead {
            fetch_dest: Some("iframe"),
            ..nav
        };
        assert!(matches!(route(&framed, 8080), Route::Site { .. }));
        let view = format!("view.{}.localhost:8080", a.encode());
        let shell = RequestHead {
            fetch_dest: Some("document"),
            ..req("GET", "/x.html?q", Some(&view))
        };
        assert_eq!(
            route(&shell, 8080),
            Route::Shell {
                origin: SiteOrigin::main(a),
                target: "/x.html?q".into()
            }
        );
        // Through the proxy (loopback bypass removed): the gateway's own names still work.
        let absolute = format!("http://{view}/a.html");
        assert!(matches!(
            route(&req("GET", &absolute, None), 8080),
            Route::Shell { .. }
        ));
        assert!(matches!(
            route(&req("GET", "http://localhost:8080/", None), 8080),
            Route::Dashboard { .. }
        ));
        assert!(matches!(
            route(&req("GET", "http://localhost:9/", None), 8080),
            Route::Refused(Refusal::Clearnet(_))
        ));
        assert_eq!(
            route(&req("GET", "/.umbra/shell.js", Some(&view)), 8080),
            Route::ShellFile {
                name: "shell.js".into()
            }
        );
    }

    #[test]
    fn branch_and_writer_origins_route_to_their_views() {
        let (a, w) = (
            addr(),
            SiteAddress(IdentityKey::from_secret_bytes([9; 32]).public()),
        );
        let draft = SiteOrigin {
            site: a,
            view: crate::site::writers::ViewSpec {
                branch: "draft".into(),
                writer: None,
            },
        };
        let host = format!("{}.localhost:8080", draft.labels());
        assert_eq!(
            route(&req("GET", "/p.html", Some(&host)), 8080),
            Route::Site {
                origin: draft.clone(),
                path: "p.html".into(),
                proxied: false
            }
        );
        let nav = RequestHead {
            fetch_dest: Some("document"),
            ..req("GET", "/p.html", Some(&host))
        };
        assert!(matches!(route(&nav, 8080), Route::ToShell { origin, .. } if origin == draft));
        let shell = format!("view.{host}");
        assert!(matches!(
            route(&req("GET", "/p.html", Some(&shell)), 8080),
            Route::Shell { origin, .. } if origin == draft
        ));
        let line = format!("{}.writer.{}.localhost:8080", w.encode(), a.encode());
        assert!(matches!(
            route(&req("GET", "/", Some(&line)), 8080),
            Route::Site { origin, .. } if origin.view.writer == Some(w.0)
        ));
        let proxied = format!("http://draft.branch.{}.umbra/p.html", a.encode());
        assert!(matches!(
            route(&req("GET", &proxied, None), 8080),
            Route::Site { origin, proxied: true, .. } if origin == draft
        ));
        let bad = format!("Bad_Name.branch.{}.localhost:8080", a.encode());
        assert!(matches!(
            route(&req("GET", "/", Some(&bad)), 8080),
            Route::Refused(Refusal::BadView { .. })
        ));
    }

    #[test]
    fn refusals() {
        let a = addr();
        // DNS rebinding: a foreign name, or our name on another port.
        assert!(matches!(
            route(&req("GET", "/", Some("evil.example:8080")), 8080),
            Route::Refused(Refusal::UnknownHost(_))
        ));
        assert!(matches!(
            route(&req("GET", "/", Some("localhost:9999")), 8080),
            Route::Refused(Refusal::UnknownHost(_))
        ));
        assert!(matches!(
            route(
                &req(
                    "GET",
                    "/",
                    Some(&format!("x.{}.localhost:8080", a.encode()))
                ),
                8080
            ),
            Route::Refused(Refusal::UnknownHost(_))
        ));
        assert!(matches!(
            route(&req("GET", "http://example.com/", None), 8080),
            Route::Refused(Refusal::Clearnet(_))
        ));
        assert!(matches!(
            route(&req("CONNECT", "example.com:443", None), 8080),
            Route::Refused(Refusal::Method(_))
        ));
        let mut typo = a.encode();
        typo.replace_range(0..1, if typo.starts_with('a') { "b" } else { "a" });
        assert!(matches!(
            route(
                &req("GET", "/", Some(&format!("{typo}.localhost:8080"))),
                8080
            ),
            Route::Refused(Refusal::BadAddress { .. })
        ));
        // Proxy mode is absolute-form only: a `.umbra` Host in origin form is not served.
        assert!(matches!(
            route(
                &req("GET", "/", Some(&format!("{}.umbra:1234", a.encode()))),
                8080
            ),
            Route::Refused(Refusal::UnknownHost(_))
        ));
        assert_eq!(decode_path("/a/../b"), Err(Refusal::BadPath));
        assert_eq!(decode_path("/a%2"), Err(Refusal::BadPath));
        assert_eq!(decode_path("/%ff"), Err(Refusal::BadPath));
        assert_eq!(decode_path("/%0a"), Err(Refusal::BadPath));
    }
}
