//! Golden vectors for relay messages, fragmented DHT and DIR messages, key files and flow
//! control (`interop/README.md#umbra-vectors`):
//!
//! - `relay-messages`: every relay message as its 512-byte payload, decoded in the context
//!   that may receive it, and payloads each context must refuse, with the error class
//!   (`protocol-spec/05-streams.md#relay-messages`, `#relay-contexts`);
//! - `fragments`: DHT and DIR messages split into cells (`03-cells.md#dht`, `#dir`), and
//!   fragment sequences a receiver must refuse;
//! - `key-files`: key files and what they decode to, or the line that is refused
//!   (`00-overview.md#key-files`);
//! - `flow-control`: a trace of one stream's windows at both ends, SENDMEs due and the
//!   violations that destroy the circuit (`05-streams.md#flow-control`).
//!
//! Not in this module: link, cell and circuit vectors (`golden.rs`, `golden_circuits.rs`).

use std::path::Path;

use serde_json::{Value, json};

use super::GOLDEN_PROVENANCE as PROVENANCE;
use super::{Summary, expect_eq, fixed_input, hex_field, list, name_of};
use crate::crypto::keys::{IdentityKey, LinkKeypair};
use crate::crypto::keystore::{self, KeyKind, KeystoreError};
use crate::flow::{
    CIRC_INCREMENT, CIRC_WINDOW, FlowError, RecvWindow, STREAM_INCREMENT, STREAM_WINDOW, SendWindow,
};
use crate::wire::dht_msg::{DhtMsg, MAX_MESSAGE, Record, RecordKind};
use crate::wire::dir_msg::MAX_DIR_MESSAGE;
use crate::wire::hex;
use crate::wire::relay_msg::{RelayContext, RelayMsg, RelayMsgError};
use crate::wire::restrict::{ChanMsg, DhtReassembler, dht_fragments, dir_fragments};

// ---------------------------------------------------------------- relay messages

fn context_name(c: RelayContext) -> &'static str {
    match c {
        RelayContext::AtRelay => "at-relay",
        RelayContext::AtReader => "at-reader",
    }
}

fn describe_relay(payload: &[u8], context: RelayContext) -> Value {
    match RelayMsg::decode(payload, context) {
        Ok(m) => match m {
            RelayMsg::Extend {
                node_id,
                handshake_type,
                handshake,
            } => json!({"EXTEND": {"node_id": hex::encode(&node_id),
                "handshake_type": handshake_type, "handshake": hex::encode(&handshake)}}),
            RelayMsg::Extended { handshake } => {
                json!({"EXTENDED": {"handshake": hex::encode(&handshake)}})
            }
            RelayMsg::Begin { stream_id, service } => json!({"BEGIN": {"stream_id": stream_id,
                "service": String::from_utf8_lossy(&service)}}),
            RelayMsg::Connected { stream_id } => json!({"CONNECTED": {"stream_id": stream_id}}),
            RelayMsg::Data { stream_id, data } => {
                json!({"DATA": {"stream_id": stream_id, "data": hex::encode(&data)}})
            }
            RelayMsg::End { stream_id, reason } => {
                json!({"END": {"stream_id": stream_id, "reason": reason}})
            }
            RelayMsg::Sendme { stream_id } => json!({"SENDME": {"stream_id": stream_id}}),
        },
        Err(e) => json!({"error": match e {
            RelayMsgError::Unknown(_) => "unknown-command",
            RelayMsgError::NotAllowed { .. } => "not-allowed",
            RelayMsgError::Decode(_) => "malformed",
        }, "action": "destroy the circuit, reason PROTOCOL"}),
    }
}

