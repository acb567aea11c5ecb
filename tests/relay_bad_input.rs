//! Bad input at a relay (`protocol-spec/09-relay.md#bad-input`): every case gets a typed
//! error, closes only the circuit (or, for broken frames, the link) it concerns, and the
//! relay keeps serving everyone else.

mod relay_harness;

use relay_harness::{Harness, cid, destroyed, relay_cell, still_serves};
use umbra::crypto::hop::client_start;
use umbra::crypto::layer::LayerError;
use umbra::crypto::noise::Randomness;
use umbra::link::LinkError;
use umbra::node::{Input, NodeError};
use umbra::relay::RelayError;
use umbra::time::Time;
use umbra::wire::cell::{Cell, Command};
use umbra::wire::relay_msg::RelayMsg;
use umbra::wire::restrict::{CellError, ChanMsg, CreateBody, DestroyReason, HandshakeType};

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
        .send(&Cell::with_content(0x8000_0000 | 1, Command(99), b"future").unwrap());
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

/// `03-cells.md#errors`: whatever the decode result, a refused cell on a circuit closes
/// that circuit (DESTROY `PROTOCOL`), one on circuit id 0 is ignored, and the link stays.
#[test]
fn a_refused_cell_closes_the_circuit_it_names_or_is_ignored_on_id_0() {
    let mut h = Harness::new();
    let mut c = h.connect();
    let raw = |h: &mut Harness, c: &mut relay_harness::Client, cell: Cell| {
        c.est.send(&cell);
        let bytes = c.est.poll_transmit(Time::ZERO).unwrap().unwrap();
        h.send_raw(c, &bytes)
    };
    // CREATED may not come from a reader (not-allowed), on its live circuit 1.
    let _l1 = h.create(&mut c, 1);
    let (out, closed) = raw(
        &mut h,
        &mut c,
        Cell::with_content(0x8000_0000 | 1, Command::CREATED, &[0, 0]).unwrap(),
    );
    assert!(!closed);
    assert!(destroyed(&out, 1, DestroyReason::PROTOCOL), "{out:?}");
    // PADDING on a circuit (circ-id-rule).
    let _l2 = h.create(&mut c, 2);
    let (out, _) = raw(
        &mut h,
        &mut c,
        Cell::with_content(0x8000_0000 | 2, Command::PADDING, &[]).unwrap(),
    );
    assert!(destroyed(&out, 2, DestroyReason::PROTOCOL), "{out:?}");
    // A DESTROY with no reason byte cannot be short (cells are padded): a CREATE whose
    // handshake length runs past the body (bad-body) on circuit 4.
    let (out, _) = raw(
        &mut h,
        &mut c,
        Cell::with_content(0x8000_0000 | 4, Command::CREATE, &[0, 1, 0x03, 0x00]).unwrap(),
    );
    assert!(destroyed(&out, 4, DestroyReason::PROTOCOL), "{out:?}");
    // On circuit id 0: a DHT cell from a reader (not-allowed) is dropped, nothing answered.
    let (out, closed) = raw(
        &mut h,
        &mut c,
        Cell::with_content(0, Command::DHT, &[1, 0, 0]).unwrap(),
    );
    assert!(!closed && out.is_empty(), "{out:?}");
    still_serves(&mut h, &mut c, 5);
}

