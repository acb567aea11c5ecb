//! The I/O shell \[feature `runtime`\]: the command line and the tokio driver.
//!
//! This is the only module allowed to read the clock, the OS RNG and sockets
//! (`clippy.toml`). Not in this module: protocol logic (see `link/`, `wire/`, `crypto/`).

// The runtime is where the clock and the OS RNG are read (clippy.toml bans them elsewhere).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod admission;
pub mod bench;
pub mod browse;
pub mod calibrate;
pub mod cli;
pub mod committer;
pub mod config;
pub mod conformance;
pub mod demo;
pub mod driver;
pub mod error;
pub mod gateway;
pub mod interop_cmd;
pub mod keygen_cmd;
pub mod limits_config;
pub mod log;
pub mod node_cmd;
pub mod pins_cmd;
pub mod probe;
pub mod raw_link;
pub mod relay_cmd;
pub mod relays_cmd;
pub mod seen_store;
pub mod site_cmd;
pub mod store;
pub mod store_writer;
#[cfg(feature = "tor")]
pub mod tor;
pub mod tor_status;
pub mod writer_state;
pub mod writers_args;
pub mod writers_cmd;