fn relay_samples() -> Vec<(&'static str, RelayContext, Vec<u8>)> {
    let msgs: Vec<(&str, RelayContext, RelayMsg)> = vec![
        (
            "EXTEND",
            RelayContext::AtRelay,
            RelayMsg::Extend {
                node_id: fixed_input("extend target"),
                handshake_type: 1,
                handshake: fixed_input("hop message 1").repeat(2)[..48].to_vec(),
            },
        ),
        (
            "EXTENDED",
            RelayContext::AtReader,
            RelayMsg::Extended {
                handshake: fixed_input("hop message 2").to_vec(),
            },
        ),
        (
            "BEGIN echo",
            RelayContext::AtRelay,
            RelayMsg::Begin {
                stream_id: 1,
                service: b"echo".to_vec(),
            },
        ),
        (
            "CONNECTED",
            RelayContext::AtReader,
            RelayMsg::Connected { stream_id: 1 },
        ),
        (
            "DATA (507 bytes, the most)",
            RelayContext::AtRelay,
            RelayMsg::Data {
                stream_id: 3,
                data: (0..507u32).map(|i| (i % 251) as u8).collect(),
            },
        ),
        (
            "DATA to the reader",
            RelayContext::AtReader,
            RelayMsg::Data {
                stream_id: 3,
                data: b"hello".to_vec(),
            },
        ),
        (
            "END done",
            RelayContext::AtRelay,
            RelayMsg::End {
                stream_id: 3,
                reason: 0,
            },
        ),
        (
            "END no such service",
            RelayContext::AtReader,
            RelayMsg::End {
                stream_id: 4,
                reason: 1,
            },
        ),
        (
            "SENDME for the circuit",
            RelayContext::AtRelay,
            RelayMsg::Sendme { stream_id: 0 },
        ),
        (
            "SENDME for a stream",
            RelayContext::AtReader,
            RelayMsg::Sendme { stream_id: 3 },
        ),
    ];
    let mut out = Vec::new();
    for (name, ctx, m) in msgs {
        if let Ok(p) = m.encode() {
            out.push((name, ctx, p.to_vec()));
            // The same payload where it is not allowed (EXTEND and BEGIN only reach relays;
            // EXTENDED and CONNECTED only readers).
            let other = match ctx {
                RelayContext::AtRelay => RelayContext::AtReader,
                RelayContext::AtReader => RelayContext::AtRelay,
            };
            out.push((name, other, p.to_vec()));
        }
    }
    let mut unknown = vec![0u8; 512];
    unknown[..5].copy_from_slice(&[99, 0, 1, 0, 0]);
    out.push(("unknown command 99", RelayContext::AtRelay, unknown));
    if let Ok(mut long) = (RelayMsg::Data {
        stream_id: 1,
        data: vec![1; 8],
    })
    .encode()
    {
        long[3..5].copy_from_slice(&508u16.to_be_bytes());
        out.push((
            "DATA announcing 508 bytes",
            RelayContext::AtRelay,
            long.to_vec(),
        ));
    }
    if let Ok(mut padded) = (RelayMsg::Connected { stream_id: 2 }).encode() {
        padded[511] = 1;
        out.push((
            "CONNECTED with non-zero padding",
            RelayContext::AtReader,
            padded.to_vec(),
        ));
    }
    out
}

/// Generate `relay-messages.json`.
pub fn gen_relay_messages() -> Value {
    let cases: Vec<Value> = relay_samples()
        .into_iter()
        .map(|(name, ctx, p)| {
            json!({"name": format!("{name} {}", context_name(ctx)), "context": context_name(ctx),
                "payload": hex::encode(&p), "expect": describe_relay(&p, ctx)})
        })
        .collect();
    json!({
        "umbra_vectors": "relay-messages",
        "provenance": PROVENANCE,
        "description": "Relay messages (protocol-spec/05-streams.md#relay-messages) as the 512-byte \
            payload inside a hop's layer: command u8, stream_id u16, length u16, data, zero padding. \
            Each is decoded where it arrives (#relay-contexts: at-relay from the reader, at-reader \
            from a hop), giving its fields, or the error class (unknown-command, not-allowed, \
            malformed) and the action: the circuit is destroyed with reason PROTOCOL.",
        "cases": cases,
    })
}

