//! Floods against one relay's circuit table and handshakes, sans-IO (issue 12, finding 3;
//! `protocol-spec/09-relay.md#shares`, `#idle-circuits`, `04-circuits.md#replay`,
//! `02-link.md#replay`). The same attacks against the release binary are in
//! `tests/flood_process.rs`.

mod relay_harness;

use std::time::Duration;

use relay_harness::{Harness, cid, destroyed, still_serves};
use umbra::crypto::hop::client_start;
use umbra::crypto::keys::LinkKeypair;
use umbra::crypto::noise::Randomness;
use umbra::ids::LinkId;
use umbra::link::{Handshaking, LinkConfig, LinkError};
use umbra::node::{Input, NodeError};
use umbra::relay::{RelayError, RelayLimits};
use umbra::time::Time;
use umbra::wire::restrict::{ChanMsg, CreateBody, DestroyReason, HandshakeType};

fn create(id: u32, msg1: &[u8]) -> ChanMsg {
    ChanMsg::Create {
        circ_id: cid(id),
        body: CreateBody {
            handshake_type: HandshakeType::NOISE_NK_V1,
            handshake: msg1.to_vec(),
        },
    }
}

#[test]
fn a_replayed_hop_message_1_is_refused_on_every_link() {
    let mut h = Harness::new();
    let (_, msg1) = client_start(&h.onion.clone(), 1, Randomness::Seeded([5; 32])).unwrap();
    let mut a = h.connect();
    let (out, _) = h.send(&mut a, &[create(1, &msg1)]);
    assert!(matches!(out[..], [ChanMsg::Created { .. }]), "{out:?}");
    // The attacker's trick: the same precomputed message, again and again, on many links.
    for link in 0..3 {
        let mut c = h.connect();
        let msgs: Vec<ChanMsg> = (1..=50).map(|id| create(id, &msg1)).collect();
        let (out, closed) = h.send(&mut c, &msgs);
        assert!(!closed);
        assert_eq!(out.len(), 50, "link {link}: {out:?}");
        for id in 1..=50 {
            assert!(destroyed(&out, id, DestroyReason::PROTOCOL), "{out:?}");
        }
        assert_eq!(h.last_error(), Some(NodeError::Relay(RelayError::Replayed)));
    }
    assert_eq!(h.relay.relay_circuits(), 1);
    assert_eq!(h.relay.relay_stats().unwrap().replays, 150);
    still_serves(&mut h, &mut a, 2);
}

#[test]
fn a_replayed_link_message_1_is_refused() {
    let mut h = Harness::new();
    let dial = |h: &Harness| {
        Handshaking::dial(
            LinkConfig::default(),
            h.target,
            &LinkKeypair::from_secret_bytes([3; 32]),
            None,
            Randomness::Seeded([4; 32]),
            h.now,
        )
        .unwrap()
        .poll_transmit()
        .unwrap()
    };
    let msg1 = dial(&h);
    for (i, expect_answer) in [(1u64, true), (2, false), (3, false)] {
        let link = LinkId(1000 + i);
        h.relay.handle(
            h.now,
            Input::LinkOpened {
                link,
                peer: "192.168.0.7:4000".parse().unwrap(),
                outbound: None,
            },
        );
        h.relay.handle(
            h.now,
            Input::LinkBytes {
                link,
                bytes: msg1.clone(),
            },
        );
        let (back, closed) = h.take_bytes(link);
        if expect_answer {
            assert!(
                !back.is_empty() && !closed,
                "the first message 1 is answered"
            );
        } else {
            assert!(back.is_empty() && closed, "a replay gets no answer");
            assert!(matches!(
                h.last_error(),
                Some(NodeError::Link {
                    error: LinkError::Replayed,
                    ..
                })
            ));
        }
    }
    // Honest links still come up.
    let mut c = h.connect();
    still_serves(&mut h, &mut c, 1);
}

