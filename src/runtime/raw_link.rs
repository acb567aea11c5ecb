//! A link driven by hand, message by message, over a blocking socket: the floods and stalled
//! readers of `umbra bench --store-flood` and `--limits` (peers that do what the node's own
//! state machines never would: flood a relay with STOREs or CREATEs, build circuits and never
//! read), and the live cases of `umbra interop --peer` (raw cells, tampered and replayed
//! frames). The link itself is the real one (`link::Handshaking`, `link::Established`,
//! `protocol-spec/02-link.md`). Not in this module: what is sent.

use crate::runtime::error::RuntimeError;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::crypto::keys::{IdentityKey, LinkKeyBinding, LinkKeypair};
use crate::crypto::keystore;
use crate::crypto::noise::Randomness;
use crate::directory::Descriptor;
use crate::link::{Established, HandshakeStep, Handshaking, LinkConfig, RelayTarget};
use crate::runtime::driver::os_rng;
use crate::time::Time;
use crate::wire::cell::Cell;
use crate::wire::restrict::ChanMsg;

fn bench_err(what: &str) -> impl Fn(std::io::Error) -> RuntimeError + '_ {
    move |e| RuntimeError::Bench(format!("{what}: {e}"))
}

/// A TCP connection to `to` from local address `src` (loopback has all of 127/8), with a
/// receive buffer of `recv_buf` bytes if given (a reader that never reads then holds little
/// in its kernel, and what it refuses stays queued at the relay).
pub fn connect_from(
    src: IpAddr,
    to: SocketAddr,
    recv_buf: Option<u32>,
) -> Result<TcpStream, RuntimeError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(bench_err("runtime"))?;
    let sock = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4()?;
        if let Some(n) = recv_buf {
            sock.set_recv_buffer_size(n)?;
        }
        sock.bind(SocketAddr::new(src, 0))?;
        sock.connect(to).await?.into_std()
    });
    let sock = sock.map_err(bench_err("connect"))?;
    sock.set_nonblocking(false).map_err(bench_err("socket"))?;
    let _ = sock.set_nodelay(true);
    Ok(sock)
}

/// An established link held by hand.
pub struct RawLink {
    /// The socket; clone it to drain what the relay sends without decrypting it.
    pub sock: TcpStream,
    est: Established,
    t0: Instant,
    inbox: VecDeque<ChanMsg>,
}

/// Who opens the link.
pub enum As<'a> {
    /// An anonymous reader with a fresh link key.
    Reader,
    /// The relay whose `identity.key` and `link.key` are in this directory.
    Relay(&'a Path),
    /// A relay with these keys (identity, link key), listed in a directory or not.
    Keys(&'a IdentityKey, &'a LinkKeypair),
}

impl RawLink {
    /// Open a link to `target` from `src` (or the default address).
    pub fn open(
        src: Option<IpAddr>,
        who: As<'_>,
        target: &Descriptor,
    ) -> Result<RawLink, RuntimeError> {
        RawLink::open_with(src.map(|ip| (ip, None)), who, target)
    }

    /// [`RawLink::open`] from `src` with a receive buffer of that many bytes, if given.
    pub fn open_with(
        src: Option<(IpAddr, Option<u32>)>,
        who: As<'_>,
        target: &Descriptor,
    ) -> Result<RawLink, RuntimeError> {
        RawLink::open_config(src, who, target, LinkConfig::default())
    }

    /// [`RawLink::open_with`] with the link's own settings (rekey interval, timers).
    pub fn open_config(
        src: Option<(IpAddr, Option<u32>)>,
        who: As<'_>,
        target: &Descriptor,
        config: LinkConfig,
    ) -> Result<RawLink, RuntimeError> {
        let (link_key, binding) = match who {
            As::Reader => (LinkKeypair::generate(&mut os_rng()), None),
            As::Relay(dir) => {
                let identity = keystore::read_identity(&dir.join("identity.key"))
                    .map_err(|e| RuntimeError::Bench(format!("raw link: {e}")))?;
                let link = keystore::read_static(&dir.join("link.key"))
                    .map_err(|e| RuntimeError::Bench(format!("raw link: {e}")))?;
                let binding = LinkKeyBinding::sign(&identity, &link.public());
                (link, Some(binding))
            }
            As::Keys(identity, link) => (
                link.clone(),
                Some(LinkKeyBinding::sign(identity, &link.public())),
            ),
        };
        let t0 = Instant::now();
        let mut sock = match src {
            Some((ip, recv_buf)) => connect_from(ip, target.addr, recv_buf)?,
            None => TcpStream::connect(target.addr).map_err(bench_err("connect"))?,
        };
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(bench_err("socket"))?;
        // A flood blocked on a relay that stopped reading can still be stopped.
        sock.set_write_timeout(Some(Duration::from_secs(10)))
            .map_err(bench_err("socket"))?;
        let mut h = Handshaking::dial(
            config,
            RelayTarget {
                node_id: target.node_id(),
                link_key: target.link_key,
            },
            &link_key,
            binding,
            Randomness::Seeded(os_rng().array()),
            Time::ZERO,
        )
        .map_err(|e| RuntimeError::Bench(format!("raw link: {e}")))?;
        let first = h
            .poll_transmit()
            .ok_or_else(|| RuntimeError::Bench("raw link: no handshake message".into()))?;
        sock.write_all(&first).map_err(bench_err("raw link"))?;
        let mut buf = vec![0u8; 4096];
        loop {
            let n = sock.read(&mut buf).map_err(bench_err("raw link"))?;
            if n == 0 {
                return Err(RuntimeError::Bench(
                    "raw link: the relay closed the handshake".into(),
                ));
            }
            let now = elapsed(t0);
            match h
                .handle_bytes(now, &buf[..n])
                .map_err(|e| RuntimeError::Bench(format!("raw link: {e}")))?
            {
                HandshakeStep::Continue(next) => h = next,
                HandshakeStep::Done(mut est) => {
                    if let Some(m3) = est
                        .poll_transmit(now)
                        .map_err(|e| RuntimeError::Bench(format!("raw link: {e}")))?
                    {
                        sock.write_all(&m3).map_err(bench_err("raw link"))?;
                    }
                    return Ok(RawLink {
                        sock,
                        est,
                        t0,
                        inbox: VecDeque::new(),
                    });
                }
            }
        }
    }

