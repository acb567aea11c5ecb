//! `[limits]` in `umbra.toml` and the matching flags of `umbra relay` and `umbra run`
//! (`protocol-spec/09-relay.md#bandwidth`).
//!
//! Amounts are written with units: rates as `"4 MiB/s"`, `"500 KiB/s"`, `"100 Mbit/s"`,
//! sizes as `"500 GiB"`, `"256 MiB"`; a bare integer is bytes (a second). Binary units
//! (KiB, MiB, GiB, TiB) are powers of 1024, decimal ones (kB, MB, GB, TB) of 1000, bits
//! (kbit, Mbit, Gbit) an eighth of their decimal byte. Units are case-insensitive, so `mb`
//! is a megabyte, never a megabit. Every error names the key and says what would be right.
//! Not in this module: enforcing the limits (`limits`, `node::shaping`).

use serde::Deserialize;

use crate::limits::period::Accounting;
use crate::limits::{Limits, MIN_BURST};

/// An amount as written: a string with a unit, or an integer of bytes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    /// Bytes (a second).
    Bytes(i64),
    /// A number and a unit.
    Text(String),
}

/// `[limits]`: what the node may spend. Every key is optional; a missing key is no limit
/// (`memory`: 512 MiB; `cpu_percent`: 100).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Everything together, each direction.
    pub rate: Option<Amount>,
    /// Bytes the total may send at once after a quiet spell (default: two seconds of rate).
    pub burst: Option<Amount>,
    /// Circuits carried for others.
    pub relayed: Option<Amount>,
    /// DHT, directory, storage and replication service.
    pub dht: Option<Amount>,
    /// Serving held records to others.
    pub seeding: Option<Amount>,
    /// The node's own reading and publishing.
    pub own: Option<Amount>,
    /// Quota per accounting period, each direction, paced to last the period.
    pub monthly: Option<Amount>,
    /// Day of the month (1–28) the accounting period starts. Default 1.
    pub period_start_day: Option<i64>,
    /// Percent of one core the node may spend on handshakes (1–100). Default 100.
    pub cpu_percent: Option<i64>,
    /// Queued cells and buffers at most. Default 512 MiB.
    pub memory: Option<Amount>,
}

/// The same settings as flags (each overrides its key of `[limits]`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LimitFlags {
    /// Bandwidth for everything, each direction (e.g. "8 MiB/s"; `[limits] rate`).
    #[arg(long, value_name = "RATE")]
    pub rate: Option<String>,
    /// Bytes the total may send at once after a quiet spell (e.g. "16 MiB").
    #[arg(long, value_name = "SIZE")]
    pub burst: Option<String>,
    /// Bandwidth for circuits carried for others (e.g. "4 MiB/s").
    #[arg(long, value_name = "RATE")]
    pub relayed: Option<String>,
    /// Bandwidth for the DHT, storage and replication service (e.g. "1 MiB/s").
    #[arg(long, value_name = "RATE")]
    pub dht: Option<String>,
    /// Bandwidth for serving held records to others (e.g. "1 MiB/s").
    #[arg(long, value_name = "RATE")]
    pub seeding: Option<String>,
    /// Quota per month, each direction, paced to last the month (e.g. "500 GiB").
    #[arg(long, value_name = "SIZE")]
    pub monthly: Option<String>,
    /// Percent of one core the node may spend on handshakes (1-100).
    #[arg(long, value_name = "PERCENT")]
    pub cpu_percent: Option<i64>,
    /// Queued cells and buffers at most (e.g. "256 MiB").
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
}

/// A `[limits]` setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} = {value:?}: {problem}")]
pub struct LimitsError {
    /// The key (`[limits] relayed` or `--relayed`).
    pub key: String,
    /// The value as written.
    pub value: String,
    /// What is wrong with it.
    pub problem: LimitsProblem,
}

impl crate::error::HasKind for LimitsError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Config
    }
}

/// What is wrong with a setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsProblem {
    /// No number where one was expected.
    #[error("not a number followed by a unit (e.g. \"4 MiB/s\", \"500 GiB\")")]
    NotANumber,
    /// A unit that is not known.
    #[error("unknown unit {0:?}: use B, KiB, MiB, GiB, TiB, kB, MB, GB, TB, kbit, Mbit or Gbit{1}")]
    UnknownUnit(String, &'static str),
    /// A size where a rate belongs.
    #[error("a size where a rate belongs: add \"/s\" (e.g. \"4 MiB/s\")")]
    NotARate,
    /// A rate where a size belongs.
    #[error("a rate where a size belongs: drop \"/s\" (e.g. \"500 GiB\")")]
    NotASize,
    /// Below zero.
    #[error("must not be negative")]
    Negative,
    /// Zero, where zero makes no sense.
    #[error("zero would stop {0}; leave the key out for no limit")]
    Zero(&'static str),
    /// Outside the allowed range.
    #[error("must be from {0} to {1}")]
    OutOfRange(i64, i64),
    /// Smaller than the node can work with.
    #[error("must be at least {0}")]
    TooSmall(&'static str),
}

/// The smallest `memory` the node runs with.
const MIN_MEMORY: u64 = 16 << 20;

fn unit_factor(unit: &str) -> Option<f64> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "kib" => 1024.0,
        "mb" => 1e6,
        "mib" => 1_048_576.0,
        "gb" => 1e9,
        "gib" => 1_073_741_824.0,
        "tb" => 1e12,
        "tib" => 1_099_511_627_776.0,
        "bit" => 0.125,
        "kbit" => 125.0,
        "mbit" => 125_000.0,
        "gbit" => 125_000_000.0,
        _ => return None,
    })
}

