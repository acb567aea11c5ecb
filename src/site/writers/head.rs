//! Writer manifests (`protocol-spec/11-writers.md#writer-manifest`): one writer's signed,
//! sequence-numbered snapshot of one line (a branch).
//!
//! A head holds only its own line's entries: files, or tombstones for deletions. Each entry
//! points into the manifest's table of causal contexts (the version vector the writer held
//! when it wrote that value; the entry's own line in it is the entry's *dot*). The head's
//! vector is what the writer had seen of every line when it signed, joined transitively, so a
//! manifest whose vector covers two sides is a merge. `prev` is the digest of the line's
//! previous manifest, so old manifests form a chain (a DAG across lines, through vectors).
//! Sequences are per writer, across all its lines.
//!
//! Not in this module: whether the roster admits a head ([`super::roster`]), the view of many
//! heads ([`super::merge`]).

use crate::crypto::hash;
use crate::crypto::keys::{IdentityKey, IdentityPublic, Signature};
use crate::site::SiteError;
use crate::site::address::SiteAddress;
use crate::site::manifest::{
    MAX_ENTRIES, MAX_MANIFEST, MAX_MEDIA_TYPE, MAX_PATH, Manifest, block_count, check_path,
};
use crate::time::WallTime;
use crate::wire::{DecodeError, Reader, Writer};

use super::{LineId, MAX_BRANCH, MAX_BRANCHES, MAX_CONTEXTS, MAX_LINES, WriterError, check_branch};

/// Writer manifest format version (version 1 is the single-writer manifest).
pub const HEAD_VERSION: u8 = 2;
/// The signature label of writer manifests (`00-overview.md#signatures`).
pub const HEAD_LABEL: &str = "writer-manifest";

/// A version vector: the highest sequence seen of each line, sorted by line, no zeros.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Vector(pub Vec<(LineId, u64)>);

impl Vector {
    /// The sequence seen of `line` (0: none).
    pub fn get(&self, line: &LineId) -> u64 {
        self.0
            .binary_search_by(|(l, _)| l.cmp(line))
            .map_or(0, |i| self.0[i].1)
    }

    /// Raise `line` to at least `seq`.
    pub fn raise(&mut self, line: LineId, seq: u64) {
        match self.0.binary_search_by(|(l, _)| l.cmp(&line)) {
            Ok(i) => self.0[i].1 = self.0[i].1.max(seq),
            Err(i) if seq > 0 => self.0.insert(i, (line, seq)),
            Err(_) => {}
        }
    }

    /// The pointwise maximum with `other`.
    pub fn join(&mut self, other: &Vector) {
        for (l, s) in &other.0 {
            self.raise(*l, *s);
        }
    }

    /// Whether every line of `self` is at most `other`'s.
    pub fn le(&self, other: &Vector) -> bool {
        self.0.iter().all(|(l, s)| *s <= other.get(l))
    }

    /// The sum of its sequences (the weight used to pick a conflict's default winner).
    pub fn weight(&self) -> u128 {
        self.0.iter().map(|(_, s)| u128::from(*s)).sum()
    }
}

/// A file's reference in a writer manifest (as in a version-1 entry).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileRef {
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the whole file.
    pub hash: [u8; 32],
    /// Media type served for it.
    pub media_type: String,
    /// BLAKE3 of each block, in order.
    pub blocks: Vec<[u8; 32]>,
}

/// What an entry says about its path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// The path holds this file.
    File(FileRef),
    /// The path was deleted.
    Tombstone,
}

impl Value {
    /// Its encoding: `kind u8` (1 file, 2 tombstone), then for a file `size u64 || hash [32]
    /// || u8 len || media type || u32 n || n × block hash [32]` (`11-writers.md#writer-manifest`,
    /// also hashed into the view hash, `#view-hash`).
    pub fn write(&self, w: &mut Writer) {
        match self {
            Value::Tombstone => {
                w.u8(2);
            }
            Value::File(f) => {
                w.u8(1).u64(f.size).bytes(&f.hash);
                w.u8(f.media_type.len() as u8)
                    .bytes(f.media_type.as_bytes());
                w.u32(f.blocks.len() as u32);
                for b in &f.blocks {
                    w.bytes(b);
                }
            }
        }
    }
}

/// One entry of a head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadEntry {
    /// Relative path (`07-sites.md#paths`).
    pub path: String,
    /// Index into the head's contexts.
    pub ctx: u16,
    /// File or tombstone.
    pub value: Value,
}

