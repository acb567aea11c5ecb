//! The I/O shell \[feature `runtime`\]: the command line and (later) the tokio driver.
//!
//! This is the only module allowed to read the clock, the OS RNG and sockets
//! (`clippy.toml`). Not in this module: protocol logic (see `link/`, `wire/`, `crypto/`).

pub mod cli;
pub mod driver;
pub mod probe;
pub mod relay_cmd;