/// Check `relay-messages.json`.
pub fn check_relay_messages(v: &Value) -> Summary {
    let mut s = Summary::new("Umbra relay messages");
    for c in list(v, "cases") {
        let r = (|| {
            let ctx = match c.get("context").and_then(Value::as_str) {
                Some("at-relay") => RelayContext::AtRelay,
                Some("at-reader") => RelayContext::AtReader,
                _ => return Err("unknown context".to_string()),
            };
            let payload = hex_field(c, "payload")?;
            let got = describe_relay(&payload, ctx);
            if Some(&got) != c.get("expect") {
                return Err(format!("got {got}"));
            }
            if let Ok(m) = RelayMsg::decode(&payload, ctx) {
                let again = m.encode().map_err(|e| e.to_string())?;
                expect_eq("re-encoded payload", &again, &payload)?;
            }
            Ok(())
        })();
        s.check(format!("umbra/relay-messages/{}", name_of(c)), r);
    }
    s
}

// ---------------------------------------------------------------- fragments

fn fragment_bodies(cells: &[ChanMsg]) -> Vec<Value> {
    cells
        .iter()
        .filter_map(|m| m.encode().ok())
        .map(|c| Value::String(hex::encode(&c.body)))
        .collect()
}

/// What a receiver makes of a fragment sequence: each message completed, or the error.
fn reassemble(frags: &[(bool, Vec<u8>)], max: usize) -> Value {
    let mut r = DhtReassembler::default();
    let mut done = Vec::new();
    for (i, (first, data)) in frags.iter().enumerate() {
        match r.push(*first, data, max) {
            Ok(Some(m)) => done.push(Value::String(hex::encode(&crate::crypto::hash::hash(&m)))),
            Ok(None) => {}
            Err(_) => {
                return json!({"messages_blake3": done, "error_at": i,
                    "action": "close the link"});
            }
        }
    }
    json!({"messages_blake3": done, "incomplete": r.is_partial()})
}

/// Fragments as a receiver gets them: `(first, data)`.
type Fragments = Vec<(bool, Vec<u8>)>;

fn fragment_sequences() -> Vec<(&'static str, &'static str, Fragments)> {
    let len = |n: u32| n.to_be_bytes().to_vec();
    let with = |mut a: Vec<u8>, b: &[u8]| {
        a.extend_from_slice(b);
        a
    };
    vec![
        (
            "two messages back to back",
            "dht",
            vec![
                (true, with(len(3), b"abc")),
                (true, with(len(4), b"de")),
                (false, b"fg".to_vec()),
            ],
        ),
        (
            "a continuation without a start",
            "dht",
            vec![(false, b"orphan".to_vec())],
        ),
        (
            "a new first fragment before the last message ended",
            "dht",
            vec![(true, with(len(10), b"abc")), (true, with(len(1), b"x"))],
        ),
        (
            "more data than announced",
            "dht",
            vec![(true, with(len(2), b"abc"))],
        ),
        (
            "a DHT length above 1,052,672",
            "dht",
            vec![(true, len(1_052_673))],
        ),
        (
            "a DIR length above 262,144",
            "dir",
            vec![(true, len(262_145))],
        ),
        (
            "a DIR length of exactly 262,144, unfinished",
            "dir",
            vec![(true, with(len(262_144), &[0; 100]))],
        ),
    ]
}

