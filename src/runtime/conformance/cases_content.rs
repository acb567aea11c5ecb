//! Live cases for a relay's content service and its directory (`protocol-spec/06-dht.md
//! #exit-requests`, `10-directory.md#messages`): framed requests on a `dht` stream, valid,
//! pipelined, split over cells, malformed and oversized; `SYNC` from a reader and `DIR`
//! framing errors. Not in this module: the DHT between relays (a reader cannot speak it).

use super::conn::{Conn, with_conn};
use super::{Case, Check, Target, Verdict, fail};
use crate::crypto::layer::ClientLayers;
use crate::directory::sync::summary;
use crate::directory::{Directory, Verified};
use crate::wire::cell::CircId;
use crate::wire::dht_msg::{ExitReply, ExitRequest, Record, RecordKind, StreamFramer};
use crate::wire::dir_msg::{DirMsg, MAX_DIR_MESSAGE};
use crate::wire::relay_msg::{MAX_DATA, RelayMsg};
use crate::wire::restrict::{ChanMsg, DhtReassembler, dir_fragments};

/// The content and directory cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "content.get-missing",
            spec: "06-dht.md#exit-requests",
            what: "GET of a key nobody holds is answered NOT_FOUND with the request's id",
            run: get_missing,
        },
        Case {
            id: "content.pipelined",
            spec: "06-dht.md#exit-requests",
            what: "three GETs sent at once are each answered exactly once, matched by id",
            run: pipelined,
        },
        Case {
            id: "content.split-over-cells",
            spec: "06-dht.md#exit-requests",
            what: "a GET split over three DATA cells (the length prefix itself split) is answered",
            run: split_over_cells,
        },
        Case {
            id: "content.packed-in-one-cell",
            spec: "06-dht.md#exit-requests",
            what: "two GETs packed into one DATA cell are both answered",
            run: packed,
        },
        Case {
            id: "content.put-stored",
            spec: "06-dht.md#exit-requests",
            what: "PUT of a signed manifest is answered STORED (copies: the storers that accepted it)",
            run: put_stored,
        },
        Case {
            id: "content.get-found",
            spec: "06-dht.md#exit-requests",
            what: "GET of a manifest the relay holds (stored there as a relay, with --as-relay) answers FOUND with the same record",
            run: get_found,
        },
        Case {
            id: "content.malformed",
            spec: "06-dht.md#exit-requests",
            what: "a request of unknown type is answered REFUSED INVALID with id 0",
            run: malformed,
        },
        Case {
            id: "content.oversized-frame",
            spec: "06-dht.md#exit-requests",
            what: "a frame announcing more than 1,052,672 bytes is answered REFUSED INVALID with id 0",
            run: oversized_frame,
        },
        Case {
            id: "content.put-bad-block",
            spec: "06-dht.md#records",
            what: "PUT of a block whose key is not its hash is answered REFUSED INVALID",
            run: put_bad_block,
        },
        Case {
            id: "content.put-expired",
            spec: "06-dht.md#exit-requests",
            what: "PUT whose expiry has passed is answered REFUSED INVALID",
            run: put_expired,
        },
        Case {
            id: "content.refresh-unknown-kind",
            spec: "06-dht.md#exit-requests",
            what: "REFRESH of a kind storers do not keep is answered REFUSED INVALID",
            run: refresh_unknown_kind,
        },
        Case {
            id: "content.many-pipelined",
            spec: "06-dht.md#exit-requests",
            what: "40 GETs pipelined on one circuit are each answered once: NOT_FOUND, or REFUSED BUSY past a cap",
            run: past_the_cap,
        },
        Case {
            id: "content.past-the-manifest-cap",
            spec: "06-dht.md#exit-requests",
            what: "5 manifest GETs sent at once on one circuit: 2 run, the other 3 are REFUSED BUSY at once",
            run: past_the_manifest_cap,
        },
        Case {
            id: "dir.sync-from-reader",
            spec: "10-directory.md#messages",
            what: "a reader's SYNC with an empty summary is answered ENTRIES with its id, holding the relay's own descriptor",
            run: sync_from_reader,
        },
        Case {
            id: "dir.malformed",
            spec: "10-directory.md#messages",
            what: "a DIR message of unknown type closes the link",
            run: dir_malformed,
        },
        Case {
            id: "dir.continuation-without-start",
            spec: "03-cells.md#dir",
            what: "a DIR continuation fragment with no message started closes the link",
            run: dir_continuation,
        },
        Case {
            id: "dir.oversized",
            spec: "03-cells.md#dir",
            what: "a DIR message announcing more than 262,144 bytes closes the link",
            run: dir_oversized,
        },
        Case {
            id: "dir.push-from-reader",
            spec: "10-directory.md#messages",
            what: "a PUSH from a reader is ignored: nothing answers, the link serves on",
            run: push_from_reader,
        },
    ]
}

