//! Floods the bench runs against a relay while it builds honest circuits through it.
//! - `umbra bench --store-flood`: a relay of the directory floods another with `STORE`s
//!   (issue 12, finding 4; `protocol-spec/06-dht.md#store`). A thread opens a link to the
//!   target as relay 1 (with relay 1's own keys, so the target serves it as a directory
//!   member) and sends 3-byte block `STORE`s as fast as the target reads them. The same
//!   flood with any DHT message ([`DhtFlood::start`]) drives `tests/limits_process.rs`.
//! - `umbra bench --limits`: an anonymous client floods a relay with `CREATE`s at a set rate
//!   from one address (issue 15, item 7b; `09-relay.md#handshakes`). Each carries a fresh
//!   random message 1, so the relay's replay check never spares it the X25519 operation.
//!
//! Anything the target sends back is read and dropped, so its writes never block.
//! Not in this module: the circuit measurements (`mod.rs`, `limits.rs`).

use crate::runtime::error::RuntimeError;
use std::io::Read;
use std::net::{IpAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crate::crypto::noise::Randomness;
use crate::directory::Descriptor;
use crate::runtime::driver::{os_rng, wall_now};
use crate::runtime::raw_link::{As, RawLink};
use crate::wire::cell::CircId;
use crate::wire::dht_msg::{DhtMsg, Record, RecordKind};
use crate::wire::restrict::{ChanMsg, CreateBody, HandshakeType, dht_fragments};

/// DHT messages written per batch.
const BATCH: u32 = 256;

/// A running flood of DHT messages.
pub struct DhtFlood {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    started: Instant,
    thread: std::thread::JoinHandle<Result<(), RuntimeError>>,
}

impl DhtFlood {
    /// Flood `target` with 3-byte block `STORE`s as the relay whose keys are in `keys_dir`.
    pub fn stores(keys_dir: &Path, target: &Descriptor) -> Result<DhtFlood, RuntimeError> {
        let expires = wall_now().0 + 86_400;
        DhtFlood::start(keys_dir, target, move |k| {
            let value = k.to_be_bytes()[1..].to_vec();
            DhtMsg::Store {
                id: k,
                record: Record {
                    kind: RecordKind::BLOCK,
                    key: crate::crypto::hash::hash(&value),
                    value,
                },
                expires,
            }
        })
    }

    /// Flood `target` as the relay whose keys are in `keys_dir` with `make(k)` for k = 0,
    /// 1, ..., as fast as the target reads them; what it answers is read and dropped.
    pub fn start(
        keys_dir: &Path,
        target: &Descriptor,
        mut make: impl FnMut(u32) -> DhtMsg + Send + 'static,
    ) -> Result<DhtFlood, RuntimeError> {
        let mut link = RawLink::open(None, As::Relay(keys_dir), target)?;
        drain(&link.sock)?;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (stop2, sent2) = (stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || -> Result<(), RuntimeError> {
            let mut k: u32 = 0;
            let mut batch: Vec<ChanMsg> = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                batch.clear();
                for _ in 0..BATCH {
                    batch.extend(dht_fragments(&make(k).encode()));
                    k = k.wrapping_add(1);
                }
                link.send(&batch)?;
                sent2.fetch_add(u64::from(BATCH), Ordering::Relaxed);
            }
            Ok(())
        });
        Ok(DhtFlood {
            stop,
            sent,
            started: Instant::now(),
            thread,
        })
    }

    /// Stop; the messages sent and the seconds they took.
    pub fn stop(self) -> Result<(u64, f64), RuntimeError> {
        self.stop.store(true, Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64();
        match self.thread.join() {
            Ok(r) => r?,
            Err(_) => return Err(RuntimeError::Bench("flood: the thread panicked".into())),
        }
        Ok((self.sent.load(Ordering::Relaxed), secs))
    }
}

/// Read and drop whatever the relay sends on `sock`, in a thread of its own.
fn drain(sock: &TcpStream) -> Result<(), RuntimeError> {
    let mut drain = sock
        .try_clone()
        .map_err(|e| RuntimeError::Bench(e.to_string()))?;
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while matches!(drain.read(&mut buf), Ok(n) if n > 0) {}
    });
    Ok(())
}

/// CREATEs written at most per write.
const CREATE_BATCH: u64 = 1_000;

/// A running CREATE flood.
pub struct CreateFlood {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    links: Arc<AtomicU64>,
    started: Instant,
    thread: std::thread::JoinHandle<()>,
}

/// What a CREATE flood did.
#[derive(Debug, Clone, Copy)]
pub struct FloodReport {
    /// CREATEs written.
    pub sent: u64,
    /// Seconds it ran.
    pub secs: f64,
    /// Links it had to open (more than one: the relay dropped it, and it came back).
    pub links: u64,
}

impl CreateFlood {
    /// Send CREATEs to `target` from address `src` at `per_sec`, as one anonymous client,
    /// reopening its link whenever the relay drops it.
    pub fn start(
        src: IpAddr,
        target: Descriptor,
        per_sec: f64,
    ) -> Result<CreateFlood, RuntimeError> {
        let msg1_len = crate::crypto::hop::client_start(
            &target.onion_key,
            1,
            Randomness::Seeded(os_rng().array()),
        )
        .map_err(|e| RuntimeError::Bench(format!("flood: {e}")))?
        .1
        .len();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let links = Arc::new(AtomicU64::new(0));
        let (stop2, sent2, links2) = (stop.clone(), sent.clone(), links.clone());
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            let mut rng = os_rng();
            let mut id: u32 = 0;
            while !stop2.load(Ordering::Relaxed) {
                let Ok(mut link) = RawLink::open(Some(src), As::Reader, &target) else {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    continue;
                };
                links2.fetch_add(1, Ordering::Relaxed);
                if drain(&link.sock).is_err() {
                    continue;
                }
                while !stop2.load(Ordering::Relaxed) {
                    let due = (per_sec * started.elapsed().as_secs_f64()) as u64;
                    let n = due
                        .saturating_sub(sent2.load(Ordering::Relaxed))
                        .min(CREATE_BATCH);
                    if n == 0 {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        continue;
                    }
                    let msgs: Vec<ChanMsg> = (0..n)
                        .map(|_| {
                            // The dialler's half of the id space (`03-cells.md#circuit-ids`).
                            id = if id < 0x8000_0001 || id == u32::MAX {
                                0x8000_0001
                            } else {
                                id + 1
                            };
                            let mut handshake = vec![0u8; msg1_len];
                            rng.fill(&mut handshake);
                            ChanMsg::Create {
                                circ_id: CircId::new(id).unwrap_or(CircId::MIN),
                                body: CreateBody {
                                    handshake_type: HandshakeType::NOISE_NK_V1,
                                    handshake,
                                },
                            }
                        })
                        .collect();
                    if link.send(&msgs).is_err() {
                        break;
                    }
                    sent2.fetch_add(n, Ordering::Relaxed);
                }
            }
        });
        Ok(CreateFlood {
            stop,
            sent,
            links,
            started,
            thread,
        })
    }

    /// Stop; what was sent.
    pub fn stop(self) -> Result<FloodReport, RuntimeError> {
        self.stop.store(true, Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64();
        self.thread
            .join()
            .map_err(|_| RuntimeError::Bench("flood: the thread panicked".into()))?;
        Ok(FloodReport {
            sent: self.sent.load(Ordering::Relaxed),
            secs,
            links: self.links.load(Ordering::Relaxed),
        })
    }
}
