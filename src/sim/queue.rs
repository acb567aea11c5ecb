//! The simulators' shared event machinery: a `(time, sequence)` queue whose sequence number
//! breaks ties deterministically, and a per-node timer slot whose generation counter drops
//! stale timers.

use std::collections::BTreeMap;

use crate::time::Time;

/// A deterministic discrete-event queue.
#[derive(Debug)]
pub struct EventQueue<E> {
    now: Time,
    seq: u64,
    queue: BTreeMap<(Time, u64), E>,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            now: Time::ZERO,
            seq: 0,
            queue: BTreeMap::new(),
        }
    }
}

impl<E> EventQueue<E> {
    /// The current time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Queue `ev` at `at` (never in the past).
    pub fn schedule(&mut self, at: Time, ev: E) {
        self.seq += 1;
        self.queue.insert((at.max(self.now), self.seq), ev);
    }

    /// The time of the next event.
    pub fn next_time(&self) -> Option<Time> {
        self.queue.first_key_value().map(|(&(t, _), _)| t)
    }

    /// Take the next event and advance the clock to it.
    pub fn pop(&mut self) -> Option<(Time, E)> {
        let ((at, _), ev) = self.queue.pop_first()?;
        self.now = at;
        Some((at, ev))
    }

    /// Advance the clock to `t` if it is later (nothing scheduled before it may remain).
    pub fn advance_to(&mut self, t: Time) {
        self.now = self.now.max(t);
    }
}

/// One node's timer: re-armed when the node's next deadline changes.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimerSlot {
    generation: u64,
    at: Option<Time>,
}

impl TimerSlot {
    /// The node now wants to wake at `want`: returns the (time, generation) to schedule, if
    /// that differs from what is scheduled.
    pub fn rearm(&mut self, want: Option<Time>) -> Option<(Time, u64)> {
        let t = want?;
        if want == self.at {
            return None;
        }
        self.generation += 1;
        self.at = want;
        Some((t, self.generation))
    }

    /// A timer event of `generation` fired: whether it is current (and clear it if so).
    pub fn fire(&mut self, generation: u64) -> bool {
        if generation != self.generation {
            return false;
        }
        self.at = None;
        true
    }

    /// Forget what is scheduled (a restarted node).
    pub fn reset(&mut self) {
        self.at = None;
    }
}
