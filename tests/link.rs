//! Link sessions end to end, in memory (`protocol-spec/02-link.md`).

use std::time::Duration;

use umbra::crypto::keys::{IdentityKey, LinkKeyBinding, LinkKeypair};
use umbra::crypto::noise::Randomness;
use umbra::crypto::rng::UmbraRng;
use umbra::link::{
    Established, HandshakeStep, Handshaking, LinkConfig, LinkError, Peer, RelayTarget,
};
use umbra::time::Time;
use umbra::wire::cell::CircId;
use umbra::wire::cell::{BODY_LEN, CELL_LEN};
use umbra::wire::restrict::{ChanMsg, DestroyReason, LinkContext};

struct Relay {
    identity: IdentityKey,
    link: LinkKeypair,
}

impl Relay {
    fn new(rng: &mut UmbraRng) -> Relay {
        Relay {
            identity: IdentityKey::generate(rng),
            link: LinkKeypair::generate(rng),
        }
    }
    fn binding(&self) -> LinkKeyBinding {
        LinkKeyBinding::sign(&self.identity, &self.link.public())
    }
    fn target(&self) -> RelayTarget {
        RelayTarget {
            node_id: self.identity.public().node_id(),
            link_key: self.link.public(),
        }
    }
}

fn step(h: Handshaking, now: Time, bytes: &[u8]) -> Result<HandshakeStep, LinkError> {
    h.handle_bytes(now, bytes)
}

/// Run a handshake between a dialler and a listener, in memory.
fn connect(
    rng: &mut UmbraRng,
    relay: &Relay,
    target: RelayTarget,
    dialler_binding: Option<(LinkKeypair, LinkKeyBinding)>,
) -> Result<(Established, Established), LinkError> {
    connect_with(LinkConfig::default(), rng, relay, target, dialler_binding)
}

fn connect_with(
    cfg: LinkConfig,
    rng: &mut UmbraRng,
    relay: &Relay,
    target: RelayTarget,
    dialler_binding: Option<(LinkKeypair, LinkKeyBinding)>,
) -> Result<(Established, Established), LinkError> {
    let now = Time::ZERO;
    let (local, my_binding) = match dialler_binding {
        Some((k, b)) => (k, Some(b)),
        None => (LinkKeypair::generate(rng), None),
    };
    let mut d = Handshaking::dial(
        cfg,
        target,
        &local,
        my_binding,
        Randomness::Seeded(rng.array()),
        now,
    )?;
    let mut l = Handshaking::accept(
        cfg,
        &relay.link,
        relay.binding(),
        Randomness::Seeded(rng.array()),
        now,
    )?;
    let m1 = d.poll_transmit().unwrap();
    l = match step(l, now, &m1)? {
        HandshakeStep::Continue(l) => l,
        HandshakeStep::Done(_) => panic!("listener done after message 1"),
    };
    let m2 = l.poll_transmit().unwrap();
    let mut de = match step(d, now, &m2)? {
        HandshakeStep::Done(e) => e,
        HandshakeStep::Continue(_) => panic!("dialler not done after message 2"),
    };
    let m3 = de.poll_transmit(now)?.unwrap();
    let le = match step(l, now, &m3)? {
        HandshakeStep::Done(e) => e,
        HandshakeStep::Continue(_) => panic!("listener not done after message 3"),
    };
    Ok((de, le))
}

fn destroy(c: u32) -> ChanMsg {
    ChanMsg::Destroy {
        circ_id: CircId::new(c).unwrap(),
        reason: DestroyReason::FINISHED,
    }
}

fn relay_msg(c: u32, fill: u8) -> ChanMsg {
    ChanMsg::Relay {
        circ_id: CircId::new(c).unwrap(),
        body: Box::new([fill; BODY_LEN]),
    }
}

fn deliver(
    from: &mut Established,
    to: &mut Established,
    now: Time,
) -> Result<Vec<ChanMsg>, LinkError> {
    if let Some(bytes) = from.poll_transmit(now).unwrap() {
        to.handle_bytes(now, &bytes)?;
    }
    let mut out = Vec::new();
    while let Some(m) = to.poll_msg() {
        out.push(m.unwrap());
    }
    Ok(out)
}

