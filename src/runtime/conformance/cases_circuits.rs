//! Live cases for circuits (`protocol-spec/03-cells.md#circuit-ids`, `04-circuits.md`):
//! circuit-id parity and order, hop handshakes valid and hostile, sealed layers tampered and
//! replayed, EXTEND refused. Not in this module: streams ([`super::cases_streams`]).

use super::conn::{create_msg, hop_msg1, relay_cell, with_conn};
use super::{Case, Check, Target, Verdict, fail};
use crate::wire::cell::CircId;
use crate::wire::relay_msg::RelayMsg;
use crate::wire::restrict::{ChanMsg, DestroyReason, HandshakeType};

/// The circuit cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "circuits.create",
            spec: "04-circuits.md#hop-handshake",
            what: "CREATE with hop message 1 is answered CREATED whose message 2 gives working layer keys",
            run: create,
        },
        Case {
            id: "circuits.id-parity",
            spec: "03-cells.md#circuit-ids",
            what: "a dialler's CREATE with the top bit clear is refused with DESTROY PROTOCOL",
            run: id_parity,
        },
        Case {
            id: "circuits.id-in-use",
            spec: "03-cells.md#circuit-ids",
            what: "CREATE on an open circuit's id closes it: DESTROY PROTOCOL",
            run: id_in_use,
        },
        Case {
            id: "circuits.id-lower",
            spec: "03-cells.md#circuit-ids",
            what: "CREATE with an id below one created before is refused; the higher circuit stays",
            run: id_lower,
        },
        Case {
            id: "circuits.id-after-destroy",
            spec: "03-cells.md#circuit-ids",
            what: "an id destroyed is never open again: CREATE on it is refused",
            run: id_after_destroy,
        },
        Case {
            id: "circuits.handshake-type",
            spec: "03-cells.md#create",
            what: "CREATE with an unknown handshake type is refused with DESTROY PROTOCOL",
            run: handshake_type,
        },
        Case {
            id: "circuits.hop-index",
            spec: "04-circuits.md#hop-index",
            what: "a reader's CREATE announcing hop index 2 is refused with DESTROY PROTOCOL",
            run: hop_index,
        },
        Case {
            id: "circuits.msg1-garbage",
            spec: "04-circuits.md#hop-handshake",
            what: "CREATE with 48 random bytes as hop message 1 is refused with DESTROY PROTOCOL",
            run: msg1_garbage,
        },
        Case {
            id: "circuits.msg1-replayed",
            spec: "04-circuits.md#replay",
            what: "a hop message 1 answered once, sent again on another link, is refused",
            run: msg1_replayed,
        },
        Case {
            id: "circuits.layer-tampered",
            spec: "04-circuits.md#sealed-layers",
            what: "a RELAY cell with one bit flipped fails its layer: DESTROY PROTOCOL",
            run: layer_tampered,
        },
        Case {
            id: "circuits.layer-replayed",
            spec: "04-circuits.md#sealed-layers",
            what: "a RELAY cell sent twice fails its layer the second time: DESTROY PROTOCOL",
            run: layer_replayed,
        },
        Case {
            id: "circuits.extend-to-itself",
            spec: "04-circuits.md#extend",
            what: "EXTEND to the relay itself is refused with DESTROY PROTOCOL",
            run: extend_to_itself,
        },
        Case {
            id: "circuits.extend-unknown",
            spec: "04-circuits.md#extend",
            what: "EXTEND to a relay outside the directory is destroyed with UNREACHABLE",
            run: extend_unknown,
        },
        Case {
            id: "circuits.extend-handshake-type",
            spec: "04-circuits.md#extend",
            what: "EXTEND naming an unknown handshake type is refused with DESTROY PROTOCOL",
            run: extend_handshake_type,
        },
        Case {
            id: "circuits.extend-with-streams",
            spec: "04-circuits.md#extend",
            what: "EXTEND on a circuit that carries a stream is refused with DESTROY PROTOCOL",
            run: extend_with_streams,
        },
        Case {
            id: "circuits.interleaved",
            spec: "03-cells.md#circuit-ids",
            what: "three circuits on one link, their cells interleaved, each echo their own data",
            run: interleaved,
        },
        Case {
            id: "circuits.destroy-not-answered",
            spec: "03-cells.md#circuit-ids",
            what: "DESTROY of an open circuit closes it and is not answered",
            run: destroy_not_answered,
        },
    ]
}

