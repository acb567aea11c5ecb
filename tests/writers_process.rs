//! Issue 16's "done when", between real processes on loopback
//! (`protocol-spec/11-writers.md`): a site key adds two writers; each publishes from its own
//! data directory; a reader fetches the merged tree with both writers' files (with
//! `umbra fetch`, and through `umbra run`'s gateway as a browser would); the writers
//! then edit one file differently while partitioned (`--offline`) and publish on
//! reconnecting; the reader's `umbra log` lists the conflict and `umbra fetch --writer` gets
//! each side; the site key revokes one writer, whose next publish is then refused, and the
//! reader's view keeps only what that writer signed before its cut-off. Between, a writer
//! publishes a named branch, which a fresh reader's gateway lists on the writers page and
//! serves at its own origin, beside each writer's line; the dashboard lists the writers.

// A process-level test: it waits on real processes, so it reads the real clock.
#![allow(clippy::disallowed_methods)]

mod procs;

use std::path::{Path, PathBuf};
use std::time::Duration;

use procs::{free_addr, request, run, start_reader, start_relays, tempdir, umbra};

const LIMIT: Duration = Duration::from_secs(180);

/// Run `umbra args…`; returns stdout and stderr, asserting success.
fn ok<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> (String, String) {
    let (done, out, err) = run(umbra().args(args), LIMIT);
    assert!(done, "umbra {args:?}:\n{out}\n{err}");
    (out, err)
}

/// Run `umbra args…` expecting failure; returns stderr.
fn fails<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    let (done, out, err) = run(umbra().args(args), LIMIT);
    assert!(!done, "umbra {args:?} succeeded:\n{out}\n{err}");
    err
}

/// A key file; returns its public key and its address form as `keygen` prints them.
fn keygen(dir: &Path, name: &str) -> (PathBuf, String, String) {
    let path = dir.join(format!("{name}.key"));
    let (out, _) = ok(&[
        "keygen",
        "--kind",
        "identity",
        "--out",
        path.to_str().unwrap(),
    ]);
    let public = out
        .lines()
        .find_map(|l| l.strip_prefix("public key "))
        .unwrap_or_else(|| panic!("keygen printed no public key:\n{out}"))
        .trim()
        .to_string();
    assert_eq!(public.len(), 64, "{out}");
    let address = out
        .lines()
        .find_map(|l| l.strip_prefix("as a site "))
        .unwrap_or_else(|| panic!("keygen printed no address:\n{out}"))
        .trim()
        .trim_end_matches(".umbra")
        .to_string();
    (path, public, address)
}

/// `umbra publish FOLDER --key KEY --site ADDRESS --data-dir DATA --bootstrap BS EXTRA…`.
fn publish_args<'a>(
    folder: &Path,
    key: &Path,
    data: &Path,
    address: &'a str,
    bs: &'a str,
    extra: &[&'a str],
) -> Vec<String> {
    let p = |x: &Path| x.to_str().unwrap().to_string();
    let mut v: Vec<String> = vec![
        "publish".into(),
        p(folder),
        "--key".into(),
        p(key),
        "--site".into(),
        address.into(),
        "--data-dir".into(),
        p(data),
        "--bootstrap".into(),
        bs.into(),
    ];
    v.extend(extra.iter().map(|x| x.to_string()));
    v
}

fn folder(dir: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let d = dir.join(name);
    let _ = std::fs::remove_dir_all(&d);
    for (p, c) in files {
        let f = d.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, c).unwrap();
    }
    d
}

fn read(dir: &Path, p: &str) -> String {
    std::fs::read_to_string(dir.join(p))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(p).display()))
}

