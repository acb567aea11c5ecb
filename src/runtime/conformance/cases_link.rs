//! Live cases for the link (`protocol-spec/02-link.md`): the handshake, framing, transport
//! frames that are tampered, replayed or reordered, rekeying. Not in this module: cells
//! ([`super::cases_cells`]) or circuits.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::conn::{ANSWER, Conn, create_msg, hop_msg1, verdict, with_conn};
use super::{Case, Check, Target, Verdict, fail};
use crate::crypto::keys::LinkKeypair;
use crate::crypto::noise::{HandshakeSpec, LINK_PATTERN, NoiseHandshake, Randomness};
use crate::link::{HandshakeStep, Handshaking, LinkConfig, RelayTarget};
use crate::runtime::driver::os_rng;
use crate::runtime::raw_link::{As, RawLink};
use crate::time::Time;
use crate::wire::cell::{Cell, Command};
use crate::wire::restrict::{ChanMsg, HandshakeType};

/// The link cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "link.handshake",
            spec: "02-link.md#handshake",
            what: "an XK handshake as a reader completes and the binding names the descriptor's identity",
            run: handshake,
        },
        Case {
            id: "link.msg1-garbage",
            spec: "02-link.md#handshake",
            what: "48 random bytes as message 1 are refused: the link closes",
            run: msg1_garbage,
        },
        Case {
            id: "link.msg1-wrong-key",
            spec: "02-link.md#binding",
            what: "a message 1 made for another static key is refused: the link closes",
            run: msg1_wrong_key,
        },
        Case {
            id: "link.msg1-replayed",
            spec: "02-link.md#replay",
            what: "a message 1 already answered, sent again on a new connection, is refused",
            run: msg1_replayed,
        },
        Case {
            id: "link.msg1-oversized",
            spec: "02-link.md#framing",
            what: "a handshake frame announcing 257 bytes is refused before it is read",
            run: msg1_oversized,
        },
        Case {
            id: "link.msg1-empty",
            spec: "02-link.md#framing",
            what: "a handshake frame of length 0 is refused",
            run: msg1_empty,
        },
        Case {
            id: "link.frame-oversized",
            spec: "02-link.md#framing",
            what: "a transport frame announcing 64,992 bytes closes the link",
            run: frame_oversized,
        },
        Case {
            id: "link.frame-malformed",
            spec: "02-link.md#framing",
            what: "a transport frame whose length is not 16 + 565k closes the link",
            run: frame_malformed,
        },
        Case {
            id: "link.frame-tampered",
            spec: "02-link.md#transport",
            what: "a transport frame with one bit flipped closes the link",
            run: frame_tampered,
        },
        Case {
            id: "link.frame-replayed",
            spec: "02-link.md#transport",
            what: "a transport frame sent twice closes the link",
            run: frame_replayed,
        },
        Case {
            id: "link.frame-reordered",
            spec: "02-link.md#transport",
            what: "two transport frames sent in the wrong order close the link",
            run: frame_reordered,
        },
        Case {
            id: "link.rekey",
            spec: "02-link.md#rekey",
            what: "a dialler rekeying after every other frame is followed: circuits still build and echo",
            run: rekey,
        },
        Case {
            id: "link.rekey-not-last",
            spec: "02-link.md#rekey",
            what: "a REKEY cell that is not the last cell of its frame closes the link",
            run: rekey_not_last,
        },
        Case {
            id: "link.msg1-payload",
            spec: "02-link.md#handshake",
            what: "a message 1 carrying a non-empty payload ends the handshake: the link closes",
            run: msg1_payload,
        },
        Case {
            id: "link.msg3-bad-role",
            spec: "02-link.md#handshake",
            what: "a message 3 naming role 2 ends the handshake: the link closes",
            run: msg3_bad_role,
        },
        Case {
            id: "link.msg3-bad-binding",
            spec: "02-link.md#binding",
            what: "a message 3 with role 1 and a binding that does not verify closes the link",
            run: msg3_bad_binding,
        },
        Case {
            id: "link.transport-with-msg3",
            spec: "02-link.md#handshake",
            what: "a CREATE sent in the same write as message 3 is answered CREATED",
            run: transport_with_msg3,
        },
        Case {
            id: "link.handshake-timeout",
            spec: "02-link.md#timers",
            what: "a connection that sends nothing is closed after the handshake timeout (10 s, +5 s grace)",
            run: handshake_timeout,
        },
        Case {
            id: "link.padding",
            spec: "03-cells.md#commands",
            what: "PADDING on circuit 0 is ignored: nothing answers, the link serves on",
            run: padding,
        },
        Case {
            id: "link.other-links-unaffected",
            spec: "02-link.md#transport",
            what: "a link closed for a bad frame leaves another link of the same peer serving",
            run: other_links_unaffected,
        },
    ]
}