/// Generate `fragments.json`.
pub fn gen_fragments() -> Value {
    let value: Vec<u8> = (0..1500u32).map(|i| (i * 7 % 256) as u8).collect();
    let store = DhtMsg::Store {
        id: 42,
        record: Record {
            kind: RecordKind::BLOCK,
            key: crate::crypto::hash::hash(&value),
            value,
        },
        expires: 1_900_000_000,
    }
    .encode();
    let dir = vec![2u8; 600];
    let mut cases = vec![
        json!({"name": "a 1,500-byte STORE split into DHT cells", "kind": "dht",
            "message": hex::encode(&store), "cell_bodies": fragment_bodies(&dht_fragments(&store))}),
        json!({"name": "a 600-byte directory message split into DIR cells", "kind": "dir",
            "message": hex::encode(&dir), "cell_bodies": fragment_bodies(&dir_fragments(&dir))}),
    ];
    for (name, kind, frags) in fragment_sequences() {
        let max = if kind == "dir" {
            MAX_DIR_MESSAGE
        } else {
            MAX_MESSAGE
        };
        cases.push(json!({"name": name, "kind": kind,
            "fragments": frags.iter().map(|(f, d)| json!({"first": f, "data": hex::encode(d)})).collect::<Vec<_>>(),
            "expect": reassemble(&frags, max)}));
    }
    json!({
        "umbra_vectors": "fragments",
        "provenance": PROVENANCE,
        "description": "DHT and DIR messages on circuit id 0 (protocol-spec/03-cells.md#dht, #dir): a \
            message is prefixed with its u32 length and cut into fragments of at most 557 bytes, \
            each a cell body `flags u8 (bit 0: first) || len u16 || data || zero padding`; \
            `cell_bodies` are the 560-byte bodies. Then fragment sequences as a receiver gets them \
            and what it makes of them: the messages completed (by BLAKE3), or the fragment at which \
            it closes the link.",
        "cases": cases,
    })
}

/// Check `fragments.json`.
pub fn check_fragments(v: &Value) -> Summary {
    let mut s = Summary::new("Umbra DHT/DIR fragments");
    for c in list(v, "cases") {
        let r = (|| {
            let kind = c.get("kind").and_then(Value::as_str).unwrap_or("");
            if c.get("message").is_some() {
                let msg = hex_field(c, "message")?;
                let cells = if kind == "dir" {
                    dir_fragments(&msg)
                } else {
                    dht_fragments(&msg)
                };
                let got = Value::Array(fragment_bodies(&cells));
                if Some(&got) != c.get("cell_bodies") {
                    return Err("cell bodies differ".into());
                }
                return Ok(());
            }
            let frags = list(c, "fragments")
                .iter()
                .map(|f| {
                    Ok((
                        f.get("first").and_then(Value::as_bool).ok_or("first")?,
                        hex_field(f, "data")?,
                    ))
                })
                .collect::<Result<Vec<_>, String>>()?;
            let max = if kind == "dir" {
                MAX_DIR_MESSAGE
            } else {
                MAX_MESSAGE
            };
            let got = reassemble(&frags, max);
            if Some(&got) != c.get("expect") {
                return Err(format!("got {got}"));
            }
            Ok(())
        })();
        s.check(format!("umbra/fragments/{}", name_of(c)), r);
    }
    s
}

// ---------------------------------------------------------------- key files

fn describe_key(text: &str) -> Value {
    match keystore::decode(Path::new("<vector>"), text) {
        Ok((KeyKind::IdentityEd25519, secret)) => {
            let k = IdentityKey::from_secret_bytes(secret);
            json!({"kind": KeyKind::IdentityEd25519.label(),
                "public": hex::encode(&k.public().to_bytes()), "node_id": hex::encode(&k.public().node_id().0)})
        }
        Ok((KeyKind::StaticX25519, secret)) => {
            let k = LinkKeypair::from_secret_bytes(secret);
            json!({"kind": KeyKind::StaticX25519.label(), "public": hex::encode(&k.public().0)})
        }
        Err(KeystoreError::Malformed { line, .. }) => json!({"error": "malformed", "line": line}),
        Err(_) => json!({"error": "other"}),
    }
}

