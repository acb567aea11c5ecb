//! Noise vector runner: cacophony and noise-c JSON shapes (`interop/README.md#noise`).
//!
//! Each vector is replayed through [`crate::crypto::noise`], the same code path as Umbra's
//! links and hops: the resolver with injected (here scripted) ephemerals and the strict
//! X25519. Every suite a conformant Noise library offers with 25519 runs (`ChaChaPoly` and
//! `AESGCM`; `BLAKE2s`, `BLAKE2b`, `SHA256`, `SHA512`; PSK modifiers), through
//! [`NoiseHandshake::for_vectors`]: Umbra's own protocol still uses only
//! `25519_ChaChaPoly_BLAKE2s`. 448, fallback patterns and the old `NoisePSK_` naming are
//! skipped with the reason.

use serde_json::Value;

use super::{Status, Summary, case_name, expect_eq, hex_field, opt_hex_field};
use crate::crypto::noise::{
    HandshakeSpec, NoiseHandshake, NoiseTransport, Randomness, supports_in_vectors,
};

/// Which JSON shape a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `protocol_name` per vector (cacophony, snow).
    Cacophony,
    /// `name` with `pattern`, `dh`, `cipher`, `hash` beside it (noise-c).
    NoiseC,
}

/// Run every vector of a Noise vector file.
pub fn run(v: &Value, shape: Shape) -> Summary {
    let mut s = Summary::new(match shape {
        Shape::Cacophony => "Noise (cacophony)",
        Shape::NoiseC => "Noise (noise-c)",
    });
    let vectors = super::list(v, "vectors");
    for (i, c) in vectors.iter().enumerate() {
        let name_key = match shape {
            Shape::Cacophony => "protocol_name",
            Shape::NoiseC => "name",
        };
        let Some(protocol) = c.get(name_key).and_then(Value::as_str) else {
            s.push(
                case_name("noise", c, i),
                Status::Failed(format!("missing `{name_key}`")),
            );
            continue;
        };
        let label = format!("noise/{protocol}#{i}");
        if let Some(reason) = skip_reason(protocol, c) {
            s.push(label, Status::Skipped(reason.into()));
            continue;
        }
        let expect_fail = c.get("fail").and_then(Value::as_bool).unwrap_or(false);
        let r = replay(protocol, c);
        let status = match (r, expect_fail) {
            (Ok(()), false) | (Err(_), true) => Status::Passed,
            (Err(e), false) => Status::Failed(e),
            (Ok(()), true) => Status::Failed("a vector marked `fail` succeeded".into()),
        };
        s.push(label, status);
    }
    s
}

fn skip_reason(protocol: &str, c: &Value) -> Option<&'static str> {
    if protocol.starts_with("NoisePSK_") {
        return Some("the pre-revision-30 NoisePSK naming is not supported");
    }
    if protocol.contains("fallback") || c.get("fallback").and_then(Value::as_bool) == Some(true) {
        return Some("fallback patterns are not used by Umbra");
    }
    if c.get("init_psk").is_some() || c.get("resp_psk").is_some() {
        return Some("single-PSK (pre-revision-30) vectors are not supported");
    }
    supports_in_vectors(protocol).err()
}

/// The pattern part of a protocol name (`XK`, `NNpsk0+psk2`).
fn pattern_of(protocol: &str) -> &str {
    protocol.split('_').nth(1).unwrap_or("")
}

/// The base pattern without modifiers (`X1K1` of `X1K1psk2`).
fn base_of(pattern: &str) -> &str {
    let end = pattern
        .find(|c: char| c.is_ascii_lowercase())
        .unwrap_or(pattern.len());
    &pattern[..end]
}

/// PSK positions from the pattern's modifiers, in order.
fn psk_positions(pattern: &str) -> Vec<u8> {
    pattern[base_of(pattern).len()..]
        .split('+')
        .filter_map(|m| m.strip_prefix("psk"))
        .filter_map(|n| n.parse().ok())
        .collect()
}

fn psks(c: &Value, key: &str, positions: &[u8]) -> Result<Vec<(u8, [u8; 32])>, String> {
    let list = c
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if list.len() != positions.len() {
        return Err(format!(
            "`{key}` has {} keys for {} psk modifiers",
            list.len(),
            positions.len()
        ));
    }
    positions
        .iter()
        .zip(list)
        .map(|(pos, k)| {
            let bytes = k
                .as_str()
                .and_then(|h| crate::wire::hex::decode(h).ok())
                .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                .ok_or_else(|| format!("`{key}` entry is not a 32-byte hex key"))?;
            Ok((*pos, bytes))
        })
        .collect()
}