    /// Encrypt `msgs` and write them (blocking while the relay does not read).
    pub fn send(&mut self, msgs: &[ChanMsg]) -> Result<(), RuntimeError> {
        for m in msgs {
            self.est
                .send_msg(m)
                .map_err(|e| RuntimeError::Bench(format!("raw link: {e}")))?;
        }
        let now = elapsed(self.t0);
        while let Some(bytes) = self
            .est
            .poll_transmit(now)
            .map_err(|e| RuntimeError::Bench(format!("raw link: {e}")))?
        {
            self.sock
                .write_all(&bytes)
                .map_err(bench_err("the relay dropped the link"))?;
        }
        Ok(())
    }

    /// Decrypt `bytes` read from the socket elsewhere: the messages they complete, PADDING
    /// skipped.
    pub fn absorb(&mut self, bytes: &[u8]) -> Result<Vec<ChanMsg>, RuntimeError> {
        self.est
            .handle_bytes(elapsed(self.t0), bytes)
            .map_err(|e| RuntimeError::Bench(format!("raw link: {e}")))?;
        let mut out = Vec::new();
        while let Some(m) = self.est.poll_msg() {
            match m.map_err(|e| RuntimeError::Bench(format!("raw link: {e}")))? {
                ChanMsg::Padding => {}
                m => out.push(m),
            }
        }
        Ok(out)
    }

    /// The next message the relay sent, PADDING skipped; waits up to 30 s.
    pub fn recv(&mut self) -> Result<ChanMsg, RuntimeError> {
        // `recv_within` may have left a shorter timeout on the socket.
        self.sock
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(bench_err("socket"))?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            if let Some(m) = self.inbox.pop_front() {
                return Ok(m);
            }
            let got = self.sock.read(&mut buf).map_err(bench_err("raw link"))?;
            if got == 0 {
                return Err(RuntimeError::Bench("raw link: the relay closed it".into()));
            }
            let msgs = self.absorb(&buf[..got])?;
            self.inbox.extend(msgs);
        }
    }
}

/// What [`RawLink::recv_within`] saw.
#[derive(Debug)]
pub enum Received {
    /// A message (PADDING skipped).
    Msg(ChanMsg),
    /// Nothing within the wait; the link is still open.
    Silent,
    /// The peer closed the link (or reset it).
    Closed,
}

impl RawLink {
    /// Encrypt one cell as it is (any command, any circuit id: hostile cases) and write it.
    pub fn send_cell(&mut self, cell: &Cell) -> Result<(), RuntimeError> {
        let bytes = self.seal_cell(cell)?;
        self.send_raw(&bytes)
    }

    /// The link's encrypted frame for `cell`, not written (to tamper with or replay).
    pub fn seal_cell(&mut self, cell: &Cell) -> Result<Vec<u8>, RuntimeError> {
        self.seal_cells(core::slice::from_ref(cell))
    }

    /// The link's encrypted frames for `cells` (one frame while they fit), not written.
    pub fn seal_cells(&mut self, cells: &[Cell]) -> Result<Vec<u8>, RuntimeError> {
        for cell in cells {
            self.est.send(cell);
        }
        let mut out = Vec::new();
        while let Some(bytes) = self
            .est
            .poll_transmit(elapsed(self.t0))
            .map_err(|e| RuntimeError::Bench(format!("raw link: {e}")))?
        {
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    /// Write `bytes` on the socket as they are, outside the link's encryption.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), RuntimeError> {
        self.sock
            .write_all(bytes)
            .map_err(bench_err("the relay dropped the link"))
    }

    /// The next message within `wait`, silence, or the peer closing the link.
    pub fn recv_within(&mut self, wait: Duration) -> Result<Received, RuntimeError> {
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            if let Some(m) = self.inbox.pop_front() {
                return Ok(Received::Msg(m));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Received::Silent);
            }
            self.sock
                .set_read_timeout(Some(left))
                .map_err(bench_err("socket"))?;
            match self.sock.read(&mut buf) {
                Ok(0) => return Ok(Received::Closed),
                Ok(n) => {
                    let msgs = self.absorb(&buf[..n])?;
                    self.inbox.extend(msgs);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(Received::Silent);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    ) =>
                {
                    return Ok(Received::Closed);
                }
                Err(e) => return Err(RuntimeError::Bench(format!("raw link: {e}"))),
            }
        }
    }
}

/// Time since `t0`, as the link state machines take it.
pub fn elapsed(t0: Instant) -> Time {
    Time::from_micros(u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX))
}
