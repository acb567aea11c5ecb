//! A writer's next head (`protocol-spec/11-writers.md#publishing-as-a-writer`): from its
//! previous head, the heads it has seen and the files it wants, the entries that say exactly
//! that and nothing more.
//!
//! Per path the writer names: if the view already serves that file from one survivor, the
//! writer keeps its own entry when the survivor is its own and otherwise drops its entry
//! (adopting the survivor, which covers everything the dropped entry did); else it writes an
//! entry in the context of everything it has seen, which dominates every survivor (a merge
//! or a conflict's resolution). Its own files it no longer names get a tombstone while they
//! still survive; an explicit deletion tombstones any surviving file under its prefixes.
//! Other writers' files are never touched by leaving them out.
//!
//! Not in this module: choosing the sequence (the caller's, one counter per writer), reading
//! files or moving heads.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::crypto::hash;
use crate::crypto::keys::IdentityPublic;
use crate::site::manifest::BLOCK_SIZE;
use crate::time::WallTime;

use super::head::{FileRef, Head, HeadEntry, SignedHead, Value, Vector};
use super::merge::{HeadSet, View};
use super::roster::Roster;
use super::{LineId, MAX_LINES, WriterError, check_branch};

/// Files cut into blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cut {
    /// Each file's reference, by path.
    pub files: BTreeMap<String, FileRef>,
    /// Every block, by hash (each once).
    pub blocks: BTreeMap<[u8; 32], Vec<u8>>,
}

/// Cut `files` (path, content) into blocks, as a version-1 build does
/// (`07-sites.md#manifest`).
pub fn cut(files: &[(String, Vec<u8>)]) -> Result<Cut, WriterError> {
    let mut refs = BTreeMap::new();
    let mut blocks = BTreeMap::new();
    for (path, content) in files {
        crate::site::manifest::check_path(path)?;
        let mut list = Vec::with_capacity(content.len().div_ceil(BLOCK_SIZE));
        for chunk in content.chunks(BLOCK_SIZE) {
            let h = hash::hash(chunk);
            blocks.entry(h).or_insert_with(|| chunk.to_vec());
            list.push(h);
        }
        refs.insert(
            path.clone(),
            FileRef {
                size: content.len() as u64,
                hash: hash::hash(content),
                media_type: crate::site::media_type(path).to_string(),
                blocks: list,
            },
        );
    }
    Ok(Cut {
        files: refs,
        blocks,
    })
}

/// What a writer wants its line to say.
#[derive(Debug, Clone)]
pub struct Intent<'a> {
    /// The site.
    pub site: IdentityPublic,
    /// The writer.
    pub writer: IdentityPublic,
    /// The branch (`""`: its main line).
    pub branch: &'a str,
    /// The new sequence (above every sequence the writer signed on any line).
    pub seq: u64,
    /// When it is signed, and until when it is valid.
    pub published: WallTime,
    /// Expiry (`u64::MAX`: never).
    pub expires: WallTime,
    /// The files it names, by path.
    pub files: &'a BTreeMap<String, FileRef>,
    /// Paths it deletes whoever wrote them (inside its prefixes).
    pub delete: &'a BTreeSet<String>,
    /// The writer's named branches, to list in the head (`11-writers.md#branches`).
    pub branches: &'a BTreeSet<String>,
    /// Resolve every conflict on a path it names or drops in its own favour. Without it, a
    /// conflict stays while the writer's side is unchanged, and dropping its side of one
    /// leaves a tombstone concurrent with the other sides (still a listed conflict).
    pub resolve: bool,
}