/// A one-hop circuit with stream 1 open to `dht`.
fn dht_stream(c: &mut Conn, t: &Target) -> Check<(CircId, ClientLayers)> {
    let (id, mut layers) = c.create(t)?;
    c.begin(id, &mut layers, 1, b"dht")?;
    Ok((id, layers))
}

/// A request framed for the stream (`u32 length || message`).
fn framed(msg: &[u8]) -> Vec<u8> {
    StreamFramer::frame(msg)
}

/// Send `bytes` on stream 1 in DATA cells of at most `chunk` bytes.
fn send_stream(
    c: &mut Conn,
    id: CircId,
    l: &mut ClientLayers,
    bytes: &[u8],
    chunk: usize,
) -> Check {
    for part in bytes.chunks(chunk.clamp(1, MAX_DATA)) {
        c.relay(
            id,
            l,
            &RelayMsg::Data {
                stream_id: 1,
                data: part.to_vec(),
            },
        )?;
    }
    Ok(())
}

/// Reads framed replies from stream 1.
#[derive(Default)]
struct Replies(StreamFramer);

impl Replies {
    fn next(&mut self, c: &mut Conn, id: CircId, l: &mut ClientLayers) -> Check<ExitReply> {
        loop {
            let whole = self
                .0
                .next_message()
                .map_err(|e| format!("a reply frame: {e}"))?;
            if let Some(msg) = whole {
                return ExitReply::decode(&msg)
                    .map_err(|e| format!("a reply that does not decode: {e}").into());
            }
            match c.recv_relay(id, l)? {
                RelayMsg::Data { stream_id: 1, data } => self.0.push(&data),
                RelayMsg::Sendme { .. } => {}
                m => return fail(format!("expected DATA on the dht stream, got {m:?}")),
            }
        }
    }
}

fn get(id: u32, key: [u8; 32]) -> ExitRequest {
    ExitRequest::Get {
        id,
        kind: RecordKind::MANIFEST,
        key,
    }
}

fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    crate::runtime::driver::os_rng().fill(&mut k);
    k
}

/// The reply is REFUSED `reason` to request `want`.
fn refused(r: &ExitReply, want: u32, reason: u8) -> Check {
    match r {
        ExitReply::Refused { id, reason: got } if *id == want && *got == reason => Ok(()),
        r => fail(format!("expected REFUSED {reason} to id {want}, got {r:?}")),
    }
}

/// Send one request frame (`bytes`, already framed) and expect REFUSED `reason` to `want`.
fn one(t: &Target, bytes: Vec<u8>, want: u32, reason: u8) -> Verdict {
    with_conn(t, |c| {
        let (id, mut l) = dht_stream(c, t)?;
        send_stream(c, id, &mut l, &bytes, MAX_DATA)?;
        let r = Replies::default().next(c, id, &mut l)?;
        refused(&r, want, reason)
    })
}

fn get_missing(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let (id, mut l) = dht_stream(c, t)?;
        send_stream(
            c,
            id,
            &mut l,
            &framed(&get(7, random_key()).encode()),
            MAX_DATA,
        )?;
        match Replies::default().next(c, id, &mut l)? {
            ExitReply::NotFound { id: 7 } => Ok(()),
            r => fail(format!("expected NOT_FOUND 7, got {r:?}")),
        }
    })
}

/// Send `n` GETs as one byte string in DATA cells of `chunk` bytes; every id answered once.
fn answered_once(t: &Target, n: u32, chunk: usize) -> Check<Vec<ExitReply>> {
    let mut c = Conn::open(t).map_err(|e| format!("link: {e}"))?;
    let (id, mut l) = dht_stream(&mut c, t)?;
    let mut bytes = Vec::new();
    for i in 1..=n {
        bytes.extend_from_slice(&framed(&get(i, random_key()).encode()));
    }
    send_stream(&mut c, id, &mut l, &bytes, chunk)?;
    let mut replies = Replies::default();
    let mut seen = Vec::new();
    for _ in 0..n {
        let r = replies.next(&mut c, id, &mut l)?;
        let rid = r.id();
        if rid == 0 || rid > n || seen.iter().any(|s: &ExitReply| s.id() == rid) {
            return fail(format!("reply {r:?} does not match one unanswered request"));
        }
        seen.push(r);
    }
    c.expect_quiet()?;
    Ok(seen)
}

