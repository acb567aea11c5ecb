//! Floods against one relay's circuit table and handshakes, sans-IO (issue 12, finding 3;
//! `protocol-spec/09-relay.md#shares`, `#idle-circuits`, `04-circuits.md#replay`,
//! `02-link.md#replay`). The same attacks against the release binary are in
//! `tests/flood_process.rs`.

mod relay_harness;

use std::time::Duration;

use relay_harness::{Harness, destroyed, still_serves};
use umbra::crypto::hop::client_start;
use umbra::crypto::keys::LinkKeypair;
use umbra::crypto::noise::Randomness;
use umbra::ids::LinkId;
use umbra::link::{Handshaking, LinkConfig, LinkError};
use umbra::node::{Input, NodeError};
use umbra::relay::{RelayError, RelayLimits};
use umbra::wire::cell::CircId;
use umbra::wire::restrict::{ChanMsg, CreateBody, DestroyReason, HandshakeType};

fn create(id: u32, msg1: &[u8]) -> ChanMsg {
    ChanMsg::Create {
        circ_id: CircId::new(id).unwrap(),
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
                Some((*l, circ_id.get()))
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
                Some(circ_id.get())
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
