//! Live cases for the link (`protocol-spec/02-link.md`): the handshake, framing, transport
//! frames that are tampered, replayed or reordered, rekeying. Not in this module: cells
//! ([`super::cases_cells`]) or circuits.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::conn::{ANSWER, Conn, verdict, with_conn};
use super::{Case, Check, Target, Verdict, fail};
use crate::crypto::keys::LinkKeypair;
use crate::crypto::noise::Randomness;
use crate::link::{Handshaking, LinkConfig, RelayTarget};
use crate::runtime::driver::os_rng;
use crate::runtime::raw_link::{As, RawLink};
use crate::time::Time;
use crate::wire::cell::{Cell, Command};

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

fn framed(msg: &[u8]) -> Vec<u8> {
    let mut v = u16::try_from(msg.len())
        .unwrap_or(u16::MAX)
        .to_be_bytes()
        .to_vec();
    v.extend_from_slice(msg);
    v
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
        s.write_all(&framed(&junk)).map_err(|e| e.to_string())?;
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