#[test]
fn a_full_table_gives_way_to_a_smaller_source() {
    let limits = RelayLimits {
        max_circuits: 20,
        max_circuits_per_link: 10,
        ..RelayLimits::default()
    };
    let mut h = Harness::with_limits(limits);
    // One client, two links from one network, fills the table (fresh handshakes each time).
    let mut f1 = h.connect_from("10.9.0.9:5000");
    let mut f2 = h.connect_from("10.9.0.9:5001");
    for id in 1..=10 {
        h.create(&mut f1, id);
        h.create(&mut f2, id);
    }
    assert_eq!(h.relay.relay_circuits(), 20);
    // A third link from the same network gets nothing: it is the largest source.
    let mut f3 = h.connect_from("10.9.0.9:5002");
    let (_, m) = client_start(&h.onion.clone(), 1, Randomness::Seeded([77; 32])).unwrap();
    let (out, _) = h.send(&mut f3, &[create(1, &m)]);
    assert!(destroyed(&out, 1, DestroyReason::RESOURCE_LIMIT), "{out:?}");
    // Honest readers from other networks build and use circuits; each takes the flooder's
    // oldest circuit, which is closed towards the flooder.
    for (i, net) in ["10.1.0.1:6000", "10.2.0.1:6000", "10.3.0.1:6000"]
        .iter()
        .enumerate()
    {
        let mut c = h.connect_from(net);
        still_serves(&mut h, &mut c, 1);
        assert_eq!(h.relay.relay_circuits(), 20, "reader {i}");
    }
    let (got, _) = h.advance(Duration::ZERO, &mut [&mut f1, &mut f2]);
    let evicted: Vec<(LinkId, u32)> = got
        .iter()
        .filter_map(|(l, m)| match m {
            ChanMsg::Destroy { circ_id, reason } if *reason == DestroyReason::RESOURCE_LIMIT => {
                Some((*l, circ_id.get() & 0x7fff_ffff))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        evicted,
        vec![(f1.link, 1), (f2.link, 1), (f1.link, 2)],
        "the oldest go first"
    );
    assert_eq!(h.relay.relay_stats().unwrap().evicted, 3);
    // The flooder still cannot grow back.
    let (_, m) = client_start(&h.onion.clone(), 1, Randomness::Seeded([78; 32])).unwrap();
    let (out, _) = h.send(&mut f3, &[create(2, &m)]);
    assert!(destroyed(&out, 2, DestroyReason::RESOURCE_LIMIT), "{out:?}");
}

#[test]
fn idle_circuits_expire_and_sooner_under_pressure() {
    let limits = RelayLimits {
        max_circuits: 8,
        max_circuits_per_link: 8,
        idle_timeout: Duration::from_secs(50),
        pressure_idle_timeout: Duration::from_secs(20),
        ..RelayLimits::default()
    };
    let mut h = Harness::with_limits(limits);
    let mut c = h.connect();
    h.create(&mut c, 1);
    h.create(&mut c, 2);
    let (got, _) = h.advance(Duration::from_secs(25), &mut [&mut c]);
    assert!(
        got.iter()
            .all(|(_, m)| !matches!(m, ChanMsg::Destroy { .. })),
        "{got:?}"
    );
    assert_eq!(h.relay.relay_circuits(), 2);
    // Circuit 1 carries a stream; circuit 2 stays idle past the limit.
    let mut l1 = h.create(&mut c, 3);
    let (out, _) = h.send(
        &mut c,
        &[relay_harness::relay_cell(
            3,
            &mut l1,
            &umbra::wire::relay_msg::RelayMsg::Begin {
                stream_id: 1,
                service: b"echo".to_vec(),
            },
        )],
    );
    assert_eq!(out.len(), 1);
    let (got, _) = h.advance(Duration::from_secs(30), &mut [&mut c]);
    let gone: Vec<u32> = got
        .iter()
        .filter_map(|(_, m)| match m {
            ChanMsg::Destroy { circ_id, reason } if *reason == DestroyReason::FINISHED => {
                Some(circ_id.get() & 0x7fff_ffff)
            }
            _ => None,
        })
        .collect();
    assert_eq!(gone, vec![1, 2], "only the idle circuits expire");
    assert_eq!(h.relay.relay_circuits(), 1);
    // Three-quarters full: 20 s of silence is enough.
    for id in 4..=8 {
        h.create(&mut c, id);
    }
    let (got, _) = h.advance(Duration::from_secs(21), &mut [&mut c]);
    let expired = got
        .iter()
        .filter(|(_, m)| matches!(m, ChanMsg::Destroy { reason, .. } if *reason == DestroyReason::FINISHED))
        .count();
    assert_eq!(expired, 6, "{got:?}");
    assert_eq!(h.relay.relay_circuits(), 0);
    assert_eq!(h.relay.relay_stats().unwrap().expired, 8);
}

/// Link timers come from one ordered set (issue 13 item 3: `poll_timeout` is O(log n), no
/// scan of every link): with 2,000 half-open links and two established ones, the relay's
/// next timer is the first handshake deadline; when it comes every half-open link is closed
/// and the established ones stay; later an idle link is closed after 120 s of silence while
/// a busy one, whose deadline moved on with every message, stays.
#[test]
fn link_timers_fire_from_one_ordered_set_across_thousands_of_links() {
    let mut h = Harness::new();
    let mut busy = h.connect();
    let mut idle = h.connect();
    let half_open: Vec<LinkId> = (0..2_000u64).map(|i| LinkId(50_000 + i)).collect();
    for (i, &link) in half_open.iter().enumerate() {
        h.relay.handle(
            h.now,
            Input::LinkOpened {
                link,
                peer: format!("10.{}.{}.1:4000", 20 + i / 250, i % 250)
                    .parse()
                    .unwrap(),
                outbound: None,
            },
        );
    }
    let handshake = LinkConfig::default().handshake_timeout;
    assert_eq!(h.relay.poll_timeout(), Some(h.now + handshake));
    assert_eq!(h.relay.link_count(), 2_002);
    let (_, closed) = h.advance(handshake, &mut [&mut busy, &mut idle]);
    let closed: std::collections::BTreeSet<LinkId> = closed.into_iter().collect();
    assert_eq!(closed.len(), 2_000);
    assert!(half_open.iter().all(|l| closed.contains(l)));
    assert_eq!(h.relay.link_count(), 2);
    // The established links' keepalives come next.
    let keepalive = LinkConfig::default().keepalive_interval;
    assert_eq!(h.relay.poll_timeout(), Some(Time::ZERO + keepalive));
    // To 140 s: the busy link speaks every 10 s, the idle one never after its handshake.
    let mut idle_closed_at = None;
    for step in 1..=13u64 {
        h.send(&mut busy, &[ChanMsg::Padding]);
        let (_, closed) = h.advance(Duration::from_secs(10), &mut [&mut busy, &mut idle]);
        assert!(!closed.contains(&busy.link), "the busy link was closed");
        if closed.contains(&idle.link) && idle_closed_at.is_none() {
            idle_closed_at = Some(handshake.as_secs() + step * 10);
        }
    }
    assert_eq!(
        idle_closed_at,
        Some(120),
        "the idle link closes 120 s after the last message it sent (at 0 s)"
    );
    assert!(matches!(
        h.last_error(),
        Some(NodeError::Link {
            error: LinkError::IdleTimeout,
            ..
        })
    ));
    assert_eq!(h.relay.link_count(), 1);
}

/// A relay whose DHT store holds one manifest of about 0.9 MB (the finding's size).
fn exit_with_big_manifest() -> (Harness, [u8; 32]) {
    use umbra::dht::RecordValidator;
    let mut h = Harness::new();
    let wall = umbra::time::WallTime(200);
    let key =
        umbra::crypto::keys::IdentityKey::generate(&mut umbra::crypto::rng::UmbraRng::from_u64(5));
    let files: Vec<(String, Vec<u8>)> = (0..880)
        .map(|i| (format!("{i:04}/{}", "p".repeat(990)), vec![b'x']))
        .collect();
    let built = umbra::site::build(&key, &files, 1, wall, 86_400).unwrap();
    let rec = umbra::wire::dht_msg::Record {
        kind: umbra::wire::dht_msg::RecordKind::MANIFEST,
        key: built.parsed.address().dht_key(),
        value: built.manifest.clone(),
    };
    assert!(rec.value.len() > 850_000, "{}", rec.value.len());
    let info = umbra::node::SiteValidator.validate(&rec, wall).unwrap();
    let mut store = umbra::dht::store::MemoryStore::new(1 << 30);
    umbra::dht::store::RecordStore::put(&mut store, &rec, info, true).unwrap();
    h.relay.enable_dht(h.now, Some(Box::new(store)));
    (h, rec.key)
}

/// The relay messages for the reader among `out`, on circuit `layers`.
fn relay_msgs(
    layers: &mut umbra::crypto::layer::ClientLayers,
    out: &[ChanMsg],
) -> Vec<umbra::wire::relay_msg::RelayMsg> {
    use umbra::wire::relay_msg::{RelayContext, RelayMsg};
    out.iter()
        .filter_map(|m| match m {
            ChanMsg::Relay { body, .. } => {
                let mut b = **body;
                let (_, off) = layers.open_backward(&mut b).ok()?;
                RelayMsg::decode(&b[off..off + 512], RelayContext::AtReader).ok()
            }
            _ => None,
        })
        .collect()
}

/// On circuit `id` of `c`: BEGIN `streams` `dht` streams, then send `requests` on each
/// stream the exit accepted, never returning a SENDME. Returns the streams it accepted and
/// the replies that came back at once.
fn exit_requests(
    h: &mut Harness,
    c: &mut relay_harness::Client,
    id: u32,
    streams: u16,
    requests: &[umbra::wire::dht_msg::ExitRequest],
) -> (usize, Vec<umbra::wire::dht_msg::ExitReply>) {
    use umbra::wire::dht_msg::{ExitReply, StreamFramer};
    use umbra::wire::relay_msg::{MAX_DATA, RelayMsg};
    let mut layers = h.create(c, id);
    let begins: Vec<ChanMsg> = (1..=streams)
        .map(|s| {
            relay_harness::relay_cell(
                id,
                &mut layers,
                &RelayMsg::Begin {
                    stream_id: s,
                    service: b"dht".to_vec(),
                },
            )
        })
        .collect();
    let (out, _) = h.send(c, &begins);
    let accepted: Vec<u16> = relay_msgs(&mut layers, &out)
        .into_iter()
        .filter_map(|m| match m {
            RelayMsg::Connected { stream_id } => Some(stream_id),
            _ => None,
        })
        .collect();
    let mut framer = StreamFramer::default();
    let mut replies = Vec::new();
    for &s in &accepted {
        let bytes: Vec<u8> = requests
            .iter()
            .flat_map(|r| StreamFramer::frame(&r.encode()))
            .collect();
        let cells: Vec<ChanMsg> = bytes
            .chunks(MAX_DATA)
            .map(|d| {
                relay_harness::relay_cell(
                    id,
                    &mut layers,
                    &RelayMsg::Data {
                        stream_id: s,
                        data: d.to_vec(),
                    },
                )
            })
            .collect();
        let (out, _) = h.send(c, &cells);
        for m in relay_msgs(&mut layers, &out) {
            if let RelayMsg::Data { data, .. } = m {
                framer.push(&data);
                while let Ok(Some(msg)) = framer.next_message() {
                    replies.extend(ExitReply::decode(&msg));
                }
            }
        }
    }
    (accepted.len(), replies)
}

/// [`exit_requests`] with `gets` GETs of the manifest `key` on each stream.
fn get_flood(
    h: &mut Harness,
    c: &mut relay_harness::Client,
    id: u32,
    streams: u16,
    gets: u32,
    key: [u8; 32],
) -> usize {
    use umbra::wire::dht_msg::{ExitRequest, RecordKind};
    let gets: Vec<ExitRequest> = (0..gets)
        .map(|g| ExitRequest::Get {
            id: g,
            kind: RecordKind::MANIFEST,
            key,
        })
        .collect();
    exit_requests(h, c, id, streams, &gets).0
}

/// Issue 12, finding 4 (`06-dht.md#lifetime`): an exit refuses, as invalid, a `PUT` asking
/// storers to keep a record until a time already past, and takes one asking for later.
#[test]
fn an_exit_refuses_a_put_whose_expiry_has_passed() {
    use umbra::wire::dht_msg::{ExitReply, ExitRequest, Record, RecordKind};
    let (mut h, _) = exit_with_big_manifest();
    let mut c = h.connect();
    let wall = h.relay.wall(h.now).0;
    let put = |id, expires| ExitRequest::Put {
        id,
        record: Record {
            kind: RecordKind::BLOCK,
            key: *blake3::hash(b"block").as_bytes(),
            value: b"block".to_vec(),
        },
        expires,
    };
    let (accepted, replies) =
        exit_requests(&mut h, &mut c, 1, 1, &[put(1, wall), put(2, wall + 60)]);
    assert_eq!(accepted, 1);
    // The second ran its store (this exit knows no other storers: 0 copies).
    assert_eq!(
        replies,
        [
            ExitReply::Refused { id: 1, reason: 1 },
            ExitReply::Stored { id: 2, copies: 0 }
        ]
    );
}

#[test]
fn exit_memory_is_bounded_per_circuit_under_a_get_flood() {
    let (mut h, key) = exit_with_big_manifest();
    let mut c = h.connect();
    // The finding: 100 streams x 4 GETs of a 0.9 MB manifest, no SENDME returned.
    let accepted = get_flood(&mut h, &mut c, 1, 100, 4, key);
    let (lookups, queued) = h.relay.exit_load();
    eprintln!(
        "one circuit: {accepted} streams accepted, {lookups} lookups running, {queued} B queued"
    );
    assert_eq!(accepted, umbra::relay::exit::MAX_STREAMS_PER_CIRCUIT);
    assert!(
        queued <= umbra::relay::exit::MAX_SERVICE_QUEUE,
        "{queued} B queued on one circuit"
    );
    // The circuit still works, and closing it returns everything.
    still_serves(&mut h, &mut c, 2);
    h.relay.handle(h.now, Input::LinkClosed { link: c.link });
    assert_eq!(h.relay.exit_load(), (0, 0));
}

#[test]
fn exit_memory_is_bounded_for_the_relay_under_many_flooding_circuits() {
    let (mut h, key) = exit_with_big_manifest();
    let mut total_accepted = 0;
    for i in 0..40u32 {
        let mut c = h.connect_from(&format!("10.{i}.0.1:5000"));
        total_accepted += get_flood(&mut h, &mut c, 1, 16, 4, key);
    }
    let (_, queued) = h.relay.exit_load();
    eprintln!("40 circuits: {total_accepted} streams, {queued} B queued in all");
    assert!(
        queued <= (64 << 20) + umbra::relay::exit::MAX_SERVICE_QUEUE,
        "{queued} B queued for the relay"
    );
    // An honest reader still gets its echo circuit.
    let mut c = h.connect_from("10.200.0.1:5000");
    still_serves(&mut h, &mut c, 1);
}

#[test]
fn a_create_flood_waits_its_turn_for_the_cpu_and_overflows_into_overloaded() {
    // 1 ms a handshake, 10% of a core, three-quarters of it for handshakes: 75 a second;
    // the queue holds what 1.75 s answers, 131 (`09-relay.md#handshakes`).
    let limits = RelayLimits {
        handshake_cost: Duration::from_millis(1),
        cpu_percent: 10,
        creates_per_sec: 100_000,
        create_burst: 100_000,
        ..RelayLimits::default()
    };
    let mut h = Harness::with_limits(limits);
    let mut flood = h.connect_from("10.9.0.9:5000");
    let mut honest = h.connect_from("10.1.0.1:6000");
    let onion = h.onion;
    let (mut created, mut overloaded) = (0, 0);
    for batch in 0..6u32 {
        let msgs: Vec<ChanMsg> = (1..=50u32)
            .map(|i| {
                let id = batch * 50 + i;
                let mut seed = [9u8; 32];
                seed[..4].copy_from_slice(&id.to_le_bytes());
                create(
                    id,
                    &client_start(&onion, 1, Randomness::Seeded(seed)).unwrap().1,
                )
            })
            .collect();
        let (out, _) = h.send(&mut flood, &msgs);
        created += out
            .iter()
            .filter(|m| matches!(m, ChanMsg::Created { .. }))
            .count();
        overloaded += out
            .iter()
            .filter(|m| matches!(m, ChanMsg::Destroy { reason, .. } if *reason == DestroyReason::OVERLOADED))
            .count();
    }
    // A few answered from the budget's bank, 131 waiting, the rest refused at once.
    assert!(created <= 8, "{created} answered at once: no budget");
    assert_eq!(created + overloaded + 131, 300, "{created} + {overloaded}");
    // An honest CREATE from another network still gets in (the flood's newest makes room)
    // and is answered within its first turns, not behind 131 of the flood's.
    let (_, m) = client_start(&onion, 1, Randomness::Seeded([1; 32])).unwrap();
    let (out, _) = h.send(&mut honest, &[create(1, &m)]);
    assert!(out.is_empty(), "{out:?}");
    let mut answered_at = None;
    for step in 1..=20 {
        let (got, _) = h.advance(Duration::from_millis(10), &mut [&mut flood, &mut honest]);
        if got
            .iter()
            .any(|(l, m)| *l == honest.link && matches!(m, ChanMsg::Created { .. }))
        {
            answered_at = Some(step * 10);
            break;
        }
    }
    let ms = answered_at.expect("the honest CREATE was not answered within 200 ms");
    assert!(ms <= 100, "answered after {ms} ms");
    let stats = h.relay.handshake_stats().unwrap();
    assert_eq!(stats.refused_overloaded as usize, overloaded + 1);
}

#[test]
fn an_anonymous_source_past_its_create_rate_is_refused() {
    let limits = RelayLimits {
        creates_per_sec: 2,
        create_burst: 5,
        ..RelayLimits::default()
    };
    let mut h = Harness::with_limits(limits);
    let mut c = h.connect_from("10.9.0.9:5000");
    let onion = h.onion;
    let mut outs = Vec::new();
    for id in 1..=8u32 {
        let (_, m) = client_start(&onion, 1, Randomness::Seeded([id as u8; 32])).unwrap();
        let (out, _) = h.send(&mut c, &[create(id, &m)]);
        outs.extend(out);
    }
    let created = outs
        .iter()
        .filter(|m| matches!(m, ChanMsg::Created { .. }))
        .count();
    assert_eq!(created, 5, "{outs:?}");
    assert!(destroyed(&outs, 6, DestroyReason::RESOURCE_LIMIT));
    assert_eq!(h.relay.handshake_stats().unwrap().refused_rate, 3);
    // Half a second later, one more.
    h.advance(Duration::from_millis(500), &mut [&mut c]);
    let (_, m) = client_start(&onion, 1, Randomness::Seeded([99; 32])).unwrap();
    let (out, _) = h.send(&mut c, &[create(9, &m)]);
    assert!(matches!(out[..], [ChanMsg::Created { .. }]), "{out:?}");
}

#[test]
fn reading_pauses_while_the_inbound_total_is_in_debt() {
    // `[limits] rate` = 64 KiB/s: bytes read past it stop the driver reading until the
    // bucket is repaid (`09-relay.md#bandwidth`).
    let mut h = Harness::new();
    let now = h.now;
    h.relay.set_limits(
        now,
        umbra::limits::Limits {
            rate: Some(64 << 10),
            burst: Some(64 << 10),
            ..umbra::limits::Limits::default()
        },
    );
    let mut c = h.connect();
    assert!(!h.relay.read_paused(h.now, c.link));
    let padding: Vec<ChanMsg> = (0..50).map(|_| ChanMsg::Padding).collect();
    for _ in 0..8 {
        h.send(&mut c, &padding);
    }
    assert!(
        h.relay.read_paused(h.now, c.link),
        "200 KB read at 64 KiB/s"
    );
    h.advance(Duration::from_millis(1500), &mut [&mut c]);
    assert!(h.relay.read_paused(h.now, c.link), "still in debt");
    h.advance(Duration::from_secs(2), &mut [&mut c]);
    assert!(!h.relay.read_paused(h.now, c.link), "repaid after ~3 s");
}
