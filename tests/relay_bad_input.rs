//! Bad input at a relay (`protocol-spec/09-relay.md#bad-input`): every case gets a typed
//! error, closes only the circuit (or, for broken frames, the link) it concerns, and the
//! relay keeps serving everyone else.

use std::sync::Arc;

use umbra::crypto::hop::{ClientHop, client_start};
use umbra::crypto::keys::{IdentityKey, LinkKeypair, NodeId};
use umbra::crypto::layer::{ClientLayers, LayerError};
use umbra::crypto::noise::Randomness;
use umbra::crypto::rng::UmbraRng;
use umbra::directory::{Descriptor, Directory, Roles};
use umbra::ids::LinkId;
use umbra::link::{Established, HandshakeStep, Handshaking, LinkConfig, LinkError, RelayTarget};
use umbra::node::{Input, Node, NodeConfig, NodeError, Output, RelayKeys};
use umbra::relay::RelayError;
use umbra::time::{Time, WallTime};
use umbra::wire::cell::{Cell, CircId, Command};
use umbra::wire::relay_msg::RelayMsg;
use umbra::wire::restrict::{CellError, ChanMsg, CreateBody, DestroyReason, HandshakeType};

struct Harness {
    relay: Node,
    me: NodeId,
    onion: umbra::crypto::keys::X25519Public,
    target: RelayTarget,
    next_link: u64,
}

struct Client {
    link: LinkId,
    est: Established,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_limits(umbra::relay::RelayLimits::default())
    }

    fn with_limits(limits: umbra::relay::RelayLimits) -> Harness {
        let mut rng = UmbraRng::from_u64(77);
        let keys = RelayKeys {
            identity: IdentityKey::generate(&mut rng),
            link: LinkKeypair::generate(&mut rng),
            onion: LinkKeypair::generate(&mut rng),
        };
        let desc = Descriptor {
            identity: keys.identity.public(),
            addr: "10.1.0.1:4000".parse().unwrap(),
            link_key: keys.link.public(),
            onion_key: keys.onion.public(),
            bandwidth: 100,
            family: [0; 32],
            roles: Roles::ALL,
            published: WallTime(100),
            expires: WallTime(100_000),
        };
        let mut dir = Directory::new();
        dir.insert(
            umbra::directory::parse(&desc.sign(&keys.identity).unwrap())
                .unwrap()
                .verify(WallTime(200))
                .unwrap(),
        );
        let me = keys.identity.public().node_id();
        let target = RelayTarget {
            node_id: me,
            link_key: keys.link.public(),
        };
        let onion = keys.onion.public();
        let cfg = NodeConfig {
            relay_limits: limits,
            wall_at_zero: WallTime(200),
            ..NodeConfig::default()
        };
        let relay = Node::new(cfg, Some(keys), Arc::new(dir), rng.fork());
        Harness {
            relay,
            me,
            onion,
            target,
            next_link: 1,
        }
    }

    /// Everything the relay wrote to `link` since the last call; panics on other outputs
    /// except closes of other links.
    fn take_bytes(&mut self, link: LinkId) -> (Vec<u8>, bool) {
        let mut bytes = Vec::new();
        let mut closed = false;
        while let Some(o) = self.relay.poll_output() {
            match o {
                Output::Send { link: l, bytes: b } if l == link => bytes.extend(b),
                Output::Close { link: l } if l == link => closed = true,
                other => panic!("unexpected output {other:?}"),
            }
        }
        (bytes, closed)
    }

    fn connect(&mut self) -> Client {
        let link = LinkId(self.next_link);
        self.next_link += 1;
        let now = Time::ZERO;
        self.relay.handle(
            now,
            Input::LinkOpened {
                link,
                peer: "192.168.0.9:5000".parse().unwrap(),
                outbound: None,
            },
        );
        let mut d = Handshaking::dial(
            LinkConfig::default(),
            self.target,
            &LinkKeypair::from_secret_bytes([link.0 as u8; 32]),
            None,
            Randomness::Seeded([9; 32]),
            now,
        )
        .unwrap();
        self.relay.handle(
            now,
            Input::LinkBytes {
                link,
                bytes: d.poll_transmit().unwrap(),
            },
        );
        let (m2, _) = self.take_bytes(link);
        let HandshakeStep::Done(mut est) = d.handle_bytes(now, &m2).unwrap() else {
            panic!("handshake")
        };
        let m3 = est.poll_transmit(now).unwrap().unwrap();
        self.relay.handle(now, Input::LinkBytes { link, bytes: m3 });
        Client { link, est }
    }

    fn send(&mut self, c: &mut Client, msgs: &[ChanMsg]) -> (Vec<ChanMsg>, bool) {
        for m in msgs {
            c.est.send_msg(m).unwrap();
        }
        let bytes = c.est.poll_transmit(Time::ZERO).unwrap().unwrap();
        self.send_raw(c, &bytes)
    }

    fn send_raw(&mut self, c: &mut Client, bytes: &[u8]) -> (Vec<ChanMsg>, bool) {
        self.relay.handle(
            Time::ZERO,
            Input::LinkBytes {
                link: c.link,
                bytes: bytes.to_vec(),
            },
        );
        let (back, closed) = self.take_bytes(c.link);
        let mut out = Vec::new();
        if !back.is_empty() {
            c.est.handle_bytes(Time::ZERO, &back).unwrap();
            while let Some(m) = c.est.poll_msg() {
                out.push(m.unwrap());
            }
        }
        (out, closed)
    }

    /// CREATE a circuit; returns its layers.
    fn create(&mut self, c: &mut Client, id: u32) -> ClientLayers {
        let (hop, msg1): (ClientHop, Vec<u8>) =
            client_start(&self.onion, 1, Randomness::Seeded([id as u8; 32])).unwrap();
        let circ_id = CircId::new(id).unwrap();
        let (out, _) = self.send(
            c,
            &[ChanMsg::Create {
                circ_id,
                body: CreateBody {
                    handshake_type: HandshakeType::NOISE_NK_V1,
                    handshake: msg1,
                },
            }],
        );
        let [ChanMsg::Created { body, .. }] = &out[..] else {
            panic!("expected CREATED, got {out:?}")
        };
        let mut layers = ClientLayers::new();
        layers.push(&hop.finish(&body.handshake).unwrap()).unwrap();
        layers
    }

    fn last_error(&self) -> Option<NodeError> {
        self.relay.errors().last().cloned()
    }
}

