//! Live cases for cells (`protocol-spec/03-cells.md`): each error class in the reader→relay
//! context, on a circuit (closed with `DESTROY PROTOCOL`, the link kept) and on circuit id 0
//! (ignored). Not in this module: circuit ids and hop handshakes ([`super::cases_circuits`]).

use super::conn::with_conn;
use super::{Case, Check, Target, Verdict};
use crate::wire::cell::{BODY_LEN, Cell, Command};
use crate::wire::restrict::{ChanMsg, DestroyReason};

/// The cell cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "cells.unknown-command-on-circuit",
            spec: "03-cells.md#errors",
            what: "an unknown command on an open circuit closes it with DESTROY PROTOCOL; the link stays",
            run: unknown_on_circuit,
        },
        Case {
            id: "cells.unknown-command-on-id-0",
            spec: "03-cells.md#errors",
            what: "an unknown command on circuit 0 is ignored",
            run: unknown_on_id_0,
        },
        Case {
            id: "cells.created-from-reader",
            spec: "03-cells.md#contexts",
            what: "CREATED from a reader (not-allowed) closes its circuit with DESTROY PROTOCOL",
            run: created_from_reader,
        },
        Case {
            id: "cells.padding-on-circuit",
            spec: "03-cells.md#circuit-ids",
            what: "PADDING on a circuit (circ-id-rule) closes that circuit with DESTROY PROTOCOL",
            run: padding_on_circuit,
        },
        Case {
            id: "cells.relay-on-id-0",
            spec: "03-cells.md#errors",
            what: "RELAY on circuit 0 (circ-id-rule, no circuit named) is ignored",
            run: relay_on_id_0,
        },
        Case {
            id: "cells.dht-from-reader",
            spec: "03-cells.md#contexts",
            what: "a DHT cell from a reader (not-allowed, circuit 0) is ignored: readers never speak the DHT",
            run: dht_from_reader,
        },
        Case {
            id: "cells.create-bad-body",
            spec: "03-cells.md#create",
            what: "a CREATE whose handshake length runs past the body (bad-body) is refused with DESTROY PROTOCOL",
            run: create_bad_body,
        },
        Case {
            id: "cells.destroy-unknown-circuit",
            spec: "03-cells.md#destroy",
            what: "DESTROY for a circuit id never opened is not answered",
            run: destroy_unknown,
        },
        Case {
            id: "cells.relay-unknown-circuit",
            spec: "03-cells.md#circuit-ids",
            what: "RELAY for a circuit id not open is answered DESTROY PROTOCOL",
            run: relay_unknown_circuit,
        },
        Case {
            id: "cells.unknown-destroy-reason",
            spec: "03-cells.md#destroy",
            what: "DESTROY with a reserved reason (200) closes the circuit like any other",
            run: unknown_destroy_reason,
        },
    ]
}

fn cell(circ_id: u32, command: Command, content: &[u8]) -> Check<Cell> {
    Cell::with_content(circ_id, command, content).ok_or_else(|| "cell content too long".into())
}

/// Send a raw cell on a fresh circuit; the circuit closes with PROTOCOL, the link serves on.
fn closes_its_circuit(t: &Target, command: Command, content: &[u8]) -> Verdict {
    with_conn(t, |c| {
        let (id, _) = c.create(t)?;
        c.link
            .send_cell(&cell(id.get(), command, content)?)
            .map_err(|e| e.to_string())?;
        c.expect_destroy(id, DestroyReason::PROTOCOL)?;
        c.still_serves(t)
    })
}

/// Send a raw cell on circuit 0: nothing answers, the link serves on.
fn ignored_on_id_0(t: &Target, command: Command, content: &[u8]) -> Verdict {
    with_conn(t, |c| {
        c.link
            .send_cell(&cell(0, command, content)?)
            .map_err(|e| e.to_string())?;
        c.expect_quiet()?;
        c.still_serves(t)
    })
}

fn unknown_on_circuit(t: &Target) -> Verdict {
    closes_its_circuit(t, Command(99), b"from the future")
}

fn unknown_on_id_0(t: &Target) -> Verdict {
    ignored_on_id_0(t, Command(99), b"from the future")
}

fn created_from_reader(t: &Target) -> Verdict {
    closes_its_circuit(t, Command::CREATED, &[0, 0])
}

fn padding_on_circuit(t: &Target) -> Verdict {
    closes_its_circuit(t, Command::PADDING, &[])
}

fn relay_on_id_0(t: &Target) -> Verdict {
    ignored_on_id_0(t, Command::RELAY, &[0; BODY_LEN])
}

fn dht_from_reader(t: &Target) -> Verdict {
    ignored_on_id_0(t, Command::DHT, &[1, 0, 0])
}

fn create_bad_body(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let id = c.next_id();
        // handshake_type 1, hlen 0x0300 (768): past the 560-byte body.
        c.link
            .send_cell(&cell(id.get(), Command::CREATE, &[0, 1, 0x03, 0x00])?)
            .map_err(|e| e.to_string())?;
        c.expect_destroy(id, DestroyReason::PROTOCOL)?;
        c.still_serves(t)
    })
}

fn destroy_unknown(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let id = c.next_id();
        c.destroy_unanswered(t, id, DestroyReason::FINISHED)
    })
}

fn relay_unknown_circuit(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let id = c.next_id();
        c.link
            .send_cell(&cell(id.get(), Command::RELAY, &[0; BODY_LEN])?)
            .map_err(|e| e.to_string())?;
        c.expect_destroy(id, DestroyReason::PROTOCOL)?;
        c.still_serves(t)
    })
}

fn unknown_destroy_reason(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let (id, _) = c.create(t)?;
        c.send(&[ChanMsg::Destroy {
            circ_id: id,
            reason: DestroyReason(200),
        }])?;
        c.expect_quiet()?;
        // The circuit is gone: a RELAY on it is now for an id not open.
        c.link
            .send_cell(&cell(id.get(), Command::RELAY, &[0; BODY_LEN])?)
            .map_err(|e| e.to_string())?;
        c.expect_destroy(id, DestroyReason::PROTOCOL)?;
        c.still_serves(t)
    })
}
