//! Umbra's golden vectors for sites with many writers (`protocol-spec/11-writers.md`):
//! rosters, writer manifests (main line, branch, tombstone, version 1, and malformed ones),
//! admission under a roster (prefix, stranger, unknown roster, revocation, pinned head),
//! merges (a conflict, its resolution, a revocation, a branch, a version-1 site with a
//! writer) with their view hashes, and equivocation.
//!
//! Not in this module: the merge itself (`site::writers`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{
    GOLDEN_PROVENANCE as PROVENANCE, Summary, fixed_input as fixed, hex_field, list, name_of,
};
use crate::crypto::keys::IdentityKey;
use crate::site::address::SiteAddress;
use crate::site::build;
use crate::site::writers::head::{self, FileRef, HEAD_LABEL, SignedHead, Value as EntryValue};
use crate::site::writers::merge::{HeadSet, Inserted};
use crate::site::writers::roster::{self, Cutoff, Roster, RosterWriter};
use crate::site::writers::stage::{Intent, announce, next_head};
use crate::time::WallTime;
use crate::wire::hex;

fn key(label: &str) -> IdentityKey {
    IdentityKey::from_secret_bytes(fixed(label))
}

fn file(content: &str) -> FileRef {
    let b = content.as_bytes();
    FileRef {
        size: b.len() as u64,
        hash: crate::crypto::hash::hash(b),
        media_type: crate::site::media_type("x.txt").to_string(),
        blocks: vec![crate::crypto::hash::hash(b)],
    }
}

/// What a roster's bytes say, checked for `site`.
fn roster_expect(bytes: &[u8], site: &SiteAddress) -> Value {
    match roster::parse(bytes, site) {
        Ok(r) => json!({
            "seq": r.roster.seq,
            "writers": r.roster.writers.iter().map(|w| json!({
                "key": hex::encode(&w.key.to_bytes()),
                "prefixes": w.prefixes,
                "cutoff": w.cutoff.map(|c| json!({"seq": c.seq, "head": hex::encode(&c.head)})),
            })).collect::<Vec<_>>(),
        }),
        Err(e) => json!({"error": e.class()}),
    }
}

/// What a writer manifest's bytes say, checked for `site`.
fn manifest_expect(bytes: &[u8], site: &SiteAddress) -> Value {
    match head::parse(bytes, site) {
        Ok(h) => {
            let hd = &h.head;
            let line = hd.line();
            json!({
                "writer": hex::encode(&hd.writer.to_bytes()),
                "branch": hd.branch,
                "line": hex::encode(&line.0),
                "seq": hd.seq,
                "roster": hd.roster,
                "prev": hex::encode(&hd.prev),
                "vector": hd.vector.0.iter().map(|(l, s)| json!([hex::encode(&l.0), s])).collect::<Vec<_>>(),
                "entries": hd.entries.iter().map(|e| json!({
                    "path": e.path,
                    "dot": hd.ctx(e).get(&line),
                    "file": match &e.value { EntryValue::File(f) => Value::from(hex::encode(&f.hash)), EntryValue::Tombstone => Value::Null },
                })).collect::<Vec<_>>(),
                "branches": hd.branches,
            })
        }
        Err(e) => json!({"error": e.class()}),
    }
}

fn parse_pair(r: &[u8], m: &[u8], site: &SiteAddress) -> Result<(Roster, SignedHead), String> {
    let r = roster::parse(r, site).map_err(|e| format!("roster: {e}"))?;
    let m = head::parse(m, site).map_err(|e| format!("manifest: {e}"))?;
    Ok((r.roster, m))
}

fn admission_expect(r: &[u8], m: &[u8], site: &SiteAddress) -> Value {
    match parse_pair(r, m, site) {
        Ok((r, m)) => match r.admit_signed(&m) {
            Ok(()) => json!("admitted"),
            Err(e) => json!(e.class()),
        },
        Err(e) => json!({"unparsed": e}),
    }
}

