//! Tier 5: relay discovery between real processes (`protocol-spec/10-directory.md`):
//! 8 relays from a bootstrap file; a 9th started with one contact; a reader whose bootstrap
//! file lists two relays learns the 9th (`umbra relays`) and builds a circuit through it
//! (`umbra probe`); its short-lived descriptor is renewed while it runs; it stops and leaves
//! every directory when its last descriptor expires.

mod procs;

use std::process::Stdio;
use std::time::{Duration, Instant};

use procs::{free_addr, start_relays_extra, tempdir, umbra, wait_listening};

/// `umbra relays --json` from a fresh reader data directory: (id, address) of each relay.
fn relays(bootstrap: &std::path::Path, data: &std::path::Path) -> Vec<(String, String)> {
    let _ = std::fs::remove_dir_all(data);
    let out = umbra()
        .args(["relays", "--json", "--timeout", "20", "--bootstrap"])
        .arg(bootstrap)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umbra relays failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["address"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
#[allow(clippy::disallowed_methods)] // waits on real processes
fn a_relay_started_with_one_contact_joins_and_leaves_when_it_stops() {
    let dir = tempdir("directory_process");
    let (mut procs, bootstrap) = start_relays_extra(
        &dir,
        8,
        70,
        (None, &[]),
        "[directory]\nrelay_sync_secs = 3\n",
    );
    let lines: Vec<String> = std::fs::read_to_string(&bootstrap)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let one = dir.join("one.txt");
    std::fs::write(&one, format!("{}\n", lines[0])).unwrap();
    let two = dir.join("two.txt");
    std::fs::write(&two, format!("{}\n{}\n", lines[3], lines[5])).unwrap();

    // The 9th relay: one contact, a 20 s descriptor renewed every ~10 s.
    let addr = free_addr("127.79.0.1");
    let cfg = dir.join("r9.toml");
    std::fs::write(
        &cfg,
        format!(
            "[relay]\nlisten = \"{addr}\"\ndata_dir = \"{}\"\nbootstrap = \"{}\"\n\
             [directory]\ndescriptor_lifetime_secs = 20\nrelay_sync_secs = 5\n",
            dir.join("r9").display(),
            one.display()
        ),
    )
    .unwrap();
    let mut ninth = umbra()
        .args(["relay", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(addr, "the 9th relay");
    let born = Instant::now();

    // A reader that knows two relays learns all nine, the 9th among them.
    let reader = dir.join("reader");
    let start = Instant::now();
    let ninth_id = loop {
        let list = relays(&two, &reader);
        if let Some((id, _)) = list.iter().find(|(_, a)| *a == addr.to_string()) {
            assert_eq!(list.len(), 9, "{list:?}");
            break id.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the 9th relay never reached the reader: {list:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    println!("learnt the 9th relay in {:?}", start.elapsed());

    // Circuits from that reader's two-line file go through it (one path in three does).
    let mut through = false;
    for _ in 0..30 {
        let out = umbra()
            .args(["probe", "--echo", "1000", "--timeout", "30", "--bootstrap"])
            .arg(&two)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if text.contains(&ninth_id[..16]) {
            through = true;
            break;
        }
    }
    assert!(
        through,
        "no circuit went through the 9th relay in 30 probes"
    );

    // Every relay lists it (each asked through a bootstrap file naming only that relay).
    let singles: Vec<std::path::PathBuf> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let p = dir.join(format!("only{i}.txt"));
            std::fs::write(&p, format!("{l}\n")).unwrap();
            p
        })
        .collect();
    let listed_by = |addr: &str| {
        singles
            .iter()
            .filter(|f| relays(f, &reader).iter().any(|(_, a)| a == addr))
            .count()
    };
    let start = Instant::now();
    while listed_by(&addr.to_string()) < 8 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not every relay learnt the 9th"
        );
        std::thread::sleep(Duration::from_secs(1));
    }

    // Renewed: still listed by every relay after its first 20 s descriptor expired.
    std::thread::sleep(Duration::from_secs(24).saturating_sub(born.elapsed()));
    assert_eq!(
        listed_by(&addr.to_string()),
        8,
        "the 9th relay's descriptor was not renewed"
    );

    // Stopped, it leaves every directory once its descriptor (20 s, renewed about every
    // 10 s) expires: not at once, and within its lifetime plus a reconciliation.
    let _ = ninth.kill();
    let _ = ninth.wait();
    let stopped = Instant::now();
    let mut first_check = true;
    loop {
        let n = listed_by(&addr.to_string());
        if first_check {
            assert_eq!(n, 8, "it left before its descriptor expired");
            first_check = false;
        }
        if n == 0 {
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(45),
            "the stopped relay is still listed by {n} relays after 45 s"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    println!(
        "gone from every directory {:?} after it stopped",
        stopped.elapsed()
    );
    assert!(stopped.elapsed() >= Duration::from_secs(5));
    procs.0.iter_mut().for_each(|c| {
        let _ = c.kill();
    });
}
