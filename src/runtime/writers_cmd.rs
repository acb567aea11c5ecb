//! `umbra writers`, `umbra publish --site`, `umbra log` and `umbra fetch --writer/--branch`:
//! keys, files and printing around the writers apps (`crate::app::writers`), run on a fresh
//! reader node by the tokio driver (`protocol-spec/11-writers.md`).
//!
//! Not in this module: the protocol, verification and the merge (`app::writers`,
//! `site::writers`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

use super::driver::wall_now;
use super::error::RuntimeError;
use super::relay_cmd::{load_bootstrap, runtime};
use super::site_cmd::{Cache, Shown, Watched, drive, finish, read_tree};
use super::writer_state::{self, WriterState};
use crate::app::Report;
use crate::app::writers::{Gather, Gathered, Progress, Upload};
use crate::crypto::keys::IdentityPublic;
use crate::crypto::keystore;
use crate::directory::Directory;
use crate::site::address::SiteAddress;
use crate::site::writers::head::{SignedHead, Value};
use crate::site::writers::merge::View;
use crate::site::writers::roster::{self, Cutoff, Roster, RosterWriter};
use crate::site::writers::stage::{Intent, announce, cut, next_head};
use crate::site::writers::{
    LineId, MAX_BRANCHES, WriterError, check_branch, line_dht_key, roster_dht_key,
};
use crate::time::WallTime;
use crate::wire::dht_msg::{Record, RecordKind};
use crate::wire::hex;

impl Watched for Gather {
    const LABEL: &'static str = "reading the site's writers";
    fn poll_report(&mut self) -> Option<Report> {
        None
    }
}

impl Watched for Upload {
    const LABEL: &'static str = "storing";
    fn poll_report(&mut self) -> Option<Report> {
        None
    }
}

/// A writer's public key: 64 hex digits, or a site address (its key).
pub fn parse_writer(s: &str) -> Result<IdentityPublic, RuntimeError> {
    let bad = || {
        RuntimeError::Usage(format!(
            "--writer {s:?}: not a public key (64 hex digits) or an address"
        ))
    };
    if s.len() == 64 {
        let b = hex::decode(s).map_err(|_| bad())?;
        let key: [u8; 32] = b.as_slice().try_into().map_err(|_| bad())?;
        return IdentityPublic::from_bytes(&key).map_err(|_| bad());
    }
    SiteAddress::parse(s).map(|a| a.0).map_err(|_| bad())
}

/// A `--prefix` as a user writes it (`/blog/`, `blog/`, `/`) as a roster prefix.
pub fn parse_prefix(s: &str) -> Result<String, RuntimeError> {
    let p = s.trim_start_matches('/').to_string();
    roster::check_prefix(&p).map_err(|e| RuntimeError::Usage(format!("--prefix {s:?}: {e}")))?;
    Ok(p)
}

async fn gather(
    list: Directory,
    (site, branch): (SiteAddress, &str),
    extra: Vec<LineId>,
    depth: u32,
    timeout: u64,
    state: Option<&Cache>,
) -> Result<Gathered, RuntimeError> {
    let mut app = Shown::new(Gather::new(site, branch, extra).with_history(depth));
    drive(list, timeout, &mut app, state).await?;
    match app.app.state {
        Progress::Done => Ok(app.app.found),
        Progress::Failed(why) => Err(RuntimeError::Network {
            what: "reading the site's writers",
            why,
        }),
        _ => Err(RuntimeError::Network {
            what: "reading the site's writers",
            why: "did not finish".into(),
        }),
    }
}

async fn upload(
    list: Directory,
    (last, also): (Record, Vec<Record>),
    expires: u64,
    blocks: &BTreeMap<[u8; 32], Vec<u8>>,
    state: Option<&Cache>,
    timeout: u64,
) -> Result<u8, RuntimeError> {
    let mut app = Shown::new(Upload::with(last, expires, blocks, &BTreeSet::new(), also));
    drive(list, timeout, &mut app, state).await?;
    match app.app.state {
        Progress::Done => Ok(app.app.min_copies),
        Progress::Failed(why) => Err(RuntimeError::Network {
            what: "storing",
            why,
        }),
        _ => Err(RuntimeError::Network {
            what: "storing",
            why: "did not finish".into(),
        }),
    }
}

