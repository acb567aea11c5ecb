//! A small W3C WebDriver client over plain HTTP/1.1, for driving the real headless Chromium
//! through Debian's `chromedriver` in the browser tests. Only what the tests use: sessions,
//! navigation, scripts, screenshots.

#![allow(clippy::disallowed_methods, dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Where Debian puts the browser and its driver.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The driver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Fail with what to install when the browser is missing (never skip silently).
pub fn require_chromium() {
    for p in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(p).exists(),
            "{p} is missing: the browser tests need Debian's `chromium` and `chromium-driver` \
             packages (`apt-get install -y chromium chromium-driver`; `bash scripts/test` installs them)"
        );
    }
}

fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let payload = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )
    .map_err(|e| e.to_string())?;
    // chromedriver keeps connections open: read the head, then exactly Content-Length bytes.
    let mut resp = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = resp.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the reply head".into());
        }
        resp.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&resp[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("reply without Content-Length")?;
    while resp.len() < head_end + len {
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed mid-reply".into());
        }
        resp.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&resp[head_end..head_end + len]).into_owned();
    let json_start = body
        .find('{')
        .ok_or_else(|| format!("no JSON in {body:?}"))?;
    let json_end = body.rfind('}').ok_or("no JSON end")?;
    let v: Value = serde_json::from_str(&body[json_start..=json_end]).map_err(|e| e.to_string())?;
    if let Some(err) = v["value"]["error"].as_str() {
        return Err(format!("{err}: {}", v["value"]["message"]));
    }
    Ok(v["value"].clone())
}

/// A running chromedriver.
pub struct Driver {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Start chromedriver on a free loopback port and wait until it is ready.
    pub fn start() -> Driver {
        require_chromium();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let d = Driver { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if http(addr, "GET", "/status", None).is_ok_and(|v| v["ready"] == json!(true)) {
                return d;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("chromedriver did not become ready in 20 s");
    }

    /// A new headless Chromium session with `extra` command-line arguments.
    pub fn session(&self, profile: &Path, extra: &[String]) -> Session {
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,900",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.extend(extra.iter().cloned());
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
            }}
        });
        let v = http(self.addr, "POST", "/session", Some(&caps)).expect("new session");
        Session {
            addr: self.addr,
            id: v["sessionId"].as_str().expect("session id").to_string(),
        }
    }
}

/// One browser session.
pub struct Session {
    addr: SocketAddr,
    id: String,
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = http(self.addr, "DELETE", &format!("/session/{}", self.id), None);
    }
}

impl Session {
    fn cmd(&self, method: &str, what: &str, body: Option<&Value>) -> Result<Value, String> {
        http(
            self.addr,
            method,
            &format!("/session/{}/{what}", self.id),
            body,
        )
    }

    /// Navigate and wait for the load.
    pub fn goto(&self, url: &str) {
        self.cmd("POST", "url", Some(&json!({ "url": url })))
            .unwrap_or_else(|e| panic!("navigate to {url}: {e}"));
    }

    /// Run `script` (a function body) in the page; its return value.
    pub fn run(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Run an asynchronous script: it calls `done(value)` (the last argument) when finished.
    pub fn run_async(&self, script: &str) -> Value {
        let body = format!("const done = arguments[arguments.length - 1];\n{script}");
        self.cmd(
            "POST",
            "execute/async",
            Some(&json!({ "script": body, "args": [] })),
        )
        .unwrap_or_else(|e| panic!("async script failed: {e}\n{script}"))
    }

    /// Wait until `script` returns true, at most `limit`.
    pub fn wait_for(&self, script: &str, limit: Duration, what: &str) {
        let deadline = Instant::now() + limit;
        loop {
            if self.run(script) == json!(true) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Run later commands in the `index`-th frame of the current document.
    pub fn enter_frame(&self, index: u32) {
        self.cmd("POST", "frame", Some(&json!({ "id": index })))
            .unwrap_or_else(|e| panic!("switch to frame {index}: {e}"));
    }

    /// Run later commands in the top-level document again.
    pub fn top(&self) {
        self.cmd("POST", "frame", Some(&json!({ "id": null })))
            .unwrap_or_else(|e| panic!("switch to the top document: {e}"));
    }

    /// Click the element `css` selects, as a user would (the click counts as a user
    /// activation). Errors are returned, not raised: a click may navigate away.
    pub fn click(&self, css: &str) -> Result<(), String> {
        let el = self.cmd(
            "POST",
            "element",
            Some(&json!({ "using": "css selector", "value": css })),
        )?;
        let id = el["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .ok_or_else(|| format!("no element reference for {css}: {el}"))?
            .to_string();
        self.cmd("POST", &format!("element/{id}/click"), Some(&json!({})))
            .map(|_| ())
    }

    /// On a `.localhost` frame page (the top document): wait for the gateway's question
    /// whether to read the site in this mode, and agree (`08-gateway.md#the-frame`). Later
    /// visits to the same site load it at once.
    #[allow(dead_code)]
    pub fn agree_to_read_here(&self) {
        self.top();
        self.wait_for(
            "const c = document.getElementById('umbra-consent'); return !!c && !c.hidden;",
            Duration::from_secs(30),
            "the gateway's read-here question",
        );
        self.click("#umbra-consent-yes")
            .expect("click \"Read it here anyway\"");
        self.wait_for(
            "const f = document.getElementById('umbra-site'); return !f.hidden && !!f.getAttribute('src');",
            Duration::from_secs(10),
            "the site's frame to load",
        );
    }

    /// Run `script`, returning its error instead of failing (the page may be gone).
    pub fn try_run(&self, script: &str) -> Result<Value, String> {
        self.cmd(
            "POST",
            "execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )
    }

    /// Navigate without failing on a navigation error (returns it).
    pub fn try_goto(&self, url: &str) -> Result<(), String> {
        self.cmd("POST", "url", Some(&json!({ "url": url })))
            .map(|_| ())
    }

    /// Save a PNG screenshot of the viewport.
    pub fn screenshot(&self, path: &Path) {
        let v = self.cmd("GET", "screenshot", None).expect("screenshot");
        let png = base64_decode(v.as_str().expect("base64"));
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        std::fs::write(path, png).expect("write screenshot");
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter_map(val) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
