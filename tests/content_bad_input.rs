//! Bad content input (`protocol-spec/07-sites.md#limits`, `06-dht.md#store`): malformed and
//! oversized manifests, forged records, junk answers and wrong blocks are each refused with a
//! typed error, and the reader keeps going through honest sources.

use umbra::app::fetch::TransferError;
use umbra::app::site_files::Fetcher;
use umbra::crypto::keys::{IdentityKey, NodeId};
use umbra::dht::store::MemoryStore;
use umbra::dht::{Dht, DhtAction, DhtConfig};
use umbra::node::SiteValidator;
use umbra::site::address::SiteAddress;
use umbra::site::manifest::{Entry, MAX_ENTRIES, MAX_MANIFEST, Manifest, parse};
use umbra::site::{SiteError, SiteTracker, build};
use umbra::time::{Time, WallTime};
use umbra::wire::dht_msg::{DhtMsg, ExitReply, ExitRequest, Record, RecordKind, StreamFramer};

const NOW: WallTime = WallTime(1_800_000_100);

fn key() -> IdentityKey {
    IdentityKey::from_secret_bytes([4; 32])
}

#[test]
fn oversized_and_malformed_manifests_are_typed_errors() {
    let k = key();
    let too_many = Manifest {
        site: k.public(),
        seq: 1,
        published: WallTime(1_800_000_000),
        expires: WallTime(1_900_000_000),
        entries: (0..=MAX_ENTRIES)
            .map(|i| Entry {
                path: format!("f{i:06}"),
                size: 0,
                hash: [0; 32],
                media_type: "text/plain".into(),
                blocks: vec![],
            })
            .collect(),
    };
    assert_eq!(too_many.sign(&k), Err(SiteError::TooLarge));
    assert_eq!(
        parse(&vec![1u8; MAX_MANIFEST + 1]).unwrap_err(),
        SiteError::TooLarge
    );
    let good = build(
        &k,
        &[("a.txt".into(), b"x".to_vec())],
        1,
        WallTime(1_800_000_000),
        86_400,
    )
    .unwrap()
    .manifest;
    for cut in [0, 1, 40, good.len() - 1] {
        assert!(
            matches!(parse(&good[..cut]), Err(SiteError::Decode(_))),
            "cut at {cut}"
        );
    }
    assert_eq!(parse(&[9; 200]).unwrap_err(), SiteError::Version(9));
    // A block list that lies about the file size.
    let mut lie = build(
        &k,
        &[("a.txt".into(), vec![1; 40_000])],
        1,
        WallTime(1_800_000_000),
        86_400,
    )
    .unwrap()
    .parsed;
    lie.entries[0].blocks.pop();
    assert_eq!(lie.sign(&k), Err(SiteError::BlockCount));
}

/// A DHT node whose directory lists relays 1 to 9 (only they take part,
/// `06-dht.md#who-takes-part`).
fn dht(me: u8) -> Dht {
    let mut d = Dht::new(
        NodeId([me; 32]),
        DhtConfig::default(),
        Box::new(MemoryStore::new(1 << 20)),
        Box::new(SiteValidator),
        Time::ZERO,
    );
    d.set_known((1..=9u8).map(|b| (NodeId([b; 32]), [4, b, 0, 0])).collect());
    d
}

fn stored_status(d: &mut Dht) -> u8 {
    match d.poll_action() {
        Some(DhtAction::Send {
            msg: DhtMsg::Stored { status, .. },
            ..
        }) => status,
        other => panic!("expected STORED, got {other:?}"),
    }
}