fn key_hex(k: &IdentityPublic) -> String {
    hex::encode(&k.to_bytes())
}

/// Print a roster, one writer a line.
fn print_roster(site: &SiteAddress, r: &Roster, signed: bool) {
    println!(
        "roster {} of {site}{}",
        r.seq,
        if signed {
            ""
        } else {
            " (implicit: the site never signed one)"
        }
    );
    println!(
        "writer {}  prefixes: (the whole site)  site key",
        key_hex(&site.0)
    );
    for w in &r.writers {
        let prefixes: Vec<String> = w
            .prefixes
            .iter()
            .map(|p| {
                if p.is_empty() {
                    "(the whole site)".into()
                } else {
                    format!("/{p}")
                }
            })
            .collect();
        let state = match w.cutoff {
            Some(c) => format!("revoked after sequence {}", c.seq),
            None => "active".into(),
        };
        println!(
            "writer {}  prefixes: {}  {state}",
            key_hex(&w.key),
            prefixes.join(" ")
        );
    }
}

/// `umbra writers ADDRESS`: the site's roster as the network holds it.
pub fn list(address: &str, bootstrap: &Path, timeout: u64) -> ExitCode {
    let r = (|| -> Result<i32, RuntimeError> {
        let site = SiteAddress::parse(address)?;
        let list = load_bootstrap(bootstrap)?;
        let found = runtime()?.block_on(gather(list, (site, ""), vec![], 0, timeout, None))?;
        print_roster(
            &site,
            &found.roster_or_implicit(&site),
            found.roster.is_some(),
        );
        for why in &found.refused {
            eprintln!("refused: {why}");
        }
        Ok(0)
    })();
    finish("writers", r)
}

/// What `umbra writers add/revoke` changes.
pub enum Edit {
    /// Add a writer (or change its prefixes).
    Add(IdentityPublic, Vec<String>),
    /// Revoke a writer at its newest main-line manifest found.
    Revoke(IdentityPublic),
}

/// `umbra writers add|revoke`: sign the next roster with the site key and store it.
pub fn edit(key: &Path, change: Edit, bootstrap: &Path, timeout: u64) -> ExitCode {
    let r = (|| -> Result<i32, RuntimeError> {
        let key = keystore::read_identity(key)?;
        let site = SiteAddress(key.public());
        let list = load_bootstrap(bootstrap)?;
        let rt = runtime()?;
        let found = rt.block_on(gather(list.clone(), (site, ""), vec![], 0, timeout, None))?;
        let mut next = found.roster_or_implicit(&site);
        next.seq = wall_now().0.max(next.seq + 1);
        next.published = wall_now();
        match change {
            Edit::Add(w, prefixes) => {
                if w == site.0 {
                    return Err(RuntimeError::Usage(
                        "the site key is always a writer of the whole site".into(),
                    ));
                }
                let prefixes = if prefixes.is_empty() {
                    vec![String::new()]
                } else {
                    prefixes
                };
                next.writers.retain(|x| x.key != w);
                next.writers.push(RosterWriter {
                    key: w,
                    prefixes,
                    cutoff: None,
                });
            }
            Edit::Revoke(w) => {
                let line = LineId::of(&w, "");
                let last = found.heads.get(&line);
                let Some(entry) = next.writers.iter_mut().find(|x| x.key == w) else {
                    return Err(WriterError::NotAWriter {
                        writer: hex::encode(&w.to_bytes()[..8]),
                        roster: next.seq,
                    }
                    .into());
                };
                entry.cutoff = Some(Cutoff {
                    seq: last.map_or(0, |h| h.head.seq),
                    head: last.map_or([0; 32], SignedHead::digest),
                });
            }
        }
        next.writers.sort_by_key(|x| x.key.to_bytes());
        let bytes = next.sign(&key)?;
        let record = Record {
            kind: RecordKind::ROSTER,
            key: roster_dht_key(&site.0),
            value: bytes,
        };
        let copies = rt.block_on(upload(
            list,
            (record, vec![]),
            u64::MAX,
            &BTreeMap::new(),
            None,
            timeout,
        ))?;
        print_roster(&site, &next, true);
        eprintln!("stored the roster on {copies} nodes");
        Ok(0)
    })();
    finish("writers", r)
}

