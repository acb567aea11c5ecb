//! The merge (`protocol-spec/11-writers.md#merge`): a [`HeadSet`] is a join-semilattice of
//! signed heads (per line the highest sequence; two different heads with one sequence keep
//! the lower digest and a proof of equivocation), so joining sets in any order, any number of
//! times, gives the same set. A [`View`] is a pure function of a set and a roster: per path,
//! an entry is dropped when another line's entry at that path was written in a context that
//! covers its dot; one survivor is the path's value, several are a conflict, listed, with a
//! deterministic default winner (highest context weight, then lowest line id).
//!
//! Not in this module: building a writer's next head ([`super::stage`]), fetching heads.

use std::collections::{BTreeMap, BTreeSet};

use crate::crypto::keys::IdentityPublic;
use crate::wire::Writer;

use super::head::{FileRef, Head, SignedHead, Value};
use super::roster::Roster;
use super::{LineId, WriterError};

/// Proof that a writer signed two different manifests with one sequence.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Proof {
    /// The writer's key bytes.
    pub writer: [u8; 32],
    /// The sequence.
    pub seq: u64,
    /// The two manifests' wire bytes, the one with the lower digest first.
    pub manifests: [Vec<u8>; 2],
}

/// What [`HeadSet::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// A newer head for its line, or the first.
    New,
    /// Already held, or older than the one held.
    Stale,
    /// Another manifest with the sequence held: a proof was kept; the lower digest stays.
    Equivocation,
}

/// The newest head of each line seen, and proofs of equivocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadSet {
    heads: BTreeMap<LineId, SignedHead>,
    proofs: BTreeSet<Proof>,
    /// Older manifests fetched by digest (`11-writers.md#history`): a revoked writer's
    /// pinned last head when its line has moved past the cut-off.
    history: BTreeMap<[u8; 32], SignedHead>,
}

impl HeadSet {
    /// An empty set.
    pub fn new() -> HeadSet {
        HeadSet::default()
    }

    /// Add a head (already parsed and signature-checked).
    pub fn insert(&mut self, h: SignedHead) -> Inserted {
        let line = h.head.line();
        let mut result = Inserted::New;
        // One sequence across a writer's lines: the same sequence on another line is
        // equivocation too (both heads stay, each the newest of its line).
        let twin = self
            .heads
            .iter()
            .find(|(l, o)| {
                **l != line && o.head.writer == h.head.writer && o.head.seq == h.head.seq
            })
            .map(|(_, o)| o.bytes.clone());
        if let Some(other) = twin {
            self.prove(&h, other);
            result = Inserted::Equivocation;
        }
        match self.heads.get(&line) {
            Some(o) if o.bytes == h.bytes => Inserted::Stale,
            Some(o) if o.head.seq > h.head.seq => match result {
                Inserted::Equivocation => result,
                _ => Inserted::Stale,
            },
            Some(o) if o.head.seq == h.head.seq => {
                let keep_new = h.digest() < o.digest();
                self.prove(&h, o.bytes.clone());
                if keep_new {
                    self.heads.insert(line, h);
                }
                Inserted::Equivocation
            }
            _ => {
                self.heads.insert(line, h);
                result
            }
        }
    }

    fn prove(&mut self, h: &SignedHead, other: Vec<u8>) {
        let d_other = crate::crypto::hash::hash(&other);
        let manifests = if h.digest() < d_other {
            [h.bytes.clone(), other]
        } else {
            [other, h.bytes.clone()]
        };
        self.proofs.insert(Proof {
            writer: h.head.writer.to_bytes(),
            seq: h.head.seq,
            manifests,
        });
    }

    /// Join `other` into this set.
    pub fn join(&mut self, other: &HeadSet) {
        for h in other.heads.values() {
            self.insert(h.clone());
        }
        self.proofs.extend(other.proofs.iter().cloned());
        self.history
            .extend(other.history.iter().map(|(d, h)| (*d, h.clone())));
    }

    /// Keep an older manifest, fetched by its digest.
    pub fn insert_history(&mut self, h: SignedHead) {
        self.history.insert(h.digest(), h);
    }

    /// The manifest with digest `d`, newest or history.
    pub fn by_digest(&self, d: &[u8; 32]) -> Option<&SignedHead> {
        self.history
            .get(d)
            .or_else(|| self.heads.values().find(|h| h.digest() == *d))
    }