fn relay_cell(id: u32, layers: &mut ClientLayers, msg: &RelayMsg) -> ChanMsg {
    let body = layers.seal_forward(1, &msg.encode().unwrap()).unwrap();
    ChanMsg::Relay {
        circ_id: CircId::new(id).unwrap(),
        body: Box::new(body),
    }
}

fn destroyed(out: &[ChanMsg], id: u32, reason: DestroyReason) -> bool {
    out.iter().any(|m| matches!(m, ChanMsg::Destroy { circ_id, reason: r } if circ_id.get() == id && *r == reason))
}

/// A circuit that still works: echo through the relay as a one-hop exit.
fn still_serves(h: &mut Harness, c: &mut Client, id: u32) {
    let mut layers = h.create(c, id);
    let (out, _) = h.send(
        c,
        &[relay_cell(
            id,
            &mut layers,
            &RelayMsg::Begin {
                stream_id: 1,
                service: b"echo".to_vec(),
            },
        )],
    );
    let [ChanMsg::Relay { body, .. }] = &out[..] else {
        panic!("expected CONNECTED, got {out:?}")
    };
    let mut body = **body;
    let (hop, off) = layers.open_backward(&mut body).unwrap();
    assert_eq!(hop, 1);
    let msg = RelayMsg::decode(
        &body[off..off + 512],
        umbra::wire::relay_msg::RelayContext::AtReader,
    )
    .unwrap();
    assert_eq!(msg, RelayMsg::Connected { stream_id: 1 });
}

