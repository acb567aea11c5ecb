//! Umbra's golden vectors for circuits (`interop/README.md#umbra-vectors`): the hop
//! handshake with fixed ephemerals, and sealed onion layers for 1 to 3 hops in both
//! directions (`protocol-spec/04-circuits.md`).

use serde_json::{Value, json};

use super::{Summary, expect_eq, hex_array, hex_field};
use crate::crypto::hop::{HopKeys, client_start, server};
use crate::crypto::keys::LinkKeypair;
use crate::crypto::layer::{ClientLayers, Forward, RelayLayer};
use crate::crypto::noise::Randomness;
use crate::wire::cell::RELAY_PAYLOAD_LEN;
use crate::wire::hex;

use super::GOLDEN_PROVENANCE as PROVENANCE;
use super::fixed_input as fixed;

struct HopRun {
    msg1: Vec<u8>,
    msg2: Vec<u8>,
    keys: HopKeys,
    index_seen: u8,
}

fn run_hop(
    onion: [u8; 32],
    client_eph: &[u8],
    relay_eph: &[u8],
    index: u8,
) -> Result<HopRun, String> {
    let onion = LinkKeypair::from_secret_bytes(onion);
    let (c, msg1) = client_start(
        &onion.public(),
        index,
        Randomness::Scripted(client_eph.to_vec()),
    )
    .map_err(|e| e.to_string())?;
    let (index_seen, msg2, relay_keys) =
        server(&onion, &msg1, Randomness::Scripted(relay_eph.to_vec()))
            .map_err(|e| e.to_string())?;
    let keys = c.finish(&msg2).map_err(|e| e.to_string())?;
    if keys != relay_keys {
        return Err("the two sides derived different keys".into());
    }
    Ok(HopRun {
        msg1,
        msg2,
        keys,
        index_seen,
    })
}

/// Generate `hop-handshake.json`.
pub fn gen_hop() -> Value {
    let cases: Vec<Value> = (1..=3u8)
        .filter_map(|i| {
            let onion = fixed(&format!("hop{i}/onion"));
            let ce = fixed(&format!("hop{i}/reader ephemeral"));
            let re = fixed(&format!("hop{i}/relay ephemeral"));
            let r = run_hop(onion, &ce, &re, i).ok()?;
            Some(json!({
                "name": format!("hop index {i}"),
                "prologue": hex::encode(&crate::crypto::hop::hop_prologue()),
                "hop_index": i,
                "onion_secret": hex::encode(&onion),
                "onion_public": hex::encode(&LinkKeypair::from_secret_bytes(onion).public().0),
                "reader_ephemeral": hex::encode(&ce),
                "relay_ephemeral": hex::encode(&re),
                "message1": hex::encode(&r.msg1),
                "message2": hex::encode(&r.msg2),
                "forward_key": hex::encode(&r.keys.forward),
                "backward_key": hex::encode(&r.keys.backward),
            }))
        })
        .collect();
    json!({
        "umbra_vectors": "hop-handshake",
        "provenance": PROVENANCE,
        "description": "Noise_NK_25519_ChaChaPoly_BLAKE2s hop handshakes (protocol-spec/04-circuits.md#hop-handshake), \
            prologue \"umbra\" 0x00 \"hop\" 0x00 version (field `prologue`). Message 1's payload is the hop index (one byte), \
            message 2's is empty. forward_key and backward_key are the two raw keys of Noise Split() \
            (initiator to responder, responder to initiator).",
        "cases": cases,
    })
}

/// Check `hop-handshake.json`.
pub fn check_hop(v: &Value) -> Summary {
    let mut s = Summary::new("Umbra hop handshake");
    for c in super::list(v, "cases") {
        let name = format!("umbra/hop-handshake/{}", super::name_of(c));
        let r = (|| {
            let index = u8::try_from(super::int_field(c, "hop_index")?)
                .map_err(|_| "hop_index".to_string())?;
            expect_eq(
                "prologue",
                &crate::crypto::hop::hop_prologue(),
                &hex_field(c, "prologue")?,
            )?;
            let run = run_hop(
                hex_array(c, "onion_secret")?,
                &hex_field(c, "reader_ephemeral")?,
                &hex_field(c, "relay_ephemeral")?,
                index,
            )?;
            if run.index_seen != index {
                return Err("relay read another hop index".into());
            }
            expect_eq("message 1", &run.msg1, &hex_field(c, "message1")?)?;
            expect_eq("message 2", &run.msg2, &hex_field(c, "message2")?)?;
            expect_eq(
                "forward key",
                &run.keys.forward,
                &hex_field(c, "forward_key")?,
            )?;
            expect_eq(
                "backward key",
                &run.keys.backward,
                &hex_field(c, "backward_key")?,
            )
        })();
        s.check(name, r);
    }
    s
}

fn payload(tag: &str) -> [u8; RELAY_PAYLOAD_LEN] {
    let mut p = [0u8; RELAY_PAYLOAD_LEN];
    crate::crypto::hash::hash_xof(tag.as_bytes(), &mut p);
    p
}

/// One cell of a layer vector: direction, the hop it is for or from, the payload, and the
/// body as it crosses each link (index 0: between the reader and hop 1).
struct CellRun {
    forward: bool,
    hop: u8,
    payload: [u8; RELAY_PAYLOAD_LEN],
    on_links: Vec<Vec<u8>>,
}

