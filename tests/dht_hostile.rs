//! Hostile peers against one relay's DHT, sans-IO (issue 12, findings 2, 4 and 5;
//! `protocol-spec/06-dht.md#who-takes-part`, `#lookups`, `#pacing`): a relay identity that
//! is not in the directory is neither served nor admitted to the routing table, whatever it
//! sends; answers nobody asked for admit nobody; a value lookup starts from the node's own
//! store, so ids crowding a key cannot make an exit deny a record it holds; and one relay
//! pulling whole records gets them only as fast as its bucket refills.

use std::collections::BTreeMap;
use std::time::Duration;

use umbra::crypto::keys::{IdentityKey, NodeId};
use umbra::crypto::rng::UmbraRng;
use umbra::dht::store::MemoryStore;
use umbra::dht::{Dht, DhtAction, DhtConfig, Goal, LookupOutcome, RecordValidator};
use umbra::node::SiteValidator;
use umbra::site::build;
use umbra::time::{Time, WallTime};
use umbra::wire::dht_msg::{DhtMsg, Record, RecordKind};

const WALL: WallTime = WallTime(1_800_000_000);

fn id(b: u8) -> NodeId {
    let mut x = [b; 32];
    x[31] = 0xAA;
    NodeId(x)
}

fn relay(known: &[NodeId]) -> Dht {
    let mut d = Dht::new(
        NodeId([0x10; 32]),
        DhtConfig::default(),
        Box::new(MemoryStore::new(1 << 30)),
        Box::new(SiteValidator),
        Time::ZERO,
    );
    d.set_known(in_own_networks(known));
    d
}

/// Each relay in a network of its own.
fn in_own_networks(known: &[NodeId]) -> BTreeMap<NodeId, [u8; 4]> {
    known.iter().map(|n| (*n, [4, n.0[0], n.0[1], 0])).collect()
}

fn drain(d: &mut Dht) -> Vec<DhtAction> {
    std::iter::from_fn(|| d.poll_action()).collect()
}

fn manifest_record() -> Record {
    manifest_of(&[("index.html".to_string(), b"hello".to_vec())])
}

fn manifest_of(files: &[(String, Vec<u8>)]) -> Record {
    let key = IdentityKey::generate(&mut UmbraRng::from_u64(3));
    let built = build(&key, files, 1, WALL, 86_400).unwrap();
    Record {
        kind: RecordKind::MANIFEST,
        key: built.parsed.address().dht_key(),
        value: built.manifest.clone(),
    }
}

#[test]
fn junk_identities_are_neither_served_nor_admitted() {
    let known: Vec<NodeId> = (1..=4).map(id).collect();
    let mut d = relay(&known);
    d.bootstrap(Time::ZERO, &known);
    drain(&mut d);
    assert_eq!(d.table().len(), 4);
    let block = Record {
        kind: RecordKind::BLOCK,
        key: *blake3::hash(b"abc").as_bytes(),
        value: b"abc".to_vec(),
    };
    assert!(SiteValidator.validate(&block, WALL).is_ok());
    for j in 100..130u8 {
        let junk = id(j);
        for msg in [
            DhtMsg::FindNode {
                id: 1,
                target: [j; 32],
            },
            DhtMsg::Store {
                id: 2,
                record: block.clone(),
                expires: u64::MAX,
            },
            DhtMsg::Nodes {
                id: 3,
                nodes: vec![[j; 32]],
            },
            DhtMsg::Stored { id: 4, status: 0 },
        ] {
            d.handle_rpc(Time::ZERO, WALL, junk, msg);
        }
    }
    let sent_to_junk = drain(&mut d)
        .into_iter()
        .filter(|a| matches!(a, DhtAction::Send { to, .. } if !known.contains(to)))
        .count();
    assert_eq!(sent_to_junk, 0, "junk identities are served nothing");
    assert_eq!(d.table().len(), 4, "and none enters the routing table");
    assert_eq!(d.store().count(), 0, "and none stores anything");
    assert_eq!(d.stats().refused_unknown, 120);

    // A directory relay's unsolicited answer admits nobody either (it is not a request).
    let mut d = relay(&known);
    d.handle_rpc(
        Time::ZERO,
        WALL,
        id(1),
        DhtMsg::Nodes {
            id: 9,
            nodes: vec![id(2).0],
        },
    );
    assert_eq!(d.table().len(), 0);
    // Its request does.
    d.handle_rpc(
        Time::ZERO,
        WALL,
        id(1),
        DhtMsg::FindNode {
            id: 9,
            target: [0; 32],
        },
    );
    assert_eq!(d.table().len(), 1);
}

