//! The tokio driver: one task owns the [`Node`] (`protocol-spec/README.md#determinism`).
//!
//! The accept loop, per-link reader and writer tasks and connect tasks feed one channel of
//! [`NetEvent`]s to the owner task, which hands them to the node, drains its outputs (bytes
//! to writer tasks, connects to new tasks, events to the [`App`]), and sleeps until the
//! node's next timer. This is the only place (with `cli`) that reads the clock and the OS
//! RNG. Sockets use `TCP_NODELAY`: cells are small and latency matters.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand_core::RngCore;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::admission::Admission;
use crate::app::App;
use crate::crypto::rng::UmbraRng;
use crate::ids::{ConnectId, LinkId};
use crate::node::{Input, Node, Output};
use crate::redact::Sensitive;
use crate::time::{Time, WallTime};

/// A fresh RNG seeded from the operating system.
pub fn os_rng() -> UmbraRng {
    let mut seed = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut seed);
    UmbraRng::from_seed(seed)
}

/// The wall-clock time now.
pub fn wall_now() -> WallTime {
    WallTime(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM: every long-running command stops cleanly on
/// either, saving its state.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// An open byte stream to a peer: a TCP connection, or a stream through Tor.
pub enum Conn {
    /// Plain TCP (`TCP_NODELAY` set).
    Tcp(TcpStream),
    /// A Tor stream to the relay (feature `tor`): the reader's first hop.
    #[cfg(feature = "tor")]
    Tor(Box<arti_client::DataStream>),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Conn::Tcp(_) => f.write_str("Conn::Tcp"),
            #[cfg(feature = "tor")]
            Conn::Tor(_) => f.write_str("Conn::Tor"),
        }
    }
}

/// How the driver reaches the relays the node asks for.
#[derive(Clone, Default)]
pub enum Dialer {
    /// Direct TCP connections.
    #[default]
    Direct,
    /// Through Tor (a reader's guard links; feature `tor`). `fallback` allows a direct
    /// connection when Tor fails, with a warning each time (`[tor] allow_direct_fallback`).
    #[cfg(feature = "tor")]
    Tor {
        /// The Tor client.
        dialer: Arc<super::tor::TorDialer>,
        /// Whether a direct connection may replace a failed Tor one.
        fallback: bool,
    },
}

async fn dial_tcp(addr: SocketAddr) -> Option<Conn> {
    match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr)).await {
        Ok(Ok(s)) => Some(Conn::Tcp(s)),
        _ => None,
    }
}

impl Dialer {
    /// The dialler `[tor]` asks for a reader, with the Tor status to show; starts Tor's
    /// bootstrap in the background (call inside the runtime). `data_dir` holds Tor's state
    /// unless `[tor] state_dir` says otherwise.
    pub fn for_reader(
        tor: &super::config::TorSection,
        data_dir: &std::path::Path,
        quiet: bool,
    ) -> Result<(Dialer, Option<super::tor_status::TorStatusHandle>), super::error::RuntimeError>
    {
        if !tor.enabled {
            return Ok((Dialer::Direct, None));
        }
        #[cfg(feature = "tor")]
        {
            let (dialer, status) = super::tor::TorDialer::start(tor, data_dir, quiet)?;
            if tor.allow_direct_fallback {
                tracing::warn!(
                    "[tor] allow_direct_fallback is on: if Tor fails, your guard will see your \
                     address"
                );
            }
            Ok((
                Dialer::Tor {
                    dialer,
                    fallback: tor.allow_direct_fallback,
                },
                Some(status),
            ))
        }
        #[cfg(not(feature = "tor"))]
        {
            let _ = (data_dir, quiet);
            Err(super::error::RuntimeError::Usage(
                "[tor] enabled = true, but this umbra was built without the `tor` feature: \
                 rebuild with `cargo build --release --features tor`, or turn [tor] off"
                    .into(),
            ))
        }
    }

