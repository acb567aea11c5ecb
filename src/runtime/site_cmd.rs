//! `umbra publish` and `umbra fetch`: files, the cache, progress and messages around the
//! publish and fetch apps (`crate::app::publish`, `crate::app::site_files`), run on a reader
//! node by the tokio driver (`protocol-spec/07-sites.md#publishing`, `#fetching`).
//! Not in this module: the protocol, retries and verification (the apps).

use super::error::RuntimeError;
use crate::app::fetch::TransferError;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::driver::{Driver, os_rng, wall_now};
use super::relay_cmd::load_bootstrap;
use crate::app::publish::{Publish, PublishState, UploadPlan};
use crate::app::site_files::{FetchSite, FetchState, Fetcher, FileOut};
use crate::app::{App, Report};
use crate::crypto::keystore;
use crate::node::{Node, NodeConfig, NodeEvent};
use crate::site::address::SiteAddress;
use crate::time::Time;
use crate::wire::dht_msg::RecordKind;

/// A progress bar on stderr (`indicatif`), hidden when stderr is not a terminal.
#[derive(Default)]
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn show(&mut self, label: &'static str, done: usize, total: usize) {
        let bar = self.bar.get_or_insert_with(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})")
            {
                bar.set_style(style.progress_chars("#>."));
            }
            bar.set_message(label);
            bar
        });
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }

    fn done(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}