    /// The heads held, by line.
    pub fn heads(&self) -> impl Iterator<Item = &SignedHead> {
        self.heads.values()
    }

    /// The head held for `line`.
    pub fn get(&self, line: &LineId) -> Option<&SignedHead> {
        self.heads.get(line)
    }

    /// The proofs of equivocation held.
    pub fn proofs(&self) -> impl Iterator<Item = &Proof> {
        self.proofs.iter()
    }

    /// The sync state: each line's sequence (40 bytes a line; O(lines), not O(history)).
    pub fn state(&self) -> Vec<(LineId, u64)> {
        self.heads.iter().map(|(l, h)| (*l, h.head.seq)).collect()
    }

    /// The heads the roster admits among those `pick` selects, and the refused ones.
    pub fn admitted<'a>(
        &'a self,
        roster: &Roster,
        pick: impl Fn(&Head) -> bool,
    ) -> (Vec<&'a SignedHead>, Vec<(LineId, WriterError)>) {
        let (mut ok, mut refused) = (Vec::new(), Vec::new());
        for (line, h) in &self.heads {
            if !pick(&h.head) {
                continue;
            }
            match roster.admit_signed(h) {
                Ok(()) => ok.push(h),
                Err(e) => refused.push((*line, e)),
            }
        }
        // A revoked writer whose line moved past its cut-off: its pinned last head, if held.
        for w in &roster.writers {
            let Some(c) = w.cutoff else { continue };
            let line = LineId::of(&w.key, "");
            let pinned = self.history.get(&c.head).filter(|h| {
                h.head.line() == line && pick(&h.head) && roster.admit_signed(h).is_ok()
            });
            if let Some(p) = pinned
                && !ok.iter().any(|h| h.head.line() == line)
            {
                ok.push(p);
            }
        }
        (ok, refused)
    }

    /// The merged view of branch `branch` (`""`: the site) under `roster`.
    pub fn view(&self, roster: &Roster, branch: &str) -> View {
        let (heads, refused) = self.admitted(roster, |h| h.branch == branch);
        let mut v = View::of(&heads);
        v.refused = refused;
        v
    }

    /// The view `spec` names: a branch's merged view, or one writer's line.
    pub fn view_of(&self, roster: &Roster, spec: &super::ViewSpec) -> View {
        match &spec.writer {
            Some(w) => self.line_view(roster, w, &spec.branch),
            None => self.view(roster, &spec.branch),
        }
    }

    /// The view of one line alone (`umbra fetch --writer`).
    pub fn line_view(&self, roster: &Roster, writer: &IdentityPublic, branch: &str) -> View {
        let line = LineId::of(writer, branch);
        let (heads, refused) = self.admitted(roster, |h| h.line() == line);
        let mut v = View::of(&heads);
        v.refused = refused;
        v
    }
}

/// One surviving entry of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its line ([`View::line`] says whose).
    pub line: LineId,
    /// Its dot: the line's sequence when it was written.
    pub dot: u64,
    /// File or tombstone.
    pub value: Value,
    /// The weight of its context (the default winner has the highest).
    pub weight: u128,
}

/// A path's surviving entries, the default winner first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathState {
    /// The path.
    pub path: String,
    /// Survivors: one, or several for a conflict.
    pub candidates: Vec<Candidate>,
}

impl PathState {
    /// Whether the survivors disagree (several survivors with one value are not a conflict:
    /// two writers wrote the same thing).
    pub fn is_conflict(&self) -> bool {
        self.candidates
            .split_first()
            .is_some_and(|(w, rest)| rest.iter().any(|c| c.value != w.value))
    }
}

/// A merged view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// Every path with a survivor, sorted (tombstones included; they hide the path).
    pub paths: Vec<PathState>,
    /// Heads the roster refused, with the reason.
    pub refused: Vec<(LineId, WriterError)>,
    /// The lines merged.
    pub lines: Vec<LineInfo>,
}

/// One line a view merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineInfo {
    /// The line.
    pub line: LineId,
    /// Its writer.
    pub writer: IdentityPublic,
    /// Its branch.
    pub branch: String,
    /// The sequence of the head merged.
    pub seq: u64,
    /// BLAKE3 of that head.
    pub digest: [u8; 32],
    /// The writer's named branches that head lists (`11-writers.md#branches`).
    pub branches: Vec<String>,
}