#[test]
fn an_exit_answers_from_its_own_store_when_nobody_else_does() {
    let known: Vec<NodeId> = (1..=4).map(id).collect();
    let mut d = relay(&known);
    d.bootstrap(Time::ZERO, &known);
    drain(&mut d);
    let rec = manifest_record();
    let info = SiteValidator.validate(&rec, WALL).unwrap();
    d.store_mut().put(&rec, info, false).unwrap();
    // Every other node it could ask stays silent (or lies by silence).
    let l = d.start(Time::ZERO, WALL, rec.key, Goal::Value(RecordKind::MANIFEST));
    drain(&mut d);
    let mut now = Time::ZERO;
    let mut outcome = None;
    for _ in 0..10 {
        now = now + Duration::from_secs(6);
        d.handle_timeout(now, WALL);
        for a in drain(&mut d) {
            if let DhtAction::Done { id, outcome: o, .. } = a {
                if id == l {
                    outcome = Some(o);
                }
            }
        }
    }
    assert_eq!(outcome, Some(LookupOutcome::Found(rec)));
}

#[test]
fn a_storer_paces_whole_records_per_asking_relay() {
    let known: Vec<NodeId> = (1..=4).map(id).collect();
    let mut d = relay(&known);
    let files: Vec<(String, Vec<u8>)> = (0..880)
        .map(|i| (format!("{i:04}/{}", "p".repeat(990)), vec![b'x']))
        .collect();
    let rec = manifest_of(&files);
    let size = rec.value.len() as u64;
    let info = SiteValidator.validate(&rec, WALL).unwrap();
    d.store_mut().put(&rec, info, false).unwrap();
    let ask = |d: &mut Dht, now: Time, from: NodeId, n: u32| -> usize {
        for i in 0..n {
            d.handle_rpc(
                now,
                WALL,
                from,
                DhtMsg::FindValue {
                    id: i,
                    key: rec.key,
                    kind: RecordKind::MANIFEST,
                },
            );
        }
        drain(d)
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    DhtAction::Send {
                        msg: DhtMsg::Value { .. },
                        ..
                    }
                )
            })
            .count()
    };
    // One relay asks 20 times at once: it gets what fits its 4 MiB burst.
    let burst = (umbra::dht::pacing::BURST / size) as usize;
    assert_eq!(ask(&mut d, Time::ZERO, id(1), 20), burst);
    // Another relay has its own bucket.
    assert_eq!(ask(&mut d, Time::ZERO, id(2), 1), 1);
    // A second later, the first relay's bucket refilled by 2 MiB.
    let later = Time::ZERO + Duration::from_secs(1);
    let refill = (umbra::dht::pacing::RATE / size) as usize;
    assert_eq!(ask(&mut d, later, id(1), 20), refill);
    // The rest were answered with NODES (as if not held), never queued.
    assert_eq!(d.stats().paced, (20 - burst + 20 - refill) as u64);
}

/// Issue 12, finding 4: held records are republished spread over the interval, not all at
/// the same moment (which stalled every other relay for 26–36 s).
#[test]
fn republishing_is_spread_over_the_interval() {
    let known: Vec<NodeId> = (1..=4).map(id).collect();
    let mut d = relay(&known);
    d.bootstrap(Time::ZERO, &known);
    drain(&mut d);
    for k in 0..100u32 {
        let value = k.to_le_bytes().to_vec();
        let r = Record {
            kind: RecordKind::BLOCK,
            key: *blake3::hash(&value).as_bytes(),
            value,
        };
        let info = SiteValidator.validate(&r, WALL).unwrap();
        d.store_mut().put(&r, info, false).unwrap();
    }
    let interval = DhtConfig::default().republish_interval;
    let start = Time::ZERO + interval;
    d.handle_timeout(start, WALL);
    drain(&mut d);
    assert!(
        d.republish_backlog() >= 98,
        "{} left",
        d.republish_backlog()
    );
    // Halfway through the interval, about half went out.
    let mut now = start;
    while now < start + interval / 2 {
        now = d.poll_timeout().unwrap().max(now);
        d.handle_timeout(now, WALL);
        drain(&mut d);
    }
    let left = d.republish_backlog();
    assert!((45..=55).contains(&left), "{left} left halfway");
}

