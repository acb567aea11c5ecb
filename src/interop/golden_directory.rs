//! Umbra's golden vectors for relay discovery (`protocol-spec/09-relay.md#descriptors`,
//! `#families`, `10-directory.md`; `interop/README.md#umbra-vectors`): descriptors checked at
//! a time (valid, in a family, forged, expired, a stolen family, truncated) and the DIR
//! messages (`PUSH`, `SYNC` with the summary of a directory, `ENTRIES`) as bytes.
//! Not in this module: admission caps and flooding (tested in `tests/directory_bad_input.rs`).

use serde_json::{Value, json};

use super::{
    GOLDEN_PROVENANCE as PROVENANCE, Summary, expect_eq, fixed_input as fixed, hex_field,
    int_field, list, name_of,
};
use crate::crypto::keys::{IdentityKey, X25519Public};
use crate::directory::sync::summary;
use crate::directory::{Descriptor, Directory, DirectoryError, Roles, family_cert, parse};
use crate::time::WallTime;
use crate::wire::dir_msg::{BUCKETS, DIGEST_LEN, DirMsg};
use crate::wire::hex;

const PUBLISHED: u64 = 1_800_000_000;

fn descriptor(i: u8, family: Option<(&IdentityKey, &IdentityKey)>) -> (IdentityKey, Descriptor) {
    let key = IdentityKey::from_secret_bytes(fixed(&format!("directory relay {i}")));
    let d = Descriptor {
        identity: key.public(),
        addr: format!("198.51.{i}.7:4400")
            .parse()
            .unwrap_or_else(|_| ([198, 51, 0, 7], 4400).into()),
        link_key: X25519Public(fixed(&format!("directory link {i}"))),
        onion_key: X25519Public(fixed(&format!("directory onion {i}"))),
        bandwidth: 1000 + u32::from(i),
        family: family.map_or([0; 32], |(f, _)| f.public().to_bytes()),
        family_cert: family.map(|(_, signer)| family_cert(signer, &key.public())),
        roles: Roles::ALL,
        published: WallTime(PUBLISHED),
        expires: WallTime(PUBLISHED + 3 * 86_400),
    };
    (key, d)
}

fn signed(i: u8, family: Option<(&IdentityKey, &IdentityKey)>) -> Vec<u8> {
    let (k, d) = descriptor(i, family);
    d.sign(&k).unwrap_or_default()
}

fn verdict(bytes: &[u8], now: u64) -> Value {
    match parse(bytes).and_then(|u| u.verify(WallTime(now))) {
        Ok(v) => {
            let d = v.descriptor();
            json!({
                "valid": true,
                "node_id": hex::encode(&d.node_id().0),
                "family": (d.family != [0; 32]).then(|| hex::encode(&d.family)),
            })
        }
        Err(e) => json!({"error": error_class(&e)}),
    }
}

/// The summary (`SYNC` digests) of a directory holding `descriptors`, verified at `now`.
fn summarize(descriptors: &[Vec<u8>], now: u64) -> Result<Vec<u8>, String> {
    let mut dir = Directory::new();
    for d in descriptors {
        let v = parse(d)
            .and_then(|u| u.verify(WallTime(now)))
            .map_err(|e| e.to_string())?;
        dir.insert(v);
    }
    Ok(summary(&dir).iter().flatten().copied().collect())
}

fn error_class(e: &DirectoryError) -> &'static str {
    match e {
        DirectoryError::BadSignature => "signature",
        DirectoryError::BadFamily => "family",
        DirectoryError::NotValidNow { .. } => "not-valid-now",
        DirectoryError::Version(_) => "version",
        DirectoryError::Key(_) => "key",
        _ => "malformed",
    }
}

/// What a node takes from a bootstrap list's `text` at `now` (09-relay.md#bootstrap-list):
/// the relays with their first-seen time, in NodeId order, and the lines refused.
fn bootstrap(text: &str, now: u64) -> Value {
    let (dir, errors) = Directory::from_bootstrap(text, WallTime(now));
    let mut relays: Vec<Value> = dir
        .relays()
        .map(|d| {
            let id = d.node_id();
            json!({"node_id": hex::encode(&id.0), "first_seen": dir.first_seen(&id).map(|t| t.0)})
        })
        .collect();
    relays.sort_by(|a, b| a["node_id"].as_str().cmp(&b["node_id"].as_str()));
    json!({
        "relays": relays,
        "refused": errors.iter().map(|(line, e)| json!({"line": line, "error": error_class(e)})).collect::<Vec<_>>(),
    })
}

fn bootstrap_texts(plain: &[u8], member: &[u8], forged: &[u8]) -> Vec<(&'static str, String)> {
    let (p, m, f) = (hex::encode(plain), hex::encode(member), hex::encode(forged));
    vec![
        (
            "two relays, a comment and blank lines",
            format!("# my contacts\n\n{p}\n   \n{m}\n"),
        ),
        (
            "a cache: first-seen times for the next descriptor",
            format!("# first-seen 1799990000 x\n{p}\n# first-seen 1799999000 y\n{m}\n"),
        ),
        (
            "a first-seen in the future is taken as now",
            format!("# first-seen 1900000000 x\n{p}\n"),
        ),
        (
            "a forged line, a line that is not hex, and a good one",
            format!("{f}\nnot hex at all\n{m}\n"),
        ),
    ]
}

