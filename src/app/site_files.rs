//! A site's files: the whole site or one path, fetched over the one fetch engine
//! ([`super::fetch::SiteFetch`]) and verified (`protocol-spec/07-sites.md#fetching`).
//!
//! [`Fetcher`] wants the manifest, checks the requested files against a size cap before any
//! block is fetched, takes blocks from the reader's cache when it has them (verified like any
//! other), wants the rest, and hands out the files only when every block of every one of
//! them verified. Files are written one block at a time ([`Fetcher::write_file`]), checking
//! each file's size and hash as they go, so a manifest that lists one block many times never
//! makes the whole file exist in memory.
//! [`FetchSite`] is the app around it: the fetch over a circuit, started over on a fresh
//! one when a circuit is lost or an exit fails it.
//! Not in this module: the retry policy for bad answers (`super::fetch`), files on disk
//! (the CLI).

use std::collections::BTreeMap;

use super::App;
use super::fetch::{FetchEvent, SiteFetch, TransferError};
use super::freshness::{Freshness, WITNESSES};
use super::session::{self, OnSession, ServiceSession, SessionEvent};
use crate::crypto::hash;
use crate::node::{Node, NodeEvent};
use crate::site::address::SiteAddress;
use crate::site::manifest::Verified;
use crate::site::{SiteError, SiteTracker, verify_block};
use crate::time::Time;
use crate::time::WallTime;

/// A local source of blocks by hash (a reader's cache).
pub type BlockCache = Box<dyn FnMut(&[u8; 32]) -> Option<Vec<u8>> + Send>;

/// The files of a finished fetch, or why it failed.
pub type FetchResult = Result<Vec<FileOut>, TransferError>;

/// A fetched file, as the list of its (verified, held) blocks: written out with
/// [`Fetcher::write_file`], one block at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOut {
    /// Its path in the site.
    pub path: String,
    /// Its blocks, in order.
    pub blocks: Vec<[u8; 32]>,
    /// Its size.
    pub size: u64,
    /// BLAKE3 of its content.
    pub hash: [u8; 32],
}

/// Bytes a fetch writes at most unless told otherwise.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

#[derive(Debug)]
enum Phase {
    Manifest,
    Blocks {
        /// The manifest the files came from (none for a view of many writers).
        manifest: Option<Box<Verified>>,
        wanted: Vec<FileOut>,
    },
    Done,
}

/// Fetches a site (or one path of it) and verifies everything.
pub struct Fetcher {
    site: SiteAddress,
    path: Option<String>,
    now: WallTime,
    fetch: SiteFetch,
    state: Phase,
    blocks: BTreeMap<[u8; 32], Vec<u8>>,
    /// Blocks still needed.
    pub remaining: usize,
    /// Blocks in all (known once the manifest arrived).
    pub total: usize,
    result: Option<FetchResult>,
    cache: Option<BlockCache>,
    /// Blocks taken from the local cache instead of the network.
    pub from_cache: usize,
    max_bytes: u64,
    /// The manifest, once every block it lists for the fetch verified.
    verified: Option<Box<Verified>>,
    /// Files known without a manifest, whose blocks are wanted at the first send.
    pending_files: Option<Vec<FileOut>>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Fetcher({:?}, {}/{} blocks)",
            self.site,
            self.total - self.remaining,
            self.total
        )
    }
}

impl Fetcher {
    /// Fetch `site` (every file, or only `path`), checking validity at `now`.
    pub fn new(site: SiteAddress, path: Option<String>, now: WallTime) -> Fetcher {
        let mut fetch = SiteFetch::new(site);
        fetch.want_manifest();
        Fetcher {
            site,
            path,
            now,
            fetch,
            state: Phase::Manifest,
            blocks: BTreeMap::new(),
            remaining: 0,
            total: 0,
            result: None,
            cache: None,
            from_cache: 0,
            max_bytes: DEFAULT_MAX_BYTES,
            verified: None,
            pending_files: None,
        }
    }

