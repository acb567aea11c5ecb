//! The gateway's cache of verified blocks (`protocol-spec/08-gateway.md#fetching`): by hash,
//! least recently used dropped first beyond a quota, so a page read again is served without
//! the network.
//! Not in this module: verification (blocks are put here only after it).

use std::collections::BTreeMap;
use std::sync::Arc;

/// Verified blocks by hash, least recently used dropped first beyond the quota.
#[derive(Debug, Default)]
pub struct BlockCache {
    blocks: BTreeMap<[u8; 32], (Arc<[u8]>, u64)>,
    order: BTreeMap<u64, [u8; 32]>,
    used: u64,
    quota: u64,
    stamp: u64,
}

impl BlockCache {
    /// An empty cache of `quota` bytes.
    pub fn new(quota: u64) -> BlockCache {
        BlockCache {
            quota,
            ..BlockCache::default()
        }
    }

    pub(super) fn get(&mut self, h: &[u8; 32]) -> Option<Arc<[u8]>> {
        self.stamp += 1;
        let stamp = self.stamp;
        let (data, old) = self.blocks.get_mut(h)?;
        self.order.remove(old);
        *old = stamp;
        self.order.insert(stamp, *h);
        Some(data.clone())
    }

    pub(super) fn contains(&self, h: &[u8; 32]) -> bool {
        self.blocks.contains_key(h)
    }

    pub(super) fn put(&mut self, h: [u8; 32], data: Arc<[u8]>) {
        if self.blocks.contains_key(&h) {
            return;
        }
        self.stamp += 1;
        self.used += data.len() as u64;
        self.order.insert(self.stamp, h);
        self.blocks.insert(h, (data, self.stamp));
        while self.used > self.quota {
            let Some((_, old)) = self.order.pop_first() else {
                break;
            };
            if let Some((d, _)) = self.blocks.remove(&old) {
                self.used -= d.len() as u64;
            }
        }
    }

    /// Bytes held.
    pub fn used(&self) -> u64 {
        self.used
    }
}
