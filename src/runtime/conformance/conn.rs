//! One case's link to the relay under test, and the checks cases share: an answer within a
//! few seconds, a `DESTROY` with a given reason, silence, the link closed, the relay still
//! serving. Not in this module: the cases, the link itself ([`RawLink`]).

use std::time::Duration;

use super::{Check, Target, Verdict, fail};
use crate::crypto::hop::client_start;
use crate::crypto::layer::ClientLayers;
use crate::crypto::noise::Randomness;
use crate::runtime::driver::os_rng;
use crate::runtime::raw_link::{As, RawLink, Received};
use crate::wire::cell::{CircId, RELAY_PAYLOAD_LEN};
use crate::wire::relay_msg::{RelayContext, RelayMsg};
use crate::wire::restrict::{ChanMsg, CreateBody, DestroyReason, HandshakeType};

/// How long an answer the spec requires may take.
pub const ANSWER: Duration = Duration::from_secs(3);
/// How long silence must last to count as "nothing answered".
pub const QUIET: Duration = Duration::from_millis(400);

/// A case's link, as an anonymous reader (the dialler: its circuit ids have the top bit set).
pub struct Conn {
    /// The link.
    pub link: RawLink,
    used: u32,
}

/// `Ok` as [`Verdict::Pass`], the error text as [`Verdict::Fail`].
pub fn verdict(r: Check) -> Verdict {
    match r {
        Ok(()) => Verdict::Pass,
        Err(e) => Verdict::Fail(e.0),
    }
}

/// Open a link to `t` and run `f` on it.
pub fn with_conn(t: &Target, f: impl FnOnce(&mut Conn) -> Check) -> Verdict {
    match Conn::open(t) {
        Ok(mut c) => verdict(f(&mut c)),
        Err(e) => Verdict::Fail(format!("link: {e}")),
    }
}

/// A hop message 1 for the target's onion key, as hop `index`, with fresh randomness.
pub fn hop_msg1(t: &Target, index: u8) -> Check<(crate::crypto::hop::ClientHop, Vec<u8>)> {
    client_start(
        &t.desc.onion_key,
        index,
        Randomness::Seeded(os_rng().array()),
    )
    .map_err(|e| format!("hop handshake: {e}").into())
}

/// A CREATE of `id` carrying `handshake`.
pub fn create_msg(id: CircId, handshake_type: HandshakeType, handshake: Vec<u8>) -> ChanMsg {
    ChanMsg::Create {
        circ_id: id,
        body: CreateBody {
            handshake_type,
            handshake,
        },
    }
}

impl Conn {
    /// Open a link to `t`.
    pub fn open(t: &Target) -> Check<Conn> {
        let link = RawLink::open(None, As::Reader, &t.desc).map_err(|e| e.to_string())?;
        Ok(Conn::from_link(link))
    }

    /// A case's link over `link`, freshly opened.
    pub fn from_link(link: RawLink) -> Conn {
        Conn { link, used: 0 }
    }

    /// The next circuit id of this side (`03-cells.md#circuit-ids`).
    pub fn next_id(&mut self) -> CircId {
        self.used += 1;
        CircId::new(0x8000_0000 | self.used).unwrap_or(CircId::MIN)
    }

    /// Send messages.
    pub fn send(&mut self, msgs: &[ChanMsg]) -> Check {
        self.link.send(msgs).map_err(|e| e.to_string().into())
    }

    /// The next message within [`ANSWER`].
    pub fn recv(&mut self) -> Check<ChanMsg> {
        match self.link.recv_within(ANSWER).map_err(|e| e.to_string())? {
            Received::Msg(m) => Ok(m),
            Received::Silent => fail(format!("nothing answered within {ANSWER:?}")),
            Received::Closed => fail("the relay closed the link"),
        }
    }

    /// Nothing arrives within [`QUIET`], and the link stays open.
    pub fn expect_quiet(&mut self) -> Check {
        match self.link.recv_within(QUIET).map_err(|e| e.to_string())? {
            Received::Silent => Ok(()),
            Received::Msg(m) => fail(format!("expected no answer, got {m:?}")),
            Received::Closed => fail("the relay closed the link"),
        }
    }

    /// The relay closes the link within [`ANSWER`] (messages before the close are skipped).
    pub fn expect_closed(&mut self) -> Check {
        for _ in 0..64 {
            match self.link.recv_within(ANSWER) {
                Ok(Received::Closed) | Err(_) => return Ok(()),
                Ok(Received::Silent) => {
                    return fail(format!("the link stayed open for {ANSWER:?}"));
                }
                Ok(Received::Msg(_)) => {}
            }
        }
        fail("the link stayed open")
    }

