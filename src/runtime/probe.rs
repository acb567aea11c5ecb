//! `umbra probe`'s and the demo's report of an echo (the app is [`crate::app::echo`]): how
//! long the circuit took, and whether every byte came back intact and how fast.
//! Not in this module: the echo itself, the driver loop.

use crate::app::App;
use crate::app::echo::{Echo, EchoState};

/// Print what `echo` did; its exit code (0: every byte came back intact). `timed_out`: the
/// driver stopped it before it finished.
pub fn report(echo: &Echo, timed_out: bool) -> i32 {
    if let Some(b) = echo.built_at {
        println!(
            "circuit built in {:.1} ms through {} hops",
            (b - echo.started).as_secs_f64() * 1e3,
            echo.path.len()
        );
        let ids: Vec<String> = echo
            .path
            .iter()
            .map(|id| crate::wire::hex::encode(&id.0[..8]))
            .collect();
        println!("path: {}", ids.join(" "));
    }
    let why = match &echo.state {
        EchoState::Done => {
            let secs = match (echo.opened_at, echo.finished_at) {
                (Some(o), Some(f)) => (f - o).as_secs_f64(),
                _ => 0.0,
            };
            println!(
                "echoed {} bytes intact in {:.3} s ({:.1} MB/s each way)",
                echo.total(),
                secs,
                echo.total() as f64 / secs.max(1e-9) / 1e6
            );
            return 0;
        }
        EchoState::Failed(why) => why.clone(),
        EchoState::Corrupted(at) => format!("byte {at} came back altered"),
        _ if timed_out || echo.finished().is_none() => "timed out".to_string(),
        _ => "stopped".to_string(),
    };
    eprintln!(
        "umbra probe: FAILED: {why} ({} of {} bytes echoed)",
        echo.received,
        echo.total()
    );
    1
}