/// A store that, like the relay's on-disk one, makes writes durable only on `commit`.
#[derive(Debug)]
struct Batched {
    inner: MemoryStore,
    pending: usize,
    commits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Commits hand the batch to a (pretend) background writer: `Started`.
    background: bool,
}

impl umbra::dht::store::RecordStore for Batched {
    fn get(&mut self, k: RecordKind, key: &[u8; 32], now: WallTime) -> Option<Record> {
        self.inner.get(k, key, now)
    }
    fn info(
        &self,
        k: RecordKind,
        key: &[u8; 32],
        now: WallTime,
    ) -> Option<umbra::dht::store::RecordInfo> {
        self.inner.info(k, key, now)
    }
    fn put(
        &mut self,
        r: &Record,
        i: umbra::dht::store::RecordInfo,
        pinned: bool,
    ) -> Result<umbra::dht::store::PutOutcome, umbra::dht::store::StoreError> {
        self.pending += 1;
        self.inner.put(r, i, pinned)
    }
    fn deferred(&self) -> bool {
        true
    }
    fn commit(&mut self) -> Result<umbra::dht::store::Commit, umbra::dht::store::StoreError> {
        self.pending = 0;
        let n = self
            .commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(if self.background {
            umbra::dht::store::Commit::Started(n as u64 + 1)
        } else {
            umbra::dht::store::Commit::Done
        })
    }
    fn pending(&self) -> usize {
        self.pending
    }
    fn unpin(&mut self, k: RecordKind, key: &[u8; 32], expires: WallTime) -> bool {
        self.inner.unpin(k, key, expires)
    }
    fn keep_proof(&mut self, p: umbra::wire::seen::EquivocationProof) -> bool {
        self.inner.keep_proof(p)
    }
    fn proofs(&self) -> &[umbra::wire::seen::EquivocationProof] {
        self.inner.proofs()
    }
    fn expire(&mut self, now: WallTime) {
        self.inner.expire(now)
    }
    fn keys(&self) -> Vec<(RecordKind, [u8; 32])> {
        self.inner.keys()
    }
    fn used(&self) -> u64 {
        self.inner.used()
    }
    fn count(&self) -> usize {
        self.inner.count()
    }
}

/// A relay whose store commits in batches (`background`: handed to a pretend background
/// writer), and its commit counter.
fn batched_relay(background: bool) -> (Dht, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let known: Vec<NodeId> = (1..=4).map(id).collect();
    let commits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut d = Dht::new(
        NodeId([0x10; 32]),
        DhtConfig::default(),
        Box::new(Batched {
            inner: MemoryStore::new(1 << 30),
            pending: 0,
            commits: commits.clone(),
            background,
        }),
        Box::new(SiteValidator),
        Time::ZERO,
    );
    d.set_known(in_own_networks(&known));
    (d, commits)
}

/// Issue 12, finding 4: a flood of STOREs is committed in batches, and each is acknowledged
/// only once its batch is durable (one commit with fsync per record stalled the relay).
#[test]
fn stores_commit_in_batches_and_are_acknowledged_only_when_durable() {
    let (mut d, commits) = batched_relay(false);
    let mut acked = 0;
    for k in 0..1_000u32 {
        let value = k.to_le_bytes()[..3].to_vec();
        let record = Record {
            kind: RecordKind::BLOCK,
            key: *blake3::hash(&value).as_bytes(),
            value,
        };
        d.handle_rpc(
            Time::ZERO,
            WALL,
            id(1),
            DhtMsg::Store {
                id: k,
                record,
                expires: u64::MAX,
            },
        );
        acked += acks(&mut d, 0);
        // Never acknowledged ahead of a commit.
        assert!(acked <= 256 * commits.load(std::sync::atomic::Ordering::Relaxed));
    }
    assert!(d.unacknowledged() > 0);
    let t = d.poll_timeout().unwrap();
    assert!(t <= Time::ZERO + umbra::dht::COMMIT_DELAY);
    d.handle_timeout(t, WALL);
    acked += acks(&mut d, 0);
    let n = commits.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("1,000 STOREs: {n} commits");
    assert_eq!(acked, 1_000);
    assert!(n <= 5, "{n} commits for 1,000 records");
}

/// STORED acknowledgements with `status` among the DHT's actions.
fn acks(d: &mut Dht, status: u8) -> usize {
    drain(d)
        .iter()
        .filter(|a| {
            matches!(
                a,
                DhtAction::Send { msg: DhtMsg::Stored { status: s, .. }, .. } if *s == status
            )
        })
        .count()
}

