//! Golden vectors for which error gives which `DESTROY` reason
//! (`protocol-spec/03-cells.md#destroy`; `interop/README.md#umbra-vectors`).
//!
//! Each case is a script a reader runs against a relay with fixed keys: CREATE a circuit,
//! send raw cells or relay messages sealed for hop 1, DESTROY, let time pass, and what the
//! relay must answer (`CREATED`, `DESTROY` with a reason, a relay message, or nothing). Steps
//! are semantic, not bytes: a relay's hop handshake draws its own ephemeral, so the layer
//! keys differ from run to run; the tester seals each payload with the keys it derived.
//! The checker runs every script against Umbra's relay state machine, sans-IO, over a real
//! link. Not in this module: the live version of these checks (`umbra interop --peer`).

use std::sync::Arc;

use serde_json::{Value, json};

use super::GOLDEN_PROVENANCE as PROVENANCE;
use super::{Summary, fixed_input, list, name_of};
use crate::crypto::hop::{ClientHop, client_start};
use crate::crypto::keys::{IdentityKey, LinkKeypair};
use crate::crypto::layer::ClientLayers;
use crate::crypto::noise::Randomness;
use crate::crypto::rng::UmbraRng;
use crate::directory::{Descriptor, Directory, Roles, parse};
use crate::ids::LinkId;
use crate::link::{Established, HandshakeStep, Handshaking, LinkConfig, RelayTarget};
use crate::node::{Input, Node, NodeConfig, Output, RelayKeys};
use crate::time::{Time, WallTime};
use crate::wire::Readable;
use crate::wire::cell::{Cell, CircId, RELAY_PAYLOAD_LEN};
use crate::wire::hex;
use crate::wire::relay_msg::{RelayContext, RelayMsg};
use crate::wire::restrict::{ChanMsg, CreateBody, DestroyReason, HandshakeType};

/// A relay with the vectors' fixed keys, alone in its directory, and one reader's link.
struct Bench {
    relay: Node,
    link: LinkId,
    est: Established,
    onion: crate::crypto::keys::X25519Public,
    now: Time,
    circuits: Vec<(u32, ClientLayers)>,
    pending: Vec<(u32, ClientHop)>,
    seed: u8,
}

fn keys() -> RelayKeys {
    RelayKeys {
        identity: IdentityKey::from_secret_bytes(fixed_input("destroy relay identity")),
        link: LinkKeypair::from_secret_bytes(fixed_input("destroy relay link")),
        onion: LinkKeypair::from_secret_bytes(fixed_input("destroy relay onion")),
    }
}

impl Bench {
    fn new() -> Result<Bench, String> {
        let k = keys();
        let desc = Descriptor {
            identity: k.identity.public(),
            addr: ([203, 0, 113, 9], 4400).into(),
            link_key: k.link.public(),
            onion_key: k.onion.public(),
            bandwidth: 100,
            family: [0; 32],
            family_cert: None,
            roles: Roles::ALL,
            published: WallTime(100),
            expires: WallTime(100_000_000),
        };
        let signed = desc.sign(&k.identity).map_err(|e| e.to_string())?;
        let mut dir = Directory::new();
        dir.insert(
            parse(&signed)
                .and_then(|u| u.verify(WallTime(200)))
                .map_err(|e| e.to_string())?,
        );
        let me = k.identity.public().node_id();
        let target = RelayTarget {
            node_id: me,
            link_key: k.link.public(),
        };
        let onion = k.onion.public();
        let cfg = NodeConfig {
            wall_at_zero: WallTime(200),
            ..NodeConfig::default()
        };
        let mut rng = UmbraRng::from_u64(17);
        let mut relay = Node::new(cfg, Some(k), Arc::new(dir), rng.fork());
        relay.handle_timeout(Time::ZERO);
        let link = LinkId(1);
        relay.handle(
            Time::ZERO,
            Input::LinkOpened {
                link,
                peer: ([192, 0, 2, 1], 5000).into(),
                outbound: None,
            },
        );
        let mut d = Handshaking::dial(
            LinkConfig::default(),
            target,
            &LinkKeypair::from_secret_bytes(fixed_input("destroy reader link")),
            None,
            Randomness::Seeded(fixed_input("destroy reader ephemeral")),
            Time::ZERO,
        )
        .map_err(|e| e.to_string())?;
        let m1 = d.poll_transmit().ok_or("no message 1")?;
        relay.handle(Time::ZERO, Input::LinkBytes { link, bytes: m1 });
        let (m2, _) = drain(&mut relay, link);
        let HandshakeStep::Done(mut est) =
            d.handle_bytes(Time::ZERO, &m2).map_err(|e| e.to_string())?
        else {
            return Err("the handshake did not finish".into());
        };
        let m3 = est
            .poll_transmit(Time::ZERO)
            .map_err(|e| e.to_string())?
            .ok_or("no message 3")?;
        relay.handle(Time::ZERO, Input::LinkBytes { link, bytes: m3 });
        Ok(Bench {
            relay,
            link,
            est,
            onion,
            now: Time::ZERO,
            circuits: Vec::new(),
            pending: Vec::new(),
            seed: 0,
        })
    }

