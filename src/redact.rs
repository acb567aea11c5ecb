//! Redaction for logs (`protocol-spec/README.md#logging`).
//!
//! [`Sensitive<T>`] wraps peer addresses, site addresses and key material. Its `Display` and
//! `Debug` print `[redacted]` unless the process turned redaction off (an operator's explicit
//! debugging choice, set once at start-up by the runtime). Not in this module: deciding what
//! is sensitive; callers wrap at the point they log.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

static REDACT: AtomicBool = AtomicBool::new(true);

/// Turn redaction off (or back on) for this process. Off only for local debugging.
pub fn set_redaction(enabled: bool) {
    REDACT.store(enabled, Ordering::Relaxed);
}

/// Whether values wrapped in [`Sensitive`] are currently redacted.
pub fn redaction_enabled() -> bool {
    REDACT.load(Ordering::Relaxed)
}

/// A value that is redacted when formatted, unless redaction is off.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Sensitive<T>(pub T);

impl<T> Sensitive<T> {
    /// The wrapped value (for code, never for logs).
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: fmt::Display> fmt::Display for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if redaction_enabled() {
            f.write_str("[redacted]")
        } else {
            self.0.fmt(f)
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if redaction_enabled() {
            f.write_str("[redacted]")
        } else {
            self.0.fmt(f)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Sensitive;

    #[test]
    fn redacted_by_default() {
        let addr = Sensitive("192.0.2.7:4000");
        assert_eq!(addr.to_string(), "[redacted]");
        assert_eq!(format!("{addr:?}"), "[redacted]");
    }
}
