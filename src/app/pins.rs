//! Where a node keeps its pins (`protocol-spec/07-sites.md#pinning`): the list, and the
//! pinned copies, in a record store — a reader's cache file, or a relay's DHT store, where
//! the pinned records are also served to the network and republished.
//!
//! - The **list** is the store's state `pins` ([`encode_list`]): per pin, the site, when it
//!   was pinned, and what the last check found.
//! - Each pinned **copy** is the signed manifest, kept in the state `pin/<address>` (so
//!   a newer manifest stored by the network does not make the node lose track of which
//!   blocks it pinned), and its blocks as records pinned in the store: never evicted for
//!   room, never expired while pinned. A new version pins its blocks and releases the old
//!   version's blocks that it no longer lists; unpinning releases them all. Released records
//!   are evicted by use again and kept at most a block's lifetime.
//!
//! Not in this module: when pins are checked and the fetching itself ([`super::pinner`],
//! [`super::keep`]).

use std::collections::BTreeSet;

use super::keep::Copy;
use crate::crypto::hash;
use crate::crypto::keys::IdentityPublic;
use crate::dht::store::{MAX_BLOCK_LIFETIME, RecordInfo, RecordStore, StoreError};
use crate::site::address::SiteAddress;
use crate::site::manifest;
use crate::time::WallTime;
use crate::wire::dht_msg::{Record, RecordKind};
use crate::wire::{DecodeError, Reader, Writer};

/// Most pins a node keeps.
pub const MAX_PINS: usize = 1024;
/// Longest error text kept for a pin.
const MAX_ERROR: usize = 256;
/// Version of the `pins` state encoding.
const LIST_VERSION: u8 = 1;
/// The store state holding the list.
const LIST_STATE: &str = "pins";

/// One pinned site and what its last check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The site.
    pub site: SiteAddress,
    /// When it was pinned.
    pub added: WallTime,
    /// When a check last succeeded.
    pub checked: Option<WallTime>,
    /// The version held (none before the first check succeeded).
    pub seq: Option<u64>,
    /// Blocks of the copy held.
    pub blocks: u32,
    /// Bytes of those blocks.
    pub bytes: u64,
    /// Fewest storers any record of the site reached at the last check.
    pub copies: u8,
    /// Why the last check failed (cleared by a check that succeeds).
    pub error: Option<String>,
}

impl Pin {
    /// A pin of `site` made at `now`, not checked yet.
    pub fn new(site: SiteAddress, now: WallTime) -> Pin {
        Pin {
            site,
            added: now,
            checked: None,
            seq: None,
            blocks: 0,
            bytes: 0,
            copies: 0,
            error: None,
        }
    }
}

impl Pin {
    /// The pin as JSON (`/api/pins`, the vectors): times in Unix seconds, `null` for none.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "address": self.site.encode(),
            "added": self.added.0,
            "checked": self.checked.map(|t| t.0),
            "seq": self.seq,
            "blocks": self.blocks,
            "bytes": self.bytes,
            "copies": self.copies,
            "error": self.error,
        })
    }
}