    /// Hand the relay what the reader queued and collect what it answers.
    fn exchange(&mut self) -> Result<Vec<ChanMsg>, String> {
        if let Some(bytes) = self
            .est
            .poll_transmit(self.now)
            .map_err(|e| e.to_string())?
        {
            self.relay.handle(
                self.now,
                Input::LinkBytes {
                    link: self.link,
                    bytes,
                },
            );
        }
        self.collect()
    }

    fn collect(&mut self) -> Result<Vec<ChanMsg>, String> {
        let (back, closed) = drain(&mut self.relay, self.link);
        if closed {
            return Err("the relay closed the link".into());
        }
        self.est
            .handle_bytes(self.now, &back)
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        while let Some(m) = self.est.poll_msg() {
            match m.map_err(|e| e.to_string())? {
                ChanMsg::Padding => {}
                m => out.push(m),
            }
        }
        Ok(out)
    }

    fn layers(&mut self, circ: u32) -> Result<&mut ClientLayers, String> {
        self.circuits
            .iter_mut()
            .find(|(c, _)| *c == circ)
            .map(|(_, l)| l)
            .ok_or_else(|| format!("circuit {circ:#x} was not built"))
    }

    /// Run one step; the relay's answers.
    fn step(&mut self, s: &Value) -> Result<Vec<ChanMsg>, String> {
        let circ = s.get("circ").and_then(Value::as_u64).unwrap_or(0);
        let circ = u32::try_from(circ).map_err(|_| "circ")?;
        let id = || CircId::new(circ).ok_or("circuit id 0");
        let send = |b: &mut Bench, m: &ChanMsg| b.est.send_msg(m).map_err(|e| e.to_string());
        match s.get("do").and_then(Value::as_str).unwrap_or("") {
            "create" => {
                let hop = s.get("hop").and_then(Value::as_u64).unwrap_or(1);
                let ty = s.get("handshake_type").and_then(Value::as_u64).unwrap_or(1);
                self.seed += 1;
                let mut seed = fixed_input("destroy hop ephemeral");
                seed[0] = self.seed;
                let (h, m1) = client_start(
                    &self.onion,
                    u8::try_from(hop).map_err(|_| "hop")?,
                    Randomness::Seeded(seed),
                )
                .map_err(|e| e.to_string())?;
                self.pending.push((circ, h));
                let body = CreateBody {
                    handshake_type: HandshakeType(u16::try_from(ty).map_err(|_| "type")?),
                    handshake: m1,
                };
                send(
                    self,
                    &ChanMsg::Create {
                        circ_id: id()?,
                        body,
                    },
                )?;
            }
            "cell" => {
                let cell = hex::decode(s.get("cell").and_then(Value::as_str).unwrap_or(""))
                    .map_err(|_| "cell hex")?;
                let cell = Cell::decode_exact(&cell).map_err(|e| e.to_string())?;
                self.est.send(&cell);
            }
            "relay" | "relay-tampered" => {
                let p = hex::decode(s.get("payload").and_then(Value::as_str).unwrap_or(""))
                    .map_err(|_| "payload hex")?;
                let mut payload = [0u8; RELAY_PAYLOAD_LEN];
                payload
                    .get_mut(..p.len())
                    .ok_or("payload too long")?
                    .copy_from_slice(&p);
                let n = s.get("times").and_then(Value::as_u64).unwrap_or(1);
                for _ in 0..n {
                    let mut body = self
                        .layers(circ)?
                        .seal_forward(1, &payload)
                        .map_err(|e| e.to_string())?;
                    if s.get("do").and_then(Value::as_str) == Some("relay-tampered") {
                        body[100] ^= 1;
                    }
                    send(
                        self,
                        &ChanMsg::Relay {
                            circ_id: id()?,
                            body: Box::new(body),
                        },
                    )?;
                }
            }
            "destroy" => send(
                self,
                &ChanMsg::Destroy {
                    circ_id: id()?,
                    reason: DestroyReason::FINISHED,
                },
            )?,
            "wait" => {
                // The reader keeps its link alive (`02-link.md#timers`) while time passes:
                // a PADDING cell every 60 s, which no circuit counts as activity.
                let secs = s.get("seconds").and_then(Value::as_u64).unwrap_or(0);
                let mut out = Vec::new();
                for _ in 0..secs.div_ceil(60) {
                    self.now = self.now + core::time::Duration::from_secs(60);
                    self.relay.handle_timeout(self.now);
                    self.est.send(&Cell::padding());
                    out.extend(self.exchange()?);
                }
                return Ok(out);
            }
            other => return Err(format!("unknown step `{other}`")),
        }
        self.exchange()
    }

