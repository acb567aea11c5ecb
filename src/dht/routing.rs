//! The routing table (`protocol-spec/06-dht.md#routing-table`): 256 k-buckets by XOR
//! distance from this node, each with a replacement cache. Contacts are node ids with their
//! network [`Group`] (the /16 the node put them in): a bucket holds at most
//! [`PER_GROUP_IN_BUCKET`] contacts of one group, so relays from one network cannot fill the
//! buckets near a node however they choose their ids. How to reach contacts (descriptors,
//! links) is the node's business.

use crate::crypto::keys::NodeId;

/// The network a contact's address belongs to, as the node computed it (the /16 of an IPv4
/// address, the /32 of an IPv6 one); opaque to the DHT.
pub type Group = [u8; 4];

/// Contacts of one [`Group`] a bucket holds (`06-dht.md#routing-table`); more wait in the
/// replacement cache.
pub const PER_GROUP_IN_BUCKET: usize = 2;

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
    entries: Vec<(NodeId, Group)>,
    replacements: Vec<(NodeId, Group)>,
}

impl Bucket {
    fn group_count(&self, g: Group) -> usize {
        self.entries.iter().filter(|e| e.1 == g).count()
    }

    /// Move the newest replacement whose group has room into the entries.
    fn promote(&mut self, k: usize) {
        while self.entries.len() < k {
            let Some(pos) = self
                .replacements
                .iter()
                .rposition(|r| self.group_count(r.1) < PER_GROUP_IN_BUCKET)
            else {
                break;
            };
            let r = self.replacements.remove(pos);
            self.entries.push(r);
        }
    }
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

    /// Record that `id` (of network `group`) answered or sent us something
    /// (`06-dht.md#routing-table`): moved to the bucket's tail; if the bucket is full, or
    /// holds [`PER_GROUP_IN_BUCKET`] contacts of its group already, kept in the replacement
    /// cache.
    pub fn seen(&mut self, id: NodeId, group: Group) {
        let Some(i) = bucket_index(&self.me.0, &id.0) else {
            return;
        };
        let k = self.k;
        let b = &mut self.buckets[i];
        if let Some(pos) = b.entries.iter().position(|e| e.0 == id) {
            b.entries.remove(pos);
            b.entries.push((id, group));
        } else if b.entries.len() < k && b.group_count(group) < PER_GROUP_IN_BUCKET {
            b.replacements.retain(|r| r.0 != id);
            b.entries.push((id, group));
        } else if let Some(pos) = b.replacements.iter().position(|r| r.0 == id) {
            let r = b.replacements.remove(pos);
            b.replacements.push(r);
        } else {
            if b.replacements.len() >= k {
                b.replacements.remove(0);
            }
            b.replacements.push((id, group));
        }
    }

    /// `id` failed to answer: drop it and promote the newest replacement that fits.
    pub fn failed(&mut self, id: NodeId) {
        let Some(i) = bucket_index(&self.me.0, &id.0) else {
            return;
        };
        let k = self.k;
        let b = &mut self.buckets[i];
        b.replacements.retain(|r| r.0 != id);
        if let Some(pos) = b.entries.iter().position(|e| e.0 == id) {
            b.entries.remove(pos);
            b.promote(k);
        }
    }

    /// Keep only contacts (and replacements) for which `keep` holds.
    pub fn retain(&mut self, keep: impl Fn(&NodeId) -> bool) {
        for b in &mut self.buckets {
            b.entries.retain(|e| keep(&e.0));
            b.replacements.retain(|e| keep(&e.0));
            b.promote(self.k);
        }
    }

    /// The `n` known nodes closest to `target`.
    pub fn closest(&self, target: &[u8; 32], n: usize) -> Vec<NodeId> {
        self.closest_with_groups(target, n)
            .into_iter()
            .map(|e| e.0)
            .collect()
    }

    /// [`RoutingTable::closest`] with each node's network.
    pub fn closest_with_groups(&self, target: &[u8; 32], n: usize) -> Vec<(NodeId, Group)> {
        // Each distance computed once; only the n closest are sorted (this runs for every
        // lookup started and every FIND_NODE answered).
        let mut all: Vec<([u8; 32], NodeId, Group)> = self
            .buckets
            .iter()
            .flat_map(|b| b.entries.iter())
            .map(|&(id, g)| (distance(&id.0, target), id, g))
            .collect();
        if n == 0 {
            return Vec::new();
        }
        if all.len() > n {
            all.select_nth_unstable_by(n - 1, |a, b| a.0.cmp(&b.0));
            all.truncate(n);
        }
        all.sort_unstable_by_key(|a| a.0);
        all.into_iter().map(|(_, id, g)| (id, g)).collect()
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
        bucket_index(&self.me.0, &id.0)
            .is_some_and(|i| self.buckets[i].entries.iter().any(|e| e.0 == *id))
    }

    /// How many contacts of `group` the table holds.
    pub fn group_len(&self, group: Group) -> usize {
        self.buckets.iter().map(|b| b.group_count(group)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::{PER_GROUP_IN_BUCKET, RoutingTable, bucket_index, distance};
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
            t.seen(NodeId(id), [i, 0, 0, 0]);
        }
        assert_eq!(t.len(), 2, "bucket holds k");
        let first = t.closest(&[0x80; 32], 10);
        t.failed(first[0]);
        assert_eq!(t.len(), 2, "a replacement took the failed contact's place");
        let c = t.closest(&far, 2);
        assert!(distance(&c[0].0, &far) <= distance(&c[1].0, &far));
    }

    /// Relays of one network placed next to a node fill at most two places per bucket,
    /// however many they are and however they chose their ids; the others wait as
    /// replacements, and honest contacts still get in.
    #[test]
    fn one_network_fills_at_most_two_places_per_bucket() {
        let me = NodeId([0; 32]);
        let mut t = RoutingTable::new(me, 8);
        let sybil = [4, 10, 0, 0];
        for i in 1..=40u8 {
            let mut id = [0u8; 32];
            id[0] = 0x80;
            id[31] = i;
            t.seen(NodeId(id), sybil);
        }
        assert_eq!(t.len(), PER_GROUP_IN_BUCKET);
        for i in 1..=6u8 {
            let mut id = [0u8; 32];
            id[0] = 0x80 | i;
            t.seen(NodeId(id), [4, i, 0, 0]);
        }
        assert_eq!(t.len(), 8, "the honest contacts fill the rest");
        assert_eq!(t.group_len(sybil), PER_GROUP_IN_BUCKET);
        // When an honest contact fails, a Sybil replacement cannot take its place.
        let mut honest = [0u8; 32];
        honest[0] = 0x81;
        t.failed(NodeId(honest));
        assert_eq!(t.group_len(sybil), PER_GROUP_IN_BUCKET);
        assert_eq!(t.len(), 7);
    }
}
