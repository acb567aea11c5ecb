//! Live cases where the runner also answers as a second relay (`protocol-spec/04-circuits.md
//! #extend`, `03-cells.md#circuit-ids`): it listens at the address of the relay whose keys
//! `--as-relay DIR` gives (its `descriptor` there), so when the relay under test EXTENDs a
//! circuit to it, the runner completes the link handshake as that relay and answers the
//! CREATE with its onion key. Not in this module: the cases that only dial the relay.

use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::conn::{ANSWER, with_conn};
use super::{Case, Check, Target, Verdict, fail};
use crate::crypto::hop;
use crate::crypto::keys::{LinkKeyBinding, NodeId};
use crate::crypto::keystore;
use crate::crypto::noise::Randomness;
use crate::directory::Descriptor;
use crate::link::{HandshakeStep, Handshaking, LinkConfig};
use crate::runtime::driver::os_rng;
use crate::time::Time;
use crate::wire::relay_msg::RelayMsg;
use crate::wire::restrict::{ChanMsg, CreatedBody, HandshakeType};

/// The extend cases.
pub fn cases() -> Vec<Case> {
    vec![Case {
        id: "relay.extend-to-listed-relay",
        spec: "04-circuits.md#extend",
        what: "EXTEND to a listed relay: the relay dials it, sends CREATE (its own dialler id, hop index 2), and returns EXTENDED whose keys work",
        run: extend_to_listed_relay,
    }]
}

/// The second relay: its keys and descriptor from `--as-relay DIR`.
struct Second {
    identity: crate::crypto::keys::IdentityKey,
    link: crate::crypto::keys::LinkKeypair,
    onion: crate::crypto::keys::LinkKeypair,
    desc: Descriptor,
}

fn second(t: &Target) -> Result<Second, Verdict> {
    let Some(dir) = t.as_relay.as_deref() else {
        return Err(Verdict::Skip(
            "needs --as-relay DIR with the relay's descriptor: the runner answers as it".into(),
        ));
    };
    let read = || -> Check<Second> {
        let bad = |e: &dyn std::fmt::Display| format!("{}: {e}", dir.display());
        let text = std::fs::read_to_string(dir.join("descriptor")).map_err(|e| bad(&e))?;
        let now = crate::runtime::driver::wall_now();
        let (d, _) = crate::directory::Directory::from_bootstrap(&text, now);
        let desc = d
            .relays()
            .next()
            .map(|d| (**d).clone())
            .ok_or("no valid descriptor in DIR/descriptor")?;
        Ok(Second {
            identity: keystore::read_identity(&dir.join("identity.key")).map_err(|e| bad(&e))?,
            link: keystore::read_static(&dir.join("link.key")).map_err(|e| bad(&e))?,
            onion: keystore::read_static(&dir.join("onion.key")).map_err(|e| bad(&e))?,
            desc,
        })
    };
    read().map_err(|e| Verdict::Fail(e.0))
}

/// What the second relay saw: the CREATE's circuit id and hop index.
type Seen = Check<(u32, u8)>;

