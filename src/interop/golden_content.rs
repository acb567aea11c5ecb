//! Umbra's golden vectors for content (`interop/README.md#umbra-vectors`): site addresses,
//! signed manifests (valid, bad signature, wrong key, expired, rollback, equivocation), DHT
//! ids and distance order, and DHT/exit message encodings
//! (`protocol-spec/06-dht.md`, `07-sites.md`).

use serde_json::{Value, json};

use super::{
    GOLDEN_PROVENANCE as PROVENANCE, Summary, expect_eq, fixed_input as fixed, hex_array,
    hex_field, int_field, list, name_of,
};
use crate::crypto::keys::{IdentityKey, IdentityPublic, NodeId};
use crate::dht::routing::{bucket_index, distance};
use crate::site::address::{AddressError, SiteAddress};
use crate::site::{Observed, SiteError, SiteTracker, build, manifest};
use crate::time::WallTime;
use crate::wire::dht_msg::{DhtMsg, ExitReply, ExitRequest, Record, RecordKind};
use crate::wire::hex;

fn addr_error(e: AddressError) -> &'static str {
    match e {
        AddressError::Length(_) => "length",
        AddressError::Character(_) => "character",
        AddressError::Checksum => "checksum",
        AddressError::Version(_) => "version",
        AddressError::Key => "key",
    }
}

fn parse_addr(s: &str) -> Value {
    match SiteAddress::parse(s) {
        Ok(a) => {
            json!({"public_key": hex::encode(&a.0.to_bytes()), "dht_key": hex::encode(&a.dht_key())})
        }
        Err(e) => json!({"error": addr_error(e)}),
    }
}

/// Generate `site-address.json`.
pub fn gen_addresses() -> Value {
    let mut cases = Vec::new();
    for i in 0..3 {
        let k = IdentityKey::from_secret_bytes(fixed(&format!("site address {i}")));
        let a = SiteAddress(k.public()).to_string();
        cases.push(json!({"name": format!("valid {i}"), "address": a, "expect": parse_addr(&a)}));
    }
    let good =
        SiteAddress(IdentityKey::from_secret_bytes(fixed("site address 0")).public()).encode();
    let mut typo: Vec<char> = good.chars().collect();
    typo[7] = if typo[7] == 'q' { 'r' } else { 'q' };
    let typo: String = typo.into_iter().collect();
    // Same key and checksum, version byte 2: the last two characters change.
    let raw_v2 = {
        let mut s = good.clone();
        s.replace_range(54..56, "ai");
        s
    };
    for (name, s) in [
        ("upper case is accepted", good.to_uppercase()),
        ("without the suffix", good.clone()),
        ("a typo", format!("{typo}.umbra")),
        ("another version", format!("{raw_v2}.umbra")),
        ("too short", format!("{}.umbra", &good[..50])),
        (
            "a character outside the alphabet",
            format!("{}1.umbra", &good[..55]),
        ),
    ] {
        cases.push(json!({"name": name, "address": s, "expect": parse_addr(&s)}));
    }
    json!({
        "umbra_vectors": "site-address",
        "provenance": PROVENANCE,
        "description": "Site addresses (protocol-spec/07-sites.md#address): the parse result (public key and the manifest's \
            DHT key) or the error class (length, character, checksum, version, key).",
        "cases": cases,
    })
}

/// Check `site-address.json`.
pub fn check_addresses(v: &Value) -> Summary {
    let mut s = Summary::new("Umbra site addresses");
    for c in list(v, "cases") {
        let r = (|| {
            let a = c.get("address").and_then(Value::as_str).ok_or("address")?;
            let got = parse_addr(a);
            let want = c.get("expect").ok_or("expect")?;
            if &got == want {
                Ok(())
            } else {
                Err(format!("got {got}, want {want}"))
            }
        })();
        s.check(format!("umbra/site-address/{}", name_of(c)), r);
    }
    s
}

fn files(tag: &str) -> Vec<(String, Vec<u8>)> {
    let mut big = vec![0u8; 70_000];
    crate::crypto::hash::hash_xof(tag.as_bytes(), &mut big);
    vec![
        ("index.html".into(), format!("<h1>{tag}</h1>").into_bytes()),
        ("img/photo.bin".into(), big),
        ("empty.txt".into(), Vec::new()),
    ]
}

