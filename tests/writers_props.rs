//! Property tests of the many-writer merge (`protocol-spec/11-writers.md#merge`): random
//! histories of three writers editing, deleting, publishing and hearing of each other in any
//! order (partitions included), checked against the simulation's own record of what each
//! writer had really received:
//! - joining head sets is commutative, associative and idempotent;
//! - every reader with the same heads reaches the same view hash, whatever the order;
//! - an entry is dropped only when another line's entry at its path was written by a writer
//!   that had really received it: no edit silently dropped, no concurrent edit hidden.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::{Strategy, prop, prop_assert, prop_assert_eq, proptest};

use umbra::crypto::hash::hash;
use umbra::crypto::keys::IdentityKey;
use umbra::site::address::SiteAddress;
use umbra::site::writers::LineId;
use umbra::site::writers::head::{self, FileRef, SignedHead};
use umbra::site::writers::merge::HeadSet;
use umbra::site::writers::roster::{Roster, RosterWriter};
use umbra::site::writers::stage::{Intent, next_head};
use umbra::time::WallTime;

const WRITERS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Write(usize, u8, u8),
    Drop(usize, u8),
    Publish(usize),
    Hear(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let w = 0..WRITERS;
    prop::strategy::Union::new(vec![
        (w.clone(), 0u8..6, 0u8..4)
            .prop_map(|(w, p, c)| Op::Write(w, p, c))
            .boxed(),
        (w.clone(), 0u8..6)
            .prop_map(|(w, p)| Op::Drop(w, p))
            .boxed(),
        w.clone().prop_map(Op::Publish).boxed(),
        w.clone().prop_map(Op::Publish).boxed(),
        (w.clone(), 0..WRITERS)
            .prop_map(|(a, b)| Op::Hear(a, b))
            .boxed(),
    ])
}

fn key(i: usize) -> IdentityKey {
    IdentityKey::from_secret_bytes([i as u8 + 2; 32])
}

fn site() -> IdentityKey {
    IdentityKey::from_secret_bytes([1; 32])
}

fn roster() -> Roster {
    let mut writers: Vec<RosterWriter> = (0..WRITERS)
        .map(|i| RosterWriter {
            key: key(i).public(),
            prefixes: vec![String::new()],
            cutoff: None,
        })
        .collect();
    writers.sort_by_key(|w| w.key.to_bytes());
    Roster {
        site: site().public(),
        seq: 1,
        published: WallTime(0),
        writers,
    }
}

fn file(c: u8) -> FileRef {
    FileRef {
        size: 1,
        hash: hash(&[c]),
        media_type: "text/plain".into(),
        blocks: vec![hash(&[c])],
    }
}

#[derive(Default, Clone)]
struct Writer {
    files: BTreeMap<String, FileRef>,
    prev: Option<SignedHead>,
    seen: HeadSet,
    seq: u64,
    /// What it has really received: per line, the highest sequence (transitively).
    truth: BTreeMap<LineId, u64>,
}

struct Sim {
    writers: Vec<Writer>,
    /// Every head signed, in order.
    all: Vec<SignedHead>,
    /// What its writer had received when it signed (line, seq).
    truth_at: BTreeMap<(LineId, u64), BTreeMap<LineId, u64>>,
}

fn join(into: &mut BTreeMap<LineId, u64>, from: &BTreeMap<LineId, u64>) {
    for (l, s) in from {
        let e = into.entry(*l).or_default();
        *e = (*e).max(*s);
    }
}