#[test]
fn reader_to_relay_both_directions() {
    let mut rng = UmbraRng::from_u64(10);
    let relay = Relay::new(&mut rng);
    let (mut reader, mut server) = connect(&mut rng, &relay, relay.target(), None).unwrap();
    assert_eq!(reader.context(), LinkContext::ReaderFromRelay);
    assert_eq!(server.context(), LinkContext::RelayFromReader);
    assert_eq!(server.peer(), Peer::Reader);
    assert!(
        matches!(reader.peer(), Peer::Relay { identity, .. } if identity == relay.identity.public())
    );

    // Many cells, more than one frame's worth, both ways.
    let now = Time::from_micros(5);
    for i in 0..300u32 {
        reader
            .send_msg(&relay_msg(0x8000_0000 | (i + 1), i as u8))
            .unwrap();
    }
    let got = deliver(&mut reader, &mut server, now).unwrap();
    assert_eq!(got.len(), 300);
    assert_eq!(got[299], relay_msg(0x8000_0000 | 300, 43));
    server.send_msg(&destroy(7)).unwrap();
    assert_eq!(
        deliver(&mut server, &mut reader, now).unwrap(),
        vec![destroy(7)]
    );
    assert!(reader.stats().frames_out >= 3);
}

#[test]
fn relay_to_relay_proves_both_identities() {
    let mut rng = UmbraRng::from_u64(11);
    let a = Relay::new(&mut rng);
    let b = Relay::new(&mut rng);
    let (mut ea, mut eb) = connect(
        &mut rng,
        &b,
        b.target(),
        Some((a.link.clone(), a.binding())),
    )
    .unwrap();
    assert_eq!(ea.context(), LinkContext::RelayFromRelay);
    assert_eq!(eb.context(), LinkContext::RelayFromRelay);
    assert!(matches!(eb.peer(), Peer::Relay { identity, .. } if identity == a.identity.public()));
    eb.send_msg(&destroy(3)).unwrap();
    assert_eq!(
        deliver(&mut eb, &mut ea, Time::ZERO).unwrap(),
        vec![destroy(3)]
    );
}

#[test]
fn wrong_static_key_is_refused_by_the_listener() {
    let mut rng = UmbraRng::from_u64(12);
    let relay = Relay::new(&mut rng);
    let other = LinkKeypair::generate(&mut rng);
    let target = RelayTarget {
        node_id: relay.target().node_id,
        link_key: other.public(),
    };
    assert_eq!(
        connect(&mut rng, &relay, target, None).unwrap_err(),
        LinkError::Decrypt
    );
}

#[test]
fn unbound_static_key_is_refused_by_the_dialler() {
    let mut rng = UmbraRng::from_u64(13);
    let mut relay = Relay::new(&mut rng);
    let target = relay.target();
    // The relay now answers with a binding over some other key: its identity never signed the
    // key the dialler reached.
    let real_link = relay.link.clone();
    relay.link = LinkKeypair::generate(&mut rng);
    let forged = relay.binding();
    relay.link = real_link;
    let now = Time::ZERO;
    let local = LinkKeypair::generate(&mut rng);
    let mut d = Handshaking::dial(
        LinkConfig::default(),
        target,
        &local,
        None,
        Randomness::Seeded([1; 32]),
        now,
    )
    .unwrap();
    let l = Handshaking::accept(
        LinkConfig::default(),
        &relay.link,
        forged,
        Randomness::Seeded([2; 32]),
        now,
    )
    .unwrap();
    let HandshakeStep::Continue(mut l) = l.handle_bytes(now, &d.poll_transmit().unwrap()).unwrap()
    else {
        panic!()
    };
    let err = d
        .handle_bytes(now, &l.poll_transmit().unwrap())
        .unwrap_err();
    assert_eq!(err, LinkError::UnboundLinkKey);
}

#[test]
fn other_identity_is_refused_by_the_dialler() {
    let mut rng = UmbraRng::from_u64(14);
    let relay = Relay::new(&mut rng);
    let mut target = relay.target();
    target.node_id = IdentityKey::generate(&mut rng).public().node_id();
    assert_eq!(
        connect(&mut rng, &relay, target, None).unwrap_err(),
        LinkError::WrongIdentity
    );
}