#[test]
fn extend_to_unknown_relay_or_itself_closes_that_circuit() {
    let mut h = Harness::new();
    let mut c = h.connect();
    let mut l = h.create(&mut c, 1);
    let (out, _) = h.send(
        &mut c,
        &[relay_cell(
            1,
            &mut l,
            &RelayMsg::Extend {
                node_id: [7; 32],
                handshake_type: 1,
                handshake: vec![0; 49],
            },
        )],
    );
    assert!(destroyed(&out, 1, DestroyReason::UNREACHABLE), "{out:?}");
    assert_eq!(
        h.last_error(),
        Some(NodeError::Relay(RelayError::ExtendUnknown))
    );

    let mut l = h.create(&mut c, 2);
    let (out, _) = h.send(
        &mut c,
        &[relay_cell(
            2,
            &mut l,
            &RelayMsg::Extend {
                node_id: h.me.0,
                handshake_type: 1,
                handshake: vec![0; 49],
            },
        )],
    );
    assert!(destroyed(&out, 2, DestroyReason::PROTOCOL), "{out:?}");
    assert_eq!(
        h.last_error(),
        Some(NodeError::Relay(RelayError::ExtendToSelf))
    );
    still_serves(&mut h, &mut c, 3);
}

#[test]
fn unknown_command_closes_only_its_circuit() {
    let mut h = Harness::new();
    let mut c = h.connect();
    let _l = h.create(&mut c, 1);
    c.est
        .send(&Cell::with_content(1, Command(99), b"future").unwrap());
    let bytes = c.est.poll_transmit(Time::ZERO).unwrap().unwrap();
    let (out, closed) = h.send_raw(&mut c, &bytes);
    assert!(!closed);
    assert!(destroyed(&out, 1, DestroyReason::PROTOCOL), "{out:?}");
    assert!(matches!(
        h.last_error(),
        Some(NodeError::Cell {
            error: CellError::UnknownCommand { .. },
            ..
        })
    ));
    still_serves(&mut h, &mut c, 2);
}

#[test]
fn unknown_and_reused_circuit_ids() {
    let mut h = Harness::new();
    let mut c = h.connect();
    let mut l = h.create(&mut c, 1);
    // A RELAY cell for a circuit that does not exist.
    let (out, _) = h.send(
        &mut c,
        &[relay_cell(9, &mut l, &RelayMsg::Sendme { stream_id: 0 })],
    );
    assert!(destroyed(&out, 9, DestroyReason::PROTOCOL), "{out:?}");
    assert_eq!(
        h.last_error(),
        Some(NodeError::Relay(RelayError::UnknownCircuit))
    );
    // CREATE with the id of an open circuit: both go.
    let (_, msg1) = client_start(&h.onion, 1, Randomness::Seeded([5; 32])).unwrap();
    let (out, _) = h.send(
        &mut c,
        &[ChanMsg::Create {
            circ_id: CircId::new(1).unwrap(),
            body: CreateBody {
                handshake_type: HandshakeType::NOISE_NK_V1,
                handshake: msg1,
            },
        }],
    );
    assert!(destroyed(&out, 1, DestroyReason::PROTOCOL), "{out:?}");
    assert_eq!(
        h.last_error(),
        Some(NodeError::Relay(RelayError::ReusedCircuit))
    );
    still_serves(&mut h, &mut c, 2);
}

#[test]
fn replayed_relay_cell_fails_its_layer() {
    let mut h = Harness::new();
    let mut c = h.connect();
    let mut l = h.create(&mut c, 1);
    let cell = relay_cell(
        1,
        &mut l,
        &RelayMsg::Begin {
            stream_id: 1,
            service: b"echo".to_vec(),
        },
    );
    let (out, _) = h.send(&mut c, std::slice::from_ref(&cell));
    assert_eq!(out.len(), 1, "CONNECTED");
    let (out, _) = h.send(&mut c, &[cell]);
    assert!(destroyed(&out, 1, DestroyReason::PROTOCOL), "{out:?}");
    assert_eq!(
        h.last_error(),
        Some(NodeError::Relay(RelayError::Layer(LayerError::BadTag {
            hop: 1
        })))
    );
    still_serves(&mut h, &mut c, 2);
}

