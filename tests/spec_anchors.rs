//! Every spec section the code cites must exist (`protocol-spec/README.md#stable-anchors`).

mod common;

use common::rust_files;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// GitHub-style anchor of a Markdown heading.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(doc: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
    text.lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| slug(l.trim_start_matches('#')))
        .collect()
}

/// Citations like `02-link.md#framing`, `rationale.md#cell-size`,
/// `protocol-spec/README.md#determinism`, `interop/README.md#noise`.
fn citations(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find(".md") {
        let end = i + pos + 3;
        let mut start = i + pos;
        while start > 0
            && (bytes[start - 1].is_ascii_alphanumeric() || b"-_/".contains(&bytes[start - 1]))
        {
            start -= 1;
        }
        let file = &text[start..end];
        let mut anchor = None;
        if bytes.get(end) == Some(&b'#') {
            let a_end = text[end + 1..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(text.len(), |k| end + 1 + k);
            anchor = Some(text[end + 1..a_end].to_string());
        }
        out.push((file.to_string(), anchor));
        i = end;
    }
    out
}

fn resolve(file: &str) -> Option<PathBuf> {
    let r = root();
    let name = file.trim_start_matches("protocol-spec/");
    if file.starts_with("interop/") {
        return Some(r.join(file));
    }
    if file == "protocol-spec/README.md"
        || name.starts_with(|c: char| c.is_ascii_digit())
        || name == "rationale.md"
    {
        return Some(r.join("protocol-spec").join(name));
    }
    None
}

#[test]
fn every_cited_anchor_exists() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    rust_files(&root().join("tests"), &mut files);
    let mut checked = 0;
    let mut missing = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (file, anchor) in citations(&text) {
            let Some(doc) = resolve(&file) else { continue };
            if !doc.exists() {
                missing.push(format!("{}: cites missing file {file}", f.display()));
                continue;
            }
            if let Some(a) = anchor {
                checked += 1;
                if !anchors(&doc).contains(&a) {
                    missing.push(format!(
                        "{}: cites {file}#{a}, which does not exist",
                        f.display()
                    ));
                }
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    assert!(
        checked > 30,
        "only {checked} citations found: the scanner is broken"
    );
}

#[test]
fn slug_and_citation_parsing() {
    assert_eq!(slug(" Handshake policy"), "handshake-policy");
    assert_eq!(slug("Poly1305 backend"), "poly1305-backend");
    let c = citations("see `02-link.md#framing` and protocol-spec/rationale.md#cell-size.");
    assert_eq!(c[0], ("02-link.md".into(), Some("framing".into())));
    assert_eq!(
        c[1],
        (
            "protocol-spec/rationale.md".into(),
            Some("cell-size".into())
        )
    );
}
