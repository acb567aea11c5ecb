//! A reader that stops reading (`umbra bench --limits`, `tests/limits_process.rs`): one link
//! from its own address, with a small receive buffer, carrying one-hop circuits to a relay,
//! each with an `echo` stream (`protocol-spec/05-streams.md#services`). It sends data to be
//! echoed and never reads the answers, so what the relay sends back queues at the relay:
//! the load its memory limit must hold (`09-relay.md#memory`).
//! Not in this module: the link itself (`raw_link.rs`) or what is measured.

use crate::runtime::error::RuntimeError;
use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::crypto::hop;
use crate::crypto::layer::ClientLayers;
use crate::crypto::noise::Randomness;
use crate::directory::Descriptor;
use crate::runtime::driver::os_rng;
use crate::runtime::raw_link::{As, RawLink};
use crate::wire::cell::{CircId, RELAY_PAYLOAD_LEN};
use crate::wire::relay_msg::{MAX_DATA, RelayContext, RelayMsg};
use crate::wire::restrict::{ChanMsg, CreateBody, HandshakeType};

/// Receive buffer of a stalled reader's socket.
const RECV_BUF: u32 = 16 << 10;

fn err(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Bench(format!("stalled reader: {e}"))
}

/// A link and its circuits' layers, by circuit id.
pub struct Stalled {
    link: RawLink,
    circuits: BTreeMap<u32, ClientLayers>,
}

impl Stalled {
    /// Open a link from `ip` to `target`, build `n` one-hop circuits on it and open an echo
    /// stream on each (circuits the relay refuses are left out).
    pub fn open(ip: IpAddr, target: &Descriptor, n: u32) -> Result<Stalled, RuntimeError> {
        let mut link = RawLink::open_with(Some((ip, Some(RECV_BUF))), As::Reader, target)?;
        let mut pending = BTreeMap::new();
        let mut creates = Vec::new();
        let mut rng = os_rng();
        for k in 1..=n {
            let (c, msg1) =
                hop::client_start(&target.onion_key, 1, Randomness::Seeded(rng.array()))
                    .map_err(err)?;
            // The dialler's half of the id space (`03-cells.md#circuit-ids`).
            let circ_id = CircId::new(k | 0x8000_0000).unwrap_or(CircId::MIN);
            pending.insert(circ_id.get(), c);
            creates.push(ChanMsg::Create {
                circ_id,
                body: CreateBody {
                    handshake_type: HandshakeType::NOISE_NK_V1,
                    handshake: msg1,
                },
            });
        }
        link.send(&creates)?;
        let mut circuits = BTreeMap::new();
        let mut answers = 0;
        while answers < n {
            match link.recv()? {
                ChanMsg::Created { circ_id, body } => {
                    answers += 1;
                    if let Some(c) = pending.remove(&circ_id.get()) {
                        let keys = c.finish(&body.handshake).map_err(err)?;
                        let mut layers = ClientLayers::new();
                        layers.push(&keys).map_err(err)?;
                        circuits.insert(circ_id.get(), layers);
                    }
                }
                ChanMsg::Destroy { .. } => answers += 1,
                _ => {}
            }
        }
        let mut begins = Vec::new();
        for (&id, layers) in &mut circuits {
            let begin = RelayMsg::Begin {
                stream_id: 1,
                service: crate::relay::exit::ECHO.to_vec(),
            };
            begins.push(relay_cell(id, layers, &begin)?);
        }
        link.send(&begins)?;
        let mut connected = 0;
        while connected < circuits.len() {
            if let ChanMsg::Relay { circ_id, mut body } = link.recv()? {
                let Some(layers) = circuits.get_mut(&circ_id.get()) else {
                    continue;
                };
                let (_, off) = layers.open_backward(&mut body).map_err(err)?;
                if let Some(Ok(RelayMsg::Connected { .. })) = body
                    .get(off..off + RELAY_PAYLOAD_LEN)
                    .map(|p| RelayMsg::decode(p, RelayContext::AtReader))
                {
                    connected += 1;
                }
            }
        }
        Ok(Stalled { link, circuits })
    }

    /// Circuits built.
    pub fn circuits(&self) -> usize {
        self.circuits.len()
    }

    /// Send `cells` full DATA cells on every circuit's echo stream (within its windows) and
    /// read nothing. An error: the relay dropped the link.
    pub fn send_echoes(&mut self, cells: usize) -> Result<(), RuntimeError> {
        let data = [0x5a_u8; MAX_DATA];
        for (&id, layers) in &mut self.circuits {
            let msgs = (0..cells)
                .map(|_| {
                    let m = RelayMsg::Data {
                        stream_id: 1,
                        data: data.to_vec(),
                    };
                    relay_cell(id, layers, &m)
                })
                .collect::<Result<Vec<ChanMsg>, RuntimeError>>()?;
            self.link.send(&msgs)?;
        }
        Ok(())
    }
}

/// A RELAY cell carrying `msg` to hop 1 of circuit `id`.
fn relay_cell(id: u32, layers: &mut ClientLayers, msg: &RelayMsg) -> Result<ChanMsg, RuntimeError> {
    let payload = msg.encode().map_err(err)?;
    let body = layers.seal_forward(1, &payload).map_err(err)?;
    Ok(ChanMsg::Relay {
        circ_id: CircId::new(id).unwrap_or(CircId::MIN),
        body: Box::new(body),
    })
}