fn key32(c: &Value, key: &str) -> Result<Option<[u8; 32]>, String> {
    opt_hex_field(c, key)?
        .map(|b| <[u8; 32]>::try_from(b.as_slice()).map_err(|_| format!("`{key}` is not 32 bytes")))
        .transpose()
}

enum Party {
    Handshake(Box<NoiseHandshake>),
    Transport(NoiseTransport),
}

fn side(
    protocol: &str,
    c: &Value,
    prefix: &str,
    initiator: bool,
    positions: &[u8],
) -> Result<NoiseHandshake, String> {
    let prologue = opt_hex_field(c, &format!("{prefix}_prologue"))?.unwrap_or_default();
    let local = key32(c, &format!("{prefix}_static"))?;
    let remote = key32(c, &format!("{prefix}_remote_static"))?;
    let eph = opt_hex_field(c, &format!("{prefix}_ephemeral"))?.unwrap_or_default();
    let psks = psks(c, &format!("{prefix}_psks"), positions)?;
    NoiseHandshake::for_vectors(&HandshakeSpec {
        protocol,
        initiator,
        prologue: &prologue,
        local_static: local.as_ref(),
        remote_static: remote.as_ref(),
        psks: &psks,
        randomness: Randomness::Scripted(eph),
    })
    .map_err(|e| format!("{prefix}: {e}"))
}

fn replay(protocol: &str, c: &Value) -> Result<(), String> {
    let pattern = pattern_of(protocol);
    let positions = psk_positions(pattern);
    let one_way = matches!(base_of(pattern), "N" | "K" | "X");
    let mut init = Party::Handshake(Box::new(side(protocol, c, "init", true, &positions)?));
    let mut resp = Party::Handshake(Box::new(side(protocol, c, "resp", false, &positions)?));
    let messages = super::list(c, "messages");
    for (idx, m) in messages.iter().enumerate() {
        let payload = hex_field(m, "payload")?;
        let want = hex_field(m, "ciphertext")?;
        let init_sends = one_way || idx % 2 == 0;
        let (sender, receiver) = if init_sends {
            (&mut init, &mut resp)
        } else {
            (&mut resp, &mut init)
        };
        let (got, back) = match (sender, receiver) {
            (Party::Handshake(s), Party::Handshake(r)) => {
                let got = s
                    .write_message(&payload)
                    .map_err(|e| format!("message {idx}: write: {e}"))?;
                let back = r
                    .read_message(&want)
                    .map_err(|e| format!("message {idx}: read: {e}"))?;
                (got, back)
            }
            (Party::Transport(s), Party::Transport(r)) => {
                let mut got = Vec::new();
                s.write(&payload, &mut got)
                    .map_err(|e| format!("message {idx}: write: {e}"))?;
                let mut back = Vec::new();
                r.read(&want, &mut back)
                    .map_err(|e| format!("message {idx}: read: {e}"))?;
                (got, back)
            }
            _ => {
                return Err(format!(
                    "message {idx}: one side finished the handshake before the other"
                ));
            }
        };
        expect_eq(&format!("message {idx} ciphertext"), &got, &want)?;
        expect_eq(&format!("message {idx} payload"), &back, &payload)?;
        if let (Party::Handshake(i), Party::Handshake(r)) = (&init, &resp) {
            if i.is_finished() && r.is_finished() {
                if let Some(h) = opt_hex_field(c, "handshake_hash")? {
                    expect_eq("initiator handshake hash", &i.handshake_hash(), &h)?;
                    expect_eq("responder handshake hash", &r.handshake_hash(), &h)?;
                }
                init = to_transport(init)?;
                resp = to_transport(resp)?;
            }
        }
    }
    Ok(())
}

fn to_transport(p: Party) -> Result<Party, String> {
    match p {
        Party::Handshake(h) => h
            .into_transport()
            .map(Party::Transport)
            .map_err(|e| e.to_string()),
        t => Ok(t),
    }
}

#[cfg(test)]
mod tests {
    use super::{pattern_of, psk_positions};

    #[test]
    fn psk_modifiers_parse() {
        assert_eq!(
            pattern_of("Noise_NNpsk0+psk2_25519_ChaChaPoly_BLAKE2s"),
            "NNpsk0+psk2"
        );
        assert_eq!(psk_positions("NNpsk0+psk2"), vec![0, 2]);
        assert_eq!(psk_positions("XK"), Vec::<u8>::new());
        assert_eq!(super::base_of("X1K1psk2"), "X1K1");
        assert_eq!(psk_positions("X1K1psk2"), vec![2]);
    }
}
