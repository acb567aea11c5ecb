//! Small identifier types shared by the protocol parts and the drivers.
//!
//! Link and connect ids are allocated by the driver (runtime or simulator) and are only
//! meaningful within one node. Not in this module: anything with behaviour.

use core::fmt;

/// One link (TCP connection) of a node, named by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u64);

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "link#{}", self.0)
    }
}

/// A connection attempt the node asked the driver to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectId(pub u64);

/// A reader-side circuit, named by the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CircHandle(pub u64);

/// A stream on a reader-side circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamHandle {
    /// The circuit.
    pub circ: CircHandle,
    /// The stream id on it (never 0).
    pub id: u16,
}
