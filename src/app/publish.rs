//! The publisher (`protocol-spec/07-sites.md#publishing`): one app that `umbra publish`, the
//! demo and the simulator all run.
//!
//! On a `dht` stream through a circuit ([`ServiceSession`]) it first asks for the site's
//! current manifest, then signs the new one with `seq = max(wall clock, previous + 1)`, so a
//! publisher whose clock went back still moves the site forward. Blocks the previous
//! manifest listed are not sent again if the network still holds them: each gets a
//! `REFRESH` (its storers keep it until the new manifest expires) and only a block that fewer
//! than [`REFRESH_MIN_COPIES`] storers still hold is sent whole. Every other block is
//! `PUT`, and the manifest goes last, so no reader finds a manifest whose blocks are
//! missing. A lost circuit resumes on a fresh one where it stopped.
//!
//! Not in this module: reading the folder and drawing progress (the CLI), building and
//! signing (`site::build`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::App;
use super::fetch::{MAX_ATTEMPTS, TransferError};
use super::session::{self, OnSession, ServiceSession, SessionEvent};
use crate::crypto::keys::IdentityKey;
use crate::node::{Node, NodeEvent};
use crate::site::address::SiteAddress;
use crate::site::manifest;
use crate::site::{Built, build};
use crate::time::Time;
use crate::wire::dht_msg::{ExitReply, ExitRequest, Record, RecordKind, StreamFramer};

/// Circuits a publish may use.
pub const CIRCUITS: u32 = 4;
/// Stores outstanding on one stream.
pub const MAX_IN_FLIGHT: usize = 16;
/// Storers that must still hold a known block for a publish to skip sending it again.
pub const REFRESH_MIN_COPIES: u8 = 4;
/// `REFUSED` reason 2: the exit is at a limit; ask again (`06-dht.md#exit-requests`).
const BUSY: u8 = 2;
/// `REFUSED` reason 4: the storers hold a newer version of the record.
const SUPERSEDED: u8 = 4;

/// One thing to ask the exit for.
#[derive(Debug, Clone)]
enum Item {
    /// Store this record.
    Put(Record),
    /// Ask the holders of this block to keep it longer.
    Refresh([u8; 32]),
}

/// The request machine of an upload: bytes out, replies in.
#[derive(Debug)]
pub struct Uploader {
    framer: StreamFramer,
    next_id: u32,
    outbox: Vec<u8>,
    expires: u64,
    blocks: BTreeMap<[u8; 32], Vec<u8>>,
    queue: VecDeque<(Item, u32)>,
    manifest: Option<Record>,
    in_flight: BTreeMap<u32, (Item, u32)>,
    /// Fewest storers any record reached.
    pub min_copies: u8,
    /// Records stored or kept.
    pub done: usize,
    /// Records in all (blocks and the manifest).
    pub total: usize,
    /// Known blocks the network still held (not sent again).
    pub refreshed: usize,
    result: Option<Result<(), TransferError>>,
}

impl Uploader {
    /// Upload `built`; blocks in `known` (listed by the previous manifest) are refreshed
    /// first and sent only if too few storers still hold them.
    pub fn new(built: &Built, known: &BTreeSet<[u8; 32]>) -> Uploader {
        let last = Record {
            kind: RecordKind::MANIFEST,
            key: built.parsed.address().dht_key(),
            value: built.manifest.clone(),
        };
        Uploader::with_last(last, built.parsed.expires.0, &built.blocks, known)
    }

    /// Upload `blocks`, then `last` (a manifest, a writer manifest or a roster), each kept
    /// until `expires`; blocks in `known` are refreshed first and sent only if too few
    /// storers still hold them.
    pub fn with_last(
        last: Record,
        expires: u64,
        blocks: &BTreeMap<[u8; 32], Vec<u8>>,
        known: &BTreeSet<[u8; 32]>,
    ) -> Uploader {
        let queue = blocks
            .iter()
            .map(|(h, b)| {
                let item = if known.contains(h) {
                    Item::Refresh(*h)
                } else {
                    Item::Put(Record {
                        kind: RecordKind::BLOCK,
                        key: *h,
                        value: b.clone(),
                    })
                };
                (item, 0)
            })
            .collect::<VecDeque<_>>();
        Uploader {
            framer: StreamFramer::default(),
            next_id: 1,
            outbox: Vec::new(),
            expires,
            blocks: blocks.clone(),
            total: queue.len() + 1,
            queue,
            manifest: Some(last),
            in_flight: BTreeMap::new(),
            min_copies: u8::MAX,
            done: 0,
            refreshed: 0,
            result: None,
        }
    }

