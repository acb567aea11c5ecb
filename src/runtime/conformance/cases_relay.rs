//! Live cases that speak to the relay as another relay (`protocol-spec/06-dht.md#rpcs`,
//! `03-cells.md#dht`, `04-circuits.md#hop-index`, `02-link.md#binding`): the link with a
//! relay's binding, CREATE from a relay, each DHT RPC and the DHT framing errors. All but
//! one need `--as-relay DIR`, the keys of a relay the target's directory lists (RPCs from
//! others are dropped unanswered, which the one case without it checks). Not in this
//! module: what readers send ([`super::cases_cells`] and the rest).

use std::time::{Duration, Instant};

use super::conn::{ANSWER, Conn, create_msg, hop_msg1, verdict};
use super::{Case, Check, Target, Verdict, fail};
use crate::crypto::keys::{IdentityKey, LinkKeypair};
use crate::runtime::driver::os_rng;
use crate::runtime::raw_link::{As, RawLink, Received};
use crate::wire::cell::Command;
use crate::wire::dht_msg::{DhtMsg, MAX_MESSAGE, Record, RecordKind};
use crate::wire::dir_msg::DirMsg;
use crate::wire::restrict::{
    ChanMsg, DestroyReason, DhtReassembler, HandshakeType, dht_fragments, dir_fragments,
};

/// The relay cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "relay.link-as-relay",
            spec: "02-link.md#binding",
            what: "a link whose message 3 carries a listed relay's binding is accepted",
            run: link_as_relay,
        },
        Case {
            id: "relay.create-hop-2",
            spec: "04-circuits.md#hop-index",
            what: "a relay's CREATE announcing hop index 2 is answered CREATED",
            run: create_hop_2,
        },
        Case {
            id: "relay.create-hop-1",
            spec: "04-circuits.md#hop-index",
            what: "a relay's CREATE announcing hop index 1 (a reader's) is refused with DESTROY PROTOCOL",
            run: create_hop_1,
        },
        Case {
            id: "relay.find-node",
            spec: "06-dht.md#rpcs",
            what: "FIND_NODE is answered NODES with its request id and at most 20 ids",
            run: find_node,
        },
        Case {
            id: "relay.find-value-missing",
            spec: "06-dht.md#rpcs",
            what: "FIND_VALUE of a key the relay does not hold is answered NODES",
            run: find_value_missing,
        },
        Case {
            id: "relay.store-and-find",
            spec: "06-dht.md#store",
            what: "STORE of a 1,500-byte block (over three DHT cells) is answered STORED 0; FIND_VALUE then gives it back",
            run: store_and_find,
        },
        Case {
            id: "relay.store-invalid",
            spec: "06-dht.md#store",
            what: "STORE of a block whose key is not its hash is answered STORED 1 (invalid)",
            run: store_invalid,
        },
        Case {
            id: "relay.store-manifest-then-find-seq",
            spec: "06-dht.md#rpcs",
            what: "STORE of a signed manifest is answered STORED 0; FIND_SEQ then gives SEQ with its sequence and the BLAKE3 of its bytes",
            run: store_manifest_then_find_seq,
        },
        Case {
            id: "relay.unknown-command-on-circuit",
            spec: "03-cells.md#errors",
            what: "an unknown command on a relay's circuit closes it with DESTROY PROTOCOL; the link stays",
            run: unknown_on_circuit,
        },
        Case {
            id: "relay.find-seq-missing",
            spec: "06-dht.md#rpcs",
            what: "FIND_SEQ of a manifest the relay does not hold is answered NODES",
            run: find_seq_missing,
        },
        Case {
            id: "relay.touch-missing",
            spec: "06-dht.md#rpcs",
            what: "TOUCH of a record the relay does not hold is answered STORED 4 (not held)",
            run: touch_missing,
        },
        Case {
            id: "relay.dht-continuation-without-start",
            spec: "03-cells.md#dht",
            what: "a DHT continuation with no message started closes the link",
            run: dht_continuation,
        },
        Case {
            id: "relay.dht-oversized",
            spec: "03-cells.md#dht",
            what: "a DHT message announcing more than 1,052,672 bytes closes the link",
            run: dht_oversized,
        },
        Case {
            id: "relay.dht-malformed",
            spec: "03-cells.md#dht",
            what: "a DHT message of unknown type closes the link",
            run: dht_malformed,
        },
        Case {
            id: "relay.unknown-command-on-id-0",
            spec: "03-cells.md#errors",
            what: "an unknown command on circuit 0 from a relay is ignored",
            run: unknown_on_id_0,
        },
        Case {
            id: "relay.push-empty",
            spec: "10-directory.md#messages",
            what: "a PUSH of no descriptors from a relay is taken silently",
            run: push_empty,
        },
        Case {
            id: "relay.rpc-from-unlisted-relay",
            spec: "06-dht.md#rpcs",
            what: "FIND_NODE from a relay identity the directory does not list is dropped unanswered",
            run: rpc_from_unlisted,
        },
    ]
}

