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

/// Text from elsewhere (a library's error message) with every IPv4 address, bracketed IPv6
/// address and site label (56 base32 characters) in it replaced by `[redacted]`, ports
/// included, unless redaction is off. For messages Umbra does not build itself.
pub fn scrub(text: &str) -> String {
    if !redaction_enabled() {
        return text.to_string();
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let end = ipv4_at(b, i)
            .or_else(|| ipv6_at(b, i))
            .or_else(|| label_at(b, i))
            .map(|e| port_after(b, e));
        match end {
            Some(e) => {
                out.push_str("[redacted]");
                i = e;
            }
            None => {
                let c = text[i..].chars().next().unwrap_or(' ');
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

fn boundary(b: &[u8], i: usize) -> bool {
    i == 0 || !b[i - 1].is_ascii_alphanumeric()
}

/// `a.b.c.d` starting at `i`: its end.
fn ipv4_at(b: &[u8], i: usize) -> Option<usize> {
    if !boundary(b, i) {
        return None;
    }
    let mut j = i;
    for part in 0..4 {
        let start = j;
        while j < b.len() && b[j].is_ascii_digit() && j - start < 3 {
            j += 1;
        }
        if j == start {
            return None;
        }
        if part < 3 {
            if b.get(j) != Some(&b'.') {
                return None;
            }
            j += 1;
        }
    }
    (!b.get(j).is_some_and(u8::is_ascii_alphanumeric)).then_some(j)
}

/// `[hex:...]` starting at `i`: its end.
fn ipv6_at(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'[') {
        return None;
    }
    let close = b[i..].iter().take(48).position(|&c| c == b']')? + i;
    let inner = &b[i + 1..close];
    let ok = inner.contains(&b':')
        && inner
            .iter()
            .all(|c| c.is_ascii_hexdigit() || b":.".contains(c));
    ok.then_some(close + 1)
}

/// 56 base32 letters (a site address label) starting at `i`: its end.
fn label_at(b: &[u8], i: usize) -> Option<usize> {
    if !boundary(b, i) {
        return None;
    }
    let n = b[i..]
        .iter()
        .take_while(|&&c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c))
        .count();
    (n == 56 && !b.get(i + n).is_some_and(u8::is_ascii_alphanumeric)).then_some(i + n)
}

/// Past a `:port` at `e`, if there is one.
fn port_after(b: &[u8], e: usize) -> usize {
    if b.get(e) != Some(&b':') {
        return e;
    }
    let n = b[e + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
    if n > 0 { e + 1 + n } else { e }
}

#[cfg(test)]
mod tests {
    use super::{Sensitive, scrub};

    #[test]
    fn scrub_hides_addresses_in_foreign_text() {
        let t = "Connection to 127.0.0.1:16001 refused; [2001:db8::1]:443 too; \
                 aaaabbbbccccddddeeeeffffgggghhhhiiiijjjjkkkkllllmmmmnnnn.umbra; v1.2.3 ok";
        assert_eq!(
            scrub(t),
            "Connection to [redacted] refused; [redacted] too; [redacted].umbra; v1.2.3 ok"
        );
        assert_eq!(scrub("port 80, 10 relays"), "port 80, 10 relays");
    }

    #[test]
    fn redacted_by_default() {
        let addr = Sensitive("192.0.2.7:4000");
        assert_eq!(addr.to_string(), "[redacted]");
        assert_eq!(format!("{addr:?}"), "[redacted]");
    }
}