/// A writer manifest's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The site's key.
    pub site: IdentityPublic,
    /// The writer's key (it signs).
    pub writer: IdentityPublic,
    /// Branch name (`""`: the writer's main line).
    pub branch: String,
    /// Sequence, per writer across its lines: higher replaces lower.
    pub seq: u64,
    /// The roster sequence it was written under (0: the implicit roster).
    pub roster: u64,
    /// When it was signed.
    pub published: WallTime,
    /// When it stops being valid (`u64::MAX`: never).
    pub expires: WallTime,
    /// BLAKE3 of this line's previous manifest (zeros: none, the line's first).
    pub prev: [u8; 32],
    /// What the writer had seen of each line, its own line at `seq`.
    pub vector: Vector,
    /// The causal contexts its entries point to.
    pub contexts: Vec<Vector>,
    /// Entries, sorted by path, unique.
    pub entries: Vec<HeadEntry>,
    /// The writer's named branches, as it knew them when it signed (sorted, unique; readers
    /// discover a writer's branches from its main line, `11-writers.md#branches`).
    pub branches: Vec<String>,
}

impl Head {
    /// Its line.
    pub fn line(&self) -> LineId {
        LineId::of(&self.writer, &self.branch)
    }

    /// The context of `e`.
    pub fn ctx(&self, e: &HeadEntry) -> &Vector {
        static EMPTY: Vector = Vector(Vec::new());
        self.contexts.get(usize::from(e.ctx)).unwrap_or(&EMPTY)
    }

    /// The blocks its files list, in order (for a storer renewing them, `06-dht.md#renewal`).
    pub fn blocks(&self) -> Vec<[u8; 32]> {
        self.entries
            .iter()
            .filter_map(|e| match &e.value {
                Value::File(f) => Some(f.blocks.iter().copied()),
                Value::Tombstone => None,
            })
            .flatten()
            .collect()
    }

    /// The entry for `path`.
    pub fn entry(&self, path: &str) -> Option<&HeadEntry> {
        self.entries
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// A version-1 manifest read as the site key's main line: every file written in the
    /// context `{main line: seq}` (`11-writers.md#version-1`).
    pub fn from_v1(m: &Manifest) -> Head {
        let line = LineId::of(&m.site, "");
        let mut vector = Vector::default();
        vector.raise(line, m.seq);
        Head {
            site: m.site,
            writer: m.site,
            branch: String::new(),
            seq: m.seq,
            roster: 0,
            published: m.published,
            expires: m.expires,
            prev: [0; 32],
            contexts: vec![vector.clone()],
            vector,
            entries: m
                .entries
                .iter()
                .map(|e| HeadEntry {
                    path: e.path.clone(),
                    ctx: 0,
                    value: Value::File(FileRef {
                        size: e.size,
                        hash: e.hash,
                        media_type: e.media_type.clone(),
                        blocks: e.blocks.clone(),
                    }),
                })
                .collect(),
            branches: Vec::new(),
        }
    }

    /// Check the rules a parser checks (`11-writers.md#writer-manifest`).
    pub fn check(&self) -> Result<(), WriterError> {
        check_branch(&self.branch)?;
        let own = self.line();
        if self.seq == 0 || self.vector.get(&own) != self.seq {
            return Err(WriterError::BadVector(
                "the vector must hold its own line at seq",
            ));
        }
        if self.vector.0.len() > MAX_LINES || self.contexts.len() > MAX_CONTEXTS {
            return Err(WriterError::VectorTooLarge);
        }
        check_sorted(&self.vector)?;
        for c in &self.contexts {
            check_sorted(c)?;
            if c.get(&own) == 0 {
                return Err(WriterError::BadVector("a context without its own line"));
            }
            if !c.le(&self.vector) {
                return Err(WriterError::BadVector("a context past the vector"));
            }
        }
        if self.entries.len() > MAX_ENTRIES {
            return Err(SiteError::TooLarge.into());
        }
        if self.branches.len() > MAX_BRANCHES
            || self.branches.iter().any(String::is_empty)
            || !self.branches.windows(2).all(|w| w[0] < w[1])
        {
            return Err(WriterError::BadBranch);
        }
        for b in &self.branches {
            check_branch(b)?;
        }
        for (i, e) in self.entries.iter().enumerate() {
            check_path(&e.path)?;
            if i > 0 && self.entries[i - 1].path >= e.path {
                return Err(SiteError::Unsorted.into());
            }
            if usize::from(e.ctx) >= self.contexts.len() {
                return Err(WriterError::BadVector(
                    "an entry's context is not in the table",
                ));
            }
            if let Value::File(f) = &e.value {
                if f.size > crate::site::manifest::MAX_FILE
                    || f.blocks.len() as u64 != block_count(f.size)
                {
                    return Err(SiteError::BlockCount.into());
                }
                if f.media_type.is_empty()
                    || f.media_type.len() > MAX_MEDIA_TYPE
                    || !f
                        .media_type
                        .bytes()
                        .all(|b| b.is_ascii_graphic() || b == b' ')
                {
                    return Err(SiteError::BadMediaType.into());
                }
            }
        }
        Ok(())
    }

    fn encode_unsigned(&self) -> Result<Vec<u8>, WriterError> {
        self.check()?;
        let own = self.line();
        // The line table: its own line first, then the others in order.
        let mut lines = vec![own];
        lines.extend(self.vector.0.iter().map(|(l, _)| *l).filter(|l| *l != own));
        let index = |l: &LineId| lines.iter().position(|x| x == l).unwrap_or(0) as u16;
        let mut w = Writer::new();
        w.u8(HEAD_VERSION)
            .bytes(&self.site.to_bytes())
            .bytes(&self.writer.to_bytes())
            .u8(self.branch.len() as u8)
            .bytes(self.branch.as_bytes())
            .u64(self.seq)
            .u64(self.roster)
            .u64(self.published.0)
            .u64(self.expires.0)
            .bytes(&self.prev)
            .u16(lines.len() as u16);
        for l in &lines[1..] {
            w.bytes(&l.0);
        }
        for l in &lines {
            w.u64(self.vector.get(l));
        }
        w.u16(self.contexts.len() as u16);
        for c in &self.contexts {
            let mut pairs: Vec<(u16, u64)> = c.0.iter().map(|(l, s)| (index(l), *s)).collect();
            pairs.sort_unstable();
            w.u16(pairs.len() as u16);
            for (i, s) in pairs {
                w.u16(i).u64(s);
            }
        }
        w.u32(self.entries.len() as u32);
        for e in &self.entries {
            w.u16_prefixed("path", e.path.as_bytes(), MAX_PATH)?;
            w.u16(e.ctx);
            e.value.write(&mut w);
        }
        w.u8(self.branches.len() as u8);
        for b in &self.branches {
            w.u8(b.len() as u8).bytes(b.as_bytes());
        }
        Ok(w.into_vec())
    }

    /// Sign with the writer's key; returns the wire encoding.
    pub fn sign(&self, key: &IdentityKey) -> Result<Vec<u8>, WriterError> {
        if key.public() != self.writer {
            return Err(SiteError::WrongKey.into());
        }
        let mut out = self.encode_unsigned()?;
        let sig = key.sign(HEAD_LABEL, &out);
        out.extend_from_slice(&sig.0);
        if out.len() > MAX_MANIFEST {
            return Err(SiteError::TooLarge.into());
        }
        Ok(out)
    }
}

fn check_sorted(v: &Vector) -> Result<(), WriterError> {
    let sorted = v.0.windows(2).all(|w| w[0].0 < w[1].0) && v.0.iter().all(|(_, s)| *s > 0);
    if sorted {
        Ok(())
    } else {
        Err(WriterError::BadVector(
            "lines unsorted, repeated or at zero",
        ))
    }
}

/// A head whose signature verified under its writer's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHead {
    /// The manifest.
    pub head: Head,
    /// Its wire bytes (a version-1 manifest's, for the site key's main line read from one).
    pub bytes: Vec<u8>,
}

