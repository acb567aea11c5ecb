//! Tier 3: property tests for the decoders and state machines added with circuits and
//! content: relay messages, DHT and exit messages, descriptors, manifests, addresses,
//! fragment reassembly, stream framing, and the lookup state machine.

use proptest::prelude::{
    Just, Strategy, any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest,
};

use umbra::crypto::keys::NodeId;
use umbra::dht::lookup::Lookup;
use umbra::site::address::SiteAddress;
use umbra::site::manifest;
use umbra::wire::dht_msg::{DhtMsg, ExitReply, ExitRequest, Record, RecordKind, StreamFramer};
use umbra::wire::relay_msg::{MAX_DATA, RelayContext, RelayMsg};
use umbra::wire::restrict::{ChanMsg, DhtReassembler, dht_fragments};

fn record() -> impl Strategy<Value = Record> {
    (
        any::<u8>(),
        any::<[u8; 32]>(),
        prop::collection::vec(any::<u8>(), 0..2000),
    )
        .prop_map(|(k, key, value)| Record {
            kind: RecordKind(k),
            key,
            value,
        })
}

fn dht_msg() -> impl Strategy<Value = DhtMsg> {
    prop_oneof![
        (any::<u32>(), any::<[u8; 32]>()).prop_map(|(id, target)| DhtMsg::FindNode { id, target }),
        (any::<u32>(), any::<[u8; 32]>(), any::<u8>()).prop_map(|(id, key, k)| DhtMsg::FindValue {
            id,
            key,
            kind: RecordKind(k)
        }),
        (any::<u32>(), record()).prop_map(|(id, record)| DhtMsg::Store {
            id,
            record,
            expires: u64::MAX
        }),
        (
            any::<u32>(),
            prop::collection::vec(any::<[u8; 32]>(), 0..=20)
        )
            .prop_map(|(id, nodes)| DhtMsg::Nodes { id, nodes }),
        (any::<u32>(), record()).prop_map(|(id, record)| DhtMsg::Value { id, record }),
        (any::<u32>(), any::<u8>()).prop_map(|(id, status)| DhtMsg::Stored { id, status }),
    ]
}

fn relay_msg() -> impl Strategy<Value = (RelayMsg, RelayContext)> {
    prop_oneof![
        (
            any::<[u8; 32]>(),
            any::<u16>(),
            prop::collection::vec(any::<u8>(), 0..=400)
        )
            .prop_map(|(node_id, handshake_type, handshake)| (
                RelayMsg::Extend {
                    node_id,
                    handshake_type,
                    handshake
                },
                RelayContext::AtRelay
            )),
        prop::collection::vec(any::<u8>(), 0..=400)
            .prop_map(|handshake| (RelayMsg::Extended { handshake }, RelayContext::AtReader)),
        (1u16.., prop::collection::vec(any::<u8>(), 0..=255)).prop_map(|(stream_id, service)| (
            RelayMsg::Begin { stream_id, service },
            RelayContext::AtRelay
        )),
        (1u16..).prop_map(|stream_id| (RelayMsg::Connected { stream_id }, RelayContext::AtReader)),
        (
            1u16..,
            prop::collection::vec(any::<u8>(), 0..=MAX_DATA),
            prop_oneof![Just(RelayContext::AtRelay), Just(RelayContext::AtReader)]
        )
            .prop_map(|(stream_id, data, c)| (RelayMsg::Data { stream_id, data }, c)),
        (1u16.., any::<u8>()).prop_map(|(stream_id, reason)| (
            RelayMsg::End { stream_id, reason },
            RelayContext::AtRelay
        )),
        any::<u16>().prop_map(|stream_id| (RelayMsg::Sendme { stream_id }, RelayContext::AtReader)),
    ]
}