#[test]
fn relay_dialler_with_unbound_key_is_refused_by_the_listener() {
    let mut rng = UmbraRng::from_u64(15);
    let a = Relay::new(&mut rng);
    let b = Relay::new(&mut rng);
    let stranger = LinkKeypair::generate(&mut rng);
    // a presents a's binding but uses a stranger's static key.
    let err = connect(&mut rng, &b, b.target(), Some((stranger, a.binding()))).unwrap_err();
    assert_eq!(err, LinkError::UnboundLinkKey);
}

fn established_pair(seed: u64) -> (Established, Established) {
    let mut rng = UmbraRng::from_u64(seed);
    let relay = Relay::new(&mut rng);
    connect(&mut rng, &relay, relay.target(), None).unwrap()
}

#[test]
fn garbled_frame_closes_only_that_session() {
    let (mut a, mut b) = established_pair(20);
    let (mut c, mut d) = established_pair(21);
    a.send_msg(&destroy(1)).unwrap();
    let mut bytes = a.poll_transmit(Time::ZERO).unwrap().unwrap();
    bytes[40] ^= 0x01;
    assert_eq!(b.handle_bytes(Time::ZERO, &bytes), Err(LinkError::Decrypt));
    // The other session is unaffected.
    c.send_msg(&destroy(2)).unwrap();
    assert_eq!(
        deliver(&mut c, &mut d, Time::ZERO).unwrap(),
        vec![destroy(2)]
    );
}

#[test]
fn replayed_frame_is_refused() {
    let (mut a, mut b) = established_pair(22);
    a.send_msg(&destroy(1)).unwrap();
    let bytes = a.poll_transmit(Time::ZERO).unwrap().unwrap();
    b.handle_bytes(Time::ZERO, &bytes).unwrap();
    assert_eq!(b.poll_msg().unwrap().unwrap(), destroy(1));
    assert_eq!(b.handle_bytes(Time::ZERO, &bytes), Err(LinkError::Decrypt));
}

#[test]
fn truncated_frame_is_reported_at_end_of_stream() {
    let (mut a, mut b) = established_pair(23);
    a.send_msg(&destroy(1)).unwrap();
    let bytes = a.poll_transmit(Time::ZERO).unwrap().unwrap();
    b.handle_bytes(Time::ZERO, &bytes[..bytes.len() - 3])
        .unwrap();
    assert!(b.poll_msg().is_none());
    assert_eq!(
        b.finish(),
        Err(LinkError::Truncated {
            buffered: bytes.len() - 3
        })
    );
}

#[test]
fn oversized_and_misshapen_frames_are_refused() {
    let (_a, mut b) = established_pair(24);
    assert!(matches!(
        b.handle_bytes(Time::ZERO, &[0xff, 0xff]),
        Err(LinkError::Oversized { len: 65535, .. })
    ));
    let (_a, mut b) = established_pair(25);
    let mut frame = vec![];
    let len = (CELL_LEN + 16 + 1) as u16;
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend(std::iter::repeat_n(0u8, usize::from(len)));
    assert!(matches!(
        b.handle_bytes(Time::ZERO, &frame),
        Err(LinkError::Malformed { .. })
    ));
    let (_a, mut b) = established_pair(26);
    assert!(matches!(
        b.handle_bytes(Time::ZERO, &[0, 5, 1, 2, 3, 4, 5]),
        Err(LinkError::Malformed { .. })
    ));
}

#[test]
fn oversized_handshake_message_is_refused() {
    let mut rng = UmbraRng::from_u64(27);
    let relay = Relay::new(&mut rng);
    let l = Handshaking::accept(
        LinkConfig::default(),
        &relay.link,
        relay.binding(),
        Randomness::Seeded([3; 32]),
        Time::ZERO,
    )
    .unwrap();
    let mut bytes = vec![0x04, 0x00];
    bytes.extend([0u8; 1024]);
    assert!(matches!(
        l.handle_bytes(Time::ZERO, &bytes),
        Err(LinkError::Oversized { len: 1024, .. })
    ));
}