fn pipelined(t: &Target) -> Verdict {
    super::conn::verdict(answered_once(t, 3, MAX_DATA).map(|_| ()))
}

fn split_over_cells(t: &Target) -> Verdict {
    // 42 bytes framed (4 + 1 + 4 + 1 + 32) in cells of 3 bytes: the length prefix spans two.
    super::conn::verdict(answered_once(t, 1, 3).map(|_| ()))
}

fn packed(t: &Target) -> Verdict {
    super::conn::verdict(answered_once(t, 2, MAX_DATA).map(|_| ()))
}

fn malformed(t: &Target) -> Verdict {
    one(t, framed(&[99, 0, 0, 0, 5]), 0, 1)
}

fn oversized_frame(t: &Target) -> Verdict {
    one(t, 1_052_673u32.to_be_bytes().to_vec(), 0, 1)
}

fn put_bad_block(t: &Target) -> Verdict {
    let put = ExitRequest::Put {
        id: 9,
        record: Record {
            kind: RecordKind::BLOCK,
            key: [7; 32],
            value: b"not the preimage of its key".to_vec(),
        },
        expires: crate::runtime::driver::wall_now().0 + 3600,
    };
    one(t, framed(&put.encode()), 9, 1)
}

fn put_expired(t: &Target) -> Verdict {
    let value = b"a block whose expiry is past".to_vec();
    let put = ExitRequest::Put {
        id: 11,
        record: Record {
            kind: RecordKind::BLOCK,
            key: crate::crypto::hash::hash(&value),
            value,
        },
        expires: 1,
    };
    one(t, framed(&put.encode()), 11, 1)
}

fn refresh_unknown_kind(t: &Target) -> Verdict {
    let refresh = ExitRequest::Refresh {
        id: 12,
        kind: RecordKind(200),
        key: random_key(),
        expires: crate::runtime::driver::wall_now().0 + 3600,
    };
    one(t, framed(&refresh.encode()), 12, 1)
}

fn past_the_cap(t: &Target) -> Verdict {
    super::conn::verdict(answered_once(t, 40, MAX_DATA).and_then(|replies| {
        for r in &replies {
            match r {
                ExitReply::NotFound { .. } | ExitReply::Refused { reason: 2, .. } => {}
                r => return fail(format!("expected NOT_FOUND or REFUSED BUSY, got {r:?}")),
            }
        }
        Ok(())
    }))
}

fn sync_from_reader(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let msg = DirMsg::Sync {
            id: 77,
            digests: summary(&Directory::new()),
        }
        .encode()
        .map_err(|e| format!("encode: {e}"))?;
        c.send(&dir_fragments(&msg))?;
        let mut r = DhtReassembler::default();
        loop {
            let ChanMsg::Dir { first, data } = c.recv()? else {
                return fail("expected DIR cells");
            };
            let whole = r
                .push(first, &data, MAX_DIR_MESSAGE)
                .map_err(|e| format!("the relay's DIR fragments: {e}"))?;
            let Some(m) = whole else { continue };
            let DirMsg::Entries {
                id: 77,
                descriptors,
                more,
            } = DirMsg::decode(&m).map_err(|e| format!("ENTRIES: {e}"))?
            else {
                return fail("expected ENTRIES 77");
            };
            let own = descriptors.iter().any(|d| {
                crate::directory::parse(d)
                    .and_then(|u| u.verify(crate::runtime::driver::wall_now()))
                    .is_ok_and(|v: Verified| v.descriptor().node_id() == t.desc.node_id())
            });
            if own {
                return Ok(());
            }
            if !more {
                return fail("ENTRIES without the relay's own descriptor");
            }
        }
    })
}

fn raw_dir(t: &Target, first: bool, data: Vec<u8>) -> Verdict {
    with_conn(t, |c| {
        c.send(&[ChanMsg::Dir { first, data }])?;
        c.expect_closed()
    })
}