    /// Check one expectation against the answers; a CREATED completes its circuit.
    fn expect(&mut self, e: &Value, got: &mut Vec<ChanMsg>) -> Result<(), String> {
        let circ = e.get("circ").and_then(Value::as_u64).unwrap_or(0);
        let circ = u32::try_from(circ).map_err(|_| "circ")?;
        match e.get("expect").and_then(Value::as_str).unwrap_or("") {
            "nothing" => {
                if let Some(m) = got.first() {
                    return Err(format!("expected nothing, got {m:?}"));
                }
            }
            "created" => {
                let m = take(
                    got,
                    |m| matches!(m, ChanMsg::Created { circ_id, .. } if circ_id.get() == circ),
                    &format!("CREATED {circ:#x}"),
                )?;
                let ChanMsg::Created { body, .. } = m else {
                    return Err("CREATED".into());
                };
                let k = self
                    .pending
                    .iter()
                    .position(|(c, _)| *c == circ)
                    .ok_or("CREATED for a CREATE not sent")?;
                let (_, hop) = self.pending.remove(k);
                let keys = hop.finish(&body.handshake).map_err(|e| e.to_string())?;
                let mut layers = ClientLayers::new();
                layers.push(&keys).map_err(|e| e.to_string())?;
                self.circuits.push((circ, layers));
            }
            "destroy" => {
                let reason = e.get("reason").and_then(Value::as_u64).unwrap_or(999);
                take(
                    got,
                    |m| {
                        matches!(m, ChanMsg::Destroy { circ_id, reason: r }
                        if circ_id.get() == circ && u64::from(r.0) == reason)
                    },
                    &format!("DESTROY {circ:#x} reason {reason}"),
                )?;
            }
            "relay" => {
                let want = e.get("message").and_then(Value::as_str).unwrap_or("");
                let m = take(
                    got,
                    |m| matches!(m, ChanMsg::Relay { circ_id, .. } if circ_id.get() == circ),
                    &format!("RELAY on {circ:#x}"),
                )?;
                let ChanMsg::Relay { body, .. } = m else {
                    return Err("RELAY".into());
                };
                let mut body = *body;
                let (_, off) = self
                    .layers(circ)?
                    .open_backward(&mut body)
                    .map_err(|e| e.to_string())?;
                let msg = RelayMsg::decode(
                    body.get(off..off + RELAY_PAYLOAD_LEN).ok_or("payload")?,
                    RelayContext::AtReader,
                )
                .map_err(|e| e.to_string())?;
                if format!("{msg:?}") != want {
                    return Err(format!("expected {want}, got {msg:?}"));
                }
            }
            other => return Err(format!("unknown expectation `{other}`")),
        }
        Ok(())
    }
}

/// Everything the relay wrote to `link`, and whether it closed it.
fn drain(relay: &mut Node, link: LinkId) -> (Vec<u8>, bool) {
    let mut bytes = Vec::new();
    let mut closed = false;
    while let Some(o) = relay.poll_output() {
        match o {
            Output::Send { link: l, bytes: b } if l == link => bytes.extend(b),
            Output::Close { link: l } if l == link => closed = true,
            _ => {}
        }
    }
    (bytes, closed)
}

/// Remove and return the first answer `pred` accepts; `what` names it in the error.
fn take(
    got: &mut Vec<ChanMsg>,
    pred: impl Fn(&ChanMsg) -> bool,
    what: &str,
) -> Result<ChanMsg, String> {
    let i = got
        .iter()
        .position(pred)
        .ok_or_else(|| format!("no {what} in {got:?}"))?;
    Ok(got.remove(i))
}