    /// Fetch the blocks of `files` (all, or only `path`) of `site`, known already: a view
    /// of many writers' heads (`11-writers.md#merge`), each file's blocks and whole hash
    /// verified as for a manifest's.
    pub fn files(
        site: SiteAddress,
        files: Vec<FileOut>,
        path: Option<String>,
        now: WallTime,
    ) -> Fetcher {
        let mut f = Fetcher::new(site, path, now);
        f.fetch = SiteFetch::new(site);
        f.pending_files = Some(files);
        f
    }

    /// Refuse a site whose requested files add up to more than `max` bytes (checked on the
    /// manifest, before any block is fetched).
    pub fn with_max_bytes(mut self, max: u64) -> Fetcher {
        self.max_bytes = max;
        self
    }

    /// Take blocks from a local cache when it has them (each is verified like any other).
    pub fn with_cache(mut self, cache: BlockCache) -> Fetcher {
        self.cache = Some(cache);
        self
    }

    /// The verified manifest, once the fetch succeeded.
    pub fn manifest(&self) -> Option<&Verified> {
        self.verified.as_deref()
    }

    /// Every block this fetch holds, verified (for the caller's cache).
    pub fn blocks(&self) -> &BTreeMap<[u8; 32], Vec<u8>> {
        &self.blocks
    }

    /// The stream was lost: what was outstanding is asked again on the next one.
    pub fn reset(&mut self) {
        self.fetch.reset();
    }

    /// Bytes to write on the stream now.
    pub fn poll_send(&mut self) -> Vec<u8> {
        if self.result.is_some() {
            return Vec::new();
        }
        // Files known without a manifest: their blocks now, once the size cap and the cache
        // are set.
        if let Some(files) = self.pending_files.take() {
            self.start_blocks(files, None);
            if self.result.is_some() {
                return Vec::new();
            }
        }
        self.fetch.poll_send()
    }

    /// Bytes read from the stream; `tracker` remembers manifests (rollback refused).
    pub fn on_data(&mut self, data: &[u8], tracker: &mut SiteTracker) {
        if self.result.is_some() {
            return;
        }
        if let Err(e) = self.fetch.on_data(data, tracker, self.now) {
            self.result = Some(Err(e));
            return;
        }
        while let Some(ev) = self.fetch.poll_event() {
            if self.result.is_some() {
                return;
            }
            match ev {
                FetchEvent::Manifest(Ok(v)) => self.on_manifest(*v),
                FetchEvent::Manifest(Err(e)) | FetchEvent::Block(_, Err(e)) => {
                    self.result = Some(Err(e));
                }
                FetchEvent::Block(h, Ok(data)) => {
                    if self.blocks.insert(h, data).is_none() {
                        self.remaining = self.remaining.saturating_sub(1);
                    }
                }
                // Not asked for by this fetcher.
                FetchEvent::Roster(_) | FetchEvent::Head(..) | FetchEvent::History(..) => {}
            }
        }
        if self.result.is_none()
            && matches!(self.state, Phase::Blocks { .. })
            && self.remaining == 0
        {
            self.assemble();
        }
    }

    fn on_manifest(&mut self, v: Verified) {
        if !matches!(self.state, Phase::Manifest) {
            return;
        }
        let files: Vec<FileOut> = v
            .manifest()
            .entries
            .iter()
            .map(|e| FileOut {
                path: e.path.clone(),
                blocks: e.blocks.clone(),
                size: e.size,
                hash: e.hash,
            })
            .collect();
        self.start_blocks(files, Some(Box::new(v)));
    }

