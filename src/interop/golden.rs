//! Umbra's own golden vectors (`interop/README.md#umbra-vectors`).
//!
//! Three files, generated here once and verified forever after (regeneration is explicit:
//! `UMBRA_REGENERATE_VECTORS=1 cargo test --test vectors`, then review the diff):
//!
//! - `link-handshake`: Noise XK link handshakes with fixed static keys and ephemerals (fixed
//!   through scripted randomness, the same injection point the node uses for its RNG), the
//!   exact framed bytes of all three messages, then transport frames carrying cells;
//! - `framing`: byte streams and what a link must make of them (frames, or a typed error);
//! - `cells`: cells in each receiving context and the parse result or error class.
//!
//! Another implementation checks itself by producing the same bytes from the same inputs.

use serde_json::{Value, json};

use super::{Status, Summary, expect_eq, hex_array, hex_field, opt_hex_field};
use crate::crypto::hash;
use crate::crypto::keys::{IdentityKey, LinkKeyBinding, LinkKeypair};
use crate::crypto::noise::Randomness;
use crate::link::frame::FrameDecoder;
use crate::link::{
    Established, HandshakeStep, Handshaking, LinkConfig, LinkError, MAX_HANDSHAKE_MSG,
    MAX_TRANSPORT_FRAME, RelayTarget, check_transport_frame_len, prologue,
};
use crate::time::Time;
use crate::wire::cell::{BODY_LEN, CELL_LEN, Cell, CircId, Command};
use crate::wire::hex;
use crate::wire::restrict::{
    CellAction, CellError, ChanMsg, CreateBody, CreatedBody, DestroyReason, HandshakeType,
    LinkContext,
};
use crate::wire::{Readable, Writeable};

use super::GOLDEN_PROVENANCE as PROVENANCE;

/// Run a golden file of the given kind; `None` for an unknown kind.
pub fn run(kind: &str, v: &Value) -> Option<Summary> {
    Some(match kind {
        "link-handshake" => check_link(v),
        "framing" => check_framing(v),
        "cells" => check_cells(v),
        "hop-handshake" => super::golden_circuits::check_hop(v),
        "layers" => super::golden_circuits::check_layers(v),
        "site-address" => super::golden_content::check_addresses(v),
        "manifests" => super::golden_content::check_manifests(v),
        "dht-ids" => super::golden_content::check_ids(v),
        "dht-rpcs" => super::golden_content::check_rpcs(v),
        "seen-memory" => super::golden_memory::check_memory(v),
        "pins-list" => super::golden_pins::check_pins(v),
        "directory" => super::golden_directory::check_directory(v),
        "writers" => super::golden_writers::check_writers(v),
        "relay-messages" => super::golden_wire::check_relay_messages(v),
        "fragments" => super::golden_wire::check_fragments(v),
        "key-files" => super::golden_wire::check_key_files(v),
        "flow-control" => super::golden_wire::check_flow(v),
        "destroy-reasons" => super::golden_destroy::check_destroy(v),
        _ => return None,
    })
}

/// Generate a golden file of the given kind; `None` for an unknown kind.
pub fn generate(kind: &str) -> Option<Value> {
    Some(match kind {
        "link-handshake" => gen_link(),
        "framing" => gen_framing(),
        "cells" => gen_cells(),
        "hop-handshake" => super::golden_circuits::gen_hop(),
        "layers" => super::golden_circuits::gen_layers(),
        "site-address" => super::golden_content::gen_addresses(),
        "manifests" => super::golden_content::gen_manifests(),
        "dht-ids" => super::golden_content::gen_ids(),
        "dht-rpcs" => super::golden_content::gen_rpcs(),
        "seen-memory" => super::golden_memory::gen_memory(),
        "pins-list" => super::golden_pins::gen_pins(),
        "directory" => super::golden_directory::gen_directory(),
        "writers" => super::golden_writers::gen_writers(),
        "relay-messages" => super::golden_wire::gen_relay_messages(),
        "fragments" => super::golden_wire::gen_fragments(),
        "key-files" => super::golden_wire::gen_key_files(),
        "flow-control" => super::golden_wire::gen_flow(),
        "destroy-reasons" => super::golden_destroy::gen_destroy(),
        _ => return None,
    })
}

