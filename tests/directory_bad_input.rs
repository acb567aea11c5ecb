//! Bad descriptors from the network (`protocol-spec/10-directory.md#admission`): forged,
//! expired, replayed (older), oversized, and a flood from one /16 each get a typed refusal
//! and change nothing else; reconciliation sends only the buckets that differ.

use std::collections::BTreeSet;
use std::time::Duration;

use umbra::crypto::keys::{IdentityKey, LinkKeypair, NodeId};
use umbra::crypto::rng::UmbraRng;
use umbra::directory::sync::{DirectorySync, SyncConfig, summary};
use umbra::directory::{Admission, Descriptor, Directory, DirectoryError, Roles, parse};
use umbra::time::{Time, WallTime};
use umbra::wire::dir_msg::{DirMsg, MAX_DESCRIPTOR};

const NOW: WallTime = WallTime(1_800_000_000);

fn descriptor(rng: &mut UmbraRng, ip: &str, published: u64) -> (IdentityKey, Descriptor) {
    let key = IdentityKey::generate(rng);
    let d = Descriptor {
        identity: key.public(),
        addr: format!("{ip}:4000").parse().unwrap(),
        link_key: LinkKeypair::generate(rng).public(),
        onion_key: LinkKeypair::generate(rng).public(),
        bandwidth: 100,
        family: [0; 32],
        family_cert: None,
        roles: Roles::ALL,
        published: WallTime(published),
        expires: WallTime(published + 86_400),
    };
    (key, d)
}

fn signed(rng: &mut UmbraRng, ip: &str) -> (NodeId, Vec<u8>) {
    let (k, d) = descriptor(rng, ip, NOW.0 - 10);
    (d.node_id(), d.sign(&k).unwrap())
}

fn relay_sync() -> DirectorySync {
    DirectorySync::new(SyncConfig::default(), true, Directory::new(), Time::ZERO)
}

fn sender() -> NodeId {
    NodeId([9; 32])
}

#[test]
fn forged_expired_replayed_and_oversized_descriptors_change_nothing() {
    let mut rng = UmbraRng::from_u64(5);
    let mut s = relay_sync();
    let (k, d) = descriptor(&mut rng, "10.1.0.1", NOW.0 - 100);
    let good = d.sign(&k).unwrap();
    s.on_push(Time::ZERO, NOW, sender(), std::slice::from_ref(&good));
    assert_eq!(s.directory().len(), 1);
    let before = summary(s.directory());

    // Forged: one byte of a new relay's address changed after signing. (The same change to
    // the held relay's descriptor is not even checked: it is not newer.)
    let (kf, df) = descriptor(&mut rng, "10.4.0.1", NOW.0 - 10);
    let mut forged = df.sign(&kf).unwrap();
    forged[40] ^= 1;
    // Expired: valid signature, past its expiry.
    let (k2, mut old) = descriptor(&mut rng, "10.2.0.1", NOW.0 - 200_000);
    old.expires = WallTime(NOW.0 - 1);
    let expired = old.sign(&k2).unwrap();
    // A signature that is not the named identity's.
    let (k3, d3) = descriptor(&mut rng, "10.3.0.1", NOW.0 - 10);
    let mut wrong_signer = d3.sign(&k3).unwrap();
    let n = wrong_signer.len();
    wrong_signer[n - 1] ^= 0xff;
    // Replayed: the same relay's older descriptor after a newer one.
    let mut older = d.clone();
    older.published = WallTime(NOW.0 - 5_000);
    let replayed = older.sign(&k).unwrap();
    // Truncated.
    let truncated = good[..good.len() - 3].to_vec();
    // A relay naming an honest operator's family without its key (to fill the family's cap
    // or to be taken for one of its relays): the certificate is its own.
    let honest_family = IdentityKey::generate(&mut rng);
    let (k5, mut d5) = descriptor(&mut rng, "10.5.0.1", NOW.0 - 10);
    d5.family = honest_family.public().to_bytes();
    d5.family_cert = Some(umbra::directory::family_cert(&k5, &k5.public()));
    let stolen_family = d5.sign(&k5).unwrap();
    assert_eq!(
        parse(&stolen_family).unwrap().verify(NOW),
        Err(DirectoryError::BadFamily)
    );
    s.on_push(
        Time::ZERO,
        NOW,
        sender(),
        &[
            forged,
            expired,
            wrong_signer,
            replayed,
            truncated,
            stolen_family,
        ],
    );
    assert_eq!(s.directory().len(), 1);
    assert_eq!(summary(s.directory()), before, "nothing changed");
    let st = s.stats();
    assert_eq!(st.refused_bad, 5, "{st:?}");
    assert_eq!(st.admitted, 1);

    // The typed errors behind them.
    let mut bad = good.clone();
    bad[40] ^= 1;
    assert_eq!(
        parse(&bad).unwrap().verify(NOW),
        Err(DirectoryError::BadSignature)
    );
    assert!(matches!(
        parse(&old.sign(&k2).unwrap()).unwrap().verify(NOW),
        Err(DirectoryError::NotValidNow { .. })
    ));
    // Oversized descriptors never leave or enter a message.
    let huge = DirMsg::Push {
        descriptors: vec![vec![0; MAX_DESCRIPTOR + 1]],
    };
    assert!(huge.encode().is_err());
    let mut raw = vec![1u8, 0, 1];
    raw.extend_from_slice(&((MAX_DESCRIPTOR + 1) as u16).to_be_bytes());
    raw.extend(std::iter::repeat_n(0, MAX_DESCRIPTOR + 1));
    assert!(DirMsg::decode(&raw).is_err());
}

