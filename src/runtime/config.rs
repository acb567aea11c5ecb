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
    /// `[gateway]`: the browser gateway and dashboard.
    #[serde(default)]
    pub gateway: GatewaySection,
    /// `[tor]`: reach the first relay through Tor (feature `tor`).
    #[serde(default)]
    pub tor: TorSection,
    /// `[directory]`: relay discovery (`protocol-spec/10-directory.md`).
    #[serde(default)]
    pub directory: DirectorySection,
    /// `[limits]`: bandwidth, the monthly quota, CPU and memory
    /// (`protocol-spec/09-relay.md#bandwidth`).
    #[serde(default)]
    pub limits: super::limits_config::LimitsSection,
}

/// `[directory]`: how the node learns and keeps the relay set
/// (`protocol-spec/10-directory.md#timing`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DirectorySection {
    /// Seconds between a relay's reconciliations with a random relay. Default 600.
    pub relay_sync_secs: u64,
    /// Seconds between a reader's reconciliations with its guard. Default 1800.
    pub reader_sync_secs: u64,
    /// Seconds a relay's own descriptor is valid; it signs a new one halfway. Default
    /// 259200 (3 days); at least 10.
    pub descriptor_lifetime_secs: u64,
    /// Relays admitted per /16 network. Default 8.
    pub per_subnet: usize,
    /// Relays admitted per declared family. Default 64.
    pub per_family: usize,
    /// Seconds this node must have known a relay before choosing it as a guard. Default
    /// 691200 (8 days); when no relay is that old (a young network), any relay.
    pub guard_min_age_secs: u64,
}

impl Default for DirectorySection {
    fn default() -> Self {
        let d = crate::directory::sync::SyncConfig::default();
        DirectorySection {
            relay_sync_secs: d.relay_interval.as_secs(),
            reader_sync_secs: d.reader_interval.as_secs(),
            descriptor_lifetime_secs: d.lifetime.as_secs(),
            per_subnet: d.admission.per_subnet,
            per_family: d.admission.per_family,
            guard_min_age_secs: d.guard_min_age.as_secs(),
        }
    }
}

impl DirectorySection {
    /// The discovery settings these describe (values clamped to sane ranges).
    pub fn to_config(&self) -> crate::directory::sync::SyncConfig {
        use std::time::Duration;
        let d = crate::directory::sync::SyncConfig::default();
        crate::directory::sync::SyncConfig {
            relay_interval: Duration::from_secs(self.relay_sync_secs.max(1)),
            reader_interval: Duration::from_secs(self.reader_sync_secs.max(1)),
            lifetime: Duration::from_secs(
                self.descriptor_lifetime_secs
                    .max(crate::directory::sync::MIN_LIFETIME_SECS),
            ),
            admission: crate::directory::Admission {
                per_subnet: self.per_subnet.max(1),
                per_family: self.per_family.max(1),
                ..d.admission
            },
            guard_min_age: Duration::from_secs(self.guard_min_age_secs),
            ..d
        }
    }
}

/// `[tor]`: a reader's links to its guards go through the Tor network (`arti-client`), so
/// not even the guard learns the reader's address. Needs a build with feature `tor`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TorSection {
    /// Dial every guard through Tor. Default false.
    pub enabled: bool,
    /// If Tor cannot be reached, dial guards directly instead of failing. Default false:
    /// that exposes your address to the guard, the thing `[tor]` exists to prevent.
    pub allow_direct_fallback: bool,
    /// Seconds to wait for Tor to bootstrap before a link attempt fails. Default 120.
    pub bootstrap_timeout_secs: u64,
    /// Tries per guard link, each on a fresh Tor circuit. Default 4. While Tor has no path
    /// yet (a young network), it waits instead, up to `bootstrap_timeout_secs`.
    pub connect_attempts: u32,
    /// Where Tor keeps its state and directory cache. Default: `tor/` in the data directory.
    pub state_dir: Option<PathBuf>,
    /// A private Tor network instead of the public one (tests, labs). Default: none.
    pub network: Option<TorNetwork>,
}