fn handshake(t: &Target) -> Verdict {
    // `RawLink::open` checks the binding of message 2 against the descriptor's NodeId.
    with_conn(t, |c| c.expect_quiet())
}

/// A TCP connection to the target that never sent a byte.
fn tcp(t: &Target) -> Check<TcpStream> {
    let s = TcpStream::connect(t.addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(ANSWER))
        .map_err(|e| format!("socket: {e}"))?;
    Ok(s)
}

/// The relay closes `s` (EOF or reset) within [`ANSWER`], sending nothing.
fn closes_silently(mut s: TcpStream, what: &str) -> Check {
    let mut buf = [0u8; 512];
    match s.read(&mut buf) {
        Ok(0) => Ok(()),
        Ok(n) => fail(format!(
            "{what}: the relay answered {n} bytes instead of closing"
        )),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            fail(format!("{what}: the link stayed open for {ANSWER:?}"))
        }
        Err(e) => fail(format!("{what}: {e}")),
    }
}

/// A handshake message in its frame (`02-link.md#framing`).
fn framed(msg: &[u8]) -> Check<Vec<u8>> {
    let mut out = Vec::new();
    crate::link::frame::encode_frame(msg, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// A dialler's message 1 for `link_key` (framed), with a fresh reader key.
fn message1(t: &Target, link_key: crate::crypto::keys::X25519Public) -> Check<Vec<u8>> {
    let mut h = Handshaking::dial(
        LinkConfig::default(),
        RelayTarget {
            node_id: t.desc.node_id(),
            link_key,
        },
        &LinkKeypair::generate(&mut os_rng()),
        None,
        Randomness::Seeded(os_rng().array()),
        Time::ZERO,
    )
    .map_err(|e| format!("dial: {e}"))?;
    h.poll_transmit().ok_or_else(|| "no message 1".into())
}

fn msg1_garbage(t: &Target) -> Verdict {
    verdict((|| {
        let mut s = tcp(t)?;
        let mut junk = [0u8; 48];
        os_rng().fill(&mut junk);
        s.write_all(&framed(&junk)?).map_err(|e| e.to_string())?;
        closes_silently(s, "garbage message 1")
    })())
}

fn msg1_wrong_key(t: &Target) -> Verdict {
    verdict((|| {
        let other = LinkKeypair::generate(&mut os_rng()).public();
        let m1 = message1(t, other)?;
        let mut s = tcp(t)?;
        s.write_all(&m1).map_err(|e| e.to_string())?;
        closes_silently(s, "message 1 for another key")
    })())
}

fn msg1_replayed(t: &Target) -> Verdict {
    verdict((|| {
        let m1 = message1(t, t.desc.link_key)?;
        let mut first = tcp(t)?;
        first.write_all(&m1).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 512];
        let n = first
            .read(&mut buf)
            .map_err(|e| format!("the first message 1 was not answered: {e}"))?;
        if n == 0 {
            return fail("the first message 1 was refused");
        }
        let mut again = tcp(t)?;
        again.write_all(&m1).map_err(|e| e.to_string())?;
        closes_silently(again, "a replayed message 1")
    })())
}

fn msg1_oversized(t: &Target) -> Verdict {
    verdict((|| {
        let mut s = tcp(t)?;
        s.write_all(&257u16.to_be_bytes())
            .map_err(|e| e.to_string())?;
        closes_silently(s, "a 257-byte handshake frame")
    })())
}

fn msg1_empty(t: &Target) -> Verdict {
    verdict((|| {
        let mut s = tcp(t)?;
        s.write_all(&[0, 0]).map_err(|e| e.to_string())?;
        closes_silently(s, "an empty handshake frame")
    })())
}

fn frame_oversized(t: &Target) -> Verdict {
    with_conn(t, |c| {
        c.link
            .send_raw(&64_992u16.to_be_bytes())
            .map_err(|e| e.to_string())?;
        c.expect_closed()
    })
}

fn frame_malformed(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let mut bytes = 100u16.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0u8; 100]);
        c.link.send_raw(&bytes).map_err(|e| e.to_string())?;
        c.expect_closed()
    })
}

