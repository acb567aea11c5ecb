//! The node's logs (`protocol-spec/README.md#logging`): `tracing` events, written to stderr
//! one line each, filtered by `UMBRA_LOG` in `RUST_LOG` syntax (`UMBRA_LOG=debug`,
//! `UMBRA_LOG=umbra::runtime=debug,warn`; `UMBRA_LOG=1` means `debug`; `RUST_LOG` is read
//! when `UMBRA_LOG` is unset; the default is `info`). Every line passes through
//! [`crate::redact::scrub`] before it is written, so a peer or site address that reaches a
//! log line unwrapped (in a library's error text, say) is still redacted, unless the
//! operator turned redaction off (`UMBRA_NO_REDACT=1`).
//!
//! Not in this module: a command's own output (results on stdout, its final error on
//! stderr: `cli::done`), which is not a log.

use std::io::Write;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The filter from the environment: `UMBRA_LOG`, else `RUST_LOG`, else `info`. A filter that
/// does not parse is reported and `info` used.
pub fn filter_from_env() -> EnvFilter {
    let spec = match std::env::var("UMBRA_LOG") {
        Ok(v) if v == "1" => "debug".to_string(),
        Ok(v) => v,
        Err(_) => std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
    };
    EnvFilter::try_new(&spec).unwrap_or_else(|e| {
        eprintln!("umbra: UMBRA_LOG={spec:?} is not a log filter ({e}); logging at info");
        EnvFilter::new("info")
    })
}

/// Start logging for this process (once, at start-up; later calls do nothing).
pub fn init() {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter_from_env())
        .with_writer(Scrubbed)
        .with_target(false)
        .with_ansi(ansi)
        .try_init();
}

/// Writes log lines to stderr, redacted.
#[derive(Debug, Clone, Copy)]
pub struct Scrubbed;

/// One log line on its way to `W` (stderr), redacted.
#[derive(Debug)]
pub struct ScrubbedLine<W: Write>(pub W);

impl<W: Write> Write for ScrubbedLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The formatter hands over one whole line: addresses are never split across calls.
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(crate::redact::scrub(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<'a> MakeWriter<'a> for Scrubbed {
    type Writer = ScrubbedLine<std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbedLine(std::io::stderr())
    }
}

#[cfg(test)]
mod tests {
    use super::ScrubbedLine;
    use std::io::Write;

    #[test]
    fn a_log_line_is_redacted_on_its_way_out() {
        let mut out = ScrubbedLine(Vec::new());
        let line = b"WARN connect to 192.0.2.7:4000 failed\n";
        assert_eq!(out.write(line).unwrap(), line.len());
        let text = String::from_utf8(out.0).unwrap();
        assert!(!text.contains("192.0.2.7"), "{text}");
        assert!(
            text.contains("[redacted]") && text.ends_with("failed\n"),
            "{text}"
        );
    }
}