/// How `umbra publish --site` runs.
pub struct WriterPublish<'a> {
    /// The site.
    pub site: &'a str,
    /// The branch (`""`: the writer's main line).
    pub branch: &'a str,
    /// Resolve conflicts in the folder's favour.
    pub resolve: bool,
    /// Build and keep the manifest locally; send nothing.
    pub offline: bool,
    /// Validity of the manifest, in seconds.
    pub lifetime: u64,
    /// The writer's data directory (its memory of the site), if it has one.
    pub data_dir: Option<&'a Path>,
}

/// `umbra publish DIR --key W --site ADDRESS [--branch NAME] [--offline]`: publish as a
/// writer, from what the network holds joined with what the writer remembers
/// (`11-writers.md#publishing-as-a-writer`, `#offline-edits`).
pub fn publish(
    dir: &Path,
    key: &Path,
    how: &WriterPublish<'_>,
    bootstrap: &Path,
    timeout: u64,
    state: Option<&Cache>,
) -> ExitCode {
    let r = (|| -> Result<i32, RuntimeError> {
        let key = keystore::read_identity(key)?;
        let site = SiteAddress::parse(how.site)?;
        let branch = how.branch;
        check_branch(branch)
            .map_err(|e| RuntimeError::Usage(format!("--branch {branch:?}: {e}")))?;
        let files = read_tree(dir)?;
        let cut = cut(&files)?;
        let mut memory = match how.data_dir {
            Some(d) => writer_state::load(d, &site)?,
            None if how.offline => {
                return Err(RuntimeError::Usage(
                    "--offline needs a data directory (--data-dir, or [reader] data_dir)".into(),
                ));
            }
            None => WriterState::default(),
        };
        let own = LineId::of(&key.public(), branch);
        let main = LineId::of(&key.public(), "");
        let rt = runtime()?;
        let list = if how.offline {
            None
        } else {
            Some(load_bootstrap(bootstrap)?)
        };
        // Whether the network's newest main line of this writer lists the branch: if not, the
        // publish announces it there (`11-writers.md#branches`).
        let mut listed = true;
        if let Some(list) = &list {
            let found = rt.block_on(gather(
                list.clone(),
                (site, branch),
                vec![own, main],
                0,
                timeout,
                state,
            ))?;
            for why in &found.refused {
                eprintln!("umbra: refused: {why}");
            }
            listed = branch.is_empty()
                || found
                    .heads
                    .get(&main)
                    .is_some_and(|h| h.head.branches.iter().any(|b| b == branch));
            memory.heads.join(&found.heads);
            if let Some(r) = found.roster {
                memory.roster = Some(match roster::newer(memory.roster.take(), r.clone()) {
                    Ok(kept) => kept,
                    // Older than the one remembered: keep the remembered one.
                    Err(WriterError::RosterRollback { .. }) => memory.roster.clone().unwrap_or(r),
                    Err(e) => return Err(e.into()),
                });
            }
        }
        let roster = memory
            .roster
            .as_ref()
            .map_or_else(|| Roster::implicit(site.0), |r| r.roster.clone());
        let prev = memory.heads.get(&own).cloned();
        let highest = memory
            .heads
            .heads()
            .filter(|h| h.head.writer == key.public())
            .map(|h| h.head.seq)
            .max()
            .unwrap_or(0);
        let now = wall_now();
        let seq = now.0.max(highest + 1);
        // The writer's named branches: those its main line lists, those it wrote, this one.
        let mut branches: BTreeSet<String> = memory
            .heads
            .heads()
            .filter(|h| h.head.writer == key.public())
            .flat_map(|h| h.head.branches.iter().chain(Some(&h.head.branch)))
            .filter(|b| !b.is_empty())
            .cloned()
            .collect();
        if !branch.is_empty() {
            branches.insert(branch.to_string());
        }
        if branches.len() > MAX_BRANCHES {
            return Err(RuntimeError::Usage(format!(
                "a writer has at most {MAX_BRANCHES} named branches; this one would be its {}th",
                branches.len()
            )));
        }
        let intent = Intent {
            site: site.0,
            writer: key.public(),
            branch,
            seq,
            published: now,
            expires: WallTime(now.0.saturating_add(how.lifetime)),
            files: &cut.files,
            delete: &BTreeSet::new(),
            branches: &branches,
            resolve: how.resolve,
        };
        let head = next_head(&intent, prev.as_ref(), &memory.heads, &roster)?;
        // A writer outside its prefixes or past its cut-off is told so here: readers holding
        // this roster would refuse the manifest.
        roster.admit(&head)?;
        let bytes = head.sign(&key)?;
        let signed = crate::site::writers::head::parse(&bytes, &site)?;
        memory.heads.insert(signed);
        let line_name = if branch.is_empty() {
            "its main line".to_string()
        } else {
            format!("branch {branch}")
        };
        let Some(list) = list else {
            if let Some(d) = how.data_dir {
                writer_state::save(d, &site, &memory)?;
            }
            eprintln!(
                "kept offline: {} entries as writer {} on {line_name} (sequence {seq}); \
                 publish again without --offline to send the folder as it is then",
                head.entries.len(),
                hex::encode(&key.public().to_bytes()[..8]),
            );
            println!("{site}");
            return Ok(0);
        };
        // The newest of the line, and a copy under its hash that stays reachable as history.
        let mut records = vec![history_of(&bytes), line_record(&site, &own, bytes)];
        if !listed {
            // A new branch: the writer's main line again, unchanged but listing it, stored
            // after the branch so that a reader who learns of it finds it.
            let intent = Intent {
                branch: "",
                seq: seq + 1,
                ..intent
            };
            let main_head = announce(&intent, memory.heads.get(&main), &roster)?;
            roster.admit(&main_head)?;
            let main_bytes = main_head.sign(&key)?;
            memory
                .heads
                .insert(crate::site::writers::head::parse(&main_bytes, &site)?);
            records.push(history_of(&main_bytes));
            records.push(line_record(&site, &main, main_bytes));
            eprintln!(
                "announcing branch {branch} on the writer's main line (sequence {})",
                seq + 1
            );
        }
        let Some(last) = records.pop() else {
            return Err(RuntimeError::Usage("nothing to store".into()));
        };
        let copies = rt.block_on(upload(
            list,
            (last, records),
            head.expires.0,
            &cut.blocks,
            state,
            timeout,
        ))?;
        if let Some(d) = how.data_dir {
            writer_state::save(d, &site, &memory)?;
        }
        eprintln!(
            "published {} entries as writer {} on {line_name} (sequence {seq}); every record on at least {copies} nodes",
            head.entries.len(),
            hex::encode(&key.public().to_bytes()[..8]),
        );
        println!("{site}");
        Ok(0)
    })();
    finish("publish", r)
}