fn small_store(k: u32) -> DhtMsg {
    let value = k.to_le_bytes()[..3].to_vec();
    DhtMsg::Store {
        id: k,
        record: Record {
            kind: RecordKind::BLOCK,
            key: *blake3::hash(&value).as_bytes(),
            value,
        },
        expires: u64::MAX,
    }
}

/// Issue 12, finding 4: commits run off the owner task. A store that hands its batch to a
/// background writer gets the outcome back through `Dht::durable`; nothing is acknowledged
/// before that, a durable batch acknowledges its stores (and every batch before it), and a
/// failed one answers "not stored".
#[test]
fn background_commits_acknowledge_only_when_the_driver_reports_them_durable() {
    let (mut d, commits) = batched_relay(true);
    // Two full batches and a partial one, committed when its delay passes.
    for k in 0..600u32 {
        d.handle_rpc(Time::ZERO, WALL, id(1), small_store(k));
    }
    let t = d.poll_timeout().unwrap();
    d.handle_timeout(t, WALL);
    assert_eq!(commits.load(std::sync::atomic::Ordering::Relaxed), 3);
    assert_eq!(
        acks(&mut d, 0),
        0,
        "acknowledged before any batch was durable"
    );
    assert_eq!(d.unacknowledged(), 600);
    // Batch 2 durable: batches 1 and 2 (512 stores) are acknowledged.
    d.durable(2, true);
    assert_eq!(acks(&mut d, 0), 512);
    // Batch 3 failed: its stores are answered "not stored".
    d.durable(3, false);
    assert_eq!(acks(&mut d, 2), 88);
    assert_eq!(d.unacknowledged(), 0);
}

fn block_store(rpc: u32, value: &[u8], expires: WallTime) -> (DhtMsg, [u8; 32]) {
    let key = *blake3::hash(value).as_bytes();
    let msg = DhtMsg::Store {
        id: rpc,
        record: Record {
            kind: RecordKind::BLOCK,
            key,
            value: value.to_vec(),
        },
        expires: expires.0,
    };
    (msg, key)
}

/// Issue 12, finding 4: blocks no live manifest references expire (`06-dht.md#lifetime`).
/// A block lives until the `expires` its STORE asked for (the manifest's expiry), at most 30
/// days past that STORE; a later STORE extends it, an earlier one never shortens it; a time
/// already past is refused; holders republish it with the lifetime it has, never longer; and
/// the republishing round drops it once expired. Blocks never expired before.
#[test]
fn blocks_live_only_as_long_as_the_manifest_they_were_stored_for() {
    let known: Vec<NodeId> = (1..=4).map(id).collect();
    let mut d = relay(&known);
    d.bootstrap(Time::ZERO, &known);
    drain(&mut d);
    let held = |d: &Dht, key: &[u8; 32], at: WallTime| {
        d.store()
            .info(RecordKind::BLOCK, key, at)
            .map(|i| i.expires)
    };
    let day = 86_400;
    // Stored for a manifest that expires in 2 days.
    let (m, a) = block_store(1, b"aaa", WallTime(WALL.0 + 2 * day));
    d.handle_rpc(Time::ZERO, WALL, id(1), m);
    assert_eq!(acks(&mut d, 0), 1);
    assert_eq!(held(&d, &a, WALL), Some(WallTime(WALL.0 + 2 * day)));
    // An earlier expiry does not shorten it; a later one extends it.
    let (m, _) = block_store(2, b"aaa", WallTime(WALL.0 + day));
    d.handle_rpc(Time::ZERO, WALL, id(2), m);
    assert_eq!(held(&d, &a, WALL), Some(WallTime(WALL.0 + 2 * day)));
    let (m, _) = block_store(3, b"aaa", WallTime(WALL.0 + 3 * day));
    d.handle_rpc(Time::ZERO, WALL, id(2), m);
    assert_eq!(held(&d, &a, WALL), Some(WallTime(WALL.0 + 3 * day)));
    // Asking for forever gets 30 days.
    let (m, b) = block_store(4, b"bbb", WallTime(u64::MAX));
    d.handle_rpc(Time::ZERO, WALL, id(1), m);
    let max = umbra::dht::store::MAX_BLOCK_LIFETIME;
    assert_eq!(held(&d, &b, WALL), Some(WallTime(WALL.0 + max)));
    // A time already past is refused as invalid.
    let (m, c) = block_store(5, b"ccc", WALL);
    d.handle_rpc(Time::ZERO, WALL, id(1), m);
    assert_eq!(acks(&mut d, 1), 1);
    assert_eq!(held(&d, &c, WALL), None);
    // Four days on, the round drops `a` and republishes `b` with the time it has left.
    let later = WallTime(WALL.0 + 4 * day);
    let t = Time::ZERO + Duration::from_secs(3600);
    d.handle_timeout(t, later);
    assert_eq!(held(&d, &a, WallTime(0)), None, "an expired block was kept");
    assert_eq!(d.store().count(), 1);
    // The republishing lookup first finds the closest nodes; answer it and see the STOREs.
    let mut sent = Vec::new();
    for _ in 0..10 {
        let out = drain(&mut d);
        if out.is_empty() {
            break;
        }
        for a in out {
            if let DhtAction::Send { to, msg } = a {
                match msg {
                    DhtMsg::FindNode { id: rpc, .. } => d.handle_rpc(
                        t,
                        later,
                        to,
                        DhtMsg::Nodes {
                            id: rpc,
                            nodes: vec![],
                        },
                    ),
                    DhtMsg::Store { expires, .. } => sent.push(expires),
                    _ => {}
                }
            }
        }
    }
    assert!(!sent.is_empty(), "the held block was not republished");
    assert!(sent.iter().all(|e| *e == WALL.0 + max), "{sent:?}");
}