/// `05-streams.md#closing`: after END, what was in flight for the stream is dropped and the
/// circuit stays; a BEGIN reusing the id, or a message for an id never begun, destroys it.
#[test]
fn in_flight_cells_of_a_closed_stream_are_dropped_and_ids_are_never_reused() {
    let mut h = Harness::new();
    let mut c = h.connect();
    let mut l = h.create(&mut c, 1);
    let msg = |l: &mut _, m: RelayMsg| relay_cell(1, l, &m);
    let begin = |id| RelayMsg::Begin {
        stream_id: id,
        service: b"echo".to_vec(),
    };
    let data = |id| RelayMsg::Data {
        stream_id: id,
        data: b"late".to_vec(),
    };
    let end = |id| RelayMsg::End {
        stream_id: id,
        reason: 0,
    };
    // Stream 1 opens and closes; its late DATA, SENDME and a crossing END are dropped.
    let cells = [
        msg(&mut l, begin(1)),
        msg(&mut l, end(1)),
        msg(&mut l, data(1)),
        msg(&mut l, RelayMsg::Sendme { stream_id: 1 }),
        msg(&mut l, end(1)),
    ];
    let (out, closed) = h.send(&mut c, &cells);
    assert!(!closed);
    assert!(
        !out.iter().any(|m| matches!(m, ChanMsg::Destroy { .. })),
        "{out:?}"
    );
    // The circuit still carries a new stream, with a higher id.
    let (out, _) = h.send(&mut c, &[msg(&mut l, begin(2))]);
    assert!(
        !out.iter().any(|m| matches!(m, ChanMsg::Destroy { .. })),
        "{out:?}"
    );
    // Stream 1 again: ids are never reused.
    let (out, _) = h.send(&mut c, &[msg(&mut l, begin(1))]);
    assert!(destroyed(&out, 1, DestroyReason::PROTOCOL), "{out:?}");
    // DATA for a stream never begun.
    let mut l = h.create(&mut c, 3);
    let (out, _) = h.send(&mut c, &[relay_cell(3, &mut l, &data(9))]);
    assert!(destroyed(&out, 3, DestroyReason::PROTOCOL), "{out:?}");
    still_serves(&mut h, &mut c, 4);
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
            circ_id: cid(1),
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

/// `03-cells.md#circuit-ids`: a CREATE must carry its sender's parity (a reader dials, so
/// the top bit is set) and an id above every id the sender created on the link; a closed id
/// is never open again. Each refusal closes only that id with `PROTOCOL`.
#[test]
fn circuit_ids_have_the_senders_parity_and_are_never_reused() {
    let mut h = Harness::new();
    let mut c = h.connect();
    let create = |h: &mut Harness, c: &mut relay_harness::Client, id: u32, seed: u8| {
        let (_, msg1) = client_start(&h.onion, 1, Randomness::Seeded([seed; 32])).unwrap();
        let circ_id = umbra::wire::cell::CircId::new(id).unwrap();
        h.send(
            c,
            &[ChanMsg::Create {
                circ_id,
                body: CreateBody {
                    handshake_type: HandshakeType::NOISE_NK_V1,
                    handshake: msg1,
                },
            }],
        )
        .0
    };
    let created = |out: &[ChanMsg], id: u32| {
        out.iter()
            .any(|m| matches!(m, ChanMsg::Created { circ_id, .. } if circ_id.get() == id))
    };
    // The listener's parity from the dialler.
    let out = create(&mut h, &mut c, 5, 31);
    assert!(
        out.iter()
            .any(|m| matches!(m, ChanMsg::Destroy { circ_id, reason }
            if circ_id.get() == 5 && *reason == DestroyReason::PROTOCOL)),
        "{out:?}"
    );
    assert_eq!(
        h.last_error(),
        Some(NodeError::Relay(RelayError::CircIdParity))
    );
    // Ids rise: 7, then 3 is refused and 7 stays open.
    let _l7 = h.create(&mut c, 7);
    let out = create(&mut h, &mut c, cid(3).get(), 32);
    assert!(destroyed(&out, 3, DestroyReason::PROTOCOL), "{out:?}");
    assert!(!destroyed(&out, 7, DestroyReason::PROTOCOL), "{out:?}");
    assert_eq!(
        h.last_error(),
        Some(NodeError::Relay(RelayError::ReusedCircuit))
    );
    assert_eq!(h.relay.relay_circuits(), 1);
    // 8 is fine; once 8 is destroyed by the reader, its id stays closed.
    let out = create(&mut h, &mut c, cid(8).get(), 33);
    assert!(created(&out, cid(8).get()), "{out:?}");
    let (out, _) = h.send(
        &mut c,
        &[ChanMsg::Destroy {
            circ_id: cid(8),
            reason: DestroyReason::FINISHED,
        }],
    );
    assert!(out.is_empty(), "DESTROY is not answered: {out:?}");
    let out = create(&mut h, &mut c, cid(8).get(), 34);
    assert!(destroyed(&out, 8, DestroyReason::PROTOCOL), "{out:?}");
    assert!(!created(&out, cid(8).get()), "{out:?}");
    still_serves(&mut h, &mut c, 9);
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
            circ_id: cid(4),
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
            circ_id: cid(5),
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
            circ_id: cid(6),
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
        circ_id: cid(id),
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