/// A manifest stored under its hash, reachable as history (`11-writers.md#history`).
fn history_of(bytes: &[u8]) -> Record {
    Record {
        kind: RecordKind::HISTORY,
        key: crate::crypto::hash::hash(bytes),
        value: bytes.to_vec(),
    }
}

/// The newest manifest of `line`.
fn line_record(site: &SiteAddress, line: &LineId, bytes: Vec<u8>) -> Record {
    Record {
        kind: RecordKind::WRITER,
        key: line_dht_key(&site.0, line),
        value: bytes,
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::File(f) => format!("{} bytes {}", f.size, hex::encode(&f.hash[..8])),
        Value::Tombstone => "deleted".into(),
    }
}

/// Print a view's lines, conflicts and refusals, like `git log --graph` with one commit a
/// line (the newest head of each).
fn print_log(site: &SiteAddress, found: &Gathered, view: &View) {
    let roster = found.roster_or_implicit(site);
    print_roster(site, &roster, found.roster.is_some());
    println!("view {}", hex::encode(&view.hash()[..8]));
    for l in &view.lines {
        let Some(h) = found.heads.by_digest(&l.digest) else {
            continue;
        };
        let head = &h.head;
        let merged: Vec<String> = head
            .vector
            .0
            .iter()
            .filter(|(line, _)| *line != l.line)
            .map(|(line, s)| format!("{}@{s}", line.short()))
            .collect();
        println!(
            "* {} writer {} {} seq {} ({} entries){}",
            l.line.short(),
            hex::encode(&l.writer.to_bytes()[..8]),
            if l.branch.is_empty() {
                "main".to_string()
            } else {
                format!("branch {}", l.branch)
            },
            l.seq,
            head.entries.len(),
            if merged.is_empty() {
                String::new()
            } else {
                format!(" merges {}", merged.join(" "))
            },
        );
        // The line's history, as far as it was fetched (`--history N`).
        let mut prev = head.prev;
        while prev != [0; 32] {
            match found.heads.by_digest(&prev) {
                Some(p) => {
                    println!(
                        "|   {} seq {} ({} entries)",
                        hex::encode(&prev[..8]),
                        p.head.seq,
                        p.head.entries.len()
                    );
                    prev = p.head.prev;
                }
                None => {
                    println!(
                        "|   {} (earlier history not fetched)",
                        hex::encode(&prev[..8])
                    );
                    break;
                }
            }
        }
    }
    for (line, e) in &view.refused {
        println!("x {} refused: {e}", line.short());
    }
    let conflicts: Vec<_> = view.conflicts().collect();
    println!("conflicts: {}", conflicts.len());
    for c in conflicts {
        println!("conflict {}", c.path);
        for (i, cand) in c.candidates.iter().enumerate() {
            let who = view
                .line(&cand.line)
                .map_or_else(String::new, |l| hex::encode(&l.writer.to_bytes()[..8]));
            println!(
                "  {} writer {who} line {} seq {}: {}",
                if i == 0 { "served" } else { "also  " },
                cand.line.short(),
                cand.dot,
                value_text(&cand.value)
            );
        }
    }
    for p in found.heads.proofs() {
        println!(
            "equivocation: writer {} signed two manifests with sequence {} ({} and {})",
            hex::encode(&p.writer[..8]),
            p.seq,
            hex::encode(&crate::crypto::hash::hash(&p.manifests[0])[..8]),
            hex::encode(&crate::crypto::hash::hash(&p.manifests[1])[..8]),
        );
    }
    for why in &found.refused {
        println!("refused answer: {why}");
    }
}

