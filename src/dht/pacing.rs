//! How fast one relay may pull whole records from this one (`protocol-spec/06-dht.md#pacing`).
//!
//! A token bucket per asking relay: [`BURST`] bytes at once, refilled at [`RATE`] bytes a
//! second. A `FIND_VALUE` whose record does not fit the asker's bucket is answered with
//! `NODES`, as if the record were not held, so the asker turns to another storer; nothing
//! queues. Replies to one relay therefore stay far below the link's 32 MiB write limit, and
//! a flood of lookups through one exit cannot make a storer drop its link to that exit.
//! Not in this module: which records are held, or the link's own write queue.

use std::collections::BTreeMap;

use crate::crypto::keys::NodeId;
use crate::time::Time;

/// Bytes of records one relay may pull at once.
pub const BURST: u64 = 4 << 20;
/// Bytes per second the bucket refills.
pub const RATE: u64 = 2 << 20;

/// One bucket per asking relay (only directory relays are ever served, so the map is
/// bounded by the directory).
#[derive(Debug, Default)]
pub struct Pacing {
    buckets: BTreeMap<NodeId, (u64, Time)>,
}

impl Pacing {
    /// Take `bytes` from `peer`'s bucket at `now`; `false` (and nothing taken) if they do
    /// not fit.
    pub fn take(&mut self, peer: NodeId, bytes: u64, now: Time) -> bool {
        let (tokens, at) = self.buckets.entry(peer).or_insert((BURST, now));
        let elapsed = now.saturating_since(*at);
        let refill =
            u64::try_from(elapsed.as_micros().saturating_mul(u128::from(RATE)) / 1_000_000)
                .unwrap_or(u64::MAX);
        *tokens = tokens.saturating_add(refill).min(BURST);
        *at = now;
        if *tokens >= bytes {
            *tokens -= bytes;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{BURST, Pacing, RATE};
    use crate::crypto::keys::NodeId;
    use crate::time::Time;
    use core::time::Duration;

    #[test]
    fn burst_then_rate() {
        let mut p = Pacing::default();
        let a = NodeId([1; 32]);
        let t = Time::ZERO;
        assert!(p.take(a, BURST - 10, t));
        assert!(!p.take(a, 100, t));
        assert!(p.take(NodeId([2; 32]), 100, t), "buckets are per relay");
        let later = t + Duration::from_millis(500);
        assert!(p.take(a, RATE / 2, later));
        assert!(!p.take(a, 1000, later));
    }
}
