//! Fetching over a `dht` stream (`protocol-spec/07-sites.md#fetching`).
//!
//! A pure client state machine: it produces the bytes to write on the stream to the exit's
//! `dht` service and consumes the bytes that come back. [`Fetcher`] gets the manifest,
//! verifies it against the address, refuses rollback, then gets and verifies every block;
//! nothing is handed out until every file verified.
//! Not in this module: circuits and streams (the caller moves the bytes); publishing
//! (`crate::app::publish`).

use std::collections::{BTreeMap, VecDeque};

use super::address::SiteAddress;
use super::manifest::{self, Verified};
use super::{SiteError, SiteTracker, verify_block};
use crate::crypto::hash;
use crate::time::WallTime;
use crate::wire::dht_msg::{ExitReply, ExitRequest, Record, RecordKind, StreamFramer};

/// Requests kept in flight on one stream.
pub const MAX_IN_FLIGHT: usize = 16;
/// Attempts per record before giving up.
pub const MAX_ATTEMPTS: u32 = 4;
/// `REFUSED` reason 2: the exit is at a limit; the request may be sent again
/// (`06-dht.md#exit-requests`).
const BUSY: u8 = 2;

/// Why a transfer failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The site's manifest was not found.
    #[error("site not found")]
    SiteNotFound,
    /// The manifest was refused.
    #[error("manifest refused: {0}")]
    Manifest(SiteError),
    /// A block could not be fetched intact.
    #[error("block {0} unavailable")]
    Block(String),
    /// The requested path is not in the site.
    #[error("no such path in the site")]
    NoSuchPath,
    /// The exit refused a request.
    #[error("exit refused a request (reason {0})")]
    Refused(u8),
    /// A record could not be stored on any node.
    #[error("no node accepted a record")]
    NotStored,
    /// The exit sent something malformed or unexpected.
    #[error("bad reply from the exit")]
    BadReply,
    /// The files asked for add up to more than the fetch may write.
    #[error("the files add up to {size} bytes, more than the limit of {max} (--max-bytes)")]
    TooLarge {
        /// Their size, as the manifest declares it.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {message}")]
    Write {
        /// The site path.
        path: String,
        /// The system's reason.
        message: String,
    },
}

#[derive(Debug)]
pub(crate) struct Requests {
    framer: StreamFramer,
    next_id: u32,
    pub(crate) outbox: Vec<u8>,
}

impl Requests {
    pub(crate) fn new() -> Self {
        Requests {
            framer: StreamFramer::default(),
            next_id: 1,
            outbox: Vec::new(),
        }
    }

    pub(crate) fn send(&mut self, make: impl FnOnce(u32) -> ExitRequest) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.outbox.extend(StreamFramer::frame(&make(id).encode()));
        id
    }

    pub(crate) fn replies(&mut self, data: &[u8]) -> Result<Vec<ExitReply>, TransferError> {
        self.framer.push(data);
        let mut out = Vec::new();
        while let Some(m) = self
            .framer
            .next_message()
            .map_err(|_| TransferError::BadReply)?
        {
            out.push(ExitReply::decode(&m).map_err(|_| TransferError::BadReply)?);
        }
        Ok(out)
    }
}

/// A local source of blocks by hash (a reader's cache).
pub type BlockCache = Box<dyn FnMut(&[u8; 32]) -> Option<Vec<u8>> + Send>;

/// The files of a finished fetch, or why it failed.
pub type FetchResult = Result<Vec<FileOut>, TransferError>;

/// A fetched file, as the list of its (verified, held) blocks: written out with
/// [`Fetcher::write_file`], one block at a time, so a file that lists one block many times
/// never exists whole in memory (`07-sites.md#fetching`).
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

#[derive(Debug)]
enum FetchState {
    Manifest {
        attempts: u32,
    },
    Blocks {
        manifest: Box<Verified>,
        wanted: Vec<String>,
    },
    Done,
}

