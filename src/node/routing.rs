//! How the node routes (`protocol-spec/09-relay.md#routing`): link events to sessions,
//! decoded cells to the reader's circuits or the relay switch, their actions back to links,
//! and failures to retries. Part of [`super::Node`]; see its docs.

use core::net::SocketAddr;

#[cfg(feature = "sim")]
use super::Observed;
use super::links::{LinkEntry, Purpose};
use super::{Node, NodeError, Output, Waiter};
use crate::circuit::{ClientAction, ClientEvent};
use crate::crypto::keys::LinkKeypair;
use crate::crypto::noise::Randomness;
use crate::ids::{ConnectId, LinkId};
use crate::link::{Handshaking, LinkError, Peer, RelayTarget};
use crate::relay::{PrevKind, RelayAction, Source};
use crate::time::Time;
use crate::wire::restrict::{CellAction, ChanMsg, DestroyReason};

impl Node {
    pub(super) fn on_link_opened(
        &mut self,
        now: Time,
        link: LinkId,
        peer: SocketAddr,
        outbound: Option<ConnectId>,
    ) {
        let session = match outbound {
            Some(request) => {
                let Some(target) = self.connects.remove(&request) else {
                    self.outputs.push_back(Output::Close { link });
                    return;
                };
                self.connecting.remove(&target);
                let Some(desc) = self.dirsync.directory().get(&target.0).cloned() else {
                    self.outputs.push_back(Output::Close { link });
                    self.fail_waiters(now, target);
                    return;
                };
                let relay_target = RelayTarget {
                    node_id: target.0,
                    link_key: desc.link_key,
                };
                // A reader presents a fresh static key on every link; a relay its own, with
                // its binding (`02-link.md#handshake`).
                let (local, binding) = match (target.1, &self.keys) {
                    (Purpose::Relay, Some(k)) => (k.link.clone(), self.binding),
                    _ => (LinkKeypair::generate(&mut self.rng), None),
                };
                let h = Handshaking::dial(
                    self.cfg.link,
                    relay_target,
                    &local,
                    binding,
                    Randomness::Seeded(self.rng.array()),
                    now,
                );
                self.links_to.insert(target, link);
                (h, Some(target))
            }
            None => {
                let (Some(k), Some(b)) = (&self.keys, self.binding) else {
                    // A reader accepts no links.
                    self.outputs.push_back(Output::Close { link });
                    return;
                };
                // Its handshake takes from the CPU budget CREATEs wait for
                // (`09-relay.md#handshakes`).
                if let Some(s) = self.switch.as_mut() {
                    s.charge_link_handshake(now);
                }
                (
                    Handshaking::accept(
                        self.cfg.link,
                        &k.link,
                        b,
                        Randomness::Seeded(self.rng.array()),
                        now,
                    ),
                    None,
                )
            }
        };
        match session {
            (Ok(h), dialled) => {
                self.links.insert(link, LinkEntry::new(h, peer, dialled));
                self.arm_link(link);
                self.dirty.insert(link);
            }
            (Err(error), dialled) => {
                self.record(NodeError::Link { link, error });
                self.outputs.push_back(Output::Close { link });
                if let Some(t) = dialled {
                    self.links_to.remove(&t);
                    self.fail_waiters(now, t);
                }
            }
        }
    }

    pub(super) fn on_link_bytes(&mut self, now: Time, link: LinkId, bytes: &[u8]) {
        self.charge_read(now, bytes.len());
        let Some(entry) = self.links.get_mut(&link) else {
            return;
        };
        match entry.handle_bytes(now, bytes, &mut self.link_replay) {
            Ok(established) => {
                if established {
                    // Its timers are an established link's now, not the handshake's.
                    self.arm_link(link);
                    self.on_established(now, link);
                }
                self.dirty.insert(link);
                self.drain_link(now, link);
            }
            Err(error) => self.close_link(now, link, Some(error), true),
        }
    }

    fn on_established(&mut self, now: Time, link: LinkId) {
        let Some(entry) = self.links.get(&link) else {
            return;
        };
        let key = match (entry.dialled, entry.peer()) {
            (Some(t), _) => Some(t),
            // A relay that dialled us can carry our EXTENDs too.
            (None, Some(Peer::Relay { identity, .. })) => {
                let k = (identity.node_id(), Purpose::Relay);
                if self.links_to.contains_key(&k) {
                    None
                } else {
                    Some(k)
                }
            }
            _ => None,
        };
        let Some(key) = key else { return };
        self.links_to.insert(key, link);
        if key.1 == Purpose::Reader {
            self.guards.mark_up(key.0);
        }
        for w in self.waiting.remove(&key).unwrap_or_default() {
            self.run_waiter(now, link, w);
        }
    }