    async fn dial(self, addr: SocketAddr) -> Option<Conn> {
        match self {
            Dialer::Direct => dial_tcp(addr).await,
            #[cfg(feature = "tor")]
            Dialer::Tor { dialer, fallback } => match dialer.connect(addr).await {
                Ok(s) => Some(Conn::Tor(Box::new(s))),
                Err(e) if fallback => {
                    tracing::warn!(
                        "{e}; connecting DIRECTLY (allow_direct_fallback): this guard learns \
                         your address"
                    );
                    dial_tcp(addr).await
                }
                Err(e) => {
                    tracing::warn!("{e}; not connecting directly");
                    None
                }
            },
        }
    }
}

/// What the network tasks report to the owner task.
#[derive(Debug)]
pub enum NetEvent {
    /// A connection opened: accepted (`None`) or the node's request.
    Opened(Conn, SocketAddr, Option<ConnectId>),
    /// A requested connection failed.
    ConnectFailed(ConnectId),
    /// Bytes read from a link; the link reads again once its turn is dropped (after the
    /// owner task handled them).
    Bytes(LinkId, Vec<u8>, ReadTurn),
    /// A link closed or broke.
    Closed(LinkId),
    /// Something outside the node (the gateway) has work for the [`App`]'s `tick`.
    Wake,
}

/// One of a link's [`READS_IN_FLIGHT`] reads waiting for the owner task. While a link has
/// them all out, its reader reads nothing more, so one link flooding the relay can queue at
/// most that many buffers ahead of every other link's cells (`09-relay.md#connections`).
#[derive(Debug)]
pub struct ReadTurn(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit);

/// Reads one link may have waiting for the owner task.
const READS_IN_FLIGHT: usize = 2;

/// Wakes the owner task so the [`App`] runs its `tick` (the gateway calls it after queueing
/// a request or taking a chunk of a response body).
#[derive(Debug, Clone)]
pub struct Waker(mpsc::Sender<NetEvent>);

impl Waker {
    /// Ask for a `tick` soon. Never blocks: a full queue means the owner is busy and will
    /// tick anyway.
    pub fn wake(&self) {
        let _ = self.0.try_send(NetEvent::Wake);
    }
}

/// Events queued from network tasks at most; when full, readers stop reading their sockets,
/// so TCP flow control pushes back on fast senders.
const NET_QUEUE: usize = 1024;
/// Bytes queued for one link's socket at most. A peer that does not read that much is
/// disconnected rather than buffered for (`protocol-spec/09-relay.md#limits`).
pub const WRITE_QUEUE_CAP: usize = 32 << 20;
/// A busy link's read buffer.
const READ_BUF_MAX: usize = 64 * 1024;

struct LinkTasks {
    writer: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    reader: tokio::task::JoinHandle<()>,
    writer_task: tokio::task::JoinHandle<()>,
}

/// The owner task's state.
pub struct Driver {
    node: Node,
    epoch: Instant,
    tx: mpsc::Sender<NetEvent>,
    rx: mpsc::Receiver<NetEvent>,
    links: BTreeMap<LinkId, LinkTasks>,
    /// Admission of inbound connections (relays), and where each admitted one came from.
    admission: Admission,
    inbound: BTreeMap<LinkId, std::net::IpAddr>,
    next_link: u64,
    dialer: Dialer,
    /// Outcomes of the record store's background commits.
    durable: Option<super::committer::Durable>,
    /// The process's CPU time at the last charge, microseconds (`[limits] cpu_percent`).
    cpu_at: u64,
    /// Bytes queued for all links' sockets together: past half of `[limits] memory`, the
    /// link with most queued is dropped (`09-relay.md#memory`).
    total_queued: Arc<AtomicUsize>,
    /// The most one socket read takes ([`Node::read_quantum`]), shared with the readers.
    read_quantum: Arc<AtomicUsize>,
    /// Read turns kept while the node's limits pause reading a link
    /// (`09-relay.md#bandwidth`): its reader reads nothing until they are given back.
    paused: Vec<(LinkId, ReadTurn)>,
}

