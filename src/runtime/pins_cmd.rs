//! `umbra pin`, `umbra unpin`, `umbra pins`: a running node's pins
//! (`protocol-spec/07-sites.md#pinning`), through its control API (`/api/pins`, see
//! `08-gateway.md#control`). Pins are kept by a running node because a pin is checked again
//! about once an hour; these commands only ask it.
//! Not in this module: the checks (`crate::app::pinner`), the API's server side
//! (`gateway/pins_api.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use super::error::RuntimeError;
use super::node_cmd::{bytes, http_request};
use crate::site::address::SiteAddress;

/// How long `umbra pin` waits for the first check (a large site takes a while).
const PIN_WAIT: Duration = Duration::from_secs(15 * 60);

fn answer(addr: SocketAddr, method: &str, path: &str) -> Result<(u16, Value), RuntimeError> {
    let (code, body) = http_request(addr, method, path, PIN_WAIT)?;
    let v = serde_json::from_str(&body).map_err(|_| RuntimeError::BadAnswer {
        what: "the node",
        detail: format!("status {code}: {}", body.trim()),
    })?;
    Ok((code, v))
}

fn refused(v: &Value, code: u16) -> RuntimeError {
    RuntimeError::BadAnswer {
        what: "the node",
        detail: v["error"]
            .as_str()
            .map_or_else(|| format!("status {code}"), str::to_string),
    }
}

/// One pin, as a line.
fn describe(p: &Value) -> String {
    let seq = p["seq"]
        .as_u64()
        .map_or_else(|| "none yet".to_string(), |s| s.to_string());
    let n = |k: &str| p[k].as_u64().unwrap_or(0);
    format!(
        "version {seq}, {} blocks ({}), fewest copies in the network {}",
        n("blocks"),
        bytes(n("bytes")),
        n("copies")
    )
}

/// `umbra pin ADDRESS`.
pub fn pin(addr: SocketAddr, site: &str) -> Result<(), RuntimeError> {
    let site = SiteAddress::parse(site)?;
    println!(
        "pinning {}: fetching it whole through a circuit…",
        site.encode()
    );
    let (code, v) = answer(addr, "POST", &format!("/api/pins/{}", site.encode()))?;
    match code {
        200 => {
            println!("pinned: {}", describe(&v["pin"]));
            println!(
                "{} blocks fetched, {} stored again in the network; checked again about hourly",
                v["fetched"].as_u64().unwrap_or(0),
                v["restored"].as_u64().unwrap_or(0)
            );
            Ok(())
        }
        202 => {
            println!("pinned; the first check is still running (see `umbra pins`)");
            Ok(())
        }
        502 => Err(RuntimeError::Network {
            what: "pin",
            why: format!(
                "pinned, but the first check failed: {} (tried again every 10 minutes; \
                 `umbra unpin` to give up)",
                v["error"].as_str().unwrap_or("?")
            ),
        }),
        _ => Err(refused(&v, code)),
    }
}

/// `umbra unpin ADDRESS`.
pub fn unpin(addr: SocketAddr, site: &str) -> Result<(), RuntimeError> {
    let site = SiteAddress::parse(site)?;
    let (code, v) = answer(addr, "DELETE", &format!("/api/pins/{}", site.encode()))?;
    match code {
        200 => {
            println!("unpinned {}; its copy is released", site.encode());
            Ok(())
        }
        404 => Err(RuntimeError::Usage(format!(
            "{} is not pinned",
            site.encode()
        ))),
        _ => Err(refused(&v, code)),
    }
}

/// `umbra pins`.
pub fn list(addr: SocketAddr, json: bool) -> Result<(), RuntimeError> {
    let (code, v) = answer(addr, "GET", "/api/pins")?;
    if code != 200 {
        return Err(refused(&v, code));
    }
    if json {
        println!("{v}");
        return Ok(());
    }
    if let Some(e) = v["load_error"].as_str() {
        println!("warning: the pins kept earlier could not be read: {e}");
    }
    let pins = v["pins"].as_array().cloned().unwrap_or_default();
    if pins.is_empty() {
        println!("no pins (umbra pin <address>)");
        return Ok(());
    }
    let now = v["now"].as_u64().unwrap_or(0);
    for p in &pins {
        let checked = p["checked"].as_u64().map_or_else(
            || "never checked".to_string(),
            |t| format!("checked {} min ago", now.saturating_sub(t) / 60),
        );
        let state = if p["checking"].as_bool() == Some(true) {
            ", checking now"
        } else {
            ""
        };
        println!("{}", p["address"].as_str().unwrap_or("?"));
        println!("    {}; {checked}{state}", describe(p));
        if let Some(e) = p["error"].as_str() {
            println!("    last check failed: {e}");
        }
    }
    println!("{} pinned", pins.len());
    Ok(())
}
