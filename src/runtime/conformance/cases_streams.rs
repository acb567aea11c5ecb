//! Live cases for streams and flow control (`protocol-spec/05-streams.md`) at a one-hop
//! circuit's last hop: BEGIN and its answers, stream-id rules, END, SENDME and DATA past the
//! windows. Not in this module: the content service's requests (`06-dht.md`).

use super::conn::{Conn, QUIET, relay_cell, with_conn};
use super::{Case, Check, Target, Verdict, fail};
use crate::flow::STREAM_WINDOW;
use crate::runtime::raw_link::Received;
use crate::wire::relay_msg::RelayMsg;
use crate::wire::restrict::{ChanMsg, DestroyReason};

/// The stream cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "streams.begin-echo",
            spec: "05-streams.md#services",
            what: "BEGIN echo is answered CONNECTED and DATA comes back byte for byte",
            run: begin_echo,
        },
        Case {
            id: "streams.no-service",
            spec: "05-streams.md#begin",
            what: "BEGIN of a service the hop does not run is answered END reason 1; the circuit stays",
            run: no_service,
        },
        Case {
            id: "streams.begin-reused-id",
            spec: "05-streams.md#begin",
            what: "BEGIN with an id already begun destroys the circuit (PROTOCOL)",
            run: begin_reused_id,
        },
        Case {
            id: "streams.data-never-begun",
            spec: "05-streams.md#closing",
            what: "DATA for a stream id never begun destroys the circuit (PROTOCOL)",
            run: data_never_begun,
        },
        Case {
            id: "streams.end-not-answered",
            spec: "05-streams.md#closing",
            what: "END closes the stream and is not answered; a later BEGIN on a new id works",
            run: end_not_answered,
        },
        Case {
            id: "streams.stream-sendme-above-initial",
            spec: "05-streams.md#flow-control",
            what: "a stream SENDME before any DATA was sent raises a window above its initial size: PROTOCOL",
            run: stream_sendme_above_initial,
        },
        Case {
            id: "streams.circuit-sendme-above-initial",
            spec: "05-streams.md#flow-control",
            what: "a circuit SENDME before any DATA was sent raises a window above its initial size: PROTOCOL",
            run: circuit_sendme_above_initial,
        },
        Case {
            id: "streams.data-beyond-window",
            spec: "05-streams.md#flow-control",
            what: "DATA past the stream's receive window (echo never read, no SENDME) destroys the circuit",
            run: data_beyond_window,
        },
        Case {
            id: "streams.begin-id-0",
            spec: "05-streams.md#closing",
            what: "BEGIN on stream id 0 (never a stream) destroys the circuit (PROTOCOL)",
            run: begin_id_0,
        },
        Case {
            id: "streams.data-after-end",
            spec: "05-streams.md#closing",
            what: "DATA for a stream the reader ended is dropped: nothing answers, the circuit serves on",
            run: data_after_end,
        },
        Case {
            id: "streams.end-twice",
            spec: "05-streams.md#closing",
            what: "a second END for a closed stream is dropped",
            run: end_twice,
        },
        Case {
            id: "streams.sendme-after-end",
            spec: "05-streams.md#closing",
            what: "a stream SENDME for a closed stream is dropped",
            run: sendme_after_end,
        },
        Case {
            id: "streams.sendme-never-begun",
            spec: "05-streams.md#flow-control",
            what: "a stream SENDME for a stream never begun destroys the circuit (PROTOCOL)",
            run: sendme_never_begun,
        },
        Case {
            id: "streams.end-never-begun",
            spec: "05-streams.md#closing",
            what: "END for a stream never begun destroys the circuit (PROTOCOL)",
            run: end_never_begun,
        },
        Case {
            id: "streams.connected-from-reader",
            spec: "05-streams.md#relay-contexts",
            what: "CONNECTED sent towards a relay (not allowed there) destroys the circuit (PROTOCOL)",
            run: connected_from_reader,
        },
        Case {
            id: "streams.extended-from-reader",
            spec: "05-streams.md#relay-contexts",
            what: "EXTENDED sent towards a relay (not allowed there) destroys the circuit (PROTOCOL)",
            run: extended_from_reader,
        },
        Case {
            id: "streams.unknown-relay-command",
            spec: "05-streams.md#relay-messages",
            what: "a relay message of unknown command destroys the circuit (PROTOCOL)",
            run: unknown_relay_command,
        },
        Case {
            id: "streams.data-too-long",
            spec: "05-streams.md#relay-messages",
            what: "a relay message announcing more than 507 bytes of data destroys the circuit (PROTOCOL)",
            run: data_too_long,
        },
        Case {
            id: "streams.nonzero-padding",
            spec: "05-streams.md#relay-messages",
            what: "a relay message whose padding is not all zeros destroys the circuit (PROTOCOL)",
            run: nonzero_padding,
        },
        Case {
            id: "streams.discard-credit",
            spec: "05-streams.md#flow-control",
            what: "100 DATA cells to discard bring back exactly 2 stream SENDMEs and 1 circuit SENDME",
            run: discard_credit,
        },
        Case {
            id: "streams.too-many-streams",
            spec: "09-relay.md#limits",
            what: "a 17th open stream on one circuit is answered END reason 2; the circuit stays",
            run: too_many_streams,
        },
    ]
}