/// Why a pins list or a pinned copy could not be read or kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// The `pins` state does not decode.
    #[error("the pins list is malformed: {0}")]
    Malformed(#[from] DecodeError),
    /// The `pins` state is of a version this node does not know.
    #[error("the pins list has version {0}, this node reads version 1")]
    Version(u8),
    /// A pinned site's key is not a valid public key.
    #[error("the pins list holds an invalid site key")]
    BadKey,
    /// More pins than [`MAX_PINS`].
    #[error("at most {MAX_PINS} sites may be pinned")]
    TooMany,
    /// The copy's manifest is not a valid manifest of the site.
    #[error("the copy is not a valid manifest of the site: {0}")]
    BadCopy(String),
    /// The store refused or failed to write.
    #[error("the store could not keep the pin: {0}")]
    Store(#[from] StoreError),
}

impl crate::error::HasKind for PinError {
    fn kind(&self) -> crate::error::ErrorKind {
        match self {
            PinError::TooMany => crate::error::ErrorKind::ResourceLimit,
            PinError::Store(e) => e.kind(),
            _ => crate::error::ErrorKind::MalformedInput,
        }
    }
}

/// The `pins` state's bytes for `pins`.
pub fn encode_list(pins: &[Pin]) -> Vec<u8> {
    let mut w = Writer::with_capacity(16 + pins.len() * 96);
    w.u8(LIST_VERSION).u16(pins.len().min(MAX_PINS) as u16);
    for p in pins.iter().take(MAX_PINS) {
        let err = p.error.as_deref().unwrap_or("");
        let err = &err.as_bytes()[..floor_char(err, MAX_ERROR)];
        w.bytes(&p.site.0.to_bytes())
            .u64(p.added.0)
            .u64(p.checked.map_or(0, |t| t.0))
            .u64(p.seq.map_or(0, |s| s.saturating_add(1)))
            .u32(p.blocks)
            .u64(p.bytes)
            .u8(p.copies);
        // Cut to MAX_ERROR above, so it always fits.
        let _ = w.u16_prefixed("error", err, MAX_ERROR);
    }
    w.into_vec()
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn floor_char(s: &str, max: usize) -> usize {
    (0..=max.min(s.len()))
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0)
}

/// Read a `pins` state back; any flaw is a typed error.
pub fn decode_list(bytes: &[u8]) -> Result<Vec<Pin>, PinError> {
    let mut r = Reader::new(bytes);
    let version = r.u8()?;
    if version != LIST_VERSION {
        return Err(PinError::Version(version));
    }
    let n = usize::from(r.u16()?);
    if n > MAX_PINS {
        return Err(PinError::TooMany);
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let key = IdentityPublic::from_bytes(&r.array()?).map_err(|_| PinError::BadKey)?;
        let added = WallTime(r.u64()?);
        let checked = Some(WallTime(r.u64()?)).filter(|t| t.0 != 0);
        let seq = r.u64()?.checked_sub(1);
        let blocks = r.u32()?;
        let bytes = r.u64()?;
        let copies = r.u8()?;
        let err = r.u16_prefixed("error", MAX_ERROR)?;
        let error = Some(String::from_utf8_lossy(err).into_owned()).filter(|e| !e.is_empty());
        out.push(Pin {
            site: SiteAddress(key),
            added,
            checked,
            seq,
            blocks,
            bytes,
            copies,
            error,
        });
    }
    r.finish()?;
    Ok(out)
}

/// The pins kept in `store` (none if it holds no list).
pub fn load_list(store: &dyn RecordStore) -> Result<Vec<Pin>, PinError> {
    match store.get_state(LIST_STATE) {
        Some(b) if !b.is_empty() => decode_list(&b),
        _ => Ok(Vec::new()),
    }
}

/// Keep `pins` as the list in `store`, durably.
pub fn save_list(store: &mut dyn RecordStore, pins: &[Pin]) -> Result<(), PinError> {
    if pins.len() > MAX_PINS {
        return Err(PinError::TooMany);
    }
    Ok(store.put_state(LIST_STATE, &encode_list(pins))?)
}

fn copy_state(site: &SiteAddress) -> String {
    format!("pin/{}", site.encode())
}

/// The pinned copy of `site` held in `store`: its manifest and every block it lists. `None`
/// if there is none, or if a block is missing (the next check fetches what is missing).
pub fn load_copy(store: &mut dyn RecordStore, site: &SiteAddress, now: WallTime) -> Option<Copy> {
    let bytes = store
        .get_state(&copy_state(site))
        .filter(|b| !b.is_empty())?;
    let u = manifest::parse(&bytes).ok()?;
    let seq = u.claimed_seq();
    let mut blocks = std::collections::BTreeMap::new();
    for h in u.claimed_blocks() {
        let r = store.get(RecordKind::BLOCK, &h, now)?;
        blocks.insert(h, r.value);
    }
    Some(Copy {
        seq,
        manifest: bytes,
        blocks,
    })
}

/// The blocks a kept manifest lists (none if there is none).
fn pinned_blocks(store: &dyn RecordStore, site: &SiteAddress) -> BTreeSet<[u8; 32]> {
    store
        .get_state(&copy_state(site))
        .and_then(|b| manifest::parse(&b).ok())
        .map(|u| u.claimed_blocks().into_iter().collect())
        .unwrap_or_default()
}

/// Keep `copy` of `site` pinned in `store`: its manifest (as the pin's own, and as a pinned
/// record while no newer one is held), every block pinned, and the blocks of the version
/// held before that this one no longer lists released. The caller commits.
pub fn save_copy(
    store: &mut dyn RecordStore,
    site: &SiteAddress,
    copy: &Copy,
    now: WallTime,
) -> Result<(), PinError> {
    let v = manifest::parse(&copy.manifest)
        .and_then(|u| u.verify_signature(site))
        .map_err(|e| PinError::BadCopy(e.to_string()))?;
    let m = v.manifest();
    let listed: BTreeSet<[u8; 32]> = m.entries.iter().flat_map(|e| e.blocks.clone()).collect();
    if listed.iter().any(|h| !copy.blocks.contains_key(h)) {
        return Err(PinError::BadCopy("a block it lists is missing".into()));
    }
    let before = pinned_blocks(store, site);
    for h in &listed {
        let record = Record {
            kind: RecordKind::BLOCK,
            key: *h,
            value: copy.blocks.get(h).cloned().unwrap_or_default(),
        };
        let info = RecordInfo {
            expires: WallTime(u64::MAX),
            seq: 0,
            digest: *h,
        };
        store.put(&record, info, true)?;
    }
    let record = Record {
        kind: RecordKind::MANIFEST,
        key: site.dht_key(),
        value: copy.manifest.clone(),
    };
    let info = RecordInfo {
        expires: m.expires,
        seq: m.seq,
        digest: hash::hash(&copy.manifest),
    };
    match store.put(&record, info, true) {
        // A newer version came into the store meanwhile: the next check pins it.
        Ok(_) | Err(StoreError::Older | StoreError::Equivocation) => {}
        Err(e) => return Err(e.into()),
    }
    store.put_state(&copy_state(site), &copy.manifest)?;
    release(store, before.difference(&listed), now);
    Ok(())
}

/// Release every record of `site`'s pinned copy and forget the copy. The caller commits.
pub fn drop_copy(
    store: &mut dyn RecordStore,
    site: &SiteAddress,
    now: WallTime,
) -> Result<(), PinError> {
    let blocks = pinned_blocks(store, site);
    release(store, blocks.iter(), now);
    store.unpin(RecordKind::MANIFEST, &site.dht_key(), WallTime(u64::MAX));
    store.put_state(&copy_state(site), &[])?;
    Ok(())
}

/// Release pinned blocks: evicted by use again, kept at most a block's lifetime.
fn release<'a>(
    store: &mut dyn RecordStore,
    blocks: impl Iterator<Item = &'a [u8; 32]>,
    now: WallTime,
) {
    let until = WallTime(now.0.saturating_add(MAX_BLOCK_LIFETIME));
    for h in blocks {
        store.unpin(RecordKind::BLOCK, h, until);
    }
}