fn merge_expect(r: &[u8], heads: &[Vec<u8>], branch: &str, site: &SiteAddress) -> Value {
    let roster = match roster::parse(r, site) {
        Ok(r) => r.roster,
        Err(e) => return json!({"error": e.class()}),
    };
    let mut set = HeadSet::new();
    for h in heads {
        match head::parse(h, site) {
            Ok(h) => {
                set.insert(h);
            }
            Err(e) => return json!({"error": e.class()}),
        }
    }
    let v = set.view(&roster, branch);
    let files: BTreeMap<&str, String> = v.files().map(|(p, f)| (p, hex::encode(&f.hash))).collect();
    let conflicts: BTreeMap<&str, Vec<Value>> = v
        .conflicts()
        .map(|c| {
            let sides = c
                .candidates
                .iter()
                .map(|s| {
                    json!({"line": hex::encode(&s.line.0), "dot": s.dot, "file": match &s.value {
                        EntryValue::File(f) => Value::from(hex::encode(&f.hash)),
                        EntryValue::Tombstone => Value::Null,
                    }})
                })
                .collect();
            (c.path.as_str(), sides)
        })
        .collect();
    json!({
        "view_hash": hex::encode(&v.hash()),
        "files": files,
        "conflicts": conflicts,
        "refused": v.refused.iter().map(|(l, e)| json!({"line": hex::encode(&l.0), "error": e.class()})).collect::<Vec<_>>(),
    })
}

/// Re-sign `bytes` (a writer manifest) after `edit` changed its unsigned part.
fn resign(k: &IdentityKey, bytes: &[u8], edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut unsigned = bytes[..bytes.len() - 64].to_vec();
    edit(&mut unsigned);
    let sig = k.sign(HEAD_LABEL, &unsigned);
    unsigned.extend_from_slice(&sig.0);
    unsigned
}

struct World {
    site: IdentityKey,
    addr: SiteAddress,
    a: IdentityKey,
    b: IdentityKey,
}