fn padding_cell() -> Check<Cell> {
    Cell::with_content(0, Command::PADDING, &[]).ok_or_else(|| "padding cell".into())
}

fn frame_tampered(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let mut frame = c
            .link
            .seal_cell(&padding_cell()?)
            .map_err(|e| e.to_string())?;
        let last = frame.len() - 1;
        frame[last] ^= 1;
        c.link.send_raw(&frame).map_err(|e| e.to_string())?;
        c.expect_closed()
    })
}

fn frame_replayed(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let frame = c
            .link
            .seal_cell(&padding_cell()?)
            .map_err(|e| e.to_string())?;
        c.link.send_raw(&frame).map_err(|e| e.to_string())?;
        c.expect_quiet()?;
        c.link.send_raw(&frame).map_err(|e| e.to_string())?;
        c.expect_closed()
    })
}

fn frame_reordered(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let one = c
            .link
            .seal_cell(&padding_cell()?)
            .map_err(|e| e.to_string())?;
        let two = c
            .link
            .seal_cell(&padding_cell()?)
            .map_err(|e| e.to_string())?;
        c.link.send_raw(&two).map_err(|e| e.to_string())?;
        c.link.send_raw(&one).map_err(|e| e.to_string())?;
        c.expect_closed()
    })
}

fn rekey(t: &Target) -> Verdict {
    verdict((|| {
        let config = LinkConfig {
            rekey_after_frames: 2,
            ..LinkConfig::default()
        };
        let link = RawLink::open_config(None, As::Reader, &t.desc, config)
            .map_err(|e| format!("link: {e}"))?;
        let mut c = Conn::from_link(link);
        for _ in 0..3 {
            c.still_serves(t)?;
        }
        Ok(())
    })())
}

fn rekey_not_last(t: &Target) -> Verdict {
    with_conn(t, |c| {
        let rekey = Cell::with_content(0, Command::REKEY, &[]).ok_or("rekey cell")?;
        // Two cells queued before the frame is sealed travel in one frame: REKEY first.
        let frame = c
            .link
            .seal_cells(&[rekey, padding_cell()?])
            .map_err(|e| e.to_string())?;
        c.link.send_raw(&frame).map_err(|e| e.to_string())?;
        c.expect_closed()
    })
}

fn padding(t: &Target) -> Verdict {
    with_conn(t, |c| {
        c.link
            .send_cell(&padding_cell()?)
            .map_err(|e| e.to_string())?;
        c.expect_quiet()?;
        c.still_serves(t)
    })
}

fn other_links_unaffected(t: &Target) -> Verdict {
    verdict((|| {
        let mut good = Conn::open(t).map_err(|e| format!("link: {e}"))?;
        let mut bad = Conn::open(t).map_err(|e| format!("link: {e}"))?;
        bad.link
            .send_raw(&64_992u16.to_be_bytes())
            .map_err(|e| e.to_string())?;
        bad.expect_closed()?;
        std::thread::sleep(Duration::from_millis(50));
        good.still_serves(t)
    })())
}

/// Run the dialler's side of the XK handshake by hand: message 1 with `payload1`, read
/// message 2, then message 3 with `payload3` (if message 1 was answered). Returns the
/// socket after the last message written.
fn by_hand(t: &Target, payload1: &[u8], payload3: &[u8]) -> Check<TcpStream> {
    let prologue = crate::link::prologue();
    let local = LinkKeypair::generate(&mut os_rng());
    let mut hs = NoiseHandshake::new(&HandshakeSpec {
        protocol: LINK_PATTERN,
        initiator: true,
        prologue: &prologue,
        local_static: Some(local.secret_bytes()),
        remote_static: Some(&t.desc.link_key.0),
        psks: &[],
        randomness: Randomness::Seeded(os_rng().array()),
    })
    .map_err(|e| format!("noise: {e}"))?;
    let mut s = tcp(t)?;
    let m1 = hs
        .write_message(payload1)
        .map_err(|e| format!("noise: {e}"))?;
    s.write_all(&framed(&m1)?).map_err(|e| e.to_string())?;
    if !payload1.is_empty() {
        return Ok(s);
    }
    let mut len = [0u8; 2];
    s.read_exact(&mut len)
        .map_err(|e| format!("message 2 did not come: {e}"))?;
    let mut m2 = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut m2)
        .map_err(|e| format!("message 2 did not come: {e}"))?;
    hs.read_message(&m2)
        .map_err(|e| format!("message 2 does not authenticate: {e}"))?;
    let m3 = hs
        .write_message(payload3)
        .map_err(|e| format!("noise: {e}"))?;
    s.write_all(&framed(&m3)?).map_err(|e| e.to_string())?;
    Ok(s)
}

