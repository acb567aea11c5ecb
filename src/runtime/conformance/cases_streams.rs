//! Live cases for streams and flow control (`protocol-spec/05-streams.md`) at a one-hop
//! circuit's last hop: BEGIN and its answers, stream-id rules, END, SENDME and DATA past the
//! windows. Not in this module: the content service's requests (`06-dht.md`).

use super::conn::{Conn, QUIET, relay_cell, with_conn};
use super::{Case, Check, Target, Verdict, fail};
use crate::flow::{CIRC_WINDOW, STREAM_WINDOW};
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
    ]
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
        c.expect_quiet()?;
        c.begin(id, &mut layers, 2, b"echo")
    })
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
        debug_assert!(limit < CIRC_WINDOW + CIRC_WINDOW);
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