proptest! {
    #[test]
    fn relay_messages_round_trip((msg, ctx) in relay_msg()) {
        let p = msg.encode().unwrap();
        prop_assert_eq!(RelayMsg::decode(&p, ctx).unwrap(), msg);
    }

    #[test]
    fn relay_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = RelayMsg::decode(&bytes, RelayContext::AtRelay);
        let _ = RelayMsg::decode(&bytes, RelayContext::AtReader);
    }

    #[test]
    fn dht_messages_round_trip(msg in dht_msg()) {
        prop_assert_eq!(DhtMsg::decode(&msg.encode()).unwrap(), msg);
    }

    #[test]
    fn content_decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..3000)) {
        let _ = DhtMsg::decode(&bytes);
        let _ = ExitRequest::decode(&bytes);
        let _ = ExitReply::decode(&bytes);
        let _ = umbra::directory::parse(&bytes);
        let _ = manifest::parse(&bytes);
    }

    #[test]
    fn exit_messages_round_trip(id: u32, rec in record(), copies: u8, key: [u8; 32]) {
        for m in [ExitRequest::Get { id, kind: rec.kind, key }, ExitRequest::Put { id, record: rec.clone(), expires: u64::MAX }] {
            prop_assert_eq!(ExitRequest::decode(&m.encode()).unwrap(), m);
        }
        for m in [ExitReply::Found { id, record: rec.clone() }, ExitReply::NotFound { id }, ExitReply::Stored { id, copies }, ExitReply::Refused { id, reason: copies }] {
            prop_assert_eq!(ExitReply::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn addresses_never_panic_and_round_trip(s in "[a-z2-7A-Z0-9.]{0,70}", secret: [u8; 32]) {
        let _ = SiteAddress::parse(&s);
        let a = SiteAddress(umbra::crypto::keys::IdentityKey::from_secret_bytes(secret).public());
        prop_assert_eq!(SiteAddress::parse(&a.to_string()).unwrap(), a);
    }

    #[test]
    fn dht_fragments_reassemble(msg in prop::collection::vec(any::<u8>(), 0..5000)) {
        let mut r = DhtReassembler::default();
        let mut out = None;
        for f in dht_fragments(&msg) {
            let ChanMsg::Dht { first, data } = f else { panic!("not a DHT cell") };
            // Every fragment fits one cell.
            let fits = ChanMsg::Dht { first, data: data.clone() }.encode().is_ok();
            prop_assert!(fits);
            if let Some(m) = r.push(first, &data, 1 << 20).unwrap() {
                out = Some(m);
            }
        }
        prop_assert_eq!(out, Some(msg));
    }

    #[test]
    fn reassembler_never_panics(frags in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..600)), 0..10)) {
        let mut r = DhtReassembler::default();
        for (first, data) in frags {
            let _ = r.push(first, &data, 4096);
        }
    }

    #[test]
    fn stream_framer_reassembles_any_split(msgs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..5), split in 0usize..2000) {
        let stream: Vec<u8> = msgs.iter().flat_map(|m| StreamFramer::frame(m)).collect();
        let cut = split.min(stream.len());
        let mut f = StreamFramer::default();
        let mut got = Vec::new();
        f.push(&stream[..cut]);
        while let Some(m) = f.next_message().unwrap() {
            got.push(m);
        }
        f.push(&stream[cut..]);
        while let Some(m) = f.next_message().unwrap() {
            got.push(m);
        }
        prop_assert_eq!(got, msgs);
    }

    /// Whatever nodes answer (or fail), a lookup ends, and never asks more than α at once.
    #[test]
    fn lookups_always_terminate(seed_ids in prop::collection::vec(any::<[u8; 32]>(), 1..30), answers in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<[u8; 32]>(), 0..20)), 0..200)) {
        // Networks from the ids' first byte: some share one, as Sybils would.
        let seeds: Vec<(NodeId, [u8; 4])> = seed_ids.into_iter().map(|i| (NodeId(i), [i[0] & 7, 0, 0, 0])).collect();
        let mut l = Lookup::new([0; 32], &seeds, 20, 3);
        let mut answers = answers.into_iter();
        for _ in 0..10_000 {
            if l.is_done() {
                break;
            }
            let asked = l.next_requests();
            prop_assert!(asked.len() <= 3);
            for n in asked {
                match answers.next() {
                    Some((true, more)) => l.on_nodes(n, &more.into_iter().map(NodeId).collect::<Vec<_>>(), |m| Some([m.0[0] & 7, 0, 0, 0])),
                    _ => l.on_failure(n),
                }
            }
        }
        prop_assert!(l.is_done(), "lookup did not finish");
    }
}