fn dir_malformed(t: &Target) -> Verdict {
    let mut data = 3u32.to_be_bytes().to_vec();
    data.extend_from_slice(&[99, 0, 0]);
    raw_dir(t, true, data)
}

fn dir_continuation(t: &Target) -> Verdict {
    raw_dir(t, false, vec![0; 10])
}

fn dir_oversized(t: &Target) -> Verdict {
    raw_dir(t, true, 262_145u32.to_be_bytes().to_vec())
}

fn push_from_reader(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let msg = DirMsg::Push {
            descriptors: Vec::new(),
        }
        .encode()
        .map_err(|e| format!("encode: {e}"))?;
        c.send(&dir_fragments(&msg))?;
        c.expect_quiet()?;
        c.still_serves(t)
    })
}

fn past_the_manifest_cap(t: &Target) -> Verdict {
    capped(t, RecordKind::MANIFEST, 5, 2)
}

/// `n` GETs of `kind` at once on one circuit: the first `n - cap` answers are REFUSED BUSY.
/// (Block lookups end at once on a relay with no DHT peer to ask, so only the manifest cap
/// can be seen from outside there; the block cap is tested in `node::exit_load`.)
fn capped(t: &Target, kind: RecordKind, n: u32, cap: u32) -> Verdict {
    with_conn(t, |c| {
        let (id, mut l) = dht_stream(c, t)?;
        let mut bytes = Vec::new();
        for i in 1..=n {
            let get = ExitRequest::Get {
                id: i,
                kind,
                key: random_key(),
            };
            bytes.extend_from_slice(&framed(&get.encode()));
        }
        send_stream(c, id, &mut l, &bytes, crate::wire::relay_msg::MAX_DATA)?;
        let mut replies = Replies::default();
        let mut seen = Vec::new();
        let mut busy_first = 0;
        let mut kinds: Vec<String> = Vec::new();
        for k in 0..n {
            let r = replies.next(c, id, &mut l)?;
            let rid = r.id();
            if rid == 0 || rid > n || seen.contains(&rid) {
                return fail(format!("reply {r:?} does not match one unanswered request"));
            }
            seen.push(rid);
            kinds.push(match r {
                ExitReply::Refused { reason, .. } => format!("R{reason}"),
                ExitReply::NotFound { .. } => "N".to_string(),
                _ => "?".to_string(),
            });
            if matches!(r, ExitReply::Refused { reason: 2, .. }) && k == busy_first {
                busy_first += 1;
            }
        }
        if busy_first != n - cap {
            return fail(format!(
                "{busy_first} REFUSED BUSY came first; {n} - {cap} = {} expected at once ({})",
                n - cap,
                kinds.join(" ")
            ));
        }
        Ok(())
    })
}

fn put_stored(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let record = super::cases_relay::signed_manifest(3)?;
        let (id, mut l) = dht_stream(c, t)?;
        let put = ExitRequest::Put {
            id: 21,
            record,
            expires: crate::runtime::driver::wall_now().0 + 3600,
        };
        send_stream(c, id, &mut l, &framed(&put.encode()), MAX_DATA)?;
        match Replies::default().next(c, id, &mut l)? {
            ExitReply::Stored { id: 21, .. } => Ok(()),
            r => fail(format!("expected STORED 21, got {r:?}")),
        }
    })
}

fn get_found(t: &Target) -> Verdict {
    let record = match super::cases_relay::signed_manifest(4) {
        Ok(r) => r,
        Err(e) => return Verdict::Fail(e.0),
    };
    // An exit stores on other relays, never on itself: a relay's STORE puts it there.
    match super::cases_relay::store_as_relay(t, &record) {
        Ok(None) => return Verdict::Skip(super::cases_relay::NEEDS.into()),
        Ok(Some(Ok(()))) => {}
        Ok(Some(Err(e))) | Err(e) => return Verdict::Fail(e.0),
    }
    with_conn(t, |c| {
        let (id, mut l) = dht_stream(c, t)?;
        let get = ExitRequest::Get {
            id: 22,
            kind: RecordKind::MANIFEST,
            key: record.key,
        };
        send_stream(c, id, &mut l, &framed(&get.encode()), MAX_DATA)?;
        match Replies::default().next(c, id, &mut l)? {
            ExitReply::Found {
                id: 22,
                record: got,
            } if got == record => Ok(()),
            r => fail(format!(
                "expected FOUND 22 with the record stored, got {r:?}"
            )),
        }
    })
}