/// The golden kinds and their file names under `interop/vectors/umbra/`.
pub const KINDS: &[(&str, &str)] = &[
    ("link-handshake", "link-handshake.json"),
    ("framing", "framing.json"),
    ("cells", "cells.json"),
    ("hop-handshake", "hop-handshake.json"),
    ("layers", "layers.json"),
    ("site-address", "site-address.json"),
    ("manifests", "manifests.json"),
    ("dht-ids", "dht-ids.json"),
    ("dht-rpcs", "dht-rpcs.json"),
    ("seen-memory", "seen-memory.json"),
    ("pins-list", "pins-list.json"),
    ("directory", "directory.json"),
    ("writers", "writers.json"),
    ("relay-messages", "relay-messages.json"),
    ("fragments", "fragments.json"),
    ("key-files", "key-files.json"),
    ("flow-control", "flow-control.json"),
    ("destroy-reasons", "destroy-reasons.json"),
];

use super::fixed_input as fixed;

fn cases(v: &Value) -> &[Value] {
    super::list(v, "cases")
}

use super::name_of;

// ---------------------------------------------------------------- link handshake

struct LinkInputs {
    relay_identity: [u8; 32],
    relay_link: [u8; 32],
    dialler_link: [u8; 32],
    dialler_identity: Option<[u8; 32]>,
    dialler_ephemeral: Vec<u8>,
    relay_ephemeral: Vec<u8>,
}