impl View {
    /// Merge `heads` (each of its own line).
    pub fn of(heads: &[&SignedHead]) -> View {
        // Per head, once: its line, and each context's own dot and weight.
        let lines: Vec<LineId> = heads.iter().map(|h| h.head.line()).collect();
        let ctx_facts: Vec<Vec<(u64, u128)>> = heads
            .iter()
            .zip(&lines)
            .map(|(h, l)| {
                h.head
                    .contexts
                    .iter()
                    .map(|c| (c.get(l), c.weight()))
                    .collect()
            })
            .collect();
        let mut cursors = vec![0usize; heads.len()];
        let mut paths = Vec::new();
        let mut here: Vec<usize> = Vec::with_capacity(heads.len());
        loop {
            // The smallest next path among the heads' sorted entries.
            let mut min: Option<&str> = None;
            for (i, h) in heads.iter().enumerate() {
                if let Some(e) = h.head.entries.get(cursors[i])
                    && min.is_none_or(|m| e.path.as_str() < m)
                {
                    min = Some(&e.path);
                }
            }
            let Some(path) = min else { break };
            here.clear();
            for (i, h) in heads.iter().enumerate() {
                if h.head
                    .entries
                    .get(cursors[i])
                    .is_some_and(|e| e.path == path)
                {
                    here.push(i);
                }
            }
            let mut candidates = Vec::with_capacity(here.len());
            for &j in &here {
                let ej = &heads[j].head.entries[cursors[j]];
                let (dj, weight) = ctx_facts[j]
                    .get(usize::from(ej.ctx))
                    .copied()
                    .unwrap_or((0, 0));
                let lj = lines[j];
                let dominated = here.iter().any(|&i| {
                    let hi = &heads[i].head;
                    i != j && lines[i] != lj && hi.ctx(&hi.entries[cursors[i]]).get(&lj) >= dj
                });
                if !dominated {
                    candidates.push(Candidate {
                        line: lj,
                        dot: dj,
                        value: ej.value.clone(),
                        weight,
                    });
                }
            }
            candidates.sort_by(|a, b| b.weight.cmp(&a.weight).then(a.line.cmp(&b.line)));
            paths.push(PathState {
                path: path.to_string(),
                candidates,
            });
            for &i in &here {
                cursors[i] += 1;
            }
        }
        View {
            paths,
            refused: Vec::new(),
            lines: heads
                .iter()
                .zip(&lines)
                .map(|(h, l)| LineInfo {
                    line: *l,
                    writer: h.head.writer,
                    branch: h.head.branch.clone(),
                    seq: h.head.seq,
                    digest: h.digest(),
                    branches: h.head.branches.clone(),
                })
                .collect(),
        }
    }

    /// Who wrote `line`, among the lines merged.
    pub fn line(&self, line: &LineId) -> Option<&LineInfo> {
        self.lines.iter().find(|l| l.line == *line)
    }

    /// The state of `path`.
    pub fn path(&self, path: &str) -> Option<&PathState> {
        self.paths
            .binary_search_by(|p| p.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.paths[i])
    }

    /// The file served at `path` (the default winner, unless it is a tombstone).
    pub fn file(&self, path: &str) -> Option<&FileRef> {
        match &self.path(path)?.candidates.first()?.value {
            Value::File(f) => Some(f),
            Value::Tombstone => None,
        }
    }

    /// Every served file, by path.
    pub fn files(&self) -> impl Iterator<Item = (&str, &FileRef)> {
        self.paths
            .iter()
            .filter_map(|p| match &p.candidates.first()?.value {
                Value::File(f) => Some((p.path.as_str(), f)),
                Value::Tombstone => None,
            })
    }

    /// The paths in conflict.
    pub fn conflicts(&self) -> impl Iterator<Item = &PathState> {
        self.paths.iter().filter(|p| p.is_conflict())
    }

    /// The view hash (`11-writers.md#view-hash`): equal views, and only equal views, have
    /// equal hashes, whatever order the heads came in.
    pub fn hash(&self) -> [u8; 32] {
        // One buffer hashed once: many small updates cost more than the bytes.
        let mut w = Writer::with_capacity(self.paths.len() * 128);
        w.bytes(b"umbra-view-v1");
        for p in &self.paths {
            w.u16(p.path.len() as u16).bytes(p.path.as_bytes());
            w.u16(p.candidates.len() as u16);
            for c in &p.candidates {
                w.bytes(&c.line.0).u64(c.dot);
                c.value.write(&mut w);
            }
        }
        crate::crypto::hash::hash(&w.into_vec())
    }
}