pub(super) const NEEDS: &str =
    "needs --as-relay DIR: the keys of a relay the peer's directory lists";

/// Open a link as the relay of `--as-relay` and run `f`; skipped without it.
fn as_relay(t: &Target, f: impl FnOnce(&mut Conn) -> Check) -> Verdict {
    let Some(dir) = t.as_relay.as_deref() else {
        return Verdict::Skip(NEEDS.into());
    };
    match RawLink::open(None, As::Relay(dir), &t.desc) {
        Ok(link) => verdict(f(&mut Conn::from_link(link))),
        Err(e) => Verdict::Fail(format!("link as a relay: {e}")),
    }
}

/// Send one DHT message and read the answer with the same request id (other DHT messages,
/// such as the relay's own lookups, are skipped).
fn rpc(c: &mut Conn, msg: &DhtMsg) -> Check<DhtMsg> {
    c.send(&dht_fragments(&msg.encode()))?;
    let want = msg.id();
    let deadline = Instant::now() + ANSWER;
    let mut r = DhtReassembler::default();
    while Instant::now() < deadline {
        match c.link.recv_within(ANSWER).map_err(|e| e.to_string())? {
            Received::Msg(ChanMsg::Dht { first, data }) => {
                let whole = r
                    .push(first, &data, MAX_MESSAGE)
                    .map_err(|e| format!("the relay's DHT fragments: {e}"))?;
                if let Some(m) = whole {
                    let m =
                        DhtMsg::decode(&m).map_err(|e| format!("the relay's DHT message: {e}"))?;
                    if m.id() == want {
                        return Ok(m);
                    }
                }
            }
            Received::Msg(_) => {}
            Received::Silent => break,
            Received::Closed => return fail("the relay closed the link"),
        }
    }
    fail(format!("no answer to request {want} within {ANSWER:?}"))
}

/// As the listed relay, send `msg`; its answer must satisfy `ok` (`want` says what).
fn answered(t: &Target, msg: DhtMsg, want: &str, ok: fn(&DhtMsg) -> bool) -> Verdict {
    as_relay(t, |c| {
        let m = rpc(c, &msg)?;
        if ok(&m) {
            Ok(())
        } else {
            fail(format!("expected {want}, got {m:?}"))
        }
    })
}

fn link_as_relay(t: &Target) -> Verdict {
    as_relay(t, |c| c.expect_quiet())
}

fn create_hop(t: &Target, hop: u8) -> Verdict {
    as_relay(t, |c| {
        let id = c.next_id();
        let (_, m1) = hop_msg1(t, hop)?;
        c.send(&[create_msg(id, HandshakeType::NOISE_NK_V1, m1)])?;
        match (hop, c.recv()?) {
            (2, ChanMsg::Created { circ_id, .. }) if circ_id == id => Ok(()),
            (1, ChanMsg::Destroy { circ_id, reason })
                if circ_id == id && reason == DestroyReason::PROTOCOL =>
            {
                Ok(())
            }
            (_, m) => fail(format!("hop index {hop}: got {m:?}")),
        }
    })
}

fn create_hop_2(t: &Target) -> Verdict {
    create_hop(t, 2)
}

fn create_hop_1(t: &Target) -> Verdict {
    create_hop(t, 1)
}

fn random32() -> [u8; 32] {
    let mut k = [0u8; 32];
    os_rng().fill(&mut k);
    k
}