/// One transport frame of a vector: who sent it, its cells, its framed bytes.
type TransportRecord = (&'static str, Vec<Vec<u8>>, Vec<u8>);

struct LinkRun {
    frames: Vec<(&'static str, Vec<u8>)>,
    transport: Vec<TransportRecord>,
}

fn sample_cells(from_dialler: bool) -> Vec<Cell> {
    let Some(circ_id) = CircId::new(0x8000_0001) else {
        return Vec::new();
    };
    if from_dialler {
        let create = ChanMsg::Create {
            circ_id,
            body: CreateBody {
                handshake_type: HandshakeType::NOISE_NK_V1,
                handshake: (0..48).collect(),
            },
        };
        let mut relay_body = [0u8; BODY_LEN];
        for (i, b) in relay_body.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let relay = ChanMsg::Relay {
            circ_id,
            body: Box::new(relay_body),
        };
        [create, relay]
            .iter()
            .filter_map(|m| m.encode().ok())
            .collect()
    } else {
        let created = ChanMsg::Created {
            circ_id,
            body: CreatedBody {
                handshake: (100..148).collect(),
            },
        };
        let destroy = ChanMsg::Destroy {
            circ_id,
            reason: DestroyReason::FINISHED,
        };
        [created, destroy]
            .iter()
            .filter_map(|m| m.encode().ok())
            .collect()
    }
}

fn run_link(inp: &LinkInputs) -> Result<LinkRun, String> {
    let e = |what: &'static str| move |err: LinkError| format!("{what}: {err}");
    let now = Time::ZERO;
    // Each side rekeys on its second transport frame (`02-link.md#rekey`), so the vectors
    // show a frame ending in REKEY and one under the new key, both ways.
    let cfg = LinkConfig {
        rekey_after_frames: 2,
        ..LinkConfig::default()
    };
    let relay_id = IdentityKey::from_secret_bytes(inp.relay_identity);
    let relay_link = LinkKeypair::from_secret_bytes(inp.relay_link);
    let dialler_link = LinkKeypair::from_secret_bytes(inp.dialler_link);
    let dialler_binding = inp
        .dialler_identity
        .map(|s| LinkKeyBinding::sign(&IdentityKey::from_secret_bytes(s), &dialler_link.public()));
    let target = RelayTarget {
        node_id: relay_id.public().node_id(),
        link_key: relay_link.public(),
    };
    let mut d = Handshaking::dial(
        cfg,
        target,
        &dialler_link,
        dialler_binding,
        Randomness::Scripted(inp.dialler_ephemeral.clone()),
        now,
    )
    .map_err(e("dial"))?;
    let l = Handshaking::accept(
        cfg,
        &relay_link,
        LinkKeyBinding::sign(&relay_id, &relay_link.public()),
        Randomness::Scripted(inp.relay_ephemeral.clone()),
        now,
    )
    .map_err(e("accept"))?;
    let m1 = d.poll_transmit().ok_or("no message 1")?;
    let HandshakeStep::Continue(mut l) = l.handle_bytes(now, &m1).map_err(e("message 1"))? else {
        return Err("listener finished after message 1".into());
    };
    let m2 = l.poll_transmit().ok_or("no message 2")?;
    let HandshakeStep::Done(mut de) = d.handle_bytes(now, &m2).map_err(e("message 2"))? else {
        return Err("dialler not finished after message 2".into());
    };
    let m3 = de
        .poll_transmit(now)
        .map_err(e("message 3"))?
        .ok_or("no message 3")?;
    let HandshakeStep::Done(mut le) = l.handle_bytes(now, &m3).map_err(e("message 3"))? else {
        return Err("listener not finished after message 3".into());
    };
    let mut transport = Vec::new();
    // Frame 1 each way, frame 2 (ending in the link's REKEY), frame 3 (the new key).
    for _ in 0..3 {
        let cells = sample_cells(true);
        let bytes = exchange(&mut de, &mut le, &cells)?;
        transport.push((
            "dialler",
            cells.iter().map(Writeable::to_bytes).collect(),
            bytes,
        ));
        let cells = sample_cells(false);
        let bytes = exchange(&mut le, &mut de, &cells)?;
        transport.push((
            "relay",
            cells.iter().map(Writeable::to_bytes).collect(),
            bytes,
        ));
    }
    Ok(LinkRun {
        frames: vec![("dialler", m1), ("relay", m2), ("dialler", m3)],
        transport,
    })
}

fn exchange(a: &mut Established, b: &mut Established, cells: &[Cell]) -> Result<Vec<u8>, String> {
    for c in cells {
        a.send(c);
    }
    let bytes = a
        .poll_transmit(Time::ZERO)
        .map_err(|e| e.to_string())?
        .ok_or("nothing sent")?;
    b.handle_bytes(Time::ZERO, &bytes)
        .map_err(|e| format!("receiver: {e}"))?;
    for c in cells {
        let got = b
            .poll_msg()
            .ok_or("a cell was lost")?
            .map_err(|e| format!("receiver: {e}"))?;
        let back = got.encode().map_err(|e| e.to_string())?;
        expect_eq("received cell", &back.to_bytes(), &c.to_bytes())?;
    }
    Ok(bytes)
}

fn link_inputs(name: &str, relay_dialler: bool) -> LinkInputs {
    LinkInputs {
        relay_identity: fixed(&format!("{name}/relay identity")),
        relay_link: fixed(&format!("{name}/relay link static")),
        dialler_link: fixed(&format!("{name}/dialler link static")),
        dialler_identity: relay_dialler.then(|| fixed(&format!("{name}/dialler identity"))),
        dialler_ephemeral: fixed(&format!("{name}/dialler ephemeral")).to_vec(),
        relay_ephemeral: fixed(&format!("{name}/relay ephemeral")).to_vec(),
    }
}

fn gen_link() -> Value {
    let mut out = Vec::new();
    for (name, relay_dialler) in [("reader-dials-relay", false), ("relay-dials-relay", true)] {
        let inp = link_inputs(name, relay_dialler);
        let Ok(run) = run_link(&inp) else { continue };
        out.push(json!({
            "name": name,
            "prologue": hex::encode(&prologue()),
            "relay_identity_secret": hex::encode(&inp.relay_identity),
            "relay_node_id": hex::encode(IdentityKey::from_secret_bytes(inp.relay_identity).public().node_id().as_bytes()),
            "relay_link_secret": hex::encode(&inp.relay_link),
            "relay_link_public": hex::encode(&LinkKeypair::from_secret_bytes(inp.relay_link).public().0),
            "dialler_link_secret": hex::encode(&inp.dialler_link),
            "dialler_identity_secret": inp.dialler_identity.map(|s| hex::encode(&s)),
            "dialler_ephemeral": hex::encode(&inp.dialler_ephemeral),
            "relay_ephemeral": hex::encode(&inp.relay_ephemeral),
            "handshake_frames": run.frames.iter().map(|(from, b)| json!({"from": from, "bytes": hex::encode(b)})).collect::<Vec<_>>(),
            "transport": run.transport.iter().map(|(from, cells, b)| json!({
                "from": from,
                "cells": cells.iter().map(|c| hex::encode(c)).collect::<Vec<_>>(),
                "bytes": hex::encode(b),
            })).collect::<Vec<_>>(),
        }));
    }
    json!({
        "umbra_vectors": "link-handshake",
        "provenance": PROVENANCE,
        "description": "Noise_XK_25519_ChaChaPoly_BLAKE2s link handshakes (protocol-spec/02-link.md). \
            Ephemeral private keys are the first 32 random bytes each side draws. Frames are \
            u16 big-endian length || Noise message. Message 2's payload is the relay's identity \
            public key || Ed25519 signature binding its link key; message 3's payload is a role \
            byte (0 reader, 1 relay + binding). Transport frames carry whole 565-byte cells, \
            three each way, alternating: each side's second frame carries the cells listed and then \
            a REKEY cell (circuit id 0) that its link added, after which the sender switches its \
            sending key (Noise REKEY) and the receiver its receiving key (#rekey); the third frame \
            is under the new key.",
        "cases": out,
    })
}

fn check_link(v: &Value) -> Summary {
    let mut s = Summary::new("Umbra link handshake");
    for c in cases(v) {
        let name = format!("umbra/link-handshake/{}", name_of(c));
        let r = (|| {
            let inp = LinkInputs {
                relay_identity: hex_array(c, "relay_identity_secret")?,
                relay_link: hex_array(c, "relay_link_secret")?,
                dialler_link: hex_array(c, "dialler_link_secret")?,
                dialler_identity: opt_hex_field(c, "dialler_identity_secret")?
                    .map(|b| {
                        <[u8; 32]>::try_from(b.as_slice())
                            .map_err(|_| "dialler_identity_secret".to_string())
                    })
                    .transpose()?,
                dialler_ephemeral: hex_field(c, "dialler_ephemeral")?,
                relay_ephemeral: hex_field(c, "relay_ephemeral")?,
            };
            expect_eq("prologue", &prologue(), &hex_field(c, "prologue")?)?;
            let run = run_link(&inp)?;
            let frames = c
                .get("handshake_frames")
                .and_then(Value::as_array)
                .ok_or("handshake_frames")?;
            if frames.len() != run.frames.len() {
                return Err("wrong number of handshake frames".into());
            }
            for (i, (f, (_, got))) in frames.iter().zip(&run.frames).enumerate() {
                expect_eq(
                    &format!("handshake frame {}", i + 1),
                    got,
                    &hex_field(f, "bytes")?,
                )?;
            }
            let transport = c
                .get("transport")
                .and_then(Value::as_array)
                .ok_or("transport")?;
            if transport.len() != run.transport.len() {
                return Err("wrong number of transport frames".into());
            }
            for (t, (_, cells, bytes)) in transport.iter().zip(&run.transport) {
                let want_cells = t.get("cells").and_then(Value::as_array).ok_or("cells")?;
                for (w, g) in want_cells.iter().zip(cells) {
                    let w = hex::decode(w.as_str().ok_or("cell")?)
                        .map_err(|_| "cell hex".to_string())?;
                    expect_eq("cell", g, &w)?;
                }
                expect_eq("transport frame", bytes, &hex_field(t, "bytes")?)?;
            }
            Ok(())
        })();
        s.check(name, r);
    }
    s
}

// ---------------------------------------------------------------- framing

fn error_name(e: &LinkError) -> &'static str {
    match e {
        LinkError::Truncated { .. } => "truncated",
        LinkError::Oversized { .. } => "oversized",
        LinkError::Malformed { .. } => "malformed",
        LinkError::Decrypt => "decrypt",
        _ => "other",
    }
}

/// What a link makes of a byte stream in a given state: the frame lengths, or the error.
fn frame_stream(state: &str, stream: &[u8]) -> Result<Vec<usize>, &'static str> {
    let mut d = FrameDecoder::new();
    d.push(stream);
    let mut lens = Vec::new();
    let max = if state == "handshake" {
        MAX_HANDSHAKE_MSG
    } else {
        MAX_TRANSPORT_FRAME
    };
    loop {
        match d.next_frame(usize::from(state == "handshake"), max) {
            Ok(Some(f)) => {
                if state == "transport" {
                    check_transport_frame_len(f.len()).map_err(|e| error_name(&e))?;
                }
                lens.push(f.len());
            }
            Ok(None) => break,
            Err(e) => return Err(error_name(&e)),
        }
    }
    d.finish().map_err(|e| error_name(&e))?;
    Ok(lens)
}