impl Driver {
    /// A driver for `node`; `epoch` is the instant that is `Time::ZERO` for it.
    pub fn new(node: Node, epoch: Instant) -> Driver {
        let (tx, rx) = mpsc::channel(NET_QUEUE);
        Driver {
            node,
            epoch,
            tx,
            rx,
            links: BTreeMap::new(),
            admission: Admission::new(),
            inbound: BTreeMap::new(),
            next_link: 1,
            dialer: Dialer::Direct,
            durable: None,
            paused: Vec::new(),
            total_queued: Arc::new(AtomicUsize::new(0)),
            read_quantum: Arc::new(AtomicUsize::new(READ_BUF_MAX)),
            cpu_at: process_cpu_micros(),
        }
    }

    /// Feed the outcomes of the record store's background commits to the node.
    pub fn with_durable(mut self, durable: super::committer::Durable) -> Driver {
        self.durable = Some(durable);
        self
    }

    /// Dial the relays the node asks for with `dialer` (a reader through Tor).
    pub fn with_dialer(mut self, dialer: Dialer) -> Driver {
        self.dialer = dialer;
        self
    }

    /// A handle that makes the owner task run the [`App`]'s `tick`.
    pub fn waker(&self) -> Waker {
        Waker(self.tx.clone())
    }