    /// Also store `record` (before the last record, as a block is).
    pub fn also(mut self, record: Record) -> Uploader {
        self.queue.push_back((Item::Put(record), 0));
        self.total += 1;
        self
    }

    /// On a new stream: what was in flight is asked again, first.
    pub fn resume(&mut self) {
        self.framer = StreamFramer::default();
        self.outbox.clear();
        for (_, (item, attempts)) in std::mem::take(&mut self.in_flight).into_iter().rev() {
            self.requeue(item, attempts, true);
        }
    }

    /// Ask for `item` again, first or last; the manifest always waits for the blocks.
    fn requeue(&mut self, item: Item, attempts: u32, first: bool) {
        match item {
            Item::Put(r) if r.kind != RecordKind::BLOCK => self.manifest = Some(r),
            item if first => self.queue.push_front((item, attempts)),
            item => self.queue.push_back((item, attempts)),
        }
    }

    /// Bytes to write on the stream now.
    pub fn poll_send(&mut self) -> Vec<u8> {
        while self.result.is_none() && self.in_flight.len() < MAX_IN_FLIGHT {
            let (item, attempts) = match self.queue.pop_front() {
                Some(next) => next,
                // The manifest only once every block is stored.
                None if self.in_flight.is_empty() => match self.manifest.take() {
                    Some(m) => (Item::Put(m), 0),
                    None => break,
                },
                None => break,
            };
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1).max(1);
            let expires = self.expires;
            let req = match &item {
                Item::Put(r) => ExitRequest::Put {
                    id,
                    record: r.clone(),
                    expires,
                },
                Item::Refresh(h) => ExitRequest::Refresh {
                    id,
                    kind: RecordKind::BLOCK,
                    key: *h,
                    expires,
                },
            };
            self.outbox.extend(StreamFramer::frame(&req.encode()));
            self.in_flight.insert(id, (item, attempts + 1));
        }
        std::mem::take(&mut self.outbox)
    }

    /// Bytes read from the stream.
    pub fn on_data(&mut self, data: &[u8]) {
        self.framer.push(data);
        loop {
            let msg = match self.framer.next_message() {
                Ok(Some(m)) => m,
                Ok(None) => return,
                Err(_) => {
                    self.result = Some(Err(TransferError::BadReply));
                    return;
                }
            };
            match ExitReply::decode(&msg) {
                Ok(reply) => self.on_reply(reply),
                Err(_) => self.result = Some(Err(TransferError::BadReply)),
            }
            if self.result.is_some() {
                return;
            }
        }
    }

    fn on_reply(&mut self, reply: ExitReply) {
        let (id, outcome) = match reply {
            ExitReply::Stored { id, copies } => (id, Ok(copies)),
            ExitReply::Refused { id, reason } => (id, Err(reason)),
            _ => {
                self.result = Some(Err(TransferError::BadReply));
                return;
            }
        };
        let Some((item, attempts)) = self.in_flight.remove(&id) else {
            return;
        };
        match (item, outcome) {
            // Enough holders kept a known block: it need not be sent.
            (Item::Refresh(_), Ok(copies)) if copies >= REFRESH_MIN_COPIES => {
                self.stored(copies);
                self.refreshed += 1;
            }
            // Too few still hold it (or the exit would not refresh): send it whole.
            (Item::Refresh(h), Ok(_) | Err(_)) => match self.blocks.get(&h) {
                Some(b) => self.queue.push_back((
                    Item::Put(Record {
                        kind: RecordKind::BLOCK,
                        key: h,
                        value: b.clone(),
                    }),
                    0,
                )),
                None => self.result = Some(Err(TransferError::BadReply)),
            },
            (Item::Put(_), Ok(copies)) if copies > 0 => self.stored(copies),
            (item @ Item::Put(_), Ok(_) | Err(BUSY)) => {
                if attempts >= MAX_ATTEMPTS {
                    // Kept for the next circuit; this one gives up.
                    self.requeue(item, 0, false);
                    self.result = Some(Err(TransferError::NotStored));
                } else {
                    self.requeue(item, attempts, false);
                }
            }
            (item @ Item::Put(_), Err(reason)) => {
                self.requeue(item, 0, false);
                self.result = Some(Err(if reason == SUPERSEDED {
                    TransferError::Superseded
                } else {
                    TransferError::Refused(reason)
                }));
            }
        }
    }

    fn stored(&mut self, copies: u8) {
        self.min_copies = self.min_copies.min(copies);
        self.done += 1;
        if self.done == self.total {
            self.result = Some(Ok(()));
        }
    }

    /// Forget a failure, to go on over a fresh stream ([`Uploader::resume`]).
    pub fn clear_result(&mut self) {
        self.result = None;
    }

    /// `Some` when finished.
    pub fn result(&self) -> Option<&Result<(), TransferError>> {
        self.result.as_ref()
    }
}