/// 200 Sybil descriptors from one /16 fill its 8 places and no more; 191 are refused
/// before any signature check; relays from other networks are still admitted; relays
/// already held keep their places.
#[test]
fn a_flood_from_one_network_fills_its_cap_and_nothing_else() {
    let mut rng = UmbraRng::from_u64(6);
    let mut s = relay_sync();
    let (honest_id, honest) = signed(&mut rng, "10.200.0.1");
    s.on_push(Time::ZERO, NOW, sender(), &[honest]);
    for round in 0..25 {
        let batch: Vec<Vec<u8>> = (0..8)
            .map(|i| signed(&mut rng, &format!("10.66.{}.{}", round, i + 1)).1)
            .collect();
        s.on_push(Time::ZERO, NOW, sender(), &batch);
    }
    let cap = Admission::default().per_subnet;
    assert_eq!(s.directory().len(), 1 + cap);
    assert_eq!(s.stats().refused_caps, 200 - cap as u64);
    assert!(s.directory().get(&honest_id).is_some());
    let (other, d) = signed(&mut rng, "10.201.0.1");
    s.on_push(Time::ZERO, NOW, sender(), &[d]);
    assert!(s.directory().get(&other).is_some());

    // The same caps when admitting directly, with the typed error.
    let mut dir = Directory::new();
    let caps = Admission {
        per_subnet: 1,
        ..Admission::default()
    };
    let (ka, mut da) = descriptor(&mut rng, "10.9.0.1", NOW.0 - 10);
    let (_, b) = signed(&mut rng, "10.9.0.2");
    let (_, c) = signed(&mut rng, "10.8.0.1");
    let v = |w: &[u8]| parse(w).unwrap().verify(NOW).unwrap();
    assert_eq!(dir.admit(v(&da.sign(&ka).unwrap()), NOW, &caps), Ok(true));
    assert_eq!(
        dir.admit(v(&b), NOW, &caps),
        Err(DirectoryError::SubnetFull { cap: 1 })
    );
    assert_eq!(dir.admit(v(&c), NOW, &caps), Ok(true));
    // A relay renewing in its own full network does not count against itself.
    da.published = WallTime(NOW.0 - 5);
    assert_eq!(dir.admit(v(&da.sign(&ka).unwrap()), NOW, &caps), Ok(true));
    // Moving into a full network is refused, and its old descriptor stays.
    da.published = WallTime(NOW.0 - 4);
    da.addr = "10.8.0.9:4000".parse().unwrap();
    assert_eq!(
        dir.admit(v(&da.sign(&ka).unwrap()), NOW, &caps),
        Err(DirectoryError::SubnetFull { cap: 1 })
    );
    let held = dir.get(&da.node_id()).unwrap();
    assert_eq!(
        (held.addr.to_string(), held.published),
        ("10.9.0.1:4000".to_string(), WallTime(NOW.0 - 5))
    );
    assert_eq!(dir.len(), 2);
}

/// A SYNC answer carries only the buckets that differ; an answer nobody asked for is
/// ignored.
#[test]
fn reconciliation_sends_the_buckets_that_differ_and_unasked_answers_are_ignored() {
    let mut rng = UmbraRng::from_u64(7);
    let mut full = relay_sync();
    let all: Vec<(NodeId, Vec<u8>)> = (0..120)
        .map(|i| signed(&mut rng, &format!("10.{}.0.1", i + 1)))
        .collect();
    for chunk in all.chunks(16) {
        let wires: Vec<Vec<u8>> = chunk.iter().map(|(_, w)| w.clone()).collect();
        full.on_push(Time::ZERO, NOW, sender(), &wires);
    }
    assert_eq!(full.directory().len(), 120);
    // A node missing one relay gets back only that relay's bucket.
    let missing = all[17].0;
    let partial = full.directory().only(|id| *id != missing);
    let answer = full.on_sync(3, &summary(&partial));
    let DirMsg::Entries {
        id,
        more,
        descriptors,
    } = &answer[0]
    else {
        panic!("not entries")
    };
    assert_eq!((*id, *more, answer.len()), (3, false, 1));
    let bucket = umbra::directory::sync::bucket(&missing);
    let same_bucket = all
        .iter()
        .filter(|(n, _)| umbra::directory::sync::bucket(n) == bucket)
        .count();
    assert_eq!(descriptors.len(), same_bucket);
    assert!(descriptors.len() < 10, "one bucket, not the directory");
    // Equal summaries: an empty answer.
    let same = full.on_sync(4, &summary(full.directory()).clone());
    assert!(matches!(&same[0], DirMsg::Entries { descriptors, .. } if descriptors.is_empty()));

    // A reader that never sent SYNC 99 takes nothing from an answer to it.
    let mut reader = DirectorySync::new(SyncConfig::default(), false, partial.clone(), Time::ZERO);
    reader.on_entries(Time::ZERO, NOW, sender(), 99, false, descriptors);
    assert!(reader.directory().get(&missing).is_none());
    // Once it asks (its first round is due at once), the answer fills the gap.
    let guard = partial.relays().next().unwrap().node_id();
    let sends = reader.handle_timeout(Time::ZERO, NOW, &mut rng, Some(guard), &BTreeSet::new());
    let Some(DirMsg::Sync { id, digests }) = sends.iter().map(|s| &s.msg).next() else {
        panic!("no SYNC: {sends:?}")
    };
    assert_eq!(sends[0].to, guard);
    let answer = full.on_sync(*id, digests);
    for a in &answer {
        if let DirMsg::Entries {
            id,
            more,
            descriptors,
        } = a
        {
            reader.on_entries(
                Time::ZERO + Duration::from_millis(5),
                NOW,
                guard,
                *id,
                *more,
                descriptors,
            );
        }
    }
    assert_eq!(reader.directory().len(), 120);
    assert_eq!(reader.stats().syncs_done, 1);
}