/// Build the writer's next head on `intent.branch`, given the line's previous head (`prev`),
/// what it has seen (`seen`) and the roster it writes under.
pub fn next_head(
    intent: &Intent<'_>,
    prev: Option<&SignedHead>,
    seen: &HeadSet,
    roster: &Roster,
) -> Result<Head, WriterError> {
    check_branch(intent.branch)?;
    let own = LineId::of(&intent.writer, intent.branch);
    let grant = roster
        .grant(&intent.writer)
        .ok_or_else(|| WriterError::NotAWriter {
            writer: crate::wire::hex::encode(&intent.writer.to_bytes()[..8]),
            roster: roster.seq,
        })?;
    if let Some(p) = intent
        .files
        .keys()
        .chain(intent.delete.iter())
        .find(|p| !grant.covers(p))
    {
        return Err(WriterError::OutsidePrefix { path: p.clone() });
    }
    if let Some(p) = prev
        && p.head.seq >= intent.seq
    {
        return Err(WriterError::BadVector(
            "the new sequence must be above the previous one",
        ));
    }
    // The view the writer acts on: every admitted head of the branch, its own previous one
    // in place of whatever the set holds for its line.
    let (mut heads, _) = seen.admitted(roster, |h| h.branch == intent.branch && h.line() != own);
    if let Some(p) = prev {
        heads.push(p);
    }
    let view = View::of(&heads);
    let mut vector = Vector::default();
    for h in &heads {
        vector.join(&h.head.vector);
    }
    vector.raise(own, intent.seq);
    if vector.0.len() > MAX_LINES {
        return Err(WriterError::VectorTooLarge);
    }
    let survivor_of = |path: &str| {
        view.path(path)
            .map(|p| p.candidates.as_slice())
            .unwrap_or(&[])
    };
    let mine: BTreeMap<&str, (&HeadEntry, &Vector)> = prev
        .map(|p| {
            p.head
                .entries
                .iter()
                .map(|e| (e.path.as_str(), (e, p.head.ctx(e))))
                .collect()
        })
        .unwrap_or_default();
    // An entry in its old context, at the new sequence: what the old one dominated and no more.
    let narrow = |c: &Vector| {
        let mut c = c.clone();
        c.raise(own, intent.seq);
        c
    };
    let mut out: BTreeMap<String, (Value, Vector)> = BTreeMap::new();
    for (path, f) in intent.files {
        let want = Value::File(f.clone());
        let survivors = survivor_of(path);
        let own_survivor = survivors.iter().find(|s| s.line == own);
        let agreed = !survivors.is_empty() && survivors.iter().all(|s| s.value == want);
        match (survivors, mine.get(path.as_str())) {
            // Already served as wanted: keep its own entry if it is a survivor, else adopt
            // the others' (they cover its own, dominated, entry).
            (_, Some((e, c))) if agreed && own_survivor.is_some() => {
                out.insert(path.clone(), (e.value.clone(), (*c).clone()));
            }
            _ if agreed => {}
            // A conflict, its own side unchanged: it stays unless asked to resolve.
            (_, Some((e, c)))
                if !intent.resolve && own_survivor.is_some_and(|s| s.value == want) =>
            {
                out.insert(path.clone(), (e.value.clone(), (*c).clone()));
            }
            // New content (or a resolution): written over everything seen.
            _ => {
                out.insert(path.clone(), (want, vector.clone()));
            }
        }
    }
    for (path, (e, c)) in &mine {
        if intent.files.contains_key(*path) || intent.delete.contains(*path) {
            continue;
        }
        let survivors = survivor_of(path);
        let survives = survivors.iter().any(|s| s.line == own);
        match (&e.value, survives) {
            (Value::Tombstone, true) => {
                out.insert(path.to_string(), (Value::Tombstone, (*c).clone()));
            }
            (Value::File(_), true)
                if survivors.iter().any(|s| s.value != e.value) && !intent.resolve =>
            {
                out.insert(path.to_string(), (Value::Tombstone, narrow(c)));
            }
            (Value::File(_), true) => {
                out.insert(path.to_string(), (Value::Tombstone, vector.clone()));
            }
            // Dominated: whoever dominates it covers all it did; dropping it changes nothing.
            (_, false) => {}
        }
    }
    for path in intent.delete {
        let serves = survivor_of(path)
            .iter()
            .any(|s| matches!(s.value, Value::File(_)));
        if serves {
            out.insert(path.clone(), (Value::Tombstone, vector.clone()));
        }
    }
    // The context table: each distinct context once, in order of first use.
    let mut contexts: Vec<Vector> = Vec::new();
    let mut index: HashMap<Vector, usize> = HashMap::new();
    let mut entries = Vec::with_capacity(out.len());
    for (path, (value, ctx)) in out {
        let i = *index.entry(ctx).or_insert_with_key(|c| {
            contexts.push(c.clone());
            contexts.len() - 1
        });
        entries.push(HeadEntry {
            path,
            ctx: u16::try_from(i).map_err(|_| WriterError::VectorTooLarge)?,
            value,
        });
    }
    let head = Head {
        site: intent.site,
        writer: intent.writer,
        branch: intent.branch.to_string(),
        seq: intent.seq,
        roster: roster.seq,
        published: intent.published,
        expires: intent.expires,
        prev: prev.map(SignedHead::digest).unwrap_or([0; 32]),
        vector,
        contexts,
        entries,
        branches: intent.branches.iter().cloned().collect(),
    };
    head.check()?;
    Ok(head)
}

/// The writer's main line again, unchanged but for the branches it lists: its previous
/// main-line head (`prev`, or none: an empty line) at `intent.seq`, every entry kept in its
/// own context, listing `intent.branches` (`11-writers.md#branches`). `intent.files`,
/// `delete` and `resolve` are not used. This is how a writer's new branch becomes known to
/// readers, who read branch lists from main lines.
pub fn announce(
    intent: &Intent<'_>,
    prev: Option<&SignedHead>,
    roster: &Roster,
) -> Result<Head, WriterError> {
    let own = LineId::of(&intent.writer, "");
    if let Some(p) = prev
        && (p.head.seq >= intent.seq || p.head.line() != own)
    {
        return Err(WriterError::BadVector(
            "the new sequence must be above the previous one",
        ));
    }
    let mut head = match prev {
        Some(p) => p.head.clone(),
        None => Head {
            site: intent.site,
            writer: intent.writer,
            branch: String::new(),
            seq: 0,
            roster: roster.seq,
            published: intent.published,
            expires: intent.expires,
            prev: [0; 32],
            vector: Vector::default(),
            contexts: Vec::new(),
            entries: Vec::new(),
            branches: Vec::new(),
        },
    };
    head.seq = intent.seq;
    head.roster = roster.seq;
    head.published = intent.published;
    head.expires = intent.expires;
    head.prev = prev.map(SignedHead::digest).unwrap_or([0; 32]);
    head.vector.raise(own, intent.seq);
    head.branches = intent.branches.iter().cloned().collect();
    head.check()?;
    Ok(head)
}