    /// The files asked for among `files` (all, or the path asked for), checked against the
    /// size cap; then their blocks are wanted.
    fn start_blocks(&mut self, files: Vec<FileOut>, manifest: Option<Box<Verified>>) {
        let wanted: Vec<FileOut> = match &self.path {
            Some(p) => {
                let p = p.trim_start_matches('/');
                let p = if p.is_empty() || p.ends_with('/') {
                    format!("{p}index.html")
                } else {
                    p.to_string()
                };
                match files.into_iter().find(|f| f.path == p) {
                    Some(f) => vec![f],
                    None => {
                        self.result = Some(Err(TransferError::NoSuchPath));
                        return;
                    }
                }
            }
            None => files,
        };
        let size: u64 = wanted
            .iter()
            .map(|f| f.size)
            .fold(0u64, u64::saturating_add);
        if size > self.max_bytes {
            self.result = Some(Err(TransferError::TooLarge {
                size,
                max: self.max_bytes,
            }));
            return;
        }
        let mut needed: Vec<[u8; 32]> = wanted
            .iter()
            .flat_map(|f| f.blocks.iter().copied())
            .collect();
        needed.sort_unstable();
        needed.dedup();
        self.total = needed.len();
        if let Some(cache) = self.cache.as_mut() {
            needed.retain(|h| match cache(h) {
                Some(data) if verify_block(h, &data).is_ok() => {
                    self.blocks.insert(*h, data);
                    self.from_cache += 1;
                    false
                }
                _ => true,
            });
        }
        self.remaining = needed.len();
        for h in needed {
            self.fetch.want_block(h);
        }
        self.state = Phase::Blocks { manifest, wanted };
        if self.remaining == 0 {
            self.assemble();
        }
    }

    fn assemble(&mut self) {
        let Phase::Blocks { manifest, wanted } = std::mem::replace(&mut self.state, Phase::Done)
        else {
            return;
        };
        for f in &wanted {
            if let Some(b) = f.blocks.iter().find(|b| !self.blocks.contains_key(*b)) {
                self.result = Some(Err(TransferError::Block(crate::wire::hex::encode(&b[..8]))));
                return;
            }
        }
        self.verified = manifest;
        self.result = Some(Ok(wanted));
    }

    /// Write `f` to `w` one block at a time, checking its size and hash as it goes; an
    /// `Err` means what was written must be thrown away.
    pub fn write_file(&self, f: &FileOut, w: &mut dyn std::io::Write) -> Result<(), TransferError> {
        let mut h = hash::Hasher::new();
        let mut size = 0u64;
        for b in &f.blocks {
            let data = self
                .blocks
                .get(b)
                .ok_or_else(|| TransferError::Block(crate::wire::hex::encode(&b[..8])))?;
            h.update(data);
            size += data.len() as u64;
            w.write_all(data).map_err(|e| TransferError::Write {
                path: f.path.clone(),
                message: e.to_string(),
            })?;
        }
        if size != f.size || !hash::ct_eq_32(&h.finalize(), &f.hash) {
            return Err(TransferError::Manifest(SiteError::BlockHash));
        }
        Ok(())
    }

    /// Every file of `files` in memory (small sites, the simulator): [`Fetcher::write_file`]
    /// into a buffer each.
    pub fn contents(&self, files: &[FileOut]) -> Result<Vec<(String, Vec<u8>)>, TransferError> {
        files
            .iter()
            .map(|f| {
                let mut buf = Vec::new();
                self.write_file(f, &mut buf).map(|()| (f.path.clone(), buf))
            })
            .collect()
    }

    /// `Some` when finished: every requested file, all its blocks held and verified.
    pub fn result(&self) -> Option<&FetchResult> {
        self.result.as_ref()
    }

    /// The result, taken (`None` until finished, and after it was taken).
    pub fn take_result(&mut self) -> Option<FetchResult> {
        self.result.take()
    }
}

/// Where a site fetch is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchState {
    /// Reaching the exit.
    Connecting,
    /// Fetching the manifest and blocks.
    Fetching,
    /// Every file asked for verified.
    Done,
    /// Gave up (why).
    Failed(String),
}

/// The fetch app: a site (or one path of it) over a [`ServiceSession`], asked again on a
/// fresh circuit (up to [`CIRCUITS`]) when a circuit is lost or an exit fails the fetch.
/// `umbra fetch` and the simulator run it.
pub struct FetchSite {
    make: Box<dyn FnMut(WallTime) -> Fetcher + Send>,
    fetcher: Option<Fetcher>,
    tracker: SiteTracker,
    session: ServiceSession,
    files: Vec<FileOut>,
    /// Where it is.
    pub state: FetchState,
    /// The last failure that made it start over on a fresh circuit.
    pub last_error: Option<String>,
    /// What it tells its user ([`FetchSite::poll_report`]).
    reports: super::Reports,
    /// Witnesses to ask beside the exit (`07-sites.md#freshness`).
    witnesses: usize,
    /// The exit of the circuit being built or used.
    exit: Option<crate::crypto::keys::NodeId>,
    /// The witnesses of this fetch's manifest, once asked.
    freshness: Option<Freshness>,
    /// Files fetched, held until the witnesses answered (since when).
    held: Option<(Vec<FileOut>, Time)>,
    /// Fetches whose exit served an older version than a witness saw.
    pub stale_exits: u32,
}

