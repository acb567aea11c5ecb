//! The reader's frame page: how the `.localhost` reading mode keeps every page action of a
//! site off the clearnet (`protocol-spec/08-gateway.md#the-frame`).
//!
//! CSP governs what a page fetches, but nothing in CSP governs a *top-level* navigation, so
//! a site served at the top of a tab could send the browser anywhere with a meta refresh, a
//! `location` assignment or a link, and the server it named would learn the reader's IP
//! address. A site is therefore never the top-level document in this mode. A browser's
//! top-level navigation to `http://<address>.localhost:PORT/PATH` is answered with a 303 to
//! the frame page at `http://view.<address>.localhost:PORT/PATH`, another origin that
//! belongs to the gateway alone. The frame page holds the site in an `<iframe sandbox>`
//! without `allow-top-navigation` or `allow-popups` (so the site can neither move the tab nor
//! open windows), and its own CSP `frame-src` names the site's origin and nothing else (so
//! the frame itself cannot be navigated anywhere else: meta refresh, `location`, link
//! clicks and form results are all checked against it). When the frame is refused a
//! navigation, the frame page's script shows the reader where the site tried to go and
//! offers to open it in a new tab: the only way out, one the reader must click.
//!
//! One thing no page policy governs is a browser's connection hints: a site's
//! `<link rel=preconnect>` makes Chromium open a bare TCP connection to the server it names,
//! which learns the reader's address from it. So the frame page loads a site only once the
//! reader has agreed, for that site, to read it in this mode; until then it shows what the
//! mode does not protect and the anonymous way (`umbra browse`). The answer is kept in the
//! frame page origin's own storage, which is the site's alone.
//!
//! Which requests count as top-level navigations: `Sec-Fetch-Dest: document`, or, from a
//! browser that sends no Fetch Metadata, a request whose `Accept` asks for `text/html`
//! (browsers send that on every navigation). Such browsers get the frame page and then a
//! refused frame: closed, not open. Scripts and tools that send neither (curl, `umbra`'s
//! own tests) get the file.
//!
//! Not in this module: routing (`super::route`), the site's other headers
//! (`super::site_headers`), sockets.

use crate::gateway::{LOCALHOST_SUFFIX, SiteOrigin, escape_html, site_origin};
use crate::site::address::SiteAddress;

/// The label before a site's address that names its frame page's origin.
pub const VIEW_LABEL: &str = "view";

/// The path prefix of the frame page's own files on its origin (no site file is served
/// there, so nothing can collide with a site's paths).
pub const ASSET_PREFIX: &str = "/.umbra/";

/// The frame page's script (shown where the site tried to go; the reader's way out).
pub const SHELL_JS: &str = include_str!("shell.js");
/// The frame page's style.
pub const SHELL_CSS: &str = include_str!("shell.css");

/// How a request to a site's content origin is to be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// A top-level navigation: send the browser to the frame page instead.
    TopLevel,
    /// Anything else (the frame's own load, subresources, fetch, tools).
    Other,
}

/// Classify a request to a site origin from its `Sec-Fetch-Dest` and `Accept` headers.
pub fn destination(fetch_dest: Option<&str>, accept: Option<&str>) -> Destination {
    match fetch_dest.map(str::trim) {
        Some(d) if d.eq_ignore_ascii_case("document") => Destination::TopLevel,
        Some(_) => Destination::Other,
        // No Fetch Metadata: a browser navigation still says it wants HTML.
        None if accept.is_some_and(|a| a.to_ascii_lowercase().contains("text/html")) => {
            Destination::TopLevel
        }
        None => Destination::Other,
    }
}

/// The origin of a site view's frame page: `http://view.<origin labels>.localhost:PORT`.
pub fn view_origin(origin: &SiteOrigin, port: u16) -> String {
    format!(
        "http://{VIEW_LABEL}.{}{LOCALHOST_SUFFIX}:{port}",
        origin.labels()
    )
}

/// Every origin of `site` but its main one: its branches and writers' lines, and the frame
/// pages (`http://*.<address>.localhost:PORT`, a CSP host source).
pub fn site_subdomains(site: &SiteAddress, port: u16) -> String {
    format!("http://*.{}{LOCALHOST_SUFFIX}:{port}", site.encode())
}

/// The Content-Security-Policy of the frame page: its own script and style, the site's
/// origins (main, branches, writers' lines) as the only frames, nothing else; never framed
/// itself.
pub fn shell_csp(origin: &SiteOrigin, port: u16) -> String {
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; frame-src {} {}; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        site_origin(&origin.site, port),
        site_subdomains(&origin.site, port)
    )
}

/// Headers of every frame-page response besides its content type.
pub fn shell_headers(origin: &SiteOrigin, port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("content-security-policy", shell_csp(origin, port)),
        ("x-content-type-options", "nosniff".into()),
        ("referrer-policy", "no-referrer".into()),
        ("cross-origin-opener-policy", "same-origin".into()),
        ("cross-origin-resource-policy", "same-origin".into()),
        ("x-frame-options", "DENY".into()),
        ("x-dns-prefetch-control", "off".into()),
        ("cache-control", "no-store".into()),
    ]
}

