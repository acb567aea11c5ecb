//! The reader's gateway core in the simulator (issue 13; `protocol-spec/08-gateway.md`):
//! the same `GatewayCore` `umbra run` drives, here by request id with no tokio and no HTTP,
//! over real nodes. Publishers publish with the real publisher; browsing readers ask their
//! gateways for pages while relays churn; every byte served must be a byte published, and no
//! DHT node may see a reader's address. Replay a run with `UMBRA_SIM_SEED=<seed>`.

mod common;

use common::seed;
use std::collections::BTreeSet;
use std::time::Duration;

use umbra::app::Report;
use umbra::app::gateway::{Body, GatewayCore, ReplyPart, RequestId, SiteRequest};
use umbra::app::publish::{Publish, PublishState};
use umbra::crypto::keys::IdentityKey;
use umbra::crypto::rng::UmbraRng;
use umbra::dht::DhtConfig;
use umbra::sim::{AppId, NetModel, World};
use umbra::site::address::SiteAddress;
use umbra::time::Time;

fn at(secs: u64) -> Time {
    Time::ZERO + Duration::from_secs(secs)
}

/// A site: an index page and a larger file of several blocks.
fn site_files(rng: &mut UmbraRng, n: usize) -> Vec<(String, Vec<u8>)> {
    let len = 40_000 + rng.below(60_000) as usize;
    let mut big = vec![0u8; len];
    for (i, b) in big.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(17).wrapping_add(n as u8);
    }
    vec![
        (
            "index.html".to_string(),
            format!("<h1>site {n}</h1>").into_bytes(),
        ),
        ("data/big.bin".to_string(), big),
    ]
}

/// One browser request, as the gateway answers it.
#[derive(Debug, Default, Clone)]
struct Answer {
    status: Option<u16>,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    len: Option<u64>,
    aborted: bool,
}