fn begin_id_0(t: &Target) -> Verdict {
    destroys(
        t,
        |_, _, _| Ok(()),
        RelayMsg::Begin {
            stream_id: 0,
            service: b"echo".to_vec(),
        },
    )
}

/// Begin echo on stream 1, END it, then send `late` if any: nothing answers, and stream 2
/// still opens.
fn dropped_after_end(t: &Target, late: Option<RelayMsg>) -> Verdict {
    with_conn(t, |c| {
        let (id, mut layers) = c.create(t)?;
        c.begin(id, &mut layers, 1, b"echo")?;
        c.relay(
            id,
            &mut layers,
            &RelayMsg::End {
                stream_id: 1,
                reason: 0,
            },
        )?;
        if let Some(late) = late {
            c.relay(id, &mut layers, &late)?;
        }
        c.expect_quiet()?;
        c.begin(id, &mut layers, 2, b"echo")
    })
}

fn data_after_end(t: &Target) -> Verdict {
    dropped_after_end(
        t,
        Some(RelayMsg::Data {
            stream_id: 1,
            data: b"late".to_vec(),
        }),
    )
}

fn end_twice(t: &Target) -> Verdict {
    dropped_after_end(
        t,
        Some(RelayMsg::End {
            stream_id: 1,
            reason: 0,
        }),
    )
}

fn sendme_after_end(t: &Target) -> Verdict {
    dropped_after_end(t, Some(RelayMsg::Sendme { stream_id: 1 }))
}

fn sendme_never_begun(t: &Target) -> Verdict {
    destroys(t, |_, _, _| Ok(()), RelayMsg::Sendme { stream_id: 5 })
}

fn end_never_begun(t: &Target) -> Verdict {
    destroys(
        t,
        |_, _, _| Ok(()),
        RelayMsg::End {
            stream_id: 5,
            reason: 0,
        },
    )
}

fn connected_from_reader(t: &Target) -> Verdict {
    destroys(
        t,
        |c, id, l| c.begin(id, l, 1, b"echo"),
        RelayMsg::Connected { stream_id: 1 },
    )
}

fn extended_from_reader(t: &Target) -> Verdict {
    destroys(
        t,
        |_, _, _| Ok(()),
        RelayMsg::Extended {
            handshake: vec![0; 48],
        },
    )
}

/// Seal a raw relay payload (command, stream, length, data) for hop 1; the circuit is
/// destroyed with PROTOCOL.
fn raw_payload_destroys(t: &Target, payload: &[u8]) -> Verdict {
    with_conn(t, |c| {
        let (id, mut layers) = c.create(t)?;
        let mut full = [0u8; crate::wire::cell::RELAY_PAYLOAD_LEN];
        full.get_mut(..payload.len())
            .ok_or("payload longer than a relay payload")?
            .copy_from_slice(payload);
        let body = layers
            .seal_forward(1, &full)
            .map_err(|e| format!("seal: {e}"))?;
        c.send(&[ChanMsg::Relay {
            circ_id: id,
            body: Box::new(body),
        }])?;
        c.expect_destroy(id, DestroyReason::PROTOCOL)?;
        c.still_serves(t)
    })
}

