//! `umbra browse`: open sites in the reader's browser in the leak-proof reading mode
//! (`protocol-spec/08-gateway.md#reading-modes`).
//!
//! The browser is started with a profile of its own (in the data directory, mode 0700) whose
//! only way out is the gateway as HTTP proxy, with the browser's implicit loopback bypass
//! removed. Every request a page can cause, including the connection hints no page header
//! governs (`preconnect`, `dns-prefetch`) and WebRTC, then reaches the gateway, which serves
//! sites and refuses everything else. Chromium, Chrome and Firefox are supported.
//!
//! Not in this module: the gateway itself (`runtime::gateway`), what it serves and refuses
//! (`crate::gateway`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::site::address::SiteAddress;

/// Browsers looked for on `PATH`, in this order.
const CHROMIUM_NAMES: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];
const FIREFOX_NAMES: [&str; 2] = ["firefox", "firefox-esr"];

/// Why the browser could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrowseError {
    /// No supported browser was found.
    #[error(
        "no supported browser found on PATH (looked for {0}); install Chromium \
         (`apt-get install chromium`) or Firefox, or name one with --browser"
    )]
    NoBrowser(String),
    /// The site argument is not a site address.
    #[error("{0:?} is not a site address: {1}")]
    BadAddress(String, crate::site::address::AddressError),
    /// The profile directory could not be made.
    #[error("cannot create the browser profile {0}: {1}")]
    Profile(PathBuf, std::io::Error),
    /// The browser would not start.
    #[error("cannot start {0}: {1}")]
    Start(PathBuf, std::io::Error),
}

impl crate::error::HasKind for BrowseError {
    fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            BrowseError::NoBrowser(_) => ErrorKind::Config,
            BrowseError::BadAddress(..) => ErrorKind::MalformedInput,
            BrowseError::Profile(..) | BrowseError::Start(..) => ErrorKind::LocalIo,
        }
    }
}

/// Which family a browser binary belongs to (they are configured differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Chromium, Chrome: command-line flags.
    Chromium,
    /// Firefox: a `user.js` in the profile.
    Firefox,
}

/// The Chromium flags of the leak-proof mode, for a gateway on `gateway`.
pub fn chromium_flags(gateway: SocketAddr) -> Vec<String> {
    vec![
        format!("--proxy-server=http://{gateway}"),
        // Chromium sends loopback names straight to loopback unless told otherwise; a page
        // could then reach local services without the gateway.
        "--proxy-bypass-list=<-loopback>".into(),
        // WebRTC only through the proxy, which refuses it.
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp".into(),
        "--dns-prefetch-disable".into(),
        "--no-first-run".into(),
        "--no-default-browser-check".into(),
    ]
}