    fn now(&self) -> Time {
        Time::from_micros(u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    /// Serve `listener` (relays) and run `app` until it finishes or `shutdown` resolves.
    pub async fn run(
        self,
        listener: Option<TcpListener>,
        app: &mut dyn App,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> i32 {
        self.run_keep(listener, app, shutdown).await.0
    }

    /// Like [`Driver::run`], and hand the node back (to save its state).
    pub async fn run_keep(
        mut self,
        listener: Option<TcpListener>,
        app: &mut dyn App,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> (i32, Node) {
        if let Some(l) = listener {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let mut last_log: Option<Instant> = None;
                let mut failures = 0u64;
                loop {
                    match l.accept().await {
                        Ok((s, a)) => {
                            tracing::debug!("link accepted from {}", Sensitive(a));
                            if tx
                                .send(NetEvent::Opened(Conn::Tcp(s), a, None))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        Err(e) => {
                            // Out of descriptors, most likely: say so once a minute.
                            failures += 1;
                            if last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                                last_log = Some(Instant::now());
                                tracing::warn!(
                                    "accept failed: {e} ({failures} so far; logged once a minute)"
                                );
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            });
        }
        let now = self.now();
        app.start(&mut self.node, now);
        self.flush(app);
        tokio::pin!(shutdown);
        loop {
            if let Some(code) = app.finished() {
                return (code, self.node);
            }
            let deadline = [self.node.poll_timeout(), app.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .map(|t| self.epoch + Duration::from_micros(t.as_micros()));
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = self.rx.recv() => {
                    let Some(ev) = ev else { return (1, self.node) };
                    self.on_net(ev);
                    // Take whatever else is ready before writing: fewer, larger frames.
                    for _ in 0..256 {
                        match self.rx.try_recv() {
                            Ok(ev) => self.on_net(ev),
                            Err(_) => break,
                        }
                    }
                }
                () = sleep => {
                    let now = self.now();
                    self.node.handle_timeout(now);
                }
                Some((batch, ok)) = async {
                    match self.durable.as_mut() {
                        Some(d) => d.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    let now = self.now();
                    self.node.handle(now, Input::StoreDurable { batch, ok });
                }
                () = &mut shutdown => return (0, self.node),
            }
            self.flush(app);
            // What the process spent takes from the node's CPU budget.
            let cpu = process_cpu_micros();
            let now = self.now();
            self.node.charge_cpu(now, cpu.saturating_sub(self.cpu_at));
            self.cpu_at = cpu;
            self.read_quantum
                .store(self.node.read_quantum(READ_BUF_MAX), Ordering::Relaxed);
            // Give back the turns of links the limits no longer pause.
            let (node, now) = (&self.node, self.now());
            self.paused.retain(|(link, _)| node.read_paused(now, *link));
        }
    }

    fn on_net(&mut self, ev: NetEvent) {
        let now = self.now();
        match ev {
            NetEvent::Opened(stream, peer, outbound) => {
                // An inbound connection past a bound is closed unread (`09-relay.md#connections`).
                let handshaking = self.node.link_handshakes();
                if outbound.is_none() {
                    match self.admission.admit(peer.ip(), Instant::now(), handshaking) {
                        Err(_) => {
                            drop(stream);
                            return;
                        }
                        // Past the handshakes in progress, the oldest inbound one gives way.
                        Ok(true) => {
                            if let Some(old) = self.node.oldest_inbound_handshake() {
                                self.close_link(old);
                            }
                        }
                        Ok(false) => {}
                    }
                }
                let link = self.spawn_link(stream);
                if outbound.is_none() {
                    self.inbound.insert(link, peer.ip());
                }
                self.node.handle(
                    now,
                    Input::LinkOpened {
                        link,
                        peer,
                        outbound,
                    },
                );
            }
            NetEvent::ConnectFailed(request) => {
                self.node.handle(now, Input::ConnectFailed { request })
            }
            NetEvent::Bytes(link, bytes, turn) => {
                self.node.handle(now, Input::LinkBytes { link, bytes });
                if self.node.read_paused(now, link) {
                    self.paused.push((link, turn));
                } else {
                    drop(turn);
                }
            }
            NetEvent::Closed(link) => {
                if self.forget(link) {
                    self.node.handle(now, Input::LinkClosed { link });
                }
            }
            NetEvent::Wake => {}
        }
    }

    /// Stop a link's tasks and release its admission; whether it was open.
    fn forget(&mut self, link: LinkId) -> bool {
        self.paused.retain(|(l, _)| *l != link);
        if let Some(ip) = self.inbound.remove(&link) {
            self.admission.release(ip);
        }
        match self.links.remove(&link) {
            Some(l) => {
                l.reader.abort();
                true
            }
            None => false,
        }
    }

    /// Drop a link whose peer does not read: its writer stops and what it queued is freed.
    fn drop_stalled(&mut self, link: LinkId) {
        self.close_link(link);
        self.node.note_link_dropped_unread();
    }

    /// Close `link` from this side: its tasks stop, what it queued is freed, the node hears
    /// it closed.
    fn close_link(&mut self, link: LinkId) {
        if let Some(l) = self.links.get(&link) {
            l.writer_task.abort();
            let left = l.queued.swap(0, Ordering::Relaxed);
            saturating_sub(&self.total_queued, left);
        }
        self.forget(link);
        let now = self.now();
        self.node.handle(now, Input::LinkClosed { link });
    }

    fn spawn_link(&mut self, conn: Conn) -> LinkId {
        match conn {
            Conn::Tcp(stream) => {
                let _ = stream.set_nodelay(true);
                let (rd, wr) = stream.into_split();
                self.spawn_io(rd, wr)
            }
            #[cfg(feature = "tor")]
            Conn::Tor(stream) => {
                let (rd, wr) = tokio::io::split(stream);
                self.spawn_io(rd, wr)
            }
        }
    }

    fn spawn_io<R, W>(&mut self, mut rd: R, mut wr: W) -> LinkId
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let link = LinkId(self.next_link);
        self.next_link += 1;
        let tx = self.tx.clone();
        let turns = Arc::new(tokio::sync::Semaphore::new(READS_IN_FLIGHT));
        let quantum = self.read_quantum.clone();
        let reader = tokio::spawn(async move {
            // Small until the peer sends much: an idle or handshaking connection holds 4 KiB.
            let mut buf = vec![0u8; 4096];
            loop {
                // Read only with a turn free: the link's earlier reads were handled.
                let Ok(turn) = turns.clone().acquire_owned().await else {
                    return;
                };
                let max = quantum.load(Ordering::Relaxed).clamp(1, buf.len());
                match rd.read(&mut buf[..max]).await {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(NetEvent::Closed(link)).await;
                        return;
                    }
                    Ok(n) => {
                        let grow = n == buf.len() && buf.len() < READ_BUF_MAX;
                        let bytes = buf[..n].to_vec();
                        if tx
                            .send(NetEvent::Bytes(link, bytes, ReadTurn(turn)))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        if grow {
                            buf = vec![0u8; READ_BUF_MAX];
                        }
                    }
                }
            }
        });
        let (wtx, mut wrx) = mpsc::unbounded_channel::<Vec<u8>>();
        let tx = self.tx.clone();
        let queued = Arc::new(AtomicUsize::new(0));
        let counter = queued.clone();
        let total = self.total_queued.clone();
        let writer_task = tokio::spawn(async move {
            while let Some(mut buf) = wrx.recv().await {
                while buf.len() < 1 << 20 {
                    match wrx.try_recv() {
                        Ok(more) => buf.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                // A Tor stream buffers writes until flushed; TCP's flush is a no-op.
                if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
                    let _ = tx.send(NetEvent::Closed(link)).await;
                    return;
                }
                saturating_sub(&counter, buf.len());
                saturating_sub(&total, buf.len());
            }
            let _ = wr.shutdown().await;
        });
        self.links.insert(
            link,
            LinkTasks {
                writer: wtx,
                queued,
                reader,
                writer_task,
            },
        );
        link
    }

    fn flush(&mut self, app: &mut dyn App) {
        loop {
            while let Some(out) = self.node.poll_output() {
                self.handle_output(out, app);
            }
            for e in self.node.drain_errors() {
                log_error(&e);
            }
            let now = self.now();
            app.tick(&mut self.node, now);
            if !self.node.has_output() {
                return;
            }
        }
    }

    fn handle_output(&mut self, out: Output, app: &mut dyn App) {
        match out {
            Output::Connect { request, addr } => {
                let tx = self.tx.clone();
                let dialer = self.dialer.clone();
                tokio::spawn(async move {
                    match dialer.dial(addr).await {
                        Some(conn) => {
                            let _ = tx.send(NetEvent::Opened(conn, addr, Some(request))).await;
                        }
                        None => {
                            let _ = tx.send(NetEvent::ConnectFailed(request)).await;
                        }
                    }
                });
            }
            Output::Send { link, bytes } => {
                let Some(l) = self.links.get(&link) else {
                    return;
                };
                let before = l.queued.fetch_add(bytes.len(), Ordering::Relaxed);
                let total = self.total_queued.fetch_add(bytes.len(), Ordering::Relaxed);
                if before + bytes.len() > WRITE_QUEUE_CAP {
                    // The peer stopped reading: drop it rather than buffer without bound.
                    self.drop_stalled(link);
                    return;
                }
                let _ = l.writer.send(bytes);
                // All sockets' queues together past half the memory limit: the link holding
                // most goes (its reader stopped reading, most likely).
                let cap = usize::try_from(self.node.limits().memory / 2).unwrap_or(usize::MAX);
                if total > cap {
                    let biggest = self
                        .links
                        .iter()
                        .max_by_key(|(_, l)| l.queued.load(Ordering::Relaxed))
                        .map(|(k, _)| *k);
                    if let Some(b) = biggest {
                        tracing::debug!("queued bytes past half the memory limit: dropping a link");
                        self.drop_stalled(b);
                    }
                }
            }
            Output::Close { link } => {
                self.forget(link);
            }
            Output::Event(ev) => {
                let now = self.now();
                app.on_event(&mut self.node, now, ev);
            }
        }
    }
}

/// `a -= n`, stopping at zero (a dropped link's writer may still report a write).
fn saturating_sub(a: &AtomicUsize, n: usize) {
    let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
}

/// CPU time this process has used, microseconds.
fn process_cpu_micros() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0) / 1000
}

fn log_error(e: &crate::node::NodeError) {
    use crate::error::HasKind;
    tracing::debug!(kind = %e.kind(), "{e}");
}
