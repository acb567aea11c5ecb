//! A relay `Node` driven by hand, sans-IO, with clients that speak the real link and hop
//! handshakes: shared by the bad-input and flood tests.

#![allow(dead_code)]

use std::sync::Arc;

use umbra::crypto::hop::{ClientHop, client_start};
use umbra::crypto::keys::{IdentityKey, LinkKeypair, NodeId};
use umbra::crypto::layer::ClientLayers;
use umbra::crypto::noise::Randomness;
use umbra::crypto::rng::UmbraRng;
use umbra::directory::{Descriptor, Directory, Roles};
use umbra::ids::LinkId;
use umbra::link::{Established, HandshakeStep, Handshaking, LinkConfig, RelayTarget};
use umbra::node::{Input, Node, NodeConfig, NodeError, Output, RelayKeys};
use umbra::time::{Time, WallTime};
use umbra::wire::cell::CircId;
use umbra::wire::relay_msg::RelayMsg;
use umbra::wire::restrict::{ChanMsg, CreateBody, DestroyReason, HandshakeType};

pub struct Harness {
    pub relay: Node,
    pub me: NodeId,
    pub onion: umbra::crypto::keys::X25519Public,
    pub target: RelayTarget,
    /// The harness's clock: every input is handed this time.
    pub now: Time,
    /// Outputs for other links than the one a call was about.
    stash: Vec<Output>,
    next_link: u64,
    /// Fresh randomness for every handshake (the relay refuses replayed first messages).
    next_seed: u64,
}

pub struct Client {
    pub link: LinkId,
    pub est: Established,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_limits(umbra::relay::RelayLimits::default())
    }

    pub fn with_limits(limits: umbra::relay::RelayLimits) -> Harness {
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
            family_cert: None,
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
        let mut relay = Node::new(cfg, Some(keys), Arc::new(dir), rng.fork());
        // Discovery's first round (`10-directory.md#timing`): a relay alone has nobody to
        // tell, and its next round is minutes away.
        relay.handle_timeout(Time::ZERO);
        assert!(relay.poll_output().is_none());
        Harness {
            relay,
            me,
            onion,
            target,
            now: Time::ZERO,
            stash: Vec::new(),
            next_link: 1,
            next_seed: 1,
        }
    }

    pub fn fresh(&mut self) -> Randomness {
        self.next_seed += 1;
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&self.next_seed.to_le_bytes());
        Randomness::Seeded(b)
    }

    /// Everything the relay wrote to `link` since the last call; what it wrote to other
    /// links waits for [`Harness::advance`]; any other output panics.
    pub fn take_bytes(&mut self, link: LinkId) -> (Vec<u8>, bool) {
        let mut bytes = Vec::new();
        let mut closed = false;
        while let Some(o) = self.relay.poll_output() {
            match o {
                Output::Send { link: l, bytes: b } if l == link => bytes.extend(b),
                Output::Close { link: l } if l == link => closed = true,
                o @ (Output::Send { .. } | Output::Close { .. }) => self.stash.push(o),
                other => panic!("unexpected output {other:?}"),
            }
        }
        (bytes, closed)
    }

    /// Move the clock by `d`, run the relay's timers, and hand every client what the relay
    /// wrote to it; returns the messages each client received and the links closed.
    pub fn advance(
        &mut self,
        d: std::time::Duration,
        clients: &mut [&mut Client],
    ) -> (Vec<(LinkId, ChanMsg)>, Vec<LinkId>) {
        self.now = self.now + d;
        self.relay.handle_timeout(self.now);
        let mut got = Vec::new();
        let mut closed = Vec::new();
        let mut outputs = std::mem::take(&mut self.stash);
        while let Some(o) = self.relay.poll_output() {
            outputs.push(o);
        }
        for o in outputs {
            match o {
                Output::Send { link, bytes } => {
                    if let Some(c) = clients.iter_mut().find(|c| c.link == link) {
                        c.est.handle_bytes(self.now, &bytes).unwrap();
                        while let Some(m) = c.est.poll_msg() {
                            got.push((link, m.unwrap()));
                        }
                    }
                }
                Output::Close { link } => closed.push(link),
                _ => {}
            }
        }
        (got, closed)
    }

    pub fn connect(&mut self) -> Client {
        self.connect_from("192.168.0.9:5000")
    }

    /// A reader's link from `peer` (its network is its source for table shares).
    pub fn connect_from(&mut self, peer: &str) -> Client {
        let link = LinkId(self.next_link);
        self.next_link += 1;
        let now = self.now;
        self.relay.handle(
            now,
            Input::LinkOpened {
                link,
                peer: peer.parse().unwrap(),
                outbound: None,
            },
        );
        let mut d = Handshaking::dial(
            LinkConfig::default(),
            self.target,
            &LinkKeypair::from_secret_bytes([link.0 as u8; 32]),
            None,
            self.fresh(),
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

    pub fn send(&mut self, c: &mut Client, msgs: &[ChanMsg]) -> (Vec<ChanMsg>, bool) {
        for m in msgs {
            c.est.send_msg(m).unwrap();
        }
        let bytes = c.est.poll_transmit(self.now).unwrap().unwrap();
        self.send_raw(c, &bytes)
    }

    pub fn send_raw(&mut self, c: &mut Client, bytes: &[u8]) -> (Vec<ChanMsg>, bool) {
        self.relay.handle(
            self.now,
            Input::LinkBytes {
                link: c.link,
                bytes: bytes.to_vec(),
            },
        );
        let (back, closed) = self.take_bytes(c.link);
        let mut out = Vec::new();
        if !back.is_empty() {
            c.est.handle_bytes(self.now, &back).unwrap();
            while let Some(m) = c.est.poll_msg() {
                out.push(m.unwrap());
            }
        }
        (out, closed)
    }

    /// CREATE a circuit; returns its layers.
    pub fn create(&mut self, c: &mut Client, id: u32) -> ClientLayers {
        let (hop, msg1): (ClientHop, Vec<u8>) =
            client_start(&self.onion.clone(), 1, self.fresh()).unwrap();
        let circ_id = cid(id);
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

    pub fn last_error(&self) -> Option<NodeError> {
        self.relay.errors().last().cloned()
    }
}

/// Circuit id `n` of a client: a client dials its link, so its ids have the top bit set
/// (`03-cells.md#circuit-ids`).
pub fn cid(n: u32) -> CircId {
    CircId::new(0x8000_0000 | n).unwrap()
}

pub fn relay_cell(id: u32, layers: &mut ClientLayers, msg: &RelayMsg) -> ChanMsg {
    let body = layers.seal_forward(1, &msg.encode().unwrap()).unwrap();
    ChanMsg::Relay {
        circ_id: cid(id),
        body: Box::new(body),
    }
}

pub fn destroyed(out: &[ChanMsg], id: u32, reason: DestroyReason) -> bool {
    out.iter().any(|m| matches!(m, ChanMsg::Destroy { circ_id, reason: r } if *circ_id == cid(id) && *r == reason))
}

/// A circuit that still works: echo through the relay as a one-hop exit.
pub fn still_serves(h: &mut Harness, c: &mut Client, id: u32) {
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