/// `TOUCH` (`06-dht.md#lifetime`): a storer keeps a held block longer when asked (never
/// shorter, at most 30 days from now), answers "not held" for one it does not hold, and a
/// past time is invalid. Publishers use it to skip blocks the network still holds.
#[test]
fn touch_keeps_a_held_block_longer_and_reports_one_not_held() {
    let known: Vec<NodeId> = (1..=4).map(id).collect();
    let mut d = relay(&known);
    let day = 86_400;
    let (m, a) = block_store(1, b"aaa", WallTime(WALL.0 + day));
    d.handle_rpc(Time::ZERO, WALL, id(1), m);
    assert_eq!(acks(&mut d, 0), 1);
    let touch = |rpc, key, expires| DhtMsg::Touch {
        id: rpc,
        key,
        kind: RecordKind::BLOCK,
        expires,
    };
    let held = |d: &Dht| {
        d.store()
            .info(RecordKind::BLOCK, &a, WALL)
            .map(|i| i.expires)
    };
    d.handle_rpc(Time::ZERO, WALL, id(2), touch(2, a, WALL.0 + 5 * day));
    assert_eq!(acks(&mut d, 0), 1);
    assert_eq!(held(&d), Some(WallTime(WALL.0 + 5 * day)));
    d.handle_rpc(Time::ZERO, WALL, id(2), touch(3, a, WALL.0 + 2 * day));
    assert_eq!(acks(&mut d, 0), 1, "a shorter time is still \"kept\"");
    assert_eq!(held(&d), Some(WallTime(WALL.0 + 5 * day)), "never shorter");
    d.handle_rpc(Time::ZERO, WALL, id(2), touch(4, a, u64::MAX));
    assert_eq!(acks(&mut d, 0), 1);
    let max = umbra::dht::store::MAX_BLOCK_LIFETIME;
    assert_eq!(held(&d), Some(WallTime(WALL.0 + max)));
    d.handle_rpc(Time::ZERO, WALL, id(3), touch(5, [0x42; 32], WALL.0 + day));
    assert_eq!(acks(&mut d, 4), 1, "a block not held is reported so");
    d.handle_rpc(Time::ZERO, WALL, id(3), touch(6, a, WALL.0));
    assert_eq!(acks(&mut d, 1), 1, "a past time is invalid");
}

/// A relay whose renewed descriptor moved it to another network leaves the routing table
/// (its old network no longer counts against the per-network caps) until it is seen again.
#[test]
fn a_relay_that_moved_networks_leaves_the_table() {
    let known: Vec<NodeId> = (1..=4).map(id).collect();
    let mut d = relay(&known);
    d.bootstrap(Time::ZERO, &known);
    drain(&mut d);
    assert!(d.table().contains(&known[0]));
    d.add_known(known[0], [4, known[0].0[0], known[0].0[1], 0]);
    assert!(d.table().contains(&known[0]), "same network: stays");
    d.add_known(known[0], [9, 9, 0, 0]);
    assert!(!d.table().contains(&known[0]), "moved: leaves the table");
    assert!(d.table().contains(&known[1]));
}
