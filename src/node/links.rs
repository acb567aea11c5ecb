//! The node's table of links (`protocol-spec/02-link.md`): one entry per TCP connection,
//! holding the session typestate and cells waiting for the handshake to finish.

use core::net::SocketAddr;

use crate::crypto::keys::NodeId;
use crate::crypto::replay::ReplayCache;
use crate::link::{Established, HandshakeStep, Handshaking, LinkError, Peer};
use crate::time::Time;
use crate::wire::cell::CircId;
use crate::wire::restrict::{CellError, ChanMsg};

/// Why a link to a relay exists: a reader's anonymous link to its guard, or a relay's own
/// link (identity proven) used for EXTEND.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Purpose {
    Reader,
    Relay,
}

#[derive(Debug)]
pub(crate) enum Session {
    Handshaking(Box<Handshaking>),
    Established(Box<Established>),
    Gone,
}

#[derive(Debug)]
pub(crate) struct LinkEntry {
    pub(crate) session: Session,
    pub(crate) peer_addr: SocketAddr,
    /// The relay and purpose this link was dialled for (outbound links).
    pub(crate) dialled: Option<(NodeId, Purpose)>,
    next_circ: u32,
    /// Messages queued before the handshake finished.
    pub(crate) queued: Vec<ChanMsg>,
    /// DHT message being reassembled from this link (`03-cells.md#dht`).
    pub(crate) dht_in: crate::wire::restrict::DhtReassembler,
    /// Directory message being reassembled from this link (`03-cells.md#dir`).
    pub(crate) dir_in: crate::wire::restrict::DhtReassembler,
}

/// The circuit id after `used` ids were allocated on a link (`03-cells.md#circuit-ids`): the
/// dialler's have the top bit set, and each is above every id allocated before; `None` once
/// all 2^31 - 1 are used.
pub(crate) fn next_circ_id(used: u32, dialler: bool) -> Option<CircId> {
    let n = used.checked_add(1).filter(|n| *n <= 0x7fff_ffff)?;
    CircId::new(if dialler { n | 0x8000_0000 } else { n })
}

impl LinkEntry {
    pub(crate) fn new(
        session: Handshaking,
        peer_addr: SocketAddr,
        dialled: Option<(NodeId, Purpose)>,
    ) -> Self {
        LinkEntry {
            session: Session::Handshaking(Box::new(session)),
            peer_addr,
            dialled,
            next_circ: 0,
            queued: Vec::new(),
            dht_in: crate::wire::restrict::DhtReassembler::default(),
            dir_in: crate::wire::restrict::DhtReassembler::default(),
        }
    }

    pub(crate) fn is_established(&self) -> bool {
        matches!(self.session, Session::Established(_))
    }

    pub(crate) fn peer(&self) -> Option<Peer> {
        match &self.session {
            Session::Established(e) => Some(e.peer()),
            _ => None,
        }
    }

    /// A fresh circuit id for this link ([`next_circ_id`]); `None` once all are used: the
    /// link carries no new circuit (its open ones stay).
    pub(crate) fn alloc_circ_id(&mut self) -> Option<CircId> {
        let id = next_circ_id(self.next_circ, self.dialled.is_some())?;
        self.next_circ += 1;
        Some(id)
    }

    pub(crate) fn poll_timeout(&self) -> Option<Time> {
        match &self.session {
            Session::Handshaking(h) => Some(h.poll_timeout()),
            Session::Established(e) => Some(e.poll_timeout()),
            Session::Gone => None,
        }
    }

    /// Run the link's timers; `Ok(true)` if it has bytes to send.
    pub(crate) fn handle_timeout(&mut self, now: Time) -> Result<bool, LinkError> {
        match &mut self.session {
            Session::Handshaking(h) => h.handle_timeout(now).map(|()| false),
            Session::Established(e) => e.handle_timeout(now).map(|()| true),
            Session::Gone => Ok(false),
        }
    }

    /// The error to report when the stream ended.
    pub(crate) fn finish_error(&self) -> Option<LinkError> {
        match &self.session {
            Session::Handshaking(h) => h.finish().err(),
            Session::Established(e) => e.finish().err(),
            Session::Gone => None,
        }
    }

    /// Feed bytes; returns whether the handshake finished with this call.
    pub(crate) fn handle_bytes(
        &mut self,
        now: Time,
        bytes: &[u8],
        replay: &mut ReplayCache,
    ) -> Result<bool, LinkError> {
        match std::mem::replace(&mut self.session, Session::Gone) {
            Session::Handshaking(h) => match h.handle_bytes_guarded(now, bytes, Some(replay))? {
                HandshakeStep::Continue(h) => {
                    self.session = Session::Handshaking(Box::new(h));
                    Ok(false)
                }
                HandshakeStep::Done(e) => {
                    self.session = Session::Established(Box::new(e));
                    Ok(true)
                }
            },
            Session::Established(mut e) => {
                let r = e.handle_bytes(now, bytes);
                self.session = Session::Established(e);
                r.map(|()| false)
            }
            Session::Gone => Err(LinkError::Protocol {
                what: "bytes on a closed link",
            }),
        }
    }

    pub(crate) fn poll_msg(&mut self) -> Option<Result<ChanMsg, CellError>> {
        match &mut self.session {
            Session::Established(e) => e.poll_msg(),
            _ => None,
        }
    }

    /// Queue a message (sent once established).
    pub(crate) fn send(&mut self, msg: ChanMsg) -> Result<(), LinkError> {
        match &mut self.session {
            Session::Established(e) => e.send_msg(&msg),
            _ => {
                self.queued.push(msg);
                Ok(())
            }
        }
    }

    /// Bytes to write now.
    pub(crate) fn poll_transmit(&mut self, now: Time) -> Result<Option<Vec<u8>>, LinkError> {
        match &mut self.session {
            Session::Handshaking(h) => Ok(h.poll_transmit()),
            Session::Established(e) => {
                for m in std::mem::take(&mut self.queued) {
                    e.send_msg(&m)?;
                }
                e.poll_transmit(now)
            }
            Session::Gone => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::next_circ_id;

    #[test]
    fn circuit_ids_keep_their_sides_parity_rise_and_run_out() {
        let ids = |dialler| {
            (0..3)
                .map(|used| next_circ_id(used, dialler).map(|c| c.get()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(true),
            [Some(0x8000_0001), Some(0x8000_0002), Some(0x8000_0003)]
        );
        assert_eq!(ids(false), [Some(1), Some(2), Some(3)]);
        assert_eq!(
            next_circ_id(0x7fff_fffe, true).map(|c| c.get()),
            Some(0xffff_ffff)
        );
        // Never wraps back to ids already used: the link takes no new circuit.
        assert_eq!(next_circ_id(0x7fff_ffff, true), None);
        assert_eq!(next_circ_id(u32::MAX, false), None);
    }
}
