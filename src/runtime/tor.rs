//! The reader's first hop through Tor (feature `tor`, `arti-client`): every link a reader
//! dials to a guard is a Tor stream, and the Noise link runs inside it unchanged
//! (`protocol-spec/02-link.md` does not know the difference). Relays never use this: their
//! links to each other stay direct.
//!
//! Bootstrap runs in the background from start-up; its progress goes to the terminal and to
//! the shared [`TorStatusHandle`] (dashboard, `/api/status`). A connect waits for bootstrap
//! (bounded), then tries up to `connect_attempts` times, each on a fresh Tor circuit: exits
//! of a young network refuse streams from relays they do not know yet, and a refusal on one
//! circuit says nothing about the next. "No path yet" (Tor's directory has no usable exit,
//! as in a young network) uses up no attempt: it waits with backoff, up to
//! `bootstrap_timeout_secs` in all. There is no silent fallback to a direct connection;
//! `allow_direct_fallback` is the user's explicit choice (the driver warns on each use).
//! Arti's own error and progress text is scrubbed of addresses before Umbra shows it
//! ([`crate::redact::scrub`]). Not in this module: the driver's socket handling.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arti_client::config::CfgPath;
use arti_client::config::dir::FallbackDir;
use arti_client::{DataStream, ErrorKind, HasKind, TorClient, TorClientConfig};
use tor_rtcompat::PreferredRuntime;

use super::config::TorSection;
use super::tor_status::TorStatusHandle;
use crate::redact::scrub;

/// Why the Tor first hop failed. Every variant says what to check.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TorError {
    /// The `[tor]` settings cannot be turned into a Tor configuration.
    #[error("[tor] configuration: {0}")]
    Config(String),
    /// Tor did not finish bootstrapping in time.
    #[error("Tor did not bootstrap within {secs} s (last: {last}); is the network reachable?")]
    BootstrapTimeout {
        /// The limit.
        secs: u64,
        /// Tor's last progress message.
        last: String,
    },
    /// Bootstrapping failed outright (no network, no usable directory).
    #[error("Tor could not bootstrap: {0}")]
    Bootstrap(String),
    /// The Tor exit refused or could not open the stream to the guard.
    #[error("the Tor exit refused the connection to {target}: {cause}")]
    ExitRefused {
        /// The guard's address (shown only with redaction off).
        target: crate::redact::Sensitive<SocketAddr>,
        /// Tor's reason.
        cause: String,
    },
    /// Any other failure to open the Tor stream.
    #[error("connecting through Tor failed: {0}")]
    Connect(String),
}

impl crate::error::HasKind for TorError {
    fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            TorError::Config(_) => ErrorKind::Config,
            TorError::BootstrapTimeout { .. } => ErrorKind::Timeout,
            TorError::Bootstrap(_) | TorError::ExitRefused { .. } | TorError::Connect(_) => {
                ErrorKind::PeerUnreachable
            }
        }
    }
}

/// Builds arti's configuration from `[tor]`.
fn client_config(s: &TorSection, state_dir: &Path) -> Result<TorClientConfig, TorError> {
    let mut b = TorClientConfig::builder();
    b.storage()
        .state_dir(CfgPath::new_literal(state_dir.join("state")))
        .cache_dir(CfgPath::new_literal(state_dir.join("cache")));
    if let Some(net) = &s.network {
        let mut ids = Vec::new();
        for a in &net.authorities {
            ids.push(
                tor_llcrypto::pk::rsa::RsaIdentity::from_hex(a).ok_or_else(|| {
                    TorError::Config(format!("authority {a:?} is not 40 hex digits"))
                })?,
            );
        }
        b.tor_network().authorities().set_v3idents(ids);
        let mut fallbacks = Vec::new();
        for f in &net.fallbacks {
            let rsa =
                tor_llcrypto::pk::rsa::RsaIdentity::from_hex(&f.rsa_identity).ok_or_else(|| {
                    TorError::Config(format!("fallback rsa_identity {:?}", f.rsa_identity))
                })?;
            let ed = tor_llcrypto::pk::ed25519::Ed25519Identity::from_base64(&f.ed_identity)
                .ok_or_else(|| {
                    TorError::Config(format!("fallback ed_identity {:?}", f.ed_identity))
                })?;
            let mut fb = FallbackDir::builder();
            fb.rsa_identity(rsa)
                .ed_identity(ed)
                .orports()
                .push(f.orport);
            fallbacks.push(fb);
        }
        b.tor_network().set_fallback_caches(fallbacks);
        b.address_filter().allow_local_addrs(net.allow_local_addrs);
        b.path_rules()
            .ipv4_subnet_family_prefix(net.ipv4_subnet_family_prefix)
            .ipv6_subnet_family_prefix(net.ipv6_subnet_family_prefix);
        // A lab network is smaller than arti's default guard sample.
        b.override_net_params()
            .insert("guard-min-filtered-sample-size".into(), 4);
        // Lab state lives in a temporary directory that other users may own.
        b.storage().permissions().dangerously_trust_everyone();
    }
    b.build().map_err(|e| TorError::Config(e.to_string()))
}

/// Dials guards through Tor.
pub struct TorDialer {
    client: Arc<TorClient<PreferredRuntime>>,
    settings: TorSection,
    status: TorStatusHandle,
}

impl std::fmt::Debug for TorDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorDialer")
            .field("status", &self.status.get())
            .finish()
    }
}