impl Answer {
    fn complete(&self) -> bool {
        self.aborted
            || match self.len {
                Some(len) => self.body.len() as u64 >= len,
                None => self.status.is_some(),
            }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A reader's gateway and the answers it gave.
struct Browser {
    node: usize,
    app: AppId,
    answers: std::collections::BTreeMap<RequestId, Answer>,
}

impl Browser {
    /// A gateway core on reader `node` that has read `site`'s index page (`index`); the
    /// request's id.
    fn reading(
        w: &mut World,
        node: usize,
        site: SiteAddress,
        index: &[u8],
    ) -> (Browser, RequestId) {
        let mut b = Browser {
            node,
            app: w.spawn(node, Box::new(GatewayCore::new(64 << 20))),
            answers: Default::default(),
        };
        let first = b.ask(w, site, "", None);
        let t = w.now();
        run_browsers(
            w,
            std::slice::from_mut(&mut b),
            t + Duration::from_secs(120),
        );
        assert_eq!(b.answers[&first].body, index);
        (b, first)
    }

    fn ask(
        &mut self,
        w: &mut World,
        site: SiteAddress,
        path: &str,
        range: Option<&str>,
    ) -> RequestId {
        self.ask_with(
            w,
            SiteRequest {
                site,
                view: Default::default(),
                path: path.into(),
                range: range.map(str::to_string),
                if_none_match: None,
                head: false,
            },
            1 << 20,
        )
    }

    /// Ask with `room` chunks of room for the body.
    fn ask_with(&mut self, w: &mut World, req: SiteRequest, room: usize) -> RequestId {
        let now = w.now();
        let core = w.app_mut::<GatewayCore>(self.app).unwrap();
        let id = core.request(now, req);
        core.room(id, room);
        self.answers.insert(id, Answer::default());
        w.after_command(self.node);
        id
    }

    /// Take what the gateway answered so far.
    fn collect(&mut self, w: &mut World) {
        let core = w.app_mut::<GatewayCore>(self.app).unwrap();
        while let Some((id, part)) = core.poll_reply() {
            let a = self.answers.entry(id).or_default();
            match part {
                ReplyPart::Head(h) => {
                    a.status = Some(h.status);
                    a.headers = h.headers;
                    match h.body {
                        Body::Full(b) => a.body = b,
                        Body::Stream { len } => a.len = Some(len),
                    }
                }
                ReplyPart::Chunk(c) => a.body.extend_from_slice(&c),
                ReplyPart::Abort(_) => a.aborted = true,
            }
        }
    }
}

/// Run until every answer of every browser is complete, or `deadline`.
fn run_browsers(w: &mut World, browsers: &mut [Browser], deadline: Time) {
    loop {
        for b in browsers.iter_mut() {
            b.collect(w);
        }
        if browsers
            .iter()
            .all(|b| b.answers.values().all(Answer::complete))
            || w.now() > deadline
        {
            return;
        }
        if !w.step() {
            return;
        }
    }
}

fn run_world(relays: usize, publishers: usize, readers: usize, churn: usize, s: u64) {
    let mut w = World::new(s, relays, publishers + readers, NetModel::default());
    w.enable_dht(DhtConfig::default(), 4);
    w.run_until(at(30));
    let mut rng = UmbraRng::from_u64(s);
    // Publishers publish with the real publisher, then leave.
    let mut sites = Vec::new();
    let mut jobs = Vec::new();
    for p in 0..publishers {
        let key = IdentityKey::generate(&mut rng);
        let files = site_files(&mut rng, p);
        sites.push((SiteAddress(key.public()), files.clone()));
        jobs.push(w.spawn(relays + p, Box::new(Publish::new(key, files, 86_400))));
    }
    w.run_apps(&jobs, at(600));
    for &j in &jobs {
        let p = w.app::<Publish>(j).unwrap();
        assert!(
            matches!(p.state, PublishState::Done(_)),
            "publish: {:?} ({:?})",
            p.state,
            p.last_error
        );
    }
    for p in 0..publishers {
        w.kill(relays + p);
    }
    // Relays leave while readers browse.
    let mut victims: Vec<usize> = (0..relays).collect();
    for i in (1..relays).rev() {
        victims.swap(i, rng.below(i as u64 + 1) as usize);
    }
    // Half of the leaving relays go before the readers start, half while they browse.
    let (before, during) = victims[..churn].split_at(churn / 2);
    for v in before {
        w.kill(*v);
    }
    // Each browsing reader asks its own gateway core for two pages of two sites, one of
    // them a range.
    let mut browsers: Vec<Browser> = (0..readers)
        .map(|r| {
            let node = relays + publishers + r;
            let app = w.spawn(node, Box::new(GatewayCore::new(64 << 20)));
            Browser {
                node,
                app,
                answers: Default::default(),
            }
        })
        .collect();
    let mut expect = Vec::new();
    for (r, b) in browsers.iter_mut().enumerate() {
        let (site, files) = &sites[r % publishers];
        let id = b.ask(&mut w, *site, "", None);
        expect.push((r, id, files[0].1.clone(), 200));
        let (site2, files2) = &sites[(r * 7 + 3) % publishers];
        let id = b.ask(&mut w, *site2, "data/big.bin", Some("bytes=1000-39999"));
        expect.push((r, id, files2[1].1[1000..40_000].to_vec(), 206));
    }
    let t0 = w.now();
    for (k, v) in during.iter().enumerate() {
        run_browsers(
            &mut w,
            &mut browsers,
            t0 + Duration::from_millis(200 * k as u64),
        );
        w.kill(*v);
    }
    run_browsers(&mut w, &mut browsers, t0 + Duration::from_secs(900));
    let mut served = 0;
    for (r, id, want, status) in expect {
        let a = &browsers[r].answers[&id];
        assert_eq!(a.status, Some(status), "reader {r}: {a:?}");
        assert!(!a.aborted, "reader {r}: a body was aborted");
        assert_eq!(
            a.body, want,
            "reader {r}: served bytes differ from the published ones"
        );
        assert!(a.header("etag").is_some());
        served += 1;
    }
    eprintln!(
        "{readers} readers got {served} pages from {publishers} sites over {relays} relays \
         ({churn} gone), {} events",
        w.processed
    );
    // No DHT node ever saw a reader's (or publisher's) address: they ask through circuits.
    let hidden: BTreeSet<_> = (relays..relays + publishers + readers)
        .map(|i| w.nodes()[i].addr)
        .collect();
    let mut seen = 0;
    for n in w.nodes() {
        for o in n.node.dht_observations() {
            seen += 1;
            assert!(
                !hidden.contains(&o.from),
                "a DHT node saw a reader's address"
            );
        }
    }
    assert!(seen > 0, "no DHT traffic observed: the check tests nothing");
}

#[test]
fn gateway_cores_serve_verified_pages_small_world() {
    run_world(60, 4, 8, 6, seed(21));
}

/// Issue 13's scenario: 1,000 relays (100 leave), 20 publishers, 100 browsing readers, each
/// with the real gateway core.
#[test]
fn hundred_browsing_readers_twenty_publishers_thousand_churning_relays() {
    run_world(1000, 20, 100, 100, seed(22));
}

/// 40 relays and two readers; reader 40 publishes one site with the real publisher and
/// reader 41 is left to browse it. Returns the world, the files, the site and the publish.
fn one_site_published(s: u64) -> (World, Vec<(String, Vec<u8>)>, SiteAddress, AppId) {
    let mut w = World::new(s, 40, 2, NetModel::default());
    w.enable_dht(DhtConfig::default(), 4);
    w.run_until(at(30));
    let mut rng = UmbraRng::from_u64(s);
    let key = IdentityKey::generate(&mut rng);
    let files = site_files(&mut rng, 0);
    let site = SiteAddress(key.public());
    let p = w.spawn(40, Box::new(Publish::new(key, files.clone(), 86_400)));
    w.run_apps(&[p], at(300));
    (w, files, site, p)
}

/// The core answers by HTTP's rules, by request id with no HTTP server: a missing path is a
/// 404 page, a matching `If-None-Match` a 304, a range past the end a 416, `HEAD` a head
/// alone; a body goes out only as far as the caller has room, and a cancelled request gets
/// nothing more.
#[test]
fn the_core_answers_by_request_id_with_back_pressure_and_cancel() {
    let (mut w, files, site, p) = one_site_published(seed(23));
    assert!(matches!(
        w.app::<Publish>(p).unwrap().state,
        PublishState::Done(_)
    ));
    // The publisher reported as it went (the CLI draws these): its plan first, then
    // progress that only grows, up to every record.
    let publish = w.app_mut::<Publish>(p).unwrap();
    let reports: Vec<Report> = std::iter::from_fn(|| publish.poll_report()).collect();
    assert!(
        matches!(&reports[0], Report::Plan(plan) if plan.files == 2 && plan.seq >= 1),
        "{reports:?}"
    );
    let progress: Vec<(usize, usize)> = reports
        .iter()
        .filter_map(|r| match r {
            Report::Progress { done, total } => Some((*done, *total)),
            _ => None,
        })
        .collect();
    assert!(progress.len() >= 2, "{reports:?}");
    assert!(
        progress.windows(2).all(|w| w[0].0 <= w[1].0),
        "{progress:?}"
    );
    assert!(
        matches!(progress.last(), Some((d, t)) if d == t),
        "{progress:?}"
    );
    let (mut b, first) = Browser::reading(&mut w, 41, site, &files[0].1);
    let req = |path: &str, range: Option<&str>, inm: Option<String>, head: bool| SiteRequest {
        site,
        view: Default::default(),
        path: path.into(),
        range: range.map(str::to_string),
        if_none_match: inm,
        head,
    };
    let etag = b.answers[&first].header("etag").unwrap().to_string();
    let missing = b.ask_with(&mut w, req("nope.html", None, None, false), 8);
    let same = b.ask_with(&mut w, req("", None, Some(etag), false), 8);
    let past = b.ask_with(
        &mut w,
        req("data/big.bin", Some("bytes=999999-"), None, false),
        8,
    );
    let head = b.ask_with(&mut w, req("data/big.bin", None, None, true), 8);
    // No room: the head comes (once the first block verified), the body waits.
    let slow = b.ask_with(&mut w, req("data/big.bin", None, None, false), 0);
    let t = w.now();
    w.run_until(t + Duration::from_secs(60));
    b.collect(&mut w);
    assert_eq!(b.answers[&missing].status, Some(404));
    assert_eq!(b.answers[&same].status, Some(304));
    assert_eq!(b.answers[&past].status, Some(416));
    assert_eq!(b.answers[&head].status, Some(200));
    assert!(b.answers[&head].body.is_empty() && b.answers[&head].len.is_none());
    assert_eq!(
        b.answers[&head].header("content-length"),
        Some(files[1].1.len().to_string().as_str())
    );
    assert_eq!(b.answers[&slow].status, Some(200));
    assert_eq!(b.answers[&slow].len, Some(files[1].1.len() as u64));
    assert!(
        b.answers[&slow].body.is_empty(),
        "a body went out with no room for it"
    );
    // One chunk of room: one block's worth, no more (the file has two or more blocks).
    assert!(files[1].1.len() > 32_768);
    w.app_mut::<GatewayCore>(b.app).unwrap().room(slow, 1);
    w.after_command(41);
    let t = w.now();
    w.run_until(t + Duration::from_secs(10));
    b.collect(&mut w);
    assert_eq!(b.answers[&slow].body.len(), 32_768);
    assert_eq!(b.answers[&slow].body[..], files[1].1[..32_768]);
    // The browser goes away: nothing more comes, and the core forgets the request.
    let core = w.app_mut::<GatewayCore>(b.app).unwrap();
    core.cancel(slow);
    core.room(slow, 100);
    w.after_command(41);
    let t = w.now();
    w.run_until(t + Duration::from_secs(10));
    b.collect(&mut w);
    assert_eq!(b.answers[&slow].body.len(), 32_768);
    assert_eq!(w.app::<GatewayCore>(b.app).unwrap().pending(), 0);
}

/// When every circuit to a site fails (`08-gateway.md#fetching`: three in a row), requests
/// that need the network get a 502 page saying so, while what the reader already verified
/// (the manifest, cached blocks) is still served; nothing hangs.
#[test]
fn an_unreachable_site_fails_after_three_circuits_and_cached_pages_stay_readable() {
    let (mut w, files, site, _) = one_site_published(seed(24));
    let (mut b, _) = Browser::reading(&mut w, 41, site, &files[0].1);
    for relay in 0..40 {
        w.kill(relay);
    }
    // Past the manifest's freshness: the gateway must try the network again, and cannot.
    let t = w.now();
    w.run_until(t + Duration::from_secs(60));
    let cached = b.ask(&mut w, site, "", None);
    let uncached = b.ask(&mut w, site, "data/big.bin", None);
    let t = w.now();
    run_browsers(
        &mut w,
        std::slice::from_mut(&mut b),
        t + Duration::from_secs(600),
    );
    assert!(
        b.answers[&uncached].complete(),
        "a request for an unreachable site hung"
    );
    assert_eq!(b.answers[&uncached].status, Some(502));
    let page = String::from_utf8_lossy(&b.answers[&uncached].body).to_string();
    assert!(page.contains("3 circuits in a"), "{page}");
    assert_eq!(b.answers[&cached].status, Some(200));
    assert_eq!(b.answers[&cached].body, files[0].1);
}

/// Issue 14 item 5: a gateway restarted with the memory its last run stored
/// (`07-sites.md#memory`) holds a proof that the site's key signed two manifests with one
/// sequence. The reader's first page of that site is a warning page (409, once per run);
/// following its link, or asking for anything but a page, gives the first version seen,
/// never the other.
#[test]
fn a_restarted_gateway_warns_the_reader_of_a_site_that_equivocated() {
    let s = seed(25);
    let (mut w, files, site, _) = one_site_published(s);
    // The publisher's key, as `one_site_published` made it.
    let mut rng = UmbraRng::from_u64(s);
    let key = IdentityKey::generate(&mut rng);
    assert_eq!(SiteAddress(key.public()), site);
    let (mut first_run, _) = Browser::reading(&mut w, 41, site, &files[0].1);
    let stored = w
        .app_mut::<GatewayCore>(first_run.app)
        .unwrap()
        .take_seen_changes();
    let (_, Some(seen)) = stored.versions[0].clone() else {
        panic!("the gateway remembered nothing: {stored:?}")
    };
    first_run.collect(&mut w);

    // The key signs another manifest with the same sequence (what a second network, or a
    // thief of the key, would be served). The proof is what the store keeps.
    let other = umbra::site::build(
        &key,
        &[("index.html".into(), b"<h1>the other story</h1>".to_vec())],
        seen.seq,
        umbra::time::WallTime(1_000),
        86_400 * 365,
    )
    .unwrap();
    let proof = umbra::wire::seen::EquivocationProof {
        first: seen.manifest.clone(),
        second: other.manifest,
    };
    // A new run: a gateway restored from the stored records.
    let mut core = GatewayCore::new(64 << 20);
    let seen = umbra::wire::seen::SeenVersion::decode(&seen.encode()).unwrap();
    core.tracker_mut().restore(&site, seen).unwrap();
    let proof = umbra::wire::seen::EquivocationProof::decode(&proof.encode()).unwrap();
    core.tracker_mut().restore_proof(&proof).unwrap();
    let mut b = Browser {
        node: 41,
        app: w.spawn(41, Box::new(core)),
        answers: Default::default(),
    };
    let data = b.ask(&mut w, site, "data/big.bin", None);
    let warned = b.ask(&mut w, site, "", None);
    let t = w.now();
    run_browsers(
        &mut w,
        std::slice::from_mut(&mut b),
        t + Duration::from_secs(120),
    );
    assert_eq!(b.answers[&data].status, Some(200), "not a page: served");
    assert_eq!(b.answers[&data].body, files[1].1);
    let page = &b.answers[&warned];
    assert_eq!(page.status, Some(409));
    assert_eq!(page.header("x-umbra-warning"), Some("equivocation"));
    let text = String::from_utf8_lossy(&page.body);
    assert!(
        text.contains("signed two different versions") && text.contains("href=\"/index.html\""),
        "{text}"
    );
    // The reader follows the link: the first version, not the other.
    let again = b.ask(&mut w, site, "index.html", None);
    let t = w.now();
    run_browsers(
        &mut w,
        std::slice::from_mut(&mut b),
        t + Duration::from_secs(120),
    );
    assert_eq!(b.answers[&again].status, Some(200));
    assert_eq!(b.answers[&again].body, files[0].1);
}