/// What a finished publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The site's address.
    pub address: SiteAddress,
    /// The new manifest's sequence.
    pub seq: u64,
    /// Files in the site.
    pub files: usize,
    /// Blocks in the site.
    pub blocks: usize,
    /// Blocks the network still held, kept without sending them.
    pub refreshed: usize,
    /// Fewest storers any record reached.
    pub min_copies: u8,
}

/// What a publish is about to upload, once the previous manifest is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadPlan {
    /// Files in the site.
    pub files: usize,
    /// Blocks in the site.
    pub blocks: usize,
    /// Of those, blocks the previous manifest listed (refreshed before resending).
    pub known: usize,
    /// The new manifest's sequence.
    pub seq: u64,
}

/// Where a publish is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishState {
    /// Reaching the exit.
    Connecting,
    /// Asking for the current manifest.
    Probing,
    /// Storing blocks, then the manifest.
    Uploading,
    /// Every record is stored.
    Done(Box<Published>),
    /// Gave up (why).
    Failed(String),
}

/// The manifest lifetime in seconds for `umbra publish --lifetime-days` (`07-sites.md#manifest`):
/// `None` never expires ([`crate::site::NO_EXPIRY`]); a number of days is at least one day.
pub fn lifetime_secs(days: Option<u64>) -> u64 {
    days.map_or(crate::site::NO_EXPIRY, |d| {
        d.max(1).saturating_mul(24 * 3600)
    })
}

/// The publish app: the site of `key` made of `files`, valid for `lifetime` seconds.
#[derive(Debug)]
pub struct Publish {
    key: IdentityKey,
    files: Vec<(String, Vec<u8>)>,
    lifetime: u64,
    session: ServiceSession,
    probe: StreamFramer,
    uploader: Option<Uploader>,
    seq: u64,
    known: usize,
    /// Where it is.
    pub state: PublishState,
    /// The last failure that made it start over on a fresh circuit.
    pub last_error: Option<String>,
    /// What it tells its user ([`Publish::poll_report`]).
    reports: super::Reports,
}

impl Publish {
    /// Publish `files` as the site of `key`, its manifest valid for `lifetime` seconds.
    pub fn new(key: IdentityKey, files: Vec<(String, Vec<u8>)>, lifetime: u64) -> Publish {
        Publish {
            key,
            files,
            lifetime,
            session: ServiceSession::new(b"dht", CIRCUITS),
            probe: StreamFramer::default(),
            uploader: None,
            seq: 0,
            known: 0,
            state: PublishState::Connecting,
            last_error: None,
            reports: super::Reports::default(),
        }
    }

    /// The site's address.
    pub fn address(&self) -> SiteAddress {
        SiteAddress(self.key.public())
    }

    /// What the upload will do, once the previous manifest is known.
    pub fn plan(&self) -> Option<UploadPlan> {
        self.uploader.as_ref().map(|u| UploadPlan {
            files: self.files.len(),
            blocks: u.total - 1,
            known: self.known,
            seq: self.seq,
        })
    }

    /// The next thing to tell the user: the plan, progress, a retry.
    pub fn poll_report(&mut self) -> Option<super::Report> {
        self.reports.poll()
    }

    /// Records stored (or kept) so far, and in all, once known.
    pub fn progress(&self) -> Option<(usize, usize)> {
        self.uploader.as_ref().map(|u| (u.done, u.total))
    }

    fn over(&self) -> bool {
        matches!(self.state, PublishState::Done(_) | PublishState::Failed(_))
    }

    fn react(&mut self, node: &mut Node, now: Time, ev: SessionEvent) {
        match ev {
            SessionEvent::Built { .. } => {}
            SessionEvent::Opened => match self.uploader.as_mut() {
                Some(u) => {
                    u.resume();
                    self.state = PublishState::Uploading;
                    self.pump(node, now);
                }
                None => {
                    self.state = PublishState::Probing;
                    self.probe = StreamFramer::default();
                    let get = ExitRequest::Get {
                        id: 0,
                        kind: RecordKind::MANIFEST,
                        key: self.address().dht_key(),
                    };
                    let bytes = StreamFramer::frame(&get.encode());
                    if let Some(ev) = self.session.send(node, now, &bytes) {
                        self.react(node, now, ev);
                    }
                }
            },
            SessionEvent::Data(data) => {
                if self.uploader.is_none() {
                    self.on_probe(node, now, &data);
                } else {
                    self.on_upload(node, now, &data);
                }
            }
            SessionEvent::Retrying { why, .. } => {
                self.reports.push(super::Report::Retrying(why.clone()));
                self.last_error = Some(why);
                self.state = PublishState::Connecting;
            }
            SessionEvent::GaveUp { why } => {
                self.last_error = Some(why.clone());
                self.state = PublishState::Failed(why);
            }
        }
    }