/// Run one script against Umbra's relay.
fn run_script(steps: &[Value]) -> Result<(), String> {
    let mut b = Bench::new()?;
    let mut got: Vec<ChanMsg> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let r = if s.get("expect").is_some() {
            b.expect(s, &mut got)
        } else {
            b.step(s).map(|answers| got.extend(answers))
        };
        r.map_err(|e| format!("step {}: {e}", i + 1))?;
    }
    Ok(())
}

const A: u32 = 0x8000_0001;
const B: u32 = 0x8000_0002;

fn payload(m: &RelayMsg) -> String {
    m.encode()
        .map(|p| {
            let end = p.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
            hex::encode(&p[..end])
        })
        .unwrap_or_default()
}

fn create(circ: u32) -> Value {
    json!({"do": "create", "circ": circ, "hop": 1})
}

fn created(circ: u32) -> Value {
    json!({"expect": "created", "circ": circ})
}

fn destroyed(circ: u32, reason: DestroyReason) -> Value {
    json!({"expect": "destroy", "circ": circ, "reason": reason.0})
}

fn cases() -> Vec<(&'static str, &'static str, Vec<Value>)> {
    let p = DestroyReason::PROTOCOL;
    let begin = payload(&RelayMsg::Begin {
        stream_id: 1,
        service: b"echo".to_vec(),
    });
    let data = payload(&RelayMsg::Data {
        stream_id: 1,
        data: vec![0x5a; 16],
    });
    let unknown_cell = Cell::with_content(A, crate::wire::cell::Command(99), b"x")
        .map(|c| hex::encode(&crate::wire::Writeable::to_bytes(&c)))
        .unwrap_or_default();
    vec![
        (
            "a CREATE answered",
            "04-circuits.md#hop-handshake",
            vec![create(A), created(A)],
        ),
        (
            "an unknown command on the circuit",
            "03-cells.md#errors",
            vec![
                create(A),
                created(A),
                json!({"do": "cell", "cell": unknown_cell}),
                destroyed(A, p),
            ],
        ),
        (
            "CREATE with the listener's parity",
            "03-cells.md#circuit-ids",
            vec![create(5), destroyed(5, p)],
        ),
        (
            "CREATE with an id not above one created",
            "03-cells.md#circuit-ids",
            vec![
                create(B),
                created(B),
                create(A),
                destroyed(A, p),
                json!({"expect": "nothing"}),
            ],
        ),
        (
            "CREATE on an id destroyed",
            "03-cells.md#circuit-ids",
            vec![
                create(A),
                created(A),
                json!({"do": "destroy", "circ": A}),
                json!({"expect": "nothing"}),
                create(A),
                destroyed(A, p),
            ],
        ),
        (
            "CREATE with an unknown handshake type",
            "03-cells.md#create",
            vec![
                json!({"do": "create", "circ": A, "hop": 1, "handshake_type": 9}),
                destroyed(A, p),
            ],
        ),
        (
            "CREATE with hop index 2 from a reader",
            "04-circuits.md#hop-index",
            vec![
                json!({"do": "create", "circ": A, "hop": 2}),
                destroyed(A, p),
            ],
        ),
        (
            "RELAY for a circuit id not open",
            "03-cells.md#circuit-ids",
            vec![
                create(A),
                created(A),
                json!({"do": "relay", "circ": A, "payload": begin}),
                json!({"expect": "relay", "circ": A, "message": "Connected { stream_id: 1 }"}),
                json!({"do": "cell", "cell": Cell::with_content(B, crate::wire::cell::Command::RELAY, &[0; 8])
                    .map(|c| hex::encode(&crate::wire::Writeable::to_bytes(&c))).unwrap_or_default()}),
                destroyed(B, p),
            ],
        ),
        (
            "a tampered RELAY cell",
            "04-circuits.md#sealed-layers",
            vec![
                create(A),
                created(A),
                json!({"do": "relay-tampered", "circ": A, "payload": begin}),
                destroyed(A, p),
            ],
        ),
        (
            "a relay message of unknown command",
            "05-streams.md#relay-messages",
            vec![
                create(A),
                created(A),
                json!({"do": "relay", "circ": A, "payload": "6300010000"}),
                destroyed(A, p),
            ],
        ),
        (
            "DATA for a stream never begun",
            "05-streams.md#closing",
            vec![
                create(A),
                created(A),
                json!({"do": "relay", "circ": A, "payload": data}),
                destroyed(A, p),
            ],
        ),
        (
            "a stream SENDME above the initial window",
            "05-streams.md#flow-control",
            vec![
                create(A),
                created(A),
                json!({"do": "relay", "circ": A, "payload": begin}),
                json!({"expect": "relay", "circ": A, "message": "Connected { stream_id: 1 }"}),
                json!({"do": "relay", "circ": A, "payload": payload(&RelayMsg::Sendme { stream_id: 1 })}),
                destroyed(A, p),
            ],
        ),
        (
            "DATA past the stream's window (echo, never credited)",
            "05-streams.md#flow-control",
            vec![
                create(A),
                created(A),
                json!({"do": "relay", "circ": A, "payload": begin}),
                json!({"expect": "relay", "circ": A, "message": "Connected { stream_id: 1 }"}),
                json!({"do": "relay", "circ": A, "payload": data, "times": 4001}),
                destroyed(A, p),
            ],
        ),
        (
            "EXTEND to the relay itself",
            "04-circuits.md#extend",
            vec![
                create(A),
                created(A),
                json!({"do": "relay", "circ": A, "payload": payload(&RelayMsg::Extend {
                node_id: keys().identity.public().node_id().0, handshake_type: 1, handshake: vec![0; 48] })}),
                destroyed(A, p),
            ],
        ),
        (
            "EXTEND to a relay outside the directory",
            "04-circuits.md#extend",
            vec![
                create(A),
                created(A),
                json!({"do": "relay", "circ": A, "payload": payload(&RelayMsg::Extend {
                node_id: fixed_input("destroy unknown relay"), handshake_type: 1, handshake: vec![0; 48] })}),
                destroyed(A, DestroyReason::UNREACHABLE),
            ],
        ),
        (
            "a circuit idle past the relay's limit (900 s)",
            "09-relay.md#idle-circuits",
            vec![
                create(A),
                created(A),
                json!({"do": "wait", "seconds": 960}),
                destroyed(A, DestroyReason::FINISHED),
            ],
        ),
        (
            "DESTROY is not answered",
            "03-cells.md#circuit-ids",
            vec![
                create(A),
                created(A),
                json!({"do": "destroy", "circ": A}),
                json!({"expect": "nothing"}),
            ],
        ),
    ]
}