fn msg1_payload(t: &Target) -> Verdict {
    verdict(by_hand(t, b"hello", &[]).and_then(|s| closes_silently(s, "message 1 with a payload")))
}

fn msg3_bad_role(t: &Target) -> Verdict {
    verdict(by_hand(t, &[], &[2]).and_then(|s| closes_silently(s, "message 3 with role 2")))
}

fn msg3_bad_binding(t: &Target) -> Verdict {
    let mut payload = vec![1u8];
    payload.extend_from_slice(&[0x42; 96]);
    verdict(
        by_hand(t, &[], &payload)
            .and_then(|s| closes_silently(s, "message 3 with a binding that does not verify")),
    )
}

fn transport_with_msg3(t: &Target) -> Verdict {
    verdict((|| {
        let mut s = tcp(t)?;
        let mut h = Handshaking::dial(
            LinkConfig::default(),
            RelayTarget {
                node_id: t.desc.node_id(),
                link_key: t.desc.link_key,
            },
            &LinkKeypair::generate(&mut os_rng()),
            None,
            Randomness::Seeded(os_rng().array()),
            Time::ZERO,
        )
        .map_err(|e| format!("dial: {e}"))?;
        let m1 = h.poll_transmit().ok_or("no message 1")?;
        s.write_all(&m1).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 1 << 16];
        let mut est = loop {
            let n = s.read(&mut buf).map_err(|e| format!("message 2: {e}"))?;
            if n == 0 {
                return fail("the relay closed the handshake");
            }
            match h
                .handle_bytes(Time::ZERO, &buf[..n])
                .map_err(|e| format!("message 2: {e}"))?
            {
                HandshakeStep::Continue(next) => h = next,
                HandshakeStep::Done(est) => break est,
            }
        };
        let mut write = est
            .poll_transmit(Time::ZERO)
            .map_err(|e| e.to_string())?
            .ok_or("no message 3")?;
        let id = crate::wire::cell::CircId::new(0x8000_0001).ok_or("id")?;
        let (_, msg1) = hop_msg1(t, 1)?;
        est.send_msg(&create_msg(id, HandshakeType::NOISE_NK_V1, msg1))
            .map_err(|e| e.to_string())?;
        write.extend(
            est.poll_transmit(Time::ZERO)
                .map_err(|e| e.to_string())?
                .ok_or("no frame")?,
        );
        s.write_all(&write).map_err(|e| e.to_string())?;
        loop {
            let n = s.read(&mut buf).map_err(|e| format!("CREATED: {e}"))?;
            if n == 0 {
                return fail("the relay closed the link");
            }
            est.handle_bytes(Time::ZERO, &buf[..n])
                .map_err(|e| e.to_string())?;
            while let Some(m) = est.poll_msg() {
                match m {
                    Ok(ChanMsg::Created { circ_id, .. }) if circ_id == id => return Ok(()),
                    Ok(ChanMsg::Padding) => {}
                    m => return fail(format!("expected CREATED, got {m:?}")),
                }
            }
        }
    })())
}

fn handshake_timeout(t: &Target) -> Verdict {
    verdict((|| {
        let mut s = tcp(t)?;
        s.set_read_timeout(Some(Duration::from_secs(15)))
            .map_err(|e| e.to_string())?;
        let started = std::time::Instant::now();
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Ok(n) => return fail(format!("the relay sent {n} bytes first")),
            Err(e) => return fail(format!("not closed within 15 s: {e}")),
        }
        if started.elapsed() < Duration::from_secs(5) {
            return fail(format!(
                "closed after {:?}, well before the handshake timeout",
                started.elapsed()
            ));
        }
        Ok(())
    })())
}