#[test]
fn low_order_ephemeral_is_refused() {
    let mut rng = UmbraRng::from_u64(28);
    let relay = Relay::new(&mut rng);
    let l = Handshaking::accept(
        LinkConfig::default(),
        &relay.link,
        relay.binding(),
        Randomness::Seeded([3; 32]),
        Time::ZERO,
    )
    .unwrap();
    // Message 1 whose ephemeral is the zero point: es is all zeros.
    let mut bytes = vec![0, 48];
    bytes.extend([0u8; 48]);
    assert!(matches!(
        l.handle_bytes(Time::ZERO, &bytes),
        Err(LinkError::NonContributory)
    ));
}

#[test]
fn keepalive_idle_and_handshake_timers() {
    let cfg = LinkConfig::default();
    let (mut a, mut b) = established_pair(29);
    let t = a.poll_timeout();
    assert_eq!(t, Time::ZERO + cfg.keepalive_interval);
    a.handle_timeout(t).unwrap();
    let bytes = a.poll_transmit(t).unwrap().expect("keepalive frame");
    b.handle_bytes(t, &bytes).unwrap();
    assert!(b.poll_msg().is_none(), "padding is consumed by the link");
    assert_eq!(b.stats().cells_in, 1);
    // b heard from a at t, so b's idle deadline moved; a heard nothing and goes idle.
    let idle = Time::ZERO + cfg.idle_timeout;
    assert_eq!(a.handle_timeout(idle), Err(LinkError::IdleTimeout));
    assert!(b.handle_timeout(idle).is_ok());

    let mut rng = UmbraRng::from_u64(30);
    let relay = Relay::new(&mut rng);
    let h = Handshaking::dial(
        cfg,
        relay.target(),
        &LinkKeypair::generate(&mut rng),
        None,
        Randomness::Seeded([4; 32]),
        Time::ZERO,
    )
    .unwrap();
    assert_eq!(h.poll_timeout(), Time::ZERO + cfg.handshake_timeout);
    assert_eq!(
        h.handle_timeout(Time::ZERO + cfg.handshake_timeout),
        Err(LinkError::HandshakeTimeout)
    );
}

#[test]
fn rekey_by_time_and_by_count_keeps_traffic_flowing() {
    let cfg = LinkConfig {
        rekey_interval: Duration::from_secs(5),
        ..LinkConfig::default()
    };
    let mut rng = UmbraRng::from_u64(31);
    let relay = Relay::new(&mut rng);
    let (mut a, mut b) = connect_with(cfg, &mut rng, &relay, relay.target(), None).unwrap();
    let t = Time::ZERO + cfg.rekey_interval;
    assert_eq!(a.poll_timeout(), t);
    a.handle_timeout(t).unwrap();
    a.send_msg(&destroy(1)).unwrap();
    assert_eq!(deliver(&mut a, &mut b, t).unwrap(), vec![destroy(1)]);
    assert_eq!(a.stats().rekeys_out, 1);
    assert_eq!(b.stats().rekeys_in, 1);
    a.send_msg(&destroy(2)).unwrap();
    assert_eq!(deliver(&mut a, &mut b, t).unwrap(), vec![destroy(2)]);

    // Frame-count rekey with a small limit: every third frame switches keys.
    let cfg = LinkConfig {
        rekey_after_frames: 3,
        ..LinkConfig::default()
    };
    let (mut a, mut b) = connect_with(cfg, &mut rng, &relay, relay.target(), None).unwrap();
    for i in 1..=50u32 {
        a.send_msg(&destroy(i)).unwrap();
        assert_eq!(
            deliver(&mut a, &mut b, Time::ZERO).unwrap(),
            vec![destroy(i)]
        );
        b.send_msg(&destroy(i)).unwrap();
        assert_eq!(
            deliver(&mut b, &mut a, Time::ZERO).unwrap(),
            vec![destroy(i)]
        );
    }
    assert!(a.stats().rekeys_out >= 16, "{:?}", a.stats());
    assert_eq!(a.stats().rekeys_out, b.stats().rekeys_in);
}

#[test]
fn a_dropped_frame_breaks_the_session() {
    let (mut a, mut b) = established_pair(33);
    a.send_msg(&destroy(1)).unwrap();
    let _lost = a.poll_transmit(Time::ZERO).unwrap().unwrap();
    a.send_msg(&destroy(2)).unwrap();
    let next = a.poll_transmit(Time::ZERO).unwrap().unwrap();
    assert_eq!(b.handle_bytes(Time::ZERO, &next), Err(LinkError::Decrypt));
}