/// Generate `destroy-reasons.json`.
pub fn gen_destroy() -> Value {
    let k = keys();
    json!({
        "umbra_vectors": "destroy-reasons",
        "provenance": PROVENANCE,
        "description": "Which error gives which DESTROY reason (protocol-spec/03-cells.md#destroy): scripts a \
            reader runs on one link to a relay with these keys, alone in its directory. Steps: `create` \
            (CREATE of `circ` with a fresh hop message 1 for hop index `hop`, handshake_type 1 unless \
            given), `cell` (a raw 565-byte cell), `relay` (a payload, zero-padded to 512 bytes, sealed \
            for hop 1 of `circ`, `times` times), `relay-tampered` (the same with one bit of the sealed body \
            flipped), `destroy` (DESTROY FINISHED), `wait` (seconds pass). Expectations, over what the \
            relay answered since: `created` (its keys then seal the circuit's payloads), `destroy` with \
            `reason` (other answers before it may be skipped), `relay` (the message it carries, as \
            Umbra's debug form), `nothing`. A relay's own hop ephemeral varies, so payloads are sealed \
            by the tester. Echo's 4001 DATA cells: it sends back 2000 (its window to the reader, never \
            credited), returns credit for them, and the 4001st is past its receive window.",
        "relay_identity_secret": hex::encode(&k.identity.secret_bytes()),
        "relay_link_secret": hex::encode(k.link.secret_bytes()),
        "relay_onion_secret": hex::encode(k.onion.secret_bytes()),
        "cases": cases().into_iter().map(|(name, spec, steps)| json!({"name": name, "spec": spec, "steps": steps})).collect::<Vec<_>>(),
    })
}

/// Check `destroy-reasons.json` by running every script against Umbra's relay.
pub fn check_destroy(v: &Value) -> Summary {
    let mut s = Summary::new("Umbra DESTROY reasons");
    for c in list(v, "cases") {
        s.check(
            format!("umbra/destroy-reasons/{}", name_of(c)),
            run_script(list(c, "steps")),
        );
    }
    s
}