fn key_texts() -> Vec<(&'static str, String)> {
    let id = fixed_input("identity key file");
    let st = fixed_input("static key file");
    let good_id = keystore::encode(KeyKind::IdentityEd25519, &id);
    let good_st = keystore::encode(KeyKind::StaticX25519, &st);
    vec![
        ("an identity key", good_id.clone()),
        ("a static (link or onion) key", good_st.clone()),
        ("another version", good_id.replace("v1", "v2")),
        (
            "an unknown kind",
            good_id.replace("identity-ed25519", "rsa-4096"),
        ),
        ("a secret one digit short", {
            let t = good_st.trim_end();
            format!("{}\n", &t[..t.len() - 1])
        }),
        (
            "uppercase hex",
            format!(
                "umbra-key v1\nkind: static-x25519\nsecret: {}\n",
                hex::encode(&st).to_uppercase()
            ),
        ),
        ("a fourth line", good_id.clone() + "extra: 1\n"),
        ("blank lines after", good_id + "\n\n"),
    ]
}

/// Generate `key-files.json`.
pub fn gen_key_files() -> Value {
    json!({
        "umbra_vectors": "key-files",
        "provenance": PROVENANCE,
        "description": "Key files (protocol-spec/00-overview.md#key-files): their text and what it \
            holds (for an identity key the Ed25519 public key and NodeId; for a static key the \
            X25519 public key), or `malformed` with the first bad line (1-based). File modes and \
            ownership are checked by the node, not by these vectors.",
        "cases": key_texts().into_iter().map(|(n, t)| json!({"name": n, "text": t, "expect": describe_key(&t)})).collect::<Vec<_>>(),
    })
}

/// Check `key-files.json`.
pub fn check_key_files(v: &Value) -> Summary {
    let mut s = Summary::new("Umbra key files");
    for c in list(v, "cases") {
        let r = (|| {
            let text = c.get("text").and_then(Value::as_str).ok_or("text")?;
            let got = describe_key(text);
            if Some(&got) != c.get("expect") {
                return Err(format!("got {got}"));
            }
            Ok(())
        })();
        s.check(format!("umbra/key-files/{}", name_of(c)), r);
    }
    s
}

// ---------------------------------------------------------------- flow control

/// One end's windows for one stream on its circuit.
struct Windows {
    send_circ: SendWindow,
    send_stream: SendWindow,
    recv_circ: RecvWindow,
    recv_stream: RecvWindow,
}

impl Windows {
    fn new() -> Self {
        Windows {
            send_circ: SendWindow::new(CIRC_WINDOW, CIRC_INCREMENT),
            send_stream: SendWindow::new(STREAM_WINDOW, STREAM_INCREMENT),
            recv_circ: RecvWindow::new(CIRC_WINDOW, CIRC_INCREMENT),
            recv_stream: RecvWindow::new(STREAM_WINDOW, STREAM_INCREMENT),
        }
    }
}

fn flow_name(e: FlowError) -> &'static str {
    match e {
        FlowError::Overrun => "DATA beyond the window: destroy the circuit, PROTOCOL",
        FlowError::UnexpectedSendme => {
            "SENDME above the initial window: destroy the circuit, PROTOCOL"
        }
    }
}

