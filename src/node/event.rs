//! What the node tells the application above it (`protocol-spec/04-circuits.md`,
//! `05-streams.md`): circuits built, failed or closed, and streams opened, fed and ended.
//! Apps and drivers import this, never the circuit machine's own event type.
//! Not in this module: how circuits and streams work (`crate::circuit`).

pub use crate::circuit::CircuitFailure;
use crate::circuit::ClientEvent;
use crate::crypto::keys::NodeId;
use crate::ids::{CircHandle, StreamHandle};

/// An event for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// The circuit is open through every hop of `path`.
    Built {
        /// The circuit.
        circ: CircHandle,
        /// Its relays, guard first.
        path: Vec<NodeId>,
    },
    /// The circuit could not be built (after the node's own retries on fresh paths).
    Failed {
        /// The circuit.
        circ: CircHandle,
        /// Why the last attempt failed.
        failure: CircuitFailure,
        /// The relay being reached when it failed, if any.
        hop: Option<NodeId>,
    },
    /// The circuit was closed after it was built.
    Closed {
        /// The circuit.
        circ: CircHandle,
        /// Why.
        failure: CircuitFailure,
    },
    /// A stream opened.
    StreamOpened {
        /// The stream.
        stream: StreamHandle,
    },
    /// Data on a stream.
    StreamData {
        /// The stream.
        stream: StreamHandle,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A stream ended.
    StreamEnded {
        /// The stream.
        stream: StreamHandle,
        /// The peer's reason code (`05-streams.md#end`).
        reason: u8,
    },
}

impl From<ClientEvent> for NodeEvent {
    fn from(e: ClientEvent) -> NodeEvent {
        match e {
            ClientEvent::Built { circ, path } => NodeEvent::Built { circ, path },
            ClientEvent::Failed { circ, failure, hop } => NodeEvent::Failed { circ, failure, hop },
            ClientEvent::Closed { circ, failure } => NodeEvent::Closed { circ, failure },
            ClientEvent::StreamOpened { stream } => NodeEvent::StreamOpened { stream },
            ClientEvent::StreamData { stream, data } => NodeEvent::StreamData { stream, data },
            ClientEvent::StreamEnded { stream, reason } => {
                NodeEvent::StreamEnded { stream, reason }
            }
        }
    }
}