impl std::fmt::Debug for FetchSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchSite")
            .field("state", &self.state)
            .field("fetcher", &self.fetcher)
            .finish_non_exhaustive()
    }
}

/// Circuits a fetch may use.
pub const CIRCUITS: u32 = 4;
/// How long fetched files wait for witnesses that have not answered
/// (`07-sites.md#freshness`).
pub const WITNESS_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

impl FetchSite {
    /// Fetch with fetchers made by `make` (given the wall time when a stream opens): the
    /// site, the path, the size cap and the cache are the caller's.
    pub fn new(make: Box<dyn FnMut(WallTime) -> Fetcher + Send>) -> FetchSite {
        FetchSite {
            make,
            fetcher: None,
            tracker: SiteTracker::new(),
            session: ServiceSession::new(b"dht", CIRCUITS),
            files: Vec::new(),
            state: FetchState::Connecting,
            last_error: None,
            reports: super::Reports::default(),
            witnesses: WITNESSES,
            exit: None,
            freshness: None,
            held: None,
            stale_exits: 0,
        }
    }

    /// Ask `n` witnesses beside the exit (default [`WITNESSES`]; 0 trusts the exit alone).
    pub fn with_witnesses(mut self, n: usize) -> FetchSite {
        self.witnesses = n;
        self
    }

    /// Fetch every file of `site`.
    pub fn site(site: SiteAddress) -> FetchSite {
        FetchSite::new(Box::new(move |now| Fetcher::new(site, None, now)))
    }

    /// The memory of manifests seen that the fetch checks against (`07-sites.md#memory`):
    /// the runtime restores it from the node's store before and saves its changes after.
    pub fn tracker_mut(&mut self) -> &mut SiteTracker {
        &mut self.tracker
    }

    /// The files fetched, once done.
    pub fn files(&self) -> &[FileOut] {
        &self.files
    }

    /// The fetcher holding the verified blocks (to write the files out).
    pub fn fetcher(&self) -> Option<&Fetcher> {
        self.fetcher.as_ref()
    }

    /// The next thing to tell the user: progress, a retry.
    pub fn poll_report(&mut self) -> Option<super::Report> {
        self.reports.poll()
    }

    /// Blocks verified so far, and in all, once the manifest is known.
    pub fn progress(&self) -> Option<(usize, usize)> {
        self.fetcher
            .as_ref()
            .filter(|f| f.total > 0)
            .map(|f| (f.total - f.remaining, f.total))
    }

    /// The files' contents in memory (small sites, the simulator).
    pub fn contents(&self) -> Result<Vec<(String, Vec<u8>)>, TransferError> {
        match &self.fetcher {
            Some(f) => f.contents(&self.files),
            None => Ok(Vec::new()),
        }
    }

    fn over(&self) -> bool {
        matches!(self.state, FetchState::Done | FetchState::Failed(_))
    }

    fn react(&mut self, node: &mut Node, now: Time, ev: SessionEvent) {
        match ev {
            SessionEvent::Built { path } => self.exit = path.last().copied(),
            SessionEvent::Opened => {
                self.state = FetchState::Fetching;
                match self.fetcher.as_mut() {
                    // A lost circuit: what was outstanding is asked again.
                    Some(f) => f.reset(),
                    None => self.fetcher = Some((self.make)(node.wall(now))),
                }
                // The first exit's answer is checked against witnesses unlike it.
                if let (None, Some(exit), Some(f)) = (&self.freshness, self.exit, &self.fetcher) {
                    if self.witnesses > 0 {
                        let site = f.site;
                        self.freshness =
                            Some(Freshness::start(node, now, site, exit, self.witnesses));
                    }
                }
                self.pump(node, now);
            }
            SessionEvent::Data(data) => {
                let Some(f) = self.fetcher.as_mut() else {
                    return;
                };
                f.on_data(&data, &mut self.tracker);
                self.after_data(node, now);
            }
            SessionEvent::Retrying { why, .. } => {
                self.reports.push(super::Report::Retrying(why.clone()));
                self.last_error = Some(why);
                self.state = FetchState::Connecting;
            }
            SessionEvent::GaveUp { why } => {
                if let Some(w) = self.freshness.as_mut() {
                    w.close(node, now);
                }
                self.last_error = Some(why.clone());
                self.state = FetchState::Failed(why);
            }
        }
    }