    /// The next message is `DESTROY` of `id` with `reason`.
    pub fn expect_destroy(&mut self, id: CircId, reason: DestroyReason) -> Check {
        match self.recv()? {
            ChanMsg::Destroy { circ_id, reason: r } if circ_id == id && r == reason => Ok(()),
            m => fail(format!(
                "expected DESTROY {:#x} reason {}, got {m:?}",
                id.get(),
                reason.0
            )),
        }
    }

    /// Send DESTROY of `id` with `reason`; nothing may answer, and the link serves on.
    pub fn destroy_unanswered(&mut self, t: &Target, id: CircId, reason: DestroyReason) -> Check {
        self.send(&[ChanMsg::Destroy {
            circ_id: id,
            reason,
        }])?;
        self.expect_quiet()?;
        self.still_serves(t)
    }

    /// Build a one-hop circuit: CREATE, CREATED, the layer keys.
    pub fn create(&mut self, t: &Target) -> Check<(CircId, ClientLayers)> {
        let id = self.next_id();
        let (hop, msg1) = hop_msg1(t, 1)?;
        self.send(&[create_msg(id, HandshakeType::NOISE_NK_V1, msg1)])?;
        match self.recv()? {
            ChanMsg::Created { circ_id, body } if circ_id == id => {
                let keys = hop
                    .finish(&body.handshake)
                    .map_err(|e| format!("CREATED's hop message 2: {e}"))?;
                let mut layers = ClientLayers::new();
                layers.push(&keys).map_err(|e| format!("layer keys: {e}"))?;
                Ok((id, layers))
            }
            m => fail(format!("expected CREATED {:#x}, got {m:?}", id.get())),
        }
    }

    /// Seal `msg` for hop 1 of `id` and send it.
    pub fn relay(&mut self, id: CircId, layers: &mut ClientLayers, msg: &RelayMsg) -> Check {
        let cell = relay_cell(id, layers, msg)?;
        self.send(&[cell])
    }

    /// The next message is a RELAY cell on `id` from hop 1: its relay message.
    pub fn recv_relay(&mut self, id: CircId, layers: &mut ClientLayers) -> Check<RelayMsg> {
        match self.recv()? {
            ChanMsg::Relay { circ_id, body } if circ_id == id => open_relay(layers, *body),
            m => fail(format!("expected RELAY on {:#x}, got {m:?}", id.get())),
        }
    }

    /// A fresh circuit on this link still builds and echoes: the relay kept serving.
    pub fn still_serves(&mut self, t: &Target) -> Check {
        let (id, mut layers) = self.create(t).map_err(|e| format!("afterwards: {e}"))?;
        self.begin(id, &mut layers, 1, b"echo")
            .map_err(|e| format!("afterwards: {e}"))?;
        let data = RelayMsg::Data {
            stream_id: 1,
            data: b"still here".to_vec(),
        };
        self.relay(id, &mut layers, &data)?;
        match self.recv_relay(id, &mut layers)? {
            m if m == data => Ok(()),
            m => fail(format!("afterwards: echo answered {m:?}")),
        }
    }

    /// BEGIN `service` on stream `stream_id`; expect CONNECTED.
    pub fn begin(
        &mut self,
        id: CircId,
        layers: &mut ClientLayers,
        stream_id: u16,
        service: &[u8],
    ) -> Check {
        self.relay(
            id,
            layers,
            &RelayMsg::Begin {
                stream_id,
                service: service.to_vec(),
            },
        )?;
        match self.recv_relay(id, layers)? {
            RelayMsg::Connected { stream_id: s } if s == stream_id => Ok(()),
            m => fail(format!("expected CONNECTED {stream_id}, got {m:?}")),
        }
    }
}

/// A RELAY cell of `id` carrying `msg` sealed for hop 1.
pub fn relay_cell(id: CircId, layers: &mut ClientLayers, msg: &RelayMsg) -> Check<ChanMsg> {
    let payload = msg.encode().map_err(|e| format!("encode: {e}"))?;
    let body = layers
        .seal_forward(1, &payload)
        .map_err(|e| format!("seal: {e}"))?;
    Ok(ChanMsg::Relay {
        circ_id: id,
        body: Box::new(body),
    })
}

/// Open a backward RELAY body and decode its message.
pub fn open_relay(
    layers: &mut ClientLayers,
    mut body: [u8; crate::wire::cell::BODY_LEN],
) -> Check<RelayMsg> {
    let (_, off) = layers
        .open_backward(&mut body)
        .map_err(|e| format!("the relay's cell failed its layer: {e}"))?;
    let payload = body
        .get(off..off + RELAY_PAYLOAD_LEN)
        .ok_or("relay payload out of the body")?;
    RelayMsg::decode(payload, RelayContext::AtReader)
        .map_err(|e| format!("the relay's message does not decode: {e}").into())
}
