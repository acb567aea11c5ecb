//! The one fetch engine (`protocol-spec/08-gateway.md#fetching`, `07-sites.md#fetching`):
//! a site's manifest and blocks over one `dht` stream, for the gateway, `umbra fetch` and the
//! simulator alike.
//!
//! [`SiteFetch`] multiplexes wants — the site's manifest and any of its blocks, asked for by
//! any number of callers at once — onto one stream to an exit's `dht` service: each record is
//! asked for once however many wait on it, at most [`MAX_IN_FLIGHT`] are outstanding, answers
//! are verified (the manifest against the address and the reader's rollback tracker, each
//! block against its hash) and handed out as [`FetchEvent`]s. One policy for bad answers:
//!
//! - a manifest that is forged, expired, older than one seen, or not found, a block that is
//!   missing or does not match its hash, and a `REFUSED` busy: asked again on the same stream
//!   (another lookup may reach honest storers), at most [`MAX_ATTEMPTS`] times, then reported;
//! - any other `REFUSED` (invalid, no DHT here): reported at once, since this exit will not
//!   help; the caller moves to a fresh circuit;
//! - a malformed reply: the stream is of no further use (`Err` from [`SiteFetch::on_data`]).
//!
//! A lost stream requeues everything outstanding ([`SiteFetch::reset`]). Not in this module:
//! which blocks to want (the gateway's request table, [`super::site_files::Fetcher`]) and
//! the circuit ([`super::session`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::site::address::SiteAddress;
use crate::site::manifest::{self, Verified};
use crate::site::writers::head::SignedHead;
use crate::site::writers::roster::SignedRoster;
use crate::site::writers::{self, LineId, WriterError};
use crate::site::{SiteError, SiteTracker, verify_block};
use crate::time::WallTime;
use crate::wire::dht_msg::{ExitReply, ExitRequest, RecordKind, StreamFramer};

/// Requests outstanding on one stream (the exit runs at most 32 lookups per circuit).
pub const MAX_IN_FLIGHT: usize = 32;

/// Versioned lookups (manifests, rosters, writer manifests) outstanding on one stream: an
/// exit runs at most 2 per circuit (`06-dht.md#exit-requests`).
pub const MAX_VERSIONED_IN_FLIGHT: usize = 2;

/// Attempts per record before giving up.
pub const MAX_ATTEMPTS: u32 = 4;
/// `REFUSED` reason 2: the exit is at a limit; the request may be sent again
/// (`06-dht.md#exit-requests`).
pub(crate) const BUSY: u8 = 2;

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
    /// A roster or writer manifest was refused (`11-writers.md`).
    #[error("roster or writer manifest refused: {0}")]
    Writers(WriterError),
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
    /// The storers hold a newer version (`REFUSED` 4, `06-dht.md#exit-requests`).
    #[error("the network holds a newer version of this record (or another with its sequence)")]
    Superseded,
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

impl crate::error::HasKind for TransferError {
    fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            TransferError::SiteNotFound | TransferError::NoSuchPath => ErrorKind::PeerUnreachable,
            TransferError::Manifest(e) => crate::error::HasKind::kind(e),
            TransferError::Writers(e) => crate::error::HasKind::kind(e),
            TransferError::Block(_) | TransferError::NotStored => ErrorKind::PeerUnreachable,
            TransferError::Refused(2) => ErrorKind::ResourceLimit,
            TransferError::Superseded => ErrorKind::BadApiUsage,
            TransferError::Refused(_) | TransferError::BadReply => ErrorKind::PeerProtocolViolation,
            TransferError::TooLarge { .. } => ErrorKind::ResourceLimit,
            TransferError::Write { .. } => ErrorKind::LocalIo,
        }
    }
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

/// What a record request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Want {
    Manifest,
    Block([u8; 32]),
    Roster,
    Line(LineId),
    History([u8; 32]),
}

/// A roster or a line's head not found is an answer, not a failure (a single-writer site has
/// no roster; a writer may not have published yet): asked this many times, then reported as
/// absent.
const ABSENT_AFTER: u32 = 2;

/// A verified answer, or why there is none.
#[derive(Debug)]
pub enum FetchEvent {
    /// The site's manifest, verified at the time given to [`SiteFetch::on_data`].
    Manifest(Result<Box<Verified>, TransferError>),
    /// A block, verified against its hash.
    Block([u8; 32], Result<Vec<u8>, TransferError>),
    /// The site's roster (signature checked; `None`: the network holds none, the implicit
    /// roster applies). Rollback is the caller's check (`roster::newer`).
    Roster(Result<Option<Box<SignedRoster>>, TransferError>),
    /// A line's newest head (signature and time checked; `None`: none found). Admission under
    /// a roster is the caller's check.
    Head(LineId, Result<Option<Box<SignedHead>>, TransferError>),
    /// A writer manifest kept as history, by its digest (`None`: no storer holds it).
    History([u8; 32], Result<Option<Box<SignedHead>>, TransferError>),
}