pub(super) fn sign(key: &IdentityKey, tag: &str, seq: u64) -> Vec<u8> {
    build(key, &files(tag), seq, WallTime(1_800_000_000), 86_400)
        .map(|b| b.manifest)
        .unwrap_or_default()
}

fn verdict(bytes: &[u8], site: &SiteAddress, now: u64) -> Value {
    match manifest::parse(bytes).and_then(|u| u.verify(site, WallTime(now))) {
        Ok(v) => {
            json!({"valid": true, "seq": v.manifest().seq, "entries": v.manifest().entries.len()})
        }
        Err(e) => json!({"error": match e {
            SiteError::BadSignature => "signature",
            SiteError::WrongKey => "wrong-key",
            SiteError::Expired { .. } => "expired",
            SiteError::NotYetValid => "not-yet-valid",
            SiteError::TooLarge => "too-large",
            _ => "malformed",
        }}),
    }
}

/// What a node makes of one more manifest for `site` at `now` (`07-sites.md#rollback-and-equivocation`).
pub(super) fn observe(
    m: &[u8],
    site: &SiteAddress,
    now: WallTime,
    tracker: &mut SiteTracker,
) -> &'static str {
    match manifest::parse(m)
        .and_then(|u| u.verify(site, now))
        .and_then(|v| tracker.observe(&v))
    {
        Ok(Observed::Newer) => "newer",
        Ok(Observed::Same) => "same",
        Ok(Observed::Equivocation) => "equivocation",
        Err(SiteError::Rollback { .. }) => "rollback",
        Err(SiteError::Equivocated { .. }) => "equivocated",
        Err(_) => "invalid",
    }
}

/// Generate `manifests.json`.
pub fn gen_manifests() -> Value {
    let key = IdentityKey::from_secret_bytes(fixed("manifest site key"));
    let other = IdentityKey::from_secret_bytes(fixed("another site key"));
    let site = SiteAddress(key.public());
    let valid = sign(&key, "v1", 1);
    let mut bad_sig = valid.clone();
    let n = bad_sig.len();
    bad_sig[n - 1] ^= 0x40;
    let now = 1_800_000_100u64;
    let single = |name: &str, bytes: &[u8], for_site: &SiteAddress, at: u64| json!({"name": name, "address": for_site.to_string(), "now": at, "manifest": hex::encode(bytes), "expect": verdict(bytes, for_site, at)});
    let cases = vec![
        single("valid", &valid, &site, now),
        single("bad signature", &bad_sig, &site, now),
        single("signed by another key", &sign(&other, "v1", 1), &site, now),
        single("expired", &valid, &site, 1_800_000_000 + 86_400),
        single("truncated", &valid[..valid.len() - 10], &site, now),
    ];
    let seqs = |list: &[(&str, u64)]| -> Vec<Value> {
        let mut tracker = SiteTracker::new();
        list.iter()
            .map(|(tag, seq)| {
                let m = sign(&key, tag, *seq);
                let outcome = observe(&m, &site, WallTime(now), &mut tracker);
                json!({"manifest": hex::encode(&m), "expect": outcome})
            })
            .collect()
    };
    let sequences = vec![
        json!({"name": "rollback refused", "address": site.to_string(), "now": now, "steps": seqs(&[("v2", 2), ("v1", 1), ("v3", 3)])}),
        json!({"name": "equivocation recorded", "address": site.to_string(), "now": now, "steps": seqs(&[("v2", 2), ("v2", 2), ("v2-other", 2)])}),
    ];
    json!({
        "umbra_vectors": "manifests",
        "provenance": PROVENANCE,
        "description": "Signed manifests (protocol-spec/07-sites.md#manifest). `cases`: one manifest checked for one address \
            at Unix time `now` (valid with its sequence and entry count, or an error class). `sequences`: manifests \
            observed in order by one node (#rollback-and-equivocation): newer, same, rollback (refused) or \
            equivocation (recorded). The site key's secret is BLAKE3 derive_key(\"umbra golden vectors v1\", \
            \"manifest site key\"); files are built by src/interop/golden_content.rs.",
        "cases": cases,
        "sequences": sequences,
    })
}