impl Default for TorSection {
    fn default() -> Self {
        TorSection {
            enabled: false,
            allow_direct_fallback: false,
            bootstrap_timeout_secs: 120,
            connect_attempts: 4,
            state_dir: None,
            network: None,
        }
    }
}

/// `[tor.network]`: a private Tor network.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TorNetwork {
    /// The directory authorities' v3 identity fingerprints (40 hex digits each).
    pub authorities: Vec<String>,
    /// Where to fetch the first directory documents: `[[tor.network.fallbacks]]`.
    pub fallbacks: Vec<TorFallback>,
    /// Allow connections to local addresses (127.0.0.0/8 and the like). Default false.
    #[serde(default)]
    pub allow_local_addrs: bool,
    /// Relays whose IPv4 addresses share this many leading bits are one family. Default
    /// 16 (Tor's); 33 means "never" (every relay of a loopback network shares 127.0.0.1).
    #[serde(default = "default_v4_prefix")]
    pub ipv4_subnet_family_prefix: u8,
    /// The same for IPv6. Default 32; 129 means "never".
    #[serde(default = "default_v6_prefix")]
    pub ipv6_subnet_family_prefix: u8,
}

fn default_v4_prefix() -> u8 {
    16
}

fn default_v6_prefix() -> u8 {
    32
}

/// One directory cache to start from.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TorFallback {
    /// The relay's RSA identity fingerprint (40 hex digits).
    pub rsa_identity: String,
    /// The relay's Ed25519 identity (unpadded base64).
    pub ed_identity: String,
    /// Its ORPort address.
    pub orport: SocketAddr,
}

/// The gateway's default address (loopback only).
pub const DEFAULT_GATEWAY: &str = "127.0.0.1:8470";

/// `[gateway]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    /// Where the gateway and dashboard listen. Default 127.0.0.1:8470 (loopback only).
    pub listen: SocketAddr,
    /// MiB of verified blocks kept in memory for fast page loads. Default 128.
    pub cache_quota_mib: u64,
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            listen: SocketAddr::from(([127, 0, 0, 1], 8470)),
            cache_quota_mib: 128,
        }
    }
}

/// The commented `umbra.toml` that `umbra init` writes: every setting at its default.
/// (A test checks that it parses to exactly [`Config::default`] plus the data directory.)
pub const TEMPLATE: &str = r#"# umbra.toml: Umbra's configuration. Every setting is shown at its default;
# uncomment and change what you need. Unknown keys are errors, so a typo cannot
# silently fall back to a default. Command-line flags override this file.

[reader]
# Keep fetched blocks in a local cache and reuse them (umbra fetch).
# cache = true
# MiB the cache may use.
# cache_quota_mib = 256
# Where the cache, keys and state live.
data_dir = "@DATA_DIR@"

[gateway]
# Where the browser gateway and the dashboard listen (umbra run). Loopback only by
# default; the gateway also refuses any Host header that is not its own.
# listen = "127.0.0.1:8470"
# MiB of verified blocks kept in memory for fast page loads.
# cache_quota_mib = 128

[relay]
# Volunteer as a relay (umbra relay): the address to listen on, published in your
# descriptor so readers and other relays can reach you. No default.
# listen = "0.0.0.0:4400"
# Where the relay keeps its keys, descriptor and stored records.
data_dir = "@DATA_DIR@"
# Contacts to join through: one hex descriptor per line. One reachable relay is
# enough; the rest of the relay set is learned from the network.
# bootstrap = "relays.txt"
# Advertised bandwidth in KiB/s (how much path selection uses you).
# bandwidth_kib = 10000
# Most circuits carried at once, and per reader's link.
# max_circuits = 20000
# max_circuits_per_link = 2000
# MiB of other people's site records you store for the network.
# store_quota_mib = 1024
# CREATEs (new circuits) a second one address (an IPv6 /64) may send, after a burst.
# Readers behind one address (a NAT, a Tor exit) share it. Relays are not limited.
# creates_per_sec = 20
# create_burst = 400
# Running several relays? Make one family key (umbra keygen --out family.key), give
# every relay of yours the same file: readers then never put two of them on one path.
# family_key = "family.key"

