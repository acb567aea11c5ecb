//! A writer's memory of a site (`protocol-spec/11-writers.md#offline-edits`): the newest
//! roster and heads it knew at its last publish, its own included, so that it can publish
//! offline and so that its next publish continues its own line even when its last manifest
//! never reached the network.
//!
//! One file per site, `<data dir>/writers/<address>.state`, written whole to a temporary name
//! and renamed:
//!
//! ```text
//! version u8 = 1 || u32 len || roster [len] (0: none) || u32 n || n × (u32 len || manifest [len])
//! ```
//!
//! Everything is verified again when read back, as a network answer would be; a record that
//! fails is skipped and reported. Not in this module: what a publish does with it.

use std::path::{Path, PathBuf};

use super::error::RuntimeError;
use crate::site::address::SiteAddress;
use crate::site::writers::head;
use crate::site::writers::merge::HeadSet;
use crate::site::writers::roster::{self, SignedRoster};
use crate::wire::{Reader, Writer};

/// What a writer remembers of one site.
#[derive(Debug, Clone, Default)]
pub struct WriterState {
    /// The newest roster it held.
    pub roster: Option<SignedRoster>,
    /// The newest heads it held, its own included.
    pub heads: HeadSet,
}

/// The state file of `site` under `data_dir`.
pub fn path(data_dir: &Path, site: &SiteAddress) -> PathBuf {
    data_dir
        .join("writers")
        .join(format!("{}.state", site.encode()))
}

/// Read the state of `site` (empty when there is none yet).
pub fn load(data_dir: &Path, site: &SiteAddress) -> Result<WriterState, RuntimeError> {
    let p = path(data_dir, site);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(WriterState::default()),
        Err(e) => return Err(RuntimeError::on_file("read", &p)(e)),
    };
    let bad = |why: &str| RuntimeError::Usage(format!("{}: {why}", p.display()));
    let mut r = Reader::new(&bytes);
    if r.u8().map_err(|_| bad("empty"))? != 1 {
        return Err(bad("unknown version"));
    }
    let mut state = WriterState::default();
    let take = |r: &mut Reader| -> Result<Vec<u8>, RuntimeError> {
        let n = r.u32().map_err(|_| bad("truncated"))? as usize;
        Ok(r.take(n).map_err(|_| bad("truncated"))?.to_vec())
    };
    let roster = take(&mut r)?;
    if !roster.is_empty() {
        match roster::parse(&roster, site) {
            Ok(s) => state.roster = Some(s),
            Err(e) => tracing::warn!("{}: the roster kept there is refused ({e})", p.display()),
        }
    }
    let n = r.u32().map_err(|_| bad("truncated"))?;
    for _ in 0..n {
        let m = take(&mut r)?;
        match head::parse(&m, site) {
            Ok(h) => {
                state.heads.insert(h);
            }
            Err(e) => tracing::warn!("{}: a manifest kept there is refused ({e})", p.display()),
        }
    }
    Ok(state)
}

/// Write the state of `site` (whole, then renamed over the old one).
pub fn save(data_dir: &Path, site: &SiteAddress, state: &WriterState) -> Result<(), RuntimeError> {
    let p = path(data_dir, site);
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).map_err(RuntimeError::on_file("create", dir))?;
    }
    let mut w = Writer::new();
    w.u8(1);
    let roster = state.roster.as_ref().map_or(&[][..], |r| &r.bytes[..]);
    w.u32(roster.len() as u32).bytes(roster);
    let heads: Vec<_> = state.heads.heads().collect();
    w.u32(heads.len() as u32);
    for h in heads {
        w.u32(h.bytes.len() as u32).bytes(&h.bytes);
    }
    let tmp = p.with_extension("state.tmp");
    std::fs::write(&tmp, w.into_vec()).map_err(RuntimeError::on_file("write", &tmp))?;
    std::fs::rename(&tmp, &p).map_err(RuntimeError::on_file("rename", &p))?;
    Ok(())
}