    fn drain_link(&mut self, now: Time, link: LinkId) {
        loop {
            let Some(entry) = self.links.get_mut(&link) else {
                return;
            };
            let Some(msg) = entry.poll_msg() else { return };
            let peer = entry.peer();
            match msg {
                Ok(m) => self.dispatch(now, link, peer, m),
                Err(error) => {
                    let action = error.action();
                    self.record(NodeError::Cell { link, error });
                    // `03-cells.md#errors`: the circuit named closes, the link stays.
                    if let CellAction::DestroyCircuit(circ_id) = action {
                        self.dispatch(
                            now,
                            link,
                            peer,
                            ChanMsg::Destroy {
                                circ_id,
                                reason: DestroyReason::PROTOCOL,
                            },
                        );
                        self.link_send(
                            now,
                            link,
                            ChanMsg::Destroy {
                                circ_id,
                                reason: DestroyReason::PROTOCOL,
                            },
                        );
                    }
                }
            }
        }
    }

    /// Handle a message its bucket paid for (`shaping::dispatch` decides).
    pub(super) fn dispatch_now(
        &mut self,
        now: Time,
        link: LinkId,
        peer: Option<Peer>,
        msg: ChanMsg,
    ) {
        let relay_result = match msg {
            ChanMsg::Create { circ_id, body } => {
                // Shares of the table go to relays by identity, to others by network
                // (`09-relay.md#shares`).
                let (prev, source) = match peer {
                    Some(Peer::Relay { identity, .. }) => {
                        (PrevKind::Relay, Source::Relay(identity.node_id()))
                    }
                    _ => {
                        let ip = self.links.get(&link).map(|e| e.peer_addr.ip());
                        let unspecified = core::net::IpAddr::V6(core::net::Ipv6Addr::UNSPECIFIED);
                        (PrevKind::Reader, Source::of_ip(ip.unwrap_or(unspecified)))
                    }
                };
                // The peer dialled the link if this node did not.
                let peer_dialled = self.links.get(&link).is_some_and(|e| e.dialled.is_none());
                self.switch.as_mut().map(|s| {
                    s.handle_create(now, link, (prev, source), circ_id, &body, peer_dialled)
                })
            }
            ChanMsg::Created { circ_id, body } => {
                if self.client.owns(link, circ_id) {
                    self.client.handle_created(now, link, circ_id, &body);
                    None
                } else {
                    self.switch
                        .as_mut()
                        .map(|s| s.handle_created(link, circ_id, &body))
                }
            }
            ChanMsg::Relay { circ_id, mut body } => {
                if self.client.owns(link, circ_id) {
                    self.client.handle_relay(now, link, circ_id, &mut body);
                    None
                } else {
                    self.switch
                        .as_mut()
                        .map(|s| s.handle_relay(now, link, circ_id, body))
                }
            }
            ChanMsg::Dht { first, data } => {
                self.on_dht_fragment(now, link, peer, first, &data);
                None
            }
            ChanMsg::Dir { first, data } => {
                self.on_dir_fragment(now, link, peer, first, &data);
                None
            }
            ChanMsg::Destroy { circ_id, reason } => {
                if self.client.owns(link, circ_id) {
                    self.client.handle_destroy(link, circ_id, reason);
                } else if let Some(s) = self.switch.as_mut() {
                    s.handle_destroy(link, circ_id, reason);
                }
                None
            }
            _ => None,
        };
        if let Some(Err(e)) = relay_result {
            self.record(NodeError::Relay(e));
        }
    }

    /// Add a fragment of a `DHT` or `DIR` message (`03-cells.md#dht`, `03-cells.md#dir`)
    /// from `link` and decode the message it completes; a bad fragment or a message that
    /// does not decode closes the link.
    pub(super) fn take_message<T>(
        &mut self,
        now: Time,
        link: LinkId,
        (dir, first, data): (bool, bool, &[u8]),
        decode: fn(&[u8]) -> Result<T, crate::wire::DecodeError>,
    ) -> Option<T> {
        let entry = self.links.get_mut(&link)?;
        let (reassembler, max) = if dir {
            (&mut entry.dir_in, crate::wire::dir_msg::MAX_DIR_MESSAGE)
        } else {
            (&mut entry.dht_in, crate::wire::dht_msg::MAX_MESSAGE)
        };
        let what = match reassembler.push(first, data, max) {
            Ok(None) => return None,
            Ok(Some(m)) => match decode(&m) {
                Ok(msg) => return Some(msg),
                Err(_) if dir => "malformed directory message",
                Err(_) => "malformed DHT message",
            },
            Err(_) if dir => "bad DIR fragment",
            Err(_) => "bad DHT fragment",
        };
        let e = LinkError::Protocol { what };
        self.close_link(now, link, Some(e), true);
        None
    }