/// Read every regular file under `dir` (dotfiles skipped), paths relative with `/`.
pub fn read_tree(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, RuntimeError> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), RuntimeError> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(RuntimeError::on_file("read", dir))?
            .filter_map(Result::ok)
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let p = e.path();
            let ft = e.file_type().map_err(RuntimeError::on_file("read", &p))?;
            if ft.is_dir() {
                walk(root, &p, out)?;
            } else if ft.is_file() {
                let rel: Vec<String> = p
                    .strip_prefix(root)
                    .unwrap_or(&p)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push((
                    rel.join("/"),
                    std::fs::read(&p).map_err(RuntimeError::on_file("read", &p))?,
                ));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

/// The reader's block cache (`[reader] cache`).
pub(crate) type Cache = Arc<std::sync::Mutex<super::store::RedbStore>>;

/// Keep fetched blocks in the cache (best effort: a full cache just keeps less).
fn remember(cache: &Cache, blocks: &std::collections::BTreeMap<[u8; 32], Vec<u8>>) {
    let Ok(mut store) = cache.lock() else { return };
    for (h, data) in blocks {
        let record = crate::wire::dht_msg::Record {
            kind: RecordKind::BLOCK,
            key: *h,
            value: data.clone(),
        };
        let info = crate::dht::store::RecordInfo {
            expires: crate::time::WallTime(u64::MAX),
            seq: 0,
            digest: *h,
        };
        let _ = crate::dht::store::RecordStore::put(&mut *store, &record, info, false);
    }
    let _ = crate::dht::store::RecordStore::commit(&mut *store);
}

/// A publish or fetch app, whose [`Report`]s the CLI draws.
pub(crate) trait Watched: App {
    /// The bar's label.
    const LABEL: &'static str;
    /// The next report.
    fn poll_report(&mut self) -> Option<Report>;
}

impl Watched for Publish {
    const LABEL: &'static str = "publishing";
    fn poll_report(&mut self) -> Option<Report> {
        Publish::poll_report(self)
    }
}

impl Watched for FetchSite {
    const LABEL: &'static str = "fetching";
    fn poll_report(&mut self) -> Option<Report> {
        FetchSite::poll_report(self)
    }
}

/// The lines the CLI prints for a publish's plan.
fn plan_lines(plan: &UploadPlan) -> Vec<String> {
    let mut lines = vec![format!(
        "publishing {} files, {} blocks (sequence {})",
        plan.files, plan.blocks, plan.seq
    )];
    if plan.known > 0 {
        lines.push(format!(
            "{} known to the network: kept without sending them again where enough \
             storers still hold them",
            plan.known
        ));
    }
    lines
}

/// The CLI's view of an app: it draws what the app reports.
pub(crate) struct Shown<A> {
    pub(crate) app: A,
    bar: Progress,
}

impl<A: Watched> Shown<A> {
    pub(crate) fn new(app: A) -> Self {
        Shown {
            app,
            bar: Progress::default(),
        }
    }

    fn draw(&mut self) {
        while let Some(r) = self.app.poll_report() {
            match r {
                Report::Plan(plan) => {
                    for l in plan_lines(&plan) {
                        eprintln!("{l}");
                    }
                }
                Report::Progress { done, total } => self.bar.show(A::LABEL, done, total),
                Report::Retrying(why) => {
                    if self.app.finished().is_none() {
                        eprintln!("\numbra: {why}; retrying on a new circuit");
                    }
                }
            }
        }
        if self.app.finished().is_some() {
            self.bar.done();
        }
    }
}

impl<A: Watched> App for Shown<A> {
    fn start(&mut self, node: &mut Node, now: Time) {
        self.app.start(node, now);
    }

    fn on_event(&mut self, node: &mut Node, now: Time, event: NodeEvent) {
        self.app.on_event(node, now, event);
        self.draw();
    }

    fn tick(&mut self, node: &mut Node, now: Time) {
        self.app.tick(node, now);
    }

    fn finished(&self) -> Option<i32> {
        self.app.finished()
    }
}

/// Run `app` on a fresh reader over `dir` until it finishes or `timeout` seconds pass
/// (`Err` then); the reader's guards come from and go back to `state`
/// (`09-relay.md#guards`).
pub(crate) async fn drive<A: Watched>(
    dir: crate::directory::Directory,
    timeout: u64,
    app: &mut Shown<A>,
    state: Option<&Cache>,
) -> Result<(), RuntimeError> {
    let cfg = NodeConfig {
        wall_at_zero: wall_now(),
        ..NodeConfig::default()
    };
    let mut node = Node::new(cfg, None, Arc::new(dir), os_rng());
    if let Some(g) = state.and_then(|c| c.lock().ok()?.load_guards()) {
        node.set_guards(g);
    }
    let (_, node) = Driver::new(node, Instant::now())
        .run_keep(None, app, tokio::time::sleep(Duration::from_secs(timeout)))
        .await;
    if let Some(s) = state.and_then(|c| c.lock().ok()) {
        let _ = s.save_guards(node.guards());
    }
    eprintln!();
    match app.finished() {
        Some(_) => Ok(()),
        None => Err(RuntimeError::Timeout {
            what: A::LABEL.trim().to_string(),
            secs: timeout,
        }),
    }
}

/// What a publish did: the address, or the failure.
fn published(app: &Publish) -> Result<SiteAddress, RuntimeError> {
    match &app.state {
        PublishState::Done(p) => {
            eprintln!(
                "stored every record on at least {} nodes; {} of {} blocks were still held \
                 and kept without sending them again",
                p.min_copies, p.refreshed, p.blocks
            );
            Ok(p.address)
        }
        PublishState::Failed(why) => Err(RuntimeError::Network {
            what: "publish",
            why: why.clone(),
        }),
        _ => Err(RuntimeError::Network {
            what: "publish",
            why: match &app.last_error {
                Some(e) => format!("did not finish (last error: {e})"),
                None => "did not finish".into(),
            },
        }),
    }
}

async fn publish_in(
    dir: crate::directory::Directory,
    key: crate::crypto::keys::IdentityKey,
    files: Vec<(String, Vec<u8>)>,
    timeout: u64,
    lifetime: u64,
    state: Option<&Cache>,
) -> Result<SiteAddress, RuntimeError> {
    let mut app = Shown::new(Publish::new(key, files, lifetime));
    drive(dir, timeout, &mut app, state).await?;
    published(&app.app)
}

/// Publish `files` as the site of `key` through the relays of `dir`, from inside a running
/// tokio runtime (the demo). Returns the site's address.
pub async fn publish_files(
    dir: crate::directory::Directory,
    key: crate::crypto::keys::IdentityKey,
    files: Vec<(String, Vec<u8>)>,
    timeout: u64,
) -> Result<SiteAddress, RuntimeError> {
    publish_in(dir, key, files, timeout, crate::site::NO_EXPIRY, None).await
}

/// `umbra publish`. `lifetime_days`: when the manifest expires (`None`: never, the site
/// lives while storers keep it); `state`: the file where the publisher's guards are kept
/// across runs (the reader's cache file), and its quota; `writer`: publish as one writer of
/// a site with many (`11-writers.md`).
pub fn publish(
    dir: &Path,
    key: &Path,
    bootstrap: &Path,
    timeout: u64,
    lifetime_days: Option<u64>,
    state: Option<(PathBuf, u64)>,
    writer: super::writers_args::AsWriter,
) -> ExitCode {
    if let Some(site) = &writer.site {
        let data_dir = state
            .as_ref()
            .and_then(|(p, _)| p.parent())
            .map(Path::to_path_buf);
        let how = super::writers_cmd::WriterPublish {
            site,
            branch: writer.branch.as_deref().unwrap_or(""),
            resolve: writer.resolve,
            offline: writer.offline,
            lifetime: crate::app::publish::lifetime_secs(lifetime_days),
            data_dir: data_dir.as_deref(),
        };
        let cache = if writer.offline {
            None
        } else {
            open_cache("publish", state)
        };
        return super::writers_cmd::publish(dir, key, &how, bootstrap, timeout, cache.as_ref());
    }
    let r = (|| -> Result<i32, RuntimeError> {
        let key = keystore::read_identity(key)?;
        let files = read_tree(dir)?;
        if files.is_empty() {
            return Err(RuntimeError::Usage(format!(
                "{}: no files to publish",
                dir.display()
            )));
        }
        let list = load_bootstrap(bootstrap)?;
        let lifetime = crate::app::publish::lifetime_secs(lifetime_days);
        let rt = super::relay_cmd::runtime()?;
        let state = open_cache("publish", state);
        let address = rt.block_on(publish_in(
            list,
            key,
            files,
            timeout,
            lifetime,
            state.as_ref(),
        ))?;
        println!("{address}");
        Ok(0)
    })();
    finish("publish", r)
}

pub(crate) fn finish(what: &str, r: Result<i32, RuntimeError>) -> ExitCode {
    super::cli::done(what, r.map(|code| code == 0))
}

/// Write the fetched files: into directory `out` for a whole site, or file `out` for one
/// path (`07-sites.md#fetching`). Everything goes first to a temporary name that did not
/// exist (random, created exclusively, mode 0700 or 0600, so nobody else's symlink can stand
/// in for it) and is renamed into place; on any error the temporary is removed, so a failed
/// fetch leaves nothing behind. Files are written block by block from `fetcher`.
fn write_out(
    fetcher: &Fetcher,
    files: &[FileOut],
    out: &Path,
    single: bool,
) -> Result<(), RuntimeError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if out.exists() {
        return Err(RuntimeError::Usage(format!(
            "{} exists; refusing to overwrite it",
            out.display()
        )));
    }
    if !single {
        if let Some((file, under)) = file_and_folder(files) {
            return Err(RuntimeError::Usage(format!(
                "the site lists both {file:?} and {under:?}: a file cannot also be a folder; \
                 fetch one of them by path instead"
            )));
        }
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut r = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut r);
    let tmp = parent.join(format!(".umbra-fetch-{}", crate::wire::hex::encode(&r)));
    let create = |p: &Path, mode: u32| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(p)
    };
    let result = (|| -> Result<(), RuntimeError> {
        if single {
            let f = files
                .first()
                .ok_or(RuntimeError::Transfer(TransferError::NoSuchPath))?;
            let mut w = std::io::BufWriter::new(
                create(&tmp, 0o600).map_err(RuntimeError::on_file("create", &tmp))?,
            );
            fetcher.write_file(f, &mut w)?;
            w.into_inner()
                .map_err(|e| RuntimeError::file("write", &tmp, e.into_error()))?;
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .map_err(RuntimeError::on_file("create", &tmp))?;
        for f in files {
            let p = tmp.join(&f.path);
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d).map_err(RuntimeError::on_file("create", d))?;
            }
            let file = create(&p, 0o644).map_err(RuntimeError::on_file("create", &p))?;
            let mut w = std::io::BufWriter::new(file);
            fetcher.write_file(f, &mut w)?;
            w.into_inner()
                .map_err(|e| RuntimeError::file("write", &p, e.into_error()))?;
        }
        Ok(())
    })()
    .and_then(|()| {
        std::fs::rename(&tmp, out).map_err(RuntimeError::on_file("move the fetched data to", out))
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A path that is a file and also, in another path, a folder: `(a, a/b)`.
fn file_and_folder(files: &[FileOut]) -> Option<(String, String)> {
    let paths: std::collections::BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    files.iter().find_map(|f| {
        f.path
            .match_indices('/')
            .map(|(i, _)| &f.path[..i])
            .find(|prefix| paths.contains(prefix))
            .map(|prefix| (prefix.to_string(), f.path.clone()))
    })
}

/// Open the reader's cache file (which also keeps its guards); `None` when off or in use.
pub(crate) fn open_cache(what: &str, cache: Option<(PathBuf, u64)>) -> Option<Cache> {
    let (path, quota) = cache?;
    match super::store::RedbStore::open(&path, quota) {
        Ok(s) => Some(Arc::new(std::sync::Mutex::new(s))),
        Err(e) => {
            tracing::warn!(
                "umbra {what}: cache unavailable ({e}); guards and the memory of manifests seen are not kept this run"
            );
            None
        }
    }
}

/// `umbra fetch`. `cache`: the cache file and its quota, unless caching is off.
pub fn fetch(
    target: &str,
    out: Option<PathBuf>,
    max_bytes: u64,
    bootstrap: &Path,
    timeout: u64,
    cache: Option<(PathBuf, u64)>,
    view: super::writers_args::ViewChoice,
) -> ExitCode {
    let r = (|| -> Result<i32, RuntimeError> {
        let target = target
            .trim_start_matches("http://")
            .trim_start_matches("umbra://");
        let (addr, path) = match target.split_once('/') {
            Some((a, p)) => (a, Some(p.to_string())),
            None => (target, None),
        };
        let site = SiteAddress::parse(addr)?;
        let single = path.is_some();
        let out = out.unwrap_or_else(|| match &path {
            Some(p) => PathBuf::from(
                p.rsplit('/')
                    .find(|s| !s.is_empty())
                    .unwrap_or("index.html"),
            ),
            None => PathBuf::from(&site.encode()[..16]),
        });
        let cache = open_cache("fetch", cache);
        let reader_cache = cache.clone();
        let list = load_bootstrap(bootstrap)?;
        let rt = super::relay_cmd::runtime()?;
        // A site with writers, a branch or one writer: the files come from the writers'
        // heads, merged (`11-writers.md#merge`).
        let writer = view
            .writer
            .as_deref()
            .map(super::writers_cmd::parse_writer)
            .transpose()?;
        let branch = view.branch.clone().unwrap_or_default();
        crate::site::writers::check_branch(&branch)?;
        let merged = rt.block_on(super::writers_cmd::view_of(
            list.clone(),
            site,
            &branch,
            writer,
            view.chosen(),
            timeout,
            cache.as_ref(),
        ))?;
        let known: Option<Vec<FileOut>> = if let Some(v) = merged {
            for c in v.conflicts() {
                eprintln!(
                    "umbra: {} is in conflict between {} writers; serving the default winner \
                     (`umbra log` lists every side, `--writer` fetches one)",
                    c.path,
                    c.candidates.len()
                );
            }
            Some(
                v.files()
                    .map(|(p, f)| FileOut {
                        path: p.to_string(),
                        blocks: f.blocks.clone(),
                        size: f.size,
                        hash: f.hash,
                    })
                    .collect(),
            )
        } else {
            None
        };
        if known.as_ref().is_some_and(Vec::is_empty) {
            return Err(RuntimeError::Transfer(TransferError::SiteNotFound));
        }
        let witnesses = if known.is_some() {
            0
        } else {
            crate::app::freshness::WITNESSES
        };
        let make = move |now| {
            let f = match &known {
                Some(files) => Fetcher::files(site, files.clone(), path.clone(), now),
                None => Fetcher::new(site, path.clone(), now),
            }
            .with_max_bytes(max_bytes);
            match reader_cache.clone() {
                Some(store) => f.with_cache(Box::new(move |h: &[u8; 32]| {
                    let mut s = store.lock().ok()?;
                    crate::dht::store::RecordStore::get(
                        &mut *s,
                        RecordKind::BLOCK,
                        h,
                        crate::time::WallTime(0),
                    )
                    .map(|r| r.value)
                })),
                None => f,
            }
        };
        let mut app = Shown::new(FetchSite::new(Box::new(make)).with_witnesses(witnesses));
        // What this reader saw before: never accept an older manifest (`07-sites.md#memory`).
        if let Some(c) = cache.as_ref().and_then(|c| c.lock().ok()) {
            c.load_seen(app.app.tracker_mut());
        }
        let driven = rt.block_on(drive(list, timeout, &mut app, cache.as_ref()));
        if let Some(c) = cache.as_ref().and_then(|c| c.lock().ok()) {
            if let Err(e) = c.save_seen(&app.app.tracker_mut().take_changes()) {
                tracing::warn!("umbra fetch: the manifests seen could not be saved ({e})");
            }
        }
        driven?;
        if let FetchState::Failed(why) = &app.app.state {
            return Err(RuntimeError::Network {
                what: "fetch",
                why: why.clone(),
            });
        }
        let (Some(f), files) = (app.app.fetcher(), app.app.files()) else {
            return Err(RuntimeError::Network {
                what: "fetch",
                why: "nothing fetched".into(),
            });
        };
        if let Some(c) = cache.as_ref() {
            remember(c, f.blocks());
            if f.from_cache > 0 {
                eprintln!(
                    "{} of {} blocks came from the local cache",
                    f.from_cache, f.total
                );
            }
        }
        write_out(f, files, &out, single)?;
        let bytes: u64 = files.iter().map(|f| f.size).sum();
        println!(
            "fetched {} files, {bytes} bytes, every block verified, into {}",
            files.len(),
            out.display()
        );
        Ok(0)
    })();
    finish("fetch", r)
}

#[cfg(test)]
mod tests {
    use super::{Fetcher, FileOut, write_out};
    use crate::crypto::keys::IdentityKey;
    use crate::crypto::rng::UmbraRng;
    use crate::site::address::SiteAddress;
    use crate::time::WallTime;

    fn file(path: &str) -> FileOut {
        FileOut {
            path: path.into(),
            blocks: vec![[7; 32]],
            size: 1,
            hash: [0; 32],
        }
    }

    /// Issue 12, finding 11: `a` and `a/b` in one site, and a write that fails midway, give
    /// a clean error and leave nothing in the target's folder.
    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("umbra-writeout-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let site = SiteAddress(IdentityKey::generate(&mut UmbraRng::from_u64(1)).public());
        let fetcher = Fetcher::new(site, None, WallTime(0));
        let out = dir.join("site");
        let e = write_out(&fetcher, &[file("a"), file("a/b")], &out, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"a\"") && e.contains("\"a/b\""), "{e}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        // The fetcher holds no block 7…: the write fails after the temporary was made.
        let e = write_out(&fetcher, &[file("x/y")], &out, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unavailable"), "{e}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let e = write_out(&fetcher, &[file("one")], &dir.join("one"), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unavailable"), "{e}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
