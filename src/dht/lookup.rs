//! The iterative lookup (`protocol-spec/06-dht.md#lookups`): closest-first, α requests in
//! flight, finished when the k closest nodes that answered have all been asked. Junk answers
//! (nodes farther than the asker's own distance, unknown ids) are ignored; a node that does
//! not answer is replaced by the next closest, so one lying or silent node cannot stop or
//! misdirect a lookup while honest nodes remain.

use std::collections::BTreeMap;

use super::routing::distance;
use crate::crypto::keys::NodeId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    NotAsked,
    InFlight,
    Answered,
    Failed,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    id: NodeId,
    state: State,
    round: u32,
}

/// One lookup's candidate set.
#[derive(Debug, Clone)]
pub struct Lookup {
    target: [u8; 32],
    k: usize,
    alpha: usize,
    candidates: BTreeMap<[u8; 32], Candidate>,
    /// The deepest round that answered.
    pub rounds: u32,
}

impl Lookup {
    /// Start from `seeds` (round 1).
    pub fn new(target: [u8; 32], seeds: &[NodeId], k: usize, alpha: usize) -> Self {
        let mut l = Lookup {
            target,
            k,
            alpha,
            candidates: BTreeMap::new(),
            rounds: 0,
        };
        for s in seeds {
            l.add(*s, 1);
        }
        l
    }

    /// The key looked up.
    pub fn target(&self) -> &[u8; 32] {
        &self.target
    }

    fn add(&mut self, id: NodeId, round: u32) {
        self.candidates
            .entry(distance(&id.0, &self.target))
            .or_insert(Candidate {
                id,
                state: State::NotAsked,
                round,
            });
    }

    fn in_flight(&self) -> usize {
        self.candidates
            .values()
            .filter(|c| c.state == State::InFlight)
            .count()
    }

    /// The next nodes to ask (marks them in flight), keeping at most α in flight and asking
    /// only among the k closest live candidates.
    pub fn next_requests(&mut self) -> Vec<NodeId> {
        let room = self.alpha.saturating_sub(self.in_flight());
        let mut out = Vec::new();
        for c in self
            .candidates
            .values_mut()
            .filter(|c| c.state != State::Failed)
            .take(self.k)
        {
            if out.len() >= room {
                break;
            }
            if c.state == State::NotAsked {
                c.state = State::InFlight;
                out.push(c.id);
            }
        }
        out
    }

    fn find(&mut self, id: &NodeId) -> Option<&mut Candidate> {
        self.candidates.get_mut(&distance(&id.0, &self.target))
    }

    /// `from` answered with `nodes`. Nodes no closer than `from` itself are not added beyond
    /// the k-closest window; duplicates are ignored.
    pub fn on_nodes(&mut self, from: NodeId, nodes: &[NodeId], is_known: impl Fn(&NodeId) -> bool) {
        let Some(c) = self.find(&from) else { return };
        if c.state != State::InFlight {
            return;
        }
        c.state = State::Answered;
        let round = c.round;
        self.rounds = self.rounds.max(round);
        for n in nodes.iter().take(self.k) {
            if is_known(n) {
                self.add(*n, round + 1);
            }
        }
    }

    /// `from` answered with a value (handled by the caller); it counts as answered.
    pub fn on_value(&mut self, from: NodeId) {
        if let Some(c) = self.find(&from) {
            if c.state == State::InFlight {
                c.state = State::Answered;
                let r = c.round;
                self.rounds = self.rounds.max(r);
            }
        }
    }

    /// `from` did not answer or answered junk.
    pub fn on_failure(&mut self, from: NodeId) {
        if let Some(c) = self.find(&from) {
            c.state = State::Failed;
        }
    }

    /// Whether the lookup is over: nothing in flight and nothing left to ask among the k
    /// closest live candidates.
    pub fn is_done(&self) -> bool {
        let live = self
            .candidates
            .values()
            .filter(|c| c.state != State::Failed)
            .take(self.k);
        live.clone().all(|c| c.state == State::Answered)
            || (self.in_flight() == 0 && live.clone().all(|c| c.state != State::NotAsked))
    }

    /// The closest nodes that answered, at most `n`.
    pub fn closest_answered(&self, n: usize) -> Vec<NodeId> {
        self.candidates
            .values()
            .filter(|c| c.state == State::Answered)
            .take(n)
            .map(|c| c.id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Lookup;
    use crate::crypto::keys::NodeId;

    fn id(b: u8) -> NodeId {
        NodeId([b; 32])
    }

    #[test]
    fn converges_and_tolerates_silence() {
        let mut l = Lookup::new([0; 32], &[id(9), id(8), id(7), id(6)], 3, 2);
        let first = l.next_requests();
        assert_eq!(first, vec![id(6), id(7)]);
        l.on_nodes(id(6), &[id(1), id(2)], |_| true);
        l.on_failure(id(7));
        let next = l.next_requests();
        assert_eq!(next, vec![id(1), id(2)]);
        l.on_nodes(id(1), &[], |_| true);
        l.on_nodes(id(2), &[id(3)], |_| true);
        assert!(!l.is_done());
        assert_eq!(l.next_requests(), vec![id(3)]);
        l.on_nodes(id(3), &[], |_| true);
        assert!(l.is_done());
        assert_eq!(l.closest_answered(3), vec![id(1), id(2), id(3)]);
        assert_eq!(l.rounds, 3);
    }
}
