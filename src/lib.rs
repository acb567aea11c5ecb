//! Umbra: a node for an anonymous peer-to-peer web.
//!
//! Peers talk over Noise-encrypted links (`protocol-spec/02-link.md`); readers build 3-hop
//! circuits of sealed onion layers through volunteer relays; the overlay finds and fetches
//! signed sites. This crate is the whole node. Its protocol core is sans-IO: time and
//! randomness are passed in, and only [`runtime`] (feature `runtime`) touches the clock, the
//! OS RNG and sockets.
//!
//! # Module map
//!
//! | module | role | spec |
//! | --- | --- | --- |
//! | [`error`] | `ErrorKind`, `HasKind`: who failed, what a caller can do | — |
//! | [`time`] | injected monotonic `Time` and `WallTime`; no clock reads | README#determinism |
//! | [`redact`] | `Sensitive<T>`: addresses and keys redacted in logs | README#logging |
//! | [`wire`] | pure codecs: `Reader`/`Writer`, cells, per-context parsing | 01, 03 |
//! | [`crypto`] | the only importer of primitive crates: keys, Noise, AEAD, BLAKE3, keystore | 00, 02 |
//! | [`link`] | sans-IO Noise XK link sessions, framing, keepalive and rekey timers | 02 |
//! | [`flow`] | circuit and stream flow-control windows | 05 |
//! | [`limits`] | token buckets per traffic class, the accounting pacer | 09 |
//! | [`directory`] | signed relay descriptors, bootstrap lists, guards, path selection | 09 |
//! | [`circuit`] | the reader's circuits: telescoping build, streams | 04, 05 |
//! | [`relay`] | the relay switch, per-hop layers, limits, exit services | 04, 09 |
//! | [`dht`] | sans-IO Kademlia: routing table, lookups, record stores | 06 |
//! | [`site`] | addresses, signed manifests, building a site, rollback tracking | 07 |
//! | [`node`] | the sans-IO node composing all of the above; its events (`NodeEvent`) | 09 |
//! | [`app`] | the reader's apps over a node, sans-IO: the `App` trait, `ServiceSession`, echo, the publisher, the one fetch engine and a site's files | 05, 07, 08 |
//! | [`gateway`] | the browser gateway's routing, confinement headers, ranges | 08 |
//! | [`sim`] | deterministic simulators over real nodes and real DHT engines | README#determinism |
//! | [`interop`] | vector runners: bundled public vectors, Umbra's goldens, external files | interop/README.md |
//! | `runtime` | \[feature `runtime`\] CLI, tokio driver, redb store, configuration | — |
//!
//! Dependency direction: `runtime` and `sim` → `app` → `node` → (link, circuit, relay, dht,
//! site, directory) → crypto → wire → error, time, ids, flow. Siblings never import each
//! other; `node` composes them; apps and drivers see `node` only (the circuit machine is
//! crate-private).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![deny(clippy::wildcard_imports, clippy::enum_glob_use)]

pub mod app;
pub(crate) mod circuit;
pub mod crypto;
pub mod dht;
pub mod directory;
pub mod error;
pub mod flow;
pub mod gateway;
pub mod ids;
pub mod interop;
pub mod limits;
pub mod link;
pub mod node;
pub mod redact;
pub mod relay;
#[cfg(feature = "sim")]
pub mod sim;
pub mod site;
pub mod time;
pub mod wire;

#[cfg(feature = "runtime")]
pub mod runtime;

/// The protocol name bound into every Noise prologue (`protocol-spec/02-link.md#prologue`).
pub const PROTOCOL_NAME: &str = "umbra";
/// The protocol version bound into every Noise prologue (`protocol-spec/02-link.md#prologue`).
pub const PROTOCOL_VERSION: u8 = 1;
