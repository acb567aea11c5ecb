//! What the reader knows about its Tor first hop, shared between the dialler (which updates
//! it), the terminal and the dashboard's status API (which show it). Compiled with or without
//! feature `tor`, so the status API has one shape. Not in this module: Tor itself (`tor.rs`).

use std::sync::{Arc, Mutex};

/// The Tor first hop's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TorStatus {
    /// `bootstrapping`, `ready`, `failed`.
    pub state: &'static str,
    /// Bootstrap progress, 0–100.
    pub percent: u8,
    /// Tor's own description of where bootstrap is.
    pub message: String,
    /// Guard links opened through Tor so far.
    pub links: u64,
    /// Connect attempts that failed and were retried on a fresh Tor circuit.
    pub retries: u64,
    /// The last error, if any (typed in `tor.rs`, shown as text).
    pub last_error: Option<String>,
}

/// A shared handle to the status.
#[derive(Debug, Clone, Default)]
pub struct TorStatusHandle(Arc<Mutex<TorStatus>>);

impl TorStatusHandle {
    /// A copy of the current status.
    pub fn get(&self) -> TorStatus {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Change the status.
    pub fn update(&self, f: impl FnOnce(&mut TorStatus)) {
        if let Ok(mut s) = self.0.lock() {
            f(&mut s);
        }
    }

    /// The status as JSON for `/api/status`.
    pub fn json(&self) -> serde_json::Value {
        let s = self.get();
        serde_json::json!({
            "state": s.state,
            "percent": s.percent,
            "message": s.message,
            "links": s.links,
            "retries": s.retries,
            "last_error": s.last_error,
        })
    }
}