/// Replay a schedule of cells over an `n`-hop circuit with the given keys.
fn run_layers(
    keys: &[HopKeys],
    schedule: &[(bool, u8, [u8; RELAY_PAYLOAD_LEN])],
) -> Result<Vec<CellRun>, String> {
    let mut reader = ClientLayers::new();
    let mut relays = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        reader.push(k).map_err(|e| e.to_string())?;
        relays.push(
            RelayLayer::new(u8::try_from(i + 1).unwrap_or(u8::MAX), k)
                .map_err(|e| e.to_string())?,
        );
    }
    let mut out = Vec::new();
    for &(forward, hop, p) in schedule {
        let mut on_links = Vec::new();
        let h = usize::from(hop);
        if forward {
            let mut body = reader.seal_forward(hop, &p).map_err(|e| e.to_string())?;
            on_links.push(body.to_vec());
            for (i, r) in relays.iter_mut().enumerate().take(h) {
                match r.open_forward(&mut body).map_err(|e| e.to_string())? {
                    Forward::Pass if i + 1 < h => on_links.push(body.to_vec()),
                    Forward::Deliver { offset } if i + 1 == h => {
                        expect_eq(
                            "delivered payload",
                            &body[offset..offset + RELAY_PAYLOAD_LEN],
                            &p,
                        )?;
                    }
                    other => return Err(format!("hop {} answered {other:?}", i + 1)),
                }
            }
        } else {
            let mut body = relays[h - 1]
                .seal_backward_origin(&p)
                .map_err(|e| e.to_string())?;
            let mut links = vec![body.to_vec()];
            for r in relays[..h - 1].iter_mut().rev() {
                r.seal_backward_relay(&mut body)
                    .map_err(|e| e.to_string())?;
                links.push(body.to_vec());
            }
            links.reverse();
            on_links = links;
            let (from, off) = reader.open_backward(&mut body).map_err(|e| e.to_string())?;
            if from != hop {
                return Err(format!("reader attributed the cell to hop {from}"));
            }
            expect_eq("received payload", &body[off..off + RELAY_PAYLOAD_LEN], &p)?;
        }
        out.push(CellRun {
            forward,
            hop,
            payload: p,
            on_links,
        });
    }
    Ok(out)
}

fn schedule(n: u8) -> Vec<(bool, u8, [u8; RELAY_PAYLOAD_LEN])> {
    let mut s = Vec::new();
    for round in 0..2u8 {
        for hop in 1..=n {
            s.push((
                true,
                hop,
                payload(&format!("{n} hops, round {round}, forward to {hop}")),
            ));
            s.push((
                false,
                hop,
                payload(&format!("{n} hops, round {round}, backward from {hop}")),
            ));
        }
    }
    s
}

/// Generate `layers.json`.
pub fn gen_layers() -> Value {
    let mut cases = Vec::new();
    for n in 1..=3u8 {
        let keys: Vec<HopKeys> = (1..=n)
            .map(|i| HopKeys {
                forward: fixed(&format!("{n} hops/hop {i} forward")),
                backward: fixed(&format!("{n} hops/hop {i} backward")),
            })
            .collect();
        let Ok(runs) = run_layers(&keys, &schedule(n)) else {
            continue;
        };
        cases.push(json!({
            "name": format!("{n} hops"),
            "hops": keys.iter().map(|k| json!({"forward_key": hex::encode(&k.forward), "backward_key": hex::encode(&k.backward)})).collect::<Vec<_>>(),
            "cells": runs.iter().map(|r| json!({
                "direction": if r.forward { "forward" } else { "backward" },
                "hop": r.hop,
                "payload": hex::encode(&r.payload),
                "bodies": r.on_links.iter().map(|b| hex::encode(b)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }));
    }
    json!({
        "umbra_vectors": "layers",
        "provenance": PROVENANCE,
        "description": "Sealed onion layers (protocol-spec/04-circuits.md#sealed-layers). Each case is a circuit of 1-3 hops \
            with its per-hop keys; cells are processed in order (the nonce is the per-direction, per-hop cell counter). \
            A forward cell is for hop `hop`; `bodies[k]` is the 560-byte RELAY body on the link into hop k+1. A backward \
            cell comes from hop `hop`; `bodies[k]` is the body on the link out of hop k+1 towards the reader \
            (`bodies[0]` is what the reader receives).",
        "cases": cases,
    })
}

/// Check `layers.json`.
pub fn check_layers(v: &Value) -> Summary {
    let mut s = Summary::new("Umbra sealed layers");
    for c in super::list(v, "cases") {
        let name = format!("umbra/layers/{}", super::name_of(c));
        let r = (|| {
            let hops = c.get("hops").and_then(Value::as_array).ok_or("hops")?;
            let keys: Vec<HopKeys> = hops
                .iter()
                .map(|h| {
                    Ok(HopKeys {
                        forward: hex_array(h, "forward_key")?,
                        backward: hex_array(h, "backward_key")?,
                    })
                })
                .collect::<Result<_, String>>()?;
            let cells = c.get("cells").and_then(Value::as_array).ok_or("cells")?;
            let mut sched = Vec::new();
            for cell in cells {
                let forward = cell.get("direction").and_then(Value::as_str) == Some("forward");
                let hop =
                    u8::try_from(super::int_field(cell, "hop")?).map_err(|_| "hop".to_string())?;
                sched.push((
                    forward,
                    hop,
                    hex_array::<RELAY_PAYLOAD_LEN>(cell, "payload")?,
                ));
            }
            let runs = run_layers(&keys, &sched)?;
            for (cell, run) in cells.iter().zip(&runs) {
                let bodies = cell
                    .get("bodies")
                    .and_then(Value::as_array)
                    .ok_or("bodies")?;
                if bodies.len() != run.on_links.len() {
                    return Err("wrong number of bodies".into());
                }
                for (b, got) in bodies.iter().zip(&run.on_links) {
                    let want = hex::decode(b.as_str().ok_or("body")?)
                        .map_err(|_| "body hex".to_string())?;
                    expect_eq("body", got, &want)?;
                }
            }
            Ok(())
        })();
        s.check(name, r);
    }
    s
}
