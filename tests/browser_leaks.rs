//! A hostile site against the reader's anonymity, in real headless Chromium
//! (`protocol-spec/08-gateway.md#the-frame`, `docs/security.md` finding 1).
//!
//! A site is published whose pages try every way a page can send the browser to another
//! server without the reader asking: meta refresh, `location`, `top.location`,
//! `window.open`, form submission (by script and by click), link clicks (plain, `_blank`,
//! `_top`, with `ping`), and resource hints (`prefetch`, `preconnect`, `prerender`,
//! `preload`, `modulepreload`). A listener on loopback stands in for the clearnet: it
//! records every connection. In every reading mode the README offers (`.localhost`, and the
//! gateway as HTTP proxy with the loopback bypass removed) the canary must see nothing: in
//! `.localhost` mode, nothing at all until the reader agrees to read the site there, and
//! after that no request (Chromium's connection hints still open bare connections, which is
//! why the mode asks first). Two
//! controls show the canary would see a leak: the same pages served from an ordinary origin
//! do reach it, and so does the frame page's "open it anyway" button, the one way out, which
//! the reader must click.

#![allow(clippy::disallowed_methods)]

mod procs;
mod webdriver;

use std::io::{BufRead, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use procs::{publish_site, start_demo, tempdir, umbra};
use serde_json::json;

/// A listener standing in for the clearnet: every connection's request line is recorded.
#[derive(Clone)]
struct Canary {
    port: u16,
    hits: Arc<Mutex<Vec<String>>>,
}

impl Canary {
    fn start() -> Canary {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let h = hits.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let h = h.clone();
                std::thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_millis(800)));
                    let mut buf = [0u8; 2048];
                    let n = s.read(&mut buf).unwrap_or(0);
                    let line = String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .next()
                        .unwrap_or("(a connection, no request)")
                        .to_string();
                    h.lock().unwrap().push(line);
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\nleaked",
                    );
                });
            }
        });
        Canary { port, hits }
    }

    fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.hits.lock().unwrap().clear();
    }

    /// Wait up to `limit` for a hit whose request line contains `what`.
    fn wait_for(&self, what: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.hits().iter().any(|h| h.contains(what)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

/// The hostile site: (file name, contents). `c` is the canary's base URL.
fn hostile_files(c: &str) -> Vec<(&'static str, String)> {
    let page = |title: &str, head: &str, body: &str| {
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>{head}</head>\
             <body><h1 id=\"loaded\">{title}</h1>{body}</body></html>"
        )
    };
    vec![
        (
            "meta.html",
            page(
                "meta",
                &format!("<meta http-equiv=\"refresh\" content=\"0;url={c}/meta\">"),
                "",
            ),
        ),
        (
            "location.html",
            page("location", "<script src=\"location.js\"></script>", ""),
        ),
        ("location.js", format!("location.href = '{c}/location';")),
        (
            "top.html",
            page("top", "<script src=\"top.js\"></script>", ""),
        ),
        (
            "top.js",
            format!(
                "try {{ top.location.href = '{c}/top'; }} catch (e) {{}}\n\
                 try {{ parent.location.href = '{c}/parent'; }} catch (e) {{}}"
            ),
        ),
        (
            "open.html",
            page(
                "open",
                "<script src=\"open.js\" defer></script>",
                "<button id=\"open\">open</button>",
            ),
        ),
        (
            "open.js",
            format!(
                "try {{ window.open('{c}/open-auto'); }} catch (e) {{}}\n\
                 document.getElementById('open').addEventListener('click', function () {{\n\
                   try {{ window.open('{c}/open-click'); }} catch (e) {{}}\n\
                   try {{ window.open('{c}/open-noopener', '_blank', 'noopener'); }} catch (e) {{}}\n\
                 }});"
            ),
        ),
        (
            "form.html",
            page(
                "form",
                "<script src=\"form.js\" defer></script>",
                &format!(
                    "<form id=\"auto\" action=\"{c}/form-auto\" method=\"get\"><input name=\"q\" value=\"1\"></form>\
                     <form action=\"{c}/form-click\" method=\"post\"><button id=\"submit\">send</button></form>\
                     <form action=\"{c}/form-blank\" target=\"_blank\"><button id=\"submit-blank\">send</button></form>"
                ),
            ),
        ),
        (
            "form.js",
            "setTimeout(function () { document.getElementById('auto').submit(); }, 300);".into(),
        ),
        (
            "links.html",
            page(
                "links",
                "",
                &format!(
                    "<p><a id=\"plain\" href=\"{c}/link\">plain</a></p>\
                     <p><a id=\"blank\" href=\"{c}/link-blank\" target=\"_blank\">blank</a></p>\
                     <p><a id=\"blank-noopener\" href=\"{c}/link-noopener\" target=\"_blank\" rel=\"noopener noreferrer\">noopener</a></p>\
                     <p><a id=\"toplink\" href=\"{c}/link-top\" target=\"_top\">top</a></p>\
                     <p><a id=\"ping\" href=\"#here\" ping=\"{c}/ping\">ping</a></p>"
                ),
            ),
        ),
        (
            "hints.html",
            page(
                "hints",
                &format!(
                    "<link rel=\"prefetch\" href=\"{c}/prefetch\">\
                     <link rel=\"preconnect\" href=\"{c}\">\
                     <link rel=\"dns-prefetch\" href=\"{c}\">\
                     <link rel=\"prerender\" href=\"{c}/prerender\">\
                     <link rel=\"preload\" as=\"image\" href=\"{c}/preload\">\
                     <link rel=\"modulepreload\" href=\"{c}/modulepreload.js\">"
                ),
                "",
            ),
        ),
    ]
}

fn write_site(dir: &Path, files: &[(&str, String)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, body) in files {
        std::fs::write(dir.join(name), body).unwrap();
    }
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><title>hostile</title><h1 id=\"loaded\">hostile</h1>",
    )
    .unwrap();
}