/// Firefox's `user.js` for the leak-proof mode.
pub fn firefox_prefs(gateway: SocketAddr) -> String {
    let (host, port) = (gateway.ip(), gateway.port());
    [
        "// Written by `umbra browse`: this profile reaches nothing but the Umbra gateway."
            .to_string(),
        "user_pref(\"network.proxy.type\", 1);".into(),
        format!("user_pref(\"network.proxy.http\", \"{host}\");"),
        format!("user_pref(\"network.proxy.http_port\", {port});"),
        format!("user_pref(\"network.proxy.ssl\", \"{host}\");"),
        format!("user_pref(\"network.proxy.ssl_port\", {port});"),
        "user_pref(\"network.proxy.share_proxy_settings\", true);".into(),
        "user_pref(\"network.proxy.no_proxies_on\", \"\");".into(),
        "user_pref(\"network.proxy.allow_hijacking_localhost\", true);".into(),
        "user_pref(\"media.peerconnection.enabled\", false);".into(),
        "user_pref(\"network.dns.disablePrefetch\", true);".into(),
        "user_pref(\"network.prefetch-next\", false);".into(),
        "user_pref(\"network.predictor.enabled\", false);".into(),
        "user_pref(\"network.http.speculative-parallel-limit\", 0);".into(),
        "user_pref(\"browser.shell.checkDefaultBrowser\", false);".into(),
        String::new(),
    ]
    .join("\n")
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The browser to start: `explicit`, else the first supported one on `PATH`.
pub fn find_browser(explicit: Option<&Path>) -> Result<(PathBuf, Family), BrowseError> {
    let family_of = |p: &Path| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.contains("firefox") {
            Family::Firefox
        } else {
            Family::Chromium
        }
    };
    if let Some(p) = explicit {
        return Ok((p.to_path_buf(), family_of(p)));
    }
    CHROMIUM_NAMES
        .iter()
        .chain(FIREFOX_NAMES.iter())
        .find_map(|n| on_path(n))
        .map(|p| {
            let f = family_of(&p);
            (p, f)
        })
        .ok_or_else(|| {
            BrowseError::NoBrowser(
                CHROMIUM_NAMES
                    .iter()
                    .chain(FIREFOX_NAMES.iter())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })
}

/// The URL to open: the site's proxy-mode URL, or the dashboard.
pub fn start_url(site: Option<&str>, gateway: SocketAddr) -> Result<String, BrowseError> {
    match site {
        None => Ok(format!("http://localhost:{}/", gateway.port())),
        Some(s) => {
            let label = s
                .trim()
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or("")
                .trim_end_matches(crate::gateway::UMBRA_SUFFIX);
            let a =
                SiteAddress::parse(label).map_err(|e| BrowseError::BadAddress(s.to_string(), e))?;
            Ok(format!(
                "http://{}{}/",
                a.encode(),
                crate::gateway::UMBRA_SUFFIX
            ))
        }
    }
}

/// The command that opens `url` in `browser` with the profile `profile`.
pub fn command_line(
    browser: &Path,
    family: Family,
    profile: &Path,
    gateway: SocketAddr,
    url: &str,
) -> Vec<String> {
    let mut v = vec![browser.display().to_string()];
    match family {
        Family::Chromium => {
            v.push(format!("--user-data-dir={}", profile.display()));
            v.extend(chromium_flags(gateway));
        }
        Family::Firefox => {
            v.extend(["--no-remote".into(), "--profile".into()]);
            v.push(profile.display().to_string());
        }
    }
    v.push(url.to_string());
    v
}

/// `umbra browse`: make the profile, print the command, start the browser (unless
/// `dry_run`).
pub fn browse(
    gateway: SocketAddr,
    site: Option<&str>,
    browser: Option<&Path>,
    data_dir: &Path,
    dry_run: bool,
) -> Result<(), BrowseError> {
    let url = start_url(site, gateway)?;
    let (program, family) = find_browser(browser)?;
    let profile = data_dir.join(match family {
        Family::Chromium => "browser-chromium",
        Family::Firefox => "browser-firefox",
    });
    super::store::private_dir(&profile).map_err(|e| BrowseError::Profile(profile.clone(), e))?;
    if family == Family::Firefox {
        std::fs::write(profile.join("user.js"), firefox_prefs(gateway))
            .map_err(|e| BrowseError::Profile(profile.clone(), e))?;
    }
    let line = command_line(&program, family, &profile, gateway, &url);
    println!("{}", line.join(" "));
    if dry_run {
        return Ok(());
    }
    Command::new(&line[0])
        .args(&line[1..])
        .spawn()
        .map_err(|e| BrowseError::Start(program.clone(), e))?;
    println!(
        "Opened {url} in a browser profile that reaches nothing but the gateway on {gateway}."
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Family, command_line, firefox_prefs, start_url};
    use std::path::Path;

    #[test]
    fn the_profile_reaches_only_the_gateway() {
        let gw = "127.0.0.1:8470".parse().unwrap();
        let line = command_line(
            Path::new("/usr/bin/chromium"),
            Family::Chromium,
            Path::new("/d/p"),
            gw,
            "http://x.umbra/",
        );
        assert!(line.contains(&"--proxy-server=http://127.0.0.1:8470".to_string()));
        assert!(line.contains(&"--proxy-bypass-list=<-loopback>".to_string()));
        assert!(line.contains(&"--user-data-dir=/d/p".to_string()));
        let prefs = firefox_prefs(gw);
        assert!(prefs.contains("allow_hijacking_localhost\", true"));
        assert!(prefs.contains("network.proxy.http_port\", 8470"));
        assert!(start_url(Some("nonsense"), gw).is_err());
        assert_eq!(
            start_url(None, gw).unwrap(),
            "http://localhost:8470/".to_string()
        );
    }
}