/// Check `manifests.json`.
pub fn check_manifests(v: &Value) -> Summary {
    let mut s = Summary::new("Umbra manifests");
    for c in list(v, "cases") {
        let r = (|| {
            let site =
                SiteAddress::parse(c.get("address").and_then(Value::as_str).ok_or("address")?)
                    .map_err(|e| e.to_string())?;
            let got = verdict(&hex_field(c, "manifest")?, &site, int_field(c, "now")?);
            let want = c.get("expect").ok_or("expect")?;
            if &got == want {
                Ok(())
            } else {
                Err(format!("got {got}, want {want}"))
            }
        })();
        s.check(format!("umbra/manifests/{}", name_of(c)), r);
    }
    for c in list(v, "sequences") {
        let r = (|| {
            let site =
                SiteAddress::parse(c.get("address").and_then(Value::as_str).ok_or("address")?)
                    .map_err(|e| e.to_string())?;
            let now = WallTime(int_field(c, "now")?);
            let mut tracker = SiteTracker::new();
            for (i, step) in list(c, "steps").iter().enumerate() {
                let m = hex_field(step, "manifest")?;
                let got = observe(&m, &site, now, &mut tracker);
                let want = step.get("expect").and_then(Value::as_str).ok_or("expect")?;
                if got != want {
                    return Err(format!("step {i}: got {got}, want {want}"));
                }
            }
            Ok(())
        })();
        s.check(format!("umbra/manifests/{}", name_of(c)), r);
    }
    s
}

/// Generate `dht-ids.json`.
pub fn gen_ids() -> Value {
    let keys: Vec<IdentityPublic> = (0..12)
        .map(|i| IdentityKey::from_secret_bytes(fixed(&format!("dht node {i}"))).public())
        .collect();
    let target = fixed("dht target");
    let mut order: Vec<NodeId> = keys.iter().map(IdentityPublic::node_id).collect();
    order.sort_by_key(|id| distance(&id.0, &target));
    json!({
        "umbra_vectors": "dht-ids",
        "provenance": PROVENANCE,
        "description": "NodeId = BLAKE3(identity public key); XOR distance; the nodes ordered by distance to `target` \
            (closest first); and each node's bucket index relative to the first node (255 − leading zero bits of the \
            distance) (protocol-spec/06-dht.md#routing-table).",
        "nodes": keys.iter().map(|k| json!({"public_key": hex::encode(&k.to_bytes()), "node_id": hex::encode(&k.node_id().0)})).collect::<Vec<_>>(),
        "target": hex::encode(&target),
        "closest_first": order.iter().map(|id| hex::encode(&id.0)).collect::<Vec<_>>(),
        "buckets_from_first": keys.iter().map(|k| bucket_index(&keys[0].node_id().0, &k.node_id().0).map_or(-1, |b| b as i64)).collect::<Vec<_>>(),
    })
}

/// Check `dht-ids.json`.
pub fn check_ids(v: &Value) -> Summary {
    let mut s = Summary::new("Umbra DHT ids");
    let r = (|| {
        let mut ids = Vec::new();
        for n in list(v, "nodes") {
            let pk = IdentityPublic::from_bytes(&hex_array(n, "public_key")?)
                .map_err(|e| e.to_string())?;
            expect_eq("node id", &pk.node_id().0, &hex_field(n, "node_id")?)?;
            ids.push(pk.node_id());
        }
        let target: [u8; 32] = hex_array(v, "target")?;
        let mut order = ids.clone();
        order.sort_by_key(|id| distance(&id.0, &target));
        let want: Vec<String> = list(v, "closest_first")
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect();
        let got: Vec<String> = order.iter().map(|id| hex::encode(&id.0)).collect();
        if got != want {
            return Err("distance order differs".into());
        }
        let want_b: Vec<i64> = list(v, "buckets_from_first")
            .iter()
            .filter_map(Value::as_i64)
            .collect();
        let got_b: Vec<i64> = ids
            .iter()
            .map(|id| bucket_index(&ids[0].0, &id.0).map_or(-1, |b| b as i64))
            .collect();
        if got_b != want_b {
            return Err("bucket indexes differ".into());
        }
        Ok(())
    })();
    s.check("umbra/dht-ids", r);
    s
}