/// `umbra log ADDRESS [--branch NAME] [--history N]`.
pub fn log(address: &str, branch: &str, depth: u32, bootstrap: &Path, timeout: u64) -> ExitCode {
    let r = (|| -> Result<i32, RuntimeError> {
        let site = SiteAddress::parse(address)?;
        check_branch(branch)
            .map_err(|e| RuntimeError::Usage(format!("--branch {branch:?}: {e}")))?;
        let list = load_bootstrap(bootstrap)?;
        let found =
            runtime()?.block_on(gather(list, (site, branch), vec![], depth, timeout, None))?;
        let view = found.heads.view(&found.roster_or_implicit(&site), branch);
        print_log(&site, &found, &view);
        Ok(0)
    })();
    finish("log", r)
}

/// The view `umbra fetch` reads: with `--branch`/`--writer` (`chosen`), the merged view of a
/// branch name or one writer's line; without, the site's merged view if the site has a
/// roster, else `None` (a single-writer site: fetched from its manifest, with witnesses).
pub async fn view_of(
    list: Directory,
    site: SiteAddress,
    branch: &str,
    writer: Option<IdentityPublic>,
    chosen: bool,
    timeout: u64,
    state: Option<&Cache>,
) -> Result<Option<View>, RuntimeError> {
    let extra = writer
        .map(|w| vec![LineId::of(&w, branch)])
        .unwrap_or_default();
    let found = gather(list, (site, branch), extra, 0, timeout, state).await?;
    if !chosen && found.roster.is_none() {
        return Ok(None);
    }
    let roster = found.roster_or_implicit(&site);
    let view = match writer {
        Some(w) => found.heads.line_view(&roster, &w, branch),
        None => found.heads.view(&roster, branch),
    };
    for (line, e) in &view.refused {
        eprintln!("umbra: line {} refused: {e}", line.short());
    }
    Ok(Some(view))
}

#[cfg(test)]
mod tests {
    use super::{parse_prefix, parse_writer};
    use crate::crypto::keys::IdentityKey;
    use crate::site::address::SiteAddress;

    #[test]
    fn writers_and_prefixes_parse_as_users_write_them() {
        let k = IdentityKey::from_secret_bytes([5; 32]).public();
        let hex = crate::wire::hex::encode(&k.to_bytes());
        assert_eq!(parse_writer(&hex).unwrap(), k);
        assert_eq!(parse_writer(&SiteAddress(k).to_string()).unwrap(), k);
        assert!(parse_writer("zz").is_err());
        assert_eq!(parse_prefix("/blog/").unwrap(), "blog/");
        assert_eq!(parse_prefix("/").unwrap(), "");
        assert!(parse_prefix("/../x").is_err());
    }
}