/// Run `steps` (reader sends DATA to the exit, which consumes; SENDMEs go back): the state
/// after each step.
fn run_flow(steps: &[(&str, u32)]) -> Vec<Value> {
    let (mut reader, mut exit) = (Windows::new(), Windows::new());
    let (mut due_circ, mut due_stream) = (0u32, 0u32);
    let mut out = Vec::new();
    for (op, n) in steps {
        let mut error = None;
        let mut sent = 0;
        match *op {
            "reader sends DATA" => {
                for _ in 0..*n {
                    if reader.send_circ.available() == 0 || reader.send_stream.available() == 0 {
                        break;
                    }
                    reader.send_circ.take();
                    reader.send_stream.take();
                    sent += 1;
                    if let Err(e) = exit.recv_circ.receive().and(exit.recv_stream.receive()) {
                        error = Some(e);
                        break;
                    }
                }
            }
            "reader sends DATA ignoring its window" => {
                for _ in 0..*n {
                    sent += 1;
                    if let Err(e) = exit.recv_circ.receive().and(exit.recv_stream.receive()) {
                        error = Some(e);
                        break;
                    }
                }
            }
            "exit consumes" => {
                due_circ += exit.recv_circ.consume(*n);
                due_stream += exit.recv_stream.consume(*n);
            }
            "exit sends the SENDMEs due" => {
                for _ in 0..due_circ {
                    if let Err(e) = reader.send_circ.sendme() {
                        error = Some(e);
                    }
                }
                for _ in 0..due_stream {
                    if let Err(e) = reader.send_stream.sendme() {
                        error = Some(e);
                    }
                }
                due_circ = 0;
                due_stream = 0;
            }
            "exit sends a stream SENDME not due" => {
                if let Err(e) = reader.send_stream.sendme() {
                    error = Some(e);
                }
            }
            _ => {}
        }
        out.push(json!({
            "op": op, "n": n, "sent": sent,
            "reader_send_window": {"circuit": reader.send_circ.available(), "stream": reader.send_stream.available()},
            "sendmes_due_at_exit": {"circuit": due_circ, "stream": due_stream},
            "error": error.map(flow_name),
        }));
    }
    out
}

fn flow_traces() -> Vec<(&'static str, Vec<(&'static str, u32)>)> {
    vec![
        (
            "a stream's window empties, credit returns per 50 and 100 consumed",
            vec![
                ("reader sends DATA", 2100),
                ("exit consumes", 49),
                ("exit consumes", 1),
                ("exit consumes", 50),
                ("exit sends the SENDMEs due", 0),
                ("reader sends DATA", 200),
            ],
        ),
        (
            "DATA beyond the stream's receive window",
            vec![
                ("reader sends DATA", 2000),
                ("reader sends DATA ignoring its window", 1),
            ],
        ),
        (
            "a SENDME not due",
            vec![
                ("reader sends DATA", 10),
                ("exit sends a stream SENDME not due", 0),
            ],
        ),
    ]
}

/// Generate `flow-control.json`.
pub fn gen_flow() -> Value {
    json!({
        "umbra_vectors": "flow-control",
        "provenance": PROVENANCE,
        "description": "Traces of one stream's flow control (protocol-spec/05-streams.md#flow-control) \
            between the reader and the exit: initial windows 4000 (circuit) and 2000 (stream), \
            SENDMEs per 100 and 50 cells consumed. After each step: DATA cells actually sent, the \
            reader's send windows, the SENDMEs the exit owes, and the violation if one happened.",
        "cases": flow_traces().into_iter().map(|(n, steps)| json!({"name": n,
            "steps": steps.iter().map(|(op, k)| json!({"op": op, "n": k})).collect::<Vec<_>>(),
            "expect": run_flow(&steps)})).collect::<Vec<_>>(),
    })
}

/// Check `flow-control.json`.
pub fn check_flow(v: &Value) -> Summary {
    let mut s = Summary::new("Umbra flow control");
    for c in list(v, "cases") {
        let r = (|| {
            let steps = list(c, "steps")
                .iter()
                .map(|st| {
                    let op = st.get("op").and_then(Value::as_str).ok_or("op")?;
                    let n = st.get("n").and_then(Value::as_u64).ok_or("n")?;
                    Ok((op, u32::try_from(n).map_err(|_| "n")?))
                })
                .collect::<Result<Vec<_>, &str>>()?;
            let got = Value::Array(run_flow(&steps));
            if Some(&got) != c.get("expect") {
                return Err(format!("got {got}"));
            }
            Ok(())
        })();
        s.check(format!("umbra/flow-control/{}", name_of(c)), r);
    }
    s
}
