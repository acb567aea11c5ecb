//! Project Wycheproof runner (`interop/README.md#wycheproof`).
//!
//! Supported algorithms: `XDH` (X25519, raw `XdhComp` groups), `CHACHA20-POLY1305`,
//! `XCHACHA20-POLY1305` and `EDDSA` (Ed25519). Per case:
//!
//! - `valid`: Umbra must produce the expected output / accept;
//! - `invalid`: Umbra must reject (a forged tag, a non-canonical signature, a malformed key);
//! - `acceptable`: counted as passed either way; what Umbra did is recorded.
//!
//! X25519 results that are all zeros are refused by Umbra's handshake policy
//! (`protocol-spec/02-link.md#handshake-policy`). Other algorithms, curves and encodings are
//! skipped with the reason.

use serde_json::Value;

use super::{CaseResult, Status, Summary, hex_field};
use crate::crypto::CryptoError;
use crate::crypto::keys::{IdentityPublic, Signature};
use crate::crypto::primitives;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Valid,
    Invalid,
    Acceptable,
}

/// Run a Wycheproof file.
pub fn run(v: &Value) -> Summary {
    let algorithm = v.get("algorithm").and_then(Value::as_str).unwrap_or("");
    let mut s = Summary::new("Wycheproof");
    let groups = super::list(v, "testGroups");
    for (g, group) in groups.iter().enumerate() {
        let tests = super::list(group, "tests");
        let skip = group_skip(algorithm, group);
        for t in tests {
            let id = t.get("tcId").and_then(Value::as_u64).unwrap_or(0);
            let name = format!("wycheproof/{algorithm}/group{g}/tc{id}");
            if let Some(reason) = &skip {
                s.push(name, Status::Skipped(reason.clone()));
                continue;
            }
            let expect = match t.get("result").and_then(Value::as_str) {
                Some("valid") => Expect::Valid,
                Some("invalid") => Expect::Invalid,
                Some("acceptable") => Expect::Acceptable,
                _ => {
                    s.push(name, Status::Failed("missing or unknown `result`".into()));
                    continue;
                }
            };
            let outcome = match algorithm {
                "XDH" => xdh(t),
                "CHACHA20-POLY1305" => aead(t, false),
                "XCHACHA20-POLY1305" => aead(t, true),
                "EDDSA" => eddsa(group, t),
                _ => Err("unreachable: algorithm filtered above".into()),
            };
            s.cases.push(judge(name, expect, outcome, t));
        }
    }
    s
}

fn group_skip(algorithm: &str, group: &Value) -> Option<String> {
    match algorithm {
        "XDH" => {
            let curve = group.get("curve").and_then(Value::as_str).unwrap_or("");
            let ty = group.get("type").and_then(Value::as_str).unwrap_or("");
            if curve != "curve25519" {
                Some(format!(
                    "curve {curve} is not implemented by Umbra (X25519 only)"
                ))
            } else if ty != "XdhComp" {
                Some(format!(
                    "key encoding of group type {ty} is not used by Umbra (raw keys only)"
                ))
            } else {
                None
            }
        }
        "CHACHA20-POLY1305" | "XCHACHA20-POLY1305" => None,
        "EDDSA" => {
            let key = group.get("publicKey").or_else(|| group.get("key"));
            let curve = key
                .and_then(|k| k.get("curve"))
                .and_then(Value::as_str)
                .unwrap_or("");
            (curve != "edwards25519")
                .then(|| format!("curve {curve} is not implemented by Umbra (Ed25519 only)"))
        }
        other => Some(format!("algorithm {other} is not implemented by Umbra")),
    }
}

/// `Ok(true)`: accepted with the expected output; `Ok(false)`: rejected;
/// `Err`: accepted with a wrong output (always a failure).
type Outcome = Result<bool, String>;

fn judge(name: String, expect: Expect, outcome: Outcome, t: &Value) -> CaseResult {
    let flags = t
        .get("flags")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let (status, acceptable) = match (expect, outcome) {
        (_, Err(e)) => (Status::Failed(e), None),
        (Expect::Valid, Ok(true)) | (Expect::Invalid, Ok(false)) => (Status::Passed, None),
        (Expect::Valid, Ok(false)) => (
            Status::Failed(format!("valid case rejected [{flags}]")),
            None,
        ),
        (Expect::Invalid, Ok(true)) => (
            Status::Failed(format!("invalid case accepted [{flags}]")),
            None,
        ),
        (Expect::Acceptable, Ok(accepted)) => (Status::Passed, Some(accepted)),
    };
    CaseResult {
        name,
        status,
        acceptable,
    }
}

fn xdh(t: &Value) -> Outcome {
    let public = hex_field(t, "public")?;
    let private = hex_field(t, "private")?;
    let shared = hex_field(t, "shared")?;
    let (Ok(public), Ok(private)) = (
        <[u8; 32]>::try_from(public.as_slice()),
        <[u8; 32]>::try_from(private.as_slice()),
    ) else {
        return Ok(false);
    };
    match primitives::x25519(&private, &public) {
        Err(_) => Ok(false),
        Ok(got) if got[..] == shared[..] => Ok(true),
        Ok(_) => Err("shared secret differs".into()),
    }
}

/// A seal or open function of one AEAD.
type AeadFn = fn(&[u8], &[u8], &[u8], &[u8]) -> Result<Vec<u8>, CryptoError>;

fn aead(t: &Value, extended: bool) -> Outcome {
    let key = hex_field(t, "key")?;
    let iv = hex_field(t, "iv")?;
    let aad = hex_field(t, "aad")?;
    let msg = hex_field(t, "msg")?;
    let mut sealed = hex_field(t, "ct")?;
    sealed.extend(hex_field(t, "tag")?);
    let (seal, open): (AeadFn, AeadFn) = if extended {
        (
            primitives::xchacha20poly1305_seal,
            primitives::xchacha20poly1305_open,
        )
    } else {
        (
            primitives::chacha20poly1305_seal,
            primitives::chacha20poly1305_open,
        )
    };
    match open(&key, &iv, &aad, &sealed) {
        Err(_) => Ok(false),
        Ok(plain) if plain != msg => Err("opened to a different plaintext".into()),
        Ok(_) => match seal(&key, &iv, &aad, &msg) {
            Ok(again) if again == sealed => Ok(true),
            Ok(_) => Err("sealing the plaintext gives another ciphertext or tag".into()),
            Err(e) => Err(format!("opened but could not seal: {e}")),
        },
    }
}

fn eddsa(group: &Value, t: &Value) -> Outcome {
    let key = group
        .get("publicKey")
        .or_else(|| group.get("key"))
        .ok_or("group has no public key")?;
    let pk = hex_field(key, "pk")?;
    let msg = hex_field(t, "msg")?;
    let sig = hex_field(t, "sig")?;
    let Ok(pk) = <[u8; 32]>::try_from(pk.as_slice()) else {
        return Ok(false);
    };
    let Ok(sig) = <[u8; 64]>::try_from(sig.as_slice()) else {
        return Ok(false);
    };
    let Ok(pk) = IdentityPublic::from_bytes(&pk) else {
        return Ok(false);
    };
    Ok(pk.verify_raw(&msg, &Signature(sig)).is_ok())
}