[tor]
# Reach your guard relays through the Tor network (needs a build with the `tor`
# feature): not even your guard learns your address. Costs time; see the README.
# enabled = false
# If Tor cannot be reached, connect directly instead of failing. This exposes your
# address to your guard; leave it off unless you accept that.
# allow_direct_fallback = false
# bootstrap_timeout_secs = 120
# Tries per guard link, each on a fresh Tor circuit (while Tor has no path yet, it
# waits instead, up to bootstrap_timeout_secs).
# connect_attempts = 4
# Tor keeps its state in tor/ inside the data directory unless `state_dir` names
# another folder. A private Tor network (labs, tests) goes in a [tor.network] table:
# authorities, fallbacks, allow_local_addrs and the subnet-family prefixes; the README
# section "Tor underneath" shows one.

[dht]
# Kademlia bucket size and lookup width.
# k = 20
# Requests in flight per lookup.
# alpha = 3
# Storers per record.
# replication = 8
# Seconds between republishing held records.
# republish_secs = 3600

[directory]
# How the relay set is learned from the network (protocol-spec/10-directory.md).
# Seconds between a relay's reconciliations with a random relay.
# relay_sync_secs = 600
# Seconds between a reader's reconciliations with its guard.
# reader_sync_secs = 1800
# Seconds your relay's descriptor is valid; a new one is signed halfway.
# descriptor_lifetime_secs = 259200
# Relays admitted per /16 network and per declared family.
# per_subnet = 8
# per_family = 64
# Seconds this node must have known a relay before it may become one of your guards.
# guard_min_age_secs = 691200

[limits]
# What the node may spend (protocol-spec/09-relay.md#bandwidth). No key set: no limit,
# except memory (512 MiB) and cpu_percent (100). Rates are each direction; units:
# B, KiB, MiB, GiB, TiB (1024), kB, MB, GB, TB (1000), kbit, Mbit, Gbit; "/s" for rates.
# Cells past a limit wait (the circuit windows then slow their senders); none is dropped.
# Everything together, and the burst after a quiet spell (default: 2 s of rate).
# rate = "8 MiB/s"
# burst = "16 MiB"
# Circuits carried for others; DHT, storage and replication; serving held records.
# Your own reading and publishing are served first and are never held for these.
# relayed = "4 MiB/s"
# dht = "1 MiB/s"
# seeding = "1 MiB/s"
# A quota per month, each direction, paced to last the whole month (no hibernation),
# and the day of the month the period starts.
# monthly = "500 GiB"
# period_start_day = 1
# Percent of one core the node may spend on handshakes (1-100).
# cpu_percent = 100
# Queued cells and buffers at most; past it, circuits holding the oldest are closed.
# memory = "512 MiB"
"#;