#[cfg(test)]
mod tests {
    use super::{
        MAX_PINS, Pin, PinError, decode_list, drop_copy, encode_list, load_copy, save_copy,
    };
    use crate::crypto::keys::IdentityKey;
    use crate::crypto::rng::UmbraRng;
    use crate::dht::store::{MemoryStore, RecordInfo, RecordStore};
    use crate::site::address::SiteAddress;
    use crate::site::{NO_EXPIRY, build};
    use crate::time::WallTime;
    use crate::wire::dht_msg::{Record, RecordKind};

    fn key(seed: u64) -> IdentityKey {
        IdentityKey::generate(&mut UmbraRng::from_u64(seed))
    }

    fn site(files: &[(&str, Vec<u8>)], seq: u64) -> (SiteAddress, super::Copy) {
        let key = key(7);
        let files: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|(p, d)| ((*p).to_string(), d.clone()))
            .collect();
        let b = build(&key, &files, seq, WallTime(1000), NO_EXPIRY).unwrap();
        let addr = SiteAddress(key.public());
        let copy = super::Copy {
            seq,
            manifest: b.manifest,
            blocks: b.blocks,
        };
        (addr, copy)
    }

    #[test]
    fn the_list_round_trips_and_bad_bytes_get_typed_errors() {
        let mut rng = UmbraRng::from_u64(3);
        let mut pins: Vec<Pin> = (0..3)
            .map(|_| {
                Pin::new(
                    SiteAddress(IdentityKey::generate(&mut rng).public()),
                    WallTime(5),
                )
            })
            .collect();
        pins[1].seq = Some(0);
        pins[1].checked = Some(WallTime(9));
        pins[2].error = Some("é".repeat(200));
        let bytes = encode_list(&pins);
        let back = decode_list(&bytes).unwrap();
        assert_eq!(back[..2], pins[..2]);
        // The error text is cut on a character boundary.
        assert_eq!(back[2].error.as_ref().unwrap().len(), 256);
        assert!(matches!(
            decode_list(&bytes[..bytes.len() - 1]),
            Err(PinError::Malformed(_))
        ));
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(decode_list(&v2), Err(PinError::Version(2)));
        assert_eq!(decode_list(&[1, 0xff, 0xff]), Err(PinError::TooMany));
        let mut extra = bytes;
        extra.push(0);
        assert!(matches!(decode_list(&extra), Err(PinError::Malformed(_))));
        assert!(MAX_PINS < usize::from(u16::MAX));
    }

    /// A pinned copy stays whole in a store under LRU pressure; a new version releases only
    /// the blocks it no longer lists; an unpinned copy is evicted like any record.
    #[test]
    fn pinned_copies_survive_lru_pressure_and_are_released_when_unpinned() {
        let now = WallTime(2000);
        let (addr, v1) = site(&[("a", vec![1; 5000]), ("b", vec![2; 5000])], 1);
        let mut store = MemoryStore::new(64 << 10);
        save_copy(&mut store, &addr, &v1, now).unwrap();
        let fill = |store: &mut MemoryStore, tag: u8| {
            for i in 0..200u8 {
                let r = Record {
                    kind: RecordKind::BLOCK,
                    key: [tag ^ i; 32],
                    value: vec![i; 4000],
                };
                let info = RecordInfo {
                    expires: WallTime(u64::MAX),
                    seq: 0,
                    digest: r.key,
                };
                let _ = store.put(&r, info, false);
            }
        };
        fill(&mut store, 0x40);
        assert_eq!(load_copy(&mut store, &addr, now), Some(v1.clone()));

        let (_, v2) = site(&[("a", vec![1; 5000]), ("b", vec![3; 5000])], 2);
        save_copy(&mut store, &addr, &v2, now).unwrap();
        fill(&mut store, 0x80);
        assert_eq!(load_copy(&mut store, &addr, now), Some(v2.clone()));
        let gone: Vec<_> = v1
            .blocks
            .keys()
            .filter(|h| !v2.blocks.contains_key(*h))
            .collect();
        assert_eq!(gone.len(), 1);
        assert!(
            store.get(RecordKind::BLOCK, gone[0], now).is_none(),
            "old block released"
        );

        drop_copy(&mut store, &addr, now).unwrap();
        assert_eq!(load_copy(&mut store, &addr, now), None);
        fill(&mut store, 0xc0);
        assert!(
            v2.blocks
                .keys()
                .all(|h| store.get(RecordKind::BLOCK, h, now).is_none())
        );
    }

    #[test]
    fn a_copy_missing_a_block_or_of_another_site_is_refused() {
        let now = WallTime(2000);
        let (addr, mut copy) = site(&[("a", vec![1; 100])], 1);
        let mut store = MemoryStore::new(1 << 20);
        let other = SiteAddress(key(8).public());
        assert!(matches!(
            save_copy(&mut store, &other, &copy, now),
            Err(PinError::BadCopy(_))
        ));
        copy.blocks.clear();
        assert!(matches!(
            save_copy(&mut store, &addr, &copy, now),
            Err(PinError::BadCopy(_))
        ));
        assert_eq!(store.count(), 0);
    }
}
