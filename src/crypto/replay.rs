//! A replay cache for handshake first messages (`protocol-spec/02-link.md#replay`,
//! `04-circuits.md#replay`).
//!
//! A first message (link message 1, hop message 1) starts with the sender's fresh ephemeral
//! key. Answering one costs the relay Diffie-Hellman work, and a hostile client can replay
//! one precomputed message forever without doing any itself. The cache remembers the
//! ephemeral keys of first messages that authenticated, for `window`, at most `capacity`
//! of them (oldest forgotten first), and the relay refuses a first message whose key it
//! remembers before doing any work for it.
//!
//! Keys are the first 16 bytes of the ephemeral: honest ephemerals are uniformly random, so
//! two never collide in practice, and a sender can only collide with keys it already knows.
//! The cache is deterministic (a `BTreeSet`, no hasher seeded from the OS).
//! Not in this module: which messages are checked (the link session and the relay switch).

use core::time::Duration;
use std::collections::{BTreeSet, VecDeque};

use crate::time::Time;

/// Bytes of the ephemeral key kept per entry.
const KEY_LEN: usize = 16;

/// Remembers recently seen first-message ephemerals.
#[derive(Debug, Clone)]
pub struct ReplayCache {
    seen: BTreeSet<[u8; KEY_LEN]>,
    order: VecDeque<(Time, [u8; KEY_LEN])>,
    window: Duration,
    capacity: usize,
}

/// How long a first message is remembered by default (`02-link.md#replay`).
pub const WINDOW: Duration = Duration::from_secs(600);
/// How many first messages are remembered at most by default (about 4 MiB).
pub const CAPACITY: usize = 65_536;

impl ReplayCache {
    /// The default cache: [`WINDOW`], [`CAPACITY`].
    pub fn for_handshakes() -> Self {
        ReplayCache::new(WINDOW, CAPACITY)
    }

    /// A cache remembering each key for `window`, at most `capacity` keys.
    pub fn new(window: Duration, capacity: usize) -> Self {
        ReplayCache {
            seen: BTreeSet::new(),
            order: VecDeque::new(),
            window,
            capacity: capacity.max(1),
        }
    }

    fn key(message: &[u8]) -> Option<[u8; KEY_LEN]> {
        message.get(..KEY_LEN)?.try_into().ok()
    }

    fn expire(&mut self, now: Time) {
        while let Some(&(at, k)) = self.order.front() {
            if now.saturating_since(at) < self.window && self.order.len() <= self.capacity {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&k);
        }
    }

    /// Whether `message` (a first message, ephemeral key first) was seen within the window.
    /// A message too short to hold a key is never "seen" (the handshake refuses it).
    pub fn seen(&mut self, now: Time, message: &[u8]) -> bool {
        self.expire(now);
        Self::key(message).is_some_and(|k| self.seen.contains(&k))
    }

    /// Remember `message`'s ephemeral (call once it authenticated).
    pub fn insert(&mut self, now: Time, message: &[u8]) {
        let Some(k) = Self::key(message) else {
            return;
        };
        if self.seen.insert(k) {
            self.order.push_back((now, k));
        }
        self.expire(now);
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::ReplayCache;
    use crate::time::Time;
    use core::time::Duration;

    #[test]
    fn remembers_within_window_and_capacity() {
        let mut c = ReplayCache::new(Duration::from_secs(60), 2);
        let t = Time::ZERO;
        let a = [1u8; 48];
        let b = [2u8; 48];
        let d = [3u8; 48];
        assert!(!c.seen(t, &a));
        c.insert(t, &a);
        assert!(c.seen(t, &a));
        assert!(!c.seen(t, &b));
        assert!(!c.seen(t, &[9u8; 4]), "too short is never seen");
        // Past the window: forgotten.
        let later = t + Duration::from_secs(61);
        assert!(!c.seen(later, &a));
        assert!(c.is_empty());
        // Capacity: the oldest goes first.
        c.insert(later, &a);
        c.insert(later, &b);
        c.insert(later, &d);
        assert_eq!(c.len(), 2);
        assert!(!c.seen(later, &a));
        assert!(c.seen(later, &b) && c.seen(later, &d));
    }
}