fn framed(len: usize) -> Vec<u8> {
    let mut v = u16::try_from(len)
        .unwrap_or(u16::MAX)
        .to_be_bytes()
        .to_vec();
    v.extend((0..len).map(|i| (i % 256) as u8));
    v
}

fn gen_framing() -> Value {
    let one = CELL_LEN + 16;
    let mut two = framed(one);
    two.extend(framed(2 * CELL_LEN + 16));
    let streams: Vec<(&str, &str, Vec<u8>)> = vec![
        ("handshake message 1", "handshake", framed(48)),
        (
            "handshake message too large",
            "handshake",
            framed(MAX_HANDSHAKE_MSG + 1),
        ),
        ("empty handshake frame", "handshake", framed(0)),
        ("one cell", "transport", framed(one)),
        ("two frames back to back", "transport", two),
        ("largest frame", "transport", framed(MAX_TRANSPORT_FRAME)),
        (
            "one byte over the largest frame",
            "transport",
            framed(MAX_TRANSPORT_FRAME + 1)[..64].to_vec(),
        ),
        ("length prefix 0xffff", "transport", vec![0xff, 0xff]),
        ("not whole cells", "transport", framed(one + 1)),
        ("shorter than one cell", "transport", framed(16)),
        ("stream ends inside the prefix", "transport", vec![0x02]),
        (
            "stream ends inside the frame",
            "transport",
            framed(one)[..100].to_vec(),
        ),
    ];
    let cases: Vec<Value> = streams
        .into_iter()
        .map(|(name, state, stream)| {
            let expect = match frame_stream(state, &stream) {
                Ok(lens) => json!({"frame_lengths": lens}),
                Err(e) => json!({"error": e}),
            };
            json!({"name": name, "state": state, "stream": hex::encode(&stream), "expect": expect})
        })
        .collect();
    json!({
        "umbra_vectors": "framing",
        "provenance": PROVENANCE,
        "description": "Byte streams fed to one side of a link (protocol-spec/02-link.md#framing), \
            before decryption: the frame lengths found, or the error class that closes the link \
            (truncated, oversized, malformed). Transport frames are 16 + k*565 bytes, 1 <= k <= 115.",
        "cases": cases,
    })
}