/// A plain loopback web server for the control: the same files, no gateway, no CSP.
fn ordinary_origin(files: Vec<(&'static str, String)>) -> u16 {
    let l = TcpListener::bind("127.0.0.3:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let files = Arc::new(files);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let files = files.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut r = std::io::BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                let _ = r.read_line(&mut line);
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let name = path.trim_start_matches('/');
                let body = files
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or(String::new(), |(_, b)| b.clone());
                let ty = if name.ends_with(".js") {
                    "text/javascript"
                } else {
                    "text/html"
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: {ty}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

/// Every page action, on pages at `base`; `framed`: the site sits in the frame page.
fn attack(b: &webdriver::Session, base: &str, framed: bool, what: &str, canary: &Canary) {
    let settle = Duration::from_millis(1500);
    for page in ["meta", "location", "top", "hints", "open", "form", "links"] {
        let _ = b.try_goto(&format!("{base}/{page}.html"));
        std::thread::sleep(settle);
        if framed {
            // The site is in the frame; the top document is the gateway's frame page.
            let top = b.run("return location.hostname;");
            assert!(
                top.as_str().is_some_and(|h| h.starts_with("view.")),
                "{what}: {page}: the site is the top-level document ({top})"
            );
        }
        let clicks: &[&str] = match page {
            "open" => &["#open"],
            "form" => &["#submit", "#submit-blank"],
            "links" => &["#ping", "#blank", "#blank-noopener", "#toplink", "#plain"],
            _ => &[],
        };
        for css in clicks {
            if framed {
                b.top();
                b.enter_frame(0);
            }
            // A click may fail once an earlier one navigated the frame away: reload the page.
            if b.click(css).is_err() {
                let _ = b.try_goto(&format!("{base}/{page}.html"));
                std::thread::sleep(settle);
                if framed {
                    b.enter_frame(0);
                }
                let _ = b.click(css);
            }
            std::thread::sleep(Duration::from_millis(700));
            if framed {
                b.top();
            }
        }
        eprintln!("{what}: after {page}: the canary saw {:?}", canary.hits());
    }
    std::thread::sleep(settle);
}

#[test]
fn no_page_action_of_a_hostile_site_reaches_the_clearnet() {
    webdriver::require_chromium();
    let tmp = tempdir("browser-leaks");
    let canary = Canary::start();
    let c = format!("http://127.0.0.1:{}", canary.port);
    let demo = start_demo();
    let folder = tmp.join("hostile");
    let files = hostile_files(&c);
    write_site(&folder, &files);
    let label = publish_site(&tmp, &demo.bootstrap, &folder);
    let driver = webdriver::Driver::start();

    // 1. http://<address>.localhost:PORT/ as a newcomer opens it. Until the reader agrees to
    // read this site in this mode, the frame page loads nothing of it: every hostile page,
    // connection hints included, reaches nothing at all.
    let b = driver.session(&tmp.join("profile"), &[]);
    let base = format!("http://{label}.localhost:{}", demo.port);
    for page in [
        "index", "meta", "location", "top", "hints", "open", "form", "links",
    ] {
        b.goto(&format!("{base}/{page}.html"));
        b.wait_for(
            "const c = document.getElementById('umbra-consent'); return !!c && !c.hidden;",
            Duration::from_secs(10),
            "the gateway's read-here question",
        );
        let src = b.run("return document.getElementById('umbra-site').getAttribute('src');");
        assert_eq!(
            src,
            json!(null),
            "{page}: the site loaded without the reader's consent"
        );
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        canary.hits(),
        Vec::<String>::new(),
        ".localhost mode before consent: the canary saw a connection"
    );
    // The reader agrees, once for this site.
    b.goto(&format!("{base}/index.html"));
    b.agree_to_read_here();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        b.top();
        b.enter_frame(0);
        if b.try_run("return !!document.getElementById('loaded');") == Ok(json!(true)) {
            break;
        }
        assert!(Instant::now() < deadline, "the hostile site did not load");
        std::thread::sleep(Duration::from_millis(200));
    }
    b.top();
    attack(&b, &base, true, ".localhost mode", &canary);
    let requests: Vec<String> = canary
        .hits()
        .into_iter()
        .filter(|h| !h.starts_with("(a connection"))
        .collect();
    assert_eq!(
        requests,
        Vec::<String>::new(),
        ".localhost mode: a page action sent a request to the clearnet"
    );
    let bare = canary.hits().len();
    eprintln!(".localhost mode: {bare} bare connections (connection hints)");
    canary.clear();
    // The frame page told the reader where the site tried to go, and offers the way out.
    let _ = b.try_goto(&format!("{base}/meta.html"));
    let mut shown = json!(null);
    for _ in 0..50 {
        shown = b.run(
            "const b = document.getElementById('umbra-leave'); \
             return b && !b.hidden ? document.getElementById('umbra-leave-url').textContent : null;",
        );
        if shown.is_string() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        shown.as_str().is_some_and(|s| s.contains(&c)),
        "the frame page did not show where the site tried to go: {shown}"
    );
    // Control 1: the reader's explicit click is the only way out, and it works.
    b.click("#umbra-leave-open").expect("click the way out");
    assert!(
        // The browser tells the frame page only the server (CSP reports strip the path of a
        // cross-origin URL), so the way out opens that server's front page.
        canary.wait_for("GET / ", Duration::from_secs(10)),
        "the way out did not open the link the reader confirmed: {:?}",
        canary.hits()
    );
    canary.clear();
    drop(b);

    // The way out's tab may still be loading: let it finish before the next mode.
    std::thread::sleep(Duration::from_secs(2));
    canary.clear();

    // 2. The leak-proof mode, exactly as `umbra browse` sets it up: the gateway is the
    // browser's HTTP proxy and Chromium's implicit loopback bypass is removed.
    let (ok, out, err) = procs::run(
        umbra()
            .args([
                "browse",
                "--dry-run",
                "--browser",
                webdriver::CHROMIUM,
                "--gateway",
            ])
            .arg(format!("127.0.0.1:{}", demo.port))
            .arg("--data-dir")
            .arg(tmp.join("browse"))
            .arg(&label),
        Duration::from_secs(30),
    );
    assert!(ok, "umbra browse --dry-run: {err}");
    let line: Vec<String> = out
        .lines()
        .next()
        .unwrap_or("")
        .split(' ')
        .map(str::to_string)
        .collect();
    assert_eq!(
        line.last(),
        Some(&format!("http://{label}.umbra/")),
        "{out}"
    );
    let flags: Vec<String> = line[1..line.len() - 1]
        .iter()
        .filter(|f| !f.starts_with("--user-data-dir="))
        .cloned()
        .collect();
    assert!(
        flags.contains(&"--proxy-bypass-list=<-loopback>".to_string()),
        "{flags:?}"
    );
    let p = driver.session(&tmp.join("profile-proxy"), &flags);
    let pbase = format!("http://{label}.umbra");
    p.goto(&format!("{pbase}/index.html"));
    p.wait_for(
        "return !!document.getElementById('loaded');",
        Duration::from_secs(30),
        "the hostile site in proxy mode",
    );
    attack(&p, &pbase, false, "proxy mode", &canary);
    assert_eq!(
        canary.hits(),
        Vec::<String>::new(),
        "proxy mode: a page action reached the clearnet"
    );
    // The dashboard and .localhost URLs still work through the proxy.
    p.goto(&format!("http://localhost:{}/", demo.port));
    p.wait_for(
        "return document.body.dataset.live === 'yes';",
        Duration::from_secs(30),
        "the dashboard through the proxy",
    );
    drop(p);

    // Control 2: the same pages from an ordinary origin do reach the canary, so the attacks
    // above are real ones and the canary sees them.
    let plain = driver.session(&tmp.join("profile-plain"), &[]);
    let origin = format!("http://127.0.0.3:{}", ordinary_origin(files));
    attack(&plain, &origin, false, "control", &canary);
    let seen = canary.hits();
    // Navigations race each other at an ordinary origin (`top` and `parent` replace one
    // another, a click may still be in flight when the next page loads); these always land.
    for must in [
        &["/meta"][..],
        &["/top", "/parent"],
        &["/prefetch"],
        &["/form-auto"],
        &["/ping"],
    ] {
        assert!(
            seen.iter().any(|h| must.iter().any(|m| h.contains(m))),
            "control: {must:?} did not reach the canary from an ordinary origin: {seen:?}"
        );
    }
    eprintln!("control: from an ordinary origin the canary saw {seen:?}");
    drop(plain);
    drop(driver);
    let _ = std::fs::remove_dir_all(&tmp);
}