fn create(t: &Target) -> Verdict {
    with_conn(t, |c| c.still_serves(t))
}

/// CREATE `id` with a fresh valid hop message 1; expect DESTROY PROTOCOL on it.
fn create_refused(c: &mut super::conn::Conn, t: &Target, id: CircId) -> Check {
    let (_, m1) = hop_msg1(t, 1)?;
    c.send(&[create_msg(id, HandshakeType::NOISE_NK_V1, m1)])?;
    c.expect_destroy(id, DestroyReason::PROTOCOL)
}

fn id_parity(t: &Target) -> Verdict {
    with_conn(t, |c| {
        create_refused(c, t, CircId::new(5).ok_or("id")?)?;
        c.still_serves(t)
    })
}

fn id_in_use(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let (id, _) = c.create(t)?;
        create_refused(c, t, id)?;
        c.still_serves(t)
    })
}

fn id_lower(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let low = c.next_id();
        let (high, mut layers) = c.create(t)?;
        create_refused(c, t, low)?;
        // The higher circuit still works.
        c.begin(high, &mut layers, 1, b"echo")
    })
}

fn id_after_destroy(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let (id, _) = c.create(t)?;
        c.send(&[ChanMsg::Destroy {
            circ_id: id,
            reason: DestroyReason::FINISHED,
        }])?;
        c.expect_quiet()?;
        create_refused(c, t, id)?;
        c.still_serves(t)
    })
}

fn handshake_type(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let id = c.next_id();
        let (_, m1) = hop_msg1(t, 1)?;
        c.send(&[create_msg(id, HandshakeType(0x7777), m1)])?;
        c.expect_destroy(id, DestroyReason::PROTOCOL)?;
        c.still_serves(t)
    })
}

fn hop_index(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let id = c.next_id();
        let (_, m1) = hop_msg1(t, 2)?;
        c.send(&[create_msg(id, HandshakeType::NOISE_NK_V1, m1)])?;
        c.expect_destroy(id, DestroyReason::PROTOCOL)?;
        c.still_serves(t)
    })
}

fn msg1_garbage(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let id = c.next_id();
        let mut junk = vec![0u8; 48];
        crate::runtime::driver::os_rng().fill(&mut junk);
        c.send(&[create_msg(id, HandshakeType::NOISE_NK_V1, junk)])?;
        c.expect_destroy(id, DestroyReason::PROTOCOL)?;
        c.still_serves(t)
    })
}

fn msg1_replayed(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let (_, m1) = hop_msg1(t, 1)?;
        let id = c.next_id();
        c.send(&[create_msg(id, HandshakeType::NOISE_NK_V1, m1.clone())])?;
        match c.recv()? {
            ChanMsg::Created { circ_id, .. } if circ_id == id => {}
            m => return fail(format!("the first CREATE got {m:?}")),
        }
        let mut other = super::conn::Conn::open(t).map_err(|e| format!("link: {e}"))?;
        let id2 = other.next_id();
        other.send(&[create_msg(id2, HandshakeType::NOISE_NK_V1, m1)])?;
        other.expect_destroy(id2, DestroyReason::PROTOCOL)?;
        other.still_serves(t)
    })
}

fn layer_tampered(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let (id, mut layers) = c.create(t)?;
        let msg = RelayMsg::Begin {
            stream_id: 1,
            service: b"echo".to_vec(),
        };
        let ChanMsg::Relay { circ_id, mut body } = relay_cell(id, &mut layers, &msg)? else {
            return fail("not a RELAY cell");
        };
        body[100] ^= 1;
        c.send(&[ChanMsg::Relay { circ_id, body }])?;
        c.expect_destroy(id, DestroyReason::PROTOCOL)?;
        c.still_serves(t)
    })
}