fn sample_messages() -> Vec<(&'static str, Vec<u8>)> {
    let rec = Record {
        kind: RecordKind::BLOCK,
        key: crate::crypto::hash::hash(b"block"),
        value: b"block".to_vec(),
    };
    vec![
        (
            "FIND_NODE",
            DhtMsg::FindNode {
                id: 1,
                target: fixed("t"),
            }
            .encode(),
        ),
        (
            "FIND_VALUE",
            DhtMsg::FindValue {
                id: 2,
                key: fixed("k"),
                kind: RecordKind::MANIFEST,
            }
            .encode(),
        ),
        (
            "STORE",
            DhtMsg::Store {
                id: 3,
                record: rec.clone(),
                expires: 1_700_000_000 + 30 * 86_400,
            }
            .encode(),
        ),
        (
            "NODES",
            DhtMsg::Nodes {
                id: 4,
                nodes: vec![fixed("a"), fixed("b")],
            }
            .encode(),
        ),
        (
            "VALUE",
            DhtMsg::Value {
                id: 5,
                record: rec.clone(),
            }
            .encode(),
        ),
        ("STORED", DhtMsg::Stored { id: 6, status: 0 }.encode()),
        (
            "FIND_SEQ",
            DhtMsg::FindSeq {
                id: 13,
                key: fixed("k"),
                kind: RecordKind::MANIFEST,
            }
            .encode(),
        ),
        (
            "SEQ",
            DhtMsg::Seq {
                id: 14,
                seq: 7,
                digest: fixed("d"),
            }
            .encode(),
        ),
        (
            "TOUCH",
            DhtMsg::Touch {
                id: 15,
                key: rec.key,
                kind: RecordKind::BLOCK,
                expires: 1_700_000_000 + 30 * 86_400,
            }
            .encode(),
        ),
        (
            "exit GET",
            ExitRequest::Get {
                id: 7,
                kind: RecordKind::BLOCK,
                key: rec.key,
            }
            .encode(),
        ),
        (
            "exit PUT",
            ExitRequest::Put {
                id: 8,
                record: rec.clone(),
                expires: 1_700_000_000 + 30 * 86_400,
            }
            .encode(),
        ),
        (
            "exit REFRESH",
            ExitRequest::Refresh {
                id: 16,
                kind: RecordKind::BLOCK,
                key: rec.key,
                expires: 1_700_000_000 + 30 * 86_400,
            }
            .encode(),
        ),
        (
            "exit FOUND",
            ExitReply::Found { id: 9, record: rec }.encode(),
        ),
        ("exit NOT_FOUND", ExitReply::NotFound { id: 10 }.encode()),
        (
            "exit STORED",
            ExitReply::Stored { id: 11, copies: 8 }.encode(),
        ),
        (
            "exit REFUSED",
            ExitReply::Refused { id: 12, reason: 1 }.encode(),
        ),
        (
            "exit REFUSED SUPERSEDED (a PUT the storers hold a newer version of)",
            ExitReply::Refused { id: 13, reason: 4 }.encode(),
        ),
    ]
}

/// Generate `dht-rpcs.json`.
pub fn gen_rpcs() -> Value {
    json!({
        "umbra_vectors": "dht-rpcs",
        "provenance": PROVENANCE,
        "description": "Encodings of every DHT RPC (protocol-spec/06-dht.md#rpcs) and exit request and reply \
            (#exit-requests), without framing. A decoder must accept each and re-encode it to the same bytes.",
        "cases": sample_messages().iter().map(|(n, b)| json!({"name": n, "bytes": hex::encode(b)})).collect::<Vec<_>>(),
    })
}

/// Check `dht-rpcs.json`.
pub fn check_rpcs(v: &Value) -> Summary {
    let mut s = Summary::new("Umbra DHT messages");
    for c in list(v, "cases") {
        let r = (|| {
            let bytes = hex_field(c, "bytes")?;
            let name = name_of(c);
            let request = ["exit GET", "exit PUT", "exit REFRESH"];
            let again = if request.iter().any(|r| name.starts_with(r)) {
                ExitRequest::decode(&bytes).map(|m| m.encode())
            } else if name.starts_with("exit ") {
                ExitReply::decode(&bytes).map(|m| m.encode())
            } else {
                DhtMsg::decode(&bytes).map(|m| m.encode())
            };
            expect_eq("re-encoding", &again.map_err(|e| e.to_string())?, &bytes)
        })();
        s.check(format!("umbra/dht-rpcs/{}", name_of(c)), r);
    }
    s
}