fn unknown_relay_command(t: &Target) -> Verdict {
    raw_payload_destroys(t, &[99, 0, 1, 0, 2, b'h', b'i'])
}

fn data_too_long(t: &Target) -> Verdict {
    // A DATA message whose length field (bytes 3..5 of the header) says 600.
    let mut payload = match (RelayMsg::Data {
        stream_id: 1,
        data: vec![1; 8],
    })
    .encode()
    {
        Ok(p) => p,
        Err(e) => return Verdict::Fail(format!("encode: {e}")),
    };
    payload[3..5].copy_from_slice(&600u16.to_be_bytes());
    raw_payload_destroys(t, &payload)
}

fn nonzero_padding(t: &Target) -> Verdict {
    let mut payload = [0u8; crate::wire::cell::RELAY_PAYLOAD_LEN];
    // BEGIN echo on stream 1, then a stray byte at the payload's end.
    payload[..10].copy_from_slice(&[3, 0, 1, 0, 5, 4, b'e', b'c', b'h', b'o']);
    payload[511] = 1;
    raw_payload_destroys(t, &payload)
}

fn discard_credit(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let (id, mut layers) = c.create(t)?;
        c.begin(id, &mut layers, 1, b"discard")?;
        let cells: Vec<ChanMsg> = (0..100)
            .map(|_| {
                relay_cell(
                    id,
                    &mut layers,
                    &RelayMsg::Data {
                        stream_id: 1,
                        data: vec![7; 300],
                    },
                )
            })
            .collect::<Check<_>>()?;
        c.send(&cells)?;
        let (mut stream, mut circuit) = (0, 0);
        while stream + circuit < 3 {
            match c.recv_relay(id, &mut layers)? {
                RelayMsg::Sendme { stream_id: 1 } => stream += 1,
                RelayMsg::Sendme { stream_id: 0 } => circuit += 1,
                m => return fail(format!("expected SENDMEs, got {m:?}")),
            }
        }
        if (stream, circuit) != (2, 1) {
            return fail(format!("{stream} stream and {circuit} circuit SENDMEs"));
        }
        c.expect_quiet()
    })
}

fn too_many_streams(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let (id, mut layers) = c.create(t)?;
        for s in 1..=16 {
            c.begin(id, &mut layers, s, b"echo")?;
        }
        c.relay(
            id,
            &mut layers,
            &RelayMsg::Begin {
                stream_id: 17,
                service: b"echo".to_vec(),
            },
        )?;
        match c.recv_relay(id, &mut layers)? {
            RelayMsg::End {
                stream_id: 17,
                reason: 2,
            } => {}
            m => return fail(format!("expected END 17 reason 2, got {m:?}")),
        }
        // Closing one makes room again.
        c.relay(
            id,
            &mut layers,
            &RelayMsg::End {
                stream_id: 1,
                reason: 0,
            },
        )?;
        c.begin(id, &mut layers, 18, b"echo")
    })
}

fn begin_echo(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let (id, mut layers) = c.create(t)?;
        c.begin(id, &mut layers, 1, b"echo")?;
        for n in [1usize, 100, 507] {
            let data = RelayMsg::Data {
                stream_id: 1,
                data: vec![n as u8; n],
            };
            c.relay(id, &mut layers, &data)?;
            let back = c.recv_relay(id, &mut layers)?;
            if back != data {
                return fail(format!("{n} bytes echoed as {back:?}"));
            }
        }
        Ok(())
    })
}

fn no_service(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let (id, mut layers) = c.create(t)?;
        c.relay(
            id,
            &mut layers,
            &RelayMsg::Begin {
                stream_id: 1,
                service: b"no-such-service".to_vec(),
            },
        )?;
        match c.recv_relay(id, &mut layers)? {
            RelayMsg::End {
                stream_id: 1,
                reason: 1,
            } => {}
            m => return fail(format!("expected END 1 reason 1, got {m:?}")),
        }
        c.begin(id, &mut layers, 2, b"echo")
    })
}