    /// Queue `msg` on `link` now (`shaping::link_send` decides when).
    pub(super) fn send_now(&mut self, link: LinkId, msg: ChanMsg) {
        let Some(entry) = self.links.get_mut(&link) else {
            return;
        };
        match entry.send(msg) {
            Ok(()) => {
                self.dirty.insert(link);
            }
            Err(error) => self.record(NodeError::Link { link, error }),
        }
    }

    /// Close a link and everything on it. `tell_driver`: the node decided (the driver did
    /// not report the close).
    pub(super) fn close_link(
        &mut self,
        now: Time,
        link: LinkId,
        error: Option<LinkError>,
        tell_driver: bool,
    ) {
        let Some(entry) = self.links.remove(&link) else {
            return;
        };
        self.arm_link(link);
        if let Some(error) = error {
            self.record(NodeError::Link { link, error });
        }
        if tell_driver {
            self.outputs.push_back(Output::Close { link });
        }
        self.dirty.remove(&link);
        self.dir_limits.forget(link);
        self.shaping.forget_link(link);
        let keys: Vec<_> = self
            .links_to
            .iter()
            .filter(|(_, l)| **l == link)
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.links_to.remove(&k);
            if !entry.is_established() {
                if k.1 == Purpose::Reader {
                    self.guards.mark_down(k.0);
                }
                self.fail_waiters(now, k);
            }
        }
        self.client.link_closed(link);
        if let Some(s) = self.switch.as_mut() {
            s.link_closed(link);
        }
    }

    /// Route every queued action, retry failed builds, then write what links have.
    pub(super) fn pump(&mut self, now: Time) {
        loop {
            let mut progress = false;
            while let Some(a) = self.client.poll_action() {
                progress = true;
                match a {
                    ClientAction::Send { link, msg } => self.link_send(now, link, msg),
                    ClientAction::Event(ev) => self.on_client_event(ev),
                }
            }
            while let Some(a) = self.switch.as_mut().and_then(|s| s.poll_action()) {
                progress = true;
                match a {
                    RelayAction::Send { link, msg } => self.link_send(now, link, msg),
                    RelayAction::Extend { from, target } => {
                        if self.dirsync.directory().get(&target).is_none() {
                            self.record(NodeError::Relay(crate::relay::RelayError::ExtendUnknown));
                            if let Some(s) = self.switch.as_mut() {
                                s.extend_failed(from, DestroyReason::UNREACHABLE);
                            }
                        } else {
                            self.with_link(now, target, Purpose::Relay, Waiter::Extend(from));
                        }
                    }
                    RelayAction::ServiceData {
                        circ,
                        stream_id,
                        data,
                    } => self.on_service_data(now, circ, stream_id, &data),
                    RelayAction::CircuitGone { circ } => self.on_circuit_gone(circ),
                    #[cfg(feature = "sim")]
                    RelayAction::Observe(what) => {
                        if self.cfg.record_observations {
                            let circ_link = match &what {
                                crate::relay::Observation::Created { circ, .. }
                                | crate::relay::Observation::Destination { circ, .. } => circ.0,
                            };
                            if let Some(e) = self.links.get(&circ_link) {
                                self.observations.push(Observed {
                                    what,
                                    from: e.peer_addr,
                                });
                            }
                        }
                    }
                }
            }
            while let Some(a) = self.dht.as_mut().and_then(|d| d.poll_action()) {
                progress = true;
                self.on_dht_action(now, a);
            }
            for circ in std::mem::take(&mut self.retry) {
                progress = true;
                self.start_build(now, circ);
            }
            if !progress {
                break;
            }
        }
        for link in std::mem::take(&mut self.dirty) {
            let Some(entry) = self.links.get_mut(&link) else {
                continue;
            };
            match entry.poll_transmit(now) {
                Ok(Some(bytes)) => {
                    self.shaping.written += bytes.len() as u64;
                    self.outputs.push_back(Output::Send { link, bytes });
                }
                Ok(None) => {}
                Err(error) => self.close_link(now, link, Some(error), true),
            }
        }
    }
}

impl From<ClientEvent> for Output {
    fn from(e: ClientEvent) -> Output {
        Output::Event(e)
    }
}