    /// Files are fetched: done once the witnesses agree that no newer version exists; if
    /// one saw a newer version, it is remembered (so an older one is refused as a
    /// rollback) and the fetch starts over on a fresh circuit.
    fn settle(&mut self, node: &mut Node, now: Time) {
        let Some((_, since)) = self.held else { return };
        let waiting = self.freshness.as_ref().is_some_and(|w| !w.is_done());
        if waiting && now < since + WITNESS_WAIT {
            return;
        }
        // Witnesses that did not answer in time count as having seen nothing.
        if let Some(w) = self.freshness.as_mut() {
            w.close(node, now);
        }
        let got = self
            .fetcher
            .as_ref()
            .and_then(Fetcher::manifest)
            .map(|v| v.manifest().seq);
        let newer = self
            .freshness
            .as_ref()
            .and_then(Freshness::newest)
            .filter(|v| got.is_some_and(|g| v.manifest().seq > g))
            .cloned();
        let Some(v) = newer else {
            self.files = self.held.take().map(|h| h.0).unwrap_or_default();
            self.state = FetchState::Done;
            self.session.finish(node, now);
            return;
        };
        self.held = None;
        self.stale_exits += 1;
        let _ = self.tracker.observe(&v);
        self.fetcher = None;
        let why = format!(
            "the exit served version {}, a witness saw version {}",
            got.unwrap_or(0),
            v.manifest().seq
        );
        let ev = self.session.retry(node, now, why);
        self.react(node, now, ev);
    }

    /// The fetcher's result, if it has one; else more to send.
    fn after_data(&mut self, node: &mut Node, now: Time) {
        let Some(f) = self.fetcher.as_mut() else {
            return;
        };
        match f.take_result() {
            Some(Ok(files)) => {
                self.held = Some((files, now));
                self.settle(node, now);
            }
            Some(Err(e)) => {
                // This exit failed the fetch: start over on a fresh circuit.
                self.fetcher = None;
                let ev = self.session.retry(node, now, e.to_string());
                self.react(node, now, ev);
            }
            None => self.pump(node, now),
        }
    }

    fn pump(&mut self, node: &mut Node, now: Time) {
        let Some(f) = self.fetcher.as_mut() else {
            return;
        };
        let bytes = f.poll_send();
        // Files known in advance may be whole (cached) or refused before anything is sent.
        if f.result().is_some() {
            return self.after_data(node, now);
        }
        session::send(self, node, now, &bytes);
    }
}

impl App for FetchSite {
    fn start(&mut self, node: &mut Node, now: Time) {
        self.session.start(node, now);
    }

    fn on_event(&mut self, node: &mut Node, now: Time, event: NodeEvent) {
        if let Some(w) = self.freshness.as_mut().filter(|w| w.concerns(&event)) {
            w.on_event(node, now, event);
            return self.settle(node, now);
        }
        session::feed(self, node, now, event);
        let progress = self.progress();
        self.reports.progress(progress);
    }

    fn tick(&mut self, node: &mut Node, now: Time) {
        self.settle(node, now);
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.held.as_ref().map(|(_, since)| *since + WITNESS_WAIT)
    }

    fn finished(&self) -> Option<i32> {
        match self.state {
            FetchState::Done => Some(0),
            FetchState::Failed(_) => Some(1),
            _ => None,
        }
    }
}

impl OnSession for FetchSite {
    fn session(&mut self) -> &mut ServiceSession {
        &mut self.session
    }

    fn on_session(&mut self, node: &mut Node, now: Time, ev: SessionEvent) {
        self.react(node, now, ev);
    }

    fn is_over(&self) -> bool {
        self.over()
    }
}