fn check_framing(v: &Value) -> Summary {
    let mut s = Summary::new("Umbra framing");
    for c in cases(v) {
        let r = (|| {
            let state = c.get("state").and_then(Value::as_str).ok_or("state")?;
            let stream = hex_field(c, "stream")?;
            let expect = c.get("expect").ok_or("expect")?;
            let got = match frame_stream(state, &stream) {
                Ok(lens) => json!({"frame_lengths": lens}),
                Err(e) => json!({"error": e}),
            };
            if &got == expect {
                Ok(())
            } else {
                Err(format!("got {got}, want {expect}"))
            }
        })();
        s.check(format!("umbra/framing/{}", name_of(c)), r);
    }
    s
}

// ---------------------------------------------------------------- cells

fn context_name(c: LinkContext) -> &'static str {
    match c {
        LinkContext::ReaderFromRelay => "reader-from-relay",
        LinkContext::RelayFromReader => "relay-from-reader",
        LinkContext::RelayFromRelay => "relay-from-relay",
    }
}

fn context_from(s: &str) -> Option<LinkContext> {
    [
        LinkContext::ReaderFromRelay,
        LinkContext::RelayFromReader,
        LinkContext::RelayFromRelay,
    ]
    .into_iter()
    .find(|c| context_name(*c) == s)
}

fn describe(cell: &[u8], context: LinkContext) -> Value {
    let cell = match Cell::decode_exact(cell) {
        Ok(c) => c,
        Err(_) => return json!({"error": "length"}),
    };
    match ChanMsg::parse(&cell, context) {
        Ok(ChanMsg::Padding) => json!({"message": "PADDING"}),
        Ok(ChanMsg::Rekey) => json!({"message": "REKEY"}),
        Ok(ChanMsg::Dht { first, data }) => {
            json!({"message": "DHT", "first": first, "data": hex::encode(&data)})
        }
        Ok(ChanMsg::Dir { first, data }) => {
            json!({"message": "DIR", "first": first, "data": hex::encode(&data)})
        }
        Ok(ChanMsg::Create { circ_id, body }) => json!({
            "message": "CREATE", "circ_id": circ_id.get(),
            "handshake_type": body.handshake_type.0, "handshake": hex::encode(&body.handshake)}),
        Ok(ChanMsg::Created { circ_id, body }) => json!({
            "message": "CREATED", "circ_id": circ_id.get(), "handshake": hex::encode(&body.handshake)}),
        Ok(ChanMsg::Relay { circ_id, body }) => json!({
            "message": "RELAY", "circ_id": circ_id.get(), "body_blake3": hex::encode(&hash::hash(&body[..]))}),
        Ok(ChanMsg::Destroy { circ_id, reason }) => json!({
            "message": "DESTROY", "circ_id": circ_id.get(), "reason": reason.0}),
        Err(e) => json!({"error": match e {
            CellError::UnknownCommand { .. } => "unknown-command",
            CellError::NotAllowed { .. } => "not-allowed",
            CellError::CircIdRule { .. } => "circ-id-rule",
            CellError::Body { .. } => "bad-body",
        }, "action": match e.action() {
            CellAction::Ignore => "ignore".to_string(),
            CellAction::DestroyCircuit(c) => format!("destroy circuit {} PROTOCOL", c.get()),
        }}),
    }
}