    /// The exit's answer about the current manifest: choose the sequence, build, upload.
    fn on_probe(&mut self, node: &mut Node, now: Time, data: &[u8]) {
        self.probe.push(data);
        let msg = match self.probe.next_message() {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(_) => return self.retry(node, now, "bad reply from the exit".into()),
        };
        let wall = node.wall(now);
        let address = self.address();
        let previous = match ExitReply::decode(&msg) {
            Ok(ExitReply::Found { record, .. }) => manifest::parse(&record.value)
                .ok()
                .and_then(|u| u.verify(&address, wall).ok()),
            Ok(ExitReply::NotFound { .. }) => None,
            Ok(ExitReply::Refused { reason, .. }) => {
                return self.retry(node, now, format!("the exit refused (reason {reason})"));
            }
            _ => return self.retry(node, now, "bad reply from the exit".into()),
        };
        // `seq = max(clock, previous + 1)` (`07-sites.md#publishing`).
        self.seq = previous
            .as_ref()
            .map_or(wall.0, |p| wall.0.max(p.manifest().seq + 1));
        let known: BTreeSet<[u8; 32]> = previous
            .iter()
            .flat_map(|p| p.manifest().entries.iter())
            .flat_map(|e| e.blocks.iter().copied())
            .collect();
        match build(&self.key, &self.files, self.seq, wall, self.lifetime) {
            Ok(built) => {
                self.known = built.blocks.keys().filter(|h| known.contains(*h)).count();
                self.uploader = Some(Uploader::new(&built, &known));
                self.state = PublishState::Uploading;
                self.pump(node, now);
            }
            Err(e) => {
                self.state = PublishState::Failed(format!("cannot build the site: {e}"));
                self.session.finish(node, now);
            }
        }
    }

    fn on_upload(&mut self, node: &mut Node, now: Time, data: &[u8]) {
        let address = self.address();
        let Some(u) = self.uploader.as_mut() else {
            return;
        };
        u.on_data(data);
        match u.result().cloned() {
            Some(Ok(())) => {
                let done = Published {
                    address,
                    seq: self.seq,
                    files: self.files.len(),
                    blocks: u.total - 1,
                    refreshed: u.refreshed,
                    min_copies: u.min_copies,
                };
                self.state = PublishState::Done(Box::new(done));
                self.session.finish(node, now);
            }
            // Another circuit would be told the same: the network holds a newer version.
            Some(Err(e @ TransferError::Superseded)) => {
                self.state = PublishState::Failed(e.to_string());
                self.session.finish(node, now);
            }
            Some(Err(e)) => {
                // Start the upload over on a fresh circuit (what was stored stays stored).
                if let Some(u) = self.uploader.as_mut() {
                    u.clear_result();
                }
                self.retry(node, now, e.to_string());
            }
            None => self.pump(node, now),
        }
    }

    fn retry(&mut self, node: &mut Node, now: Time, why: String) {
        let ev = self.session.retry(node, now, why);
        self.react(node, now, ev);
    }

    fn pump(&mut self, node: &mut Node, now: Time) {
        let Some(u) = self.uploader.as_mut() else {
            return;
        };
        let bytes = u.poll_send();
        session::send(self, node, now, &bytes);
    }
}

impl App for Publish {
    fn start(&mut self, node: &mut Node, now: Time) {
        self.session.start(node, now);
    }

    fn on_event(&mut self, node: &mut Node, now: Time, event: NodeEvent) {
        let planned = self.uploader.is_some();
        session::feed(self, node, now, event);
        if let (false, Some(plan)) = (planned, self.plan()) {
            self.reports.push(super::Report::Plan(plan));
        }
        let progress = self.progress();
        self.reports.progress(progress);
    }

    fn tick(&mut self, _: &mut Node, _: Time) {}

    fn finished(&self) -> Option<i32> {
        match self.state {
            PublishState::Done(_) => Some(0),
            PublishState::Failed(_) => Some(1),
            _ => None,
        }
    }
}

impl OnSession for Publish {
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

#[cfg(test)]
mod tests {
    use super::{REFRESH_MIN_COPIES, Uploader, lifetime_secs};
    use crate::crypto::keys::IdentityKey;
    use crate::crypto::rng::UmbraRng;
    use crate::site::build;
    use crate::time::WallTime;
    use crate::wire::dht_msg::{ExitReply, ExitRequest, StreamFramer};
    use std::collections::BTreeSet;