fn find_node(t: &Target) -> Verdict {
    let msg = DhtMsg::FindNode {
        id: 11,
        target: random32(),
    };
    answered(
        t,
        msg,
        "NODES with at most 20 ids",
        |m| matches!(m, DhtMsg::Nodes { nodes, .. } if nodes.len() <= 20),
    )
}

fn find_value_missing(t: &Target) -> Verdict {
    let msg = DhtMsg::FindValue {
        id: 12,
        key: random32(),
        kind: RecordKind::BLOCK,
    };
    answered(t, msg, "NODES", |m| matches!(m, DhtMsg::Nodes { .. }))
}

fn block(value: Vec<u8>) -> Record {
    Record {
        kind: RecordKind::BLOCK,
        key: crate::crypto::hash::hash(&value),
        value,
    }
}

fn in_an_hour() -> u64 {
    crate::runtime::driver::wall_now().0 + 3600
}

fn store_and_find(t: &Target) -> Verdict {
    as_relay(t, |c| {
        let mut value = vec![0u8; 1500];
        os_rng().fill(&mut value);
        let record = block(value);
        stored(c, 13, &record)?;
        match rpc(
            c,
            &DhtMsg::FindValue {
                id: 14,
                key: record.key,
                kind: RecordKind::BLOCK,
            },
        )? {
            DhtMsg::Value { record: got, .. } if got == record => Ok(()),
            m => fail(format!("expected the VALUE stored, got {m:?}")),
        }
    })
}

fn store_invalid(t: &Target) -> Verdict {
    let mut record = block(b"a block".to_vec());
    record.key = random32();
    let msg = DhtMsg::Store {
        id: 15,
        record,
        expires: in_an_hour(),
    };
    answered(t, msg, "STORED 1", |m| {
        matches!(m, DhtMsg::Stored { status: 1, .. })
    })
}

fn find_seq_missing(t: &Target) -> Verdict {
    let msg = DhtMsg::FindSeq {
        id: 16,
        key: random32(),
        kind: RecordKind::MANIFEST,
    };
    answered(t, msg, "NODES", |m| matches!(m, DhtMsg::Nodes { .. }))
}

fn touch_missing(t: &Target) -> Verdict {
    let msg = DhtMsg::Touch {
        id: 17,
        key: random32(),
        kind: RecordKind::BLOCK,
        expires: in_an_hour(),
    };
    answered(t, msg, "STORED 4", |m| {
        matches!(m, DhtMsg::Stored { status: 4, .. })
    })
}

fn dht_closes(t: &Target, first: bool, data: Vec<u8>) -> Verdict {
    as_relay(t, |c| {
        c.send(&[ChanMsg::Dht { first, data }])?;
        c.expect_closed()
    })
}

fn dht_continuation(t: &Target) -> Verdict {
    dht_closes(t, false, vec![0; 10])
}

fn dht_oversized(t: &Target) -> Verdict {
    dht_closes(t, true, 1_052_673u32.to_be_bytes().to_vec())
}

fn dht_malformed(t: &Target) -> Verdict {
    let mut data = 5u32.to_be_bytes().to_vec();
    data.extend_from_slice(&[99, 0, 0, 0, 1]);
    dht_closes(t, true, data)
}

fn unknown_on_id_0(t: &Target) -> Verdict {
    as_relay(t, |c| {
        let cell =
            crate::wire::cell::Cell::with_content(0, Command(99), b"future").ok_or("cell")?;
        c.link.send_cell(&cell).map_err(|e| e.to_string())?;
        c.expect_quiet()?;
        let id = c.next_id();
        let (_, m1) = hop_msg1(t, 2)?;
        c.send(&[create_msg(id, HandshakeType::NOISE_NK_V1, m1)])?;
        match c.recv()? {
            ChanMsg::Created { circ_id, .. } if circ_id == id => Ok(()),
            m => fail(format!("afterwards: {m:?}")),
        }
    })
}

fn push_empty(t: &Target) -> Verdict {
    as_relay(t, |c| {
        let msg = DirMsg::Push {
            descriptors: Vec::new(),
        }
        .encode()
        .map_err(|e| format!("encode: {e}"))?;
        c.send(&dir_fragments(&msg))?;
        c.expect_quiet()
    })
}

