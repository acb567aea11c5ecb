//! Umbra's golden vectors for the stored records of what a node saw
//! (`protocol-spec/07-sites.md#memory`, `interop/README.md#umbra-vectors`): version and proof
//! records a node reads back when it starts (restored, or refused when forged or
//! mismatched), and what the restored node then makes of more manifests.
//! Not in this module: the manifests' own vectors (`super::golden_content`).

use serde_json::{Value, json};

use super::golden_content::{observe, sign};
use super::{
    GOLDEN_PROVENANCE as PROVENANCE, Summary, fixed_input as fixed, hex_field, int_field, list,
    name_of,
};
use crate::crypto::hash;
use crate::crypto::keys::IdentityKey;
use crate::site::SiteTracker;
use crate::site::address::SiteAddress;
use crate::time::WallTime;
use crate::wire::hex;
use crate::wire::seen::{EquivocationProof, SeenVersion};

fn restore_version(t: &mut SiteTracker, site: &SiteAddress, record: &[u8]) -> &'static str {
    match SeenVersion::decode(record) {
        Ok(v) => match t.restore(site, v) {
            Ok(()) => "restored",
            Err(_) => "refused",
        },
        Err(_) => "malformed",
    }
}

fn restore_proof(t: &mut SiteTracker, record: &[u8]) -> &'static str {
    match EquivocationProof::decode(record) {
        Ok(p) => match t.restore_proof(&p) {
            Ok(()) => "restored",
            Err(_) => "refused",
        },
        Err(_) => "malformed",
    }
}

/// One case: records restored in order, then manifests observed.
struct Case<'a> {
    name: &'a str,
    versions: Vec<Vec<u8>>,
    proofs: Vec<Vec<u8>>,
    steps: Vec<Vec<u8>>,
}

/// Generate `seen-memory.json`.
pub fn gen_memory() -> Value {
    let key = IdentityKey::from_secret_bytes(fixed("manifest site key"));
    let other = IdentityKey::from_secret_bytes(fixed("another site key"));
    let site = SiteAddress(key.public());
    let now = 1_800_000_100u64;
    let v1 = sign(&key, "v1", 1);
    let v2 = sign(&key, "v2", 2);
    let v2b = sign(&key, "v2-other", 2);
    let v3 = sign(&key, "v3", 3);
    let version = |m: &[u8], seq: u64, held: bool| {
        SeenVersion {
            seq,
            digest: hash::hash(m),
            manifest: if held { m.to_vec() } else { Vec::new() },
        }
        .encode()
    };
    let proof = |a: &[u8], b: &[u8]| {
        EquivocationProof {
            first: a.to_vec(),
            second: b.to_vec(),
        }
        .encode()
    };
    let mut truncated = version(&v2, 2, true);
    truncated.truncate(40);
    let cases = [
        Case {
            name: "a restored version refuses rollback",
            versions: vec![version(&v2, 2, true)],
            proofs: vec![],
            steps: vec![v1.clone(), v2.clone(), v2b.clone(), v3.clone()],
        },
        Case {
            name: "a version held without its manifest",
            versions: vec![version(&v2, 2, false)],
            proofs: vec![],
            steps: vec![v1.clone(), v2b.clone(), v2.clone(), v2b.clone()],
        },
        Case {
            name: "a proof restored",
            versions: vec![version(&v2, 2, true)],
            proofs: vec![proof(&v2, &v2b)],
            steps: vec![v2.clone()],
        },
        Case {
            name: "forged and mismatched records are refused",
            versions: vec![
                version(&sign(&other, "v2", 2), 2, true),
                version(&v2, 9, true),
                truncated,
            ],
            proofs: vec![proof(&v2, &v2), proof(&v2, &v3)],
            steps: vec![v1.clone()],
        },
    ];
    let cases: Vec<Value> = cases
        .iter()
        .map(|c| {
            let mut t = SiteTracker::new();
            let versions: Vec<Value> = c
                .versions
                .iter()
                .map(|r| json!({"record": hex::encode(r), "expect": restore_version(&mut t, &site, r)}))
                .collect();
            let proofs: Vec<Value> = c
                .proofs
                .iter()
                .map(|r| json!({"record": hex::encode(r), "expect": restore_proof(&mut t, r)}))
                .collect();
            let steps: Vec<Value> = c
                .steps
                .iter()
                .map(|m| json!({"manifest": hex::encode(m), "expect": observe(m, &site, WallTime(now), &mut t)}))
                .collect();
            json!({
                "name": c.name,
                "address": site.to_string(),
                "now": now,
                "versions": versions,
                "proofs": proofs,
                "steps": steps,
                "equivocated": t.equivocations().len(),
            })
        })
        .collect();
    json!({
        "umbra_vectors": "seen-memory",
        "provenance": PROVENANCE,
        "description": "The records of what a node saw (protocol-spec/07-sites.md#memory). Per case, a fresh node \
            reads back `versions` (SeenVersion records filed under `address`'s key) and `proofs` (EquivocationProof \
            records) in order: restored, refused (they do not verify or match) or malformed. Then it observes \
            `steps` at Unix time `now`: newer, same, rollback (refused), equivocation (recorded; the first stays) \
            or equivocated (refused: the first is no longer held). `equivocated`: proofs held at the end. \
            Manifests are those of manifests.json.",
        "cases": cases,
    })
}

/// Check `seen-memory.json`.
pub fn check_memory(v: &Value) -> Summary {
    let mut s = Summary::new("Umbra seen memory");
    for c in list(v, "cases") {
        let r = (|| {
            let site =
                SiteAddress::parse(c.get("address").and_then(Value::as_str).ok_or("address")?)
                    .map_err(|e| e.to_string())?;
            let now = WallTime(int_field(c, "now")?);
            let mut t = SiteTracker::new();
            let want = |x: &Value| {
                x.get("expect")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            for (i, x) in list(c, "versions").iter().enumerate() {
                let got = restore_version(&mut t, &site, &hex_field(x, "record")?);
                if got != want(x) {
                    return Err(format!("version {i}: got {got}, want {}", want(x)));
                }
            }
            for (i, x) in list(c, "proofs").iter().enumerate() {
                let got = restore_proof(&mut t, &hex_field(x, "record")?);
                if got != want(x) {
                    return Err(format!("proof {i}: got {got}, want {}", want(x)));
                }
            }
            for (i, x) in list(c, "steps").iter().enumerate() {
                let got = observe(&hex_field(x, "manifest")?, &site, now, &mut t);
                if got != want(x) {
                    return Err(format!("step {i}: got {got}, want {}", want(x)));
                }
            }
            let held = t.equivocations().len() as u64;
            if Some(held) != c.get("equivocated").and_then(Value::as_u64) {
                return Err(format!("{held} proofs held at the end"));
            }
            Ok(())
        })();
        s.check(format!("umbra/seen-memory/{}", name_of(c)), r);
    }
    s
}