#[test]
fn two_writers_merge_conflict_and_revocation_between_processes() {
    let dir = tempdir("writers");
    let (_relays, bootstrap) = start_relays(&dir, 6, 10);
    let bs = bootstrap.to_str().unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (site_key, _, _) = keygen(&dir, "site");
    let (a_key, a_pub, a_addr) = keygen(&dir, "a");
    let (b_key, b_pub, b_addr) = keygen(&dir, "b");
    let (a_data, b_data) = (dir.join("a.data"), dir.join("b.data"));

    // The site key adds two writers: A everywhere, B everywhere too (they share a file).
    let (out, _) = ok(&[
        "writers",
        "add",
        "--key",
        &s(&site_key),
        "--writer",
        &a_pub,
        "--bootstrap",
        bs,
    ]);
    let address = out
        .lines()
        .next()
        .and_then(|l| l.split(" of ").nth(1))
        .unwrap_or_else(|| panic!("no address in:\n{out}"))
        .trim()
        .to_string();
    let (out, _) = ok(&[
        "writers",
        "add",
        "--key",
        &s(&site_key),
        "--writer",
        &b_pub,
        "--prefix",
        "/",
        "--bootstrap",
        bs,
    ]);
    assert!(out.contains(&a_pub) && out.contains(&b_pub), "{out}");
    let (out, _) = ok(&["writers", &address, "--bootstrap", bs]);
    assert!(
        out.contains(&a_pub) && out.contains(&b_pub),
        "umbra writers lists both:\n{out}"
    );

    // Each publishes from its own data directory.
    let a1 = folder(
        &dir,
        "a1",
        &[("index.html", "<h1>by A</h1>"), ("shared.txt", "base")],
    );
    ok(&publish_args(&a1, &a_key, &a_data, &address, bs, &[]));
    let b1 = folder(&dir, "b1", &[("b/notes.txt", "by B")]);
    ok(&publish_args(&b1, &b_key, &b_data, &address, bs, &[]));

    // A reader fetches the merged tree: both writers' files.
    let out1 = dir.join("out1");
    ok(&[
        "fetch",
        &address,
        "-o",
        &s(&out1),
        "--no-cache",
        "--bootstrap",
        bs,
    ]);
    assert_eq!(read(&out1, "index.html"), "<h1>by A</h1>");
    assert_eq!(read(&out1, "shared.txt"), "base");
    assert_eq!(read(&out1, "b/notes.txt"), "by B");

    // A browser reading through a reader's gateway gets the merged view too.
    let gw = free_addr("127.0.0.1");
    let _reader = start_reader(&bootstrap, gw, &dir.join("reader"));
    let host = format!(
        "{}.localhost:{}",
        address.trim_end_matches(".umbra"),
        gw.port()
    );
    let r = request(gw, "GET", "/b/notes.txt", &host, &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"by B"[..]));
    let r = request(gw, "GET", "/", &host, &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"<h1>by A</h1>"[..]));

    // Partitioned, each edits shared.txt its own way; then each publishes on reconnecting.
    let a2 = folder(
        &dir,
        "a2",
        &[
            ("index.html", "<h1>by A</h1>"),
            ("shared.txt", "A's version"),
        ],
    );
    let b2 = folder(
        &dir,
        "b2",
        &[("b/notes.txt", "by B"), ("shared.txt", "B's version")],
    );
    for (f, k, d) in [(&a2, &a_key, &a_data), (&b2, &b_key, &b_data)] {
        let (_, err) = ok(&publish_args(f, k, d, &address, bs, &["--offline"]));
        assert!(err.contains("kept offline"), "{err}");
    }
    for (f, k, d) in [(&a2, &a_key, &a_data), (&b2, &b_key, &b_data)] {
        ok(&publish_args(f, k, d, &address, bs, &[]));
    }

    // A named branch: A publishes a draft, announced on its main line; readers find it.
    let draft = folder(&dir, "draft", &[("draft.html", "<p>draft</p>")]);
    let (_, err) = ok(&publish_args(
        &draft,
        &a_key,
        &a_data,
        &address,
        bs,
        &["--branch", "draft"],
    ));
    assert!(err.contains("announcing branch draft"), "{err}");
    let out_draft = dir.join("out-draft");
    ok(&[
        "fetch",
        &address,
        "--branch",
        "draft",
        "-o",
        &s(&out_draft),
        "--no-cache",
        "--bootstrap",
        bs,
    ]);
    assert_eq!(read(&out_draft, "draft.html"), "<p>draft</p>");

    // The reader's log lists the conflict, with both writers.
    let (log, _) = ok(&["log", &address, "--bootstrap", bs]);
    eprintln!("{log}");
    assert!(log.contains("conflicts: 1"), "{log}");
    assert!(log.contains("conflict shared.txt"), "{log}");
    assert!(
        log.contains(&a_pub[..16]) && log.contains(&b_pub[..16]),
        "{log}"
    );
    // Each side, fetched by writer.
    for (w, want) in [(&a_pub, "A's version"), (&b_pub, "B's version")] {
        let o = dir.join(format!("side-{}", &w[..8]));
        ok(&[
            "fetch",
            &address,
            "--writer",
            w,
            "-o",
            &s(&o),
            "--no-cache",
            "--bootstrap",
            bs,
        ]);
        assert_eq!(read(&o, "shared.txt"), want);
    }
    // The writers page of a gateway that had not read the site before (another keeps its
    // merged view for 30 s, as it does a manifest) lists the conflict with both sides.
    let gw2 = free_addr("127.0.0.1");
    let _reader2 = start_reader(&bootstrap, gw2, &dir.join("reader2"));
    let host2 = format!(
        "{}.localhost:{}",
        address.trim_end_matches(".umbra"),
        gw2.port()
    );
    let r = request(gw2, "GET", "/.umbra/writers", &host2, &[]);
    let page = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, 200, "{page}");
    assert!(
        page.contains("Conflicts: 1") && page.contains("/shared.txt"),
        "{page}"
    );
    assert!(
        page.contains(&a_pub[..16]) && page.contains(&b_pub[..16]),
        "{page}"
    );
    // The page lists the branch and links its origin, where the gateway serves it; the
    // main view does not hold the draft; each writer's line has an origin of its own.
    let site_label = address.trim_end_matches(".umbra");
    let draft_host = format!("draft.branch.{site_label}.localhost:{}", gw2.port());
    assert!(
        page.contains("Branches") && page.contains(&format!("http://{draft_host}/")),
        "{page}"
    );
    let r = request(gw2, "GET", "/draft.html", &draft_host, &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"<p>draft</p>"[..]));
    let r = request(gw2, "GET", "/draft.html", &host2, &[]);
    assert_eq!(r.status, 404, "the draft is not in the main view");
    let nav = request(
        gw2,
        "GET",
        "/draft.html",
        &draft_host,
        &[("Sec-Fetch-Dest", "document")],
    );
    assert_eq!(nav.status, 303);
    assert_eq!(
        nav.header("location"),
        format!("http://view.{draft_host}/draft.html")
    );
    for (w, want) in [(&a_addr, "A's version"), (&b_addr, "B's version")] {
        let line_host = format!("{w}.writer.{site_label}.localhost:{}", gw2.port());
        let r = request(gw2, "GET", "/shared.txt", &line_host, &[]);
        assert_eq!(
            (r.status, String::from_utf8_lossy(&r.body).as_ref()),
            (200, want)
        );
    }
    // The dashboard lists the site's writers, its conflict and the branch.
    let status = procs::status(gw2);
    let w = &status["writers"][0];
    assert_eq!(w["writers"].as_array().map(Vec::len), Some(2), "{status}");
    assert_eq!(w["conflicts"], 1, "{w}");
    assert_eq!(w["branches"], serde_json::json!(["draft"]), "{w}");
    // History: A publishes once more; its previous manifest is reachable by digest.
    ok(&publish_args(&a2, &a_key, &a_data, &address, bs, &[]));
    let (log, _) = ok(&["log", &address, "--history", "3", "--bootstrap", bs]);
    assert!(
        log.lines()
            .any(|l| l.starts_with("|   ") && l.contains(" seq ")),
        "no history fetched:\n{log}"
    );
    assert!(
        log.contains("conflict shared.txt"),
        "the conflict stays: {log}"
    );
    // The merged fetch serves one side and says there is a conflict.
    let out2 = dir.join("out2");
    let (_, err) = ok(&[
        "fetch",
        &address,
        "-o",
        &s(&out2),
        "--no-cache",
        "--bootstrap",
        bs,
    ]);
    assert!(err.contains("shared.txt is in conflict"), "{err}");
    assert_eq!(read(&out2, "b/notes.txt"), "by B");

    // The site key revokes B; B's next publish is refused, and readers never see it.
    let (out, _) = ok(&[
        "writers",
        "revoke",
        "--key",
        &s(&site_key),
        "--writer",
        &b_pub,
        "--bootstrap",
        bs,
    ]);
    assert!(out.contains("revoked after sequence"), "{out}");
    let b3 = folder(
        &dir,
        "b3",
        &[
            ("b/notes.txt", "B after revocation"),
            ("shared.txt", "B's version"),
        ],
    );
    let err = fails(&publish_args(&b3, &b_key, &b_data, &address, bs, &[]));
    assert!(err.contains("revoked"), "{err}");
    let out3 = dir.join("out3");
    ok(&[
        "fetch",
        &address,
        "-o",
        &s(&out3),
        "--no-cache",
        "--bootstrap",
        bs,
    ]);
    assert_eq!(
        read(&out3, "b/notes.txt"),
        "by B",
        "what B signed before its cut-off stays"
    );
    let (log, _) = ok(&["log", &address, "--bootstrap", bs]);
    assert!(log.contains("revoked after sequence"), "{log}");
}