/// Fetches a site (or one path of it) and verifies everything.
pub struct Fetcher {
    site: SiteAddress,
    path: Option<String>,
    now: WallTime,
    req: Requests,
    state: FetchState,
    pending: VecDeque<([u8; 32], u32)>,
    in_flight: BTreeMap<u32, ([u8; 32], u32)>,
    blocks: BTreeMap<[u8; 32], Vec<u8>>,
    /// Blocks still needed.
    pub remaining: usize,
    /// Blocks in all (known once the manifest arrived).
    pub total: usize,
    result: Option<FetchResult>,
    manifest_id: Option<u32>,
    cache: Option<BlockCache>,
    /// Blocks taken from the local cache instead of the network.
    pub from_cache: usize,
    max_bytes: u64,
}

impl Fetcher {
    /// Fetch `site` (every file, or only `path`), checking validity at `now`.
    pub fn new(site: SiteAddress, path: Option<String>, now: WallTime) -> Fetcher {
        Fetcher {
            site,
            path,
            now,
            req: Requests::new(),
            state: FetchState::Manifest { attempts: 0 },
            pending: VecDeque::new(),
            in_flight: BTreeMap::new(),
            blocks: BTreeMap::new(),
            remaining: 0,
            total: 0,
            result: None,
            manifest_id: None,
            cache: None,
            from_cache: 0,
            max_bytes: DEFAULT_MAX_BYTES,
        }
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

    /// Every block this fetch holds, verified (for the caller's cache).
    pub fn blocks(&self) -> &BTreeMap<[u8; 32], Vec<u8>> {
        &self.blocks
    }

    /// Bytes to write on the stream now.
    pub fn poll_send(&mut self) -> Vec<u8> {
        if self.result.is_some() {
            return Vec::new();
        }
        match &mut self.state {
            FetchState::Manifest { attempts } if self.manifest_id.is_none() => {
                *attempts += 1;
                let key = self.site.dht_key();
                self.manifest_id = Some(self.req.send(|id| ExitRequest::Get {
                    id,
                    kind: RecordKind::MANIFEST,
                    key,
                }));
            }
            FetchState::Blocks { .. } => {
                while self.in_flight.len() < MAX_IN_FLIGHT {
                    let Some((h, attempts)) = self.pending.pop_front() else {
                        break;
                    };
                    let id = self.req.send(|id| ExitRequest::Get {
                        id,
                        kind: RecordKind::BLOCK,
                        key: h,
                    });
                    self.in_flight.insert(id, (h, attempts + 1));
                }
            }
            _ => {}
        }
        std::mem::take(&mut self.req.outbox)
    }

    /// Bytes read from the stream; `tracker` remembers manifests (rollback refused).
    pub fn on_data(&mut self, data: &[u8], tracker: &mut SiteTracker) {
        let replies = match self.req.replies(data) {
            Ok(r) => r,
            Err(e) => {
                self.result = Some(Err(e));
                return;
            }
        };
        for r in replies {
            if self.result.is_some() {
                return;
            }
            match r {
                ExitReply::Found { id, record } if Some(id) == self.manifest_id => {
                    self.on_manifest(&record, tracker)
                }
                ExitReply::NotFound { id } if Some(id) == self.manifest_id => {
                    self.manifest_id = None;
                    if matches!(self.state, FetchState::Manifest { attempts } if attempts >= MAX_ATTEMPTS)
                    {
                        self.result = Some(Err(TransferError::SiteNotFound));
                    }
                }
                ExitReply::Found { id, record } => {
                    let Some((h, attempts)) = self.in_flight.remove(&id) else {
                        continue;
                    };
                    if record.key == h && verify_block(&h, &record.value).is_ok() {
                        if self.blocks.insert(h, record.value).is_none() {
                            self.remaining = self.remaining.saturating_sub(1);
                        }
                    } else {
                        self.retry(h, attempts);
                    }
                }
                ExitReply::NotFound { id } => {
                    let Some((h, attempts)) = self.in_flight.remove(&id) else {
                        continue;
                    };
                    self.retry(h, attempts);
                }
                ExitReply::Refused { id, reason: BUSY } if Some(id) == self.manifest_id => {
                    self.manifest_id = None;
                    if matches!(self.state, FetchState::Manifest { attempts } if attempts >= MAX_ATTEMPTS)
                    {
                        self.result = Some(Err(TransferError::Refused(BUSY)));
                    }
                }
                ExitReply::Refused { id, reason: BUSY } => {
                    if let Some((h, attempts)) = self.in_flight.remove(&id) {
                        self.retry(h, attempts);
                    }
                }
                ExitReply::Refused { reason, .. } => {
                    self.result = Some(Err(TransferError::Refused(reason)))
                }
                ExitReply::Stored { .. } => self.result = Some(Err(TransferError::BadReply)),
            }
        }
        if self.result.is_none()
            && matches!(self.state, FetchState::Blocks { .. })
            && self.remaining == 0
        {
            self.assemble();
        }
    }

    fn retry(&mut self, h: [u8; 32], attempts: u32) {
        if attempts >= MAX_ATTEMPTS {
            self.result = Some(Err(TransferError::Block(crate::wire::hex::encode(&h[..8]))));
        } else {
            self.pending.push_back((h, attempts));
        }
    }

    fn on_manifest(&mut self, record: &Record, tracker: &mut SiteTracker) {
        self.manifest_id = None;
        // Verified, checked against what was seen, and on equivocation the first one.
        let v = manifest::parse(&record.value)
            .and_then(|u| u.verify(&self.site, self.now))
            .and_then(|v| tracker.settle(v, self.now));
        let v = match v {
            Ok((v, _)) => v,
            Err(e) => {
                self.result = Some(Err(TransferError::Manifest(e)));
                return;
            }
        };
        let wanted: Vec<String> = match &self.path {
            Some(p) => {
                let p = p.trim_start_matches('/');
                let p = if p.is_empty() || p.ends_with('/') {
                    format!("{p}index.html")
                } else {
                    p.to_string()
                };
                if v.manifest().entry(&p).is_none() {
                    self.result = Some(Err(TransferError::NoSuchPath));
                    return;
                }
                vec![p]
            }
            None => v
                .manifest()
                .entries
                .iter()
                .map(|e| e.path.clone())
                .collect(),
        };
        let size: u64 = wanted
            .iter()
            .filter_map(|p| v.manifest().entry(p))
            .map(|e| e.size)
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
            .filter_map(|p| v.manifest().entry(p))
            .flat_map(|e| e.blocks.iter().copied())
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
        self.pending = needed.into_iter().map(|h| (h, 0)).collect();
        self.state = FetchState::Blocks {
            manifest: Box::new(v),
            wanted,
        };
        if self.remaining == 0 {
            self.assemble();
        }
    }

    fn assemble(&mut self) {
        let FetchState::Blocks { manifest, wanted } =
            std::mem::replace(&mut self.state, FetchState::Done)
        else {
            return;
        };
        let mut files = Vec::with_capacity(wanted.len());
        for p in wanted {
            let Some(e) = manifest.manifest().entry(&p) else {
                continue;
            };
            if let Some(b) = e.blocks.iter().find(|b| !self.blocks.contains_key(*b)) {
                self.result = Some(Err(TransferError::Block(crate::wire::hex::encode(&b[..8]))));
                return;
            }
            files.push(FileOut {
                path: p,
                blocks: e.blocks.clone(),
                size: e.size,
                hash: e.hash,
            });
        }
        self.result = Some(Ok(files));
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

    /// The verified manifest's sequence, once known.
    pub fn take_result(&mut self) -> Option<FetchResult> {
        self.result.take()
    }
}
