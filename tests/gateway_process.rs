//! The gateway over real HTTP: relay processes, a site published by `umbra publish`, and
//! `umbra run` serving it (`protocol-spec/08-gateway.md`). Checks every response rule the
//! spec states — origins, ranges, 304, redirects, errors, host checks, proxy mode, the status
//! API — then kills every relay: what the reader verified stays readable, and only requests
//! that need the network fail, with a 502 page.

#![allow(clippy::disallowed_methods)]

mod procs;

use std::time::{Duration, Instant};

use procs::{free_addr, publish_site, request, start_reader, start_relays, tempdir};

#[test]
fn gateway_serves_a_site_by_the_spec_and_keeps_serving_what_it_verified_when_offline() {
    let dir = tempdir("gateway");
    let (relays, bootstrap) = start_relays(&dir, 5, 70);

    let site = dir.join("site");
    std::fs::create_dir_all(site.join("docs")).unwrap();
    let index = b"<!doctype html><title>gw</title><p>hello</p>".to_vec();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let other: Vec<u8> = (0..70_000u32).map(|i| (i * 11 % 249) as u8).collect();
    std::fs::write(site.join("index.html"), &index).unwrap();
    std::fs::write(site.join("data.bin"), &data).unwrap();
    std::fs::write(site.join("other.bin"), &other).unwrap();
    std::fs::write(site.join("docs/index.html"), b"docs").unwrap();
    let label = publish_site(&dir, &bootstrap, &site);
    let address = format!("{label}.umbra");

    let gw = free_addr("127.0.0.1");
    let _reader = start_reader(&bootstrap, gw, &dir.join("reader"));
    // The reader's data directory and cache (its reading history) are its user's alone.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("reader")), 0o700);
        // The cache is opened beside the gateway, which may listen first: wait for it.
        let started = std::time::Instant::now();
        while !dir.join("reader/cache.redb").exists() && started.elapsed().as_secs() < 20 {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(mode(&dir.join("reader/cache.redb")), 0o600);
    }
    let host = format!("{label}.localhost:{}", gw.port());
    let get = |path: &str, extra: &[(&str, &str)]| request(gw, "GET", path, &host, extra);

    // The index, with the confinement headers.
    let r = get("/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, index);
    assert_eq!(r.header("content-type"), "text/html; charset=utf-8");
    assert!(
        r.header("content-security-policy")
            .contains("default-src 'self'")
    );
    assert_eq!(r.header("referrer-policy"), "no-referrer");
    // A file of four blocks, whole, then a range across a block boundary.
    let r = get("/data.bin", &[]);
    assert_eq!((r.status, r.body.len()), (200, data.len()));
    assert!(r.body == data, "data.bin differs");
    assert_eq!(r.header("accept-ranges"), "bytes");
    let etag = r.header("etag").to_string();
    let r = get("/data.bin", &[("Range", "bytes=30000-70000")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), "bytes 30000-70000/100000");
    assert!(r.body == data[30000..=70000], "range body differs");
    let r = get("/data.bin", &[("Range", "bytes=-10")]);
    assert!(r.status == 206 && r.body == data[data.len() - 10..]);
    let r = get("/data.bin", &[("Range", "bytes=100000-")]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), "bytes */100000");
    assert_eq!(r.header("content-type"), "text/plain");
    let r = get("/data.bin", &[("If-None-Match", &etag)]);
    assert_eq!((r.status, r.body.len()), (304, 0));
    let r = request(gw, "HEAD", "/data.bin", &host, &[]);
    assert_eq!((r.status, r.header("content-length")), (200, "100000"));
    assert!(r.body.is_empty());
    // Folders redirect to their index; missing paths and bad paths get pages.
    let r = get("/docs", &[]);
    assert_eq!((r.status, r.header("location")), (301, "/docs/"));
    assert_eq!(get("/docs/", &[]).body, b"docs");
    let r = get("/missing.html", &[]);
    assert_eq!(r.status, 404);
    assert!(String::from_utf8_lossy(&r.body).contains("/missing.html"));
    assert_eq!(get("/a/../index.html", &[]).status, 400);
    // Host checks: a rebinding name, the right name on another port, a mistyped address.
    let r = request(gw, "GET", "/", &format!("evil.example:{}", gw.port()), &[]);
    assert_eq!(r.status, 421);
    assert_eq!(request(gw, "GET", "/", "localhost:1", &[]).status, 421);
    let mut typo = label.clone();
    let first = if typo.starts_with('a') { "b" } else { "a" };
    typo.replace_range(0..1, first);
    let r = request(
        gw,
        "GET",
        "/",
        &format!("{typo}.localhost:{}", gw.port()),
        &[],
    );
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("checksum"));
    // RFC 9112 §3.2: two Host headers are a 400, whichever comes first.
    let r = request(gw, "GET", "/", &host, &[("Host", "localhost:1")]);
    assert_eq!(r.status, 400);
    // Proxy mode is absolute-form only: an origin-form `.umbra` Host is not served.
    assert_eq!(
        request(gw, "GET", "/", &format!("{address}:1"), &[]).status,
        421
    );
    // A browser's top-level navigation never gets a site as the top document: it is sent
    // to the frame page, which frames the site and nothing else.
    let r = get("/index.html", &[("Sec-Fetch-Dest", "document")]);
    let view = format!("http://view.{label}.localhost:{}", gw.port());
    assert_eq!(
        (r.status, r.header("location")),
        (303, format!("{view}/index.html").as_str())
    );
    let r = request(gw, "GET", "/index.html", &view[7..], &[]);
    assert_eq!(r.status, 200);
    let csp = r.header("content-security-policy");
    assert!(
        csp.contains(&format!(
            "frame-src http://{label}.localhost:{0} http://*.{label}.localhost:{0};",
            gw.port()
        )),
        "{csp}"
    );
    assert!(
        String::from_utf8_lossy(&r.body)
            .contains("sandbox=\"allow-scripts allow-same-origin allow-forms allow-modals\"")
    );
    let r = get("/index.html", &[("Sec-Fetch-Dest", "iframe")]);
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-security-policy").ends_with(&format!(
            "frame-ancestors http://*.{label}.localhost:{} 'self'",
            gw.port()
        )),
        "{}",
        r.header("content-security-policy")
    );
    // Proxy mode: the site by its .umbra name; the clearnet and tunnels never.
    let r = request(
        gw,
        "GET",
        &format!("http://{address}/data.bin"),
        &address,
        &[],
    );
    assert!(r.status == 200 && r.body == data);
    assert_eq!(
        request(gw, "GET", "http://example.com/", "example.com", &[]).status,
        403
    );
    assert_eq!(
        request(gw, "CONNECT", "example.com:443", "example.com:443", &[]).status,
        405
    );
    // The status API and metrics.
    let local = format!("localhost:{}", gw.port());
    // A clearnet page cannot load the dashboard's files or API to detect the gateway
    // (issue 12, finding 17): every one is same-origin only.
    for path in ["/", "/dashboard.js", "/api/status", "/metrics"] {
        let r = request(gw, "GET", path, &local, &[]);
        assert_eq!(
            r.header("cross-origin-resource-policy"),
            "same-origin",
            "{path}"
        );
    }
    let r = request(gw, "GET", "/api/status", &local, &[]);
    let status: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(status["roles"], serde_json::json!(["reader", "gateway"]));
    assert_eq!(
        status["circuits"]["own"][0]["hops"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(status["gateway"]["requests"].as_u64().unwrap() >= 10);
    let r = request(gw, "GET", "/metrics", &local, &[]);
    assert!(String::from_utf8_lossy(&r.body).contains("umbra_gateway_requests_total"));

    // Every relay goes away. What was verified stays readable; what needs the network
    // fails with a page instead of hanging.
    drop(relays);
    let r = get("/data.bin", &[]);
    assert!(
        r.status == 200 && r.body == data,
        "cached file lost offline"
    );
    let started = Instant::now();
    let r = get("/other.bin", &[]);
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("could not reach"));
    assert!(started.elapsed() < Duration::from_secs(60));
    let r = get("/index.html", &[]);
    assert!(
        r.status == 200 && r.body == index,
        "cached page lost after a failure"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Finding 9 (`docs/security.md`): slow and idle connections cannot pin the gateway. 300
/// idle sockets (more than the 256 the gateway holds) and 20 that send half a request head:
/// every one is closed within the header timeout (10 s), and the dashboard answers after.
#[test]
fn slow_and_idle_connections_are_closed_and_capped() {
    use std::io::{Read, Write};
    let dir = tempdir("gateway-slowloris");
    let (_relays, bootstrap) = start_relays(&dir, 3, 71);
    let gw = free_addr("127.0.0.1");
    let _reader = start_reader(&bootstrap, gw, &dir.join("reader"));
    let mut socks = Vec::new();
    for i in 0..320 {
        let mut s = std::net::TcpStream::connect(gw).unwrap();
        if i % 16 == 0 {
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ");
        }
        socks.push(s);
    }
    let started = Instant::now();
    let closed = |s: &std::net::TcpStream| {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut b = [0u8; 256];
        let mut r = s;
        match r.read(&mut b) {
            Ok(0) => true,
            // Bytes (an error reply, say) are not a close: the next poll must see the EOF.
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    };
    let mut open = socks.len();
    while open > 0 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(500));
        open = socks.iter().filter(|s| !closed(s)).count();
    }
    assert_eq!(
        open,
        0,
        "{open} slow or idle connections still open after {:?}",
        started.elapsed()
    );
    let r = request(
        gw,
        "GET",
        "/api/status",
        &format!("localhost:{}", gw.port()),
        &[],
    );
    assert_eq!(r.status, 200);
    let _ = std::fs::remove_dir_all(&dir);
}
