//! Tier 3: property tests for every decoder (`protocol-spec/01-encoding.md`): encodings round
//! trip, and arbitrary bytes never panic a decoder or a link session.

use proptest::prelude::{
    Just, Strategy, any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest,
};

use umbra::crypto::keys::{IdentityKey, LinkKeyBinding, LinkKeypair};
use umbra::crypto::noise::Randomness;
use umbra::link::frame::FrameDecoder;
use umbra::link::{HandshakeStep, Handshaking, LinkConfig, RelayTarget};
use umbra::time::Time;
use umbra::wire::cell::{BODY_LEN, CELL_LEN, Cell, CircId, Command};
use umbra::wire::restrict::{
    ChanMsg, CreateBody, CreatedBody, DestroyReason, HandshakeType, LinkContext,
    MAX_CREATED_HANDSHAKE,
};
use umbra::wire::{Readable, Reader, Writeable, Writer, hex};

const CONTEXTS: [LinkContext; 3] = [
    LinkContext::ReaderFromRelay,
    LinkContext::RelayFromReader,
    LinkContext::RelayFromRelay,
];

fn circ() -> impl Strategy<Value = CircId> {
    (1u32..).prop_map(|v| CircId::new(v).unwrap())
}

fn chan_msg() -> impl Strategy<Value = ChanMsg> {
    prop_oneof![
        Just(ChanMsg::Padding),
        Just(ChanMsg::Rekey),
        (
            circ(),
            any::<u16>(),
            prop::collection::vec(any::<u8>(), 0..=300)
        )
            .prop_map(|(circ_id, t, handshake)| ChanMsg::Create {
                circ_id,
                body: CreateBody {
                    handshake_type: HandshakeType(t),
                    handshake
                },
            }),
        (
            circ(),
            prop::collection::vec(any::<u8>(), 0..=MAX_CREATED_HANDSHAKE)
        )
            .prop_map(|(circ_id, handshake)| ChanMsg::Created {
                circ_id,
                body: CreatedBody { handshake }
            }),
        (
            circ(),
            prop::collection::vec(any::<u8>(), BODY_LEN..=BODY_LEN)
        )
            .prop_map(|(circ_id, b)| ChanMsg::Relay {
                circ_id,
                body: Box::new(b.try_into().unwrap()),
            }),
        (circ(), any::<u8>()).prop_map(|(circ_id, r)| ChanMsg::Destroy {
            circ_id,
            reason: DestroyReason(r)
        }),
    ]
}

proptest! {
    #[test]
    fn integers_round_trip(a: u8, b: u16, c: u32, d: u64, bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut w = Writer::new();
        w.u8(a).u16(b).u32(c).u64(d);
        w.u16_prefixed("f", &bytes, 300).unwrap();
        let out = w.into_vec();
        let mut r = Reader::new(&out);
        prop_assert_eq!(r.u8().unwrap(), a);
        prop_assert_eq!(r.u16().unwrap(), b);
        prop_assert_eq!(r.u32().unwrap(), c);
        prop_assert_eq!(r.u64().unwrap(), d);
        prop_assert_eq!(r.u16_prefixed("f", 300).unwrap(), &bytes[..]);
        prop_assert!(r.finish().is_ok());
    }

    #[test]
    fn reader_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64), max in 0usize..100) {
        let mut r = Reader::new(&bytes);
        let _ = r.u16_prefixed("f", max);
        let _ = r.u64();
        let _ = r.array::<7>();
        let _ = r.finish();
    }

    #[test]
    fn cells_round_trip(circ_id: u32, command: u8, body in prop::collection::vec(any::<u8>(), BODY_LEN..=BODY_LEN)) {
        let cell = Cell { circ_id, command: Command(command), body: body.try_into().unwrap() };
        let bytes = cell.to_bytes();
        prop_assert_eq!(bytes.len(), CELL_LEN);
        prop_assert!(Cell::decode_exact(&bytes).unwrap() == cell);
    }

    #[test]
    fn messages_round_trip_in_every_context_that_allows_them(msg in chan_msg()) {
        let cell = msg.encode().unwrap();
        for ctx in CONTEXTS {
            match ChanMsg::parse(&cell, ctx) {
                Ok(back) => {
                    prop_assert_eq!(&back, &msg);
                    prop_assert!(back.encode().unwrap() == cell);
                }
                Err(_) => prop_assert!(!ctx.allows(cell.command)),
            }
        }
    }

    #[test]
    fn arbitrary_cells_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..=CELL_LEN + 2)) {
        if let Ok(cell) = Cell::decode_exact(&bytes) {
            for ctx in CONTEXTS {
                let _ = ChanMsg::parse(&cell, ctx);
            }
        }
    }

    #[test]
    fn hex_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..100), s in "[0-9a-zA-Z]{0,20}") {
        prop_assert_eq!(hex::decode(&hex::encode(&bytes)).unwrap(), bytes);
        let _ = hex::decode(&s);
    }

    #[test]
    fn frame_decoder_never_panics(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..8), max in 0usize..70000) {
        let mut d = FrameDecoder::new();
        for c in chunks {
            d.push(&c);
            while let Ok(Some(f)) = d.next_frame(0, max) {
                prop_assert!(f.len() <= max);
            }
        }
        let _ = d.finish();
    }

    #[test]
    fn handshake_survives_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let id = IdentityKey::from_secret_bytes([7; 32]);
        let link = LinkKeypair::from_secret_bytes([8; 32]);
        let binding = LinkKeyBinding::sign(&id, &link.public());
        let listener = Handshaking::accept(LinkConfig::default(), &link, binding, Randomness::Seeded([9; 32]), Time::ZERO).unwrap();
        let _ = listener.handle_bytes(Time::ZERO, &bytes);
        let target = RelayTarget { node_id: id.public().node_id(), link_key: link.public() };
        let dialler = Handshaking::dial(LinkConfig::default(), target, &LinkKeypair::from_secret_bytes([1; 32]), None, Randomness::Seeded([2; 32]), Time::ZERO).unwrap();
        let _ = dialler.handle_bytes(Time::ZERO, &bytes);
    }

    #[test]
    fn established_link_survives_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let id = IdentityKey::from_secret_bytes([7; 32]);
        let link = LinkKeypair::from_secret_bytes([8; 32]);
        let target = RelayTarget { node_id: id.public().node_id(), link_key: link.public() };
        let mut d = Handshaking::dial(LinkConfig::default(), target, &LinkKeypair::from_secret_bytes([1; 32]), None, Randomness::Seeded([2; 32]), Time::ZERO).unwrap();
        let l = Handshaking::accept(LinkConfig::default(), &link, LinkKeyBinding::sign(&id, &link.public()), Randomness::Seeded([9; 32]), Time::ZERO).unwrap();
        let HandshakeStep::Continue(mut l) = l.handle_bytes(Time::ZERO, &d.poll_transmit().unwrap()).unwrap() else { panic!() };
        let HandshakeStep::Done(mut de) = d.handle_bytes(Time::ZERO, &l.poll_transmit().unwrap()).unwrap() else { panic!() };
        let m3 = de.poll_transmit(Time::ZERO).unwrap().unwrap();
        let HandshakeStep::Done(mut le) = l.handle_bytes(Time::ZERO, &m3).unwrap() else { panic!() };
        // Garbage after a valid handshake: an error or nothing, never a panic or a message.
        let _ = le.handle_bytes(Time::ZERO, &bytes);
        prop_assert!(le.poll_msg().is_none());
    }
}
