//! The routing table (`protocol-spec/06-dht.md#routing-table`): 256 k-buckets by XOR
//! distance from this node, each with a replacement cache. Contacts are node ids; how to
//! reach them (descriptors, links) is the node's business.

use crate::crypto::keys::NodeId;

/// XOR distance between two keys, comparable as a big-endian number.
pub fn distance(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut d = [0u8; 32];
    for i in 0..32 {
        d[i] = a[i] ^ b[i];
    }
    d
}

/// The bucket of `other` relative to `me`: 255 minus the number of leading zero bits of the
/// distance; `None` for `me` itself.
pub fn bucket_index(me: &[u8; 32], other: &[u8; 32]) -> Option<usize> {
    let d = distance(me, other);
    let mut zeros = 0usize;
    for b in d {
        if b == 0 {
            zeros += 8;
        } else {
            zeros += b.leading_zeros() as usize;
            return Some(255 - zeros);
        }
    }
    None
}

#[derive(Debug, Clone, Default)]
struct Bucket {
    /// Least recently seen first.
    entries: Vec<NodeId>,
    replacements: Vec<NodeId>,
}

/// k-buckets with replacement caches.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    me: NodeId,
    k: usize,
    buckets: Vec<Bucket>,
}

impl RoutingTable {
    /// An empty table for `me` with bucket size `k`.
    pub fn new(me: NodeId, k: usize) -> Self {
        RoutingTable {
            me,
            k,
            buckets: vec![Bucket::default(); 256],
        }
    }

    /// Record that `id` answered or sent us something (`06-dht.md#routing-table`): moved to
    /// the bucket's tail; if the bucket is full, kept in its replacement cache.
    pub fn seen(&mut self, id: NodeId) {
        let Some(i) = bucket_index(&self.me.0, &id.0) else {
            return;
        };
        let k = self.k;
        let b = &mut self.buckets[i];
        if let Some(pos) = b.entries.iter().position(|e| *e == id) {
            b.entries.remove(pos);
            b.entries.push(id);
        } else if b.entries.len() < k {
            b.entries.push(id);
        } else if !b.replacements.contains(&id) {
            if b.replacements.len() >= k {
                b.replacements.remove(0);
            }
            b.replacements.push(id);
        }
    }

    /// `id` failed to answer: drop it and promote the newest replacement.
    pub fn failed(&mut self, id: NodeId) {
        let Some(i) = bucket_index(&self.me.0, &id.0) else {
            return;
        };
        let b = &mut self.buckets[i];
        if let Some(pos) = b.entries.iter().position(|e| *e == id) {
            b.entries.remove(pos);
            if let Some(r) = b.replacements.pop() {
                b.entries.push(r);
            }
        }
        b.replacements.retain(|r| *r != id);
    }

    /// Keep only contacts (and replacements) for which `keep` holds.
    pub fn retain(&mut self, keep: impl Fn(&NodeId) -> bool) {
        for b in &mut self.buckets {
            b.entries.retain(&keep);
            b.replacements.retain(&keep);
            while b.entries.len() < self.k {
                let Some(r) = b.replacements.pop() else { break };
                b.entries.push(r);
            }
        }
    }

    /// The `n` known nodes closest to `target`.
    pub fn closest(&self, target: &[u8; 32], n: usize) -> Vec<NodeId> {
        let mut all: Vec<NodeId> = self
            .buckets
            .iter()
            .flat_map(|b| b.entries.iter().copied())
            .collect();
        all.sort_by_key(|id| distance(&id.0, target));
        all.truncate(n);
        all
    }

    /// How many contacts the table holds.
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.entries.len()).sum()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `id` is a contact.
    pub fn contains(&self, id: &NodeId) -> bool {
        bucket_index(&self.me.0, &id.0).is_some_and(|i| self.buckets[i].entries.contains(id))
    }
}

#[cfg(test)]
mod tests {
    use super::{RoutingTable, bucket_index, distance};
    use crate::crypto::keys::NodeId;

    #[test]
    fn buckets_and_closest() {
        let me = NodeId([0; 32]);
        let mut far = [0u8; 32];
        far[0] = 0x80;
        assert_eq!(bucket_index(&me.0, &far), Some(255));
        let mut near = [0u8; 32];
        near[31] = 1;
        assert_eq!(bucket_index(&me.0, &near), Some(0));
        assert_eq!(bucket_index(&me.0, &me.0), None);
        let mut t = RoutingTable::new(me, 2);
        for i in 1..=10u8 {
            let mut id = [0u8; 32];
            id[0] = 0x80 | i; // all in bucket 255
            t.seen(NodeId(id));
        }
        assert_eq!(t.len(), 2, "bucket holds k");
        let first = t.closest(&[0x80; 32], 10);
        t.failed(first[0]);
        assert_eq!(t.len(), 2, "a replacement took the failed contact's place");
        let c = t.closest(&far, 2);
        assert!(distance(&c[0].0, &far) <= distance(&c[1].0, &far));
    }
}