fn run(ops: &[Op]) -> Sim {
    let r = roster();
    let addr = SiteAddress(site().public());
    let mut sim = Sim {
        writers: vec![Writer::default(); WRITERS],
        all: Vec::new(),
        truth_at: BTreeMap::new(),
    };
    for op in ops {
        match *op {
            Op::Write(w, p, c) => {
                sim.writers[w].files.insert(format!("p{p}"), file(c));
            }
            Op::Drop(w, p) => {
                sim.writers[w].files.remove(&format!("p{p}"));
            }
            Op::Publish(w) => {
                let me = &mut sim.writers[w];
                me.seq += 1;
                let intent = Intent {
                    site: site().public(),
                    writer: key(w).public(),
                    branch: "",
                    seq: me.seq,
                    published: WallTime(0),
                    expires: WallTime(u64::MAX),
                    files: &me.files,
                    delete: &BTreeSet::new(),
                    branches: &std::collections::BTreeSet::new(),
                    resolve: false,
                };
                let h = next_head(&intent, me.prev.as_ref(), &me.seen, &r).expect("next head");
                let signed = head::parse(&h.sign(&key(w)).expect("sign"), &addr).expect("parse");
                let line = LineId::of(&key(w).public(), "");
                me.truth.insert(line, me.seq);
                sim.truth_at.insert((line, me.seq), me.truth.clone());
                me.seen.insert(signed.clone());
                me.prev = Some(signed.clone());
                sim.all.push(signed);
            }
            Op::Hear(w, from) => {
                if w == from {
                    continue;
                }
                if let Some(h) = sim.writers[from].prev.clone() {
                    let t = sim.truth_at[&(h.head.line(), h.head.seq)].clone();
                    let me = &mut sim.writers[w];
                    me.seen.insert(h);
                    join(&mut me.truth, &t);
                }
            }
        }
    }
    sim
}

fn set_of(heads: &[SignedHead], pick: &[bool]) -> HeadSet {
    let mut s = HeadSet::new();
    for (h, p) in heads.iter().zip(pick.iter().cycle()) {
        if *p {
            s.insert(h.clone());
        }
    }
    s
}

proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]

    #[test]
    fn joins_are_a_semilattice(
        ops in prop::collection::vec(op(), 1..60),
        a in prop::collection::vec(proptest::bool::ANY, 1..8),
        b in prop::collection::vec(proptest::bool::ANY, 1..8),
        c in prop::collection::vec(proptest::bool::ANY, 1..8),
    ) {
        let sim = run(&ops);
        let (a, b, c) = (set_of(&sim.all, &a), set_of(&sim.all, &b), set_of(&sim.all, &c));
        let j = |x: &HeadSet, y: &HeadSet| { let mut z = x.clone(); z.join(y); z };
        prop_assert_eq!(j(&a, &b), j(&b, &a));
        prop_assert_eq!(j(&a, &j(&b, &c)), j(&j(&a, &b), &c));
        prop_assert_eq!(j(&a, &a), a.clone());
        let r = roster();
        prop_assert_eq!(j(&a, &b).view(&r, "").hash(), j(&b, &a).view(&r, "").hash());
    }

    #[test]
    fn readers_converge_and_drop_only_what_was_seen(
        ops in prop::collection::vec(op(), 1..80),
        order in Just(()).prop_perturb(|_, mut rng| rng.next_u64()),
    ) {
        let sim = run(&ops);
        let r = roster();
        // Two readers hear every head ever signed, in two different orders.
        let mut forward = HeadSet::new();
        for h in &sim.all { forward.insert(h.clone()); }
        let mut shuffled: Vec<&SignedHead> = sim.all.iter().collect();
        let n = shuffled.len();
        for i in (1..n).rev() {
            let j = (order.rotate_left(i as u32) % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        let mut backward = HeadSet::new();
        for h in shuffled { backward.insert(h.clone()); }
        let view = forward.view(&r, "");
        prop_assert_eq!(view.hash(), backward.view(&r, "").hash());
        prop_assert!(view.refused.is_empty());
        // Dropped only when another line's entry at the path was written by a writer that had
        // really received it (the simulation's record, not the vectors).
        let finals: Vec<&SignedHead> = forward.heads().collect();
        for y in &finals {
            let ly = y.head.line();
            for e in &y.head.entries {
                let dot = y.head.ctx(e).get(&ly);
                let seen_by_other = finals.iter().any(|x| {
                    let lx = x.head.line();
                    lx != ly && x.head.entry(&e.path).is_some_and(|ex| {
                        let xdot = x.head.ctx(ex).get(&lx);
                        sim.truth_at[&(lx, xdot)].get(&ly).copied().unwrap_or(0) >= dot
                    })
                });
                let survives = view
                    .path(&e.path)
                    .is_some_and(|p| p.candidates.iter().any(|c| c.line == ly && c.dot == dot));
                prop_assert!(survives || seen_by_other, "{} dot {} dropped unseen", e.path, dot);
            }
        }
    }
}

use proptest::prelude::Just;
use proptest::prelude::RngCore;