fn shown(amount: &Amount) -> String {
    match amount {
        Amount::Bytes(n) => n.to_string(),
        Amount::Text(t) => t.clone(),
    }
}

/// Parse one amount: bytes, or bytes a second when `rate`.
pub fn parse_amount(key: &str, amount: &Amount, rate: bool) -> Result<u64, LimitsError> {
    let err = |problem| LimitsError {
        key: key.to_string(),
        value: shown(amount),
        problem,
    };
    let value = match amount {
        Amount::Bytes(n) => *n as f64,
        Amount::Text(t) => {
            let t = t.trim();
            let split = t
                .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+')))
                .unwrap_or(t.len());
            let (num, unit) = t.split_at(split);
            let number: f64 = num
                .trim()
                .parse()
                .map_err(|_| err(LimitsProblem::NotANumber))?;
            let unit = unit.trim();
            let (unit, per_sec) = match unit.strip_suffix("/s").or(unit.strip_suffix("/S")) {
                Some(u) => (u.trim(), true),
                None => (unit, false),
            };
            let hint = if rate { " with \"/s\"" } else { "" };
            let factor = unit_factor(unit)
                .ok_or_else(|| err(LimitsProblem::UnknownUnit(unit.to_string(), hint)))?;
            if number < 0.0 {
                return Err(err(LimitsProblem::Negative));
            }
            match (rate, per_sec) {
                (true, false) if !unit.is_empty() => return Err(err(LimitsProblem::NotARate)),
                (false, true) => return Err(err(LimitsProblem::NotASize)),
                _ => {}
            }
            number * factor
        }
    };
    if value < 0.0 {
        return Err(err(LimitsProblem::Negative));
    }
    if !value.is_finite() || value >= u64::MAX as f64 {
        return Err(err(LimitsProblem::NotANumber));
    }
    Ok(value.round() as u64)
}

fn ranged(key: &str, v: i64, lo: i64, hi: i64) -> Result<i64, LimitsError> {
    if (lo..=hi).contains(&v) {
        return Ok(v);
    }
    Err(LimitsError {
        key: key.to_string(),
        value: v.to_string(),
        problem: if v < 0 {
            LimitsProblem::Negative
        } else {
            LimitsProblem::OutOfRange(lo, hi)
        },
    })
}