fn layer_replayed(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let (id, mut layers) = c.create(t)?;
        // A BEGIN, answered CONNECTED, then the very same sealed cell again.
        let begin = relay_cell(
            id,
            &mut layers,
            &RelayMsg::Begin {
                stream_id: 1,
                service: b"echo".to_vec(),
            },
        )?;
        c.send(core::slice::from_ref(&begin))?;
        match c.recv_relay(id, &mut layers)? {
            RelayMsg::Connected { stream_id: 1 } => {}
            m => return fail(format!("expected CONNECTED 1, got {m:?}")),
        }
        c.send(&[begin])?;
        c.expect_destroy(id, DestroyReason::PROTOCOL)?;
        c.still_serves(t)
    })
}

/// On a fresh circuit (after `streams` BEGINs of echo), EXTEND to `node_id` with
/// `handshake_type`; the circuit is destroyed with `reason`.
fn extend(
    t: &Target,
    (node_id, handshake_type): ([u8; 32], u16),
    streams: u16,
    reason: DestroyReason,
) -> Verdict {
    with_conn(t, |c| {
        let (id, mut layers) = c.create(t)?;
        for s in 1..=streams {
            c.begin(id, &mut layers, s, b"echo")?;
        }
        let (_, m1) = hop_msg1(t, 2)?;
        c.relay(
            id,
            &mut layers,
            &RelayMsg::Extend {
                node_id,
                handshake_type,
                handshake: m1,
            },
        )?;
        c.expect_destroy(id, reason)?;
        c.still_serves(t)
    })
}

const NK: u16 = HandshakeType::NOISE_NK_V1.0;

fn extend_to_itself(t: &Target) -> Verdict {
    extend(t, (t.desc.node_id().0, NK), 0, DestroyReason::PROTOCOL)
}

fn extend_unknown(t: &Target) -> Verdict {
    let mut unknown = [0u8; 32];
    crate::runtime::driver::os_rng().fill(&mut unknown);
    extend(t, (unknown, NK), 0, DestroyReason::UNREACHABLE)
}

fn destroy_not_answered(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let (id, _) = c.create(t)?;
        c.destroy_unanswered(t, id, DestroyReason::FINISHED)
    })
}

fn extend_handshake_type(t: &Target) -> Verdict {
    extend(t, (t.desc.node_id().0, 0x7777), 0, DestroyReason::PROTOCOL)
}

fn extend_with_streams(t: &Target) -> Verdict {
    let mut other = [0u8; 32];
    crate::runtime::driver::os_rng().fill(&mut other);
    extend(t, (other, NK), 1, DestroyReason::PROTOCOL)
}

fn interleaved(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let mut circs = Vec::new();
        for _ in 0..3 {
            let (id, mut layers) = c.create(t)?;
            c.begin(id, &mut layers, 1, b"echo")?;
            circs.push((id, layers));
        }
        for round in 0u8..4 {
            let mut cells = Vec::new();
            for (k, (id, layers)) in circs.iter_mut().enumerate() {
                let data = RelayMsg::Data {
                    stream_id: 1,
                    data: vec![round * 10 + k as u8; 50 + usize::from(round)],
                };
                cells.push(relay_cell(*id, layers, &data)?);
            }
            c.send(&cells)?;
            for _ in 0..circs.len() {
                let ChanMsg::Relay { circ_id, body } = c.recv()? else {
                    return fail("expected RELAY cells back");
                };
                let k = circs
                    .iter()
                    .position(|(id, _)| *id == circ_id)
                    .ok_or("a RELAY cell on a circuit not built")?;
                let msg = super::conn::open_relay(&mut circs[k].1, *body)?;
                let want = RelayMsg::Data {
                    stream_id: 1,
                    data: vec![round * 10 + k as u8; 50 + usize::from(round)],
                };
                if msg != want {
                    return fail(format!("circuit {k} echoed {msg:?} in round {round}"));
                }
            }
        }
        Ok(())
    })
}