/// After `setup` on a fresh circuit, `msg` destroys it with PROTOCOL.
fn destroys(
    t: &Target,
    setup: impl FnOnce(
        &mut Conn,
        crate::wire::cell::CircId,
        &mut crate::crypto::layer::ClientLayers,
    ) -> Check,
    msg: RelayMsg,
) -> Verdict {
    with_conn(t, |c| {
        let (id, mut layers) = c.create(t)?;
        setup(c, id, &mut layers)?;
        c.relay(id, &mut layers, &msg)?;
        c.expect_destroy(id, DestroyReason::PROTOCOL)?;
        c.still_serves(t)
    })
}

fn begin_reused_id(t: &Target) -> Verdict {
    destroys(
        t,
        |c, id, l| c.begin(id, l, 1, b"echo"),
        RelayMsg::Begin {
            stream_id: 1,
            service: b"echo".to_vec(),
        },
    )
}

fn data_never_begun(t: &Target) -> Verdict {
    destroys(
        t,
        |_, _, _| Ok(()),
        RelayMsg::Data {
            stream_id: 7,
            data: b"nobody".to_vec(),
        },
    )
}

fn end_not_answered(t: &Target) -> Verdict {
    dropped_after_end(t, None)
}

fn stream_sendme_above_initial(t: &Target) -> Verdict {
    destroys(
        t,
        |c, id, l| c.begin(id, l, 1, b"echo"),
        RelayMsg::Sendme { stream_id: 1 },
    )
}

fn circuit_sendme_above_initial(t: &Target) -> Verdict {
    destroys(
        t,
        |c, id, l| c.begin(id, l, 1, b"echo"),
        RelayMsg::Sendme { stream_id: 0 },
    )
}

fn data_beyond_window(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let (id, mut layers) = c.create(t)?;
        c.begin(id, &mut layers, 1, b"echo")?;
        // The echo sends back what its window to us allows (STREAM_WINDOW cells, never
        // credited) and then consumes nothing more; what it consumed returns as SENDMEs.
        // So the stream accepts 2 × STREAM_WINDOW cells; one more is past its window.
        let limit = 2 * STREAM_WINDOW;
        let mut sent = 0u32;
        while sent <= limit {
            let batch: Vec<ChanMsg> = (0..100.min(limit + 1 - sent))
                .map(|_| {
                    relay_cell(
                        id,
                        &mut layers,
                        &RelayMsg::Data {
                            stream_id: 1,
                            data: vec![0x5a; 64],
                        },
                    )
                })
                .collect::<Result<_, _>>()?;
            sent += batch.len() as u32;
            c.send(&batch)?;
            // Drain what came back (never credited), so neither side blocks on its socket.
            loop {
                match c
                    .link
                    .recv_within(std::time::Duration::ZERO)
                    .map_err(|e| e.to_string())?
                {
                    Received::Msg(ChanMsg::Destroy { circ_id, reason }) if circ_id == id => {
                        return if sent > limit && reason == DestroyReason::PROTOCOL {
                            c.still_serves(t)
                        } else {
                            fail(format!(
                                "DESTROY reason {} after {sent} of {} DATA cells",
                                reason.0,
                                limit + 1
                            ))
                        };
                    }
                    Received::Msg(_) => {}
                    Received::Silent => break,
                    Received::Closed => return fail("the relay closed the link"),
                }
            }
        }
        let deadline = std::time::Instant::now() + super::conn::ANSWER;
        while std::time::Instant::now() < deadline {
            match c.link.recv_within(QUIET).map_err(|e| e.to_string())? {
                Received::Msg(ChanMsg::Destroy { circ_id, reason })
                    if circ_id == id && reason == DestroyReason::PROTOCOL =>
                {
                    return c.still_serves(t);
                }
                Received::Msg(ChanMsg::Destroy { reason, .. }) => {
                    return fail(format!("DESTROY reason {}", reason.0));
                }
                Received::Msg(_) | Received::Silent => {}
                Received::Closed => return fail("the relay closed the link"),
            }
        }
        fail(format!(
            "{} DATA cells with no SENDME: the circuit was not destroyed",
            limit + 1
        ))
    })
}
