//! Tier 2: every bundled vector file, Umbra's golden files, and external-format detection
//! (`interop/README.md`).

use std::path::Path;

use umbra::interop::{self, RunOptions, Status, Summary, golden};

fn summary_of(path: &str) -> Summary {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap();
    interop::run_file(&text, RunOptions::default()).unwrap()
}

fn failures(s: &Summary) -> Vec<String> {
    s.cases
        .iter()
        .filter_map(|c| match &c.status {
            Status::Failed(e) => Some(format!("{}: {e}", c.name)),
            _ => None,
        })
        .collect()
}

#[test]
fn golden_files_are_current() {
    // Created once, verified forever after; regeneration is explicit and reviewed.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/vectors/umbra");
    let regenerate = std::env::var_os("UMBRA_REGENERATE_VECTORS").is_some();
    for (kind, file) in golden::KINDS {
        let path = dir.join(file);
        let generated = golden::generate(kind).unwrap();
        if regenerate || !path.exists() {
            let mut text = serde_json::to_string_pretty(&generated).unwrap();
            text.push('\n');
            std::fs::write(&path, text).unwrap();
        }
        let on_disk: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            on_disk, generated,
            "{file} differs from what this code generates"
        );
    }
}

#[test]
fn every_bundled_vector_passes() {
    let mut total = Summary::default();
    for (path, result) in interop::run_bundled(RunOptions::default()) {
        let s = result.unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(!s.cases.is_empty(), "{path} ran no case");
        assert_eq!(failures(&s), Vec::<String>::new(), "{path}");
        total.absorb(s);
    }
    // Only the documented skips: cacophony's 448 vectors, one slow RFC 7748 iteration and
    // two quarter-round vectors.
    let other: Vec<_> = total
        .cases
        .iter()
        .filter(|c| matches!(c.status, Status::Skipped(_)) && !c.name.contains("_448_"))
        .collect();
    assert_eq!(other.len(), 3, "{other:?}");
    assert_eq!(total.skipped(), 472 + 3);
    assert!(total.passed() > 100);
}

#[test]
fn noise_c_shape_is_detected_and_reported_truthfully() {
    let s = summary_of("tests/data/noise-c-sample.json");
    assert_eq!(s.format, "Noise (noise-c)");
    // XK and XX replay; the 448 vector is skipped; the tampered one must fail and does.
    assert_eq!(s.to_string(), "3 passed, 0 failed, 1 skipped");
}

#[test]
fn wycheproof_x25519_policy() {
    let s = summary_of("tests/data/wycheproof-x25519-sample.json");
    // tc4 is a valid case with a wrong expected value in the fixture: it must fail.
    assert_eq!(s.to_string(), "3 passed, 1 failed, 1 skipped");
    let zero = s.cases.iter().find(|c| c.name.ends_with("tc2")).unwrap();
    assert_eq!(
        zero.acceptable,
        Some(false),
        "the all-zero shared secret is refused"
    );
}

#[test]
fn wycheproof_aead_rejects_forged_tags() {
    let s = summary_of("tests/data/wycheproof-chacha20poly1305-sample.json");
    assert_eq!(s.to_string(), "3 passed, 0 failed, 0 skipped");
}

#[test]
fn wycheproof_eddsa_rejects_non_canonical_signatures() {
    let s = summary_of("tests/data/wycheproof-eddsa-sample.json");
    assert_eq!(s.to_string(), "3 passed, 0 failed, 1 skipped");
}

#[test]
fn every_cacophony_vector_a_25519_noise_library_runs_replays() {
    // The whole cacophony file: every pattern (deferred and PSK included) of the eight 25519
    // suites (ChaChaPoly and AESGCM; BLAKE2s, BLAKE2b, SHA256, SHA512) replays, 59 each;
    // every 448 vector is skipped with its reason, and nothing else is.
    let s = summary_of("interop/vectors/public/cacophony.txt");
    assert_eq!(failures(&s), Vec::<String>::new());
    assert_eq!(s.to_string(), "472 passed, 0 failed, 472 skipped");
    for suite in [
        "25519_ChaChaPoly_BLAKE2s",
        "25519_ChaChaPoly_BLAKE2b",
        "25519_ChaChaPoly_SHA256",
        "25519_ChaChaPoly_SHA512",
        "25519_AESGCM_BLAKE2s",
        "25519_AESGCM_BLAKE2b",
        "25519_AESGCM_SHA256",
        "25519_AESGCM_SHA512",
    ] {
        let passed = s
            .cases
            .iter()
            .filter(|c| c.name.contains(suite) && c.status == Status::Passed)
            .count();
        assert_eq!(passed, 59, "{suite}");
    }
    assert!(s.cases.iter().all(|c| match &c.status {
        Status::Skipped(why) => c.name.contains("_448_") && why.contains("448"),
        _ => !c.name.contains("_448_"),
    }));
    let psk = s
        .cases
        .iter()
        .filter(|c| c.name.contains("psk") && c.status == Status::Passed)
        .count();
    assert!(psk >= 8 * 20, "PSK patterns replayed: {psk}");
}

#[test]
fn unknown_formats_and_bad_json_are_typed_errors() {
    assert!(matches!(
        interop::run_file("{]", RunOptions::default()),
        Err(interop::InteropError::Json { .. })
    ));
    assert_eq!(
        interop::run_file("{\"x\": 1}", RunOptions::default()),
        Err(interop::InteropError::UnknownFormat)
    );
}
