//! Umbra's golden vectors for a node's stored pins list (`protocol-spec/07-sites.md#pinning`,
//! `interop/README.md#umbra-vectors`): the `pins` state's bytes and what they decode to, and
//! lists a node must refuse (each with its typed error).
//! Not in this module: the pinned copies (records and manifests have their own vectors).

use serde_json::{Value, json};

use super::{
    GOLDEN_PROVENANCE as PROVENANCE, Summary, fixed_input as fixed, hex_field, list, name_of,
};
use crate::app::pins::{MAX_PINS, Pin, PinError, decode_list, encode_list};
use crate::crypto::keys::IdentityKey;
use crate::site::address::SiteAddress;
use crate::time::WallTime;
use crate::wire::hex;

fn error_name(e: &PinError) -> &'static str {
    match e {
        PinError::Malformed(_) => "malformed",
        PinError::Version(_) => "version",
        PinError::BadKey => "bad-key",
        PinError::TooMany => "too-many",
        PinError::BadCopy(_) | PinError::Store(_) => "other",
    }
}

/// What a node makes of `bytes` as a pins list.
fn decoded(bytes: &[u8]) -> Value {
    match decode_list(bytes) {
        Ok(pins) => json!({ "pins": pins.iter().map(Pin::to_json).collect::<Vec<_>>() }),
        Err(e) => json!({ "error": error_name(&e) }),
    }
}

/// Generate `pins-list.json`.
pub fn gen_pins() -> Value {
    let site = |label: &str| SiteAddress(IdentityKey::from_secret_bytes(fixed(label)).public());
    let fresh = Pin::new(site("pinned site one"), WallTime(1_800_000_000));
    let checked = Pin {
        checked: Some(WallTime(1_800_003_600)),
        seq: Some(0),
        blocks: 11,
        bytes: 300_015,
        copies: 8,
        ..Pin::new(site("pinned site two"), WallTime(1_800_000_100))
    };
    let failed = Pin {
        seq: Some(1_800_000_050),
        error: Some("block 5f3a19c2 unavailable".into()),
        ..checked.clone()
    };
    let good = encode_list(&[fresh.clone(), checked.clone(), failed]);
    let mut version = encode_list(&[]);
    version[0] = 2;
    let mut too_many = vec![1u8];
    too_many.extend_from_slice(
        &u16::try_from(MAX_PINS + 1)
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    let mut truncated = encode_list(std::slice::from_ref(&checked));
    truncated.truncate(truncated.len() - 3);
    let mut trailing = encode_list(std::slice::from_ref(&fresh));
    trailing.push(0);
    let mut bad_key = encode_list(std::slice::from_ref(&fresh));
    // y = 2 with the sign bit clear is not on the curve.
    bad_key[3..35].copy_from_slice(&{
        let mut k = [0u8; 32];
        k[0] = 2;
        k
    });
    let cases: Vec<Value> = [
        ("an empty list", encode_list(&[])),
        ("three pins: never checked, checked, last check failed", good),
        ("an unknown version is refused", version),
        ("more pins than 1,024 are refused", too_many),
        ("a truncated list is refused", truncated),
        ("trailing bytes are refused", trailing),
        ("a site key that is not a point is refused", bad_key),
    ]
    .into_iter()
    .map(|(name, bytes)| {
        json!({ "name": name, "state": hex::encode(&bytes), "expect": decoded(&bytes) })
    })
    .collect();
    json!({
        "umbra_vectors": "pins-list",
        "provenance": PROVENANCE,
        "description": "A node's pins list, the store state `pins` (protocol-spec/07-sites.md#pinning). Per case, \
            `state` is the stored bytes and `expect` what a node reads: `pins` (address, added, checked, seq, \
            blocks, bytes, copies, error; null for none) or `error`: malformed, version, too-many or bad-key, \
            after which the node keeps no pins rather than guess.",
        "cases": cases,
    })
}

/// Check `pins-list.json`.
pub fn check_pins(v: &Value) -> Summary {
    let mut s = Summary::new("Umbra pins list");
    for c in list(v, "cases") {
        let r = (|| {
            let got = decoded(&hex_field(c, "state")?);
            let want = c.get("expect").ok_or("expect")?;
            if &got != want {
                return Err(format!("got {got}, want {want}"));
            }
            // A list that decodes is written back to the same bytes.
            if let Ok(pins) = decode_list(&hex_field(c, "state")?) {
                if encode_list(&pins) != hex_field(c, "state")? {
                    return Err("re-encoding differs".into());
                }
            }
            Ok(())
        })();
        s.check(format!("umbra/pins-list/{}", name_of(c)), r);
    }
    s
}