#[test]
fn forged_records_are_refused_by_storers() {
    let mut d = dht(1);
    let from = NodeId([2; 32]);
    // A block under someone else's hash.
    let forged_block = Record {
        kind: RecordKind::BLOCK,
        key: [7; 32],
        value: b"not the preimage".to_vec(),
    };
    d.handle_rpc(
        Time::ZERO,
        NOW,
        from,
        DhtMsg::Store {
            id: 1,
            record: forged_block,
            expires: u64::MAX,
        },
    );
    assert_eq!(stored_status(&mut d), 1);
    // A manifest signed by another key, stored under the victim's site key.
    let victim = SiteAddress(IdentityKey::from_secret_bytes([5; 32]).public());
    let mallory = build(
        &key(),
        &[("index.html".into(), b"evil".to_vec())],
        9,
        WallTime(1_800_000_000),
        86_400,
    )
    .unwrap();
    let forged = Record {
        kind: RecordKind::MANIFEST,
        key: victim.dht_key(),
        value: mallory.manifest.clone(),
    };
    d.handle_rpc(
        Time::ZERO,
        NOW,
        from,
        DhtMsg::Store {
            id: 2,
            record: forged,
            expires: u64::MAX,
        },
    );
    assert_eq!(stored_status(&mut d), 1);
    // The same manifest under its own key is fine; an older one after it is refused.
    let own = Record {
        kind: RecordKind::MANIFEST,
        key: mallory.parsed.address().dht_key(),
        value: mallory.manifest,
    };
    d.handle_rpc(
        Time::ZERO,
        NOW,
        from,
        DhtMsg::Store {
            id: 3,
            record: own,
            expires: u64::MAX,
        },
    );
    assert_eq!(stored_status(&mut d), 0);
    let older = build(
        &key(),
        &[("index.html".into(), b"old".to_vec())],
        3,
        WallTime(1_800_000_000),
        86_400,
    )
    .unwrap();
    d.handle_rpc(
        Time::ZERO,
        NOW,
        from,
        DhtMsg::Store {
            id: 4,
            record: Record {
                kind: RecordKind::MANIFEST,
                key: older.parsed.address().dht_key(),
                value: older.manifest,
            },
            expires: u64::MAX,
        },
    );
    assert_eq!(stored_status(&mut d), 3, "rollback refused");
    assert_eq!(d.stats().invalid_records, 2);
}

/// Issue 14 item 5: a storer keeps a second manifest with a held sequence as proof
/// (`06-dht.md#store`), refuses it (status 3), and keeps serving the first.
#[test]
fn a_storer_keeps_a_second_manifest_with_one_sequence_as_proof() {
    let mut d = dht(1);
    let from = NodeId([2; 32]);
    let version = |content: &[u8]| {
        build(
            &key(),
            &[("index.html".into(), content.to_vec())],
            9,
            WallTime(1_800_000_000),
            86_400,
        )
        .unwrap()
    };
    let (first, second) = (version(b"one"), version(b"two"));
    let site = first.parsed.address();
    for (id, m) in [(1, &first), (2, &second), (3, &second)] {
        d.handle_rpc(
            Time::ZERO,
            NOW,
            from,
            DhtMsg::Store {
                id,
                record: Record {
                    kind: RecordKind::MANIFEST,
                    key: site.dht_key(),
                    value: m.manifest.clone(),
                },
                expires: u64::MAX,
            },
        );
        assert_eq!(stored_status(&mut d), if id == 1 { 0 } else { 3 });
    }
    let proofs = d.store().proofs();
    assert_eq!(proofs.len(), 1, "kept once, however often it is offered");
    assert_eq!(proofs[0].first, first.manifest);
    assert_eq!(proofs[0].second, second.manifest);
    assert_eq!(d.stats().proofs_kept, 1);
    // The proof checks out: two manifests, one key, one sequence.
    let e = umbra::site::Equivocation::check(&proofs[0]).unwrap();
    assert_eq!((e.site, e.seq), (site, 9));
    // The first stays the one served.
    let held = d
        .store_mut()
        .get(RecordKind::MANIFEST, &site.dht_key(), NOW)
        .unwrap();
    assert_eq!(held.value, first.manifest);
}

#[test]
fn answers_to_requests_never_sent_are_ignored() {
    let mut d = dht(1);
    d.handle_rpc(
        Time::ZERO,
        NOW,
        NodeId([3; 32]),
        DhtMsg::Nodes {
            id: 77,
            nodes: vec![[9; 32]],
        },
    );
    d.handle_rpc(
        Time::ZERO,
        NOW,
        NodeId([3; 32]),
        DhtMsg::Value {
            id: 78,
            record: Record {
                kind: RecordKind::BLOCK,
                key: [1; 32],
                value: vec![],
            },
        },
    );
    assert!(d.poll_action().is_none());
    // Answers nobody asked for admit nobody: neither the sender nor the id it named.
    assert!(!d.table().contains(&NodeId([3; 32])));
    assert!(!d.table().contains(&NodeId([9; 32])));
}

/// Feed a fetcher one reply; returns its next requests.
fn reply(f: &mut Fetcher, t: &mut SiteTracker, r: ExitReply) -> Vec<ExitRequest> {
    f.on_data(&StreamFramer::frame(&r.encode()), t);
    let mut framer = StreamFramer::default();
    framer.push(&f.poll_send());
    let mut out = Vec::new();
    while let Ok(Some(m)) = framer.next_message() {
        out.push(ExitRequest::decode(&m).unwrap());
    }
    out
}