impl LimitsSection {
    /// This section with `flags` laid over it, and the keys the flags set.
    pub fn with_flags(&self, flags: &LimitFlags) -> (LimitsSection, Vec<&'static str>) {
        let mut s = self.clone();
        let mut from_flag = Vec::new();
        let pairs: [(&'static str, &mut Option<Amount>, &Option<String>); 7] = [
            ("rate", &mut s.rate, &flags.rate),
            ("burst", &mut s.burst, &flags.burst),
            ("relayed", &mut s.relayed, &flags.relayed),
            ("dht", &mut s.dht, &flags.dht),
            ("seeding", &mut s.seeding, &flags.seeding),
            ("monthly", &mut s.monthly, &flags.monthly),
            ("memory", &mut s.memory, &flags.memory),
        ];
        for (key, slot, flag) in pairs {
            if let Some(f) = flag {
                *slot = Some(Amount::Text(f.clone()));
                from_flag.push(key);
            }
        }
        if let Some(c) = flags.cpu_percent {
            s.cpu_percent = Some(c);
            from_flag.push("cpu_percent");
        }
        (s, from_flag)
    }

    /// The limits these settings describe, each key checked.
    pub fn to_limits(&self) -> Result<Limits, LimitsError> {
        self.to_limits_from(&[])
    }

    /// [`LimitsSection::to_limits`] of a section whose keys `from_flag` came from flags
    /// (errors then name the flag).
    pub fn to_limits_from(&self, from_flag: &[&str]) -> Result<Limits, LimitsError> {
        let name = |key: &str| {
            if from_flag.contains(&key) {
                format!("--{}", key.replace('_', "-"))
            } else {
                format!("[limits] {key}")
            }
        };
        let rate = |key: &str, a: &Option<Amount>, what: &'static str| {
            let Some(a) = a else { return Ok(None) };
            let key = name(key);
            let v = parse_amount(&key, a, true)?;
            if v == 0 {
                return Err(LimitsError {
                    key,
                    value: shown(a),
                    problem: LimitsProblem::Zero(what),
                });
            }
            Ok(Some(v))
        };
        let mut limits = Limits {
            rate: rate("rate", &self.rate, "all traffic")?,
            relayed: rate("relayed", &self.relayed, "every circuit carried")?,
            dht: rate("dht", &self.dht, "the DHT")?,
            seeding: rate("seeding", &self.seeding, "serving records")?,
            own: rate("own", &self.own, "your own reading")?,
            ..Limits::default()
        };
        if let Some(b) = &self.burst {
            let key = name("burst");
            let v = parse_amount(&key, b, false)?;
            if v < MIN_BURST {
                return Err(LimitsError {
                    key,
                    value: shown(b),
                    problem: LimitsProblem::TooSmall("64 KiB (128 cells)"),
                });
            }
            limits.burst = Some(v);
        }
        if let Some(m) = &self.monthly {
            let key = name("monthly");
            let quota = parse_amount(&key, m, false)?;
            if quota == 0 {
                return Err(LimitsError {
                    key,
                    value: shown(m),
                    problem: LimitsProblem::Zero("all traffic for the whole month"),
                });
            }
            let day = ranged(
                "[limits] period_start_day",
                self.period_start_day.unwrap_or(1),
                1,
                28,
            )?;
            limits.accounting = Some(Accounting {
                quota,
                start_day: u8::try_from(day).unwrap_or(1),
            });
        } else if let Some(d) = self.period_start_day {
            ranged("[limits] period_start_day", d, 1, 28)?;
        }
        if let Some(c) = self.cpu_percent {
            let c = ranged(&name("cpu_percent"), c, 1, 100)?;
            limits.cpu_percent = u32::try_from(c).unwrap_or(100);
        }
        if let Some(m) = &self.memory {
            let key = name("memory");
            let v = parse_amount(&key, m, false)?;
            if v < MIN_MEMORY {
                return Err(LimitsError {
                    key,
                    value: shown(m),
                    problem: LimitsProblem::TooSmall("16 MiB"),
                });
            }
            limits.memory = v;
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::{Amount, LimitFlags, LimitsProblem, LimitsSection, parse_amount};

    fn text(s: &str) -> Amount {
        Amount::Text(s.into())
    }

    #[test]
    fn units_are_read_as_documented() {
        let r = |s: &str| parse_amount("k", &text(s), true);
        assert_eq!(r("4 MiB/s"), Ok(4 << 20));
        assert_eq!(r("500KiB/s"), Ok(500 << 10));
        assert_eq!(r("100 Mbit/s"), Ok(12_500_000));
        assert_eq!(r("1.5 mb/s"), Ok(1_500_000));
        assert_eq!(parse_amount("k", &Amount::Bytes(1000), true), Ok(1000));
        assert_eq!(parse_amount("k", &text("500 GiB"), false), Ok(500 << 30));
        let p = |s: &str, rate| parse_amount("k", &text(s), rate).unwrap_err().problem;
        assert!(matches!(p("4 MeB/s", true), LimitsProblem::UnknownUnit(..)));
        assert_eq!(p("4 MiB", true), LimitsProblem::NotARate);
        assert_eq!(p("4 MiB/s", false), LimitsProblem::NotASize);
        assert_eq!(p("-4 MiB/s", true), LimitsProblem::Negative);
        assert_eq!(p("fast", true), LimitsProblem::NotANumber);
    }

    #[test]
    fn the_issue_example_parses_and_bad_keys_are_named() {
        let s: LimitsSection = toml::from_str(
            "rate = \"8 MiB/s\"\nburst = \"16 MiB\"\nrelayed = \"4 MiB/s\"\ndht = \"1 MiB/s\"\n\
             seeding = \"1 MiB/s\"\nmonthly = \"500 GiB\"\ncpu_percent = 50\nmemory = \"256 MiB\"\n",
        )
        .unwrap();
        let l = s.to_limits().unwrap();
        assert_eq!(l.rate, Some(8 << 20));
        assert_eq!(l.relayed, Some(4 << 20));
        assert_eq!(
            l.accounting.map(|a| (a.quota, a.start_day)),
            Some((500 << 30, 1))
        );
        assert_eq!((l.cpu_percent, l.memory), (50, 256 << 20));
        let bad = |t: &str| {
            let s: LimitsSection = toml::from_str(t).unwrap();
            s.to_limits().unwrap_err().to_string()
        };
        assert!(bad("relayed = \"0 MiB/s\"").starts_with("[limits] relayed"));
        assert!(bad("cpu_percent = 0").contains("from 1 to 100"));
        assert!(bad("cpu_percent = -5").contains("negative"));
        assert!(bad("memory = \"1 MiB\"").contains("at least 16 MiB"));
        assert!(bad("monthly = \"0 GiB\"").contains("zero would stop"));
        assert!(bad("monthly = \"9 GiB\"\nperiod_start_day = 31").contains("period_start_day"));
        assert!(toml::from_str::<LimitsSection>("rat = 5").is_err());
        // A flag overrides its key, and its error names the flag.
        let flags = LimitFlags {
            relayed: Some("2 furlongs/s".into()),
            ..LimitFlags::default()
        };
        let (merged, from) = s.with_flags(&flags);
        let e = merged.to_limits_from(&from).unwrap_err();
        assert_eq!(e.key, "--relayed");
    }
}
