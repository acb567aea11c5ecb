//! `umbra bench --store-flood`: a relay of the directory floods another with `STORE`s
//! (issue 12, finding 4; `protocol-spec/06-dht.md#store`). A thread opens a link to the
//! target as relay 1 (with relay 1's own keys, so the target serves it as a directory
//! member) and sends 3-byte block `STORE`s as fast as the target reads them, while the
//! bench builds circuits through the target. Anything the target sends back is read and
//! dropped, so its writes never block.
//! Not in this module: the circuit measurements (`apps.rs`).

use crate::runtime::error::RuntimeError;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crate::crypto::keys::LinkKeyBinding;
use crate::crypto::keystore;
use crate::crypto::noise::Randomness;
use crate::directory::Descriptor;
use crate::link::{HandshakeStep, Handshaking, LinkConfig, RelayTarget};
use crate::runtime::driver::{os_rng, wall_now};
use crate::time::Time;
use crate::wire::dht_msg::{DhtMsg, Record, RecordKind};
use crate::wire::restrict::dht_fragments;

/// STOREs written per batch.
const BATCH: u32 = 256;

/// A running flood.
pub struct StoreFlood {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    started: Instant,
    thread: std::thread::JoinHandle<Result<(), RuntimeError>>,
}

fn elapsed(t0: Instant) -> Time {
    Time::from_micros(u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX))
}

/// Open a link to `target` as the relay whose keys are in `keys_dir`.
fn open_link(
    keys_dir: &Path,
    target: &Descriptor,
) -> Result<(TcpStream, crate::link::Established, Instant), RuntimeError> {
    let identity = keystore::read_identity(&keys_dir.join("identity.key"))
        .map_err(|e| RuntimeError::Bench(format!("flood: {e}")))?;
    let link = keystore::read_static(&keys_dir.join("link.key"))
        .map_err(|e| RuntimeError::Bench(format!("{e}")))?;
    let t0 = Instant::now();
    let mut sock =
        TcpStream::connect(target.addr).map_err(|e| RuntimeError::Bench(format!("flood: {e}")))?;
    let mut h = Handshaking::dial(
        LinkConfig::default(),
        RelayTarget {
            node_id: target.node_id(),
            link_key: target.link_key,
        },
        &link,
        Some(LinkKeyBinding::sign(&identity, &link.public())),
        Randomness::Seeded(os_rng().array()),
        Time::ZERO,
    )
    .map_err(|e| RuntimeError::Bench(format!("flood: {e}")))?;
    let first = h
        .poll_transmit()
        .ok_or_else(|| RuntimeError::Bench("flood: no handshake message".into()))?;
    sock.write_all(&first)
        .map_err(|e| RuntimeError::Bench(e.to_string()))?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = sock
            .read(&mut buf)
            .map_err(|e| RuntimeError::Bench(e.to_string()))?;
        if n == 0 {
            return Err(RuntimeError::Bench(
                "flood: the target closed the handshake".into(),
            ));
        }
        let step = h
            .handle_bytes(elapsed(t0), &buf[..n])
            .map_err(|e| RuntimeError::Bench(format!("flood: {e}")))?;
        match step {
            HandshakeStep::Continue(next) => h = next,
            HandshakeStep::Done(mut est) => {
                if let Some(m3) = est
                    .poll_transmit(elapsed(t0))
                    .map_err(|e| RuntimeError::Bench(e.to_string()))?
                {
                    sock.write_all(&m3)
                        .map_err(|e| RuntimeError::Bench(e.to_string()))?;
                }
                return Ok((sock, est, t0));
            }
        }
    }
}

impl StoreFlood {
    /// Start flooding `target` as the relay whose keys are in `keys_dir`.
    pub fn start(keys_dir: &Path, target: &Descriptor) -> Result<StoreFlood, RuntimeError> {
        let (mut sock, mut est, t0) = open_link(keys_dir, target)?;
        let mut drain = sock
            .try_clone()
            .map_err(|e| RuntimeError::Bench(e.to_string()))?;
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while matches!(drain.read(&mut buf), Ok(n) if n > 0) {}
        });
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (stop2, sent2) = (stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || -> Result<(), RuntimeError> {
            let expires = wall_now().0 + 86_400;
            let mut k: u32 = 0;
            while !stop2.load(Ordering::Relaxed) {
                for _ in 0..BATCH {
                    let value = k.to_be_bytes()[1..].to_vec();
                    let record = Record {
                        kind: RecordKind::BLOCK,
                        key: crate::crypto::hash::hash(&value),
                        value,
                    };
                    let msg = DhtMsg::Store {
                        id: k,
                        record,
                        expires,
                    };
                    for cell in dht_fragments(&msg.encode()) {
                        est.send_msg(&cell)
                            .map_err(|e| RuntimeError::Bench(e.to_string()))?;
                    }
                    k = k.wrapping_add(1);
                }
                while let Some(bytes) = est
                    .poll_transmit(elapsed(t0))
                    .map_err(|e| RuntimeError::Bench(e.to_string()))?
                {
                    sock.write_all(&bytes).map_err(|e| {
                        RuntimeError::Bench(format!("flood: the target dropped the link: {e}"))
                    })?;
                }
                sent2.fetch_add(u64::from(BATCH), Ordering::Relaxed);
            }
            Ok(())
        });
        Ok(StoreFlood {
            stop,
            sent,
            started: Instant::now(),
            thread,
        })
    }

    /// Stop; the STOREs sent and the seconds they took.
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