#[test]
fn wrong_blocks_are_refetched_and_never_handed_out() {
    let k = key();
    let built = build(
        &k,
        &[("a.bin".into(), vec![3; 1000])],
        1,
        WallTime(1_800_000_000),
        86_400,
    )
    .unwrap();
    let site = built.parsed.address();
    let mut t = SiteTracker::new();
    let mut f = Fetcher::new(site, None, NOW);
    let _ = f.poll_send();
    let manifest = Record {
        kind: RecordKind::MANIFEST,
        key: site.dht_key(),
        value: built.manifest.clone(),
    };
    let reqs = reply(
        &mut f,
        &mut t,
        ExitReply::Found {
            id: 1,
            record: manifest,
        },
    );
    let [ExitRequest::Get { id, key, .. }] = reqs[..] else {
        panic!("{reqs:?}")
    };
    // The exit (or a holder behind it) returns a wrong block three times: refetched each time.
    let mut id = id;
    for _ in 0..3 {
        let bad = Record {
            kind: RecordKind::BLOCK,
            key,
            value: vec![9; 1000],
        };
        let reqs = reply(&mut f, &mut t, ExitReply::Found { id, record: bad });
        assert!(f.result().is_none(), "a wrong block was accepted");
        let [
            ExitRequest::Get {
                id: next, key: k2, ..
            },
        ] = reqs[..]
        else {
            panic!("{reqs:?}")
        };
        assert_eq!(k2, key);
        id = next;
    }
    // The fourth answer is the real block: the file is complete and verified.
    let good = Record {
        kind: RecordKind::BLOCK,
        key,
        value: built.blocks[&key].clone(),
    };
    reply(&mut f, &mut t, ExitReply::Found { id, record: good });
    let files = f.take_result().expect("finished").expect("verified");
    assert_eq!(
        f.contents(&files),
        Ok(vec![("a.bin".to_string(), vec![3; 1000])])
    );

    // A block that never comes right: a typed error after the last attempt, no files.
    let mut f = Fetcher::new(site, None, NOW);
    let _ = f.poll_send();
    let manifest = Record {
        kind: RecordKind::MANIFEST,
        key: site.dht_key(),
        value: built.manifest,
    };
    let mut reqs = reply(
        &mut f,
        &mut t,
        ExitReply::Found {
            id: 1,
            record: manifest,
        },
    );
    while let [ExitRequest::Get { id, key, .. }] = reqs[..] {
        reqs = reply(
            &mut f,
            &mut t,
            ExitReply::Found {
                id,
                record: Record {
                    kind: RecordKind::BLOCK,
                    key,
                    value: vec![0; 10],
                },
            },
        );
    }
    assert!(matches!(f.result(), Some(Err(TransferError::Block(_)))));
}

#[test]
fn a_manifest_for_another_site_is_refused_by_the_reader() {
    let built = build(
        &key(),
        &[("a".into(), vec![1])],
        1,
        WallTime(1_800_000_000),
        86_400,
    )
    .unwrap();
    let victim = SiteAddress(IdentityKey::from_secret_bytes([8; 32]).public());
    let mut f = Fetcher::new(victim, None, NOW);
    let _ = f.poll_send();
    let mut t = SiteTracker::new();
    // The policy (`08-gateway.md#fetching`): a forged answer is asked again on the same
    // stream (another lookup may reach honest storers), at most 4 times, then reported.
    let mut id = 1;
    for attempt in 1..=umbra::app::fetch::MAX_ATTEMPTS {
        let next = reply(
            &mut f,
            &mut t,
            ExitReply::Found {
                id,
                record: Record {
                    kind: RecordKind::MANIFEST,
                    key: victim.dht_key(),
                    value: built.manifest.clone(),
                },
            },
        );
        if attempt < umbra::app::fetch::MAX_ATTEMPTS {
            let [
                ExitRequest::Get {
                    id: again, kind, ..
                },
            ] = next[..]
            else {
                panic!("attempt {attempt}: not asked again: {next:?}")
            };
            assert_eq!(kind, RecordKind::MANIFEST);
            assert!(
                f.result().is_none(),
                "given up after {attempt} forged answers"
            );
            id = again;
        }
    }
    assert_eq!(
        f.take_result(),
        Some(Err(TransferError::Manifest(SiteError::WrongKey)))
    );
}