fn gen_cells() -> Value {
    let mut list: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut push_cell = |name, c: Option<Cell>| {
        if let Some(c) = c {
            list.push((name, c.to_bytes()));
        }
    };
    push_cell("PADDING", Some(Cell::padding()));
    push_cell("REKEY", Cell::with_content(0, Command::REKEY, &[]));
    push_cell(
        "DHT first fragment",
        Cell::with_content(0, Command::DHT, &[1, 0, 8, 0, 0, 0, 4, 1, 2, 3, 4]),
    );
    push_cell("CREATE", sample_cells(true).into_iter().next());
    push_cell("RELAY", sample_cells(true).into_iter().nth(1));
    push_cell("CREATED", sample_cells(false).into_iter().next());
    push_cell("DESTROY", sample_cells(false).into_iter().nth(1));
    push_cell(
        "unknown command 200 on a circuit",
        Cell::with_content(7, Command(200), b"future"),
    );
    push_cell(
        "unknown command 201 on the link",
        Cell::with_content(0, Command(201), b"future"),
    );
    push_cell(
        "PADDING on a circuit",
        Cell::with_content(7, Command::PADDING, &[]),
    );
    push_cell(
        "DESTROY on circuit id 0",
        Cell::with_content(0, Command::DESTROY, &[4]),
    );
    push_cell(
        "CREATE handshake length beyond the body",
        Cell::with_content(9, Command::CREATE, &[0, 1, 0x03, 0x00]),
    );
    push_cell(
        "CREATED handshake length 0xffff",
        Cell::with_content(9, Command::CREATED, &[0xff, 0xff]),
    );
    let mut cases: Vec<Value> = Vec::new();
    for (name, bytes) in &list {
        for ctx in [
            LinkContext::ReaderFromRelay,
            LinkContext::RelayFromReader,
            LinkContext::RelayFromRelay,
        ] {
            cases.push(json!({
                "name": format!("{name} in {}", context_name(ctx)),
                "context": context_name(ctx),
                "cell": hex::encode(bytes),
                "expect": describe(bytes, ctx),
            }));
        }
    }
    let short = vec![0u8; CELL_LEN - 1];
    cases.push(
        json!({"name": "cell one byte short", "context": "relay-from-relay",
        "cell": hex::encode(&short), "expect": describe(&short, LinkContext::RelayFromRelay)}),
    );
    json!({
        "umbra_vectors": "cells",
        "provenance": PROVENANCE,
        "description": "565-byte cells (protocol-spec/03-cells.md) parsed in each receiving context: \
            the decoded message, or the error class (unknown-command, not-allowed, circ-id-rule, \
            bad-body, length) and, apart from it, the action the receiver takes (#errors): ignore \
            the cell, or destroy the circuit it names with reason PROTOCOL; the link stays either \
            way. RELAY bodies are opaque here and given by their BLAKE3 hash.",
        "cases": cases,
    })
}

fn check_cells(v: &Value) -> Summary {
    let mut s = Summary::new("Umbra cells");
    for c in cases(v) {
        let r = (|| {
            let ctx = c
                .get("context")
                .and_then(Value::as_str)
                .and_then(context_from)
                .ok_or("unknown context")?;
            let cell = hex_field(c, "cell")?;
            let expect = c.get("expect").ok_or("expect")?;
            let got = describe(&cell, ctx);
            if &got != expect {
                return Err(format!("got {got}, want {expect}"));
            }
            // Canonical: a message that parses re-encodes to the same bytes.
            if let Ok(Ok(msg)) = Cell::decode_exact(&cell).map(|cl| ChanMsg::parse(&cl, ctx))
                && let Ok(again) = msg.encode()
            {
                expect_eq("re-encoded cell", &again.to_bytes(), &cell)?;
            }
            Ok(())
        })();
        s.check(format!("umbra/cells/{}", name_of(c)), r);
    }
    if s.cases.is_empty() {
        s.push("umbra/cells", Status::Failed("no cases".into()));
    }
    s
}
