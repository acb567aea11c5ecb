//! `umbra.toml`: the node's configuration file.
//!
//! Every field has a documented default; unknown keys are errors (a typo must not silently
//! fall back to a default). Command-line flags override the file. Not in this module:
//! acting on the settings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::relay::RelayLimits;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[relay]`: running as a relay.
    #[serde(default)]
    pub relay: RelayConfig,
    /// `[dht]`: the DHT's parameters (`protocol-spec/06-dht.md#parameters`).
    #[serde(default)]
    pub dht: DhtSection,
    /// `[reader]`: fetching.
    #[serde(default)]
    pub reader: ReaderSection,
}

/// `[reader]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ReaderSection {
    /// Keep fetched blocks in a local cache and reuse them. Default true.
    pub cache: bool,
    /// MiB the cache may use. Default 256.
    pub cache_quota_mib: u64,
    /// Where the cache lives. Default: `$XDG_DATA_HOME/umbra` (`~/.local/share/umbra`).
    pub data_dir: Option<PathBuf>,
}

impl Default for ReaderSection {
    fn default() -> Self {
        ReaderSection {
            cache: true,
            cache_quota_mib: 256,
            data_dir: None,
        }
    }
}

/// The default data directory: `$XDG_DATA_HOME/umbra`, else `~/.local/share/umbra`.
pub fn default_data_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("umbra"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/umbra"))
}

/// `[dht]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DhtSection {
    /// Bucket size and lookup width. Default 20.
    pub k: usize,
    /// Requests in flight per lookup. Default 3.
    pub alpha: usize,
    /// Storers per record. Default 8.
    pub replication: usize,
    /// Seconds between republishing held records. Default 3600.
    pub republish_secs: u64,
}

impl Default for DhtSection {
    fn default() -> Self {
        let d = crate::dht::DhtConfig::default();
        DhtSection {
            k: d.k,
            alpha: d.alpha,
            replication: d.replication,
            republish_secs: d.republish_interval.as_secs(),
        }
    }
}

impl DhtSection {
    /// The DHT configuration these settings describe (values clamped to sane ranges).
    pub fn to_config(&self) -> crate::dht::DhtConfig {
        crate::dht::DhtConfig {
            k: self.k.clamp(2, 64),
            alpha: self.alpha.clamp(1, 16),
            replication: self.replication.clamp(1, 64),
            republish_interval: std::time::Duration::from_secs(self.republish_secs.max(60)),
            ..crate::dht::DhtConfig::default()
        }
    }
}

/// `[relay]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Address to listen on, also published in the descriptor. No default.
    pub listen: Option<SocketAddr>,
    /// Where keys and the descriptor live. No default.
    pub data_dir: Option<PathBuf>,
    /// The relay list (one hex descriptor per line).
    pub bootstrap: Option<PathBuf>,
    /// Advertised bandwidth, KiB/s. Default 10000.
    pub bandwidth_kib: u32,
    /// Most circuits through the relay. Default 20000.
    pub max_circuits: usize,
    /// Most circuits per link. Default 2000.
    pub max_circuits_per_link: usize,
    /// MiB of others' records stored at most. Default 1024.
    pub store_quota_mib: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        let limits = RelayLimits::default();
        RelayConfig {
            listen: None,
            data_dir: None,
            bootstrap: None,
            bandwidth_kib: 10_000,
            max_circuits: limits.max_circuits,
            max_circuits_per_link: limits.max_circuits_per_link,
            store_quota_mib: 1024,
        }
    }
}

/// Why the configuration file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said (line, column, expected keys).
        source: toml::de::Error,
    },
}

impl Config {
    /// Parse a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Parse configuration text.
    pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::parse("[relay]\nlisten = \"127.0.0.1:4400\"\nmax_circuits = 5\n").unwrap();
        assert_eq!(c.relay.listen, Some("127.0.0.1:4400".parse().unwrap()));
        assert_eq!(c.relay.max_circuits, 5);
        assert_eq!(c.relay.bandwidth_kib, 10_000);
        assert_eq!(Config::parse("").unwrap(), Config::default());
        let c = Config::parse("[dht]\nreplication = 5\n").unwrap();
        assert_eq!(c.dht.to_config().replication, 5);
        assert_eq!(c.dht.to_config().k, 20);
    }

    #[test]
    fn typos_are_errors() {
        let e = Config::parse("[relay]\nlisen = \"127.0.0.1:4400\"\n").unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
        assert!(Config::parse("[rleay]\n").is_err());
    }
}
