//! When circuits end without a DESTROY (`protocol-spec/09-relay.md#limits`,
//! `#idle-circuits`, `#memory`): EXTENDs past their deadline, circuits idle for too long,
//! every circuit of a link that closed, and circuits the node closes for memory.
//!
//! Each costs time in what it removes, never in the size of the table: deadlines sit in an
//! ordered set, a link's circuits are one range of the ordered maps, and the idle sweep
//! runs once per sweep interval, not per event.
//! Not in this module: admission and shares (`shares`, `Switch::handle_create`).

use core::time::Duration;

use super::{CircKey, Next, Switch};
use crate::ids::LinkId;
use crate::time::Time;
use crate::wire::cell::CircId;
use crate::wire::restrict::DestroyReason;

/// How often the idle sweep runs.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(10);

fn link_range(link: LinkId) -> core::ops::RangeInclusive<CircKey> {
    (link, CircId::MIN)..=(link, CircId::MAX)
}

impl Switch {
    /// Close the circuit with an end `key` (either side), telling both neighbours `reason`;
    /// its two ends, if it was here (`09-relay.md#memory`).
    pub fn close_end(&mut self, key: CircKey, reason: DestroyReason) -> Option<[CircKey; 2]> {
        let prev = if self.circuits.contains_key(&key) {
            key
        } else {
            *self.by_next.get(&key)?
        };
        let next = match self.circuits.get(&prev).map(|e| &e.next) {
            Some(Next::Attached { key: next, .. }) => *next,
            _ => prev,
        };
        self.remove(prev, reason, true, true);
        Some([prev, next])
    }

    /// Remember that `key` has a deadline at `at` (an EXTEND or a CREATED awaited).
    pub(super) fn arm(&mut self, at: Time, key: CircKey) {
        self.deadlines.insert((at, key));
    }

    /// A link closed: every circuit using it goes, and the other side is told.
    pub fn link_closed(&mut self, link: LinkId) {
        self.handshakes.purge(link, None);
        let prevs: Vec<CircKey> = self
            .circuits
            .range(link_range(link))
            .map(|(k, _)| *k)
            .collect();
        for k in prevs {
            self.remove(k, DestroyReason::UNREACHABLE, false, true);
        }
        let nexts: Vec<CircKey> = self
            .by_next
            .range(link_range(link))
            .map(|(_, p)| *p)
            .collect();
        for p in nexts {
            self.remove(p, DestroyReason::UNREACHABLE, true, false);
        }
        self.per_link.remove(&link);
        self.created_high.remove(&link);
    }

    /// The next deadline: an EXTEND's, or the idle sweep's.
    pub fn poll_timeout(&self) -> Option<Time> {
        let extend = self.deadlines.first().map(|&(t, _)| t);
        let sweep = (!self.circuits.is_empty()).then_some(self.next_sweep);
        let queued = self.handshakes.poll_timeout();
        [extend, sweep, queued].into_iter().flatten().min()
    }

    /// The idle limit now: shorter when the table is three-quarters full.
    fn idle_limit(&self) -> Duration {
        if self.circuits.len().saturating_mul(4) >= self.limits.max_circuits.saturating_mul(3) {
            self.limits.pressure_idle_timeout
        } else {
            self.limits.idle_timeout
        }
    }

    /// Tear down EXTENDs past their deadline, and idle circuits when the sweep is due.
    pub fn handle_timeout(&mut self, now: Time) {
        if let Err(e) = self.answer_queued(now) {
            self.errors.push(e);
        }
        while let Some(&(at, key)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let due = self.circuits.get(&key).is_some_and(|e| match e.next {
                Next::Pending { deadline, .. } => deadline == at,
                Next::Attached {
                    awaiting_created, ..
                } => awaiting_created == Some(at),
                Next::None => false,
            });
            if due {
                self.teardown(key, DestroyReason::TIMEOUT);
            }
        }
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_EVERY;
            let limit = self.idle_limit();
            let idle: Vec<CircKey> = self
                .circuits
                .iter()
                .filter(|(_, e)| {
                    matches!(
                        e.next,
                        Next::None
                            | Next::Attached {
                                awaiting_created: None,
                                ..
                            }
                    ) && now.saturating_since(e.last_active) >= limit
                })
                .map(|(k, _)| *k)
                .collect();
            for k in idle {
                self.stats.expired += 1;
                self.remove(k, DestroyReason::FINISHED, true, true);
            }
        }
    }
}
