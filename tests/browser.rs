//! Browser tests in real headless Chromium (Debian's `chromium` + `chromium-driver`):
//! `umbra demo` is started as a newcomer would, a second site is published into its network
//! with `umbra publish`, and the browser checks that the demo page renders, its image loads,
//! a request to another origin is blocked (and never arrives), a second site cannot read the
//! first site's storage, proxy mode works, and the dashboard shows live data. Screenshots go
//! to `target/browser-artifacts/`.

#![allow(clippy::disallowed_methods)]

mod procs;
mod webdriver;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use procs::{publish_site, start_demo, tempdir};
use serde_json::json;

fn artifacts() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn chromium_reads_the_demo_site_confined_to_its_origin_and_the_dashboard_is_live() {
    webdriver::require_chromium();
    let art = artifacts();
    let tmp = tempdir("browser");
    let mut demo = start_demo();
    assert!(
        demo.site_url.contains(".localhost:"),
        "site URL {}",
        demo.site_url
    );

    // A newcomer's own site, published into the demo's network from another process.
    let folder = tmp.join("second-site");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("index.html"),
        "<!doctype html><title>Second site</title><h1 id=\"second\">A second site</h1>",
    )
    .unwrap();
    let second_label = publish_site(&tmp, &demo.bootstrap, &folder);
    let second_url = format!("http://{second_label}.localhost:{}", demo.port);

    let driver = webdriver::Driver::start();
    let browser = driver.session(&tmp.join("profile"), &[]);

    // 1. The page renders: its text is in the DOM.
    browser.goto(&format!("{}/", demo.site_url));
    // The tab holds the gateway's frame page; the site is in its sandboxed frame.
    let top = browser.run("return location.hostname;");
    assert!(
        top.as_str().is_some_and(|h| h.starts_with("view.")),
        "the site is the top-level document: {top}"
    );
    // The gateway asks once per site before it loads a site in this mode.
    browser.agree_to_read_here();
    browser.enter_frame(0);
    browser.wait_for(
        "return !!document.getElementById('intro') && document.getElementById('intro').textContent.includes('signed peer-to-peer site');",
        Duration::from_secs(30),
        "the demo page's text",
    );
    // 2. The image loads (decoded, with its real size).
    browser.wait_for(
        "const i = document.getElementById('logo'); return i.complete && i.naturalWidth === 256;",
        Duration::from_secs(30),
        "the demo image",
    );
    // 3. The page's own script finds its clearnet request blocked ...
    browser.wait_for(
        "const e = document.getElementById('net-check'); return e.className === 'ok' && e.textContent.includes('blocked');",
        Duration::from_secs(30),
        "the page's clearnet check",
    );
    browser.screenshot(&art.join("demo-site.png"));
    // ... and a request to another origin never arrives: a listener stands in for the
    // clearnet and must see no connection.
    let canary = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    canary.set_nonblocking(true).unwrap();
    let canary_port = canary.local_addr().unwrap().port();
    let outcome = browser.run_async(&format!(
        "fetch('http://127.0.0.1:{canary_port}/leak', {{mode: 'no-cors'}}).then(() => done('reached'), () => done('blocked'));"
    ));
    assert_eq!(outcome, json!("blocked"));
    let img = browser.run_async(&format!(
        "const i = new Image(); i.onload = () => done('loaded'); i.onerror = () => done('blocked'); i.src = 'http://127.0.0.1:{canary_port}/pixel.png';"
    ));
    assert_eq!(img, json!("blocked"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        canary.accept().is_err(),
        "a page of a p2p site reached another origin"
    );
    // 4. Storage: the first site stored a value; the second site cannot read it.
    let mine = browser.run("return localStorage.getItem('umbra-demo-secret');");
    assert!(
        mine.as_str().is_some_and(|s| s.starts_with("kept by")),
        "{mine}"
    );
    browser.goto(&format!("{second_url}/"));
    browser.agree_to_read_here();
    browser.enter_frame(0);
    browser.wait_for(
        "return !!document.getElementById('second');",
        Duration::from_secs(30),
        "the second site",
    );
    let theirs =
        browser.run("return [location.origin, localStorage.getItem('umbra-demo-secret')];");
    assert_eq!(
        theirs[1],
        json!(null),
        "the second site read the first's storage"
    );
    assert_ne!(theirs[0], json!(demo.site_url));
    browser.screenshot(&art.join("second-site.png"));
    // A large page streams whole.
    browser.goto(&format!("{}/library/", demo.site_url));
    browser.enter_frame(0);
    browser.wait_for(
        "return !!document.getElementById('library-end') && document.querySelectorAll('article').length === 2000;",
        Duration::from_secs(60),
        "the whole library page",
    );
    // An error page for a path the site does not have.
    browser.goto(&format!("{}/no-such-page.html", demo.site_url));
    browser.enter_frame(0);
    browser.wait_for(
        "return document.readyState === 'complete' && document.title !== '';",
        Duration::from_secs(30),
        "the error page",
    );
    let title = browser.run("return document.title;");
    assert!(title.as_str().is_some_and(|t| t.contains("404")), "{title}");

    // 5. The dashboard renders with live data.
    browser.goto(&format!("http://localhost:{}/", demo.port));
    browser.wait_for(
        "return document.body.dataset.live === 'yes' && document.getElementById('roles').textContent.includes('gateway') && document.getElementById('tor').textContent.includes('direct') && document.getElementById('circuits').querySelectorAll('tbody tr').length > 0;",
        Duration::from_secs(30),
        "the dashboard's live data",
    );
    let summary = browser.run("return document.getElementById('gateway').textContent;");
    assert!(
        summary.as_str().is_some_and(|s| s.contains("requests")),
        "{summary}"
    );
    // Live: the uptime moves.
    let before = browser.run("return document.getElementById('summary').textContent;");
    std::thread::sleep(Duration::from_millis(2200));
    let after = browser.run("return document.getElementById('summary').textContent;");
    assert_ne!(before, after, "the dashboard did not update");
    browser.screenshot(&art.join("dashboard.png"));
    drop(browser);

    // 6. Proxy mode: a browser using the gateway as its HTTP proxy opens http://<address>.umbra/.
    let proxied = driver.session(
        &tmp.join("profile-proxy"),
        &[format!("--proxy-server=http://127.0.0.1:{}", demo.port)],
    );
    let label = demo
        .site_url
        .trim_start_matches("http://")
        .split('.')
        .next()
        .unwrap()
        .to_string();
    proxied.goto(&format!("http://{label}.umbra/about.html"));
    proxied.wait_for(
        "return document.title === 'How this works';",
        Duration::from_secs(30),
        "the site in proxy mode",
    );
    proxied.screenshot(&art.join("proxy-mode.png"));
    drop(proxied);
    drop(driver);

    // Ctrl-C stops the demo cleanly and removes its temporary state.
    let pid = demo.procs.0[0].id();
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(s) = demo.procs.0[0].try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "demo did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(code.success(), "demo exit status {code}");
    while demo.lines.try_recv().is_ok() {}
    assert!(
        !demo.bootstrap.exists(),
        "the demo left its temporary directory behind"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