/// The template with the data directory filled in.
pub fn template(data_dir: &Path) -> String {
    TEMPLATE.replace(
        "@DATA_DIR@",
        &data_dir.display().to_string().replace('\\', "/"),
    )
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

impl ReaderSection {
    /// The reader's data directory: `flag`, else `data_dir`, else the default.
    pub fn dir(&self, flag: Option<PathBuf>) -> Option<PathBuf> {
        flag.or_else(|| self.data_dir.clone())
            .or_else(default_data_dir)
    }

    /// The reader's state file (block cache and guards) and its quota.
    pub fn state(&self, flag: Option<PathBuf>) -> Option<(PathBuf, u64)> {
        let dir = self.dir(flag)?;
        Some((dir.join("cache.redb"), self.cache_quota_mib << 20))
    }

    /// Where Tor's state and the directory cache go: the reader's data directory, or a
    /// temporary one when there is no home directory.
    pub fn state_base(&self, flag: Option<PathBuf>) -> PathBuf {
        self.dir(flag)
            .unwrap_or_else(|| std::env::temp_dir().join("umbra"))
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
    /// Most circuits per reader's link (links from relays: bounded by the table). Default 2000.
    pub max_circuits_per_link: usize,
    /// MiB of others' records stored at most. Default 1024.
    pub store_quota_mib: u64,
    /// CREATEs a second one anonymous source (an address, an IPv6 /64) may send. Default 20.
    pub creates_per_sec: u32,
    /// CREATEs such a source may send at once before that rate applies. Default 400.
    pub create_burst: u32,
    /// The family's key (`umbra keygen`), shared by every relay of one operator: they
    /// then never share a path (`09-relay.md#families`). No default: no family.
    pub family_key: Option<PathBuf>,
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
            creates_per_sec: limits.creates_per_sec,
            create_burst: limits.create_burst,
            family_key: None,
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

impl crate::error::HasKind for ConfigError {
    fn kind(&self) -> crate::error::ErrorKind {
        match self {
            ConfigError::Read { .. } => crate::error::ErrorKind::LocalIo,
            ConfigError::Parse { .. } => crate::error::ErrorKind::Config,
        }
    }
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
    fn the_template_documents_exactly_the_defaults() {
        let dir = std::path::Path::new("/tmp/umbra-x");
        let c = Config::parse(&super::template(dir)).unwrap();
        let mut expected = Config::default();
        expected.reader.data_dir = Some(dir.to_path_buf());
        expected.relay.data_dir = Some(dir.to_path_buf());
        assert_eq!(c, expected);
        // Every commented setting, uncommented, is a valid key with its default value.
        let uncommented: String = super::TEMPLATE
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.contains(" = ") && !rest.starts_with("listen = \"0.0.0.0") => {
                    rest
                }
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let c = Config::parse(&uncommented.replace("@DATA_DIR@", "/tmp/umbra-x")).unwrap();
        assert_eq!(c.reader.cache_quota_mib, 256);
        assert_eq!(c.gateway, super::GatewaySection::default());
        assert_eq!(c.dht, super::DhtSection::default());
        let relay = super::RelayConfig {
            data_dir: Some(dir.to_path_buf()),
            bootstrap: Some("relays.txt".into()),
            // An example, not a default: no family unless one is named.
            family_key: Some("family.key".into()),
            ..Default::default()
        };
        assert_eq!(c.relay, relay);
        assert_eq!(c.tor, super::TorSection::default());
        // The [limits] examples are usable limits.
        let limits = c.limits.to_limits().unwrap();
        assert_eq!((limits.rate, limits.memory), (Some(8 << 20), 512 << 20));
        assert_eq!(
            Config::parse(&super::template(dir))
                .unwrap()
                .limits
                .to_limits(),
            Ok(crate::limits::Limits::default())
        );
    }

    #[test]
    fn a_private_tor_network_parses_and_bad_keys_are_refused() {
        let c = Config::parse(
            "[tor]\nenabled = true\n[tor.network]\nauthorities = [\"AB\"]\n\
             allow_local_addrs = true\nipv4_subnet_family_prefix = 33\n\
             [[tor.network.fallbacks]]\nrsa_identity = \"CD\"\ned_identity = \"EF\"\n\
             orport = \"127.0.0.1:9001\"\n",
        )
        .unwrap();
        let net = c.tor.network.unwrap();
        assert!(c.tor.enabled && net.allow_local_addrs);
        assert_eq!(
            (net.ipv4_subnet_family_prefix, net.ipv6_subnet_family_prefix),
            (33, 32)
        );
        assert_eq!(net.fallbacks[0].orport.port(), 9001);
        assert!(Config::parse("[tor]\nenable = true\n").is_err());
        assert!(Config::parse("[tor.network]\nauthorities = []\n").is_err());
    }

    #[test]
    fn typos_are_errors() {
        let e = Config::parse("[relay]\nlisen = \"127.0.0.1:4400\"\n").unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
        assert!(Config::parse("[rleay]\n").is_err());
    }
}