#[test]
fn wrong_hop_index_and_bad_handshake_are_refused() {
    let mut h = Harness::new();
    let mut c = h.connect();
    // A reader's link may only create hop 1.
    let (_, msg1) = client_start(&h.onion, 2, Randomness::Seeded([5; 32])).unwrap();
    let (out, _) = h.send(
        &mut c,
        &[ChanMsg::Create {
            circ_id: CircId::new(4).unwrap(),
            body: CreateBody {
                handshake_type: HandshakeType::NOISE_NK_V1,
                handshake: msg1,
            },
        }],
    );
    assert!(destroyed(&out, 4, DestroyReason::PROTOCOL));
    assert_eq!(
        h.last_error(),
        Some(NodeError::Relay(RelayError::HopIndex(2)))
    );
    let (out, _) = h.send(
        &mut c,
        &[ChanMsg::Create {
            circ_id: CircId::new(5).unwrap(),
            body: CreateBody {
                handshake_type: HandshakeType(9),
                handshake: vec![1; 49],
            },
        }],
    );
    assert!(destroyed(&out, 5, DestroyReason::PROTOCOL));
    assert_eq!(
        h.last_error(),
        Some(NodeError::Relay(RelayError::HandshakeType(9)))
    );
    let (out, _) = h.send(
        &mut c,
        &[ChanMsg::Create {
            circ_id: CircId::new(6).unwrap(),
            body: CreateBody {
                handshake_type: HandshakeType::NOISE_NK_V1,
                handshake: vec![1; 12],
            },
        }],
    );
    assert!(destroyed(&out, 6, DestroyReason::PROTOCOL));
    assert!(matches!(
        h.last_error(),
        Some(NodeError::Relay(RelayError::Handshake(_)))
    ));
    still_serves(&mut h, &mut c, 7);
}

#[test]
fn truncated_and_oversized_frames_close_only_their_link() {
    let mut h = Harness::new();
    let mut good = h.connect();
    let mut bad = h.connect();
    // A frame whose length is not a whole number of cells (a truncated cell).
    let mut frame = ((565 + 16 - 3) as u16).to_be_bytes().to_vec();
    frame.extend([0u8; 565 + 16 - 3]);
    let (_, closed) = h.send_raw(&mut bad, &frame);
    assert!(closed);
    assert!(matches!(
        h.last_error(),
        Some(NodeError::Link {
            error: LinkError::Malformed { .. },
            ..
        })
    ));
    still_serves(&mut h, &mut good, 1);

    let mut bad = h.connect();
    let (_, closed) = h.send_raw(&mut bad, &[0xff, 0xff]);
    assert!(closed);
    assert!(matches!(
        h.last_error(),
        Some(NodeError::Link {
            error: LinkError::Oversized { .. },
            ..
        })
    ));
    still_serves(&mut h, &mut good, 2);

    // The stream ends inside a frame.
    let mut bad = h.connect();
    h.relay.handle(
        Time::ZERO,
        Input::LinkBytes {
            link: bad.link,
            bytes: vec![0x02, 0x45, 1, 2, 3],
        },
    );
    h.relay
        .handle(Time::ZERO, Input::LinkClosed { link: bad.link });
    let _ = h.take_bytes(bad.link);
    assert!(matches!(
        h.last_error(),
        Some(NodeError::Link {
            error: LinkError::Truncated { .. },
            ..
        })
    ));
    let _ = &mut bad;
    still_serves(&mut h, &mut good, 3);
}

#[test]
fn circuit_limits_per_link_and_per_relay() {
    let limits = umbra::relay::RelayLimits {
        max_circuits: 3,
        max_circuits_per_link: 2,
        ..umbra::relay::RelayLimits::default()
    };
    let mut h = Harness::with_limits(limits);
    let mut a = h.connect();
    h.create(&mut a, 1);
    h.create(&mut a, 2);
    let (_, msg1) = client_start(&h.onion, 1, Randomness::Seeded([5; 32])).unwrap();
    let create = |id| ChanMsg::Create {
        circ_id: CircId::new(id).unwrap(),
        body: CreateBody {
            handshake_type: HandshakeType::NOISE_NK_V1,
            handshake: msg1.clone(),
        },
    };
    let (out, _) = h.send(&mut a, &[create(3)]);
    assert!(destroyed(&out, 3, DestroyReason::RESOURCE_LIMIT), "{out:?}");
    assert_eq!(h.last_error(), Some(NodeError::Relay(RelayError::Limit)));
    // Another link still gets one circuit (the relay's total is 3) and then hits the total.
    let mut b = h.connect();
    h.create(&mut b, 1);
    let (out, _) = h.send(&mut b, &[create(2)]);
    assert!(destroyed(&out, 2, DestroyReason::RESOURCE_LIMIT), "{out:?}");
    assert_eq!(h.relay.relay_circuits(), 3);
}