impl World {
    fn roster(&self, seq: u64, cutoff_b: Option<Cutoff>) -> Roster {
        let mut writers = vec![
            RosterWriter {
                key: self.a.public(),
                prefixes: vec![String::new()],
                cutoff: None,
            },
            RosterWriter {
                key: self.b.public(),
                prefixes: vec!["b/".into()],
                cutoff: cutoff_b,
            },
        ];
        writers.sort_by_key(|w| w.key.to_bytes());
        Roster {
            site: self.site.public(),
            seq,
            published: WallTime(1_800_000_000),
            writers,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn publish(
        &self,
        k: &IdentityKey,
        branch: &str,
        seq: u64,
        files: &[(&str, &str)],
        prev: Option<&SignedHead>,
        seen: &[&SignedHead],
        r: &Roster,
    ) -> Result<SignedHead, String> {
        let files: BTreeMap<String, FileRef> = files
            .iter()
            .map(|(p, c)| (p.to_string(), file(c)))
            .collect();
        let mut set = HeadSet::new();
        for h in seen {
            set.insert((*h).clone());
        }
        // A writer lists the branch it writes on.
        let branches: BTreeSet<String> = std::iter::once(branch.to_string())
            .filter(|b| !b.is_empty())
            .collect();
        let intent = Intent {
            site: self.site.public(),
            writer: k.public(),
            branch,
            seq,
            published: WallTime(1_800_000_000),
            expires: WallTime(u64::MAX),
            files: &files,
            delete: &BTreeSet::new(),
            branches: &branches,
            resolve: false,
        };
        let h = next_head(&intent, prev, &set, r).map_err(|e| e.to_string())?;
        let bytes = h.sign(k).map_err(|e| e.to_string())?;
        head::parse(&bytes, &self.addr).map_err(|e| e.to_string())
    }
}

/// Generate `writers.json`.
pub fn gen_writers() -> Value {
    build_all().unwrap_or_else(|e| json!({"error": e}))
}

fn build_all() -> Result<Value, String> {
    let site = key("writers site key");
    let w = World {
        addr: SiteAddress(site.public()),
        site,
        a: key("writer a"),
        b: key("writer b"),
    };
    let addr = w.addr;
    let r1 = w.roster(1, None);
    let r1b = r1.sign(&w.site).map_err(|e| e.to_string())?;
    let a1 = w.publish(
        &w.a,
        "",
        1,
        &[("index.html", "<p>a</p>"), ("b/shared", "A")],
        None,
        &[],
        &r1,
    )?;
    let b1 = w.publish(
        &w.b,
        "",
        1,
        &[("b/mine", "m"), ("b/shared", "B")],
        None,
        &[],
        &r1,
    )?;
    let a2 = w.publish(
        &w.a,
        "",
        2,
        &[("index.html", "<p>a</p>"), ("b/shared", "A+B")],
        Some(&a1),
        &[&b1],
        &r1,
    )?;
    let a3 = w.publish(&w.a, "", 3, &[("b/shared", "A+B")], Some(&a2), &[&b1], &r1)?;
    let draft = w.publish(&w.a, "draft", 4, &[("draft.html", "d")], None, &[], &r1)?;
    // Writer a's main line again, listing its branch: how readers learn of it.
    let announced = {
        let branches = BTreeSet::from(["draft".to_string()]);
        let intent = Intent {
            site: w.site.public(),
            writer: w.a.public(),
            branch: "",
            seq: 6,
            published: WallTime(1_800_000_000),
            expires: WallTime(u64::MAX),
            files: &BTreeMap::new(),
            delete: &BTreeSet::new(),
            branches: &branches,
            resolve: false,
        };
        let h = announce(&intent, Some(&a3), &r1).map_err(|e| e.to_string())?;
        head::parse(&h.sign(&w.a).map_err(|e| e.to_string())?, &addr).map_err(|e| e.to_string())?
    };
    let b2 = w.publish(
        &w.b,
        "",
        2,
        &[("b/mine", "m2"), ("b/shared", "B")],
        Some(&b1),
        &[],
        &r1,
    )?;
    let b1_twin = w.publish(&w.b, "", 1, &[("b/mine", "other")], None, &[], &r1)?;
    let r2 = w.roster(
        2,
        Some(Cutoff {
            seq: 1,
            head: b1.digest(),
        }),
    );
    let r2b = r2.sign(&w.site).map_err(|e| e.to_string())?;
    let stranger = key("writer c");
    let r_stranger = Roster {
        writers: vec![RosterWriter {
            key: stranger.public(),
            prefixes: vec![String::new()],
            cutoff: None,
        }],
        ..w.roster(1, None)
    };
    let c1 = w.publish(&stranger, "", 1, &[("c.txt", "c")], None, &[], &r_stranger)?;
    let ahead = w.publish(&w.a, "", 5, &[("x", "x")], None, &[], &w.roster(7, None))?;
    let mut forged = b1.head.clone();
    forged.entries[0].path = "index.html".into();
    forged.entries.sort_by(|x, y| x.path.cmp(&y.path));
    let forged = forged.sign(&w.b).map_err(|e| e.to_string())?;
    let v1 = build(
        &w.site,
        &[("index.html".into(), b"<p>v1</p>".to_vec())],
        5,
        WallTime(1_800_000_000),
        crate::site::NO_EXPIRY,
    )
    .map_err(|e| e.to_string())?;

    // Malformed rosters and manifests (re-signed so only the named rule breaks).
    let mut r_bad_sig = r1b.clone();
    let n = r_bad_sig.len();
    r_bad_sig[n - 1] ^= 0x40;
    let r_other_site = Roster {
        site: w.a.public(),
        writers: vec![],
        ..r1.clone()
    }
    .sign(&w.a)
    .map_err(|e| e.to_string())?;
    let r_listed = {
        let mut u = r1b[..r1b.len() - 64].to_vec();
        u[51..83].copy_from_slice(&w.site.public().to_bytes());
        let sig = w.site.sign(roster::ROSTER_LABEL, &u);
        u.extend_from_slice(&sig.0);
        u
    };
    let mut m_bad_sig = a1.bytes.clone();
    let n = m_bad_sig.len();
    m_bad_sig[n - 1] ^= 0x40;
    let m_version = resign(&w.a, &a1.bytes, |u| u[0] = 3);
    let m_too_many_lines = resign(&w.a, &a1.bytes, |u| {
        u[130..132].copy_from_slice(&257u16.to_be_bytes())
    });
    let m_context_past = resign(&w.a, &a1.bytes, |u| u[153] = 2);
    let m_kind = resign(&w.a, &a1.bytes, |u| u[170] = 9);

    let rosters = [
        ("valid", &r1b),
        ("revokes writer b at 1, pinning its manifest", &r2b),
        ("bad signature", &r_bad_sig),
        ("signed for another site", &r_other_site),
        ("lists the site key", &r_listed),
    ]
    .iter()
    .map(|(name, b)| json!({"name": name, "roster": hex::encode(b), "expect": roster_expect(b, &addr)}))
    .collect::<Vec<_>>();
    let manifests = [
        ("main line", &a1.bytes),
        ("a merge covering writer b, with a tombstone", &a3.bytes),
        ("orphan branch", &draft.bytes),
        ("a main line listing its writer's branch", &announced.bytes),
        ("version 1 read as the site key's main line", &v1.manifest),
        ("bad signature", &m_bad_sig),
        ("unknown version", &m_version),
        ("257 lines: oversized vector", &m_too_many_lines),
        ("a context past the vector", &m_context_past),
        ("unknown entry kind", &m_kind),
    ]
    .iter()
    .map(|(name, b)| json!({"name": name, "manifest": hex::encode(b), "expect": manifest_expect(b, &addr)}))
    .collect::<Vec<_>>();
    let admission = [
        ("a writer within its prefixes", &r1b, &a1.bytes),
        ("a path outside the writer's prefixes", &r1b, &forged),
        ("a key not in the roster", &r1b, &c1.bytes),
        ("written under a roster not held", &r1b, &ahead.bytes),
        ("past the cut-off", &r2b, &b2.bytes),
        ("at the cut-off, the pinned manifest", &r2b, &b1.bytes),
        ("at the cut-off, another manifest", &r2b, &b1_twin.bytes),
    ]
    .iter()
    .map(|(name, r, m)| json!({"name": name, "roster": hex::encode(r), "manifest": hex::encode(m), "expect": admission_expect(r, m, &addr)}))
    .collect::<Vec<_>>();
    let merges = [
        ("two writers, one conflict", &r1b, vec![&a1, &b1], ""),
        ("a merge resolves it", &r1b, vec![&a2, &b1, &a1], ""),
        ("a revoked writer's later manifest", &r2b, vec![&a1, &b2], ""),
        ("the revoked writer's pinned manifest", &r2b, vec![&a1, &b1], ""),
        ("a named branch", &r1b, vec![&a1, &b1, &draft], "draft"),
    ]
    .iter()
    .map(|(name, r, hs, branch)| {
        let heads: Vec<Vec<u8>> = hs.iter().map(|h| h.bytes.clone()).collect();
        json!({"name": name, "roster": hex::encode(r), "branch": branch,
            "heads": heads.iter().map(|h| hex::encode(h)).collect::<Vec<_>>(),
            "expect": merge_expect(r, &heads, branch, &addr)})
    })
    .chain(std::iter::once({
        let heads = vec![v1.manifest.clone(), b1.bytes.clone()];
        json!({"name": "a version-1 site manifest and a writer", "roster": hex::encode(&r1b), "branch": "",
            "heads": heads.iter().map(|h| hex::encode(h)).collect::<Vec<_>>(),
            "expect": merge_expect(&r1b, &heads, "", &addr)})
    }))
    .collect::<Vec<_>>();
    let equivocation = json!({"name": "writer b signs two manifests with sequence 1",
        "manifests": [hex::encode(&b1.bytes), hex::encode(&b1_twin.bytes)],
        "expect": equivocation_expect(&[b1.bytes.clone(), b1_twin.bytes.clone()], &addr)});
    Ok(json!({
        "umbra_vectors": "writers",
        "provenance": PROVENANCE,
        "description": "Sites with many writers (protocol-spec/11-writers.md). All objects are for `address`. `rosters`: a roster's \
            bytes and what they say (or an error class). `manifests`: a writer manifest's bytes (or a version-1 manifest) and what \
            they say: writer, branch, line id, seq, roster, prev, vector, per entry its dot and file hash (null: tombstone), and \
            the named branches it lists (#branches); \
            or an error class. `admission`: a roster and a manifest, and the verdict (#admission). `merges`: a roster, heads \
            (inserted in order) and a branch name, and the view: view hash (#view-hash), served files, conflicts with every \
            survivor (default winner first), refused heads. `equivocation`: two manifests of one writer with one sequence. \
            Secrets are BLAKE3 derive_key(\"umbra golden vectors v1\", label) for the labels \"writers site key\", \
            \"writer a\", \"writer b\", \"writer c\"; built by src/interop/golden_writers.rs.",
        "address": addr.to_string(),
        "rosters": rosters,
        "manifests": manifests,
        "admission": admission,
        "merges": merges,
        "equivocation": equivocation,
    }))
}

fn equivocation_expect(ms: &[Vec<u8>], site: &SiteAddress) -> Value {
    let mut set = HeadSet::new();
    let mut outcomes = Vec::new();
    for m in ms {
        match head::parse(m, site) {
            Ok(h) => outcomes.push(match set.insert(h) {
                Inserted::New => "new",
                Inserted::Stale => "stale",
                Inserted::Equivocation => "equivocation",
            }),
            Err(e) => outcomes.push(e.class()),
        }
    }
    json!({"inserted": outcomes, "proofs": set.proofs().count()})
}

/// Check `writers.json`.
pub fn check_writers(v: &Value) -> Summary {
    let mut s = Summary::new("Umbra writers");
    let addr = match v
        .get("address")
        .and_then(Value::as_str)
        .map(SiteAddress::parse)
    {
        Some(Ok(a)) => a,
        _ => {
            s.check(
                "umbra/writers/address".to_string(),
                Err("missing or bad `address`".into()),
            );
            return s;
        }
    };
    let compare = |got: Value, c: &Value| -> Result<(), String> {
        let want = c.get("expect").ok_or("expect")?;
        if &got == want {
            Ok(())
        } else {
            Err(format!("got {got}, want {want}"))
        }
    };
    for c in list(v, "rosters") {
        let r = hex_field(c, "roster").and_then(|b| compare(roster_expect(&b, &addr), c));
        s.check(format!("umbra/writers/roster/{}", name_of(c)), r);
    }
    for c in list(v, "manifests") {
        let r = hex_field(c, "manifest").and_then(|b| compare(manifest_expect(&b, &addr), c));
        s.check(format!("umbra/writers/manifest/{}", name_of(c)), r);
    }
    for c in list(v, "admission") {
        let r = hex_field(c, "roster")
            .and_then(|r| Ok((r, hex_field(c, "manifest")?)))
            .and_then(|(r, m)| compare(admission_expect(&r, &m, &addr), c));
        s.check(format!("umbra/writers/admission/{}", name_of(c)), r);
    }
    for c in list(v, "merges") {
        let r = (|| {
            let roster = hex_field(c, "roster")?;
            let heads = list(c, "heads")
                .iter()
                .map(|h| {
                    h.as_str()
                        .ok_or("head")
                        .and_then(|h| hex::decode(h).map_err(|_| "head hex"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let branch = c.get("branch").and_then(Value::as_str).unwrap_or("");
            compare(merge_expect(&roster, &heads, branch, &addr), c)
        })();
        s.check(format!("umbra/writers/merge/{}", name_of(c)), r);
    }
    if let Some(c) = v.get("equivocation") {
        let r = (|| {
            let ms = list(c, "manifests")
                .iter()
                .map(|h| {
                    h.as_str()
                        .ok_or("manifest")
                        .and_then(|h| hex::decode(h).map_err(|_| "manifest hex"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            compare(equivocation_expect(&ms, &addr), c)
        })();
        s.check(format!("umbra/writers/equivocation/{}", name_of(c)), r);
    }
    s
}