/// The request multiplexer of one site.
pub struct SiteFetch {
    site: SiteAddress,
    req: Requests,
    /// Wants not yet sent, with the attempts made so far.
    pending: VecDeque<(Want, u32)>,
    /// Sent requests by id.
    in_flight: BTreeMap<u32, (Want, u32)>,
    /// Every want pending or in flight (asked once however many wait).
    wanted: BTreeSet<Want>,
    events: VecDeque<FetchEvent>,
}

impl std::fmt::Debug for SiteFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteFetch")
            .field("pending", &self.pending.len())
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl SiteFetch {
    /// A multiplexer for `site` on a fresh stream.
    pub fn new(site: SiteAddress) -> SiteFetch {
        SiteFetch {
            site,
            req: Requests::new(),
            pending: VecDeque::new(),
            in_flight: BTreeMap::new(),
            wanted: BTreeSet::new(),
            events: VecDeque::new(),
        }
    }

    fn want(&mut self, w: Want) {
        if self.wanted.insert(w) {
            self.pending.push_back((w, 0));
        }
    }

    /// Ask for the site's current manifest (once, however often called while outstanding).
    pub fn want_manifest(&mut self) {
        self.want(Want::Manifest);
    }

    /// Ask for the site's roster.
    pub fn want_roster(&mut self) {
        self.want(Want::Roster);
    }

    /// Ask for the newest head of `line`.
    pub fn want_line(&mut self, line: LineId) {
        self.want(Want::Line(line));
    }

    /// Ask for the writer manifest whose BLAKE3 is `digest` (history).
    pub fn want_history(&mut self, digest: [u8; 32]) {
        self.want(Want::History(digest));
    }

    /// Ask for a block.
    pub fn want_block(&mut self, hash: [u8; 32]) {
        self.want(Want::Block(hash));
    }

    /// Whether `hash` is already asked for.
    pub fn is_wanted(&self, hash: &[u8; 32]) -> bool {
        self.wanted.contains(&Want::Block(*hash))
    }

    /// Requests waiting or outstanding.
    pub fn outstanding(&self) -> usize {
        self.wanted.len()
    }

    /// The stream was lost: everything outstanding is asked again on the next stream.
    pub fn reset(&mut self) {
        self.req = Requests::new();
        let mut again: Vec<(Want, u32)> =
            std::mem::take(&mut self.in_flight).into_values().collect();
        again.extend(self.pending.drain(..));
        self.pending = again.into();
    }

    /// Bytes to write on the stream now: at most [`MAX_IN_FLIGHT`] requests, of which at
    /// most [`MAX_VERSIONED_IN_FLIGHT`] for versioned records (the exit's cap per circuit,
    /// `06-dht.md#exit-requests`); later versioned wants wait their turn.
    pub fn poll_send(&mut self) -> Vec<u8> {
        let versioned = |w: &Want| !matches!(w, Want::Block(_) | Want::History(_));
        let mut held_back = Vec::new();
        while self.in_flight.len() < MAX_IN_FLIGHT {
            let Some((w, attempts)) = self.pending.pop_front() else {
                break;
            };
            let running = self
                .in_flight
                .values()
                .filter(|(v, _)| versioned(v))
                .count();
            if versioned(&w) && running >= MAX_VERSIONED_IN_FLIGHT {
                held_back.push((w, attempts));
                continue;
            }
            let (kind, key) = match w {
                Want::Manifest => (RecordKind::MANIFEST, self.site.dht_key()),
                Want::Block(h) => (RecordKind::BLOCK, h),
                Want::Roster => (RecordKind::ROSTER, writers::roster_dht_key(&self.site.0)),
                Want::Line(l) => (RecordKind::WRITER, writers::line_dht_key(&self.site.0, &l)),
                Want::History(d) => (RecordKind::HISTORY, d),
            };
            let id = self.req.send(|id| ExitRequest::Get { id, kind, key });
            self.in_flight.insert(id, (w, attempts + 1));
        }
        for h in held_back.into_iter().rev() {
            self.pending.push_front(h);
        }
        std::mem::take(&mut self.req.outbox)
    }

    /// The next verified answer or final failure.
    pub fn poll_event(&mut self) -> Option<FetchEvent> {
        self.events.pop_front()
    }

    fn fail_or_retry(&mut self, w: Want, attempts: u32, error: TransferError) {
        if attempts >= MAX_ATTEMPTS {
            self.wanted.remove(&w);
            self.events.push_back(match w {
                Want::Manifest => FetchEvent::Manifest(Err(error)),
                Want::Block(h) => FetchEvent::Block(h, Err(error)),
                Want::Roster => FetchEvent::Roster(Err(error)),
                Want::Line(l) => FetchEvent::Head(l, Err(error)),
                Want::History(d) => FetchEvent::History(d, Err(error)),
            });
        } else {
            self.pending.push_back((w, attempts));
        }
    }

    /// Bytes read from the stream. A stream that sends something malformed is of no
    /// further use: `Err` tells the caller to drop it (and [`SiteFetch::reset`]).
    pub fn on_data(
        &mut self,
        data: &[u8],
        tracker: &mut SiteTracker,
        now: WallTime,
    ) -> Result<(), TransferError> {
        for reply in self.req.replies(data)? {
            let (id, found) = match reply {
                ExitReply::Found { id, record } => (id, Some(record)),
                ExitReply::NotFound { id } => (id, None),
                ExitReply::Refused { id, reason } => {
                    if let Some((w, attempts)) = self.in_flight.remove(&id) {
                        // Busy is worth asking again; anything else this exit will not do.
                        let attempts = if reason == BUSY {
                            attempts
                        } else {
                            MAX_ATTEMPTS
                        };
                        self.fail_or_retry(w, attempts, TransferError::Refused(reason));
                    }
                    continue;
                }
                ExitReply::Stored { .. } => return Err(TransferError::BadReply),
            };
            let Some((w, attempts)) = self.in_flight.remove(&id) else {
                continue;
            };
            let not_found = match w {
                Want::Manifest | Want::Roster | Want::Line(_) | Want::History(_) => {
                    TransferError::SiteNotFound
                }
                Want::Block(h) => TransferError::Block(crate::wire::hex::encode(&h[..8])),
            };
            let Some(record) = found else {
                match w {
                    Want::Roster | Want::Line(_) | Want::History(_) if attempts >= ABSENT_AFTER => {
                        self.wanted.remove(&w);
                        self.events.push_back(match w {
                            Want::Line(l) => FetchEvent::Head(l, Ok(None)),
                            Want::History(d) => FetchEvent::History(d, Ok(None)),
                            _ => FetchEvent::Roster(Ok(None)),
                        });
                    }
                    _ => self.fail_or_retry(w, attempts, not_found),
                }
                continue;
            };
            match w {
                Want::Manifest => {
                    // On equivocation the first manifest of the sequence stays in use.
                    let v = manifest::parse(&record.value)
                        .and_then(|u| u.verify(&self.site, now))
                        .and_then(|v| tracker.settle(v, now).map(|(v, _)| v));
                    match v {
                        Ok(v) => {
                            self.wanted.remove(&w);
                            self.events.push_back(FetchEvent::Manifest(Ok(Box::new(v))));
                        }
                        // A forged or stale answer: ask again (another lookup may reach
                        // honest storers), then report the refusal.
                        Err(e) => self.fail_or_retry(w, attempts, TransferError::Manifest(e)),
                    }
                }
                Want::Roster => match writers::roster::parse(&record.value, &self.site) {
                    Ok(r) if record.kind == RecordKind::ROSTER => {
                        self.wanted.remove(&w);
                        self.events
                            .push_back(FetchEvent::Roster(Ok(Some(Box::new(r)))));
                    }
                    Ok(_) => self.fail_or_retry(w, attempts, TransferError::BadReply),
                    Err(e) => self.fail_or_retry(w, attempts, TransferError::Writers(e)),
                },
                Want::Line(l) => {
                    let h = writers::head::parse(&record.value, &self.site).and_then(|h| {
                        h.check_time(now)?;
                        Ok(h)
                    });
                    match h {
                        Ok(h) if h.head.line() == l && record.kind == RecordKind::WRITER => {
                            self.wanted.remove(&w);
                            self.events
                                .push_back(FetchEvent::Head(l, Ok(Some(Box::new(h)))));
                        }
                        Ok(_) => self.fail_or_retry(w, attempts, TransferError::BadReply),
                        Err(e) => self.fail_or_retry(w, attempts, TransferError::Writers(e)),
                    }
                }
                Want::History(d) => {
                    // The manifest whose hash was asked for, whatever its age.
                    let h = writers::head::parse(&record.value, &self.site)
                        .ok()
                        .filter(|h| h.digest() == d && record.kind == RecordKind::HISTORY);
                    match h {
                        Some(h) => {
                            self.wanted.remove(&w);
                            self.events
                                .push_back(FetchEvent::History(d, Ok(Some(Box::new(h)))));
                        }
                        None => self.fail_or_retry(w, attempts, TransferError::BadReply),
                    }
                }
                Want::Block(h) => {
                    if record.key == h && verify_block(&h, &record.value).is_ok() {
                        self.wanted.remove(&w);
                        self.events
                            .push_back(FetchEvent::Block(h, Ok(record.value)));
                    } else {
                        self.fail_or_retry(w, attempts, not_found);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{FetchEvent, SiteFetch};
    use crate::crypto::keys::IdentityKey;
    use crate::crypto::rng::UmbraRng;
    use crate::site::address::SiteAddress;
    use crate::site::{SiteTracker, build};
    use crate::time::WallTime;
    use crate::wire::dht_msg::{ExitReply, ExitRequest, Record, RecordKind, StreamFramer};

    /// An exit that answers from the built site; `corrupt` alters every block once.
    fn answer(sent: &[u8], built: &crate::site::Built, corrupt: &mut bool) -> Vec<u8> {
        let mut f = StreamFramer::default();
        f.push(sent);
        let mut out = Vec::new();
        while let Ok(Some(m)) = f.next_message() {
            let Ok(ExitRequest::Get { id, kind, key }) = ExitRequest::decode(&m) else {
                continue;
            };
            let value = if kind == RecordKind::MANIFEST {
                Some(built.manifest.clone())
            } else {
                built.blocks.get(&key).map(|b| {
                    let mut b = b.clone();
                    if *corrupt {
                        b[0] ^= 1;
                    }
                    b
                })
            };
            let reply = match value {
                Some(value) => ExitReply::Found {
                    id,
                    record: Record { kind, key, value },
                },
                None => ExitReply::NotFound { id },
            };
            out.extend(StreamFramer::frame(&reply.encode()));
        }
        *corrupt = false;
        out
    }

    #[test]
    fn manifest_and_blocks_verified_and_deduplicated() {
        let key = IdentityKey::generate(&mut UmbraRng::from_seed([3; 32]));
        let files = vec![(
            "index.html".to_string(),
            (0..100_000u32).map(|i| (i % 251) as u8).collect(),
        )];
        let built = build(&key, &files, 1, WallTime(1000), 3600).unwrap();
        let mut f = SiteFetch::new(SiteAddress(key.public()));
        let mut tracker = SiteTracker::new();
        f.want_manifest();
        f.want_manifest();
        let sent = f.poll_send();
        let mut corrupt = false;
        f.on_data(
            &answer(&sent, &built, &mut corrupt),
            &mut tracker,
            WallTime(1001),
        )
        .unwrap();
        let Some(FetchEvent::Manifest(Ok(m))) = f.poll_event() else {
            panic!("no manifest");
        };
        assert!(f.poll_event().is_none(), "asked once");
        for h in &m.manifest().entries[0].blocks {
            f.want_block(*h);
            f.want_block(*h);
        }
        // First answers are corrupted: each block is asked again and then verifies.
        corrupt = true;
        let mut got = 0;
        for _ in 0..3 {
            let sent = f.poll_send();
            f.on_data(
                &answer(&sent, &built, &mut corrupt),
                &mut tracker,
                WallTime(1001),
            )
            .unwrap();
            while let Some(e) = f.poll_event() {
                assert!(matches!(e, FetchEvent::Block(_, Ok(_))));
                got += 1;
            }
        }
        assert_eq!(
            got, 4,
            "100,000 bytes are four 32 KiB blocks, one event each"
        );
        assert_eq!(f.outstanding(), 0);
    }

    #[test]
    fn of_two_manifests_with_one_sequence_the_first_stays_in_use() {
        let key = IdentityKey::generate(&mut UmbraRng::from_seed([4; 32]));
        let a = build(
            &key,
            &[("index.html".into(), b"first".to_vec())],
            5,
            WallTime(1000),
            3600,
        )
        .unwrap();
        let b = build(
            &key,
            &[("index.html".into(), b"second".to_vec())],
            5,
            WallTime(1000),
            3600,
        )
        .unwrap();
        let mut tracker = SiteTracker::new();
        let mut manifest_from = |built: &crate::site::Built| {
            let mut f = SiteFetch::new(SiteAddress(key.public()));
            f.want_manifest();
            let sent = f.poll_send();
            f.on_data(
                &answer(&sent, built, &mut false),
                &mut tracker,
                WallTime(1001),
            )
            .unwrap();
            let Some(FetchEvent::Manifest(Ok(m))) = f.poll_event() else {
                panic!("no manifest");
            };
            m.bytes().to_vec()
        };
        assert_eq!(manifest_from(&a), a.manifest);
        // The publisher equivocates: the second manifest of sequence 5 is not used.
        assert_eq!(manifest_from(&b), a.manifest);
        assert_eq!(tracker.equivocations().len(), 1);
    }

    #[test]
    fn rosters_and_heads_are_verified_and_absence_is_an_answer() {
        use crate::site::writers::head::{FileRef, Head, HeadEntry, Value, Vector};
        use crate::site::writers::roster::Roster;
        use crate::site::writers::{LineId, line_dht_key, roster_dht_key};

        let site = IdentityKey::from_secret_bytes([7; 32]);
        let writer = IdentityKey::from_secret_bytes([8; 32]);
        let addr = SiteAddress(site.public());
        let roster = Roster::implicit(site.public());
        let roster_bytes = Roster { seq: 3, ..roster }.sign(&site).unwrap();
        let line = LineId::of(&writer.public(), "");
        let mut v = Vector::default();
        v.raise(line, 1);
        let head = Head {
            site: site.public(),
            writer: writer.public(),
            branch: String::new(),
            seq: 1,
            roster: 3,
            published: WallTime(1000),
            expires: WallTime(u64::MAX),
            prev: [0; 32],
            vector: v.clone(),
            contexts: vec![v],
            entries: vec![HeadEntry {
                path: "a.txt".into(),
                ctx: 0,
                value: Value::File(FileRef {
                    size: 0,
                    hash: crate::crypto::hash::hash(b""),
                    media_type: "text/plain".into(),
                    blocks: vec![],
                }),
            }],
            branches: Vec::new(),
        };
        let head_bytes = head.sign(&writer).unwrap();
        let other_line = LineId::of(&writer.public(), "draft");
        // An exit that holds the roster and the head, answers the head for any line, and
        // holds nothing for `other_line`'s key.
        let exit = |sent: &[u8], forged: bool| {
            let mut f = StreamFramer::default();
            f.push(sent);
            let mut out = Vec::new();
            while let Ok(Some(m)) = f.next_message() {
                let Ok(ExitRequest::Get { id, kind, key }) = ExitRequest::decode(&m) else {
                    continue;
                };
                let value = match kind {
                    RecordKind::ROSTER if key == roster_dht_key(&site.public()) => {
                        Some(roster_bytes.clone())
                    }
                    RecordKind::WRITER if key == line_dht_key(&site.public(), &line) => {
                        let mut b = head_bytes.clone();
                        if forged {
                            let n = b.len();
                            b[n - 1] ^= 1;
                        }
                        Some(b)
                    }
                    _ => None,
                };
                let reply = match value {
                    Some(value) => ExitReply::Found {
                        id,
                        record: Record { kind, key, value },
                    },
                    None => ExitReply::NotFound { id },
                };
                out.extend(StreamFramer::frame(&reply.encode()));
            }
            out
        };
        let mut tracker = SiteTracker::new();
        let mut f = SiteFetch::new(addr);
        f.want_roster();
        f.want_line(line);
        f.want_line(other_line);
        let mut events = Vec::new();
        for _ in 0..3 {
            let sent = f.poll_send();
            f.on_data(&exit(&sent, false), &mut tracker, WallTime(2000))
                .unwrap();
            while let Some(e) = f.poll_event() {
                events.push(e);
            }
        }
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(
            events
                .iter()
                .any(|e| matches!(e, FetchEvent::Roster(Ok(Some(r))) if r.roster.seq == 3))
        );
        assert!(events.iter().any(
            |e| matches!(e, FetchEvent::Head(l, Ok(Some(h))) if *l == line && h.head.seq == 1)
        ));
        assert!(
            events
                .iter()
                .any(|e| matches!(e, FetchEvent::Head(l, Ok(None)) if *l == other_line))
        );
        assert_eq!(f.outstanding(), 0);
        // A forged head is asked again, then refused with the writers' error.
        let mut f = SiteFetch::new(addr);
        f.want_line(line);
        let mut last = None;
        for _ in 0..super::MAX_ATTEMPTS {
            let sent = f.poll_send();
            f.on_data(&exit(&sent, true), &mut tracker, WallTime(2000))
                .unwrap();
            if let Some(e) = f.poll_event() {
                last = Some(e);
            }
        }
        assert!(
            matches!(
                last,
                Some(FetchEvent::Head(_, Err(super::TransferError::Writers(_))))
            ),
            "{last:?}"
        );
    }
}