fn rpc_from_unlisted(t: &Target) -> Verdict {
    let identity = IdentityKey::generate(&mut os_rng());
    let link = LinkKeypair::generate(&mut os_rng());
    match RawLink::open(None, As::Keys(&identity, &link), &t.desc) {
        Ok(link) => verdict((|| {
            let mut c = Conn::from_link(link);
            let msg = DhtMsg::FindNode {
                id: 18,
                target: random32(),
            };
            c.send(&dht_fragments(&msg.encode()))?;
            let until = Instant::now() + Duration::from_secs(1);
            while Instant::now() < until {
                match c
                    .link
                    .recv_within(super::conn::QUIET)
                    .map_err(|e| e.to_string())?
                {
                    Received::Msg(ChanMsg::Dht { .. }) => {
                        return fail("a DHT message answered an unlisted relay");
                    }
                    Received::Closed => return fail("the relay closed the link"),
                    _ => {}
                }
            }
            Ok(())
        })()),
        Err(e) => Verdict::Fail(format!("link: {e}")),
    }
}

/// A manifest of a fresh site, signed: its record (kind MANIFEST under the site's DHT key).
pub(super) fn signed_manifest(seq: u64) -> Check<Record> {
    let key = IdentityKey::generate(&mut os_rng());
    let files = vec![("index.html".to_string(), b"<h1>conformance</h1>".to_vec())];
    let built = crate::site::build(
        &key,
        &files,
        seq,
        crate::runtime::driver::wall_now(),
        86_400,
    )
    .map_err(|e| format!("build a site: {e}"))?;
    Ok(Record {
        kind: RecordKind::MANIFEST,
        key: crate::site::address::SiteAddress(key.public()).dht_key(),
        value: built.manifest,
    })
}

fn store_manifest_then_find_seq(t: &Target) -> Verdict {
    as_relay(t, |c| {
        let record = signed_manifest(7)?;
        stored(c, 19, &record)?;
        match rpc(
            c,
            &DhtMsg::FindSeq {
                id: 20,
                key: record.key,
                kind: RecordKind::MANIFEST,
            },
        )? {
            DhtMsg::Seq { seq: 7, digest, .. }
                if digest == crate::crypto::hash::hash(&record.value) =>
            {
                Ok(())
            }
            m => fail(format!(
                "expected SEQ 7 with the manifest's digest, got {m:?}"
            )),
        }
    })
}

fn unknown_on_circuit(t: &Target) -> Verdict {
    as_relay(t, |c| {
        let id = c.next_id();
        let (_, m1) = hop_msg1(t, 2)?;
        c.send(&[create_msg(id, HandshakeType::NOISE_NK_V1, m1)])?;
        match c.recv()? {
            ChanMsg::Created { circ_id, .. } if circ_id == id => {}
            m => return fail(format!("expected CREATED, got {m:?}")),
        }
        let cell = crate::wire::cell::Cell::with_content(id.get(), Command(99), b"future")
            .ok_or("cell")?;
        c.link.send_cell(&cell).map_err(|e| e.to_string())?;
        c.expect_destroy(id, DestroyReason::PROTOCOL)?;
        c.expect_quiet()
    })
}

/// STORE `record` as request `id`; it must be answered STORED 0.
fn stored(c: &mut Conn, id: u32, record: &Record) -> Check {
    let msg = DhtMsg::Store {
        id,
        record: record.clone(),
        expires: in_an_hour(),
    };
    match rpc(c, &msg)? {
        DhtMsg::Stored { status: 0, .. } => Ok(()),
        m => fail(format!("expected STORED 0 to STORE {id}, got {m:?}")),
    }
}

/// STORE `record` at the target as the `--as-relay` relay: `None` without it.
pub(super) fn store_as_relay(t: &Target, record: &Record) -> Check<Option<Check>> {
    let Some(dir) = t.as_relay.as_deref() else {
        return Ok(None);
    };
    let link = RawLink::open(None, As::Relay(dir), &t.desc).map_err(|e| e.to_string())?;
    Ok(Some(stored(&mut Conn::from_link(link), 23, record)))
}
