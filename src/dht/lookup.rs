//! The iterative lookup (`protocol-spec/06-dht.md#lookups`): closest-first, α requests in
//! flight, finished when the k closest nodes that answered have all been asked. Junk answers
//! (nodes farther than the asker's own distance, unknown ids) are ignored; a node that does
//! not answer is replaced by the next closest, so one lying or silent node cannot stop or
//! misdirect a lookup while honest nodes remain. The window of the k closest counts at most
//! [`PER_GROUP_IN_WINDOW`] nodes of one network: relays of a few networks that answer with
//! each other cannot fill it, and the nodes a record is stored on span networks.

use std::collections::BTreeMap;

use super::routing::{Group, distance};
use crate::crypto::keys::NodeId;

/// Nodes of one network in a lookup's window of the k closest, and among a record's storers
/// (`06-dht.md#lookups`).
pub const PER_GROUP_IN_WINDOW: usize = 1;

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
    group: Group,
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
    /// Start from `seeds` with their networks (round 1).
    pub fn new(target: [u8; 32], seeds: &[(NodeId, Group)], k: usize, alpha: usize) -> Self {
        let mut l = Lookup {
            target,
            k,
            alpha,
            candidates: BTreeMap::new(),
            rounds: 0,
        };
        for (s, g) in seeds {
            l.add(*s, *g, 1);
        }
        l
    }

    /// The key looked up.
    pub fn target(&self) -> &[u8; 32] {
        &self.target
    }

    fn add(&mut self, id: NodeId, group: Group, round: u32) {
        self.candidates
            .entry(distance(&id.0, &self.target))
            .or_insert(Candidate {
                id,
                group,
                state: State::NotAsked,
                round,
            });
    }

    /// The candidates that count, closest first: `keep` ones, at most
    /// [`PER_GROUP_IN_WINDOW`] per network, at most `n`.
    fn window(&self, n: usize, keep: impl Fn(&Candidate) -> bool) -> Vec<&Candidate> {
        // At most n networks in a window: a short list beats a map here (this runs for
        // every answer a lookup receives).
        let mut per_group: Vec<(Group, usize)> = Vec::with_capacity(n);
        let mut out = Vec::with_capacity(n);
        for c in self.candidates.values() {
            if out.len() >= n {
                break;
            }
            if !keep(c) {
                continue;
            }
            match per_group.iter_mut().find(|(g, _)| *g == c.group) {
                Some((_, count)) if *count >= PER_GROUP_IN_WINDOW => continue,
                Some((_, count)) => *count += 1,
                None => per_group.push((c.group, 1)),
            }
            out.push(c);
        }
        out
    }

    fn in_flight(&self) -> usize {
        self.candidates
            .values()
            .filter(|c| c.state == State::InFlight)
            .count()
    }

    /// The next nodes to ask (marks them in flight), keeping at most α in flight and asking
    /// only within the window of the k closest live candidates.
    pub fn next_requests(&mut self) -> Vec<NodeId> {
        let room = self.alpha.saturating_sub(self.in_flight());
        let ask: Vec<NodeId> = self
            .window(self.k, |c| c.state != State::Failed)
            .into_iter()
            .filter(|c| c.state == State::NotAsked)
            .take(room)
            .map(|c| c.id)
            .collect();
        for id in &ask {
            if let Some(c) = self.find(id) {
                c.state = State::InFlight;
            }
        }
        ask
    }

    fn find(&mut self, id: &NodeId) -> Option<&mut Candidate> {
        self.candidates.get_mut(&distance(&id.0, &self.target))
    }

    /// `from` answered with `nodes`; those `group_of` knows (directory relays) are added with
    /// their networks, duplicates ignored.
    pub fn on_nodes(
        &mut self,
        from: NodeId,
        nodes: &[NodeId],
        group_of: impl Fn(&NodeId) -> Option<Group>,
    ) {
        let Some(c) = self.find(&from) else { return };
        if c.state != State::InFlight {
            return;
        }
        c.state = State::Answered;
        let round = c.round;
        self.rounds = self.rounds.max(round);
        for n in nodes.iter().take(self.k) {
            if let Some(g) = group_of(n) {
                self.add(*n, g, round + 1);
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
        let live = self.window(self.k, |c| c.state != State::Failed);
        live.iter().all(|c| c.state == State::Answered)
            || (self.in_flight() == 0 && live.iter().all(|c| c.state != State::NotAsked))
    }

    /// The closest nodes that answered, at most `n`, at most [`PER_GROUP_IN_WINDOW`] of one
    /// network.
    pub fn closest_answered(&self, n: usize) -> Vec<NodeId> {
        self.window(n, |c| c.state == State::Answered)
            .iter()
            .map(|c| c.id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Lookup;
    use crate::crypto::keys::NodeId;
    use crate::dht::routing::Group;

    fn id(b: u8) -> NodeId {
        NodeId([b; 32])
    }

    fn own(n: &NodeId) -> Option<Group> {
        Some([n.0[0], 0, 0, 0])
    }

    fn seeds(ids: &[NodeId]) -> Vec<(NodeId, Group)> {
        ids.iter().map(|n| (*n, [n.0[0], 0, 0, 0])).collect()
    }

    #[test]
    fn converges_and_tolerates_silence() {
        let mut l = Lookup::new([0; 32], &seeds(&[id(9), id(8), id(7), id(6)]), 3, 2);
        let first = l.next_requests();
        assert_eq!(first, vec![id(6), id(7)]);
        l.on_nodes(id(6), &[id(1), id(2)], own);
        l.on_failure(id(7));
        let next = l.next_requests();
        assert_eq!(next, vec![id(1), id(2)]);
        l.on_nodes(id(1), &[], own);
        l.on_nodes(id(2), &[id(3)], own);
        assert!(!l.is_done());
        assert_eq!(l.next_requests(), vec![id(3)]);
        l.on_nodes(id(3), &[], own);
        assert!(l.is_done());
        assert_eq!(l.closest_answered(3), vec![id(1), id(2), id(3)]);
        assert_eq!(l.rounds, 3);
    }

    /// Ten nodes of one network closest to the key, answering with each other, take one
    /// place in the window: the lookup still asks the farther nodes of other networks, and
    /// a record's storers span networks.
    #[test]
    fn one_network_takes_one_place_in_the_window() {
        let near = |b: u8| {
            let mut x = [0u8; 32];
            x[31] = b;
            NodeId(x)
        };
        let sybil = |_: &NodeId| Some([9, 9, 0, 0]);
        let mut l = Lookup::new([0; 32], &[(id(0x40), [4, 0, 0, 0])], 4, 3);
        assert_eq!(l.next_requests(), vec![id(0x40)]);
        let sybils: Vec<NodeId> = (1..=10).map(near).collect();
        l.on_nodes(id(0x40), &sybils, sybil);
        l.on_nodes(id(0x40), &[], own);
        let asked = l.next_requests();
        assert_eq!(asked, vec![near(1)], "one of the network, not ten");
        for s in &asked {
            l.on_nodes(*s, &sybils, sybil);
        }
        // The window: one Sybil and the honest node; the other Sybils are never asked.
        assert!(l.is_done());
        assert_eq!(l.closest_answered(4), vec![near(1), id(0x40)]);
    }
}