impl TorDialer {
    /// Create the Tor client and start bootstrapping in the background; must be called
    /// inside the tokio runtime. `quiet` keeps progress off the terminal.
    pub fn start(
        settings: &TorSection,
        data_dir: &Path,
        quiet: bool,
    ) -> Result<(Arc<TorDialer>, TorStatusHandle), TorError> {
        // The rustls build of arti leaves the choice of crypto provider to the program;
        // Umbra already uses ring. (An error means one is installed already: fine.)
        let _ = rustls::crypto::ring::default_provider().install_default();
        let state_dir = settings
            .state_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("tor"));
        let cfg = client_config(settings, &state_dir)?;
        let client = TorClient::builder()
            .config(cfg)
            .create_unbootstrapped()
            .map_err(|e| TorError::Config(e.to_string()))?;
        let status = TorStatusHandle::default();
        status.update(|s| {
            s.state = "bootstrapping";
            s.message = "starting".into();
        });
        let dialer = Arc::new(TorDialer {
            client: client.clone(),
            settings: settings.clone(),
            status: status.clone(),
        });
        // Bootstrap, and report progress every 250 ms until it ends.
        let st = status.clone();
        let boot = client.clone();
        tokio::spawn(async move {
            let progress = {
                let st = st.clone();
                let c = boot.clone();
                async move {
                    let mut last = u8::MAX;
                    loop {
                        let b = c.bootstrap_status();
                        let pct = (b.as_frac() * 100.0).round().clamp(0.0, 100.0) as u8;
                        let msg = scrub(&b.to_string());
                        st.update(|s| {
                            if s.state == "bootstrapping" {
                                s.percent = pct;
                                s.message = msg.clone();
                            }
                        });
                        if pct != last && !quiet {
                            tracing::info!("Tor bootstrap {pct}%: {msg}");
                            last = pct;
                        }
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }
            };
            let result = tokio::select! {
                r = boot.bootstrap() => r,
                () = progress => Ok(()),
            };
            match result {
                Ok(()) => {
                    st.update(|s| {
                        s.state = "ready";
                        s.percent = 100;
                        s.message = "bootstrapped".into();
                    });
                    if !quiet {
                        tracing::info!("Tor bootstrap 100%: ready");
                    }
                }
                Err(e) => {
                    let e = TorError::Bootstrap(scrub(&e.to_string()));
                    st.update(|s| {
                        s.state = "failed";
                        s.last_error = Some(e.to_string());
                    });
                    tracing::error!("{e}");
                }
            }
        });
        Ok((dialer, status))
    }

    /// The status handle.
    pub fn status(&self) -> TorStatusHandle {
        self.status.clone()
    }

    async fn wait_ready(&self) -> Result<(), TorError> {
        let secs = self.settings.bootstrap_timeout_secs.max(1);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.status.get();
            match s.state {
                "ready" => return Ok(()),
                "failed" => {
                    return Err(TorError::Bootstrap(
                        s.last_error.unwrap_or_else(|| "unknown".into()),
                    ));
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(TorError::BootstrapTimeout {
                    secs,
                    last: s.message,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Open a Tor stream to `target`, retrying on fresh circuits.
    pub async fn connect(&self, target: SocketAddr) -> Result<DataStream, TorError> {
        let result = self.connect_inner(target).await;
        match &result {
            Ok(_) => self.status.update(|s| s.links += 1),
            Err(e) => self.status.update(|s| s.last_error = Some(e.to_string())),
        }
        result
    }

    async fn connect_inner(&self, target: SocketAddr) -> Result<DataStream, TorError> {
        self.wait_ready().await?;
        let attempts = self.settings.connect_attempts.max(1);
        // "No path" means Tor's directory has no usable exit yet (a young or lab network
        // whose consensus is still filling in). That is not the exit's answer, so it does
        // not use up an attempt: wait with backoff, at most the bootstrap limit in all.
        let path_limit = Duration::from_secs(self.settings.bootstrap_timeout_secs.max(1));
        let mut path_wait = Duration::ZERO;
        let mut pause = Duration::from_millis(500);
        let mut last = None;
        let mut attempt = 0;
        while attempt < attempts {
            // The first try may share a circuit; every retry gets a fresh one.
            let client = if attempt == 0 {
                self.client.clone()
            } else {
                self.client.isolated_client()
            };
            let addr = (target.ip().to_string(), target.port());
            match tokio::time::timeout(Duration::from_secs(30), client.connect(addr)).await {
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(e)) if no_path_yet(e.kind()) && path_wait < path_limit => {
                    last = Some(TorError::Connect(scrub(&e.to_string())));
                    tokio::time::sleep(pause).await;
                    path_wait += pause;
                    pause = (pause * 2).min(Duration::from_secs(8));
                    continue;
                }
                Ok(Err(e)) => {
                    last = Some(match e.kind() {
                        ErrorKind::RemoteStreamClosed
                        | ErrorKind::RemoteStreamError
                        | ErrorKind::RemoteStreamReset
                        | ErrorKind::RemoteConnectionRefused
                        | ErrorKind::RemoteNetworkFailed
                        | ErrorKind::ExitPolicyRejected => TorError::ExitRefused {
                            target: crate::redact::Sensitive(target),
                            cause: scrub(&e.to_string()),
                        },
                        _ => TorError::Connect(scrub(&e.to_string())),
                    })
                }
                Err(_) => last = Some(TorError::Connect("no answer within 30 s".into())),
            }
            attempt += 1;
            if attempt < attempts {
                self.status.update(|s| s.retries += 1);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Err(last.unwrap_or_else(|| TorError::Connect("no attempt made".into())))
    }
}

/// Errors that mean "Tor cannot build a path yet" rather than "the exit said no".
fn no_path_yet(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::NoPath
            | ErrorKind::NoExit
            | ErrorKind::TorDirectoryUnusable
            | ErrorKind::DirectoryExpired
            | ErrorKind::BootstrapRequired
    )
}