impl SignedHead {
    /// BLAKE3 of the wire bytes.
    pub fn digest(&self) -> [u8; 32] {
        hash::hash(&self.bytes)
    }

    /// Whether it is valid at `now`: not expired, not published more than 600 s ahead
    /// (`07-sites.md#manifest`).
    pub fn check_time(&self, now: WallTime) -> Result<(), WriterError> {
        if now.0 >= self.head.expires.0 {
            return Err(SiteError::Expired {
                expires: self.head.expires.0,
                now: now.0,
            }
            .into());
        }
        if self.head.published.0 > now.0.saturating_add(600) {
            return Err(SiteError::NotYetValid.into());
        }
        Ok(())
    }
}

/// Parse a writer manifest (version 2) or a site manifest (version 1) of `site`, checking
/// format, limits and signature. Whether the roster admits it is [`super::roster::Roster::admit`].
pub fn parse(bytes: &[u8], site: &SiteAddress) -> Result<SignedHead, WriterError> {
    if bytes.first() == Some(&crate::site::manifest::MANIFEST_VERSION) {
        let v = crate::site::manifest::parse(bytes)?.verify_signature(site)?;
        return Ok(SignedHead {
            head: Head::from_v1(v.manifest()),
            bytes: bytes.to_vec(),
        });
    }
    if bytes.len() > MAX_MANIFEST {
        return Err(SiteError::TooLarge.into());
    }
    let mut r = Reader::new(bytes);
    let version = r.u8()?;
    if version != HEAD_VERSION {
        return Err(WriterError::Version(version));
    }
    let key = |r: &mut Reader| -> Result<IdentityPublic, WriterError> {
        Ok(IdentityPublic::from_bytes(&r.array()?).map_err(|_| SiteError::WrongKey)?)
    };
    let site_key = key(&mut r)?;
    if site_key != site.0 {
        return Err(WriterError::WrongSite);
    }
    let writer = key(&mut r)?;
    let blen = usize::from(r.u8()?);
    if blen > MAX_BRANCH {
        return Err(WriterError::BadBranch);
    }
    let branch = String::from_utf8(r.take(blen)?.to_vec()).map_err(|_| WriterError::BadBranch)?;
    check_branch(&branch)?;
    let (seq, roster) = (r.u64()?, r.u64()?);
    let (published, expires) = (WallTime(r.u64()?), WallTime(r.u64()?));
    let prev = r.array()?;
    let n = usize::from(r.u16()?);
    if n == 0 || n > MAX_LINES {
        return Err(WriterError::VectorTooLarge);
    }
    let mut lines = vec![LineId::of(&writer, &branch)];
    for _ in 1..n {
        lines.push(LineId(r.array()?));
    }
    if !lines[1..].windows(2).all(|w| w[0] < w[1]) || lines[1..].contains(&lines[0]) {
        return Err(WriterError::BadVector(
            "lines unsorted, repeated or at zero",
        ));
    }
    let mut vector = Vector(Vec::with_capacity(n));
    for l in &lines {
        let s = r.u64()?;
        if s == 0 {
            return Err(WriterError::BadVector(
                "lines unsorted, repeated or at zero",
            ));
        }
        vector.0.push((*l, s));
    }
    vector.0.sort_unstable_by_key(|p| p.0);
    let m = usize::from(r.u16()?);
    if m > MAX_CONTEXTS {
        return Err(WriterError::VectorTooLarge);
    }
    let mut contexts = Vec::with_capacity(m);
    for _ in 0..m {
        let k = usize::from(r.u16()?);
        if k > n {
            return Err(WriterError::VectorTooLarge);
        }
        let mut c = Vector(Vec::with_capacity(k));
        let mut last = None;
        for _ in 0..k {
            let (i, s) = (usize::from(r.u16()?), r.u64()?);
            if last.is_some_and(|l| l >= i) || i >= n {
                return Err(WriterError::BadVector(
                    "context indices unsorted or out of the table",
                ));
            }
            last = Some(i);
            c.0.push((lines[i], s));
        }
        c.0.sort_unstable_by_key(|p| p.0);
        contexts.push(c);
    }
    let count = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
    if count > MAX_ENTRIES {
        return Err(SiteError::TooLarge.into());
    }
    let mut entries = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let path = String::from_utf8(r.u16_prefixed("path", MAX_PATH)?.to_vec())
            .map_err(|_| SiteError::BadPath)?;
        let ctx = r.u16()?;
        let value = match r.u8()? {
            2 => Value::Tombstone,
            1 => {
                let size = r.u64()?;
                let hash = r.array()?;
                let mt = usize::from(r.u8()?);
                if mt > MAX_MEDIA_TYPE {
                    return Err(SiteError::BadMediaType.into());
                }
                let media_type =
                    String::from_utf8(r.take(mt)?.to_vec()).map_err(|_| SiteError::BadMediaType)?;
                let nb = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
                if nb > r.remaining() / 32 {
                    return Err(DecodeError::Truncated {
                        needed: nb.saturating_mul(32),
                        offset: r.consumed(),
                    }
                    .into());
                }
                let mut blocks = Vec::with_capacity(nb);
                for _ in 0..nb {
                    blocks.push(r.array()?);
                }
                Value::File(FileRef {
                    size,
                    hash,
                    media_type,
                    blocks,
                })
            }
            k => return Err(WriterError::EntryKind(k)),
        };
        entries.push(HeadEntry { path, ctx, value });
    }
    let nb = usize::from(r.u8()?);
    if nb > MAX_BRANCHES {
        return Err(WriterError::BadBranch);
    }
    let mut branches = Vec::with_capacity(nb);
    for _ in 0..nb {
        let len = usize::from(r.u8()?);
        if len > MAX_BRANCH {
            return Err(WriterError::BadBranch);
        }
        branches
            .push(String::from_utf8(r.take(len)?.to_vec()).map_err(|_| WriterError::BadBranch)?);
    }
    let signed = r.consumed();
    let sig = Signature(r.array()?);
    r.finish()?;
    let head = Head {
        site: site_key,
        writer,
        branch,
        seq,
        roster,
        published,
        expires,
        prev,
        vector,
        contexts,
        entries,
        branches,
    };
    head.check()?;
    writer
        .verify(HEAD_LABEL, &bytes[..signed], &sig)
        .map_err(|_| SiteError::BadSignature)?;
    Ok(SignedHead {
        head,
        bytes: bytes.to_vec(),
    })
}
