//! The DHT's timers (`protocol-spec/06-dht.md#republishing`, `#store`): RPC deadlines,
//! batch commits of the record store with their deferred acknowledgements, and
//! republishing spread over the interval.
//! Not in this module: lookups and RPC handling (`super`).

use super::store::Commit;
use super::{Dht, DhtAction, Goal};
use crate::crypto::keys::NodeId;
use crate::time::{Time, WallTime};
use crate::wire::dht_msg::DhtMsg;

impl Dht {
    /// The earliest RPC deadline or republish time.
    pub fn poll_timeout(&self) -> Option<Time> {
        // Possibly the deadline of an RPC answered since: one early wake-up.
        let rpc = self.rpc_deadlines.first().map(|(t, _, _)| *t);
        let one = (!self.republish_queue.is_empty()).then_some(self.next_republish_one);
        let commit = (!self.unacked.is_empty()).then_some(self.commit_at);
        [rpc, one, commit, Some(self.next_republish)]
            .into_iter()
            .flatten()
            .min()
    }

    /// Commit the store's batch. The acknowledgements that waited for it go out now if the
    /// store committed at once (status 2, "not stored", if it failed), or when the driver
    /// reports the batch durable ([`Dht::durable`]).
    pub(super) fn commit(&mut self) {
        let acks = std::mem::take(&mut self.unacked);
        match self.store.commit() {
            Ok(Commit::Done) => self.acknowledge(acks, 0),
            Ok(Commit::Started(batch)) => {
                if !acks.is_empty() {
                    self.in_flight.push_back((batch, acks));
                }
            }
            Err(_) => self.acknowledge(acks, 2),
        }
        self.stats.commits += 1;
    }

    /// The store's batch `batch` (and every one before it) became durable, or failed: send
    /// the acknowledgements that waited for it.
    pub fn durable(&mut self, batch: u64, ok: bool) {
        self.store.durable(batch, ok);
        while self.in_flight.front().is_some_and(|(b, _)| *b <= batch) {
            if let Some((_, acks)) = self.in_flight.pop_front() {
                self.acknowledge(acks, if ok { 0 } else { 2 });
            }
        }
    }

    fn acknowledge(&mut self, acks: Vec<(NodeId, u32)>, status: u8) {
        for (to, id) in acks {
            self.actions.push_back(DhtAction::Send {
                to,
                msg: DhtMsg::Stored { id, status },
            });
        }
    }

    /// Stores acknowledged only once their batch is durable.
    pub fn unacknowledged(&self) -> usize {
        self.unacked.len() + self.in_flight.iter().map(|(_, a)| a.len()).sum::<usize>()
    }

    /// Records of this republishing round not yet republished.
    pub fn republish_backlog(&self) -> usize {
        self.republish_queue.len()
    }

    /// Time out RPCs; republish held records when due (`06-dht.md#republishing`).
    pub fn handle_timeout(&mut self, now: Time, wall: WallTime) {
        if !self.unacked.is_empty() && now >= self.commit_at {
            self.commit();
        }
        while let Some(&(t, to, rpc)) = self.rpc_deadlines.first() {
            if t > now {
                break;
            }
            self.rpc_deadlines.pop_first();
            // Only if still unanswered, and this is its deadline (ids wrap).
            let late = self.pending.get(&(to, rpc)).filter(|(_, d)| *d == t);
            if let Some(&(lid, _)) = late {
                self.pending.remove(&(to, rpc));
                self.table.failed(to);
                self.fail_rpc(now, lid, to);
            }
        }
        // A round starts every interval; its records go out spread evenly over it, never
        // all at once (a relay holding many would stall every other relay).
        if now >= self.next_republish {
            self.next_republish = now + self.cfg.republish_interval;
            self.store.expire(wall);
            self.commit();
            self.republish_queue = self.store.keys().into();
            let n = u32::try_from(self.republish_queue.len()).unwrap_or(u32::MAX);
            self.republish_gap = self.cfg.republish_interval / n.saturating_add(1);
            self.next_republish_one = now;
        }
        let mut started = 0;
        while self.next_republish_one <= now && started < 16 {
            let Some((kind, key)) = self.republish_queue.pop_front() else {
                break;
            };
            started += 1;
            self.next_republish_one = self.next_republish_one + self.republish_gap;
            // Republished with the lifetime it has here, never longer (`06-dht.md#lifetime`).
            let held = self.store.info(kind, &key, wall);
            if let (Some(info), Some(record)) = (held, self.store.get(kind, &key, wall)) {
                self.start(now, wall, key, Goal::Store(record, info.expires));
            }
        }
    }
}