    fn requests(bytes: &[u8]) -> Vec<ExitRequest> {
        let mut f = StreamFramer::default();
        f.push(bytes);
        let mut out = Vec::new();
        while let Ok(Some(m)) = f.next_message() {
            out.push(ExitRequest::decode(&m).unwrap());
        }
        out
    }

    fn reply(u: &mut Uploader, r: &ExitReply) {
        u.on_data(&StreamFramer::frame(&r.encode()));
    }

    /// Known blocks are refreshed, and sent whole only when too few storers kept them; the
    /// manifest goes last; what was in flight when a circuit was lost is asked again.
    #[test]
    fn known_blocks_are_refreshed_and_resent_only_when_too_few_hold_them() {
        let key = IdentityKey::generate(&mut UmbraRng::from_u64(1));
        let files = vec![
            ("a".to_string(), vec![1u8; 100]),
            ("b".to_string(), vec![2u8; 100]),
            ("c".to_string(), vec![3u8; 100]),
        ];
        let built = build(&key, &files, 7, WallTime(1_800_000_000), 86_400).unwrap();
        let hashes: Vec<[u8; 32]> = built.blocks.keys().copied().collect();
        let known: BTreeSet<[u8; 32]> = hashes[..2].iter().copied().collect();
        let mut u = Uploader::new(&built, &known);
        let first = requests(&u.poll_send());
        let refreshes: Vec<u32> = first
            .iter()
            .filter_map(|r| match r {
                ExitRequest::Refresh { id, key, .. } if known.contains(key) => Some(*id),
                _ => None,
            })
            .collect();
        let puts: Vec<u32> = first
            .iter()
            .filter_map(|r| match r {
                ExitRequest::Put { id, record, .. } => {
                    assert!(
                        !known.contains(&record.key),
                        "a known block sent whole first"
                    );
                    Some(*id)
                }
                _ => None,
            })
            .collect();
        assert_eq!((refreshes.len(), puts.len()), (2, 1), "{first:?}");
        // One known block is still held widely; the other only by one storer.
        reply(
            &mut u,
            &ExitReply::Stored {
                id: refreshes[0],
                copies: REFRESH_MIN_COPIES,
            },
        );
        reply(
            &mut u,
            &ExitReply::Stored {
                id: refreshes[1],
                copies: 1,
            },
        );
        reply(
            &mut u,
            &ExitReply::Stored {
                id: puts[0],
                copies: 8,
            },
        );
        assert_eq!(u.refreshed, 1);
        // The weakly held block now goes whole; the circuit is lost before its answer.
        let second = requests(&u.poll_send());
        assert!(
            matches!(&second[..], [ExitRequest::Put { record, .. }] if known.contains(&record.key)),
            "{second:?}"
        );
        u.resume();
        let again = requests(&u.poll_send());
        let ExitRequest::Put { id, record, .. } = &again[0] else {
            panic!("{again:?}")
        };
        assert!(
            known.contains(&record.key),
            "the lost request was not asked again"
        );
        reply(&mut u, &ExitReply::Stored { id: *id, copies: 8 });
        // Only now the manifest.
        let last = requests(&u.poll_send());
        let [ExitRequest::Put { id, record, .. }] = &last[..] else {
            panic!("{last:?}")
        };
        assert_eq!(record.kind, crate::wire::dht_msg::RecordKind::MANIFEST);
        reply(&mut u, &ExitReply::Stored { id: *id, copies: 8 });
        assert_eq!(u.result(), Some(&Ok(())));
        assert_eq!((u.done, u.total), (4, 4));
    }

    #[test]
    fn a_site_never_expires_unless_its_publisher_says() {
        assert_eq!(lifetime_secs(None), u64::MAX);
        assert_eq!(lifetime_secs(Some(30)), 30 * 86_400);
        assert_eq!(lifetime_secs(Some(0)), 86_400, "at least a day");
        let key = IdentityKey::generate(&mut UmbraRng::from_u64(1));
        let files = vec![("a".to_string(), b"x".to_vec())];
        let never = build(&key, &files, 1, WallTime(1000), lifetime_secs(None)).unwrap();
        assert_eq!(never.parsed.expires, WallTime(u64::MAX));
        let parsed = crate::site::manifest::parse(&never.manifest).unwrap();
        let verified = parsed.verify(&never.parsed.address(), WallTime(u64::MAX - 1));
        assert!(verified.is_ok(), "valid at any time");
    }
}