/// The frame page for `target` (the request's origin-form path and query), which the frame
/// loads from the view's content origin.
pub fn shell_page(origin: &SiteOrigin, port: u16, target: &str) -> String {
    let target = if target.starts_with('/') { target } else { "/" };
    let src = format!("{}{target}", origin.url(port));
    let site = &origin.site;
    let mut short: String = site.encode().chars().take(8).collect();
    short.push('…');
    if !origin.view.branch.is_empty() {
        short.push_str(&format!(" branch {}", origin.view.branch));
    }
    if let Some(w) = &origin.view.writer {
        let w: String = SiteAddress(*w).encode().chars().take(8).collect();
        short.push_str(&format!(" writer {w}…"));
    }
    let short = escape_html(&short);
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{short} · Umbra</title>\
         <link rel=\"stylesheet\" href=\"{ASSET_PREFIX}shell.css\">\
         <script src=\"{ASSET_PREFIX}shell.js\" defer></script></head><body>\
         <div id=\"umbra-leave\" role=\"alertdialog\" aria-live=\"assertive\" hidden>\
         <p><strong>This page tried to leave Umbra.</strong> It asked to open a page on \
         <code id=\"umbra-leave-url\"></code>, which is not a p2p site. Opening it connects \
         your browser straight to that server, which then learns your IP address.</p>\
         <p><button id=\"umbra-leave-open\" type=\"button\">Open that server in a new tab \
         anyway</button> \
         <button id=\"umbra-leave-stay\" type=\"button\">Stay on Umbra</button></p></div>\
         <div id=\"umbra-consent\" role=\"dialog\" aria-labelledby=\"umbra-consent-title\" \
         hidden><h1 id=\"umbra-consent-title\">Read this site here?</h1>\
         <p>In this mode the site runs confined to its own frame: it cannot move this tab, \
         open windows or send a request to another server. But a hostile site can still make \
         your browser open a bare connection to a server it names (a connection hint), and \
         that server learns your IP address. <strong>This mode is not anonymous against the \
         site you open.</strong></p>\
         <p>To read anonymously, open it with <code>umbra browse {address}</code>: a browser \
         profile whose only way out is the gateway.</p>\
         <p><button id=\"umbra-consent-yes\" type=\"button\">Read it here anyway</button> \
         (remembered for this site in this browser)</p></div>\
         <iframe id=\"umbra-site\" title=\"{short} (an Umbra site)\" data-src=\"{src}\" \
         sandbox=\"allow-scripts allow-same-origin allow-forms allow-modals\" \
         referrerpolicy=\"no-referrer\" allow=\"\"></iframe>\
         <noscript><p>The gateway's frame page needs its own small script to load the site \
         (the site's scripts stay confined). Open <code>{src}</code> in proxy mode instead.\
         </p></noscript></body></html>\n",
        src = escape_html(&src),
        address = site,
    )
}

/// The Content-Security-Policy of a site's own responses. `ancestor` is the origin allowed
/// to frame it: the frame page's in `.localhost` mode, only itself in proxy mode.
pub fn site_csp(ancestor: Option<&str>) -> String {
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: blob:; media-src 'self' blob:; font-src 'self' data:; \
         connect-src 'self'; frame-src 'self'; worker-src 'self'; manifest-src 'self'; \
         object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors {}",
        match ancestor {
            Some(a) => format!("{a} 'self'"),
            None => "'self'".into(),
        }
    )
}

#[cfg(test)]
mod tests {
    use super::{
        Destination, destination, shell_csp, shell_page, site_csp, site_subdomains, view_origin,
    };
    use crate::crypto::keys::IdentityKey;
    use crate::crypto::rng::UmbraRng;
    use crate::gateway::SiteOrigin;
    use crate::site::address::SiteAddress;

    fn addr() -> SiteAddress {
        SiteAddress(IdentityKey::generate(&mut UmbraRng::from_seed([3; 32])).public())
    }

    #[test]
    fn top_level_navigations_are_recognised() {
        assert_eq!(destination(Some("document"), None), Destination::TopLevel);
        assert_eq!(
            destination(Some("iframe"), Some("text/html")),
            Destination::Other
        );
        assert_eq!(destination(Some("image"), None), Destination::Other);
        assert_eq!(
            destination(None, Some("text/html,application/xhtml+xml;q=0.9")),
            Destination::TopLevel
        );
        assert_eq!(destination(None, Some("*/*")), Destination::Other);
        assert_eq!(destination(None, None), Destination::Other);
    }

    #[test]
    fn the_frame_page_frames_only_the_sites_origin() {
        let a = addr();
        let o = SiteOrigin::main(a);
        let csp = shell_csp(&o, 8470);
        let e = a.encode();
        assert!(csp.contains(&format!(
            "frame-src http://{e}.localhost:8470 http://*.{e}.localhost:8470;"
        )));
        assert!(csp.contains("frame-ancestors 'none'"));
        let page = shell_page(&o, 8470, "/a.html?x=\"<b>\"");
        assert!(
            page.contains("sandbox=\"allow-scripts allow-same-origin allow-forms allow-modals\"")
        );
        assert!(!page.contains("allow-top-navigation") && !page.contains("allow-popups"));
        assert!(page.contains("/a.html?x=&quot;&lt;b&gt;&quot;"), "{page}");
        // The site loads only after the reader agreed; the frame has no src until then.
        assert!(page.contains("id=\"umbra-consent\""), "{page}");
        assert!(!page.contains(" src=\"http"), "{page}");
        assert!(page.contains(&format!("umbra browse {a}")), "{page}");
        // The site may be framed by its own origins only (its frame pages among them).
        assert_eq!(
            view_origin(&o, 8470),
            format!("http://view.{e}.localhost:8470")
        );
        let v = site_subdomains(&a, 8470);
        assert!(site_csp(Some(&v)).ends_with(&format!("frame-ancestors {v} 'self'")));
        assert!(site_csp(None).ends_with("frame-ancestors 'self'"));
    }
}