/// Generate `directory.json`.
pub fn gen_directory() -> Value {
    let family = IdentityKey::from_secret_bytes(fixed("directory family"));
    let now = PUBLISHED + 100;
    let plain = signed(0, None);
    let member = signed(1, Some((&family, &family)));
    let mut forged = plain.clone();
    forged[40] ^= 1;
    let (k2, _) = descriptor(2, None);
    let stolen = signed(2, Some((&family, &k2)));
    let case = |name: &str, bytes: &[u8], at: u64| json!({"name": name, "descriptor": hex::encode(bytes), "now": at, "expect": verdict(bytes, at)});
    let descriptors = vec![
        case("valid", &plain, now),
        case("in a family", &member, now),
        case("forged address", &forged, now),
        case("expired", &plain, PUBLISHED + 3 * 86_400),
        case("published in the future", &plain, PUBLISHED - 601),
        case("names a family without its key", &stolen, now),
        case("truncated", &plain[..plain.len() - 1], now),
    ];
    let set = vec![plain.clone(), member.clone()];
    let msg = |name: &str, m: DirMsg, extra: Value| {
        let bytes = m.encode().unwrap_or_default();
        let mut v = json!({"name": name, "message": hex::encode(&bytes)});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        v
    };
    let digests = summarize(&set, now).unwrap_or_default();
    let mut boxed = Box::new([[0u8; DIGEST_LEN]; BUCKETS]);
    for (b, chunk) in boxed.iter_mut().zip(digests.chunks(DIGEST_LEN)) {
        b.copy_from_slice(chunk);
    }
    let messages = vec![
        msg(
            "push",
            DirMsg::Push {
                descriptors: set.clone(),
            },
            json!({"descriptors": set.iter().map(|d| hex::encode(d)).collect::<Vec<_>>()}),
        ),
        msg(
            "sync: the summary of a directory",
            DirMsg::Sync {
                id: 7,
                digests: boxed,
            },
            json!({"directory": set.iter().map(|d| hex::encode(d)).collect::<Vec<_>>(), "now": now}),
        ),
        msg(
            "entries",
            DirMsg::Entries {
                id: 7,
                more: false,
                descriptors: vec![member.clone()],
            },
            json!({}),
        ),
    ];
    let lists: Vec<Value> = bootstrap_texts(&plain, &member, &forged)
        .into_iter()
        .map(|(name, text)| json!({"name": name, "text": text, "now": now, "expect": bootstrap(&text, now)}))
        .collect();
    json!({
        "umbra_vectors": "directory",
        "provenance": PROVENANCE,
        "description": "Relay descriptors (protocol-spec/09-relay.md#descriptors, #families) checked at Unix time \
            `now`: valid (node id, family) or an error class (signature, family, not-valid-now, malformed). \
            DIR messages (10-directory.md#messages): each decodes and encodes back to the same bytes; a `SYNC`'s \
            64 digests are the summary (#summary) of a directory holding `directory` at `now`. Keys are \
            BLAKE3 derive_key(\"umbra golden vectors v1\", \"directory relay N\" / \"directory family\"). \
            Bootstrap lists (09-relay.md#bootstrap-list) read at `now`: the relays taken (by node id, with \
            the first-seen time a `# first-seen T` line gave the next descriptor, at most `now`, else \
            `now`) and the lines refused (1-based, with the error class).",
        "descriptors": descriptors,
        "messages": messages,
        "bootstrap_lists": lists,
    })
}

/// Check `directory.json`.
pub fn check_directory(v: &Value) -> Summary {
    let mut s = Summary::new("Umbra directory");
    for c in list(v, "descriptors") {
        let r = (|| {
            let got = verdict(&hex_field(c, "descriptor")?, int_field(c, "now")?);
            let want = c.get("expect").ok_or("expect")?;
            if &got == want {
                Ok(())
            } else {
                Err(format!("got {got}, want {want}"))
            }
        })();
        s.check(format!("umbra/directory/{}", name_of(c)), r);
    }
    for c in list(v, "bootstrap_lists") {
        let r = (|| {
            let text = c.get("text").and_then(Value::as_str).ok_or("text")?;
            let got = bootstrap(text, int_field(c, "now")?);
            let want = c.get("expect").ok_or("expect")?;
            if &got == want {
                Ok(())
            } else {
                Err(format!("got {got}, want {want}"))
            }
        })();
        s.check(format!("umbra/directory/bootstrap/{}", name_of(c)), r);
    }
    for c in list(v, "messages") {
        let r = (|| {
            let bytes = hex_field(c, "message")?;
            let m = DirMsg::decode(&bytes).map_err(|e| e.to_string())?;
            expect_eq(
                "re-encoding",
                &m.encode().map_err(|e| e.to_string())?,
                &bytes,
            )?;
            if let DirMsg::Sync { digests, .. } = &m {
                let dir: Vec<Vec<u8>> = list(c, "directory")
                    .iter()
                    .filter_map(Value::as_str)
                    .map(hex::decode)
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())?;
                let want = summarize(&dir, int_field(c, "now")?)?;
                let got: Vec<u8> = digests.iter().flatten().copied().collect();
                expect_eq("summary", &got, &want)?;
            }
            Ok(())
        })();
        s.check(format!("umbra/directory/{}", name_of(c)), r);
    }
    s
}