/// Accept one link at the second relay's address as that relay, answer its first CREATE,
/// then hold the link until `done` is told.
fn serve(listener: TcpListener, s: Second, seen: mpsc::Sender<Seen>, done: mpsc::Receiver<()>) {
    let run = || -> Check<(u32, u8, TcpStream)> {
        listener.set_nonblocking(false).map_err(|e| e.to_string())?;
        let (mut sock, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        sock.set_read_timeout(Some(ANSWER))
            .map_err(|e| e.to_string())?;
        let binding = LinkKeyBinding::sign(&s.identity, &s.link.public());
        let mut h = Handshaking::accept(
            LinkConfig::default(),
            &s.link,
            binding,
            Randomness::Seeded(os_rng().array()),
            Time::ZERO,
        )
        .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 1 << 16];
        let mut est = loop {
            let n = std::io::Read::read(&mut sock, &mut buf)
                .map_err(|e| format!("the relay's link handshake: {e}"))?;
            if n == 0 {
                return fail("the relay closed its link to the second relay");
            }
            match h
                .handle_bytes(Time::ZERO, &buf[..n])
                .map_err(|e| format!("the relay's link handshake: {e}"))?
            {
                HandshakeStep::Continue(next) => {
                    h = next;
                    while let Some(out) = h.poll_transmit() {
                        std::io::Write::write_all(&mut sock, &out).map_err(|e| e.to_string())?;
                    }
                }
                HandshakeStep::Done(est) => break est,
            }
        };
        let deadline = Instant::now() + ANSWER;
        let mut pending: Vec<ChanMsg> = Vec::new();
        loop {
            while let Some(m) = est.poll_msg() {
                if let Ok(m) = m {
                    pending.push(m);
                }
            }
            if let Some(i) = pending
                .iter()
                .position(|m| matches!(m, ChanMsg::Create { .. }))
            {
                let ChanMsg::Create { circ_id, body } = pending.remove(i) else {
                    return fail("CREATE");
                };
                let (index, msg2, _) = hop::server(
                    &s.onion,
                    &body.handshake,
                    Randomness::Seeded(os_rng().array()),
                )
                .map_err(|e| format!("the relay's hop message 1: {e}"))?;
                est.send_msg(&ChanMsg::Created {
                    circ_id,
                    body: CreatedBody { handshake: msg2 },
                })
                .map_err(|e| e.to_string())?;
                if let Some(out) = est.poll_transmit(Time::ZERO).map_err(|e| e.to_string())? {
                    std::io::Write::write_all(&mut sock, &out).map_err(|e| e.to_string())?;
                }
                return Ok((circ_id.get(), index, sock));
            }
            if Instant::now() > deadline {
                return fail("no CREATE from the relay");
            }
            let n = std::io::Read::read(&mut sock, &mut buf)
                .map_err(|e| format!("waiting for CREATE: {e}"))?;
            if n == 0 {
                return fail("the relay closed its link to the second relay");
            }
            est.handle_bytes(Time::ZERO, &buf[..n])
                .map_err(|e| e.to_string())?;
        }
    };
    match run() {
        Ok((id, index, sock)) => {
            let _ = seen.send(Ok((id, index)));
            let _ = done.recv_timeout(Duration::from_secs(10));
            drop(sock);
        }
        Err(e) => {
            let _ = seen.send(Err(e));
        }
    }
}

fn extend_to_listed_relay(t: &Target) -> Verdict {
    let s = match second(t) {
        Ok(s) => s,
        Err(v) => return v,
    };
    let listener = match TcpListener::bind(s.desc.addr) {
        Ok(l) => l,
        Err(e) => {
            return Verdict::Fail(format!(
                "cannot listen at the second relay's address {}: {e}",
                s.desc.addr
            ));
        }
    };
    let node_id: NodeId = s.desc.node_id();
    let onion = s.desc.onion_key;
    let (seen_tx, seen_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let server = std::thread::spawn(move || serve(listener, s, seen_tx, done_rx));
    let verdict = with_conn(t, |c| {
        let (id, mut layers) = c.create(t)?;
        let (hop2, m1) =
            crate::crypto::hop::client_start(&onion, 2, Randomness::Seeded(os_rng().array()))
                .map_err(|e| format!("hop handshake: {e}"))?;
        c.relay(
            id,
            &mut layers,
            &RelayMsg::Extend {
                node_id: node_id.0,
                handshake_type: HandshakeType::NOISE_NK_V1.0,
                handshake: m1,
            },
        )?;
        let reply = c.recv_relay(id, &mut layers)?;
        let (circ, index) = seen_rx
            .recv_timeout(ANSWER + ANSWER)
            .map_err(|_| "the second relay saw nothing".to_string())??;
        if circ & 0x8000_0000 == 0 {
            return fail(format!(
                "the relay dialled the second relay but its CREATE had id {circ:#x} (top bit clear)"
            ));
        }
        if index != 2 {
            return fail(format!("the CREATE announced hop index {index}"));
        }
        let RelayMsg::Extended { handshake } = reply else {
            return fail(format!("expected EXTENDED, got {reply:?}"));
        };
        let keys = hop2
            .finish(&handshake)
            .map_err(|e| format!("EXTENDED's hop message 2: {e}"))?;
        layers.push(&keys).map_err(|e| format!("layer keys: {e}"))?;
        Ok(())
    });
    let _ = done_tx.send(());
    let _ = server.join();
    verdict
}
